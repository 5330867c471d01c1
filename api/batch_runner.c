/*
 * api/batch_runner.c — carries batches through their life (see api/batches.h), one at a time per
 * API process, in steps of bounded work so the loop keeps serving requests: a validation step
 * reads up to RUNNER_VALIDATE_LINES lines; an expansion, cancel or finalization step handles
 * RUNNER_CHUNK tasks, pipelined to Redis, and the next step starts when their replies are in.
 *
 * Everything the runner knows is in Redis: the batch's status and expansion cursor (requests
 * submitted, the input file's byte offset after them), and its tasks, whose ids follow from the
 * batch id and the line. A runner that dies leaves a lease in the batches' work zset
 * (KS_BATCH_WORK); when it runs out, any runner takes the batch up where the store says it was.
 * Every change to a batch is an op of BATCH, sent through core/txn_batch.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/batch_runner.h"
#include "api/batches.h"
#include "api/files.h"
#include "core/config.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/scripts.h"
#include "core/store.h"
#include "core/task.h"
#include "core/txn_batch.h"
#include "core/txn_task.h"
#include "core/util.h"
#include "core/webhook_sign.h"

static void claim(struct batch_runner *r);
static void dispatch(struct batch_runner *r);
static void cancel_pass(struct batch_runner *r);

void runner_schedule(struct batch_runner *r)
{
    struct timeval now = {0, 0};
    event_add(r->step, &now);
}

const char *runner_field(const struct batch_runner *r, const char *name)
{
    return api_batch_field(r->fields, name);
}

long long runner_field_num(const struct batch_runner *r, const char *name)
{
    const char *v = runner_field(r, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* Drops the batch in hand; again: look for the next one at once. */
static void end_job(struct batch_runner *r, bool again)
{
    if (r->in) {
        fclose(r->in);
    }
    for (int i = 0; i < BATCH_FILES; i++) {
        if (r->files[i].f) {
            fclose(r->files[i].f);
        }
        if (r->files[i].path[0]) {
            unlink(r->files[i].path);
        }
    }
    for (size_t i = 0; i < r->n_seen; i++) {
        free(r->seen[i].custom_id);
    }
    free(r->seen);
    free(r->tenant);
    cJSON_Delete(r->fields);
    cJSON_Delete(r->errors);
    {
        struct api *a = r->api;
        struct event *timer = r->timer, *step = r->step;
        bool stopping = r->stopping;
        char *line = r->line;
        size_t cap = r->line_cap;
        struct txn_args args = r->args;
        memset(r, 0, sizeof(*r));
        r->api = a;
        r->timer = timer;
        r->step = step;
        r->stopping = stopping;
        r->line = line;
        r->line_cap = cap;
        r->args = args;
    }
    r->phase = PH_IDLE;
    if (again && !r->stopping) {
        runner_schedule(r);
    }
}

/*
 * Runs BATCH op b (its op and arguments filled) on the batch in hand: its id and tenant (none yet
 * for a claim), now. cb NULL: nobody waits for the answer. 0 or a negative code (nothing sent).
 */
static int op(struct batch_runner *r, struct txn_batch *b, txn_batch_cb cb)
{
    b->id = r->id;
    b->tenant = r->tenant;
    b->now_ms = util_now_ms();
    return txn_batch(r->api->store, &r->args, b, cb, r);
}

/* Lets another runner (or this one, later) take the batch at due_ms. */
static void release_at(struct batch_runner *r, long long due_ms)
{
    struct txn_batch b = {.op = TXN_BATCH_UNLEASE, .u.unlease.due_ms = due_ms};
    op(r, &b, NULL);
}

/* Keeps the lease while a long phase runs. */
void runner_renew(struct batch_runner *r)
{
    struct txn_batch b = {.op = TXN_BATCH_RENEW,
                          .u.renew.until_ms = util_now_ms() + r->api->cfg->batches.lease_ms};
    op(r, &b, NULL);
}

