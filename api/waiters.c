/*
 * api/waiters.c — requests held open until their task finishes.
 *
 * Each API process subscribes to its own channel ({<tag>}:api:<node>); a task submitted by a
 * request that will wait carries that channel as reply_to, and every terminal transition publishes
 * "d <id>" there ("r <id> <result>" for a completion, so the request is answered without reading
 * the task back); a streaming worker publishes "c <id> <chunk>" for each chat chunk (the formats
 * are core/channel.h's). The waiter
 * registers before the task is submitted, so no notification can come first. Notifications are
 * a fast path, not the only one: each waiter also re-reads its task every couple of seconds and
 * after the subscription reconnects, so a message lost with a Redis restart costs latency, never
 * an answer.
 *
 * A streamed response task (WAIT_RESPONSE_STREAM) gets its typed Responses events the same way,
 * each "c <id> <event>", written as `event:`/`data:` pairs in sequence order through the shared
 * writer (api/responses_stream.c). The worker also keeps them in order in the task's events
 * list, so nothing a lost message carried is lost to the client: an event that arrives after a
 * gap, every re-read, and the task's end read the list from the next missing event. The reply
 * ends at the terminal event; once the task is finished and nothing ended the stream (a response
 * that did not stream, a cancel), its end is made from the stored response object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "adapters/adapter.h"
#include "api/internal.h"
#include "core/channel.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/task.h"
#include "core/txn_task.h"
#include "core/util.h"

#define WAITER_RECHECK_MS 2000

struct waiter {
    struct api *api;
    struct evhttp_request *req;
    struct waiter *next; /* bucket chain */
    char id[48];
    const char *tenant;
    enum waiter_kind kind;
    int64_t deadline_mono;
    int64_t wait_ms;
    struct event *timer;
    int reads; /* reads in flight (HGETALL, and LRANGE for a response stream): they hold it */
    bool answered;
    bool started; /* stream: the 200 and headers went out */
    long chunks;
    bool forget;  /* the task is deleted once answered and finished (store: false) */
    bool recheck; /* a check was asked for while reads were in flight */
    /* WAIT_RESPONSE_STREAM: the events written so far, and the task's end once a read saw it */
    struct api_rstream rs;
    int final_status;  /* the terminal status the last read saw, or -1 */
    char *final_text;  /* then: the response object (api_response_text) */
    char *final_error; /* and the task's stored error */
};

static size_t bucket_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++) {
        h = (h ^ (unsigned char)*id) * 16777619u;
    }
    return h % API_WAITER_BUCKETS;
}

static struct waiter *find(struct api *a, const char *id)
{
    for (struct waiter *w = a->waiters[bucket_of(id)]; w; w = w->next) {
        if (strcmp(w->id, id) == 0 && !w->answered) {
            return w;
        }
    }
    return NULL;
}

static void unlink_waiter(struct waiter *w)
{
    struct waiter **p = &w->api->waiters[bucket_of(w->id)];
    while (*p && *p != w) {
        p = &(*p)->next;
    }
    if (*p) {
        *p = w->next;
        w->api->n_waiters--;
    }
    w->next = NULL;
}

/* Marks the waiter answered and frees it unless a read still holds it. */
static void retire(struct waiter *w)
{
    w->answered = true;
    unlink_waiter(w);
    if (w->reads > 0) {
        return;
    }
    event_free(w->timer);
    cJSON_free(w->final_text);
    free(w->final_error);
    free(w);
}

static void on_forgotten(const struct txn_deleted *d, const struct core_err *err, void *arg)
{
    char *id = arg;

    if (err != NULL || d->result != TXN_DELETE_DELETED) {
        log_warn("store: false response not deleted", "task=%s error=\"%s\"", id,
                 err ? err->message : "not finished or not found");
    }
    free(id);
}

/*
 * A finished task that asked not to be stored (store: false) is deleted now that its answer
 * went out: one DELETE, whose answer nobody waits for (a failure is logged; the task then
 * expires with its retention).
 */
static void forget_task(struct waiter *w)
{
    struct txn_delete p = {.id = w->id, .tenant = w->tenant};
    char *id = w->forget ? strdup(w->id) : NULL;

    if (id != NULL && txn_delete(w->api->store, &w->api->txn, &p, on_forgotten, id) < 0) {
        log_warn("store: false response not deleted", "task=%s error=\"store unavailable\"", id);
        free(id);
    }
    w->forget = false;
}

