/*
 * tests/lua/fixture.c — the script tests' redis-server and helpers (fixture.h says what each
 * does).
 *
 * The server runs as the test's child with PR_SET_PDEATHSIG, so a test killed by ctest's timeout
 * takes its Redis with it; every wait is bounded.
 */
#define _GNU_SOURCE /* asprintf, open_memstream */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lua/fixture.h"

#define START_TRIES 3
#define START_WAIT_MS 10000
#define STOP_WAIT_MS 5000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port nobody listens on now (bind port 0, read it, close). 0 on failure. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

    if (fd < 0) {
        return 0;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

static void kill_server(struct fx *f)
{
    int status;

    if (f->pid <= 0) {
        return;
    }
    kill(f->pid, SIGTERM);
    for (int waited = 0; waited < STOP_WAIT_MS; waited += 10) {
        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            f->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, &status, 0);
    f->pid = 0;
}

/* One attempt on one port: spawn, then PING until PONG (or the child exits, or time runs out). */
static int try_start(struct fx *f)
{
    char port_s[16], log_path[300];
    pid_t parent = getpid();

    f->port = free_port();
    if (f->port == 0) {
        return -1;
    }
    snprintf(port_s, sizeof(port_s), "%d", f->port);
    snprintf(log_path, sizeof(log_path), "%s/redis.log", f->dir);
    f->pid = fork();
    if (f->pid < 0) {
        f->pid = 0;
        return -1;
    }
    if (f->pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1", "--dir",
               f->dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode",
               "no", (char *)NULL);
        _exit(127);
    }
    for (int waited = 0; waited < START_WAIT_MS; waited += 50) {
        int status;
        struct timeval tv = {1, 0};
        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            f->pid = 0;
            return -1;
        }
        f->c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
        if (f->c != NULL && f->c->err == 0) {
            redisReply *r = redisCommand(f->c, "PING");
            int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            freeReplyObject(r);
            if (ok) {
                redisSetTimeout(f->c, (struct timeval){10, 0});
                return 0;
            }
        }
        redisFree(f->c);
        f->c = NULL;
        sleep_ms(50);
    }
    kill_server(f);
    return -1;
}

/* Renders and loads the scripts of ks into the server: the rendered scripts (caller frees), or
 * NULL with the reason on stderr. */
static struct scripts *load_scripts(struct fx *f, const struct keyspace *ks)
{
    struct scripts *sc = scripts_new(ks);

    if (sc == NULL) {
        fprintf(stderr, "fixture: scripts_new: out of memory\n");
        return NULL;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        redisReply *r = redisCommand(f->c, "SCRIPT LOAD %s", scripts_source(sc, i));
        int ok =
            r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, scripts_sha(sc, i)) == 0;
        if (!ok) {
            fprintf(stderr, "fixture: SCRIPT LOAD of script %d: %s\n", i,
                    r == NULL                       ? f->c->errstr
                    : r->type == REDIS_REPLY_ERROR  ? r->str
                    : r->type == REDIS_REPLY_STRING ? "a different SHA-1 than scripts_sha()"
                                                    : "unexpected reply");
        }
        freeReplyObject(r);
        if (!ok) {
            scripts_free(sc);
            return NULL;
        }
    }
    return sc;
}

int fx_keyspace(struct fx *f, const char *tag)
{
    struct keyspace ks;
    struct scripts *sc;

    if (keyspace_init(&ks, tag) != 0) {
        fprintf(stderr, "fixture: \"%s\" is not a key tag\n", tag);
        return -1;
    }
    if ((sc = load_scripts(f, &ks)) == NULL) {
        return -1;
    }
    scripts_free(f->scripts);
    f->scripts = sc;
    f->keys = ks;
    return 0;
}

int fx_start(struct fx *f)
{
    const char *tmp = getenv("TMPDIR");

    memset(f, 0, sizeof(*f));
    txn_args_init(&f->args);
    snprintf(f->dir, sizeof(f->dir), "%s/sluice-lua-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        fprintf(stderr, "fixture: mkdtemp %s: %s\n", f->dir, strerror(errno));
        f->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < START_TRIES && f->c == NULL; i++) {
        try_start(f);
    }
    if (f->c == NULL) {
        fprintf(stderr, "fixture: redis-server did not start (see %s/redis.log)\n", f->dir);
        return -1;
    }
    if (fx_keyspace(f, NULL) != 0) {
        fx_stop(f);
        return -1;
    }
    return 0;
}

