/*
 * tests/mock/videos.c — OpenAI videos at /v1/videos: create (JSON or multipart/form-data), poll,
 * download and delete. The job's state comes from jobs.c: queued, in_progress with rising
 * progress, then completed (or failed when the prompt says "mock:fail"). The content_redirect
 * switch makes a finished video's download a 302 to the URL it names.
 *
 * The reference images video submissions bring (input_reference here; fal's image_url,
 * Replicate's first-frame field and Veo's instances[0].image in their files) are recorded here
 * for GET /_mock/video_inputs: the SHA-256 of the decoded bytes, or the URL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "tests/mock/mock.h"

#define VIDEO_EXPIRES_S 3600
#define MULTIPART_MAX_PARTS 64
#define MULTIPART_MAX_VALUE (64 * 1024)

static const char *memfind(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; m > 0 && i + m <= n; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/*
 * The value of a `key=value` parameter in a header value (quotes stripped), copied into buf.
 * With buf NULL, only whether the parameter is there.
 */
static const char *header_param(const char *value, size_t n, const char *key, char *buf, size_t len)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + k < n; i++) {
        if ((i == 0 || value[i - 1] == ' ' || value[i - 1] == ';') &&
            strncasecmp(value + i, key, k) == 0 && value[i + k] == '=') {
            const char *v = value + i + k + 1, *end = value + n;
            if (buf == NULL) {
                return v;
            }
            if (v >= end) {
                return NULL;
            }
            const char *stop = *v == '"' ? memchr(v + 1, '"', (size_t)(end - v - 1)) : NULL;
            if (*v == '"') {
                v++;
            } else {
                for (stop = v; stop < end && *stop != ';' && *stop != ' '; stop++) {
                }
            }
            if (stop == NULL || (size_t)(stop - v) >= len) {
                return NULL;
            }
            memcpy(buf, v, (size_t)(stop - v));
            buf[stop - v] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* The file part of a form that a video takes (input_reference): slices of the body. */
struct form_file {
    const char *data; /* NULL: none */
    size_t len;
    const char *type; /* its Content-Type value; NULL when absent */
    size_t type_len;
};

/* The Content-Type value of a part's header block [h, end), trimmed; NULL when absent. */
static const char *part_type(const char *h, const char *end, size_t *len)
{
    while (h < end) {
        const char *eol = memfind(h, (size_t)(end - h) + 2, "\r\n", 2);
        if (eol == NULL) {
            return NULL;
        }
        if ((size_t)(eol - h) > 13 && strncasecmp(h, "content-type:", 13) == 0) {
            const char *v = h + 13;
            while (v < eol && *v == ' ') {
                v++;
            }
            *len = (size_t)(eol - v);
            return v;
        }
        h = eol + 2;
    }
    return NULL;
}

/*
 * Reads the text fields of a multipart/form-data body into obj as strings, and the file part
 * input_reference into file (other file parts are skipped). Returns 0, or -1 when the body does
 * not parse. Bounded: at most 64 parts, each text value at most 64 KiB.
 */
static int multipart_fields(const char *ctype, const char *body, size_t len, cJSON *obj,
                            struct form_file *file)
{
    char boundary[80], delim[84], name[64];
    if (header_param(ctype, strlen(ctype), "boundary", boundary, sizeof(boundary)) == NULL) {
        return -1;
    }
    size_t dn = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    const char *end = body + len;
    /* the first delimiter has no CRLF before it */
    const char *p = memfind(body, len, delim + 2, dn - 2);
    if (p == NULL) {
        return -1;
    }
    p += dn - 2;
    for (int parts = 0; parts < MULTIPART_MAX_PARTS; parts++) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            return 0;
        }
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            return -1;
        }
        p += 2;
        const char *head_end = memfind(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *value_end = head_end != NULL
                                    ? memfind(head_end + 4, (size_t)(end - head_end - 4), delim, dn)
                                    : NULL;
        if (value_end == NULL) {
            return -1;
        }
        const char *disp = NULL;
        for (const char *h = p; h < head_end;) {
            const char *eol = memfind(h, (size_t)(head_end - h) + 2, "\r\n", 2);
            if (eol == NULL) {
                break;
            }
            if ((size_t)(eol - h) > 20 && strncasecmp(h, "content-disposition:", 20) == 0) {
                disp = h;
                break;
            }
            h = eol + 2;
        }
        const char *value = head_end + 4;
        size_t vn = (size_t)(value_end - value);
        size_t disp_n =
            disp != NULL ? (size_t)(memfind(disp, (size_t)(head_end - disp) + 2, "\r\n", 2) - disp)
                         : 0;
        bool named = disp != NULL && header_param(disp, disp_n, "name", name, sizeof(name)) != NULL;
        if (named && header_param(disp, disp_n, "filename", NULL, 0) != NULL &&
            strcmp(name, "input_reference") == 0) {
            file->data = value;
            file->len = vn;
            file->type = part_type(p, head_end + 2, &file->type_len);
        } else if (named && header_param(disp, disp_n, "filename", NULL, 0) == NULL &&
                   vn <= MULTIPART_MAX_VALUE) {
            char *s = malloc(vn + 1);
            if (s == NULL) {
                return -1;
            }
            memcpy(s, value, vn);
            s[vn] = '\0';
            cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
            cJSON_AddStringToObject(obj, name, s);
            free(s);
        }
        p = value_end + dn;
    }
    return -1;
}

