/*
 * adapters/media.c — the helpers of media.h: what replicate and fal share for image and video
 * jobs.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "adapters/dialect.h"
#include "adapters/media.h"
#include "core/artifact_ref.h"

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

/*
 * The image types an edit's files and a video's reference image may have, as a data: URI names
 * them, with the leading bytes (magic at offset magic_at) that identify a file of the type.
 */
static const struct {
    const char *mime;
    const char *ext;
    const char *magic;
    size_t magic_len;
    size_t magic_at;
} media_edit_types[] = {
    {"image/png", "png", "\x89PNG\r\n\x1a\n", 8, 0},
    {"image/jpeg", "jpg", "\xff\xd8\xff", 3, 0},
    {"image/webp", "webp", "WEBP", 4, 8}, /* "RIFF" <size> "WEBP" */
};

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

int media_data_uri_parse(const char *s, struct media_data_uri *out)
{
    static const char b64set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n;
    size_t pad;

    memset(out, 0, sizeof(*out));
    if (s == NULL || strncmp(s, "data:", 5) != 0) {
        return -1;
    }
    s += 5;
    for (size_t i = 0; i < ARRAY_LEN(media_edit_types); i++) {
        size_t m = strlen(media_edit_types[i].mime);
        if (strncasecmp(s, media_edit_types[i].mime, m) == 0 &&
            strncmp(s + m, ";base64,", 8) == 0) {
            out->mime = media_edit_types[i].mime;
            out->ext = media_edit_types[i].ext;
            s += m + 8;
            break;
        }
    }
    if (out->mime == NULL) {
        return -1;
    }
    n = strspn(s, b64set);
    pad = strspn(s + n, "=");
    if (s[n + pad] != '\0' || pad > 2 || n + pad == 0 || (n + pad) % 4 != 0) {
        return -1;
    }
    out->b64 = s;
    out->b64_len = n + pad;
    return 0;
}

/* EVP_DecodeBlock writes whole 3-byte groups: the padding's zero bytes are taken off after. */
unsigned char *media_data_uri_decode(const struct media_data_uri *u, size_t *len)
{
    size_t cap = u->b64_len / 4 * 3;
    unsigned char *bytes;
    int n;

    if (u->b64_len == 0 || u->b64_len % 4 != 0 || u->b64_len > INT32_MAX) {
        return NULL;
    }
    bytes = malloc(cap > 0 ? cap : 1);
    if (bytes == NULL) {
        return NULL;
    }
    n = EVP_DecodeBlock(bytes, (const unsigned char *)u->b64, (int)u->b64_len);
    if (n < 0 || (size_t)n != cap) {
        free(bytes);
        return NULL;
    }
    *len = cap - (u->b64[u->b64_len - 1] == '=') - (u->b64[u->b64_len - 2] == '=');
    return bytes;
}

const char *media_image_type(const char *content_type, size_t content_type_len, const char *data,
                             size_t len)
{
    const char *semi = content_type ? memchr(content_type, ';', content_type_len) : NULL;
    size_t n = semi ? (size_t)(semi - content_type) : content_type ? content_type_len : 0;

    while (n > 0 && content_type[n - 1] == ' ') {
        n--;
    }
    for (size_t i = 0; n > 0 && i < ARRAY_LEN(media_edit_types); i++) {
        if (strlen(media_edit_types[i].mime) == n &&
            strncasecmp(content_type, media_edit_types[i].mime, n) == 0) {
            return media_edit_types[i].mime;
        }
    }
    for (size_t i = 0; data != NULL && i < ARRAY_LEN(media_edit_types); i++) {
        if (len >= media_edit_types[i].magic_at + media_edit_types[i].magic_len &&
            memcmp(data + media_edit_types[i].magic_at, media_edit_types[i].magic,
                   media_edit_types[i].magic_len) == 0) {
            return media_edit_types[i].mime;
        }
    }
    return NULL;
}

