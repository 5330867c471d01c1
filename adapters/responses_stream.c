/*
 * adapters/responses_stream.c — a response task's stream as OpenAI's typed Responses events.
 *
 * Both paths open with sluice's own response.created and response.in_progress
 * (responses_stream_start), numbered from 0, so a retried call's stream starts the same way.
 *   native      OpenAI's typed events pass through renumbered; the response object the lifecycle
 *               events carry is normalized (sluice's id, the client's model and settings), the
 *               provider's own created/in_progress are left out (sluice's went first), and its
 *               item ids are kept.
 *   translated  the dialect's stream hooks make chat chunks; each chunk becomes the events of
 *               the items it opens or extends (a reasoning item, one message with an output_text
 *               or refusal part, a function_call per tool call), every chunk also goes into an
 *               adapter_accum, and at the end the items close in output order and the terminal
 *               event carries responses_from_chat's object of the accumulated chat.completion,
 *               its output the items exactly as the events built them.
 * Items stay open until the end: a provider may interleave text and tool calls, and the events
 * name each item by output_index, which is fixed when the item opens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/responses.h"
#include "adapters/responses_internal.h"

#define STREAM_MAX_TOOLS 128      /* function calls in one response, as adapter_accum caps them */
#define STREAM_MAX_LOGPROBS 65536 /* logprobs entries kept, as adapter_accum caps them */

/* Text an item has received, within the stream's byte cap. */
struct stream_text {
    char *p;
    size_t len;
    size_t cap;
};

/* One function call item, by the chat tool call index it comes from. */
struct stream_tool {
    long index;
    int output_index;
    char item_id[RESPONSES_ITEM_ID_LEN];
    char *call_id;
    char *name;
    cJSON *extra; /* the provider's round-trip data of the call (extra_content), or NULL */
    struct stream_text args;
};

struct responses_stream {
    const struct adapter *ad;
    const struct adapter_call *call;
    char id[RESPONSES_ITEM_ID_LEN];
    int64_t created_s;
    bool native;
    bool started;
    bool done;
    int64_t seq;  /* the next event's sequence_number */
    size_t bytes; /* text held, capped at ADAPTER_MAX_REPLY_BYTES */
    cJSON *final; /* after done: the response object */
    cJSON *usage; /* after done: usage in chat names, or NULL */

    /* translated */
    cJSON *chat_body;
    struct adapter_call chat;
    void *dialect;
    struct adapter_accum *acc;
    bool logprobs; /* include asked for output_text logprobs */
    int n_items;   /* output items opened */
    int reasoning_at;
    char reasoning_id[RESPONSES_ITEM_ID_LEN];
    struct stream_text reasoning;
    int message_at;
    char message_id[RESPONSES_ITEM_ID_LEN];
    int n_parts;
    int text_part;
    int refusal_part;
    struct stream_text text;
    struct stream_text refusal;
    cJSON *text_logprobs;
    struct stream_tool *tools;
    size_t n_tools;
};

/* The provider's opening lifecycle events, left out: sluice's own opened the stream. */
static const char *const native_skipped[] = {"response.created", "response.in_progress",
                                             "response.queued"};

