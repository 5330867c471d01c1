/*
 * api/pipeline_runner.c — moves pipelines on (api/pipelines.h says what a pipeline is).
 *
 * Every pipelines.poll_ms the runner claims due pipelines (PIPE claim: a lease each) and makes one
 * pass over each, all of a pass's state recomputed from the pipeline's hash:
 *   1. each running step whose tasks have all ended (the counts finalize keeps) completes or
 *      fails; a waiting step whose dependencies failed or were skipped is skipped, and every
 *      waiting step is skipped once the pipeline is cancelling (or past its deadline: expiring);
 *   2. a cancelling pipeline's unfinished tasks are cancelled (CANCEL; a parked video task's
 *      upstream job is cancelled by its worker);
 *   3. a waiting step whose dependencies all completed starts (api/pipeline_start.c): the
 *      dependencies' tasks are read (PIPE tasks), the for_each list and each task's input resolved
 *      (api/pipeline_spec.h), an artifact linked into the new task's blob folder as an input file,
 *      each input checked as POST /v1/tasks checks one, and the tasks submitted with derived ids (a
 *      repeated start finds them: SUBMIT's dup); only when every one of them is there is the step
 *      written running with its task count;
 *   4. with every step ended, the pipeline ends (completed, failed, cancelled or expired) with its
 *      webhook event, in one PIPE advance that a second runner cannot repeat;
 *   5. the lease goes back (PIPE unlease), due again at the deadline or after a while — or at
 *      once when a task ended during the pass.
 * A runner that dies mid-pass leaves its lease to run out: the next pass redoes what this one
 * did not write, and what it did write (a step started, a task submitted) it finds done.
 *
 * This file is the pass's state machine (claim, steps 1, 2, 4 and 5, the timer, new/stop/free);
 * api/pipeline_start.c starts a step (step 3); api/pipeline_runner.h is what the two share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "api/batches.h"
#include "api/internal.h"
#include "api/pipeline_runner.h"
#include "api/pipelines.h"
#include "core/log.h"
#include "core/txn_task.h"
#include "core/util.h"
#include "core/webhook_sign.h"

#define RUNNER_PASSES_MAX 64    /* pipelines in hand at once */
#define RUNNER_RECHECK_MS 30000 /* a pipeline nobody wakes is looked at again after this */
#define RUNNER_RETRY_MS 1000    /* after a submit that failed (quota, store) */

static const char *const st_names[] = {"waiting", "running", "completed",
                                       "failed",  "skipped", "cancelled"};

static enum step_state st_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof(st_names) / sizeof(st_names[0]); i++) {
        if (strcmp(s, st_names[i]) == 0) {
            return (enum step_state)i;
        }
    }
    return ST_WAITING;
}

static bool st_ended(enum step_state s)
{
    return s >= ST_COMPLETED;
}

static void claim(struct pipe_runner *r);

static void pass_free(struct pass *p)
{
    struct pipe_runner *r = p->r;

    pipe_spec_free(&p->spec);
    cJSON_Delete(p->steps_json);
    cJSON_Delete(p->fields);
    cJSON_Delete(p->writes);
    free(p->tenant);
    free(p->st);
    free(p->start);
    free(p->pending);
    free(p->failed);
    free(p->n);
    free(p->ids);
    free(p->id_ptrs);
    free(p->first);
    free(p->webhook_body);
    free(p);
    if (--r->passes == 0 && r->freed) {
        free(r);
    }
}

const char *pipe_runner_field(const struct pass *p, const char *prefix, const char *step)
{
    char name[PIPE_STEP_ID_MAX + 8];

    snprintf(name, sizeof(name), "%s%s", prefix, step ? step : "");
    return api_batch_field(p->fields, name);
}

