/*
 * core/txn.h — the typed transaction layer: every contract between sluice's processes that runs
 * as a Lua script, behind C functions that take and return structs.
 *
 * One family a file pair, each the only place its scripts' argument layouts and reply layouts are
 * written in C:
 *
 *   core/txn_task.h     SUBMIT, GET, LIST, CANCEL, METRICS   (the API's task calls)
 *   core/txn_worker.h   CLAIM, EXTEND, FINISH                (a worker's attempts)
 *   core/txn_sched.h    TICK                                 (the scheduler's sweep)
 *   core/txn_webhook.h  WH_CLAIM, WH_DONE                    (webhook deliveries)
 *   core/txn_batch.h    BATCH                                (the Batch API's records)
 *   core/txn_pipe.h     PIPE                                 (pipelines)
 *   core/txn_callback.h NUDGE                                (providers' job callbacks)
 *   core/txn_keys.h     API_KEYS                             (keys as data)
 *   core/txn_budget.h   BUDGET                               (budgets' admin view)
 *   core/txn_usage.h    USAGE                                (usage analytics)
 *
 * Each family offers, per script, a pure builder (a struct in, a struct txn_args out, keys named
 * from a keyspace), a pure parser (a redisReply in, a struct out), and the asynchronous call that
 * joins them on a store: roles call the typed function, the script tests (tests/lua) call the
 * builder and the parser, so the layout a test exercises is the one the roles send. The keyspace
 * (its hash tag) is a parameter of every builder: nothing here names a key by a constant.
 *
 * An asynchronous txn_* call follows the store's contract: 0 and its callback is called exactly
 * once, or a negative CORE_E* code and it is never called.
 */
#ifndef SLUICE_CORE_TXN_H
#define SLUICE_CORE_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "core/keys.h"
#include "core/scripts.h"
#include "core/store.h"

#define TXN_ARGS_BLOCK 4096 /* bytes of formatted arguments per scratch block */

struct txn_block;

/*
 * A script call's arguments in the order the script names them: the first nkeys are its KEYS.
 * Each is borrowed (txn_arg: the caller keeps it alive until the call is sent) or formatted into
 * the args' own scratch, whose blocks never move, so earlier pointers stay valid. Reusable:
 * txn_args_reset keeps the memory for the next call (a worker's FINISH every loop turn).
 */
struct txn_args {
    int nkeys;
    int n;
    int cap;
    const char **v;
    size_t *len;
    struct txn_block *blocks; /* the scratch, newest first */
    int oom;                  /* an append failed: the call must not be sent */
};

void txn_args_init(struct txn_args *a);
void txn_args_reset(struct txn_args *a);
void txn_args_cleanup(struct txn_args *a);

/* Appends s (borrowed; NULL is ""). */
void txn_arg(struct txn_args *a, const char *s);
/* Appends s of len bytes (borrowed; may hold NUL bytes). */
void txn_arg_len(struct txn_args *a, const char *s, size_t len);
/* Appends a copy of s (NULL is ""). */
void txn_arg_copy(struct txn_args *a, const char *s);
/* Appends v in decimal. */
void txn_arg_i64(struct txn_args *a, int64_t v);
/* Appends v in decimal when `when`, else "" (an argument a script reads as absent). */
void txn_arg_i64_if(struct txn_args *a, int64_t v, int when);
/* Appends the key prefix + family + id (id NULL: none). */
void txn_arg_key(struct txn_args *a, const struct keyspace *ks, const char *family, const char *id);

/*
 * Sends script id with a's arguments on s (EVALSHA; a may be reset or freed once this returns).
 * 0 and cb is called once; CORE_ENOMEM when building a failed; else store_script's code.
 */
int txn_send(struct store *s, enum script_id id, const struct txn_args *a, store_cb cb, void *arg);

/* A family's typed callback, carried untyped through the store and cast back by its deliver. */
typedef void (*txn_fn)(void);

/*
 * A family's reply step: parses reply (err NULL) and calls cb, cast back to its own type, with the
 * parsed struct, or with err, or with txn_bad_reply's error for a reply the parser refused. extra
 * is what txn_call was given (e.g. which op of a script the reply answers).
 */
typedef void (*txn_deliver_fn)(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                               int extra);

/*
 * Sends script id with a's arguments on s; its reply goes to deliver with (cb, arg, extra). cb
 * NULL: nobody waits for the answer (deliver is not called). The store's contract: 0 and deliver
 * is called exactly once, or a negative code and never. One small allocation per call, freed
 * before deliver runs.
 */
int txn_call(struct store *s, enum script_id id, const struct txn_args *a, txn_deliver_fn deliver,
             txn_fn cb, void *arg, int extra);

/* Fills e for a reply its parser refused ("unexpected <what> reply") and returns it. */
const struct core_err *txn_bad_reply(struct core_err *e, const char *what);

#endif