int runner_release(struct batch_runner *r, const char *const *task_ids, size_t n)
{
    struct txn_batch b = {.op = TXN_BATCH_RELEASE,
                          .u.release = {.ret_ms = (int64_t)r->api->cfg->tasks.retention_s * 1000,
                                        .task_ids = task_ids,
                                        .n = n}};
    return op(r, &b, NULL);
}

/* The store failed us mid-step: give the batch back (its lease brings it back later). */
void runner_abandon(struct batch_runner *r, const char *why)
{
    log_warn("batch runner gave a batch back", "batch=%s reason=\"%s\"", r->id, why);
    end_job(r, false);
}

/* ---- the input file ---------------------------------------------------------------------- */

static void on_input(void *arg, const char *path, long long bytes, const char *purpose,
                     const struct core_err *err);

static void open_input(struct batch_runner *r, enum phase then)
{
    int rc;

    r->phase = then;
    rc = api_files_lookup(r->api, r->tenant, runner_field(r, "input_file_id"), on_input, r);
    if (rc == CORE_ENOTFOUND) {
        struct core_err e;
        core_err_clear(&e);
        core_err_set(&e, CORE_ENOTFOUND, NULL, "no such file");
        on_input(r, NULL, 0, NULL, &e);
    } else if (rc < 0) {
        runner_abandon(r, "cannot look up the input file");
    } else {
        r->waiting = 1;
    }
}

/* ---- ending a batch: the done op with its webhook ----------------------------------------- */

static void on_done(const struct txn_batch_reply *rep, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;

    if (err != NULL) {
        runner_abandon(r, err->message);
        return;
    }
    if (rep->answer == TXN_BATCH_STALE) {
        /* another runner ended it first (after this one's lease ran out) */
        log_warn("batch already ended by another runner", "batch=%s", r->id);
        end_job(r, true);
        return;
    }
    log_info("batch ended", "batch=%s status=%s completed=%lld failed=%lld", r->id, r->final_status,
             runner_field_num(r, "completed"), runner_field_num(r, "failed"));
    end_job(r, true);
}

/* Ends the batch with r->final_status (and errors, a JSON list, or NULL). */
void runner_finish(struct batch_runner *r, const char *errors)
{
    char now_s[24], at[32], event[32];
    char *body;
    int status = txn_batch_status_parse(r->final_status);
    struct txn_batch b = {.op = TXN_BATCH_DONE};

    snprintf(now_s, sizeof(now_s), "%lld", (long long)(util_now_ms() / 1000));
    snprintf(at, sizeof(at), "%s_at", r->final_status);
    snprintf(event, sizeof(event), "batch.%s", r->final_status);
    cJSON_ReplaceItemInObject(r->fields, "status", cJSON_CreateString(r->final_status));
    cJSON_DeleteItemFromObject(r->fields, at);
    cJSON_AddStringToObject(r->fields, at, now_s);
    if (r->files[BATCH_OUTPUT].id[0]) {
        cJSON_AddStringToObject(r->fields, "output_file_id", r->files[BATCH_OUTPUT].id);
    }
    if (r->files[BATCH_ERRORS].id[0]) {
        cJSON_AddStringToObject(r->fields, "error_file_id", r->files[BATCH_ERRORS].id);
    }
    if (errors) {
        cJSON_DeleteItemFromObject(r->fields, "errors");
        cJSON_AddStringToObject(r->fields, "errors", errors);
    }
    body = webhook_body(event, api_batch_json(r->id, r->fields));
    b.u.done.status = (enum txn_batch_status)status;
    b.u.done.output_file = r->files[BATCH_OUTPUT].id;
    b.u.done.error_file = r->files[BATCH_ERRORS].id;
    b.u.done.webhook_body = body;
    b.u.done.errors = errors;
    /* status -1 (not a batch status: a bug) is refused by the builder like a store that is away */
    if (status < 0 || op(r, &b, on_done) < 0) {
        runner_abandon(r, "cannot end the batch");
    }
    cJSON_free(body);
}

/* ---- validation ---------------------------------------------------------------------------- */