static void arm(struct waiter *w)
{
    int64_t left = w->deadline_mono - util_mono_ms();
    int64_t ms = left < WAITER_RECHECK_MS ? (left > 0 ? left : 0) : WAITER_RECHECK_MS;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->timer, &tv);
}

/* ---- answers ------------------------------------------------------------------------------ */

static void sse_write(struct waiter *w, const char *data, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        return;
    }
    evbuffer_add(b, "data: ", 6);
    evbuffer_add(b, data, len);
    evbuffer_add(b, "\n\n", 2);
    evhttp_send_reply_chunk(w->req, b);
    evbuffer_free(b);
}

static void stream_start(struct waiter *w)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(w->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    w->api->responses[2]++;
    evhttp_send_reply_start(w->req, 200, "OK");
    w->started = true;
}

/* The bytes of one replayed content chunk at most: a piece ends after a space past half of it,
 * else at the limit, never inside a UTF-8 sequence. */
#define REPLAY_PIECE_MAX 48

/* A chat.completion.chunk's head from completion: id, object, created, model. Caller frees. */
static cJSON *chunk_head(const cJSON *completion)
{
    cJSON *chunk = cJSON_CreateObject();

    cJSON_AddItemToObject(
        chunk, "id", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(completion, "id"), true));
    cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk");
    cJSON_AddItemToObject(
        chunk, "created",
        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(completion, "created"), true));
    cJSON_AddItemToObject(
        chunk, "model",
        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(completion, "model"), true));
    return chunk;
}

/* One chunk of completion's choice index (a number item, borrowed) with delta (taken) and
 * finish_reason (borrowed; NULL: null), written to the stream. */
static void replay_chunk(struct waiter *w, const cJSON *completion, const cJSON *index,
                         cJSON *delta, const cJSON *finish_reason)
{
    cJSON *chunk = chunk_head(completion);
    cJSON *arr, *c;
    char *text;

    arr = cJSON_AddArrayToObject(chunk, "choices");
    c = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, c);
    cJSON_AddItemToObject(c, "index", index ? cJSON_Duplicate(index, true) : cJSON_CreateNumber(0));
    cJSON_AddItemToObject(c, "delta", delta);
    cJSON_AddItemToObject(c, "finish_reason",
                          finish_reason ? cJSON_Duplicate(finish_reason, true)
                                        : cJSON_CreateNull());
    adapter_chunk_normalize(chunk, NULL);
    text = cJSON_PrintUnformatted(chunk);
    if (text) {
        sse_write(w, text, strlen(text));
    }
    cJSON_free(text);
    cJSON_Delete(chunk);
}

/* The length of the next piece of s (n bytes left, n > 0) to replay as one chunk. */
static size_t replay_piece(const char *s, size_t n)
{
    size_t end = n < REPLAY_PIECE_MAX ? n : REPLAY_PIECE_MAX;

    if (end == n) {
        return n;
    }
    for (size_t i = end; i > REPLAY_PIECE_MAX / 2; i--) {
        if (s[i - 1] == ' ') {
            return i;
        }
    }
    while (end > 1 && ((unsigned char)s[end] & 0xC0) == 0x80) {
        end--; /* not inside a UTF-8 sequence */
    }
    return end;
}

/*
 * A completion replayed as a stream, as OpenAI streams one, for a stream whose live chunks never
 * came (a cached answer, a dialect that cannot stream, chunks lost with a Redis blip): per
 * choice a role chunk, its content in pieces, its tool calls, then a chunk with its
 * finish_reason; the usage chunk when asked for.
 */
