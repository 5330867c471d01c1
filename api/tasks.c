/*
 * api/tasks.c — the native task API's handlers: create (one task or a bulk), read, list, cancel.
 *
 * Each handler validates what it can without Redis (api/task_validate.c), then makes exactly one
 * round trip — a SUBMIT through the loop turn's batch (api/task_submit.c), or one GET, LIST or
 * CANCEL (core/txn_task.h) — and answers from its typed result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "api/internal.h"
#include "core/task.h"
#include "core/txn_task.h"
#include "core/util.h"

#define API_LIST_SCAN_CAP 5000
#define API_BULK_MAX 1000

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

/* ---- create ------------------------------------------------------------------------------ */

/* 202 with the task (task, or text when task is NULL; either taken) and its Location. */
static void reply_accepted(struct api *a, struct evhttp_request *req, const char *id, char *text)
{
    char loc[96];

    util_join(loc, sizeof(loc), "/v1/tasks/", id);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    api_reply_json_text(a, req, 202, text);
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
        reply_accepted(a, c->req, c->id, api_task_text(a, c->req, c->id, dup, true, NULL));
    } else {
        reply_accepted(a, c->req, c->id, c->task_text);
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
        cJSON_AddItemToObject(entry, "task", cJSON_CreateRaw(c->task_text));
        cJSON_ReplaceItemInArray(b->data, c->mode, entry);
        b->created++;
    }
    api_ctx_free(c);
    if (--b->pending == 0) {
        bulk_finish(b);
    }
}

/* A previous_response_id needs a read of that response before its task can be submitted: the
 * single submit does it (api_response_expand); a bulk's items go out in one turn, so not here. */
static int bulk_refuse(const struct api_submit *sub, struct core_err *e)
{
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(sub->input, "previous_response_id");

    if (sub->kind == TASK_KIND_RESPONSE && prev != NULL && !cJSON_IsNull(prev)) {
        return core_err_set(e, CORE_EINVAL, "input.previous_response_id",
                            "A bulk submit cannot continue an earlier response; submit this task "
                            "on its own");
    }
    return 0;
}

/*
 * Validates every item, reports bad ones by index, and submits each good one: the loop turn's
 * submits go to Redis in one SUBMIT call (API_SUBMIT_BATCH a call, sent back to back), so the
 * whole bulk costs about one round trip, not one per task.
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
        if (api_validate_task(a, tenant, item, &sub, &e) < 0 || bulk_refuse(&sub, &e) < 0) {
            cJSON_Delete(sub.webhook);
            bulk_error(b, i++, &e);
            continue;
        }
        c = api_ctx_new(a, req, tenant);
        if (c == NULL || util_random_id(api_task_id_prefix(sub.kind), c->id, sizeof(c->id)) < 0) {
            api_ctx_free(c);
            cJSON_Delete(sub.webhook);
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

/*
 * Submits the task of c->body (validated before, so validated again without surprise; input: the
 * body's input, or a response's with its previous turn expanded, borrowed). c is the callback's
 * from here, or freed after the error was answered.
 */
static void task_submit(struct api_ctx *c, const cJSON *input)
{
    struct api *a = c->api;
    struct evhttp_request *req = c->req;
    struct api_submit sub = {0};
    struct core_err e;
    bool bad = false;

    core_err_clear(&e);
    if (api_validate_task(a, c->tenant, c->body, &sub, &e) < 0) {
        api_reply_err(a, req, &e);
        goto fail;
    }
    sub.input = input;
    sub.idem = api_idempotency_key(a, req, &bad);
    if (bad) {
        goto fail;
    }
    sub.raw = c->raw;
    sub.raw_len = c->raw_len;
    sub.render = API_RENDER_TEXT;
    c->wait_ms = prefer_wait_ms(req);
    sub.notify = c->wait_ms > 0;
    if (c->wait_ms > 0 && api_wait(a, req, c->tenant, c->id, WAIT_TASK, c->wait_ms) < 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    if (api_submit(a, c, &sub, on_task_submitted, &e) < 0) {
        if (c->wait_ms > 0) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, req, &e);
        goto fail;
    }
    cJSON_Delete(sub.webhook);
    return; /* on_task_submitted owns c now */
fail:
    cJSON_Delete(sub.webhook);
    api_ctx_free(c);
}

/* A response task's input with its previous turn expanded (or the error, answered). */
static void on_task_expanded(struct api_ctx *c, cJSON *expanded, const struct core_err *err)
{
    if (expanded == NULL) {
        api_reply_err(c->api, c->req, err);
        api_ctx_free(c);
        return;
    }
    /* kept with the request (the body stays as the client sent it, which is what was checked) */
    c->task = expanded;
    task_submit(c, expanded);
}

void api_tasks_create(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    struct api_submit sub = {0};
    const char *raw = NULL;
    size_t raw_len = 0;
    struct core_err e;
    struct api_ctx *c = NULL;
    const cJSON *prev;
    cJSON *body = api_read_json(a, req, &raw, &raw_len);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(body, "tasks");

    if (body == NULL) {
        return;
    }
    if (cJSON_IsObject(body) && tasks != NULL) {
        tasks_create_bulk(a, req, tenant, tasks);
        cJSON_Delete(body);
        return;
    }
    core_err_clear(&e);
    if (api_validate_task(a, tenant, body, &sub, &e) < 0) {
        cJSON_Delete(sub.webhook);
        api_reply_err(a, req, &e);
        cJSON_Delete(body);
        return;
    }
    cJSON_Delete(sub.webhook); /* validated again, and kept, by task_submit */
    c = api_ctx_for_new_kind(a, req, tenant, sub.kind);
    if (c == NULL) {
        cJSON_Delete(body);
        return;
    }
    c->body = body;
    c->raw = raw;
    c->raw_len = raw_len;
    prev = cJSON_GetObjectItemCaseSensitive(sub.input, "previous_response_id");
    if (sub.kind != TASK_KIND_RESPONSE || prev == NULL || cJSON_IsNull(prev)) {
        task_submit(c, sub.input);
        return;
    }
    if (api_response_expand(a, c, sub.input, on_task_expanded, &e) < 0) {
        api_reply_err(a, req, &e);
        api_ctx_free(c);
    }
}

