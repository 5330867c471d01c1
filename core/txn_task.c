/*
 * core/txn_task.c — the C side of SUBMIT, GET, LIST, CANCEL, DELETE and METRICS
 * (core/txn_task.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/txn_task.h"

static bool is_word(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_STRING && strcmp(r->str, word) == 0;
}

static bool is_type(const redisReply *r, size_t i, int type)
{
    return i < r->elements && r->element[i]->type == type;
}

/* A reply field Lua wrote as a number or as text (HMGET's values are text). */
static int64_t as_i64(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : r->integer;
}

/* ---- SUBMIT ---------------------------------------------------------------------------------- */

/* ARGV 1: the wake channel (a queue that was empty wakes the idle workers). No KEYS. */
void txn_submit_begin(struct txn_args *a, const struct keyspace *ks)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_CHANNEL_WAKE, NULL);
    a->nkeys = 0;
}

/*
 * SUBMIT_GROUP arguments in submit_one's order (core/lua/submit.lua): task key, tenant index key,
 * idempotency key, id, tenant, kind, model, priority, now, max_attempts, input, metadata, use
 * idempotency, body sha256, idempotency ttl, reply_to, stream, deadline, estimated tokens, routing,
 * queued quota, webhook, batch id, custom_id, stored-bytes quota, artifact-bytes quota, pipeline
 * id, step id, cache ("" none), key id ("" none). Without an
 * Idempotency-Key the idempotency key is "<tenant>:-" and the body hash "" (neither is read).
 */
int txn_submit_add(struct txn_args *a, const struct keyspace *ks, const struct txn_submit *t)
{
    const char *h = t->idem_hash ? t->idem_hash : "-";
    size_t tl = strlen(t->tenant), hl = strlen(h);
    char idem[320]; /* "<tenant>:<hash>", joined by hand: this runs once per task */
    int n0 = a->n;

    if (tl + 1 + hl >= sizeof(idem)) {
        a->oom = 1; /* a call that must not be sent */
        return CORE_EINVAL;
    }
    memcpy(idem, t->tenant, tl);
    idem[tl] = ':';
    memcpy(idem + tl + 1, h, hl + 1);
    txn_arg_key(a, ks, KS_TASK, t->id);
    txn_arg_key(a, ks, KS_TENANT, t->tenant);
    txn_arg_key(a, ks, KS_IDEM, idem);
    txn_arg(a, t->id);
    txn_arg(a, t->tenant);
    txn_arg(a, task_kind_name(t->kind));
    txn_arg(a, t->model);
    txn_arg_i64(a, t->prio);
    txn_arg_i64(a, t->now_ms);
    txn_arg_i64(a, t->max_attempts);
    txn_arg(a, t->input);
    txn_arg(a, t->metadata);
    txn_arg_len(a, t->idem_hash ? "1" : "0", 1);
    txn_arg(a, t->idem_hash ? t->body_hash : NULL);
    txn_arg_i64(a, t->idem_ttl_ms);
    txn_arg(a, t->reply_to);
    txn_arg_len(a, t->stream ? "1" : "0", 1);
    txn_arg_i64_if(a, t->deadline_ms, t->deadline_ms > 0);
    txn_arg_i64(a, t->est_tokens);
    txn_arg(a, t->routing);
    txn_arg_i64(a, t->max_queued);
    txn_arg(a, t->webhook);
    txn_arg(a, t->batch_id);
    txn_arg(a, t->custom_id);
    txn_arg_i64(a, t->max_stored_bytes);
    txn_arg_i64(a, t->max_artifact_bytes);
    txn_arg(a, t->pipeline_id);
    txn_arg(a, t->pipeline_id ? t->step : NULL);
    txn_arg(a, t->cache);
    txn_arg(a, t->key_id);
    if (!a->oom && a->n - n0 != SUBMIT_GROUP) {
        a->oom = 1; /* this builder and core/scripts.h's SUBMIT_GROUP disagree: never send it */
        return CORE_EINTERNAL;
    }
    return a->oom ? CORE_ENOMEM : 0;
}

size_t txn_submit_count(const struct txn_args *a)
{
    return a->n > SUBMIT_HEADER ? (size_t)(a->n - SUBMIT_HEADER) / SUBMIT_GROUP : 0;
}

