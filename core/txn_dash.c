/*
 * core/txn_dash.c — DASH's argument and reply layouts (core/lua/dash.lua), written once.
 */
#include <string.h>

#include "core/txn_dash.h"

static const char *const op_names[] = {
    [TXN_DASH_STATE] = "state",
    [TXN_DASH_TASKS] = "tasks",
    [TXN_DASH_HISTORY] = "history",
    [TXN_DASH_SAMPLE] = "sample",
};

int txn_dash_build(struct txn_args *a, const struct keyspace *ks, const struct txn_dash *d)
{
    (void)ks; /* the script builds its keys from the families: one slot, no declared key */
    txn_args_reset(a);
    if ((unsigned)d->op > TXN_DASH_SAMPLE) {
        return CORE_EINVAL;
    }
    a->nkeys = 0;
    txn_arg(a, op_names[d->op]);
    txn_arg_i64(a, d->now_ms);
    switch (d->op) {
    case TXN_DASH_STATE:
        txn_arg(a, d->tenant ? d->tenant : "");
        for (size_t i = 0; i < d->n_aliases; i++) {
            txn_arg(a, d->aliases[i].alias);
            txn_arg_i64(a, (int64_t)d->aliases[i].n_deployments);
        }
        break;
    case TXN_DASH_TASKS:
        if (d->limit < 1 || d->limit > DASH_TASKS_MAX) {
            return CORE_EINVAL;
        }
        txn_arg(a, d->tenant ? d->tenant : "");
        txn_arg(a, d->status ? d->status : "");
        txn_arg(a, d->model ? d->model : "");
        txn_arg_i64(a, d->limit);
        break;
    case TXN_DASH_HISTORY:
        txn_arg_i64(a, d->since_ms);
        break;
    case TXN_DASH_SAMPLE:
        txn_arg_i64(a, DASH_SAMPLE_MS - DASH_SAMPLE_MS / 10); /* a late tick still samples */
        txn_arg_i64(a, DASH_HISTORY_POINTS);
        break;
    }
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_dash_parse(enum txn_dash_op op, const redisReply *reply, struct txn_dash_reply *out)
{
    memset(out, 0, sizeof(*out));
    out->op = op;
    if (reply == NULL) {
        return -1;
    }
    switch (op) {
    case TXN_DASH_STATE:
        if (reply->type != REDIS_REPLY_STRING) {
            return -1;
        }
        out->json = reply->str;
        out->json_len = reply->len;
        return 0;
    case TXN_DASH_SAMPLE:
        if (reply->type != REDIS_REPLY_INTEGER) {
            return -1;
        }
        out->sampled = reply->integer == 1;
        return 0;
    case TXN_DASH_TASKS:
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
            return -1;
        }
        for (size_t i = 0; i < reply->elements; i += 2) {
            if (reply->element[i]->type != REDIS_REPLY_STRING ||
                reply->element[i + 1]->type != REDIS_REPLY_ARRAY) {
                return -1;
            }
        }
        out->n = reply->elements / 2;
        out->items = reply;
        return 0;
    case TXN_DASH_HISTORY:
        if (reply->type != REDIS_REPLY_ARRAY) {
            return -1;
        }
        for (size_t i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type != REDIS_REPLY_STRING) {
                return -1;
            }
        }
        out->n = reply->elements;
        out->items = reply;
        return 0;
    }
    return -1;
}

void txn_dash_task(const struct txn_dash_reply *r, size_t i, const char **id,
                   const redisReply **hash)
{
    *id = r->items->element[2 * i]->str;
    *hash = r->items->element[2 * i + 1];
}

const char *txn_dash_point(const struct txn_dash_reply *r, size_t i, size_t *len)
{
    *len = r->items->element[i]->len;
    return r->items->element[i]->str;
}

static void deliver_dash(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                         int extra)
{
    struct txn_dash_reply r;
    struct core_err bad;

    if (err == NULL && txn_dash_parse((enum txn_dash_op)extra, reply, &r) < 0) {
        err = txn_bad_reply(&bad, "DASH");
    }
    ((txn_dash_cb)cb)(err ? NULL : &r, err, arg);
}

int txn_dash(struct store *s, struct txn_args *a, const struct txn_dash *d, txn_dash_cb cb,
             void *arg)
{
    int rc = txn_dash_build(a, store_keys(s), d);

    return rc < 0 ? rc : txn_call(s, SCRIPT_DASH, a, deliver_dash, (txn_fn)cb, arg, (int)d->op);
}
