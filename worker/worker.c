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
#include "core/scripts.h"
#include "core/util.h"
#include "worker/internal.h"

#define WORKER_TICK_MS 1000
#define WORKER_CLAIM_FIELDS 15
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
    free(j->kind);
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

static void on_report(redisReply *reply, const struct core_err *err, void *arg);

/* ms >= 0 with three decimals ("12.345"), without printf's floating-point path (it was visible in
 * a worker's profile: twice per attempt). */
static void fmt_ms3(char *buf, size_t size, double ms)
{
    int64_t us = llround(ms * 1000.0);
    char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10), '\0'};

    if (util_fmt_i64(buf, size, us / 1000) == 0 && strlen(buf) + sizeof(frac) <= size) {
        memcpy(buf + strlen(buf), frac, sizeof(frac));
    }
}

/* The attempt as recorded on the task (calls only): deployment, status, latency, error. */
static char *attempt_json(const struct job *j)
{
    cJSON *a;
    char *s;

    if (j->mode != JOB_CALL || j->dep == NULL) {
        return NULL;
    }
    a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "attempt", j->attempts);
    cJSON_AddNumberToObject(a, "deployment", j->dep_index);
    cJSON_AddStringToObject(a, "provider", j->dep->provider->name);
    cJSON_AddStringToObject(a, "model", j->dep->model);
    if (j->http_status > 0) {
        cJSON_AddNumberToObject(a, "status", j->http_status);
    } else {
        cJSON_AddNullToObject(a, "status");
    }
    if (j->latency_ms >= 0) {
        /* fixed 3 decimals: cJSON's general double printing (with its parse-back check) was a
           visible part of a worker's time per task */
        char lat[32];
        fmt_ms3(lat, sizeof(lat), j->latency_ms);
        cJSON_AddRawToObject(a, "latency_ms", lat);
    } else {
        cJSON_AddNullToObject(a, "latency_ms");
    }
    cJSON_AddStringToObject(a, "outcome", j->outcome);
    if (j->err_message[0]) {
        cJSON *e = cJSON_AddObjectToObject(a, "error");
        cJSON_AddStringToObject(e, "code", j->err_code);
        cJSON_AddStringToObject(e, "message", j->err_message);
    } else {
        cJSON_AddNullToObject(a, "error");
    }
    cJSON_AddNumberToObject(a, "at", (double)(util_now_ms() / 1000));
    s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

/* v in decimal when `when`, else "" (a FINISH argument that is absent). */
static void fmt_ll(char *buf, size_t size, int64_t v, bool when)
{
    if (when) {
        util_fmt_i64(buf, size, v);
    } else {
        buf[0] = '\0';
    }
}

/* The outcome's FINISH arguments that are formatted (the others point into the job). */
struct report_fmt {
    char task_key[96], retry[24], prog[16], qpos[16], poll[24], lat[24], pause[24], rreq[24],
        rtok[24], used[24], status[16];
    char *attempt;
};

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

/* Appends job j's FINISH_GROUP arguments to argv at *n; f keeps the formatted ones. */
static void report_args(const struct job *j, struct report_fmt *f, const char **argv, int *n)
{
    util_join(f->task_key, sizeof(f->task_key), KEY_TASK, j->id);
    util_fmt_i64(f->retry, sizeof(f->retry), j->retry_at_ms);
    fmt_ll(f->prog, sizeof(f->prog), j->progress, j->progress >= 0);
    fmt_ll(f->qpos, sizeof(f->qpos), j->queue_position, j->queue_position >= 0);
    util_fmt_i64(f->poll, sizeof(f->poll), j->poll_at_ms);
    if (j->latency_ms >= 0) {
        fmt_ms3(f->lat, sizeof(f->lat), j->latency_ms);
    } else {
        f->lat[0] = '\0';
    }
    fmt_ll(f->pause, sizeof(f->pause), j->pause_until_ms, j->pause_until_ms > 0);
    fmt_ll(f->rreq, sizeof(f->rreq), j->remaining_req, j->remaining_req >= 0);
    fmt_ll(f->rtok, sizeof(f->rtok), j->remaining_tok, j->remaining_tok >= 0);
    fmt_ll(f->used, sizeof(f->used), j->tokens_used, j->tokens_used >= 0);
    fmt_ll(f->status, sizeof(f->status), j->http_status, j->http_status > 0);
    f->attempt = attempt_json(j);
    const char *group[FINISH_GROUP] = {f->task_key,
                                       j->id,
                                       j->fence,
                                       j->outcome,
                                       j->result ? j->result : "",
                                       j->usage ? j->usage : "",
                                       j->provider ? j->provider : "",
                                       j->cost ? j->cost : "",
                                       j->error ? j->error : "",
                                       f->retry,
                                       j->out_up_id ? j->out_up_id : "",
                                       j->out_job ? j->out_job : "",
                                       f->prog,
                                       f->qpos,
                                       f->poll,
                                       j->artifacts ? j->artifacts : "",
                                       j->mode == JOB_CALL && j->dep ? "1" : "0",
                                       f->lat,
                                       j->class ? j->class : "none",
                                       f->pause,
                                       f->rreq,
                                       f->rtok,
                                       f->used,
                                       f->status,
                                       j->avoid ? "1" : "0",
                                       f->attempt ? f->attempt : "",
                                       j->dep && j->dep->max_concurrency > 0 ? "1" : "0"};
    memcpy(&argv[*n], group, sizeof(group));
    *n += FINISH_GROUP;
}

