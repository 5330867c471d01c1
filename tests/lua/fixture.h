/*
 * tests/lua/fixture.h — what the script tests share: a redis-server of their own, the scripts of
 * core/scripts.h loaded into it (their SHA-1s checked), calls by SHA-1 as the store makes them,
 * builders for the arguments of the scripts that create fixture states (SUBMIT, CLAIM, FINISH,
 * TICK, CANCEL), and the whole Redis state as text, so a batched call can be compared with the
 * same calls one by one.
 *
 * The argument layouts here mirror the callers (api/tasks.c, worker/worker.c,
 * scheduler/scheduler.c, worker/webhooks.c, api/batches.c) until the typed layer of core/ makes
 * them one function each.
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

/* The clock the fixtures run at (script time is an argument, never Redis's clock). */
#define FX_NOW 1700000000000LL
#define FX_RET 3600000LL /* retention ms */
#define FX_LEASE 60000LL /* lease ms */
#define FX_WAKE "{sl}:wake"
#define FX_LOST_ERROR "{\"message\":\"worker lost\",\"code\":\"worker_lost\"}"
#define FX_NOROUTE_ERROR "{\"message\":\"no deployment meets max_cost\",\"code\":\"max_cost\"}"
/* One unpaced deployment (no rpm, tpm or concurrency limit). */
#define FX_ROUTING_OPEN                                                                            \
    "{\"strategy\":\"cost\",\"breaker\":{\"min\":10,\"pct\":50,\"window\":30000,\"open\":15000},"  \
    "\"deps\":[{\"rpm\":0,\"tpm\":0,\"maxc\":0,\"weight\":1,\"pin\":0.15,\"pout\":0.6,\"pimg\":0," \
    "\"psec\":0}]}"

/* A redis-server of the test's own. */
struct fx {
    pid_t pid;
    int port;
    char dir[256];
    redisContext *c;
    struct keyspace keys;    /* the default keyspace */
    struct scripts *scripts; /* rendered for it */
};

/*
 * Starts redis-server (no persistence) on a free 127.0.0.1 port in a new temporary directory,
 * connects, and loads every script with SCRIPT LOAD, checking that Redis names each by
 * script_sha(). 0, or -1 with the reason on stderr (nothing left running).
 */
int fx_start(struct fx *f);
/* Stops the server (SIGTERM, SIGKILL after 5 s) and removes its directory. */
void fx_stop(struct fx *f);
/* FLUSHALL: the next case starts from nothing. */
void fx_flush(struct fx *f);

#define FX_MAX_ARGS 4096

/* A script's arguments being built: borrowed strings, or formatted copies it owns. */
struct fx_args {
    int n;
    const char *v[FX_MAX_ARGS];
    char *own[FX_MAX_ARGS];
    int n_own;
};
struct fx_args *fx_args_new(void);
void fx_args_free(struct fx_args *a);
/* Appends s (borrowed; NULL is ""). */
void fx_arg(struct fx_args *a, const char *s);
void fx_argf(struct fx_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* EVALSHA script_sha(id) with the first nkeys of a as KEYS. The reply: caller frees. */
redisReply *fx_script(struct fx *f, enum script_id id, int nkeys, const struct fx_args *a);
/* A command's reply (redisCommand's format). Caller frees. */
redisReply *fx_cmd(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command's string (or integer, as text) reply, copied; NULL for nil. Caller frees. */
char *fx_str(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command's integer reply; -999 when it is not one. */
long long fx_int(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A task's field (HGET {sl}:t:<id> field), copied; NULL when absent. Caller frees. */
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

/* One task for SUBMIT; NULL or 0 fields take the defaults named in fixture.c. */
struct fx_task {
    const char *id, *tenant, *kind, *model, *prio, *input, *metadata;
    const char *idem;      /* Idempotency-Key (NULL: none) */
    const char *body_hash; /* hex */
    const char *reply_to, *deadline, *routing, *webhook, *batch, *custom_id;
    long long now;
    int max_attempts, stream;
    long est, max_queued;
    long long max_stored, max_artifacts;
};
/* Appends one task's SUBMIT_GROUP arguments. */
void fx_submit_group(struct fx_args *a, const struct fx_task *t);
/* One SUBMIT call with n tasks. Caller frees the reply. */
redisReply *fx_submit(struct fx *f, const struct fx_task *tasks, int n);
/* SUBMIT of one task; returns 0 when its answer is {"ok"}. */
int fx_submit1(struct fx *f, const struct fx_task *t);

/* SET {sl}:cfg:<alias> json (what workers publish for CLAIM). */
void fx_routing(struct fx *f, const char *alias, const char *json);
/* CLAIM at now for up to n units (lease FX_LEASE, seed 1, burst 1000 ms, pace 1). */
redisReply *fx_claim(struct fx *f, long long now, int n);
/* The ids a CLAIM reply leased, in order (15 fields a unit after the 2 header fields). */
#define FX_CLAIM_UNIT 15
#define FX_CLAIM_ID(r, i) fx_elem((r), 2 + (size_t)(i)*FX_CLAIM_UNIT)

/* One outcome for FINISH; NULL fields are "" except class ("none"), took_slot and wake ("0"). */
struct fx_outcome {
    const char *id, *fence, *outcome, *result, *usage, *provider, *cost, *error, *retry_at;
    const char *up_id, *job, *progress, *queue_position, *poll_at, *artifacts, *took_slot;
    const char *latency, *class, *pause_until, *remaining_requests, *remaining_tokens;
    const char *tokens_used, *http_status, *avoid, *attempt, *wake;
};
/* Appends one outcome's FINISH_GROUP arguments. */
void fx_finish_group(struct fx_args *a, const struct fx_outcome *o);
/* One FINISH call at now with n outcomes; breaker min requests br_min, 50 %, 30 s window. */
redisReply *fx_finish(struct fx *f, long long now, long br_min, const struct fx_outcome *o, int n);

/* TICK at now as node (limit 1000 per step, leader ttl 10 s). */
redisReply *fx_tick(struct fx *f, long long now, const char *node);
/* CANCEL of id by tenant at now. */
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