static void add_error(struct batch_runner *r, long long line, const struct line_err *le)
{
    cJSON *e;

    r->n_errors++;
    if (cJSON_GetArraySize(r->errors) >= RUNNER_MAX_ERRORS) {
        return;
    }
    e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", le->code);
    if (line > 0) {
        cJSON_AddNumberToObject(e, "line", (double)line);
    } else {
        cJSON_AddNullToObject(e, "line");
    }
    cJSON_AddStringToObject(e, "message", le->message);
    if (le->param[0]) {
        cJSON_AddStringToObject(e, "param", le->param);
    } else {
        cJSON_AddNullToObject(e, "param");
    }
    cJSON_AddItemToArray(r->errors, e);
}

static int seen_cmp(const void *x, const void *y)
{
    const struct seen *a = x, *b = y;
    int c = strcmp(a->custom_id, b->custom_id);
    return c != 0 ? c : (a->line < b->line ? -1 : a->line > b->line);
}

static void validation_failed(struct batch_runner *r)
{
    cJSON *list = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(list, "object", "list");
    cJSON_AddItemToObject(list, "data", r->errors);
    r->errors = NULL;
    text = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    snprintf(r->final_status, sizeof(r->final_status), "%s",
             txn_batch_status_name(TXN_BATCH_FAILED));
    log_info("batch failed validation", "batch=%s bad_lines=%lld", r->id, r->n_errors);
    runner_finish(r, text ? text : "{\"object\":\"list\",\"data\":[]}");
    cJSON_free(text);
}

static void on_started(const struct txn_batch_reply *rep, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;

    r->waiting = 0;
    if (err != NULL) {
        runner_abandon(r, err->message);
        return;
    }
    if (rep->answer != TXN_BATCH_OK || rep->status != TXN_BATCH_IN_PROGRESS) {
        end_job(r, true); /* cancelled meanwhile (or gone): the next claim ends it */
        return;
    }
    cJSON_ReplaceItemInObject(r->fields, "status",
                              cJSON_CreateString(txn_batch_status_name(TXN_BATCH_IN_PROGRESS)));
    rewind(r->in);
    r->off = r->line_no = r->ordinal = 0;
    r->phase = PH_EXPAND;
    runner_schedule(r);
}

static void validation_done(struct batch_runner *r)
{
    struct txn_batch b = {.op = TXN_BATCH_STARTED};

    if (r->ordinal == 0 && r->n_errors == 0) {
        struct line_err le = {"empty_file", "", "The input file has no requests"};
        add_error(r, 0, &le);
    }
    qsort(r->seen, r->n_seen, sizeof(*r->seen), seen_cmp);
    for (size_t i = 1; i < r->n_seen; i++) {
        if (strcmp(r->seen[i].custom_id, r->seen[i - 1].custom_id) == 0) {
            struct line_err le = {"duplicate_custom_id", "custom_id", ""};
            snprintf(le.message, sizeof(le.message),
                     "The custom_id '%.200s' is used on an earlier line", r->seen[i].custom_id);
            add_error(r, r->seen[i].line, &le);
        }
    }
    if (r->n_errors > 0) {
        validation_failed(r);
        return;
    }
    b.u.started.total = r->ordinal;
    if (op(r, &b, on_started) < 0) {
        runner_abandon(r, "cannot start the batch");
        return;
    }
    r->waiting = 1;
}

static void validate_step(struct batch_runner *r)
{
    long max_lines = r->api->cfg->files.max_lines;

    for (int n = 0; n < RUNNER_VALIDATE_LINES; n++) {
        cJSON *root;
        const cJSON *body;
        const struct config_model *model;
        const char *custom_id = NULL;
        struct line_err le;

        if (batch_line_read(r) == 0) {
            validation_done(r);
            return;
        }
        if (batch_line_blank(r)) {
            continue;
        }
        if (++r->ordinal > max_lines) {
            if (r->ordinal == max_lines + 1) {
                struct line_err too = {"too_many_requests_in_file", "", ""};
                snprintf(too.message, sizeof(too.message), "The file has more than %ld requests",
                         max_lines);
                add_error(r, r->line_no, &too);
            }
            continue;
        }
        if (batch_line_check(r, &root, &body, &model, &custom_id, &le) < 0) {
            add_error(r, r->line_no, &le);
            continue;
        }
        if (r->n_seen == r->cap_seen) {
            size_t cap = r->cap_seen ? r->cap_seen * 2 : 1024;
            struct seen *p = realloc(r->seen, cap * sizeof(*p));
            if (p == NULL) {
                cJSON_Delete(root);
                runner_abandon(r, "out of memory");
                return;
            }
            r->seen = p;
            r->cap_seen = cap;
        }
        r->seen[r->n_seen].custom_id = strdup(custom_id);
        r->seen[r->n_seen].line = r->line_no;
        if (r->seen[r->n_seen].custom_id != NULL) {
            r->n_seen++;
        }
        cJSON_Delete(root);
    }
    runner_renew(r);
    runner_schedule(r);
}

