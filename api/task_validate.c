/*
 * api/task_validate.c — what a task's creation must hold, checked before any round trip: its
 * kind (parsed here, once, into enum task_kind), its model, the input of its kind (a response's
 * through adapters/responses.h's responses_check), priority,
 * metadata, routing, deadline and webhook, and the Idempotency-Key header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "adapters/media.h"
#include "adapters/responses.h"
#include "api/internal.h"
#include "core/task.h"
#include "core/util.h"
#include "core/webhook_url.h"

#define API_IDEMPOTENCY_KEY_MAX 255
#define API_METADATA_MAX_PAIRS 16
#define API_METADATA_KEY_MAX 64
#define API_METADATA_VALUE_MAX 512

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

/* One data: URI of an edit's file: a PNG, JPEG or WEBP image in base64. */
static bool edit_uri_ok(const cJSON *v)
{
    struct media_data_uri u;
    return cJSON_IsString(v) && media_data_uri_parse(v->valuestring, &u) == 0;
}

/*
 * The image kind's edit form: "edit": true, "image" an array of 1 to MEDIA_MAX_EDIT_IMAGES data:
 * URIs, "mask" one more or absent. image and mask without "edit": true are refused, since a
 * generation would silently drop them.
 */
static int validate_image_edit(const cJSON *input, struct core_err *e)
{
    const cJSON *edit = cJSON_GetObjectItemCaseSensitive(input, "edit");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(input, "image");
    const cJSON *mask = cJSON_GetObjectItemCaseSensitive(input, "mask");
    const cJSON *v;

    if (edit != NULL && !cJSON_IsNull(edit) && !cJSON_IsBool(edit)) {
        return core_err_set(e, CORE_EINVAL, "edit", "'edit' must be a boolean");
    }
    if (!cJSON_IsTrue(edit)) {
        if (image != NULL || mask != NULL) {
            return core_err_set(e, CORE_EINVAL, image != NULL ? "image" : "mask",
                                "'image' and 'mask' are only taken by the edit form "
                                "(\"edit\": true)");
        }
        return 0;
    }
    if (!cJSON_IsArray(image) || cJSON_GetArraySize(image) < 1 ||
        cJSON_GetArraySize(image) > MEDIA_MAX_EDIT_IMAGES) {
        return core_err_set(e, CORE_EINVAL, "image",
                            "'image' must be an array of 1 to %d data: URIs of PNG, JPEG or "
                            "WEBP images",
                            MEDIA_MAX_EDIT_IMAGES);
    }
    cJSON_ArrayForEach(v, image)
    {
        if (!edit_uri_ok(v)) {
            return core_err_set(e, CORE_EINVAL, "image",
                                "'image' items must be data: URIs of PNG, JPEG or WEBP images "
                                "(data:image/png;base64,...)");
        }
    }
    if (mask != NULL && !edit_uri_ok(mask)) {
        return core_err_set(e, CORE_EINVAL, "mask",
                            "'mask' must be a data: URI of a PNG, JPEG or WEBP image");
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
    return image ? validate_image_edit(input, e)
                 : media_reference_check(cJSON_GetObjectItemCaseSensitive(input, "input_reference"),
                                         e);
}

int api_validate_task_input(enum task_kind kind, const cJSON *input, struct core_err *e)
{
    switch (kind) {
    case TASK_KIND_CHAT:
        return validate_chat(input, e);
    case TASK_KIND_EMBEDDING:
        return validate_embedding(input, e);
    case TASK_KIND_RESPONSE:
        return responses_check(input, e);
    default:
        return validate_media(input, kind == TASK_KIND_IMAGE, e);
    }
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
 * What a response task of POST /v1/tasks adds to responses_check: its webhook is the task's
 * (responses_check lets POST /v1/responses' `webhook` extension through, which would be lost
 * inside a task's input); a task is kept so that it can be read, so `store: false` (delete once
 * answered) has no meaning here and is refused rather than dropped (POST /v1/responses honours
 * it). `stream` or `background` make the task stream
 * upstream, so its events are stored for GET /v1/responses/{id}?stream=true.
 */
static int validate_response_task(struct api_submit *sub, struct core_err *e)
{
    const cJSON *hook = cJSON_GetObjectItemCaseSensitive(sub->input, "webhook");

    if (hook != NULL && !cJSON_IsNull(hook)) {
        return core_err_set(e, CORE_EINVAL, "input.webhook",
                            "A task's webhook is the task's own 'webhook' field, not its input's");
    }
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(sub->input, "store"))) {
        return core_err_set(e, CORE_EINVAL, "input.store",
                            "'input.store: false' is for POST /v1/responses; a task is kept until "
                            "its retention ends");
    }
    sub->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sub->input, "stream")) ||
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sub->input, "background"));
    return 0;
}