static const char *video_status(enum job_phase phase)
{
    static const char *const names[] = {
        [PHASE_QUEUED] = "queued", [PHASE_RUNNING] = "in_progress", [PHASE_DONE] = "completed",
        [PHASE_FAILED] = "failed", [PHASE_CANCELED] = "failed",
    };
    return names[phase];
}

/* The video object as of now. */
static void video_json(struct evbuffer *out, const struct job *j)
{
    struct job_view v;
    jobs_view(j, mock_monotonic_ms(), &v);
    bool ended = v.phase == PHASE_DONE || v.phase == PHASE_FAILED || v.phase == PHASE_CANCELED;
    evbuffer_add_printf(out,
                        "{\"id\":\"%s\",\"object\":\"video\",\"created_at\":%lld,"
                        "\"status\":\"%s\",\"completed_at\":",
                        j->id, (long long)(j->created_wall_ms / 1000), video_status(v.phase));
    if (ended) {
        evbuffer_add_printf(out, "%lld", (long long)(v.ended_wall_ms / 1000));
    } else {
        evbuffer_add_printf(out, "null");
    }
    if (v.phase == PHASE_FAILED || v.phase == PHASE_CANCELED) {
        evbuffer_add_printf(out, ",\"error\":{\"code\":\"video_generation_failed\","
                                 "\"message\":\"mock: generation failed (the prompt asked for "
                                 "mock:fail)\"}");
    } else {
        evbuffer_add_printf(out, ",\"error\":null");
    }
    if (v.phase == PHASE_DONE) {
        evbuffer_add_printf(out, ",\"expires_at\":%lld",
                            (long long)(v.ended_wall_ms / 1000 + VIDEO_EXPIRES_S));
    } else {
        evbuffer_add_printf(out, ",\"expires_at\":null");
    }
    evbuffer_add_printf(out, ",\"model\":");
    mock_json_string(out, j->model);
    evbuffer_add_printf(out, ",\"progress\":%d,\"prompt\":", v.progress);
    mock_json_string(out, j->prompt);
    evbuffer_add_printf(out, ",\"remixed_from_video_id\":null,\"seconds\":\"%s\",\"size\":\"%s\"}",
                        j->seconds, j->size);
}

/* The create fields as strings: seconds may come as a JSON number. */
static const char *field(const cJSON *obj, const char *key, const char *fallback, char *buf,
                         size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(v)) {
        snprintf(buf, len, "%g", v->valuedouble);
        return buf;
    }
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

/* The clip length in whole seconds, 1..60; 0 when s is not one. */
static long parse_seconds(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && *end == '\0' && v >= 1 && v <= 60 ? v : 0;
}

static bool valid_size(const char *s)
{
    unsigned w, h;
    char tail;
    return strlen(s) < 24 && sscanf(s, "%ux%u%c", &w, &h, &tail) == 2 && w > 0 && h > 0;
}

/*
 * POST /v1/videos: JSON or multipart/form-data with model, prompt, seconds, size, and
 * input_reference (a file part, or a data: URI / URL string), recorded for /_mock/video_inputs.
 */
