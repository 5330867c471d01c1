/*
 * core/txn_worker.c — CLAIM, EXTEND and FINISH's C side (core/txn_worker.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/txn_worker.h"
#include "core/util.h"

#define CLAIM_HEADER 2 /* CLAIM's reply: wait ms, the aliases missing their routing, then units */
#define CLAIM_UNIT 16  /* fields per claimed unit */

/* ---- names ------------------------------------------------------------------------------- */

static const char *const outcome_names[TXN_OUTCOME_COUNT] = {"completed", "failed", "retry",
                                                             "release", "park"};
static const char *const applied_names[TXN_APPLIED_UNKNOWN] = {
    "completed", "failed", "retry", "release", "park", "cancelled", "expired", "stale"};
static const char *const class_names[] = {"ok", "fail", "rate", "client", "none"};
static const char *const mode_names[] = {"call", "poll"};
static const char *const lease_names[TXN_LEASE_UNKNOWN] = {"ok", "cancelling", "lost"};
static const char *const detail_names[TXN_DETAIL_COUNT] = {"", "incomplete"};

#define NAMES(t) (sizeof(t) / sizeof((t)[0]))

static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "";
}

static int index_of(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name != NULL && i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *txn_outcome_name(enum txn_outcome_kind o)
{
    return name_of(outcome_names, NAMES(outcome_names), (int)o);
}

int txn_outcome_parse(const char *name)
{
    return index_of(outcome_names, NAMES(outcome_names), name);
}

const char *txn_applied_name(enum txn_applied a)
{
    return name_of(applied_names, NAMES(applied_names), (int)a);
}

int txn_applied_parse(const char *name)
{
    return index_of(applied_names, NAMES(applied_names), name);
}

const char *txn_class_name(enum txn_class c)
{
    return name_of(class_names, NAMES(class_names), (int)c);
}

int txn_class_parse(const char *name)
{
    return index_of(class_names, NAMES(class_names), name);
}

const char *txn_mode_name(enum txn_mode m)
{
    return name_of(mode_names, NAMES(mode_names), (int)m);
}

int txn_mode_parse(const char *name)
{
    return index_of(mode_names, NAMES(mode_names), name);
}

const char *txn_lease_name(enum txn_lease l)
{
    return name_of(lease_names, NAMES(lease_names), (int)l);
}

int txn_lease_parse(const char *name)
{
    return index_of(lease_names, NAMES(lease_names), name);
}

const char *txn_detail_name(enum txn_detail d)
{
    return name_of(detail_names, NAMES(detail_names), (int)d);
}

int txn_detail_parse(const char *name)
{
    return index_of(detail_names, NAMES(detail_names), name);
}

/* ---- shared ------------------------------------------------------------------------------ */

/* r's text when it is a string, else "" (a field the script left out). */
static const char *str_or_empty(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? r->str : "";
}

/*
 * ms >= 0 with three decimals ("12.345") into buf, without printf's floating-point path (it was
 * visible in a worker's profile: twice per attempt, the latency argument and the attempt record).
 */
static void fmt_ms3(char *buf, size_t size, double ms)
{
    int64_t us = llround(ms * 1000.0);
    char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10), '\0'};

    if (util_fmt_i64(buf, size, us / 1000) == 0 && strlen(buf) + sizeof(frac) <= size) {
        memcpy(buf + strlen(buf), frac, sizeof(frac));
    }
}

/* ---- CLAIM ------------------------------------------------------------------------------- */

/*
 * KEYS: leases, polls. ARGV: now, lease ms, n, seed, burst ms, pace, the no-route error JSON,
 * retention ms — the order of core/lua/claim.lua's first lines.
 */
int txn_claim_build(struct txn_args *a, const struct keyspace *ks, const struct txn_claim *p)
{
    char pace[32];

    txn_args_reset(a);
    txn_arg_key(a, ks, KS_LEASES, NULL);
    txn_arg_key(a, ks, KS_POLLS, NULL);
    a->nkeys = 2;
    txn_arg_i64(a, p->now_ms);
    txn_arg_i64(a, p->lease_ms);
    txn_arg_i64(a, p->max_units);
    txn_arg_i64(a, p->seed);
    txn_arg_i64(a, p->burst_ms);
    snprintf(pace, sizeof(pace), "%.3f", p->pace);
    txn_arg_copy(a, pace);
    txn_arg(a, p->no_route_error);
    txn_arg_i64(a, p->retention_ms);
    return a->oom ? CORE_ENOMEM : 0;
}

