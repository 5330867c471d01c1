/*
 * core/txn_budget.c — BUDGET's argument and reply layouts (core/lua/budget.lua), written once.
 */
#include <stdlib.h>
#include <string.h>

#include "core/txn_budget.h"

static const char *const op_names[TXN_BUDGET_OP_COUNT] = {
    [TXN_BUDGET_PUT] = "put", [TXN_BUDGET_GET] = "get", [TXN_BUDGET_DELETE] = "delete"};

int txn_budget_build(struct txn_args *a, const struct keyspace *ks, const struct txn_budget *b)
{
    txn_args_reset(a);
    if ((unsigned)b->op >= TXN_BUDGET_OP_COUNT || b->subject == NULL) {
        return CORE_EINVAL;
    }
    txn_arg_key(a, ks, KS_BUDGET, b->subject);
    a->nkeys = 1;
    txn_arg(a, b->subject);
    txn_arg(a, op_names[b->op]);
    txn_arg_i64(a, b->now_ms);
    if (b->op == TXN_BUDGET_PUT) {
        txn_arg(a, b->cfg);
    }
    return a->oom ? CORE_ENOMEM : 0;
}

static int64_t num_at(const redisReply *r, size_t i)
{
    return r->element[i]->type == REDIS_REPLY_STRING ? strtoll(r->element[i]->str, NULL, 10) : 0;
}

int txn_budget_parse(enum txn_budget_op op, const redisReply *reply, struct txn_budget_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    if (op != TXN_BUDGET_GET) {
        return reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_STRING &&
                       strcmp(reply->element[0]->str, "ok") == 0
                   ? 0
                   : -1;
    }
    if (reply->elements == 0) {
        return 0;
    }
    if (reply->element[0]->type != REDIS_REPLY_STRING || (reply->elements - 1) % 3 != 0 ||
        (reply->elements - 1) / 3 > TXN_BUDGET_LIMITS_MAX) {
        return -1;
    }
    out->cfg = reply->element[0]->str;
    out->n = (reply->elements - 1) / 3;
    for (size_t i = 0; i < out->n; i++) {
        out->windows[i].used = num_at(reply, 1 + 3 * i);
        out->windows[i].start_ms = num_at(reply, 2 + 3 * i);
        out->windows[i].end_ms = num_at(reply, 3 + 3 * i);
    }
    return 0;
}

static void deliver_budget(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                           int extra)
{
    struct txn_budget_reply r;
    struct core_err bad;

    if (err == NULL && txn_budget_parse((enum txn_budget_op)extra, reply, &r) < 0) {
        err = txn_bad_reply(&bad, "BUDGET");
    }
    ((txn_budget_cb)cb)(err ? NULL : &r, err, arg);
}

int txn_budget(struct store *s, struct txn_args *a, const struct txn_budget *b, txn_budget_cb cb,
               void *arg)
{
    int rc = txn_budget_build(a, store_keys(s), b);

    return rc < 0 ? rc : txn_call(s, SCRIPT_BUDGET, a, deliver_budget, (txn_fn)cb, arg, (int)b->op);
}
