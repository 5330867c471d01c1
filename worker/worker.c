/*
 * worker/worker.c — the claim loop, task execution, heartbeats and graceful stop.
 *
 * A job is one claimed task. Its life: CALLING (an upstream call in flight) → REPORTING (its
 * outcome on the way to Redis) → freed; or REPORT_WAIT when Redis could not take the outcome,
 * until the store is back. The worker claims in batches while it has free slots, and sleeps when
 * the queues are empty until a "work arrived" message or its one-second tick.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/scripts.h"
#include "core/util.h"
#include "worker/http.h"
#include "worker/worker.h"

#define WORKER_TICK_MS 1000
#define WORKER_CLAIM_FIELDS 8
#define WORKER_STOP_REPORT_WAIT_MS 5000

enum job_state { JOB_CALLING, JOB_REPORTING, JOB_REPORT_WAIT };

struct job {
    struct worker *w;
    struct job *prev, *next;
    enum job_state state;
    bool dead;   /* finished, but a heartbeat still refers to it */
    int hb_refs; /* heartbeats in flight that list this job */

    char id[48];
    char fence[24];
    char tenant[72];
    int attempts;
    int max_attempts;
    char *model;
    char *kind;
    char *input;
    const struct config_deployment *dep;
    struct http_call *call;
    int64_t started_mono;

    /* The outcome, once known: arguments of the FINISH script. */
    const char *outcome; /* completed | failed | retry | release */
    char *result, *usage, *provider, *cost, *error;
    int64_t retry_at_ms;
};

struct worker {
    struct event_base *base;
    const struct config *cfg;
    struct store *store;
    struct store *wake;
    struct http_client *http;

    struct job *jobs; /* every job held, any state */
    size_t n_jobs;
    bool claiming;
    long claim_asked;
    bool woken; /* a wake arrived while a claim was in flight: that claim may have missed it */
    bool idle;  /* the last claim found the queues empty */
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
    int64_t stop_deadline_mono;

    struct event *tick;
    struct event *heartbeat;
    struct event *grace;

    uint64_t completed, failed, retried, released;
};

static void kick(struct worker *w);
static void maybe_done(struct worker *w);

static void job_free(struct job *j)
{
    free(j->model);
    free(j->kind);
    free(j->input);
    cJSON_free(j->result);
    cJSON_free(j->usage);
    cJSON_free(j->provider);
    cJSON_free(j->cost);
    cJSON_free(j->error);
    free(j);
}

/* Unlinks a finished job; frees it now, or when the last heartbeat naming it has answered. */
static void job_retire(struct job *j)
{
    struct worker *w = j->w;

    if (j->call) {
        http_call_cancel(j->call);
        j->call = NULL;
    }
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

/*
 * Writes the job's outcome with the FINISH script. If Redis cannot take it now, the job waits in
 * REPORT_WAIT and the tick sends it again: an outcome is never dropped because Redis blinked.
 */
static void job_report(struct job *j)
{
    struct worker *w = j->w;
    char task_key[96], now_s[24], retry_s[24], ret_s[24];
    int rc;

    snprintf(task_key, sizeof(task_key), KEY_TASK "%s", j->id);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)util_now_ms());
    snprintf(retry_s, sizeof(retry_s), "%lld", (long long)j->retry_at_ms);
    snprintf(ret_s, sizeof(ret_s), "%lld", (long long)w->cfg->tasks.retention_s * 1000);
    const char *argv[] = {task_key,
                          KEY_LEASES,
                          KEY_DELAYED,
                          KEY_EXPIRY,
                          j->id,
                          j->fence,
                          now_s,
                          j->outcome,
                          j->result ? j->result : "",
                          j->usage ? j->usage : "",
                          j->provider ? j->provider : "",
                          j->cost ? j->cost : "",
                          j->error ? j->error : "",
                          retry_s,
                          ret_s,
                          KEY_QUEUE,
                          CHANNEL_WAKE};
    j->state = JOB_REPORTING;
    rc = store_script(w->store, SCRIPT_FINISH, on_report, j, 4, 17, argv, NULL);
    if (rc < 0) {
        j->state = JOB_REPORT_WAIT;
    }
}

static void on_report(redisReply *reply, const struct core_err *err, void *arg)
{
    struct job *j = arg;
    struct worker *w = j->w;
    const char *applied;

    if (err != NULL) {
        /* Unknown whether it ran; the fence makes sending it again harmless. */
        j->state = JOB_REPORT_WAIT;
        return;
    }
    applied =
        (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) ? reply->element[0]->str : "?";
    if (strcmp(applied, "completed") == 0) {
        w->completed++;
    } else if (strcmp(applied, "failed") == 0) {
        w->failed++;
    } else if (strcmp(applied, "retry") == 0) {
        w->retried++;
    } else if (strcmp(applied, "release") == 0) {
        w->released++;
    } else if (strcmp(applied, "stale") == 0) {
        log_info("outcome refused: attempt no longer current", "task=%s fence=%s", j->id, j->fence);
    }
    job_retire(j);
    if (!w->idle) {
        kick(w);
    }
    maybe_done(w);
}