/* The lifecycle events that end a stream with a response. */
static const char *const native_terminal[] = {"response.completed", "response.incomplete"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (strcmp(s, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Appends s to t, within the stream's byte cap. Returns 0, CORE_ETOOLARGE or CORE_ENOMEM. */
static int text_add(struct responses_stream *s, struct stream_text *t, const char *add)
{
    return adapter_text_append(&t->p, &t->len, &t->cap, add, strlen(add), &s->bytes);
}

static const char *text_of(const struct stream_text *t)
{
    return t->p ? t->p : "";
}

/* {"type", "sequence_number"}: the head of the stream's next event. NULL on OOM. */
static cJSON *event_new(struct responses_stream *s, const char *type)
{
    cJSON *ev = cJSON_CreateObject();

    if (ev == NULL || cJSON_AddStringToObject(ev, "type", type) == NULL ||
        cJSON_AddNumberToObject(ev, "sequence_number", (double)s->seq) == NULL) {
        cJSON_Delete(ev);
        return NULL;
    }
    s->seq++;
    return ev;
}

/* The head of an event about an item: type, sequence_number, item_id, output_index. */
static cJSON *item_event(struct responses_stream *s, const char *type, const char *item_id,
                         int output_index)
{
    cJSON *ev = event_new(s, type);

    if (ev != NULL && (cJSON_AddStringToObject(ev, "item_id", item_id) == NULL ||
                       cJSON_AddNumberToObject(ev, "output_index", output_index) == NULL)) {
        cJSON_Delete(ev);
        return NULL;
    }
    return ev;
}

/* ev (taken; NULL counts as OOM) appended to events. 0 or CORE_ENOMEM. */
static int emit(cJSON *events, cJSON *ev)
{
    return adapter_json_push(events, ev) ? 0 : CORE_ENOMEM;
}

/*
 * ev (taken) with value (taken) put under key, appended to events. Either may be NULL (a failed
 * allocation): everything is freed and CORE_ENOMEM returned.
 */
static int emit_with(cJSON *events, cJSON *ev, const char *key, cJSON *value)
{
    if (ev == NULL) {
        cJSON_Delete(value);
        return CORE_ENOMEM;
    }
    if (!adapter_json_put(ev, key, value)) {
        cJSON_Delete(ev);
        return CORE_ENOMEM;
    }
    return emit(events, ev);
}

/* A lifecycle event {type, sequence_number, response: obj (taken)}. */
static int emit_response(struct responses_stream *s, cJSON *events, const char *type, cJSON *obj)
{
    return emit_with(events, obj ? event_new(s, type) : NULL, "response", obj);
}

/* output_item.added / .done for item (taken). */
static int emit_item(struct responses_stream *s, cJSON *events, const char *type, int output_index,
                     cJSON *item)
{
    cJSON *ev = item ? event_new(s, type) : NULL;

    if (ev != NULL && cJSON_AddNumberToObject(ev, "output_index", output_index) == NULL) {
        cJSON_Delete(ev);
        ev = NULL;
    }
    return emit_with(events, ev, "item", item);
}

/* content_part.added / .done of part (taken). */
static int emit_part(struct responses_stream *s, cJSON *events, const char *type,
                     const char *item_id, int output_index, int content_index, cJSON *part)
{
    cJSON *ev = part ? item_event(s, type, item_id, output_index) : NULL;

    if (ev != NULL && cJSON_AddNumberToObject(ev, "content_index", content_index) == NULL) {
        cJSON_Delete(ev);
        ev = NULL;
    }
    return emit_with(events, ev, "part", part);
}

/* A content part {"type": type, key: text} plus an output_text's annotations and logprobs. */
static cJSON *part_json(const char *type, const char *key, const char *text, const cJSON *logprobs)
{
    cJSON *p = cJSON_CreateObject();
    bool ok = p != NULL && cJSON_AddStringToObject(p, "type", type) != NULL &&
              cJSON_AddStringToObject(p, key, text) != NULL;

    if (ok && strcmp(type, "output_text") == 0) {
        ok = cJSON_AddArrayToObject(p, "annotations") != NULL &&
             adapter_json_put(p, "logprobs",
                              logprobs ? cJSON_Duplicate(logprobs, true) : cJSON_CreateArray());
    }
    if (!ok) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

/* A delta or done event of a content part: {..., content_index, key: value (copied)}. */
static int emit_text_event(struct responses_stream *s, cJSON *events, const char *type,
                           const char *item_id, int output_index, int content_index,
                           const char *key, const char *value, const cJSON *logprobs)
{
    cJSON *ev = item_event(s, type, item_id, output_index);
    bool ok = ev != NULL && cJSON_AddNumberToObject(ev, "content_index", content_index) != NULL &&
              cJSON_AddStringToObject(ev, key, value) != NULL;

    if (ok && logprobs != NULL) {
        ok = adapter_json_put(ev, "logprobs", cJSON_Duplicate(logprobs, true));
    }
    if (!ok) {
        cJSON_Delete(ev);
        return CORE_ENOMEM;
    }
    return emit(events, ev);
}

/* ---- translated ------------------------------------------------------------------------- */

/* Opens the reasoning item (output_item.added, its reasoning_text part) on its first text. */
static int reasoning_open(struct responses_stream *s, cJSON *events)
{
    cJSON *item;
    cJSON *content;
    int rc;

    if (s->reasoning_at >= 0) {
        return 0;
    }
    s->reasoning_at = s->n_items++;
    responses_item_id(s->reasoning_id, "rs_", s->id, -1);
    item = responses_item_reasoning(s->reasoning_id, "in_progress", "");
    content = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (content != NULL) {
        cJSON_DeleteItemFromArray(content, 0);
    }
    if ((rc = emit_item(s, events, "response.output_item.added", s->reasoning_at, item)) != 0) {
        return rc;
    }
    return emit_part(s, events, "response.content_part.added", s->reasoning_id, s->reasoning_at, 0,
                     part_json("reasoning_text", "text", "", NULL));
}

/* Opens the message item (output_item.added with no content yet) on its first text. */
static int message_open(struct responses_stream *s, cJSON *events)
{
    cJSON *item;

    if (s->message_at >= 0) {
        return 0;
    }
    s->message_at = s->n_items++;
    responses_item_id(s->message_id, "msg_", s->id, -1);
    item = responses_item_message(s->message_id, "in_progress", NULL, NULL, NULL);
    return emit_item(s, events, "response.output_item.added", s->message_at, item);
}

/* Opens the message's output_text (refusal: its refusal) part, at the next content index. */
static int part_open(struct responses_stream *s, cJSON *events, bool refusal)
{
    int *at = refusal ? &s->refusal_part : &s->text_part;
    int rc;

    if (*at >= 0) {
        return 0;
    }
    if ((rc = message_open(s, events)) != 0) {
        return rc;
    }
    *at = s->n_parts++;
    return emit_part(s, events, "response.content_part.added", s->message_id, s->message_at, *at,
                     refusal ? part_json("refusal", "refusal", "", NULL)
                             : part_json("output_text", "text", "", NULL));
}

static int on_reasoning(struct responses_stream *s, const char *delta, cJSON *events)
{
    int rc;

    if ((rc = reasoning_open(s, events)) != 0 || (rc = text_add(s, &s->reasoning, delta)) != 0) {
        return rc;
    }
    return emit_text_event(s, events, "response.reasoning_text.delta", s->reasoning_id,
                           s->reasoning_at, 0, "delta", delta, NULL);
}

/*
 * A text delta, with the chunk's chat logprobs entries (same shape as the Responses ones) when
 * include asked for them: on the delta event and kept for the part's done events.
 */
static int on_text(struct responses_stream *s, const char *delta, const cJSON *logprobs,
                   cJSON *events)
{
    cJSON *empty = NULL;
    const cJSON *lp;
    int rc;

    if ((rc = part_open(s, events, false)) != 0 || (rc = text_add(s, &s->text, delta)) != 0) {
        return rc;
    }
    if (!s->logprobs || !cJSON_IsArray(logprobs)) {
        if ((logprobs = empty = cJSON_CreateArray()) == NULL) {
            return CORE_ENOMEM;
        }
    }
    cJSON_ArrayForEach(lp, logprobs)
    {
        if (cJSON_GetArraySize(s->text_logprobs) >= STREAM_MAX_LOGPROBS) {
            rc = CORE_ETOOLARGE;
            break;
        }
        if (!adapter_json_push(s->text_logprobs, cJSON_Duplicate(lp, true))) {
            rc = CORE_ENOMEM;
            break;
        }
    }
    if (rc == 0) {
        rc = emit_text_event(s, events, "response.output_text.delta", s->message_id, s->message_at,
                             s->text_part, "delta", delta, logprobs);
    }
    cJSON_Delete(empty);
    return rc;
}

static int on_refusal(struct responses_stream *s, const char *delta, cJSON *events)
{
    int rc;

    if ((rc = part_open(s, events, true)) != 0 || (rc = text_add(s, &s->refusal, delta)) != 0) {
        return rc;
    }
    return emit_text_event(s, events, "response.refusal.delta", s->message_id, s->message_at,
                           s->refusal_part, "delta", delta, NULL);
}

/*
 * The tool state a tool-call delta continues, by its index (as adapter_accum reads it: without
 * one, a delta bringing a new id starts the next call and anything else continues the last), or
 * NULL when it opens a new one; *index is the index it has.
 */
static struct stream_tool *tool_find(struct responses_stream *s, const cJSON *tc, long *index)
{
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
    const char *id = adapter_json_str(tc, "id");
    struct stream_tool *last = s->n_tools ? &s->tools[s->n_tools - 1] : NULL;

    if (cJSON_IsNumber(ix) && ix->valuedouble >= 0 && ix->valuedouble < STREAM_MAX_TOOLS) {
        *index = (long)ix->valuedouble;
    } else if (last == NULL) {
        *index = 0;
    } else {
        *index =
            (id != NULL && id[0] != '\0' && last->call_id != NULL && strcmp(last->call_id, id) != 0)
                ? last->index + 1
                : last->index;
    }
    for (size_t i = 0; i < s->n_tools; i++) {
        if (s->tools[i].index == *index) {
            return &s->tools[i];
        }
    }
    return NULL;
}

/* *slot = a copy of v's string when the slot is empty and v a non-empty string. */
static int keep_first(char **slot, const char *v)
{
    if (*slot != NULL || v == NULL || v[0] == '\0') {
        return 0;
    }
    *slot = strdup(v);
    return *slot ? 0 : CORE_ENOMEM;
}

/* Opens a function call item for a tool call's first delta. */
static int tool_open(struct responses_stream *s, long index, const cJSON *tc, cJSON *events,
                     struct stream_tool **out)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    char call_id[RESPONSES_ITEM_ID_LEN + 8];
    struct stream_tool *grown;
    struct stream_tool *t;
    int n = (int)s->n_tools;

    if (s->n_tools >= STREAM_MAX_TOOLS) {
        return CORE_ETOOLARGE;
    }
    grown = realloc(s->tools, (s->n_tools + 1) * sizeof(*s->tools));
    if (grown == NULL) {
        return CORE_ENOMEM;
    }
    s->tools = grown;
    t = &s->tools[s->n_tools++];
    memset(t, 0, sizeof(*t));
    t->index = index;
    t->output_index = s->n_items++;
    responses_item_id(t->item_id, "fc_", s->id, n > 0 ? n : -1);
    responses_call_id(call_id, sizeof(call_id), adapter_json_str(tc, "id"), s->id, n);
    if ((t->call_id = strdup(call_id)) == NULL ||
        keep_first(&t->name, adapter_json_str(fn, "name")) != 0) {
        return CORE_ENOMEM;
    }
    *out = t;
    return emit_item(s, events, "response.output_item.added", t->output_index,
                     responses_item_function_call(t->item_id, "in_progress", t->call_id,
                                                  t->name ? t->name : "", "", NULL));
}

static int on_tool(struct responses_stream *s, const cJSON *tc, cJSON *events)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *args = adapter_json_str(fn, "arguments");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(tc, "extra_content");
    long index;
    struct stream_tool *t = tool_find(s, tc, &index);
    int rc;

    if (t == NULL && (rc = tool_open(s, index, tc, events, &t)) != 0) {
        return rc;
    }
    if ((rc = keep_first(&t->name, adapter_json_str(fn, "name"))) != 0) {
        return rc;
    }
    if (t->extra == NULL && cJSON_IsObject(extra) &&
        (t->extra = cJSON_Duplicate(extra, true)) == NULL) {
        return CORE_ENOMEM;
    }
    if (args == NULL || args[0] == '\0') {
        return 0;
    }
    if ((rc = text_add(s, &t->args, args)) != 0) {
        return rc;
    }
    return emit_with(
        events,
        item_event(s, "response.function_call_arguments.delta", t->item_id, t->output_index),
        "delta", cJSON_CreateString(args));
}

/* The events one chat chunk makes: its first choice's reasoning, text, refusal and tool calls. */
static int on_chunk(struct responses_stream *s, const cJSON *chunk, cJSON *events)
{
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(chunk, "choices"), 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(choice, "index");
    const char *reasoning = responses_chat_reasoning(delta);
    const char *content = adapter_json_str(delta, "content");
    const char *refusal = adapter_json_str(delta, "refusal");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    const cJSON *tc;
    int rc = 0;

    if (!cJSON_IsObject(delta) || (cJSON_IsNumber(index) && index->valuedouble != 0)) {
        return 0;
    }
    if (reasoning != NULL && (rc = on_reasoning(s, reasoning, events)) != 0) {
        return rc;
    }
    if (content != NULL && content[0] != '\0' &&
        (rc = on_text(s, content,
                      cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetObjectItemCaseSensitive(choice, "logprobs"), "content"),
                      events)) != 0) {
        return rc;
    }
    if (refusal != NULL && refusal[0] != '\0' && (rc = on_refusal(s, refusal, events)) != 0) {
        return rc;
    }
    cJSON_ArrayForEach(tc, (cJSON_IsArray(calls) ? calls : NULL))
    {
        if ((rc = on_tool(s, tc, events)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* The message item as it closes: its parts in the order they opened. */
static cJSON *message_done(struct responses_stream *s, const char *status)
{
    cJSON *item = responses_item_message(
        s->message_id, status, s->text_part >= 0 ? text_of(&s->text) : NULL, s->text_logprobs,
        s->refusal_part >= 0 ? text_of(&s->refusal) : NULL);
    cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");

    if (item != NULL && s->text_part >= 0 && s->refusal_part >= 0 &&
        s->refusal_part < s->text_part) {
        cJSON *text = cJSON_DetachItemFromArray(content, 0);
        if (!adapter_json_push(content, text)) {
            cJSON_Delete(item);
            return NULL;
        }
    }
    return item;
}

/* item (taken; NULL counts as OOM) as its output_item.done event, and a copy into output. */
static int item_done(struct responses_stream *s, cJSON *events, int output_index, cJSON *item,
                     cJSON *output)
{
    if (item == NULL || !adapter_json_push(output, cJSON_Duplicate(item, true))) {
        cJSON_Delete(item);
        return CORE_ENOMEM;
    }
    return emit_item(s, events, "response.output_item.done", output_index, item);
}

/* Closes the message: each part's done events in content order, then output_item.done. */
static int message_close(struct responses_stream *s, cJSON *events, const char *status,
                         cJSON *output)
{
    int rc = 0;

    for (int part = 0; part < s->n_parts && rc == 0; part++) {
        bool is_text = part == s->text_part;
        const char *value = is_text ? text_of(&s->text) : text_of(&s->refusal);

        rc = emit_text_event(s, events,
                             is_text ? "response.output_text.done" : "response.refusal.done",
                             s->message_id, s->message_at, part, is_text ? "text" : "refusal",
                             value, is_text ? s->text_logprobs : NULL);
        if (rc == 0) {
            rc = emit_part(s, events, "response.content_part.done", s->message_id, s->message_at,
                           part,
                           is_text ? part_json("output_text", "text", value, s->text_logprobs)
                                   : part_json("refusal", "refusal", value, NULL));
        }
    }
    return rc != 0 ? rc : item_done(s, events, s->message_at, message_done(s, status), output);
}

static int reasoning_close(struct responses_stream *s, cJSON *events, const char *status,
                           cJSON *output)
{
    const char *text = text_of(&s->reasoning);
    int rc;

    if ((rc = emit_text_event(s, events, "response.reasoning_text.done", s->reasoning_id,
                              s->reasoning_at, 0, "text", text, NULL)) != 0 ||
        (rc = emit_part(s, events, "response.content_part.done", s->reasoning_id, s->reasoning_at,
                        0, part_json("reasoning_text", "text", text, NULL))) != 0) {
        return rc;
    }
    return item_done(s, events, s->reasoning_at,
                     responses_item_reasoning(s->reasoning_id, status, text), output);
}

static int tool_close(struct responses_stream *s, struct stream_tool *t, cJSON *events,
                      const char *status, cJSON *output)
{
    const char *args = text_of(&t->args);
    const char *name = t->name ? t->name : "";
    cJSON *ev = item_event(s, "response.function_call_arguments.done", t->item_id, t->output_index);

    if (ev != NULL && cJSON_AddStringToObject(ev, "name", name) == NULL) {
        cJSON_Delete(ev);
        ev = NULL;
    }
    if (emit_with(events, ev, "arguments", cJSON_CreateString(args)) != 0) {
        return CORE_ENOMEM;
    }
    return item_done(
        s, events, t->output_index,
        responses_item_function_call(t->item_id, status, t->call_id, name, args, t->extra), output);
}

/* Closes every item in output order, appending each as it closes to output. */
static int close_items(struct responses_stream *s, cJSON *events, const char *status, cJSON *output)
{
    int rc = 0;

    for (int at = 0; at < s->n_items && rc == 0; at++) {
        if (at == s->reasoning_at) {
            rc = reasoning_close(s, events, status, output);
        } else if (at == s->message_at) {
            rc = message_close(s, events, status, output);
        }
        for (size_t i = 0; i < s->n_tools && rc == 0; i++) {
            if (s->tools[i].output_index == at) {
                rc = tool_close(s, &s->tools[i], events, status, output);
            }
        }
    }
    return rc;
}

/*
 * The end of a translated stream: the accumulated chat.completion through responses_from_chat
 * (status, incomplete_details, usage), its output the items as they closed, then the terminal
 * event. A stream that made no item gets an empty message, as a plain call's reply would.
 */
static int translated_finish(struct responses_stream *s, cJSON *events, struct core_err *err)
{
    struct adapter_result res;
    const char *status;
    cJSON *obj = NULL;
    cJSON *output = NULL;
    int rc;

    memset(&res, 0, sizeof(res));
    if ((rc = adapter_accum_finish(s->acc, &res)) != 0) {
        rc = adapter_oom(err);
        goto out;
    }
    if ((rc = responses_from_chat(s->call->input, res.result, s->id, s->created_s, &obj, err)) !=
        0) {
        goto out;
    }
    status = adapter_json_str(obj, "status");
    if (s->n_items == 0 && ((rc = part_open(s, events, false)) != 0)) {
        rc = adapter_oom(err);
        goto out;
    }
    if ((output = cJSON_CreateArray()) == NULL ||
        close_items(s, events, strcmp(status, "incomplete") == 0 ? "incomplete" : "completed",
                    output) != 0) {
        cJSON_Delete(output);
        rc = adapter_oom(err);
        goto out;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "output");
    if (!adapter_json_put(obj, "output", output) ||
        (s->final = cJSON_Duplicate(obj, true)) == NULL) {
        rc = adapter_oom(err);
        goto out;
    }
    s->usage = res.usage;
    res.usage = NULL;
    s->done = true;
    rc = emit_response(
        s, events, strcmp(status, "incomplete") == 0 ? "response.incomplete" : "response.completed",
        obj);
    obj = NULL;
    if (rc != 0) {
        rc = adapter_oom(err);
    }
out:
    cJSON_Delete(obj);
    adapter_result_cleanup(&res);
    return rc;
}

/* A failure of the stream's own making (a cap, memory, a chunk the accumulator refused). */
static int stream_fault(int rc, struct core_err *err)
{
    if (rc == CORE_ENOMEM) {
        return adapter_oom(err);
    }
    adapter_malformed(200, false, err, "%s",
                      rc == CORE_ETOOLARGE ? "the stream passed a size limit"
                                           : "a chunk the stream cannot read");
    return err->code;
}

static int translated_event(struct responses_stream *s, const char *event, const char *data,
                            size_t len, cJSON *events, bool *done, struct core_err *err)
{
    cJSON *chunks = cJSON_CreateArray();
    const cJSON *chunk;
    bool dialect_done = false;
    int rc;

    if (chunks == NULL) {
        return adapter_oom(err);
    }
    rc = s->ad->stream_event(s->dialect, event, data, len, chunks, &dialect_done, err);
    cJSON_ArrayForEach(chunk, (rc == 0 ? chunks : NULL))
    {
        if ((rc = adapter_accum_add(s->acc, chunk)) != 0 ||
            (rc = on_chunk(s, chunk, events)) != 0) {
            rc = stream_fault(rc, err);
            break;
        }
    }
    if (rc == 0 && dialect_done) {
        rc = translated_finish(s, events, err);
        *done = rc == 0;
    }
    cJSON_Delete(chunks);
    return rc;
}

/* ---- native ------------------------------------------------------------------------------- */

/*
 * An error the provider sent in its stream ({"type": "error", "code", "message"}, or the error
 * nested as {"error": {...}}), or the error of a response.failed. Final, as for chat streams:
 * events may already have reached the client.
 */
static int native_error(const cJSON *e, const char *fallback, struct core_err *err)
{
    const cJSON *nested = cJSON_GetObjectItemCaseSensitive(e, "error");
    const char *message;
    const char *code;

    if (cJSON_IsObject(nested)) {
        e = nested;
    }
    message = adapter_json_str(e, "message");
    code = adapter_json_str(e, "code");
    core_err_set(err, CORE_EUPSTREAM, adapter_json_str(e, "param"), "%s",
                 message && message[0] ? message : fallback);
    core_err_set_code(err, code ? code : "server_error");
    err->provider_status = 200;
    err->http_status = 502;
    err->retryable = false;
    return err->code;
}

static int native_event(struct responses_stream *s, const char *event, const char *data, size_t len,
                        cJSON *events, bool *done, struct core_err *err)
{
    cJSON *root = NULL;
    cJSON *response;
    const char *type;
    int rc = 0;

    if (len == 0) {
        return 0;
    }
    root = adapter_json_parse(data, len);
    type = adapter_json_str(root, "type");
    if (!cJSON_IsObject(root) || type == NULL) {
        rc = adapter_malformed(200, false, err, "an event that is not a typed JSON object");
        goto out;
    }
    response = cJSON_GetObjectItemCaseSensitive(root, "response");
    if (strcmp(type, "error") == 0 || (event != NULL && strcmp(event, "error") == 0)) {
        rc = native_error(root, "the provider's stream failed", err);
        goto out;
    }
    if (strcmp(type, "response.failed") == 0) {
        rc = native_error(cJSON_GetObjectItemCaseSensitive(response, "error"),
                          "the provider failed the response", err);
        goto out;
    }
    if (in_list(type, native_skipped, ARRAY_LEN(native_skipped))) {
        goto out;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "sequence_number");
    if ((cJSON_IsObject(response) &&
         responses_normalize(response, s->call->input, s->id, s->created_s) != 0) ||
        cJSON_AddNumberToObject(root, "sequence_number", (double)s->seq) == NULL) {
        rc = adapter_oom(err);
        goto out;
    }
    s->seq++;
    if (in_list(type, native_terminal, ARRAY_LEN(native_terminal))) {
        if (!cJSON_IsObject(response) || (s->final = cJSON_Duplicate(response, true)) == NULL) {
            rc = cJSON_IsObject(response)
                     ? adapter_oom(err)
                     : adapter_malformed(200, false, err, "a %s without its response", type);
            goto out;
        }
        s->usage = responses_usage_to_chat(cJSON_GetObjectItemCaseSensitive(response, "usage"));
        s->done = true;
        *done = true;
    }
    rc = emit(events, root) != 0 ? adapter_oom(err) : 0;
    root = NULL;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- the stream's life ---------------------------------------------------------------------- */

struct responses_stream *responses_stream_new(const struct adapter *ad,
                                              const struct adapter_call *call, const char *id,
                                              int64_t created_s)
{
    struct responses_stream *s;
    struct core_err err;

    if (ad == NULL || call == NULL || id == NULL) {
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return NULL;
    }
    s->ad = ad;
    s->call = call;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->created_s = created_s;
    s->native = responses_is_native(ad, call->target);
    s->reasoning_at = s->message_at = s->text_part = s->refusal_part = -1;
    if (s->native) {
        return s;
    }
    s->logprobs = responses_wants_logprobs(call->input);
    if (ad->stream_new == NULL || ad->stream_event == NULL || ad->stream_free == NULL ||
        responses_chat_call(call, &s->chat_body, &s->chat, &err) != 0 ||
        (s->dialect = ad->stream_new(&s->chat)) == NULL || (s->acc = adapter_accum_new()) == NULL ||
        (s->text_logprobs = cJSON_CreateArray()) == NULL) {
        responses_stream_free(s);
        return NULL;
    }
    return s;
}

int responses_stream_start(struct responses_stream *s, cJSON *events)
{
    int rc;

    if (s->started) {
        return 0;
    }
    s->started = true;
    rc = emit_response(
        s, events, "response.created",
        responses_object(s->call->input, s->id, s->created_s, RESPONSES_IN_PROGRESS, NULL));
    if (rc == 0) {
        rc = emit_response(
            s, events, "response.in_progress",
            responses_object(s->call->input, s->id, s->created_s, RESPONSES_IN_PROGRESS, NULL));
    }
    return rc;
}

int responses_stream_event(struct responses_stream *s, const char *event, const char *data,
                           size_t len, cJSON *events, bool *done, struct core_err *err)
{
    core_err_clear(err);
    if (s->done) {
        *done = true;
        return 0;
    }
    if (!s->started && responses_stream_start(s, events) != 0) {
        return adapter_oom(err);
    }
    return s->native ? native_event(s, event, data, len, events, done, err)
                     : translated_event(s, event, data, len, events, done, err);
}

int responses_stream_fail(struct responses_stream *s, const struct core_err *err, cJSON *events)
{
    cJSON *error = responses_error_json(err);
    cJSON *obj =
        error ? responses_object(s->call->input, s->id, s->created_s, RESPONSES_FAILED, error)
              : NULL;

    cJSON_Delete(error);
    s->done = true;
    return emit_response(s, events, "response.failed", obj);
}

int responses_stream_result(struct responses_stream *s, struct adapter_result *out)
{
    memset(out, 0, sizeof(*out));
    if (s->final == NULL) {
        return CORE_EINVAL;
    }
    out->result = cJSON_Duplicate(s->final, true);
    out->usage = s->usage ? cJSON_Duplicate(s->usage, true) : NULL;
    if (out->result == NULL || (s->usage != NULL && out->usage == NULL)) {
        adapter_result_cleanup(out);
        return CORE_ENOMEM;
    }
    out->outcome = ADAPTER_DONE;
    return 0;
}

void responses_stream_free(struct responses_stream *s)
{
    if (s == NULL) {
        return;
    }
    if (s->dialect != NULL) {
        s->ad->stream_free(s->dialect);
    }
    adapter_accum_free(s->acc);
    cJSON_Delete(s->chat_body);
    cJSON_Delete(s->final);
    cJSON_Delete(s->usage);
    cJSON_Delete(s->text_logprobs);
    for (size_t i = 0; i < s->n_tools; i++) {
        free(s->tools[i].call_id);
        free(s->tools[i].name);
        cJSON_Delete(s->tools[i].extra);
        free(s->tools[i].args.p);
    }
    free(s->tools);
    free(s->reasoning.p);
    free(s->text.p);
    free(s->refusal.p);
    free(s);
}
