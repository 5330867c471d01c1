/*
 * api/responses_stream.c — a response's typed events going out as server-sent events: the
 * writer every response stream shares (struct api_rstream), the events of a response that did
 * not stream (synthesized from its object), and GET /v1/responses/{id}?stream=true, which
 * replays the stored events and follows them live.
 *
 * The events a worker makes for a streamed response task go two ways (worker/exec.c): published
 * on the waiting API process's channel, and appended to the list {tag}:ev:<id> in order, one
 * per sequence number from 0 (a new attempt starts the list again). The waiter of a streaming
 * POST relays the first (api/waiters.c); a replay reads the second. Both write through
 * api_rstream_event, which writes each sequence number once and in order and ends the reply at
 * the terminal event; OpenAI's format is `event: <type>` and `data: <json>`, no [DONE] line.
 *
 * A replay re-reads the list every RSTREAM_POLL_MS from where it is (LRANGE), after reading the
 * task's status: once the task is terminal, the list read after that holds every event the
 * attempt made, so a stream that still has no terminal event is closed with one synthesized from
 * the response object. Simple and bounded: one status read and one list read per follower per
 * tick, for at most limits.sync_wait_s; the client leaving ends it at the next tick.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "adapters/responses.h"
#include "api/internal.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/store.h"
#include "core/task.h"
#include "core/util.h"

/* How often a replay looks at the stored events: a live delta shows this much later at most. */
#define RSTREAM_POLL_MS 100
/* An idle stream sends an SSE comment this often, so proxies keep it and a gone client shows. */
#define RSTREAM_KEEPALIVE_MS 10000

/* The events that end a response's stream. */
static const char *const terminal_types[] = {"response.completed", "response.failed",
                                             "response.incomplete"};

