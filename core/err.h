/*
 * core/err.h — sluice's one error type.
 *
 * Fallible functions return 0 or a negative CORE_E* code and fill a struct core_err. The same
 * struct becomes the HTTP error body (OpenAI's envelope), the task's error record and the log line,
 * so it carries every field any of those needs.
 */
#ifndef SLUICE_CORE_ERR_H
#define SLUICE_CORE_ERR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

enum core_code {
    CORE_OK = 0,
    CORE_EINVAL = -1,         /* 400 invalid_request_error: bad JSON or field */
    CORE_EAUTH = -2,          /* 401 authentication_error */
    CORE_EPERM = -3,          /* 403 permission_error */
    CORE_ENOTFOUND = -4,      /* 404 not_found_error */
    CORE_ECONFLICT = -5,      /* 409 conflict_error: wrong state or idempotency mismatch */
    CORE_ETOOLARGE = -6,      /* 413 request_too_large */
    CORE_EUNPROCESSABLE = -7, /* 422 unprocessable_entity_error */
    CORE_EQUOTA = -8,         /* 429 the client's own quota */
    CORE_EUNAVAILABLE = -9,   /* 503 a dependency (Redis) is down */
    CORE_ETIMEOUT = -10,      /* 504 / upstream timeout */
    CORE_EUPSTREAM = -11,     /* the provider answered with an error (status in provider_status) */
    CORE_ENOMEM = -12,        /* 500 out of memory */
    CORE_EINTERNAL = -13,     /* 500 a bug or an impossible state */
};

struct core_err {
    int code;               /* enum core_code */
    int http_status;        /* status sluice answers with for this error */
    int provider_status;    /* HTTP status the provider answered, 0 when none */
    bool retryable;         /* a later attempt (same or other deployment) may succeed */
    int64_t retry_after_ms; /* provider's requested wait, -1 when it named none */
    char type[48];          /* OpenAI error type, e.g. "invalid_request_error" */
    char err_code[64];      /* OpenAI error code, "" when none */
    char param[64];         /* offending field, "" when none */
    char message[512];
};

/* Resets an error to "no error" (code 0, retry_after_ms -1, empty strings). */
void core_err_clear(struct core_err *e);

/*
 * Fills e from a code: sets http_status and type from the code's row in the error table, param
 * (may be NULL) and a printf-formatted message. Returns code, so callers can
 * `return core_err_set(err, CORE_EINVAL, "model", "...")`.
 */
int core_err_set(struct core_err *e, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets the OpenAI `code` string (e.g. "rate_limit_exceeded"); NULL clears it. */
void core_err_set_code(struct core_err *e, const char *err_code);

/* The OpenAI error type and HTTP status that belong to a code. */
const char *core_code_type(int code);
int core_code_status(int code);

/*
 * The error object {"message","type","param","code"} — and, when full is true, also "retryable"
 * and "provider_status" as stored on a task. Caller frees the returned cJSON. NULL on OOM.
 */
cJSON *core_err_to_json(const struct core_err *e, bool full);

/* {"error": {...}} — the envelope of every HTTP error answer. Caller frees. */
char *core_err_envelope(const struct core_err *e);

#endif
