/*
 * core/txn_worker.h — a worker's transactions (see core/txn.h for the layer): CLAIM
 * (core/lua/claim.lua) leases units of work, EXTEND (core/lua/extend.lua) is the heartbeat of
 * the leases held, FINISH (core/lua/finish.lua) writes the outcomes of attempts, fenced.
 *
 * The three scripts' argument and reply layouts are written here and nowhere else in C: per
 * script a pure builder (txn_*_build: structs in, a struct txn_args out, the keys named from a
 * keyspace), a pure parser (txn_*_parse: a redisReply in, structs out) and the call that joins
 * them on a store (txn_claim, txn_extend, txn_finish: 0 and the callback is called exactly once,
 * or a negative CORE_E* code and it is never called). The builders and parsers need no store and
 * no loop, so a synchronous test can drive the scripts with them.
 */
#ifndef SLUICE_CORE_TXN_WORKER_H
#define SLUICE_CORE_TXN_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/task.h"
#include "core/txn.h"

/*
 * The closed sets of the worker's scripts. Each has one name table in txn_worker.c (the names
 * are the scripts' words); *_name of a value out of range is "", *_parse of an unknown name (or
 * NULL) is -1.
 */

/* The outcome a worker reports of an attempt (FINISH's outcome argument; finish.lua says what
 * each does). */
enum txn_outcome_kind {
    TXN_OUTCOME_COMPLETED,
    TXN_OUTCOME_FAILED,
    TXN_OUTCOME_RETRY,
    TXN_OUTCOME_RELEASE,
    TXN_OUTCOME_PARK,
    TXN_OUTCOME_COUNT
};
const char *txn_outcome_name(enum txn_outcome_kind o);
int txn_outcome_parse(const char *name);

/*
 * What FINISH applied for one outcome: the outcome reported, or what the task's state made of
 * it (a retry without attempts left is failed; any outcome but park on a cancelling task is
 * cancelled, or expired when its deadline caused the cancel), or stale (the attempt is no longer
 * current: nothing was written). UNKNOWN: the reply did not say (never a name).
 */
enum txn_applied {
    TXN_APPLIED_COMPLETED,
    TXN_APPLIED_FAILED,
    TXN_APPLIED_RETRY,
    TXN_APPLIED_RELEASE,
    TXN_APPLIED_PARK,
    TXN_APPLIED_CANCELLED,
    TXN_APPLIED_EXPIRED,
    TXN_APPLIED_STALE,
    TXN_APPLIED_UNKNOWN
};
const char *txn_applied_name(enum txn_applied a);
int txn_applied_parse(const char *name);

/*
 * What an attempt taught about its deployment (FINISH moves the breaker and the latency by it):
 * ok (an answer), fail (the provider failed: counts against the breaker), rate (a 429/529),
 * client (refused as the caller's fault), none (no call was made: a poll, or refused before it).
 */
enum txn_class { TXN_CLASS_OK, TXN_CLASS_FAIL, TXN_CLASS_RATE, TXN_CLASS_CLIENT, TXN_CLASS_NONE };
const char *txn_class_name(enum txn_class c);
int txn_class_parse(const char *name);

/*
 * How a completed outcome's result ended, besides completing (FINISH stores it on the task as
 * field `rstatus`, and the terminal transition names the webhook event by it): none, or
 * incomplete (a response task whose response stopped short: its object's status "incomplete",
 * e.g. max_output_tokens reached; the event is response.incomplete). NONE's name is "".
 */
enum txn_detail { TXN_DETAIL_NONE, TXN_DETAIL_INCOMPLETE, TXN_DETAIL_COUNT };
const char *txn_detail_name(enum txn_detail d);
int txn_detail_parse(const char *name);

/* A claimed unit: a queued task's upstream call, or a poll of a parked long-running task. */
enum txn_mode { TXN_MODE_CALL, TXN_MODE_POLL };
const char *txn_mode_name(enum txn_mode m);
int txn_mode_parse(const char *name);

/*
 * EXTEND's answer for one held attempt: held ("ok": the lease is pushed), cancelling (the client
 * cancelled or the deadline passed: stop and finish it), lost (the attempt is no longer current:
 * drop it). UNKNOWN: the reply did not say (never a name).
 */
enum txn_lease { TXN_LEASE_HELD, TXN_LEASE_CANCELLING, TXN_LEASE_LOST, TXN_LEASE_UNKNOWN };
const char *txn_lease_name(enum txn_lease l);
int txn_lease_parse(const char *name);

/* ---- CLAIM ------------------------------------------------------------------------------- */

