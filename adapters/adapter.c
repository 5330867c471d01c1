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
#include "adapters/dialect.h"
#include "core/task.h"
#include "core/util.h"

/* Every dialect sluice speaks. adapter_find() looks names up here. */
static const struct adapter *const adapter_table[] = {
    &adapter_openai, &adapter_anthropic, &adapter_gemini, &adapter_replicate, &adapter_fal,
};

/* The op of each task kind (core/task.h names the kinds, once). */
static const struct {
    enum task_kind kind;
    enum adapter_op op;
} op_table[] = {
    {TASK_KIND_CHAT, ADAPTER_OP_CHAT},         {TASK_KIND_EMBEDDING, ADAPTER_OP_EMBEDDING},
    {TASK_KIND_IMAGE, ADAPTER_OP_IMAGE},       {TASK_KIND_VIDEO, ADAPTER_OP_VIDEO},
    {TASK_KIND_RESPONSE, ADAPTER_OP_RESPONSE},
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

int adapter_op_for_kind(enum task_kind kind)
{
    for (size_t i = 0; i < ARRAY_LEN(op_table); i++) {
        if (op_table[i].kind == kind) {
            return (int)op_table[i].op;
        }
    }
    return -1;
}

int adapter_op_from_kind(const char *kind)
{
    int k = task_kind_parse(kind);
    return k < 0 ? -1 : adapter_op_for_kind((enum task_kind)k);
}

const char *adapter_op_name(enum adapter_op op)
{
    for (size_t i = 0; i < ARRAY_LEN(op_table); i++) {
        if (op_table[i].op == op) {
            return task_kind_name(op_table[i].kind);
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
    *out_ms = adapter_clamp_wait_ms(v * scale);
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
    return adapter_clamp_wait_ms((double)when * 1000.0 - (double)resp->now_ms);
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
 * cJSON recurses once per level (and so do its printer and destructor), so depth is checked before
 * cJSON sees the text rather than trusting its compiled-in limit.
 */
cJSON *adapter_json_parse(const char *body, size_t len)
{
    if (body == NULL || len == 0 || len > ADAPTER_MAX_REPLY_BYTES) {
        return NULL;
    }
    if (util_json_depth(body, len, ADAPTER_MAX_JSON_DEPTH) > ADAPTER_MAX_JSON_DEPTH) {
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
 * A provider's long message or type is cut to fit struct core_err on a UTF-8 boundary, so it still
 * prints as valid JSON.
 */
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
        core_err_set(err, CORE_EUPSTREAM, param, "%.*s",
                     adapter_utf8_fit(f->message, sizeof(err->message)), f->message);
    } else {
        core_err_set(err, CORE_EUPSTREAM, param, "provider returned HTTP %d", resp->status);
    }
    if (f != NULL && f->type != NULL && f->type[0] != '\0') {
        type = f->type;
    }
    snprintf(err->type, sizeof(err->type), "%.*s", adapter_utf8_fit(type, sizeof(err->type)), type);
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

/*
 * Streams, accumulated. Chunks arrive from the network (through a dialect's stream_event), so
 * every count and every byte held is capped.
 */
#define ACCUM_MAX_CHOICES 128
#define ACCUM_MAX_TOOL_CALLS 128
#define ACCUM_MAX_LOGPROBS 65536 /* token entries per choice */

/* Text grown from deltas. set: at least one delta carried this field as a string. */
struct accum_text {
    char *p;
    size_t len;
    size_t cap;
    bool set;
};

struct accum_tool {
    long index;
    char *id;
    char *type;
    char *name;
    struct accum_text args;
};

struct accum_choice {
    long index;
    char *role;
    struct accum_text content;
    struct accum_text refusal;
    char *finish_reason;
    struct accum_tool *tools; /* sorted by index */
    size_t n_tools;
    cJSON *logprobs; /* the logprobs.content entries of every chunk, in order; NULL when none */
};

struct adapter_accum {
    cJSON *id; /* copies of the first values seen */
    cJSON *created;
    cJSON *model;
    cJSON *usage;                 /* the last usage object seen */
    struct accum_choice *choices; /* sorted by index */
    size_t n_choices;
    size_t bytes; /* text held, against ADAPTER_MAX_REPLY_BYTES */
};

/* o[key] = a copy of value, replacing what was there. Returns false on OOM. */
static bool set_string(cJSON *o, const char *key, const char *value)
{
    cJSON *v = cJSON_CreateString(value);

    if (v == NULL) {
        return false;
    }
    if (cJSON_GetObjectItemCaseSensitive(o, key) != NULL) {
        return cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    }
    if (!cJSON_AddItemToObject(o, key, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

/* Gives o's "id" the "chatcmpl-" prefix (fallback_id when it has none). Returns false on OOM. */
static bool chat_id_normalize(cJSON *o, const char *fallback_id)
{
    static const char prefix[] = "chatcmpl-";
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
    const char *base = id != NULL && id[0] != '\0' ? id : fallback_id;
    char *full;
    bool ok;

    if (base == NULL || (base == id && strncmp(id, prefix, sizeof(prefix) - 1) == 0)) {
        return true;
    }
    if (strncmp(base, prefix, sizeof(prefix) - 1) == 0) {
        return set_string(o, "id", base);
    }
    full = malloc(sizeof(prefix) + strlen(base));
    if (full == NULL) {
        return false;
    }
    memcpy(full, prefix, sizeof(prefix) - 1);
    strcpy(full + sizeof(prefix) - 1, base);
    ok = set_string(o, "id", full);
    free(full);
    return ok;
}

/* Adds key: null to o when o has no such key. Returns false on OOM. */
static bool null_unless_set(cJSON *o, const char *key)
{
    return !cJSON_IsObject(o) || cJSON_GetObjectItemCaseSensitive(o, key) != NULL ||
           cJSON_AddNullToObject(o, key) != NULL;
}

int adapter_chat_normalize(cJSON *completion, const char *fallback_id)
{
    cJSON *ch;

    if (!cJSON_IsObject(completion)) {
        return 0;
    }
    if (!chat_id_normalize(completion, fallback_id)) {
        return CORE_ENOMEM;
    }
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(completion, "choices"))
    {
        if (!null_unless_set(cJSON_GetObjectItemCaseSensitive(ch, "message"), "refusal") ||
            !null_unless_set(ch, "logprobs")) {
            return CORE_ENOMEM;
        }
    }
    return 0;
}

int adapter_chunk_normalize(cJSON *chunk, const char *fallback_id)
{
    cJSON *ch;

    if (!cJSON_IsObject(chunk)) {
        return 0;
    }
    if (!chat_id_normalize(chunk, fallback_id) || !null_unless_set(chunk, "usage")) {
        return CORE_ENOMEM;
    }
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(chunk, "choices"))
    {
        if (!null_unless_set(ch, "logprobs")) {
            return CORE_ENOMEM;
        }
    }
    return 0;
}

bool adapter_chunk_is_usage(const cJSON *chunk)
{
    return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(chunk, "usage")) &&
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(chunk, "choices")) == 0;
}

bool adapter_stream_wants_usage(const cJSON *input)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(input, "stream_options"), "include_usage"));
}

struct adapter_accum *adapter_accum_new(void)
{
    return calloc(1, sizeof(struct adapter_accum));
}

void adapter_accum_free(struct adapter_accum *a)
{
    if (a == NULL) {
        return;
    }
    for (size_t i = 0; i < a->n_choices; i++) {
        struct accum_choice *ch = &a->choices[i];
        for (size_t t = 0; t < ch->n_tools; t++) {
            free(ch->tools[t].id);
            free(ch->tools[t].type);
            free(ch->tools[t].name);
            free(ch->tools[t].args.p);
        }
        free(ch->tools);
        free(ch->role);
        free(ch->content.p);
        free(ch->refusal.p);
        free(ch->finish_reason);
        cJSON_Delete(ch->logprobs);
    }
    free(a->choices);
    cJSON_Delete(a->id);
    cJSON_Delete(a->created);
    cJSON_Delete(a->model);
    cJSON_Delete(a->usage);
    free(a);
}

/* Appends a delta's string to t (a non-string delta is ignored), within the accum's byte cap. */
static int accum_text_add(struct adapter_accum *a, struct accum_text *t, const cJSON *delta)
{
    int rc;

    if (!cJSON_IsString(delta)) {
        return 0;
    }
    rc = adapter_text_append(&t->p, &t->len, &t->cap, delta->valuestring,
                             strlen(delta->valuestring), &a->bytes);
    if (rc == 0) {
        t->set = true;
    }
    return rc;
}

/* *slot = a copy of the delta's string, unless a value was already kept or it is not one. */
static int accum_keep_first(char **slot, const cJSON *delta)
{
    if (*slot != NULL || !cJSON_IsString(delta) || delta->valuestring[0] == '\0') {
        return 0;
    }
    *slot = strdup(delta->valuestring);
    return *slot ? 0 : CORE_ENOMEM;
}

/* As accum_keep_first, but a later non-empty value replaces the kept one. */
static int accum_keep_last(char **slot, const cJSON *delta)
{
    char *copy;

    if (!cJSON_IsString(delta) || delta->valuestring[0] == '\0') {
        return 0;
    }
    copy = strdup(delta->valuestring);
    if (copy == NULL) {
        return CORE_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static int accum_keep_json(cJSON **slot, const cJSON *v, bool last)
{
    cJSON *copy;

    if (v == NULL || cJSON_IsNull(v) || (*slot != NULL && !last)) {
        return 0;
    }
    copy = cJSON_Duplicate(v, true);
    if (copy == NULL) {
        return CORE_ENOMEM;
    }
    cJSON_Delete(*slot);
    *slot = copy;
    return 0;
}

/*
 * The element of a sorted array with this index, inserted zeroed when new. Returns NULL on OOM
 * or when the array already holds max elements (*rc says which).
 */
static void *accum_slot(void **arr, size_t *n, size_t elem, long index, size_t max, int *rc)
{
    char *base = *arr;
    size_t at = 0;
    char *grown;

    while (at < *n && *(long *)(void *)(base + at * elem) < index) {
        at++;
    }
    if (at < *n && *(long *)(void *)(base + at * elem) == index) {
        return base + at * elem;
    }
    if (*n >= max) {
        *rc = CORE_ETOOLARGE;
        return NULL;
    }
    grown = realloc(base, (*n + 1) * elem);
    if (grown == NULL) {
        *rc = CORE_ENOMEM;
        return NULL;
    }
    memmove(grown + (at + 1) * elem, grown + at * elem, (*n - at) * elem);
    memset(grown + at * elem, 0, elem);
    *(long *)(void *)(grown + at * elem) = index;
    *arr = grown;
    (*n)++;
    return grown + at * elem;
}

/*
 * An index field: a non-negative integer below max, or def when absent (some OpenAI-compatible
 * servers leave the index of a single choice or tool call out). Otherwise a negative code:
 * CORE_ETOOLARGE past the cap, CORE_EINVAL when it is no such integer.
 */
static long accum_index(const cJSON *v, long def, long max)
{
    if (!cJSON_IsNumber(v)) {
        return def;
    }
    if (!(v->valuedouble >= 0) || v->valuedouble != floor(v->valuedouble)) {
        return CORE_EINVAL;
    }
    if (v->valuedouble >= (double)max) {
        return CORE_ETOOLARGE;
    }
    return (long)v->valuedouble;
}

/*
 * One tool-call delta. Without an index, a delta carrying a new id starts the next call and
 * anything else continues the last one.
 */
static int accum_tool_add(struct adapter_accum *a, struct accum_choice *ch, const cJSON *tc)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
    struct accum_tool *last = ch->n_tools ? &ch->tools[ch->n_tools - 1] : NULL;
    long def = last ? last->index : 0;
    struct accum_tool *tool;
    long index;
    int rc = 0;

    if (!cJSON_IsObject(tc)) {
        return CORE_EINVAL;
    }
    if (last != NULL && cJSON_IsString(id) && id->valuestring[0] != '\0' &&
        (last->id == NULL || strcmp(last->id, id->valuestring) != 0)) {
        def = last->index + 1;
    }
    index = accum_index(cJSON_GetObjectItemCaseSensitive(tc, "index"), def, ACCUM_MAX_TOOL_CALLS);
    if (index < 0) {
        return (int)index;
    }
    tool = accum_slot((void **)&ch->tools, &ch->n_tools, sizeof(*ch->tools), index,
                      ACCUM_MAX_TOOL_CALLS, &rc);
    if (tool == NULL) {
        return rc;
    }
    if ((rc = accum_keep_first(&tool->id, id)) != 0 ||
        (rc = accum_keep_first(&tool->type, cJSON_GetObjectItemCaseSensitive(tc, "type"))) != 0 ||
        (rc = accum_keep_first(&tool->name, cJSON_GetObjectItemCaseSensitive(fn, "name"))) != 0) {
        return rc;
    }
    return accum_text_add(a, &tool->args, cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
}

/* Appends a chunk choice's logprobs.content entries (copies) to the choice's list. */
static int accum_logprobs_add(struct accum_choice *ch, const cJSON *c)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c, "logprobs"), "content");
    const cJSON *t;

    if (!cJSON_IsArray(content)) {
        return 0;
    }
    if (ch->logprobs == NULL && (ch->logprobs = cJSON_CreateArray()) == NULL) {
        return CORE_ENOMEM;
    }
    cJSON_ArrayForEach(t, content)
    {
        cJSON *copy;
        if (cJSON_GetArraySize(ch->logprobs) >= ACCUM_MAX_LOGPROBS) {
            return CORE_ETOOLARGE;
        }
        if ((copy = cJSON_Duplicate(t, true)) == NULL ||
            !cJSON_AddItemToArray(ch->logprobs, copy)) {
            cJSON_Delete(copy);
            return CORE_ENOMEM;
        }
    }
    return 0;
}

