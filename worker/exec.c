/*
 * worker/exec.c — running one job: an upstream call (plain or streamed), a poll of a long-running
 * job, or the cancel of one. Adapters turn tasks into requests and replies into outcomes; this
 * file moves the bytes and decides what the outcome means for the task.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "adapters/ratelimit.h"
#include "core/channel.h"
#include "core/util.h"
#include "worker/internal.h"

#define EXEC_MAX_SSE_EVENT (1L << 20)

static char *print_json(const cJSON *j)
{
    return j ? cJSON_PrintUnformatted(j) : NULL;
}

static char *provider_json(const struct job *j, const char *upstream_id)
{
    cJSON *p = cJSON_CreateObject();
    char *s;

    cJSON_AddStringToObject(p, "name", j->dep ? j->dep->provider->name : "");
    cJSON_AddStringToObject(p, "model", j->dep ? j->dep->model : "");
    if (upstream_id && upstream_id[0]) {
        cJSON_AddStringToObject(p, "upstream_id", upstream_id);
    } else {
        cJSON_AddNullToObject(p, "upstream_id");
    }
    s = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    return s;
}

static double usage_number(const cJSON *usage, const char *name)
{
    const cJSON *v = usage ? cJSON_GetObjectItemCaseSensitive(usage, name) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The deployment's price applied to the usage: tokens per million, images, video seconds. */
static char *cost_json(const struct config_deployment *dep, const cJSON *usage)
{
    const struct config_price *p = &dep->price;
    double amount = usage_number(usage, "prompt_tokens") * p->input_per_mtok / 1e6 +
                    usage_number(usage, "completion_tokens") * p->output_per_mtok / 1e6 +
                    usage_number(usage, "images") * p->per_image +
                    usage_number(usage, "seconds") * p->per_video_second;
    cJSON *c = cJSON_CreateObject();
    char *s;

    cJSON_AddNumberToObject(c, "amount", amount);
    cJSON_AddStringToObject(c, "currency", "USD");
    s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

/* Reports the job completed with res (the normalized result, usage, upstream id). */
void exec_complete(struct job *j, const struct adapter_result *res)
{
    const cJSON *total =
        res->usage ? cJSON_GetObjectItemCaseSensitive(res->usage, "total_tokens") : NULL;

    j->class = j->mode == TXN_MODE_CALL ? TXN_CLASS_OK : TXN_CLASS_NONE;
    if (j->call.op == ADAPTER_OP_CHAT) {
        /* best effort: a completion that could not be normalized is still the answer */
        adapter_chat_normalize(res->result, j->id);
    }
    if (cJSON_IsNumber(total)) {
        j->tokens_used = (int64_t)total->valuedouble;
    }
    j->result = print_json(res->result);
    j->usage = print_json(res->usage);
    j->provider = provider_json(j, res->upstream_id ? res->upstream_id : j->up_id);
    j->cost = cost_json(j->dep, res->usage);
    j->outcome = TXN_OUTCOME_COMPLETED;
    worker_job_report(j);
}

/* Parks the task: an upstream job runs; the next poll is due after the provider's interval. */
static void exec_park(struct job *j, const struct adapter_result *res)
{
    j->class = j->mode == TXN_MODE_CALL ? TXN_CLASS_OK : TXN_CLASS_NONE;
    int64_t after = res->poll_after_ms >= 0 ? res->poll_after_ms : worker_poll_interval(j);

    if (res->upstream_id) {
        j->out_up_id = strdup(res->upstream_id);
        j->provider = provider_json(j, res->upstream_id);
    }
    j->out_job = print_json(res->job);
    j->progress = res->progress;
    j->queue_position = res->queue_position;
    j->poll_at_ms = util_now_ms() + after;
    j->outcome = TXN_OUTCOME_PARK;
    worker_job_report(j);
}

/*
 * What a failed attempt means, in order: a failed poll of a running upstream job polls again
 * later; a provider's 429/529 pauses the deployment until its retry-after and returns the task
 * to the head of the queue without spending an attempt; another retryable failure retries,
 * steered away from this deployment (at once when the alias has another, else after a backoff);
 * anything else fails the task.
 */
void exec_fail(struct job *j, const struct core_err *e)
{
    cJSON *ej = core_err_to_json(e, true);
    bool upstream_job = j->up_id && j->up_id[0];
    bool rate = e->retryable && (e->provider_status == 429 || e->provider_status == 529);
    const struct config_model *m = config_model_find(j->w->cfg, j->model);
    int64_t now = util_now_ms();

    cJSON_free(j->error);
    j->error = cJSON_PrintUnformatted(ej);
    cJSON_Delete(ej);
    snprintf(j->err_code, sizeof(j->err_code), "%s", e->err_code[0] ? e->err_code : e->type);
    snprintf(j->err_message, sizeof(j->err_message), "%.*s", (int)sizeof(j->err_message) - 1,
             e->message);
    if (j->http_status == 0 && e->provider_status > 0) {
        j->http_status = e->provider_status;
    }
    if (j->provider == NULL && j->dep) {
        j->provider = provider_json(j, j->up_id);
    }
    if (j->mode != TXN_MODE_CALL || j->latency_ms < 0) {
        j->class = TXN_CLASS_NONE;
    } else if (rate) {
        j->class = TXN_CLASS_RATE;
    } else if (e->retryable) {
        j->class = TXN_CLASS_FAIL;
    } else {
        j->class = e->provider_status >= 500 ? TXN_CLASS_FAIL : TXN_CLASS_CLIENT;
    }
    if (upstream_job && e->retryable) {
        j->outcome = TXN_OUTCOME_PARK;
        j->poll_at_ms = now + worker_backoff_ms(j->w, 2, e->retry_after_ms);
    } else if (rate && j->mode == TXN_MODE_CALL) {
        j->outcome = TXN_OUTCOME_RELEASE;
        j->pause_until_ms = now + (e->retry_after_ms >= 0 ? e->retry_after_ms : 1000);
    } else if (e->retryable) {
        j->outcome = TXN_OUTCOME_RETRY;
        j->avoid = true;
        j->retry_at_ms = now + ((m && m->n_deployments > 1)
                                    ? 0
                                    : worker_backoff_ms(j->w, j->attempts, e->retry_after_ms));
    } else {
        j->outcome = TXN_OUTCOME_FAILED;
    }
    log_info("attempt failed", "task=%s attempt=%d retryable=%d status=%d error=\"%.200s\"", j->id,
             j->attempts, e->retryable, e->provider_status, e->message);
    worker_job_report(j);
}

/* A parsed reply or poll: DONE (keeping artifacts first), PENDING (park), or an error. */
static void exec_outcome(struct job *j, int rc, struct adapter_result *res, struct core_err *e)
{
    if (rc < 0) {
        exec_fail(j, e);
    } else if (res->outcome == ADAPTER_PENDING) {
        exec_park(j, res);
    } else if (res->n_artifacts > 0) {
        j->done = *res;
        memset(res, 0, sizeof(*res));
        artifacts_keep(j);
    } else {
        exec_complete(j, res);
    }
    adapter_result_cleanup(res);
}

/* What a reply says of the deployment: its latency, status and remaining budget. */
static void note_reply(struct job *j, const struct adapter_response *resp)
{
    j->latency_ms = (double)(util_mono_us() - j->started_us) / 1000.0;
    j->http_status = resp->status;
    adapter_ratelimit_remaining(resp, &j->remaining_req, &j->remaining_tok);
}

/* A reply to a call (parse_response) or a poll (parse_poll), by the job's mode. */
static void on_reply_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    struct adapter_result res = {0};
    struct core_err e;
    int rc;

    j->http = NULL;
    note_reply(j, resp);
    core_err_clear(&e);
    rc = j->mode == TXN_MODE_POLL ? j->adapter->parse_poll(&j->call, resp, &res, &e)
                                  : j->adapter->parse_response(&j->call, resp, &res, &e);
    exec_outcome(j, rc, &res, &e);
}

