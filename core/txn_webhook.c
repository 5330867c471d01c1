/*
 * core/txn_webhook.c — WH_CLAIM's and WH_DONE's C side (core/txn_webhook.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/txn_webhook.h"

/* WH_CLAIM's reply: these fields per delivery, in this order (core/lua/wh_claim.lua). */
enum { F_ID, F_TASK, F_TENANT, F_EVENT, F_URL, F_ATTEMPT, F_BODY, CLAIM_FIELDS };

static const char *const outcome_names[TXN_WH_OUTCOME_COUNT] = {
    [TXN_WH_DELIVERED] = "delivered", [TXN_WH_RETRY] = "retry", [TXN_WH_STOPPED] = "stopped",
    [TXN_WH_FAILED] = "failed",       [TXN_WH_GONE] = "gone",
};

const char *txn_wh_outcome_name(enum txn_wh_outcome outcome)
{
    return (unsigned)outcome < TXN_WH_OUTCOME_COUNT ? outcome_names[outcome] : "";
}

int txn_wh_outcome_parse(const char *name)
{
    for (int i = 0; name && i < TXN_WH_OUTCOME_COUNT; i++) {
        if (strcmp(outcome_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* KEYS: the delivery queue. ARGV: now, n, lease, slots, most, scan, then tenant, count pairs. */
int txn_wh_claim_build(struct txn_args *a, const struct keyspace *ks, const struct txn_wh_claim *p)
{
    txn_args_reset(a);
    txn_arg_key(a, ks, KS_WEBHOOK_QUEUE, NULL);
    a->nkeys = 1;
    txn_arg_i64(a, p->now_ms);
    txn_arg_i64(a, p->n);
    txn_arg_i64(a, p->lease_ms);
    txn_arg_i64(a, p->slots);
    txn_arg_i64(a, p->most);
    txn_arg_i64(a, p->scan);
    for (size_t i = 0; i < p->n_held; i++) {
        txn_arg(a, p->held[i].tenant);
        txn_arg_i64(a, p->held[i].count);
    }
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_wh_claim_parse(const redisReply *reply, struct txn_wh_claimed *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    out->n = reply->elements / CLAIM_FIELDS;
    out->reply = reply;
    return 0;
}

int txn_wh_claimed_get(const struct txn_wh_claimed *c, size_t i, struct txn_wh_delivery *d)
{
    redisReply **f;

    memset(d, 0, sizeof(*d));
    if (i >= c->n) {
        return -1;
    }
    f = &c->reply->element[i * CLAIM_FIELDS];
    for (int k = 0; k < CLAIM_FIELDS; k++) {
        if (f[k]->type != REDIS_REPLY_STRING) {
            return -1;
        }
    }
    d->id = f[F_ID]->str;
    d->task = f[F_TASK]->str;
    d->tenant = f[F_TENANT]->str;
    d->event = f[F_EVENT]->str;
    d->url = f[F_URL]->str;
    d->attempt = atoi(f[F_ATTEMPT]->str);
    if (f[F_BODY]->len > 0) {
        d->body = f[F_BODY]->str;
        d->body_len = f[F_BODY]->len;
    }
    return 0;
}

/* KEYS: the delivery queue. ARGV: msg id, outcome, next at, record, body ("" keep). */
int txn_wh_done_build(struct txn_args *a, const struct keyspace *ks, const struct txn_wh_done *p)
{
    txn_args_reset(a);
    if ((unsigned)p->outcome >= TXN_WH_GONE) {
        return CORE_EINVAL;
    }
    txn_arg_key(a, ks, KS_WEBHOOK_QUEUE, NULL);
    a->nkeys = 1;
    txn_arg(a, p->msg_id);
    txn_arg(a, outcome_names[p->outcome]);
    txn_arg_i64(a, p->next_at_ms);
    txn_arg(a, p->record);
    txn_arg(a, p->body);
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_wh_done_parse(const redisReply *reply, enum txn_wh_outcome *out)
{
    int o;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        return -1;
    }
    o = txn_wh_outcome_parse(reply->element[0]->str);
    if (o < 0) {
        return -1;
    }
    *out = (enum txn_wh_outcome)o;
    return 0;
}

/* ---- the asynchronous calls ---------------------------------------------------------- */

static void deliver_claim(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                          int extra)
{
    struct txn_wh_claimed c;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_wh_claim_parse(reply, &c) < 0) {
        err = txn_bad_reply(&bad, "WH_CLAIM");
    }
    ((txn_wh_claim_cb)cb)(err ? NULL : &c, err, arg);
}

static void deliver_done(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                         int extra)
{
    enum txn_wh_outcome o = TXN_WH_GONE;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_wh_done_parse(reply, &o) < 0) {
        err = txn_bad_reply(&bad, "WH_DONE");
    }
    ((txn_wh_done_cb)cb)(o, err, arg);
}

int txn_wh_claim(struct store *s, struct txn_args *a, const struct txn_wh_claim *p,
                 txn_wh_claim_cb cb, void *arg)
{
    int rc = txn_wh_claim_build(a, store_keys(s), p);

    return rc < 0 ? rc : txn_call(s, SCRIPT_WH_CLAIM, a, deliver_claim, (txn_fn)cb, arg, 0);
}

int txn_wh_done(struct store *s, struct txn_args *a, const struct txn_wh_done *p, txn_wh_done_cb cb,
                void *arg)
{
    int rc = txn_wh_done_build(a, store_keys(s), p);

    return rc < 0 ? rc : txn_call(s, SCRIPT_WH_DONE, a, deliver_done, (txn_fn)cb, arg, 0);
}