/* {wait_ms, missing aliases csv, then CLAIM_UNIT fields per unit}. */
int txn_claim_parse(const redisReply *reply, struct txn_claim_reply *out)
{
    memset(out, 0, sizeof(*out));
    out->wait_ms = -1;
    out->missing_routing = "";
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return -1;
    }
    if (reply->element[0]->type == REDIS_REPLY_INTEGER) {
        out->wait_ms = reply->element[0]->integer;
    }
    if (reply->elements >= CLAIM_HEADER) {
        out->missing_routing = str_or_empty(reply->element[1]);
        out->n_units = (reply->elements - CLAIM_HEADER) / CLAIM_UNIT;
    }
    out->reply = reply;
    return 0;
}

/*
 * The unit's fields: id, fence, attempts, max_attempts, tenant, model, kind, input, mode, status,
 * up_id, job, dep, stream, reply_to (claim.lua's put).
 */
int txn_claim_unit(const struct txn_claim_reply *r, size_t i, struct txn_claimed *u)
{
    redisReply **f;
    const char *fence;
    char *end;
    int kind;

    memset(u, 0, sizeof(*u));
    u->id = "?";
    if (r->reply == NULL || i >= r->n_units) {
        return -1;
    }
    f = &r->reply->element[CLAIM_HEADER + i * CLAIM_UNIT];
    if (f[0]->type != REDIS_REPLY_STRING || f[1]->type != REDIS_REPLY_STRING) {
        return -1;
    }
    u->id = f[0]->str;
    fence = f[1]->str;
    u->fence = strtoll(fence, &end, 10);
    if (end == fence || *end != '\0') {
        return -1;
    }
    u->attempts = f[2]->type == REDIS_REPLY_STRING ? atoi(f[2]->str) : 0;
    u->max_attempts = f[3]->type == REDIS_REPLY_STRING ? atoi(f[3]->str) : 1;
    u->tenant = str_or_empty(f[4]);
    u->model = str_or_empty(f[5]);
    kind = task_kind_parse(str_or_empty(f[6]));
    u->kind = kind < 0 ? TASK_KIND_COUNT : (enum task_kind)kind;
    u->input = str_or_empty(f[7]);
    u->mode = txn_mode_parse(str_or_empty(f[8])) == TXN_MODE_POLL ? TXN_MODE_POLL : TXN_MODE_CALL;
    u->cancelling = strcmp(str_or_empty(f[9]), "cancelling") == 0;
    u->up_id = str_or_empty(f[10]);
    u->job = str_or_empty(f[11]);
    u->dep = f[12]->type == REDIS_REPLY_STRING ? atoi(f[12]->str) : 0;
    u->stream = strcmp(str_or_empty(f[13]), "1") == 0;
    u->reply_to = str_or_empty(f[14]);
    u->created_ms = strtoll(str_or_empty(f[15]), NULL, 10);
    return 0;
}

static void deliver_claim(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                          int extra)
{
    struct txn_claim_reply r;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_claim_parse(reply, &r) < 0) {
        err = txn_bad_reply(&bad, "CLAIM");
    }
    ((txn_claim_cb)cb)(err ? NULL : &r, err, arg);
}

int txn_claim(struct store *s, struct txn_args *a, const struct txn_claim *p, txn_claim_cb cb,
              void *arg)
{
    int rc = txn_claim_build(a, store_keys(s), p);

    return rc < 0 ? rc : txn_call(s, SCRIPT_CLAIM, a, deliver_claim, (txn_fn)cb, arg, 0);
}

/* ---- EXTEND ------------------------------------------------------------------------------ */

/*
 * KEYS: leases. ARGV: the new deadline, the task key prefix, then id, fence per attempt — the
 * order of core/lua/extend.lua's first lines.
 */
int txn_extend_build(struct txn_args *a, const struct keyspace *ks, int64_t deadline_ms,
                     const struct txn_held *held, size_t n)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_LEASES, NULL);
    a->nkeys = 1;
    txn_arg_i64(a, deadline_ms);
    txn_arg_key(a, ks, KS_TASK, NULL);
    for (size_t i = 0; i < n; i++) {
        txn_arg(a, held[i].id);
        txn_arg_i64(a, held[i].fence);
    }
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_extend_parse(const redisReply *reply, enum txn_lease *out, size_t n)
{
    bool list = reply != NULL && reply->type == REDIS_REPLY_ARRAY;

    for (size_t i = 0; i < n; i++) {
        int l = -1;
        if (list && i < reply->elements && reply->element[i]->type == REDIS_REPLY_STRING) {
            l = txn_lease_parse(reply->element[i]->str);
        }
        out[i] = l < 0 ? TXN_LEASE_UNKNOWN : (enum txn_lease)l;
    }
    return list ? 0 : -1;
}

