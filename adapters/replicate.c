/*
 * adapters/replicate.c — the replicate dialect: image and video tasks as Replicate predictions.
 *
 * A task becomes one prediction, created without `Prefer: wait` and then polled: sluice's worker
 * owns the waiting, so no connection is held open for a minute. The prediction's own URLs
 * (urls.get, urls.cancel) are kept as the job state and used verbatim; the documented
 * /predictions/{id} layout under base_url is the fallback when they are missing or point at a
 * host other than the deployment's, since every poll carries the API key. What it shares with
 * fal (reading the client's body, judging URLs, the finished result) is in media.c. An image edit
 * sends its image (one) and mask as data: URIs in input.image and input.mask; a video's reference
 * image (input_reference) goes in the model's first-frame field (replicate_reference_inputs).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/media.h"

#define REPLICATE_MAX_ID 128 /* a prediction id or model version */

static const struct media_dialect replicate_media = {"replicate", "Authorization: Bearer "};

/* What a prediction's status means for the task. */
enum replicate_kind {
    REPLICATE_RUNNING = 0, /* poll again */
    REPLICATE_SUCCEEDED,   /* output is final */
    REPLICATE_ENDED,       /* failed, canceled or aborted: a final error */
};

/*
 * Prediction statuses. progress is what the status alone says (-1: read the logs); err_code and
 * what describe the final error of a prediction that ended without output.
 */
static const struct {
    const char *status;
    enum replicate_kind kind;
    int progress;
    const char *err_code;
    const char *what;
} replicate_statuses[] = {
    {"starting", REPLICATE_RUNNING, 0, NULL, NULL},
    {"processing", REPLICATE_RUNNING, -1, NULL, NULL},
    {"succeeded", REPLICATE_SUCCEEDED, 100, NULL, NULL},
    {"failed", REPLICATE_ENDED, 0, "provider_failed", "the prediction failed"},
    {"canceled", REPLICATE_ENDED, 0, "provider_cancelled", "the prediction was canceled"},
    {"aborted", REPLICATE_ENDED, 0, "provider_cancelled", "the prediction was aborted"},
};

/* len bytes of s are a model owner or name: letters, digits, '-', '_', '.'. */
static bool replicate_name_ok(const char *s, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
            return false;
        }
    }
    return true;
}

/* A prediction id or version as Replicate writes them: letters and digits, bounded. */
static bool replicate_id_ok(const char *s)
{
    return adapter_id_ok(s, REPLICATE_MAX_ID, "");
}

/*
 * The request path for the deployment's model: "owner/name" runs the model's latest version
 * (models/{owner}/{name}/predictions); "owner/name:version" runs that version
 * (predictions, with *version pointing into model). NULL when model is neither, or on OOM
 * (*bad tells which). Caller frees.
 */
static char *replicate_create_path(const char *model, const char **version, bool *bad)
{
    const char *colon = strchr(model, ':');
    size_t len = colon ? (size_t)(colon - model) : strlen(model);
    const char *slash = memchr(model, '/', len);
    char *path;

    *version = NULL;
    *bad = true;
    if (slash == NULL || !replicate_name_ok(model, (size_t)(slash - model)) ||
        !replicate_name_ok(slash + 1, len - (size_t)(slash - model) - 1)) {
        return NULL;
    }
    if (colon != NULL) {
        if (!replicate_id_ok(colon + 1)) {
            return NULL;
        }
        *version = colon + 1;
        *bad = false;
        return strdup("predictions");
    }
    *bad = false;
    path = malloc(len + sizeof("models//predictions"));
    if (path != NULL) {
        snprintf(path, len + sizeof("models//predictions"), "models/%.*s/predictions", (int)len,
                 model);
    }
    return path;
}

/*
 * Where a video model takes its reference image (input_reference), by model prefix (the first
 * match wins; the last row is every other model): Replicate's video models name their first
 * frame differently, and each takes a URI, data: URIs included.
 */