/*
 * Sends up to WORKER_REPORT_BATCH queued outcomes in one FINISH call. If Redis cannot take them
 * now, they wait in REPORT_WAIT and the tick sends them again: an outcome is never dropped
 * because Redis blinked (the fence makes sending one twice harmless).
 */
static void send_reports(struct worker *w)
{
    struct report_batch *b = calloc(1, sizeof(*b));
    struct report_fmt *fmt = w->report_fmt;
    const char **argv = w->report_argv;
    char now_s[24], ret_s[24], br_min_s[24], br_pct_s[24], br_window_s[24];
    int n = 0, rc = CORE_ENOMEM;

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
    snprintf(now_s, sizeof(now_s), "%lld", (long long)util_now_ms());
    snprintf(ret_s, sizeof(ret_s), "%lld", (long long)w->cfg->tasks.retention_s * 1000);
    /* The breaker's parameters from this worker's config (the same the routing JSON publishes),
     * so FINISH need not read and decode that JSON on every outcome. */
    snprintf(br_min_s, sizeof(br_min_s), "%ld", w->cfg->breaker.min_requests);
    snprintf(br_pct_s, sizeof(br_pct_s), "%ld", w->cfg->breaker.failure_pct);
    snprintf(br_window_s, sizeof(br_window_s), "%ld", w->cfg->breaker.window_ms);
    const char *header[] = {KEY_LEASES,   KEY_DELAYED, KEY_POLLS, now_s,      ret_s,
                            CHANNEL_WAKE, br_min_s,    br_pct_s,  br_window_s};
    memcpy(argv, header, sizeof(header));
    n = (int)(sizeof(header) / sizeof(header[0]));
    for (size_t i = 0; i < b->n; i++) {
        report_args(b->jobs[i], &fmt[i], argv, &n);
    }
    rc = store_script(w->store, SCRIPT_FINISH, on_report, b, 3, n, argv, NULL);
    for (size_t i = 0; i < b->n; i++) {
        cJSON_free(fmt[i].attempt);
        if (rc == 0) {
            b->jobs[i]->state = JOB_REPORTING;
        }
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

static void on_report(redisReply *reply, const struct core_err *err, void *arg)
{
    struct report_batch *b = arg;
    struct worker *w = b->w;

    for (size_t i = 0; i < b->n; i++) {
        struct job *j = b->jobs[i];
        const char *applied = "?";

        if (err != NULL) {
            /* Unknown whether it ran; the fence makes sending it again harmless. */
            j->state = JOB_REPORT_WAIT;
            continue;
        }
        if (reply->type == REDIS_REPLY_ARRAY && i < reply->elements &&
            reply->element[i]->type == REDIS_REPLY_STRING) {
            applied = reply->element[i]->str;
        }
        if (strcmp(applied, "completed") == 0) {
            w->completed++;
        } else if (strcmp(applied, "failed") == 0) {
            w->failed++;
        } else if (strcmp(applied, "retry") == 0) {
            w->retried++;
        } else if (strcmp(applied, "release") == 0) {
            w->released++;
        } else if (strcmp(applied, "park") == 0) {
            w->parked++;
        } else if (strcmp(applied, "stale") == 0) {
            log_info("outcome refused: attempt no longer current", "task=%s fence=%s", j->id,
                     j->fence);
        }
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

static char *dup_field(const redisReply *r)
{
    return strdup(r->type == REDIS_REPLY_STRING ? r->str : "");
}

/* A job from one claimed unit (15 fields, see the CLAIM script). */
static struct job *job_from_claim(struct worker *w, redisReply **f)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return NULL;
    }
    j->w = w;
    j->state = JOB_CALLING;
    j->progress = -1;
    j->queue_position = -1;
    j->artifact_fd = -1;
    j->latency_ms = -1;
    j->remaining_req = -1;
    j->remaining_tok = -1;
    j->tokens_used = -1;
    snprintf(j->id, sizeof(j->id), "%s", f[0]->str);
    snprintf(j->fence, sizeof(j->fence), "%s", f[1]->str);
    j->attempts = f[2]->type == REDIS_REPLY_STRING ? atoi(f[2]->str) : 0;
    j->max_attempts = f[3]->type == REDIS_REPLY_STRING ? atoi(f[3]->str) : 1;
    snprintf(j->tenant, sizeof(j->tenant), "%s", f[4]->type == REDIS_REPLY_STRING ? f[4]->str : "");
    j->model = dup_field(f[5]);
    j->kind = dup_field(f[6]);
    j->input_text = dup_field(f[7]);
    j->mode =
        (f[8]->type == REDIS_REPLY_STRING && strcmp(f[8]->str, "poll") == 0) ? JOB_POLL : JOB_CALL;
    j->cancelling = f[9]->type == REDIS_REPLY_STRING && strcmp(f[9]->str, "cancelling") == 0;
    j->up_id = dup_field(f[10]);
    j->job_text = dup_field(f[11]);
    j->dep_index = f[12]->type == REDIS_REPLY_STRING ? atoi(f[12]->str) : 0;
    j->stream = f[13]->type == REDIS_REPLY_STRING && strcmp(f[13]->str, "1") == 0;
    j->reply_to = dup_field(f[14]);
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

static void on_claim(redisReply *reply, const struct core_err *err, void *arg)
{
    struct worker *w = arg;
    long long wait_ms;
    size_t n;

    w->claiming = false;
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return; /* the tick or the reconnect tries again */
    }
    wait_ms = reply->element[0]->integer;
    if (reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[1]->len > 0) {
        routing_missing(w, reply->element[1]->str);
    }
    n = reply->elements >= 2 ? (reply->elements - 2) / WORKER_CLAIM_FIELDS : 0;
    for (size_t i = 0; i < n; i++) {
        redisReply **f = &reply->element[2 + i * WORKER_CLAIM_FIELDS];
        bool ok = f[0]->type == REDIS_REPLY_STRING && f[1]->type == REDIS_REPLY_STRING;
        struct job *j = ok ? job_from_claim(w, f) : NULL;
        if (j == NULL) {
            log_error("cannot hold a claimed task; its lease will expire", "task=%s",
                      f[0]->type == REDIS_REPLY_STRING ? f[0]->str : "?");
            continue;
        }
        if (w->stopping && j->mode == JOB_CALL) {
            j->outcome = "release";
            worker_job_report(j);
        } else if (w->stopping) {
            j->outcome = "park"; /* a poll claimed while stopping: due again at once */
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
    if (w->idle && wait_ms > 0 && !w->stopping) {
        /* Work is waiting for a deployment's budget: claim again when it returns. */
        long ms = wait_ms < WORKER_CAPACITY_MIN_MS   ? WORKER_CAPACITY_MIN_MS
                  : wait_ms > WORKER_CAPACITY_MAX_MS ? WORKER_CAPACITY_MAX_MS
                                                     : (long)wait_ms;
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
    char now_s[24], lease_s[24], n_s[24], seed_s[16], burst_s[24], pace_s[16], ret_s[24];

    if (w->stopping || w->claiming || n <= 0 || !store_ready(w->store)) {
        return;
    }
    snprintf(now_s, sizeof(now_s), "%lld", (long long)util_now_ms());
    snprintf(lease_s, sizeof(lease_s), "%ld", w->cfg->tasks.lease_ms);
    snprintf(n_s, sizeof(n_s), "%ld", n);
    snprintf(seed_s, sizeof(seed_s), "%u", (unsigned)(util_rand_unit() * 4294967295.0));
    snprintf(burst_s, sizeof(burst_s), "%ld", w->cfg->scheduler.burst_ms);
    snprintf(pace_s, sizeof(pace_s), "%.3f", (double)w->cfg->scheduler.pace_pct / 100.0);
    snprintf(ret_s, sizeof(ret_s), "%lld", (long long)w->cfg->tasks.retention_s * 1000);
    const char *argv[] = {KEY_LEASES, KEY_POLLS, now_s,  lease_s,        n_s,
                          seed_s,     burst_s,   pace_s, no_route_error, ret_s};
    if (store_script(w->store, SCRIPT_CLAIM, on_claim, w, 2, 10, argv, NULL) == 0) {
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

static void on_heartbeat(redisReply *reply, const struct core_err *err, void *arg)
{
    struct heartbeat *hb = arg;
    struct worker *w = hb->w;

    for (size_t i = 0; i < hb->n; i++) {
        struct job *j = hb->jobs[i];
        const char *st = NULL;
        j->hb_refs--;
        if (j->dead) {
            if (j->hb_refs == 0) {
                job_free(j);
            }
            continue;
        }
        if (err == NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements) {
            st = reply->element[i]->str;
        }
        if (st == NULL || j->state != JOB_CALLING) {
            continue;
        }
        if (strcmp(st, "cancelling") == 0 && !j->cancelling) {
            /* The client cancelled (or the deadline passed): stop the call; FINISH turns the
             * outcome into cancelled. A long-running job's upstream job, if one was created,
             * is cancelled by the poll that parking makes due at once. */
            struct core_err e;
            exec_abort(j);
            core_err_clear(&e);
            core_err_set(&e, CORE_ECONFLICT, NULL, "cancelled");
            j->outcome = "failed";
            cJSON *ej = core_err_to_json(&e, true);
            j->error = cJSON_PrintUnformatted(ej);
            cJSON_Delete(ej);
            worker_job_report(j);
        } else if (strcmp(st, "lost") == 0) {
            log_warn("lease lost; dropping the attempt", "task=%s fence=%s", j->id, j->fence);
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
    const char **argv;
    char deadline_s[24];
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
    argv = malloc(sizeof(*argv) * (3 + 2 * n));
    if (hb == NULL || argv == NULL) {
        free(hb);
        free(argv);
        return;
    }
    snprintf(deadline_s, sizeof(deadline_s), "%lld",
             (long long)(util_now_ms() + w->cfg->tasks.lease_ms));
    argv[0] = KEY_LEASES;
    argv[1] = deadline_s;
    argv[2] = KEY_TASK;
    for (struct job *j = w->jobs; j; j = j->next) {
        if (j->state == JOB_CALLING) {
            argv[3 + 2 * i] = j->id;
            argv[4 + 2 * i] = j->fence;
            hb->jobs[i++] = j;
        }
    }
    hb->w = w;
    hb->n = n;
    if (store_script(w->store, SCRIPT_EXTEND, on_heartbeat, hb, 1, (int)(3 + 2 * n), argv, NULL) <
        0) {
        free(hb);
    } else {
        for (i = 0; i < n; i++) {
            hb->jobs[i]->hb_refs++;
        }
    }
    free(argv);
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
        char *json = config_model_routing_json(w->cfg, m);
        if (json == NULL) {
            continue;
        }
        snprintf(key, sizeof(key), KEY_ROUTING "%s", m->alias);
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
            if (j->mode == JOB_POLL) {
                j->outcome = "park"; /* the upstream job runs on: poll it again soon */
                j->poll_at_ms = util_now_ms();
            } else {
                j->outcome = "release";
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
    /* the FINISH call's scratch, allocated once: a flush runs every loop turn with outcomes */
    w->report_fmt = calloc(WORKER_REPORT_BATCH, sizeof(*w->report_fmt));
    w->report_argv =
        calloc(3 + FINISH_HEADER + WORKER_REPORT_BATCH * FINISH_GROUP, sizeof(*w->report_argv));
    w->webhooks = w->http ? webhooks_new(w) : NULL;
    if (w->webhooks == NULL || w->http == NULL || w->tick == NULL || w->heartbeat == NULL ||
        w->grace == NULL || w->capacity == NULL || w->report == NULL || w->report_fmt == NULL ||
        w->report_argv == NULL) {
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
    if (store_subscribe(wake, CHANNEL_WAKE, on_wake, w) < 0) {
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
    free(w->report_fmt);
    free(w->report_argv);
    free(w);
}