static bool is_terminal_type(const char *type)
{
    for (size_t i = 0; i < sizeof(terminal_types) / sizeof(terminal_types[0]); i++) {
        if (strcmp(type, terminal_types[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- the writer --------------------------------------------------------------------------- */

void api_rstream_begin(struct api *a, struct api_rstream *s)
{
    struct evkeyvalq *h;

    if (s->started || s->done) {
        return;
    }
    h = evhttp_request_get_output_headers(s->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    a->responses[2]++;
    evhttp_send_reply_start(s->req, 200, "OK");
    s->started = true;
}

void api_rstream_end(struct api_rstream *s)
{
    if (s->done) {
        return;
    }
    s->done = true;
    if (s->started) {
        evhttp_send_reply_end(s->req);
    }
}

/* One SSE record: `event: type` (none when type is NULL), `data: data`. */
static void sse_send(struct evhttp_request *req, const char *type, const char *data, size_t len)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    if (type != NULL) {
        evbuffer_add_printf(b, "event: %s\n", type);
    }
    evbuffer_add(b, "data: ", 6);
    evbuffer_add(b, data, len);
    evbuffer_add(b, "\n\n", 2);
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

int api_rstream_event(struct api *a, struct api_rstream *s, const char *json, size_t len,
                      bool strict)
{
    cJSON *ev;
    const char *type;
    const cJSON *seq;
    int64_t n;
    char *flat = NULL;
    int rc = 0;

    if (s->done) {
        return 0;
    }
    ev = cJSON_ParseWithLength(json, len);
    type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "type"));
    seq = cJSON_GetObjectItemCaseSensitive(ev, "sequence_number");
    if (type == NULL || !cJSON_IsNumber(seq) || seq->valuedouble < 0) {
        rc = -1;
        goto out;
    }
    n = (int64_t)seq->valuedouble;
    if (n == 0 && s->seen_seq > 0 && strcmp(type, "response.created") == 0) {
        rc = -1; /* a new attempt started the stream again */
        goto out;
    }
    if (n > s->seen_seq && strict) {
        rc = 2; /* events before it are missing: the caller fills them from the stored list */
        goto out;
    }
    if (n < s->seen_seq) {
        goto out; /* written (or skipped) already */
    }
    s->seen_seq = n + 1;
    if (n < s->next_seq) {
        goto out; /* at or before starting_after */
    }
    api_rstream_begin(a, s);
    /* one line of data: what a worker stores is compact JSON, but a newline would end the record */
    if (memchr(json, '\n', len) != NULL || memchr(json, '\r', len) != NULL) {
        flat = cJSON_PrintUnformatted(ev);
    }
    sse_send(s->req, type, flat ? flat : json, flat ? strlen(flat) : len);
    s->next_seq = n + 1;
    rc = 1;
    if (is_terminal_type(type)) {
        api_rstream_end(s);
    }
out:
    cJSON_free(flat);
    cJSON_Delete(ev);
    return rc;
}

void api_rstream_fail(struct api *a, struct api_rstream *s, const char *code, const char *message)
{
    cJSON *ev;
    char *text;

    if (s->done) {
        return;
    }
    api_rstream_begin(a, s);
    ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "error");
    cJSON_AddStringToObject(ev, "code", code);
    cJSON_AddStringToObject(ev, "message", message);
    cJSON_AddNullToObject(ev, "param");
    cJSON_AddNumberToObject(ev, "sequence_number", (double)s->seen_seq);
    text = cJSON_PrintUnformatted(ev);
    if (text != NULL) {
        sse_send(s->req, "error", text, strlen(text));
    }
    cJSON_free(text);
    cJSON_Delete(ev);
    api_rstream_end(s);
}

/* ---- the events of a response that did not stream ---------------------------------------- */

/* A new event {type, sequence_number (set when written), ...} appended to events. */
static cJSON *synth_event(cJSON *events, const char *type)
{
    cJSON *ev = cJSON_CreateObject();

    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddNumberToObject(ev, "sequence_number", 0);
    cJSON_AddItemToArray(events, ev);
    return ev;
}

/* The item's place: item_id, output_index (and content_index when part >= 0). */
static void event_place(cJSON *ev, const char *item_id, int index, int part)
{
    cJSON_AddStringToObject(ev, "item_id", item_id ? item_id : "");
    cJSON_AddNumberToObject(ev, "output_index", index);
    if (part >= 0) {
        cJSON_AddNumberToObject(ev, "content_index", part);
    }
}

/* A message's content part j as its added/delta/done events. */
static void part_events(cJSON *events, const char *item_id, int index, int j, const cJSON *part)
{
    const char *ptype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "type"));
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "text"));
    const char *refusal = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "refusal"));
    bool is_text = ptype && strcmp(ptype, "output_text") == 0;
    bool is_refusal = ptype && strcmp(ptype, "refusal") == 0;
    cJSON *ev, *empty = cJSON_Duplicate(part, true);

    ev = synth_event(events, "response.content_part.added");
    event_place(ev, item_id, index, j);
    if (is_text) {
        cJSON_ReplaceItemInObjectCaseSensitive(empty, "text", cJSON_CreateString(""));
        cJSON_ReplaceItemInObjectCaseSensitive(empty, "annotations", cJSON_CreateArray());
    } else if (is_refusal) {
        cJSON_ReplaceItemInObjectCaseSensitive(empty, "refusal", cJSON_CreateString(""));
    }
    cJSON_AddItemToObject(ev, "part", empty);
    if (is_text || is_refusal) {
        const char *v = (is_text ? text : refusal) ? (is_text ? text : refusal) : "";
        ev = synth_event(events, is_text ? "response.output_text.delta" : "response.refusal.delta");
        event_place(ev, item_id, index, j);
        cJSON_AddStringToObject(ev, "delta", v);
        if (is_text) {
            cJSON_AddArrayToObject(ev, "logprobs");
        }
        ev = synth_event(events, is_text ? "response.output_text.done" : "response.refusal.done");
        event_place(ev, item_id, index, j);
        cJSON_AddStringToObject(ev, is_text ? "text" : "refusal", v);
        if (is_text) {
            cJSON_AddArrayToObject(ev, "logprobs");
        }
    }
    ev = synth_event(events, "response.content_part.done");
    event_place(ev, item_id, index, j);
    cJSON_AddItemToObject(ev, "part", cJSON_Duplicate(part, true));
}

/*
 * Output item index as the events a stream makes of it: added (a message without its content
 * yet, a function call without its arguments), the content parts' or the arguments' events,
 * done (the item whole).
 */
