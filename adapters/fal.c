/*
 * adapters/fal.c — the fal dialect: image and video tasks on fal's queue.
 *
 * A task is submitted to the queue (POST {base_url}/{model_id}), its status polled until it is
 * COMPLETED, then its result fetched: two phases, kept in the job state as "phase". fal's
 * status_url, response_url and cancel_url are used verbatim; the documented layout under the
 * model's app root ({base_url}/{owner}/{app}/requests/{id}...) is the fallback when they are
 * missing or point at a host other than the deployment's, since every call carries the API key.
 *
 * The media_* helpers below are the same in replicate.c; they belong in adapter.c once that file
 * is free to change (see the report that came with this file).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "adapters/adapter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Bounds on what a client's request or a provider's reply can make the dialect do. */
#define MEDIA_MAX_N 10         /* images per task, as OpenAI allows */
#define MEDIA_MAX_SIDE 16384   /* pixels per side of a requested size */
#define MEDIA_MAX_SECONDS 3600 /* a requested video length */
#define MEDIA_MAX_OUTPUTS 16   /* outputs of one job kept as artifacts; the rest are dropped */
#define MEDIA_MAX_URL 8192     /* a provider URL we keep or fetch */

/*
 * Aspect ratios image and video models commonly take. A requested WxH maps to the nearest one
 * (by the log of the ratio), so 1792x1024 asks for 16:9.
 */
static const struct {
    const char *name;
    int w;
    int h;
} media_ratios[] = {
    {"1:1", 1, 1}, {"16:9", 16, 9}, {"9:16", 9, 16}, {"4:3", 4, 3},
    {"3:4", 3, 4}, {"3:2", 3, 2},   {"2:3", 2, 3},   {"5:4", 5, 4},
    {"4:5", 4, 5}, {"21:9", 21, 9}, {"9:21", 9, 21},
};

/* Content types of the files a media job returns, by the URL's extension. */
static const struct {
    const char *ext;
    const char *type;
} media_types[] = {
    {"png", "image/png"},   {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
    {"webp", "image/webp"}, {"gif", "image/gif"},  {"mp4", "video/mp4"},
};

/* What a client asked of a media task, read from its OpenAI-shaped body. Strings are borrowed. */
struct media_input {
    const char *prompt;
    int n;     /* images; 0 when not given */
    int width; /* 0 when no size was given, or "auto" */
    int height;
    const char *output_format; /* NULL when not given */
    double seconds;            /* video length; < 0 when not given */
};

/* One file a finished job produced. Strings are borrowed from the reply. */
struct media_output {
    const char *url;
    const char *content_type; /* NULL: judge by the URL's extension */
};

static const char *media_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool media_given(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v != NULL && !cJSON_IsNull(v);
}

/* "WxH" with both sides in 1..MEDIA_MAX_SIDE. Returns 0, or -1 when s is not such a size. */
static int media_parse_size(const char *s, int *w, int *h)
{
    int side[2] = {0, 0};
    const char *p = s;

    for (int i = 0; i < 2; i++) {
        if (!isdigit((unsigned char)*p)) {
            return -1;
        }
        for (; isdigit((unsigned char)*p); p++) {
            side[i] = side[i] * 10 + (*p - '0');
            if (side[i] > MEDIA_MAX_SIDE) {
                return -1;
            }
        }
        if (side[i] == 0 || *p != (i == 0 ? 'x' : '\0')) {
            return -1;
        }
        p++;
    }
    *w = side[0];
    *h = side[1];
    return 0;
}

/*
 * A video length as OpenAI clients send it: a number, or a string of one ("8"). Returns 0 with
 * *out set (-1 when absent), or -1 when the value is not a length in (0, MEDIA_MAX_SECONDS].
 */
static int media_read_seconds(const cJSON *input, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, "seconds");
    double s;

    *out = -1;
    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        s = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        const char *t = v->valuestring;
        size_t len = strspn(t, "0123456789");

        if (len == 0) {
            return -1;
        }
        if (t[len] == '.') {
            len += 1 + strspn(t + len + 1, "0123456789");
        }
        if (t[len] != '\0') {
            return -1;
        }
        s = strtod(t, NULL);
    } else {
        return -1;
    }
    if (!isfinite(s) || s <= 0 || s > MEDIA_MAX_SECONDS) {
        return -1;
    }
    *out = s;
    return 0;
}