static const struct {
    const char *prefix;
    const char *field;
} replicate_reference_inputs[] = {
    {"minimax/", "first_frame_image"},
    {"kwaivgi/kling", "start_image"},
    {"", "image"},
};

/* The input field of the deployment's model for a video's reference image. */
static const char *replicate_reference_field(const char *model)
{
    size_t row = 0;

    while (strncmp(model, replicate_reference_inputs[row].prefix,
                   strlen(replicate_reference_inputs[row].prefix)) != 0) {
        row++; /* the last row's empty prefix matches every model */
    }
    return replicate_reference_inputs[row].field;
}

/* The prediction's input: the prompt and the OpenAI fields that have a common Replicate name. */
static cJSON *replicate_input(const struct adapter_call *call, const struct media_input *in)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = cJSON_AddStringToObject(o, "prompt", in->prompt) != NULL;

    if (ok && call->op == ADAPTER_OP_IMAGE && in->n > 0) {
        ok = cJSON_AddNumberToObject(o, "num_outputs", in->n) != NULL;
    }
    if (ok && call->op == ADAPTER_OP_IMAGE && in->output_format != NULL) {
        ok = cJSON_AddStringToObject(o, "output_format", in->output_format) != NULL;
    }
    if (ok && call->op == ADAPTER_OP_VIDEO && in->seconds > 0) {
        ok = cJSON_AddNumberToObject(o, "duration", in->seconds) != NULL;
    }
    if (ok && in->width > 0) {
        ok = cJSON_AddStringToObject(o, "aspect_ratio",
                                     media_aspect_ratio(in->width, in->height)) != NULL;
    }
    /* an edit: Replicate's image models take the image to edit (and an inpainting mask) as URIs,
     * data: URIs included */
    if (ok && in->n_images > 0) {
        ok = cJSON_AddStringToObject(o, "image", in->images[0]) != NULL;
    }
    if (ok && in->mask != NULL) {
        ok = cJSON_AddStringToObject(o, "mask", in->mask) != NULL;
    }
    if (ok && in->reference != NULL) {
        ok = cJSON_AddStringToObject(o, replicate_reference_field(call->target->model),
                                     in->reference) != NULL;
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/*
 * A prediction that calls back when it ends: Replicate POSTs the prediction to "webhook" for the
 * events in "webhook_events_filter"; only "completed" (succeeded, failed or canceled) is asked
 * for, since a callback only makes the task due for its poll. False when out of memory.
 */
static bool replicate_add_webhook(cJSON *body, const char *url)
{
    cJSON *events = cJSON_AddArrayToObject(body, "webhook_events_filter");
    cJSON *completed = cJSON_CreateString("completed");

    if (events == NULL || completed == NULL) {
        cJSON_Delete(completed);
        return false;
    }
    cJSON_AddItemToArray(events, completed);
    return cJSON_AddStringToObject(body, "webhook", url) != NULL;
}

static int replicate_build_request(const struct adapter_call *call, struct adapter_request *out,
                                   struct core_err *err)
{
    const struct adapter_target *t = call->target;
    struct media_input in;
    const char *version = NULL;
    char *path = NULL;
    cJSON *body = NULL;
    cJSON *input = NULL;
    bool bad = false;
    int rc = 0;

    rc = media_submit_begin(&replicate_media, call, &in, out, err);
    if (rc != 0) {
        goto out;
    }
    if (in.n_images > 1) {
        rc = core_err_set(err, CORE_EINVAL, "image",
                          "the replicate dialect takes one image to edit, not %zu", in.n_images);
        goto out;
    }
    path = replicate_create_path(t->model, &version, &bad);
    if (bad) {
        rc = core_err_set(err, CORE_EINTERNAL, NULL,
                          "replicate model \"%.200s\" is not owner/name or owner/name:version",
                          t->model);
        goto out;
    }
    body = cJSON_CreateObject();
    input = replicate_input(call, &in);
    if (path == NULL || body == NULL || input == NULL ||
        (version != NULL && cJSON_AddStringToObject(body, "version", version) == NULL)) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        goto out;
    }
    cJSON_AddItemToObject(body, "input", input);
    input = NULL;
    if (call->callback_url != NULL && !replicate_add_webhook(body, call->callback_url)) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        goto out;
    }
    rc = media_submit_finish(&replicate_media, t, adapter_url_join(t->base_url, path), body, out,
                             err);
