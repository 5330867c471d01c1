/*
 * adapters/dialect.c — helpers the dialect files share: JSON building with ownership handed over
 * on every call, request scaffolding, data: URLs, and the first steps of reading a reply (the
 * checks every reply goes through, malformed replies, rate-limit reset headers).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "adapters/dialect.h"

const char *adapter_json_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

bool adapter_json_put(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL) {
        return false;
    }
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

bool adapter_json_push(cJSON *arr, cJSON *item)
{
    if (item == NULL) {
        return false;
    }
    if (!cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

cJSON *adapter_json_wrap(const char *key, cJSON *value)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !adapter_json_put(o, key, value)) {
        cJSON_Delete(o);
        if (o == NULL) {
            cJSON_Delete(value);
        }
        return NULL;
    }
    return o;
}

cJSON *adapter_tool_call_json(int index, const char *id, const char *name, const char *arguments)
{
    cJSON *call = cJSON_CreateObject();
    cJSON *fn = NULL;
    bool ok = call != NULL &&
              (index < 0 || cJSON_AddNumberToObject(call, "index", index) != NULL) &&
              cJSON_AddStringToObject(call, "id", id) != NULL &&
              cJSON_AddStringToObject(call, "type", "function") != NULL &&
              (fn = cJSON_AddObjectToObject(call, "function")) != NULL &&
              cJSON_AddStringToObject(fn, "name", name) != NULL &&
              cJSON_AddStringToObject(fn, "arguments", arguments) != NULL;

    if (!ok) {
        cJSON_Delete(call);
        return NULL;
    }
    return call;
}

/* Two passes, measure then copy, so a long conversation's text is allocated once. */
int adapter_text_append(char **p, size_t *len, size_t *cap, const char *add, size_t n, size_t *used)
{
    if (n > ADAPTER_MAX_REPLY_BYTES - *used) {
        return CORE_ETOOLARGE;
    }
    if (*len + n + 1 > *cap) {
        size_t grown_cap = *cap ? *cap : 64;
        char *grown;
        while (grown_cap < *len + n + 1) {
            grown_cap *= 2;
        }
        if ((grown = realloc(*p, grown_cap)) == NULL) {
            return CORE_ENOMEM;
        }
        *p = grown;
        *cap = grown_cap;
    }
    memcpy(*p + *len, add, n);
    (*p)[*len + n] = '\0';
    *len += n;
    *used += n;
    return 0;
}

char *adapter_text_join(const cJSON *arr, const char *sep, bool (*keep)(const cJSON *elem),
                        bool *any)
{
    const size_t sep_len = strlen(sep);
    const cJSON *e;
    size_t len = 0;
    bool first = true;
    char *text;
    char *w;

    *any = false;
    cJSON_ArrayForEach(e, arr)
    {
        const char *t = adapter_json_str(e, "text");
        if (t != NULL && (keep == NULL || keep(e))) {
            len += strlen(t) + (*any ? sep_len : 0);
            *any = true;
        }
    }
    if ((text = malloc(len + 1)) == NULL) {
        return NULL;
    }
    w = text;
    cJSON_ArrayForEach(e, arr)
    {
        const char *t = adapter_json_str(e, "text");
        if (t != NULL && (keep == NULL || keep(e))) {
            size_t n = strlen(t);
            if (!first) {
                memcpy(w, sep, sep_len);
                w += sep_len;
            }
            memcpy(w, t, n);
            w += n;
            first = false;
        }
    }
    *w = '\0';
    return text;
}

bool adapter_id_ok(const char *s, size_t max, const char *extra)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char allowed[sizeof(alnum) + 16];
    size_t n = (s != NULL) ? strlen(s) : 0;

    if (n == 0 || n > max || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        return false;
    }
    snprintf(allowed, sizeof(allowed), "%s%s", alnum, extra);
    return strspn(s, allowed) == n;
}

int adapter_oom(struct core_err *err)
{
    return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
}

int adapter_unsupported(const char *dialect, enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EUNPROCESSABLE, NULL, "the %s dialect does not support %s tasks",
                        dialect, adapter_op_name(op));
}

static bool field_inert(const cJSON *v, enum adapter_field_rule rule)
{
    switch (rule) {
    case ADAPTER_FIELD_HANDLED:
        return true;
    case ADAPTER_FIELD_IF_FALSE:
        return cJSON_IsFalse(v);
    case ADAPTER_FIELD_IF_TRUE:
        return cJSON_IsTrue(v);
    case ADAPTER_FIELD_IF_ZERO:
        return cJSON_IsNumber(v) && v->valuedouble == 0;
    case ADAPTER_FIELD_IF_ONE:
        return cJSON_IsNumber(v) && v->valuedouble == 1;
    }
    return false;
}

int adapter_fields_check(const cJSON *input, const char *dialect, const struct adapter_field *table,
                         size_t n, struct core_err *err)
{
    const cJSON *f;

    cJSON_ArrayForEach(f, input)
    {
        const struct adapter_field *row = NULL;

        if (f->string == NULL || cJSON_IsNull(f)) {
            continue;
        }
        for (size_t i = 0; i < n && row == NULL; i++) {
            if (strcmp(table[i].name, f->string) == 0) {
                row = &table[i];
            }
        }
        if (row != NULL && field_inert(f, row->rule)) {
            continue;
        }
        core_err_set(err, CORE_EINVAL, f->string,
                     row != NULL ? "The %s dialect serving this model cannot honour this value "
                                   "of '%.64s'"
                                 : "The %s dialect serving this model does not support '%.64s'",
                     dialect, f->string);
        core_err_set_code(err, "unsupported_parameter");
        return CORE_EINVAL;
    }
    return 0;
}

