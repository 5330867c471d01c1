/*
 * adapters/adapter.h — the provider vtable.
 *
 * One const struct adapter per provider dialect, listed in one table (adapter.c). Adapters are pure
 * functions over data: they build the HTTP request for a task and deployment, parse a reply into
 * the normalized OpenAI-shaped result and usage, and classify a failure (retryable or not,
 * retry-after). They never touch the event loop, curl handles or Redis; the worker owns all I/O.
 * Hooks a dialect does not support are NULL. Code that two dialects share lives once: here and in
 * adapter.c when the worker or the tests use it too, in dialect.h / dialect.c when only dialects
 * do, and in media.h / media.c for the long-running media jobs of replicate and fal.
 */
#ifndef SLUICE_ADAPTER_H
#define SLUICE_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "core/err.h"
#include "core/task.h"

/* What a task asks of a provider. */
enum adapter_op {
    ADAPTER_OP_CHAT = 0,
    ADAPTER_OP_EMBEDDING,
    ADAPTER_OP_IMAGE,
    ADAPTER_OP_VIDEO,
    ADAPTER_OP_RESPONSE, /* a Responses API request (adapters/responses.h), on a chat alias */
};

/* How an upstream call failed below HTTP, as the worker saw it. */
enum adapter_transport {
    ADAPTER_TRANSPORT_OK = 0,
    ADAPTER_TRANSPORT_CONNECT,   /* could not connect / resolve */
    ADAPTER_TRANSPORT_TIMEOUT,   /* the per-call timeout passed */
    ADAPTER_TRANSPORT_RESET,     /* connection reset or closed mid-reply */
    ADAPTER_TRANSPORT_TOO_LARGE, /* reply passed the size cap */
    ADAPTER_TRANSPORT_OTHER,
};

/* The deployment an adapter builds for. All borrowed from the config; api_key may be NULL. */
struct adapter_target {
    const char *provider; /* provider name in the config, for messages */
    const char *base_url; /* includes the version path, no trailing slash needed */
    const char *api_key;
    const char *model;       /* upstream model name, replaces the alias in the body */
    long default_max_tokens; /* for dialects that require max_tokens (Anthropic); 0 = none */
    bool responses_native;   /* an OpenAI deployment that has POST /responses (responses.h) */
};

/* An HTTP request for the worker to send. Owned by the struct: adapter_request_cleanup(). */
struct adapter_request {
    char method[8]; /* "POST", "GET", "PUT" */
    char *url;
    char **headers; /* "Name: value" strings */
    size_t n_headers;
    char *body; /* may be NULL for GET */
    size_t body_len;
};

struct adapter_header {
    const char *name;
    const char *value;
};

/* An upstream reply as the worker received it. Everything is borrowed by the adapter. */
struct adapter_response {
    int status; /* HTTP status; 0 when transport != OK */
    const char *body;
    size_t body_len;
    const struct adapter_header *headers; /* names in any case */
    size_t n_headers;
    enum adapter_transport transport;
    const char *transport_msg; /* may be NULL */
    int64_t now_ms;            /* wall clock (Unix ms) when the reply arrived */
};

/*
 * Everything a hook knows about the call. All borrowed. For polls and cancels of long-running
 * jobs, upstream_id and job are what an earlier parse_response / parse_poll returned.
 */
struct adapter_call {
    enum adapter_op op;
    const cJSON *input; /* the client's OpenAI request body of this kind */
    const struct adapter_target *target;
    bool stream;             /* chat only: relay the provider's stream */
    const char *upstream_id; /* polls and cancels; NULL otherwise */
    const cJSON *job;        /* polls and cancels: the dialect's saved job state; may be NULL */
    /* build_request of a long-running job: the URL the provider should call when the job ends
     * (api/provider_callbacks.c; a dialect with a per-request callback field sends it, the others
     * ignore it). NULL: none, the job is polled only. */
    const char *callback_url;
};

