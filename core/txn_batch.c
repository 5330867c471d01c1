/*
 * core/txn_batch.c — BATCH's C side (core/txn_batch.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/txn_batch.h"

/* The shapes of BATCH's replies (core/lua/batch.lua's header lists each op's). */
enum shape {
    SHAPE_WORD,   /* {answer} */
    SHAPE_HASH,   /* {"ok" | "conflict", hash} | {"notfound"} */
    SHAPE_LIST,   /* {"ok", has_more, hash...} */
    SHAPE_CLAIM,  /* {id, hash} | {} */
    SHAPE_STATUS, /* {status} | {"gone"} */
};

/* Each op: its name in the script, and its reply's shape. */
static const struct {
    const char *name;
    enum shape shape;
} ops[TXN_BATCH_OP_COUNT] = {
    [TXN_BATCH_CREATE] = {"create", SHAPE_WORD},
    [TXN_BATCH_GET] = {"get", SHAPE_HASH},
    [TXN_BATCH_LIST] = {"list", SHAPE_LIST},
    [TXN_BATCH_CANCEL] = {"cancel", SHAPE_HASH},
    [TXN_BATCH_CLAIM] = {"claim", SHAPE_CLAIM},
    [TXN_BATCH_RENEW] = {"renew", SHAPE_WORD},
    [TXN_BATCH_UNLEASE] = {"unlease", SHAPE_WORD},
    [TXN_BATCH_STARTED] = {"started", SHAPE_STATUS},
    [TXN_BATCH_PROGRESS] = {"progress", SHAPE_WORD},
    [TXN_BATCH_EXPIRE] = {"expire", SHAPE_STATUS},
    [TXN_BATCH_CHECK] = {"check", SHAPE_WORD},
    [TXN_BATCH_DONE] = {"done", SHAPE_WORD},
    [TXN_BATCH_RELEASE] = {"release", SHAPE_WORD},
};

static const char *const status_names[TXN_BATCH_STATUS_COUNT] = {
    [TXN_BATCH_VALIDATING] = "validating", [TXN_BATCH_IN_PROGRESS] = "in_progress",
    [TXN_BATCH_FINALIZING] = "finalizing", [TXN_BATCH_COMPLETED] = "completed",
    [TXN_BATCH_FAILED] = "failed",         [TXN_BATCH_EXPIRED] = "expired",
    [TXN_BATCH_CANCELLING] = "cancelling", [TXN_BATCH_CANCELLED] = "cancelled",
};

/* The words the script answers with. */
static const char *const answer_names[TXN_BATCH_ANSWER_COUNT] = {
    [TXN_BATCH_OK] = "ok",
    [TXN_BATCH_NOTFOUND] = "notfound",
    [TXN_BATCH_CONFLICT] = "conflict",
    [TXN_BATCH_GONE] = "gone",
    [TXN_BATCH_STOP] = "stop",
    [TXN_BATCH_ALL_DONE] = "done",
    [TXN_BATCH_WAITING] = "waiting",
    [TXN_BATCH_STALE] = "stale",
    [TXN_BATCH_NONE] = "",
};

const char *txn_batch_op_name(enum txn_batch_op op)
{
    return (unsigned)op < TXN_BATCH_OP_COUNT ? ops[op].name : "";
}

const char *txn_batch_status_name(enum txn_batch_status status)
{
    return (unsigned)status < TXN_BATCH_STATUS_COUNT ? status_names[status] : "";
}

