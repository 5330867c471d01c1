/*
 * api/batches.c — the Batch API's endpoints and the batch object (see api/batches.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/batches.h"
#include "api/files.h"
#include "core/log.h"
#include "core/store.h"
#include "core/task.h"
#include "core/txn_batch.h"
#include "core/util.h"

#define BATCHES_LIST_DEFAULT 20
#define BATCHES_LIST_MAX 100
/* The most fields a POST /v1/batches writes with the batch (it writes 10 at most today). */
#define BATCHES_CREATE_FIELDS 15

/* The first four are the default: every way a batch ends. */
static const char *const batch_events[] = {"batch.completed", "batch.failed", "batch.cancelled",
                                           "batch.expired", NULL};
const struct api_webhook_events api_batch_webhook_events = {
    batch_events, 4, "batch.completed, batch.failed, batch.cancelled and batch.expired"};

static const struct {
    const char *endpoint;
    enum task_kind kind;
} endpoints[] = {
    {"/v1/chat/completions", TASK_KIND_CHAT},
    {"/v1/embeddings", TASK_KIND_EMBEDDING},
    {"/v1/responses", TASK_KIND_RESPONSE},
};

int api_batch_kind(const char *endpoint)
{
    for (size_t i = 0; endpoint && i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        if (strcmp(endpoints[i].endpoint, endpoint) == 0) {
            return (int)endpoints[i].kind;
        }
    }
    return -1;
}

int api_batch_task_id(const char *batch_id, enum task_kind kind, long long ordinal, char *out,
                      size_t size)
{
    char seed[96];

    snprintf(seed, sizeof(seed), "%s:%lld", batch_id, ordinal);
    return util_derived_id(api_task_id_prefix(kind), seed, out, size);
}

cJSON *api_batch_fields(const redisReply *hash)
{
    cJSON *f = cJSON_CreateObject();

    for (size_t i = 0; f && hash && hash->type == REDIS_REPLY_ARRAY && i + 1 < hash->elements;
         i += 2) {
        cJSON_AddStringToObject(f, hash->element[i]->str, hash->element[i + 1]->str);
    }
    return f;
}

