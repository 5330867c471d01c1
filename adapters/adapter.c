/*
 * adapters/adapter.c — the dialect table and what every dialect shares: request and result
 * ownership, header lookup, the provider's requested wait, transport and status classification,
 * bounded JSON parsing of replies and the OpenAI-style error envelope.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "adapters/adapter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Every dialect sluice speaks. adapter_find() looks names up here. */
static const struct adapter *const adapter_table[] = {
    &adapter_openai, &adapter_anthropic, &adapter_gemini, &adapter_replicate, &adapter_fal,
};

/* Task kinds as clients and the config name them. */
static const struct {
    const char *kind;
    enum adapter_op op;
} op_table[] = {
    {"chat", ADAPTER_OP_CHAT},
    {"embedding", ADAPTER_OP_EMBEDDING},
    {"image", ADAPTER_OP_IMAGE},
    {"video", ADAPTER_OP_VIDEO},
};

/* How each transport failure is reported. Too large is not retryable: the same reply comes back. */
static const struct {
    enum adapter_transport transport;
    int code;
    bool retryable;
    const char *err_code;
    const char *what;
} transport_table[] = {
    {ADAPTER_TRANSPORT_CONNECT, CORE_EUPSTREAM, true, "upstream_connect_error",
     "could not connect to the provider"},
    {ADAPTER_TRANSPORT_TIMEOUT, CORE_ETIMEOUT, true, "upstream_timeout",
     "the provider did not answer in time"},
    {ADAPTER_TRANSPORT_RESET, CORE_EUPSTREAM, true, "upstream_connection_reset",
     "the connection to the provider was reset"},
    {ADAPTER_TRANSPORT_TOO_LARGE, CORE_EUPSTREAM, false, "upstream_reply_too_large",
     "the provider's reply passed the size limit"},
    {ADAPTER_TRANSPORT_OTHER, CORE_EUPSTREAM, true, "upstream_transport_error",
     "the call to the provider failed"},
};

/* Statuses retryable by the cross-provider rules, besides every other 5xx. */
static const int retryable_statuses[] = {408, 429, 500, 502, 503, 504, 529};

/*
 * What sluice answers when a provider answered with an HTTP error, and the OpenAI error type to
 * use when the provider named none. Client errors the provider judged keep their status; anything
 * not listed (5xx, 3xx, odd 4xx) is the upstream's failure: 502.
 */
static const struct {
    int provider_status;
    int http_status;
    const char *type;
} http_error_table[] = {
    {400, 400, "invalid_request_error"},
    {401, 401, "authentication_error"},
    {403, 403, "permission_error"},
    {404, 404, "not_found_error"},
    {408, 504, "timeout_error"},
    {413, 413, "request_too_large"},
    {422, 422, "unprocessable_entity_error"},
    {429, 429, "rate_limit_error"},
};

/*
 * Units of a Go-style duration, in nanoseconds. "ms" precedes "m" so the longer unit wins. Go
 * spells microseconds "us", "µs" (U+00B5 micro sign) or "μs" (U+03BC Greek mu).
 */
static const struct {
    const char *name;
    int64_t ns;
} duration_units[] = {
    {"ns", 1LL},       {"us", 1000LL},         {"\xc2\xb5s", 1000LL}, {"\xce\xbcs", 1000LL},
    {"ms", 1000000LL}, {"h", 3600000000000LL}, {"m", 60000000000LL},  {"s", 1000000000LL},
};

const struct adapter *adapter_find(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_LEN(adapter_table); i++) {
        if (strcmp(adapter_table[i]->name, name) == 0) {
            return adapter_table[i];
        }
    }
    return NULL;
}

int adapter_op_from_kind(const char *kind)
{
    if (kind == NULL) {
        return -1;
    }
    for (size_t i = 0; i < ARRAY_LEN(op_table); i++) {
        if (strcmp(op_table[i].kind, kind) == 0) {
            return (int)op_table[i].op;
        }
    }
    return -1;
}

const char *adapter_op_name(enum adapter_op op)
{
    for (size_t i = 0; i < ARRAY_LEN(op_table); i++) {
        if (op_table[i].op == op) {
            return op_table[i].kind;
        }
    }
    return "unknown";
}

void adapter_request_cleanup(struct adapter_request *req)
{
    if (req == NULL) {
        return;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        free(req->headers[i]);
    }
    free(req->headers);
    free(req->url);
    free(req->body);
    memset(req, 0, sizeof(*req));
}

void adapter_result_cleanup(struct adapter_result *res)
{
    if (res == NULL) {
        return;
    }
    cJSON_Delete(res->result);
    cJSON_Delete(res->usage);
    cJSON_Delete(res->job);
    free(res->upstream_id);
    for (size_t i = 0; i < res->n_artifacts; i++) {
        free(res->artifacts[i].b64);
        adapter_request_cleanup(&res->artifacts[i].fetch);
    }
    free(res->artifacts);
    memset(res, 0, sizeof(*res));
}