/*
 * Reads and checks the client's body for this op. Fields the dialect cannot express are refused
 * rather than dropped when dropping would change what the client gets (input_reference turns an
 * image-to-video task into text-to-video); quality, style and response_format only tune the
 * result and are ignored.
 */
static int media_read_input(const struct adapter_call *call, const char *dialect,
                            struct media_input *in, struct core_err *err)
{
    const cJSON *input = call->input;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(input, "n");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(input, "size");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(input, "output_format");

    memset(in, 0, sizeof(*in));
    in->seconds = -1;
    if (!cJSON_IsObject(input)) {
        return core_err_set(err, CORE_EINVAL, NULL, "the request body must be a JSON object");
    }
    in->prompt = media_str(input, "prompt");
    if (in->prompt == NULL || in->prompt[0] == '\0') {
        return core_err_set(err, CORE_EINVAL, "prompt", "a %s request needs a non-empty prompt",
                            adapter_op_name(call->op));
    }
    if (size != NULL && !cJSON_IsNull(size) &&
        !(cJSON_IsString(size) && strcmp(size->valuestring, "auto") == 0) &&
        (!cJSON_IsString(size) || media_parse_size(size->valuestring, &in->width, &in->height))) {
        return core_err_set(err, CORE_EINVAL, "size", "size must be WIDTHxHEIGHT, e.g. 1024x1024");
    }
    if (call->op == ADAPTER_OP_VIDEO) {
        if (media_read_seconds(input, &in->seconds) != 0) {
            return core_err_set(err, CORE_EINVAL, "seconds",
                                "seconds must be a positive number of seconds up to %d",
                                MEDIA_MAX_SECONDS);
        }
        if (media_given(input, "input_reference")) {
            return core_err_set(err, CORE_EUNPROCESSABLE, "input_reference",
                                "input_reference is not supported by the %s dialect yet", dialect);
        }
        return 0;
    }
    if (n != NULL && !cJSON_IsNull(n)) {
        if (!cJSON_IsNumber(n) || n->valuedouble != floor(n->valuedouble) || n->valuedouble < 1 ||
            n->valuedouble > MEDIA_MAX_N) {
            return core_err_set(err, CORE_EINVAL, "n", "n must be an integer from 1 to %d",
                                MEDIA_MAX_N);
        }
        in->n = (int)n->valuedouble;
    }
    if (format != NULL && !cJSON_IsNull(format)) {
        if (!cJSON_IsString(format) || format->valuestring[0] == '\0') {
            return core_err_set(err, CORE_EINVAL, "output_format",
                                "output_format must be a format name such as png");
        }
        in->output_format = format->valuestring;
    }
    return 0;
}

