/*
 * worker/worker.c — the claim loop, heartbeats, outcomes and graceful stop.
 *
 * A job is one claimed unit of work: a call (a queued task's upstream attempt) or a poll (of a
 * parked long-running task). Its life: CALLING (upstream work in flight, exec.c) → REPORT_QUEUED
 * (its outcome waits for the end of the loop turn) → REPORTING (on the way to Redis, in one FINISH
 * call with the turn's other outcomes) → freed; or REPORT_WAIT when Redis could not take the
 * outcome, until the store is back. The worker claims in batches while it has free slots, and
 * sleeps when there is nothing to do until a "work arrived" message or its one-second tick (which
 * also picks up polls that came due).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys.h"
#include "core/log.h"
#include "core/txn_worker.h"
#include "core/util.h"
#include "worker/internal.h"

#define WORKER_TICK_MS 1000
#define WORKER_STOP_REPORT_WAIT_MS 5000
#define WORKER_SWEEP_MS 60000
#define WORKER_SWEEP_ENTRIES 5000
#define WORKER_CAPACITY_MIN_MS 2
#define WORKER_CAPACITY_MAX_MS 1000
#define WORKER_REPORT_BATCH 64 /* outcomes per FINISH call */

/* Stored as the error of a task whose routing.max_cost no deployment of its alias meets. */
static const char no_route_error[] =
    "{\"message\":\"No deployment of this model fits the task's routing (max_cost)\","
    "\"type\":\"invalid_request_error\",\"param\":\"routing.max_cost\","
    "\"code\":\"no_eligible_deployment\",\"retryable\":false,\"provider_status\":null}";

static void kick(struct worker *w);
static void maybe_done(struct worker *w);

static void job_free(struct job *j)
{
    exec_cleanup(j);
    free(j->model);
    free(j->input_text);
    free(j->up_id);
    free(j->job_text);
    free(j->reply_to);
    cJSON_free(j->result);
    cJSON_free(j->usage);
    cJSON_free(j->provider);
    cJSON_free(j->cost);
    cJSON_free(j->error);
    cJSON_free(j->artifacts);
    cJSON_free(j->out_up_id);
    cJSON_free(j->out_job);
    free(j);
}

/* Unlinks a finished job; frees it now, or when the last heartbeat naming it has answered. */
static void job_retire(struct job *j)
{
    struct worker *w = j->w;

    exec_abort(j);
    if (j->prev) {
        j->prev->next = j->next;
    } else {
        w->jobs = j->next;
    }
    if (j->next) {
        j->next->prev = j->prev;
    }
    j->prev = j->next = NULL;
    w->n_jobs--;
    j->dead = true;
    if (j->hb_refs == 0) {
        job_free(j);
    }
}

static void on_report(const enum txn_applied *applied, size_t n, const struct core_err *err,
                      void *arg);

/* The jobs of one FINISH call, in argument order. */
struct report_batch {
    struct worker *w;
    size_t n;
    struct job *jobs[WORKER_REPORT_BATCH];
};

/*
 * Queues the job's outcome for the FINISH call at the end of this loop turn: the outcomes of a
 * turn (often many: curl finishes several calls per socket event) go to Redis together, which
 * costs Redis far less per outcome than one call each.
 */
void worker_job_report(struct job *j)
{
    struct worker *w = j->w;

    j->state = JOB_REPORT_QUEUED;
    j->report_next = NULL;
    if (w->report_tail) {
        w->report_tail->report_next = j;
    } else {
        w->report_head = j;
        /* activated events run after those already active: the turn's other outcomes first */
        event_active(w->report, EV_TIMEOUT, 1);
    }
    w->report_tail = j;
}

/*
 * Job j's outcome as FINISH takes it, into o; its attempt record (a call whose deployment was
 * resolved: the record names it) into at. The strings stay the job's, borrowed until the call is
 * sent.
 */
