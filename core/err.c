/*
 * core/err.c — the error table and the OpenAI error envelope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct code_row {
    int code;
    int status;
    const char *type;
};

/*
 * One row per code: the HTTP status sluice answers with and OpenAI's error type. OpenAI has few
 * types: every client error but auth, permission and rate is an invalid_request_error (a 404 for
 * an unknown model too); the code field tells them apart.
 */
static const struct code_row code_table[] = {
    {CORE_OK, 200, ""},
    {CORE_EINVAL, 400, "invalid_request_error"},
    {CORE_EAUTH, 401, "authentication_error"},
    {CORE_EPERM, 403, "permission_error"},
    {CORE_ENOTFOUND, 404, "invalid_request_error"},
    {CORE_ECONFLICT, 409, "invalid_request_error"},
    {CORE_ETOOLARGE, 413, "invalid_request_error"},
    {CORE_EUNPROCESSABLE, 422, "invalid_request_error"},
    {CORE_EQUOTA, 429, "rate_limit_error"},
    {CORE_EUNAVAILABLE, 503, "server_error"},
    {CORE_ETIMEOUT, 504, "timeout_error"},
    {CORE_EUPSTREAM, 502, "upstream_error"},
    {CORE_ENOMEM, 500, "server_error"},
    {CORE_EINTERNAL, 500, "server_error"},
};

static const struct code_row *code_row(int code)
{
    for (size_t i = 0; i < sizeof(code_table) / sizeof(code_table[0]); i++) {
        if (code_table[i].code == code) {
            return &code_table[i];
        }
    }
    return &code_table[sizeof(code_table) / sizeof(code_table[0]) - 1];
}

const char *core_code_type(int code)
{
    return code_row(code)->type;
}

int core_code_status(int code)
{
    return code_row(code)->status;
}

void core_err_clear(struct core_err *e)
{
    memset(e, 0, sizeof(*e));
    e->retry_after_ms = -1;
}

int core_err_set(struct core_err *e, int code, const char *param, const char *fmt, ...)
{
    va_list ap;
    const struct code_row *row = code_row(code);

    e->code = code;
    e->http_status = row->status;
    snprintf(e->type, sizeof(e->type), "%s", row->type);
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return code;
}

void core_err_set_code(struct core_err *e, const char *err_code)
{
    snprintf(e->err_code, sizeof(e->err_code), "%s", err_code ? err_code : "");
}

cJSON *core_err_to_json(const struct core_err *e, bool full)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "message", e->message);
    cJSON_AddStringToObject(o, "type", e->type[0] ? e->type : core_code_type(e->code));
    if (e->param[0]) {
        cJSON_AddStringToObject(o, "param", e->param);
    } else {
        cJSON_AddNullToObject(o, "param");
    }
    if (e->err_code[0]) {
        cJSON_AddStringToObject(o, "code", e->err_code);
    } else {
        cJSON_AddNullToObject(o, "code");
    }
    if (full) {
        cJSON_AddBoolToObject(o, "retryable", e->retryable);
        if (e->provider_status) {
            cJSON_AddNumberToObject(o, "provider_status", e->provider_status);
        } else {
            cJSON_AddNullToObject(o, "provider_status");
        }
    }
    return o;
}

char *core_err_envelope(const struct core_err *e)
{
    cJSON *env = cJSON_CreateObject();
    cJSON *obj = core_err_to_json(e, false);
    char *out = NULL;

    if (env == NULL || obj == NULL) {
        cJSON_Delete(env);
        cJSON_Delete(obj);
        return NULL;
    }
    cJSON_AddItemToObject(env, "error", obj);
    out = cJSON_PrintUnformatted(env);
    cJSON_Delete(env);
    return out;
}