static void stream_synthesize(struct waiter *w, const cJSON *completion)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(completion, "choices");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(completion, "usage");
    const cJSON *ch;

    cJSON_ArrayForEach(ch, choices)
    {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(ch, "index");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
        const char *content =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "content"));
        cJSON *delta = cJSON_CreateObject();

        cJSON_AddStringToObject(delta, "role", "assistant");
        cJSON_AddStringToObject(delta, "content", "");
        replay_chunk(w, completion, index, delta, NULL);
        for (size_t off = 0, n = content ? strlen(content) : 0; off < n;) {
            size_t k = replay_piece(content + off, n - off);
            char *piece = strndup(content + off, k);
            delta = cJSON_CreateObject();
            cJSON_AddStringToObject(delta, "content", piece ? piece : "");
            free(piece);
            replay_chunk(w, completion, index, delta, NULL);
            off += k;
        }
        if (cJSON_IsArray(calls)) {
            cJSON *tc = cJSON_Duplicate(calls, true);
            cJSON *one;
            int i = 0;
            cJSON_ArrayForEach(one, tc)
            {
                cJSON_AddNumberToObject(one, "index", i++);
            }
            delta = cJSON_CreateObject();
            cJSON_AddItemToObject(delta, "tool_calls", tc);
            replay_chunk(w, completion, index, delta, NULL);
        }
        replay_chunk(w, completion, index, cJSON_CreateObject(),
                     cJSON_GetObjectItemCaseSensitive(ch, "finish_reason"));
    }
    if (cJSON_IsObject(usage) && w->kind == WAIT_STREAM_USAGE) {
        cJSON *chunk = chunk_head(completion);
        char *text;
        cJSON_AddArrayToObject(chunk, "choices");
        cJSON_AddItemToObject(chunk, "usage", cJSON_Duplicate(usage, true));
        text = cJSON_PrintUnformatted(chunk);
        if (text) {
            sse_write(w, text, strlen(text));
        }
        cJSON_free(text);
        cJSON_Delete(chunk);
    }
}

/*
 * The status of a failure no provider answered, by its error type: a request refused before the
 * call (a field the dialect cannot honour, an input it cannot express) is the client's to fix,
 * so a 400 that SDKs do not retry; sluice's own faults are 500s; transport failures (no answer
 * came) stay 502/504.
 */
static const struct {
    const char *type;
    int status;
} failed_type_status[] = {
    {"invalid_request_error", 400},
    {"server_error", 500},
    {"timeout_error", 504},
};

int api_failed_status(const char *error_json)
{
    cJSON *e = error_json ? cJSON_Parse(error_json) : NULL;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(e, "provider_status");
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type"));
    int p = cJSON_IsNumber(ps) ? (int)ps->valuedouble : 0;
    int status = 502;

    if (code != NULL && strcmp(code, "content_policy_violation") == 0) {
        status = 400;
    } else if (p == 400 || p == 404 || p == 413 || p == 422) {
        status = p; /* the request itself was refused: the client's to fix */
    } else if (p == 429 || p == 529) {
        status = 503; /* the provider stayed busy: never a 429, which means the client's quota */
    } else if (p == 0 && type != NULL) {
        for (size_t i = 0; i < sizeof(failed_type_status) / sizeof(failed_type_status[0]); i++) {
            if (strcmp(type, failed_type_status[i].type) == 0) {
                status = failed_type_status[i].status;
            }
        }
    }
    cJSON_Delete(e);
    return status;
}

/* The stored error (JSON text, or NULL) as an OpenAI envelope with the status a synchronous
 * caller should see (the task ended in status, which is not completed, or completed without a
 * result). */
static void answer_failed(struct waiter *w, const char *error, enum task_status status)
{
    cJSON *env = cJSON_CreateObject();
    cJSON *e = error ? cJSON_Parse(error) : NULL;
    int code = api_failed_status(error);

    if (e == NULL) {
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "message",
                                status == TASK_EXPIRED ? "The task passed its deadline"
                                                       : "The task was cancelled");
        cJSON_AddStringToObject(e, "type", "invalid_request_error");
        cJSON_AddNullToObject(e, "param");
        cJSON_AddStringToObject(e, "code", task_status_name(status));
        code = status == TASK_EXPIRED ? 504 : 409;
    }
    cJSON_DeleteItemFromObject(e, "retryable");
    cJSON_DeleteItemFromObject(e, "provider_status");
    api_error_add_request_id(e, w->req);
    if (w->started) {
        char *text;
        cJSON_AddItemToObject(env, "error", e);
        text = cJSON_PrintUnformatted(env);
        if (text) {
            sse_write(w, text, strlen(text));
        }
        cJSON_free(text);
        cJSON_Delete(env);
        evhttp_send_reply_end(w->req);
        return;
    }
    cJSON_AddItemToObject(env, "error", e);
    api_reply_json(w->api, w->req, code, env);
}

/* A synchronous request's answer from its completed task's result: the completion as JSON, or
 * as a stream (the live chunks, or the completion replayed as chunks when none came). */