const char *api_batch_field(const cJSON *fields, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fields, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void add_time(cJSON *o, const cJSON *fields, const char *name)
{
    const char *v = api_batch_field(fields, name);
    if (v) {
        cJSON_AddNumberToObject(o, name, (double)strtoll(v, NULL, 10));
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_string(cJSON *o, const cJSON *fields, const char *name)
{
    const char *v = api_batch_field(fields, name);
    if (v && v[0]) {
        cJSON_AddStringToObject(o, name, v);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_raw(cJSON *o, const cJSON *fields, const char *field, const char *name)
{
    const char *v = api_batch_field(fields, field);
    if (v && v[0]) {
        cJSON_AddRawToObject(o, name, v);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static long long field_num(const cJSON *fields, const char *name)
{
    const char *v = api_batch_field(fields, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

cJSON *api_batch_json(const char *id, const cJSON *fields)
{
    static const char *const times[] = {"created_at",    "in_progress_at", "expires_at",
                                        "finalizing_at", "completed_at",   "failed_at",
                                        "expired_at",    "cancelling_at",  "cancelled_at"};
    cJSON *o = cJSON_CreateObject();
    cJSON *counts;

    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "batch");
    add_string(o, fields, "endpoint");
    add_raw(o, fields, "errors", "errors");
    add_string(o, fields, "input_file_id");
    add_string(o, fields, "completion_window");
    add_string(o, fields, "status");
    add_string(o, fields, "output_file_id");
    add_string(o, fields, "error_file_id");
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        add_time(o, fields, times[i]);
    }
    counts = cJSON_AddObjectToObject(o, "request_counts");
    cJSON_AddNumberToObject(counts, "total", (double)field_num(fields, "total"));
    cJSON_AddNumberToObject(counts, "completed", (double)field_num(fields, "completed"));
    cJSON_AddNumberToObject(counts, "failed", (double)field_num(fields, "failed"));
    add_raw(o, fields, "metadata", "metadata");
    if (api_batch_field(fields, "webhook")) {
        add_raw(o, fields, "webhook", "webhook");
    }
    return o;
}

static void reply_batch_not_found(struct api *a, struct evhttp_request *req, const char *id)
{
    api_reply_error(a, req, CORE_ENOTFOUND, "batch_id", "batch_not_found", "No such batch: %.64s",
                    id);
}

/*
 * Sends one BATCH op of an endpoint's request for c: c's batch id and tenant, now. The scratch
 * lives for this call only (a batch endpoint's request is not a hot path). 0 or a negative code
 * (cb never called).
 */
static int batch_op(struct api_ctx *c, struct txn_batch *b, txn_batch_cb cb)
{
    struct txn_args args;
    int rc;

    b->id = c->id;
    b->tenant = c->tenant;
    b->now_ms = util_now_ms();
    txn_args_init(&args);
    rc = txn_batch(c->api->store, &args, b, cb, c);
    txn_args_cleanup(&args);
    return rc;
}

/* ---- POST /v1/batches ------------------------------------------------------------------- */

static void on_created(const struct txn_batch_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL || r->answer != TXN_BATCH_OK) {
        api_reply_store_down(c->api, c->req);
    } else {
        log_info("batch created", "batch=%s tenant=%s", c->id, c->tenant);
        api_reply_json(c->api, c->req, 200, api_batch_json(c->id, c->task));
    }
    api_ctx_free(c);
}

/* The input file is there: write the batch (its fields are in c->task). */
static void on_input_file(void *arg, const char *path, long long bytes, const char *purpose,
                          const struct core_err *err)
{
    struct api_ctx *c = arg;
    const char *fields[2 * BATCHES_CREATE_FIELDS];
    struct txn_batch b = {.op = TXN_BATCH_CREATE};
    size_t n = 0;
    const cJSON *f;

    (void)bytes;
    if (err != NULL) {
        if (err->code == CORE_ENOTFOUND) {
            api_reply_error(c->api, c->req, CORE_ENOTFOUND, "input_file_id", "file_not_found",
                            "No such File object: %s", api_batch_field(c->task, "input_file_id"));
        } else {
            api_reply_store_down(c->api, c->req);
        }
        goto out;
    }
    if (path == NULL || strcmp(purpose, "batch") != 0) {
        api_reply_error(c->api, c->req, CORE_EINVAL, "input_file_id", "invalid_file_purpose",
                        "The input file must have been uploaded with purpose 'batch'");
        goto out;
    }
    cJSON_ArrayForEach(f, c->task)
    {
        if (n == BATCHES_CREATE_FIELDS) {
            break;
        }
        fields[2 * n] = f->string;
        fields[2 * n + 1] = f->valuestring;
        n++;
    }
    b.u.create.fields = fields;
    b.u.create.n_fields = n;
    if (batch_op(c, &b, on_created) < 0) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    return;
out:
    api_ctx_free(c);
}

/* Checks a POST /v1/batches body; fills fields (strings, as stored). 0 or an error in e. */
static int validate_batch(struct api *a, const char *tenant, const cJSON *body, cJSON *fields,
                          struct core_err *e)
{
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(body, "input_file_id");
    const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive(body, "endpoint");
    const cJSON *window = cJSON_GetObjectItemCaseSensitive(body, "completion_window");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    const cJSON *webhook = cJSON_GetObjectItemCaseSensitive(body, "webhook");
    char num[24];

    if (!cJSON_IsObject(body)) {
        return core_err_set(e, CORE_EINVAL, NULL, "The request body must be a JSON object");
    }
    if (!cJSON_IsString(file) || !util_id_valid(API_FILE_ID_PREFIX, file->valuestring)) {
        return core_err_set(e, CORE_EINVAL, "input_file_id",
                            "'input_file_id' must be the id of a file uploaded with purpose "
                            "'batch'");
    }
    if (!cJSON_IsString(endpoint) || api_batch_kind(endpoint->valuestring) < 0) {
        return core_err_set(e, CORE_EINVAL, "endpoint",
                            "'endpoint' must be /v1/chat/completions, /v1/embeddings or "
                            "/v1/responses");
    }
    if (!cJSON_IsString(window) || strcmp(window->valuestring, API_BATCH_WINDOW) != 0) {
        return core_err_set(e, CORE_EINVAL, "completion_window",
                            "'completion_window' must be \"" API_BATCH_WINDOW "\"");
    }
    cJSON_AddStringToObject(fields, "input_file_id", file->valuestring);
    cJSON_AddStringToObject(fields, "endpoint", endpoint->valuestring);
    cJSON_AddStringToObject(fields, "completion_window", API_BATCH_WINDOW);
    snprintf(num, sizeof(num), "%lld",
             (long long)(util_now_ms() / 1000 + a->cfg->batches.window_s));
    cJSON_AddStringToObject(fields, "expires_at", num);
    if (meta != NULL && !cJSON_IsNull(meta)) {
        char *text;
        if (api_validate_metadata(meta, e) < 0) {
            return e->code;
        }
        text = cJSON_PrintUnformatted(meta);
        cJSON_AddStringToObject(fields, "metadata", text ? text : "{}");
        cJSON_free(text);
    }
    if (webhook != NULL) {
        cJSON *w = api_validate_webhook(a, tenant, webhook, &api_batch_webhook_events, e);
        char *text;
        if (w == NULL) {
            return e->code;
        }
        text = cJSON_PrintUnformatted(w);
        cJSON_Delete(w);
        cJSON_AddStringToObject(fields, "webhook", text ? text : "");
        cJSON_free(text);
    }
    return 0;
}

void api_batches_create(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    const char *raw;
    size_t raw_len;
    cJSON *body = api_read_json(a, req, &raw, &raw_len);
    struct api_ctx *c = NULL;
    struct core_err e;
    int rc;

    (void)arg;
    if (body == NULL) {
        return;
    }
    core_err_clear(&e);
    c = api_ctx_new(a, req, tenant);
    if (c == NULL || (c->task = cJSON_CreateObject()) == NULL ||
        util_random_id(API_BATCH_ID_PREFIX, c->id, sizeof(c->id)) < 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    if (validate_batch(a, tenant, body, c->task, &e) < 0) {
        api_reply_err(a, req, &e);
        goto fail;
    }
    /* the key its lines run under: their budget and the aliases they may use */
    if (c->key != NULL) {
        cJSON_AddStringToObject(c->task, "key", c->key->id);
    }
    /* what the answer shows before the runner starts */
    cJSON_AddStringToObject(c->task, "status", txn_batch_status_name(TXN_BATCH_VALIDATING));
    {
        char now_s[24];
        snprintf(now_s, sizeof(now_s), "%lld", (long long)(util_now_ms() / 1000));
        cJSON_AddStringToObject(c->task, "created_at", now_s);
    }
    rc = api_files_lookup(a, tenant, api_batch_field(c->task, "input_file_id"), on_input_file, c);
    if (rc == CORE_ENOTFOUND) {
        api_reply_error(a, req, CORE_ENOTFOUND, "input_file_id", "file_not_found",
                        "No such File object: %s", api_batch_field(c->task, "input_file_id"));
        goto fail;
    }
    if (rc < 0) {
        api_reply_store_down(a, req);
        goto fail;
    }
    cJSON_Delete(body);
    return;
fail:
    cJSON_Delete(body);
    api_ctx_free(c);
}

/* ---- GET /v1/batches/{id}, POST /v1/batches/{id}/cancel ------------------------------------ */

static void on_got(const struct txn_batch_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->answer == TXN_BATCH_NOTFOUND) {
        reply_batch_not_found(c->api, c->req, c->id);
    } else {
        cJSON *fields = api_batch_fields(r->hash);
        if (r->answer == TXN_BATCH_CONFLICT) {
            api_reply_error(c->api, c->req, CORE_ECONFLICT, NULL, "batch_not_cancellable",
                            "Cannot cancel a batch that is %s",
                            api_batch_field(fields, "status") ?: "unknown");
        } else {
            api_reply_json(c->api, c->req, 200, api_batch_json(c->id, fields));
        }
        cJSON_Delete(fields);
    }
    api_ctx_free(c);
}

/* GET and cancel: one op on the tenant's batch id, answered with the batch (on_got). */
static void batch_read(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *id, enum txn_batch_op op)
{
    struct api_ctx *c =
        api_ctx_for_id(a, req, tenant, API_BATCH_ID_PREFIX, id, reply_batch_not_found);
    struct txn_batch b = {.op = op};

    if (c == NULL) {
        return;
    }
    if (batch_op(c, &b, on_got) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

void api_batches_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    batch_read(a, req, tenant, arg, TXN_BATCH_GET);
}

void api_batches_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    batch_read(a, req, tenant, arg, TXN_BATCH_CANCEL);
}

/* ---- GET /v1/batches ---------------------------------------------------------------------- */

static void on_list(const struct txn_batch_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *data;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    data = cJSON_CreateArray();
    for (size_t i = 0; i < r->n_hashes; i++) {
        cJSON *fields = api_batch_fields(r->hashes[i]);
        const char *id = api_batch_field(fields, "id");
        if (id && strcmp(api_batch_field(fields, "tenant") ?: "", c->tenant) == 0) {
            cJSON_AddItemToArray(data, api_batch_json(id, fields));
        }
        cJSON_Delete(fields);
    }
    api_reply_json(c->api, c->req, 200, api_list_page(data, r->has_more));
out:
    api_ctx_free(c);
}

void api_batches_list(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    static const struct api_list_spec spec = {BATCHES_LIST_DEFAULT, BATCHES_LIST_MAX,
                                              API_BATCH_ID_PREFIX, "batch"};
    struct evkeyvalq params;
    const char *after;
    long limit;
    struct api_ctx *c;
    struct txn_batch b = {.op = TXN_BATCH_LIST};

    (void)arg;
    if (api_list_query(a, req, &params, &spec, &limit, &after) < 0) {
        evhttp_clear_headers(&params);
        return;
    }
    c = api_ctx_new(a, req, tenant);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        evhttp_clear_headers(&params);
        return;
    }
    snprintf(c->id, sizeof(c->id), "%s", "-");
    b.u.list.after = after;
    b.u.list.limit = limit;
    if (batch_op(c, &b, on_list) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
    evhttp_clear_headers(&params);
}