long long pipe_runner_field_num(const struct pass *p, const char *prefix, const char *step)
{
    const char *v = pipe_runner_field(p, prefix, step);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* Queues field "<prefix><step>" = value for the pass's advance. */
static void put(struct pass *p, const char *prefix, const char *step, const char *value)
{
    char name[PIPE_STEP_ID_MAX + 8];

    snprintf(name, sizeof(name), "%s%s", prefix, step ? step : "");
    cJSON_DeleteItemFromObjectCaseSensitive(p->writes, name);
    cJSON_AddStringToObject(p->writes, name, value);
}

void pipe_runner_put_num(struct pass *p, const char *prefix, const char *step, long long v)
{
    char num[24];

    snprintf(num, sizeof(num), "%lld", v);
    put(p, prefix, step, num);
}

void pipe_runner_set_state(struct pass *p, size_t i, enum step_state s)
{
    const char *id = p->spec.steps[i].id;

    p->st[i] = s;
    put(p, "st:", id, st_names[s]);
    if (st_ended(s)) {
        pipe_runner_put_num(p, "t1:", id, p->now);
    }
}

/* A step that failed before it had tasks: its error (OpenAI's fields) kept on the pipeline. */
void pipe_runner_fail_step(struct pass *p, size_t i, const struct core_err *e)
{
    cJSON *err = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type[0] ? e->type : "invalid_request_error");
    cJSON_AddStringToObject(err, "param", e->param);
    cJSON_AddStringToObject(err, "code", e->err_code[0] ? e->err_code : "step_not_startable");
    text = cJSON_PrintUnformatted(err);
    cJSON_Delete(err);
    put(p, "err:", p->spec.steps[i].id, text ? text : "{}");
    cJSON_free(text);
    pipe_runner_set_state(p, i, ST_FAILED);
    log_info("pipeline step failed to start", "pipeline=%s step=%s error=\"%s\"", p->id,
             p->spec.steps[i].id, e->message);
}

/*
 * Step 1: the steps' states from the counts, and which steps start. Repeated until nothing
 * moves, so a skip passes down a chain in one pass.
 */
static void compute(struct pass *p)
{
    bool moved = true;

    for (size_t i = 0; i < p->spec.n; i++) {
        p->st[i] = st_parse(pipe_runner_field(p, "st:", p->spec.steps[i].id));
        p->n[i] = pipe_runner_field_num(p, "n:", p->spec.steps[i].id);
    }
    while (moved) {
        moved = false;
        for (size_t i = 0; i < p->spec.n; i++) {
            const struct pipe_step *s = &p->spec.steps[i];
            bool deps_done = true, dep_bad = false;

            if (p->st[i] == ST_RUNNING) {
                long long ok = pipe_runner_field_num(p, "ok:", s->id),
                          bad = pipe_runner_field_num(p, "bad:", s->id);
                if (ok + bad >= p->n[i]) {
                    pipe_runner_set_state(p, i,
                                          bad == 0        ? ST_COMPLETED
                                          : p->cancelling ? ST_CANCELLED
                                                          : ST_FAILED);
                    moved = true;
                }
                continue;
            }
            if (p->st[i] != ST_WAITING || p->start[i]) {
                continue;
            }
            for (size_t d = 0; d < s->n_after; d++) {
                enum step_state ds = p->st[s->after[d]];
                deps_done = deps_done && ds == ST_COMPLETED;
                dep_bad = dep_bad || ds == ST_FAILED || ds == ST_SKIPPED || ds == ST_CANCELLED;
            }
            if (p->cancelling || dep_bad) {
                pipe_runner_set_state(p, i, ST_SKIPPED);
                moved = true;
            } else if (deps_done) {
                p->start[i] = true;
            }
        }
    }
}

/* Whether every step has ended (then the pipeline ends) and how. */
static void decide_end(struct pass *p)
{
    bool failed = false;

    for (size_t i = 0; i < p->spec.n; i++) {
        if (!st_ended(p->st[i]) || p->start[i]) {
            return;
        }
        failed = failed || p->st[i] == ST_FAILED;
    }
    if (p->cancelling) {
        const char *reason = pipe_runner_field(p, "creason", NULL);
        p->end = reason && strcmp(reason, "expired") == 0 ? "expired" : "cancelled";
    } else {
        p->end = failed ? "failed" : "completed";
    }
}

/* ---- the end of a pass ---------------------------------------------------------------------- */

