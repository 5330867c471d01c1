/*
 * core/txn_callback.h — providers' job callbacks: where a provider is asked to call back (the URL
 * layout, shared by the worker that asks and the api that answers) and NUDGE
 * (core/lua/nudge.lua), the transaction a verified callback runs: the task's poll becomes due now
 * (see core/txn.h for the layer, api/provider_callbacks.c for the endpoint).
 *
 * A callback never carries state into Redis: it only says "look now", and the poll that follows
 * reads the authoritative state from the provider. Polling stays the fallback, so a lost callback
 * costs one poll interval, never the task.
 *
 * NUDGE's argument and reply layouts are written here and nowhere else in C.
 */
#ifndef SLUICE_CORE_TXN_CALLBACK_H
#define SLUICE_CORE_TXN_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* The endpoint's path under the callback base URL: PATH + "<provider>/<task id>". */
#define TXN_CALLBACK_PATH "/v1/provider_callbacks/"
/* Longest provider name a callback URL carries (longer ones are not asked for callbacks). */
#define TXN_CALLBACK_PROVIDER_MAX 64
/* Room for a callback URL: the base (config: shorter than 2048 bytes), the path, a provider name
 * and a task id. */
#define TXN_CALLBACK_URL_SIZE 2304

/*
 * True when name can stand in a callback URL's path as it is: 1..TXN_CALLBACK_PROVIDER_MAX
 * letters, digits, '_', '-' or '.', and not "." or "..". name borrowed; NULL is false.
 */
bool txn_callback_provider_ok(const char *name);

/*
 * The callback URL of task_id's job on provider into buf of size bytes: base (config's
 * callback_base_url, no trailing '/') + TXN_CALLBACK_PATH + provider + "/" + task_id. 0, or -1
 * (buf then "") when provider fails txn_callback_provider_ok, task_id is not a task id, or it does
 * not fit. All borrowed.
 */
int txn_callback_url(char *buf, size_t size, const char *base, const char *provider,
                     const char *task_id);

/* ---- NUDGE ----------------------------------------------------------------------------- */

/* One of the calling provider's deployments: the alias and its index in the alias's list. */
struct txn_nudge_dep {
    const char *alias; /* borrowed */
    size_t index;
};

/* One NUDGE call. id and deps (n_deps entries, at least one) are borrowed for the call. */
struct txn_nudge {
    const char *id;
    int64_t now_ms;
    const struct txn_nudge_dep *deps; /* the task must run on one of these */
    size_t n_deps;
};

/* What NUDGE did. */
enum txn_nudge_result {
    TXN_NUDGE_NUDGED,    /* the poll is due now (idle workers were woken) */
    TXN_NUDGE_NOTFOUND,  /* no such task (never was, or swept) */
    TXN_NUDGE_FINISHED,  /* not in_progress or cancelling: nothing to look at */
    TXN_NUDGE_FOREIGN,   /* the task runs on another provider's deployment */
    TXN_NUDGE_NOTPARKED, /* in progress but not parked (being polled, or not yet parked) */
    TXN_NUDGE_RESULT_COUNT
};

/* The result's name as the script says it ("" out of range). Static. */
const char *txn_nudge_result_name(enum txn_nudge_result r);

/* Builds p's NUDGE call into a (reset first) with the keys of ks. 0, CORE_EINVAL (no deps), or
 * CORE_ENOMEM. */
int txn_nudge_build(struct txn_args *a, const struct keyspace *ks, const struct txn_nudge *p);

/* Parses a NUDGE reply into *out. 0, or -1 for a reply that is not one. */
int txn_nudge_parse(const redisReply *reply, enum txn_nudge_result *out);

/* NUDGE's callback: the result and err NULL, or err says why (result then unset). */
typedef void (*txn_nudge_cb)(enum txn_nudge_result result, const struct core_err *err, void *arg);

/*
 * Builds p into a (the caller's scratch, reset; reusable once this returns) and sends it on s. 0
 * and cb is called exactly once; or a negative CORE_E* code and cb is never called.
 */
int txn_nudge(struct store *s, struct txn_args *a, const struct txn_nudge *p, txn_nudge_cb cb,
              void *arg);

#endif