/* The caller's callback and the room for the answers, carried through the store to the reply. */
struct extend_call {
    txn_extend_cb cb;
    void *arg;
    size_t n;
    enum txn_lease leases[];
};

static void on_extend_reply(redisReply *reply, const struct core_err *err, void *arg)
{
    struct extend_call *call = arg;

    if (err != NULL) {
        call->cb(NULL, call->n, err, call->arg);
    } else {
        txn_extend_parse(reply, call->leases, call->n);
        call->cb(call->leases, call->n, NULL, call->arg);
    }
    free(call);
}

int txn_extend(struct store *s, struct txn_args *a, int64_t deadline_ms,
               const struct txn_held *held, size_t n, txn_extend_cb cb, void *arg)
{
    struct extend_call *call;
    int rc = txn_extend_build(a, store_keys(s), deadline_ms, held, n);

    if (rc < 0) {
        return rc;
    }
    call = malloc(sizeof(*call) + n * sizeof(call->leases[0]));
    if (call == NULL) {
        return CORE_ENOMEM;
    }
    call->cb = cb;
    call->arg = arg;
    call->n = n;
    rc = txn_send(s, SCRIPT_EXTEND, a, on_extend_reply, call);
    if (rc < 0) {
        free(call);
    }
    return rc;
}

/* ---- FINISH ------------------------------------------------------------------------------ */

/*
 * The attempt record's JSON (txn_worker.h says its fields), or NULL when it cannot be rendered
 * (out of memory: the outcome is still written, without its record, as before this layer).
 * Caller frees with cJSON_free.
 */
