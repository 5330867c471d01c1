/*
 * core/txn_sched.c — TICK's C side (core/txn_sched.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/txn_sched.h"

/*
 * KEYS: delayed, leases, expiry, leader. ARGV: now, limit, node, leader ttl, task key prefix,
 * tenant key prefix, wake channel, retention, queue key prefix, the worker-lost error — the order
 * of core/lua/tick.lua's first lines. The task and queue prefixes are not read by the script (the
 * prelude builds those keys) but keep their places in the layout.
 */
int txn_tick_build(struct txn_args *a, const struct keyspace *ks, const struct txn_tick *p)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_DELAYED, NULL);
    txn_arg_key(a, ks, KS_LEASES, NULL);
    txn_arg_key(a, ks, KS_EXPIRY, NULL);
    txn_arg_key(a, ks, KS_LEADER, NULL);
    a->nkeys = 4;
    txn_arg_i64(a, p->now_ms);
    txn_arg_i64(a, p->limit);
    txn_arg(a, p->node);
    txn_arg_i64(a, p->leader_ttl_ms);
    txn_arg_key(a, ks, KS_TASK, NULL);
    txn_arg_key(a, ks, KS_TENANT, NULL);
    txn_arg_key(a, ks, KS_CHANNEL_WAKE, NULL);
    txn_arg_i64(a, p->retention_ms);
    txn_arg_key(a, ks, KS_QUEUE, NULL);
    txn_arg(a, p->lost_error);
    return a->oom ? CORE_ENOMEM : 0;
}

static bool is_word(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_STRING && strcmp(r->str, word) == 0;
}

/* {"follower"}, or {"leader", promoted, recovered, swept, expired[, {ids}]}. */
int txn_tick_parse(const redisReply *reply, struct txn_ticked *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return -1;
    }
    if (is_word(reply->element[0], "follower")) {
        return 0;
    }
    if (!is_word(reply->element[0], "leader") || reply->elements < 5) {
        return -1;
    }
    for (size_t i = 1; i < 5; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            return -1;
        }
    }
    out->leader = true;
    out->promoted = reply->element[1]->integer;
    out->recovered = reply->element[2]->integer;
    out->swept = reply->element[3]->integer;
    out->expired = reply->element[4]->integer;
    if (reply->elements >= 6 && reply->element[5]->type == REDIS_REPLY_ARRAY &&
        reply->element[5]->elements > 0) {
        out->gone = reply->element[5];
        out->n_gone = reply->element[5]->elements;
    }
    return 0;
}

const char *txn_ticked_gone(const struct txn_ticked *t, size_t i)
{
    const redisReply *id;

    if (t->gone == NULL || i >= t->n_gone) {
        return NULL;
    }
    id = t->gone->element[i];
    return id->type == REDIS_REPLY_STRING ? id->str : NULL;
}

static void deliver_tick(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                         int extra)
{
    struct txn_ticked t;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_tick_parse(reply, &t) < 0) {
        err = txn_bad_reply(&bad, "TICK");
    }
    ((txn_tick_cb)cb)(err ? NULL : &t, err, arg);
}

int txn_tick(struct store *s, struct txn_args *a, const struct txn_tick *p, txn_tick_cb cb,
             void *arg)
{
    int rc = txn_tick_build(a, store_keys(s), p);

    return rc < 0 ? rc : txn_call(s, SCRIPT_TICK, a, deliver_tick, (txn_fn)cb, arg, 0);
}