/* ---- expansion ------------------------------------------------------------------------------ */

static void on_progress(const struct txn_batch_reply *rep, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;
    bool all = r->eof && r->fail_ordinal == 0;

    r->waiting = 0;
    if (err != NULL) {
        runner_abandon(r, err->message);
        return;
    }
    if (rep->answer == TXN_BATCH_STOP) {
        end_job(r, true); /* cancelled while expanding: the next claim cancels its tasks */
    } else if (r->fail_ordinal != 0) {
        end_job(r, false); /* quota or store trouble: the batch is due again shortly */
    } else if (all) {
        log_info("batch expanded", "batch=%s requests=%lld", r->id, r->ordinal);
        end_job(r, true);
    } else if (r->stopping) {
        release_at(r, util_now_ms());
        end_job(r, false);
    } else {
        runner_schedule(r);
    }
}

static void chunk_done(struct batch_runner *r)
{
    long long now = util_now_ms();
    struct txn_batch b = {.op = TXN_BATCH_PROGRESS};

    if (r->fail_ordinal != 0) {
        b.u.progress.expanded = r->fail_ordinal - 1;
        b.u.progress.offset = r->offs[r->fail_ordinal - r->chunk_first];
        b.u.progress.due_ms = now + RUNNER_BACKOFF_MS;
    } else {
        b.u.progress.expanded = r->ordinal;
        b.u.progress.offset = r->off;
        b.u.progress.due_ms = now + r->api->cfg->batches.lease_ms;
    }
    b.u.progress.all = r->eof && r->fail_ordinal == 0;
    if (op(r, &b, on_progress) < 0) {
        runner_abandon(r, "cannot record the expansion");
        return;
    }
    r->waiting = 1;
}

static void on_line_submitted(struct api_ctx *c, int outcome, redisReply *dup,
                              const struct core_err *err)
{
    struct batch_runner *r = c->owner;
    long long ordinal = c->values[0];

    (void)dup;
    if (outcome < 0) {
        if (r->fail_ordinal == 0 || ordinal < r->fail_ordinal) {
            r->fail_ordinal = ordinal;
        }
        if (err && err->code != CORE_EQUOTA) {
            log_warn("batch line not submitted", "batch=%s task=%s error=\"%s\"", r->id, c->id,
                     err->message);
        }
    }
    api_ctx_free(c);
    if (--r->waiting == 0) {
        chunk_done(r);
    }
}

/* Submits one line as a task; false when it could not be sent. */
static bool submit_line(struct batch_runner *r, const cJSON *body, const struct config_model *m,
                        const char *custom_id)
{
    struct api_submit sub = {0};
    struct core_err e;
    struct api_ctx *c = api_ctx_new(r->api, NULL, r->tenant);

    if (c == NULL || api_batch_task_id(r->id, r->kind, r->ordinal, c->id, sizeof(c->id)) < 0) {
        api_ctx_free(c);
        return false;
    }
    c->owner = r;
    c->values[0] = r->ordinal;
    sub.kind = r->kind;
    sub.input = body;
    sub.model = m;
    sub.prio = TASK_PRIO_BATCH;
    sub.batch_id = r->id;
    sub.custom_id = custom_id;
    sub.key_id = runner_field(r, "key");
    sub.render = API_RENDER_NONE; /* a line's task is answered in the output file, not here */
    core_err_clear(&e);
    if (api_submit(r->api, c, &sub, on_line_submitted, &e) < 0) {
        api_ctx_free(c);
        return false;
    }
    r->waiting++;
    return true;
}

