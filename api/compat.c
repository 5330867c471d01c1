/*
 * api/compat.c — the OpenAI-compatible endpoints: chat completions (plain and streamed),
 * embeddings, image generations, and the model list.
 *
 * Each request becomes a task at interactive priority and, by default, the connection waits for
 * it (api_wait), so an unchanged OpenAI SDK gets the provider's answer in OpenAI's shape; images
 * come as sluice's own signed URLs or as b64_json, as response_format asks (api/artifacts.c).
 * `Prefer: respond-async` answers 202 with the task instead.
 */
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

const struct config_model *api_model_for(struct api *a, struct evhttp_request *req,
                                         const cJSON *body, const char *kind)
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
    if (strcmp(m->kind, kind) != 0) {
        api_reply_error(a, req, CORE_EINVAL, "model", NULL,
                        "The model '%.128s' serves %s requests, not %s", model->valuestring,
                        m->kind, kind);
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
            cJSON *t = task_to_json(c->id, dup);
            api_artifacts_render_task(a, c->req, c->id, t, true);
            api_reply_json(a, c->req, 202, t);
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
static int compat_validate_image(const char *kind, const cJSON *body, struct core_err *e)
{
    enum artifact_form form;

    if (strcmp(kind, "image") != 0 || artifact_form_for(body, false, &form) == 0) {
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
                          const char *kind)
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
    sub.model = api_model_for(a, req, body, kind);
    if (sub.model == NULL) {
        goto out;
    }
    if (api_validate_input(kind, body, &e) < 0 || compat_validate_image(kind, body, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    stream = cJSON_GetObjectItemCaseSensitive(body, "stream");
    sub.kind = kind;
    sub.input = body;
    sub.prio = TASK_PRIO_INTERACTIVE;
    sub.stream = strcmp(kind, "chat") == 0 && cJSON_IsTrue(stream);
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
    compat_submit(a, req, tenant, "chat");
}

void api_compat_embeddings(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    compat_submit(a, req, tenant, "embedding");
}

void api_compat_images(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    compat_submit(a, req, tenant, "image");
}

/* An alias as OpenAI's model object, with what sluice knows of it: kind, routing, prices,
 * limits. Provider keys and URLs stay out. */
static cJSON *model_json(const struct config_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *deps;

    cJSON_AddStringToObject(o, "id", m->alias);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "owned_by", "sluice");
    cJSON_AddStringToObject(o, "kind", m->kind);
    cJSON_AddStringToObject(o, "strategy", m->strategy);
    deps = cJSON_AddArrayToObject(o, "deployments");
    for (size_t i = 0; i < m->n_deployments; i++) {
        const struct config_deployment *d = &m->deployments[i];
        cJSON *dj = cJSON_CreateObject();
        cJSON *price = cJSON_AddObjectToObject(dj, "price");
        cJSON_AddStringToObject(dj, "provider", d->provider->name);
        cJSON_AddStringToObject(dj, "model", d->model);
        cJSON_AddNumberToObject(price, "input_per_mtok", d->price.input_per_mtok);
        cJSON_AddNumberToObject(price, "output_per_mtok", d->price.output_per_mtok);
        cJSON_AddNumberToObject(price, "per_image", d->price.per_image);
        cJSON_AddNumberToObject(price, "per_video_second", d->price.per_video_second);
        cJSON_AddStringToObject(price, "currency", "USD");
        cJSON_AddNumberToObject(dj, "rpm", (double)d->rpm);
        cJSON_AddNumberToObject(dj, "tpm", (double)d->tpm);
        cJSON_AddNumberToObject(dj, "max_concurrency", (double)d->max_concurrency);
        cJSON_AddNumberToObject(dj, "weight", (double)d->weight);
        cJSON_AddItemToArray(deps, dj);
    }
    return o;
}

void api_models_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    cJSON *list = cJSON_CreateObject();
    cJSON *data;

    cJSON_AddStringToObject(list, "object", "list");
    data = cJSON_AddArrayToObject(list, "data");
    for (size_t i = 0; i < a->cfg->n_models; i++) {
        cJSON_AddItemToArray(data, model_json(&a->cfg->models[i]));
    }
    api_reply_json(a, req, 200, list);
}

void api_models_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    const struct config_model *m = config_model_find(a->cfg, arg);

    if (m == NULL) {
        api_reply_error(a, req, CORE_ENOTFOUND, "model", "model_not_found",
                        "The model '%.128s' does not exist", arg);
        return;
    }
    api_reply_json(a, req, 200, model_json(m));
}