static void on_unleased(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct pass *p = arg;

    (void)r;
    if (err != NULL) {
        log_warn("pipeline unlease failed", "pipeline=%s error=\"%s\"", p->id, err->message);
    }
    pass_free(p);
}

static void unlease(struct pass *p)
{
    struct txn_args args;
    struct txn_pipe b = {.op = TXN_PIPE_UNLEASE, .id = p->id, .now_ms = util_now_ms()};
    int64_t due = p->again        ? 0
                  : p->retry_soon ? p->now + RUNNER_RETRY_MS
                                  : p->now + RUNNER_RECHECK_MS;
    long long deadline = pipe_runner_field_num(p, "deadline", NULL);

    if (deadline > 0 && deadline < due && !p->cancelling) {
        due = deadline;
    }
    b.u.unlease.lease = p->lease;
    b.u.unlease.due_ms = due;
    txn_args_init(&args);
    if (txn_pipe(p->r->api->store, &args, &b, on_unleased, p) < 0) {
        pass_free(p); /* the lease runs out and the pipeline comes back */
    }
    txn_args_cleanup(&args);
}

static void on_advanced(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct pass *p = arg;

    if (err != NULL || r->answer != TXN_PIPE_OK) {
        if (err != NULL) {
            log_warn("pipeline advance failed", "pipeline=%s error=\"%s\"", p->id, err->message);
        }
        pass_free(p); /* stale, gone, or the store is away: the lease decides */
        return;
    }
    if (p->end) {
        log_info("pipeline ended", "pipeline=%s tenant=%s status=%s", p->id, p->tenant, p->end);
        pass_free(p);
        return;
    }
    unlease(p);
}

/* Writes what the pass decided (PIPE advance), then hands the lease back. */
static void advance(struct pass *p)
{
    struct txn_args args;
    struct txn_pipe b = {.op = TXN_PIPE_ADVANCE, .id = p->id, .now_ms = util_now_ms()};
    size_t n = (size_t)cJSON_GetArraySize(p->writes), k = 0;
    const char **pairs = calloc(2 * n + 1, sizeof(*pairs));
    const cJSON *f;

    if (pairs == NULL) {
        pass_free(p);
        return;
    }
    cJSON_ArrayForEach(f, p->writes)
    {
        pairs[2 * k] = f->string;
        pairs[2 * k + 1] = f->valuestring;
        k++;
    }
    b.u.advance.lease = p->lease;
    b.u.advance.status = p->end ? p->end : p->new_status;
    b.u.advance.ret_ms = (int64_t)p->r->api->cfg->tasks.retention_s * 1000;
    b.u.advance.webhook_body = p->webhook_body;
    b.u.advance.event = p->event;
    b.u.advance.fields = pairs;
    b.u.advance.n_fields = n;
    txn_args_init(&args);
    if (txn_pipe(p->r->api->store, &args, &b, on_advanced, p) < 0) {
        pass_free(p);
    }
    txn_args_cleanup(&args);
    free(pairs);
}

/* A submit or cancel came back: the last one writes the pass. */
void pipe_runner_settle(struct pass *p)
{
    if (--p->waiting == 0) {
        advance(p);
    }
}

/* ---- cancelling ----------------------------------------------------------------------------- */

static void on_cancelled(const struct txn_cancelled *c, const struct core_err *err, void *arg)
{
    struct pass *p = arg;

    (void)c;
    if (err != NULL) {
        p->retry_soon = true;
    }
    pipe_runner_settle(p);
}

/* Step 2: CANCEL every task of the steps still running. */
static void cancel_running(struct pass *p)
{
    struct txn_args args;

    txn_args_init(&args);
    for (size_t i = 0; i < p->spec.n; i++) {
        const struct pipe_step *s = &p->spec.steps[i];
        for (long long k = 0; p->st[i] == ST_RUNNING && k < p->n[i]; k++) {
            char tid[RUNNER_TASK_ID_MAX];
            struct txn_cancel c = {.id = tid,
                                   .tenant = p->tenant,
                                   .now_ms = util_now_ms(),
                                   .retention_ms =
                                       (int64_t)p->r->api->cfg->tasks.retention_s * 1000};
            if (pipe_task_id(p->id, s->id, s->kind, (size_t)k, tid, sizeof(tid)) < 0) {
                continue;
            }
            p->waiting++;
            if (txn_cancel(p->r->api->store, &args, &c, on_cancelled, p) < 0) {
                p->waiting--;
                p->retry_soon = true;
            }
        }
    }
    txn_args_cleanup(&args);
}

