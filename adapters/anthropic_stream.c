/*
 * adapters/anthropic_stream.c — Anthropic's stream events (message_start, content_block_*,
 * message_delta, message_stop) as OpenAI chat.completion.chunk objects: text as content deltas,
 * tool_use blocks as tool calls by index, the stop reason as finish_reason, and a closing usage
 * chunk. The response_format tool's input (anthropic.h) streams as content, not as a tool call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/anthropic.h"
#include "adapters/dialect.h"

/* Content blocks one streamed message may open; a stream past this is refused as malformed. */
#define ANTHROPIC_MAX_BLOCKS 4096
/*
 * tool_index of a block that is no tool call, of the response_format tool's block, and of a
 * second use of that tool, dropped: only the first is the answer (two JSON texts would not parse).
 */
#define BLOCK_OTHER (-1)
#define BLOCK_FORMAT (-2)
#define BLOCK_DROPPED (-3)

/* Per-call state of a stream: what message_start said and what later events refer back to. */
struct anthropic_stream {
    char *id;         /* message id, "" until message_start */
    char *model;      /* from message_start; the deployment's model until then */
    bool started;     /* message_start seen */
    bool finished;    /* message_stop seen */
    char *format;     /* the response_format tool's name; NULL when the client asked for none */
    bool format_seen; /* that tool's block was opened */
    int n_tools;      /* tool_use blocks opened so far: the next tool_calls index */
    int *tool_index;  /* per content block index: its tool_calls index, or BLOCK_* */
    size_t n_blocks;  /* entries in tool_index */
    double usage[ANTHROPIC_USAGE_N];
};

void *anthropic_stream_new(const struct adapter_call *call)
{
    struct anthropic_stream *s = calloc(1, sizeof(*s));
    const char *model = (call != NULL && call->target != NULL) ? call->target->model : NULL;
    const char *format = anthropic_format_tool(call != NULL ? call->input : NULL);

    if (s == NULL) {
        return NULL;
    }
    s->id = strdup("");
    s->model = strdup(model != NULL ? model : "");
    s->format = format != NULL ? strdup(format) : NULL;
    if (s->id == NULL || s->model == NULL || (format != NULL && s->format == NULL)) {
        anthropic_stream_free(s);
        return NULL;
    }
    return s;
}

void anthropic_stream_free(void *state)
{
    struct anthropic_stream *s = state;

    if (s == NULL) {
        return;
    }
    free(s->id);
    free(s->model);
    free(s->format);
    free(s->tool_index);
    free(s);
}

/*
 * A chunk for this stream around delta (taken; NULL for a usage chunk, which has no choices).
 * created is 0: adapters have no clock, the worker stamps it. NULL on OOM.
 */
static cJSON *stream_chunk(const struct anthropic_stream *s, cJSON *delta, const char *finish)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *choices =
        delta != NULL ? anthropic_choices("delta", delta, finish) : cJSON_CreateArray();

    if (c == NULL || choices == NULL || !adapter_json_put(c, "id", cJSON_CreateString(s->id)) ||
        !adapter_json_put(c, "object", cJSON_CreateString("chat.completion.chunk")) ||
        !adapter_json_put(c, "created", cJSON_CreateNumber(0)) ||
        !adapter_json_put(c, "model", cJSON_CreateString(s->model))) {
        cJSON_Delete(choices);
        cJSON_Delete(c);
        return NULL;
    }
    if (!adapter_json_put(c, "choices", choices)) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* A delta {"tool_calls":[call]} (call taken). NULL on OOM. */
static cJSON *tool_delta(cJSON *call)
{
    cJSON *calls = cJSON_CreateArray();

    if (!adapter_json_push(calls, call)) {
        cJSON_Delete(calls);
        return NULL;
    }
    return adapter_json_wrap("tool_calls", calls);
}

/*
 * *chunk = a chunk for this stream around delta (taken). A NULL delta is a failed allocation, not
 * a usage chunk. Returns 0 or CORE_ENOMEM.
 */
static int delta_chunk(const struct anthropic_stream *s, cJSON *delta, const char *finish,
                       cJSON **chunk)
{
    if (delta == NULL) {
        return CORE_ENOMEM;
    }
    *chunk = stream_chunk(s, delta, finish);
    return *chunk != NULL ? 0 : CORE_ENOMEM;
}

/* The content block index an event refers to, or -1 when it is missing or out of range. */
static int block_index(const cJSON *ev)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(ev, "index");

    if (!cJSON_IsNumber(i) || i->valuedouble < 0 || i->valuedouble >= ANTHROPIC_MAX_BLOCKS ||
        i->valuedouble != floor(i->valuedouble)) {
        return -1;
    }
    return (int)i->valuedouble;
}

