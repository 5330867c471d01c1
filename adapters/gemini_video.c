/*
 * adapters/gemini_video.c — Veo: video tasks on the Gemini dialect, as a long-running operation.
 *
 * A task is submitted to POST {base_url}/models/{model}:predictLongRunning with {instances:
 * [{prompt, image?}], parameters: {aspectRatio, durationSeconds, resolution}} (image: the
 * reference image's bytes, from input_reference's data: URI); the reply names an
 * operation ("models/veo-3.0-generate-001/operations/abc123"), which is the task's upstream id and
 * is polled with GET {base_url}/{name} until "done". A done operation carries either "error" (a
 * google.rpc.Status) or response.generateVideoResponse.generatedSamples[0].video.uri, the file,
 * downloaded with the key in x-goog-api-key. The Gemini API documents no cancel for these
 * operations (only tuned models' have one), so the dialect has no build_cancel.
 *
 * The download URI is on the API's own host (generativelanguage.googleapis.com/v1beta/files/
 * {id}:download?alt=media), the origin of base_url, so the worker sends the key with it;
 * worker/artifact_fetch.c sends a fetch's headers only to base_url's origin, so a URI on any
 * other host is fetched without the key (and fails visibly if it needed one).
 *
 * Reading the client's body, sizes as aspect ratios and the finished video object are media.c's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/gemini.h"
#include "adapters/media.h"

#define GEMINI_MAX_OP_NAME 512 /* an operation name we keep and splice into a poll URL */

static const struct media_dialect gemini_media = {"gemini", "x-goog-api-key: "};

/* The aspect ratios Veo takes, and the resolution a side of an OpenAI size names. */
static const char *const gemini_video_ratios[] = {"16:9", "9:16"};

static const struct {
    int short_side;
    const char *resolution;
} gemini_video_resolutions[] = {
    {720, "720p"},
    {1080, "1080p"},
};

/*
 * The google.rpc.Code of a finished operation's error, by number, as its name. An operation that
 * is done does not change when polled again, so every one of them is final for the task: the
 * worker reads a retryable error on an upstream job as "poll again".
 */
static const char *const gemini_rpc_codes[] = {
    [1] = "CANCELLED",           [2] = "UNKNOWN",
    [3] = "INVALID_ARGUMENT",    [4] = "DEADLINE_EXCEEDED",
    [5] = "NOT_FOUND",           [6] = "ALREADY_EXISTS",
    [7] = "PERMISSION_DENIED",   [8] = "RESOURCE_EXHAUSTED",
    [9] = "FAILED_PRECONDITION", [10] = "ABORTED",
    [11] = "OUT_OF_RANGE",       [12] = "UNIMPLEMENTED",
    [13] = "INTERNAL",           [14] = "UNAVAILABLE",
    [15] = "DATA_LOSS",          [16] = "UNAUTHENTICATED",
};

/*
 * An operation name safe to splice into {base_url}/{name}: letters, digits, '-', '_', '.' and
 * '/', bounded, with no empty, "." or ".." segment and an "operations/{id}" pair in it.
 */
static bool gemini_op_name_ok(const char *s)
{
    const char *seg;
    bool ops = false;

    if (!adapter_id_ok(s, GEMINI_MAX_OP_NAME, "-_./")) {
        return false;
    }
    for (seg = s; *seg != '\0';) {
        size_t n = strcspn(seg, "/");

        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && strncmp(seg, "..", 2) == 0)) {
            return false;
        }
        if (n == 10 && strncmp(seg, "operations", 10) == 0 && seg[n] == '/') {
            ops = true;
        }
        seg += n;
        if (*seg == '/') {
            seg++;
            if (*seg == '\0') {
                return false;
            }
        }
    }
    return ops;
}

/* {base_url}/models/{model}:predictLongRunning (a model written "models/x" as it is). */
static char *gemini_video_url(const struct adapter_target *t)
{
    const char *prefix = strchr(t->model, '/') ? "" : "models/";
    size_t n = strlen(prefix) + strlen(t->model) + sizeof(":predictLongRunning");
    char *path = malloc(n);
    char *url;

    if (path == NULL) {
        return NULL;
    }
    snprintf(path, n, "%s%s:predictLongRunning", prefix, t->model);
    url = adapter_url_join(t->base_url, path);
    free(path);
    return url;
}

/*
 * The parameters the client's size and seconds ask for. Veo makes 16:9 and 9:16 only, and whole
 * seconds: a size nearest another ratio, or a fraction of a second, is refused naming the field
 * rather than answered with a video of another shape or length.
 */
