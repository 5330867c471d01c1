/*
 * worker/exec.c — running one job: an upstream call (plain or streamed), a poll of a long-running
 * job, or the cancel of one. Adapters turn tasks into requests and replies into outcomes; this
 * file moves the bytes and decides what the outcome means for the task.
 *
 * A response task (the Responses API, adapters/responses.h) is a chat alias's call whose request
 * and reply go through responses_build_request / responses_parse_response, and whose stream is
 * made of OpenAI's typed Responses events: each is published to the waiting API process (as a
 * chat stream's chunks are) and appended to the task's events list, so a client can replay and
 * follow any streamed response later (GET /v1/responses/{id}?stream=true&starting_after=N).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "adapters/ratelimit.h"
#include "core/blobs.h"
#include "core/channel.h"
#include "core/keys.h"
#include "core/txn_callback.h"
#include "core/util.h"
#include "worker/internal.h"

#define EXEC_MAX_SSE_EVENT (1L << 20)
/*
 * A response stream's events (kept in Redis for replay) may take this many times
 * worker.max_response_bytes: they carry the answer's text about three times (the deltas, the
 * .done events, the final response object), so an answer a plain call would take fits; past it
 * the attempt fails (too large), as a plain reply past the cap does.
 */
#define EXEC_EVENTS_FACTOR 4
#define EXEC_EVENTS_TTL_EXTRA_S 3600 /* the events list outlives the task's retention by this */

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

/* The second a response task's object is dated (its created_at): when the task was created, as
 * the queued object the API answered showed; the attempt's start for a task without it. */
static int64_t response_created_s(const struct job *j)
{
    return (j->created_ms > 0 ? j->created_ms : j->started_wall_ms) / 1000;
}

