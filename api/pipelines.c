/*
 * api/pipelines.c — POST /v1/pipelines, GET /v1/pipelines/{id}, GET /v1/pipelines, POST
 * /v1/pipelines/{id}/cancel, and the pipeline object (api/pipelines.h says how a pipeline runs).
 *
 * The pipeline object: {id, object: "pipeline", status (queued, running, cancelling, completed,
 * failed, cancelled, expired), steps: [{id, kind, status (waiting, running, completed, failed,
 * skipped, cancelled), task_ids, started_at, completed_at, error}], output (the final steps'
 * outputs, once completed), usage and cost (summed over every task as they end), priority,
 * created_at, completed_at, metadata, webhook}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/batches.h"
#include "api/internal.h"
#include "api/pipelines.h"
#include "core/artifact_ref.h"
#include "core/log.h"
#include "core/util.h"

/* Events a pipeline's webhook may ask for: its own (the first three, the default) and its
 * tasks' own, which its tasks then deliver. */
static const char *const pipeline_events[] = {
    "pipeline.completed", "pipeline.failed", "pipeline.cancelled",
    "task.completed",     "task.failed",     "task.cancelled",
    "task.started",       "task.progress",   NULL};
const struct api_webhook_events api_pipeline_webhook_events = {
    pipeline_events, 3,
    "pipeline.completed, pipeline.failed, pipeline.cancelled, task.started, task.progress, "
    "task.completed, task.failed and task.cancelled"};

