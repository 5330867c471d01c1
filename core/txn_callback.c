/*
 * core/txn_callback.c — the callback URL layout and NUDGE's call (core/txn_callback.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/task.h"
#include "core/txn_callback.h"

bool txn_callback_provider_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > TXN_CALLBACK_PROVIDER_MAX || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

int txn_callback_url(char *buf, size_t size, const char *base, const char *provider,
                     const char *task_id)
{
    int n;

    if (size == 0) {
        return -1;
    }
    buf[0] = '\0';
    if (base == NULL || !txn_callback_provider_ok(provider) || task_id == NULL ||
        !task_id_valid(task_id)) {
        return -1;
    }
    n = snprintf(buf, size, "%s" TXN_CALLBACK_PATH "%s/%s", base, provider, task_id);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return -1;
    }
    return 0;
}

static const char *const nudge_names[TXN_NUDGE_RESULT_COUNT] = {
    [TXN_NUDGE_NUDGED] = "nudged",       [TXN_NUDGE_NOTFOUND] = "notfound",
    [TXN_NUDGE_FINISHED] = "finished",   [TXN_NUDGE_FOREIGN] = "foreign",
    [TXN_NUDGE_NOTPARKED] = "notparked",
};

const char *txn_nudge_result_name(enum txn_nudge_result r)
{
    return (unsigned)r < TXN_NUDGE_RESULT_COUNT ? nudge_names[r] : "";
}

/* KEYS: the task, polls. ARGV: id, now ms, wake channel, then "alias|index" per deployment. */
int txn_nudge_build(struct txn_args *a, const struct keyspace *ks, const struct txn_nudge *p)
{
    txn_args_reset(a);
    if (p->n_deps == 0 || p->deps == NULL) {
        return CORE_EINVAL;
    }
    txn_arg_key(a, ks, KS_TASK, p->id);
    txn_arg_key(a, ks, KS_POLLS, NULL);
    a->nkeys = 2;
    txn_arg(a, p->id);
    txn_arg_i64(a, p->now_ms);
    txn_arg_key(a, ks, KS_CHANNEL_WAKE, NULL);
    for (size_t i = 0; i < p->n_deps; i++) {
        char pair[256];
        int n = snprintf(pair, sizeof(pair), "%s|%zu", p->deps[i].alias ? p->deps[i].alias : "",
                         p->deps[i].index);
        if (n < 0 || (size_t)n >= sizeof(pair)) {
            return CORE_EINVAL;
        }
        txn_arg_copy(a, pair);
    }
    return a->oom ? CORE_ENOMEM : 0;
}

/* {word}: one of nudge_names. */
int txn_nudge_parse(const redisReply *reply, enum txn_nudge_result *out)
{
    const redisReply *w;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 1) {
        return -1;
    }
    w = reply->element[0];
    if (w->type != REDIS_REPLY_STRING && w->type != REDIS_REPLY_STATUS) {
        return -1;
    }
    for (int i = 0; i < TXN_NUDGE_RESULT_COUNT; i++) {
        if (strcmp(w->str, nudge_names[i]) == 0) {
            *out = (enum txn_nudge_result)i;
            return 0;
        }
    }
    return -1;
}

static void deliver_nudge(redisReply *reply, const struct core_err *err, txn_fn cb, void *arg,
                          int extra)
{
    enum txn_nudge_result r = TXN_NUDGE_NOTFOUND;
    struct core_err bad;

    (void)extra;
    if (err == NULL && txn_nudge_parse(reply, &r) < 0) {
        err = txn_bad_reply(&bad, "NUDGE");
    }
    ((txn_nudge_cb)cb)(r, err, arg);
}

int txn_nudge(struct store *s, struct txn_args *a, const struct txn_nudge *p, txn_nudge_cb cb,
              void *arg)
{
    int rc = txn_nudge_build(a, store_keys(s), p);

    return rc < 0 ? rc : txn_call(s, SCRIPT_NUDGE, a, deliver_nudge, (txn_fn)cb, arg, 0);
}
