/*
 * core/txn_webhook.h — webhook deliveries' transactions: WH_CLAIM (core/lua/wh_claim.lua) leases
 * due deliveries to a worker within each tenant's fair share of its slots; WH_DONE
 * (core/lua/wh_done.lua) records an attempt's outcome on the delivery and its task (see
 * core/txn.h for the layer, worker/webhooks.c for the delivery itself).
 *
 * The two scripts' argument and reply layouts are written here and nowhere else in C.
 */
#ifndef SLUICE_CORE_TXN_WEBHOOK_H
#define SLUICE_CORE_TXN_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* ---- WH_CLAIM -------------------------------------------------------------------------- */

/* A tenant's deliveries in flight on the claiming worker. */
struct txn_wh_held {
    const char *tenant; /* borrowed */
    int64_t count;
};

/* One WH_CLAIM call. held (n_held entries, each tenant once) is borrowed for the call. */
struct txn_wh_claim {
    int64_t now_ms;
    int64_t n;        /* at most this many deliveries */
    int64_t lease_ms; /* each claimed delivery is due again this much later, unless WH_DONE says */
    int64_t slots;    /* the worker's delivery slots the tenants split */
    int64_t most;     /* the most one tenant may hold */
    int64_t scan;     /* how many of the oldest due deliveries one claim looks at */
    const struct txn_wh_held *held;
    size_t n_held;
};

/* A claimed delivery. The strings are borrowed from the reply. */
struct txn_wh_delivery {
    const char *id; /* the message id (webhook-id) */
    const char *task;
    const char *tenant;
    const char *event;
    const char *url;
    int attempt;      /* this attempt's number, 1 for the first */
    const char *body; /* the body a former attempt rendered, body_len bytes; NULL: none yet */
    size_t body_len;
};

/* A WH_CLAIM reply: n deliveries, read with txn_wh_claimed_get; borrowed from the reply. */
struct txn_wh_claimed {
    size_t n;
    const redisReply *reply;
};

/* Builds p's WH_CLAIM call into a (reset first) with the keys of ks. 0, or CORE_ENOMEM. */
int txn_wh_claim_build(struct txn_args *a, const struct keyspace *ks, const struct txn_wh_claim *p);

/* Parses a WH_CLAIM reply into out (which borrows it). 0, or -1 for one that is not an array. */
int txn_wh_claim_parse(const redisReply *reply, struct txn_wh_claimed *out);

/*
 * The i-th (< c->n) delivery of c into d (its strings borrowed like c). 0, or -1 for an entry
 * whose fields are not all strings (the caller skips it; its lease runs out and it comes back).
 */
int txn_wh_claimed_get(const struct txn_wh_claimed *c, size_t i, struct txn_wh_delivery *d);

/* WH_CLAIM's callback: c borrowed for the call and err NULL, or c NULL and err says why. */
typedef void (*txn_wh_claim_cb)(const struct txn_wh_claimed *c, const struct core_err *err,
                                void *arg);

/*
 * Builds p into a (the caller's scratch, reset; reusable once this returns) and sends it on s. 0
 * and cb is called exactly once; or a negative CORE_E* code and cb is never called.
 */
int txn_wh_claim(struct store *s, struct txn_args *a, const struct txn_wh_claim *p,
                 txn_wh_claim_cb cb, void *arg);

/* ---- WH_DONE --------------------------------------------------------------------------- */

/* An attempt's outcome, and (TXN_WH_GONE, a reply only) a delivery that no longer exists. */
enum txn_wh_outcome {
    TXN_WH_DELIVERED, /* 2xx */
    TXN_WH_RETRY,     /* due again at next_at_ms */
    TXN_WH_STOPPED,   /* 410: the receiver wants no more */
    TXN_WH_FAILED,    /* final */
    TXN_WH_GONE,
    TXN_WH_OUTCOME_COUNT
};

/* The name of outcome (the Redis and the attempt record's form; "" out of range). Static. */
const char *txn_wh_outcome_name(enum txn_wh_outcome outcome);
/* "delivered" → TXN_WH_DELIVERED …; -1 for an unknown name (or NULL). */
int txn_wh_outcome_parse(const char *name);

/* One WH_DONE call. The strings are borrowed for the call. */
struct txn_wh_done {
    const char *msg_id;
    enum txn_wh_outcome outcome; /* any but TXN_WH_GONE */
    int64_t next_at_ms;          /* TXN_WH_RETRY: when it is due again (else unused) */
    const char *record;          /* the attempt record, JSON */
    const char *body;            /* the body this attempt rendered, kept for the retries; NULL:
                                  * the delivery keeps the one it has */
};

/* Builds p's WH_DONE call into a (reset first). 0, CORE_EINVAL (outcome), or CORE_ENOMEM. */
int txn_wh_done_build(struct txn_args *a, const struct keyspace *ks, const struct txn_wh_done *p);

/* Parses a WH_DONE reply: the outcome recorded, or TXN_WH_GONE. 0, or -1 for another reply. */
int txn_wh_done_parse(const redisReply *reply, enum txn_wh_outcome *out);

/* WH_DONE's callback: the outcome recorded and err NULL, or err says why (outcome then unset). */
typedef void (*txn_wh_done_cb)(enum txn_wh_outcome recorded, const struct core_err *err, void *arg);

/* As txn_wh_claim, for WH_DONE. cb may be NULL: nobody needs the answer. */
int txn_wh_done(struct store *s, struct txn_args *a, const struct txn_wh_done *p, txn_wh_done_cb cb,
                void *arg);

#endif