int adapter_random_id(const char *prefix, size_t n, char *out, size_t cap)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    size_t plen = strlen(prefix);

    if (n > sizeof(raw) || plen + n + 1 > cap || RAND_bytes(raw, (int)n) != 1) {
        return -1;
    }
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < n; i++) {
        /* 62 symbols: the modulo bias (256 % 62 = 8) is irrelevant for ids that need only be
         * unique, not secret */
        out[plen + i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
    }
    out[plen + n] = '\0';
    return 0;
}

int adapter_target_check(const struct adapter_target *t, struct core_err *err)
{
    if (t == NULL || t->base_url == NULL || t->model == NULL || t->model[0] == '\0') {
        return core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url or model");
    }
    return 0;
}

int adapter_request_add_key(struct adapter_request *req, const char *prefix, const char *key)
{
    if (key == NULL || key[0] == '\0') {
        return 0;
    }
    return adapter_request_add_header(req, "%s%s", prefix, key);
}

int adapter_request_set_json(struct adapter_request *req, const char *method, char *url,
                             const cJSON *body)
{
    snprintf(req->method, sizeof(req->method), "%s", method);
    req->url = url;
    req->body = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    if (req->url == NULL || req->body == NULL) {
        return CORE_ENOMEM;
    }
    req->body_len = strlen(req->body);
    return 0;
}

/*
 * The comma must come after "data:" and ";base64" (12 bytes in), so the ";base64" looked for
 * right before it cannot overlap the scheme.
 */
int adapter_data_url(const char *url, bool nocase, char *mime, size_t cap, const char **data)
{
    const char *comma = strchr(url, ',');
    size_t mlen = strcspn(url + 5, ";,");

    if (comma == NULL || comma - url < 12 ||
        (nocase ? strncasecmp(comma - 7, ";base64", 7) : strncmp(comma - 7, ";base64", 7)) != 0) {
        return ADAPTER_DATA_URL_NOT_BASE64;
    }
    if (mlen == 0 || mlen >= cap) {
        return ADAPTER_DATA_URL_BAD_TYPE;
    }
    memcpy(mime, url + 5, mlen);
    mime[mlen] = '\0';
    *data = comma + 1;
    return 0;
}

int adapter_utf8_fit(const char *s, size_t cap)
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

int64_t adapter_clamp_wait_ms(double ms)
{
    if (!(ms > 0)) {
        return 0;
    }
    if (ms >= (double)ADAPTER_MAX_WAIT_MS) {
        return ADAPTER_MAX_WAIT_MS;
    }
    return (int64_t)ceil(ms);
}

int adapter_malformed(int status, bool retryable, struct core_err *err, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    core_err_set(err, CORE_EUPSTREAM, NULL, "malformed reply from the provider: %s", why);
    core_err_set_code(err, "malformed_reply");
    err->provider_status = status;
    err->retryable = retryable;
    err->retry_after_ms = -1;
    return err->code;
}

int adapter_malformed_body(int status, size_t body_len, const char *why, struct core_err *err)
{
    return adapter_malformed(status, body_len <= ADAPTER_MAX_REPLY_BYTES, err, "%s", why);
}

/*
 * The body is parsed before the status is looked at, so an HTTP error hands the dialect its error
 * envelope. A body past the cap never parses (adapter_json_parse refuses it), so the size check
 * only decides which malformed message a 2xx gets.
 */
int adapter_reply_root(const struct adapter_response *resp, adapter_http_error_fn http_error,
                       cJSON **root, struct core_err *err)
{
    *root = NULL;
    if (resp->transport != ADAPTER_TRANSPORT_OK) {
        return adapter_classify_transport(resp, err);
    }
    *root = adapter_json_parse(resp->body, resp->body_len);
    if (resp->status < 200 || resp->status > 299) {
        return http_error(resp, *root, err);
    }
    if (resp->body_len > ADAPTER_MAX_REPLY_BYTES) {
        return adapter_malformed(resp->status, false, err, "the body passed the size limit");
    }
    if (!cJSON_IsObject(*root)) {
        return adapter_malformed(resp->status, true, err, "the body is not a JSON object");
    }
    return 0;
}

int64_t adapter_reset_wait_ms(const struct adapter_response *resp,
                              const struct adapter_reset_header *buckets, size_t n,
                              adapter_reset_parse_fn parse)
{
    int64_t any = -1;
    int64_t exhausted = -1;

    for (size_t i = 0; i < n; i++) {
        const char *reset = adapter_header_get(resp, buckets[i].reset);
        const char *left = adapter_header_get(resp, buckets[i].remaining);
        int64_t ms;

        if (reset == NULL || parse(resp, reset, &ms) != 0) {
            continue;
        }
        if (ms > any) {
            any = ms;
        }
        if (left != NULL && strcmp(left, "0") == 0 && ms > exhausted) {
            exhausted = ms;
        }
    }
    return exhausted >= 0 ? exhausted : any;
}