char *media_data_uri_encode(const char *mime, const char *data, size_t len)
{
    size_t head = strlen("data:;base64,") + strlen(mime);
    size_t b64 = (len + 2) / 3 * 4;
    char *uri;

    if (len > (size_t)INT32_MAX / 2 || (uri = malloc(head + b64 + 1)) == NULL) {
        return NULL;
    }
    snprintf(uri, head + 1, "data:%s;base64,", mime);
    EVP_EncodeBlock((unsigned char *)uri + head, (const unsigned char *)data, (int)len);
    return uri;
}

/* A data: URI is taken only whole and well-formed: a provider would reject it later, or worse
 * render from a prefix of it. */
int media_reference_check(const cJSON *v, struct core_err *err)
{
    struct media_data_uri u;

    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    if (cJSON_IsString(v) &&
        (media_data_uri_parse(v->valuestring, &u) == 0 ||
         (strncmp(v->valuestring, "data:", 5) != 0 && media_url_fetchable(v->valuestring)))) {
        return 0;
    }
    return core_err_set(err, CORE_EINVAL, "input_reference",
                        "input_reference must be a PNG, JPEG or WEBP image: a file, a data: URI "
                        "(data:image/png;base64,...) or an http(s) URL");
}

/*
 * The edit form of an image body: "edit": true with "image" (data: URIs, 1 to
 * MEDIA_MAX_EDIT_IMAGES) and an optional "mask" (one). Without "edit", neither may be given: a
 * generation that silently dropped the client's image would answer something else than asked.
 */
static int media_read_edit(const cJSON *input, struct media_input *in, struct core_err *err)
{
    const cJSON *edit = cJSON_GetObjectItemCaseSensitive(input, "edit");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(input, "image");
    const cJSON *mask = cJSON_GetObjectItemCaseSensitive(input, "mask");
    struct media_data_uri u;
    const cJSON *v;

    if (edit != NULL && !cJSON_IsNull(edit) && !cJSON_IsBool(edit)) {
        return core_err_set(err, CORE_EINVAL, "edit", "edit must be true or false");
    }
    if (!cJSON_IsTrue(edit)) {
        if (media_given(input, "image") || media_given(input, "mask")) {
            return core_err_set(err, CORE_EINVAL, media_given(input, "image") ? "image" : "mask",
                                "image and mask are only taken by the edit form (\"edit\": true)");
        }
        return 0;
    }
    if (!cJSON_IsArray(images) || cJSON_GetArraySize(images) < 1 ||
        cJSON_GetArraySize(images) > MEDIA_MAX_EDIT_IMAGES) {
        return core_err_set(err, CORE_EINVAL, "image",
                            "an edit needs image: 1 to %d data: URIs of PNG, JPEG or WEBP images",
                            MEDIA_MAX_EDIT_IMAGES);
    }
    cJSON_ArrayForEach(v, images)
    {
        if (!cJSON_IsString(v) || media_data_uri_parse(v->valuestring, &u) != 0) {
            return core_err_set(err, CORE_EINVAL, "image",
                                "image must hold data: URIs of PNG, JPEG or WEBP images "
                                "(data:image/png;base64,...)");
        }
        in->images[in->n_images++] = v->valuestring;
    }
    if (mask != NULL && !cJSON_IsNull(mask)) {
        if (!cJSON_IsString(mask) || media_data_uri_parse(mask->valuestring, &u) != 0) {
            return core_err_set(err, CORE_EINVAL, "mask",
                                "mask must be a data: URI of a PNG, JPEG or WEBP image");
        }
        in->mask = mask->valuestring;
    }
    return 0;
}

bool media_op_ok(enum adapter_op op)
{
    return op == ADAPTER_OP_IMAGE || op == ADAPTER_OP_VIDEO;
}

/*
 * Fields the dialect cannot express are refused rather than dropped when dropping would change
 * what the client gets (a dialect that cannot send a video's input_reference in the form given
 * refuses it rather than make a text-to-video); quality
 * and style only tune the result and are ignored. response_format is sluice's to honour (the api
 * answers the kept images as URLs or b64_json), so it is only checked here.
 */