static void job_outcome(const struct job *j, struct txn_outcome *o, struct txn_attempt *at)
{
    bool called = j->mode == TXN_MODE_CALL && j->dep != NULL;

    memset(o, 0, sizeof(*o));
    o->id = j->id;
    o->fence = j->fence;
    o->outcome = j->outcome;
    o->result = j->result;
    o->usage = j->usage;
    o->provider = j->provider;
    o->cost = j->cost;
    o->error = j->error;
    o->retry_at_ms = j->retry_at_ms;
    o->up_id = j->out_up_id;
    o->job = j->out_job;
    o->progress = j->progress;
    o->queue_position = j->queue_position;
    o->poll_at_ms = j->poll_at_ms;
    o->artifacts = j->artifacts;
    o->took_slot = called;
    o->wake_on_slot = j->dep != NULL && j->dep->max_concurrency > 0;
    o->class = j->class;
    o->latency_ms = j->latency_ms;
    o->http_status = j->http_status;
    o->pause_until_ms = j->pause_until_ms;
    o->remaining_requests = j->remaining_req;
    o->remaining_tokens = j->remaining_tok;
    o->tokens_used = j->tokens_used;
    o->avoid = j->avoid;
    o->detail = j->detail;
    if (called) {
        at->attempt = j->attempts;
        at->deployment = j->dep_index;
        at->provider = j->dep->provider->name;
        at->model = j->dep->model;
        at->err_code = j->err_code;
        at->err_message = j->err_message;
        o->attempt = at;
    }
}

/*
 * Sends up to WORKER_REPORT_BATCH queued outcomes in one FINISH call. If Redis cannot take them
 * now, they wait in REPORT_WAIT and the tick sends them again: an outcome is never dropped
 * because Redis blinked (the fence makes sending one twice harmless).
 */
static void send_reports(struct worker *w)
{
    struct report_batch *b = calloc(1, sizeof(*b));
    struct txn_finish h;
    int rc = CORE_ENOMEM;

    while (w->report_head && (b == NULL || b->n < WORKER_REPORT_BATCH)) {
        struct job *j = w->report_head;
        w->report_head = j->report_next;
        j->report_next = NULL;
        j->state = JOB_REPORT_WAIT;
        if (b == NULL) {
            continue; /* out of memory: every queued outcome waits for the tick */
        }
        b->jobs[b->n++] = j;
    }
    if (w->report_head == NULL) {
        w->report_tail = NULL;
    }
    if (b == NULL) {
        goto out;
    }
    b->w = w;
    h.now_ms = util_now_ms();
    h.retention_ms = (int64_t)w->cfg->tasks.retention_s * 1000;
    h.breaker_min_requests = w->cfg->breaker.min_requests;
    h.breaker_failure_pct = w->cfg->breaker.failure_pct;
    h.breaker_window_ms = w->cfg->breaker.window_ms;
    for (size_t i = 0; i < b->n; i++) {
        job_outcome(b->jobs[i], &w->report_out[i], &w->report_att[i]);
    }
    rc = txn_finish(w->store, &w->report_args, &h, w->report_out, b->n, on_report, b);
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        b->jobs[i]->state = JOB_REPORTING;
    }
out:
    if (rc != 0) {
        free(b);
    }
}

static void on_report_flush(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    while (w->report_head) {
        send_reports(w);
    }
}

/* What FINISH applied, counted once per process (the stop's log line). */
static void count_applied(struct worker *w, const struct job *j, enum txn_applied applied)
{
    switch (applied) {
    case TXN_APPLIED_COMPLETED:
        w->completed++;
        break;
    case TXN_APPLIED_FAILED:
        w->failed++;
        break;
    case TXN_APPLIED_RETRY:
        w->retried++;
        break;
    case TXN_APPLIED_RELEASE:
        w->released++;
        break;
    case TXN_APPLIED_PARK:
        w->parked++;
        break;
    case TXN_APPLIED_STALE:
        log_info("outcome refused: attempt no longer current", "task=%s fence=%lld", j->id,
                 (long long)j->fence);
        break;
    default:
        break; /* cancelled, expired, or not said */
    }
}

static void on_report(const enum txn_applied *applied, size_t n, const struct core_err *err,
                      void *arg)
{
    struct report_batch *b = arg;
    struct worker *w = b->w;

    for (size_t i = 0; i < b->n && i < n; i++) {
        struct job *j = b->jobs[i];

        if (err != NULL) {
            /* Unknown whether it ran; the fence makes sending it again harmless. */
            j->state = JOB_REPORT_WAIT;
            continue;
        }
        count_applied(w, j, applied[i]);
        job_retire(j);
    }
    free(b);
    if (!w->idle) {
        kick(w);
    }
    maybe_done(w);
}

