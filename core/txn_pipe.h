/*
 * core/txn_pipe.h — the pipelines' transactions: every op of PIPE (core/lua/pipe.lua), the API's
 * create, get, list and cancel and the pipeline runner's claim, reads and moves (api/pipelines.c
 * and api/pipeline_runner.c say when each runs; see core/txn.h for the layer).
 *
 * One struct txn_pipe says which op and its typed arguments; txn_pipe_build writes PIPE's argument
 * layout (the only place in C that knows it), txn_pipe_parse reads any op's reply into a struct
 * txn_pipe_reply, txn_pipe joins them on a store.
 */
#ifndef SLUICE_CORE_TXN_PIPE_H
#define SLUICE_CORE_TXN_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* PIPE's ops (core/lua/pipe.lua lists their arguments and answers). */
enum txn_pipe_op {
    TXN_PIPE_CREATE,  /* write a new pipeline, due now */
    TXN_PIPE_GET,     /* read the tenant's pipeline */
    TXN_PIPE_LIST,    /* the tenant's pipelines, newest first */
    TXN_PIPE_CANCEL,  /* a client's cancel: cancelling, due now */
    TXN_PIPE_CLAIM,   /* a runner leases the due pipelines */
    TXN_PIPE_TASKS,   /* read tasks' status, kind, result, artifacts, error */
    TXN_PIPE_ADVANCE, /* the runner's write: step fields, maybe the end */
    TXN_PIPE_UNLEASE, /* hands the lease back, due again at due_ms (at once when dirty) */
    TXN_PIPE_OP_COUNT
};

/* The name of op as the script reads it ("" out of range). Static. */
const char *txn_pipe_op_name(enum txn_pipe_op op);

/* One PIPE call; every string is borrowed for the call. */
struct txn_pipe {
    enum txn_pipe_op op;
    const char *id;     /* the pipeline; NULL for claim, list and tasks */
    const char *tenant; /* create, get, list, cancel (the tenant's index; checked) */
    int64_t now_ms;
    union {
        struct {
            const char *const *fields; /* n_fields (name, value) pairs */
            size_t n_fields;
        } create;
        struct {
            const char *after; /* a pipeline id, NULL for the first page */
            int64_t limit;
        } list;
        struct {
            int64_t lease_ms;
            int64_t max; /* pipelines at most */
        } claim;
        struct {
            const char *const *task_ids;
            size_t n;
        } tasks;
        struct {
            const char *lease;         /* the claim's `leased` value */
            const char *status;        /* the pipeline's new status, NULL: unchanged */
            int64_t ret_ms;            /* a terminal status: the retention */
            const char *webhook_body;  /* a terminal status: the event's body; NULL: none */
            const char *event;         /* its event ("pipeline.completed" …) */
            const char *const *fields; /* n_fields (name, value) pairs */
            size_t n_fields;
        } advance;
        struct {
            const char *lease;
            int64_t due_ms;
        } unlease;
    } u;
};

enum txn_pipe_answer {
    TXN_PIPE_OK,
    TXN_PIPE_NOTFOUND, /* get, cancel: no such pipeline of the tenant */
    TXN_PIPE_CONFLICT, /* cancel: it has ended (hash: as it is) */
    TXN_PIPE_GONE,     /* advance, unlease: it no longer exists */
    TXN_PIPE_STALE,    /* advance, unlease: it has ended, or the lease is another runner's */
    TXN_PIPE_ANSWER_COUNT
};

/* A task as TXN_PIPE_TASKS reads it; fields NULL when absent (no task: status NULL). */
struct txn_pipe_task {
    const char *status, *kind, *result, *artifacts, *error;
};

/* An op's reply. Everything is borrowed from the redisReply, valid while it is. */
struct txn_pipe_reply {
    enum txn_pipe_answer answer;
    const redisReply *hash;          /* get, cancel: the pipeline's HGETALL pairs */
    bool has_more;                   /* list */
    const redisReply *const *hashes; /* list: n HGETALL replies */
    size_t n;                        /* list: hashes; claim: pipelines; tasks: tasks */
    const redisReply *raw;           /* claim, tasks: read with the accessors below */
};

/* Pipeline i of a TXN_PIPE_CLAIM reply: its id and HGETALL pairs. */
void txn_pipe_claimed_at(const struct txn_pipe_reply *r, size_t i, const char **id,
                         const redisReply **hash);

/* Task i of a TXN_PIPE_TASKS reply. */
void txn_pipe_task_at(const struct txn_pipe_reply *r, size_t i, struct txn_pipe_task *out);

/* Builds b's call into a (reset first) for keyspace ks. 0, or CORE_EINVAL / CORE_ENOMEM. */
int txn_pipe_build(struct txn_args *a, const struct keyspace *ks, const struct txn_pipe *b);

/* Parses op's reply. 0, or -1 for a reply of the wrong shape. out borrows from reply. */
int txn_pipe_parse(enum txn_pipe_op op, const redisReply *reply, struct txn_pipe_reply *out);

/* The answer, or err (reply NULL) for the call. */
typedef void (*txn_pipe_cb)(const struct txn_pipe_reply *reply, const struct core_err *err,
                            void *arg);

/* Builds and sends b on s (a is reset and reused). The store's contract (core/txn.h). */
int txn_pipe(struct store *s, struct txn_args *a, const struct txn_pipe *b, txn_pipe_cb cb,
             void *arg);

#endif
