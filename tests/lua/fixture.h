/*
 * tests/lua/fixture.h — what the script tests share: a redis-server of their own, the scripts of
 * core/scripts.h rendered for a keyspace and loaded into it (their SHA-1s checked), one
 * synchronous runner for a script call built by the transaction layer (core/txn_*.h), the
 * fixture calls that set up states (SUBMIT, CLAIM, FINISH, TICK, CANCEL) with the fixture's
 * defaults, keys of the fixture's keyspace, and the whole Redis state as text, so a batched call
 * can be compared with the same calls one by one.
 *
 * Every script call goes through the txn builders (core/txn_task.h, txn_worker.h, txn_sched.h,
 * txn_webhook.h, txn_batch.h), so the layout a test exercises is the one the roles send; replies
 * are read with the txn parsers, except where a test pins a reply's exact shape.
 *
 * Include tests/unit/check.h first: the CHECK_* macros below use its CHECK.
 */
#ifndef SLUICE_TESTS_LUA_FIXTURE_H
#define SLUICE_TESTS_LUA_FIXTURE_H

#include <stdlib.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "core/keys.h"
#include "core/scripts.h"
#include "core/txn.h"
#include "core/txn_batch.h"
#include "core/txn_sched.h"
#include "core/txn_task.h"
#include "core/txn_webhook.h"
#include "core/txn_worker.h"

/* The clock the fixtures run at (script time is an argument, never Redis's clock). */
#define FX_NOW 1700000000000LL
#define FX_RET 3600000LL /* retention ms */
#define FX_LEASE 60000LL /* lease ms */
#define FX_LOST_ERROR "{\"message\":\"worker lost\",\"code\":\"worker_lost\"}"
#define FX_NOROUTE_ERROR "{\"message\":\"no deployment meets max_cost\",\"code\":\"max_cost\"}"
/* One unpaced deployment (no rpm, tpm or concurrency limit). */
#define FX_ROUTING_OPEN                                                                            \
    "{\"strategy\":\"cost\",\"breaker\":{\"min\":10,\"pct\":50,\"window\":30000,\"open\":15000},"  \
    "\"deps\":[{\"rpm\":0,\"tpm\":0,\"maxc\":0,\"weight\":1,\"pin\":0.15,\"pout\":0.6,\"pimg\":0," \
    "\"psec\":0}]}"

#define FX_KEY_RING 8  /* fx_key's buffers */
#define FX_KEY_MAX 256 /* bytes of one fx_key */

/* A redis-server of the test's own. */
struct fx {
    pid_t pid;
    int port;
    char dir[256];
    redisContext *c;
    struct keyspace keys;    /* the keyspace the fixture works in (fx_start: the default) */
    struct scripts *scripts; /* rendered for it */
    struct txn_args args;    /* the fixture calls' scratch, reset by each */
    char key_ring[FX_KEY_RING][FX_KEY_MAX];
    int key_next;
};

/*
 * Starts redis-server (no persistence) on a free 127.0.0.1 port in a new temporary directory,
 * connects, and loads every script of the default keyspace with SCRIPT LOAD, checking that Redis
 * names each by scripts_sha(). 0, or -1 with the reason on stderr (nothing left running).
 */
int fx_start(struct fx *f);
/* Stops the server (SIGTERM, SIGKILL after 5 s) and removes its directory. */
void fx_stop(struct fx *f);
/* FLUSHALL: the next case starts from nothing (the loaded scripts stay). */
void fx_flush(struct fx *f);
/*
 * Renders the scripts for tag's keyspace (NULL: the default), loads them (SHA-1s checked) and
 * makes it f's keyspace: every fx_* call after this one builds its keys and calls its scripts
 * there. 0, or -1 with the reason on stderr (f unchanged).
 */
int fx_keyspace(struct fx *f, const char *tag);

/*
 * Runs the call a (built by a txn builder: its first a->nkeys arguments are KEYS) with EVALSHA of
 * script id in f's keyspace, synchronously. The reply: caller frees (NULL when a could not be
 * built or the connection failed, with the reason on stderr). A script error is printed on
 * stderr; with SLUICE_LUA_TRACE set the call is traced (tests/lua/README.md).
 */
redisReply *fx_run(struct fx *f, enum script_id id, const struct txn_args *a);

