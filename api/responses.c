/*
 * api/responses.c — OpenAI's Responses API over sluice's tasks: POST /v1/responses, GET, cancel,
 * DELETE and input_items of /v1/responses/{id} (the shapes are adapters/responses.h's).
 *
 * A response is a task of kind "response" on a chat alias whose id ("resp_…") is the response's;
 * its input is the client's request with previous_response_id expanded here into the full item
 * list (the earlier request's input items, then its output items, then the new input; its
 * instructions are not carried over, as OpenAI does), so no call depends on a provider's stored
 * state. Three ways to ask:
 *
 *   plain            interactive priority; the connection waits (api_wait WAIT_RESULT) and is
 *                    answered with the stored response object.
 *   stream: true     the same wait, answered as text/event-stream: each typed event the worker
 *                    publishes is relayed as it comes (WAIT_RESPONSE_STREAM), up to the terminal
 *                    one (response.completed / .failed / .incomplete; no [DONE] line: OpenAI
 *                    sends none for responses).
 *   background: true normal priority; answered at once (200) with the response object, queued.
 *                    The task streams upstream, so its events are stored ({tag}:ev:<id>) and
 *                    GET ?stream=true&starting_after=N can replay and follow them; with
 *                    stream: true as well, this request is that stream.
 *
 * `store: false` deletes the task once the answer went out (api_wait_forget): nothing of it can
 * be read or continued. sluice's extension `webhook: {url, events}` (events among
 * response.completed, response.failed, response.cancelled, response.incomplete: all four by
 * default) is the task's webhook, delivered like any task's (Standard Webhooks, signed); it is
 * not part of the stored request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "adapters/responses.h"
#include "api/internal.h"
#include "core/log.h"
#include "core/task.h"
#include "core/txn_task.h"
#include "core/util.h"

/* How a POST /v1/responses is answered (bits of c->mode). */
enum {
    RESP_BACKGROUND = 1, /* answered at once; the task runs at normal priority */
    RESP_STREAM = 2,     /* answered as the task's event stream */
    RESP_FORGET = 4,     /* store: false: the task is deleted once answered */
};

#define RESP_ITEMS_DEFAULT 20
#define RESP_ITEMS_MAX 100

/* Every way a response ends; the default is all of them. */
static const char *const response_events[] = {"response.completed", "response.failed",
                                              "response.cancelled", "response.incomplete", NULL};
const struct api_webhook_events api_response_webhook_events = {
    response_events, 4,
    "response.completed, response.failed, response.cancelled and response.incomplete"};

/* What a response shows for its task's status. */
static const struct {
    enum task_status task;
    enum responses_status response;
} status_map[] = {
    {TASK_QUEUED, RESPONSES_QUEUED},        {TASK_IN_PROGRESS, RESPONSES_IN_PROGRESS},
    {TASK_CANCELLING, RESPONSES_CANCELLED}, {TASK_CANCELLED, RESPONSES_CANCELLED},
    {TASK_COMPLETED, RESPONSES_COMPLETED},  {TASK_FAILED, RESPONSES_FAILED},
    {TASK_EXPIRED, RESPONSES_FAILED},
};

/* The id prefix of an input item without one, by its type (messages when it names none). */
static const struct {
    const char *type;
    const char *prefix;
} item_prefixes[] = {
    {"message", "msg_"},
    {"function_call", "fc_"},
    {"function_call_output", "fco_"},
    {"reasoning", "rs_"},
};

static void reply_not_found(struct api *a, struct evhttp_request *req, const char *id)
{
    api_reply_error(a, req, CORE_ENOTFOUND, "response_id", "response_not_found",
                    "Response with id '%.64s' not found.", id);
}

/* The hash is a response of this tenant (another tenant's is indistinguishable from none). */
static bool is_own_response(const redisReply *hash, const char *tenant)
{
    const char *owner = task_hash_get(hash, "tenant");
    const char *kind = task_hash_get(hash, "kind");

    return owner != NULL && strcmp(owner, tenant) == 0 && kind != NULL &&
           task_kind_parse(kind) == TASK_KIND_RESPONSE;
}