static void answer_result(struct waiter *w, const char *result, size_t len)
{
    if (w->kind == WAIT_RESULT) {
        api_answer_result(w->api, w->req, w->id, result, len);
        forget_task(w);
    } else {
        if (!w->started) {
            stream_start(w);
        }
        if (w->chunks == 0) {
            cJSON *c = cJSON_ParseWithLength(result, len);
            stream_synthesize(w, c);
            cJSON_Delete(c);
        }
        sse_write(w, "[DONE]", 6);
        evhttp_send_reply_end(w->req);
    }
    retire(w);
}

/* The answer of a task that ended in status (a terminal one). */
static void answer_final(struct waiter *w, const redisReply *hash, enum task_status status)
{
    const char *result = task_hash_get(hash, "result");

    if (w->kind == WAIT_TASK) {
        api_reply_json_text(w->api, w->req, 200,
                            api_task_text(w->api, w->req, w->id, hash, true, NULL));
    } else if (status != TASK_COMPLETED || result == NULL) {
        answer_failed(w, task_hash_get(hash, "error"), status);
        forget_task(w);
    } else {
        answer_result(w, result, strlen(result));
        return;
    }
    retire(w);
}

/*
 * A response stream whose task is finished, its stored events written: ended by them, or made to
 * end from the response object — unless nothing went out and the task did not complete, which is
 * answered as an error with its status, as a plain request is (an SDK sees the refusal as one).
 */
static void response_stream_final(struct waiter *w)
{
    if (!w->rs.done) {
        if (!w->rs.started && w->final_status != TASK_COMPLETED) {
            w->rs.done = true;
            answer_failed(w, w->final_error, (enum task_status)w->final_status);
        } else {
            api_rstream_finish(w->api, &w->rs, w->final_text);
        }
    }
    forget_task(w);
    retire(w);
}

static void answer_timeout(struct waiter *w, const redisReply *hash)
{
    if (w->kind == WAIT_RESPONSE_STREAM && (w->rs.started || w->rs.done)) {
        /* (done already: the answer went out at the terminal event; nothing is left to say) */
        api_rstream_fail(w->api, &w->rs, "sync_timeout",
                         "The response did not finish in time; it goes on: resume its stream "
                         "with GET /v1/responses/{id}?stream=true&starting_after=N");
    } else if (w->kind == WAIT_TASK && hash != NULL) {
        char loc[96];
        snprintf(loc, sizeof(loc), "/v1/tasks/%s", w->id);
        evhttp_add_header(evhttp_request_get_output_headers(w->req), "Location", loc);
        api_reply_json_text(w->api, w->req, 202,
                            api_task_text(w->api, w->req, w->id, hash, true, NULL));
    } else if (w->started) {
        const char *msg = "{\"error\":{\"message\":\"The task did not finish in time\","
                          "\"type\":\"timeout_error\",\"param\":null,\"code\":\"sync_timeout\"}}";
        sse_write(w, msg, strlen(msg));
        evhttp_send_reply_end(w->req);
    } else {
        api_reply_error(w->api, w->req, CORE_ETIMEOUT, NULL, "sync_timeout",
                        "The task %s did not finish within %lld s; poll GET /v1/tasks/%s", w->id,
                        (long long)(w->wait_ms / 1000), w->id);
    }
    retire(w);
}

/* ---- checks ------------------------------------------------------------------------------- */

static void check(struct waiter *w);

/* A response stream after its reads: ended when its task is, else waiting on (or timed out). */
static void response_stream_next(struct waiter *w)
{
    if (w->final_status >= 0) {
        response_stream_final(w);
    } else if (w->rs.done && !w->forget) {
        retire(w);
    } else if (w->recheck) {
        w->recheck = false;
        check(w);
    } else if (util_mono_ms() >= w->deadline_mono) {
        answer_timeout(w, NULL);
    } else {
        arm(w);
    }
}