/* Where a call left the task. */
enum adapter_outcome {
    ADAPTER_DONE = 0, /* result is final */
    ADAPTER_PENDING,  /* an upstream job is queued or running: poll it later */
};

/*
 * Bytes the worker must keep for GET /v1/tasks/{id}/content: either inline base64 (b64, as
 * OpenAI's b64_json) or a download (fetch: a GET, with auth headers when the provider needs them,
 * e.g. OpenAI's /videos/{id}/content). Fetched once into the blob directory, so the bytes outlive
 * the provider's URL.
 */
struct adapter_artifact {
    char *b64;                    /* owned; NULL when fetch is used */
    struct adapter_request fetch; /* owned; fetch.url NULL when b64 is used */
    char content_type[64];        /* "image/png", "video/mp4"; "" = take the reply's */
};

/* A parsed reply, normalized. Owned by the struct: adapter_result_cleanup(). */
struct adapter_result {
    enum adapter_outcome outcome;
    cJSON *result; /* DONE: OpenAI-shaped object: chat.completion, embedding list, images
                      response, video object */
    cJSON *usage;  /* OpenAI usage names (media: {"images": n} or {"seconds": s}); may be NULL */
    char *upstream_id; /* provider's id for the response or job; may be NULL */

    /* PENDING: the state the next poll needs, kept with the task (URLs, phase). May be NULL. */
    cJSON *job;
    int progress;          /* 0-100, -1 when unknown */
    int queue_position;    /* -1 when unknown */
    int64_t poll_after_ms; /* -1: the provider's configured interval; 0: at once */

    struct adapter_artifact *artifacts; /* DONE, media kinds */
    size_t n_artifacts;
};

struct adapter {
    const char *name; /* dialect name as written in the config ("openai") */

    /*
     * Builds the upstream request for the call. Returns 0, or a negative code with err filled:
     * CORE_EINVAL or CORE_EUNPROCESSABLE when the input cannot be expressed in this dialect (not
     * retryable). With call->stream, the request asks the provider for its stream.
     */
    int (*build_request)(const struct adapter_call *call, struct adapter_request *out,
                         struct core_err *err);

    /*
     * Parses a reply to build_request's request. Returns 0 with out filled (DONE with a result,
     * or PENDING with upstream_id/job for a long-running job), or a negative code with err
     * filled: retryable, retry_after_ms, provider_status, and the provider's message normalized
     * into OpenAI's error fields. Transport failures are classified here too
     * (adapter_classify_transport). Not called for streamed calls.
     */
    int (*parse_response)(const struct adapter_call *call, const struct adapter_response *resp,
                          struct adapter_result *out, struct core_err *err);

    /* Long-running jobs; NULL when the dialect has none. Same contracts as above. */
    int (*build_poll)(const struct adapter_call *call, struct adapter_request *out,
                      struct core_err *err);
    int (*parse_poll)(const struct adapter_call *call, const struct adapter_response *resp,
                      struct adapter_result *out, struct core_err *err);
    int (*build_cancel)(const struct adapter_call *call, struct adapter_request *out,
                        struct core_err *err);

    /*
     * Streaming chat; NULL when the dialect cannot stream. stream_new makes the per-call state
     * (NULL on OOM). stream_event takes one server-sent event of the provider's stream (event
     * name, NULL when none; data = the event's data lines joined by '\n', not NUL-terminated)
     * and appends zero or more OpenAI chat.completion.chunk objects to chunks (a cJSON array);
     * it sets *done when the provider's stream has ended. It returns 0, or a negative code with
     * err filled when the provider sent an error event or a chunk it cannot read. The worker
     * feeds every chunk to an adapter_accum to build the task's final chat.completion.
     */
    void *(*stream_new)(const struct adapter_call *call);
    int (*stream_event)(void *state, const char *event, const char *data, size_t len, cJSON *chunks,
                        bool *done, struct core_err *err);
    void (*stream_free)(void *state);
};

/* Dialects, listed in adapter.c's table. */
extern const struct adapter adapter_openai;
extern const struct adapter adapter_anthropic;
extern const struct adapter adapter_gemini;
extern const struct adapter adapter_replicate;
extern const struct adapter adapter_fal;