/* Exponential backoff with jitter, never shorter than the provider's retry-after. */
static int64_t backoff_ms(const struct worker *w, int attempts, int64_t retry_after_ms)
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

static char *provider_json(const struct job *j, const char *upstream_id)
{
    cJSON *p = cJSON_CreateObject();
    char *s;

    cJSON_AddStringToObject(p, "name", j->dep ? j->dep->provider->name : "");
    cJSON_AddStringToObject(p, "model", j->dep ? j->dep->model : "");
    if (upstream_id) {
        cJSON_AddStringToObject(p, "upstream_id", upstream_id);
    } else {
        cJSON_AddNullToObject(p, "upstream_id");
    }
    s = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    return s;
}

/* The deployment's price applied to the usage: tokens per million, in USD. */
static char *cost_json(const struct config_deployment *dep, const cJSON *usage)
{
    double in = 0, out = 0, amount;
    cJSON *c;
    char *s;

    if (usage) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        in = cJSON_IsNumber(p) ? p->valuedouble : 0;
        out = cJSON_IsNumber(o) ? o->valuedouble : 0;
    }
    amount = in * dep->price.input_per_mtok / 1e6 + out * dep->price.output_per_mtok / 1e6;
    c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "amount", amount);
    cJSON_AddStringToObject(c, "currency", "USD");
    s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

/* Records a failed attempt: retry (with backoff) when the error allows it, else failed. */
static void job_fail(struct job *j, const struct core_err *e)
{
    cJSON *ej = core_err_to_json(e, true);

    j->error = cJSON_PrintUnformatted(ej);
    cJSON_Delete(ej);
    if (j->provider == NULL && j->dep) {
        j->provider = provider_json(j, NULL);
    }
    if (e->retryable) {
        j->outcome = "retry";
        j->retry_at_ms = util_now_ms() + backoff_ms(j->w, j->attempts, e->retry_after_ms);
    } else {
        j->outcome = "failed";
    }
    log_info("attempt failed", "task=%s attempt=%d retryable=%d status=%d error=\"%.200s\"", j->id,
             j->attempts, e->retryable, e->provider_status, e->message);
    job_report(j);
}

static void on_http_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    const struct adapter *ad = adapter_find(j->dep->provider->dialect);
    struct adapter_target t = {j->dep->provider->name, j->dep->provider->base_url,
                               j->dep->provider->api_key, j->dep->model, 0};
    struct adapter_result res = {0};
    struct core_err e;
    cJSON *input = cJSON_Parse(j->input);
    struct adapter_call call = {
        .op = (enum adapter_op)adapter_op_from_kind(j->kind), .input = input, .target = &t};

    j->call = NULL;
    core_err_clear(&e);
    if (ad->parse_response(&call, resp, &res, &e) < 0) {
        job_fail(j, &e);
    } else {
        j->result = cJSON_PrintUnformatted(res.result);
        j->usage = res.usage ? cJSON_PrintUnformatted(res.usage) : NULL;
        j->provider = provider_json(j, res.upstream_id);
        j->cost = cost_json(j->dep, res.usage);
        j->outcome = "completed";
        job_report(j);
    }
    adapter_result_cleanup(&res);
    cJSON_Delete(input);
}

/*
 * Routing seam: picks the deployment for a task. Today the first deployment of the alias; the
 * scheduler issue replaces this with strategies, budgets and health.
 */
static const struct config_deployment *pick_deployment(const struct config_model *m)
{
    return m->n_deployments > 0 ? &m->deployments[0] : NULL;
}

/* Builds the upstream request through the deployment's adapter and sends it. */
static void job_start(struct job *j)
{
    struct worker *w = j->w;
    const struct config_model *m = config_model_find(w->cfg, j->model);
    const struct adapter *ad = NULL;
    struct adapter_request req = {0};
    struct core_err e;
    cJSON *input = NULL;
    int op = adapter_op_from_kind(j->kind);

    core_err_clear(&e);
    j->dep = m ? pick_deployment(m) : NULL;
    if (j->dep == NULL) {
        core_err_set(&e, CORE_ENOTFOUND, "model", "model '%s' is no longer configured", j->model);
        goto fail;
    }
    ad = adapter_find(j->dep->provider->dialect);
    if (ad == NULL || op < 0 || ad->build_request == NULL || ad->parse_response == NULL) {
        core_err_set(&e, CORE_EUNPROCESSABLE, "model", "no adapter '%s' for kind '%s'",
                     j->dep->provider->dialect, j->kind);
        goto fail;
    }
    input = cJSON_Parse(j->input);
    if (input == NULL) {
        core_err_set(&e, CORE_EINTERNAL, "input", "stored input is not JSON");
        goto fail;
    }
    struct adapter_target t = {j->dep->provider->name, j->dep->provider->base_url,
                               j->dep->provider->api_key, j->dep->model, 0};
    struct adapter_call call = {.op = (enum adapter_op)op, .input = input, .target = &t};
    if (ad->build_request(&call, &req, &e) < 0) {
        goto fail;
    }
    j->started_mono = util_mono_ms();
    j->call = http_client_send(w->http, &req, j->dep->provider->timeout_ms, on_http_done, j);
    if (j->call == NULL) {
        core_err_set(&e, CORE_EUPSTREAM, NULL, "could not start the upstream call");
        e.retryable = true;
        goto fail;
    }
    adapter_request_cleanup(&req);
    cJSON_Delete(input);
    return;
fail:
    adapter_request_cleanup(&req);
    cJSON_Delete(input);
    job_fail(j, &e);
}

