/*
 * adapters/replicate.c — the replicate dialect: image and video tasks as Replicate predictions.
 *
 * A task becomes one prediction, created without `Prefer: wait` and then polled: sluice's worker
 * owns the waiting, so no connection is held open for a minute. The prediction's own URLs
 * (urls.get, urls.cancel) are kept as the job state and used verbatim; the documented
 * /predictions/{id} layout under base_url is the fallback when they are missing or point at a
 * host other than the deployment's, since every poll carries the API key.
 *
 * The media_* helpers below are the same in fal.c; they belong in adapter.c once that file is
 * free to change (see the report that came with this file).
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

#define REPLICATE_MAX_ID 128 /* a prediction id or model version */

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

static int replicate_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EUNPROCESSABLE, NULL,
                        "the replicate dialect does not support %s tasks", adapter_op_name(op));
}

static bool replicate_op_ok(enum adapter_op op)
{
    return op == ADAPTER_OP_IMAGE || op == ADAPTER_OP_VIDEO;
}

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
    size_t n = (s != NULL) ? strlen(s) : 0;

    if (n == 0 || n > REPLICATE_MAX_ID) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
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
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int replicate_add_auth(const struct adapter_target *t, struct adapter_request *out)
{
    if (t->api_key == NULL || t->api_key[0] == '\0') {
        return 0;
    }
    return adapter_request_add_header(out, "Authorization: Bearer %s", t->api_key);
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

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!replicate_op_ok(call->op)) {
        rc = replicate_unsupported(call->op, err);
        goto out;
    }
    if (t == NULL || t->base_url == NULL || t->model == NULL || t->model[0] == '\0') {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url or model");
        goto out;
    }
    rc = media_read_input(call, "replicate", &in, err);
    if (rc != 0) {
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
    snprintf(out->method, sizeof(out->method), "POST");
    out->url = adapter_url_join(t->base_url, path);
    out->body = cJSON_PrintUnformatted(body);
    if (out->url == NULL || out->body == NULL || replicate_add_auth(t, out) != 0 ||
        adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        goto out;
    }
    out->body_len = strlen(out->body);
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
        f.message = media_str(root, "detail");
        if (f.message == NULL || f.message[0] == '\0') {
            f.message = media_str(root, "title");
        }
        have = f.message != NULL;
    }
    adapter_http_error(resp, have ? &f : NULL, err);
    if (resp->status == 429 && err->retry_after_ms < 0 && cJSON_IsNumber(after) &&
        after->valuedouble > 0) {
        err->retry_after_ms = after->valuedouble * 1000.0 >= (double)ADAPTER_MAX_WAIT_MS
                                  ? ADAPTER_MAX_WAIT_MS
                                  : (int64_t)ceil(after->valuedouble * 1000.0);
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
        const char *url = media_str(urls, keys[i]);
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
    if (!replicate_op_ok(call->op)) {
        rc = replicate_unsupported(call->op, err);
        goto out;
    }
    if (resp->transport != ADAPTER_TRANSPORT_OK) {
        rc = adapter_classify_transport(resp, err);
        goto out;
    }
    root = adapter_json_parse(resp->body, resp->body_len);
    if (resp->status < 200 || resp->status > 299) {
        rc = replicate_http_error(resp, root, err);
        goto out;
    }
    if (resp->body_len > ADAPTER_MAX_REPLY_BYTES) {
        rc = media_malformed(resp, false, err, "the body passed the size limit");
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = media_malformed(resp, true, err, "the body is not a JSON object");
        goto out;
    }
    id = media_str(root, "id");
    status = media_str(root, "status");
    if (!replicate_id_ok(id) || status == NULL) {
        rc = media_malformed(resp, false, err, "not a prediction (no id or status)");
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
                             media_str(root, "error"), err);
        goto out;
    }
    if (row < ARRAY_LEN(replicate_statuses) &&
        replicate_statuses[row].kind == REPLICATE_SUCCEEDED) {
        n = replicate_outputs(cJSON_GetObjectItemCaseSensitive(root, "output"), outputs, &bad);
        if (n == 0) {
            rc = media_malformed(resp, false, err, "the prediction succeeded %s",
                                 bad ? "with an output that is not an http(s) URL"
                                     : "without output");
            goto out;
        }
        rc = media_done(call, resp, outputs, n, id, out, err);
        goto out;
    }
    out->outcome = ADAPTER_PENDING;
    out->progress = row < ARRAY_LEN(replicate_statuses) ? replicate_statuses[row].progress : -1;
    logs = media_str(root, "logs");
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
    const char *url = media_str(call->job, key);
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!replicate_op_ok(call->op)) {
        return replicate_unsupported(call->op, err);
    }
    if (t == NULL || t->base_url == NULL) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url");
    }
    snprintf(out->method, sizeof(out->method), "%s", method);
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
    if (out->url == NULL || replicate_add_auth(t, out) != 0) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        adapter_request_cleanup(out);
    }
    return rc;
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