int64_t worker_backoff_ms(const struct worker *w, int attempts, int64_t retry_after_ms)
{
    double d = (double)w->cfg->tasks.backoff_base_ms * pow(2.0, attempts > 1 ? attempts - 1 : 0);
    if (d > (double)w->cfg->tasks.backoff_max_ms) {
        d = (double)w->cfg->tasks.backoff_max_ms;
    }
    d = d / 2 + util_rand_unit() * d / 2;
    if (retry_after_ms > d) {
        d = (double)retry_after_ms;
    }
    return (int64_t)d;
}

int64_t worker_poll_interval(const struct job *j)
{
    return j->dep ? j->dep->provider->poll_interval_ms : 5000;
}

/* A job from one claimed unit u (borrowed: what the job keeps is copied). */
static struct job *job_from_claim(struct worker *w, const struct txn_claimed *u)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return NULL;
    }
    j->w = w;
    j->state = JOB_CALLING;
    j->class = TXN_CLASS_NONE;
    j->progress = -1;
    j->queue_position = -1;
    j->artifact_fd = -1;
    j->latency_ms = -1;
    j->remaining_req = -1;
    j->remaining_tok = -1;
    j->tokens_used = -1;
    snprintf(j->id, sizeof(j->id), "%s", u->id);
    j->fence = u->fence;
    j->attempts = u->attempts;
    j->max_attempts = u->max_attempts;
    snprintf(j->tenant, sizeof(j->tenant), "%s", u->tenant);
    j->model = strdup(u->model);
    j->kind = u->kind;
    j->input_text = strdup(u->input);
    j->mode = u->mode;
    j->cancelling = u->cancelling;
    j->up_id = strdup(u->up_id);
    j->job_text = strdup(u->job);
    j->dep_index = u->dep;
    j->stream = u->stream;
    j->reply_to = strdup(u->reply_to);
    j->created_ms = u->created_ms;
    j->next = w->jobs;
    if (w->jobs) {
        w->jobs->prev = j;
    }
    w->jobs = j;
    w->n_jobs++;
    return j;
}

static void publish_routing(struct worker *w);

/*
 * CLAIM found tasks of aliases whose routing is not in Redis (a flush, a restore from an older
 * snapshot): publish every alias's routing again, so those tasks run at the next claim, and say
 * so once per alias per process (/metrics counts every claim that met it:
 * sluice_routing_missing_total).
 */