/* A copy of s that cJSON_free frees (what api_reply_json_text takes). */
static char *text_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cJSON_malloc(n);

    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

/* ---- the response object of a task ------------------------------------------------------- */

/* A failed or expired task's error as a response's {code, message}. Caller frees. */
static cJSON *response_error(const redisReply *hash, enum task_status status)
{
    const char *text = task_hash_get(hash, "error");
    cJSON *stored = text ? cJSON_Parse(text) : NULL;
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(stored, "code"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(stored, "type"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(stored, "message"));
    cJSON *e = cJSON_CreateObject();

    cJSON_AddStringToObject(e, "code",
                            code                     ? code
                            : type                   ? type
                            : status == TASK_EXPIRED ? "expired"
                                                     : "server_error");
    cJSON_AddStringToObject(e, "message",
                            msg                      ? msg
                            : status == TASK_EXPIRED ? "The response passed its deadline"
                                                     : "The response failed");
    cJSON_Delete(stored);
    return e;
}

char *api_response_text(const char *id, const redisReply *hash)
{
    const char *input = task_hash_get(hash, "input");
    const char *result = task_hash_get(hash, "result");
    const char *created = task_hash_get(hash, "created");
    int st = task_status_parse(task_hash_get(hash, "status"));
    enum responses_status rs = RESPONSES_FAILED;
    cJSON *req, *error = NULL, *obj;
    char *text;

    if (st < 0) {
        return NULL;
    }
    if (st == TASK_COMPLETED && result != NULL && result[0] != '\0') {
        return text_dup(result);
    }
    for (size_t i = 0; i < sizeof(status_map) / sizeof(status_map[0]); i++) {
        if (status_map[i].task == (enum task_status)st) {
            rs = status_map[i].response;
        }
    }
    if (rs == RESPONSES_COMPLETED) {
        rs = RESPONSES_FAILED; /* completed without a stored result: nothing to show but that */
    }
    if (rs == RESPONSES_FAILED) {
        error = response_error(hash, (enum task_status)st);
    }
    req = input ? cJSON_Parse(input) : NULL;
    obj = responses_object(req, id, created ? strtoll(created, NULL, 10) / 1000 : 0, rs, error);
    text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    cJSON_Delete(req);
    cJSON_Delete(error);
    return text;
}

/* ---- previous_response_id ----------------------------------------------------------------- */

struct expand {
    struct api_ctx *c;
    api_expand_cb cb;
    const cJSON *request; /* borrowed from the caller, who keeps it with c */
};

/*
 * Appends input (a request's "input": a string, one user message, or a list of items) to items
 * as items. A string is the user message OpenAI makes of it.
 */
static void append_items(cJSON *items, const cJSON *input)
{
    const cJSON *item;

    if (cJSON_IsString(input)) {
        cJSON *msg = cJSON_CreateObject();
        cJSON *parts = cJSON_AddArrayToObject(msg, "content");
        cJSON *part = cJSON_CreateObject();

        cJSON_AddStringToObject(msg, "type", "message");
        cJSON_AddStringToObject(msg, "role", "user");
        cJSON_AddStringToObject(part, "type", "input_text");
        cJSON_AddStringToObject(part, "text", input->valuestring);
        cJSON_AddItemToArray(parts, part);
        cJSON_AddItemToArray(items, msg);
        return;
    }
    cJSON_ArrayForEach(item, input)
    {
        cJSON_AddItemToArray(items, cJSON_Duplicate(item, true));
    }
}

/*
 * The new request: request with its input replaced by the previous request's (expanded) input
 * items, the previous response's output items, and its own. Caller frees; NULL on OOM.
 */
static cJSON *expanded_request(const cJSON *request, const cJSON *prev_req, const cJSON *prev_resp)
{
    cJSON *out = cJSON_Duplicate(request, true);
    cJSON *items = cJSON_CreateArray();

    if (out == NULL || items == NULL) {
        cJSON_Delete(out);
        cJSON_Delete(items);
        return NULL;
    }
    append_items(items, cJSON_GetObjectItemCaseSensitive(prev_req, "input"));
    append_items(items, cJSON_GetObjectItemCaseSensitive(prev_resp, "output"));
    append_items(items, cJSON_GetObjectItemCaseSensitive(request, "input"));
    if (cJSON_HasObjectItem(out, "input")) {
        cJSON_ReplaceItemInObjectCaseSensitive(out, "input", items);
    } else {
        cJSON_AddItemToObject(out, "input", items);
    }
    return out;
}

/* The previous response is read: expand from it, or say why not. */
static void on_previous(const struct txn_got *t, const struct core_err *err, void *arg)
{
    struct expand *x = arg;
    struct api_ctx *c = x->c;
    const char *prev_id =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x->request, "previous_response_id"));
    cJSON *prev_req = NULL, *prev_resp = NULL, *out = NULL;
    struct core_err e;
    int st;

    core_err_clear(&e);
    if (err != NULL) {
        core_err_set(&e, CORE_EUNAVAILABLE, NULL, "The task store is unavailable; retry shortly");
        core_err_set_code(&e, "store_unavailable");
        goto done;
    }
    if (!is_own_response(t->hash, c->tenant)) {
        core_err_set(&e, CORE_ENOTFOUND, "previous_response_id",
                     "Previous response with id '%.64s' not found.", prev_id);
        core_err_set_code(&e, "previous_response_not_found");
        goto done;
    }
    st = task_status_parse(task_hash_get(t->hash, "status"));
    prev_req = cJSON_Parse(task_hash_get(t->hash, "input") ? task_hash_get(t->hash, "input") : "");
    prev_resp =
        cJSON_Parse(task_hash_get(t->hash, "result") ? task_hash_get(t->hash, "result") : "");
    if (st != TASK_COMPLETED || !cJSON_IsObject(prev_resp)) {
        core_err_set(&e, CORE_EINVAL, "previous_response_id",
                     "Previous response '%.64s' is %s; only a completed response can be "
                     "continued",
                     prev_id, st < 0 ? "unreadable" : task_status_name((enum task_status)st));
        goto done;
    }
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(prev_req, "store"))) {
        core_err_set(&e, CORE_EINVAL, "previous_response_id",
                     "Previous response '%.64s' was created with store: false and cannot be "
                     "continued",
                     prev_id);
        goto done;
    }
    out = expanded_request(x->request, prev_req, prev_resp);
    if (out == NULL) {
        core_err_set(&e, CORE_ENOMEM, NULL, "Out of memory");
    }
