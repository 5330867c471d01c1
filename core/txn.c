/*
 * core/txn.c — a script call's arguments (core/txn.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/txn.h"
#include "core/util.h"

struct txn_block {
    struct txn_block *next;
    size_t used, cap;
    char data[];
};

void txn_args_init(struct txn_args *a)
{
    memset(a, 0, sizeof(*a));
}

void txn_args_reset(struct txn_args *a)
{
    struct txn_block *b = a->blocks;
    size_t total = 0;

    /* One block of the size the last call needed: a call of the same size (a worker's FINISH
     * every loop turn) then formats into it without allocating. */
    if (b != NULL && b->next != NULL) {
        for (struct txn_block *x = b; x; x = x->next) {
            total += x->cap;
        }
        while (b) {
            struct txn_block *next = b->next;
            free(b);
            b = next;
        }
        a->blocks = malloc(sizeof(*a->blocks) + total);
        if (a->blocks != NULL) {
            a->blocks->next = NULL;
            a->blocks->cap = total;
        }
    }
    if (a->blocks != NULL) {
        a->blocks->used = 0;
    }
    a->nkeys = 0;
    a->n = 0;
    a->oom = 0;
}

void txn_args_cleanup(struct txn_args *a)
{
    struct txn_block *b = a->blocks;
    while (b) {
        struct txn_block *next = b->next;
        free(b);
        b = next;
    }
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof(*a));
}

static int grow(struct txn_args *a)
{
    int cap = a->cap ? a->cap * 2 : 64;
    const char **v;
    size_t *len;

    if (a->n < a->cap) {
        return 0;
    }
    v = realloc(a->v, sizeof(*v) * (size_t)cap);
    if (v == NULL) {
        return -1;
    }
    a->v = v;
    len = realloc(a->len, sizeof(*len) * (size_t)cap);
    if (len == NULL) {
        return -1;
    }
    a->len = len;
    a->cap = cap;
    return 0;
}

void txn_arg_len(struct txn_args *a, const char *s, size_t len)
{
    if (a->oom || grow(a) < 0) {
        a->oom = 1;
        return;
    }
    a->v[a->n] = s ? s : "";
    a->len[a->n] = s ? len : 0;
    a->n++;
}

void txn_arg(struct txn_args *a, const char *s)
{
    txn_arg_len(a, s, s ? strlen(s) : 0);
}

/* n bytes of scratch that stay where they are until reset; NULL on OOM. */
static char *scratch(struct txn_args *a, size_t n)
{
    struct txn_block *b = a->blocks;

    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > TXN_ARGS_BLOCK ? n : TXN_ARGS_BLOCK;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL) {
            return NULL;
        }
        b->used = 0;
        b->cap = cap;
        b->next = a->blocks;
        a->blocks = b;
    }
    b->used += n;
    return b->data + b->used - n;
}

void txn_arg_copy(struct txn_args *a, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *p = a->oom ? NULL : scratch(a, n + 1);

    if (p == NULL) {
        a->oom = 1;
        return;
    }
    memcpy(p, s ? s : "", n);
    p[n] = '\0';
    txn_arg_len(a, p, n);
}

void txn_arg_i64(struct txn_args *a, int64_t v)
{
    char *p = a->oom ? NULL : scratch(a, 24);

    if (p == NULL) {
        a->oom = 1;
        return;
    }
    util_fmt_i64(p, 24, v);
    txn_arg_len(a, p, strlen(p));
}

void txn_arg_i64_if(struct txn_args *a, int64_t v, int when)
{
    if (when) {
        txn_arg_i64(a, v);
    } else {
        txn_arg_len(a, "", 0);
    }
}

void txn_arg_key(struct txn_args *a, const struct keyspace *ks, const char *family, const char *id)
{
    size_t n = ks->len + strlen(family) + (id ? strlen(id) : 0) + 1;
    char *p = a->oom ? NULL : scratch(a, n);

    if (p == NULL || keyspace_key(ks, p, n, family, id) != 0) {
        a->oom = 1;
        return;
    }
    txn_arg_len(a, p, n - 1);
}

int txn_send(struct store *s, enum script_id id, const struct txn_args *a, store_cb cb, void *arg)
{
    if (a->oom) {
        return CORE_ENOMEM;
    }
    return store_script(s, id, cb, arg, a->nkeys, a->n, a->v, a->len);
}

/* What txn_call carries through the store to the reply. */
struct txn_pending {
    txn_deliver_fn deliver;
    txn_fn cb;
    void *arg;
    int extra;
};

static void on_call_reply(redisReply *reply, const struct core_err *err, void *arg)
{
    struct txn_pending p = *(struct txn_pending *)arg;

    free(arg);
    p.deliver(reply, err, p.cb, p.arg, p.extra);
}

int txn_call(struct store *s, enum script_id id, const struct txn_args *a, txn_deliver_fn deliver,
             txn_fn cb, void *arg, int extra)
{
    struct txn_pending *p;
    int rc;

    if (cb == NULL) {
        return txn_send(s, id, a, NULL, NULL);
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return CORE_ENOMEM;
    }
    *p = (struct txn_pending){deliver, cb, arg, extra};
    rc = txn_send(s, id, a, on_call_reply, p);
    if (rc < 0) {
        free(p);
    }
    return rc;
}

const struct core_err *txn_bad_reply(struct core_err *e, const char *what)
{
    core_err_clear(e);
    core_err_set(e, CORE_EINTERNAL, NULL, "unexpected %s reply", what);
    return e;
}