/* ---- read --------------------------------------------------------------------------------- */

/* GET's answer: the task (with its place in line while queued), 404 for another tenant's. */
static void on_get(const struct txn_got *t, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    const char *owner = t != NULL ? task_hash_get(t->hash, "tenant") : NULL;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (owner == NULL || strcmp(owner, c->tenant) != 0) {
        /* Another tenant's task is indistinguishable from a missing one. */
        api_reply_not_found(c->api, c->req, c->id);
    } else {
        struct api_task_live live = {t->queue_position, t->eta_s};
        api_reply_json_text(c->api, c->req, 200,
                            api_task_text(c->api, c->req, c->id, t->hash, true, &live));
    }
    api_ctx_free(c);
}

void api_tasks_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    struct api_ctx *c = api_ctx_for_task(a, req, tenant, arg);

    if (c == NULL) {
        return;
    }
    if (txn_get(a->store, &a->txn, c->id, on_get, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

/* ---- list --------------------------------------------------------------------------------- */

/* LIST's answer: OpenAI's list page; when nothing matched within the scan bound, last_id is the
 * cursor to go on from. */
static void on_list(const struct txn_listed *l, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *list, *data;
    const char *first = NULL, *last = NULL;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    if (l->bad_cursor) {
        api_reply_error(c->api, c->req, CORE_EINVAL, "after", NULL,
                        "'after' does not name a task in this list");
        goto out;
    }
    list = cJSON_CreateObject();
    cJSON_AddStringToObject(list, "object", "list");
    data = cJSON_AddArrayToObject(list, "data");
    for (size_t i = 0; i < l->n; i++) {
        const char *id;
        const redisReply *hash;
        char *text;
        cJSON *t;

        txn_listed_task(l, i, &id, &hash);
        text = api_task_text(c->api, c->req, id, hash, false, NULL);
        t = text ? cJSON_CreateRaw(text) : NULL;
        cJSON_free(text);
        if (t) {
            cJSON_AddItemToArray(data, t);
            first = first ? first : id;
            last = id;
        }
    }
    if (first) {
        cJSON_AddStringToObject(list, "first_id", first);
        cJSON_AddStringToObject(list, "last_id", last);
    } else if (l->has_more && l->cursor[0] != '\0') {
        /* Nothing matched within the scan bound: last_id is where to go on from. */
        cJSON_AddNullToObject(list, "first_id");
        cJSON_AddStringToObject(list, "last_id", l->cursor);
    } else {
        cJSON_AddNullToObject(list, "first_id");
        cJSON_AddNullToObject(list, "last_id");
    }
    cJSON_AddBoolToObject(list, "has_more", l->has_more);
    api_reply_json(c->api, c->req, 200, list);
out:
    api_ctx_free(c);
}

void api_tasks_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    const struct api_list_spec spec = {20, a->cfg->limits.max_list_limit, NULL, "task"};
    struct txn_list p = {.tenant = tenant, .scan_cap = API_LIST_SCAN_CAP};
    struct evkeyvalq params;
    const char *status;
    long limit;
    struct api_ctx *c = NULL;

    if (api_list_query(a, req, &params, &spec, &limit, &p.after) < 0) {
        goto out;
    }
    p.limit = limit;
    status = evhttp_find_header(&params, "status");
    if (status != NULL) {
        int st = task_status_parse(status);
        if (st < 0) {
            api_reply_error(a, req, CORE_EINVAL, "status", NULL,
                            "'status' must be one of queued, in_progress, cancelling, completed, "
                            "failed, cancelled, expired");
            goto out;
        }
        p.by_status = true;
        p.status = (enum task_status)st;
    }
    c = api_ctx_new(a, req, tenant);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    if (txn_list(a->store, &a->txn, &p, on_list, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
out:
    evhttp_clear_headers(&params);
}

/* ---- cancel ------------------------------------------------------------------------------- */

/* CANCEL's answer: the task cancelled (or cancelling), 404, or 409 for a finished one. */
static void on_cancel(const struct txn_cancelled *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->result == TXN_CANCEL_NOTFOUND) {
        api_reply_not_found(c->api, c->req, c->id);
    } else if (r->result == TXN_CANCEL_CONFLICT) {
        api_reply_error(c->api, c->req, CORE_ECONFLICT, "id", "task_not_cancellable",
                        "The task is already %s and cannot be cancelled",
                        task_status_name(r->status));
    } else {
        api_reply_json_text(c->api, c->req, 200,
                            api_task_text(c->api, c->req, c->id, r->hash, true, NULL));
    }
    api_ctx_free(c);
}

void api_tasks_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    struct api_ctx *c = api_ctx_for_task(a, req, tenant, arg);
    struct txn_cancel p = {.id = arg,
                           .tenant = tenant,
                           .now_ms = util_now_ms(),
                           .retention_ms = (int64_t)a->cfg->tasks.retention_s * 1000};

    if (c == NULL) {
        return;
    }
    if (txn_cancel(a->store, &a->txn, &p, on_cancel, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}
