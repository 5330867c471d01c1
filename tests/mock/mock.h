/*
 * tests/mock/mock.h — the contract between sluice-mock's files.
 *
 * sluice-mock is one process on one libevent loop: no threads, no blocking calls once the loop
 * runs. All mutable state lives in `struct mock`. A request is matched against the route table
 * (routes.c); provider routes (those with a dialect) are counted, recorded, passed through the
 * fault chain (faults.c) and answered by the route's handler (openai.c, anthropic.c, gemini.c,
 * videos.c, replicate.c, fal.c). Answers that must wait (latency, hang, Prefer: wait) or that
 * stream slowly are parked by reply.c until a timer fires or the client goes away. Provider
 * webhooks (Replicate's, fal's) are timed and POSTed by hooks.c; each dialect writes its own body
 * and signature.
 *
 * A dialect is one `const struct dialect`: how it authenticates and how its errors look. The
 * fault chain, recording and stats work for every route without knowing the dialect.
 */
#ifndef SLUICE_MOCK_H
#define SLUICE_MOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#define MOCK_MAX_BODY (32 * 1024 * 1024)
#define MOCK_MAX_HEADERS (64 * 1024)
#define MOCK_HANG_MS (10 * 60 * 1000)
#define MOCK_RECORD_DEFAULT 50
#define MOCK_RECORD_MAX 100000
#define MOCK_RECORD_BODY_MAX (1024 * 1024) /* bytes of each recorded body kept */
#define MOCK_REPLY_ECHO 64                 /* bytes of the last user message echoed back */
#define MOCK_LISTEN_BACKLOG 65535          /* the kernel clamps it to somaxconn */
#define MOCK_STATUS_MAX 600
#define MOCK_MAX_ROUTES 48
#define MOCK_MAX_CAPTURES 4
#define MOCK_STREAM_MAX_EVENTS 32
#define MOCK_STREAM_PIECES 4              /* a streamed reply text is cut in this many deltas */
#define MOCK_JOB_MS_DEFAULT 2000          /* default duration of an upstream job */
#define MOCK_JOB_MS_MAX 86400000L         /* one day */
#ifndef MOCK_JOB_KEEP_MS                  /* a test build may shorten it */
#define MOCK_JOB_KEEP_MS (10 * 60 * 1000) /* finished jobs are dropped this long after */
#endif
#define MOCK_JOBS_MAX 1000000         /* beyond this many live jobs, submits get 503 */
#define MOCK_HUGE_MAX (1L << 30)      /* huge_body_bytes cap */
#define MOCK_FILLER_BYTES (64 * 1024) /* huge bodies repeat this block by reference */
#define MOCK_PROMPT_KEEP 1024         /* bytes of a job's prompt kept */
#define MOCK_INPUT_KEEP (16 * 1024)   /* bytes of a Replicate input kept, else a marker */
#define MOCK_MAX_N 10                 /* images per request */
#define MOCK_EMBED_DIMS 8             /* default embedding length */
#define MOCK_EMBED_DIMS_MAX 4096
#define MOCK_PNG_SIDE 64            /* blobs: PNG width and height */
#define MOCK_MP4_BYTES 65536        /* blobs: MP4 size */
#define MOCK_VIDEO_INPUTS_KEEP 1000 /* reference images of video submissions remembered */

/* What a fault or handler returns instead of a status: not answered yet, or answered by "never". */
enum { ANSWER_PASS = 0, ANSWER_HANG = 1, ANSWER_RESET = 2 };

struct mock;
struct exchange;

/*
 * A provider dialect: how it authenticates and how its errors look. Each hook writes headers and
 * body into the exchange's response and returns the HTTP status; `auth` returns ANSWER_PASS when
 * the credentials are good. `error` with type NULL picks the dialect's usual type for the status;
 * code is used by dialects that have one (OpenAI), ignored by the others.
 */
struct dialect {
    const char *name;
    const char *request_id_header; /* sent besides x-request-id; NULL for none */
    int (*auth)(struct exchange *x);
    int (*error)(struct exchange *x, int status, const char *type, const char *message,
                 const char *code);
    int (*rate_limited)(struct exchange *x, double reset_s);
    const char *broken_body; /* the malformed switch's 200 body */
};

enum route_flags {
    ROUTE_POLL = 1, /* a job poll or download: faults apply only with faults_on_polls */
};