/* The answer words, in enum txn_submit_result's order. */
static const char *const submit_words[] = {
    [TXN_SUBMIT_OK] = "ok",
    [TXN_SUBMIT_DUP] = "dup",
    [TXN_SUBMIT_CONFLICT] = "conflict",
    [TXN_SUBMIT_QUOTA] = "quota",
    [TXN_SUBMIT_STORAGE] = "storage",
    [TXN_SUBMIT_ARTIFACTS] = "artifacts",
    [TXN_SUBMIT_BUDGET] = "budget",
};

/* {"ok"} | {"dup", id, hash} | {"conflict"} | {"quota"|"storage"|"artifacts"|"budget", number}. */
static int submitted_parse(const redisReply *r, struct txn_submitted *out)
{
    size_t k = 0;

    memset(out, 0, sizeof(*out));
    if (r->type != REDIS_REPLY_ARRAY || !is_type(r, 0, REDIS_REPLY_STRING)) {
        return -1;
    }
    while (k < sizeof(submit_words) / sizeof(submit_words[0]) &&
           !is_word(r->element[0], submit_words[k])) {
        k++;
    }
    if (k == sizeof(submit_words) / sizeof(submit_words[0])) {
        return -1;
    }
    out->result = (enum txn_submit_result)k;
    if (out->result == TXN_SUBMIT_DUP) {
        if (!is_type(r, 1, REDIS_REPLY_STRING) || !is_type(r, 2, REDIS_REPLY_ARRAY)) {
            return -1;
        }
        out->dup_id = r->element[1]->str;
        out->dup_hash = r->element[2];
    } else if (out->result != TXN_SUBMIT_OK && out->result != TXN_SUBMIT_CONFLICT) {
        if (!is_type(r, 1, REDIS_REPLY_INTEGER)) {
            return -1;
        }
        out->count = r->element[1]->integer;
    }
    return 0;
}

int txn_submit_parse(const redisReply *reply, size_t n, struct txn_submitted *out)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (submitted_parse(reply->element[i], &out[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

static void on_submit_reply(redisReply *reply, const struct core_err *err, void *arg)
{
    struct txn_submit_call *call = arg;
    struct txn_submitted res[TXN_SUBMIT_MAX];
    struct core_err bad;

    if (err != NULL) {
        call->cb(NULL, call->n, err, call->arg);
    } else if (txn_submit_parse(reply, call->n, res) < 0) {
        call->cb(NULL, call->n, txn_bad_reply(&bad, "SUBMIT"), call->arg);
    } else {
        call->cb(res, call->n, NULL, call->arg);
    }
}

int txn_submit(struct store *s, const struct txn_args *a, struct txn_submit_call *call,
               txn_submit_cb cb, void *arg)
{
    size_t n = txn_submit_count(a);

    if (n == 0 || n > TXN_SUBMIT_MAX) {
        return CORE_EINVAL;
    }
    call->cb = cb;
    call->arg = arg;
    call->n = n;
    return txn_send(s, SCRIPT_SUBMIT, a, on_submit_reply, call);
}

/* ---- GET ----------------------------------------------------------------------------------- */

/* KEYS: the task. ARGV: its id. */
int txn_get_build(struct txn_args *a, const struct keyspace *ks, const char *id)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_TASK, id);
    a->nkeys = 1;
    txn_arg(a, id);
    return a->oom ? CORE_ENOMEM : 0;
}

/* {hash, queue_position, eta_seconds}. */
int txn_get_parse(const redisReply *reply, struct txn_got *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        !is_type(reply, 0, REDIS_REPLY_ARRAY) || !is_type(reply, 1, REDIS_REPLY_INTEGER) ||
        !is_type(reply, 2, REDIS_REPLY_INTEGER)) {
        return -1;
    }
    out->hash = reply->element[0];
    out->queue_position = reply->element[1]->integer;
    out->eta_s = reply->element[2]->integer;
    return 0;
}

static void deliver_get(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                        int extra)
{
    struct txn_got t;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_get_parse(reply, &t) < 0) {
        err = txn_bad_reply(&bad, "GET");
    }
    ((txn_get_cb)cb)(err ? NULL : &t, err, arg);
}