int pipe_task_id(const char *pipe_id, const char *step, enum task_kind kind, size_t k, char *out,
                 size_t size)
{
    char seed[160];

    if (snprintf(seed, sizeof(seed), "%s:%s:%zu", pipe_id, step, k) >= (int)sizeof(seed)) {
        return -1;
    }
    return util_derived_id(api_task_id_prefix(kind), seed, out, size);
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void add_seconds(cJSON *o, const char *name, const char *ms)
{
    if (ms && ms[0]) {
        cJSON_AddNumberToObject(o, name, (double)(strtoll(ms, NULL, 10) / 1000));
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

/* A stored JSON text as a member (null when absent or not JSON). */
static void add_json(cJSON *o, const char *name, const char *text)
{
    cJSON *v = text && text[0] ? cJSON_Parse(text) : NULL;

    cJSON_AddItemToObject(o, name, v ? v : cJSON_CreateNull());
}

static cJSON *task_output(const char *id, const struct txn_pipe_task *t)
{
    cJSON *o = cJSON_CreateObject();
    int kind = t->kind ? task_kind_parse(t->kind) : -1;
    cJSON *result = NULL;

    cJSON_AddStringToObject(o, "task_id", id);
    cJSON_AddStringToObject(o, "status", t->status ? t->status : "expired");
    if (t->result && artifact_ref_is(t->result, strlen(t->result))) {
        result = artifact_ref_content_urls(t->result, "", id);
    } else if (t->result) {
        result = cJSON_Parse(t->result);
    }
    if (result && kind >= 0) {
        struct pipe_task_out out = {.task_id = id, .kind = (enum task_kind)kind, .result = result};
        char *owned = NULL;
        const char *text = pipe_task_text(&out, &owned);
        if (text) {
            cJSON_AddStringToObject(o, "text", text);
        }
        free(owned);
    }
    cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateNull());
    if (t->artifacts) {
        cJSON *list = task_artifacts_json(id, t->artifacts);
        if (list) {
            cJSON_AddItemToObject(o, "artifacts", list);
        }
    }
    if (t->error) {
        add_json(o, "error", t->error);
    }
    return o;
}

cJSON *pipe_output_json(const char *const *ids, const struct txn_pipe_task *t, size_t n, bool many)
{
    cJSON *list;

    if (!many) {
        return n > 0 ? task_output(ids[0], &t[0]) : cJSON_CreateNull();
    }
    list = cJSON_CreateArray();
    for (size_t i = 0; list && i < n; i++) {
        cJSON_AddItemToArray(list, task_output(ids[i], &t[i]));
    }
    return list;
}

/* A field "<prefix><step>" of fields, or NULL. */
static const char *step_field(const cJSON *fields, const char *prefix, const char *step)
{
    char name[PIPE_STEP_ID_MAX + 8];

    snprintf(name, sizeof(name), "%s%s", prefix, step);
    return api_batch_field(fields, name);
}

static cJSON *step_json(const char *pid, const cJSON *fields, const struct pipe_step *s)
{
    cJSON *o = cJSON_CreateObject(), *ids;
    const char *st = step_field(fields, "st:", s->id);
    const char *n = step_field(fields, "n:", s->id);
    long long count = n ? strtoll(n, NULL, 10) : 0;

    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "kind", task_kind_name(s->kind));
    cJSON_AddStringToObject(o, "status", st ? st : "waiting");
    ids = cJSON_AddArrayToObject(o, "task_ids");
    for (long long k = 0; ids && k < count; k++) {
        char tid[64];
        if (pipe_task_id(pid, s->id, s->kind, (size_t)k, tid, sizeof(tid)) == 0) {
            cJSON_AddItemToArray(ids, cJSON_CreateString(tid));
        }
    }
    add_seconds(o, "started_at", step_field(fields, "t0:", s->id));
    add_seconds(o, "completed_at", step_field(fields, "t1:", s->id));
    if (st && (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0)) {
        add_json(o, "error", step_field(fields, "err:", s->id));
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    return o;
}

cJSON *pipe_json(const char *id, const cJSON *fields, const struct pipe_spec *spec, cJSON *output)
{
    cJSON *o = cJSON_CreateObject(), *steps, *usage;
    const cJSON *f;
    const char *cost = api_batch_field(fields, "cost");

    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "pipeline");
    cJSON_AddStringToObject(o, "status", api_batch_field(fields, "status") ?: "queued");
    cJSON_AddStringToObject(o, "priority", api_batch_field(fields, "priority") ?: "normal");
    add_seconds(o, "created_at", api_batch_field(fields, "created"));
    add_seconds(o, "completed_at", api_batch_field(fields, "completed"));
    add_seconds(o, "deadline_at", api_batch_field(fields, "deadline"));
    steps = cJSON_AddArrayToObject(o, "steps");
    for (size_t i = 0; spec && steps && i < spec->n; i++) {
        cJSON_AddItemToArray(steps, step_json(id, fields, &spec->steps[i]));
    }
    cJSON_AddItemToObject(o, "output", output ? output : cJSON_CreateNull());
    usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_ArrayForEach(f, fields)
    {
        if (usage && strncmp(f->string, "u:", 2) == 0 && cJSON_IsString(f)) {
            cJSON_AddNumberToObject(usage, f->string + 2, strtod(f->valuestring, NULL));
        }
    }
    if (cost) {
        cJSON *c = cJSON_AddObjectToObject(o, "cost");
        cJSON_AddNumberToObject(c, "amount", strtod(cost, NULL));
        cJSON_AddStringToObject(c, "currency", api_batch_field(fields, "cur") ?: "USD");
    } else {
        cJSON_AddNullToObject(o, "cost");
    }
    add_json(o, "metadata", api_batch_field(fields, "metadata"));
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "metadata"))) {
        cJSON_ReplaceItemInObjectCaseSensitive(o, "metadata", cJSON_CreateObject());
    }
    if (api_batch_field(fields, "webhook")) {
        add_json(o, "webhook", api_batch_field(fields, "webhook"));
    }
    return o;
}

/* ---- the endpoints -------------------------------------------------------------------------- */

static void reply_pipe_not_found(struct api *a, struct evhttp_request *req, const char *id)
{
    api_reply_error(a, req, CORE_ENOTFOUND, "pipeline_id", "pipeline_not_found",
                    "No such pipeline: %.64s", id);
}