done:
    cJSON_Delete(prev_req);
    cJSON_Delete(prev_resp);
    x->cb(c, out, out ? NULL : &e);
    free(x);
}

int api_response_expand(struct api *a, struct api_ctx *c, const cJSON *request, api_expand_cb cb,
                        struct core_err *err)
{
    const char *prev =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(request, "previous_response_id"));
    struct expand *x;

    if (prev == NULL || !util_id_valid(RESPONSES_ID_PREFIX, prev)) {
        int rc = core_err_set(err, CORE_ENOTFOUND, "previous_response_id",
                              "Previous response with id '%.64s' not found.", prev ? prev : "");
        core_err_set_code(err, "previous_response_not_found");
        return rc;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    *x = (struct expand){c, cb, request};
    if (txn_get(a->store, &a->txn, prev, on_previous, x) < 0) {
        int rc = core_err_set(err, CORE_EUNAVAILABLE, NULL,
                              "The task store is unavailable; retry shortly");
        core_err_set_code(err, "store_unavailable");
        free(x);
        return rc;
    }
    return 0;
}

/* ---- create -------------------------------------------------------------------------------- */

/* The request the task stores: the expanded one when there was a previous response. */
static const cJSON *stored_request(const struct api_ctx *c)
{
    return c->task ? c->task : c->body;
}