static void item_events(cJSON *events, const cJSON *item, int index)
{
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "type"));
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "id"));
    bool message = type && strcmp(type, "message") == 0;
    bool call = type && strcmp(type, "function_call") == 0;
    cJSON *shell = cJSON_Duplicate(item, true), *ev;
    const cJSON *part;
    int j = 0;

    if (message) {
        cJSON_ReplaceItemInObjectCaseSensitive(shell, "content", cJSON_CreateArray());
    } else if (call) {
        cJSON_ReplaceItemInObjectCaseSensitive(shell, "arguments", cJSON_CreateString(""));
    }
    if ((message || call) && cJSON_HasObjectItem(shell, "status")) {
        cJSON_ReplaceItemInObjectCaseSensitive(shell, "status", cJSON_CreateString("in_progress"));
    }
    ev = synth_event(events, "response.output_item.added");
    cJSON_AddNumberToObject(ev, "output_index", index);
    cJSON_AddItemToObject(ev, "item", shell);
    if (message) {
        cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(item, "content"))
        {
            part_events(events, id, index, j++, part);
        }
    } else if (call) {
        const char *args =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "arguments"));
        ev = synth_event(events, "response.function_call_arguments.delta");
        event_place(ev, id, index, -1);
        cJSON_AddStringToObject(ev, "delta", args ? args : "");
        ev = synth_event(events, "response.function_call_arguments.done");
        event_place(ev, id, index, -1);
        cJSON_AddItemToObject(
            ev, "name", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(item, "name"), true));
        cJSON_AddStringToObject(ev, "arguments", args ? args : "");
    }
    ev = synth_event(events, "response.output_item.done");
    cJSON_AddNumberToObject(ev, "output_index", index);
    cJSON_AddItemToObject(ev, "item", cJSON_Duplicate(item, true));
}

/* The terminal event of a response object (borrowed): by its status. */
static void terminal_event(cJSON *events, const cJSON *resp)
{
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(resp, "status"));
    const char *type = "response.failed"; /* failed, and cancelled: a stream that did not end */
    cJSON *ev;

    if (status != NULL && strcmp(status, "completed") == 0) {
        type = "response.completed";
    } else if (status != NULL && strcmp(status, "incomplete") == 0) {
        type = "response.incomplete";
    }
    ev = synth_event(events, type);
    cJSON_AddItemToObject(ev, "response", cJSON_Duplicate(resp, true));
}

/* Every event a stream of the response object (borrowed) would have made, in order. */
static void all_events(cJSON *events, const cJSON *resp)
{
    cJSON *interim = cJSON_Duplicate(resp, true);
    const cJSON *item;
    cJSON *ev;
    int i = 0;

    cJSON_ReplaceItemInObjectCaseSensitive(interim, "status", cJSON_CreateString("in_progress"));
    cJSON_ReplaceItemInObjectCaseSensitive(interim, "output", cJSON_CreateArray());
    cJSON_ReplaceItemInObjectCaseSensitive(interim, "error", cJSON_CreateNull());
    cJSON_ReplaceItemInObjectCaseSensitive(interim, "incomplete_details", cJSON_CreateNull());
    cJSON_ReplaceItemInObjectCaseSensitive(interim, "usage", cJSON_CreateNull());
    ev = synth_event(events, "response.created");
    cJSON_AddItemToObject(ev, "response", cJSON_Duplicate(interim, true));
    ev = synth_event(events, "response.in_progress");
    cJSON_AddItemToObject(ev, "response", interim);
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(resp, "output"))
    {
        item_events(events, item, i++);
    }
    terminal_event(events, resp);
}

void api_rstream_finish(struct api *a, struct api_rstream *s, const char *response)
{
    cJSON *resp = response ? cJSON_Parse(response) : NULL;
    cJSON *events = cJSON_CreateArray();
    const cJSON *ev;
    int64_t seq = s->seen_seq;

    if (s->done) {
        goto out;
    }
    if (resp == NULL || events == NULL) {
        api_rstream_fail(a, s, "server_error", "The response could not be read");
        goto out;
    }
    /* a response that never streamed is told whole; a stream that stopped short, its end */
    if (s->seen_seq == 0) {
        all_events(events, resp);
    } else {
        terminal_event(events, resp);
    }
    cJSON_ArrayForEach(ev, events)
    {
        char *t;
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(ev, "sequence_number"),
                             (double)seq++);
        t = cJSON_PrintUnformatted(ev);
        if (t != NULL) {
            api_rstream_event(a, s, t, strlen(t), false);
        }
        cJSON_free(t);
    }
    api_rstream_end(s);
out:
    cJSON_Delete(events);
    cJSON_Delete(resp);
}

/* ---- GET /v1/responses/{id}?stream=true ---------------------------------------------------- */