static struct job *job_from_claim(struct worker *w, redisReply **f)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return NULL;
    }
    j->w = w;
    j->state = JOB_CALLING;
    snprintf(j->id, sizeof(j->id), "%s", f[0]->str);
    snprintf(j->fence, sizeof(j->fence), "%s", f[1]->str);
    j->attempts = atoi(f[2]->str);
    j->max_attempts = f[3]->str ? atoi(f[3]->str) : 1;
    snprintf(j->tenant, sizeof(j->tenant), "%s", f[4]->str ? f[4]->str : "");
    j->model = strdup(f[5]->str ? f[5]->str : "");
    j->kind = strdup(f[6]->str ? f[6]->str : "");
    j->input = strdup(f[7]->str ? f[7]->str : "null");
    j->next = w->jobs;
    if (w->jobs) {
        w->jobs->prev = j;
    }
    w->jobs = j;
    w->n_jobs++;
    return j;
}

static void on_claim(redisReply *reply, const struct core_err *err, void *arg)
{
    struct worker *w = arg;
    size_t n;

    w->claiming = false;
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY) {
        return; /* the tick or the reconnect tries again */
    }
    n = reply->elements / WORKER_CLAIM_FIELDS;
    for (size_t i = 0; i < n; i++) {
        redisReply **f = &reply->element[i * WORKER_CLAIM_FIELDS];
        bool ok = true;
        for (int k = 0; k < WORKER_CLAIM_FIELDS; k++) {
            ok = ok && (f[k]->type == REDIS_REPLY_STRING || k >= 3);
        }
        struct job *j = ok ? job_from_claim(w, f) : NULL;
        if (j == NULL) {
            log_error("cannot hold a claimed task; its lease will expire", "task=%s",
                      f[0]->type == REDIS_REPLY_STRING ? f[0]->str : "?");
            continue;
        }
        if (w->stopping) {
            j->outcome = "release";
            job_report(j);
        } else {
            job_start(j);
        }
    }
    /* A full batch means there may be more: ask again. A short one means the queues were empty
     * when the script ran, unless a wake arrived since. */
    w->idle = (long)n < w->claim_asked && !w->woken;
    w->woken = false;
    if (!w->idle) {
        kick(w);
    }
}

/* Claims as many tasks as there are free slots (one batch at a time). */
static void kick(struct worker *w)
{
    long free_slots = w->cfg->worker.concurrency - (long)w->n_jobs;
    long n = free_slots < w->cfg->worker.claim_batch ? free_slots : w->cfg->worker.claim_batch;
    char now_s[24], lease_s[24], n_s[24];

    if (w->stopping || w->claiming || n <= 0 || !store_ready(w->store)) {
        return;
    }
    snprintf(now_s, sizeof(now_s), "%lld", (long long)util_now_ms());
    snprintf(lease_s, sizeof(lease_s), "%ld", w->cfg->tasks.lease_ms);
    snprintf(n_s, sizeof(n_s), "%ld", n);
    const char *argv[] = {KEY_QUEUE_0, KEY_QUEUE_1, KEY_QUEUE_2, KEY_LEASES,
                          now_s,       lease_s,     n_s,         KEY_TASK};
    if (store_script(w->store, SCRIPT_CLAIM, on_claim, w, 4, 8, argv, NULL) == 0) {
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
        if (strcmp(st, "cancelling") == 0) {
            /* The client cancelled: stop the call; FINISH turns any outcome into cancelled. */
            struct core_err e;
            http_call_cancel(j->call);
            j->call = NULL;
            core_err_clear(&e);
            core_err_set(&e, CORE_ECONFLICT, NULL, "cancelled by the client");
            job_fail(j, &e);
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
            job_report(j);
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

static void on_store_state(bool connected, void *arg)
{
    struct worker *w = arg;
    if (connected) {
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
    log_info("worker stopped", "completed=%llu failed=%llu retried=%llu released=%llu",
             (unsigned long long)w->completed, (unsigned long long)w->failed,
             (unsigned long long)w->retried, (unsigned long long)w->released);
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
            http_call_cancel(j->call);
            j->call = NULL;
            j->outcome = "release";
            job_report(j);
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
    if (w->http == NULL || w->tick == NULL || w->heartbeat == NULL || w->grace == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot set up the worker");
        worker_free(w);
        return NULL;
    }
    event_add(w->tick, &tick);
    hb.tv_sec = (cfg->tasks.lease_ms / 3) / 1000;
    hb.tv_usec = ((cfg->tasks.lease_ms / 3) % 1000) * 1000;
    event_add(w->heartbeat, &hb);
    store_on_state(store, on_store_state, w);
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
    free(w);
}