static int accum_choice_add(struct adapter_accum *a, const cJSON *c)
{
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c, "delta");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    const cJSON *tc;
    struct accum_choice *ch;
    long index;
    int rc = 0;

    if (!cJSON_IsObject(c)) {
        return CORE_EINVAL;
    }
    index = accum_index(cJSON_GetObjectItemCaseSensitive(c, "index"), 0, ACCUM_MAX_CHOICES);
    if (index < 0) {
        return (int)index;
    }
    ch = accum_slot((void **)&a->choices, &a->n_choices, sizeof(*a->choices), index,
                    ACCUM_MAX_CHOICES, &rc);
    if (ch == NULL) {
        return rc;
    }
    if ((rc = accum_keep_first(&ch->role, cJSON_GetObjectItemCaseSensitive(delta, "role"))) != 0 ||
        (rc = accum_text_add(a, &ch->content,
                             cJSON_GetObjectItemCaseSensitive(delta, "content"))) != 0 ||
        (rc = accum_text_add(a, &ch->refusal,
                             cJSON_GetObjectItemCaseSensitive(delta, "refusal"))) != 0 ||
        (rc = accum_keep_last(&ch->finish_reason,
                              cJSON_GetObjectItemCaseSensitive(c, "finish_reason"))) != 0 ||
        (rc = accum_logprobs_add(ch, c)) != 0) {
        return rc;
    }
    cJSON_ArrayForEach(tc, (cJSON_IsArray(tools) ? tools : NULL))
    {
        if ((rc = accum_tool_add(a, ch, tc)) != 0) {
            return rc;
        }
    }
    return 0;
}

