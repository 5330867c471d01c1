/*
 * core/txn_usage.c — USAGE's argument and reply layouts (core/lua/usage.lua), written once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/txn_usage.h"

int txn_usage_build(struct txn_args *a, const struct keyspace *ks, const struct txn_usage *u)
{
    char hour[24];

    txn_args_reset(a);
    if (u->from_hour_s < 0 || u->from_hour_s % 3600 != 0 || u->to_hour_s % 3600 != 0 ||
        u->to_hour_s < u->from_hour_s ||
        (u->to_hour_s - u->from_hour_s) / 3600 > TXN_USAGE_MAX_HOURS) {
        return CORE_EINVAL;
    }
    snprintf(hour, sizeof(hour), "%lld", (long long)u->from_hour_s);
    txn_arg_key(a, ks, KS_USAGE_TENANTS, hour);
    a->nkeys = 1;
    txn_arg(a, u->tenant ? u->tenant : "");
    txn_arg_i64(a, u->from_hour_s);
    txn_arg_i64(a, u->to_hour_s);
    txn_arg_i64(a, TXN_USAGE_MAX_HOURS);
    return a->oom ? CORE_ENOMEM : 0;
}

int txn_usage_parse(const redisReply *reply, struct txn_usage_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements % 3 != 0) {
        return -1;
    }
    for (size_t i = 0; i < reply->elements; i += 3) {
        const redisReply *pairs = reply->element[i + 2];
        if (reply->element[i]->type != REDIS_REPLY_STRING ||
            reply->element[i + 1]->type != REDIS_REPLY_STRING || pairs->type != REDIS_REPLY_ARRAY ||
            pairs->elements % 2 != 0) {
            return -1;
        }
        for (size_t j = 0; j < pairs->elements; j++) {
            if (pairs->element[j]->type != REDIS_REPLY_STRING) {
                return -1;
            }
        }
    }
    out->n = reply->elements / 3;
    out->raw = reply;
    return 0;
}

void txn_usage_hash_at(const struct txn_usage_reply *r, size_t i, struct txn_usage_hash *out)
{
    out->tenant = r->raw->element[3 * i]->str;
    out->hour_s = strtoll(r->raw->element[3 * i + 1]->str, NULL, 10);
    out->pairs = r->raw->element[3 * i + 2];
}

static void deliver_usage(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                          int extra)
{
    struct txn_usage_reply r;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_usage_parse(reply, &r) < 0) {
        err = txn_bad_reply(&bad, "USAGE");
    }
    ((txn_usage_cb)cb)(err ? NULL : &r, err, arg);
}

int txn_usage(struct store *s, struct txn_args *a, const struct txn_usage *u, txn_usage_cb cb,
              void *arg)
{
    int rc = txn_usage_build(a, store_keys(s), u);

    return rc < 0 ? rc : txn_call(s, SCRIPT_USAGE, a, deliver_usage, (txn_fn)cb, arg, 0);
}
