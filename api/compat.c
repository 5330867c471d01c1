/*
 * api/compat.c — the OpenAI-compatible endpoints: chat completions (plain and streamed),
 * embeddings, image generations, and the model list.
 *
 * Each request becomes a task at interactive priority and, by default, the connection waits for
 * it (api_wait), so an unchanged OpenAI SDK gets the provider's answer in OpenAI's shape; images
 * come as sluice's own signed URLs or as b64_json, as response_format asks (api/artifacts.c).
 * `Prefer: respond-async` answers 202 with the task instead.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include "adapters/adapter.h"
#include "api/internal.h"
#include "core/artifact_ref.h"
#include "core/task.h"

enum compat_mode { COMPAT_WAIT = 0, COMPAT_ASYNC = 1 };

static bool prefers_async(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Prefer");
    return h && strstr(h, "respond-async") != NULL;
}

const struct config_model *api_model_for_kind(struct api *a, struct evhttp_request *req,
                                              const cJSON *body, enum task_kind kind)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    const struct config_model *m;

    if (!cJSON_IsObject(body)) {
        api_reply_error(a, req, CORE_EINVAL, NULL, NULL, "The request body must be a JSON object");
        return NULL;
    }
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
        api_reply_error(a, req, CORE_EINVAL, "model", NULL, "'model' must be a string");
        return NULL;
    }
    m = config_model_find(a->cfg, model->valuestring);
    if (m == NULL) {
        api_reply_error(a, req, CORE_ENOTFOUND, "model", "model_not_found",
                        "The model '%.128s' does not exist", model->valuestring);
        return NULL;
    }
    if (m->kind != kind) {
        api_reply_error(a, req, CORE_EINVAL, "model", NULL,
                        "The model '%.128s' serves %s requests, not %s", model->valuestring,
                        task_kind_name(m->kind), task_kind_name(kind));
        return NULL;
    }
    if (!api_key_allows(a->req_key, m)) { /* a key limited to other aliases (api/keys.h) */
        struct core_err e;
        core_err_clear(&e);
        api_key_model_check(a->req_key, m, "model", &e);
        api_reply_err(a, req, &e);
        return NULL;
    }
    return m;
}

static void on_submitted(struct api_ctx *c, int outcome, redisReply *dup,
                         const struct core_err *err)
{
    struct api *a = c->api;

    if (outcome < 0) {
        if (c->mode == COMPAT_WAIT) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, c->req, err);
    } else if (c->mode == COMPAT_ASYNC) {
        char loc[96];
        snprintf(loc, sizeof(loc), "/v1/tasks/%s", c->id);
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
        if (outcome == 1) {
            api_reply_json_text(a, c->req, 202, api_task_text(a, c->req, c->id, dup, true, NULL));
        } else {
            api_reply_json_text(a, c->req, 202, c->task_text);
            c->task_text = NULL;
        }
    } else if (outcome == 1) {
        api_wait_rekey(a, c->orig_id, c->id);
    }
    api_ctx_free(c);
}

/*
 * An image request's response_format, which sluice itself honours (api/artifacts.c renders the
 * kept images as signed URLs or b64_json, whatever the provider answered with): absent, null,
 * "url" or "b64_json". Other kinds pass.
 */
static int compat_validate_image(enum task_kind kind, const cJSON *body, struct core_err *e)
{
    enum artifact_form form;

    if (kind != TASK_KIND_IMAGE || artifact_form_for(body, false, &form) == 0) {
        return 0;
    }
    return core_err_set(e, CORE_EINVAL, "response_format",
                        "'response_format' must be \"url\" or \"b64_json\"");
}

/*
 * The shared path: read the OpenAI body, check its model serves kind, validate, register the
 * waiter (unless async) and submit.
 */
static void compat_submit(struct api *a, struct evhttp_request *req, const char *tenant,
                          enum task_kind kind)
{
    struct api_submit sub = {0};
    const char *raw = NULL;
    size_t raw_len = 0;
    const cJSON *stream;
    struct core_err e;
    struct api_ctx *c = NULL;
    bool bad = false;
    cJSON *body = api_read_json(a, req, &raw, &raw_len);