/* The dialect with this name, or NULL. */
const struct adapter *adapter_find(const char *name);

/* The op a task kind maps to (TASK_KIND_CHAT → ADAPTER_OP_CHAT). -1 for a kind without one. */
int adapter_op_for_kind(enum task_kind kind);
/* The same for a kind by name ("chat"), as test data names it. -1 for an unknown name. */
int adapter_op_from_kind(const char *kind);

void adapter_request_cleanup(struct adapter_request *req);
void adapter_result_cleanup(struct adapter_result *res);

/* Appends a printf-formatted "Name: value" header. Returns 0 or CORE_ENOMEM. */
int adapter_request_add_header(struct adapter_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* base_url + path with exactly one '/' between them. Caller frees. NULL on OOM. */
char *adapter_url_join(const char *base_url, const char *path);

/* The value of a reply header, matched case-insensitively; NULL when absent. Borrowed. */
const char *adapter_header_get(const struct adapter_response *resp, const char *name);

/*
 * The wait the provider asked for, in ms: `retry-after-ms`, else `retry-after` (seconds or an
 * HTTP date, parsed with curl_getdate against resp->now_ms). -1 when it named none.
 */
int64_t adapter_retry_after_ms(const struct adapter_response *resp);

/*
 * Fills err for a transport failure (connect, timeout, reset: retryable; too large: not).
 * Returns the negative code it set.
 */
int adapter_classify_transport(const struct adapter_response *resp, struct core_err *err);

/*
 * Retryability of an HTTP status by the cross-provider rules: 408, 429, 500, 502, 503, 504, 529
 * and other 5xx are retryable; everything else is not.
 */
bool adapter_status_retryable(int status);

/*
 * Shared by dialects and also used outside adapters/ (the worker, the tests); helpers only dialects
 * use are in dialect.h.
 */

/* Bounds on what a reply can make an adapter do. */
#define ADAPTER_MAX_REPLY_BYTES (64u * 1024u * 1024u) /* larger JSON replies are refused */
#define ADAPTER_MAX_JSON_DEPTH 128                    /* deeper JSON replies are refused */
#define ADAPTER_MAX_WAIT_MS (24LL * 60 * 60 * 1000)   /* provider waits are capped at one day */

/* The task kind an op belongs to ("chat" for ADAPTER_OP_CHAT); "unknown" for anything else. */
const char *adapter_op_name(enum adapter_op op);

/*
 * Parses a reply body of len bytes (need not be NUL-terminated) as JSON, refusing bodies longer
 * than ADAPTER_MAX_REPLY_BYTES or nested deeper than ADAPTER_MAX_JSON_DEPTH. Caller frees the
 * returned tree. NULL when the body is empty, too large, too deep or not JSON.
 */
cJSON *adapter_json_parse(const char *body, size_t len);

/* The fields of an OpenAI-style error envelope. Strings are borrowed from the parsed body. */
struct adapter_error_fields {
    const char *message; /* NULL when absent */
    const char *type;    /* NULL when absent or not a string */
    const char *param;   /* NULL when absent or not a string */
    char code[64];       /* the code as a string (OpenAI sends strings, ints or null); "" if none */
};

/*
 * Reads {"error": {"message", "type", "param", "code"}} from root (borrowed; may be NULL). Also
 * accepts `"error": "text"`. Returns true and fills out when root carries an error object.
 */
bool adapter_error_fields_read(const cJSON *root, struct adapter_error_fields *out);

/*
 * Fills err for a non-2xx reply by the cross-provider rules: code CORE_EUPSTREAM, provider_status
 * and sluice's http_status for it (400/401/403/404/413/422/429 as-is, 408 as 504, anything else
 * 502), retryable per adapter_status_retryable, retry_after_ms per adapter_retry_after_ms, and the
 * provider's message, type, param and code verbatim when f has them (f may be NULL for a body that
 * was not an error envelope). Returns CORE_EUPSTREAM.
 */
int adapter_http_error(const struct adapter_response *resp, const struct adapter_error_fields *f,
                       struct core_err *err);

/*
 * Parses a Go-style duration as OpenAI's x-ratelimit-reset-* headers send it ("1s", "6m0s",
 * "12ms", "1h2m3.5s"; units h, m, s, ms, us, ns) into ms, rounded up and capped at
 * ADAPTER_MAX_WAIT_MS. Returns 0, or -1 when s is not such a duration.
 */
int adapter_parse_duration_ms(const char *s, int64_t *out_ms);

/*
 * Puts a chat.completion in the shape OpenAI's own answers have, whatever dialect made it: the id
 * starts with "chatcmpl-" (a dialect's id gets the prefix; fallback_id, prefixed too, when there
 * is none), and every choice carries "logprobs" and its message "refusal", null unless set.
 * Idempotent. Returns 0, or CORE_ENOMEM with the completion possibly half normalized.
 */
int adapter_chat_normalize(cJSON *completion, const char *fallback_id);

/*
 * The same for a chat.completion.chunk: the id as above, every choice's "logprobs" null unless
 * set, and "usage": null unless the chunk carries usage (as OpenAI's chunks do when usage was
 * asked for). Returns 0 or CORE_ENOMEM.
 */
int adapter_chunk_normalize(cJSON *chunk, const char *fallback_id);

/* True for a stream's usage chunk: a "usage" object and no choice. */
bool adapter_chunk_is_usage(const cJSON *chunk);

/*
 * True when a chat request (the client's body) asked for the usage chunk of its stream:
 * stream_options.include_usage is true. sluice always asks the provider for usage, so the task
 * records it, and relays the chunk only when the client asked (a plain streaming loop that reads
 * choices[0] of every chunk must not meet an empty choices list).
 */
bool adapter_stream_wants_usage(const cJSON *input);

/*
 * Builds a chat task's final chat.completion from the OpenAI chunks of a stream (any dialect's,
 * after stream_event translated them): concatenated content, tool calls merged by index, the
 * last finish_reason, and usage from the chunk that carried it. The result is
 *   {"id", "object": "chat.completion", "created", "model",      (id/created/model: the first
 *    "choices": [{"index",                                         chunk's that had them; left
 *                 "message": {"role", "content": text | null,      out when none did)
 *                             "refusal"?, "tool_calls"?: [{"id", "type", "function": {"name",
 *                                                          "arguments"}}]},
 *                 "finish_reason": last non-null | null,
 *                 "logprobs"?: {"content": [every chunk's logprobs.content entries], "refusal":
 * null}}], "usage"?} with choices and tool calls sorted by index, role defaulting to "assistant", a
 * tool call's type to "function" and its arguments to ""; refusal, tool_calls, logprobs and usage
 * only when a chunk carried them. A tool-call delta without an index continues the last call unless
 * it brings a new id. Text held is capped at ADAPTER_MAX_REPLY_BYTES, choices and tool calls per
 * choice at 128, logprobs entries per choice at 65,536.
 */
struct adapter_accum;
/* NULL on OOM. */
struct adapter_accum *adapter_accum_new(void);
/*
 * Adds one chunk (borrowed; copied from as needed). Returns 0, CORE_EINVAL for a chunk that is
 * not an object or has an index that is no non-negative integer, CORE_ETOOLARGE past a cap, or
 * CORE_ENOMEM. A failed add may have kept part of the chunk.
 */
int adapter_accum_add(struct adapter_accum *a, const cJSON *chunk);
/*
 * Fills out->result (chat.completion) and out->usage (a copy; NULL when no chunk carried one),
 * outcome DONE; nothing else. The accumulator is left as it was. Returns 0 or CORE_ENOMEM.
 */
int adapter_accum_finish(struct adapter_accum *a, struct adapter_result *out);
/* NULL is a no-op. */
void adapter_accum_free(struct adapter_accum *a);

#endif