/* The upstream job was cancelled (or the attempt failed: the task is cancelled either way). */
static void on_cancel_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    struct core_err e;

    j->http = NULL;
    if (resp->transport != ADAPTER_TRANSPORT_OK || resp->status < 200 || resp->status > 299) {
        log_warn("upstream cancel failed", "task=%s status=%d", j->id, resp->status);
    }
    core_err_clear(&e);
    core_err_set(&e, CORE_ECONFLICT, NULL, "cancelled");
    j->up_id[0] = '\0'; /* not a poll failure: finish the task */
    exec_fail(j, &e);
}

/* Sends req; on immediate failure reports a retryable error. */
static void exec_send(struct job *j, struct adapter_request *req, http_client_cb done)
{
    j->started_mono = util_mono_ms();
    j->started_us = util_mono_us();
    j->http = http_client_send(j->w->http, req, j->dep->provider->timeout_ms, done, j);
    adapter_request_cleanup(req);
    if (j->http == NULL) {
        struct core_err e;
        core_err_clear(&e);
        core_err_set(&e, CORE_EUPSTREAM, NULL, "could not start the upstream call");
        e.retryable = true;
        exec_fail(j, &e);
    }
}

/* ---- streaming chat ---------------------------------------------------------------------- */

/* Publishes one chunk of a streamed answer to the API process waiting on the task
 * (core/channel.h's "c" message). */
