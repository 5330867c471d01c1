/*
 * core/txn_keys.c — API_KEYS's argument and reply layouts (core/lua/keys.lua), written once.
 */
#include <stdlib.h>
#include <string.h>

#include "core/txn_keys.h"

/* Fields per record in a reply, in the script's order. */
#define REC_FIELDS 9

static const char *const op_names[TXN_KEYS_OP_COUNT] = {
    [TXN_KEYS_CREATE] = "create",
    [TXN_KEYS_LIST] = "list",
    [TXN_KEYS_REVOKE] = "revoke",
    [TXN_KEYS_LOAD] = "load",
};

int txn_keys_build(struct txn_args *a, const struct keyspace *ks, const struct txn_keys *k)
{
    txn_args_reset(a);
    if ((unsigned)k->op >= TXN_KEYS_OP_COUNT ||
        ((k->op == TXN_KEYS_CREATE || k->op == TXN_KEYS_REVOKE) &&
         (k->id == NULL || k->id[0] == '\0'))) {
        return CORE_EINVAL;
    }
    if (k->op == TXN_KEYS_CREATE &&
        (k->tenant == NULL || k->sha == NULL || strlen(k->sha) != 64 || k->name == NULL)) {
        return CORE_EINVAL;
    }
    txn_arg_key(a, ks, KS_API_KEY, k->id ? k->id : "");
    txn_arg_key(a, ks, KS_API_KEY_SHA, NULL);
    txn_arg_key(a, ks, KS_API_KEY_VERSION, NULL);
    a->nkeys = 3;
    txn_arg(a, op_names[k->op]);
    switch (k->op) {
    case TXN_KEYS_CREATE:
        txn_arg(a, k->id);
        txn_arg(a, k->tenant);
        txn_arg(a, k->name);
        txn_arg(a, k->sha);
        txn_arg(a, k->models);
        txn_arg_i64(a, k->created_s);
        txn_arg_i64_if(a, k->expires_s, k->expires_s > 0);
        txn_arg(a, k->budget);
        break;
    case TXN_KEYS_LIST:
        txn_arg(a, k->tenant);
        txn_arg(a, k->after);
        txn_arg_i64_if(a, k->limit, k->limit > 0);
        break;
    case TXN_KEYS_REVOKE:
        txn_arg_i64(a, k->now_s);
        break;
    case TXN_KEYS_LOAD:
        txn_arg_i64_if(a, k->version, k->version >= 0);
        break;
    default:
        break;
    }
    return a->oom ? CORE_ENOMEM : 0;
}

static int64_t num_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

int txn_keys_parse(const redisReply *reply, struct txn_keys_reply *out)
{
    static const struct {
        const char *word;
        enum txn_keys_status status;
    } words[] = {{"ok", TXN_KEYS_OK},
                 {"exists", TXN_KEYS_EXISTS},
                 {"not_found", TXN_KEYS_NOT_FOUND},
                 {"same", TXN_KEYS_SAME},
                 {"more", TXN_KEYS_MORE}};
    size_t i, w;

    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        (reply->elements - 2) % REC_FIELDS != 0 ||
        (reply->elements - 2) / REC_FIELDS > TXN_KEYS_MAX) {
        return -1;
    }
    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            return -1;
        }
    }
    for (w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        if (strcmp(reply->element[0]->str, words[w].word) == 0) {
            break;
        }
    }
    if (w == sizeof(words) / sizeof(words[0])) {
        return -1;
    }
    out->status = words[w].status;
    out->version = num_of(reply->element[1]);
    out->n = (reply->elements - 2) / REC_FIELDS;
    if (out->n == 0) {
        return 0;
    }
    out->recs = calloc(out->n, sizeof(*out->recs));
    if (out->recs == NULL) {
        out->n = 0;
        return CORE_ENOMEM;
    }
    for (i = 0; i < out->n; i++) {
        redisReply *const *f = reply->element + 2 + i * REC_FIELDS;
        struct txn_key_rec *r = &out->recs[i];

        r->id = f[0]->str;
        r->tenant = f[1]->str;
        r->name = f[2]->str;
        r->sha = f[3]->str;
        r->models = f[4]->str;
        r->created_s = num_of(f[5]);
        r->expires_s = num_of(f[6]);
        r->revoked_s = num_of(f[7]);
        r->budget = f[8]->str;
    }
    return 0;
}

void txn_keys_reply_cleanup(struct txn_keys_reply *out)
{
    free(out->recs);
    out->recs = NULL;
    out->n = 0;
}

static void deliver_keys(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                         int extra)
{
    struct txn_keys_reply r;
    struct core_err bad;
    int rc = 0;

    (void)extra;
    memset(&r, 0, sizeof(r));
    if (err == NULL && (rc = txn_keys_parse(reply, &r)) < 0) {
        err = txn_bad_reply(&bad, "API_KEYS");
    }
    ((txn_keys_cb)cb)(err ? NULL : &r, err, arg);
    txn_keys_reply_cleanup(&r);
}

int txn_keys(struct store *s, struct txn_args *a, const struct txn_keys *k, txn_keys_cb cb,
             void *arg)
{
    int rc = txn_keys_build(a, store_keys(s), k);

    return rc < 0 ? rc : txn_call(s, SCRIPT_API_KEYS, a, deliver_keys, (txn_fn)cb, arg, (int)k->op);
}