struct api_rfollow {
    struct api *api;
    struct api_rfollow *prev, *next; /* the api's followers (api_responses_follow_cleanup) */
    struct api_rstream rs;
    const char *tenant;
    char id[48];
    char task_key[API_KEY_MAX];
    char events_key[API_KEY_MAX];
    struct event *timer;
    int64_t deadline_mono;
    int64_t last_write_mono;
    int64_t list_pos; /* stored events read so far (the next LRANGE starts there) */
    int64_t attempts; /* the task's attempts when its events were first seen (-1: not yet) */
    bool checked;     /* the task is this tenant's response */
    bool terminal;    /* it was terminal at the last status read */
    bool reading;     /* a read is in flight: it holds the follower */
    bool closed;      /* freed as soon as no read holds it */
    bool unlinked;    /* no longer on the api's list (the api is going away) */
};

static void follow_free(struct api_rfollow *f)
{
    struct api *a = f->api;

    if (f->reading) {
        f->closed = true; /* the read's callback frees it */
        return;
    }
    if (!f->unlinked && f->prev) {
        f->prev->next = f->next;
    } else if (!f->unlinked) {
        a->followers = f->next;
    }
    if (!f->unlinked && f->next) {
        f->next->prev = f->prev;
    }
    if (f->timer) {
        event_free(f->timer);
    }
    free(f);
}

/* Ends the follower's reply (an error when it has not started) and frees it. */
static void follow_stop(struct api_rfollow *f, const char *code, const char *message)
{
    if (!f->rs.started && !f->rs.done) {
        f->rs.done = true;
        if (code != NULL) {
            api_reply_store_down(f->api, f->rs.req);
        } else {
            evhttp_send_reply(f->rs.req, 200, "OK", NULL);
        }
    } else if (code != NULL) {
        api_rstream_fail(f->api, &f->rs, code, message);
    } else {
        api_rstream_end(&f->rs);
    }
    follow_free(f);
}

static void follow_arm(struct api_rfollow *f)
{
    struct timeval tv = {0, RSTREAM_POLL_MS * 1000};

    evtimer_add(f->timer, &tv);
}

/* The closing read: the task's hash, to end a stream whose events did not. */
static void on_final_hash(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_rfollow *f = arg;

    f->reading = false;
    if (f->closed) {
        follow_free(f);
    } else if (err != NULL) {
        follow_stop(f, "store_unavailable", "The task store is unavailable; resume the stream");
    } else {
        char *text = api_response_text(f->id, reply);
        api_rstream_finish(f->api, &f->rs, text);
        cJSON_free(text);
        follow_free(f);
    }
}

/* The stored events from list_pos on: written (those after starting_after), then what next. */
static void on_events(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_rfollow *f = arg;
    const char *argv[] = {"HGETALL", f->task_key};

    f->reading = false;
    if (f->closed) {
        follow_free(f);
        return;
    }
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY) {
        follow_stop(f, "store_unavailable", "The task store is unavailable; resume the stream");
        return;
    }
    for (size_t i = 0; i < reply->elements && !f->rs.done; i++) {
        const redisReply *e = reply->element[i];
        int rc = e->type == REDIS_REPLY_STRING
                     ? api_rstream_event(f->api, &f->rs, e->str, e->len, false)
                     : -1;
        f->list_pos++;
        if (rc < 0) {
            follow_stop(f, "stream_restarted",
                        "The response's stream started again (a new attempt); read it again from "
                        "the start");
            return;
        }
        if (rc > 0) {
            f->last_write_mono = util_mono_ms();
        }
    }
    if (f->rs.done) {
        follow_free(f);
    } else if (f->terminal) {
        /* the task ended before this read: every event is in, and none ended the stream */
        if (store_command(f->api->store, on_final_hash, f, 2, argv, NULL) == 0) {
            f->reading = true;
        } else {
            follow_stop(f, "store_unavailable", "The task store is unavailable; resume the stream");
        }
    } else if (util_mono_ms() >= f->deadline_mono) {
        follow_stop(f, "stream_timeout",
                    "The response did not finish within this stream's time; resume it with "
                    "starting_after");
    } else {
        if (f->rs.started && util_mono_ms() - f->last_write_mono >= RSTREAM_KEEPALIVE_MS) {
            struct evbuffer *b = evbuffer_new();
            if (b != NULL) {
                evbuffer_add(b, ": keep-alive\n\n", 14);
                evhttp_send_reply_chunk(f->rs.req, b);
                evbuffer_free(b);
            }
            f->last_write_mono = util_mono_ms();
        }
        follow_arm(f);
    }
}