static char *attempt_json(const struct txn_finish *h, const struct txn_outcome *o)
{
    const struct txn_attempt *at = o->attempt;
    cJSON *a = cJSON_CreateObject();
    char *s;

    if (a == NULL) {
        return NULL;
    }
    cJSON_AddNumberToObject(a, "attempt", at->attempt);
    cJSON_AddNumberToObject(a, "deployment", at->deployment);
    cJSON_AddStringToObject(a, "provider", at->provider ? at->provider : "");
    cJSON_AddStringToObject(a, "model", at->model ? at->model : "");
    if (o->http_status > 0) {
        cJSON_AddNumberToObject(a, "status", o->http_status);
    } else {
        cJSON_AddNullToObject(a, "status");
    }
    if (o->latency_ms >= 0) {
        /* fixed 3 decimals: cJSON's general double printing (with its parse-back check) was a
           visible part of a worker's time per task */
        char lat[32];
        fmt_ms3(lat, sizeof(lat), o->latency_ms);
        cJSON_AddRawToObject(a, "latency_ms", lat);
    } else {
        cJSON_AddNullToObject(a, "latency_ms");
    }
    cJSON_AddStringToObject(a, "outcome", txn_outcome_name(o->outcome));
    if (at->err_message != NULL && at->err_message[0] != '\0') {
        cJSON *e = cJSON_AddObjectToObject(a, "error");
        cJSON_AddStringToObject(e, "code", at->err_code ? at->err_code : "");
        cJSON_AddStringToObject(e, "message", at->err_message);
    } else {
        cJSON_AddNullToObject(a, "error");
    }
    cJSON_AddNumberToObject(a, "at", (double)(h->now_ms / 1000));
    s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

/*
 * One outcome's FINISH_GROUP arguments, in the order finish.lua's each_outcome names them: task
 * key, id, fence, outcome, result, usage, provider, cost, error, retry at, up_id, job, progress,
 * queue_position, poll at, artifacts, took a slot, latency ms, class, pause until, remaining
 * requests, remaining tokens, tokens used, http status, avoid, attempt record, wake on slot,
 * detail.
 */
static void add_outcome(struct txn_args *a, const struct keyspace *ks, const struct txn_finish *h,
                        const struct txn_outcome *o)
{
    char lat[32];
    char *attempt = o->attempt ? attempt_json(h, o) : NULL;

    txn_arg_key(a, ks, KS_TASK, o->id);
    txn_arg(a, o->id);
    txn_arg_i64(a, o->fence);
    txn_arg(a, txn_outcome_name(o->outcome));
    txn_arg(a, o->result);
    txn_arg(a, o->usage);
    txn_arg(a, o->provider);
    txn_arg(a, o->cost);
    txn_arg(a, o->error);
    txn_arg_i64(a, o->retry_at_ms);
    txn_arg(a, o->up_id);
    txn_arg(a, o->job);
    txn_arg_i64_if(a, o->progress, o->progress >= 0);
    txn_arg_i64_if(a, o->queue_position, o->queue_position >= 0);
    txn_arg_i64(a, o->poll_at_ms);
    txn_arg(a, o->artifacts);
    txn_arg(a, o->took_slot ? "1" : "0");
    if (o->latency_ms >= 0) {
        fmt_ms3(lat, sizeof(lat), o->latency_ms);
        txn_arg_copy(a, lat);
    } else {
        txn_arg(a, "");
    }
    txn_arg(a, txn_class_name(o->class));
    txn_arg_i64_if(a, o->pause_until_ms, o->pause_until_ms > 0);
    txn_arg_i64_if(a, o->remaining_requests, o->remaining_requests >= 0);
    txn_arg_i64_if(a, o->remaining_tokens, o->remaining_tokens >= 0);
    txn_arg_i64_if(a, o->tokens_used, o->tokens_used >= 0);
    txn_arg_i64_if(a, o->http_status, o->http_status > 0);
    txn_arg(a, o->avoid ? "1" : "0");
    txn_arg_copy(a, attempt);
    txn_arg(a, o->wake_on_slot ? "1" : "0");
    txn_arg(a, txn_detail_name(o->detail));
    cJSON_free(attempt);
}

/*
 * KEYS: leases, delayed, polls. ARGV: now, retention ms, the wake channel, the breaker's min
 * requests, failure % and window ms (FINISH_HEADER), then FINISH_GROUP per outcome — the order
 * of core/lua/finish.lua's first lines. A group that is not FINISH_GROUP long (the layout here
 * out of step with the one spliced into the script) refuses the whole call.
 */
int txn_finish_build(struct txn_args *a, const struct keyspace *ks, const struct txn_finish *h,
                     const struct txn_outcome *o, size_t n)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_LEASES, NULL);
    txn_arg_key(a, ks, KS_DELAYED, NULL);
    txn_arg_key(a, ks, KS_POLLS, NULL);
    a->nkeys = 3;
    txn_arg_i64(a, h->now_ms);
    txn_arg_i64(a, h->retention_ms);
    txn_arg_key(a, ks, KS_CHANNEL_WAKE, NULL);
    txn_arg_i64(a, h->breaker_min_requests);
    txn_arg_i64(a, h->breaker_failure_pct);
    txn_arg_i64(a, h->breaker_window_ms);
    if (!a->oom && a->n != a->nkeys + FINISH_HEADER) {
        return CORE_EINTERNAL;
    }
    for (size_t i = 0; i < n; i++) {
        int before = a->n;
        add_outcome(a, ks, h, &o[i]);
        if (!a->oom && a->n - before != FINISH_GROUP) {
            return CORE_EINTERNAL;
        }
    }
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_finish_parse(const redisReply *reply, enum txn_applied *out, size_t n)
{
    bool list = reply != NULL && reply->type == REDIS_REPLY_ARRAY;

    for (size_t i = 0; i < n; i++) {
        int v = -1;
        if (list && i < reply->elements && reply->element[i]->type == REDIS_REPLY_STRING) {
            v = txn_applied_parse(reply->element[i]->str);
        }
        out[i] = v < 0 ? TXN_APPLIED_UNKNOWN : (enum txn_applied)v;
    }
    return list ? 0 : -1;
}

/* The caller's callback and the room for the answers, carried through the store to the reply. */
struct finish_call {
    txn_finish_cb cb;
    void *arg;
    size_t n;
    enum txn_applied applied[];
};

static void on_finish_reply(redisReply *reply, const struct core_err *err, void *arg)
{
    struct finish_call *call = arg;

    if (err != NULL) {
        call->cb(NULL, call->n, err, call->arg);
    } else {
        txn_finish_parse(reply, call->applied, call->n);
        call->cb(call->applied, call->n, NULL, call->arg);
    }
    free(call);
}

int txn_finish(struct store *s, struct txn_args *a, const struct txn_finish *h,
               const struct txn_outcome *o, size_t n, txn_finish_cb cb, void *arg)
{
    struct finish_call *call;
    int rc = txn_finish_build(a, store_keys(s), h, o, n);

    if (rc < 0) {
        return rc;
    }
    call = malloc(sizeof(*call) + n * sizeof(call->applied[0]));
    if (call == NULL) {
        return CORE_ENOMEM;
    }
    call->cb = cb;
    call->arg = arg;
    call->n = n;
    rc = txn_send(s, SCRIPT_FINISH, a, on_finish_reply, call);
    if (rc < 0) {
        free(call);
    }
    return rc;
}