void fx_stop(struct fx *f)
{
    redisFree(f->c);
    f->c = NULL;
    kill_server(f);
    if (f->dir[0]) {
        remove_dir(f->dir);
        f->dir[0] = '\0';
    }
    scripts_free(f->scripts);
    f->scripts = NULL;
    txn_args_cleanup(&f->args);
}

void fx_flush(struct fx *f)
{
    freeReplyObject(redisCommand(f->c, "FLUSHALL"));
}

const char *fx_key(struct fx *f, const char *family, const char *id)
{
    char *buf = f->key_ring[f->key_next];

    f->key_next = (f->key_next + 1) % FX_KEY_RING;
    if (keyspace_key(&f->keys, buf, FX_KEY_MAX, family, id) != 0) {
        abort(); /* a test's own mistake: a key longer than FX_KEY_MAX */
    }
    return buf;
}

static void trace_reply(FILE *out, const redisReply *r, int depth)
{
    if (r == NULL) {
        fprintf(out, "%*s(no reply)\n", depth * 2, "");
    } else if (r->type == REDIS_REPLY_ARRAY) {
        fprintf(out, "%*s[%zu]\n", depth * 2, "", r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            trace_reply(out, r->element[i], depth + 1);
        }
    } else if (r->type == REDIS_REPLY_INTEGER) {
        fprintf(out, "%*s%lld\n", depth * 2, "", r->integer);
    } else if (r->type == REDIS_REPLY_NIL) {
        fprintf(out, "%*snil\n", depth * 2, "");
    } else {
        fprintf(out, "%*s%s\n", depth * 2, "", r->str);
    }
}

/* With SLUICE_LUA_TRACE=<file>: each call's script, reply and the state after it, appended, so
 * two builds of the scripts can be compared call by call (tests/lua/README.md). */
static void trace(struct fx *f, enum script_id id, const redisReply *r)
{
    const char *path = getenv("SLUICE_LUA_TRACE");
    FILE *out;
    char *state;

    if (path == NULL || *path == '\0' || (out = fopen(path, "a")) == NULL) {
        return;
    }
    state = fx_dump(f);
    fprintf(out, "== script %d\n", (int)id);
    trace_reply(out, r, 1);
    fputs(state, out);
    free(state);
    fclose(out);
}

redisReply *fx_run(struct fx *f, enum script_id id, const struct txn_args *a)
{
    /* EVALSHA <sha> <nkeys> followed by a's arguments, binary-safe */
    const char **cmd = malloc(sizeof(*cmd) * (size_t)(a->n + 3));
    size_t *lens = malloc(sizeof(*lens) * (size_t)(a->n + 3));
    char nkeys[16];
    redisReply *r = NULL;

    if (cmd == NULL || lens == NULL) {
        abort();
    }
    if (a->oom) {
        fprintf(stderr, "script %d: the call could not be built\n", (int)id);
        goto out;
    }
    snprintf(nkeys, sizeof(nkeys), "%d", a->nkeys);
    cmd[0] = "EVALSHA";
    cmd[1] = scripts_sha(f->scripts, id);
    cmd[2] = nkeys;
    for (int i = 0; i < 3; i++) {
        lens[i] = strlen(cmd[i]);
    }
    if (a->n > 0) {
        memcpy(cmd + 3, a->v, sizeof(*cmd) * (size_t)a->n);
        memcpy(lens + 3, a->len, sizeof(*lens) * (size_t)a->n);
    }
    r = redisCommandArgv(f->c, a->n + 3, cmd, lens);
    if (r == NULL) {
        fprintf(stderr, "script %d: %s\n", (int)id, f->c->errstr);
    } else if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "script %d: %s\n", (int)id, r->str);
    }
    trace(f, id, r);
out:
    free(cmd);
    free(lens);
    return r;
}

redisReply *fx_cmd(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->c, fmt, ap);
    va_end(ap);
    return r;
}

static char *reply_text(const redisReply *r)
{
    char buf[32];

    if (r == NULL) {
        return NULL;
    }
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        return strdup(r->str);
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        snprintf(buf, sizeof(buf), "%lld", r->integer);
        return strdup(buf);
    }
    return NULL;
}