/* After the SUBMIT: a background response is answered now; the others by their waiter. */
static void on_submitted(struct api_ctx *c, int outcome, redisReply *dup,
                         const struct core_err *err)
{
    struct api *a = c->api;
    bool waits = !(c->mode & RESP_BACKGROUND) || (c->mode & RESP_STREAM);

    if (outcome < 0) {
        if (waits) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, c->req, err);
    } else if (waits) {
        if (outcome == 1) {
            api_wait_rekey(a, c->orig_id, c->id);
        }
    } else if (outcome == 1) {
        /* an idempotent replay: the earlier response as it is now */
        char *text = api_response_text(c->id, dup);
        if (text == NULL) {
            api_reply_error(a, c->req, CORE_EINTERNAL, NULL, NULL,
                            "The earlier response %s is unreadable", c->id);
        } else {
            api_reply_json_text(a, c->req, 200, text);
        }
    } else {
        cJSON *o = responses_object(stored_request(c), c->id, c->created_ms / 1000,
                                    RESPONSES_QUEUED, NULL);
        if (o == NULL) {
            api_reply_error(a, c->req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        } else {
            api_reply_json(a, c->req, 200, o);
        }
    }
    api_ctx_free(c);
}

/* Submits the response task of c (request: what it stores, borrowed from c); frees c after an
 * error it answered. */
static void response_submit(struct api_ctx *c, const cJSON *request)
{
    struct api *a = c->api;
    struct evhttp_request *req = c->req;
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->body, "model"));
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(c->body, "metadata");
    struct api_submit sub = {0};
    bool bg = c->mode & RESP_BACKGROUND, stream = c->mode & RESP_STREAM, bad = false;
    int64_t wait_ms = (int64_t)a->cfg->limits.sync_wait_s * 1000;
    struct core_err e;

    core_err_clear(&e);
    sub.kind = TASK_KIND_RESPONSE;
    sub.input = request;
    sub.model = model ? config_model_find(a->cfg, model) : NULL;
    sub.prio = bg ? TASK_PRIO_NORMAL : TASK_PRIO_INTERACTIVE;
    sub.metadata = cJSON_IsObject(meta) ? meta : NULL;
    /* a background response streams upstream so its events are kept for a resumed stream */
    sub.stream = stream || bg;
    sub.webhook = c->webhook;
    sub.idem = api_idempotency_key(a, req, &bad); /* checked before: cannot be bad now */
    sub.raw = c->raw;
    sub.raw_len = c->raw_len;
    sub.notify = !bg || stream;
    sub.render = API_RENDER_NONE;
    if (sub.model == NULL) {
        api_reply_error(a, req, CORE_ENOTFOUND, "model", "model_not_found",
                        "The model '%.128s' does not exist", model ? model : "");
        goto fail;
    }
    if (sub.notify && api_wait(a, req, c->tenant, c->id,
                               stream ? WAIT_RESPONSE_STREAM : WAIT_RESULT, wait_ms) < 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    if (sub.notify && (c->mode & RESP_FORGET)) {
        api_wait_forget(a, c->id);
    }
    if (api_submit(a, c, &sub, on_submitted, &e) < 0) {
        if (sub.notify) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, req, &e);
        goto fail;
    }
    return; /* on_submitted owns c */
fail:
    api_ctx_free(c);
}

static void on_expanded(struct api_ctx *c, cJSON *expanded, const struct core_err *err)
{
    if (expanded == NULL) {
        api_reply_err(c->api, c->req, err);
        api_ctx_free(c);
        return;
    }
    c->task = expanded; /* freed with c */
    response_submit(c, expanded);
}

/*
 * POST /v1/responses: everything that can be checked without Redis is checked first (the model,
 * responses_check, metadata, the webhook, the Idempotency-Key); then the previous response is
 * read when one is named, and the task submitted.
 */