int videos_create(struct exchange *x)
{
    const char *ctype = mock_in_header(x, "Content-Type");
    cJSON *root = NULL;
    char sec_buf[32];
    struct form_file file = {0};
    struct mock_video_ref ref = {0};
    if (ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
        root = cJSON_CreateObject();
        if (root != NULL &&
            multipart_fields(ctype, x->body != NULL ? x->body : "", x->body_len, root, &file) < 0) {
            cJSON_Delete(root);
            return openai_error(x, 400, NULL, "Could not parse multipart form data.", NULL);
        }
    } else {
        root = mock_body_json(x);
    }
    if (file.data != NULL) {
        ref.present = true;
        ref.len = file.len;
        ref.bytes = malloc(file.len > 0 ? file.len : 1);
        if (ref.bytes == NULL) {
            cJSON_Delete(root);
            return openai_error(x, 500, NULL, "mock: out of memory", NULL);
        }
        memcpy(ref.bytes, file.data, file.len);
        snprintf(ref.content_type, sizeof(ref.content_type), "%.*s",
                 file.type != NULL ? (int)file.type_len : 0, file.type != NULL ? file.type : "");
    } else if (mock_video_ref_read(mock_json_str(root, "input_reference", NULL), &ref) < 0) {
        cJSON_Delete(root);
        return openai_error_param(x, 400, NULL, "Invalid value for 'input_reference'.",
                                  "input_reference", NULL);
    }
    const char *prompt = mock_json_str(root, "prompt", NULL);
    const char *seconds = field(root, "seconds", "4", sec_buf, sizeof(sec_buf));
    const char *size = mock_json_str(root, "size", "720x1280");
    const char *bad = NULL;
    if (!cJSON_IsObject(root)) {
        bad = "We could not parse the JSON body of your request.";
    } else if (prompt == NULL || prompt[0] == '\0') {
        bad = "Missing required parameter: 'prompt'.";
    } else if (parse_seconds(seconds) == 0) {
        bad = "Invalid value for 'seconds'.";
    } else if (!valid_size(size)) {
        bad = "Invalid value for 'size'.";
    }
    if (bad != NULL) {
        cJSON_Delete(root);
        mock_video_ref_cleanup(&ref);
        return openai_error(x, 400, NULL, bad, NULL);
    }
    struct job *j = jobs_add(x->m, JOB_VIDEO, mock_json_str(root, "model", "sora-2"));
    if (j == NULL || jobs_set(&j->prompt, prompt, MOCK_PROMPT_KEEP) < 0) {
        cJSON_Delete(root);
        mock_video_ref_cleanup(&ref);
        return openai_error(x, 503, NULL, "mock: job store full", NULL);
    }
    mock_video_ref_record("openai", j->id, &ref);
    j->video = true;
    j->fail = jobs_prompt_fails(prompt);
    snprintf(j->seconds, sizeof(j->seconds), "%ld", parse_seconds(seconds));
    snprintf(j->size, sizeof(j->size), "%s", size);
    video_json(mock_out_body(x), j);
    cJSON_Delete(root);
    return 200;
}

static struct job *video_find(struct exchange *x)
{
    return jobs_find(x->m, JOB_VIDEO, x->cap[0].s, x->cap[0].n);
}

static int video_not_found(struct exchange *x)
{
    char id[64], message[128];
    snprintf(message, sizeof(message), "Video with id '%s' not found.",
             mock_cap(x, 0, id, sizeof(id)));
    return openai_error(x, 404, "invalid_request_error", message, "video_not_found");
}

/* GET /v1/videos/{id} */
int videos_get(struct exchange *x)
{
    struct job *j = video_find(x);
    if (j == NULL) {
        return video_not_found(x);
    }
    video_json(mock_out_body(x), j);
    return 200;
}

/*
 * GET /v1/videos/{id}/content[?variant=video|thumbnail|spritesheet]: the MP4 (~64 KiB) once
 * completed; the other variants are a PNG stand-in.
 */
