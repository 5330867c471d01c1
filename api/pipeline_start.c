/*
 * api/pipeline_start.c — step 3 of a runner's pass (api/pipeline_runner.c): starting a step whose
 * dependencies completed. Its dependencies' tasks as read (PIPE tasks) become their outputs, the
 * for_each list and each task's input are resolved (api/pipeline_spec.h), an artifact is linked
 * into the new task's blob folder as an input file, each input is checked as POST /v1/tasks checks
 * one, and the tasks are submitted with derived ids (a repeated start finds them: SUBMIT's dup);
 * only when every one of them is there is the step written running with its task count.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/internal.h"
#include "api/pipeline_runner.h"
#include "api/pipelines.h"
#include "core/artifact_ref.h"
#include "core/blobs.h"
#include "core/log.h"

/* The artifact link of one new task: its id and its next input file. */
struct link_ctx {
    struct pass *p;
    const char *task_id;
    size_t next;
};

/*
 * pipe_artifact_fn: links the artifact's bytes into the new task's folder as its next input file
 * (a hard link: no copy, and the bytes stay when the source task is swept) and answers the token
 * its input carries.
 */
static char *link_artifact(void *ctx, const struct pipe_task_out *src, const cJSON *artifact,
                           struct core_err *err)
{
    struct link_ctx *l = ctx;
    const char *dir = l->p->r->api->cfg->blobs.dir;
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(artifact, "index");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(artifact, "content_type");
    char from[4096], to[4096], folder[4096], *token;
    size_t len;

    if (l->next >= BLOBS_INPUT_MAX) {
        core_err_set(err, CORE_EUNPROCESSABLE, NULL, "a task may take at most %d artifacts",
                     BLOBS_INPUT_MAX);
        return NULL;
    }
    if (!cJSON_IsNumber(index) || index->valuedouble < 0 ||
        artifact_blob_path(dir, artifact_ref_blob_task(artifact, src->task_id),
                           (size_t)index->valuedouble, from, sizeof(from)) < 0 ||
        blobs_input_path(dir, l->task_id, l->next, to, sizeof(to)) < 0 ||
        blobs_artifact_dir(dir, l->task_id, folder, sizeof(folder)) < 0 ||
        blobs_make_dir(dir, folder) < 0) {
        core_err_set(err, CORE_EINTERNAL, NULL, "cannot prepare the artifact of task %s",
                     src->task_id);
        return NULL;
    }
    if (link(from, to) < 0 && errno != EEXIST) {
        core_err_set(err, CORE_EUNPROCESSABLE, NULL,
                     "the artifact of task %s is no longer kept (%s)", src->task_id,
                     strerror(errno));
        return NULL;
    }
    len = strlen(BLOBS_INPUT_TOKEN) + 24 + 128;
    token = malloc(len);
    if (token == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    snprintf(token, len, "%s%zu:%.127s", BLOBS_INPUT_TOKEN, l->next,
             cJSON_IsString(type) ? type->valuestring : "application/octet-stream");
    l->next++;
    return token;
}

/* A placeholder of the bytes an input file will be: a valid (empty) base64 payload. */
#define CHECK_PAYLOAD "AAAA"

/*
 * A copy of input (caller frees) with each input-file token ("sluice-input:<k>:<type>") replaced
 * by a data: URI of its type, as the worker will hand it to the adapter (worker/inputs.c).
 */
static cJSON *as_checked(const cJSON *input)
{
    cJSON *copy = cJSON_Duplicate(input, true), *c;
    cJSON *stack[64];
    int top = 0;

    if (copy == NULL) {
        return NULL;
    }
    stack[top++] = copy;
    while (top > 0) {
        cJSON *node = stack[--top];
        cJSON_ArrayForEach(c, node)
        {
            if (cJSON_IsString(c) &&
                strncmp(c->valuestring, BLOBS_INPUT_TOKEN, strlen(BLOBS_INPUT_TOKEN)) == 0) {
                const char *type = strchr(c->valuestring + strlen(BLOBS_INPUT_TOKEN), ':');
                char uri[256];
                snprintf(uri, sizeof(uri), "data:%.128s;base64," CHECK_PAYLOAD,
                         type ? type + 1 : "application/octet-stream");
                cJSON_SetValuestring(c, uri);
            } else if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && top < 64) {
                stack[top++] = c;
            }
        }
    }
    return copy;
}