/*
 * A route: method and path pattern (routes.c: `*` is one segment, `*:suffix` one segment ending
 * in :suffix, `**` one or more segments). dialect NULL marks a control route (no faults, no
 * counting). `name` keys by_route; by_path uses the pattern when it has no wildcard, else name.
 */
struct route {
    enum evhttp_cmd_type method;
    const char *pattern;
    const char *name;
    const struct dialect *dialect;
    unsigned flags;
    int (*handle)(struct exchange *x);
};

struct capture {
    const char *s; /* borrowed from the request path; not NUL-terminated */
    size_t n;
};

struct mock_stream;

/* One request being answered; lives on the stack of on_request. */
struct exchange {
    struct mock *m;
    struct evhttp_request *req;
    const struct route *route;
    const char *body; /* borrowed from the request's input buffer; NULL when empty */
    size_t body_len;
    unsigned long long seq;
    struct capture cap[MOCK_MAX_CAPTURES]; /* the path's wildcards, in order */
    size_t n_caps;
    struct mock_stream *stream; /* set by mock_stream_open: the answer is a chunked stream */
    long hold_ms;               /* extra wait before answering (Replicate's Prefer: wait) */
};

/* The switches that /_mock/config and the command line can change. */
struct mock_config {
    long latency_ms;
    double error_rate;
    long error_status;
    long fail_first;
    double rate_limit_rps;
    long retry_after_s;
    bool hang;
    bool malformed;
    char *error_message; /* owned; NULL: "mock: injected <status>" */
    bool reset;
    long huge_body_bytes;
    bool faults_on_polls;
    long job_ms;
    long stream_chunk_ms;
    char *artifact_url;     /* owned; NULL: Replicate and fal outputs point at /_mock/blob */
    char *content_redirect; /* owned; NULL: OpenAI video content is served, else 302 here */
};

/* A recorded request. blob holds path, query, `name\0value\0` header pairs, then the body. */
struct record {
    char *blob;
    size_t path_len, query_len, headers_len, body_len;
    enum evhttp_cmd_type method;
    bool body_truncated;
    long long at_ms;
};

struct ring {
    struct record *slots;
    size_t cap, next, count;
};

/* The job store (jobs.c): a chained hash table keyed by id. */
struct job;
struct job_store {
    struct job **buckets;
    size_t n_buckets, count;
    unsigned long long next_id;
    struct event *sweep;
};

struct held;

struct mock {
    struct event_base *base;
    struct evhttp *http;
    struct event *sig_term, *sig_int;
    char *api_key;    /* --api-key, or NULL */
    char origin[300]; /* "http://HOST:PORT" of the listener, for absolute URLs */
    struct mock_config config;
    struct mock_config startup; /* what /_mock/reset restores */
    uint64_t seed, rng;
    unsigned long long requests, unmatched, fail_seen, resets;
    unsigned long long by_status[MOCK_STATUS_MAX];
    unsigned long long by_route[MOCK_MAX_ROUTES];
    double tokens, bucket_at; /* rate-limit token bucket, monotonic seconds */
    struct held *held;
    struct mock_stream *streams;
    size_t in_flight;
    long common_ms; /* latency_ms that common_tv was made for */
    const struct timeval *common_tv;
    struct ring ring;
    struct job_store jobs;
    char *filler; /* MOCK_FILLER_BYTES of 'x' for huge_body_bytes; made on first use */
    /* --webhook-secret ("whsec_<base64>"): Replicate predictions created with a loopback
     * `webhook` POST themselves there when they end, signed with it; NULL: never sent */
    char *webhook_secret;
    struct mock_hook *hooks; /* the webhooks waiting for their job's end, any dialect (hooks.c) */
    /* --fal-webhook-key (a 32-byte ED25519 seed): fal requests submitted with a loopback
     * `fal_webhook` POST their result there when they end, signed fal's way; unset: never sent */
    bool has_fal_webhook_key;
    unsigned char fal_webhook_key[32];
    unsigned long long webhooks_sent; /* Replicate's and fal's */
};

/* ---- util.c: output, JSON, text, time ---- */