/* After a check: a finished task is answered, an unfinished one waits on (or times out). */
static void on_check(redisReply *reply, const struct core_err *err, void *arg)
{
    struct waiter *w = arg;
    int status;

    w->reads--;
    if (w->answered) {
        retire(w); /* answered meanwhile (cleanup): only the free was left */
        return;
    }
    status = err ? -1 : task_status_parse(task_hash_get(reply, "status"));
    if (w->kind == WAIT_RESPONSE_STREAM) {
        /* the events read next decide; keep what a finished task's end needs */
        if (status >= 0 && task_status_is_terminal((enum task_status)status) &&
            w->final_status < 0) {
            const char *error = task_hash_get(reply, "error");
            w->final_status = status;
            w->final_text = api_response_text(w->id, reply);
            w->final_error = error ? strdup(error) : NULL;
        }
        if (w->reads == 0) {
            response_stream_next(w); /* no events read follows this one */
        }
        return;
    }
    if (status >= 0 && task_status_is_terminal((enum task_status)status)) {
        answer_final(w, reply, (enum task_status)status);
    } else if (util_mono_ms() >= w->deadline_mono) {
        answer_timeout(w, err ? NULL : reply);
    } else {
        arm(w);
    }
}

/*
 * A response stream's stored events from the next one it has not seen (read after the task's
 * status, so a task the status read saw finished has them all): written, then the stream ended
 * if the task is finished, or the wait goes on.
 */
static void on_stored_events(redisReply *reply, const struct core_err *err, void *arg)
{
    struct waiter *w = arg;

    w->reads--;
    if (w->answered) {
        retire(w);
        return;
    }
    for (size_t i = 0;
         err == NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements && !w->rs.done;
         i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING ||
            api_rstream_event(w->api, &w->rs, e->str, e->len, false) < 0) {
            api_rstream_fail(w->api, &w->rs, "stream_restarted",
                             "The response's stream started again (a new attempt); read it with "
                             "GET /v1/responses/{id}?stream=true");
        }
    }
    response_stream_next(w);
}

/*
 * Reads the task (and, for a response stream, after it its stored events from the next one not
 * seen). A read already in flight answers for this one (a response stream reads again after it).
 */