/*
 * The key family + id (id NULL: none) in f's keyspace, in one of FX_KEY_RING buffers of f:
 * valid until FX_KEY_RING more fx_key calls, so for one command's arguments (copy a key that
 * must live longer).
 */
const char *fx_key(struct fx *f, const char *family, const char *id);

/* A command's reply (redisCommand's format). Caller frees. */
redisReply *fx_cmd(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command's string (or integer, as text) reply, copied; NULL for nil. Caller frees. */
char *fx_str(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command's integer reply; -999 when it is not one. */
long long fx_int(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A task's field (HGET of its key), copied; NULL when absent. Caller frees. */
char *fx_field(struct fx *f, const char *id, const char *field);
/* A field of the stats hash as a number (0 when absent). */
long long fx_stat(struct fx *f, const char *field);
/*
 * Every key, sorted, with its type and content (hash fields and set members sorted, lists and
 * sorted sets in order with scores) and whether it has a TTL. Caller frees.
 */
char *fx_dump(struct fx *f);

/* Reply element i as a string (NULL when out of range or not a string), or as an integer. */
const char *fx_elem(const redisReply *r, size_t i);
long long fx_elem_int(const redisReply *r, size_t i);

/*
 * Task id for SUBMIT with the fixture's defaults: tenant t1, a chat task on alias m at normal
 * priority, created FX_NOW, 3 attempts, a one-message input, no Idempotency-Key (its ttl one
 * day), 100 tokens estimated, no deadline, quotas that never bind (1000000 queued, 1e12 stored
 * and artifact bytes). The test changes what it needs. id is borrowed.
 */
struct txn_submit fx_task(const char *id);
/* One SUBMIT call with n tasks (1 to TXN_SUBMIT_MAX). Caller frees the reply. */
redisReply *fx_submit(struct fx *f, const struct txn_submit *tasks, int n);
/* SUBMIT of one task; 0 when its answer is TXN_SUBMIT_OK. */
int fx_submit1(struct fx *f, const struct txn_submit *t);

/* SET the alias's routing key to json (what workers publish for CLAIM). */
void fx_routing(struct fx *f, const char *alias, const char *json);
/* CLAIM at now for up to n units (lease FX_LEASE, seed 1, burst 1000 ms, pace 1). Caller frees. */
redisReply *fx_claim(struct fx *f, long long now, int n);

/*
 * Outcome kind of task id's attempt at fence 1 with nothing else said: no JSON fields, no retry
 * or poll time, no slot taken, class none, no latency, status, pause, budgets or usage, no
 * attempt record. The test changes what it needs. id is borrowed.
 */
struct txn_outcome fx_outcome(const char *id, enum txn_outcome_kind kind);
/* One FINISH call at now with n outcomes; breaker min requests br_min, 50 %, 30 s window. Caller
 * frees the reply. */
redisReply *fx_finish(struct fx *f, long long now, long br_min, const struct txn_outcome *o, int n);

/* TICK at now as node (limit 1000 per step, leader ttl 10 s). Caller frees. */
redisReply *fx_tick(struct fx *f, long long now, const char *node);
/* CANCEL of id by tenant at now. Caller frees. */
redisReply *fx_cancel(struct fx *f, const char *id, const char *tenant, long long now);

/* A second connection subscribed to channel (caller frees with redisFree); NULL on failure. */
redisContext *fx_subscribe(struct fx *f, const char *channel);
/* How many messages sub received on channel since the last call (-1 on error), the first copied
 * to first (size bytes; NULL: not wanted): a marker is published after them, and Redis keeps the
 * order. */
int fx_messages(struct fx *f, redisContext *sub, const char *channel, char *first, size_t size);

/* CHECK that got (an owned string, freed here) equals want; want NULL: got is NULL. */
#define CHECK_OWNED(got, want)                                                                     \
    do {                                                                                           \
        char *owned_ = (got);                                                                      \
        const char *wanted_ = (want);                                                              \
        if (wanted_ == NULL) {                                                                     \
            CHECK(owned_ == NULL);                                                                 \
        } else {                                                                                   \
            CHECK_STR(owned_, wanted_);                                                            \
        }                                                                                          \
        free(owned_);                                                                              \
    } while (0)
#define CHECK_FIELD(f, id, field, want) CHECK_OWNED(fx_field((f), (id), (field)), (want))

#endif