char *fx_str(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    char *s;

    va_start(ap, fmt);
    r = redisvCommand(f->c, fmt, ap);
    va_end(ap);
    s = reply_text(r);
    freeReplyObject(r);
    return s;
}

long long fx_int(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v = -999;

    va_start(ap, fmt);
    r = redisvCommand(f->c, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        v = r->integer;
    }
    freeReplyObject(r);
    return v;
}

char *fx_field(struct fx *f, const char *id, const char *field)
{
    return fx_str(f, "HGET %s %s", fx_key(f, KS_TASK, id), field);
}

long long fx_stat(struct fx *f, const char *field)
{
    char *s = fx_str(f, "HGET %s %s", fx_key(f, KS_STATS, NULL), field);
    long long v = s ? strtoll(s, NULL, 10) : 0;
    free(s);
    return v;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A reply's elements one a line (field=value or member=score when pairs), sorted when sort. */
static void dump_elements(FILE *out, const redisReply *r, int pairs, int sort)
{
    size_t n = r->elements / (pairs ? 2 : 1);
    char **items = calloc(n ? n : 1, sizeof(*items));

    for (size_t i = 0; i < n; i++) {
        if (pairs) {
            if (asprintf(&items[i], "%s=%s", r->element[2 * i]->str, r->element[2 * i + 1]->str) <
                0) {
                abort();
            }
        } else {
            items[i] = strdup(r->element[i]->str);
        }
    }
    if (sort) {
        qsort(items, n, sizeof(*items), cmp_str);
    }
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "  %s\n", items[i]);
        free(items[i]);
    }
    free(items);
}

char *fx_dump(struct fx *f)
{
    redisReply *keys = redisCommand(f->c, "KEYS *");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    char **names;

    if (keys == NULL || out == NULL || keys->type != REDIS_REPLY_ARRAY) {
        abort();
    }
    names = calloc(keys->elements ? keys->elements : 1, sizeof(*names));
    for (size_t i = 0; i < keys->elements; i++) {
        names[i] = keys->element[i]->str;
    }
    qsort(names, keys->elements, sizeof(*names), cmp_str);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = names[i];
        redisReply *type = redisCommand(f->c, "TYPE %s", k);
        long long ttl = fx_int(f, "PTTL %s", k);
        redisReply *v = NULL;
        fprintf(out, "%s %s%s\n", k, type->str, ttl >= 0 ? " ttl" : "");
        if (strcmp(type->str, "string") == 0) {
            v = redisCommand(f->c, "GET %s", k);
            fprintf(out, "  %s\n", v->str);
        } else if (strcmp(type->str, "hash") == 0) {
            v = redisCommand(f->c, "HGETALL %s", k);
            dump_elements(out, v, 1, 1);
        } else if (strcmp(type->str, "list") == 0) {
            v = redisCommand(f->c, "LRANGE %s 0 -1", k);
            dump_elements(out, v, 0, 0);
        } else if (strcmp(type->str, "set") == 0) {
            v = redisCommand(f->c, "SMEMBERS %s", k);
            dump_elements(out, v, 0, 1);
        } else if (strcmp(type->str, "zset") == 0) {
            v = redisCommand(f->c, "ZRANGE %s 0 -1 WITHSCORES", k);
            dump_elements(out, v, 1, 0);
        }
        freeReplyObject(v);
        freeReplyObject(type);
    }
    fclose(out);
    free(names);
    freeReplyObject(keys);
    return text;
}

const char *fx_elem(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING) {
        return NULL;
    }
    return r->element[i]->str;
}

long long fx_elem_int(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_INTEGER) {
        return -999;
    }
    return r->element[i]->integer;
}

/* A fixture call's builder failed: the test (or the layer's layout) is wrong, so stop loudly. */
static void built(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "fixture: building %s: error %d\n", what, rc);
        abort();
    }
}

struct txn_submit fx_task(const char *id)
{
    return (struct txn_submit){
        .id = id,
        .tenant = "t1",
        .kind = TASK_KIND_CHAT,
        .model = "m",
        .prio = TASK_PRIO_NORMAL,
        .now_ms = FX_NOW,
        .max_attempts = 3,
        .input = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        .idem_ttl_ms = 86400000,
        .est_tokens = 100,
        .max_queued = 1000000,
        .max_stored_bytes = 1000000000000LL,
        .max_artifact_bytes = 1000000000000LL,
    };
}

