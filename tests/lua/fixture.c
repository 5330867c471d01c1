/*
 * tests/lua/fixture.c — the script tests' redis-server and helpers (fixture.h says what each
 * does).
 *
 * The server runs as the test's child with PR_SET_PDEATHSIG, so a test killed by ctest's timeout
 * takes its Redis with it; every wait is bounded.
 */
#define _GNU_SOURCE /* asprintf, vasprintf */
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

int fx_start(struct fx *f)
{
    const char *tmp = getenv("TMPDIR");

    memset(f, 0, sizeof(*f));
    keyspace_init(&f->keys, NULL);
    if ((f->scripts = scripts_new(&f->keys)) == NULL) {
        abort();
    }
    snprintf(f->dir, sizeof(f->dir), "%s/sluice-lua-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        fprintf(stderr, "fixture: mkdtemp %s: %s\n", f->dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < START_TRIES && f->c == NULL; i++) {
        try_start(f);
    }
    if (f->c == NULL) {
        fprintf(stderr, "fixture: redis-server did not start (see %s/redis.log)\n", f->dir);
        return -1;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        redisReply *r = redisCommand(f->c, "SCRIPT LOAD %s", scripts_source(f->scripts, i));
        int ok = r != NULL && r->type == REDIS_REPLY_STRING &&
                 strcmp(r->str, scripts_sha(f->scripts, i)) == 0;
        if (!ok) {
            fprintf(stderr, "fixture: SCRIPT LOAD of script %d: %s\n", i,
                    r == NULL                       ? f->c->errstr
                    : r->type == REDIS_REPLY_ERROR  ? r->str
                    : r->type == REDIS_REPLY_STRING ? "a different SHA-1 than scripts_sha()"
                                                    : "unexpected reply");
        }
        freeReplyObject(r);
        if (!ok) {
            fx_stop(f);
            return -1;
        }
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
}

void fx_flush(struct fx *f)
{
    freeReplyObject(redisCommand(f->c, "FLUSHALL"));
}

struct fx_args *fx_args_new(void)
{
    struct fx_args *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        abort();
    }
    return a;
}

void fx_args_free(struct fx_args *a)
{
    if (a == NULL) {
        return;
    }
    for (int i = 0; i < a->n_own; i++) {
        free(a->own[i]);
    }
    free(a);
}

void fx_arg(struct fx_args *a, const char *s)
{
    if (a->n == FX_MAX_ARGS) {
        abort(); /* a test's own mistake */
    }
    a->v[a->n++] = s ? s : "";
}

void fx_argf(struct fx_args *a, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0 || a->n_own == FX_MAX_ARGS) {
        abort();
    }
    a->own[a->n_own++] = s;
    fx_arg(a, s);
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

redisReply *fx_script(struct fx *f, enum script_id id, int nkeys, const struct fx_args *a)
{
    const char **argv = malloc(sizeof(*argv) * (size_t)(a->n + 3));
    char nkeys_s[16];
    redisReply *r;

    if (argv == NULL) {
        abort();
    }
    snprintf(nkeys_s, sizeof(nkeys_s), "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = scripts_sha(f->scripts, id);
    argv[2] = nkeys_s;
    memcpy(&argv[3], a->v, sizeof(*argv) * (size_t)a->n);
    r = redisCommandArgv(f->c, a->n + 3, argv, NULL);
    free(argv);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "script %d: %s\n", (int)id, r->str);
    }
    trace(f, id, r);
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
    return fx_str(f, "HGET " KEY_TASK "%s %s", id, field);
}

