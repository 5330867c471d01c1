/*
 * scheduler/scheduler.c — the tick: one TICK script per period.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/artifact_ref.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/scripts.h"
#include "core/util.h"
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
    uint64_t promoted, recovered, swept, expired;
};

static void tick(struct sched *s);

static void on_tick_reply(redisReply *reply, const struct core_err *err, void *arg)
{
    struct sched *s = arg;
    bool leader;

    s->ticking = false;
    if (s->dying) {
        free(s);
        return;
    }
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return;
    }
    leader = strcmp(reply->element[0]->str, "leader") == 0;
    if (leader != s->leader) {
        log_info(leader ? "scheduler is the leader" : "scheduler is a follower", "node=%s",
                 s->node_id);
        s->leader = leader;
    }
    if (leader && reply->elements == 6 && reply->element[5]->type == REDIS_REPLY_ARRAY) {
        /* the swept tasks that kept artifacts: their bytes were given back, now their files */
        for (size_t i = 0; i < reply->element[5]->elements; i++) {
            const redisReply *id = reply->element[5]->element[i];
            if (id->type == REDIS_REPLY_STRING &&
                artifact_blob_remove(s->cfg->blobs.dir, id->str) < 0) {
                log_warn("cannot remove a swept task's artifacts", "task=%s errno=%d", id->str,
                         errno);
            }
        }
    }
    if (leader && reply->elements >= 5) {
        long long promoted = reply->element[1]->integer;
        long long recovered = reply->element[2]->integer;
        long long swept = reply->element[3]->integer;
        long long expired = reply->element[4]->integer;
        s->expired += (uint64_t)expired;
        s->promoted += (uint64_t)promoted;
        s->recovered += (uint64_t)recovered;
        s->swept += (uint64_t)swept;
        if (recovered > 0) {
            log_info("recovered tasks whose lease expired", "count=%lld", recovered);
        }
        /* A full step means a backlog: go again now rather than next period. */
        if (promoted >= SCHED_STEP_LIMIT || recovered >= SCHED_STEP_LIMIT ||
            swept >= SCHED_STEP_LIMIT || expired >= SCHED_STEP_LIMIT) {
            tick(s);
        }
    }
}

static void tick(struct sched *s)
{
    char now_s[24], lim_s[16], ttl_s[24], ret_s[24];
    long ttl = s->cfg->scheduler.tick_ms * 4;

    if (s->ticking || !store_ready(s->store)) {
        return;
    }
    ttl = ttl < SCHED_LEADER_MIN_TTL_MS ? SCHED_LEADER_MIN_TTL_MS : ttl;
    snprintf(now_s, sizeof(now_s), "%lld", (long long)util_now_ms());
    snprintf(lim_s, sizeof(lim_s), "%d", SCHED_STEP_LIMIT);
    snprintf(ttl_s, sizeof(ttl_s), "%ld", ttl);
    snprintf(ret_s, sizeof(ret_s), "%lld", (long long)s->cfg->tasks.retention_s * 1000);
    const char *argv[] = {KEY_DELAYED,  KEY_LEASES, KEY_EXPIRY, KEY_LEADER,       now_s,
                          lim_s,        s->node_id, ttl_s,      KEY_TASK,         KEY_TENANT,
                          CHANNEL_WAKE, ret_s,      KEY_QUEUE,  worker_lost_error};
    if (store_script(s->store, SCRIPT_TICK, on_tick_reply, s, 4, 14, argv, NULL) == 0) {
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
    free(s);
}