/* A submitted task of a starting step (c->values[0]: the step). */
static void on_submitted(struct api_ctx *c, int outcome, redisReply *dup,
                         const struct core_err *err)
{
    struct pass *p = c->owner;
    size_t i = (size_t)c->values[0];

    (void)dup;
    if (outcome < 0) {
        p->failed[i]++;
        if (err && err->code != CORE_EQUOTA) {
            log_warn("pipeline task not submitted", "pipeline=%s step=%s task=%s error=\"%s\"",
                     p->id, p->spec.steps[i].id, c->id, err->message);
        }
    }
    api_ctx_free(c);
    if (--p->pending[i] == 0) {
        if (p->failed[i] == 0) {
            pipe_runner_set_state(p, i, ST_RUNNING);
            pipe_runner_put_num(p, "t0:", p->spec.steps[i].id, p->now);
        } else {
            p->retry_soon = true; /* the step stays waiting; its next start finds these tasks */
        }
    }
    pipe_runner_settle(p);
}

/* The task-event part of the pipeline's webhook, for its tasks; NULL when it asks for none. */
static cJSON *task_webhook(const struct pass *p)
{
    cJSON *w = cJSON_Parse(pipe_runner_field(p, "webhook", NULL) ?: "");
    cJSON *events = cJSON_GetObjectItemCaseSensitive(w, "events"), *keep = NULL, *e;

    if (cJSON_IsArray(events)) {
        keep = cJSON_CreateArray();
        cJSON_ArrayForEach(e, events)
        {
            if (cJSON_IsString(e) && strncmp(e->valuestring, "task.", 5) == 0) {
                cJSON_AddItemToArray(keep, cJSON_CreateString(e->valuestring));
            }
        }
    }
    if (keep == NULL || cJSON_GetArraySize(keep) == 0) {
        cJSON_Delete(keep);
        cJSON_Delete(w);
        return NULL;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(w, "events", keep);
    return w;
}

/* The outputs of step j's tasks as read (PIPE tasks), into o (results and artifacts parsed into
 * owned, which the caller frees). */
static void read_outputs(struct pass *p, const struct txn_pipe_reply *r, size_t j,
                         struct pipe_step_out *o, struct pipe_task_out *t, cJSON *owned)
{
    size_t at = p->first[j];

    o->tasks = t;
    o->n = 0;
    o->fan_out = p->spec.steps[j].fan_out;
    for (long long k = 0; k < p->n[j] && at + (size_t)k < r->n; k++) {
        struct txn_pipe_task x;
        int kind;
        txn_pipe_task_at(r, at + (size_t)k, &x);
        kind = x.kind ? task_kind_parse(x.kind) : -1;
        t[k].task_id = p->id_ptrs[at + (size_t)k];
        t[k].kind = kind >= 0 ? (enum task_kind)kind : p->spec.steps[j].kind;
        t[k].result = x.result ? cJSON_Parse(x.result) : NULL;
        t[k].artifacts = x.artifacts ? cJSON_Parse(x.artifacts) : NULL;
        /* an image result refers to its artifacts: its marker is not the client's result */
        if (t[k].result && x.result && artifact_ref_is(x.result, strlen(x.result))) {
            cJSON_Delete((cJSON *)t[k].result);
            t[k].result = artifact_ref_content_urls(x.result, "", t[k].task_id);
        }
        if (t[k].result) {
            cJSON_AddItemToArray(owned, (cJSON *)t[k].result);
        }
        if (t[k].artifacts) {
            cJSON_AddItemToArray(owned, (cJSON *)t[k].artifacts);
        }
        o->n++;
    }
}

/*
 * Step 3 for step i: resolves its tasks' inputs, checks them and submits them. A reference that
 * does not resolve or an input that a task would refuse fails the step (422 / 400 class, named in
 * its error); a submit that fails leaves it waiting for the next pass.
 */
void pipe_start_step(struct pass *p, size_t i, const struct txn_pipe_reply *r)
{
    const struct pipe_step *s = &p->spec.steps[i];
    struct pipe_step_out *outs = calloc(p->spec.n, sizeof(*outs));
    struct pipe_task_out **touts = calloc(p->spec.n, sizeof(*touts));
    cJSON *owned = cJSON_CreateArray(), *list = NULL, **inputs = NULL, **items = NULL, *twh = NULL;
    struct api_submit *subs = NULL;
    char(*tids)[RUNNER_TASK_ID_MAX] = NULL;
    struct pipe_resolve rs = {.spec = &p->spec, .artifact = link_artifact};
    struct core_err e;
    size_t count = 1;
    struct api *a = p->r->api;

    core_err_clear(&e);
    if (outs == NULL || touts == NULL || owned == NULL) {
        p->retry_soon = true;
        goto out;
    }
    for (size_t d = 0; d < s->n_after; d++) {
        size_t j = (size_t)s->after[d];
        touts[j] = calloc((size_t)p->n[j] + 1, sizeof(**touts));
        if (touts[j] == NULL) {
            p->retry_soon = true;
            goto out;
        }
        read_outputs(p, r, j, &outs[j], touts[j], owned);
    }
    rs.outs = outs;
    if (s->fan_out) {
        if (pipe_for_each_list(&rs, i, (size_t)a->cfg->pipelines.max_fan_out, &list, &e) < 0) {
            pipe_runner_fail_step(p, i, &e);
            goto out;
        }
        count = (size_t)cJSON_GetArraySize(list);
    }
    if (count == 0) { /* a fan-out over nothing: done at once, with no output */
        pipe_runner_put_num(p, "n:", s->id, 0);
        pipe_runner_put_num(p, "t0:", s->id, p->now);
        pipe_runner_set_state(p, i, ST_COMPLETED);
        goto out;
    }
    inputs = calloc(count, sizeof(*inputs));
    items = calloc(count, sizeof(*items));
    subs = calloc(count, sizeof(*subs));
    tids = calloc(count, sizeof(*tids));
    if (inputs == NULL || items == NULL || subs == NULL || tids == NULL) {
        p->retry_soon = true;
        goto out;
    }
    /* every input resolves and checks before any task is submitted */
    for (size_t k = 0; k < count; k++) {
        struct link_ctx l = {.p = p, .task_id = tids[k]};

        if (pipe_task_id(p->id, s->id, s->kind, k, tids[k], sizeof(tids[k])) < 0) {
            core_err_set(&e, CORE_EINTERNAL, NULL, "cannot name the step's task");
            pipe_runner_fail_step(p, i, &e);
            goto out;
        }
        rs.item = list ? cJSON_GetArrayItem(list, (int)k) : NULL;
        rs.index = (long)k;
        rs.artifact_ctx = &l;
        if (pipe_resolve_input(&rs, i, &inputs[k], &e) < 0) {
            pipe_runner_fail_step(p, i, &e);
            goto out;
        }
        /* checked as POST /v1/tasks checks an input, in the form the adapter will see it: an
         * input file is a data: URI by then */
        items[k] = cJSON_CreateObject();
        if (items[k] == NULL) {
            p->retry_soon = true;
            goto out;
        }
        cJSON_AddStringToObject(items[k], "kind", task_kind_name(s->kind));
        cJSON_AddItemToObject(items[k], "input", as_checked(inputs[k]));
        if (api_validate_task(a, p->tenant, items[k], &subs[k], &e) < 0) {
            pipe_runner_fail_step(p, i, &e);
            goto out;
        }
    }
    p->n[i] = (long long)count;
    pipe_runner_put_num(p, "n:", s->id, (long long)count);
    twh = task_webhook(p);
    for (size_t k = 0; k < count; k++) {
        struct api_submit *sub = &subs[k];
        struct api_ctx *c = api_ctx_new(a, NULL, p->tenant);
        long long deadline = pipe_runner_field_num(p, "deadline", NULL);
        int prio = task_priority_parse(pipe_runner_field(p, "priority", NULL) ?: "normal");

        if (c == NULL) {
            p->failed[i]++;
            continue;
        }
        snprintf(c->id, sizeof(c->id), "%s", tids[k]);
        c->owner = p;
        c->values[0] = (long long)i;
        sub->input = inputs[k];
        sub->prio = prio >= 0 ? (enum task_priority)prio : TASK_PRIO_NORMAL;
        sub->deadline_ms = deadline;
        sub->webhook = twh;
        sub->pipeline_id = p->id;
        sub->step = s->id;
        sub->key_id = pipe_runner_field(p, "key", NULL);
        sub->render = API_RENDER_NONE;
        p->pending[i]++;
        p->waiting++;
        if (api_submit(a, c, sub, on_submitted, &e) < 0) {
            p->pending[i]--;
            p->waiting--;
            p->failed[i]++;
            api_ctx_free(c);
        }
    }
    if (p->pending[i] == 0 && p->failed[i] > 0) {
        p->retry_soon = true;
    }
out:
    for (size_t k = 0; inputs && k < count; k++) {
        cJSON_Delete(inputs[k]);
        cJSON_Delete(items[k]);
    }
    for (size_t j = 0; touts && j < p->spec.n; j++) {
        free(touts[j]);
    }
    cJSON_Delete(twh);
    free(inputs);
    free(items);
    free(subs);
    free(tids);
    free(touts);
    free(outs);
    cJSON_Delete(list);
    cJSON_Delete(owned);
}