int txn_get(struct store *s, struct txn_args *a, const char *id, txn_get_cb cb, void *arg)
{
    txn_get_build(a, store_keys(s), id);
    return a->oom ? CORE_ENOMEM : txn_call(s, SCRIPT_GET, a, deliver_get, (txn_fn)cb, arg, 0);
}

/* ---- LIST ---------------------------------------------------------------------------------- */

/* KEYS: the tenant's index. ARGV: after ("" first page), limit, status ("" any), task key prefix,
 * scan cap. */
int txn_list_build(struct txn_args *a, const struct keyspace *ks, const struct txn_list *p)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_TENANT, p->tenant);
    a->nkeys = 1;
    txn_arg(a, p->after);
    txn_arg_i64(a, p->limit);
    txn_arg(a, p->by_status ? task_status_name(p->status) : NULL);
    txn_arg_key(a, ks, KS_TASK, NULL);
    txn_arg_i64(a, p->scan_cap);
    return a->oom ? CORE_ENOMEM : 0;
}

/* {"ok", has_more, cursor, id, hash, id, hash, ...} | {"badcursor"}. */
int txn_list_parse(const redisReply *reply, struct txn_listed *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return -1;
    }
    if (is_word(reply->element[0], "badcursor")) {
        out->bad_cursor = true;
        return 0;
    }
    if (!is_word(reply->element[0], "ok") || !is_type(reply, 1, REDIS_REPLY_INTEGER) ||
        !is_type(reply, 2, REDIS_REPLY_STRING) || (reply->elements - 3) % 2 != 0) {
        return -1;
    }
    for (size_t i = 3; i < reply->elements; i += 2) {
        if (!is_type(reply, i, REDIS_REPLY_STRING) || !is_type(reply, i + 1, REDIS_REPLY_ARRAY)) {
            return -1;
        }
    }
    out->has_more = reply->element[1]->integer != 0;
    out->cursor = reply->element[2]->str;
    out->n = (reply->elements - 3) / 2;
    out->reply = reply;
    return 0;
}

void txn_listed_task(const struct txn_listed *l, size_t i, const char **id, const redisReply **hash)
{
    *id = l->reply->element[3 + 2 * i]->str;
    *hash = l->reply->element[4 + 2 * i];
}

static void deliver_list(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                         int extra)
{
    struct txn_listed l;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_list_parse(reply, &l) < 0) {
        err = txn_bad_reply(&bad, "LIST");
    }
    ((txn_list_cb)cb)(err ? NULL : &l, err, arg);
}

int txn_list(struct store *s, struct txn_args *a, const struct txn_list *p, txn_list_cb cb,
             void *arg)
{
    txn_list_build(a, store_keys(s), p);
    return a->oom ? CORE_ENOMEM : txn_call(s, SCRIPT_LIST, a, deliver_list, (txn_fn)cb, arg, 0);
}

/* ---- CANCEL -------------------------------------------------------------------------------- */

/* KEYS: the task, delayed, polls. ARGV: id, tenant, now, retention. */
int txn_cancel_build(struct txn_args *a, const struct keyspace *ks, const struct txn_cancel *p)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_TASK, p->id);
    txn_arg_key(a, ks, KS_DELAYED, NULL);
    txn_arg_key(a, ks, KS_POLLS, NULL);
    a->nkeys = 3;
    txn_arg(a, p->id);
    txn_arg(a, p->tenant);
    txn_arg_i64(a, p->now_ms);
    txn_arg_i64(a, p->retention_ms);
    return a->oom ? CORE_ENOMEM : 0;
}

/*
 * {"ok", hash} | {"notfound"} | {"conflict", hash}. "ok" is cancelled or cancelling, as the hash
 * says: a queued task is cancelled at once, one in progress (or already cancelling) is left to its
 * worker.
 */
