/*
 * worker/internal.h — what the worker's files share: the worker and job structs. Not for other
 * roles.
 *
 * worker.c runs the loop (claims, heartbeats, outcomes, stop); exec.c runs one job (an upstream
 * call, a stream, a poll, an upstream cancel; a response task's call or typed event stream);
 * artifacts.c keeps the bytes of images and videos.
 */
#ifndef SLUICE_WORKER_INTERNAL_H
#define SLUICE_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "adapters/responses.h"
#include "core/config.h"
#include "core/sse.h"
#include "core/store.h"
#include "core/task.h"
#include "core/txn_worker.h"
#include "worker/http.h"
#include "worker/worker.h"

/* CALLING: upstream work in flight; REPORT_QUEUED: the outcome waits for the end of this loop
 * turn, to go to Redis with the turn's other outcomes in one FINISH call; REPORTING: that call is
 * in flight; REPORT_WAIT: Redis could not take it, the tick sends it again. */
enum job_state { JOB_CALLING, JOB_REPORT_QUEUED, JOB_REPORTING, JOB_REPORT_WAIT };

struct job {
    struct worker *w;
    struct job *prev, *next;
    enum job_state state;
    enum txn_mode mode;      /* a call (a queued task's attempt) or a poll (of a parked task) */
    struct job *report_next; /* the worker's queue of outcomes for this loop turn */
    bool dead;               /* finished, but a heartbeat still refers to it */
    int hb_refs;             /* heartbeats in flight that list this job */

    /* What the claim handed over. */
    char id[48];
    int64_t fence;
    char tenant[72];
    int attempts;
    int max_attempts;
    bool cancelling; /* claimed as a poll of a task the client cancelled (or that expired) */
    bool stream;
    char *model;
    enum task_kind kind; /* TASK_KIND_COUNT: a kind this build does not know */
    char *input_text;
    char *up_id;        /* the upstream job's id, for polls */
    char *job_text;     /* the dialect's saved job state, for polls */
    char *reply_to;     /* the API process waiting on this task, for streams */
    int64_t created_ms; /* when the task was created (Unix ms; 0 unknown) */
    int dep_index;

    /* Resolved when the job starts. */
    cJSON *input;
    cJSON *job_json;
    const struct config_deployment *dep;
    const struct adapter *adapter;
    struct adapter_target target;
    struct adapter_call call;
    struct http_call *http;
    int64_t started_mono;
    int64_t started_us;
    int64_t started_wall_ms;

    /* Streaming chat. */
    struct sse_parser *sse;
    void *stream_state;
    struct adapter_accum *accum;
    long chunks_sent;
    bool stream_done;
    struct core_err stream_err;
    bool stream_failed;
    bool want_usage; /* the client asked for its stream's usage chunk */

    /* Streaming a response task: the Responses API's typed events (adapters/responses.h), each
     * published to reply_to and appended to the task's events list ({tag}:ev:<id>). */
    struct responses_stream *rstream;
    long events_out;     /* events of this attempt sent out (published and appended) */
    int64_t events_size; /* their bytes, capped (exec.c: EXEC_EVENTS_FACTOR) */

    /* Artifacts being kept (DONE media results). */
    struct adapter_result done;
    size_t artifact_next;
    int artifact_fd;     /* the temporary file being written, -1 when none */
    char *artifact_tmp;  /* its name ("" when none); renamed to artifact_path once complete */
    char *artifact_path; /* the artifact's final path */
    int64_t artifact_bytes;
    int artifact_errno; /* a download's write failed with this errno (0: none) */
    cJSON *artifacts_json;

    /* The outcome: what FINISH writes (worker.c turns it into a struct txn_outcome). */
    enum txn_outcome_kind outcome;
    char *result, *usage, *provider, *cost, *error, *artifacts;
    char *out_up_id, *out_job;
    int progress;
    int queue_position;
    int64_t retry_at_ms;
    int64_t poll_at_ms;
    enum txn_detail detail; /* completed: how the result ended (a response that is incomplete) */

