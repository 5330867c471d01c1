/*
 * core/store.c — hiredis async on libevent, with round-trip timeouts and reconnects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "core/log.h"
#include "core/store.h"
#include "core/util.h"

#define STORE_MAX_LISTENERS 4
#define STORE_RECONNECT_MIN_MS 100
#define STORE_RECONNECT_MAX_MS 2000
#define STORE_STACK_ARGS 32

enum store_conn { STORE_DOWN, STORE_CONNECTING, STORE_UP };

/* One command in flight; the FIFO order is Redis's reply order. */
struct pending {
    struct store *store;
    store_cb cb;
    void *arg;
    int64_t deadline_ms;
    struct pending *next;
    struct pending *prev;
};

struct store {
    struct event_base *base;
    redisAsyncContext *ac;
    enum store_conn conn;
    char *host;
    int port;
    int db;
    char *password;
    long timeout_ms;
    char name[16];
    struct keyspace keys;
    struct scripts *scripts; /* rendered for keys */

    struct pending *head; /* oldest */
    struct pending *tail;
    size_t n_pending;

    struct event *watchdog; /* checks the oldest deadline, and connect timeouts */
    struct event *reconnect;
    long backoff_ms;
    int64_t connect_deadline_ms;

    struct {
        store_state_cb cb;
        void *arg;
    } listeners[STORE_MAX_LISTENERS];
    int n_listeners;

    bool closing;  /* store_free is closing the connection: not an incident */
    char *channel; /* subscriber mode when set */
    store_msg_cb msg_cb;
    void *msg_arg;

    /* store_script's argument arrays past STORE_STACK_ARGS, kept for the next large call (a
     * batched SUBMIT or FINISH every loop turn) */
    const char **script_av;
    size_t *script_al;
    int script_cap;
};

static void store_connect(struct store *s);

static void notify_state(struct store *s, bool up)
{
    for (int i = 0; i < s->n_listeners; i++) {
        s->listeners[i].cb(up, s->listeners[i].arg);
    }
}

static void pending_unlink(struct store *s, struct pending *p)
{
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        s->head = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    } else {
        s->tail = p->prev;
    }
    s->n_pending--;
}

/*
 * hiredis calls this for every reply, and with reply NULL for each pending command when the
 * context is freed (disconnect, timeout). It turns both into the store_cb contract.
 */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct pending *p = privdata;
    struct store *s = p->store;
    redisReply *reply = r;
    struct core_err err;

    (void)ac;
    pending_unlink(s, p);
    if (p->cb == NULL) {
        /* fire-and-forget (PUBLISH of a stream chunk): nothing to tell */
    } else if (reply == NULL) {
        core_err_clear(&err);
        core_err_set(&err, CORE_EUNAVAILABLE, NULL, "redis unavailable");
        p->cb(NULL, &err, p->arg);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        core_err_clear(&err);
        core_err_set(&err, CORE_EINTERNAL, NULL, "redis: %.*s", (int)reply->len, reply->str);
        if (strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            /* Someone flushed the script cache: reconnecting loads the scripts again. */
            log_warn("redis lost its scripts; reconnecting", "store=%s", s->name);
            if (s->ac) {
                redisAsyncDisconnect(s->ac);
            }
        }
        p->cb(NULL, &err, p->arg);
    } else {
        p->cb(reply, NULL, p->arg);
    }
    free(p);
}

/* Writes v in decimal at p; returns the end. */
static char *put_size(char *p, size_t v)
{
    char num[24];
    size_t n;

    util_fmt_i64(num, sizeof(num), (int64_t)v);
    n = strlen(num);
    memcpy(p, num, n);
    return p + n;
}

/*
 * The command in RESP (an array of bulk strings), as redisAsyncCommandArgv would write it but
 * without hiredis's format call per argument: on the accept path that formatting was about an
 * eighth of a task's instructions (callgrind). Returns a malloc'd buffer (its length in *len), or
 * NULL.
 */
static char *format_command(int argc, const char **argv, const size_t *lens, size_t *len)
{
    size_t total = 16;
    char *buf, *p;

    for (int i = 0; i < argc; i++) {
        total += 24 + (lens ? lens[i] : strlen(argv[i]));
    }
    buf = malloc(total);
    if (buf == NULL) {
        return NULL;
    }
    p = buf;
    *p++ = '*';
    p = put_size(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        *p++ = '$';
        p = put_size(p, n);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], n);
        p += n;
        *p++ = '\r';
        *p++ = '\n';
    }
    *len = (size_t)(p - buf);
    return buf;
}

