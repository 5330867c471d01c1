/*
 * scheduler/scheduler.c — the tick: one TICK (core/txn_sched.h) per period.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/artifact_ref.h"
#include "core/log.h"
#include "core/txn_sched.h"
#include "core/util.h"
#include "scheduler/dash_sample.h"
#include "scheduler/scheduler.h"

/* Work per TICK call and kind (promotions, recoveries, sweeps, expiries). Redis runs nothing else
 * meanwhile: at 1,000 a sweep of expired tasks held it 20-40 ms (the soak's submit p99); a full
 * step ticks again at once, so a backlog still drains at Redis's pace. */
#define SCHED_STEP_LIMIT 200
#define SCHED_LEADER_MIN_TTL_MS 2000

/* Stored as the task's error when its worker vanished during its last allowed attempt. */
static const char worker_lost_error[] =
    "{\"message\":\"The worker running this task was lost during its last attempt\","
    "\"type\":\"server_error\",\"param\":null,\"code\":\"worker_lost\",\"retryable\":true,"
    "\"provider_status\":null}";

struct sched {
    struct event_base *base;
    const struct config *cfg;
    struct store *store;
    struct event *timer;
    bool ticking;
    bool dying; /* freed while a tick was in flight: the reply frees it */
    bool leader;
    char node_id[48];
    struct txn_args args; /* TICK's arguments, reused by every tick */
    uint64_t promoted, recovered, swept, expired;
};

static void tick(struct sched *s);

static void on_tick_reply(const struct txn_ticked *t, const struct core_err *err, void *arg)
{
    struct sched *s = arg;

    s->ticking = false;
    if (s->dying) {
        txn_args_cleanup(&s->args);
        free(s);
        return;
    }
    if (err != NULL) {
        return;
    }
    if (t->leader != s->leader) {
        log_info(t->leader ? "scheduler is the leader" : "scheduler is a follower", "node=%s",
                 s->node_id);
        s->leader = t->leader;
    }
    if (!t->leader) {
        return;
    }
    sched_dash_sample(s->store, &s->args, util_now_ms(), s->cfg->scheduler.tick_ms);
    /* the swept tasks that kept artifacts: their bytes were given back, now their files */
    for (size_t i = 0; i < t->n_gone; i++) {
        const char *id = txn_ticked_gone(t, i);
        if (id != NULL && artifact_blob_remove(s->cfg->blobs.dir, id) < 0) {
            log_warn("cannot remove a swept task's artifacts", "task=%s errno=%d", id, errno);
        }
    }
    s->expired += (uint64_t)t->expired;
    s->promoted += (uint64_t)t->promoted;
    s->recovered += (uint64_t)t->recovered;
    s->swept += (uint64_t)t->swept;
    if (t->recovered > 0) {
        log_info("recovered tasks whose lease expired", "count=%lld", (long long)t->recovered);
    }
    /* A full step means a backlog: go again now rather than next period. */
    if (t->promoted >= SCHED_STEP_LIMIT || t->recovered >= SCHED_STEP_LIMIT ||
        t->swept >= SCHED_STEP_LIMIT || t->expired >= SCHED_STEP_LIMIT) {
        tick(s);
    }
}

/* Sends one TICK unless one is in flight or the store is away (the timer tries again). */
static void tick(struct sched *s)
{
    long ttl = s->cfg->scheduler.tick_ms * 4;
    struct txn_tick p = {
        .now_ms = util_now_ms(),
        .limit = SCHED_STEP_LIMIT,
        .node = s->node_id,
        .leader_ttl_ms = ttl < SCHED_LEADER_MIN_TTL_MS ? SCHED_LEADER_MIN_TTL_MS : ttl,
        .retention_ms = (int64_t)s->cfg->tasks.retention_s * 1000,
        .lost_error = worker_lost_error,
    };

    if (s->ticking || !store_ready(s->store)) {
        return;
    }
    if (txn_tick(s->store, &s->args, &p, on_tick_reply, s) == 0) {
        s->ticking = true;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tick(arg);
}

struct sched *sched_new(struct event_base *base, const struct config *cfg, struct store *store,
                        struct core_err *err)
{
    struct sched *s = calloc(1, sizeof(*s));
    struct timeval tv;

    if (s == NULL || util_random_id("sched_", s->node_id, sizeof(s->node_id)) < 0) {
        free(s);
        core_err_set(err, CORE_ENOMEM, NULL, "cannot set up the scheduler");
        return NULL;
    }
    txn_args_init(&s->args);
    s->base = base;
    s->cfg = cfg;
    s->store = store;
    s->timer = event_new(base, -1, EV_PERSIST, on_timer, s);
    if (s->timer == NULL) {
        free(s);
        core_err_set(err, CORE_ENOMEM, NULL, "cannot set up the scheduler");
        return NULL;
    }
    tv.tv_sec = cfg->scheduler.tick_ms / 1000;
    tv.tv_usec = (cfg->scheduler.tick_ms % 1000) * 1000;
    event_add(s->timer, &tv);
    return s;
}

void sched_free(struct sched *s)
{
    if (s == NULL) {
        return;
    }
    log_info("scheduler stopped", "promoted=%llu recovered=%llu swept=%llu expired=%llu",
             (unsigned long long)s->promoted, (unsigned long long)s->recovered,
             (unsigned long long)s->swept, (unsigned long long)s->expired);
    event_free(s->timer);
    if (s->ticking) {
        s->dying = true; /* the store still holds s for the tick's reply */
        return;
    }
    txn_args_cleanup(&s->args);
    free(s);
}