/* One PIPE op for c (its id and tenant, now). 0 or a negative code (cb never called). */
static int pipe_op(struct api_ctx *c, struct txn_pipe *b, txn_pipe_cb cb)
{
    struct txn_args args;
    int rc;

    b->id = c->id;
    b->tenant = c->tenant;
    b->now_ms = util_now_ms();
    txn_args_init(&args);
    rc = txn_pipe(c->api->store, &args, b, cb, c);
    txn_args_cleanup(&args);
    return rc;
}

/*
 * Checks every step's model: a string naming a configured alias that serves the step's kind (the
 * rest of the input is checked when the step starts, once its references are resolved).
 */
static int check_models(struct api *a, const struct api_key_ref *key, const struct pipe_spec *spec,
                        struct core_err *e)
{
    for (size_t i = 0; i < spec->n; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(spec->steps[i].input, "model");
        const struct config_model *cm;
        char param[96];

        snprintf(param, sizeof(param), "steps[%zu].input.model", i);
        if (!cJSON_IsString(m) || m->valuestring[0] == '\0') {
            return core_err_set(e, CORE_EINVAL, param, "'%s' must be a string", param);
        }
        cm = config_model_find(a->cfg, m->valuestring);
        if (cm == NULL) {
            core_err_set(e, CORE_ENOTFOUND, param, "The model '%.128s' does not exist",
                         m->valuestring);
            core_err_set_code(e, "model_not_found");
            return e->code;
        }
        if (api_key_model_check(key, cm, param, e) < 0) {
            return e->code;
        }
        if (!api_model_serves(cm, spec->steps[i].kind)) {
            return core_err_set(e, CORE_EINVAL, param, "The model '%.128s' serves %s tasks, not %s",
                                m->valuestring, task_kind_name(cm->kind),
                                task_kind_name(spec->steps[i].kind));
        }
    }
    return 0;
}

#define PIPE_FIELDS 12

/* The body of POST /v1/pipelines into c->task (the fields to store, strings). */
static int validate_pipeline(struct api *a, const struct api_ctx *c, const cJSON *body,
                             cJSON *fields, struct pipe_spec *spec, struct core_err *e)
{
    static const char *const known[] = {"steps", "webhook", "metadata", "priority", "deadline"};
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(body, "steps");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "priority");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    const cJSON *webhook = cJSON_GetObjectItemCaseSensitive(body, "webhook");
    const cJSON *deadline = cJSON_GetObjectItemCaseSensitive(body, "deadline");
    const cJSON *f;
    char *text;

    if (!cJSON_IsObject(body)) {
        return core_err_set(e, CORE_EINVAL, NULL, "The request body must be a JSON object");
    }
    cJSON_ArrayForEach(f, body)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            ok = ok || strcmp(f->string, known[i]) == 0;
        }
        if (!ok) {
            return core_err_set(e, CORE_EINVAL, f->string, "Unknown field '%.64s' of a pipeline",
                                f->string);
        }
    }
    if (steps == NULL) {
        return core_err_set(e, CORE_EINVAL, "steps", "'steps' is required");
    }
    if (pipe_spec_parse(steps, (size_t)a->cfg->pipelines.max_steps, spec, e) < 0 ||
        check_models(a, c->key, spec, e) < 0) {
        return e->code;
    }
    if (p != NULL && (!cJSON_IsString(p) || task_priority_parse(p->valuestring) < 0)) {
        return core_err_set(e, CORE_EINVAL, "priority",
                            "'priority' must be one of interactive, normal, batch");
    }
    cJSON_AddStringToObject(fields, "priority", p ? p->valuestring : "normal");
    if (deadline != NULL) {
        char num[24];
        if (!cJSON_IsNumber(deadline) || deadline->valuedouble < 1 ||
            deadline->valuedouble > 7 * 86400) {
            return core_err_set(e, CORE_EINVAL, "deadline",
                                "'deadline' must be a number of seconds between 1 and 604800");
        }
        snprintf(num, sizeof(num), "%lld",
                 (long long)(util_now_ms() + (int64_t)(deadline->valuedouble * 1000)));
        cJSON_AddStringToObject(fields, "deadline", num);
    }
    if (meta != NULL && !cJSON_IsNull(meta)) {
        if (api_validate_metadata(meta, e) < 0) {
            return e->code;
        }
        text = cJSON_PrintUnformatted(meta);
        cJSON_AddStringToObject(fields, "metadata", text ? text : "{}");
        cJSON_free(text);
    }
    if (webhook != NULL) {
        cJSON *w = api_validate_webhook(a, c->tenant, webhook, &api_pipeline_webhook_events, e);
        if (w == NULL) {
            return e->code;
        }
        text = cJSON_PrintUnformatted(w);
        cJSON_Delete(w);
        cJSON_AddStringToObject(fields, "webhook", text ? text : "");
        cJSON_free(text);
    }
    text = cJSON_PrintUnformatted(steps);
    if (text == NULL) {
        return core_err_set(e, CORE_ENOMEM, NULL, "Out of memory");
    }
    cJSON_AddStringToObject(fields, "spec", text);
    cJSON_free(text);
    return 0;
}

