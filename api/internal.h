/*
 * api/internal.h — what the api's files share: the api struct, the request context, and reply
 * helpers. Not for other roles.
 */
#ifndef SLUICE_API_INTERNAL_H
#define SLUICE_API_INTERNAL_H

#include <stdint.h>

#include <event2/http.h>
#include <cJSON.h>

#include "api/api.h"
#include "api/keys.h"
#include "core/artifact_url.h"
#include "core/keys.h"
#include "core/task.h"
#include "core/txn.h"

struct api_ctx;
struct api_rfollow;

#define API_WAITER_BUCKETS 4096

struct waiter;

struct api {
    struct event_base *base;
    const struct config *cfg;
    struct store *store;
    struct store *sub; /* subscribed to this process's channel: "task finished", stream chunks */
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    char node_id[48];
    /* this process's channel: the keyspace's prefix (any tag) + KS_CHANNEL_API + node_id */
    char channel[KEY_TAG_MAX + 4 + sizeof(KS_CHANNEL_API) + 48];
    size_t in_flight;
    size_t n_waiters;
    struct waiter *waiters[API_WAITER_BUCKETS]; /* by task id */
    uint64_t responses[6];                      /* by status class: 1xx..5xx, index 0 unused */
    uint64_t tasks_accepted;
    struct batch_runner *batches;  /* carries batches through their life (api/batch_runner.c) */
    struct pipe_runner *pipelines; /* moves pipelines on (api/pipeline_runner.c) */
    struct api_rfollow *followers; /* GET /v1/responses/{id}?stream=true in progress */
    struct event *submit_ev;       /* sends the loop turn's queued submits (activated, not added) */
    struct api_ctx *submit_head, *submit_tail;
    struct txn_args txn; /* the arguments of every script call: built, sent, then reset */
    unsigned char url_key[ARTIFACT_URL_KEY_MAX]; /* signs artifact URLs (api/artifacts.c) */
    size_t url_key_len;                          /* 0 until known */
    struct api_keys *keys; /* the bearer keys this process accepts (api/keys.h) */
    /* the key of the request being dispatched (on_request sets it around the handler's call;
     * NULL outside it, and for a request without a key): api_ctx_new copies it */
    const struct api_key_ref *req_key;
};

/* Submits per SUBMIT call (see api_submit; at most core/txn_task.h's TXN_SUBMIT_MAX). */
#define API_SUBMIT_BATCH 64

/* A key of a task or a tenant: the keyspace's prefix (any tag) + family + an id of up to 64. */
#define API_KEY_MAX (KEY_TAG_MAX + 128)

struct api_pending_submit;

/* How a submit went: 0 created (c->task rendered, c->id set), 1 an idempotent replay (hash of
 * the earlier task in dup, its id in c->id), or a negative code (the answer is the caller's). */
typedef void (*api_submit_cb)(struct api_ctx *c, int outcome, redisReply *dup,
                              const struct core_err *err);

/* One request waiting for Redis. Freed by api_ctx_free after the answer is sent. */
struct api_ctx {
    struct api *api;
    struct evhttp_request *req;
    const char *tenant;            /* borrowed from the config (or interned: api/keys.h) */
    const struct api_key_ref *key; /* the request's key (NULL: none), valid for the process */
    char id[64];
    char orig_id[64]; /* the id a submit proposed, when an idempotent replay named another */
    cJSON *task;      /* a task rendered before the round trip (submit), owned */
    char *task_text;  /* or as text (api_submit.render), owned */
    cJSON *body;      /* the request body, kept for the answer when needed, owned */
    cJSON *webhook;   /* a normalized webhook kept across a round trip (responses), owned */
    const char *raw;  /* the request body's bytes, kept across a round trip (valid while req is) */
    size_t raw_len;
    int64_t created_ms; /* when api_submit stamped the task created (Unix ms) */
    void *owner;        /* the larger request this is part of (a bulk submit), borrowed */
    int pending;        /* round trips still outstanding (metrics) */
    int64_t values[8];
    api_submit_cb submit_cb;
    int mode;                          /* endpoint-specific (e.g. how to answer after a submit) */
    int64_t wait_ms;                   /* Prefer: wait */
    struct api_pending_submit *submit; /* queued for the loop turn's SUBMIT call, owned */
    struct api_ctx *submit_next;       /* the api's queue of submits */
};

