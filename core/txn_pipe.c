/*
 * core/txn_pipe.c — PIPE's argument and reply layouts (core/lua/pipe.lua), written once.
 */
#include <string.h>

#include "core/txn_pipe.h"

static const char *const op_names[TXN_PIPE_OP_COUNT] = {
    [TXN_PIPE_CREATE] = "create",   [TXN_PIPE_GET] = "get",         [TXN_PIPE_LIST] = "list",
    [TXN_PIPE_CANCEL] = "cancel",   [TXN_PIPE_CLAIM] = "claim",     [TXN_PIPE_TASKS] = "tasks",
    [TXN_PIPE_ADVANCE] = "advance", [TXN_PIPE_UNLEASE] = "unlease",
};

static const char *const answer_words[TXN_PIPE_ANSWER_COUNT] = {
    [TXN_PIPE_OK] = "ok",     [TXN_PIPE_NOTFOUND] = "notfound", [TXN_PIPE_CONFLICT] = "conflict",
    [TXN_PIPE_GONE] = "gone", [TXN_PIPE_STALE] = "stale",
};

const char *txn_pipe_op_name(enum txn_pipe_op op)
{
    return (unsigned)op < TXN_PIPE_OP_COUNT ? op_names[op] : "";
}

static void pairs(struct txn_args *a, const char *const *fields, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++) {
        txn_arg(a, fields[i]);
    }
}

int txn_pipe_build(struct txn_args *a, const struct keyspace *ks, const struct txn_pipe *b)
{
    txn_args_reset(a);
    if ((unsigned)b->op >= TXN_PIPE_OP_COUNT) {
        return CORE_EINVAL;
    }
    txn_arg_key(a, ks, KS_PIPE, b->id ? b->id : "-");
    txn_arg_key(a, ks, KS_PIPE_WORK, NULL);
    txn_arg_key(a, ks, KS_PIPES_TENANT, b->tenant ? b->tenant : "-");
    a->nkeys = 3;
    txn_arg(a, b->id ? b->id : "-");
    txn_arg(a, op_names[b->op]);
    txn_arg_i64(a, b->now_ms);
    switch (b->op) {
    case TXN_PIPE_CREATE:
        txn_arg(a, b->tenant);
        pairs(a, b->u.create.fields, b->u.create.n_fields);
        break;
    case TXN_PIPE_GET:
    case TXN_PIPE_CANCEL:
        txn_arg(a, b->tenant);
        break;
    case TXN_PIPE_LIST:
        txn_arg(a, b->tenant);
        txn_arg(a, b->u.list.after);
        txn_arg_i64(a, b->u.list.limit);
        break;
    case TXN_PIPE_CLAIM:
        txn_arg_i64(a, b->u.claim.lease_ms);
        txn_arg_i64(a, b->u.claim.max);
        break;
    case TXN_PIPE_TASKS:
        for (size_t i = 0; i < b->u.tasks.n; i++) {
            txn_arg(a, b->u.tasks.task_ids[i]);
        }
        break;
    case TXN_PIPE_ADVANCE:
        txn_arg(a, b->u.advance.lease);
        txn_arg(a, b->u.advance.status);
        txn_arg_i64(a, b->u.advance.ret_ms);
        txn_arg(a, b->u.advance.webhook_body);
        txn_arg(a, b->u.advance.event);
        pairs(a, b->u.advance.fields, b->u.advance.n_fields);
        break;
    case TXN_PIPE_UNLEASE:
        txn_arg(a, b->u.unlease.lease);
        txn_arg_i64(a, b->u.unlease.due_ms);
        break;
    default:
        return CORE_EINVAL;
    }
    return a->oom ? CORE_ENOMEM : 0;
}

static int answer_parse(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        return -1;
    }
    for (int i = 0; i < TXN_PIPE_ANSWER_COUNT; i++) {
        if (strcmp(r->str, answer_words[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int txn_pipe_parse(enum txn_pipe_op op, const redisReply *reply, struct txn_pipe_reply *out)
{
    int word;

    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    if (op == TXN_PIPE_CLAIM) {
        if (reply->elements % 2 != 0) {
            return -1;
        }
        for (size_t i = 0; i < reply->elements; i += 2) {
            if (reply->element[i]->type != REDIS_REPLY_STRING ||
                reply->element[i + 1]->type != REDIS_REPLY_ARRAY) {
                return -1;
            }
        }
        out->answer = TXN_PIPE_OK;
        out->n = reply->elements / 2;
        out->raw = reply;
        return 0;
    }
    if (op == TXN_PIPE_TASKS) {
        if (reply->elements % 5 != 0) {
            return -1;
        }
        out->answer = TXN_PIPE_OK;
        out->n = reply->elements / 5;
        out->raw = reply;
        return 0;
    }
    if (reply->elements < 1 || (word = answer_parse(reply->element[0])) < 0) {
        return -1;
    }
    out->answer = (enum txn_pipe_answer)word;
    switch (op) {
    case TXN_PIPE_GET:
    case TXN_PIPE_CANCEL:
        if (word == TXN_PIPE_NOTFOUND) {
            return 0;
        }
        if ((word != TXN_PIPE_OK && word != TXN_PIPE_CONFLICT) || reply->elements < 2 ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            return -1;
        }
        out->hash = reply->element[1];
        return 0;
    case TXN_PIPE_LIST:
        if (word != TXN_PIPE_OK || reply->elements < 2 ||
            reply->element[1]->type != REDIS_REPLY_INTEGER) {
            return -1;
        }
        for (size_t i = 2; i < reply->elements; i++) {
            if (reply->element[i]->type != REDIS_REPLY_ARRAY) {
                return -1;
            }
        }
        out->has_more = reply->element[1]->integer == 1;
        out->hashes = (const redisReply *const *)reply->element + 2;
        out->n = reply->elements - 2;
        return 0;
    default:
        return 0;
    }
}

void txn_pipe_claimed_at(const struct txn_pipe_reply *r, size_t i, const char **id,
                         const redisReply **hash)
{
    *id = r->raw->element[2 * i]->str;
    *hash = r->raw->element[2 * i + 1];
}

static const char *str_or_null(const redisReply *e)
{
    return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

void txn_pipe_task_at(const struct txn_pipe_reply *r, size_t i, struct txn_pipe_task *out)
{
    redisReply *const *e = r->raw->element + 5 * i;

    out->status = str_or_null(e[0]);
    out->kind = str_or_null(e[1]);
    out->result = str_or_null(e[2]);
    out->artifacts = str_or_null(e[3]);
    out->error = str_or_null(e[4]);
}

static void deliver_pipe(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                         int extra)
{
    struct txn_pipe_reply r;
    struct core_err bad;

    if (err == NULL && txn_pipe_parse((enum txn_pipe_op)extra, reply, &r) < 0) {
        err = txn_bad_reply(&bad, txn_pipe_op_name((enum txn_pipe_op)extra));
    }
    ((txn_pipe_cb)cb)(err ? NULL : &r, err, arg);
}

int txn_pipe(struct store *s, struct txn_args *a, const struct txn_pipe *b, txn_pipe_cb cb,
             void *arg)
{
    int rc = txn_pipe_build(a, store_keys(s), b);

    return rc < 0 ? rc : txn_call(s, SCRIPT_PIPE, a, deliver_pipe, (txn_fn)cb, arg, (int)b->op);
}