    if (body == NULL) {
        return;
    }
    core_err_clear(&e);
    sub.model = api_model_for_kind(a, req, body, kind);
    if (sub.model == NULL) {
        goto out;
    }
    if (api_validate_task_input(kind, body, &e) < 0 || compat_validate_image(kind, body, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    stream = cJSON_GetObjectItemCaseSensitive(body, "stream");
    sub.kind = kind;
    sub.input = body;
    sub.prio = TASK_PRIO_INTERACTIVE;
    sub.stream = kind == TASK_KIND_CHAT && cJSON_IsTrue(stream);
    sub.raw = raw;
    sub.raw_len = raw_len;
    sub.idem = api_idempotency_key(a, req, &bad);
    if (bad) {
        goto out;
    }
    c = api_ctx_for_new_task(a, req, tenant);
    if (c == NULL) {
        goto out;
    }
    c->mode = prefers_async(req) ? COMPAT_ASYNC : COMPAT_WAIT;
    sub.notify = c->mode == COMPAT_WAIT;
    /* a waiting request answers with the result: the task object would be built for nothing */
    sub.render = c->mode == COMPAT_ASYNC ? API_RENDER_TEXT : API_RENDER_NONE;
    if (c->mode == COMPAT_WAIT && api_wait(a, req, tenant, c->id,
                                           !sub.stream                        ? WAIT_RESULT
                                           : adapter_stream_wants_usage(body) ? WAIT_STREAM_USAGE
                                                                              : WAIT_STREAM,
                                           (int64_t)a->cfg->limits.sync_wait_s * 1000) < 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    if (api_submit(a, c, &sub, on_submitted, &e) < 0) {
        if (c->mode == COMPAT_WAIT) {
            api_wait_cancel(a, c->id);
        }
        api_reply_err(a, req, &e);
        goto out;
    }
    c = NULL;
out:
    api_ctx_free(c);
    cJSON_Delete(body);
}

void api_compat_chat(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    compat_submit(a, req, tenant, TASK_KIND_CHAT);
}

void api_compat_embeddings(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    compat_submit(a, req, tenant, TASK_KIND_EMBEDDING);
}

void api_compat_images(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    compat_submit(a, req, tenant, TASK_KIND_IMAGE);
}

/*
 * An alias as OpenAI's model object. Tenants see what they can use: its kind, its price (the
 * lowest of its deployments, field by field: what a task costs at best) and its limits (summed
 * over the deployments; 0 = unlimited when any deployment is). Provider names, upstream models
 * and the routing stay in the admin view (admin: true), as do provider keys and URLs always.
 */
static cJSON *model_json(const struct config_model *m, bool admin)
{
    static const struct {
        const char *name;
        size_t offset;
    } prices[] = {
        {"input_per_mtok", offsetof(struct config_price, input_per_mtok)},
        {"output_per_mtok", offsetof(struct config_price, output_per_mtok)},
        {"per_image", offsetof(struct config_price, per_image)},
        {"per_video_second", offsetof(struct config_price, per_video_second)},
    };
    static const struct {
        const char *name;
        size_t offset;
    } limits[] = {
        {"rpm", offsetof(struct config_deployment, rpm)},
        {"tpm", offsetof(struct config_deployment, tpm)},
        {"max_concurrency", offsetof(struct config_deployment, max_concurrency)},
    };
    cJSON *o = cJSON_CreateObject();
    cJSON *price, *lim, *deps;

    cJSON_AddStringToObject(o, "id", m->alias);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "owned_by", "sluice");
    cJSON_AddStringToObject(o, "kind", task_kind_name(m->kind));
    price = cJSON_AddObjectToObject(o, "price");
    for (size_t k = 0; k < sizeof(prices) / sizeof(prices[0]); k++) {
        double low = 0;
        for (size_t i = 0; i < m->n_deployments; i++) {
            double v = *(const double *)((const char *)&m->deployments[i].price + prices[k].offset);
            low = i == 0 || v < low ? v : low;
        }
        cJSON_AddNumberToObject(price, prices[k].name, low);
    }
    cJSON_AddStringToObject(price, "currency", "USD");
    lim = cJSON_AddObjectToObject(o, "limits");
    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
        long sum = 0;
        for (size_t i = 0; i < m->n_deployments; i++) {
            long v = *(const long *)((const char *)&m->deployments[i] + limits[k].offset);
            if (v == 0) {
                sum = 0;
                break;
            }
            sum += v;
        }
        cJSON_AddNumberToObject(lim, limits[k].name, (double)sum);
    }
    if (!admin) {
        return o;
    }
    cJSON_AddStringToObject(o, "strategy", m->strategy);
    deps = cJSON_AddArrayToObject(o, "deployments");
    for (size_t i = 0; i < m->n_deployments; i++) {
        const struct config_deployment *d = &m->deployments[i];
        cJSON *dj = cJSON_CreateObject();
        cJSON *dp = cJSON_AddObjectToObject(dj, "price");
        cJSON_AddStringToObject(dj, "provider", d->provider->name);
        cJSON_AddStringToObject(dj, "dialect", d->provider->dialect);
        cJSON_AddStringToObject(dj, "model", d->model);
        for (size_t k = 0; k < sizeof(prices) / sizeof(prices[0]); k++) {
            cJSON_AddNumberToObject(dp, prices[k].name,
                                    *(const double *)((const char *)&d->price + prices[k].offset));
        }
        cJSON_AddStringToObject(dp, "currency", "USD");
        for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
            cJSON_AddNumberToObject(dj, limits[k].name,
                                    (double)*(const long *)((const char *)d + limits[k].offset));
        }
        cJSON_AddNumberToObject(dj, "weight", (double)d->weight);
        cJSON_AddItemToArray(deps, dj);
    }
    return o;
}

static void models_list(struct api *a, struct evhttp_request *req, bool admin)
{
    cJSON *list = cJSON_CreateObject();
    cJSON *data;

    cJSON_AddStringToObject(list, "object", "list");
    data = cJSON_AddArrayToObject(list, "data");
    for (size_t i = 0; i < a->cfg->n_models; i++) {
        cJSON_AddItemToArray(data, model_json(&a->cfg->models[i], admin));
    }
    api_reply_json(a, req, 200, list);
}

static void models_get(struct api *a, struct evhttp_request *req, const char *alias, bool admin)
{
    const struct config_model *m = config_model_find(a->cfg, alias);

    if (m == NULL) {
        api_reply_error(a, req, CORE_ENOTFOUND, "model", "model_not_found",
                        "The model '%.128s' does not exist", alias);
        return;
    }
    api_reply_json(a, req, 200, model_json(m, admin));
}

/* GET /v1/admin/models[/{id}]: the admin view, with deployments, providers and routing. */
void api_admin_models_list(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return;
    }
    models_list(a, req, true);
}

void api_admin_models_get(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return;
    }
    models_get(a, req, arg, true);
}

void api_models_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    models_list(a, req, false);
}

void api_models_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    models_get(a, req, arg, false);
}
