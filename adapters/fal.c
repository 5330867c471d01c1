/*
 * adapters/fal.c — the fal dialect: image and video tasks on fal's queue.
 *
 * A task is submitted to the queue (POST {base_url}/{model_id}), its status polled until it is
 * COMPLETED, then its result fetched: two phases, kept in the job state as "phase". fal's
 * status_url, response_url and cancel_url are used verbatim; the documented layout under the
 * model's app root ({base_url}/{owner}/{app}/requests/{id}...) is the fallback when they are
 * missing or point at a host other than the deployment's, since every call carries the API key.
 * What it shares with replicate (reading the client's body, judging URLs, the finished result) is
 * in media.c. An image edit sends its images as data: URIs in the fields the model takes them
 * (fal_edit_inputs); a video's reference image (input_reference) goes as image_url.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "adapters/dialect.h"
#include "adapters/media.h"

#define FAL_MAX_ID 128    /* a request id */
#define FAL_MAX_MODEL 256 /* a model id */

static const struct media_dialect fal_media = {"fal", "Authorization: Key "};

/* What a queue status means for the task. */
enum fal_kind {
    FAL_QUEUED = 0, /* waiting for a runner */
    FAL_RUNNING,    /* on a runner */
    FAL_COMPLETED,  /* the result (or the failure) is stored */
};

/* Queue statuses as fal's status endpoint names them. */
static const struct {
    const char *status;
    enum fal_kind kind;
} fal_statuses[] = {
    {"IN_QUEUE", FAL_QUEUED},
    {"IN_PROGRESS", FAL_RUNNING},
    {"COMPLETED", FAL_COMPLETED},
};

/* The URLs of a queued request, indexing fal_job_urls. */
enum fal_url {
    FAL_URL_STATUS = 0,
    FAL_URL_RESPONSE,
    FAL_URL_CANCEL,
};

/*
 * The job state's URLs: the key kept in the job, the field of fal's replies that carries it, and
 * the documented path under the app root when neither is usable.
 */
static const struct {
    const char *key;
    const char *reply_field;
    const char *suffix;
} fal_job_urls[] = {
    [FAL_URL_STATUS] = {"status", "status_url", "/status"},
    [FAL_URL_RESPONSE] = {"response", "response_url", ""},
    [FAL_URL_CANCEL] = {"cancel", "cancel_url", "/cancel"},
};

/*
 * A model id as fal writes them ("fal-ai/flux/dev"): two or more '/'-separated segments of
 * letters, digits, '-', '_' and '.', none empty, "." or "..", bounded.
 */
static bool fal_model_ok(const char *s)
{
    size_t n = (s != NULL) ? strlen(s) : 0;
    size_t seg = 0;
    int segments = 1;

    if (n == 0 || n > FAL_MAX_MODEL) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        if (s[i] == '/' || s[i] == '\0') {
            if (seg == 0 || (seg <= 2 && strspn(s + i - seg, ".") == seg)) {
                return false;
            }
            segments += (s[i] == '/');
            seg = 0;
        } else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.') {
            seg++;
        } else {
            return false;
        }
    }
    return segments >= 2;
}

/*
 * Where a model takes an edit's images, by model id prefix (the first match wins; the last row
 * is every other model). fal's image-to-image and edit endpoints take one image as image_url, or
 * a list as image_urls; the mask, when the model inpaints, as mask_url. Each takes a data: URI
 * where it takes a URL, so the task's own bytes go up inline and no public URL of sluice is
 * needed.
 */
static const struct {
    const char *prefix;
    const char *image_field;
    bool list;              /* image_field is an array of URLs */
    const char *mask_field; /* NULL: the model takes no mask */
} fal_edit_inputs[] = {
    {"fal-ai/nano-banana/edit", "image_urls", true, NULL},
    {"fal-ai/gemini-25-flash-image/edit", "image_urls", true, NULL},
    {"fal-ai/flux-pro/kontext/multi", "image_urls", true, NULL},
    {"", "image_url", false, "mask_url"},
};

/* A request id as fal writes them (a UUID): letters, digits and '-', bounded. */
static bool fal_id_ok(const char *s)
{
    return adapter_id_ok(s, FAL_MAX_ID, "-");
}

/*
 * An edit's images and mask into the submit body o, in the fields the model takes them
 * (fal_edit_inputs). A model of one image refuses several, and one without a mask field a mask:
 * dropping either would edit something else than the client asked. Returns 0, or a negative
 * code with err filled.
 */