/* The common aspect ratio nearest to w:h. */
static const char *media_aspect_ratio(int w, int h)
{
    double want = log((double)w / (double)h);
    size_t best = 0;
    double best_d = INFINITY;

    for (size_t i = 0; i < ARRAY_LEN(media_ratios); i++) {
        double d = fabs(log((double)media_ratios[i].w / (double)media_ratios[i].h) - want);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return media_ratios[best].name;
}

/* A length as OpenAI's video object writes seconds: "8", or "2.5" for a fraction. */
static void media_seconds_text(double s, char *buf, size_t cap)
{
    if (s == floor(s)) {
        snprintf(buf, cap, "%.0f", s);
    } else {
        snprintf(buf, cap, "%g", s);
    }
}

/*
 * The last percentage in a text (a progress bar in the logs: " 45%|####  | 9/20"), 0-100, or -1
 * when there is none. A fraction counts by its whole part; numbers past 100 are not progress.
 */
static int media_progress_from_text(const char *s)
{
    for (size_t i = strlen(s); i > 0; i--) {
        size_t end = i - 1;
        size_t start;
        int v = 0;

        if (s[end] != '%') {
            continue;
        }
        for (start = end; start > 0 && isdigit((unsigned char)s[start - 1]); start--) {
        }
        if (start < end && start > 1 && s[start - 1] == '.' &&
            isdigit((unsigned char)s[start - 2])) {
            end = start - 1;
            for (start = end; start > 0 && isdigit((unsigned char)s[start - 1]); start--) {
            }
        }
        if (start == end || end - start > 3) {
            continue;
        }
        for (size_t k = start; k < end; k++) {
            v = v * 10 + (s[k] - '0');
        }
        if (v <= 100) {
            return v;
        }
    }
    return -1;
}

/* The content type a URL's file extension names (query and fragment ignored); "" if unknown. */
static const char *media_type_from_url(const char *url)
{
    size_t end = strcspn(url, "?#");
    size_t dot = end;

    while (dot > 0 && url[dot - 1] != '.' && url[dot - 1] != '/') {
        dot--;
    }
    if (dot == 0 || url[dot - 1] != '.') {
        return "";
    }
    for (size_t i = 0; i < ARRAY_LEN(media_types); i++) {
        size_t n = strlen(media_types[i].ext);
        if (end - dot == n && strncasecmp(url + dot, media_types[i].ext, n) == 0) {
            return media_types[i].type;
        }
    }
    return "";
}

/* Parses an http(s) URL of bounded length. Caller frees with curl_url_cleanup; NULL otherwise. */
static CURLU *media_url_parse(const char *url)
{
    CURLU *u;
    char *scheme = NULL;
    bool ok;

    if (url == NULL || strlen(url) > MEDIA_MAX_URL || (u = curl_url()) == NULL) {
        return NULL;
    }
    ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
         (strcasecmp(scheme, "https") == 0 || strcasecmp(scheme, "http") == 0);
    curl_free(scheme);
    if (!ok) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

/* True when url is an http(s) URL the worker can fetch. */
static bool media_url_fetchable(const char *url)
{
    CURLU *u = media_url_parse(url);

    curl_url_cleanup(u);
    return u != NULL;
}

/*
 * True when url is an http(s) URL on the same scheme, host and port as base. Job URLs a provider
 * returns are used only then: the poll sends the API key with them.
 */
static bool media_url_same_origin(const char *base, const char *url)
{
    static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    CURLU *a = media_url_parse(base);
    CURLU *b = media_url_parse(url);
    bool same = a != NULL && b != NULL;

    for (size_t i = 0; same && i < ARRAY_LEN(parts); i++) {
        char *x = NULL;
        char *y = NULL;
        same = curl_url_get(a, parts[i], &x, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               curl_url_get(b, parts[i], &y, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               strcasecmp(x, y) == 0;
        curl_free(x);
        curl_free(y);
    }
    curl_url_cleanup(a);
    curl_url_cleanup(b);
    return same;
}

/* How many bytes of s fit in cap - 1 without splitting a UTF-8 sequence. */
static int media_utf8_fit(const char *s, size_t cap)
{
    size_t n = strlen(s);

    if (n < cap) {
        return (int)n;
    }
    n = cap - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    return (int)n;
}

/*
 * A reply that is not what the dialect expects. A body that is not JSON was likely cut by a proxy
 * and the next attempt usually gets a whole one; JSON of the wrong shape comes back the same.
 */
static int media_malformed(const struct adapter_response *resp, bool retryable,
                           struct core_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int media_malformed(const struct adapter_response *resp, bool retryable,
                           struct core_err *err, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    core_err_set(err, CORE_EUPSTREAM, NULL, "malformed reply from the provider: %s", why);
    core_err_set_code(err, "malformed_reply");
    err->provider_status = resp->status;
    err->retryable = retryable;
    err->retry_after_ms = -1;
    return err->code;
}

/*
 * A job that ended upstream without output (failed or canceled). Final: the same job polled
 * again ends the same way. The provider's text is the message when it gave one.
 */
static int media_job_ended(const struct adapter_response *resp, const char *err_code,
                           const char *what, const char *detail, struct core_err *err)
{
    if (detail != NULL && detail[0] != '\0') {
        core_err_set(err, CORE_EUPSTREAM, NULL, "%.*s",
                     media_utf8_fit(detail, sizeof(err->message)), detail);
    } else {
        core_err_set(err, CORE_EUPSTREAM, NULL, "%s", what);
    }
    core_err_set_code(err, err_code);
    err->provider_status = resp->status;
    err->retryable = false;
    err->retry_after_ms = -1;
    return err->code;
}

/*
 * True when s is a content type we can pass on (type/subtype of RFC 7230 token characters, with
 * parameters after ';'), short enough for struct adapter_artifact. A provider names it, and the
 * worker later serves it as a header.
 */
static bool media_content_type_ok(const char *s)
{
    static const char token[] = "!#$%&'*+-.^_`|~";
    size_t n = strcspn(s, ";");
    const char *slash = memchr(s, '/', n);

    if (slash == NULL || slash == s || slash == s + n - 1 ||
        strlen(s) >= sizeof(((struct adapter_artifact *)0)->content_type)) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f ||
            (p < s + n && p != slash && !isalnum((unsigned char)*p) && !strchr(token, *p))) {
            return false;
        }
    }
    return true;
}

/* Adds a download of url to out's artifacts: a plain GET, provider file URLs need no key. */
static int media_add_fetch(struct adapter_result *out, const char *url, const char *content_type)
{
    struct adapter_artifact *grown;
    struct adapter_artifact *a;

    grown = realloc(out->artifacts, (out->n_artifacts + 1) * sizeof(*grown));
    if (grown == NULL) {
        return CORE_ENOMEM;
    }
    out->artifacts = grown;
    a = &grown[out->n_artifacts];
    memset(a, 0, sizeof(*a));
    snprintf(a->fetch.method, sizeof(a->fetch.method), "GET");
    if (content_type == NULL || !media_content_type_ok(content_type)) {
        content_type = media_type_from_url(url);
    }
    snprintf(a->content_type, sizeof(a->content_type), "%s", content_type);
    a->fetch.url = strdup(url);
    if (a->fetch.url == NULL) {
        return CORE_ENOMEM;
    }
    out->n_artifacts++;
    return 0;
}

/* OpenAI's images response for the outputs: {created, data: [{url}]}. NULL on OOM. */
static cJSON *media_images_json(const struct media_output *outputs, size_t n, int64_t now_ms)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    bool ok = cJSON_AddNumberToObject(root, "created", (double)(now_ms / 1000)) != NULL;

    for (size_t i = 0; ok && data != NULL && i < n; i++) {
        cJSON *item = cJSON_CreateObject();
        ok = cJSON_AddItemToArray(data, item) &&
             cJSON_AddStringToObject(item, "url", outputs[i].url);
    }
    if (!ok || data == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/*
 * OpenAI's video object for a finished job. seconds and size echo what the client asked for
 * (null when it named none): providers do not report them back in one shape.
 */
static cJSON *media_video_json(const struct adapter_call *call, const char *id)
{
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(call->input, "size");
    cJSON *root = cJSON_CreateObject();
    double seconds;
    char text[32];
    bool ok;

    ok = (id != NULL ? cJSON_AddStringToObject(root, "id", id)
                     : cJSON_AddNullToObject(root, "id")) &&
         cJSON_AddStringToObject(root, "object", "video") &&
         (call->target->model != NULL ? cJSON_AddStringToObject(root, "model", call->target->model)
                                      : cJSON_AddNullToObject(root, "model")) &&
         cJSON_AddStringToObject(root, "status", "completed") &&
         cJSON_AddNumberToObject(root, "progress", 100);
    if (ok && media_read_seconds(call->input, &seconds) == 0 && seconds > 0) {
        media_seconds_text(seconds, text, sizeof(text));
        ok = cJSON_AddStringToObject(root, "seconds", text) != NULL;
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "seconds") != NULL;
    }
    if (ok && cJSON_IsString(size)) {
        ok = cJSON_AddStringToObject(root, "size", size->valuestring) != NULL;
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "size") != NULL;
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/*
 * Fills out as DONE for a job that produced outputs (n >= 1): the OpenAI-shaped result, usage
 * ({"images": n} or {"seconds": s} when the length is known) and one download per file kept.
 * A video task keeps its first output.
 */
static int media_done(const struct adapter_call *call, const struct adapter_response *resp,
                      const struct media_output *outputs, size_t n, const char *id,
                      struct adapter_result *out, struct core_err *err)
{
    double seconds = -1;
    bool ok;

    out->outcome = ADAPTER_DONE;
    if (call->op == ADAPTER_OP_VIDEO) {
        n = 1;
        out->result = media_video_json(call, id);
        ok = out->result != NULL;
        if (ok && media_read_seconds(call->input, &seconds) == 0 && seconds > 0) {
            out->usage = cJSON_CreateObject();
            ok = cJSON_AddNumberToObject(out->usage, "seconds", seconds) != NULL;
        }
    } else {
        out->result = media_images_json(outputs, n, resp->now_ms);
        out->usage = cJSON_CreateObject();
        ok =
            out->result != NULL && cJSON_AddNumberToObject(out->usage, "images", (double)n) != NULL;
    }
    ok = ok && (id == NULL || (out->upstream_id = strdup(id)) != NULL);
    for (size_t i = 0; ok && i < n; i++) {
        ok = media_add_fetch(out, outputs[i].url, outputs[i].content_type) == 0;
    }
    return ok ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory reading the reply");
}

#define FAL_MAX_ID 128    /* a request id */
#define FAL_MAX_MODEL 256 /* a model id */

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

static int fal_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EUNPROCESSABLE, NULL, "the fal dialect does not support %s tasks",
                        adapter_op_name(op));
}

static bool fal_op_ok(enum adapter_op op)
{
    return op == ADAPTER_OP_IMAGE || op == ADAPTER_OP_VIDEO;
}

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

/* A request id as fal writes them (a UUID): letters, digits and '-', bounded. */
static bool fal_id_ok(const char *s)
{
    size_t n = (s != NULL) ? strlen(s) : 0;

    if (n == 0 || n > FAL_MAX_ID) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-') {
            return false;
        }
    }
    return true;
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
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int fal_add_auth(const struct adapter_target *t, struct adapter_request *out)
{
    if (t->api_key == NULL || t->api_key[0] == '\0') {
        return 0;
    }
    return adapter_request_add_header(out, "Authorization: Key %s", t->api_key);
}

static int fal_build_request(const struct adapter_call *call, struct adapter_request *out,
                             struct core_err *err)
{
    const struct adapter_target *t = call->target;
    struct media_input in;
    cJSON *body = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!fal_op_ok(call->op)) {
        rc = fal_unsupported(call->op, err);
        goto out;
    }
    if (t == NULL || t->base_url == NULL || t->model == NULL || t->model[0] == '\0') {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url or model");
        goto out;
    }
    rc = media_read_input(call, "fal", &in, err);
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
    snprintf(out->method, sizeof(out->method), "POST");
    out->url = adapter_url_join(t->base_url, t->model);
    out->body = body ? cJSON_PrintUnformatted(body) : NULL;
    if (out->url == NULL || out->body == NULL || fal_add_auth(t, out) != 0 ||
        adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        goto out;
    }
    out->body_len = strlen(out->body);
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
        const char *url = media_str(reply, fal_job_urls[i].reply_field);
        char *built = NULL;

        if (url == NULL || !media_url_same_origin(base, url)) {
            url = media_str(call->job, fal_job_urls[i].key);
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
    const char *code = media_str(root, "error_type");
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

        f.message = media_str(first, "msg");
        if (code == NULL) {
            code = media_str(first, "type");
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

/*
 * The checks every fal reply goes through: transport, HTTP status, size and shape. Returns 0
 * with *root set to the reply's JSON object (caller frees), or the error it filled.
 */
static int fal_reply_root(const struct adapter_response *resp, cJSON **root, struct core_err *err)
{
    *root = NULL;
    if (resp->transport != ADAPTER_TRANSPORT_OK) {
        return adapter_classify_transport(resp, err);
    }
    *root = adapter_json_parse(resp->body, resp->body_len);
    if (resp->status < 200 || resp->status > 299) {
        return fal_http_error(resp, *root, err);
    }
    if (resp->body_len > ADAPTER_MAX_REPLY_BYTES) {
        return media_malformed(resp, false, err, "the body passed the size limit");
    }
    if (!cJSON_IsObject(*root)) {
        return media_malformed(resp, true, err, "the body is not a JSON object");
    }
    return 0;
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
        const char *msg = media_str(item, "message");
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
    if (!fal_op_ok(call->op)) {
        return fal_unsupported(call->op, err);
    }
    rc = fal_reply_root(resp, &root, err);
    if (rc != 0) {
        goto out;
    }
    id = media_str(root, "request_id");
    if (!fal_id_ok(id)) {
        rc = media_malformed(resp, false, err, "no request_id in the queue's answer");
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

    rc = fal_reply_root(resp, &root, err);
    if (rc != 0) {
        goto out;
    }
    status = media_str(root, "status");
    if (status == NULL) {
        rc = media_malformed(resp, false, err, "no status in the queue's answer");
        goto out;
    }
    for (size_t i = 0; i < ARRAY_LEN(fal_statuses); i++) {
        if (strcmp(fal_statuses[i].status, status) == 0) {
            kind = fal_statuses[i].kind;
        }
    }
    error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (kind == FAL_COMPLETED && error != NULL && !cJSON_IsNull(error)) {
        const char *type = media_str(root, "error_type");
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
    o->url = media_str(file, "url");
    o->content_type = media_str(file, "content_type");
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

    rc = fal_reply_root(resp, &root, err);
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
        rc = media_malformed(resp, false, err, "the result has no %s with an http(s) url",
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
    const char *phase = media_str(call->job, "phase");
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!fal_op_ok(call->op)) {
        return fal_unsupported(call->op, err);
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
    const char *url = media_str(call->job, fal_job_urls[which].key);

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!fal_op_ok(call->op)) {
        return fal_unsupported(call->op, err);
    }
    if (t == NULL || t->base_url == NULL) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url");
    }
    snprintf(out->method, sizeof(out->method), "%s", method);
    if (url != NULL && media_url_same_origin(t->base_url, url)) {
        out->url = strdup(url);
    } else if (fal_model_ok(t->model) && fal_id_ok(call->upstream_id)) {
        out->url = fal_fallback_url(t, call->upstream_id, fal_job_urls[which].suffix);
    } else {
        return core_err_set(err, CORE_EINTERNAL, NULL, "no fal request to call (%s)",
                            fal_job_urls[which].key);
    }
    if (out->url == NULL || fal_add_auth(t, out) != 0) {
        adapter_request_cleanup(out);
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
    }
    return 0;
}

/* Status phase: GET the status URL; result phase: GET the response URL. */
static int fal_build_poll(const struct adapter_call *call, struct adapter_request *out,
                          struct core_err *err)
{
    const char *phase = media_str(call->job, "phase");
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