static int send_argv(struct store *s, store_cb cb, void *arg, int argc, const char **argv,
                     const size_t *lens)
{
    struct pending *p;
    char *cmd;
    size_t cmd_len;
    int rc;

    if (s->ac == NULL || s->conn == STORE_DOWN) {
        return CORE_EUNAVAILABLE;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return CORE_ENOMEM;
    }
    p->store = s;
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = util_mono_ms() + s->timeout_ms;
    cmd = format_command(argc, argv, lens, &cmd_len);
    if (cmd == NULL) {
        free(p);
        return CORE_ENOMEM;
    }
    rc = redisAsyncFormattedCommand(s->ac, on_reply, p, cmd, cmd_len);
    free(cmd);
    if (rc != REDIS_OK) {
        free(p);
        return CORE_EUNAVAILABLE;
    }
    p->prev = s->tail;
    if (s->tail) {
        s->tail->next = p;
    } else {
        s->head = p;
    }
    s->tail = p;
    s->n_pending++;
    return 0;
}

static void ignore_reply(redisReply *reply, const struct core_err *err, void *arg)
{
    struct store *s = arg;
    if (err) {
        log_warn("redis setup command failed", "store=%s error=\"%s\"", s->name, err->message);
    }
}

static void on_message(redisAsyncContext *ac, void *r, void *privdata)
{
    struct store *s = privdata;
    redisReply *reply = r;

    (void)ac;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
        return;
    }
    if (reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "message") == 0 &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        s->msg_cb(reply->element[2]->str, reply->element[2]->len, s->msg_arg);
    }
}

/*
 * After the TCP connect: AUTH and SELECT if configured, then load every script, all pipelined
 * ahead of any caller's command, so EVALSHA always finds its script.
 */
static void on_connect(const redisAsyncContext *ac, int status)
{
    struct store *s = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context itself after a failed connect. */
        log_warn("redis connect failed", "store=%s error=\"%s\"", s->name, ac->errstr);
        s->ac = NULL;
        s->conn = STORE_DOWN;
        struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
        evtimer_add(s->reconnect, &tv);
        s->backoff_ms =
            s->backoff_ms * 2 > STORE_RECONNECT_MAX_MS ? STORE_RECONNECT_MAX_MS : s->backoff_ms * 2;
        return;
    }
    s->conn = STORE_UP;
    s->backoff_ms = STORE_RECONNECT_MIN_MS;
    log_info("redis connected", "store=%s addr=%s:%d", s->name, s->host, s->port);
    if (s->password) {
        const char *argv[] = {"AUTH", s->password};
        send_argv(s, ignore_reply, s, 2, argv, NULL);
    }
    if (s->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", s->db);
        const char *argv[] = {"SELECT", db};
        send_argv(s, ignore_reply, s, 2, argv, NULL);
    }
    if (s->channel) {
        redisAsyncCommand(s->ac, on_message, s, "SUBSCRIBE %s", s->channel);
    } else {
        for (int i = 0; i < SCRIPT_COUNT; i++) {
            const char *argv[] = {"SCRIPT", "LOAD", scripts_source(s->scripts, i)};
            send_argv(s, ignore_reply, s, 3, argv, NULL);
        }
    }
    notify_state(s, true);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct store *s = ac->data;
    struct timeval tv = {0, STORE_RECONNECT_MIN_MS * 1000};

    if (s->closing) {
        log_debug("redis connection closed", "store=%s", s->name);
    } else {
        log_warn("redis disconnected", "store=%s status=%d", s->name, status);
    }
    s->ac = NULL;
    s->conn = STORE_DOWN;
    if (!evtimer_pending(s->reconnect, NULL)) {
        evtimer_add(s->reconnect, &tv);
    }
    notify_state(s, false);
}

static void store_connect(struct store *s)
{
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);

    if (ac == NULL || ac->err) {
        struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
        log_warn("redis connect failed", "store=%s error=\"%s\"", s->name,
                 ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        evtimer_add(s->reconnect, &tv);
        return;
    }
    ac->data = s;
    s->ac = ac;
    s->conn = STORE_CONNECTING;
    s->connect_deadline_ms = util_mono_ms() + s->timeout_ms;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    (void)fd;
    (void)what;
    if (s->ac == NULL) {
        store_connect(s);
    }
}

/*
 * The watchdog: a connect that takes too long, or an oldest command past its deadline, means
 * the connection is stuck. Freeing the context fails every pending command at once (hiredis
 * calls each callback with NULL) and the disconnect callback schedules the reconnect.
 */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    int64_t now = util_mono_ms();

    (void)fd;
    (void)what;
    if (s->ac == NULL) {
        return;
    }
    if (s->conn == STORE_CONNECTING && now > s->connect_deadline_ms) {
        redisAsyncContext *ac = s->ac;
        struct timeval tv = {0, STORE_RECONNECT_MIN_MS * 1000};
        log_warn("redis connect timed out", "store=%s", s->name);
        s->ac = NULL;
        s->conn = STORE_DOWN;
        redisAsyncFree(ac);
        evtimer_add(s->reconnect, &tv);
        return;
    }
    if (s->conn == STORE_UP && s->head && now > s->head->deadline_ms) {
        log_warn("redis round trip timed out", "store=%s pending=%zu timeout_ms=%ld", s->name,
                 s->n_pending, s->timeout_ms);
        redisAsyncFree(s->ac); /* runs on_reply(NULL) for each, then on_disconnect */
    }
}