static int gemini_video_params(const struct media_input *in, cJSON *params, struct core_err *err)
{
    const char *ratio;
    bool ok = true;

    if (in->width > 0) {
        ratio = media_aspect_ratio(in->width, in->height);
        if (strcmp(ratio, gemini_video_ratios[0]) != 0 &&
            strcmp(ratio, gemini_video_ratios[1]) != 0) {
            return core_err_set(err, CORE_EINVAL, "size",
                                "the gemini dialect (Veo) makes 16:9 or 9:16 videos; size %dx%d "
                                "is %s",
                                in->width, in->height, ratio);
        }
        ok = cJSON_AddStringToObject(params, "aspectRatio", ratio) != NULL;
        for (size_t i = 0; ok && i < ARRAY_LEN(gemini_video_resolutions); i++) {
            int short_side = in->width < in->height ? in->width : in->height;
            if (short_side == gemini_video_resolutions[i].short_side) {
                ok = cJSON_AddStringToObject(params, "resolution",
                                             gemini_video_resolutions[i].resolution) != NULL;
            }
        }
    }
    if (ok && in->seconds > 0) {
        if (in->seconds != floor(in->seconds)) {
            return core_err_set(err, CORE_EINVAL, "seconds",
                                "the gemini dialect (Veo) takes whole seconds");
        }
        ok = cJSON_AddNumberToObject(params, "durationSeconds", in->seconds) != NULL;
    }
    return ok ? 0 : gemini_oom(err);
}

/*
 * Image-to-video: instances[0].image = {bytesBase64Encoded, mimeType} from a data: URI. The
 * Gemini API takes the image's bytes only (Vertex's gcsUri is not a URL a client hands us), so a
 * URL is refused naming input_reference rather than dropped into a text-to-video.
 */
static int gemini_video_image(const struct media_input *in, cJSON *instance, struct core_err *err)
{
    struct media_data_uri u;
    cJSON *image;

    if (in->reference == NULL) {
        return 0;
    }
    if (media_data_uri_parse(in->reference, &u) != 0) {
        return core_err_set(err, CORE_EUNPROCESSABLE, "input_reference",
                            "the gemini dialect (Veo) takes the image's bytes: send "
                            "input_reference as a file or a data: URI, not a URL");
    }
    image = cJSON_AddObjectToObject(instance, "image");
    if (image == NULL || cJSON_AddStringToObject(image, "bytesBase64Encoded", u.b64) == NULL ||
        cJSON_AddStringToObject(image, "mimeType", u.mime) == NULL) {
        return gemini_oom(err);
    }
    return 0;
}

int gemini_video_build_request(const struct adapter_call *call, struct adapter_request *out,
                               struct core_err *err)
{
    struct media_input in;
    cJSON *body = NULL;
    cJSON *instance;
    cJSON *params;
    int rc;

    rc = media_submit_begin(&gemini_media, call, &in, out, err);
    if (rc != 0) {
        goto out;
    }
    body = cJSON_CreateObject();
    instance = cJSON_CreateObject();
    if (body == NULL || !adapter_json_push(cJSON_AddArrayToObject(body, "instances"), instance) ||
        cJSON_AddStringToObject(instance, "prompt", in.prompt) == NULL ||
        (params = cJSON_AddObjectToObject(body, "parameters")) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    if ((rc = gemini_video_image(&in, instance, err)) != 0 ||
        (rc = gemini_video_params(&in, params, err)) != 0) {
        goto out;
    }
    if (cJSON_GetArraySize(params) == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(body, "parameters");
    }
    rc = media_submit_finish(&gemini_media, call->target, gemini_video_url(call->target), body, out,
                             err);
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/* A finished operation's error: final, with Google's status name as code and type. */
static int gemini_video_failed(const struct adapter_response *resp, const cJSON *error,
                               struct core_err *err)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
    const char *name = "provider_failed";

    if (cJSON_IsNumber(code) && code->valuedouble >= 1 &&
        code->valuedouble < (double)ARRAY_LEN(gemini_rpc_codes)) {
        name = gemini_rpc_codes[(int)code->valuedouble];
    }
    media_job_ended(resp, strcmp(name, "CANCELLED") == 0 ? "provider_cancelled" : name,
                    "the video operation failed", adapter_json_str(error, "message"), err);
    snprintf(err->type, sizeof(err->type), "%s", name);
    return err->code;
}

/*
 * A done operation without samples: Veo's safety filter (raiMediaFilteredCount, with reasons) is
 * a content-policy failure the same prompt meets again; anything else is a malformed reply.
 */
static int gemini_video_empty(const struct adapter_response *resp, const cJSON *gvr,
                              struct core_err *err)
{
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(gvr, "raiMediaFilteredCount");
    const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(gvr, "raiMediaFilteredReasons");

