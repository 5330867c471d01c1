/*
 * core/txn_dash.h — the dashboard's transactions: DASH (core/lua/dash.lua) state, tasks and
 * history reads for the API (api/dashboard.c), and the history sample the scheduler leader takes
 * (scheduler/dash_sample.c). See core/txn.h for the layer.
 *
 * Everything a parser returns points into the reply (borrowed: valid while the reply is, which
 * for an asynchronous call's callback is the callback's duration). Copy out what you keep.
 */
#ifndef SLUICE_CORE_TXN_DASH_H
#define SLUICE_CORE_TXN_DASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* A history point every DASH_SAMPLE_MS at most; DASH_HISTORY_POINTS kept (one hour). */
#define DASH_SAMPLE_MS 10000
#define DASH_HISTORY_POINTS 360
/* Tasks one DASH tasks call returns at most. */
#define DASH_TASKS_MAX 200

enum txn_dash_op { TXN_DASH_STATE, TXN_DASH_TASKS, TXN_DASH_HISTORY, TXN_DASH_SAMPLE };

/* One configured alias whose deployments the state reads (alias borrowed until sent). */
struct txn_dash_alias {
    const char *alias;
    size_t n_deployments;
};

/* One DASH call. Strings borrowed until the call is sent. */
struct txn_dash {
    enum txn_dash_op op;
    int64_t now_ms;
    const char *tenant; /* state, tasks: the tenant's own view; NULL: the admin's (every tenant) */
    /* state: the aliases */
    const struct txn_dash_alias *aliases;
    size_t n_aliases;
    /* tasks: the status and the alias to keep (NULL: any), and how many (1..DASH_TASKS_MAX) */
    const char *status;
    const char *model;
    long limit;
    /* history: the oldest point wanted (ms) */
    int64_t since_ms;
};

/* DASH's answer, by op. Borrowed from the reply. */
struct txn_dash_reply {
    enum txn_dash_op op;
    /* state: the JSON text core/lua/dash.lua documents */
    const char *json;
    size_t json_len;
    /* tasks: n pairs of id and HGETALL hash; history: n point JSON texts, newest first */
    size_t n;
    const redisReply *items;
    /* sample: whether a point was written (false: the last one is newer than DASH_SAMPLE_MS) */
    bool sampled;
};

/* Builds d into a (reset first), keys from ks (borrowed). 0, or CORE_EINVAL / CORE_ENOMEM. */
int txn_dash_build(struct txn_args *a, const struct keyspace *ks, const struct txn_dash *d);

/* Parses op's reply into out. 0, or -1 for a reply of the wrong shape. */
int txn_dash_parse(enum txn_dash_op op, const redisReply *reply, struct txn_dash_reply *out);

/* Task i (< r->n) of a tasks reply: its id and hash, borrowed like r. */
void txn_dash_task(const struct txn_dash_reply *r, size_t i, const char **id,
                   const redisReply **hash);

/* Point i (< r->n) of a history reply, JSON text borrowed like r. */
const char *txn_dash_point(const struct txn_dash_reply *r, size_t i, size_t *len);

/* DASH's callback: r parsed (borrowed for the call) and err NULL; or r NULL and err says why. */
typedef void (*txn_dash_cb)(const struct txn_dash_reply *r, const struct core_err *err, void *arg);

/*
 * Builds d into a (the caller's scratch, reset by every call; free to reuse once this returns)
 * and sends it on s. 0 and cb is called exactly once; or a negative CORE_E* code and cb is never
 * called. cb NULL: nobody waits for the answer (a sample).
 */
int txn_dash(struct store *s, struct txn_args *a, const struct txn_dash *d, txn_dash_cb cb,
             void *arg);

#endif