/* Step 4's webhook body: the pipeline as it ends, with its output (the final steps' tasks). */
static void end_body(struct pass *p, const struct txn_pipe_reply *r)
{
    cJSON *output = NULL, *obj;
    char event[48];

    if (pipe_runner_field(p, "webhook", NULL) == NULL) {
        return;
    }
    if (strcmp(p->end, "completed") == 0 && r != NULL) {
        output = cJSON_CreateObject();
        for (size_t i = 0; output && i < p->spec.n; i++) {
            const struct pipe_step *s = &p->spec.steps[i];
            struct txn_pipe_task *t;
            if (!s->final || p->first[i] == SIZE_MAX) {
                continue;
            }
            t = calloc((size_t)p->n[i] + 1, sizeof(*t));
            for (long long k = 0; t && k < p->n[i] && p->first[i] + (size_t)k < r->n; k++) {
                txn_pipe_task_at(r, p->first[i] + (size_t)k, &t[k]);
            }
            if (t) {
                cJSON_AddItemToObject(
                    output, s->id,
                    pipe_output_json(p->id_ptrs + p->first[i], t, (size_t)p->n[i], s->fan_out));
            }
            free(t);
        }
    }
    /* the object as it will be: this pass's writes applied */
    {
        const cJSON *w;
        cJSON_ArrayForEach(w, p->writes)
        {
            cJSON_DeleteItemFromObjectCaseSensitive(p->fields, w->string);
            cJSON_AddStringToObject(p->fields, w->string, w->valuestring);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(p->fields, "status");
        cJSON_AddStringToObject(p->fields, "status", p->end);
        cJSON_DeleteItemFromObjectCaseSensitive(p->fields, "completed");
        {
            char num[24];
            snprintf(num, sizeof(num), "%lld", (long long)p->now);
            cJSON_AddStringToObject(p->fields, "completed", num);
        }
    }
    obj = pipe_json(p->id, p->fields, &p->spec, output);
    snprintf(event, sizeof(event), "pipeline.%s",
             strcmp(p->end, "expired") == 0 ? "failed" : p->end);
    p->event = strcmp(event, "pipeline.completed") == 0   ? "pipeline.completed"
               : strcmp(event, "pipeline.cancelled") == 0 ? "pipeline.cancelled"
                                                          : "pipeline.failed";
    p->webhook_body = webhook_body(p->event, obj);
}

/* The tasks needed are read (r NULL: none were needed): starts, the end, the write. */
static void proceed(struct pass *p, const struct txn_pipe_reply *r)
{
    p->waiting = 1; /* held while the starts are sent */
    for (size_t i = 0; r != NULL && i < p->spec.n; i++) {
        if (p->start[i]) {
            pipe_start_step(p, i, r);
        }
    }
    if (!p->end) {
        /* a step that failed to start ends the pipeline in a later pass; look again at once */
        bool again = false;
        for (size_t i = 0; i < p->spec.n; i++) {
            again = again || (p->start[i] && st_ended(p->st[i]));
        }
        p->again = again;
    }
    if (p->end) {
        end_body(p, r);
    }
    if (!p->end) {
        const char *st = pipe_runner_field(p, "status", NULL);
        bool started = false;
        for (size_t i = 0; i < p->spec.n; i++) {
            started = started || p->st[i] != ST_WAITING || p->pending[i] > 0;
        }
        if (st && strcmp(st, "queued") == 0 && started) {
            p->new_status = "running";
        }
    }
    pipe_runner_settle(p);
}

static void on_tasks(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct pass *p = arg;

    if (err != NULL) {
        log_warn("pipeline read failed", "pipeline=%s error=\"%s\"", p->id, err->message);
        p->retry_soon = true;
        for (size_t i = 0; i < p->spec.n; i++) {
            p->start[i] = false;
        }
        p->end = NULL;
        proceed(p, NULL);
        return;
    }
    proceed(p, r);
}

/* Which tasks the pass reads: the dependencies of starting steps, and the final steps when it
 * ends completed (for the webhook's output). */
static int plan_reads(struct pass *p)
{
    bool *need = calloc(p->spec.n + 1, sizeof(*need));
    size_t total = 0;

    if (need == NULL) {
        return -1;
    }
    for (size_t i = 0; i < p->spec.n; i++) {
        const struct pipe_step *s = &p->spec.steps[i];
        for (size_t d = 0; p->start[i] && d < s->n_after; d++) {
            need[s->after[d]] = true;
        }
        if (p->end && strcmp(p->end, "completed") == 0 && s->final &&
            pipe_runner_field(p, "webhook", NULL) != NULL) {
            need[i] = true;
        }
    }
    for (size_t i = 0; i < p->spec.n; i++) {
        p->first[i] = SIZE_MAX;
        if (need[i]) {
            total += (size_t)p->n[i];
        }
    }
    p->ids = calloc(total + 1, sizeof(*p->ids));
    p->id_ptrs = calloc(total + 1, sizeof(*p->id_ptrs));
    if (p->ids == NULL || p->id_ptrs == NULL) {
        free(need);
        return -1;
    }
    for (size_t i = 0; i < p->spec.n; i++) {
        if (!need[i]) {
            continue;
        }
        p->first[i] = p->n_ids;
        for (long long k = 0; k < p->n[i]; k++) {
            pipe_task_id(p->id, p->spec.steps[i].id, p->spec.steps[i].kind, (size_t)k,
                         p->ids[p->n_ids], sizeof(p->ids[0]));
            p->id_ptrs[p->n_ids] = p->ids[p->n_ids];
            p->n_ids++;
        }
    }
    free(need);
    return 0;
}

/* A claimed pipeline: steps 1 and 2, then the reads steps 3 and 4 need. */
static void pass_begin(struct pass *p)
{
    struct api *a = p->r->api;
    struct core_err e;
    const char *st = pipe_runner_field(p, "status", NULL);
    long long deadline = pipe_runner_field_num(p, "deadline", NULL);
    bool any_start = false;

    core_err_clear(&e);
    p->steps_json = cJSON_Parse(pipe_runner_field(p, "spec", NULL) ?: "");
    p->spec_ok =
        p->steps_json &&
        pipe_spec_parse(p->steps_json, (size_t)a->cfg->pipelines.max_steps, &p->spec, &e) == 0;
    if (!p->spec_ok) {
        /* a spec that no longer parses (the limits changed): it cannot go on */
        log_warn("pipeline spec no longer valid", "pipeline=%s error=\"%s\"", p->id, e.message);
        p->end = "failed";
        p->waiting = 1;
        pipe_runner_settle(p);
        return;
    }
    p->st = calloc(p->spec.n, sizeof(*p->st));
    p->start = calloc(p->spec.n, sizeof(*p->start));
    p->pending = calloc(p->spec.n, sizeof(*p->pending));
    p->failed = calloc(p->spec.n, sizeof(*p->failed));
    p->n = calloc(p->spec.n, sizeof(*p->n));
    p->first = calloc(p->spec.n, sizeof(*p->first));
    if (!p->st || !p->start || !p->pending || !p->failed || !p->n || !p->first) {
        pass_free(p);
        return;
    }
    p->cancelling = st && strcmp(st, "cancelling") == 0;
    if (!p->cancelling && deadline > 0 && p->now >= deadline) {
        p->cancelling = true;
        p->new_status = "cancelling";
        put(p, "creason", NULL, "expired");
        cJSON_AddStringToObject(p->fields, "creason", "expired");
    }
    compute(p);
    decide_end(p);
    for (size_t i = 0; i < p->spec.n; i++) {
        any_start = any_start || p->start[i];
    }
    p->waiting = 1; /* held while the cancels are sent */
    if (p->cancelling) {
        cancel_running(p);
    }
    p->waiting--;
    if (plan_reads(p) < 0) {
        pass_free(p);
        return;
    }
    if (p->n_ids > 0 || any_start) {
        struct txn_args args;
        struct txn_pipe b = {.op = TXN_PIPE_TASKS, .now_ms = util_now_ms()};
        b.u.tasks.task_ids = p->id_ptrs;
        b.u.tasks.n = p->n_ids;
        txn_args_init(&args);
        if (txn_pipe(a->store, &args, &b, on_tasks, p) < 0) {
            txn_args_cleanup(&args);
            on_tasks(NULL, &(struct core_err){.code = CORE_EUNAVAILABLE}, p);
            return;
        }
        txn_args_cleanup(&args);
        return;
    }
    proceed(p, NULL);
}

/* ---- claiming ------------------------------------------------------------------------------- */

static void on_claimed(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct pipe_runner *rn = arg;
    size_t got = 0;

    rn->claiming = false;
    if (err != NULL) {
        return;
    }
    for (size_t i = 0; i < r->n && !rn->stopping; i++) {
        const char *id;
        const redisReply *hash;
        struct pass *p = calloc(1, sizeof(*p));
        const char *lease;

        txn_pipe_claimed_at(r, i, &id, &hash);
        if (p == NULL) {
            continue; /* its lease runs out */
        }
        p->r = rn;
        rn->passes++;
        snprintf(p->id, sizeof(p->id), "%s", id);
        p->now = util_now_ms();
        p->fields = api_batch_fields(hash);
        p->writes = cJSON_CreateObject();
        lease = p->fields ? api_batch_field(p->fields, "leased") : NULL;
        p->tenant = strdup(p->fields ? api_batch_field(p->fields, "tenant") ?: "" : "");
        if (p->fields == NULL || p->writes == NULL || lease == NULL || p->tenant == NULL) {
            pass_free(p);
            continue;
        }
        snprintf(p->lease, sizeof(p->lease), "%s", lease);
        got++;
        pass_begin(p);
    }
    /* a full claim: more may be due */
    if (got > 0 && rn->passes < RUNNER_PASSES_MAX && r->n >= 16) {
        claim(rn);
    }
}

static void claim(struct pipe_runner *r)
{
    struct txn_args args;
    struct txn_pipe b = {.op = TXN_PIPE_CLAIM, .now_ms = util_now_ms()};
    int room = RUNNER_PASSES_MAX - r->passes;

    if (r->stopping || r->claiming || room <= 0 || !store_ready(r->api->store)) {
        return;
    }
    b.u.claim.lease_ms = r->api->cfg->pipelines.lease_ms;
    b.u.claim.max = room < 16 ? room : 16;
    r->claiming = true;
    txn_args_init(&args);
    if (txn_pipe(r->api->store, &args, &b, on_claimed, r) < 0) {
        r->claiming = false;
    }
    txn_args_cleanup(&args);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    claim(arg);
}

struct pipe_runner *pipe_runner_new(struct api *a)
{
    struct pipe_runner *r = calloc(1, sizeof(*r));
    struct timeval tv = {a->cfg->pipelines.poll_ms / 1000,
                         (a->cfg->pipelines.poll_ms % 1000) * 1000};

    if (r == NULL) {
        return NULL;
    }
    r->api = a;
    r->timer = event_new(a->base, -1, EV_PERSIST, on_timer, r);
    if (r->timer == NULL || event_add(r->timer, &tv) < 0) {
        pipe_runner_free(r);
        return NULL;
    }
    return r;
}

void pipe_runner_stop(struct pipe_runner *r)
{
    if (r) {
        r->stopping = true;
        if (r->timer) {
            event_del(r->timer);
        }
    }
}

void pipe_runner_free(struct pipe_runner *r)
{
    if (r == NULL) {
        return;
    }
    if (r->timer) {
        event_free(r->timer);
        r->timer = NULL;
    }
    r->stopping = true;
    if (r->passes > 0) {
        r->freed = true; /* their store calls end (with an error, at the latest when the store
                          * is freed), and the last pass frees the runner */
        return;
    }
    free(r);
}
