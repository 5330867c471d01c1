/*
 * api/tasks.c — the native task API: create, read, list, cancel.
 *
 * Each handler validates what it can without Redis, then makes exactly one round trip (one
 * script or one HGETALL) and answers from its reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "api/internal.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/scripts.h"
#include "core/task.h"
#include "core/util.h"
#include "core/webhook_url.h"

#define API_IDEMPOTENCY_KEY_MAX 255
#define API_METADATA_MAX_PAIRS 16
#define API_METADATA_KEY_MAX 64
#define API_METADATA_VALUE_MAX 512
#define API_LIST_SCAN_CAP "5000"
#define API_BULK_MAX 1000

static const char *const task_kinds[] = {"chat", "embedding", "image", "video", NULL};

static bool kind_known(const char *kind)
{
    for (const char *const *k = task_kinds; *k; k++) {
        if (strcmp(*k, kind) == 0) {
            return true;
        }
    }
    return false;
}

void api_reply_store_down(struct api *a, struct evhttp_request *req)
{
    api_reply_error(a, req, CORE_EUNAVAILABLE, NULL, "store_unavailable",
                    "The task store is unavailable; retry shortly");
}

void api_reply_not_found(struct api *a, struct evhttp_request *req, const char *id)
{
    api_reply_error(a, req, CORE_ENOTFOUND, "id", "task_not_found", "No task found with id '%s'",
                    id);
}

/* A chat input: a non-empty messages array of objects with a string role. */
static int validate_chat(const cJSON *input, struct core_err *e)
{
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(input, "messages");
    const cJSON *m;
    int i = 0;

    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        return core_err_set(e, CORE_EINVAL, "messages", "'messages' must be a non-empty array");
    }
    cJSON_ArrayForEach(m, messages)
    {
        if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role"))) {
            return core_err_set(e, CORE_EINVAL, "messages",
                                "'messages[%d]' must be an object with a string 'role'", i);
        }
        i++;
    }
    return 0;
}

/* An embedding input: a non-empty string, or a non-empty array of strings or token arrays. */
static int validate_embedding(const cJSON *input, struct core_err *e)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(input, "input");
    const cJSON *v;

    if (cJSON_IsString(in) && in->valuestring[0]) {
        return 0;
    }
    if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) == 0) {
        return core_err_set(e, CORE_EINVAL, "input",
                            "'input' must be a non-empty string or array of strings");
    }
    cJSON_ArrayForEach(v, in)
    {
        if (!cJSON_IsString(v) && !cJSON_IsArray(v) && !cJSON_IsNumber(v)) {
            return core_err_set(e, CORE_EINVAL, "input",
                                "'input' items must be strings or token arrays");
        }
    }
    return 0;
}

/* An image or video input: a prompt, and for images at most 10 of them. */
static int validate_media(const cJSON *input, bool image, struct core_err *e)
{
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(input, "prompt");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(input, "n");

    if (!cJSON_IsString(prompt) || prompt->valuestring[0] == '\0') {
        return core_err_set(e, CORE_EINVAL, "prompt", "'prompt' must be a non-empty string");
    }
    if (image && n != NULL &&
        (!cJSON_IsNumber(n) || n->valuedouble < 1 || n->valuedouble > 10 ||
         n->valuedouble != (double)(int)n->valuedouble)) {
        return core_err_set(e, CORE_EINVAL, "n", "'n' must be an integer between 1 and 10");
    }
    return 0;
}

int api_validate_input(const char *kind, const cJSON *input, struct core_err *e)
{
    if (strcmp(kind, "chat") == 0) {
        return validate_chat(input, e);
    }
    if (strcmp(kind, "embedding") == 0) {
        return validate_embedding(input, e);
    }
    return validate_media(input, strcmp(kind, "image") == 0, e);
}

int api_validate_metadata(const cJSON *meta, struct core_err *e)
{
    const cJSON *v;

    if (!cJSON_IsObject(meta)) {
        return core_err_set(e, CORE_EINVAL, "metadata", "'metadata' must be an object");
    }
    if (cJSON_GetArraySize(meta) > API_METADATA_MAX_PAIRS) {
        return core_err_set(e, CORE_EINVAL, "metadata", "'metadata' has more than %d keys",
                            API_METADATA_MAX_PAIRS);
    }
    cJSON_ArrayForEach(v, meta)
    {
        if (!cJSON_IsString(v) || strlen(v->string) > API_METADATA_KEY_MAX ||
            strlen(v->valuestring) > API_METADATA_VALUE_MAX) {
            return core_err_set(e, CORE_EINVAL, "metadata",
                                "'metadata' values must be strings (keys up to %d characters, "
                                "values up to %d)",
                                API_METADATA_KEY_MAX, API_METADATA_VALUE_MAX);
        }
    }
    return 0;
}

/*
 * Validates a POST /v1/tasks body. On success fills the kind, input, model and priority it
 * found (borrowed from body) and returns 0; otherwise returns the error code with e filled.
 */