int adapter_accum_add(struct adapter_accum *a, const cJSON *chunk)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
    const cJSON *c;
    int rc;

    if (a == NULL || !cJSON_IsObject(chunk)) {
        return CORE_EINVAL;
    }
    if ((rc = accum_keep_json(&a->id, cJSON_GetObjectItemCaseSensitive(chunk, "id"), false)) != 0 ||
        (rc = accum_keep_json(&a->created, cJSON_GetObjectItemCaseSensitive(chunk, "created"),
                              false)) != 0 ||
        (rc = accum_keep_json(&a->model, cJSON_GetObjectItemCaseSensitive(chunk, "model"),
                              false)) != 0 ||
        (rc = accum_keep_json(&a->usage, cJSON_IsObject(usage) ? usage : NULL, true)) != 0) {
        return rc;
    }
    cJSON_ArrayForEach(c, (cJSON_IsArray(choices) ? choices : NULL))
    {
        if ((rc = accum_choice_add(a, c)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* A string as JSON, or null when s is NULL. Added to o under key; false on OOM. */
static bool accum_put_string(cJSON *o, const char *key, const char *s)
{
    return (s ? cJSON_AddStringToObject(o, key, s) : cJSON_AddNullToObject(o, key)) != NULL;
}

static cJSON *accum_tool_json(const struct accum_tool *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *fn = cJSON_CreateObject();
    bool ok = o != NULL && fn != NULL;

    ok = ok && accum_put_string(o, "id", t->id);
    ok = ok && accum_put_string(o, "type", t->type ? t->type : "function");
    ok = ok && accum_put_string(fn, "name", t->name);
    ok = ok && accum_put_string(fn, "arguments", t->args.p ? t->args.p : "");
    if (ok && cJSON_AddItemToObject(o, "function", fn)) {
        return o;
    }
    cJSON_Delete(fn);
    cJSON_Delete(o);
    return NULL;
}

/* o.logprobs = {"content": a copy of content, "refusal": null}. False on OOM. */
static bool accum_logprobs_json(cJSON *o, const cJSON *content)
{
    cJSON *lp = cJSON_AddObjectToObject(o, "logprobs");
    cJSON *copy = cJSON_Duplicate(content, true);

    if (lp == NULL || copy == NULL || !cJSON_AddItemToObject(lp, "content", copy)) {
        cJSON_Delete(copy);
        return false;
    }
    return cJSON_AddNullToObject(lp, "refusal") != NULL;
}

static cJSON *accum_choice_json(const struct accum_choice *ch)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *msg = cJSON_CreateObject();
    cJSON *tools = NULL;
    bool ok = o != NULL && msg != NULL;

    ok = ok && cJSON_AddNumberToObject(o, "index", (double)ch->index) != NULL;
    ok = ok && accum_put_string(msg, "role", ch->role ? ch->role : "assistant");
    ok = ok && accum_put_string(msg, "content", ch->content.set ? ch->content.p : NULL);
    if (ok && ch->refusal.set) {
        ok = accum_put_string(msg, "refusal", ch->refusal.p);
    }
    if (ok && ch->n_tools > 0) {
        ok = (tools = cJSON_AddArrayToObject(msg, "tool_calls")) != NULL;
        for (size_t t = 0; ok && t < ch->n_tools; t++) {
            cJSON *tj = accum_tool_json(&ch->tools[t]);
            ok = tj != NULL && cJSON_AddItemToArray(tools, tj);
        }
    }
    if (ok && cJSON_AddItemToObject(o, "message", msg)) {
        msg = NULL;
        if (accum_put_string(o, "finish_reason", ch->finish_reason) &&
            (ch->logprobs == NULL || accum_logprobs_json(o, ch->logprobs))) {
            return o;
        }
    }
    cJSON_Delete(msg);
    cJSON_Delete(o);
    return NULL;
}

static bool accum_put_copy(cJSON *o, const char *key, const cJSON *v)
{
    cJSON *copy;

    if (v == NULL) {
        return true;
    }
    copy = cJSON_Duplicate(v, true);
    if (copy != NULL && cJSON_AddItemToObject(o, key, copy)) {
        return true;
    }
    cJSON_Delete(copy);
    return false;
}

int adapter_accum_finish(struct adapter_accum *a, struct adapter_result *out)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *choices = NULL;
    bool ok = r != NULL && a != NULL;

    memset(out, 0, sizeof(*out));
    ok = ok && accum_put_copy(r, "id", a->id);
    ok = ok && cJSON_AddStringToObject(r, "object", "chat.completion") != NULL;
    ok = ok && accum_put_copy(r, "created", a->created);
    ok = ok && accum_put_copy(r, "model", a->model);
    ok = ok && (choices = cJSON_AddArrayToObject(r, "choices")) != NULL;
    for (size_t i = 0; ok && i < a->n_choices; i++) {
        cJSON *cj = accum_choice_json(&a->choices[i]);
        ok = cj != NULL && cJSON_AddItemToArray(choices, cj);
    }
    ok = ok && accum_put_copy(r, "usage", a->usage);
    if (ok && a->usage != NULL) {
        ok = (out->usage = cJSON_Duplicate(a->usage, true)) != NULL;
    }
    if (!ok) {
        cJSON_Delete(r);
        adapter_result_cleanup(out);
        return a == NULL ? CORE_EINVAL : CORE_ENOMEM;
    }
    out->outcome = ADAPTER_DONE;
    out->result = r;
    return 0;
}