/* How api_submit renders the accepted task for the caller's answer: as JSON text in c->task_text
 * (the default), or not at all (the request waits for the result, or a batch's output file
 * answers it). */
enum api_render { API_RENDER_TEXT = 0, API_RENDER_NONE };

/* What a new task is: every endpoint that creates tasks fills one (all borrowed). */
struct api_submit {
    enum task_kind kind;
    const cJSON *input; /* the OpenAI request body of the kind */
    const struct config_model *model;
    enum task_priority prio;
    const cJSON *metadata; /* may be NULL */
    const char *idem;      /* Idempotency-Key, may be NULL */
    const char *raw;       /* the request body, for the idempotency hash */
    size_t raw_len;
    bool notify; /* this process waits for it: store reply_to */
    bool stream;
    int64_t deadline_ms;    /* 0 = none */
    const cJSON *routing;   /* the task's {strategy, max_cost}, validated; may be NULL */
    cJSON *webhook;         /* the task's normalized {url, events}; may be NULL; caller frees */
    enum api_render render; /* how the accepted task is rendered for the answer */
    const char *batch_id;   /* a batch's line: c->id is derived from it (api_batch_task_id) */
    const char *custom_id;
    const char *pipeline_id; /* a pipeline's step: c->id is derived from it (api/pipelines.h) */
    const char *step;
    const char *key_id; /* the key it runs under when not c->key's (a batch's, a pipeline's) */
};

/* ---- task_submit.c: the loop turn's submits, one SUBMIT call (core/txn_task.h) ---- */

/*
 * Creates the task with the SUBMIT script. c->id must hold a fresh id (api_ctx_for_new_task). The
 * submit is queued for the end of the loop turn, when every submit of the turn goes to Redis in
 * one SUBMIT call (up to API_SUBMIT_BATCH each). Returns 0 (cb will run once, from the loop) or a
 * negative code with err filled (cb never runs).
 */
int api_submit(struct api *a, struct api_ctx *c, const struct api_submit *s, api_submit_cb cb,
               struct core_err *err);

/* The event callback that sends the queued submits (api_new makes it a->submit_ev's). */
void api_submit_flush(evutil_socket_t fd, short what, void *arg);

/* Frees a queued submit (NULL is a no-op). */
void api_pending_submit_free(struct api_pending_submit *p);

/* ---- task_validate.c: what a task's creation must hold, checked before any round trip ---- */

/*
 * Everything of one task object of POST /v1/tasks (kind, input, priority, metadata, routing,
 * deadline, webhook) into sub (borrowed from item, but sub->webhook: caller frees). Returns 0, or
 * the error code with e filled.
 */
int api_validate_task(struct api *a, const char *tenant, const cJSON *item, struct api_submit *sub,
                      struct core_err *e);

/* Validates a client's metadata: an object of at most 16 string values. */
int api_validate_metadata(const cJSON *meta, struct core_err *e);

/* The events a webhook may ask for: names (NULL-terminated), how many of the first are the
 * default when the client names none, and the list as an error message says it. */
struct api_webhook_events {
    const char *const *names;
    size_t n_default;
    const char *listed;
};
extern const struct api_webhook_events api_task_webhook_events;

/*
 * A webhook's {url, events?}: the url passes webhook_url_check (core/webhook_url.h); events are
 * from allowed (default: its defaults). The tenant needs a signing secret (Standard Webhooks
 * deliveries are signed). Returns the normalized {url, events} (caller frees) or NULL with e
 * filled.
 */
cJSON *api_validate_webhook(struct api *a, const char *tenant, const cJSON *w,
                            const struct api_webhook_events *allowed, struct core_err *e);

/* Validates a client's input for kind (messages for chat, prompt for media, ...). */
int api_validate_task_input(enum task_kind kind, const cJSON *input, struct core_err *e);

