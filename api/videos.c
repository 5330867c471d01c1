/*
 * api/videos.c — OpenAI's video job API over sluice tasks, and the artifact bytes of any media
 * task (GET /v1/tasks/{id}/content).
 *
 * A video is a task of kind "video" whose id is the task id: POST /v1/videos creates it (JSON, or
 * multipart/form-data as the official SDK sends; a reference image, input_reference, is kept in
 * the input as a data: URI or an http(s) URL, whichever form it came in), GET /v1/videos/{id}
 * renders the task as OpenAI's video object, GET /v1/videos/{id}/content sends the MP4 the worker
 * kept. The bytes of any kept artifact go out through api_send_artifact (also behind the signed
 * URLs of images).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "adapters/media.h"
#include "api/internal.h"
#include "core/artifact_ref.h"
#include "core/blobs.h"
#include "core/keys.h"
#include "core/multipart.h"
#include "core/task.h"
#include "core/util.h"

/* Task status → OpenAI video status. */
static const struct {
    const char *task;
    const char *video;
} video_status[] = {
    {"queued", "queued"},       {"in_progress", "in_progress"}, {"cancelling", "in_progress"},
    {"completed", "completed"}, {"failed", "failed"},           {"cancelled", "failed"},
    {"expired", "failed"},
};

static const char *map_status(const char *s)
{
    for (size_t i = 0; i < sizeof(video_status) / sizeof(video_status[0]); i++) {
        if (s && strcmp(s, video_status[i].task) == 0) {
            return video_status[i].video;
        }
    }
    return "queued";
}

