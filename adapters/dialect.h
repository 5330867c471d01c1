/*
 * adapters/dialect.h — what the dialect files share, internal to adapters/ (the worker and the
 * tests see only adapter.h). A helper lives here once two dialects need it; a dialect file keeps
 * only what is its own. Reply-side helpers follow adapter.h's contracts: they fill err with
 * provider_status, retryable and retry_after_ms as parse_response must.
 */
#ifndef SLUICE_ADAPTER_DIALECT_H
#define SLUICE_ADAPTER_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "adapters/adapter.h"
#include "core/err.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- JSON ------------------------------------------------------------------------------------ */

/* o[key] when it is a string, else NULL (also when o is NULL or not an object). Borrowed. */
const char *adapter_json_str(const cJSON *o, const char *key);

/*
 * Adds item to the object obj under key; obj takes item. Returns false on OOM, with item (which
 * may be NULL, as a failed cJSON_Create* returns) freed, so calls chain with &&.
 */
bool adapter_json_put(cJSON *obj, const char *key, cJSON *item);

/* Appends item to the array arr, taking it, as adapter_json_put does. */
bool adapter_json_push(cJSON *arr, cJSON *item);

/* {key: value} as a new object, taking value (freed on failure, may be NULL). NULL on OOM. */
cJSON *adapter_json_wrap(const char *key, cJSON *value);

/*
 * An OpenAI tool call {"index"?, "id", "type": "function", "function": {"name", "arguments"}}
 * (strings copied): index < 0 leaves "index" out, as a message's tool_calls do; a stream delta's
 * carries it. NULL on OOM.
 */
cJSON *adapter_tool_call_json(int index, const char *id, const char *name, const char *arguments);

/*
 * The "text" strings of the elements of arr joined with sep between them, counting only elements
 * that keep (NULL: all) accepts; elements without a text string are skipped. *any tells whether
 * one counted. Caller frees; "" when none did, NULL on OOM.
 */
/*
 * Appends add (n bytes) to the growing text *p (*len bytes, *cap allocated; NUL-terminated after),
 * counting n against *used, which may not pass ADAPTER_MAX_REPLY_BYTES (the cap a stream's held
 * text has). 0, CORE_ETOOLARGE (nothing appended) or CORE_ENOMEM.
 */
int adapter_text_append(char **p, size_t *len, size_t *cap, const char *add, size_t n,
                        size_t *used);

char *adapter_text_join(const cJSON *arr, const char *sep, bool (*keep)(const cJSON *elem),
                        bool *any);

/* ---- requests -------------------------------------------------------------------------------- */

/*
 * True when s, an id a provider handed back, is safe to splice into a URL path: 1 to max bytes of
 * ASCII letters, digits and the characters in extra (up to 16 of them), and not "." or "..".
 */
bool adapter_id_ok(const char *s, size_t max, const char *extra);

/* Fills err for an out-of-memory failure ("out of memory"). Returns CORE_ENOMEM. */
int adapter_oom(struct core_err *err);

/* Fills err for an op the dialect has no call for. Returns CORE_EUNPROCESSABLE. */
int adapter_unsupported(const char *dialect, enum adapter_op op, struct core_err *err);

/*
 * Checks that the deployment names a base_url and a model (a config bug otherwise). Returns 0, or
 * CORE_EINTERNAL with err filled.
 */
int adapter_target_check(const struct adapter_target *t, struct core_err *err);

/*
 * Adds the header "<prefix><key>" (prefix such as "Authorization: Bearer ") when the deployment
 * has a key; nothing when key is NULL or "". Returns 0 or CORE_ENOMEM.
 */
int adapter_request_add_key(struct adapter_request *req, const char *prefix, const char *key);

/*
 * Sets req's method, url (taken; NULL counts as OOM) and body (body printed unformatted; NULL
 * body counts as OOM). Headers are the caller's. Returns 0 or CORE_ENOMEM; on failure the caller
 * still owns req and cleans it up.
 */
int adapter_request_set_json(struct adapter_request *req, const char *method, char *url,
                             const cJSON *body);

/*
 * The field policy. Every top-level field of a client's request is honoured, translated for the
 * dialect, or refused with a 400 that names it — never silently dropped. A dialect that is not
 * OpenAI's lists the fields it handles; adapter_fields_check refuses every other field. A field
 * the dialect cannot honour is still accepted at the value that asks for nothing (its `inert`
 * rule: `logprobs: false`, `n: 1`, `presence_penalty: 0`), and a null value is always accepted,
 * as OpenAI reads null as absent.
 */