/* The Idempotency-Key header, or NULL; answers 400 itself and sets *bad when it is malformed. */
const char *api_idempotency_key(struct api *a, struct evhttp_request *req, bool *bad);

/* Answers 503 "store unavailable". */
void api_reply_store_down(struct api *a, struct evhttp_request *req);

/* Answers 404 for a task id. */
void api_reply_not_found(struct api *a, struct evhttp_request *req, const char *id);

/* The HTTP status a synchronous endpoint answers for a finished-but-failed task. */
int api_failed_status(const char *error_json);

/* The request's id (its x-request-id answer header, "req_..."); NULL when none. Borrowed. */
const char *api_request_id(struct evhttp_request *req);
/* Adds "request_id" to an error object (borrowed) when the request has an id. */
void api_error_add_request_id(cJSON *error, struct evhttp_request *req);

/* ---- waiters.c: requests held open until their task finishes ---- */

enum waiter_kind {
    WAIT_TASK,            /* Prefer: wait=N on POST /v1/tasks: the task object */
    WAIT_RESULT,          /* synchronous OpenAI endpoints: the result, or the error */
    WAIT_STREAM,          /* stream: true: SSE chunks as they come, then [DONE] */
    WAIT_STREAM_USAGE,    /* the same with stream_options.include_usage: the usage chunk too */
    WAIT_RESPONSE_STREAM, /* a response task: its typed Responses events as SSE (api_rstream) */
};

/* Subscribes to this process's channel; call once from api_new. Returns 0 or -1. */
int api_waiters_init(struct api *a);

/* Answers every waiter (503) and frees the registry; call from api_free. */
void api_waiters_cleanup(struct api *a);

/*
 * Holds req until task id finishes (or wait_ms passes), then answers by kind. Register before
 * submitting, so the notification cannot come first. Returns 0, or -1 on OOM (nothing held).
 */
int api_wait(struct api *a, struct evhttp_request *req, const char *tenant, const char *id,
             enum waiter_kind kind, int64_t wait_ms);

/*
 * The task of id's waiter (registered with api_wait) is deleted once its answer went out and the
 * task is finished (a response with store: false): nothing of it is left to read or continue.
 * A waiter that times out leaves the task to its retention.
 */
void api_wait_forget(struct api *a, const char *id);

/* Drops the waiter for id without answering (the submit failed and was answered). */
void api_wait_cancel(struct api *a, const char *id);

/* Re-keys a waiter (an idempotent replay named an earlier task) and checks it at once. */
void api_wait_rekey(struct api *a, const char *from_id, const char *to_id);

/* ---- responses.c: the Responses API over response tasks (adapters/responses.h) ---- */
void api_responses_create(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);
void api_responses_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);
void api_responses_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);
void api_responses_delete(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);
void api_responses_input_items(struct api *a, struct evhttp_request *req, const char *tenant,
                               const char *arg);

/* The events a response's webhook may ask for (all four by default). */
extern const struct api_webhook_events api_response_webhook_events;

/*
 * The stored request of a response that continues another (request borrowed; it names
 * previous_response_id): expand calls cb exactly once, from the loop, with the request whose
 * input is the previous response's input items, then its output items, then request's own
 * input (cb takes the new request), or with NULL and the error the client should see (404 for
 * a missing, another tenant's or a non-response id, 400 for one not completed or not stored).
 * c->tenant names the tenant. Returns 0, or a negative code with err filled (cb never runs).
 */
typedef void (*api_expand_cb)(struct api_ctx *c, cJSON *expanded, const struct core_err *err);
int api_response_expand(struct api *a, struct api_ctx *c, const cJSON *request, api_expand_cb cb,
                        struct core_err *err);

/*
 * A response task's object as GET /v1/responses/{id} shows it, from its hash (borrowed), as
 * JSON text: the stored result once completed; else responses_object from the stored request
 * with the status the task's maps to (queued, in_progress; cancelling and cancelled: cancelled;
 * failed and expired: failed, with the task's error as {code, message}). Caller frees; NULL on
 * OOM or an unreadable hash.
 */
char *api_response_text(const char *id, const redisReply *hash);

/* ---- responses_stream.c: a response's typed events going out as server-sent events ---- */