    if (!cJSON_IsNumber(count) || count->valuedouble <= 0) {
        return adapter_malformed(resp->status, false, err,
                                 "the done operation has no generatedSamples[0].video.uri");
    }
    media_job_ended(resp, "content_policy_violation",
                    "the provider's safety filter removed the video",
                    cJSON_GetStringValue(cJSON_GetArrayItem(reasons, 0)), err);
    snprintf(err->type, sizeof(err->type), "invalid_request_error");
    return err->code;
}

/*
 * Reads an operation (root, borrowed) into out: still running → PENDING on its name (progress
 * -1: the operation reports none); done with an error → the error; done with a sample → DONE with
 * the video object and one download of the sample's URI carrying the key.
 */
static int gemini_video_operation(const struct adapter_call *call,
                                  const struct adapter_response *resp, const cJSON *root,
                                  struct adapter_result *out, struct core_err *err)
{
    const char *name = adapter_json_str(root, "name");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *gvr;
    const cJSON *sample;
    struct media_output video = {NULL, NULL};
    int rc;

    if (call->upstream_id != NULL) {
        name = call->upstream_id; /* a poll keeps the operation it polled */
    }
    if (!gemini_op_name_ok(name)) {
        return adapter_malformed(resp->status, false, err, "no usable operation name");
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "done"))) {
        out->outcome = ADAPTER_PENDING;
        out->progress = -1; /* the Gemini API's operations report no progress */
        out->queue_position = -1;
        out->poll_after_ms = -1;
        out->upstream_id = strdup(name);
        return out->upstream_id != NULL ? 0 : gemini_oom(err);
    }
    if (cJSON_IsObject(error)) {
        return gemini_video_failed(resp, error, err);
    }
    gvr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "response"),
                                           "generateVideoResponse");
    sample = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(gvr, "generatedSamples"), 0);
    video.url = adapter_json_str(cJSON_GetObjectItemCaseSensitive(sample, "video"), "uri");
    video.content_type =
        adapter_json_str(cJSON_GetObjectItemCaseSensitive(sample, "video"), "mimeType");
    if (video.url == NULL) {
        return gemini_video_empty(resp, gvr, err);
    }
    if (!media_url_fetchable(video.url)) {
        return adapter_malformed(resp->status, false, err, "the video uri is not an http(s) URL");
    }
    if (video.content_type == NULL) {
        video.content_type = "video/mp4"; /* Veo's URIs end in ":download?alt=media" */
    }
    rc = media_done(call, resp, &video, 1, name, out, err);
    if (rc == 0 && adapter_request_add_key(&out->artifacts[0].fetch, gemini_media.auth_prefix,
                                           call->target->api_key) != 0) {
        rc = gemini_oom(err);
    }
    return rc;
}

/* The submit's reply and every poll's are one shape: an Operation. */
static int gemini_video_parse(const struct adapter_call *call, const struct adapter_response *resp,
                              struct adapter_result *out, struct core_err *err)
{
    cJSON *root = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_VIDEO) {
        return adapter_unsupported(gemini_media.name, call->op, err);
    }
    rc = adapter_reply_root(resp, gemini_http_error, &root, err);
    if (rc == 0) {
        rc = gemini_video_operation(call, resp, root, out, err);
    }
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

int gemini_video_parse_response(const struct adapter_call *call,
                                const struct adapter_response *resp, struct adapter_result *out,
                                struct core_err *err)
{
    int rc = gemini_video_parse(call, resp, out, err);

    if (rc == 0 && out->outcome == ADAPTER_PENDING && out->progress < 0) {
        out->progress = 0;
    }
    return rc;
}

int gemini_video_parse_poll(const struct adapter_call *call, const struct adapter_response *resp,
                            struct adapter_result *out, struct core_err *err)
{
    return gemini_video_parse(call, resp, out, err);
}

int gemini_video_build_poll(const struct adapter_call *call, struct adapter_request *out,
                            struct core_err *err)
{
    int rc = media_job_begin(&gemini_media, call, "GET", out, err);

    if (rc != 0) {
        return rc;
    }
    if (call->op != ADAPTER_OP_VIDEO) {
        return adapter_unsupported(gemini_media.name, call->op, err);
    }
    if (!gemini_op_name_ok(call->upstream_id)) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "the task has no usable operation name");
    }
    out->url = adapter_url_join(call->target->base_url, call->upstream_id);
    return media_job_finish(&gemini_media, call->target, out, err);
}