enum adapter_field_rule {
    ADAPTER_FIELD_HANDLED = 0, /* honoured or translated, whatever its value */
    ADAPTER_FIELD_IF_FALSE,    /* accepted only as false */
    ADAPTER_FIELD_IF_TRUE,     /* accepted only as true */
    ADAPTER_FIELD_IF_ZERO,     /* accepted only as the number 0 */
    ADAPTER_FIELD_IF_ONE,      /* accepted only as the number 1 */
};

struct adapter_field {
    const char *name;
    enum adapter_field_rule rule;
};

/*
 * Checks input's top-level fields against a dialect's table (see above). Returns 0, or CORE_EINVAL
 * with err naming the first field refused (param = the field, code "unsupported_parameter").
 */
int adapter_fields_check(const cJSON *input, const char *dialect, const struct adapter_field *table,
                         size_t n, struct core_err *err);

/*
 * Writes prefix + n random characters of [A-Za-z0-9] into out (cap bytes, NUL-terminated), from
 * OpenSSL's CSPRNG: tool call ids in OpenAI's shape ("call_" + 24) for providers that give none or
 * repeat theirs. Returns 0, or -1 when cap is too small or no randomness was to be had.
 */
int adapter_random_id(const char *prefix, size_t n, char *out, size_t cap);

/* What adapter_data_url found wrong with a data: URL. */
enum adapter_data_url_error {
    ADAPTER_DATA_URL_NOT_BASE64 = -1, /* no ",", or no ";base64" right before it */
    ADAPTER_DATA_URL_BAD_TYPE = -2,   /* the media type is empty or does not fit in mime */
};

/*
 * Reads a base64 data: URL (the caller has seen that url starts with "data:"):
 * data:<type>[;params];base64,<data>. nocase: ";base64" may be in any case. Returns 0 with the
 * media type copied into mime (cap bytes) and *data pointing at the base64 text in url, or an
 * enum adapter_data_url_error.
 */
int adapter_data_url(const char *url, bool nocase, char *mime, size_t cap, const char **data);

/* ---- replies --------------------------------------------------------------------------------- */

/* How many bytes of s fit in cap - 1 without splitting a UTF-8 sequence (for "%.*s"). */
int adapter_utf8_fit(const char *s, size_t cap);

/* A wait of ms clamped into [0, ADAPTER_MAX_WAIT_MS] and rounded up to whole ms. */
int64_t adapter_clamp_wait_ms(double ms);

/*
 * Fills err for a reply that is not what the dialect expects: CORE_EUPSTREAM, code
 * "malformed_reply", message "malformed reply from the provider: <fmt...>", provider_status =
 * status, the given retryability, retry_after_ms -1. Returns CORE_EUPSTREAM.
 */
int adapter_malformed(int status, bool retryable, struct core_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * adapter_malformed for a body of body_len bytes that was not the object asked for: retryable,
 * since a proxy or an overloaded server cut it and the next attempt usually gets a whole one,
 * unless it passed ADAPTER_MAX_REPLY_BYTES (it would come back as large).
 */
int adapter_malformed_body(int status, size_t body_len, const char *why, struct core_err *err);

/* A dialect's reading of a non-2xx reply; root is the parsed body, NULL when it is not JSON. */
typedef int (*adapter_http_error_fn)(const struct adapter_response *resp, const cJSON *root,
                                     struct core_err *err);

/*
 * What every reply goes through before a dialect reads it: a transport failure is classified
 * (adapter_classify_transport), a non-2xx goes to http_error, a body past ADAPTER_MAX_REPLY_BYTES
 * is malformed and final, one that is not a JSON object malformed and retryable. Returns 0 with
 * *root the reply's object, or the negative code it filled err with. Either way the caller frees
 * *root (NULL when nothing parsed).
 */
int adapter_reply_root(const struct adapter_response *resp, adapter_http_error_fn http_error,
                       cJSON **root, struct core_err *err);

/* A rate-limit bucket a provider reports: the header with its reset time, the one with its rest. */
struct adapter_reset_header {
    const char *reset;
    const char *remaining;
};

/*
 * Reads a reset header's value as the wait in ms it means, counted from resp->now_ms. Returns 0,
 * or -1 when the value is unreadable.
 */
typedef int (*adapter_reset_parse_fn)(const struct adapter_response *resp, const char *value,
                                      int64_t *ms);

/*
 * The wait a 429 implies when it carried no retry-after: until the emptied bucket refills.
 * Buckets reported at "0" remaining are the ones that tripped; when none is, the longest reset
 * given, since waiting a little long costs less than another 429. -1 when no reset parses.
 */
int64_t adapter_reset_wait_ms(const struct adapter_response *resp,
                              const struct adapter_reset_header *buckets, size_t n,
                              adapter_reset_parse_fn parse);

#endif