struct store *store_new(struct event_base *base, const struct store_opts *opts)
{
    struct store *s = calloc(1, sizeof(*s));
    long tick;
    struct timeval tv;

    if (s == NULL) {
        return NULL;
    }
    s->base = base;
    s->host = strdup(opts->host);
    s->port = opts->port;
    s->db = opts->db;
    s->password = opts->password ? strdup(opts->password) : NULL;
    s->timeout_ms = opts->timeout_ms;
    s->backoff_ms = STORE_RECONNECT_MIN_MS;
    snprintf(s->name, sizeof(s->name), "%s", opts->name ? opts->name : "main");
    if (keyspace_init(&s->keys, opts->key_tag) != 0) {
        log_error("redis.key_tag is not a valid tag", "store=%s", s->name);
        store_free(s);
        return NULL;
    }
    s->scripts = scripts_new(&s->keys);
    s->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, s);
    s->reconnect = evtimer_new(base, on_reconnect_timer, s);
    if (s->host == NULL || s->scripts == NULL || s->watchdog == NULL || s->reconnect == NULL) {
        store_free(s);
        return NULL;
    }
    tick = s->timeout_ms / 4;
    tick = tick < 10 ? 10 : tick > 250 ? 250 : tick;
    tv.tv_sec = tick / 1000;
    tv.tv_usec = (tick % 1000) * 1000;
    event_add(s->watchdog, &tv);
    store_connect(s);
    return s;
}

void store_free(struct store *s)
{
    if (s == NULL) {
        return;
    }
    s->n_listeners = 0; /* nobody is told about the disconnect we cause */
    s->closing = true;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        redisAsyncFree(ac);
        s->ac = NULL;
    }
    if (s->watchdog) {
        event_free(s->watchdog);
    }
    if (s->reconnect) {
        event_free(s->reconnect);
    }
    free(s->host);
    free(s->password);
    free(s->channel);
    free(s->script_av);
    free(s->script_al);
    scripts_free(s->scripts);
    free(s);
}

const struct keyspace *store_keys(const struct store *s)
{
    return &s->keys;
}

void store_on_state(struct store *s, store_state_cb cb, void *arg)
{
    if (s->n_listeners < STORE_MAX_LISTENERS) {
        s->listeners[s->n_listeners].cb = cb;
        s->listeners[s->n_listeners].arg = arg;
        s->n_listeners++;
    }
}

bool store_ready(const struct store *s)
{
    return s->ac != NULL && s->conn == STORE_UP;
}

size_t store_pending(const struct store *s)
{
    return s->n_pending;
}

int store_command(struct store *s, store_cb cb, void *arg, int argc, const char **argv,
                  const size_t *lens)
{
    if (!store_ready(s)) {
        return CORE_EUNAVAILABLE;
    }
    return send_argv(s, cb, arg, argc, argv, lens);
}

int store_script(struct store *s, enum script_id id, store_cb cb, void *arg, int nkeys, int argc,
                 const char **argv, const size_t *lens)
{
    const char *stack_argv[STORE_STACK_ARGS + 3];
    size_t stack_lens[STORE_STACK_ARGS + 3];
    const char **av = stack_argv;
    size_t *al = stack_lens;
    char nk[16];

    if (!store_ready(s)) {
        return CORE_EUNAVAILABLE;
    }
    if (argc > STORE_STACK_ARGS) {
        if (argc + 3 > s->script_cap) {
            const char **nav = realloc(s->script_av, sizeof(*nav) * (size_t)(argc + 3));
            size_t *nal;
            if (nav == NULL) {
                return CORE_ENOMEM;
            }
            s->script_av = nav;
            nal = realloc(s->script_al, sizeof(*nal) * (size_t)(argc + 3));
            if (nal == NULL) {
                return CORE_ENOMEM;
            }
            s->script_al = nal;
            s->script_cap = argc + 3;
        }
        av = s->script_av;
        al = s->script_al;
    }
    util_fmt_i64(nk, sizeof(nk), nkeys);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = scripts_sha(s->scripts, id);
    al[1] = 40;
    av[2] = nk;
    al[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
    return send_argv(s, cb, arg, argc + 3, av, al);
}

int store_subscribe(struct store *s, const char *channel, store_msg_cb cb, void *arg)
{
    free(s->channel);
    s->channel = strdup(channel);
    if (s->channel == NULL) {
        return CORE_ENOMEM;
    }
    s->msg_cb = cb;
    s->msg_arg = arg;
    if (store_ready(s)) {
        redisAsyncCommand(s->ac, on_message, s, "SUBSCRIBE %s", s->channel);
    }
    return 0;
}