out:
    free(path);
    cJSON_Delete(body);
    cJSON_Delete(input);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/*
 * A non-2xx reply. Replicate answers with problem details ({"title", "detail", "status"}); a 429
 * may name its wait only in the body's retry_after (seconds).
 */
static int replicate_http_error(const struct adapter_response *resp, const cJSON *root,
                                struct core_err *err)
{
    struct adapter_error_fields f;
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(root, "retry_after");
    bool have = adapter_error_fields_read(root, &f);

    if (!have) {
        memset(&f, 0, sizeof(f));
        f.message = adapter_json_str(root, "detail");
        if (f.message == NULL || f.message[0] == '\0') {
            f.message = adapter_json_str(root, "title");
        }
        have = f.message != NULL;
    }
    adapter_http_error(resp, have ? &f : NULL, err);
    if (resp->status == 429 && err->retry_after_ms < 0 && cJSON_IsNumber(after) &&
        after->valuedouble > 0) {
        err->retry_after_ms = adapter_clamp_wait_ms(after->valuedouble * 1000.0);
    }
    return err->code;
}

/* The job state to keep: the prediction's get and cancel URLs, when they are safe to call. */
static cJSON *replicate_job(const struct adapter_call *call, const cJSON *prediction)
{
    static const char *const keys[] = {"get", "cancel"};
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(prediction, "urls");
    cJSON *job = cJSON_CreateObject();

    for (size_t i = 0; job != NULL && i < ARRAY_LEN(keys); i++) {
        const char *url = adapter_json_str(urls, keys[i]);
        if (url != NULL && media_url_same_origin(call->target->base_url, url) &&
            cJSON_AddStringToObject(job, keys[i], url) == NULL) {
            cJSON_Delete(job);
            job = NULL;
        }
    }
    return job;
}

/* A prediction's output as files: one URL, or an array of them. Returns how many, 0 if none. */
static size_t replicate_outputs(const cJSON *output, struct media_output *outputs, bool *bad)
{
    const cJSON *list = cJSON_IsArray(output) ? output : NULL;
    const cJSON *item;
    size_t n = 0;

    *bad = false;
    if (cJSON_IsString(output)) {
        outputs[0].url = output->valuestring;
        outputs[0].content_type = NULL;
        *bad = !media_url_fetchable(output->valuestring);
        return *bad ? 0 : 1;
    }
    cJSON_ArrayForEach(item, list)
    {
        if (n == MEDIA_MAX_OUTPUTS) {
            break;
        }
        if (!cJSON_IsString(item) || !media_url_fetchable(item->valuestring)) {
            *bad = true;
            return 0;
        }
        outputs[n].url = item->valuestring;
        outputs[n].content_type = NULL;
        n++;
    }
    return n;
}

/*
 * Reads a prediction, as both creating and polling one return it: still running → PENDING,
 * succeeded → DONE, failed or canceled → a final error. A status Replicate adds later counts as
 * running, so a new intermediate state does not fail tasks; the worker's deadline still bounds it.
 */