static void expand_step(struct batch_runner *r)
{
    int n = 0;

    r->fail_ordinal = 0;
    r->chunk_first = r->ordinal + 1;
    r->waiting = 1; /* held while the chunk is sent */
    while (n < RUNNER_CHUNK) {
        long long start = r->off;
        cJSON *root;
        const cJSON *body;
        const struct config_model *m;
        const char *custom_id;
        struct line_err le;

        if (batch_line_read(r) == 0) {
            r->eof = true;
            break;
        }
        if (batch_line_blank(r)) {
            continue;
        }
        r->ordinal++;
        r->offs[n++] = start;
        if (batch_line_check(r, &root, &body, &m, &custom_id, &le) < 0) {
            /* it passed validation: only a changed config gets here */
            log_warn("batch line no longer valid; skipped", "batch=%s line=%lld code=%s", r->id,
                     r->line_no, le.code);
            continue;
        }
        if (!submit_line(r, body, m, custom_id) &&
            (r->fail_ordinal == 0 || r->ordinal < r->fail_ordinal)) {
            r->fail_ordinal = r->ordinal;
        }
        cJSON_Delete(root);
    }
    if (!r->eof) {
        /* a chunk that ends exactly at the end of the file says so now */
        int ch = getc_unlocked(r->in);
        if (ch == EOF) {
            r->eof = true;
        } else {
            ungetc(ch, r->in);
        }
    }
    if (--r->waiting == 0) {
        chunk_done(r);
    }
}

/* ---- the cancel pass (cancelled, expired or input file gone) ----------------------------- */

static void on_checked(const struct txn_batch_reply *rep, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;

    r->waiting = 0;
    if (err != NULL) {
        runner_abandon(r, err->message);
        return;
    }
    if (rep->answer == TXN_BATCH_ALL_DONE) {
        batch_final_start(r); /* every task is done: write its files while we hold it */
    } else {
        end_job(r, false);
    }
}

/* Asks whether every submitted task is done (after setting field mark to 1, NULL: none); if
 * not, the batch is due again at due_ms. */
static void check(struct batch_runner *r, long long due_ms, const char *mark)
{
    struct txn_batch b = {.op = TXN_BATCH_CHECK, .u.check = {.due_ms = due_ms, .mark = mark}};

    if (op(r, &b, on_checked) < 0) {
        runner_abandon(r, "cannot check the batch");
        return;
    }
    r->waiting = 1;
}

static void on_cancelled(const struct txn_cancelled *c, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;

    (void)c;
    if (err != NULL) {
        r->fail_ordinal = 1;
    }
    if (--r->waiting > 0) {
        return;
    }
    if (r->fail_ordinal != 0) {
        runner_abandon(r, "cannot cancel the batch's tasks");
    } else if (r->next > r->last) {
        check(r, util_now_ms() + RUNNER_RECHECK_MS, "cancel_sent");
    } else {
        runner_schedule(r);
    }
}

static void cancel_step(struct batch_runner *r)
{
    struct txn_cancel p = {.tenant = r->tenant,
                           .now_ms = util_now_ms(),
                           .retention_ms = (int64_t)r->api->cfg->tasks.retention_s * 1000};

    r->waiting = 1;
    for (int n = 0; n < RUNNER_CHUNK && r->next <= r->last; n++, r->next++) {
        char id[64];
        if (api_batch_task_id(r->id, r->kind, r->next, id, sizeof(id)) < 0) {
            continue;
        }
        p.id = id;
        /* r->args is free between calls: a call is sent (copied out) before txn_cancel returns */
        if (txn_cancel(r->api->store, &r->args, &p, on_cancelled, r) == 0) {
            r->waiting++;
        } else {
            r->fail_ordinal = 1;
        }
    }
    runner_renew(r);
    on_cancelled(NULL, NULL, r);
}