    /* What the attempt taught about the deployment (FINISH updates its shared state). */
    enum txn_class class;
    int http_status;
    double latency_ms;      /* -1 when no call was made; sub-millisecond precision */
    int64_t pause_until_ms; /* 0 = no pause */
    int64_t remaining_req;  /* -1 unknown */
    int64_t remaining_tok;  /* -1 unknown */
    int64_t tokens_used;    /* -1 unknown */
    bool avoid;             /* steer the retry to another deployment */
    char err_code[64];      /* for the attempt record */
    char err_message[160];
};

struct webhooks;

#define WORKER_MAX_WARNED_MODELS 256 /* aliases whose missing routing is logged once each */

struct worker {
    bool routing_warned[WORKER_MAX_WARNED_MODELS]; /* logged: the alias's routing was missing */
    struct event_base *base;
    const struct config *cfg;
    struct store *store;
    struct store *wake;
    struct http_client *http;

    struct job *jobs; /* every job held, any state */
    size_t n_jobs;
    bool claiming;
    long claim_asked;
    bool woken; /* a wake arrived while a claim was in flight: that claim may have missed it */
    bool idle;  /* the last claim found nothing to do */
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
    int64_t stop_deadline_mono;

    struct event *tick;
    struct event *heartbeat;
    struct event *grace;
    struct event *capacity; /* wakes the claim loop when a deployment's budget returns */
    struct event *report;   /* sends the loop turn's queued outcomes (activated, never added) */
    struct job *report_head, *report_tail;
    /* The scripts' arguments, reused by every call (reset, never freed until the worker is). */
    struct txn_args claim_args;
    struct txn_args heartbeat_args;
    struct txn_args report_args;
    struct txn_outcome *report_out; /* one FINISH call's outcomes (WORKER_REPORT_BATCH) */
    struct txn_attempt *report_att; /* and their attempt records */
    struct webhooks *webhooks;

    int64_t next_sweep_mono;
    uint64_t completed, failed, retried, released, parked;
};

/* exec.c: starts the job's upstream work; ends in worker_job_report (directly or later). */
void exec_start(struct job *j);

/* exec.c: stops whatever upstream work the job has in flight (no callback follows). */
void exec_abort(struct job *j);

/* exec.c: records a failed attempt and reports it (retry, park again, or failed). */
void exec_fail(struct job *j, const struct core_err *e);

/* exec.c: reports the job completed with res (result, usage, upstream id; borrowed). */
void exec_complete(struct job *j, const struct adapter_result *res);

/* exec.c: frees what exec_* allocated. */
void exec_cleanup(struct job *j);

/* artifacts.c: keeps the bytes of j->done's artifacts in the blob directory, then reports the
 * job completed (or fails it). */
void artifacts_keep(struct job *j);

/* artifacts.c: stops an artifact download in flight and removes its partial file. */
void artifacts_abort(struct job *j);

/* artifacts.c: deletes artifact folders older than the retention period (plus an hour), looking
 * at no more than max_entries folders, so a huge directory costs a bounded slice per call. */
void artifacts_sweep(struct worker *w, int max_entries);

/* webhooks.c: the delivery loop (its own queue, on the worker's loop and HTTP client). */
struct webhooks *webhooks_new(struct worker *w);
void webhooks_stop(struct webhooks *wh);
void webhooks_free(struct webhooks *wh);

/*
 * inputs.c: replaces every input-file token ("sluice-input:<k>:<type>", core/blobs.h) in input
 * (task id's parsed input, modified in place) with a data: URI of the file's bytes. 0, or -1 with e
 * set (a missing or unreadable file: CORE_EUNPROCESSABLE; past blobs.max_bytes: CORE_ETOOLARGE).
 */
int inputs_inline(struct worker *w, const char *id, cJSON *input, struct core_err *e);

/* worker.c: writes the job's outcome with the FINISH script (and keeps it until Redis took it). */
void worker_job_report(struct job *j);

/* worker.c: the provider's poll interval for the job's deployment, in ms. */
int64_t worker_poll_interval(const struct job *j);

/* worker.c: exponential backoff with jitter, never shorter than retry_after_ms. */
int64_t worker_backoff_ms(const struct worker *w, int attempts, int64_t retry_after_ms);

#endif