int txn_cancel_parse(const redisReply *reply, struct txn_cancelled *out)
{
    int status;

    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return -1;
    }
    if (is_word(reply->element[0], "notfound")) {
        out->result = TXN_CANCEL_NOTFOUND;
        return 0;
    }
    if (!is_type(reply, 1, REDIS_REPLY_ARRAY)) {
        return -1;
    }
    out->hash = reply->element[1];
    status = task_status_parse(task_hash_get(out->hash, "status"));
    if (status < 0) {
        return -1;
    }
    out->status = (enum task_status)status;
    if (is_word(reply->element[0], "conflict")) {
        out->result = TXN_CANCEL_CONFLICT;
    } else if (is_word(reply->element[0], "ok") && status == TASK_CANCELLED) {
        out->result = TXN_CANCEL_CANCELLED;
    } else if (is_word(reply->element[0], "ok") && status == TASK_CANCELLING) {
        out->result = TXN_CANCEL_CANCELLING;
    } else {
        return -1;
    }
    return 0;
}

static void deliver_cancel(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                           int extra)
{
    struct txn_cancelled c;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_cancel_parse(reply, &c) < 0) {
        err = txn_bad_reply(&bad, "CANCEL");
    }
    ((txn_cancel_cb)cb)(err ? NULL : &c, err, arg);
}

int txn_cancel(struct store *s, struct txn_args *a, const struct txn_cancel *p, txn_cancel_cb cb,
               void *arg)
{
    txn_cancel_build(a, store_keys(s), p);
    return a->oom ? CORE_ENOMEM : txn_call(s, SCRIPT_CANCEL, a, deliver_cancel, (txn_fn)cb, arg, 0);
}

/* ---- DELETE -------------------------------------------------------------------------------- */

/* KEYS: the task, the tenant's index, the task's events list, expiry. ARGV: id, tenant. */
int txn_delete_build(struct txn_args *a, const struct keyspace *ks, const struct txn_delete *p)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_TASK, p->id);
    txn_arg_key(a, ks, KS_TENANT, p->tenant);
    txn_arg_key(a, ks, KS_EVENTS, p->id);
    txn_arg_key(a, ks, KS_EXPIRY, NULL);
    a->nkeys = 4;
    txn_arg(a, p->id);
    txn_arg(a, p->tenant);
    return a->oom ? CORE_ENOMEM : 0;
}

/* {"deleted"} | {"notfound"} | {"conflict", status}. */
int txn_delete_parse(const redisReply *reply, struct txn_deleted *out)
{
    int status;

    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return -1;
    }
    if (is_word(reply->element[0], "deleted")) {
        out->result = TXN_DELETE_DELETED;
        return 0;
    }
    if (is_word(reply->element[0], "notfound")) {
        out->result = TXN_DELETE_NOTFOUND;
        return 0;
    }
    if (!is_word(reply->element[0], "conflict") || !is_type(reply, 1, REDIS_REPLY_STRING) ||
        (status = task_status_parse(reply->element[1]->str)) < 0) {
        return -1;
    }
    out->result = TXN_DELETE_CONFLICT;
    out->status = (enum task_status)status;
    return 0;
}

static void deliver_delete(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                           int extra)
{
    struct txn_deleted d;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_delete_parse(reply, &d) < 0) {
        err = txn_bad_reply(&bad, "DELETE");
    }
    ((txn_delete_cb)cb)(err ? NULL : &d, err, arg);
}

int txn_delete(struct store *s, struct txn_args *a, const struct txn_delete *p, txn_delete_cb cb,
               void *arg)
{
    txn_delete_build(a, store_keys(s), p);
    return a->oom ? CORE_ENOMEM : txn_call(s, SCRIPT_DELETE, a, deliver_delete, (txn_fn)cb, arg, 0);
}

/* ---- METRICS ------------------------------------------------------------------------------- */

/* No KEYS (the script names its keys from the keyspace it was rendered for). */
void txn_metrics_begin(struct txn_args *a)
{
    txn_args_reset(a);
    a->nkeys = 0;
}

/* ARGV: pairs of alias, number of deployments. */
void txn_metrics_add(struct txn_args *a, const char *alias, size_t n_deployments)
{
    txn_arg(a, alias);
    txn_arg_i64(a, (int64_t)n_deployments);
}

/* {alias, index, rt, tt, inf, br, pause, lat}: the fields a string or (inf, pause) a number. */
static bool dep_ok(const redisReply *d)
{
    if (d->type != REDIS_REPLY_ARRAY || d->elements != 8) {
        return false;
    }
    for (size_t i = 0; i < 8; i++) {
        if (d->element[i]->type != REDIS_REPLY_STRING &&
            !((i == 4 || i == 6) && d->element[i]->type == REDIS_REPLY_INTEGER)) {
            return false;
        }
    }
    return true;
}