/* One CLAIM call's parameters. no_route_error is borrowed until the call is sent. */
struct txn_claim {
    int64_t now_ms;
    int64_t lease_ms;  /* a claimed unit's lease */
    int64_t max_units; /* take at most this many units (1 to 1000) */
    uint32_t seed;     /* the script's random seed (the weighted strategy's draw) */
    int64_t burst_ms;  /* a deployment's buckets hold this many ms of its rpm and tpm */
    double pace;       /* the share of a deployment's rpm and tpm used (sent with 3 decimals) */
    const char *no_route_error; /* error JSON of a task no deployment's price admits */
    int64_t retention_ms;       /* a finished task's retention (such a task finishes here) */
};

/*
 * One claimed unit, as the script handed it over. The strings are borrowed from the reply (for
 * txn_claim's callback: the callback's duration) and never NULL (a field the reply lacks is "").
 */
struct txn_claimed {
    const char *id;
    int64_t fence;    /* the attempt's fencing token: FINISH and EXTEND send it back */
    int attempts;     /* this one included (0 when absent) */
    int max_attempts; /* 1 when absent */
    const char *tenant;
    const char *model;   /* the alias */
    enum task_kind kind; /* TASK_KIND_COUNT for a kind this build does not know */
    const char *input;   /* the task's input JSON */
    enum txn_mode mode;
    bool cancelling;      /* a poll of a task the client cancelled (or that expired) */
    const char *up_id;    /* the upstream job's id ("" none) */
    const char *job;      /* the dialect's saved job state JSON ("" none) */
    int dep;              /* the deployment's index in the alias (CLAIM's pick, or the poll's) */
    bool stream;          /* the client streams the answer */
    const char *reply_to; /* the API channel waiting on the task ("" none) */
    int64_t created_ms;   /* when the task was created (Unix ms; 0 when absent) */
};

/*
 * A CLAIM reply. Its units are read one by one with txn_claim_unit (no copy: each unit's strings
 * point into the reply). Borrowed from the reply like its units.
 */
struct txn_claim_reply {
    int64_t wait_ms; /* ms until a deployment's budget returns for waiting work; -1: none waits */
    const char *missing_routing; /* aliases whose routing is not in Redis, comma-separated; "" */
    size_t n_units;
    const redisReply *reply;
};

/*
 * Builds p's CLAIM call into a (reset first) with the keys of ks (borrowed). 0, or CORE_ENOMEM
 * (then a must not be sent).
 */
int txn_claim_build(struct txn_args *a, const struct keyspace *ks, const struct txn_claim *p);

/* Parses a CLAIM reply into out. 0, or -1 for a reply that is not one (out then zeroed). */
int txn_claim_parse(const redisReply *reply, struct txn_claim_reply *out);

/*
 * Unit i (0-based, < r->n_units) of r into u, borrowed like r. 0, or -1 for a unit without an id
 * and a numeric fence (u->id is then the id, or "?").
 */
int txn_claim_unit(const struct txn_claim_reply *r, size_t i, struct txn_claimed *u);

/*
 * CLAIM's callback: r is the parsed reply (borrowed for the call) and err NULL; or r NULL and err
 * says why (the store's error, or CORE_EINTERNAL for a reply txn_claim_parse refused).
 */
typedef void (*txn_claim_cb)(const struct txn_claim_reply *r, const struct core_err *err,
                             void *arg);

/*
 * Builds p into a (the caller's scratch, reset and reused by every call; free to reuse once this
 * returns) and sends it on s. 0 and cb is called exactly once; or a negative CORE_E* code and cb
 * is never called.
 */
int txn_claim(struct store *s, struct txn_args *a, const struct txn_claim *p, txn_claim_cb cb,
              void *arg);

/* ---- EXTEND ------------------------------------------------------------------------------ */

/* One attempt held by a worker. id is borrowed until the call is sent. */
struct txn_held {
    const char *id;
    int64_t fence;
};

/*
 * Builds the EXTEND call of the n attempts held (borrowed for the call) into a (reset first):
 * each lease still current is pushed to deadline_ms. 0, or CORE_ENOMEM.
 */
int txn_extend_build(struct txn_args *a, const struct keyspace *ks, int64_t deadline_ms,
                     const struct txn_held *held, size_t n);

/*
 * EXTEND's answer for each of n attempts, in the order sent, into out (n entries; one the reply
 * lacks is TXN_LEASE_UNKNOWN). 0, or -1 for a reply that is not a list (all UNKNOWN).
 */
int txn_extend_parse(const redisReply *reply, enum txn_lease *out, size_t n);

/*
 * EXTEND's callback: leases holds n answers in the order sent (borrowed for the call) and err is
 * NULL; or leases is NULL and err says why (the store's error). n is always the count sent.
 */
typedef void (*txn_extend_cb)(const enum txn_lease *leases, size_t n, const struct core_err *err,
                              void *arg);