static void routing_missing(struct worker *w, const char *aliases)
{
    for (size_t i = 0; i < w->cfg->n_models && i < WORKER_MAX_WARNED_MODELS; i++) {
        const char *alias = w->cfg->models[i].alias;
        size_t n = strlen(alias);
        const char *p = aliases;
        while ((p = strstr(p, alias)) != NULL) {
            if ((p == aliases || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
                break;
            }
            p += n;
        }
        if (p != NULL && !w->routing_warned[i]) {
            w->routing_warned[i] = true;
            log_warn("an alias's routing was missing from Redis; its tasks waited until it was "
                     "published again",
                     "model=%s", alias);
        }
    }
    publish_routing(w);
}

static void on_claim(const struct txn_claim_reply *r, const struct core_err *err, void *arg)
{
    struct worker *w = arg;
    size_t n;

    w->claiming = false;
    if (err != NULL) {
        return; /* the tick or the reconnect tries again */
    }
    if (r->missing_routing[0] != '\0') {
        routing_missing(w, r->missing_routing);
    }
    n = r->n_units;
    for (size_t i = 0; i < n; i++) {
        struct txn_claimed u;
        struct job *j = txn_claim_unit(r, i, &u) == 0 ? job_from_claim(w, &u) : NULL;
        if (j == NULL) {
            log_error("cannot hold a claimed task; its lease will expire", "task=%s", u.id);
            continue;
        }
        if (w->stopping && j->mode == TXN_MODE_CALL) {
            j->outcome = TXN_OUTCOME_RELEASE;
            worker_job_report(j);
        } else if (w->stopping) {
            j->outcome = TXN_OUTCOME_PARK; /* a poll claimed while stopping: due again at once */
            j->poll_at_ms = util_now_ms();
            worker_job_report(j);
        } else {
            exec_start(j);
        }
    }
    /* A full batch means there may be more: ask again. A short one means the queues were empty
     * when the script ran, unless a wake arrived since. */
    w->idle = (long)n < w->claim_asked && !w->woken;
    w->woken = false;
    if (w->idle && r->wait_ms > 0 && !w->stopping) {
        /* Work is waiting for a deployment's budget: claim again when it returns. */
        long ms = r->wait_ms < WORKER_CAPACITY_MIN_MS   ? WORKER_CAPACITY_MIN_MS
                  : r->wait_ms > WORKER_CAPACITY_MAX_MS ? WORKER_CAPACITY_MAX_MS
                                                        : (long)r->wait_ms;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(w->capacity, &tv);
    }
    if (!w->idle) {
        kick(w);
    }
}

/* Claims as many tasks as there are free slots (one batch at a time). */
static void kick(struct worker *w)
{
    long free_slots = w->cfg->worker.concurrency - (long)w->n_jobs;
    long n = free_slots < w->cfg->worker.claim_batch ? free_slots : w->cfg->worker.claim_batch;
    struct txn_claim c;

    if (w->stopping || w->claiming || n <= 0 || !store_ready(w->store)) {
        return;
    }
    c.now_ms = util_now_ms();
    c.lease_ms = w->cfg->tasks.lease_ms;
    c.max_units = n;
    c.seed = (uint32_t)(util_rand_unit() * 4294967295.0);
    c.burst_ms = w->cfg->scheduler.burst_ms;
    c.pace = (double)w->cfg->scheduler.pace_pct / 100.0;
    c.no_route_error = no_route_error;
    c.retention_ms = (int64_t)w->cfg->tasks.retention_s * 1000;
    if (txn_claim(w->store, &w->claim_args, &c, on_claim, w) == 0) {
        w->claiming = true;
        w->claim_asked = n;
    }
}

/* A heartbeat in flight: the jobs it names, in the order of the reply. */
struct heartbeat {
    struct worker *w;
    size_t n;
    struct job *jobs[];
};

static void on_heartbeat(const enum txn_lease *leases, size_t n, const struct core_err *err,
                         void *arg)
{
    struct heartbeat *hb = arg;
    struct worker *w = hb->w;

    (void)n;
    for (size_t i = 0; i < hb->n; i++) {
        struct job *j = hb->jobs[i];
        j->hb_refs--;
        if (j->dead) {
            if (j->hb_refs == 0) {
                job_free(j);
            }
            continue;
        }
        if (err != NULL || j->state != JOB_CALLING) {
            continue;
        }
        if (leases[i] == TXN_LEASE_CANCELLING && !j->cancelling) {
            /* The client cancelled (or the deadline passed): stop the call; FINISH turns the
             * outcome into cancelled. A long-running job's upstream job, if one was created,
             * is cancelled by the poll that parking makes due at once. */
            struct core_err e;
            exec_abort(j);
            core_err_clear(&e);
            core_err_set(&e, CORE_ECONFLICT, NULL, "cancelled");
            j->outcome = TXN_OUTCOME_FAILED;
            cJSON *ej = core_err_to_json(&e, true);
            j->error = cJSON_PrintUnformatted(ej);
            cJSON_Delete(ej);
            worker_job_report(j);
        } else if (leases[i] == TXN_LEASE_LOST) {
            log_warn("lease lost; dropping the attempt", "task=%s fence=%lld", j->id,
                     (long long)j->fence);
            job_retire(j);
        }
    }
    free(hb);
    maybe_done(w);
}

/* Extends the lease of every task still calling, in one script call. */
static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct heartbeat *hb;
    struct txn_held *held;
    size_t n = 0, i = 0;

    (void)fd;
    (void)what;
    for (struct job *j = w->jobs; j; j = j->next) {
        n += j->state == JOB_CALLING;
    }
    if (n == 0 || !store_ready(w->store)) {
        return;
    }
    hb = malloc(sizeof(*hb) + n * sizeof(hb->jobs[0]));
    held = malloc(sizeof(*held) * n);
    if (hb == NULL || held == NULL) {
        free(hb);
        free(held);
        return;
    }
    for (struct job *j = w->jobs; j; j = j->next) {
        if (j->state == JOB_CALLING) {
            held[i].id = j->id;
            held[i].fence = j->fence;
            hb->jobs[i++] = j;
        }
    }
    hb->w = w;
    hb->n = n;
    if (txn_extend(w->store, &w->heartbeat_args, util_now_ms() + w->cfg->tasks.lease_ms, held, n,
                   on_heartbeat, hb) < 0) {
        free(hb);
    } else {
        for (i = 0; i < n; i++) {
            hb->jobs[i]->hb_refs++;
        }
    }
    free(held);
}