static int media_read_input(const struct adapter_call *call, struct media_input *in,
                            struct core_err *err)
{
    const cJSON *input = call->input;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(input, "n");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(input, "size");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(input, "output_format");
    enum artifact_form form;

    memset(in, 0, sizeof(*in));
    in->seconds = -1;
    if (!cJSON_IsObject(input)) {
        return core_err_set(err, CORE_EINVAL, NULL, "the request body must be a JSON object");
    }
    in->prompt = adapter_json_str(input, "prompt");
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
        if (media_reference_check(cJSON_GetObjectItemCaseSensitive(input, "input_reference"),
                                  err) != 0) {
            return err->code;
        }
        in->reference = adapter_json_str(input, "input_reference");
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
    if (artifact_form_for(input, false, &form) != 0) {
        return core_err_set(err, CORE_EINVAL, "response_format",
                            "response_format must be \"url\" or \"b64_json\"");
    }
    if (format != NULL && !cJSON_IsNull(format)) {
        if (!cJSON_IsString(format) || format->valuestring[0] == '\0') {
            return core_err_set(err, CORE_EINVAL, "output_format",
                                "output_format must be a format name such as png");
        }
        in->output_format = format->valuestring;
    }
    return media_read_edit(input, in, err);
}

int media_submit_begin(const struct media_dialect *d, const struct adapter_call *call,
                       struct media_input *in, struct adapter_request *out, struct core_err *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!media_op_ok(call->op)) {
        return adapter_unsupported(d->name, call->op, err);
    }
    if ((rc = adapter_target_check(call->target, err)) != 0) {
        return rc;
    }
    return media_read_input(call, in, err);
}

int media_submit_finish(const struct media_dialect *d, const struct adapter_target *t, char *url,
                        const cJSON *body, struct adapter_request *out, struct core_err *err)
{
    if (adapter_request_set_json(out, "POST", url, body) != 0 ||
        adapter_request_add_key(out, d->auth_prefix, t->api_key) != 0 ||
        adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
    }
    return 0;
}

int media_job_begin(const struct media_dialect *d, const struct adapter_call *call,
                    const char *method, struct adapter_request *out, struct core_err *err)
{
    const struct adapter_target *t = call->target;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (!media_op_ok(call->op)) {
        return adapter_unsupported(d->name, call->op, err);
    }
    if (t == NULL || t->base_url == NULL) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url");
    }
    snprintf(out->method, sizeof(out->method), "%s", method);
    return 0;
}

int media_job_finish(const struct media_dialect *d, const struct adapter_target *t,
                     struct adapter_request *out, struct core_err *err)
{
    if (out->url == NULL || adapter_request_add_key(out, d->auth_prefix, t->api_key) != 0) {
        adapter_request_cleanup(out);
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
    }
    return 0;
}

const char *media_aspect_ratio(int w, int h)
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

void media_seconds_text(double s, char *buf, size_t cap)
{
    if (s == floor(s)) {
        snprintf(buf, cap, "%.0f", s);
    } else {
        snprintf(buf, cap, "%g", s);
    }
}

/* A fraction counts by its whole part; numbers past 100 are not progress. */
int media_progress_from_text(const char *s)
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

bool media_url_fetchable(const char *url)
{
    CURLU *u = media_url_parse(url);

    curl_url_cleanup(u);
    return u != NULL;
}

/* Ports compare as curl fills them in, so "https://h" and "https://h:443" are one origin. */
bool media_url_same_origin(const char *base, const char *url)
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

/* Final: the same job polled again ends the same way. */
int media_job_ended(const struct adapter_response *resp, const char *err_code, const char *what,
                    const char *detail, struct core_err *err)
{
    if (detail != NULL && detail[0] != '\0') {
        core_err_set(err, CORE_EUPSTREAM, NULL, "%.*s",
                     adapter_utf8_fit(detail, sizeof(err->message)), detail);
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

/* The video object and usage echo what the client asked for: providers do not report them. */
int media_done(const struct adapter_call *call, const struct adapter_response *resp,
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