static int fal_edit_fields(const struct adapter_target *t, const struct media_input *in, cJSON *o,
                           struct core_err *err)
{
    size_t row = 0;
    cJSON *list;
    bool ok;

    while (strncmp(t->model, fal_edit_inputs[row].prefix, strlen(fal_edit_inputs[row].prefix)) !=
           0) {
        row++; /* the last row's empty prefix matches every model */
    }
    if (!fal_edit_inputs[row].list && in->n_images > 1) {
        return core_err_set(err, CORE_EINVAL, "image",
                            "the fal model %.200s takes one image to edit, not %zu", t->model,
                            in->n_images);
    }
    if (in->mask != NULL && fal_edit_inputs[row].mask_field == NULL) {
        return core_err_set(err, CORE_EINVAL, "mask", "the fal model %.200s takes no mask",
                            t->model);
    }
    if (fal_edit_inputs[row].list) {
        list = cJSON_AddArrayToObject(o, fal_edit_inputs[row].image_field);
        ok = list != NULL;
        for (size_t i = 0; ok && i < in->n_images; i++) {
            ok = cJSON_AddItemToArray(list, cJSON_CreateString(in->images[i]));
        }
    } else {
        ok = cJSON_AddStringToObject(o, fal_edit_inputs[row].image_field, in->images[0]) != NULL;
    }
    if (ok && in->mask != NULL) {
        ok = cJSON_AddStringToObject(o, fal_edit_inputs[row].mask_field, in->mask) != NULL;
    }
    return ok ? 0 : adapter_oom(err);
}

