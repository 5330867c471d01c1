/*
 * core/txn_keys.h — API keys kept as data: API_KEYS (core/lua/keys.lua) create, list, revoke and
 * load (see core/txn.h for the layer; core/keys.h for the records, api/admin_keys.c for the admin
 * API and api/keys.c for the table every api process keeps).
 */
#ifndef SLUICE_CORE_TXN_KEYS_H
#define SLUICE_CORE_TXN_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/store.h"
#include "core/txn.h"

enum txn_keys_op {
    TXN_KEYS_CREATE,
    TXN_KEYS_LIST,
    TXN_KEYS_REVOKE,
    TXN_KEYS_LOAD,
    TXN_KEYS_OP_COUNT
};

/* One API_KEYS call; strings borrowed for the call (NULL is ""). */
struct txn_keys {
    enum txn_keys_op op;
    const char *id;     /* create, revoke */
    const char *tenant; /* create; list: the tenant listed (NULL or "": every tenant) */
    const char *after;  /* list: the id of the previous page's last key (NULL: the first page) */
    int64_t limit;      /* list: the most keys on the page (0: all) */
    const char *name;   /* create */
    const char *sha;    /* create: the secret's SHA-256, 64 hex characters */
    const char *models; /* create: JSON list of aliases (NULL: any) */
    const char *budget; /* create: the budget's JSON (NULL: none) */
    int64_t created_s;  /* create */
    int64_t expires_s;  /* create: 0 never */
    int64_t now_s;      /* revoke */
    int64_t version;    /* load: the version the caller has (-1: none) */
};

/* What the script answered. */
enum txn_keys_status {
    TXN_KEYS_OK,
    TXN_KEYS_EXISTS,    /* create: the sha (or id) is another key's; nothing written */
    TXN_KEYS_NOT_FOUND, /* revoke: no such key */
    TXN_KEYS_SAME,      /* load: the caller's version is current; no records */
    TXN_KEYS_MORE,      /* list: keys follow the page's last (has_more) */
};

/* One key's record; strings borrowed from the reply ("" for an absent field). */
struct txn_key_rec {
    const char *id, *tenant, *name, *sha, *models, *budget;
    int64_t created_s, expires_s, revoked_s; /* 0: absent */
};

/* The most records one reply carries (a reply with more is refused). */
#define TXN_KEYS_MAX 100000

/* The answer: status, the keys' version after the call, the records (create, revoke: the key's;
 * list: newest first). recs is allocated by the parser: txn_keys_reply_cleanup frees it. */
struct txn_keys_reply {
    enum txn_keys_status status;
    int64_t version;
    struct txn_key_rec *recs;
    size_t n;
};

/* Builds k into a (reset first) for keyspace ks. 0 or CORE_EINVAL / CORE_ENOMEM. */
int txn_keys_build(struct txn_args *a, const struct keyspace *ks, const struct txn_keys *k);

/* Parses a reply into out (its strings borrowed from reply). 0, or -1 for a reply of the wrong
 * shape or CORE_ENOMEM (out then holds nothing to free). */
int txn_keys_parse(const redisReply *reply, struct txn_keys_reply *out);

/* Frees what txn_keys_parse allocated (out's records). */
void txn_keys_reply_cleanup(struct txn_keys_reply *out);

/* reply and err: borrowed for the call (reply NULL when err is set). */
typedef void (*txn_keys_cb)(const struct txn_keys_reply *reply, const struct core_err *err,
                            void *arg);

/* Builds and sends k on s. The store's contract (core/txn.h). */
int txn_keys(struct store *s, struct txn_args *a, const struct txn_keys *k, txn_keys_cb cb,
             void *arg);

#endif