static void cancel_pass(struct batch_runner *r)
{
    r->phase = PH_CANCEL;
    r->next = 1;
    r->last = runner_field_num(r, "expanded");
    r->fail_ordinal = 0;
    log_info("cancelling a batch's tasks", "batch=%s tasks=%lld reason=%s", r->id, r->last,
             runner_field(r, "end") ? runner_field(r, "end") : "cancelled");
    runner_schedule(r);
}

static void on_stopped(const struct txn_batch_reply *rep, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;

    (void)rep;
    r->waiting = 0;
    if (err != NULL) {
        runner_abandon(r, err->message);
        return;
    }
    end_job(r, true); /* it is due now: the next claim cancels its tasks */
}

/* Stops the batch's expansion where it is; reason: expired, failed (input file gone) or
 * cancelled (the batch's end, written unless it has one). */
static void stop_batch(struct batch_runner *r, enum txn_batch_status reason)
{
    struct txn_batch b = {.op = TXN_BATCH_EXPIRE, .u.expire.reason = reason};

    if (op(r, &b, on_stopped) < 0) {
        runner_abandon(r, "cannot stop the batch");
        return;
    }
    r->waiting = 1;
}

/* ---- claiming and dispatching ------------------------------------------------------------- */

static void on_input(void *arg, const char *path, long long bytes, const char *purpose,
                     const struct core_err *err)
{
    struct batch_runner *r = arg;
    const char *status = runner_field(r, "status");

    (void)bytes;
    (void)purpose;
    r->waiting = 0;
    if (err != NULL && err->code != CORE_ENOTFOUND) {
        runner_abandon(r, err->message);
        return;
    }
    if (err == NULL) {
        r->in = fopen(path, "r");
    }
    if (r->in == NULL) {
        /* the input file was deleted (or is unreadable) before the batch could use it */
        log_warn("a batch's input file is gone", "batch=%s file=%s", r->id,
                 runner_field(r, "input_file_id"));
        if (txn_batch_status_parse(status) == TXN_BATCH_VALIDATING) {
            struct line_err le = {"file_not_found", "input_file_id",
                                  "The input file no longer exists"};
            add_error(r, 0, &le);
            validation_failed(r);
        } else {
            stop_batch(r, TXN_BATCH_FAILED);
        }
        return;
    }
    if (r->phase == PH_EXPAND) {
        r->off = runner_field_num(r, "exp_off");
        r->ordinal = runner_field_num(r, "expanded");
        if (fseeko(r->in, (off_t)r->off, SEEK_SET) != 0) {
            runner_abandon(r, "cannot seek in the input file");
            return;
        }
    }
    runner_schedule(r);
}

/* The batch's end as a status: cancelled unless it says expired or failed. */
static enum txn_batch_status end_reason(const char *end)
{
    int st = txn_batch_status_parse(end);
    return st < 0 ? TXN_BATCH_CANCELLED : (enum txn_batch_status)st;
}

/* Does what the claimed batch's status asks for. */
static void dispatch(struct batch_runner *r)
{
    const char *status = runner_field(r, "status");
    const char *end = runner_field(r, "end");
    bool expanded =
        runner_field(r, "expanded_all") && strcmp(runner_field(r, "expanded_all"), "1") == 0;
    bool cancel_sent = runner_field(r, "cancel_sent") != NULL;
    long long now = util_now_ms();
    int kind = api_batch_kind(runner_field(r, "endpoint"));
    char work[128];

    if (status == NULL || kind < 0 || r->tenant == NULL) {
        runner_abandon(r, "malformed batch");
        return;
    }
    r->kind = (enum task_kind)kind;
    switch (txn_batch_status_parse(status)) {
    case TXN_BATCH_VALIDATING:
        r->errors = cJSON_CreateArray();
        open_input(r, PH_VALIDATE);
        break;
    case TXN_BATCH_IN_PROGRESS:
        if (!expanded) {
            open_input(r, PH_EXPAND);
        } else if (end == NULL && now >= runner_field_num(r, "expires_at") * 1000) {
            log_info("batch expired", "batch=%s", r->id);
            stop_batch(r, TXN_BATCH_EXPIRED);
        } else if (end == NULL) {
            check(r, runner_field_num(r, "expires_at") * 1000, NULL);
        } else if (!cancel_sent) {
            cancel_pass(r); /* expired (or its input file went) after its expansion */
        } else {
            check(r, now + RUNNER_RECHECK_MS, NULL);
        }
        break;
    case TXN_BATCH_CANCELLING:
        if (!expanded) {
            /* cancelled while expanding: stop the expansion, then cancel its tasks */
            stop_batch(r, end_reason(end));
        } else if (!cancel_sent) {
            cancel_pass(r);
        } else {
            check(r, now + RUNNER_RECHECK_MS, NULL);
        }
        break;
    case TXN_BATCH_FINALIZING:
        batch_final_start(r);
        break;
    default: {
        /* ended (or a status this runner does not know): nothing to do, not due any more */
        const char *argv[] = {"ZREM", work, r->id};
        if (keyspace_key(store_keys(r->api->store), work, sizeof(work), KS_BATCH_WORK, NULL) == 0) {
            store_command(r->api->store, NULL, NULL, 3, argv, NULL);
        }
        end_job(r, true);
        break;
    }
    }
}

