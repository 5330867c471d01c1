/*
 * core/txn_task.h — the API's task transactions: SUBMIT (core/lua/submit.lua), GET (get.lua),
 * LIST (list.lua), CANCEL (cancel.lua), DELETE (delete.lua) and METRICS (metrics.lua) (see
 * core/txn.h for the layer).
 *
 * Each script's argument layout and reply layout are written here and nowhere else in C: per
 * script a pure builder (a typed struct in, a struct txn_args out, keys named from a keyspace), a
 * pure parser (a redisReply in, a typed struct out) and the asynchronous call that joins them on a
 * store. The API calls the typed functions; the script tests can call the builders and parsers.
 *
 * Everything a parser returns that points into a reply (ids, task hashes, names) is borrowed from
 * that reply: valid while it is, which for an asynchronous call's callback is the callback's
 * duration. Copy out what you keep.
 */
#ifndef SLUICE_CORE_TXN_TASK_H
#define SLUICE_CORE_TXN_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/task.h"
#include "core/txn.h"

/* ---- SUBMIT: create queued tasks, up to TXN_SUBMIT_MAX a call ---------------------------------
 */

/* Tasks per SUBMIT call at most (the API sends a loop turn's submits, API_SUBMIT_BATCH of them). */
#define TXN_SUBMIT_MAX 64

/*
 * One task to create. Every string is borrowed until the call is sent (txn_submit returns); NULL
 * for an optional one means none.
 */
struct txn_submit {
    const char *id;
    const char *tenant;
    enum task_kind kind;
    const char *model; /* the alias */
    enum task_priority prio;
    int64_t now_ms; /* created */
    int64_t max_attempts;
    const char *input;    /* the request, JSON text */
    const char *metadata; /* JSON text, or NULL */
    /* Idempotency-Key: the SHA-256 hex of the key (NULL: none) and of the request body (read only
     * with a key); the key is remembered for idem_ttl_ms */
    const char *idem_hash;
    const char *body_hash;
    int64_t idem_ttl_ms;
    const char *reply_to;  /* the channel of the API process that waits for it, or NULL */
    bool stream;           /* a streamed chat: the worker publishes its chunks on reply_to */
    int64_t deadline_ms;   /* when it expires unfinished (Unix ms), or 0: never */
    int64_t est_tokens;    /* the token estimate taken from the budgets at claim time */
    const char *routing;   /* the task's {strategy, max_cost}, JSON text, or NULL */
    const char *webhook;   /* its {url, events}, JSON text, or NULL */
    const char *batch_id;  /* the batch whose line it is, or NULL */
    const char *custom_id; /* the line's custom_id (only with batch_id), or NULL */
    /* the pipeline whose step it runs, or NULL (then its id is derived from the pipeline, the
     * step and its place in the step, and a submit sent again finds it: DUP), and the step id */
    const char *pipeline_id;
    const char *step;
    /* the tenant's quotas: queued tasks, stored bytes, artifact bytes (image and video tasks) */
    int64_t max_queued;
    int64_t max_stored_bytes;
    int64_t max_artifact_bytes;
    /* the response cache's argument (api/cache.h api_cache_arg: "<r|w> <key> <ttl ms> <max
     * bytes>"), or NULL: the task does not use the cache */
    const char *cache;
    /* the id of the key that submitted the task (api/keys.h: a Redis key's id, or
     * "cfg:<tenant>:<index>"), or NULL: none (a batch's or a pipeline's runner) */
    const char *key_id;
};

/* What SUBMIT did with one task. */
enum txn_submit_result {
    TXN_SUBMIT_OK,        /* created */
    TXN_SUBMIT_DUP,       /* it exists already (idempotent replay, or a batch line sent again) */
    TXN_SUBMIT_CONFLICT,  /* the Idempotency-Key was used with another body */
    TXN_SUBMIT_QUOTA,     /* the tenant has max_queued tasks queued */
    TXN_SUBMIT_STORAGE,   /* the input would pass the tenant's max_stored_bytes */
    TXN_SUBMIT_ARTIFACTS, /* the tenant keeps max_artifact_bytes of images and videos already */
    TXN_SUBMIT_BUDGET,    /* the tenant's budget (policy reject) is used up: count = ms to reset */
};