/* The submit body: the prompt and the OpenAI fields that have a common fal name. */
static cJSON *fal_body(const struct adapter_call *call, const struct media_input *in)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *size;
    char text[32];
    bool ok = cJSON_AddStringToObject(o, "prompt", in->prompt) != NULL;

    if (ok && call->op == ADAPTER_OP_IMAGE) {
        if (in->n > 0) {
            ok = cJSON_AddNumberToObject(o, "num_images", in->n) != NULL;
        }
        if (ok && in->width > 0) {
            size = cJSON_AddObjectToObject(o, "image_size");
            ok = cJSON_AddNumberToObject(size, "width", in->width) != NULL &&
                 cJSON_AddNumberToObject(size, "height", in->height) != NULL;
        }
        if (ok && in->output_format != NULL) {
            ok = cJSON_AddStringToObject(o, "output_format", in->output_format) != NULL;
        }
    } else if (ok) {
        if (in->seconds > 0) {
            media_seconds_text(in->seconds, text, sizeof(text));
            ok = cJSON_AddStringToObject(o, "duration", text) != NULL;
        }
        if (ok && in->width > 0) {
            ok = cJSON_AddStringToObject(o, "aspect_ratio",
                                         media_aspect_ratio(in->width, in->height)) != NULL;
        }
        /* image-to-video: fal's video models take the first frame as image_url, a data: URI
         * where they take a URL */
        if (ok && in->reference != NULL) {
            ok = cJSON_AddStringToObject(o, "image_url", in->reference) != NULL;
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/*
 * The queue submit URL: url (taken), with fal's fal_webhook query parameter (the callback URL,
 * percent-encoded) when callback is set, so the queue POSTs the result there when the request
 * ends. NULL when out of memory (url freed).
 */
static char *fal_submit_url(char *url, const char *callback)
{
    char *esc = NULL;
    char *out = NULL;
    size_t n;

    if (url == NULL || callback == NULL) {
        return url;
    }
    esc = curl_easy_escape(NULL, callback, 0);
    n = esc ? strlen(url) + strlen(esc) + sizeof("?fal_webhook=") : 0;
    if (esc != NULL && (out = malloc(n)) != NULL) {
        snprintf(out, n, "%s%cfal_webhook=%s", url, strchr(url, '?') ? '&' : '?', esc);
    }
    curl_free(esc);
    free(url);
    return out;
}

static int fal_build_request(const struct adapter_call *call, struct adapter_request *out,
                             struct core_err *err)
{
    const struct adapter_target *t = call->target;
    struct media_input in;
    cJSON *body = NULL;
    int rc = 0;

    rc = media_submit_begin(&fal_media, call, &in, out, err);
    if (rc != 0) {
        goto out;
    }
    if (!fal_model_ok(t->model)) {
        rc = core_err_set(err, CORE_EINTERNAL, NULL,
                          "fal model \"%.200s\" is not a model id such as fal-ai/flux/dev",
                          t->model);
        goto out;
    }
    body = fal_body(call, &in);
    if (body != NULL && in.n_images > 0 && (rc = fal_edit_fields(t, &in, body, err)) != 0) {
        goto out;
    }
    rc = media_submit_finish(
        &fal_media, t, fal_submit_url(adapter_url_join(t->base_url, t->model), call->callback_url),
        body, out, err);
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/*
 * The documented URL of request id under the model's app root (its first two segments: status,
 * result and cancel live there, not under the endpoint's subpath), plus suffix. Caller frees;
 * NULL when the model or id is unusable, or on OOM.
 */
static char *fal_fallback_url(const struct adapter_target *t, const char *id, const char *suffix)
{
    const char *slash;
    size_t root;
    char *path;
    char *url;
    size_t cap;

    if (!fal_model_ok(t->model) || !fal_id_ok(id)) {
        return NULL;
    }
    slash = strchr(strchr(t->model, '/') + 1, '/');
    root = slash ? (size_t)(slash - t->model) : strlen(t->model);
    cap = root + sizeof("/requests/") + strlen(id) + strlen(suffix);
    path = malloc(cap);
    if (path == NULL) {
        return NULL;
    }
    snprintf(path, cap, "%.*s/requests/%s%s", (int)root, t->model, id, suffix);
    url = adapter_url_join(t->base_url, path);
    free(path);
    return url;
}

/*
 * The job state for request id in phase ("status" or "result"): each URL from fal's reply when
 * it gave a usable one, else from the job this call carried, else the documented fallback.
 * NULL on OOM.
 */
static cJSON *fal_job(const struct adapter_call *call, const cJSON *reply, const char *id,
                      const char *phase)
{
    const char *base = call->target->base_url;
    cJSON *job = cJSON_CreateObject();
    bool ok = job != NULL;

    for (size_t i = 0; ok && i < ARRAY_LEN(fal_job_urls); i++) {
        const char *url = adapter_json_str(reply, fal_job_urls[i].reply_field);
        char *built = NULL;

        if (url == NULL || !media_url_same_origin(base, url)) {
            url = adapter_json_str(call->job, fal_job_urls[i].key);
        }
        if (url == NULL || !media_url_same_origin(base, url)) {
            url = built = fal_fallback_url(call->target, id, fal_job_urls[i].suffix);
        }
        ok = url == NULL || cJSON_AddStringToObject(job, fal_job_urls[i].key, url) != NULL;
        free(built);
    }
    if (!ok || cJSON_AddStringToObject(job, "phase", phase) == NULL) {
        cJSON_Delete(job);
        return NULL;
    }
    return job;
}

/*
 * A non-2xx reply. fal sends model errors as {"detail": [{loc, msg, type}]} and request errors as
 * {"detail": "...", "error_type": "..."} (also in X-Fal-Error-Type); X-Fal-Retryable, when
 * present, is fal's own word on whether the same request can succeed and overrides the status.
 */
static int fal_http_error(const struct adapter_response *resp, const cJSON *root,
                          struct core_err *err)
{
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(root, "detail");
    const char *code = adapter_json_str(root, "error_type");
    const char *retryable = adapter_header_get(resp, "x-fal-retryable");
    struct adapter_error_fields f;
    bool have = false;

    memset(&f, 0, sizeof(f));
    if (cJSON_IsString(detail)) {
        f.message = detail->valuestring;
        have = true;
    } else if (cJSON_IsArray(detail) && cJSON_IsObject(cJSON_GetArrayItem(detail, 0))) {
        const cJSON *first = cJSON_GetArrayItem(detail, 0);
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(first, "loc");
        const char *where = cJSON_GetStringValue(cJSON_GetArrayItem(loc, 0));
        int depth = cJSON_GetArraySize(loc);

        f.message = adapter_json_str(first, "msg");
        if (code == NULL) {
            code = adapter_json_str(first, "type");
        }
        if (depth >= 2 && where != NULL && strcmp(where, "body") == 0) {
            f.param = cJSON_GetStringValue(cJSON_GetArrayItem(loc, depth - 1));
        }
        have = true;
    } else {
        have = adapter_error_fields_read(root, &f);
    }
    if (code == NULL) {
        code = adapter_header_get(resp, "x-fal-error-type");
    }
    if (code != NULL && f.code[0] == '\0') {
        snprintf(f.code, sizeof(f.code), "%s", code);
        have = true;
    }
    adapter_http_error(resp, have ? &f : NULL, err);
    if (retryable != NULL && strcasecmp(retryable, "true") == 0) {
        err->retryable = true;
    } else if (retryable != NULL && strcasecmp(retryable, "false") == 0) {
        err->retryable = false;
    }
    return err->code;
}

/* Fills out as PENDING on request id with a fresh job state in phase. */
static int fal_pending(const struct adapter_call *call, const cJSON *reply, const char *id,
                       const char *phase, struct adapter_result *out, struct core_err *err)
{
    out->outcome = ADAPTER_PENDING;
    out->queue_position = -1;
    out->poll_after_ms = -1;
    out->job = fal_job(call, reply, id, phase);
    if (out->job == NULL || (id != NULL && (out->upstream_id = strdup(id)) == NULL)) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory reading the reply");
    }
    return 0;
}

/* A queue position fal reported, or -1. */
static int fal_queue_position(const cJSON *reply)
{
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(reply, "queue_position");

    if (!cJSON_IsNumber(pos) || pos->valuedouble < 0 || pos->valuedouble > 1e9) {
        return -1;
    }
    return (int)pos->valuedouble;
}

/* The last percentage in the runner's logs ([{message}], oldest first), or -1. */
static int fal_progress(const cJSON *reply)
{
    const cJSON *logs = cJSON_GetObjectItemCaseSensitive(reply, "logs");
    const cJSON *list = cJSON_IsArray(logs) ? logs : NULL;
    const cJSON *item;
    int last = -1;

    cJSON_ArrayForEach(item, list)
    {
        const char *msg = adapter_json_str(item, "message");
        int p = (msg != NULL) ? media_progress_from_text(msg) : -1;
        if (p >= 0) {
            last = p;
        }
    }
    return last;
}

/* The submit reply: {request_id, status_url, response_url, cancel_url, queue_position}. */
static int fal_parse_response(const struct adapter_call *call, const struct adapter_response *resp,
                              struct adapter_result *out, struct core_err *err)
{
    cJSON *root = NULL;
    const char *id;
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!media_op_ok(call->op)) {
        return adapter_unsupported(fal_media.name, call->op, err);
    }
    rc = adapter_reply_root(resp, fal_http_error, &root, err);
    if (rc != 0) {
        goto out;
    }
    id = adapter_json_str(root, "request_id");
    if (!fal_id_ok(id)) {
        rc = adapter_malformed(resp->status, false, err, "no request_id in the queue's answer");
        goto out;
    }
    rc = fal_pending(call, root, id, "status", out, err);
    if (rc == 0) {
        out->progress = 0;
        out->queue_position = fal_queue_position(root);
    }
out:
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

/*
 * A status poll. A request that failed still reaches COMPLETED, with error and error_type set;
 * that is final (fal has already retried it). A completed request moves the job to its result
 * phase, fetched at once. A status fal adds later counts as still running.
 */
static int fal_parse_status(const struct adapter_call *call, const struct adapter_response *resp,
                            struct adapter_result *out, struct core_err *err)
{
    cJSON *root = NULL;
    const char *status;
    const cJSON *error;
    enum fal_kind kind = FAL_RUNNING;
    int rc;

    rc = adapter_reply_root(resp, fal_http_error, &root, err);
    if (rc != 0) {
        goto out;
    }
    status = adapter_json_str(root, "status");
    if (status == NULL) {
        rc = adapter_malformed(resp->status, false, err, "no status in the queue's answer");
        goto out;
    }
    for (size_t i = 0; i < ARRAY_LEN(fal_statuses); i++) {
        if (strcmp(fal_statuses[i].status, status) == 0) {
            kind = fal_statuses[i].kind;
        }
    }
    error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (kind == FAL_COMPLETED && error != NULL && !cJSON_IsNull(error)) {
        const char *type = adapter_json_str(root, "error_type");
        rc = media_job_ended(resp, type != NULL && type[0] != '\0' ? type : "provider_failed",
                             "the request failed", cJSON_GetStringValue(error), err);
        goto out;
    }
    rc = fal_pending(call, root, call->upstream_id, kind == FAL_COMPLETED ? "result" : "status",
                     out, err);
    if (kind == FAL_QUEUED) {
        out->progress = 0;
        out->queue_position = fal_queue_position(root);
    } else if (kind == FAL_RUNNING) {
        out->progress = fal_progress(root);
    } else {
        out->progress = 100;
        out->poll_after_ms = 0;
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* One file object of a result ({url, content_type?}) as an output; false when it has no URL. */
static bool fal_output(const cJSON *file, struct media_output *o)
{
    o->url = adapter_json_str(file, "url");
    o->content_type = adapter_json_str(file, "content_type");
    return o->url != NULL && media_url_fetchable(o->url);
}

/*
 * The model's result: {images: [{url, content_type}]} (or one {image}) for image models,
 * {video: {url, content_type}} for video models. Well-formed JSON without them is final.
 */
static int fal_parse_result(const struct adapter_call *call, const struct adapter_response *resp,
                            struct adapter_result *out, struct core_err *err)
{
    struct media_output outputs[MEDIA_MAX_OUTPUTS];
    cJSON *root = NULL;
    const cJSON *images;
    const cJSON *item;
    size_t n = 0;
    int rc;

    rc = adapter_reply_root(resp, fal_http_error, &root, err);
    if (rc != 0) {
        goto out;
    }
    images = cJSON_GetObjectItemCaseSensitive(root, "images");
    if (call->op == ADAPTER_OP_VIDEO) {
        n = fal_output(cJSON_GetObjectItemCaseSensitive(root, "video"), &outputs[0]) ? 1 : 0;
    } else if (cJSON_IsArray(images)) {
        cJSON_ArrayForEach(item, images)
        {
            if (n == MEDIA_MAX_OUTPUTS) {
                break;
            }
            if (!fal_output(item, &outputs[n])) {
                n = 0;
                break;
            }
            n++;
        }
    } else {
        n = fal_output(cJSON_GetObjectItemCaseSensitive(root, "image"), &outputs[0]) ? 1 : 0;
    }
    if (n == 0) {
        rc = adapter_malformed(resp->status, false, err, "the result has no %s with an http(s) url",
                               call->op == ADAPTER_OP_VIDEO ? "video" : "images");
        goto out;
    }
    rc = media_done(call, resp, outputs, n, call->upstream_id, out, err);
out:
    cJSON_Delete(root);
    return rc;
}

static int fal_parse_poll(const struct adapter_call *call, const struct adapter_response *resp,
                          struct adapter_result *out, struct core_err *err)
{
    const char *phase = adapter_json_str(call->job, "phase");
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!media_op_ok(call->op)) {
        return adapter_unsupported(fal_media.name, call->op, err);
    }
    if (phase != NULL && strcmp(phase, "result") == 0) {
        rc = fal_parse_result(call, resp, out, err);
    } else {
        rc = fal_parse_status(call, resp, out, err);
    }
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

/*
 * A request on a queued job: the job's URL under key when it is safe to call, else the
 * documented one for upstream_id.
 */
static int fal_build_job_request(const struct adapter_call *call, const char *method,
                                 enum fal_url which, struct adapter_request *out,
                                 struct core_err *err)
{
    const struct adapter_target *t = call->target;
    const char *url = adapter_json_str(call->job, fal_job_urls[which].key);
    int rc = media_job_begin(&fal_media, call, method, out, err);

    if (rc != 0) {
        return rc;
    }
    if (url != NULL && media_url_same_origin(t->base_url, url)) {
        out->url = strdup(url);
    } else if (fal_model_ok(t->model) && fal_id_ok(call->upstream_id)) {
        out->url = fal_fallback_url(t, call->upstream_id, fal_job_urls[which].suffix);
    } else {
        return core_err_set(err, CORE_EINTERNAL, NULL, "no fal request to call (%s)",
                            fal_job_urls[which].key);
    }
    return media_job_finish(&fal_media, t, out, err);
}

/* Status phase: GET the status URL; result phase: GET the response URL. */
static int fal_build_poll(const struct adapter_call *call, struct adapter_request *out,
                          struct core_err *err)
{
    const char *phase = adapter_json_str(call->job, "phase");
    bool result = phase != NULL && strcmp(phase, "result") == 0;

    return fal_build_job_request(call, "GET", result ? FAL_URL_RESPONSE : FAL_URL_STATUS, out, err);
}

static int fal_build_cancel(const struct adapter_call *call, struct adapter_request *out,
                            struct core_err *err)
{
    return fal_build_job_request(call, "PUT", FAL_URL_CANCEL, out, err);
}

const struct adapter adapter_fal = {
    .name = "fal",
    .build_request = fal_build_request,
    .parse_response = fal_parse_response,
    .build_poll = fal_build_poll,
    .parse_poll = fal_parse_poll,
    .build_cancel = fal_build_cancel,
};