static void add_input_field(cJSON *o, const cJSON *input, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, name);
    if (cJSON_IsString(v)) {
        cJSON_AddStringToObject(o, name, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%g", v->valuedouble);
        cJSON_AddStringToObject(o, name, buf);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_seconds_or_null(cJSON *o, const char *name, const char *ms)
{
    if (ms && ms[0]) {
        cJSON_AddNumberToObject(o, name, (double)(strtoll(ms, NULL, 10) / 1000));
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

cJSON *api_video_json(const char *id, const redisReply *hash)
{
    const char *status = task_hash_get(hash, "status");
    const char *progress = task_hash_get(hash, "progress");
    const char *error = task_hash_get(hash, "error");
    const char *input_text = task_hash_get(hash, "input");
    cJSON *input = input_text ? cJSON_Parse(input_text) : NULL;
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "video");
    cJSON_AddStringToObject(o, "model", task_hash_get(hash, "model") ?: "");
    cJSON_AddStringToObject(o, "status", map_status(status));
    cJSON_AddNumberToObject(o, "progress",
                            status && strcmp(status, "completed") == 0 ? 100
                            : progress                                 ? atoi(progress)
                                                                       : 0);
    add_seconds_or_null(o, "created_at", task_hash_get(hash, "created"));
    add_seconds_or_null(o, "completed_at", task_hash_get(hash, "completed"));
    add_seconds_or_null(o, "expires_at", task_hash_get(hash, "expires"));
    add_input_field(o, input, "prompt");
    add_input_field(o, input, "seconds");
    add_input_field(o, input, "size");
    cJSON_AddNullToObject(o, "remixed_from_video_id");
    if (error) {
        cJSON *e = cJSON_Parse(error);
        cJSON *ve = cJSON_CreateObject();
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        cJSON_AddStringToObject(ve, "code", cJSON_IsString(code) ? code->valuestring : "failed");
        cJSON_AddStringToObject(ve, "message", cJSON_IsString(msg) ? msg->valuestring : "");
        cJSON_AddItemToObject(o, "error", ve);
        cJSON_Delete(e);
    } else if (status && (strcmp(status, "cancelled") == 0 || strcmp(status, "expired") == 0)) {
        cJSON *ve = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(ve, "code", status);
        cJSON_AddStringToObject(ve, "message",
                                "The video job was cancelled or passed its deadline");
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    cJSON_Delete(input);
    return o;
}

/* ---- POST /v1/videos ---------------------------------------------------------------------- */

/* The form as it is read; the first refusal stops the parse. */
struct form {
    cJSON *input;
    int error;           /* 0, or the core code of the refusal */
    const char *param;   /* static: the field the refusal names */
    const char *message; /* static */
};

static int form_refuse(struct form *f, int code, const char *param, const char *message)
{
    f->error = code;
    f->param = param;
    f->message = message;
    return 1;
}

/*
 * The reference image's file part: its bytes kept in the input as a data: URI of the type its
 * Content-Type names or its leading bytes show (PNG, JPEG, WEBP), so the task is self-contained
 * (a retry, a failover or a restart needs nothing but the task).
 */
static int on_reference_file(struct form *f, const struct multipart_part *p)
{
    const char *mime = media_image_type(p->content_type, p->content_type_len, p->data, p->len);
    char *uri;
    bool ok;

    if (mime == NULL) {
        return form_refuse(f, CORE_EINVAL, "input_reference",
                           "input_reference is not a PNG, JPEG or WEBP image");
    }
    if ((uri = media_data_uri_encode(mime, p->data, p->len)) == NULL) {
        return form_refuse(f, CORE_ENOMEM, "input_reference", "Out of memory");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(f->input, "input_reference");
    ok = cJSON_AddStringToObject(f->input, "input_reference", uri) != NULL;
    free(uri);
    return ok ? 0 : form_refuse(f, CORE_ENOMEM, "input_reference", "Out of memory");
}

/*
 * Text fields become the input object's fields; seconds stays a string as OpenAI sends it. The
 * file part input_reference is the reference image; the SDK sends the object form
 * ({image_url}) as the text part input_reference[image_url], kept as input_reference itself.
 */
static int on_part(const struct multipart_part *p, void *arg)
{
    struct form *f = arg;
    char name[64];
    char *value;
    bool ok;

    if (p->name_len == 0 || p->name_len >= sizeof(name)) {
        return 0;
    }
    memcpy(name, p->name, p->name_len);
    name[p->name_len] = '\0';
    if (p->filename != NULL) {
        return strcmp(name, "input_reference") == 0
                   ? on_reference_file(f, p)
                   : form_refuse(f, CORE_EINVAL, "input_reference",
                                 "The only file a video takes is input_reference");
    }
    if (strcmp(name, "input_reference[file_id]") == 0) {
        return form_refuse(f, CORE_EUNPROCESSABLE, "input_reference",
                           "input_reference.file_id is not supported: send the image as a file, "
                           "a data: URI or an http(s) URL");
    }
    if (strcmp(name, "input_reference[image_url]") == 0) {
        snprintf(name, sizeof(name), "input_reference");
    }
    value = strndup(p->data, p->len);
    if (value == NULL) {
        return form_refuse(f, CORE_ENOMEM, NULL, "Out of memory");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(f->input, name);
    ok = cJSON_AddStringToObject(f->input, name, value) != NULL;
    free(value);
    return ok ? 0 : form_refuse(f, CORE_ENOMEM, NULL, "Out of memory");
}

static cJSON *read_video_body(struct api *a, struct evhttp_request *req, const char **raw,
                              size_t *raw_len)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char boundary[80];
    struct form f = {0};

    if (multipart_boundary(ct, boundary, sizeof(boundary)) < 0) {
        return api_read_json(a, req, raw, raw_len);
    }
    *raw_len = evbuffer_get_length(in);
    if (*raw_len > (size_t)a->cfg->limits.max_body_bytes) {
        api_reply_error(a, req, CORE_ETOOLARGE, NULL, "request_too_large",
                        "Request body of %zu bytes is larger than the limit of %ld bytes", *raw_len,
                        a->cfg->limits.max_body_bytes);
        return NULL;
    }
    *raw = (const char *)evbuffer_pullup(in, -1);
    f.input = cJSON_CreateObject();
    if (f.input == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return NULL;
    }
    if (multipart_parse(*raw ? *raw : "", *raw_len, boundary, on_part, &f) != 0) {
        if (f.error != 0) {
            api_reply_error(a, req, f.error, f.param, NULL, "%s", f.message);
        } else {
            api_reply_error(a, req, CORE_EINVAL, NULL, "invalid_multipart",
                            "The multipart/form-data body is malformed");
        }
        cJSON_Delete(f.input);
        return NULL;
    }
    return f.input;
}

/*
 * A JSON body's input_reference in the form the task keeps it: a string (a data: URI or an
 * http(s) URL). The object forms {"image_url": "..."} (the SDK's ImageInputReferenceParam) and
 * {"url": "..."} become that string; file_id is not served. Then the string is checked
 * (media_reference_check). Returns 0, or a negative code with e filled.
 */
static int video_reference_normalize(cJSON *body, struct core_err *e)
{
    cJSON *ref = cJSON_GetObjectItemCaseSensitive(body, "input_reference");
    const cJSON *url;

    if (cJSON_IsObject(ref)) {
        url = cJSON_GetObjectItemCaseSensitive(ref, "image_url");
        if (url == NULL) {
            url = cJSON_GetObjectItemCaseSensitive(ref, "url");
        }
        if (url == NULL && cJSON_GetObjectItemCaseSensitive(ref, "file_id") != NULL) {
            return core_err_set(e, CORE_EUNPROCESSABLE, "input_reference",
                                "input_reference.file_id is not supported: send the image as a "
                                "file, a data: URI or an http(s) URL");
        }
        if (!cJSON_IsString(url)) {
            return core_err_set(e, CORE_EINVAL, "input_reference",
                                "input_reference must be a string, or an object with image_url");
        }
        cJSON *copy = cJSON_CreateString(url->valuestring);
        if (copy == NULL ||
            !cJSON_ReplaceItemInObjectCaseSensitive(body, "input_reference", copy)) {
            cJSON_Delete(copy);
            return core_err_set(e, CORE_ENOMEM, NULL, "Out of memory");
        }
        ref = copy;
    }
    return media_reference_check(ref, e);
}

/*
 * The input as the task keeps it, the reference image in base64 included, is held to the body
 * limit: it is what every later step (Redis, the worker, the provider's request) carries.
 * Returns 0, or -1 after answering the error itself.
 */
static int video_input_fits(struct api *a, struct evhttp_request *req, const cJSON *input)
{
    char *text;
    size_t len;

    if (cJSON_GetObjectItemCaseSensitive(input, "input_reference") == NULL) {
        return 0;
    }
    if ((text = cJSON_PrintUnformatted(input)) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return -1;
    }
    len = strlen(text);
    free(text);
    if (len > (size_t)a->cfg->limits.max_body_bytes) {
        api_reply_error(a, req, CORE_ETOOLARGE, "input_reference", "request_too_large",
                        "The video's input, the reference image in base64, takes %zu bytes, more "
                        "than the limit of %ld bytes",
                        len, a->cfg->limits.max_body_bytes);
        return -1;
    }
    return 0;
}

static void on_video_submitted(struct api_ctx *c, int outcome, redisReply *dup,
                               const struct core_err *err)
{
    if (outcome < 0) {
        api_reply_err(c->api, c->req, err);
    } else if (outcome == 1) {
        api_reply_json(c->api, c->req, 200, api_video_json(c->id, dup));
    } else {
        /* The task as just created, in the video shape (queued, nothing run). */
        cJSON *v = cJSON_CreateObject();
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(c->task, "created_at");
        cJSON_AddStringToObject(v, "id", c->id);
        cJSON_AddStringToObject(v, "object", "video");
        cJSON_AddItemToObject(
            v, "model", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c->task, "model"), true));
        cJSON_AddStringToObject(v, "status", "queued");
        cJSON_AddNumberToObject(v, "progress", 0);
        cJSON_AddNumberToObject(v, "created_at", created ? created->valuedouble : 0);
        cJSON_AddNullToObject(v, "completed_at");
        cJSON_AddNullToObject(v, "expires_at");
        add_input_field(v, c->body, "prompt");
        add_input_field(v, c->body, "seconds");
        add_input_field(v, c->body, "size");
        cJSON_AddNullToObject(v, "remixed_from_video_id");
        cJSON_AddNullToObject(v, "error");
        api_reply_json(c->api, c->req, 200, v);
    }
    api_ctx_free(c);
}

void api_videos_create(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    struct api_submit sub = {0};
    const char *raw = NULL;
    size_t raw_len = 0;
    struct core_err e;
    struct api_ctx *c = NULL;
    bool bad = false;
    cJSON *body = read_video_body(a, req, &raw, &raw_len);

    if (body == NULL) {
        return;
    }
    core_err_clear(&e);
    sub.model = api_model_for_kind(a, req, body, TASK_KIND_VIDEO);
    if (sub.model == NULL) {
        goto out;
    }
    if (video_reference_normalize(body, &e) < 0 ||
        api_validate_task_input(TASK_KIND_VIDEO, body, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    if (video_input_fits(a, req, body) < 0) {
        goto out;
    }
    sub.kind = TASK_KIND_VIDEO;
    sub.input = body;
    sub.prio = TASK_PRIO_NORMAL;
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
    if (api_submit(a, c, &sub, on_video_submitted, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    c->body = body; /* the reply renders prompt, seconds and size from it */
    body = NULL;
    c = NULL;
out:
    api_ctx_free(c);
    cJSON_Delete(body);
}

/* ---- reads -------------------------------------------------------------------------------- */

enum read_kind { READ_VIDEO, READ_VIDEO_CONTENT, READ_TASK_CONTENT };

void api_send_artifact(struct api *a, struct evhttp_request *req, const char *id,
                       const char *artifacts, long index)
{
    cJSON *list = artifacts ? cJSON_Parse(artifacts) : NULL;
    const cJSON *item = cJSON_GetArrayItem(list, (int)index);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(item, "content_type");
    char path[4096];
    struct stat st;
    int fd;

    if (item == NULL) {
        api_reply_error(a, req, CORE_ENOTFOUND, "index", "content_not_found",
                        "Task %s has no content at index %ld", id, index);
        goto out;
    }
    /* a cached image's files are the task's that made it (core/artifact_ref.h) */
    fd = artifact_blob_path(a->cfg->blobs.dir, artifact_ref_blob_task(item, id), (size_t)index,
                            path, sizeof(path)) == 0
             ? open(path, O_RDONLY | O_CLOEXEC)
             : -1;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "content_not_found",
                        "The content of task %s is not available on this server", id);
        goto out;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      cJSON_IsString(ct) ? ct->valuestring : "application/octet-stream");
    /* the type came from the provider's download: browsers must not guess another one */
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options", "nosniff");
    /* evbuffer_add_file takes the descriptor and sends it without copying. */
    evbuffer_add_file(evhttp_request_get_output_buffer(req), fd, 0, st.st_size);
    a->responses[2]++;
    evhttp_send_reply(req, 200, "OK", NULL);
out:
    cJSON_Delete(list);
}

static void on_read(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    const char *owner = err ? NULL : task_hash_get(reply, "tenant");
    const char *kind = err ? NULL : task_hash_get(reply, "kind");
    const char *status = err ? NULL : task_hash_get(reply, "status");

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (owner == NULL || strcmp(owner, c->tenant) != 0 ||
               (c->mode != READ_TASK_CONTENT && (kind == NULL || strcmp(kind, "video") != 0))) {
        api_reply_not_found(c->api, c->req, c->id);
    } else if (c->mode == READ_VIDEO) {
        api_reply_json(c->api, c->req, 200, api_video_json(c->id, reply));
    } else if (status == NULL || strcmp(status, "completed") != 0) {
        api_reply_error(c->api, c->req, CORE_ECONFLICT, NULL, "content_not_ready",
                        "Task %s is %s; its content is available once it is completed", c->id,
                        status ? status : "unknown");
    } else {
        api_send_artifact(c->api, c->req, c->id, task_hash_get(reply, "artifacts"),
                          (long)c->values[0]);
    }
    api_ctx_free(c);
}

static void read_task(struct api *a, struct evhttp_request *req, const char *tenant, const char *id,
                      enum read_kind kind, long index)
{
    struct api_ctx *c = api_ctx_for_task(a, req, tenant, id);
    char key[96]; /* the prefix (<= 36 bytes), KS_TASK and a task id (api_ctx_for_task checked) */

    if (c == NULL) {
        return;
    }
    c->mode = kind;
    c->values[0] = index;
    keyspace_key(store_keys(a->store), key, sizeof(key), KS_TASK, id);
    const char *argv[] = {"HGETALL", key};
    if (store_command(a->store, on_read, c, 2, argv, NULL) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

/* A query parameter; NULL when absent. Copies into out. */
static const char *query_param(struct evhttp_request *req, const char *name, char *out, size_t size)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *v;

    TAILQ_INIT(&params);
    if (q == NULL || evhttp_parse_query_str(q, &params) < 0) {
        evhttp_clear_headers(&params);
        return NULL;
    }
    v = evhttp_find_header(&params, name);
    if (v) {
        snprintf(out, size, "%s", v);
    }
    evhttp_clear_headers(&params);
    return v ? out : NULL;
}

void api_videos_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    read_task(a, req, tenant, arg, READ_VIDEO, 0);
}

void api_videos_content(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    char variant[32];

    if (query_param(req, "variant", variant, sizeof(variant)) && strcmp(variant, "video") != 0) {
        api_reply_error(a, req, CORE_ENOTFOUND, "variant", "content_not_found",
                        "Only the 'video' variant is kept");
        return;
    }
    read_task(a, req, tenant, arg, READ_VIDEO_CONTENT, 0);
}

void api_tasks_content(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    char index_s[16];
    long index = 0;

    if (query_param(req, "index", index_s, sizeof(index_s))) {
        char *end = NULL;
        index = strtol(index_s, &end, 10);
        if (*end != '\0' || index < 0 || index > 1000) {
            api_reply_error(a, req, CORE_EINVAL, "index", NULL,
                            "'index' must be an integer between 0 and 1000");
            return;
        }
    }
    read_task(a, req, tenant, arg, READ_TASK_CONTENT, index);
}