/* How a response object ended besides completing: incomplete when its status says so. */
static enum txn_detail response_detail(const cJSON *response)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(response, "status");

    return cJSON_IsString(status) &&
                   strcmp(status->valuestring, responses_status_name(RESPONSES_INCOMPLETE)) == 0
               ? TXN_DETAIL_INCOMPLETE
               : TXN_DETAIL_NONE;
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
    if (j->call.op == ADAPTER_OP_RESPONSE) {
        /* the task completed either way; the webhook event says response.incomplete */
        j->detail = response_detail(res->result);
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

/*
 * Parses a reply to the job's call made as call says (the job's own, or a copy without the
 * stream): a poll's with parse_poll, a response task's with responses_parse_response, any other
 * call's with the dialect's parse_response. Their contract.
 */
static int parse_reply(struct job *j, const struct adapter_call *call,
                       const struct adapter_response *resp, struct adapter_result *res,
                       struct core_err *e)
{
    if (j->mode == TXN_MODE_POLL) {
        return j->adapter->parse_poll(call, resp, res, e);
    }
    if (call->op == ADAPTER_OP_RESPONSE) {
        return responses_parse_response(j->adapter, call, j->id, response_created_s(j), resp, res,
                                        e);
    }
    return j->adapter->parse_response(call, resp, res, e);
}

/* A reply to a call or a poll. */
static void on_reply_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    struct adapter_result res = {0};
    struct core_err e;
    int rc;

    j->http = NULL;
    note_reply(j, resp);
    core_err_clear(&e);
    rc = parse_reply(j, &j->call, resp, &res, &e);
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

/* Publishes one piece of a streamed answer (text, len bytes of JSON: a chat chunk or a Responses
 * event) to the API process waiting on the task (core/channel.h's "c" message), if one is. */
static void publish_text(struct job *j, const char *text, size_t len)
{
    char *payload;
    size_t plen;

    if (j->reply_to == NULL || j->reply_to[0] == '\0') {
        return;
    }
    payload = channel_chunk_new(j->id, text, len, &plen);
    if (payload != NULL) {
        const char *argv[] = {"PUBLISH", j->reply_to, payload};
        size_t lens[] = {7, strlen(j->reply_to), plen};
        /* A chunk Redis cannot take now is lost to the live stream; the stored result and the
         * final answer still carry everything. */
        store_command(j->w->store, NULL, NULL, 3, argv, lens);
    }
    free(payload);
}

static void publish_chunk(struct job *j, const cJSON *chunk)
{
    char *text = cJSON_PrintUnformatted(chunk);

    if (text != NULL) {
        publish_text(j, text, strlen(text));
    }
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

/* ---- a response task: its call, and its stream of typed events ---------------------------- */

/* The task's events list ({tag}:ev:<id>) into buf. 0, or -1 when it does not fit. */
static int events_key(const struct job *j, char *buf, size_t size)
{
    return keyspace_key(store_keys(j->w->store), buf, size, KS_EVENTS, j->id);
}

/*
 * Sends Responses events of this attempt (a cJSON array, in order) out: each is published to the
 * waiting API process, and all are appended to the task's events list in one RPUSH whose expiry
 * is pushed to the task's retention plus EXEC_EVENTS_TTL_EXTRA_S (the list outlives the task's
 * hash, which a replay reads first). Like a chat chunk, an event Redis cannot take now is lost to
 * the live stream and the replay; the stored result still has the whole response. The events'
 * bytes count against the attempt's cap unless closing (the closing events of a failed stream
 * always go out, so the list ends). 0; CORE_ETOOLARGE past the cap or CORE_ENOMEM, with nothing
 * sent.
 */
static int emit_events(struct job *j, const cJSON *events, bool closing)
{
    int n = cJSON_GetArraySize(events), i = 0, rc = 0;
    int64_t cap = (int64_t)EXEC_EVENTS_FACTOR * j->w->cfg->worker.max_response_bytes;
    int64_t size = 0;
    char **texts = NULL;
    const char **argv = NULL;
    size_t *lens = NULL;
    char key[128], ttl[32];
    const cJSON *ev;

    if (n == 0) {
        goto out;
    }
    texts = calloc((size_t)n, sizeof(*texts));
    argv = calloc((size_t)n + 2, sizeof(*argv));
    lens = calloc((size_t)n + 2, sizeof(*lens));
    if (texts == NULL || argv == NULL || lens == NULL) {
        rc = CORE_ENOMEM;
        goto out;
    }
    cJSON_ArrayForEach(ev, events)
    {
        if ((texts[i] = cJSON_PrintUnformatted(ev)) == NULL) {
            rc = CORE_ENOMEM;
            goto out;
        }
        lens[i + 2] = strlen(texts[i]);
        argv[i + 2] = texts[i];
        size += (int64_t)lens[i + 2];
        i++;
    }
    if (!closing && j->events_size + size > cap) {
        rc = CORE_ETOOLARGE;
        goto out;
    }
    for (i = 0; i < n; i++) {
        publish_text(j, texts[i], lens[i + 2]);
    }
    if (events_key(j, key, sizeof(key)) == 0) {
        const char *exp[] = {"PEXPIRE", key, ttl};
        argv[0] = "RPUSH";
        lens[0] = 5;
        argv[1] = key;
        lens[1] = strlen(key);
        store_command(j->w->store, NULL, NULL, n + 2, argv, lens);
        snprintf(ttl, sizeof(ttl), "%lld",
                 ((long long)j->w->cfg->tasks.retention_s + EXEC_EVENTS_TTL_EXTRA_S) * 1000);
        store_command(j->w->store, NULL, NULL, 3, exp, NULL);
    }
    j->events_out += n;
    j->events_size += size;
out:
    for (i = 0; texts != NULL && i < n; i++) {
        cJSON_free(texts[i]);
    }
    free(texts);
    free(argv);
    free(lens);
    return rc;
}

/*
 * A streamed response that fails once its events began: they are closed with response.failed
 * (e, the failure the task records, as the response's error), so a client following them sees
 * the end, and the attempt cannot be retried — the client saw part of an answer, which another
 * attempt cannot continue (as for a chat stream's chunks). Before any event, nothing to close.
 */
static void response_stream_close(struct job *j, struct core_err *e)
{
    cJSON *events;

    if (j->events_out == 0) {
        return;
    }
    e->retryable = false;
    events = cJSON_CreateArray();
    if (events != NULL && responses_stream_fail(j->rstream, e, events) == 0) {
        emit_events(j, events, true);
    }
    cJSON_Delete(events);
}

/* Marks the stream failed with code and a message (the SSE callback then stops the transfer). */
static void response_stream_error(struct job *j, int code)
{
    core_err_clear(&j->stream_err);
    if (code == CORE_ETOOLARGE) {
        core_err_set(&j->stream_err, CORE_ETOOLARGE, NULL,
                     "the response's event stream passed %lld bytes",
                     (long long)EXEC_EVENTS_FACTOR * j->w->cfg->worker.max_response_bytes);
    } else {
        core_err_set(&j->stream_err, CORE_ENOMEM, NULL, "out of memory streaming the response");
    }
    j->stream_failed = true;
}

static int on_response_sse_event(const char *event, const char *data, size_t len, void *arg)
{
    struct job *j = arg;
    cJSON *events;
    bool done = false;
    int rc, erc;

    if (j->stream_done) {
        return 0; /* the response ended: anything after it is not read */
    }
    if ((events = cJSON_CreateArray()) == NULL) {
        response_stream_error(j, CORE_ENOMEM);
        return 1;
    }
    core_err_clear(&j->stream_err);
    rc = responses_stream_event(j->rstream, event, data, len, events, &done, &j->stream_err);
    erc = emit_events(j, events, false);
    cJSON_Delete(events);
    if (rc < 0) {
        j->stream_failed = true;
        return 1;
    }
    if (erc < 0) {
        response_stream_error(j, erc);
        return 1;
    }
    j->stream_done = done;
    return 0;
}

/*
 * A piece of the provider's 2xx stream. The first one starts the response's events
 * (response.created, response.in_progress) before its bytes are read: see exec_response_stream.
 */
static int on_response_stream_data(int status, const char *buf, size_t len, void *arg)
{
    struct job *j = arg;
    int rc;

    (void)status;
    if (j->stream_failed) {
        return 1;
    }
    if (j->events_out == 0) {
        cJSON *events = cJSON_CreateArray();
        rc = events != NULL ? responses_stream_start(j->rstream, events) : CORE_ENOMEM;
        if (rc == 0) {
            rc = emit_events(j, events, false);
        }
        cJSON_Delete(events);
        if (rc < 0) {
            response_stream_error(j, rc);
            return 1;
        }
    }
    rc = sse_parser_feed(j->sse, buf, len, on_response_sse_event, j);
    if (rc != 0 && !j->stream_failed) {
        /* the parser's own refusal: an event past EXEC_MAX_SSE_EVENT, or out of memory */
        core_err_clear(&j->stream_err);
        core_err_set(&j->stream_err, rc == SSE_ETOOLARGE ? CORE_ETOOLARGE : CORE_ENOMEM, NULL,
                     rc == SSE_ETOOLARGE ? "the provider sent a stream event over %ld bytes"
                                         : "out of memory reading the provider's stream",
                     (long)EXEC_MAX_SSE_EVENT);
        j->stream_failed = true;
    }
    return rc != 0;
}

/*
 * The provider's stream ended: the response object (completed), or a failure classified like a
 * plain reply's (closing the events that went out, see response_stream_close).
 */
static void on_response_stream_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    struct adapter_result res = {0};
    struct core_err e;
    bool ok = resp->transport == ADAPTER_TRANSPORT_OK && resp->status >= 200 && resp->status <= 299;

    j->http = NULL;
    note_reply(j, resp);
    core_err_clear(&e);
    if (j->stream_failed) {
        e = j->stream_err;
    } else if (ok && j->stream_done) {
        if (responses_stream_result(j->rstream, &res) == 0) {
            exec_complete(j, &res);
            adapter_result_cleanup(&res);
            return;
        }
        core_err_set(&e, CORE_ENOMEM, NULL, "out of memory assembling the streamed response");
    } else if (ok) {
        core_err_set(&e, CORE_EUPSTREAM, NULL,
                     j->events_out == 0 ? "the provider answered without streaming events"
                                        : "the provider's stream ended before the response did");
        e.retryable = true;
    } else {
        /* The stream never started (or broke): classify it like a plain reply. */
        struct adapter_call plain = j->call;
        plain.stream = false;
        if (parse_reply(j, &plain, resp, &res, &e) == 0) {
            core_err_set(&e, CORE_EUPSTREAM, NULL, "the provider's stream ended early");
            e.retryable = true;
        }
        adapter_result_cleanup(&res);
    }
    response_stream_close(j, &e);
    exec_fail(j, &e);
}

/*
 * A response task's streamed call. Its events begin when the provider's stream does (the first
 * bytes of a 2xx reply), not when the request is sent: a failure before that (a refused
 * connection, a 429, a 5xx) has sent nothing and is retried as any call is, so a client following
 * the stream never sees an attempt that did not start. Each attempt's events replace the last
 * attempt's in the events list and number from 0. Returns false when the dialect cannot stream
 * (the caller makes a plain call instead), true once the job is on its way (or failed).
 */
static bool exec_response_stream(struct job *j)
{
    struct adapter_request req = {0};
    struct core_err e;
    char key[128];

    core_err_clear(&e);
    j->call.stream = true;
    j->rstream = responses_stream_new(j->adapter, &j->call, j->id, response_created_s(j));
    if (j->rstream == NULL &&
        (j->adapter->stream_new == NULL || j->adapter->stream_event == NULL)) {
        j->call.stream = false;
        return false;
    }
    j->sse = sse_parser_new(EXEC_MAX_SSE_EVENT);
    if (j->rstream == NULL || j->sse == NULL) {
        core_err_set(&e, CORE_ENOMEM, NULL, "out of memory starting a stream");
        e.retryable = true;
        exec_fail(j, &e);
        return true;
    }
    if (responses_build_request(j->adapter, &j->call, &req, &e) < 0) {
        exec_fail(j, &e);
        return true;
    }
    if (events_key(j, key, sizeof(key)) == 0) {
        /* an earlier attempt's events go; Redis applies this before this attempt's appends */
        const char *argv[] = {"DEL", key};
        store_command(j->w->store, NULL, NULL, 2, argv, NULL);
    }
    j->started_mono = util_mono_ms();
    j->started_us = util_mono_us();
    j->http = http_client_send_stream(j->w->http, &req, j->dep->provider->timeout_ms,
                                      on_response_stream_data, on_response_stream_done, j);
    adapter_request_cleanup(&req);
    if (j->http == NULL) {
        core_err_set(&e, CORE_EUPSTREAM, NULL, "could not start the upstream call");
        e.retryable = true;
        exec_fail(j, &e);
    }
    return true;
}

/*
 * A response task's call: streamed when the task streams (the client's stream, or a background
 * response, whose events are kept for a later replay), else a plain call whose reply is the
 * response object. The attempt's start dates the response (created_at): CLAIM does not hand over
 * the task's creation time.
 */
static void exec_response(struct job *j)
{
    struct adapter_request req = {0};
    struct core_err e;

    core_err_clear(&e);
    j->started_wall_ms = util_now_ms();
    if (j->stream && exec_response_stream(j)) {
        return;
    }
    if (responses_build_request(j->adapter, &j->call, &req, &e) < 0) {
        exec_fail(j, &e);
        return;
    }
    exec_send(j, &req, on_reply_done);
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
    /* a pipeline's task: its input files go in as data: URIs (worker/inputs.c) */
    if (strstr(j->input_text, BLOBS_INPUT_TOKEN) != NULL &&
        inputs_inline(j->w, j->id, j->input, e) < 0) {
        return e->code;
    }
    if (j->job_text && j->job_text[0]) {
        j->job_json = cJSON_Parse(j->job_text);
    }
    j->target.provider = j->dep->provider->name;
    j->target.base_url = j->dep->provider->base_url;
    j->target.api_key = j->dep->provider->api_key;
    j->target.model = j->dep->model;
    j->target.responses_native = j->dep->provider->responses;
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

/*
 * build_request for a call. When the deployment's provider signs callbacks (webhook_secret) and
 * callback_base_url is set, the call carries this task's callback URL, so a long-running job's
 * submit asks the provider to call back when it ends (api/provider_callbacks.c makes the poll due
 * then); the URL is borrowed only while the request is built.
 */
static int exec_build_submit(struct job *j, struct adapter_request *req, struct core_err *e)
{
    char url[TXN_CALLBACK_URL_SIZE];
    int rc;

    if (j->dep->provider->has_webhook_key && j->w->cfg->callback_base_url != NULL &&
        txn_callback_url(url, sizeof(url), j->w->cfg->callback_base_url, j->dep->provider->name,
                         j->id) == 0) {
        j->call.callback_url = url;
    }
    rc = j->adapter->build_request(&j->call, req, e);
    j->call.callback_url = NULL;
    return rc;
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
    if (j->call.op == ADAPTER_OP_RESPONSE) {
        exec_response(j);
        return;
    }
    if (j->stream && j->call.op == ADAPTER_OP_CHAT && j->adapter->stream_new &&
        j->adapter->stream_event && j->adapter->stream_free) {
        exec_stream(j);
        return;
    }
    if (exec_build_submit(j, &req, &e) < 0) {
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
    responses_stream_free(j->rstream);
    adapter_result_cleanup(&j->done);
    cJSON_Delete(j->artifacts_json);
    free(j->artifact_tmp);
    free(j->artifact_path);
    j->input = j->job_json = j->artifacts_json = NULL;
    j->sse = NULL;
    j->stream_state = NULL;
    j->accum = NULL;
    j->rstream = NULL;
    j->artifact_tmp = j->artifact_path = NULL;
}