int videos_content(struct exchange *x)
{
    struct job *j = video_find(x);
    struct job_view v;
    char variant[16], name[96];
    if (j == NULL) {
        return video_not_found(x);
    }
    jobs_view(j, mock_monotonic_ms(), &v);
    if (v.phase != PHASE_DONE) {
        return openai_error(x, 400, NULL,
                            v.phase == PHASE_FAILED ? "Video generation failed; no content."
                                                    : "Video is not ready yet.",
                            NULL);
    }
    if (x->m->config.content_redirect != NULL) {
        /* the content_redirect switch: the download is elsewhere, as a CDN would serve it */
        mock_out_header(x, "Location", x->m->config.content_redirect);
        evbuffer_add_printf(mock_out_body(x), "{\"redirect\":true}");
        return 302;
    }
    const char *var = mock_query(x, "variant", variant, sizeof(variant));
    if (var == NULL || strcmp(var, "video") == 0) {
        snprintf(name, sizeof(name), "%s.mp4", j->id);
    } else if (strcmp(var, "thumbnail") == 0 || strcmp(var, "spritesheet") == 0) {
        snprintf(name, sizeof(name), "%s_%s.png", j->id, var);
    } else {
        return openai_error(x, 400, NULL, "Invalid value for 'variant'.", NULL);
    }
    const char *type = blob_render(mock_out_body(x), name);
    if (type == NULL) {
        return openai_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    mock_out_header(x, "Content-Type", type);
    return 200;
}

/* DELETE /v1/videos/{id}: the job goes at once, whatever its state. */
int videos_delete(struct exchange *x)
{
    struct job *j = video_find(x);
    if (j == NULL) {
        return video_not_found(x);
    }
    evbuffer_add_printf(mock_out_body(x),
                        "{\"id\":\"%s\",\"object\":\"video.deleted\",\"deleted\":true}", j->id);
    jobs_remove(x->m, j);
    return 200;
}

/* ---- reference images of video submissions: GET/DELETE /_mock/video_inputs ---- */

#define VIDEO_REF_URL_MAX 2048 /* bytes of a reference URL kept */

/*
 * The reference images received, newest last. A file-level ring rather than a field of struct
 * mock, as the edits' files are: only the video submit routes write it and only
 * /_mock/video_inputs reads it.
 */
static struct video_input {
    char dialect[16];
    char job[48];
    char sha256[65]; /* "" for a URL */
    size_t len;
    char content_type[64];
    char *url; /* owned; NULL for bytes */
} video_inputs[MOCK_VIDEO_INPUTS_KEEP];
static size_t video_inputs_next;
static size_t video_inputs_count;

void mock_video_ref_cleanup(struct mock_video_ref *r)
{
    free(r->bytes);
    free(r->url);
    memset(r, 0, sizeof(*r));
}

int mock_video_ref_read(const char *s, struct mock_video_ref *r)
{
    memset(r, 0, sizeof(*r));
    if (s == NULL) {
        return 0;
    }
    r->present = true;
    if (strncmp(s, "data:", 5) == 0) {
        const char *semi = strchr(s, ';');
        r->bytes = mock_data_uri_decode(s, &r->len);
        if (r->bytes == NULL) {
            return -1;
        }
        snprintf(r->content_type, sizeof(r->content_type), "%.*s",
                 semi != NULL ? (int)(semi - s - 5) : 0, s + 5);
        return 0;
    }
    r->url = strndup(s, VIDEO_REF_URL_MAX);
    return r->url != NULL ? 0 : -1;
}

void mock_video_ref_record(const char *dialect, const char *job, struct mock_video_ref *r)
{
    struct video_input *v = &video_inputs[video_inputs_next];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!r->present) {
        return;
    }
    free(v->url);
    memset(v, 0, sizeof(*v));
    snprintf(v->dialect, sizeof(v->dialect), "%s", dialect);
    snprintf(v->job, sizeof(v->job), "%s", job);
    snprintf(v->content_type, sizeof(v->content_type), "%s", r->content_type);
    if (r->url != NULL) {
        v->url = r->url;
        r->url = NULL;
    } else if (EVP_Digest(r->bytes, r->len, md, &md_len, EVP_sha256(), NULL) == 1) {
        for (unsigned int i = 0; i < md_len && i < 32; i++) {
            snprintf(v->sha256 + 2 * i, 3, "%02x", md[i]);
        }
        v->len = r->len;
    }
    mock_video_ref_cleanup(r);
    video_inputs_next = (video_inputs_next + 1) % MOCK_VIDEO_INPUTS_KEEP;
    video_inputs_count += video_inputs_count < MOCK_VIDEO_INPUTS_KEEP;
}

/*
 * GET /_mock/video_inputs: {"data": [{dialect, job, sha256, bytes, content_type, url}]} in
 * arrival order; a URL reference has sha256 and bytes null, bytes have url null.
 */
int mock_video_inputs_get(struct exchange *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; data != NULL && i < video_inputs_count; i++) {
        const struct video_input *v =
            &video_inputs[(video_inputs_next + MOCK_VIDEO_INPUTS_KEEP - video_inputs_count + i) %
                          MOCK_VIDEO_INPUTS_KEEP];
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "dialect", v->dialect);
        cJSON_AddStringToObject(item, "job", v->job);
        if (v->url != NULL) {
            cJSON_AddNullToObject(item, "sha256");
            cJSON_AddNullToObject(item, "bytes");
            cJSON_AddStringToObject(item, "url", v->url);
        } else {
            cJSON_AddStringToObject(item, "sha256", v->sha256);
            cJSON_AddNumberToObject(item, "bytes", (double)v->len);
            cJSON_AddNullToObject(item, "url");
        }
        if (v->content_type[0] != '\0') {
            cJSON_AddStringToObject(item, "content_type", v->content_type);
        } else {
            cJSON_AddNullToObject(item, "content_type");
        }
        cJSON_AddItemToArray(data, item);
    }
    return mock_out_json(x, 200, o);
}

/* DELETE /_mock/video_inputs: forgets every recorded reference image. */
int mock_video_inputs_delete(struct exchange *x)
{
    for (size_t i = 0; i < MOCK_VIDEO_INPUTS_KEEP; i++) {
        free(video_inputs[i].url);
        video_inputs[i].url = NULL;
    }
    video_inputs_next = 0;
    video_inputs_count = 0;
    evbuffer_add_printf(mock_out_body(x), "{\"ok\":true}");
    return 200;
}