static void on_created(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL || r->answer != TXN_PIPE_OK) {
        api_reply_store_down(c->api, c->req);
    } else {
        struct pipe_spec spec = {0};
        struct core_err e;
        cJSON *steps = cJSON_Parse(api_batch_field(c->task, "spec"));
        char now_ms[24];

        snprintf(now_ms, sizeof(now_ms), "%lld", (long long)c->created_ms);
        cJSON_AddStringToObject(c->task, "created", now_ms);
        cJSON_AddStringToObject(c->task, "status", "queued");
        log_info("pipeline created", "pipeline=%s tenant=%s", c->id, c->tenant);
        core_err_clear(&e);
        if (steps &&
            pipe_spec_parse(steps, (size_t)c->api->cfg->pipelines.max_steps, &spec, &e) == 0) {
            api_reply_json(c->api, c->req, 202, pipe_json(c->id, c->task, &spec, NULL));
        } else {
            api_reply_json(c->api, c->req, 202, pipe_json(c->id, c->task, NULL, NULL));
        }
        pipe_spec_free(&spec);
        cJSON_Delete(steps);
    }
    api_ctx_free(c);
}

void api_pipelines_create(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    const char *raw;
    size_t raw_len;
    cJSON *body = api_read_json(a, req, &raw, &raw_len);
    struct api_ctx *c = NULL;
    struct pipe_spec spec = {0};
    struct txn_pipe b = {.op = TXN_PIPE_CREATE};
    const char *fields[2 * PIPE_FIELDS];
    size_t n = 0;
    const cJSON *f;
    struct core_err e;

    (void)arg;
    if (body == NULL) {
        return;
    }
    core_err_clear(&e);
    c = api_ctx_new(a, req, tenant);
    if (c == NULL || (c->task = cJSON_CreateObject()) == NULL ||
        util_random_id(API_PIPE_ID_PREFIX, c->id, sizeof(c->id)) < 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    if (validate_pipeline(a, c, body, c->task, &spec, &e) < 0) {
        api_reply_err(a, req, &e);
        goto fail;
    }
    cJSON_AddStringToObject(c->task, "id", c->id);
    /* the key its steps run under: their budget */
    if (c->key != NULL) {
        cJSON_AddStringToObject(c->task, "key", c->key->id);
    }
    c->created_ms = util_now_ms();
    cJSON_ArrayForEach(f, c->task)
    {
        if (n < PIPE_FIELDS) {
            fields[2 * n] = f->string;
            fields[2 * n + 1] = f->valuestring;
            n++;
        }
    }
    b.u.create.fields = fields;
    b.u.create.n_fields = n;
    if (pipe_op(c, &b, on_created) < 0) {
        api_reply_store_down(a, req);
        goto fail;
    }
    pipe_spec_free(&spec);
    cJSON_Delete(body);
    return;
fail:
    pipe_spec_free(&spec);
    cJSON_Delete(body);
    api_ctx_free(c);
}

/* ---- GET, cancel, list ---------------------------------------------------------------------- */

/* A read in progress: the pipeline's fields and spec while its final steps' tasks are read. */
struct pipe_read {
    cJSON *fields;
    cJSON *steps;
    struct pipe_spec spec;
    char (*ids)[64];
    const char **id_ptrs;
    size_t n_ids;
};

static void pipe_read_free(struct pipe_read *pr)
{
    if (pr == NULL) {
        return;
    }
    pipe_spec_free(&pr->spec);
    cJSON_Delete(pr->steps);
    cJSON_Delete(pr->fields);
    free(pr->ids);
    free(pr->id_ptrs);
    free(pr);
}

static long long step_count(const cJSON *fields, const char *step)
{
    const char *n = step_field(fields, "n:", step);
    return n ? strtoll(n, NULL, 10) : 0;
}

/* The final steps' tasks are read: the answer. */
static void on_outputs(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct pipe_read *pr = c->owner;
    cJSON *output = NULL;
    size_t at = 0;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    output = cJSON_CreateObject();
    for (size_t i = 0; output && i < pr->spec.n; i++) {
        const struct pipe_step *s = &pr->spec.steps[i];
        long long n = step_count(pr->fields, s->id);
        struct txn_pipe_task *t;
        if (!s->final) {
            continue;
        }
        t = calloc((size_t)n + 1, sizeof(*t));
        for (long long k = 0; t && k < n && at + (size_t)k < r->n; k++) {
            txn_pipe_task_at(r, at + (size_t)k, &t[k]);
        }
        if (t) {
            cJSON_AddItemToObject(output, s->id,
                                  pipe_output_json(pr->id_ptrs + at, t, (size_t)n, s->fan_out));
        }
        free(t);
        at += (size_t)n;
    }
    api_reply_json(c->api, c->req, 200, pipe_json(c->id, pr->fields, &pr->spec, output));
out:
    pipe_read_free(pr);
    c->owner = NULL;
    api_ctx_free(c);
}

/* The pipeline's hash is read: a completed one's output needs its final steps' tasks. */
static void answer_pipeline(struct api_ctx *c, const redisReply *hash)
{
    struct pipe_read *pr = calloc(1, sizeof(*pr));
    struct core_err e;
    const char *st;
    struct txn_pipe b = {.op = TXN_PIPE_TASKS};
    size_t total = 0;

    if (pr == NULL || (pr->fields = api_batch_fields(hash)) == NULL) {
        api_reply_error(c->api, c->req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    core_err_clear(&e);
    pr->steps = cJSON_Parse(api_batch_field(pr->fields, "spec") ?: "");
    if (pr->steps == NULL ||
        pipe_spec_parse(pr->steps, (size_t)c->api->cfg->pipelines.max_steps, &pr->spec, &e) < 0) {
        /* a spec that no longer parses (a smaller max_steps): shown without its steps */
        api_reply_json(c->api, c->req, 200, pipe_json(c->id, pr->fields, NULL, NULL));
        goto fail;
    }
    st = api_batch_field(pr->fields, "status") ?: "";
    for (size_t i = 0; strcmp(st, "completed") == 0 && i < pr->spec.n; i++) {
        if (pr->spec.steps[i].final) {
            total += (size_t)step_count(pr->fields, pr->spec.steps[i].id);
        }
    }
    if (total == 0) {
        api_reply_json(c->api, c->req, 200, pipe_json(c->id, pr->fields, &pr->spec, NULL));
        goto fail;
    }
    pr->ids = calloc(total, sizeof(*pr->ids));
    pr->id_ptrs = calloc(total, sizeof(*pr->id_ptrs));
    if (pr->ids == NULL || pr->id_ptrs == NULL) {
        api_reply_error(c->api, c->req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    for (size_t i = 0; i < pr->spec.n; i++) {
        const struct pipe_step *s = &pr->spec.steps[i];
        long long n = s->final ? step_count(pr->fields, s->id) : 0;
        for (long long k = 0; k < n && pr->n_ids < total; k++) {
            pipe_task_id(c->id, s->id, s->kind, (size_t)k, pr->ids[pr->n_ids], sizeof(pr->ids[0]));
            pr->id_ptrs[pr->n_ids] = pr->ids[pr->n_ids];
            pr->n_ids++;
        }
    }
    b.u.tasks.task_ids = pr->id_ptrs;
    b.u.tasks.n = pr->n_ids;
    c->owner = pr;
    if (pipe_op(c, &b, on_outputs) < 0) {
        c->owner = NULL;
        api_reply_store_down(c->api, c->req);
        goto fail;
    }
    return;
fail:
    pipe_read_free(pr);
    api_ctx_free(c);
}

static void on_got(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->answer == TXN_PIPE_NOTFOUND) {
        reply_pipe_not_found(c->api, c->req, c->id);
    } else if (r->answer == TXN_PIPE_CONFLICT) {
        cJSON *fields = api_batch_fields(r->hash);
        api_reply_error(c->api, c->req, CORE_ECONFLICT, NULL, "pipeline_not_cancellable",
                        "Cannot cancel a pipeline that is %s",
                        api_batch_field(fields, "status") ?: "unknown");
        cJSON_Delete(fields);
    } else {
        answer_pipeline(c, r->hash);
        return;
    }
    api_ctx_free(c);
}

static void pipe_read(struct api *a, struct evhttp_request *req, const char *tenant, const char *id,
                      enum txn_pipe_op op)
{
    struct api_ctx *c =
        api_ctx_for_id(a, req, tenant, API_PIPE_ID_PREFIX, id, reply_pipe_not_found);
    struct txn_pipe b = {.op = op};

    if (c == NULL) {
        return;
    }
    if (pipe_op(c, &b, on_got) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

void api_pipelines_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    pipe_read(a, req, tenant, arg, TXN_PIPE_GET);
}

void api_pipelines_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    pipe_read(a, req, tenant, arg, TXN_PIPE_CANCEL);
}

static void on_list(const struct txn_pipe_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *data;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    data = cJSON_CreateArray();
    for (size_t i = 0; data && i < r->n; i++) {
        cJSON *fields = api_batch_fields(r->hashes[i]);
        const char *id = api_batch_field(fields, "id");
        cJSON *steps = cJSON_Parse(api_batch_field(fields, "spec") ?: "");
        struct pipe_spec spec = {0};
        struct core_err e;

        core_err_clear(&e);
        if (id && strcmp(api_batch_field(fields, "tenant") ?: "", c->tenant) == 0) {
            bool ok = steps && pipe_spec_parse(steps, (size_t)c->api->cfg->pipelines.max_steps,
                                               &spec, &e) == 0;
            cJSON_AddItemToArray(data, pipe_json(id, fields, ok ? &spec : NULL, NULL));
        }
        pipe_spec_free(&spec);
        cJSON_Delete(steps);
        cJSON_Delete(fields);
    }
    api_reply_json(c->api, c->req, 200, api_list_page(data, r->has_more));
out:
    api_ctx_free(c);
}

void api_pipelines_list(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    static const struct api_list_spec spec = {PIPE_LIST_DEFAULT, PIPE_LIST_MAX, API_PIPE_ID_PREFIX,
                                              "pipeline"};
    struct evkeyvalq params;
    struct txn_pipe b = {.op = TXN_PIPE_LIST};
    struct api_ctx *c;
    long limit;
    const char *after;

    (void)arg;
    if (api_list_query(a, req, &params, &spec, &limit, &after) < 0) {
        evhttp_clear_headers(&params);
        return;
    }
    c = api_ctx_new(a, req, tenant);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
    } else {
        b.u.list.after = after;
        b.u.list.limit = limit;
        b.id = NULL;
        b.tenant = c->tenant;
        b.now_ms = util_now_ms();
        {
            struct txn_args args;
            txn_args_init(&args);
            if (txn_pipe(a->store, &args, &b, on_list, c) < 0) {
                api_reply_store_down(a, req);
                api_ctx_free(c);
            }
            txn_args_cleanup(&args);
        }
    }
    evhttp_clear_headers(&params);
}