/* Records block idx as tool call tool (or a BLOCK_* kind). false on OOM. */
static bool set_block(struct anthropic_stream *s, int idx, int tool)
{
    if ((size_t)idx >= s->n_blocks) {
        int *grown = realloc(s->tool_index, ((size_t)idx + 1) * sizeof(*grown));
        if (grown == NULL) {
            return false;
        }
        for (size_t k = s->n_blocks; k <= (size_t)idx; k++) {
            grown[k] = BLOCK_OTHER;
        }
        s->tool_index = grown;
        s->n_blocks = (size_t)idx + 1;
    }
    s->tool_index[idx] = tool;
    return true;
}

static int tool_of_block(const struct anthropic_stream *s, int idx)
{
    return (idx >= 0 && (size_t)idx < s->n_blocks) ? s->tool_index[idx] : BLOCK_OTHER;
}

/* message_start: the id, model and first usage counts, and the chunk that names the role. */
static int on_message_start(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev, "message");
    const char *id = adapter_json_str(msg, "id");
    const char *model = adapter_json_str(msg, "model");

    if (id != NULL) {
        char *copy = strdup(id);
        if (copy == NULL) {
            return CORE_ENOMEM;
        }
        free(s->id);
        s->id = copy;
    }
    if (model != NULL) {
        char *copy = strdup(model);
        if (copy == NULL) {
            return CORE_ENOMEM;
        }
        free(s->model);
        s->model = copy;
    }
    anthropic_usage_merge(s->usage, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
    s->started = true;
    return delta_chunk(s, adapter_json_wrap("role", cJSON_CreateString("assistant")), NULL, chunk);
}

/*
 * content_block_start: a tool_use block opens a tool call, except the response_format tool's,
 * whose input streams as content; text blocks start empty.
 */
static int on_block_start(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(ev, "content_block");
    const char *type = adapter_json_str(block, "type");
    const char *text = adapter_json_str(block, "text");
    const char *id = adapter_json_str(block, "id");
    const char *name = adapter_json_str(block, "name");
    int idx = block_index(ev);
    cJSON *call;

    if (idx < 0) {
        return CORE_EUPSTREAM;
    }
    if (type == NULL || strcmp(type, "tool_use") != 0) {
        if (!set_block(s, idx, BLOCK_OTHER)) {
            return CORE_ENOMEM;
        }
        if (type == NULL || strcmp(type, "text") != 0 || text == NULL || text[0] == '\0') {
            return 0;
        }
        return delta_chunk(s, adapter_json_wrap("content", cJSON_CreateString(text)), NULL, chunk);
    }
    if (s->format != NULL && name != NULL && strcmp(name, s->format) == 0) {
        int kind = s->format_seen ? BLOCK_DROPPED : BLOCK_FORMAT;
        s->format_seen = true;
        return set_block(s, idx, kind) ? 0 : CORE_ENOMEM;
    }
    if (!set_block(s, idx, s->n_tools)) {
        return CORE_ENOMEM;
    }
    call = adapter_tool_call_json(s->n_tools, id ? id : "", name ? name : "", "");
    if (call == NULL) {
        return CORE_ENOMEM;
    }
    s->n_tools++;
    return delta_chunk(s, tool_delta(call), NULL, chunk);
}

/*
 * content_block_delta: text_delta as content, input_json_delta as a piece of the tool call's
 * arguments (of the content, for the response_format tool). Other deltas (thinking, signatures,
 * citations) have no chat.completion form.
 */
static int on_block_delta(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "delta");
    const char *type = adapter_json_str(d, "type");
    int idx = block_index(ev);
    int tool = tool_of_block(s, idx);
    const char *text;
    cJSON *delta = NULL;
    cJSON *call;

    if (idx < 0 || type == NULL) {
        return CORE_EUPSTREAM;
    }
    if (strcmp(type, "text_delta") == 0) {
        if ((text = adapter_json_str(d, "text")) == NULL) {
            return CORE_EUPSTREAM;
        }
        if (text[0] == '\0') {
            return 0;
        }
        delta = adapter_json_wrap("content", cJSON_CreateString(text));
    } else if (strcmp(type, "input_json_delta") == 0) {
        if ((text = adapter_json_str(d, "partial_json")) == NULL || tool == BLOCK_OTHER) {
            return CORE_EUPSTREAM;
        }
        if (text[0] == '\0' || tool == BLOCK_DROPPED) {
            return 0;
        }
        if (tool == BLOCK_FORMAT) {
            return delta_chunk(s, adapter_json_wrap("content", cJSON_CreateString(text)), NULL,
                               chunk);
        }
        call = cJSON_CreateObject();
        if (call == NULL || !adapter_json_put(call, "index", cJSON_CreateNumber(tool)) ||
            !adapter_json_put(call, "function",
                              adapter_json_wrap("arguments", cJSON_CreateString(text)))) {
            cJSON_Delete(call);
            return CORE_ENOMEM;
        }
        delta = tool_delta(call);
    } else {
        return 0;
    }
    return delta_chunk(s, delta, NULL, chunk);
}