static int validate_create(struct api *a, const cJSON *body, const char **kind, const cJSON **input,
                           const struct config_model **model, int *prio, const cJSON **meta,
                           struct core_err *e)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "kind");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "priority");
    const cJSON *m;

    if (!cJSON_IsObject(body)) {
        return core_err_set(e, CORE_EINVAL, NULL, "The request body must be a JSON object");
    }
    if (!cJSON_IsString(k)) {
        return core_err_set(e, CORE_EINVAL, "kind",
                            "'kind' is required and must be one of chat, embedding, image, video");
    }
    if (!kind_known(k->valuestring)) {
        return core_err_set(e, CORE_EINVAL, "kind",
                            "Unknown kind '%.64s': expected chat, embedding, image or video",
                            k->valuestring);
    }
    *kind = k->valuestring;
    *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    if (!cJSON_IsObject(*input)) {
        return core_err_set(e, CORE_EINVAL, "input",
                            "'input' is required and must be the OpenAI request object");
    }
    m = cJSON_GetObjectItemCaseSensitive(*input, "model");
    if (!cJSON_IsString(m) || m->valuestring[0] == '\0') {
        return core_err_set(e, CORE_EINVAL, "input.model", "'input.model' must be a string");
    }
    *model = config_model_find(a->cfg, m->valuestring);
    if (*model == NULL) {
        core_err_set(e, CORE_ENOTFOUND, "input.model", "The model '%.128s' does not exist",
                     m->valuestring);
        core_err_set_code(e, "model_not_found");
        return e->code;
    }
    if (strcmp((*model)->kind, *kind) != 0) {
        return core_err_set(e, CORE_EINVAL, "kind", "The model '%.128s' serves %s tasks, not %s",
                            m->valuestring, (*model)->kind, *kind);
    }
    if (api_validate_input(*kind, *input, e) < 0) {
        /* The native API nests the OpenAI body under "input". */
        char param[sizeof(e->param) + 8];
        snprintf(param, sizeof(param), "input.%s", e->param);
        snprintf(e->param, sizeof(e->param), "%.*s", (int)sizeof(e->param) - 1, param);
        return e->code;
    }
    *prio = TASK_PRIO_NORMAL;
    if (p != NULL) {
        if (!cJSON_IsString(p) || (*prio = task_priority_parse(p->valuestring)) < 0) {
            return core_err_set(e, CORE_EINVAL, "priority",
                                "'priority' must be one of interactive, normal, batch");
        }
    }
    *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    if (*meta != NULL && api_validate_metadata(*meta, e) < 0) {
        return e->code;
    }
    return 0;
}

/*
 * A task's routing: {strategy?, max_cost?}. It narrows the alias: another strategy over the same
 * deployments, and a cap on the estimated cost of a deployment.
 */
static int validate_routing(const cJSON *r, struct core_err *e)
{
    static const char *const strategies[] = {"cost", "latency", "weighted", "ordered"};
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "strategy");
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(r, "max_cost");
    bool ok = st == NULL;

    if (!cJSON_IsObject(r)) {
        return core_err_set(e, CORE_EINVAL, "routing", "'routing' must be an object");
    }
    for (size_t i = 0; cJSON_IsString(st) && i < sizeof(strategies) / sizeof(strategies[0]); i++) {
        ok = ok || strcmp(st->valuestring, strategies[i]) == 0;
    }
    if (!ok) {
        return core_err_set(e, CORE_EINVAL, "routing.strategy",
                            "'routing.strategy' must be one of cost, latency, weighted, ordered");
    }
    if (mc != NULL && (!cJSON_IsNumber(mc) || mc->valuedouble < 0)) {
        return core_err_set(e, CORE_EINVAL, "routing.max_cost",
                            "'routing.max_cost' must be a number >= 0 (USD)");
    }
    return 0;
}

/* The err_code on_submit is told when a SUBMIT call never left the process. */
#define SUBMIT_NOT_SENT "not_sent"