/* The response body and headers of an exchange. */
struct evbuffer *mock_out_body(struct exchange *x);
void mock_out_header(struct exchange *x, const char *name, const char *value);
/* A request header (case-insensitive name), or NULL. Borrowed. */
const char *mock_in_header(struct exchange *x, const char *name);
/* A query parameter's value copied into buf (not decoded), or NULL when absent. */
const char *mock_query(struct exchange *x, const char *name, char *buf, size_t len);
/* Sends cJSON as the body and frees it. Control endpoints only: not on the hot path. */
int mock_out_json(struct exchange *x, int status, cJSON *json);
/* Appends s as the inside of a JSON string. Bytes >= 0x80 pass through unchanged. */
void mock_json_escape(struct evbuffer *out, const char *s, size_t n);
/* Appends "s" (quoted, escaped), or null when s is NULL. */
void mock_json_string(struct evbuffer *out, const char *s);
/* Parses the body as JSON; NULL when empty or not JSON. Caller frees. */
cJSON *mock_body_json(struct exchange *x);
/* A string member of obj, or fallback. Borrowed. */
const char *mock_json_str(const cJSON *obj, const char *key, const char *fallback);
/* The origin ("http://host:port") absolute URLs in answers use: the Host header when sane. */
void mock_origin(struct exchange *x, char *buf, size_t len);
/* A copy of capture i as a C string in buf (truncated to fit). */
const char *mock_cap(struct exchange *x, size_t i, char *buf, size_t len);

double mock_monotonic_s(void);
int64_t mock_monotonic_ms(void);
int64_t mock_wall_ms(void);
/* "2026-01-01T00:00:00.123000Z" for a Unix ms time. */
void mock_iso8601(char *buf, size_t len, int64_t wall_ms);
/* splitmix64 step: tiny, seedable and reproducible across runs. */
uint64_t mock_mix64(uint64_t x);
double mock_rng_next(struct mock *m);
uint64_t mock_hash(const void *data, size_t n); /* FNV-1a 64 */

/*
 * The mock's chat reply: "mock reply: " and up to 64 bytes of the last user text, cut on a UTF-8
 * boundary. Filled by each dialect's scan of its own message shape.
 */
struct mock_reply {
    char text[sizeof("mock reply: ") - 1 + MOCK_REPLY_ECHO + 1];
    size_t len;
    size_t prompt_bytes; /* every text of the prompt: callers add to it */
    bool echo_full;
};
void mock_reply_init(struct mock_reply *r);
/* Echoes the next piece of the last user message's text. */
void mock_reply_echo(struct mock_reply *r, const char *s, size_t n);
long long mock_tokens(size_t bytes); /* ceil(bytes / 4) */
/* Cuts text into at most `pieces` UTF-8-safe parts: writes the end offsets, returns the count. */
size_t mock_split(const char *s, size_t n, size_t pieces, size_t *ends);
/* Base64 of n bytes appended to out (OpenSSL EVP_EncodeBlock). Returns 0 or -1 on OOM. */
int mock_base64(struct evbuffer *out, const unsigned char *data, size_t n);

/* ---- schema.c ---- */

/*
 * A JSON value that satisfies schema (borrowed; NULL gives a string): every property of an
 * object, one element of an array, the first enum or const value. Caller frees; NULL on OOM.
 */
cJSON *mock_schema_sample(const cJSON *schema);

/* ---- reply.c: sending, holding and streaming answers ---- */

/* Sends a provider answer now, counting it by status. */
void reply_send(struct mock *m, struct evhttp_request *req, int status);
/* Sends a control answer now, uncounted. */
void reply_send_control(struct evhttp_request *req, int status);
/* Sends now: a stream (takes ownership) or the plain output buffer. */
void reply_answer(struct mock *m, struct evhttp_request *req, int status,
                  struct mock_stream *stream);
/*
 * Parks an answer for ms milliseconds (status ANSWER_HANG: never answers, ANSWER_RESET: resets
 * the connection). common: ms is latency_ms, shared by many timers. Takes the stream.
 */
void reply_hold(struct mock *m, struct evhttp_request *req, int status, struct mock_stream *stream,
                long ms, bool common);
/* Frees every parked answer and running stream with its connection (shutdown). */
void reply_cleanup(struct mock *m);

/*
 * Starts a streamed answer: later writes go to the returned buffer, one event at a time, each
 * closed by mock_stream_mark. content_type e.g. "text/event-stream". NULL on OOM.
 */
struct evbuffer *mock_stream_open(struct exchange *x, const char *content_type);
void mock_stream_mark(struct exchange *x);
void mock_stream_free(struct mock_stream *s);

/* ---- routes.c ---- */