/* message_delta: the stop reason as a finish_reason chunk; usage counts so far. */
static int on_message_delta(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const char *stop =
        adapter_json_str(cJSON_GetObjectItemCaseSensitive(ev, "delta"), "stop_reason");

    anthropic_usage_merge(s->usage, cJSON_GetObjectItemCaseSensitive(ev, "usage"));
    if (stop == NULL) {
        return 0;
    }
    return delta_chunk(s, cJSON_CreateObject(),
                       anthropic_finish_reason(stop, s->format_seen && s->n_tools == 0), chunk);
}

/* message_stop: the usage chunk (choices: [], as OpenAI's include_usage sends it). */
static int on_message_stop(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    cJSON *usage = anthropic_openai_usage(s->usage);

    if (usage == NULL || (*chunk = stream_chunk(s, NULL, NULL)) == NULL) {
        cJSON_Delete(usage);
        return CORE_ENOMEM;
    }
    if (!adapter_json_put(*chunk, "usage", usage)) {
        return CORE_ENOMEM;
    }
    s->finished = true;
    return 0;
}

/*
 * Stream events by type. needs_start: only meaningful after message_start, which names the
 * message every chunk carries. A NULL handler makes no chunk (content_block_stop, ping). The
 * error event is not here: it ends the stream with an error.
 */
static const struct {
    const char *type;
    bool needs_start;
    int (*handle)(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk);
} anthropic_stream_events[] = {
    {"message_start", false, on_message_start},
    {"content_block_start", true, on_block_start},
    {"content_block_delta", true, on_block_delta},
    {"content_block_stop", true, NULL},
    {"message_delta", true, on_message_delta},
    {"message_stop", true, on_message_stop},
    {"ping", false, NULL},
};

/*
 * One Anthropic stream event as zero or one OpenAI chunks. The event's type is read from its data
 * (Anthropic repeats the SSE event name there), falling back to the event name. Unknown event
 * types are skipped: Anthropic's versioning policy says new ones may appear. Unreadable data,
 * content events before message_start and blocks referred to out of range are malformed
 * (retryable, as a cut reply is).
 */
int anthropic_stream_event(void *state, const char *event, const char *data, size_t len,
                           cJSON *chunks, bool *done, struct core_err *err)
{
    struct anthropic_stream *s = state;
    cJSON *ev = NULL;
    cJSON *chunk = NULL;
    const char *type;
    int rc = 0;

    core_err_clear(err);
    if (s->finished) {
        *done = true;
        goto out;
    }
    ev = adapter_json_parse(data, len);
    if (!cJSON_IsObject(ev)) {
        rc = adapter_malformed_body(200, len, "a stream event is not a JSON object", err);
        goto out;
    }
    type = adapter_json_str(ev, "type");
    if (type == NULL) {
        type = event != NULL ? event : "";
    }
    if (strcmp(type, "error") == 0) {
        rc = anthropic_inline_error(ev, err);
        goto out;
    }
    for (size_t i = 0; i < ARRAY_LEN(anthropic_stream_events); i++) {
        if (strcmp(type, anthropic_stream_events[i].type) != 0) {
            continue;
        }
        if (anthropic_stream_events[i].needs_start && !s->started) {
            rc = CORE_EUPSTREAM;
        } else if (anthropic_stream_events[i].handle != NULL) {
            rc = anthropic_stream_events[i].handle(s, ev, &chunk);
        }
        break;
    }
    if (rc == CORE_EUPSTREAM) {
        rc = adapter_malformed_body(200, len, "an unexpected stream event", err);
        goto out;
    }
    if (rc != 0) {
        rc = adapter_oom(err);
        goto out;
    }
    if (chunk != NULL && !adapter_json_push(chunks, chunk)) {
        chunk = NULL;
        rc = adapter_oom(err);
        goto out;
    }
    chunk = NULL;
    *done = s->finished;
out:
    cJSON_Delete(chunk);
    cJSON_Delete(ev);
    return rc;
}