void api_responses_create(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    const char *raw = NULL;
    size_t raw_len = 0;
    struct core_err e;
    struct api_ctx *c = NULL;
    cJSON *webhook = NULL, *hook = NULL;
    const cJSON *meta, *prev;
    bool bad = false;
    cJSON *body = api_read_json(a, req, &raw, &raw_len);

    if (body == NULL) {
        return;
    }
    core_err_clear(&e);
    if (api_model_for_kind(a, req, body, TASK_KIND_CHAT) == NULL) {
        goto out;
    }
    /* sluice's own field: the task's webhook, not part of the request a provider sees */
    webhook = cJSON_DetachItemFromObjectCaseSensitive(body, "webhook");
    if (responses_check(body, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    if (meta != NULL && !cJSON_IsNull(meta) && api_validate_metadata(meta, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    if (webhook != NULL && !cJSON_IsNull(webhook) &&
        (hook = api_validate_webhook(a, tenant, webhook, &api_response_webhook_events, &e)) ==
            NULL) {
        api_reply_err(a, req, &e);
        goto out;
    }
    api_idempotency_key(a, req, &bad);
    if (bad) {
        goto out;
    }
    c = api_ctx_for_new_kind(a, req, tenant, TASK_KIND_RESPONSE);
    if (c == NULL) {
        goto out;
    }
    c->mode =
        (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "background")) ? RESP_BACKGROUND : 0) |
        (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream")) ? RESP_STREAM : 0) |
        (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "store")) ? RESP_FORGET : 0);
    c->body = body;
    c->webhook = hook;
    c->raw = raw;
    c->raw_len = raw_len;
    body = NULL;
    hook = NULL;
    prev = cJSON_GetObjectItemCaseSensitive(c->body, "previous_response_id");
    if (prev == NULL || cJSON_IsNull(prev)) {
        response_submit(c, c->body);
    } else if (api_response_expand(a, c, c->body, on_expanded, &e) < 0) {
        api_reply_err(a, req, &e);
        api_ctx_free(c);
    }
out:
    cJSON_Delete(webhook);
    cJSON_Delete(hook);
    cJSON_Delete(body);
}

/* ---- query strings ------------------------------------------------------------------------ */

/* The include values of a query ("include" or "include[]", as the SDKs send arrays), into out
 * (a cJSON array). */
static void query_includes(struct evkeyvalq *params, cJSON *out)
{
    struct evkeyval *kv;

    TAILQ_FOREACH(kv, params, next)
    {
        if (strcmp(kv->key, "include") == 0 || strcmp(kv->key, "include[]") == 0) {
            cJSON_AddItemToArray(out, cJSON_CreateString(kv->value));
        }
    }
}

/*
 * Checks the include values asked for when reading a response (borrowed) against what its create
 * request included: the stored response holds what that asked for and nothing else, so any
 * other value (unknown, or not asked for then) is refused rather than silently not shown.
 */
static int check_includes(const cJSON *asked, const redisReply *hash, struct core_err *e)
{
    const char *input = task_hash_get(hash, "input");
    cJSON *req = input ? cJSON_Parse(input) : NULL;
    const cJSON *stored = cJSON_GetObjectItemCaseSensitive(req, "include");
    const cJSON *v, *s;
    int rc = 0;

    cJSON_ArrayForEach(v, asked)
    {
        bool found = false;
        cJSON_ArrayForEach(s, stored)
        {
            found = found || (cJSON_IsString(s) && strcmp(s->valuestring, v->valuestring) == 0);
        }
        if (!found) {
            rc = core_err_set(e, CORE_EINVAL, "include",
                              "'include' value '%.64s' was not asked for when the response was "
                              "created, so it is not stored with it",
                              v->valuestring);
            break;
        }
    }
    cJSON_Delete(req);
    return rc;
}

/* A boolean query value: 1 true, 0 false or absent, -1 anything else. */
static int query_bool(const char *v)
{
    if (v == NULL || strcmp(v, "false") == 0) {
        return 0;
    }
    return strcmp(v, "true") == 0 ? 1 : -1;
}

/* ---- read ---------------------------------------------------------------------------------- */

static void on_get(const struct txn_got *t, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct core_err e;
    char *text;

    core_err_clear(&e);
    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (!is_own_response(t->hash, c->tenant)) {
        reply_not_found(c->api, c->req, c->id);
    } else if (check_includes(c->body, t->hash, &e) < 0) {
        api_reply_err(c->api, c->req, &e);
    } else if ((text = api_response_text(c->id, t->hash)) == NULL) {
        api_reply_error(c->api, c->req, CORE_EINTERNAL, NULL, NULL, "The response %s is unreadable",
                        c->id);
    } else {
        api_reply_json_text(c->api, c->req, 200, text);
    }
    api_ctx_free(c);
}

/*
 * GET /v1/responses/{id}: the response object; with stream=true its events (replayed from
 * starting_after + 1, then followed: api_responses_follow). include_obfuscation is accepted
 * either way: sluice's events carry no obfuscation padding.
 */
void api_responses_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *after_s;
    long long after = -1;
    int stream;
    struct api_ctx *c = NULL;
    cJSON *includes = cJSON_CreateArray();

    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, NULL, "Malformed query string");
        goto out;
    }
    stream = query_bool(evhttp_find_header(&params, "stream"));
    after_s = evhttp_find_header(&params, "starting_after");
    query_includes(&params, includes);
    if (stream < 0 || query_bool(evhttp_find_header(&params, "include_obfuscation")) < 0) {
        api_reply_error(a, req, CORE_EINVAL, stream < 0 ? "stream" : "include_obfuscation", NULL,
                        "'%s' must be true or false",
                        stream < 0 ? "stream" : "include_obfuscation");
        goto out;
    }
    if (after_s != NULL) {
        char *end = NULL;
        after = strtoll(after_s, &end, 10);
        if (!stream || *after_s == '\0' || *end != '\0' || after < 0 || after > INT32_MAX) {
            api_reply_error(a, req, CORE_EINVAL, "starting_after", NULL,
                            "'starting_after' must be a sequence number (an integer >= 0), "
                            "with stream=true");
            goto out;
        }
    }
    if (stream && cJSON_GetArraySize(includes) > 0) {
        api_reply_error(a, req, CORE_EINVAL, "include", NULL,
                        "'include' applies to the response object, not to its event stream");
        goto out;
    }
    if (!util_id_valid(RESPONSES_ID_PREFIX, arg)) {
        reply_not_found(a, req, arg);
        goto out;
    }
    if (stream) {
        api_responses_follow(a, req, tenant, arg, after);
        goto out;
    }
    c = api_ctx_for_id(a, req, tenant, RESPONSES_ID_PREFIX, arg, reply_not_found);
    if (c == NULL) {
        goto out;
    }
    c->body = includes;
    includes = NULL;
    if (txn_get(a->store, &a->txn, c->id, on_get, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
out:
    cJSON_Delete(includes);
    evhttp_clear_headers(&params);
}

/* ---- cancel ------------------------------------------------------------------------------- */

static void on_cancel(const struct txn_cancelled *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    const char *input, *created;
    cJSON *req;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->result == TXN_CANCEL_NOTFOUND) {
        reply_not_found(c->api, c->req, c->id);
    } else if (r->result == TXN_CANCEL_CONFLICT) {
        api_reply_error(c->api, c->req, CORE_ECONFLICT, "response_id", "response_not_cancellable",
                        "Cannot cancel a response that is already %s.",
                        task_status_name(r->status));
    } else {
        input = task_hash_get(r->hash, "input");
        created = task_hash_get(r->hash, "created");
        req = input ? cJSON_Parse(input) : NULL;
        api_reply_json(c->api, c->req, 200,
                       responses_object(req, c->id, created ? strtoll(created, NULL, 10) / 1000 : 0,
                                        RESPONSES_CANCELLED, NULL));
        cJSON_Delete(req);
    }
    api_ctx_free(c);
}

