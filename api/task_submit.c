/*
 * api/task_submit.c — creating tasks: every submit one loop turn accepted goes to Redis in one
 * SUBMIT call (core/txn_task.h), and each answer goes back to the request that made it.
 *
 * api_submit renders the accepted task for the caller's answer (so a 202 needs no read back),
 * copies what the call needs into a pending submit and queues it; the submit event, activated by
 * the first submit of a turn, runs after the turn's other requests and sends up to
 * API_SUBMIT_BATCH pending submits per SUBMIT call. The script still applies them one by one, in
 * order, as separate calls would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cache.h"
#include "api/internal.h"
#include "core/log.h"
#include "core/task.h"
#include "core/txn_task.h"
#include "core/util.h"

_Static_assert(API_SUBMIT_BATCH <= TXN_SUBMIT_MAX, "a SUBMIT call holds API_SUBMIT_BATCH tasks");

/*
 * One task's SUBMIT, kept from api_submit until the loop turn's SUBMIT call goes out. t's strings
 * point to the copies below, to the request's id and tenant (c->id, c->tenant), the config's alias
 * and the api's channel, all of which outlive it: what the caller lent (the input, the batch's
 * ids) may be gone by then.
 */
struct api_pending_submit {
    struct txn_submit t;
    char *input, *meta, *routing, *webhook, *batch_id, *custom_id, *pipeline_id, *step;
    char idem_hash[65], body_hash[65];
    char cache[API_CACHE_ARG_MAX]; /* SUBMIT's cache argument (api/cache.h), "" none */
};

void api_pending_submit_free(struct api_pending_submit *p)
{
    if (p == NULL) {
        return;
    }
    cJSON_free(p->input);
    cJSON_free(p->meta);
    cJSON_free(p->routing);
    cJSON_free(p->webhook);
    free(p->batch_id);
    free(p->custom_id);
    free(p->pipeline_id);
    free(p->step);
    free(p);
}

/* A submit that failed: told to its request's callback with the error the client should see. */
static void submit_failed(struct api_ctx *c, const struct core_err *err, bool sent)
{
    struct core_err e;

    log_warn("submit failed", "task=%s error=\"%s\"", c->id, err->message);
    core_err_clear(&e);
    if (!sent) {
        /* the call never went out: nothing was created */
        core_err_set(&e, CORE_EUNAVAILABLE, NULL,
                     "The task store is unavailable; the task was not created. Retry shortly");
        core_err_set_code(&e, "store_unavailable");
    } else {
        /* the call went out and no answer came back (Redis stalled or the connection dropped):
         * it may have run. Only the client can settle it, by retrying with the same
         * Idempotency-Key, which returns the task if it exists and creates it if not. */
        core_err_set(&e, CORE_EUNAVAILABLE, NULL,
                     "The task store did not confirm the write in time, so the task may have been "
                     "created. Retry with the same Idempotency-Key: it returns the task if it "
                     "exists and creates it once if it does not");
        core_err_set_code(&e, "outcome_unknown");
    }
    c->submit_cb(c, e.code, NULL, &e);
}

/* One task's answer from SUBMIT, told to its request's callback (api_submit_cb's outcomes). */
static void submit_answered(struct api_ctx *c, const struct txn_submitted *r)
{
    const struct config *cfg = c->api->cfg;
    struct core_err e;

    core_err_clear(&e);
    switch (r->result) {
    case TXN_SUBMIT_OK:
        c->api->tasks_accepted++;
        c->submit_cb(c, 0, NULL, NULL);
        return;
    case TXN_SUBMIT_DUP:
        snprintf(c->orig_id, sizeof(c->orig_id), "%s", c->id);
        snprintf(c->id, sizeof(c->id), "%s", r->dup_id);
        /* api_submit_cb's dup predates const: the callbacks only read it */
        c->submit_cb(c, 1, (redisReply *)r->dup_hash, NULL);
        return;
    case TXN_SUBMIT_QUOTA:
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant has %lld tasks queued, its quota; retry after some finish",
                     (long long)r->count);
        core_err_set_code(&e, "queue_quota_exceeded");
        e.retry_after_ms = 2000;
        break;
    case TXN_SUBMIT_STORAGE:
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant stores %lld bytes of task inputs and results; this task would "
                     "pass its limit max_stored_bytes (%lld). Space returns as finished tasks "
                     "expire",
                     (long long)r->count,
                     (long long)config_quota_for(cfg, c->tenant)->max_stored_bytes);
        core_err_set_code(&e, "storage_quota_exceeded");
        break;
    case TXN_SUBMIT_ARTIFACTS:
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant keeps %lld bytes of images and videos, its limit "
                     "max_artifact_bytes (%lld). Space returns as finished tasks expire",
                     (long long)r->count,
                     (long long)config_quota_for(cfg, c->tenant)->max_artifact_bytes);
        core_err_set_code(&e, "storage_quota_exceeded");
        break;
    case TXN_SUBMIT_BUDGET:
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant's budget is spent for this window; it resets in %lld s",
                     (long long)((r->count + 999) / 1000));
        core_err_set_code(&e, "budget_exceeded");
        e.retry_after_ms = r->count;
        break;
    case TXN_SUBMIT_CONFLICT:
        core_err_set(&e, CORE_ECONFLICT, "Idempotency-Key",
                     "This Idempotency-Key was already used with a different request body");
        core_err_set_code(&e, "idempotency_key_reused");
        break;
    }
    c->submit_cb(c, e.code, NULL, &e);
}