/*
 * One response's events written to a request as `event: <type>` + `data: <json>` pairs, each
 * once and in sequence order, up to the first terminal event (response.completed, .failed,
 * .incomplete), after which the reply ends. Live relays (api/waiters.c) and replays of the
 * stored list (GET ?stream=true) write through the same state.
 */
struct api_rstream {
    struct evhttp_request *req;
    int64_t next_seq; /* the lowest sequence number to write (starting_after + 1) */
    int64_t seen_seq; /* the sequence number expected next: one past the last one seen */
    bool started;     /* the 200 and its headers went out */
    bool done;        /* the reply ended (after a terminal event, an error event, or a close) */
};

/* Sends the 200 and the event-stream headers, once. */
void api_rstream_begin(struct api *a, struct api_rstream *s);

/*
 * Writes one event (JSON text of len bytes, borrowed): each sequence number once, in order, and
 * none before next_seq; a terminal event ends the reply. An event past a gap (a sequence number
 * beyond the next one) is written when !strict, and left to the caller when strict (a live
 * relay then reads the stored list to fill the gap). Returns 1 written, 0 skipped (seen, or
 * before next_seq), 2 a gap (strict), or -1 for an event that cannot be read or one that starts
 * the stream again (response.created at 0 after later events: a new attempt), after which the
 * caller ends the stream with an error.
 */
int api_rstream_event(struct api *a, struct api_rstream *s, const char *json, size_t len,
                      bool strict);

/*
 * The end of a finished task's stream whose events (already written) did not end it, from its
 * response object (JSON text as api_response_text renders it, borrowed; NULL: an error event):
 * every event a stream of it makes when none were seen (a response that did not stream), else
 * only its terminal event (response.completed, .incomplete, or .failed, also for a cancelled
 * one). Ends the reply.
 */
void api_rstream_finish(struct api *a, struct api_rstream *s, const char *response);

/* Writes an `error` event ({type, code, message, param, sequence_number}) and ends the reply. */
void api_rstream_fail(struct api *a, struct api_rstream *s, const char *code, const char *message);

/* Ends the reply (NULL-safe on a stream already done). */
void api_rstream_end(struct api_rstream *s);

/*
 * GET /v1/responses/{id}?stream=true: the stored events after starting_after, then the live ones
 * as the task appends them (the list re-read every 100 ms), until the terminal event, the task
 * ending, limits.sync_wait_s, or the client leaving. The task was not read yet: 404s are
 * answered here.
 */
void api_responses_follow(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *id, int64_t starting_after);

/* Ends every follower's stream (an `error` event "shutting_down"; 503 for one not started) and
 * frees them; from api_stop, while the loop still runs to send it, and again from api_free. */
void api_responses_follow_cleanup(struct api *a);