extern const struct route mock_routes[];
extern const size_t mock_n_routes;
/* The route for method and path, filling x->cap; NULL when none. */
const struct route *routes_match(struct exchange *x, enum evhttp_cmd_type method, const char *path);
/* The dialect that owns a path prefix (for answers to unmatched paths). */
const struct dialect *routes_dialect_for(const char *path);
/* The key of a route in by_path. */
const char *routes_path_key(const struct route *r);
void routes_on_request(struct evhttp_request *req, void *arg);

/* ---- faults.c ---- */

/* Runs the fault chain; returns ANSWER_PASS when the handler should answer. */
int faults_run(struct exchange *x);
/* retry-after: <retry_after_s>, for dialects' 429 answers. */
void faults_retry_after_header(struct exchange *x);
/* The message of an injected error ("mock: injected 503" unless error_message is set). */
const char *faults_message(struct mock *m, int status, char *buf, size_t len);
/* The rate-limit bucket starts full whenever its rate is (re)set. */
void faults_bucket_refill(struct mock *m);

/* ---- control.c: /_mock endpoints, config, recording ---- */

int control_healthz(struct exchange *x);
int control_stats(struct exchange *x);
int control_config_get(struct exchange *x);
int control_config_set(struct exchange *x);
int control_reset(struct exchange *x);
int control_blob(struct exchange *x);
void control_record(struct mock *m, struct exchange *x, const char *path, const char *query);
void control_ring_clear(struct ring *r);
int config_copy(struct mock_config *dst, const struct mock_config *src);
void config_cleanup(struct mock_config *c);
/*
 * Sets a startup switch from a command-line flag (value NULL for a boolean flag). Returns -1,
 * having said why on stderr, when the value is bad; -1 silently for an unknown flag.
 */
int config_set_flag(struct mock_config *c, const char *flag, const char *value);

/* ---- blobs.c ---- */

/* Appends the deterministic bytes of a blob name; returns its Content-Type, NULL if unknown. */
const char *blob_render(struct evbuffer *out, const char *name);

/* ---- dialects ---- */

extern const struct dialect dialect_openai;
extern const struct dialect dialect_anthropic;
extern const struct dialect dialect_gemini;
extern const struct dialect dialect_replicate;
extern const struct dialect dialect_fal;

int openai_error(struct exchange *x, int status, const char *type, const char *message,
                 const char *code);
/* openai_error with the envelope's `param` (NULL: null) naming the field at fault. */
int openai_error_param(struct exchange *x, int status, const char *type, const char *message,
                       const char *param, const char *code);
int openai_chat(struct exchange *x);
int openai_responses(struct exchange *x); /* responses.c */
int openai_embeddings(struct exchange *x);
int openai_images(struct exchange *x);
/* Image edits (openai.c): POST /v1/images/edits, and the files any edit brought. */
int openai_images_edits(struct exchange *x);
/* Remembers a file an edit brought (route and request from x) for GET /_mock/edits. */
void mock_edit_record(struct exchange *x, const char *field, const unsigned char *bytes,
                      size_t len);
int mock_edits_get(struct exchange *x);
/* The bytes of a "data:image/...;base64,..." URI (caller frees), or NULL when it is none. */
unsigned char *mock_data_uri_decode(const char *uri, size_t *len);
/*
 * Records the data: URIs in obj's fields (strings, or arrays of strings; other URLs are passed
 * over) as an edit's files. Returns 0, or -1 for a data: URI that does not decode.
 */
int mock_edit_uris(struct exchange *x, const cJSON *obj, const char *const *fields, size_t n);
/*
 * A video submission's reference image (input_reference) as a mock endpoint received it: decoded
 * bytes (a data: URI or a file part) or a URL. Recorded, once the job has its id, for GET
 * /_mock/video_inputs (videos.c), so a test can check the exact bytes a video step was given.
 */
struct mock_video_ref {
    bool present;
    unsigned char *bytes; /* owned; NULL for a URL */
    size_t len;
    char content_type[64]; /* "" when the provider's request named none */
    char *url;             /* owned; NULL for bytes */
};
/*
 * Reads s (NULL: absent): a data:image/...;base64 URI is decoded, an http(s) URL kept. Returns 0,
 * or -1 for a data: URI that does not decode (or OOM). r is the caller's to record or clean up.
 */
int mock_video_ref_read(const char *s, struct mock_video_ref *r);
/* Records r (when present) for job of dialect ("openai", "fal", "replicate", "gemini") and frees
 * it. At most MOCK_VIDEO_INPUTS_KEEP, the newest, are kept. */