static void on_submit(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct core_err e;
    const char *what;

    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        if (err) {
            log_warn("submit failed", "error=\"%s\"", err->message);
        }
        core_err_clear(&e);
        if (err != NULL && strcmp(err->err_code, SUBMIT_NOT_SENT) == 0) {
            /* the call never went out: nothing was created */
            core_err_set(&e, CORE_EUNAVAILABLE, NULL,
                         "The task store is unavailable; the task was not created. Retry shortly");
            core_err_set_code(&e, "store_unavailable");
        } else {
            /* the call went out and no answer came back (Redis stalled or the connection
             * dropped): it may have run. Only the client can settle it, by retrying with the
             * same Idempotency-Key, which returns the task if it exists and creates it if not. */
            core_err_set(&e, CORE_EUNAVAILABLE, NULL,
                         "The task store did not confirm the write in time, so the task may have "
                         "been created. Retry with the same Idempotency-Key: it returns the task "
                         "if it exists and creates it once if it does not");
            core_err_set_code(&e, "outcome_unknown");
        }
        c->submit_cb(c, e.code, NULL, &e);
        return;
    }
    what = reply->element[0]->str;
    if (strcmp(what, "ok") == 0) {
        c->api->tasks_accepted++;
        c->submit_cb(c, 0, NULL, NULL);
    } else if (strcmp(what, "quota") == 0) {
        core_err_clear(&e);
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant has %lld tasks queued, its quota; retry after some finish",
                     reply->elements > 1 ? reply->element[1]->integer : 0LL);
        core_err_set_code(&e, "queue_quota_exceeded");
        e.retry_after_ms = 2000;
        c->submit_cb(c, e.code, NULL, &e);
    } else if (strcmp(what, "storage") == 0) {
        long long limit = config_quota_for(c->api->cfg, c->tenant)->max_stored_bytes;
        core_err_clear(&e);
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant stores %lld bytes of task inputs and results; this task would "
                     "pass its limit max_stored_bytes (%lld). Space returns as finished tasks "
                     "expire",
                     reply->elements > 1 ? reply->element[1]->integer : 0LL, limit);
        core_err_set_code(&e, "storage_quota_exceeded");
        c->submit_cb(c, e.code, NULL, &e);
    } else if (strcmp(what, "artifacts") == 0) {
        long long limit = config_quota_for(c->api->cfg, c->tenant)->max_artifact_bytes;
        core_err_clear(&e);
        core_err_set(&e, CORE_EQUOTA, NULL,
                     "Your tenant keeps %lld bytes of images and videos, its limit "
                     "max_artifact_bytes (%lld). Space returns as finished tasks expire",
                     reply->elements > 1 ? reply->element[1]->integer : 0LL, limit);
        core_err_set_code(&e, "storage_quota_exceeded");
        c->submit_cb(c, e.code, NULL, &e);
    } else if (strcmp(what, "dup") == 0 && reply->elements == 3) {
        snprintf(c->orig_id, sizeof(c->orig_id), "%s", c->id);
        snprintf(c->id, sizeof(c->id), "%s", reply->element[1]->str);
        c->submit_cb(c, 1, reply->element[2], NULL);
    } else {
        core_err_clear(&e);
        core_err_set(&e, CORE_ECONFLICT, "Idempotency-Key",
                     "This Idempotency-Key was already used with a different request body");
        core_err_set_code(&e, "idempotency_key_reused");
        c->submit_cb(c, e.code, NULL, &e);
    }
}

