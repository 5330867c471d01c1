/*
 * core/txn_budget.h — budgets' admin transactions: BUDGET (core/lua/budget.lua) put, get and
 * delete of a subject's budget (see core/txn.h for the layer; core/lua/prelude.lua says what a
 * budget holds, and CLAIM and FINISH move its counters).
 */
#ifndef SLUICE_CORE_TXN_BUDGET_H
#define SLUICE_CORE_TXN_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

enum txn_budget_op { TXN_BUDGET_PUT, TXN_BUDGET_GET, TXN_BUDGET_DELETE, TXN_BUDGET_OP_COUNT };

/* One BUDGET call; strings borrowed for the call. */
struct txn_budget {
    enum txn_budget_op op;
    const char *subject; /* "t:<tenant>" or "k:<key id>" */
    int64_t now_ms;
    const char *cfg; /* put: the budget's JSON (policy, limits with ms and max) */
};

#define TXN_BUDGET_LIMITS_MAX 8

/* A limit's current window as GET reads it. */
struct txn_budget_window {
    int64_t used; /* nano-USD */
    int64_t start_ms, end_ms;
};

/* The answer: get's cfg (NULL: no budget) and windows, in the cfg's limit order. Borrowed. */
struct txn_budget_reply {
    const char *cfg;
    struct txn_budget_window windows[TXN_BUDGET_LIMITS_MAX];
    size_t n;
};

/* Builds b into a (reset first) for keyspace ks. 0 or CORE_EINVAL / CORE_ENOMEM. */
int txn_budget_build(struct txn_args *a, const struct keyspace *ks, const struct txn_budget *b);

/* Parses op's reply. 0, or -1 for a reply of the wrong shape. */
int txn_budget_parse(enum txn_budget_op op, const redisReply *reply, struct txn_budget_reply *out);

typedef void (*txn_budget_cb)(const struct txn_budget_reply *reply, const struct core_err *err,
                              void *arg);

/* Builds and sends b on s. The store's contract (core/txn.h). */
int txn_budget(struct store *s, struct txn_args *a, const struct txn_budget *b, txn_budget_cb cb,
               void *arg);

#endif