/* One task's answer. dup_id and dup_hash are borrowed from the reply. */
struct txn_submitted {
    enum txn_submit_result result;
    int64_t count;              /* QUOTA: tasks queued; STORAGE / ARTIFACTS: bytes held; else 0 */
    const char *dup_id;         /* DUP: the existing task's id; else NULL */
    const redisReply *dup_hash; /* DUP: its hash (HGETALL pairs, core/task.h); else NULL */
};

/* Starts a SUBMIT call in a (reset first): its header, keys from ks (borrowed). */
void txn_submit_begin(struct txn_args *a, const struct keyspace *ks);

/*
 * Appends task t's SUBMIT_GROUP arguments (core/scripts.h) to a call begun by txn_submit_begin.
 * 0; CORE_ENOMEM, or CORE_EINVAL for a tenant too long for a key (then a must not be sent).
 */
int txn_submit_add(struct txn_args *a, const struct keyspace *ks, const struct txn_submit *t);

/* How many tasks the call in a holds. */
size_t txn_submit_count(const struct txn_args *a);

/*
 * Parses SUBMIT's reply for n tasks into out[0..n-1]. 0, or -1 for a reply that is not n answers
 * (then out is not to be read).
 */
int txn_submit_parse(const redisReply *reply, size_t n, struct txn_submitted *out);

/*
 * SUBMIT's callback: res[0..n-1] are the tasks' answers in the order they were added (borrowed for
 * the call) and err NULL; or res NULL and err says why (the store's error — the call may have run
 * — or CORE_EINTERNAL for a reply txn_submit_parse refused).
 */
typedef void (*txn_submit_cb)(const struct txn_submitted *res, size_t n, const struct core_err *err,
                              void *arg);

/*
 * One SUBMIT call in flight, in the caller's storage (so the accept path allocates nothing for
 * it): filled by txn_submit, to be kept until the callback runs, not read by the caller.
 */
struct txn_submit_call {
    txn_submit_cb cb;
    void *arg;
    size_t n;
};

/*
 * Sends the SUBMIT call built in a (txn_submit_begin + 1 to TXN_SUBMIT_MAX txn_submit_add; a may
 * be reset or freed once this returns) on s. 0 and cb is called exactly once; or a negative
 * CORE_E* code (CORE_EINVAL for a call of no task or too many) and cb is never called.
 */
int txn_submit(struct store *s, const struct txn_args *a, struct txn_submit_call *call,
               txn_submit_cb cb, void *arg);

/* ---- GET: a task, with its place in line while queued -------------------------------------- */

/* GET's answer: hash borrowed from the reply. */
struct txn_got {
    const redisReply *hash; /* HGETALL pairs; no elements when there is no such task */
    int64_t queue_position; /* tasks ahead of it, or -1 unknown (not queued, or no estimate) */
    int64_t eta_s;          /* seconds until it starts, or -1 unknown */
};

/* Builds the GET of task id (borrowed until sent) into a (reset first). 0 or CORE_ENOMEM. */
int txn_get_build(struct txn_args *a, const struct keyspace *ks, const char *id);

/* Parses a GET reply. 0, or -1 for a reply that is not one. */
int txn_get_parse(const redisReply *reply, struct txn_got *out);

/* GET's callback: t parsed (borrowed for the call) and err NULL; or t NULL and err says why. */
typedef void (*txn_get_cb)(const struct txn_got *t, const struct core_err *err, void *arg);

/*
 * Builds the GET of id into a (the caller's scratch, reset by every call; free to reuse once this
 * returns) and sends it on s. 0 and cb is called exactly once; or a negative CORE_E* code and cb
 * is never called.
 */
int txn_get(struct store *s, struct txn_args *a, const char *id, txn_get_cb cb, void *arg);

/* ---- LIST: a page of a tenant's tasks, newest first ---------------------------------------- */

/* One LIST call. Strings borrowed until sent. */
struct txn_list {
    const char *tenant;
    bool by_status;          /* only tasks in status */
    enum task_status status; /* read when by_status */
    const char *after;       /* the id to go on after (a cursor), or NULL: the first page */
    int64_t limit;           /* tasks on the page at most */
    int64_t scan_cap;        /* index entries looked at at most, so a filter stays bounded */
};