/* The task's tenant, kind, status and attempts: checked, then the events read after them. */
static void on_status(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_rfollow *f = arg;
    char from[24];
    const char *argv[] = {"LRANGE", f->events_key, from, "-1"};
    const char *tenant, *kind, *status, *attempts;

    f->reading = false;
    if (f->closed) {
        follow_free(f);
        return;
    }
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        follow_stop(f, "store_unavailable", "The task store is unavailable; resume the stream");
        return;
    }
    tenant = reply->element[0]->type == REDIS_REPLY_STRING ? reply->element[0]->str : NULL;
    kind = reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : NULL;
    status = reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : NULL;
    attempts = reply->element[3]->type == REDIS_REPLY_STRING ? reply->element[3]->str : "0";
    if (!f->checked) {
        if (tenant == NULL || strcmp(tenant, f->tenant) != 0 || kind == NULL ||
            task_kind_parse(kind) != TASK_KIND_RESPONSE) {
            f->rs.done = true;
            api_reply_error(f->api, f->rs.req, CORE_ENOTFOUND, "response_id", "response_not_found",
                            "Response with id '%s' not found.", f->id);
            follow_free(f);
            return;
        }
        f->checked = true;
        api_rstream_begin(f->api, &f->rs);
        f->last_write_mono = util_mono_ms();
    }
    if (tenant == NULL) {
        follow_stop(f, "response_deleted", "The response was deleted");
        return;
    }
    if (f->attempts < 0 && f->rs.seen_seq > 0) {
        f->attempts = strtoll(attempts, NULL, 10);
    } else if (f->attempts >= 0 && strtoll(attempts, NULL, 10) != f->attempts) {
        follow_stop(f, "stream_restarted",
                    "The response's stream started again (a new attempt); read it again from the "
                    "start");
        return;
    }
    f->terminal = task_status_terminal(status);
    snprintf(from, sizeof(from), "%lld", (long long)f->list_pos);
    if (store_command(f->api->store, on_events, f, 4, argv, NULL) == 0) {
        f->reading = true;
    } else {
        follow_stop(f, "store_unavailable", "The task store is unavailable; resume the stream");
    }
}

static void on_follow_timer(evutil_socket_t fd, short what, void *arg)
{
    struct api_rfollow *f = arg;
    const char *argv[] = {"HMGET", f->task_key, "tenant", "kind", "status", "attempts"};

    (void)fd;
    (void)what;
    if (evhttp_request_get_connection(f->rs.req) == NULL) {
        /* the client left: evhttp freed nothing it still lent us; ending the reply frees it */
        follow_stop(f, NULL, NULL);
        return;
    }
    if (store_command(f->api->store, on_status, f, 6, argv, NULL) == 0) {
        f->reading = true;
    } else if (!f->checked) {
        f->rs.done = true;
        api_reply_store_down(f->api, f->rs.req);
        follow_free(f);
    } else {
        follow_stop(f, "store_unavailable", "The task store is unavailable; resume the stream");
    }
}

void api_responses_follow(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *id, int64_t starting_after)
{
    const struct keyspace *ks = store_keys(a->store);
    struct api_rfollow *f = calloc(1, sizeof(*f));

    if (f == NULL || (f->timer = evtimer_new(a->base, on_follow_timer, f)) == NULL) {
        free(f);
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return;
    }
    f->api = a;
    f->rs.req = req;
    f->rs.next_seq = starting_after + 1;
    f->tenant = tenant;
    f->attempts = -1;
    f->deadline_mono = util_mono_ms() + (int64_t)a->cfg->limits.sync_wait_s * 1000;
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->next = a->followers;
    if (f->next) {
        f->next->prev = f;
    }
    a->followers = f;
    if (keyspace_key(ks, f->task_key, sizeof(f->task_key), KS_TASK, id) < 0 ||
        keyspace_key(ks, f->events_key, sizeof(f->events_key), KS_EVENTS, id) < 0) {
        f->rs.done = true;
        api_reply_error(a, req, CORE_EINTERNAL, NULL, NULL, "Key too long");
        follow_free(f);
        return;
    }
    on_follow_timer(-1, 0, f);
}

void api_responses_follow_cleanup(struct api *a)
{
    while (a->followers) {
        struct api_rfollow *f = a->followers;
        a->followers = f->next;
        f->prev = f->next = NULL;
        f->unlinked = true;
        if (f->rs.started) {
            api_rstream_fail(a, &f->rs, "shutting_down",
                             "The server is shutting down; resume the stream with starting_after");
        } else if (!f->rs.done) {
            f->rs.done = true;
            api_reply_error(a, f->rs.req, CORE_EUNAVAILABLE, NULL, "shutting_down",
                            "The server is shutting down; resume the stream");
        }
        follow_free(f); /* or, when a read holds it, its callback does */
    }
}