/* Sends again every outcome that Redis could not take. */
static void flush_reports(struct worker *w)
{
    struct job *j = w->jobs;
    while (j) {
        struct job *next = j->next;
        if (j->state == JOB_REPORT_WAIT && store_ready(w->store)) {
            worker_job_report(j);
        }
        j = next;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    flush_reports(w);
    if (util_mono_ms() >= w->next_sweep_mono) {
        w->next_sweep_mono = util_mono_ms() + WORKER_SWEEP_MS;
        artifacts_sweep(w, WORKER_SWEEP_ENTRIES);
    }
    if (w->stopping) {
        maybe_done(w);
    } else {
        kick(w);
    }
}

static void on_wake(const char *payload, size_t len, void *arg)
{
    struct worker *w = arg;
    (void)payload;
    (void)len;
    w->idle = false;
    if (w->claiming) {
        w->woken = true;
    }
    kick(w);
}

/*
 * Publishes every alias's routing (strategy, limits, prices, breaker) for the CLAIM script. Each
 * worker writes the same definition from the same config; the last writer wins.
 */
static void publish_routing(struct worker *w)
{
    for (size_t i = 0; i < w->cfg->n_models; i++) {
        const struct config_model *m = &w->cfg->models[i];
        char key[192];
        char *json;
        if (keyspace_key(store_keys(w->store), key, sizeof(key), KS_ROUTING, m->alias) != 0) {
            log_error("cannot publish an alias's routing: its key is too long", "model=%s",
                      m->alias);
            continue;
        }
        json = config_model_routing_json(w->cfg, m);
        if (json == NULL) {
            continue;
        }
        const char *argv[] = {"SET", key, json};
        store_command(w->store, NULL, NULL, 3, argv, NULL);
        cJSON_free(json);
    }
}

static void on_capacity(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    w->idle = false;
    kick(w);
}

static void on_store_state(bool connected, void *arg)
{
    struct worker *w = arg;
    if (connected) {
        publish_routing(w);
        flush_reports(w);
        kick(w);
    }
}

/* Calls done once nothing is held, or once the stop deadline passed for outcomes Redis could
 * not take (their leases expire and the scheduler returns the tasks to the queue). */
static void maybe_done(struct worker *w)
{
    void (*done)(void *);

    if (w == NULL || !w->stopping || w->done == NULL) {
        return;
    }
    if (w->n_jobs > 0 && util_mono_ms() < w->stop_deadline_mono) {
        return;
    }
    if (w->n_jobs > 0) {
        log_warn("stopping with outcomes unwritten; their leases will expire", "jobs=%zu",
                 w->n_jobs);
    }
    log_info("worker stopped", "completed=%llu failed=%llu retried=%llu released=%llu parked=%llu",
             (unsigned long long)w->completed, (unsigned long long)w->failed,
             (unsigned long long)w->retried, (unsigned long long)w->released,
             (unsigned long long)w->parked);
    done = w->done;
    w->done = NULL;
    done(w->done_arg);
}

/* The grace period is over: abort the calls still running and return their tasks. */
static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct job *j = w->jobs;

    (void)fd;
    (void)what;
    while (j) {
        struct job *next = j->next;
        if (j->state == JOB_CALLING) {
            exec_abort(j);
            if (j->mode == TXN_MODE_POLL) {
                j->outcome = TXN_OUTCOME_PARK; /* the upstream job runs on: poll it again soon */
                j->poll_at_ms = util_now_ms();
            } else {
                j->outcome = TXN_OUTCOME_RELEASE;
            }
            worker_job_report(j);
        }
        j = next;
    }
    w->stop_deadline_mono = util_mono_ms() + WORKER_STOP_REPORT_WAIT_MS;
    maybe_done(w);
}