int adapter_request_add_header(struct adapter_request *req, const char *fmt, ...)
{
    va_list ap;
    char *line = NULL;
    char **grown = NULL;
    int len;
    int rc = CORE_ENOMEM;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        goto out;
    }
    line = malloc((size_t)len + 1);
    if (line == NULL) {
        goto out;
    }
    va_start(ap, fmt);
    vsnprintf(line, (size_t)len + 1, fmt, ap);
    va_end(ap);
    grown = realloc(req->headers, (req->n_headers + 1) * sizeof(*req->headers));
    if (grown == NULL) {
        goto out;
    }
    req->headers = grown;
    req->headers[req->n_headers++] = line;
    line = NULL;
    rc = 0;
out:
    free(line);
    return rc;
}

char *adapter_url_join(const char *base_url, const char *path)
{
    size_t blen;
    size_t plen;
    char *url;

    if (base_url == NULL || path == NULL) {
        return NULL;
    }
    blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/') {
        blen--;
    }
    while (*path == '/') {
        path++;
    }
    plen = strlen(path);
    url = malloc(blen + 1 + plen + 1);
    if (url == NULL) {
        return NULL;
    }
    memcpy(url, base_url, blen);
    url[blen] = '/';
    memcpy(url + blen + 1, path, plen + 1);
    return url;
}

const char *adapter_header_get(const struct adapter_response *resp, const char *name)
{
    if (resp == NULL || resp->headers == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < resp->n_headers; i++) {
        const struct adapter_header *h = &resp->headers[i];
        if (h->name != NULL && h->value != NULL && strcasecmp(h->name, name) == 0) {
            return h->value;
        }
    }
    return NULL;
}

/* A wait clamped into [0, ADAPTER_MAX_WAIT_MS], rounded up to whole ms. */
static int64_t clamp_wait_ms(double ms)
{
    if (!(ms > 0)) {
        return 0;
    }
    if (ms >= (double)ADAPTER_MAX_WAIT_MS) {
        return ADAPTER_MAX_WAIT_MS;
    }
    return (int64_t)ceil(ms);
}

/*
 * A header value that is only a decimal number (optionally signed, with a fraction), times scale,
 * as a clamped wait. strtod alone would also take exponents, hex, "inf" and "nan", which no
 * provider means.
 */
static int parse_wait_number(const char *s, double scale, int64_t *out_ms)
{
    const char *p = s + strspn(s, " \t");
    const char *digits = p + (*p == '-' || *p == '+');
    size_t n = strspn(digits, "0123456789.");
    char *end = NULL;
    double v;

    if (n == 0 || digits[n + strspn(digits + n, " \t")] != '\0') {
        return -1;
    }
    v = strtod(p, &end);
    if (end != digits + n || !isfinite(v)) {
        return -1;
    }
    *out_ms = clamp_wait_ms(v * scale);
    return 0;
}

/*
 * retry-after-ms is OpenAI's and the most precise, so it wins; retry-after is seconds or an HTTP
 * date. A date is measured against the time the reply arrived, not against now, so a reply that
 * waited in a queue is not over-slept. An unparseable header counts as absent.
 */
int64_t adapter_retry_after_ms(const struct adapter_response *resp)
{
    const char *v;
    int64_t ms;
    time_t when;

    v = adapter_header_get(resp, "retry-after-ms");
    if (v != NULL && parse_wait_number(v, 1.0, &ms) == 0) {
        return ms;
    }
    v = adapter_header_get(resp, "retry-after");
    if (v == NULL) {
        return -1;
    }
    if (parse_wait_number(v, 1000.0, &ms) == 0) {
        return ms;
    }
    when = curl_getdate(v, NULL);
    if (when == (time_t)-1) {
        return -1;
    }
    return clamp_wait_ms((double)when * 1000.0 - (double)resp->now_ms);
}

int adapter_classify_transport(const struct adapter_response *resp, struct core_err *err)
{
    const char *detail = resp->transport_msg;

    for (size_t i = 0; i < ARRAY_LEN(transport_table); i++) {
        if (transport_table[i].transport != resp->transport) {
            continue;
        }
        if (detail != NULL && detail[0] != '\0') {
            core_err_set(err, transport_table[i].code, NULL, "%s: %s", transport_table[i].what,
                         detail);
        } else {
            core_err_set(err, transport_table[i].code, NULL, "%s", transport_table[i].what);
        }
        core_err_set_code(err, transport_table[i].err_code);
        err->retryable = transport_table[i].retryable;
        err->provider_status = 0;
        err->retry_after_ms = -1;
        return err->code;
    }
    core_err_set(err, CORE_EINTERNAL, NULL, "transport outcome %d is not a failure",
                 (int)resp->transport);
    err->retryable = false;
    err->provider_status = 0;
    err->retry_after_ms = -1;
    return err->code;
}

bool adapter_status_retryable(int status)
{
    for (size_t i = 0; i < ARRAY_LEN(retryable_statuses); i++) {
        if (retryable_statuses[i] == status) {
            return true;
        }
    }
    return status >= 500 && status <= 599;
}

/*
 * Nesting depth of a JSON text, counted on brackets outside strings, stopping as soon as it passes
 * max. cJSON recurses once per level (and so do its printer and destructor), so depth is checked
 * before cJSON sees the text rather than trusting its compiled-in limit.
 */