static void publish_chunk(struct job *j, const cJSON *chunk)
{
    char *text;
    char *payload;
    size_t len;

    if (j->reply_to == NULL || j->reply_to[0] == '\0') {
        return;
    }
    text = cJSON_PrintUnformatted(chunk);
    if (text == NULL) {
        return;
    }
    payload = channel_chunk_new(j->id, text, strlen(text), &len);
    if (payload != NULL) {
        const char *argv[] = {"PUBLISH", j->reply_to, payload};
        size_t lens[] = {7, strlen(j->reply_to), len};
        /* A chunk Redis cannot take now is lost to the live stream; the stored result and the
         * final answer still carry everything. */
        store_command(j->w->store, NULL, NULL, 3, argv, lens);
    }
    free(payload);
    cJSON_free(text);
}

static int on_sse_event(const char *event, const char *data, size_t len, void *arg)
{
    struct job *j = arg;
    cJSON *chunks = cJSON_CreateArray();
    cJSON *c;
    bool done = false;
    int rc;

    if (chunks == NULL) {
        return -1;
    }
    core_err_clear(&j->stream_err);
    rc = j->adapter->stream_event(j->stream_state, event, data, len, chunks, &done, &j->stream_err);
    cJSON_ArrayForEach(c, chunks)
    {
        cJSON *created = cJSON_GetObjectItemCaseSensitive(c, "created");
        if (cJSON_IsNumber(created) && created->valuedouble == 0) {
            /* Dialects have no clock (adapters are pure): the stream's time is stamped here. */
            cJSON_SetNumberValue(created, (double)(j->started_wall_ms / 1000));
        }
        adapter_chunk_normalize(c, j->id);
        adapter_accum_add(j->accum, c);
        if (j->want_usage || !adapter_chunk_is_usage(c)) {
            publish_chunk(j, c);
        }
        j->chunks_sent++;
    }
    cJSON_Delete(chunks);
    if (rc < 0) {
        j->stream_failed = true;
        return 1;
    }
    if (done) {
        j->stream_done = true;
    }
    return 0;
}

static int on_stream_data(int status, const char *buf, size_t len, void *arg)
{
    struct job *j = arg;
    (void)status;
    return sse_parser_feed(j->sse, buf, len, on_sse_event, j) != 0;
}

static void on_stream_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    struct adapter_result res = {0};
    struct core_err e;

    j->http = NULL;
    note_reply(j, resp);
    core_err_clear(&e);
    if (j->stream_failed) {
        e = j->stream_err;
    } else if (resp->transport == ADAPTER_TRANSPORT_OK && resp->status >= 200 &&
               resp->status <= 299 && j->chunks_sent == 0) {
        core_err_set(&e, CORE_EUPSTREAM, NULL, "the provider answered without streaming events");
        e.retryable = true;
    } else if (resp->transport == ADAPTER_TRANSPORT_OK && resp->status >= 200 &&
               resp->status <= 299) {
        if (adapter_accum_finish(j->accum, &res) == 0) {
            exec_complete(j, &res);
            adapter_result_cleanup(&res);
            return;
        }
        core_err_set(&e, CORE_ENOMEM, NULL, "out of memory assembling the streamed completion");
    } else {
        /* The stream never started (or broke): classify it like a plain reply. */
        struct adapter_call plain = j->call;
        plain.stream = false;
        if (j->adapter->parse_response(&plain, resp, &res, &e) == 0) {
            core_err_set(&e, CORE_EUPSTREAM, NULL, "the provider's stream ended early");
            e.retryable = true;
        }
        adapter_result_cleanup(&res);
    }
    if (j->chunks_sent > 0) {
        /* The client already saw part of an answer: another attempt cannot be spliced in. */
        e.retryable = false;
    }
    exec_fail(j, &e);
}

static void exec_stream(struct job *j)
{
    struct adapter_request req = {0};
    struct core_err e;

    core_err_clear(&e);
    j->call.stream = true;
    j->sse = sse_parser_new(EXEC_MAX_SSE_EVENT);
    j->stream_state = j->adapter->stream_new(&j->call);
    j->accum = adapter_accum_new();
    j->want_usage = adapter_stream_wants_usage(j->input);
    if (j->sse == NULL || j->stream_state == NULL || j->accum == NULL) {
        core_err_set(&e, CORE_ENOMEM, NULL, "out of memory starting a stream");
        e.retryable = true;
        exec_fail(j, &e);
        return;
    }
    if (j->adapter->build_request(&j->call, &req, &e) < 0) {
        exec_fail(j, &e);
        return;
    }
    j->started_mono = util_mono_ms();
    j->started_us = util_mono_us();
    j->started_wall_ms = util_now_ms();
    j->http = http_client_send_stream(j->w->http, &req, j->dep->provider->timeout_ms,
                                      on_stream_data, on_stream_done, j);
    adapter_request_cleanup(&req);
    if (j->http == NULL) {
        core_err_set(&e, CORE_EUPSTREAM, NULL, "could not start the upstream call");
        e.retryable = true;
        exec_fail(j, &e);
    }
}