void worker_stop(struct worker *w, void (*done)(void *arg), void *arg)
{
    struct timeval tv;

    w->stopping = true;
    webhooks_stop(w->webhooks);
    w->done = done;
    w->done_arg = arg;
    w->stop_deadline_mono =
        util_mono_ms() + w->cfg->worker.shutdown_grace_ms + WORKER_STOP_REPORT_WAIT_MS;
    log_info("worker stopping", "jobs=%zu grace_ms=%ld", w->n_jobs,
             w->cfg->worker.shutdown_grace_ms);
    if (w->n_jobs == 0 && !w->claiming) {
        maybe_done(w);
        return;
    }
    tv.tv_sec = w->cfg->worker.shutdown_grace_ms / 1000;
    tv.tv_usec = (w->cfg->worker.shutdown_grace_ms % 1000) * 1000;
    evtimer_add(w->grace, &tv);
}

size_t worker_jobs(const struct worker *w)
{
    return w->n_jobs;
}

struct worker *worker_new(struct event_base *base, const struct config *cfg, struct store *store,
                          struct store *wake, struct core_err *err)
{
    struct worker *w = calloc(1, sizeof(*w));
    struct http_client_opts ho = {0};
    struct timeval tick = {WORKER_TICK_MS / 1000, (WORKER_TICK_MS % 1000) * 1000};
    struct timeval hb;
    char wake_channel[KEY_TAG_MAX + 32];

    if (w == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    w->base = base;
    w->cfg = cfg;
    w->store = store;
    w->wake = wake;
    ho.max_total_connections = (int)cfg->worker.concurrency;
    ho.max_host_connections = (int)cfg->worker.concurrency;
    ho.connect_timeout_ms = 10000;
    ho.max_response_bytes = (size_t)cfg->worker.max_response_bytes;
    ho.user_agent = "sluice/" SLUICE_VERSION_STRING;
    w->http = http_client_new(base, &ho);
    w->tick = event_new(base, -1, EV_PERSIST, on_tick, w);
    w->heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat_timer, w);
    w->grace = evtimer_new(base, on_grace, w);
    w->capacity = evtimer_new(base, on_capacity, w);
    w->report = event_new(base, -1, 0, on_report_flush, w);
    /* the scripts' scratch, allocated once: a FINISH runs every loop turn with outcomes */
    txn_args_init(&w->claim_args);
    txn_args_init(&w->heartbeat_args);
    txn_args_init(&w->report_args);
    w->report_out = calloc(WORKER_REPORT_BATCH, sizeof(*w->report_out));
    w->report_att = calloc(WORKER_REPORT_BATCH, sizeof(*w->report_att));
    w->webhooks = w->http ? webhooks_new(w) : NULL;
    if (w->webhooks == NULL || w->http == NULL || w->tick == NULL || w->heartbeat == NULL ||
        w->grace == NULL || w->capacity == NULL || w->report == NULL || w->report_out == NULL ||
        w->report_att == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot set up the worker");
        worker_free(w);
        return NULL;
    }
    event_add(w->tick, &tick);
    hb.tv_sec = (cfg->tasks.lease_ms / 3) / 1000;
    hb.tv_usec = ((cfg->tasks.lease_ms / 3) % 1000) * 1000;
    event_add(w->heartbeat, &hb);
    store_on_state(store, on_store_state, w);
    if (store_ready(store)) {
        publish_routing(w);
    }
    if (keyspace_key(store_keys(wake), wake_channel, sizeof(wake_channel), KS_CHANNEL_WAKE, NULL) !=
            0 ||
        store_subscribe(wake, wake_channel, on_wake, w) < 0) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot subscribe");
        worker_free(w);
        return NULL;
    }
    kick(w);
    return w;
}

void worker_free(struct worker *w)
{
    if (w == NULL) {
        return;
    }
    while (w->jobs) {
        struct job *j = w->jobs;
        j->hb_refs = 0; /* heartbeats in flight are answered by the store's free, before this */
        job_retire(j);
    }
    w->report_head = w->report_tail = NULL;
    webhooks_free(w->webhooks);
    http_client_free(w->http);
    if (w->tick) {
        event_free(w->tick);
    }
    if (w->heartbeat) {
        event_free(w->heartbeat);
    }
    if (w->grace) {
        event_free(w->grace);
    }
    if (w->capacity) {
        event_free(w->capacity);
    }
    if (w->report) {
        event_free(w->report);
    }
    txn_args_cleanup(&w->claim_args);
    txn_args_cleanup(&w->heartbeat_args);
    txn_args_cleanup(&w->report_args);
    free(w->report_out);
    free(w->report_att);
    free(w);
}