/* POST /v1/responses/{id}/cancel: the CANCEL script (core/txn_task.h): a queued response is
 * cancelled now, a running one as soon as its worker sees it (shown cancelled either way). */
void api_responses_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    struct api_ctx *c = api_ctx_for_id(a, req, tenant, RESPONSES_ID_PREFIX, arg, reply_not_found);
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

/* ---- delete -------------------------------------------------------------------------------- */

static void on_delete(const struct txn_deleted *d, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *o;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (d->result == TXN_DELETE_NOTFOUND) {
        reply_not_found(c->api, c->req, c->id);
    } else if (d->result == TXN_DELETE_CONFLICT) {
        api_reply_error(c->api, c->req, CORE_ECONFLICT, "response_id", "response_not_finished",
                        "The response is %s; cancel it before deleting it",
                        task_status_name(d->status));
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", c->id);
        cJSON_AddStringToObject(o, "object", "response");
        cJSON_AddBoolToObject(o, "deleted", true);
        api_reply_json(c->api, c->req, 200, o);
    }
    api_ctx_free(c);
}

/* DELETE /v1/responses/{id}: a finished response and its stored events (core/txn_task.h). */
void api_responses_delete(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    struct api_ctx *c = api_ctx_for_id(a, req, tenant, RESPONSES_ID_PREFIX, arg, reply_not_found);
    struct txn_delete p = {.id = arg, .tenant = tenant};

    if (c == NULL) {
        return;
    }
    if (txn_delete(a->store, &a->txn, &p, on_delete, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

/* ---- input items --------------------------------------------------------------------------- */

/*
 * Input item index of response id as the list shows it (item borrowed; caller frees): with its
 * own id, or one derived from the response id's random part and the index (the same on every
 * read, so `after` can name it); a message with its type, and string content as one text part,
 * as OpenAI lists them.
 */
static cJSON *listed_item(const char *id, const cJSON *item, int index)
{
    cJSON *o = cJSON_Duplicate(item, true);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "type"));
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "role"));
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");

    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    if (type == NULL && role != NULL) {
        type = "message";
        cJSON_AddStringToObject(o, "type", type);
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "id"))) {
        const char *prefix = "item_";
        char derived[96];

        for (size_t i = 0; type && i < sizeof(item_prefixes) / sizeof(item_prefixes[0]); i++) {
            if (strcmp(type, item_prefixes[i].type) == 0) {
                prefix = item_prefixes[i].prefix;
            }
        }
        snprintf(derived, sizeof(derived), "%s%s_%d", prefix, id + strlen(RESPONSES_ID_PREFIX),
                 index);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
        cJSON_AddStringToObject(o, "id", derived);
    }
    if (type && strcmp(type, "message") == 0 && cJSON_IsString(content)) {
        cJSON *parts = cJSON_CreateArray();
        cJSON *part = cJSON_CreateObject();
        bool assistant = role && strcmp(role, "assistant") == 0;

        cJSON_AddStringToObject(part, "type", assistant ? "output_text" : "input_text");
        cJSON_AddStringToObject(part, "text", content->valuestring);
        if (assistant) {
            cJSON_AddArrayToObject(part, "annotations");
        }
        cJSON_AddItemToArray(parts, part);
        cJSON_ReplaceItemInObjectCaseSensitive(o, "content", parts);
    }
    return o;
}