static int replicate_parse(const struct adapter_call *call, const struct adapter_response *resp,
                           struct adapter_result *out, struct core_err *err)
{
    struct media_output outputs[MEDIA_MAX_OUTPUTS];
    cJSON *root = NULL;
    const char *id;
    const char *status;
    const char *logs;
    size_t row = ARRAY_LEN(replicate_statuses);
    size_t n;
    bool bad;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!media_op_ok(call->op)) {
        rc = adapter_unsupported(replicate_media.name, call->op, err);
        goto out;
    }
    if ((rc = adapter_reply_root(resp, replicate_http_error, &root, err)) != 0) {
        goto out;
    }
    id = adapter_json_str(root, "id");
    status = adapter_json_str(root, "status");
    if (!replicate_id_ok(id) || status == NULL) {
        rc = adapter_malformed(resp->status, false, err, "not a prediction (no id or status)");
        goto out;
    }
    for (size_t i = 0; i < ARRAY_LEN(replicate_statuses); i++) {
        if (strcmp(replicate_statuses[i].status, status) == 0) {
            row = i;
            break;
        }
    }
    if (row < ARRAY_LEN(replicate_statuses) && replicate_statuses[row].kind == REPLICATE_ENDED) {
        rc = media_job_ended(resp, replicate_statuses[row].err_code, replicate_statuses[row].what,
                             adapter_json_str(root, "error"), err);
        goto out;
    }
    if (row < ARRAY_LEN(replicate_statuses) &&
        replicate_statuses[row].kind == REPLICATE_SUCCEEDED) {
        n = replicate_outputs(cJSON_GetObjectItemCaseSensitive(root, "output"), outputs, &bad);
        if (n == 0) {
            rc = adapter_malformed(resp->status, false, err, "the prediction succeeded %s",
                                   bad ? "with an output that is not an http(s) URL"
                                       : "without output");
            goto out;
        }
        rc = media_done(call, resp, outputs, n, id, out, err);
        goto out;
    }
    out->outcome = ADAPTER_PENDING;
    out->progress = row < ARRAY_LEN(replicate_statuses) ? replicate_statuses[row].progress : -1;
    logs = adapter_json_str(root, "logs");
    if (out->progress < 0 && logs != NULL) {
        out->progress = media_progress_from_text(logs);
    }
    out->queue_position = -1;
    out->poll_after_ms = -1;
    out->upstream_id = strdup(id);
    out->job = replicate_job(call, root);
    if (out->upstream_id == NULL || out->job == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory reading the reply");
    }
out:
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

/*
 * A request on an existing prediction: the job's URL under key when it is safe to call, else
 * base_url/predictions/{id}{suffix}.
 */
static int replicate_build_job_request(const struct adapter_call *call, const char *method,
                                       const char *key, const char *suffix,
                                       struct adapter_request *out, struct core_err *err)
{
    const struct adapter_target *t = call->target;
    const char *url = adapter_json_str(call->job, key);
    int rc = media_job_begin(&replicate_media, call, method, out, err);

    if (rc != 0) {
        return rc;
    }
    if (url != NULL && media_url_same_origin(t->base_url, url)) {
        out->url = strdup(url);
    } else if (replicate_id_ok(call->upstream_id)) {
        char path[sizeof("predictions//cancel") + REPLICATE_MAX_ID];
        snprintf(path, sizeof(path), "predictions/%s%s", call->upstream_id, suffix);
        out->url = adapter_url_join(t->base_url, path);
    } else {
        return core_err_set(err, CORE_EINTERNAL, NULL, "no replicate prediction to %s",
                            strcmp(key, "get") == 0 ? "poll" : "cancel");
    }
    return media_job_finish(&replicate_media, t, out, err);
}

static int replicate_build_poll(const struct adapter_call *call, struct adapter_request *out,
                                struct core_err *err)
{
    return replicate_build_job_request(call, "GET", "get", "", out, err);
}

static int replicate_build_cancel(const struct adapter_call *call, struct adapter_request *out,
                                  struct core_err *err)
{
    return replicate_build_job_request(call, "POST", "cancel", "/cancel", out, err);
}

const struct adapter adapter_replicate = {
    .name = "replicate",
    .build_request = replicate_build_request,
    .parse_response = replicate_parse,
    .build_poll = replicate_build_poll,
    .parse_poll = replicate_parse,
    .build_cancel = replicate_build_cancel,
};