long long fx_stat(struct fx *f, const char *field)
{
    char *s = fx_str(f, "HGET " KEY_STATS " %s", field);
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

#define OR(v, d) ((v) ? (v) : (d))

void fx_submit_group(struct fx_args *a, const struct fx_task *t)
{
    const char *tenant = OR(t->tenant, "t1");
    int n0 = a->n;

    fx_argf(a, KEY_TASK "%s", t->id);
    fx_argf(a, KEY_TENANT "%s", tenant);
    fx_argf(a, KEY_IDEM "%s:%s", tenant, OR(t->idem, ""));
    fx_arg(a, t->id);
    fx_arg(a, tenant);
    fx_arg(a, OR(t->kind, "chat"));
    fx_arg(a, OR(t->model, "m"));
    fx_arg(a, OR(t->prio, "1"));
    fx_argf(a, "%lld", t->now ? t->now : FX_NOW);
    fx_argf(a, "%d", t->max_attempts ? t->max_attempts : 3);
    fx_arg(a, OR(t->input, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
    fx_arg(a, t->metadata);
    fx_arg(a, t->idem ? "1" : "0");
    fx_arg(a, OR(t->body_hash, "ab12"));
    fx_arg(a, "86400000");
    fx_arg(a, t->reply_to);
    fx_arg(a, t->stream ? "1" : "0");
    fx_arg(a, t->deadline);
    fx_argf(a, "%ld", t->est ? t->est : 100);
    fx_arg(a, t->routing);
    fx_argf(a, "%ld", t->max_queued ? t->max_queued : 1000000);
    fx_arg(a, t->webhook);
    fx_arg(a, t->batch);
    fx_arg(a, t->custom_id);
    fx_argf(a, "%lld", t->max_stored ? t->max_stored : 1000000000000LL);
    fx_argf(a, "%lld", t->max_artifacts ? t->max_artifacts : 1000000000000LL);
    if (a->n - n0 != SUBMIT_GROUP) {
        abort(); /* the layout changed: this builder must follow */
    }
}

redisReply *fx_submit(struct fx *f, const struct fx_task *tasks, int n)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, FX_WAKE);
    for (int i = 0; i < n; i++) {
        fx_submit_group(a, &tasks[i]);
    }
    r = fx_script(f, SCRIPT_SUBMIT, 0, a);
    fx_args_free(a);
    return r;
}

int fx_submit1(struct fx *f, const struct fx_task *t)
{
    redisReply *r = fx_submit(f, t, 1);
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
             r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1 &&
             strcmp(r->element[0]->element[0]->str, "ok") == 0;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

void fx_routing(struct fx *f, const char *alias, const char *json)
{
    freeReplyObject(redisCommand(f->c, "SET " KEY_ROUTING "%s %s", alias, json));
}

redisReply *fx_claim(struct fx *f, long long now, int n)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_LEASES);
    fx_arg(a, KEY_POLLS);
    fx_argf(a, "%lld", now);
    fx_argf(a, "%lld", FX_LEASE);
    fx_argf(a, "%d", n);
    fx_arg(a, "1");
    fx_arg(a, "1000");
    fx_arg(a, "1.000");
    fx_arg(a, FX_NOROUTE_ERROR);
    fx_argf(a, "%lld", FX_RET);
    r = fx_script(f, SCRIPT_CLAIM, 2, a);
    fx_args_free(a);
    return r;
}

void fx_finish_group(struct fx_args *a, const struct fx_outcome *o)
{
    int n0 = a->n;

    fx_argf(a, KEY_TASK "%s", o->id);
    fx_arg(a, o->id);
    fx_arg(a, OR(o->fence, "1"));
    fx_arg(a, o->outcome);
    fx_arg(a, o->result);
    fx_arg(a, o->usage);
    fx_arg(a, o->provider);
    fx_arg(a, o->cost);
    fx_arg(a, o->error);
    fx_arg(a, o->retry_at);
    fx_arg(a, o->up_id);
    fx_arg(a, o->job);
    fx_arg(a, o->progress);
    fx_arg(a, o->queue_position);
    fx_arg(a, o->poll_at);
    fx_arg(a, o->artifacts);
    fx_arg(a, OR(o->took_slot, "0"));
    fx_arg(a, o->latency);
    fx_arg(a, OR(o->class, "none"));
    fx_arg(a, o->pause_until);
    fx_arg(a, o->remaining_requests);
    fx_arg(a, o->remaining_tokens);
    fx_arg(a, o->tokens_used);
    fx_arg(a, o->http_status);
    fx_arg(a, OR(o->avoid, "0"));
    fx_arg(a, o->attempt);
    fx_arg(a, OR(o->wake, "0"));
    if (a->n - n0 != FINISH_GROUP) {
        abort(); /* the layout changed: this builder must follow */
    }
}

redisReply *fx_finish(struct fx *f, long long now, long br_min, const struct fx_outcome *o, int n)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_LEASES);
    fx_arg(a, KEY_DELAYED);
    fx_arg(a, KEY_POLLS);
    fx_argf(a, "%lld", now);
    fx_argf(a, "%lld", FX_RET);
    fx_arg(a, FX_WAKE);
    fx_argf(a, "%ld", br_min);
    fx_arg(a, "50");
    fx_arg(a, "30000");
    if (a->n - 3 != FINISH_HEADER) {
        abort();
    }
    for (int i = 0; i < n; i++) {
        fx_finish_group(a, &o[i]);
    }
    r = fx_script(f, SCRIPT_FINISH, 3, a);
    fx_args_free(a);
    return r;
}

redisReply *fx_tick(struct fx *f, long long now, const char *node)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_DELAYED);
    fx_arg(a, KEY_LEASES);
    fx_arg(a, KEY_EXPIRY);
    fx_arg(a, KEY_LEADER);
    fx_argf(a, "%lld", now);
    fx_arg(a, "1000");
    fx_arg(a, node);
    fx_arg(a, "10000");
    fx_arg(a, KEY_TASK);
    fx_arg(a, KEY_TENANT);
    fx_arg(a, FX_WAKE);
    fx_argf(a, "%lld", FX_RET);
    fx_arg(a, KEY_QUEUE);
    fx_arg(a, FX_LOST_ERROR);
    r = fx_script(f, SCRIPT_TICK, 4, a);
    fx_args_free(a);
    return r;
}

redisReply *fx_cancel(struct fx *f, const char *id, const char *tenant, long long now)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_argf(a, KEY_TASK "%s", id);
    fx_arg(a, KEY_DELAYED);
    fx_arg(a, KEY_POLLS);
    fx_arg(a, id);
    fx_arg(a, tenant);
    fx_argf(a, "%lld", now);
    fx_argf(a, "%lld", FX_RET);
    r = fx_script(f, SCRIPT_CANCEL, 3, a);
    fx_args_free(a);
    return r;
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