const char *api_idempotency_key(struct api *a, struct evhttp_request *req, bool *bad)
{
    const char *idem = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");

    *bad = false;
    if (idem && (idem[0] == '\0' || strlen(idem) > API_IDEMPOTENCY_KEY_MAX)) {
        api_reply_error(a, req, CORE_EINVAL, "Idempotency-Key", NULL,
                        "The Idempotency-Key header must be 1-%d characters",
                        API_IDEMPOTENCY_KEY_MAX);
        *bad = true;
        return NULL;
    }
    return idem;
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
 * input, plus the output the request allows (max_completion_tokens or max_tokens, else 256).
 */
static long estimate_tokens(const char *kind, const cJSON *input)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(input, "max_completion_tokens");
    long in, out = 256;

    if (strcmp(kind, "chat") == 0) {
        in = (long)(text_chars(cJSON_GetObjectItemCaseSensitive(input, "messages")) / 4) + 1;
    } else if (strcmp(kind, "embedding") == 0) {
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

/*
 * One task's SUBMIT arguments, kept from api_submit until the loop turn's SUBMIT call goes out.
 * Everything is owned here: what the caller lent (the kind, the batch's ids) may be gone by then.
 */
struct submit_args {
    char task_key[96], tenant_key[96], idem_key[192];
    char kind[32], prio[4], now[24], max[24], ttl[24], deadline[24], est[24], quota[24];
    char stored_quota[24], artifact_quota[24];
    char body_hash[65];
    char *input, *meta, *routing, *webhook, *batch_id, *custom_id;
    const char *argv[SUBMIT_GROUP];
};

void api_submit_args_free(struct submit_args *sa)
{
    if (sa == NULL) {
        return;
    }
    cJSON_free(sa->input);
    cJSON_free(sa->meta);
    cJSON_free(sa->routing);
    cJSON_free(sa->webhook);
    free(sa->batch_id);
    free(sa->custom_id);
    free(sa);
}

/* The submits of one SUBMIT call, in argument order. */
struct submit_batch {
    size_t n;
    struct api_ctx *ctx[API_SUBMIT_BATCH];
};

static void on_submits(redisReply *reply, const struct core_err *err, void *arg)
{
    struct submit_batch *b = arg;
    struct core_err e;

    core_err_clear(&e);
    if (err == NULL && (reply->type != REDIS_REPLY_ARRAY || reply->elements != b->n)) {
        core_err_set(&e, CORE_EUNAVAILABLE, NULL, "unexpected SUBMIT reply");
        err = &e;
    }
    for (size_t i = 0; i < b->n; i++) {
        on_submit(err ? NULL : reply->element[i], err, b->ctx[i]);
    }
    free(b);
}

/* Sends up to API_SUBMIT_BATCH queued submits in one SUBMIT call. */
static void send_submits(struct api *a)
{
    struct submit_batch *b = calloc(1, sizeof(*b));
    const char **argv = a->submit_argv;
    struct core_err e;
    int n = 0, rc = CORE_ENOMEM;

    core_err_clear(&e);
    if (b != NULL) {
        argv[n++] = CHANNEL_WAKE;
        while (a->submit_head && b->n < API_SUBMIT_BATCH) {
            struct api_ctx *c = a->submit_head;
            a->submit_head = c->submit_next;
            c->submit_next = NULL;
            memcpy(&argv[n], c->submit->argv, sizeof(c->submit->argv));
            n += SUBMIT_GROUP;
            b->ctx[b->n++] = c;
        }
        rc = store_script(a->store, SCRIPT_SUBMIT, on_submits, b, 0, n, argv, NULL);
    } else {
        /* out of memory: every queued submit is answered with the error */
        while (a->submit_head) {
            struct api_ctx *c = a->submit_head;
            a->submit_head = c->submit_next;
            c->submit_next = NULL;
            core_err_set(&e, CORE_ENOMEM, NULL, "Out of memory");
            core_err_set_code(&e, SUBMIT_NOT_SENT);
            api_submit_args_free(c->submit);
            c->submit = NULL;
            on_submit(NULL, &e, c);
        }
    }
    if (a->submit_head == NULL) {
        a->submit_tail = NULL;
    }
    for (size_t i = 0; b != NULL && i < b->n; i++) {
        api_submit_args_free(b->ctx[i]->submit); /* the command holds its own copy now */
        b->ctx[i]->submit = NULL;
    }
    if (b != NULL && rc < 0) {
        core_err_set(&e, CORE_EUNAVAILABLE, NULL, "The task store is unavailable; retry shortly");
        core_err_set_code(&e, SUBMIT_NOT_SENT);
        for (size_t i = 0; i < b->n; i++) {
            on_submit(NULL, &e, b->ctx[i]);
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
    struct submit_args *sa;
    char idem_hash[65];
    int64_t now = util_now_ms();
    bool oom = false;

    if (!store_ready(a->store)) {
        int rc = core_err_set(err, CORE_EUNAVAILABLE, NULL,
                              "The task store is unavailable; retry shortly");
        core_err_set_code(err, "store_unavailable");
        return rc;
    }
    sa = calloc(1, sizeof(*sa));
    if (sa == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    c->submit_cb = cb;
    sa->input = cJSON_PrintUnformatted(s->input);
    sa->meta = s->metadata ? cJSON_PrintUnformatted(s->metadata) : NULL;
    sa->routing = s->routing ? cJSON_PrintUnformatted(s->routing) : NULL;
    sa->webhook = s->webhook ? cJSON_PrintUnformatted(s->webhook) : NULL;
    sa->batch_id = dup_opt(s->batch_id, &oom);
    sa->custom_id = dup_opt(s->custom_id, &oom);
    if (s->render == API_RENDER_TEXT) {
        c->task_text = task_new_text(c->id, s->kind, s->model->alias, s->prio, now,
                                     a->cfg->tasks.max_attempts, sa->meta);
    } else if (s->render == API_RENDER_JSON) {
        c->task = task_new_json(c->id, s->kind, s->model->alias, s->prio, now,
                                a->cfg->tasks.max_attempts, s->metadata);
    }
    if (oom || sa->input == NULL || (s->metadata && sa->meta == NULL) ||
        (s->routing && sa->routing == NULL) || (s->webhook && sa->webhook == NULL) ||
        (s->render != API_RENDER_NONE && c->task == NULL && c->task_text == NULL)) {
        api_submit_args_free(sa);
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    if (s->idem) { /* the body's hash matters only to an Idempotency-Key */
        util_sha256_hex(s->raw ? s->raw : "", s->raw_len, sa->body_hash);
        util_sha256_hex(s->idem, strlen(s->idem), idem_hash);
    }
    /* ids, tenants, kinds and numbers all fit these buffers (ids and kinds are validated,
     * tenants bounded by the config); util_* rather than snprintf: this runs once per task */
    util_join(sa->task_key, sizeof(sa->task_key), KEY_TASK, c->id);
    util_join(sa->tenant_key, sizeof(sa->tenant_key), KEY_TENANT, c->tenant);
    snprintf(sa->idem_key, sizeof(sa->idem_key), KEY_IDEM "%s:%s", c->tenant,
             s->idem ? idem_hash : "-");
    snprintf(sa->kind, sizeof(sa->kind), "%s", s->kind);
    util_fmt_i64(sa->prio, sizeof(sa->prio), s->prio);
    util_fmt_i64(sa->now, sizeof(sa->now), now);
    util_fmt_i64(sa->max, sizeof(sa->max), a->cfg->tasks.max_attempts);
    util_fmt_i64(sa->ttl, sizeof(sa->ttl), (int64_t)a->cfg->tasks.retention_s * 1000);
    util_fmt_i64(sa->deadline, sizeof(sa->deadline), s->deadline_ms);
    util_fmt_i64(sa->est, sizeof(sa->est), estimate_tokens(s->kind, s->input));
    util_fmt_i64(sa->quota, sizeof(sa->quota), config_max_queued(a->cfg, c->tenant));
    util_fmt_i64(sa->stored_quota, sizeof(sa->stored_quota),
                 config_quota_for(a->cfg, c->tenant)->max_stored_bytes);
    util_fmt_i64(sa->artifact_quota, sizeof(sa->artifact_quota),
                 config_quota_for(a->cfg, c->tenant)->max_artifact_bytes);
    const char *group[SUBMIT_GROUP] = {sa->task_key,
                                       sa->tenant_key,
                                       sa->idem_key,
                                       c->id,
                                       c->tenant,
                                       sa->kind,
                                       s->model->alias,
                                       sa->prio,
                                       sa->now,
                                       sa->max,
                                       sa->input,
                                       sa->meta ? sa->meta : "",
                                       s->idem ? "1" : "0",
                                       sa->body_hash,
                                       sa->ttl,
                                       s->notify ? a->channel : "",
                                       s->stream ? "1" : "0",
                                       s->deadline_ms > 0 ? sa->deadline : "",
                                       sa->est,
                                       sa->routing ? sa->routing : "",
                                       sa->quota,
                                       sa->webhook ? sa->webhook : "",
                                       sa->batch_id ? sa->batch_id : "",
                                       sa->custom_id ? sa->custom_id : "",
                                       sa->stored_quota,
                                       sa->artifact_quota};
    memcpy(sa->argv, group, sizeof(group));
    /* Queued for the end of this loop turn: the turn's submits go to Redis in one SUBMIT call
     * (activated events run after those already active, so the turn's other requests first). */
    c->submit = sa;
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

/* 202 with the task (task, or text when task is NULL; either taken) and its Location. */
static void reply_accepted(struct api *a, struct evhttp_request *req, const char *id, cJSON *task,
                           char *text)
{
    char loc[96];

    util_join(loc, sizeof(loc), "/v1/tasks/", id);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    if (task != NULL) {
        api_reply_json(a, req, 202, task);
    } else {
        api_reply_json_text(a, req, 202, text);
    }
}

/* After the SUBMIT of POST /v1/tasks: 202 with the task, or hold it for Prefer: wait. */
static void on_task_submitted(struct api_ctx *c, int outcome, redisReply *dup,
                              const struct core_err *err)
{
    struct api *a = c->api;

    if (outcome < 0) {
        if (c->wait_ms > 0) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, c->req, err);
    } else if (c->wait_ms > 0) {
        if (outcome == 1) {
            api_wait_rekey(a, c->orig_id, c->id);
        }
        /* the waiter answers */
    } else if (outcome == 1) {
        cJSON *t = task_to_json(c->id, dup);
        api_artifacts_render_task(a, c->req, c->id, t, true);
        reply_accepted(a, c->req, c->id, t, NULL);
    } else {
        reply_accepted(a, c->req, c->id, NULL, c->task_text);
        c->task_text = NULL;
    }
    api_ctx_free(c);
}

/* Prefer: wait=N (N <= 60) → ms, or 0. respond-async is the default here. */
static int64_t prefer_wait_ms(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Prefer");
    const char *w = h ? strstr(h, "wait=") : NULL;
    long n;

    if (w == NULL) {
        return 0;
    }
    n = strtol(w + 5, NULL, 10);
    n = n < 0 ? 0 : n > 60 ? 60 : n;
    return (int64_t)n * 1000;
}

/*
 * Everything of one task object of POST /v1/tasks (kind, input, priority, metadata, routing,
 * deadline) into sub. Returns 0, or the error code with e filled.
 */
static cJSON *validate_webhook(struct api *a, const char *tenant, const cJSON *w,
                               struct core_err *e);

static int validate_task(struct api *a, const char *tenant, const cJSON *item,
                         struct api_submit *sub, struct core_err *e)
{
    const cJSON *deadline;
    const cJSON *webhook = cJSON_GetObjectItemCaseSensitive(item, "webhook");

    if (validate_create(a, item, &sub->kind, &sub->input, &sub->model, &sub->prio, &sub->metadata,
                        e) < 0) {
        return e->code;
    }
    sub->routing = cJSON_GetObjectItemCaseSensitive(item, "routing");
    if (sub->routing != NULL && validate_routing(sub->routing, e) < 0) {
        return e->code;
    }
    deadline = cJSON_GetObjectItemCaseSensitive(item, "deadline");
    if (deadline != NULL) {
        /* Seconds from now that the task may take in all; past it, it expires. */
        if (!cJSON_IsNumber(deadline) || deadline->valuedouble < 1 ||
            deadline->valuedouble > 7 * 86400) {
            return core_err_set(e, CORE_EINVAL, "deadline",
                                "'deadline' must be a number of seconds between 1 and 604800");
        }
        sub->deadline_ms = util_now_ms() + (int64_t)(deadline->valuedouble * 1000);
    }
    if (webhook != NULL && (sub->webhook = validate_webhook(a, tenant, webhook, e)) == NULL) {
        return e->code;
    }
    return 0;
}

/* Events a task's webhook may ask for; the first three are the default. */
static const char *const task_events[] = {"task.completed", "task.failed",   "task.cancelled",
                                          "task.started",   "task.progress", NULL};
const struct api_webhook_events api_task_webhook_events = {
    task_events, 3, "task.started, task.progress, task.completed, task.failed and task.cancelled"};

static cJSON *validate_webhook(struct api *a, const char *tenant, const cJSON *w,
                               struct core_err *e)
{
    return api_validate_webhook(a, tenant, w, &api_task_webhook_events, e);
}

cJSON *api_validate_webhook(struct api *a, const char *tenant, const cJSON *w,
                            const struct api_webhook_events *allowed, struct core_err *e)
{
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(w, "url");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(w, "events");
    const cJSON *ev;
    struct webhook_key key;
    cJSON *out, *list;

    if (!cJSON_IsObject(w) || !cJSON_IsString(url)) {
        core_err_set(e, CORE_EINVAL, "webhook.url", "'webhook.url' must be an http(s) URL");
        return NULL;
    }
    /* what curl could not send, or should not (credentials), is refused now, not at delivery */
    if (webhook_url_check(url->valuestring, "webhook.url", e) < 0) {
        return NULL;
    }
    if (config_webhook_keys(a->cfg, tenant, util_now_ms() / 1000, &key, 1) == 0) {
        core_err_set(e, CORE_EUNPROCESSABLE, "webhook",
                     "No webhook signing secret is configured for your tenant");
        return NULL;
    }
    webhook_key_clear(&key);
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "url", url->valuestring);
    list = cJSON_AddArrayToObject(out, "events");
    if (events == NULL) {
        for (size_t i = 0; i < allowed->n_default; i++) {
            cJSON_AddItemToArray(list, cJSON_CreateString(allowed->names[i]));
        }
        return out;
    }
    if (!cJSON_IsArray(events) || cJSON_GetArraySize(events) == 0) {
        core_err_set(e, CORE_EINVAL, "webhook.events",
                     "'webhook.events' must be a non-empty array");
        cJSON_Delete(out);
        return NULL;
    }
    cJSON_ArrayForEach(ev, events)
    {
        bool known = false;
        for (size_t i = 0; cJSON_IsString(ev) && allowed->names[i] != NULL; i++) {
            known = known || strcmp(ev->valuestring, allowed->names[i]) == 0;
        }
        if (!known) {
            core_err_set(e, CORE_EINVAL, "webhook.events", "'webhook.events' may hold %s",
                         allowed->listed);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_AddItemToArray(list, cJSON_CreateString(ev->valuestring));
    }
    return out;
}

/* ---- bulk submit: {"tasks": [...]} ------------------------------------------------------- */

/* One bulk request: its answer is built slot by slot as the SUBMIT replies come back. */
struct bulk {
    struct api *api;
    struct evhttp_request *req;
    cJSON *data; /* one entry per item, in order */
    int pending;
    int created;
    int failed;
};

static void bulk_error(struct bulk *b, int index, const struct core_err *e)
{
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddNumberToObject(entry, "index", index);
    cJSON_AddItemToObject(entry, "error", core_err_to_json(e, false));
    cJSON_ReplaceItemInArray(b->data, index, entry);
    b->failed++;
}

static void bulk_finish(struct bulk *b)
{
    cJSON *list = cJSON_CreateObject();

    cJSON_AddStringToObject(list, "object", "list");
    cJSON_AddItemToObject(list, "data", b->data);
    cJSON_AddNumberToObject(list, "created", b->created);
    cJSON_AddNumberToObject(list, "failed", b->failed);
    api_reply_json(b->api, b->req, b->created > 0 ? 202 : 400, list);
    free(b);
}

static void on_bulk_item(struct api_ctx *c, int outcome, redisReply *dup,
                         const struct core_err *err)
{
    struct bulk *b = c->owner;

    if (outcome < 0) {
        bulk_error(b, c->mode, err);
    } else {
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddNumberToObject(entry, "index", c->mode);
        cJSON_AddItemToObject(entry, "task", c->task);
        c->task = NULL;
        cJSON_ReplaceItemInArray(b->data, c->mode, entry);
        b->created++;
    }
    api_ctx_free(c);
    if (--b->pending == 0) {
        bulk_finish(b);
    }
}

/*
 * Validates every item, reports bad ones by index, and sends one SUBMIT per good item back to
 * back: hiredis writes them in one go and Redis answers them in order, so the whole bulk costs
 * about one round trip, not one per task.
 */
static void tasks_create_bulk(struct api *a, struct evhttp_request *req, const char *tenant,
                              const cJSON *tasks)
{
    struct bulk *b;
    int n = cJSON_GetArraySize(tasks), i = 0;
    const cJSON *item;

    if (!cJSON_IsArray(tasks) || n == 0 || n > API_BULK_MAX) {
        api_reply_error(a, req, CORE_EINVAL, "tasks", NULL,
                        "'tasks' must be an array of 1 to %d task objects", API_BULK_MAX);
        return;
    }
    if (evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key")) {
        api_reply_error(a, req, CORE_EINVAL, "Idempotency-Key", NULL,
                        "Idempotency-Key applies to single tasks, not to a bulk submit");
        return;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return;
    }
    b->api = a;
    b->req = req;
    b->data = cJSON_CreateArray();
    b->pending = 1; /* held until every item is sent */
    for (i = 0; i < n; i++) {
        cJSON_AddItemToArray(b->data, cJSON_CreateNull());
    }
    i = 0;
    cJSON_ArrayForEach(item, tasks)
    {
        struct api_submit sub = {0};
        struct core_err e;
        struct api_ctx *c;
        int rc;

        core_err_clear(&e);
        if (validate_task(a, tenant, item, &sub, &e) < 0) {
            bulk_error(b, i++, &e);
            continue;
        }
        c = api_ctx_new(a, req, tenant);
        if (c == NULL || util_random_id(TASK_ID_PREFIX, c->id, sizeof(c->id)) < 0) {
            api_ctx_free(c);
            core_err_set(&e, CORE_ENOMEM, NULL, "Out of memory");
            bulk_error(b, i++, &e);
            continue;
        }
        c->owner = b;
        c->mode = i;
        rc = api_submit(a, c, &sub, on_bulk_item, &e);
        cJSON_Delete(sub.webhook);
        if (rc < 0) {
            api_ctx_free(c);
            bulk_error(b, i++, &e);
            continue;
        }
        b->pending++;
        i++;
    }
    if (--b->pending == 0) {
        bulk_finish(b);
    }
}

void api_tasks_create(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    struct api_submit sub = {0};
    const char *raw = NULL;
    size_t raw_len = 0;
    struct core_err e;
    struct api_ctx *c = NULL;
    bool bad = false;
    cJSON *body = api_read_json(a, req, &raw, &raw_len);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(body, "tasks");

    if (body == NULL) {
        return;
    }
    if (cJSON_IsObject(body) && tasks != NULL) {
        tasks_create_bulk(a, req, tenant, tasks);
        goto out;
    }
    core_err_clear(&e);
    if (validate_task(a, tenant, body, &sub, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    sub.idem = api_idempotency_key(a, req, &bad);
    if (bad) {
        goto out;
    }
    sub.raw = raw;
    sub.raw_len = raw_len;
    sub.render = API_RENDER_TEXT;
    c = api_ctx_for_new_task(a, req, tenant);
    if (c == NULL) {
        goto out;
    }
    c->wait_ms = prefer_wait_ms(req);
    sub.notify = c->wait_ms > 0;
    if (c->wait_ms > 0 && api_wait(a, req, tenant, c->id, WAIT_TASK, c->wait_ms) < 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    if (api_submit(a, c, &sub, on_task_submitted, &e) < 0) {
        if (c->wait_ms > 0) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, req, &e);
        goto out;
    }
    c = NULL; /* on_task_submitted owns it now */
out:
    api_ctx_free(c);
    cJSON_Delete((cJSON *)sub.webhook);
    cJSON_Delete(body);
}

static void on_get(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    const redisReply *hash = NULL;
    const char *owner = NULL;

    if (err == NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
        hash = reply->element[0];
        owner = task_hash_get(hash, "tenant");
    }
    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (owner == NULL || strcmp(owner, c->tenant) != 0) {
        /* Another tenant's task is indistinguishable from a missing one. */
        api_reply_not_found(c->api, c->req, c->id);
    } else {
        cJSON *t = task_to_json(c->id, hash);
        api_artifacts_render_task(c->api, c->req, c->id, t, true);
        if (reply->element[1]->integer >= 0) {
            cJSON_DeleteItemFromObject(t, "queue_position");
            cJSON_AddNumberToObject(t, "queue_position", (double)reply->element[1]->integer);
        }
        if (reply->element[2]->integer >= 0) {
            cJSON_AddNumberToObject(t, "eta_seconds", (double)reply->element[2]->integer);
        }
        api_reply_json(c->api, c->req, 200, t);
    }
    api_ctx_free(c);
}

void api_tasks_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    struct api_ctx *c = api_ctx_for_task(a, req, tenant, arg);
    char key[96];

    if (c == NULL) {
        return;
    }
    snprintf(key, sizeof(key), KEY_TASK "%s", arg);
    const char *argv[] = {key, arg};
    if (store_script(a->store, SCRIPT_GET, on_get, c, 1, 2, argv, NULL) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

static void on_list(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *list, *data;
    const char *first = NULL, *last = NULL;

    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    if (strcmp(reply->element[0]->str, "badcursor") == 0) {
        api_reply_error(c->api, c->req, CORE_EINVAL, "after", NULL,
                        "'after' does not name a task in this list");
        goto out;
    }
    list = cJSON_CreateObject();
    cJSON_AddStringToObject(list, "object", "list");
    data = cJSON_AddArrayToObject(list, "data");
    for (size_t i = 3; i + 1 < reply->elements; i += 2) {
        const char *id = reply->element[i]->str;
        cJSON *t = task_to_json(id, reply->element[i + 1]);
        api_artifacts_render_task(c->api, c->req, id, t, false);
        if (t) {
            cJSON_AddItemToArray(data, t);
            first = first ? first : id;
            last = id;
        }
    }
    if (first) {
        cJSON_AddStringToObject(list, "first_id", first);
        cJSON_AddStringToObject(list, "last_id", last);
    } else if (reply->element[1]->integer != 0 && reply->element[2]->len > 0) {
        /* Nothing matched within the scan bound: last_id is where to go on from. */
        cJSON_AddNullToObject(list, "first_id");
        cJSON_AddStringToObject(list, "last_id", reply->element[2]->str);
    } else {
        cJSON_AddNullToObject(list, "first_id");
        cJSON_AddNullToObject(list, "last_id");
    }
    cJSON_AddBoolToObject(list, "has_more", reply->element[1]->integer != 0);
    api_reply_json(c->api, c->req, 200, list);
out:
    api_ctx_free(c);
}

void api_tasks_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    const struct api_list_spec spec = {20, a->cfg->limits.max_list_limit, TASK_ID_PREFIX, "task"};
    struct evkeyvalq params;
    const char *after, *status;
    long limit;
    struct api_ctx *c = NULL;
    char key[96], limit_buf[24];

    if (api_list_query(a, req, &params, &spec, &limit, &after) < 0) {
        goto out;
    }
    status = evhttp_find_header(&params, "status");
    if (status && !task_status_known(status)) {
        api_reply_error(a, req, CORE_EINVAL, "status", NULL,
                        "'status' must be one of queued, in_progress, cancelling, completed, "
                        "failed, cancelled, expired");
        goto out;
    }
    c = api_ctx_new(a, req, tenant);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    snprintf(key, sizeof(key), KEY_TENANT "%s", tenant);
    snprintf(limit_buf, sizeof(limit_buf), "%ld", limit);
    {
        const char *argv[] = {key,      after ? after : "", limit_buf, status ? status : "",
                              KEY_TASK, API_LIST_SCAN_CAP};
        if (store_script(a->store, SCRIPT_LIST, on_list, c, 1, 6, argv, NULL) < 0) {
            api_reply_store_down(a, req);
            api_ctx_free(c);
        }
    }
out:
    evhttp_clear_headers(&params);
}

static void on_cancel(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    const char *what;

    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    what = reply->element[0]->str;
    if (strcmp(what, "notfound") == 0) {
        api_reply_not_found(c->api, c->req, c->id);
    } else if (strcmp(what, "conflict") == 0) {
        api_reply_error(c->api, c->req, CORE_ECONFLICT, "id", "task_not_cancellable",
                        "The task is already %s and cannot be cancelled",
                        task_hash_get(reply->element[1], "status") ?: "finished");
    } else {
        api_reply_json(c->api, c->req, 200, task_to_json(c->id, reply->element[1]));
    }
out:
    api_ctx_free(c);
}

void api_tasks_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    struct api_ctx *c = api_ctx_for_task(a, req, tenant, arg);
    char key[96], now_s[24], ret_s[24];

    if (c == NULL) {
        return;
    }
    snprintf(key, sizeof(key), KEY_TASK "%s", arg);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)util_now_ms());
    snprintf(ret_s, sizeof(ret_s), "%lld", (long long)a->cfg->tasks.retention_s * 1000);
    const char *argv[] = {key, KEY_DELAYED, KEY_POLLS, arg, tenant, now_s, ret_s};
    if (store_script(a->store, SCRIPT_CANCEL, on_cancel, c, 3, 7, argv, NULL) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}
