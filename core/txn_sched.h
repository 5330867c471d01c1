/*
 * core/txn_sched.h — the scheduler's transaction: TICK (core/lua/tick.lua), the one round trip
 * of each scheduler period that holds the leader lock, promotes due retries, recovers tasks whose
 * lease expired, expires tasks past their deadline and sweeps finished tasks from the tenant
 * lists (see core/txn.h for the layer).
 *
 * TICK's argument layout is written here and nowhere else in C: txn_tick_build is its builder,
 * txn_tick_parse reads its reply, txn_tick joins them on a store.
 */
#ifndef SLUICE_CORE_TXN_SCHED_H
#define SLUICE_CORE_TXN_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* One TICK call. The strings are borrowed for the call. */
struct txn_tick {
    int64_t now_ms;
    int64_t limit;          /* work per step and kind (promotions, recoveries, sweeps, expiries) */
    const char *node;       /* this scheduler's id: the leader lock's value */
    int64_t leader_ttl_ms;  /* how long the lock outlives a leader that stops ticking */
    int64_t retention_ms;   /* a finished task's retention (a failed recovery starts it) */
    const char *lost_error; /* the error JSON of a task whose worker was lost on its last attempt */
};

/*
 * What a TICK did. The counts are those of this call (each at most the call's limit: a count at
 * the limit means more is waiting). gone: the swept tasks that kept artifacts, whose blob folders
 * the caller removes; read them with txn_ticked_gone. Everything is borrowed from the reply, valid
 * while it is (for txn_tick's callback: the callback's duration).
 */
struct txn_ticked {
    bool leader; /* false: another scheduler holds the lock, nothing was done (counts 0) */
    int64_t promoted, recovered, swept, expired;
    size_t n_gone;
    const redisReply *gone; /* the reply's list of ids; NULL when n_gone is 0 */
};

/*
 * Builds p's TICK call into a (reset first) with the keys of ks (borrowed). 0, or CORE_ENOMEM
 * (then a must not be sent).
 */
int txn_tick_build(struct txn_args *a, const struct keyspace *ks, const struct txn_tick *p);

/* Parses a TICK reply into out. 0, or -1 for a reply that is not one (out then zeroed). */
int txn_tick_parse(const redisReply *reply, struct txn_ticked *out);

/* The i-th (0-based, < n_gone) swept task id of t, borrowed like t; NULL for one that is not a
 * string. */
const char *txn_ticked_gone(const struct txn_ticked *t, size_t i);

/*
 * TICK's callback: t is the parsed reply (borrowed for the call) and err NULL; or t NULL and err
 * says why (the store's error, or CORE_EINTERNAL for a reply txn_tick_parse refused).
 */
typedef void (*txn_tick_cb)(const struct txn_ticked *t, const struct core_err *err, void *arg);

/*
 * Builds p into a (the caller's scratch, reset and reused by every call; free to reuse once this
 * returns) and sends it on s. 0 and cb is called exactly once; or a negative CORE_E* code and cb
 * is never called.
 */
int txn_tick(struct store *s, struct txn_args *a, const struct txn_tick *p, txn_tick_cb cb,
             void *arg);

#endif
