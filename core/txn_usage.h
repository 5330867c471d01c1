/*
 * core/txn_usage.h — usage analytics' read: USAGE (core/lua/usage.lua) returns the hourly usage
 * counters of one tenant or of every tenant over a range of hours (see core/txn.h for the layer;
 * core/lua/prelude.lua's usage_count says what the counters hold and finalize writes them).
 */
#ifndef SLUICE_CORE_TXN_USAGE_H
#define SLUICE_CORE_TXN_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

/* The most hours one USAGE call reads: 92 days. */
#define TXN_USAGE_MAX_HOURS 2208

/* One USAGE call; tenant borrowed for the call. */
struct txn_usage {
    const char *tenant;  /* NULL or "": every tenant with counters in each hour */
    int64_t from_hour_s; /* the first hour's start, Unix s (a multiple of 3600) */
    int64_t to_hour_s;   /* the end, exclusive (a multiple of 3600, at most TXN_USAGE_MAX_HOURS
                          * hours after from_hour_s) */
};

/* One tenant's counters of one hour: field, value pairs ("<alias>|<provider>|<key>|<metric>"). */
struct txn_usage_hash {
    const char *tenant;
    int64_t hour_s;
    const redisReply *pairs; /* an array of 2 * n strings */
};

/* The answer: n hashes in hour order (tenants sorted within an hour). Borrowed from the reply. */
struct txn_usage_reply {
    size_t n;
    const redisReply *raw;
};

/* Hash i (< r->n) of a reply. */
void txn_usage_hash_at(const struct txn_usage_reply *r, size_t i, struct txn_usage_hash *out);

/* Builds u into a (reset first) for keyspace ks. 0, or CORE_EINVAL (a bad range) / CORE_ENOMEM. */
int txn_usage_build(struct txn_args *a, const struct keyspace *ks, const struct txn_usage *u);

/* Parses a reply. 0, or -1 for a reply of the wrong shape. out borrows from reply. */
int txn_usage_parse(const redisReply *reply, struct txn_usage_reply *out);

typedef void (*txn_usage_cb)(const struct txn_usage_reply *reply, const struct core_err *err,
                             void *arg);

/* Builds and sends u on s (a is reset and reused). The store's contract (core/txn.h). */
int txn_usage(struct store *s, struct txn_args *a, const struct txn_usage *u, txn_usage_cb cb,
              void *arg);

#endif