int txn_batch_status_parse(const char *name)
{
    for (int i = 0; name && i < TXN_BATCH_STATUS_COUNT; i++) {
        if (strcmp(status_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* An answer word (never "", which is no word); -1 for another string. */
static int answer_parse(const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING) {
        return -1;
    }
    for (int i = 0; i < TXN_BATCH_ANSWER_COUNT; i++) {
        if (answer_names[i][0] && strcmp(answer_names[i], r->str) == 0) {
            return i;
        }
    }
    return -1;
}

/* The op's arguments after ARGV 3 (core/lua/batch.lua's op_args), into a. */
static int op_args(struct txn_args *a, const struct txn_batch *b)
{
    const char *tenant = b->tenant ? b->tenant : "-";
    char event[48];

    switch (b->op) {
    case TXN_BATCH_CREATE:
        txn_arg(a, tenant);
        for (size_t i = 0; i < 2 * b->u.create.n_fields; i++) {
            txn_arg(a, b->u.create.fields[i]);
        }
        break;
    case TXN_BATCH_GET:
    case TXN_BATCH_CANCEL:
        txn_arg(a, tenant);
        break;
    case TXN_BATCH_LIST:
        txn_arg(a, tenant);
        txn_arg(a, b->u.list.after);
        txn_arg_i64(a, b->u.list.limit);
        break;
    case TXN_BATCH_CLAIM:
        txn_arg_i64(a, b->u.claim.lease_ms);
        break;
    case TXN_BATCH_RENEW:
        txn_arg_i64(a, b->u.renew.until_ms);
        break;
    case TXN_BATCH_UNLEASE:
        txn_arg_i64(a, b->u.unlease.due_ms);
        break;
    case TXN_BATCH_STARTED:
        txn_arg_i64(a, b->u.started.total);
        break;
    case TXN_BATCH_PROGRESS:
        txn_arg_i64(a, b->u.progress.expanded);
        txn_arg_i64(a, b->u.progress.offset);
        txn_arg(a, b->u.progress.all ? "1" : "0");
        txn_arg_i64(a, b->u.progress.due_ms);
        break;
    case TXN_BATCH_EXPIRE:
        if ((unsigned)b->u.expire.reason >= TXN_BATCH_STATUS_COUNT) {
            return CORE_EINVAL;
        }
        txn_arg(a, status_names[b->u.expire.reason]);
        break;
    case TXN_BATCH_CHECK:
        txn_arg_i64(a, b->u.check.due_ms);
        txn_arg(a, b->u.check.mark);
        break;
    case TXN_BATCH_DONE:
        if ((unsigned)b->u.done.status >= TXN_BATCH_STATUS_COUNT) {
            return CORE_EINVAL;
        }
        snprintf(event, sizeof(event), "batch.%s", status_names[b->u.done.status]);
        txn_arg(a, status_names[b->u.done.status]);
        txn_arg(a, b->u.done.output_file);
        txn_arg(a, b->u.done.error_file);
        txn_arg(a, b->u.done.webhook_body);
        txn_arg_copy(a, event);
        txn_arg(a, b->u.done.errors);
        break;
    case TXN_BATCH_RELEASE:
        txn_arg_i64(a, b->u.release.ret_ms);
        for (size_t i = 0; i < b->u.release.n; i++) {
            txn_arg(a, b->u.release.task_ids[i]);
        }
        break;
    default:
        return CORE_EINVAL;
    }
    return 0;
}

/*
 * KEYS: the batch, the work zset, the tenant's batch index. ARGV: batch id, op, now, then the
 * op's own (op_args above). An op that names no batch or tenant still fills their places with
 * "-" (the script reads neither then).
 */
int txn_batch_build(struct txn_args *a, const struct keyspace *ks, const struct txn_batch *b)
{
    const char *id = b->id ? b->id : "-";
    int rc;

    txn_args_reset(a);
    if ((unsigned)b->op >= TXN_BATCH_OP_COUNT) {
        return CORE_EINVAL;
    }
    txn_arg_key(a, ks, KS_BATCH, id);
    txn_arg_key(a, ks, KS_BATCH_WORK, NULL);
    txn_arg_key(a, ks, KS_BATCHES_TENANT, b->tenant ? b->tenant : "-");
    a->nkeys = 3;
    txn_arg(a, id);
    txn_arg(a, ops[b->op].name);
    txn_arg_i64(a, b->now_ms);
    rc = op_args(a, b);
    if (rc < 0) {
        return rc;
    }
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_batch_parse(enum txn_batch_op op, const redisReply *reply, struct txn_batch_reply *out)
{
    const redisReply *first;
    int word, st;

    memset(out, 0, sizeof(*out));
    if ((unsigned)op >= TXN_BATCH_OP_COUNT || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    if (ops[op].shape == SHAPE_CLAIM) {
        if (reply->elements == 0) {
            out->answer = TXN_BATCH_NONE;
            return 0;
        }
        if (reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            return -1;
        }
        out->answer = TXN_BATCH_OK;
        out->id = reply->element[0]->str;
        out->hash = reply->element[1];
        return 0;
    }
    if (reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING) {
        return -1;
    }
    first = reply->element[0];
    word = answer_parse(first);
    switch (ops[op].shape) {
    case SHAPE_WORD:
        if (word < 0) {
            return -1;
        }
        out->answer = (enum txn_batch_answer)word;
        return 0;
    case SHAPE_STATUS:
        if (word == TXN_BATCH_GONE) {
            out->answer = TXN_BATCH_GONE;
            return 0;
        }
        st = txn_batch_status_parse(first->str);
        if (st < 0) {
            return -1;
        }
        out->answer = TXN_BATCH_OK;
        out->status = (enum txn_batch_status)st;
        return 0;
    case SHAPE_HASH:
        if (word == TXN_BATCH_NOTFOUND) {
            out->answer = TXN_BATCH_NOTFOUND;
            return 0;
        }
        if ((word != TXN_BATCH_OK && word != TXN_BATCH_CONFLICT) || reply->elements < 2 ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            return -1;
        }
        out->answer = (enum txn_batch_answer)word;
        out->hash = reply->element[1];
        return 0;
    case SHAPE_LIST:
        if (word != TXN_BATCH_OK || reply->elements < 2 ||
            reply->element[1]->type != REDIS_REPLY_INTEGER) {
            return -1;
        }
        out->answer = TXN_BATCH_OK;
        out->has_more = reply->element[1]->integer == 1;
        out->hashes = (const redisReply *const *)reply->element + 2;
        out->n_hashes = reply->elements - 2;
        return 0;
    default:
        return -1;
    }
}

/* extra: the op the reply answers (its shape depends on it). */
static void deliver_batch(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                          int extra)
{
    struct txn_batch_reply r;
    struct core_err bad;

    if (err == NULL && txn_batch_parse((enum txn_batch_op)extra, reply, &r) < 0) {
        err = txn_bad_reply(&bad, txn_batch_op_name((enum txn_batch_op)extra));
    }
    ((txn_batch_cb)cb)(err ? NULL : &r, err, arg);
}

int txn_batch(struct store *s, struct txn_args *a, const struct txn_batch *b, txn_batch_cb cb,
              void *arg)
{
    int rc = txn_batch_build(a, store_keys(s), b);

    return rc < 0 ? rc : txn_call(s, SCRIPT_BATCH, a, deliver_batch, (txn_fn)cb, arg, (int)b->op);
}