/*
 * Validates a POST /v1/tasks body's kind, input, model, priority and metadata into sub (borrowed
 * from body). The kind is parsed here, the one place a client names it, and compared as an enum
 * from then on. Returns 0, or the error code with e filled.
 */
static int validate_create(struct api *a, const cJSON *body, struct api_submit *sub,
                           struct core_err *e)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "kind");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "priority");
    const cJSON *m;
    int kind, prio = TASK_PRIO_NORMAL;

    if (!cJSON_IsObject(body)) {
        return core_err_set(e, CORE_EINVAL, NULL, "The request body must be a JSON object");
    }
    if (!cJSON_IsString(k)) {
        return core_err_set(
            e, CORE_EINVAL, "kind",
            "'kind' is required and must be one of chat, embedding, image, video, response");
    }
    kind = task_kind_parse(k->valuestring);
    if (kind < 0) {
        return core_err_set(e, CORE_EINVAL, "kind",
                            "Unknown kind '%.64s': expected chat, embedding, image, video or "
                            "response",
                            k->valuestring);
    }
    sub->kind = (enum task_kind)kind;
    sub->input = cJSON_GetObjectItemCaseSensitive(body, "input");
    if (!cJSON_IsObject(sub->input)) {
        return core_err_set(e, CORE_EINVAL, "input",
                            "'input' is required and must be the OpenAI request object");
    }
    m = cJSON_GetObjectItemCaseSensitive(sub->input, "model");
    if (!cJSON_IsString(m) || m->valuestring[0] == '\0') {
        return core_err_set(e, CORE_EINVAL, "input.model", "'input.model' must be a string");
    }
    sub->model = config_model_find(a->cfg, m->valuestring);
    if (sub->model == NULL) {
        core_err_set(e, CORE_ENOTFOUND, "input.model", "The model '%.128s' does not exist",
                     m->valuestring);
        core_err_set_code(e, "model_not_found");
        return e->code;
    }
    if (!api_model_serves(sub->model, sub->kind)) {
        return core_err_set(e, CORE_EINVAL, "kind", "The model '%.128s' serves %s tasks, not %s",
                            m->valuestring, task_kind_name(sub->model->kind),
                            task_kind_name(sub->kind));
    }
    if (api_validate_task_input(sub->kind, sub->input, e) < 0) {
        /* The native API nests the OpenAI body under "input". */
        char param[sizeof(e->param) + 8];
        snprintf(param, sizeof(param), "input.%s", e->param);
        snprintf(e->param, sizeof(e->param), "%.*s", (int)sizeof(e->param) - 1, param);
        return e->code;
    }
    if (sub->kind == TASK_KIND_RESPONSE && validate_response_task(sub, e) < 0) {
        return e->code;
    }
    if (p != NULL && (!cJSON_IsString(p) || (prio = task_priority_parse(p->valuestring)) < 0)) {
        return core_err_set(e, CORE_EINVAL, "priority",
                            "'priority' must be one of interactive, normal, batch");
    }
    sub->prio = (enum task_priority)prio;
    sub->metadata = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    if (sub->metadata != NULL && api_validate_metadata(sub->metadata, e) < 0) {
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

/* Events a task's webhook may ask for; the first three are the default. */
static const char *const task_events[] = {"task.completed", "task.failed",   "task.cancelled",
                                          "task.started",   "task.progress", NULL};
const struct api_webhook_events api_task_webhook_events = {
    task_events, 3, "task.started, task.progress, task.completed, task.failed and task.cancelled"};

int api_validate_task(struct api *a, const char *tenant, const cJSON *item, struct api_submit *sub,
                      struct core_err *e)
{
    const cJSON *deadline;
    const cJSON *webhook = cJSON_GetObjectItemCaseSensitive(item, "webhook");

    if (validate_create(a, item, sub, e) < 0) {
        return e->code;
    }
    /* the request's key may be limited to some aliases (api/keys.h); a's req_key is the key of
     * the request being dispatched, checked when it is this tenant's */
    if (a->req_key != NULL && strcmp(a->req_key->tenant, tenant) == 0 &&
        api_key_model_check(a->req_key, sub->model, "input.model", e) < 0) {
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
    /* a response task's deliveries are named response.* (core/lua/prelude.lua) */
    if (webhook != NULL && (sub->webhook = api_validate_webhook(a, tenant, webhook,
                                                                sub->kind == TASK_KIND_RESPONSE
                                                                    ? &api_response_webhook_events
                                                                    : &api_task_webhook_events,
                                                                e)) == NULL) {
        return e->code;
    }
    return 0;
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