static bool json_depth_ok(const char *s, size_t len, int max)
{
    int depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                return false;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

cJSON *adapter_json_parse(const char *body, size_t len)
{
    if (body == NULL || len == 0 || len > ADAPTER_MAX_REPLY_BYTES) {
        return NULL;
    }
    if (!json_depth_ok(body, len, ADAPTER_MAX_JSON_DEPTH)) {
        return NULL;
    }
    return cJSON_ParseWithLengthOpts(body, len, NULL, false);
}

bool adapter_error_fields_read(const cJSON *root, struct adapter_error_fields *out)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *code;

    memset(out, 0, sizeof(*out));
    if (cJSON_IsString(e)) {
        out->message = e->valuestring;
        return true;
    }
    if (!cJSON_IsObject(e)) {
        return false;
    }
    out->message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
    out->type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type"));
    out->param = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "param"));
    code = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (cJSON_IsString(code)) {
        snprintf(out->code, sizeof(out->code), "%s", code->valuestring);
    } else if (cJSON_IsNumber(code) && fabs(code->valuedouble) < 1e15) {
        snprintf(out->code, sizeof(out->code), "%.0f", code->valuedouble);
    }
    return true;
}

/*
 * How many bytes of s fit in cap - 1 without splitting a UTF-8 sequence, so a provider's long
 * message cut to fit struct core_err still prints as valid JSON.
 */
static int utf8_fit(const char *s, size_t cap)
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

int adapter_http_error(const struct adapter_response *resp, const struct adapter_error_fields *f,
                       struct core_err *err)
{
    const char *type = "upstream_error";
    int http_status = 502;
    const char *param = (f != NULL) ? f->param : NULL;

    for (size_t i = 0; i < ARRAY_LEN(http_error_table); i++) {
        if (http_error_table[i].provider_status == resp->status) {
            http_status = http_error_table[i].http_status;
            type = http_error_table[i].type;
            break;
        }
    }
    if (param != NULL && strlen(param) >= sizeof(err->param)) {
        param = NULL;
    }
    if (f != NULL && f->message != NULL && f->message[0] != '\0') {
        core_err_set(err, CORE_EUPSTREAM, param, "%.*s", utf8_fit(f->message, sizeof(err->message)),
                     f->message);
    } else {
        core_err_set(err, CORE_EUPSTREAM, param, "provider returned HTTP %d", resp->status);
    }
    if (f != NULL && f->type != NULL && f->type[0] != '\0') {
        type = f->type;
    }
    snprintf(err->type, sizeof(err->type), "%.*s", utf8_fit(type, sizeof(err->type)), type);
    core_err_set_code(err, (f != NULL) ? f->code : NULL);
    err->http_status = http_status;
    err->provider_status = resp->status;
    err->retryable = adapter_status_retryable(resp->status);
    err->retry_after_ms = adapter_retry_after_ms(resp);
    return CORE_EUPSTREAM;
}

/*
 * Go's time.Duration syntax, which OpenAI uses for its reset headers: one or more
 * <decimal><unit> terms. Counted in integer nanoseconds so "1.1s" is 1100 ms, not 1100.0000002
 * rounded up to 1101; anything past the one-day cap stops counting but still has to parse.
 */
int adapter_parse_duration_ms(const char *s, int64_t *out_ms)
{
    const int64_t cap_ns = ADAPTER_MAX_WAIT_MS * 1000000LL;
    int64_t total_ns = 0;
    bool capped = false;
    const char *p = s;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    while (*p != '\0') {
        int64_t whole = 0;
        int64_t frac = 0;
        int64_t frac_scale = 1;
        bool big = false;
        int digits = 0;
        size_t u;

        for (; isdigit((unsigned char)*p); p++, digits++) {
            if (whole > cap_ns) {
                big = true;
            } else {
                whole = whole * 10 + (*p - '0');
            }
        }
        if (*p == '.') {
            for (p++; isdigit((unsigned char)*p); p++, digits++) {
                if (frac_scale < 1000000000LL) {
                    frac = frac * 10 + (*p - '0');
                    frac_scale *= 10;
                }
            }
        }
        if (digits == 0) {
            return -1;
        }
        for (u = 0; u < ARRAY_LEN(duration_units); u++) {
            size_t n = strlen(duration_units[u].name);
            if (strncmp(p, duration_units[u].name, n) == 0) {
                p += n;
                break;
            }
        }
        if (u == ARRAY_LEN(duration_units)) {
            return -1;
        }
        if (capped || big || whole > cap_ns / duration_units[u].ns) {
            capped = true;
            continue;
        }
        total_ns += whole * duration_units[u].ns;
        total_ns += frac * (duration_units[u].ns / frac_scale);
        total_ns += frac * (duration_units[u].ns % frac_scale) / frac_scale;
        if (total_ns > cap_ns) {
            capped = true;
        }
    }
    *out_ms = capped ? ADAPTER_MAX_WAIT_MS : (total_ns + 999999) / 1000000;
    return 0;
}