static void check(struct waiter *w)
{
    const struct keyspace *ks = store_keys(w->api->store);
    char key[API_KEY_MAX], ev_key[API_KEY_MAX], from[24];
    const char *argv[] = {"HGETALL", key};
    const char *ev_argv[] = {"LRANGE", ev_key, from, "-1"};
    bool response = w->kind == WAIT_RESPONSE_STREAM;

    if (w->answered) {
        return;
    }
    if (w->reads > 0) {
        w->recheck = response;
        return;
    }
    snprintf(from, sizeof(from), "%lld", (long long)w->rs.seen_seq);
    if (keyspace_key(ks, key, sizeof(key), KS_TASK, w->id) == 0 &&
        keyspace_key(ks, ev_key, sizeof(ev_key), KS_EVENTS, w->id) == 0 &&
        store_command(w->api->store, on_check, w, 2, argv, NULL) == 0) {
        w->reads++;
        if (response && store_command(w->api->store, on_stored_events, w, 4, ev_argv, NULL) == 0) {
            w->reads++;
        }
        /* a response stream whose LRANGE could not go out waits for the next check */
    } else if (util_mono_ms() >= w->deadline_mono) {
        answer_timeout(w, NULL);
    } else {
        arm(w);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    check(arg);
}

/*
 * A response stream's message: an event is written when it is the next one (one after a gap
 * makes the waiter read the stored list); the task's end is read, with the events it may not
 * have relayed yet. After the terminal event the reply has ended; a store: false task waits for
 * its end to be deleted.
 */
static void on_response_message(struct waiter *w, const struct channel_msg *m)
{
    int rc;

    if (m->kind != CHANNEL_CHUNK) {
        check(w);
        return;
    }
    rc = api_rstream_event(w->api, &w->rs, m->body, m->body_len, true);
    if (rc == 2) {
        check(w);
    } else if (rc < 0) {
        api_rstream_fail(w->api, &w->rs, "stream_restarted",
                         "The response's stream started again (a new attempt); read it with GET "
                         "/v1/responses/{id}?stream=true");
    }
    if (w->rs.done && !w->forget) {
        retire(w);
    }
}

/* A message on this process's channel (core/channel.h): "d <id>" (the task is terminal: read
 * it), "r <id> <result>" (it completed with this result) or "c <id> <chunk>" (a stream's chunk). */
static void on_message(const char *payload, size_t len, void *arg)
{
    struct api *a = arg;
    struct channel_msg m;
    char id[48];
    struct waiter *w;

    if (channel_parse(payload, len, &m) < 0 || m.id_len >= sizeof(id)) {
        return;
    }
    memcpy(id, m.id, m.id_len);
    id[m.id_len] = '\0';
    w = find(a, id);
    if (w == NULL) {
        return;
    }
    if (w->kind == WAIT_RESPONSE_STREAM) {
        on_response_message(w, &m);
    } else if (m.kind == CHANNEL_RESULT && w->kind != WAIT_TASK) {
        answer_result(w, m.body, m.body_len);
    } else if (m.kind == CHANNEL_DONE || m.kind == CHANNEL_RESULT) {
        check(w); /* the task object (WAIT_TASK) is more than the result: read it */
    } else if (m.kind == CHANNEL_CHUNK &&
               (w->kind == WAIT_STREAM || w->kind == WAIT_STREAM_USAGE)) {
        if (!w->started) {
            stream_start(w);
        }
        sse_write(w, m.body, m.body_len);
        w->chunks++;
    }
}

static void on_sub_state(bool connected, void *arg)
{
    struct api *a = arg;

    if (!connected) {
        return;
    }
    /* Anything published while the subscription was down is lost: look at every task. */
    for (size_t b = 0; b < API_WAITER_BUCKETS; b++) {
        struct waiter *w = a->waiters[b];
        while (w) {
            struct waiter *next = w->next;
            check(w);
            w = next;
        }
    }
}

/* ---- registry ----------------------------------------------------------------------------- */

int api_wait(struct api *a, struct evhttp_request *req, const char *tenant, const char *id,
             enum waiter_kind kind, int64_t wait_ms)
{
    struct waiter *w = calloc(1, sizeof(*w));
    size_t b = bucket_of(id);

    if (w == NULL || (w->timer = evtimer_new(a->base, on_timer, w)) == NULL) {
        free(w);
        return -1;
    }
    w->api = a;
    w->req = req;
    w->tenant = tenant;
    w->kind = kind;
    w->rs.req = req;
    w->final_status = -1;
    w->wait_ms = wait_ms;
    w->deadline_mono = util_mono_ms() + wait_ms;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->next = a->waiters[b];
    a->waiters[b] = w;
    a->n_waiters++;
    arm(w);
    return 0;
}

void api_wait_forget(struct api *a, const char *id)
{
    struct waiter *w = find(a, id);
    if (w) {
        w->forget = true;
    }
}

void api_wait_cancel(struct api *a, const char *id)
{
    struct waiter *w = find(a, id);
    if (w) {
        retire(w);
    }
}

void api_wait_rekey(struct api *a, const char *from_id, const char *to_id)
{
    struct waiter *w = find(a, from_id);
    size_t b;

    if (w == NULL) {
        return;
    }
    unlink_waiter(w);
    snprintf(w->id, sizeof(w->id), "%s", to_id);
    b = bucket_of(w->id);
    w->next = a->waiters[b];
    a->waiters[b] = w;
    a->n_waiters++;
    check(w);
}

int api_waiters_init(struct api *a)
{
    struct store_opts so = {a->cfg->redis_host,     a->cfg->redis_port,       a->cfg->redis_db,
                            a->cfg->redis_password, a->cfg->redis_timeout_ms, "api-sub",
                            a->cfg->redis_key_tag};

    if (util_random_id("api_", a->node_id, sizeof(a->node_id)) < 0) {
        return -1;
    }
    if (keyspace_key(store_keys(a->store), a->channel, sizeof(a->channel), KS_CHANNEL_API,
                     a->node_id) < 0) {
        return -1;
    }
    a->sub = store_new(a->base, &so);
    if (a->sub == NULL) {
        return -1;
    }
    store_on_state(a->sub, on_sub_state, a);
    return store_subscribe(a->sub, a->channel, on_message, a);
}

void api_waiters_cleanup(struct api *a)
{
    store_free(a->sub);
    a->sub = NULL;
    for (size_t b = 0; b < API_WAITER_BUCKETS; b++) {
        while (a->waiters[b]) {
            struct waiter *w = a->waiters[b];
            if (w->kind == WAIT_RESPONSE_STREAM && (w->rs.started || w->rs.done)) {
                api_rstream_end(&w->rs);
            } else if (w->started) {
                evhttp_send_reply_end(w->req);
            } else {
                api_reply_error(a, w->req, CORE_EUNAVAILABLE, NULL, "shutting_down",
                                "The server is shutting down; poll GET /v1/tasks/%s", w->id);
            }
            retire(w);
        }
    }
}