/* ---- compat.c, videos.c ---- */
void api_compat_chat(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_compat_embeddings(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg);
void api_compat_images(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);
/* POST /v1/images/edits (images_edit.c): the SDK's multipart form as the image kind's edit form,
 * then the path of api_compat_images. */
void api_images_edits(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
void api_models_list(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_models_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
/* The admin view of the models (providers, upstream models, routing): admin key only. */
/* api/admin_keys.c: POST /v1/admin/keys, GET /v1/admin/keys, POST /v1/admin/keys/{id}/revoke
 * (admin keys only). */
void api_admin_keys_create(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg);
void api_admin_keys_list(struct api *a, struct evhttp_request *req, const char *tenant,
                         const char *arg);
void api_admin_keys_revoke(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg);
/*
 * api/budgets.c: a budget as a client writes it ({"limits": [{"window", "max_usd"}], "policy"})
 * checked, in its stored form: {"policy", "limits": [{"window", "ms", "max" (nano-USD),
 * "max_usd"}]} (a tenant's by PUT, a key's by POST /v1/admin/keys). Returns it (caller frees) or
 * NULL with e filled.
 */
cJSON *api_budget_cfg(const struct config *cfg, const cJSON *body, struct core_err *e);
/* A stored budget (JSON text, borrowed) as the client wrote it: {"limits": [{"window",
 * "max_usd"}], "policy"}. Caller frees; NULL when it is not a stored budget. */
cJSON *api_budget_public(const char *stored);
/* api/budgets.c: GET, PUT, DELETE /v1/admin/tenants/{tenant}/budget (arg: the tenant). */
void api_budgets_get(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_budgets_put(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_budgets_delete(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);
void api_admin_models_list(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg);
void api_admin_models_get(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);
void api_videos_create(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);
void api_videos_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_videos_content(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);
void api_tasks_content(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);

/*
 * Sends artifact index of task id from the blob directory with its Content-Type. artifacts is the
 * task's artifacts JSON text (borrowed; NULL when it has none): 404 when it lists no such index or
 * the bytes are not on this server.
 */
void api_send_artifact(struct api *a, struct evhttp_request *req, const char *id,
                       const char *artifacts, long index);

/* ---- artifacts.c: images as the client asked, and the capability URLs that serve them ---- */

/*
 * Sets up the signing key of artifact URLs: blobs.url_key, or the one in Redis, read each time the
 * store connects (it registers a store listener, so call it once the api cannot fail any more).
 */
void api_artifacts_init(struct api *a);

/* Forgets the signing key; call from api_free. */
void api_artifacts_cleanup(struct api *a);

/*
 * Answers a synchronous request whose task (id) completed with result (len bytes, borrowed, not
 * necessarily NUL-terminated): 200 with the result as it is, or, for an images response that
 * refers to kept artifacts (core/artifact_ref.h), rendered as the client asked: signed URLs on
 * the base this request came to, or the bytes as b64_json. A result that cannot be rendered is
 * answered with its error (503 before the signing key is known, 422 past the inline cap).
 */
void api_answer_result(struct api *a, struct evhttp_request *req, const char *id,
                       const char *result, size_t len);

/* What GET /v1/tasks/{id} adds to a task: its place in line now (-1: none) and an eta (-1). */
struct api_task_live {
    int64_t queue_position;
    int64_t eta_s;
};

/*
 * The task object of an HGETALL reply (borrowed) as the API shows it, as JSON text: the one
 * renderer (core/task.h), with an images result rendered from the kept artifacts (as the client
 * asked when inline_ok, else as URLs: lists, where b64 would multiply; left as stored when it
 * cannot be: the task's artifacts[].url still serve the bytes) and GET's live fields (live may be
 * NULL). Caller frees; NULL when the hash is empty (no such task) or out of memory.
 */
char *api_task_text(struct api *a, struct evhttp_request *req, const char *id,
                    const redisReply *hash, bool inline_ok, const struct api_task_live *live);

/* GET /v1/artifacts/<task id>/<index>?expires=&sig=: the bytes, for a valid signature only. */
void api_artifacts_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);

/* ---- files.c (the Files API; its contract with the Batch API is api/files.h) ---- */
void api_files_create(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
void api_files_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_files_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_files_content(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);
void api_files_delete(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);

/*
 * The alias a body's "model" names, when it serves kind; NULL after answering 400 (not an object,
 * no model, wrong kind) or 404 (unknown model).
 */
const struct config_model *api_model_for_kind(struct api *a, struct evhttp_request *req,
                                              const cJSON *body, enum task_kind kind);

/* The OpenAI video object of a video task, from its hash. Caller frees. */
cJSON *api_video_json(const char *id, const redisReply *hash);

struct api_ctx *api_ctx_new(struct api *a, struct evhttp_request *req, const char *tenant);

/* Answers 404 for an object id. */
typedef void (*api_not_found_fn)(struct api *a, struct evhttp_request *req, const char *id);

/* A context for a request about the object id (prefix + 26 base32 characters): NULL after
 * answering 404 through not_found (not such an id) or 500. */
struct api_ctx *api_ctx_for_id(struct api *a, struct evhttp_request *req, const char *tenant,
                               const char *prefix, const char *id, api_not_found_fn not_found);

/* A context for a request about task id (any kind's: "task_…" or "resp_…"): NULL after
 * answering 404 (not a task id) or 500. */
struct api_ctx *api_ctx_for_task(struct api *a, struct evhttp_request *req, const char *tenant,
                                 const char *id);

/* A context with a fresh task id for a request that creates one: NULL after answering 500. */
struct api_ctx *api_ctx_for_new_task(struct api *a, struct evhttp_request *req, const char *tenant);

/* The same for a task of kind: a response's id is "resp_…" (it is the response's id too). */
struct api_ctx *api_ctx_for_new_kind(struct api *a, struct evhttp_request *req, const char *tenant,
                                     enum task_kind kind);

/* The prefix of a new task id of kind: RESPONSES_ID_PREFIX for a response, else TASK_ID_PREFIX. */
const char *api_task_id_prefix(enum task_kind kind);

/* True when alias m serves tasks of kind (a response is served by a chat alias). */
bool api_model_serves(const struct config_model *m, enum task_kind kind);
void api_ctx_free(struct api_ctx *c);

/* Sends body (takes ownership, may be NULL for an empty body) with status. */
void api_reply_json(struct api *a, struct evhttp_request *req, int status, cJSON *body);

/* The same with the body already JSON text (NULL: none); takes text (freed with cJSON_free). */
void api_reply_json_text(struct api *a, struct evhttp_request *req, int status, char *text);

/* Sends the error envelope for e with e->http_status. */
void api_reply_err(struct api *a, struct evhttp_request *req, const struct core_err *e);

/* Shorthand: builds the error and sends it. */
void api_reply_error(struct api *a, struct evhttp_request *req, int code, const char *param,
                     const char *err_code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* What a list endpoint's query may hold: limit (default def, at most max) and after (an id). */
struct api_list_spec {
    long def, max;
    const char *prefix; /* of the ids `after` names; NULL: any task id (task_id_valid) */
    const char *what;   /* "task", "file", ... for the error message */
};

/*
 * A query parameter's value s (NULL: absent, then def) as an integer in [lo, hi] into *v; false
 * after answering 400 naming the parameter.
 */
bool api_query_long(struct api *a, struct evhttp_request *req, const char *name, const char *s,
                    long lo, long hi, long def, long *v);

/*
 * Parses a list request's query into params (the caller clears them with evhttp_clear_headers,
 * also after a failure) and checks limit and after. Returns 0 with *limit and *after (borrowed
 * from params, NULL when absent) set, or -1 after answering 400.
 */
struct evkeyvalq;
int api_list_query(struct api *a, struct evhttp_request *req, struct evkeyvalq *params,
                   const struct api_list_spec *spec, long *limit, const char **after);

/* OpenAI's list page {object: "list", data, first_id, last_id, has_more}; takes data. */
cJSON *api_list_page(cJSON *data, bool has_more);

/*
 * Reads the request body as JSON: enforces the body size and depth limits and parses it.
 * Returns the parsed value (caller frees) and sets *raw and *raw_len to the body bytes (valid while
 * the request lives), or NULL after answering the error itself.
 */
cJSON *api_read_json(struct api *a, struct evhttp_request *req, const char **raw, size_t *raw_len);

/* Handlers: tasks.c */
void api_tasks_create(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
void api_tasks_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_tasks_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_tasks_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);

/* Handlers: health.c */
void api_health_live(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_health_ready(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
/* The Prometheus text, answered to req (the caller checked who may see it). */
void api_metrics_serve(struct api *a, struct evhttp_request *req);
/* True when req carries one of the config's admin keys as its bearer key. */
bool api_admin_authorized(const struct api *a, struct evhttp_request *req);
/* Answers 401 admin_key_required. */
void api_reply_admin_required(struct api *a, struct evhttp_request *req);
/* GET /metrics on the public listener: behind an admin key. */
void api_health_metrics(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);

/*
 * For a route an admin key or a tenant's key may call (auth false in the table): true with
 * *tenant NULL for an admin key (every tenant), or the key's tenant; false after answering 401.
 */
bool api_scope_auth(struct api *a, struct evhttp_request *req, const char **tenant);

/* Handlers: dashboard.c (the operator's dashboard: its static page and its JSON) */
void api_dashboard_static(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);
void api_dashboard_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);
void api_dashboard_task(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);
void api_dashboard_content(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg);

#endif