static void on_claim(const struct txn_batch_reply *rep, const struct core_err *err, void *arg)
{
    struct batch_runner *r = arg;

    r->waiting = 0;
    if (err != NULL || rep->answer != TXN_BATCH_OK) {
        end_job(r, false); /* nothing due (or the store is away): the timer looks again */
        return;
    }
    snprintf(r->id, sizeof(r->id), "%s", rep->id);
    r->fields = api_batch_fields(rep->hash);
    if (r->fields == NULL || runner_field(r, "tenant") == NULL ||
        (r->tenant = strdup(runner_field(r, "tenant"))) == NULL) {
        runner_abandon(r, "malformed batch");
        return;
    }
    r->key = api_keys_find_id(r->api->keys, runner_field(r, "key"));
    dispatch(r);
}

static void claim(struct batch_runner *r)
{
    struct txn_batch b = {.op = TXN_BATCH_CLAIM};

    if (r->phase != PH_IDLE || r->stopping || !store_ready(r->api->store)) {
        return;
    }
    b.u.claim.lease_ms = r->api->cfg->batches.lease_ms;
    snprintf(r->id, sizeof(r->id), "-");
    r->phase = PH_BUSY;
    if (op(r, &b, on_claim) < 0) {
        r->phase = PH_IDLE;
        return;
    }
    r->waiting = 1;
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    struct batch_runner *r = arg;

    (void)fd;
    (void)what;
    switch (r->phase) {
    case PH_IDLE:
        claim(r);
        break;
    case PH_VALIDATE:
        validate_step(r);
        break;
    case PH_EXPAND:
        expand_step(r);
        break;
    case PH_CANCEL:
        cancel_step(r);
        break;
    case PH_FINAL:
        batch_final_step(r);
        break;
    case PH_BUSY:
        break;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    claim(arg);
}

struct batch_runner *batch_runner_new(struct api *a)
{
    struct batch_runner *r = calloc(1, sizeof(*r));
    struct timeval tv = {a->cfg->batches.poll_ms / 1000, (a->cfg->batches.poll_ms % 1000) * 1000};

    if (r == NULL) {
        return NULL;
    }
    r->api = a;
    txn_args_init(&r->args);
    r->timer = event_new(a->base, -1, EV_PERSIST, on_timer, r);
    r->step = evtimer_new(a->base, on_step, r);
    if (r->timer == NULL || r->step == NULL || event_add(r->timer, &tv) < 0) {
        batch_runner_free(r);
        return NULL;
    }
    return r;
}

void batch_runner_stop(struct batch_runner *r)
{
    if (r) {
        r->stopping = true;
    }
}

void batch_runner_free(struct batch_runner *r)
{
    if (r == NULL) {
        return;
    }
    if (r->phase != PH_IDLE) {
        end_job(r, false);
    }
    if (r->timer) {
        event_free(r->timer);
    }
    if (r->step) {
        event_free(r->step);
    }
    txn_args_cleanup(&r->args);
    free(r->line);
    free(r);
}