/* The requests of one SUBMIT call, in the order of its tasks. */
struct submit_batch {
    struct txn_submit_call call;
    size_t n;
    struct api_ctx *ctx[API_SUBMIT_BATCH];
};

/* SUBMIT's answers, each to its request in order; a call that failed fails each of them (it may
 * have run: outcome unknown). */
static void on_submits(const struct txn_submitted *res, size_t n, const struct core_err *err,
                       void *arg)
{
    struct submit_batch *b = arg;

    for (size_t i = 0; i < b->n && i < n; i++) {
        if (err != NULL) {
            submit_failed(b->ctx[i], err, true);
        } else {
            submit_answered(b->ctx[i], &res[i]);
        }
    }
    free(b);
}

/* Pops the first queued submit. */
static struct api_ctx *submit_pop(struct api *a)
{
    struct api_ctx *c = a->submit_head;

    a->submit_head = c->submit_next;
    c->submit_next = NULL;
    if (a->submit_head == NULL) {
        a->submit_tail = NULL;
    }
    return c;
}

/*
 * Sends up to API_SUBMIT_BATCH queued submits in one SUBMIT call, built in a->txn. A call that
 * cannot go out answers each of its submits with "not created".
 */
static void send_submits(struct api *a)
{
    const struct keyspace *ks = store_keys(a->store);
    struct submit_batch *b = calloc(1, sizeof(*b));
    struct core_err e;
    int rc;

    core_err_clear(&e);
    if (b == NULL) {
        /* out of memory: every queued submit is answered with the error */
        core_err_set(&e, CORE_ENOMEM, NULL, "Out of memory");
        while (a->submit_head) {
            struct api_ctx *c = submit_pop(a);
            api_pending_submit_free(c->submit);
            c->submit = NULL;
            submit_failed(c, &e, false);
        }
        return;
    }
    txn_submit_begin(&a->txn, ks);
    while (a->submit_head && b->n < API_SUBMIT_BATCH) {
        struct api_ctx *c = submit_pop(a);
        txn_submit_add(&a->txn, ks, &c->submit->t);
        b->ctx[b->n++] = c;
    }
    rc = txn_submit(a->store, &a->txn, &b->call, on_submits, b);
    for (size_t i = 0; i < b->n; i++) {
        api_pending_submit_free(b->ctx[i]->submit); /* the command holds its own copy now */
        b->ctx[i]->submit = NULL;
    }
    if (rc < 0) {
        core_err_set(&e, CORE_EUNAVAILABLE, NULL, "The task store is unavailable; retry shortly");
        for (size_t i = 0; i < b->n; i++) {
            submit_failed(b->ctx[i], &e, false);
        }
        free(b);
    }
}

void api_submit_flush(evutil_socket_t fd, short what, void *arg)
{
    struct api *a = arg;

    (void)fd;
    (void)what;
    while (a->submit_head) {
        send_submits(a);
    }
}

/* Characters of every string in v (recursively), bounded by the body limit that already held. */
static size_t text_chars(const cJSON *v)
{
    size_t n = 0;
    const cJSON *c;

    if (cJSON_IsString(v)) {
        return strlen(v->valuestring);
    }
    cJSON_ArrayForEach(c, v)
    {
        n += text_chars(c);
    }
    return n;
}

/*
 * The tokens a task will use, estimated before the call so the token budgets can be taken at
 * claim time (reconciled with the real usage after it): about four characters a token for the
 * input (a response's: its instructions and input items, with what an earlier turn left in them),
 * plus the output the request allows (max_completion_tokens or max_tokens, a response's
 * max_output_tokens, else 256).
 */
static long estimate_tokens(enum task_kind kind, const cJSON *input)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(input, "max_completion_tokens");
    long in, out = 256;

    if (kind == TASK_KIND_CHAT) {
        in = (long)(text_chars(cJSON_GetObjectItemCaseSensitive(input, "messages")) / 4) + 1;
    } else if (kind == TASK_KIND_RESPONSE) {
        in = (long)((text_chars(cJSON_GetObjectItemCaseSensitive(input, "input")) +
                     text_chars(cJSON_GetObjectItemCaseSensitive(input, "instructions"))) /
                    4) +
             1;
        mt = cJSON_GetObjectItemCaseSensitive(input, "max_output_tokens");
    } else if (kind == TASK_KIND_EMBEDDING) {
        return (long)(text_chars(cJSON_GetObjectItemCaseSensitive(input, "input")) / 4) + 1;
    } else {
        return 0;
    }
    if (!cJSON_IsNumber(mt)) {
        mt = cJSON_GetObjectItemCaseSensitive(input, "max_tokens");
    }
    if (cJSON_IsNumber(mt) && mt->valuedouble > 0 && mt->valuedouble < 1e7) {
        out = (long)mt->valuedouble;
    }
    return in + out;
}