/* ---- starting ---------------------------------------------------------------------------- */

/* Resolves the job's deployment, adapter, target and parsed input. */
static int resolve(struct job *j, struct core_err *e)
{
    const struct config_model *m = config_model_find(j->w->cfg, j->model);
    /* adapters/ keeps its own kind table: the kind crosses by name */
    int op = adapter_op_for_kind(j->kind);

    if (m == NULL || m->n_deployments == 0) {
        return core_err_set(e, CORE_ENOTFOUND, "model", "model '%s' is no longer configured",
                            j->model);
    }
    /* CLAIM picked the deployment (admission) for a call; a poll goes back to the one that
     * holds its upstream job. */
    if (j->dep_index < 0 || (size_t)j->dep_index >= m->n_deployments) {
        j->dep_index = 0;
    }
    j->dep = &m->deployments[j->dep_index];
    j->adapter = adapter_find(j->dep->provider->dialect);
    if (j->adapter == NULL || op < 0 || j->adapter->build_request == NULL ||
        j->adapter->parse_response == NULL) {
        return core_err_set(e, CORE_EUNPROCESSABLE, "model", "the %s dialect cannot serve %s tasks",
                            j->dep->provider->dialect, task_kind_name(j->kind));
    }
    j->input = cJSON_Parse(j->input_text);
    if (j->input == NULL) {
        return core_err_set(e, CORE_EINTERNAL, "input", "stored input is not JSON");
    }
    if (j->job_text && j->job_text[0]) {
        j->job_json = cJSON_Parse(j->job_text);
    }
    j->target.provider = j->dep->provider->name;
    j->target.base_url = j->dep->provider->base_url;
    j->target.api_key = j->dep->provider->api_key;
    j->target.model = j->dep->model;
    j->target.default_max_tokens = j->dep->default_max_tokens > 0
                                       ? j->dep->default_max_tokens
                                       : j->dep->provider->default_max_tokens;
    j->call.op = (enum adapter_op)op;
    j->call.input = j->input;
    j->call.target = &j->target;
    j->call.upstream_id = j->up_id && j->up_id[0] ? j->up_id : NULL;
    j->call.job = j->job_json;
    return 0;
}

void exec_start(struct job *j)
{
    struct adapter_request req = {0};
    struct core_err e;

    core_err_clear(&e);
    if (resolve(j, &e) < 0) {
        j->up_id[0] = '\0';
        exec_fail(j, &e);
        return;
    }
    if (j->mode == TXN_MODE_POLL && j->cancelling) {
        if (j->adapter->build_cancel && j->adapter->build_cancel(&j->call, &req, &e) == 0) {
            exec_send(j, &req, on_cancel_done);
            return;
        }
        on_cancel_done(&(struct adapter_response){.transport = ADAPTER_TRANSPORT_OK, .status = 204},
                       j);
        return;
    }
    if (j->mode == TXN_MODE_POLL) {
        if (j->adapter->build_poll == NULL || j->adapter->parse_poll == NULL ||
            j->adapter->build_poll(&j->call, &req, &e) < 0) {
            if (e.code == 0) {
                core_err_set(&e, CORE_EINTERNAL, NULL, "the %s dialect cannot poll",
                             j->adapter->name);
            }
            e.retryable = false;
            j->up_id[0] = '\0';
            exec_fail(j, &e);
            return;
        }
        exec_send(j, &req, on_reply_done);
        return;
    }
    if (j->stream && j->call.op == ADAPTER_OP_CHAT && j->adapter->stream_new &&
        j->adapter->stream_event && j->adapter->stream_free) {
        exec_stream(j);
        return;
    }
    if (j->adapter->build_request(&j->call, &req, &e) < 0) {
        exec_fail(j, &e);
        return;
    }
    exec_send(j, &req, on_reply_done);
}

void exec_abort(struct job *j)
{
    if (j->http) {
        http_call_cancel(j->http);
        j->http = NULL;
    }
    artifacts_abort(j);
}

void exec_cleanup(struct job *j)
{
    exec_abort(j);
    cJSON_Delete(j->input);
    cJSON_Delete(j->job_json);
    sse_parser_free(j->sse);
    if (j->stream_state && j->adapter && j->adapter->stream_free) {
        j->adapter->stream_free(j->stream_state);
    }
    adapter_accum_free(j->accum);
    adapter_result_cleanup(&j->done);
    cJSON_Delete(j->artifacts_json);
    free(j->artifact_tmp);
    free(j->artifact_path);
    j->input = j->job_json = j->artifacts_json = NULL;
    j->sse = NULL;
    j->stream_state = NULL;
    j->accum = NULL;
    j->artifact_tmp = j->artifact_path = NULL;
}