/* An input_items request while its response is read. */
struct items_query {
    struct api_ctx *c;
    long limit;
    bool asc;
    char after[128]; /* "" for the first page */
    cJSON *includes; /* owned */
};

/*
 * The page: the stored input's items (a string input is one user message) in the order asked,
 * starting after the item `after` names (400 when none does), at most limit of them.
 */
static void on_items(const struct txn_got *t, const struct core_err *err, void *arg)
{
    struct items_query *q = arg;
    struct api_ctx *c = q->c;
    const char *input = t ? task_hash_get(t->hash, "input") : NULL;
    cJSON *req = NULL, *items = NULL, *data = NULL;
    struct core_err e;
    int n, start = 0, i;

    core_err_clear(&e);
    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    if (!is_own_response(t->hash, c->tenant)) {
        reply_not_found(c->api, c->req, c->id);
        goto out;
    }
    if (check_includes(q->includes, t->hash, &e) < 0) {
        api_reply_err(c->api, c->req, &e);
        goto out;
    }
    req = input ? cJSON_Parse(input) : NULL;
    items = cJSON_CreateArray();
    append_items(items, cJSON_GetObjectItemCaseSensitive(req, "input"));
    n = cJSON_GetArraySize(items);
    data = cJSON_CreateArray();
    for (i = 0; i < n; i++) {
        int at = q->asc ? i : n - 1 - i;
        cJSON_AddItemToArray(data, listed_item(c->id, cJSON_GetArrayItem(items, at), at));
    }
    if (q->after[0] != '\0') {
        start = -1;
        for (i = 0; i < n && start < 0; i++) {
            const char *iid = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(data, i), "id"));
            if (iid != NULL && strcmp(iid, q->after) == 0) {
                start = i + 1;
            }
        }
        if (start < 0) {
            api_reply_error(c->api, c->req, CORE_EINVAL, "after", NULL,
                            "'after' does not name an input item of this response");
            goto out;
        }
    }
    for (i = 0; i < start; i++) {
        cJSON_DeleteItemFromArray(data, 0);
    }
    while (cJSON_GetArraySize(data) > q->limit) {
        cJSON_DeleteItemFromArray(data, cJSON_GetArraySize(data) - 1);
    }
    api_reply_json(c->api, c->req, 200, api_list_page(data, n - start > q->limit));
    data = NULL;
