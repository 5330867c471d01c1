/*
 * tests/mock/videos.c — OpenAI videos at /v1/videos: create (JSON or multipart/form-data), poll,
 * download and delete. The job's state comes from jobs.c: queued, in_progress with rising
 * progress, then completed (or failed when the prompt says "mock:fail"). The content_redirect
 * switch makes a finished video's download a 302 to the URL it names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/*
 * Reads the text fields of a multipart/form-data body into obj as strings; file parts
 * (input_reference) are skipped. Returns 0, or -1 when the body does not parse. Bounded: at most
 * 64 parts, each value at most 64 KiB.
 */
static int multipart_fields(const char *ctype, const char *body, size_t len, cJSON *obj)
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
        if (disp != NULL && header_param(disp, disp_n, "name", name, sizeof(name)) != NULL &&
            header_param(disp, disp_n, "filename", NULL, 0) == NULL && vn <= MULTIPART_MAX_VALUE) {
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

/* POST /v1/videos: JSON or multipart/form-data with model, prompt, seconds, size. */
int videos_create(struct exchange *x)
{
    const char *ctype = mock_in_header(x, "Content-Type");
    cJSON *root = NULL;
    char sec_buf[32];
    if (ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0) {
        root = cJSON_CreateObject();
        if (root != NULL &&
            multipart_fields(ctype, x->body != NULL ? x->body : "", x->body_len, root) < 0) {
            cJSON_Delete(root);
            return openai_error(x, 400, NULL, "Could not parse multipart form data.", NULL);
        }
    } else {
        root = mock_body_json(x);
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
        return openai_error(x, 400, NULL, bad, NULL);
    }
    struct job *j = jobs_add(x->m, JOB_VIDEO, mock_json_str(root, "model", "sora-2"));
    if (j == NULL || jobs_set(&j->prompt, prompt, MOCK_PROMPT_KEEP) < 0) {
        cJSON_Delete(root);
        return openai_error(x, 503, NULL, "mock: job store full", NULL);
    }
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