/* LIST's answer; read the tasks with txn_listed_task. Borrowed from the reply. */
struct txn_listed {
    bool bad_cursor;    /* `after` names no task of the list: nothing else is set */
    bool has_more;      /* more entries follow the cursor */
    const char *cursor; /* the last id looked at ("" none): where a page that found nothing
                         * lets the client go on */
    size_t n;           /* tasks on the page */
    const redisReply *reply;
};

/* Builds p's LIST into a (reset first). 0 or CORE_ENOMEM. */
int txn_list_build(struct txn_args *a, const struct keyspace *ks, const struct txn_list *p);

/* Parses a LIST reply. 0, or -1 for a reply that is not one. */
int txn_list_parse(const redisReply *reply, struct txn_listed *out);

/* Task i (< l->n) of the page, newest first: its id and hash, borrowed like l. */
void txn_listed_task(const struct txn_listed *l, size_t i, const char **id,
                     const redisReply **hash);

/* LIST's callback: l parsed (borrowed for the call) and err NULL; or l NULL and err says why. */
typedef void (*txn_list_cb)(const struct txn_listed *l, const struct core_err *err, void *arg);

/* Builds p into a (the caller's scratch) and sends it on s; the contract of txn_get. */
int txn_list(struct store *s, struct txn_args *a, const struct txn_list *p, txn_list_cb cb,
             void *arg);

/* ---- CANCEL: a client (or a batch) cancels a task ----------------------------------------- */

/* One CANCEL call. Strings borrowed until sent. */
struct txn_cancel {
    const char *id;
    const char *tenant; /* a task of another tenant is not found */
    int64_t now_ms;
    int64_t retention_ms; /* a cancelled task's retention (it starts now) */
};

/* What CANCEL did. */
enum txn_cancel_result {
    TXN_CANCEL_CANCELLED,  /* it was queued: cancelled now */
    TXN_CANCEL_CANCELLING, /* it is in progress: its worker cancels it (or was already asked) */
    TXN_CANCEL_CONFLICT,   /* it is finished already (status says how) */
    TXN_CANCEL_NOTFOUND,   /* no such task of this tenant */
};

/* CANCEL's answer. hash borrowed from the reply. */
struct txn_cancelled {
    enum txn_cancel_result result;
    enum task_status status; /* the task's status now (not NOTFOUND) */
    const redisReply *hash;  /* the task now, HGETALL pairs; NULL for NOTFOUND */
};

/* Builds p's CANCEL into a (reset first). 0 or CORE_ENOMEM. */
int txn_cancel_build(struct txn_args *a, const struct keyspace *ks, const struct txn_cancel *p);

/* Parses a CANCEL reply. 0, or -1 for a reply that is not one. */
int txn_cancel_parse(const redisReply *reply, struct txn_cancelled *out);

/* CANCEL's callback: c parsed (borrowed for the call) and err NULL; or c NULL and err says why. */
typedef void (*txn_cancel_cb)(const struct txn_cancelled *c, const struct core_err *err, void *arg);

/* Builds p into a (the caller's scratch) and sends it on s; the contract of txn_get. */
int txn_cancel(struct store *s, struct txn_args *a, const struct txn_cancel *p, txn_cancel_cb cb,
               void *arg);

/* ---- DELETE: a client deletes a finished task --------------------------------------------- */

/* One DELETE call. Strings borrowed until sent. */
struct txn_delete {
    const char *id;
    const char *tenant; /* a task of another tenant is not found */
};

/* What DELETE did. */
enum txn_delete_result {
    TXN_DELETE_DELETED,  /* gone: its hash, its events list, its place in the tenant's list */
    TXN_DELETE_NOTFOUND, /* no such task of this tenant */
    TXN_DELETE_CONFLICT, /* not terminal (cancel it first), or held by its batch until the batch's
                            output is written (terminal, see status) */
};

/* DELETE's answer. */
struct txn_deleted {
    enum txn_delete_result result;
    enum task_status status; /* CONFLICT: the task's status (TASK_QUEUED for another answer) */
};

/*
 * Builds p's DELETE into a (reset first). The task's stored and artifact bytes and its status
 * gauge are given back, and its artifacts' folder removed, by the scheduler's next TICK (the
 * sweep, as at the end of the retention: core/lua/delete.lua says how). 0 or CORE_ENOMEM.
 */