/* txn_extend_build into a (the caller's reusable scratch) and sent on s; txn_claim's contract. */
int txn_extend(struct store *s, struct txn_args *a, int64_t deadline_ms,
               const struct txn_held *held, size_t n, txn_extend_cb cb, void *arg);

/* ---- FINISH ------------------------------------------------------------------------------ */

/* What the outcomes of one FINISH call share. */
struct txn_finish {
    int64_t now_ms;
    int64_t retention_ms; /* a finished task's retention */
    /* The breaker's parameters (the worker's config, the same the routing JSON publishes, so
     * FINISH need not read and decode that JSON on every outcome). */
    int64_t breaker_min_requests;
    int64_t breaker_failure_pct;
    int64_t breaker_window_ms;
};

/*
 * The record of a call attempt appended to the task's attempt log, one JSON object:
 * {attempt, deployment, provider, model, status, latency_ms, outcome, error: {code, message} or
 * null, at}. status, latency_ms and outcome are the outcome's; at is the FINISH call's now, in
 * seconds. The strings are borrowed until the call is sent.
 */
struct txn_attempt {
    int attempt;
    int deployment; /* the deployment's index in the alias */
    const char *provider;
    const char *model;       /* the deployment's upstream model */
    const char *err_code;    /* NULL is "" */
    const char *err_message; /* NULL or "": the attempt has no error (null) */
};

/*
 * One attempt's outcome: FINISH_GROUP arguments, typed. The strings are borrowed until the call
 * is sent; a JSON field that is NULL is absent ("": FINISH writes nothing for it).
 */
struct txn_outcome {
    const char *id;
    int64_t fence;
    enum txn_outcome_kind outcome;
    const char *result, *usage, *provider, *cost, *error; /* JSON text */
    int64_t retry_at_ms;                                  /* retry: when the task is due again */
    const char *up_id;     /* park: the upstream job's id (NULL keeps the stored one) */
    const char *job;       /* park: the dialect's job state JSON (NULL keeps the stored one) */
    int progress;          /* park: 0-100, -1 none */
    int queue_position;    /* park: the provider's queue position, -1 none */
    int64_t poll_at_ms;    /* park: when the next poll is due */
    const char *artifacts; /* completed: the kept artifacts' JSON array */
    /* What the attempt taught about its deployment. */
    bool took_slot;    /* the claim charged a call slot of the deployment (a call, resolved) */
    bool wake_on_slot; /* the deployment caps its calls: a freed slot wakes other workers */
    enum txn_class class;
    double latency_ms;          /* < 0: no reply was timed (sent with 3 decimals) */
    int http_status;            /* 0: none */
    int64_t pause_until_ms;     /* the provider paused the deployment until then; 0: no pause */
    int64_t remaining_requests; /* the provider's remaining budget; -1: unknown */
    int64_t remaining_tokens;   /* -1: unknown */
    int64_t tokens_used;        /* the attempt's real usage; -1: unknown */
    bool avoid;                 /* retry: steer the next attempt to another deployment */
    const struct txn_attempt *attempt; /* the attempt log's record; NULL: none (a poll) */
    enum txn_detail detail;            /* completed: how the result ended (TXN_DETAIL_NONE) */
};

/*
 * Builds the FINISH call of h and the n outcomes o (all borrowed until the call is sent) into a
 * (reset first), keys and wake channel named from ks: the outcomes are applied in order, as n
 * calls would be. 0, or CORE_ENOMEM (then a must not be sent).
 */
int txn_finish_build(struct txn_args *a, const struct keyspace *ks, const struct txn_finish *h,
                     const struct txn_outcome *o, size_t n);

/*
 * What FINISH applied for each of n outcomes, in the order sent, into out (n entries; one the
 * reply lacks or does not name is TXN_APPLIED_UNKNOWN). 0, or -1 for a reply that is not a list
 * (all UNKNOWN).
 */
int txn_finish_parse(const redisReply *reply, enum txn_applied *out, size_t n);

/*
 * FINISH's callback: applied holds n entries in the order sent (borrowed for the call) and err
 * is NULL, also for a reply that was not a list (FINISH ran; what it applied is UNKNOWN); or
 * applied is NULL and err says why (the store's error: unknown whether FINISH ran). n is always
 * the count sent.
 */
typedef void (*txn_finish_cb)(const enum txn_applied *applied, size_t n, const struct core_err *err,
                              void *arg);

/* txn_finish_build into a (the caller's reusable scratch) and sent on s; txn_claim's contract. */
int txn_finish(struct store *s, struct txn_args *a, const struct txn_finish *h,
               const struct txn_outcome *o, size_t n, txn_finish_cb cb, void *arg);

#endif