/* {stats hash, {deployment...}, delayed, leased, parked}. */
int txn_metrics_parse(const redisReply *reply, struct txn_metrics *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 6 ||
        !is_type(reply, 0, REDIS_REPLY_ARRAY) || !is_type(reply, 1, REDIS_REPLY_ARRAY) ||
        !is_type(reply, 2, REDIS_REPLY_INTEGER) || !is_type(reply, 3, REDIS_REPLY_INTEGER) ||
        !is_type(reply, 4, REDIS_REPLY_INTEGER) || !is_type(reply, 5, REDIS_REPLY_ARRAY) ||
        reply->element[0]->elements % 2 != 0) {
        return -1;
    }
    for (size_t i = 0; i < reply->element[5]->elements; i++) {
        const redisReply *b = reply->element[5]->element[i];
        if (b->type != REDIS_REPLY_ARRAY || b->elements != 4 ||
            !is_type(b, 0, REDIS_REPLY_STRING) || !is_type(b, 1, REDIS_REPLY_STRING) ||
            !is_type(b, 2, REDIS_REPLY_STRING) || !is_type(b, 3, REDIS_REPLY_STRING)) {
            return -1;
        }
    }
    for (size_t i = 0; i < reply->element[0]->elements; i++) {
        if (reply->element[0]->element[i]->type != REDIS_REPLY_STRING) {
            return -1;
        }
    }
    for (size_t i = 0; i < reply->element[1]->elements; i++) {
        if (!dep_ok(reply->element[1]->element[i])) {
            return -1;
        }
    }
    out->stats = reply->element[0];
    out->n_stats = reply->element[0]->elements / 2;
    out->deps = reply->element[1];
    out->n_deps = reply->element[1]->elements;
    out->delayed = reply->element[2]->integer;
    out->leased = reply->element[3]->integer;
    out->parked = reply->element[4]->integer;
    out->budgets = reply->element[5];
    out->n_budgets = reply->element[5]->elements;
    return 0;
}

void txn_metrics_budget(const struct txn_metrics *m, size_t i, struct txn_budget_state *out)
{
    const redisReply *b = m->budgets->element[i];

    out->subject = b->element[0]->str;
    out->window = b->element[1]->str;
    out->max_nano = strtoll(b->element[2]->str, NULL, 10);
    out->used_nano = strtoll(b->element[3]->str, NULL, 10);
}

void txn_metrics_stat(const struct txn_metrics *m, size_t i, const char **name, const char **value)
{
    *name = m->stats->element[2 * i]->str;
    *value = m->stats->element[2 * i + 1]->str;
}

void txn_metrics_dep(const struct txn_metrics *m, size_t i, struct txn_dep_state *out)
{
    redisReply **d = m->deps->element[i]->element;
    const char *br = d[5]->str;
    const char *lat = d[7]->str;

    out->alias = d[0]->str;
    out->index = strtol(d[1]->str, NULL, 10);
    out->requests = d[2]->str;
    out->tokens = d[3]->str;
    out->in_flight = as_i64(d[4]);
    out->breaker = strcmp(br, "open") == 0   ? TXN_BREAKER_OPEN
                   : strcmp(br, "half") == 0 ? TXN_BREAKER_HALF
                                             : TXN_BREAKER_CLOSED;
    out->paused_until_ms = as_i64(d[6]);
    out->has_latency = lat[0] != '\0';
    out->latency_ms = out->has_latency ? strtod(lat, NULL) : 0;
}

static void deliver_metrics(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                            int extra)
{
    struct txn_metrics m;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_metrics_parse(reply, &m) < 0) {
        err = txn_bad_reply(&bad, "METRICS");
    }
    ((txn_metrics_cb)cb)(err ? NULL : &m, err, arg);
}

int txn_metrics(struct store *s, const struct txn_args *a, txn_metrics_cb cb, void *arg)
{
    return a->oom ? CORE_ENOMEM
                  : txn_call(s, SCRIPT_METRICS, a, deliver_metrics, (txn_fn)cb, arg, 0);
}