void mock_video_ref_record(const char *dialect, const char *job, struct mock_video_ref *r);
void mock_video_ref_cleanup(struct mock_video_ref *r);
int mock_video_inputs_get(struct exchange *x);    /* GET /_mock/video_inputs */
int mock_video_inputs_delete(struct exchange *x); /* DELETE /_mock/video_inputs */
int videos_create(struct exchange *x);
int videos_get(struct exchange *x);
int videos_content(struct exchange *x);
int videos_delete(struct exchange *x);
int anthropic_messages(struct exchange *x);
int gemini_generate(struct exchange *x);
int gemini_stream(struct exchange *x);
int gemini_predict_long_running(struct exchange *x); /* Veo, as JOB_VIDEO jobs */
int gemini_operation_get(struct exchange *x);
int gemini_file_download(struct exchange *x);
int replicate_create_model(struct exchange *x);
int replicate_create(struct exchange *x);
int replicate_get(struct exchange *x);
/* Drops the webhooks still waiting (at exit). */
void replicate_hooks_cleanup(struct mock *m);
/* Drops fal's webhooks still waiting (at exit). */
void fal_hooks_cleanup(struct mock *m);
/* --fal-webhook-key's text (64 hex digits, or base64/base64url of 32 bytes) into seed (32 bytes).
 * 0 or -1. */
int fal_webhook_key_parse(const char *text, unsigned char *seed);
int replicate_cancel(struct exchange *x);
int fal_submit(struct exchange *x);
int fal_status(struct exchange *x);
int fal_result(struct exchange *x);
int fal_cancel(struct exchange *x);

/* ---- jobs.c: OpenAI videos, Replicate predictions and fal requests ---- */

enum job_kind { JOB_VIDEO, JOB_REPLICATE, JOB_FAL };
enum job_phase { PHASE_QUEUED, PHASE_RUNNING, PHASE_DONE, PHASE_FAILED, PHASE_CANCELED };

struct job {
    struct job *next; /* hash chain */
    char id[48];
    enum job_kind kind;
    bool fail;  /* the prompt asked for "mock:fail" */
    bool video; /* the output is a video */
    int n;      /* outputs */
    int64_t created_wall_ms, created_mono_ms, canceled_mono_ms; /* canceled: -1 when not */
    long duration_ms;
    char *model;   /* owned */
    char *version; /* owned; may be NULL */
    char *prompt;  /* owned; may be NULL */
    char *input;   /* owned JSON text; may be NULL */
    char seconds[12], size[24];
};

/* A job as of a moment: its phase, progress 0..100 and transition times (wall ms, -1 = none). */
struct job_view {
    enum job_phase phase;
    int progress;
    int queue_position;
    int64_t started_wall_ms, ended_wall_ms;
};

int jobs_init(struct mock *m);
void jobs_cleanup(struct mock *m);
/* A new job with a fresh id for kind, started now with config.job_ms; NULL when full or OOM. */
struct job *jobs_add(struct mock *m, enum job_kind kind, const char *model);
struct job *jobs_find(struct mock *m, enum job_kind kind, const char *id, size_t id_len);
void jobs_remove(struct mock *m, struct job *j);
void jobs_view(const struct job *j, int64_t mono_ms, struct job_view *v);
/* Sets a malloc'd copy of at most max bytes of s (cut on a UTF-8 boundary); -1 on OOM. */
int jobs_set(char **field, const char *s, size_t max);
/* True when s contains "mock:fail". */
bool jobs_prompt_fails(const char *s);

/* ---- hooks.c: provider webhooks (Replicate's `webhook`, fal's `fal_webhook`) ---- */

/*
 * A dialect's part of a webhook: writes the body for ended job j (its URLs under origin) into
 * body and adds the dialect's signature headers to headers (Host and Content-Type are added for
 * it). All arguments borrowed. 0, or -1 to send nothing (no key, OpenSSL failed).
 */
typedef int (*mock_hook_write_fn)(struct mock *m, const struct job *j, const char *origin,
                                  struct evbuffer *body, struct evkeyvalq *headers);
/*
 * Arms a webhook of job j for url (already percent-decoded): http to a loopback host only (a
 * test's sluice), POSTed once with write_body's body and headers a little after j ends. 0; 1 when
 * url is not a loopback http URL; -1 on OOM.
 */
int mock_hook_add(struct exchange *x, const struct job *j, const char *url,
                  mock_hook_write_fn write_body);
/* Drops the webhooks of kind still waiting (at exit). */
void mock_hooks_cleanup(struct mock *m, enum job_kind kind);

#endif