redisReply *fx_submit(struct fx *f, const struct txn_submit *tasks, int n)
{
    txn_submit_begin(&f->args, &f->keys);
    for (int i = 0; i < n; i++) {
        built(txn_submit_add(&f->args, &f->keys, &tasks[i]), "SUBMIT");
    }
    return fx_run(f, SCRIPT_SUBMIT, &f->args);
}

int fx_submit1(struct fx *f, const struct txn_submit *t)
{
    redisReply *r = fx_submit(f, t, 1);
    struct txn_submitted res;
    int ok = txn_submit_parse(r, 1, &res) == 0 && res.result == TXN_SUBMIT_OK;

    freeReplyObject(r);
    return ok ? 0 : -1;
}

void fx_routing(struct fx *f, const char *alias, const char *json)
{
    freeReplyObject(redisCommand(f->c, "SET %s %s", fx_key(f, KS_ROUTING, alias), json));
}

redisReply *fx_claim(struct fx *f, long long now, int n)
{
    struct txn_claim p = {.now_ms = now,
                          .lease_ms = FX_LEASE,
                          .max_units = n,
                          .seed = 1,
                          .burst_ms = 1000,
                          .pace = 1.0,
                          .no_route_error = FX_NOROUTE_ERROR,
                          .retention_ms = FX_RET};

    built(txn_claim_build(&f->args, &f->keys, &p), "CLAIM");
    return fx_run(f, SCRIPT_CLAIM, &f->args);
}

struct txn_outcome fx_outcome(const char *id, enum txn_outcome_kind kind)
{
    return (struct txn_outcome){
        .id = id,
        .fence = 1,
        .outcome = kind,
        .progress = -1,
        .queue_position = -1,
        .class = TXN_CLASS_NONE,
        .latency_ms = -1,
        .remaining_requests = -1,
        .remaining_tokens = -1,
        .tokens_used = -1,
    };
}

redisReply *fx_finish(struct fx *f, long long now, long br_min, const struct txn_outcome *o, int n)
{
    struct txn_finish h = {.now_ms = now,
                           .retention_ms = FX_RET,
                           .breaker_min_requests = br_min,
                           .breaker_failure_pct = 50,
                           .breaker_window_ms = 30000};

    built(txn_finish_build(&f->args, &f->keys, &h, o, (size_t)n), "FINISH");
    return fx_run(f, SCRIPT_FINISH, &f->args);
}

redisReply *fx_tick(struct fx *f, long long now, const char *node)
{
    struct txn_tick p = {.now_ms = now,
                         .limit = 1000,
                         .node = node,
                         .leader_ttl_ms = 10000,
                         .retention_ms = FX_RET,
                         .lost_error = FX_LOST_ERROR};

    built(txn_tick_build(&f->args, &f->keys, &p), "TICK");
    return fx_run(f, SCRIPT_TICK, &f->args);
}

redisReply *fx_cancel(struct fx *f, const char *id, const char *tenant, long long now)
{
    struct txn_cancel p = {.id = id, .tenant = tenant, .now_ms = now, .retention_ms = FX_RET};

    built(txn_cancel_build(&f->args, &f->keys, &p), "CANCEL");
    return fx_run(f, SCRIPT_CANCEL, &f->args);
}

redisContext *fx_subscribe(struct fx *f, const char *channel)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
    redisReply *r;

    if (c == NULL || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    r = redisCommand(c, "SUBSCRIBE %s", channel);
    freeReplyObject(r);
    return c;
}

int fx_messages(struct fx *f, redisContext *sub, const char *channel, char *first, size_t size)
{
    int n = 0;

    if (first != NULL && size > 0) {
        first[0] = '\0';
    }

    freeReplyObject(redisCommand(f->c, "PUBLISH %s fx-end", channel));
    for (;;) {
        redisReply *r = NULL;
        if (redisGetReply(sub, (void **)&r) != REDIS_OK || r == NULL) {
            return -1;
        }
        int end = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                  r->element[2]->type == REDIS_REPLY_STRING &&
                  strcmp(r->element[2]->str, "fx-end") == 0;
        if (!end && n == 0 && first != NULL && size > 0 && r->type == REDIS_REPLY_ARRAY &&
            r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
            snprintf(first, size, "%s", r->element[2]->str);
        }
        freeReplyObject(r);
        if (end) {
            return n;
        }
        n++;
    }
}
