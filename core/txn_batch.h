/*
 * core/txn_batch.h — the Batch API's transactions: every op of BATCH (core/lua/batch.lua), the
 * API's create, get, list and cancel and the batch runner's claim and state moves (api/batches.h
 * says what a batch's life is, api/batch_runner.c when each op runs; see core/txn.h for the
 * layer).
 *
 * One struct txn_batch says which op and its typed arguments; txn_batch_build writes BATCH's
 * argument layout (the only place in C that knows it), txn_batch_parse reads any op's reply into
 * a struct txn_batch_reply, txn_batch joins them on a store. The ops' names are in one table
 * (txn_batch.c).
 */
#ifndef SLUICE_CORE_TXN_BATCH_H
#define SLUICE_CORE_TXN_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* BATCH's ops (core/lua/batch.lua lists their arguments and answers). */
enum txn_batch_op {
    TXN_BATCH_CREATE,   /* write a new batch (validating), due now */
    TXN_BATCH_GET,      /* read the tenant's batch */
    TXN_BATCH_LIST,     /* the tenant's batches, newest first */
    TXN_BATCH_CANCEL,   /* a client's cancel: cancelling, due now */
    TXN_BATCH_CLAIM,    /* the runner leases the next due batch */
    TXN_BATCH_RENEW,    /* keeps the runner's lease */
    TXN_BATCH_UNLEASE,  /* hands the lease back, due again at due_ms */
    TXN_BATCH_STARTED,  /* validation passed: in_progress with its total */
    TXN_BATCH_PROGRESS, /* the expansion cursor after a chunk of tasks */
    TXN_BATCH_EXPIRE,   /* stop expanding (expired, failed or cancelled), due now */
    TXN_BATCH_CHECK,    /* is every task done? if not, due again at due_ms */
    TXN_BATCH_DONE,     /* the end: final status, files, errors, its webhook */
    TXN_BATCH_RELEASE,  /* the batch's tasks start their retention */
    TXN_BATCH_OP_COUNT
};

/* The name of op as the script reads it ("" out of range). Static. */
const char *txn_batch_op_name(enum txn_batch_op op);

/* A batch's status (the hash's `status` field and the batch object's). */
enum txn_batch_status {
    TXN_BATCH_VALIDATING,
    TXN_BATCH_IN_PROGRESS,
    TXN_BATCH_FINALIZING,
    TXN_BATCH_COMPLETED,
    TXN_BATCH_FAILED,
    TXN_BATCH_EXPIRED,
    TXN_BATCH_CANCELLING,
    TXN_BATCH_CANCELLED,
    TXN_BATCH_STATUS_COUNT
};

/* The name of status ("" out of range). Static. */
const char *txn_batch_status_name(enum txn_batch_status status);
/* "validating" → TXN_BATCH_VALIDATING …; -1 for an unknown name (or NULL). */
int txn_batch_status_parse(const char *name);

/*
 * One BATCH call: the batch, its tenant, the clock and the op's arguments (u, the member named
 * after the op; ops without arguments use none). Every string is borrowed for the call.
 */
struct txn_batch {
    enum txn_batch_op op;
    const char *id;     /* the batch; NULL ("-") for claim and list, which name none */
    const char *tenant; /* names the tenant's batch index; create, get, list and cancel also
                         * check the batch is the tenant's. NULL: "-" (ops that use neither) */
    int64_t now_ms;
    union {
        struct {
            const char *const *fields; /* n_fields (name, value) pairs: fields[2i], [2i+1] */
            size_t n_fields;
        } create;
        struct {
            const char *after; /* the cursor: a batch id, NULL for the first page */
            int64_t limit;
        } list;
        struct {
            int64_t lease_ms;
        } claim;
        struct {
            int64_t until_ms;
        } renew;
        struct {
            int64_t due_ms;
        } unlease;
        struct {
            int64_t total; /* the requests in the input file */
        } started;
        struct {
            int64_t expanded; /* requests submitted so far */
            int64_t offset;   /* the input file's byte offset after them */
            bool all;         /* the last chunk: the file is expanded */
            int64_t due_ms;   /* when the runner's lease lapses if it stops here */
        } progress;
        struct {
            enum txn_batch_status reason; /* expired, failed (input file gone) or cancelled */
        } expire;
        struct {
            int64_t due_ms;
            const char *mark; /* a field set to 1 first (e.g. "cancel_sent"); NULL: none */
        } check;
        struct {
            enum txn_batch_status status; /* completed, failed, cancelled or expired; the
                                           * webhook's event is "batch.<status>" */
            const char *output_file;      /* file ids, NULL: none */
            const char *error_file;
            const char *webhook_body; /* the event's body; NULL: no delivery */
            const char *errors;       /* the batch's errors (JSON list object); NULL: none */
        } done;
        struct {
            int64_t ret_ms; /* the tasks' retention */
            const char *const *task_ids;
            size_t n;
        } release;
    } u;
};

/* What an op answered. */
enum txn_batch_answer {
    TXN_BATCH_OK,       /* done as asked (started, expire: see status) */
    TXN_BATCH_NOTFOUND, /* get, cancel: no such batch of the tenant */
    TXN_BATCH_CONFLICT, /* cancel: the batch is past cancelling (hash: as it is) */
    TXN_BATCH_GONE,     /* the batch no longer exists */
    TXN_BATCH_STOP,     /* progress: cancelled or expiring meanwhile, the expansion stops */
    TXN_BATCH_ALL_DONE, /* check: every task is done */
    TXN_BATCH_WAITING,  /* check: tasks are still running */
    TXN_BATCH_STALE,    /* done: another runner ended it first */
    TXN_BATCH_NONE,     /* claim: nothing is due */
    TXN_BATCH_ANSWER_COUNT
};

/* An op's reply. Everything is borrowed from the redisReply, valid while it is. */
struct txn_batch_reply {
    enum txn_batch_answer answer;
    enum txn_batch_status status;    /* started, expire: the batch's status after the op */
    const char *id;                  /* claim: the batch leased */
    const redisReply *hash;          /* get, cancel, claim: the batch's HGETALL */
    bool has_more;                   /* list: another page follows */
    const redisReply *const *hashes; /* list: n_hashes batches' HGETALLs */
    size_t n_hashes;
};

/*
 * Builds b's BATCH call into a (reset first) with the keys of ks (borrowed). 0, CORE_EINVAL (an
 * op or status out of range), or CORE_ENOMEM (a must not be sent).
 */
int txn_batch_build(struct txn_args *a, const struct keyspace *ks, const struct txn_batch *b);

/* Parses the reply of op into out. 0, or -1 for a reply that is not one of op's answers. */
int txn_batch_parse(enum txn_batch_op op, const redisReply *reply, struct txn_batch_reply *out);

/*
 * The callback of txn_batch: r the parsed reply (borrowed for the call) and err NULL; or r NULL
 * and err says why (the store's error, or CORE_EINTERNAL for a reply txn_batch_parse refused).
 */
typedef void (*txn_batch_cb)(const struct txn_batch_reply *r, const struct core_err *err,
                             void *arg);

/*
 * Builds b into a (the caller's scratch, reset; reusable once this returns) and sends it on s. 0
 * and cb is called exactly once; or a negative CORE_E* code and cb is never called. cb may be
 * NULL when nobody needs the answer.
 */
int txn_batch(struct store *s, struct txn_args *a, const struct txn_batch *b, txn_batch_cb cb,
              void *arg);

#endif