int txn_delete_build(struct txn_args *a, const struct keyspace *ks, const struct txn_delete *p);

/* Parses a DELETE reply. 0, or -1 for a reply that is not one. */
int txn_delete_parse(const redisReply *reply, struct txn_deleted *out);

/* DELETE's callback: d parsed (borrowed for the call) and err NULL; or d NULL and err says why. */
typedef void (*txn_delete_cb)(const struct txn_deleted *d, const struct core_err *err, void *arg);

/* Builds p into a (the caller's scratch) and sends it on s; the contract of txn_get. */
int txn_delete(struct store *s, struct txn_args *a, const struct txn_delete *p, txn_delete_cb cb,
               void *arg);

/* ---- METRICS: what /metrics shows from Redis ---------------------------------------------- */

/* A deployment's circuit breaker. */
enum txn_breaker { TXN_BREAKER_CLOSED, TXN_BREAKER_HALF, TXN_BREAKER_OPEN };

/* One deployment's live state (its {sl}:dep:<alias>:<i> hash). Strings borrowed from the reply. */
struct txn_dep_state {
    const char *alias;
    long index;
    const char *requests; /* the request bucket's level as stored ("" never refilled) */
    const char *tokens;   /* the token bucket's level as stored ("" never refilled) */
    int64_t in_flight;    /* calls in flight */
    enum txn_breaker breaker;
    int64_t paused_until_ms; /* a provider's pause (0 none; in the past: over) */
    bool has_latency;
    double latency_ms; /* the latency EWMA, when has_latency */
};

/* METRICS' answer: the counters, per-deployment state and set sizes. Borrowed from the reply. */
struct txn_metrics {
    size_t n_stats;          /* counters and gauges: read them with txn_metrics_stat */
    size_t n_deps;           /* deployments: read them with txn_metrics_dep */
    int64_t delayed;         /* retries waiting for their backoff */
    int64_t leased;          /* tasks claimed by a worker */
    int64_t parked;          /* long-running tasks waiting for their next poll */
    const redisReply *stats; /* the stats hash, HGETALL pairs */
    const redisReply *deps;  /* the deployments */
    size_t n_budgets;        /* budgets' current windows: read them with txn_metrics_budget */
    const redisReply *budgets;
};

/* A budget's current window as METRICS reads it. Borrowed from the reply. */
struct txn_budget_state {
    const char *subject; /* "t:<tenant>" or "k:<key id>" */
    const char *window;  /* hour, day, month */
    int64_t max_nano, used_nano;
};

/* Budget window i (< m->n_budgets) into out, borrowed like m. */
void txn_metrics_budget(const struct txn_metrics *m, size_t i, struct txn_budget_state *out);

/* Starts a METRICS call in a (reset first). */
void txn_metrics_begin(struct txn_args *a);

/* Asks for the n_deployments deployments of alias (borrowed until sent). */
void txn_metrics_add(struct txn_args *a, const char *alias, size_t n_deployments);

/* Parses a METRICS reply. 0, or -1 for a reply that is not one. */
int txn_metrics_parse(const redisReply *reply, struct txn_metrics *out);

/* Counter i (< m->n_stats) of the stats hash: its name ("accepted", "status|queued", ... the
 * fields the scripts write) and value, borrowed like m. */
void txn_metrics_stat(const struct txn_metrics *m, size_t i, const char **name, const char **value);

/* Deployment i (< m->n_deps) into out, borrowed like m. */
void txn_metrics_dep(const struct txn_metrics *m, size_t i, struct txn_dep_state *out);

/* METRICS' callback: m parsed (borrowed for the call) and err NULL; or m NULL and err says why. */
typedef void (*txn_metrics_cb)(const struct txn_metrics *m, const struct core_err *err, void *arg);

/* Sends the METRICS call built in a (txn_metrics_begin + txn_metrics_add per alias; a may be
 * reset once this returns) on s. 0 and cb is called exactly once; or a negative CORE_E* code and
 * cb is never called. */
int txn_metrics(struct store *s, const struct txn_args *a, txn_metrics_cb cb, void *arg);

#endif