out:
    cJSON_Delete(data);
    cJSON_Delete(items);
    cJSON_Delete(req);
    cJSON_Delete(q->includes);
    free(q);
    api_ctx_free(c);
}

/* GET /v1/responses/{id}/input_items?limit=&after=&order=&include=: OpenAI's list page. */
void api_responses_input_items(struct api *a, struct evhttp_request *req, const char *tenant,
                               const char *arg)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *limit_s, *after, *order;
    struct items_query *q = calloc(1, sizeof(*q));

    TAILQ_INIT(&params);
    if (q == NULL || (q->includes = cJSON_CreateArray()) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, NULL, "Malformed query string");
        goto fail;
    }
    limit_s = evhttp_find_header(&params, "limit");
    after = evhttp_find_header(&params, "after");
    order = evhttp_find_header(&params, "order");
    q->limit = RESP_ITEMS_DEFAULT;
    if (limit_s != NULL) {
        char *end = NULL;
        q->limit = strtol(limit_s, &end, 10);
        if (*limit_s == '\0' || *end != '\0' || q->limit < 1 || q->limit > RESP_ITEMS_MAX) {
            api_reply_error(a, req, CORE_EINVAL, "limit", NULL,
                            "'limit' must be an integer between 1 and %d", RESP_ITEMS_MAX);
            goto fail;
        }
    }
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        api_reply_error(a, req, CORE_EINVAL, "order", NULL, "'order' must be asc or desc");
        goto fail;
    }
    q->asc = order != NULL && strcmp(order, "asc") == 0;
    if (after != NULL && (after[0] == '\0' || strlen(after) >= sizeof(q->after))) {
        api_reply_error(a, req, CORE_EINVAL, "after", NULL, "'after' must be an input item id");
        goto fail;
    }
    snprintf(q->after, sizeof(q->after), "%s", after ? after : "");
    query_includes(&params, q->includes);
    q->c = api_ctx_for_id(a, req, tenant, RESPONSES_ID_PREFIX, arg, reply_not_found);
    if (q->c == NULL) {
        goto fail;
    }
    if (txn_get(a->store, &a->txn, q->c->id, on_items, q) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(q->c);
        goto fail;
    }
    evhttp_clear_headers(&params);
    return;
fail:
    if (q != NULL) {
        cJSON_Delete(q->includes);
    }
    free(q);
    evhttp_clear_headers(&params);
}