/* A copy of s, or NULL when s is NULL; *bad set when out of memory. */
static char *dup_opt(const char *s, bool *bad)
{
    char *d = s ? strdup(s) : NULL;
    if (s && d == NULL) {
        *bad = true;
    }
    return d;
}

int api_submit(struct api *a, struct api_ctx *c, const struct api_submit *s, api_submit_cb cb,
               struct core_err *err)
{
    const struct config_quota *quota = config_quota_for(a->cfg, c->tenant);
    struct api_pending_submit *p;
    int64_t now = util_now_ms();
    enum task_kind kind = s->kind;
    bool oom = false;

    if (!store_ready(a->store)) {
        int rc = core_err_set(err, CORE_EUNAVAILABLE, NULL,
                              "The task store is unavailable; retry shortly");
        core_err_set_code(err, "store_unavailable");
        return rc;
    }
    if ((int)kind < 0 || kind >= TASK_KIND_COUNT) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "Unknown task kind %d", (int)kind);
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    c->submit_cb = cb;
    c->created_ms = now;
    p->input = cJSON_PrintUnformatted(s->input);
    p->meta = s->metadata ? cJSON_PrintUnformatted(s->metadata) : NULL;
    p->routing = s->routing ? cJSON_PrintUnformatted(s->routing) : NULL;
    p->webhook = s->webhook ? cJSON_PrintUnformatted(s->webhook) : NULL;
    p->batch_id = dup_opt(s->batch_id, &oom);
    p->custom_id = dup_opt(s->custom_id, &oom);
    p->pipeline_id = dup_opt(s->pipeline_id, &oom);
    p->step = dup_opt(s->step, &oom);
    if (s->render == API_RENDER_TEXT) {
        c->task_text = task_new_text(c->id, task_kind_name(kind), s->model->alias, s->prio, now,
                                     a->cfg->tasks.max_attempts, p->meta);
    }
    if (oom || p->input == NULL || (s->metadata && p->meta == NULL) ||
        (s->routing && p->routing == NULL) || (s->webhook && p->webhook == NULL) ||
        (s->render == API_RENDER_TEXT && c->task_text == NULL)) {
        api_pending_submit_free(p);
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    /* the response cache: a client's own task only (a batch's or a pipeline's lines are not
     * looked up); nothing is hashed for an alias without a cache */
    if (s->model->cache_ttl_s > 0 && s->batch_id == NULL && s->pipeline_id == NULL &&
        api_cache_arg(s->model, c->tenant, quota->max_cache_bytes, kind, s->input, c->req, p->cache,
                      err) < 0) {
        api_pending_submit_free(p);
        return err->code;
    }
    if (s->idem) { /* the body's hash matters only to an Idempotency-Key */
        util_sha256_hex(s->raw ? s->raw : "", s->raw_len, p->body_hash);
        util_sha256_hex(s->idem, strlen(s->idem), p->idem_hash);
    }
    p->t = (struct txn_submit){
        .id = c->id,
        .tenant = c->tenant,
        .kind = kind,
        .model = s->model->alias,
        .prio = s->prio,
        .now_ms = now,
        .max_attempts = a->cfg->tasks.max_attempts,
        .input = p->input,
        .metadata = p->meta,
        .idem_hash = s->idem ? p->idem_hash : NULL,
        .body_hash = p->body_hash,
        .idem_ttl_ms = (int64_t)a->cfg->tasks.retention_s * 1000,
        .reply_to = s->notify ? a->channel : NULL,
        .stream = s->stream,
        .deadline_ms = s->deadline_ms,
        .est_tokens = estimate_tokens(kind, s->input),
        .routing = p->routing,
        .webhook = p->webhook,
        .batch_id = p->batch_id,
        .custom_id = p->custom_id,
        .pipeline_id = p->pipeline_id,
        .step = p->step,
        .max_queued = config_max_queued(a->cfg, c->tenant),
        .max_stored_bytes = quota->max_stored_bytes,
        .max_artifact_bytes = quota->max_artifact_bytes,
        .cache = p->cache,
        .key_id = s->key_id ? s->key_id : (c->key ? c->key->id : NULL),
    };
    /* Queued for the end of this loop turn: the turn's submits go to Redis in one SUBMIT call
     * (activated events run after those already active, so the turn's other requests first). */
    c->submit = p;
    c->submit_next = NULL;
    if (a->submit_tail) {
        a->submit_tail->submit_next = c;
    } else {
        a->submit_head = c;
        event_active(a->submit_ev, EV_TIMEOUT, 1);
    }
    a->submit_tail = c;
    return 0;
}
