/*
 * tests/mock/responses.c — OpenAI's Responses API at POST /v1/responses, plain and streamed.
 *
 * It answers what the mock's chat completions would answer for the same conversation, in the
 * Responses shapes: the reply text is "mock reply: " + the last user message's text; function
 * tools give a function_call item under chat's rule (the first function tool, or the one
 * tool_choice names; none with tool_choice "none" or when the input ends with a
 * function_call_output); text.format json_schema gives the schema sampler's JSON, json_object
 * {"reply": <the echo>}; max_output_tokens below the answer's tokens gives status "incomplete"
 * with incomplete_details.reason "max_output_tokens", as max_completion_tokens gives
 * finish_reason "length" in chat. Usage is in the Responses names.
 *
 * The mock keeps no state, so it plays a deployment called with `store: false`:
 * `previous_response_id` is a 404 (OpenAI's answer for an id it does not hold), `background:
 * true` a 400, and an unknown top-level field a 400 naming it, as OpenAI answers — a client that
 * forwards its own extension fields upstream is caught here. Unlike chat, the answer is built
 * with cJSON: it echoes the request's settings, and it is not on the benchmark's hot path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/mock/mock.h"

static const char tool_args[] = "{\"q\":\"mock\"}";

/*
 * The request's settings the response object echoes, each with the value OpenAI shows when the
 * request did not set it (JSON text). With request_only below, the top-level fields the mock
 * accepts (known_field); any other is a 400.
 */
static const struct {
    const char *name;
    const char *absent;
} echoed[] = {
    {"background", "false"},
    {"instructions", "null"},
    {"max_output_tokens", "null"},
    {"metadata", "{}"},
    {"parallel_tool_calls", "true"},
    {"previous_response_id", "null"},
    {"reasoning", "{\"effort\":null,\"summary\":null}"},
    {"service_tier", "\"default\""},
    {"store", "true"},
    {"temperature", "1"},
    {"text", "{\"format\":{\"type\":\"text\"}}"},
    {"tool_choice", "\"auto\""},
    {"tools", "[]"},
    {"top_p", "1"},
    {"truncation", "\"disabled\""},
    {"user", "null"},
};

/* OpenAI's other top-level request fields: accepted, not echoed. */
static const char *const request_only[] = {
    "model",
    "input",
    "stream",
    "stream_options",
    "include",
    "max_tool_calls",
    "top_logprobs",
    "safety_identifier",
    "prompt_cache_key",
    "prompt",
    "conversation",
};

/* One answer being made: what the conversation asks for and what the mock says. */
struct answer {
    struct exchange *x;
    const cJSON *req;
    const char *model;
    const char *tool; /* NULL: a text answer */
    struct mock_reply reply;
    const char *text; /* the message's text: the echo, or the JSON text.format asked for */
    size_t text_len;
    long long created, input_tokens, output_tokens;
    bool incomplete;
    char resp_id[40], msg_id[40], fc_id[40], call_id[40];
};

static bool known_field(const char *name)
{
    for (size_t i = 0; i < sizeof(echoed) / sizeof(echoed[0]); i++) {
        if (strcmp(echoed[i].name, name) == 0) {
            return true;
        }
    }
    for (size_t i = 0; i < sizeof(request_only) / sizeof(request_only[0]); i++) {
        if (strcmp(request_only[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds a content (a string, or parts with "text") to the prompt, or to the echo. */
static void content_scan(const cJSON *content, struct mock_reply *r, bool echo)
{
    if (cJSON_IsString(content)) {
        size_t n = strlen(content->valuestring);
        if (echo) {
            mock_reply_echo(r, content->valuestring, n);
        } else {
            r->prompt_bytes += n;
        }
        return;
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const char *text = mock_json_str(part, "text", NULL);
        if (text == NULL) {
            continue;
        }
        if (echo) {
            mock_reply_echo(r, text, strlen(text));
        } else {
            r->prompt_bytes += strlen(text);
        }
    }
}

/* An input item's type: its "type", or "message" for the short form {role, content}. */
static const char *item_type(const cJSON *item)
{
    return mock_json_str(item, "type", "message");
}

/*
 * Reads the conversation: instructions and every message's text count in the prompt (and a
 * function_call_output's output, as a tool message's content counts in chat); the echo is the
 * last user message's text. *last is the last input item (NULL for a string input).
 */
static void input_scan(struct answer *a, const cJSON *input, const cJSON **last)
{
    const cJSON *item, *last_user = NULL;
    const char *instructions = mock_json_str(a->req, "instructions", NULL);
    *last = NULL;
    if (instructions != NULL) {
        a->reply.prompt_bytes += strlen(instructions);
    }
    if (cJSON_IsString(input)) {
        content_scan(input, &a->reply, false);
        content_scan(input, &a->reply, true);
        return;
    }
    cJSON_ArrayForEach(item, input)
    {
        const char *type = item_type(item);
        if (strcmp(type, "message") == 0) {
            content_scan(cJSON_GetObjectItemCaseSensitive(item, "content"), &a->reply, false);
            if (strcmp(mock_json_str(item, "role", ""), "user") == 0) {
                last_user = item;
            }
        } else if (strcmp(type, "function_call_output") == 0) {
            content_scan(cJSON_GetObjectItemCaseSensitive(item, "output"), &a->reply, false);
        }
        *last = item;
    }
    if (last_user != NULL) {
        content_scan(cJSON_GetObjectItemCaseSensitive(last_user, "content"), &a->reply, true);
    }
}

/*
 * The function to call, or NULL for a text answer — chat's rule: the function tool_choice
 * names, else the first function tool; none when tool_choice is "none", when no tool is a
 * function, or when the input ends with a function_call_output (so agent loops end).
 */
static const char *responses_tool(const cJSON *req, const cJSON *last)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    const cJSON *tool;
    if (!cJSON_IsArray(tools) ||
        (cJSON_IsString(choice) && strcmp(choice->valuestring, "none") == 0) ||
        (last != NULL && strcmp(item_type(last), "function_call_output") == 0)) {
        return NULL;
    }
    const char *named = strcmp(mock_json_str(choice, "type", ""), "function") == 0
                            ? mock_json_str(choice, "name", NULL)
                            : NULL;
    cJSON_ArrayForEach(tool, tools)
    {
        if (strcmp(mock_json_str(tool, "type", ""), "function") == 0) {
            return named != NULL ? named : mock_json_str(tool, "name", "tool");
        }
    }
    return NULL;
}

/*
 * text.format: json_schema answers a value of its schema, json_object {"reply": <the echo>}
 * (*json_text, caller frees with cJSON_free). Returns 0, or -1 for an unknown type.
 */
static int text_format(struct answer *a, char **json_text)
{
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(a->req, "text"), "format");
    const char *type = mock_json_str(format, "type", "text");
    cJSON *v = NULL;
    if (strcmp(type, "json_schema") == 0) {
        v = mock_schema_sample(cJSON_GetObjectItemCaseSensitive(format, "schema"));
    } else if (strcmp(type, "json_object") == 0) {
        if ((v = cJSON_CreateObject()) != NULL) {
            cJSON_AddItemToObject(v, "reply", cJSON_CreateString(a->reply.text));
        }
    } else if (strcmp(type, "text") != 0) {
        return -1;
    }
    *json_text = v != NULL ? cJSON_PrintUnformatted(v) : NULL;
    cJSON_Delete(v);
    if (*json_text != NULL) {
        a->text = *json_text;
        a->text_len = strlen(*json_text);
    }
    return 0;
}

/* An output_text part: empty as announced, with the text when done. */
static cJSON *text_part(const struct answer *a, bool done)
{
    cJSON *part = cJSON_CreateObject();
    if (part != NULL) {
        cJSON_AddStringToObject(part, "type", "output_text");
        cJSON_AddItemToObject(part, "annotations", cJSON_CreateArray());
        cJSON_AddItemToObject(part, "logprobs", cJSON_CreateArray());
        cJSON_AddStringToObject(part, "text", done ? a->text : "");
    }
    return part;
}

/* The output item in its final state (done: completed/incomplete) or as first announced. */
static cJSON *output_item(const struct answer *a, bool done)
{
    cJSON *item = cJSON_CreateObject();
    const char *status = !done ? "in_progress" : a->incomplete ? "incomplete" : "completed";
    if (item == NULL) {
        return NULL;
    }
    if (a->tool != NULL) {
        cJSON_AddStringToObject(item, "id", a->fc_id);
        cJSON_AddStringToObject(item, "type", "function_call");
        cJSON_AddStringToObject(item, "status", status);
        cJSON_AddStringToObject(item, "arguments", done ? tool_args : "");
        cJSON_AddStringToObject(item, "call_id", a->call_id);
        cJSON_AddStringToObject(item, "name", a->tool);
        return item;
    }
    cJSON_AddStringToObject(item, "id", a->msg_id);
    cJSON_AddStringToObject(item, "type", "message");
    cJSON_AddStringToObject(item, "status", status);
    cJSON_AddStringToObject(item, "role", "assistant");
    cJSON *content = cJSON_AddArrayToObject(item, "content");
    if (done && content != NULL) {
        cJSON_AddItemToArray(content, text_part(a, true));
    }
    return item;
}

static cJSON *usage_object(const struct answer *a)
{
    cJSON *u = cJSON_CreateObject();
    if (u == NULL) {
        return NULL;
    }
    cJSON_AddNumberToObject(u, "input_tokens", (double)a->input_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"), "cached_tokens", 0);
    cJSON_AddNumberToObject(u, "output_tokens", (double)a->output_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "output_tokens_details"), "reasoning_tokens",
                            0);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(a->input_tokens + a->output_tokens));
    return u;
}

/*
 * The response object: final (status completed or incomplete, the output item, usage) or as
 * the stream's first events show it (in_progress, no output, usage null). The request's
 * settings are echoed, OpenAI's defaults where it set none. NULL on OOM.
 */
static cJSON *response_object(const struct answer *a, bool final)
{
    cJSON *o = cJSON_CreateObject();
    const char *status = !final ? "in_progress" : a->incomplete ? "incomplete" : "completed";
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", a->resp_id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)a->created);
    cJSON_AddStringToObject(o, "status", status);
    if (final) {
        cJSON_AddNumberToObject(o, "completed_at", (double)a->created);
    } else {
        cJSON_AddNullToObject(o, "completed_at");
    }
    cJSON_AddNullToObject(o, "error");
    if (final && a->incomplete) {
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "incomplete_details"), "reason",
                                "max_output_tokens");
    } else {
        cJSON_AddNullToObject(o, "incomplete_details");
    }
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON *output = cJSON_AddArrayToObject(o, "output");
    if (final && output != NULL) {
        cJSON_AddItemToArray(output, output_item(a, true));
    }
    for (size_t i = 0; i < sizeof(echoed) / sizeof(echoed[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->req, echoed[i].name);
        /* the defaults are constants: NULL means OOM, and the key is then left out */
        cJSON *copy = v != NULL && !cJSON_IsNull(v) ? cJSON_Duplicate(v, true)
                                                    : cJSON_Parse(echoed[i].absent);
        cJSON_AddItemToObject(o, echoed[i].name, copy);
    }
    cJSON_AddItemToObject(o, "usage", final ? usage_object(a) : cJSON_CreateNull());
    return o;
}

/*
 * Appends one event, "event: T" + "data: {"type":T,"sequence_number":N,...ev's fields}" (type
 * first, as OpenAI writes it), numbering it; takes ev.
 */
static void stream_event(struct answer *a, struct evbuffer *out, int *seq, const char *type,
                         cJSON *ev)
{
    char *text = ev != NULL ? cJSON_PrintUnformatted(ev) : NULL;
    cJSON_Delete(ev);
    if (text == NULL) {
        return;
    }
    evbuffer_add_printf(out, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d%s%s\n\n",
                        type, type, (*seq)++, text[1] != '}' ? "," : "", text + 1);
    cJSON_free(text);
    mock_stream_mark(a->x);
}

/* A new event carrying item_id, output_index and (when content_index >= 0) content_index. */
static cJSON *item_event(const char *item_id, int content_index)
{
    cJSON *ev = cJSON_CreateObject();
    if (ev != NULL) {
        cJSON_AddStringToObject(ev, "item_id", item_id);
        cJSON_AddNumberToObject(ev, "output_index", 0);
        if (content_index >= 0) {
            cJSON_AddNumberToObject(ev, "content_index", content_index);
        }
    }
    return ev;
}

/* ev with value added under key (both may be NULL on OOM: value is freed, ev passed on). */
static cJSON *with(cJSON *ev, const char *key, cJSON *value)
{
    if (ev != NULL) {
        cJSON_AddItemToObject(ev, key, value);
    } else {
        cJSON_Delete(value);
    }
    return ev;
}

/*
 * The typed event stream, as OpenAI sends it: response.created, response.in_progress,
 * output_item.added, then for a message content_part.added, about 4 output_text.delta,
 * output_text.done, content_part.done — for a function call two
 * function_call_arguments.delta and .done — then output_item.done and response.completed (or
 * response.incomplete) with the final object. sequence_number counts from 0.
 */
static int responses_stream(struct answer *a)
{
    struct evbuffer *out = mock_stream_open(a->x, "text/event-stream");
    size_t ends[MOCK_STREAM_PIECES];
    int seq = 0;
    if (out == NULL) {
        return openai_error(a->x, 500, NULL, "mock: out of memory", NULL);
    }
    stream_event(a, out, &seq, "response.created",
                 with(cJSON_CreateObject(), "response", response_object(a, false)));
    stream_event(a, out, &seq, "response.in_progress",
                 with(cJSON_CreateObject(), "response", response_object(a, false)));
    cJSON *added = with(cJSON_CreateObject(), "item", output_item(a, false));
    if (added != NULL) {
        cJSON_AddNumberToObject(added, "output_index", 0);
    }
    stream_event(a, out, &seq, "response.output_item.added", added);

    if (a->tool != NULL) {
        size_t n = mock_split(tool_args, sizeof(tool_args) - 1, 2, ends);
        for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
            char piece[sizeof(tool_args)];
            snprintf(piece, sizeof(piece), "%.*s", (int)(ends[i] - start), tool_args + start);
            stream_event(a, out, &seq, "response.function_call_arguments.delta",
                         with(item_event(a->fc_id, -1), "delta", cJSON_CreateString(piece)));
        }
        cJSON *done = with(item_event(a->fc_id, -1), "arguments", cJSON_CreateString(tool_args));
        stream_event(a, out, &seq, "response.function_call_arguments.done",
                     with(done, "name", cJSON_CreateString(a->tool)));
    } else {
        stream_event(a, out, &seq, "response.content_part.added",
                     with(item_event(a->msg_id, 0), "part", text_part(a, false)));
        size_t n = mock_split(a->text, a->text_len, MOCK_STREAM_PIECES, ends);
        for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
            cJSON *delta = item_event(a->msg_id, 0);
            char *piece = strndup(a->text + start, ends[i] - start);
            delta = with(delta, "delta", piece != NULL ? cJSON_CreateString(piece) : NULL);
            free(piece);
            stream_event(a, out, &seq, "response.output_text.delta",
                         with(delta, "logprobs", cJSON_CreateArray()));
        }
        cJSON *done = with(item_event(a->msg_id, 0), "text", cJSON_CreateString(a->text));
        stream_event(a, out, &seq, "response.output_text.done",
                     with(done, "logprobs", cJSON_CreateArray()));
        stream_event(a, out, &seq, "response.content_part.done",
                     with(item_event(a->msg_id, 0), "part", text_part(a, true)));
    }
    cJSON *item_done = with(cJSON_CreateObject(), "item", output_item(a, true));
    if (item_done != NULL) {
        cJSON_AddNumberToObject(item_done, "output_index", 0);
    }
    stream_event(a, out, &seq, "response.output_item.done", item_done);
    stream_event(a, out, &seq, a->incomplete ? "response.incomplete" : "response.completed",
                 with(cJSON_CreateObject(), "response", response_object(a, true)));
    return 200;
}

/*
 * Checks what the mock refuses, in OpenAI's words: no JSON object, an unknown field, a missing
 * model or input, previous_response_id (the mock stores nothing: 404), background. Returns 0,
 * or the status of the error written.
 */
static int request_check(struct exchange *x, const cJSON *req)
{
    char message[160];
    const cJSON *field;
    if (!cJSON_IsObject(req)) {
        return openai_error(x, 400, NULL, "We could not parse the JSON body of your request.",
                            NULL);
    }
    cJSON_ArrayForEach(field, req)
    {
        if (!known_field(field->string)) {
            snprintf(message, sizeof(message), "Unknown parameter: '%.64s'.", field->string);
            return openai_error_param(x, 400, NULL, message, field->string, "unknown_parameter");
        }
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(req, "input");
    const char *previous = mock_json_str(req, "previous_response_id", NULL);
    if (mock_json_str(req, "model", NULL) == NULL) {
        return openai_error_param(x, 400, NULL, "Missing required parameter: 'model'.", "model",
                                  "missing_required_parameter");
    }
    if (!cJSON_IsString(input) && !cJSON_IsArray(input)) {
        return openai_error_param(x, 400, NULL, "Missing required parameter: 'input'.", "input",
                                  "missing_required_parameter");
    }
    if (previous != NULL) {
        snprintf(message, sizeof(message), "Previous response with id '%.64s' not found.",
                 previous);
        return openai_error_param(x, 404, NULL, message, "previous_response_id",
                                  "previous_response_not_found");
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "background"))) {
        return openai_error_param(x, 400, NULL,
                                  "mock: background mode is not simulated (the mock stores "
                                  "nothing)",
                                  "background", NULL);
    }
    return 0;
}

/* POST /v1/responses */
int openai_responses(struct exchange *x)
{
    cJSON *req = mock_body_json(x);
    struct answer a = {.x = x, .req = req, .created = (long long)time(NULL)};
    const cJSON *last;
    char *json_text = NULL;
    int status = request_check(x, req);
    if (status != 0) {
        goto out;
    }
    mock_reply_init(&a.reply);
    a.model = mock_json_str(req, "model", "mock-model");
    snprintf(a.resp_id, sizeof(a.resp_id), "resp_mock_%llu", x->seq);
    snprintf(a.msg_id, sizeof(a.msg_id), "msg_mock_%llu", x->seq);
    snprintf(a.fc_id, sizeof(a.fc_id), "fc_mock_%llu", x->seq);
    snprintf(a.call_id, sizeof(a.call_id), "call_mock_%llu", x->seq);
    input_scan(&a, cJSON_GetObjectItemCaseSensitive(req, "input"), &last);
    a.tool = responses_tool(req, last);
    a.text = a.reply.text;
    a.text_len = a.reply.len;
    if (text_format(&a, &json_text) < 0) {
        status = openai_error_param(x, 400, NULL,
                                    "Invalid value for 'text.format.type': must be text, "
                                    "json_object or json_schema.",
                                    "text.format.type", "invalid_value");
        goto out;
    }
    a.input_tokens = mock_tokens(a.reply.prompt_bytes);
    a.input_tokens = a.input_tokens < 1 ? 1 : a.input_tokens;
    a.output_tokens = a.tool != NULL ? mock_tokens(strlen(a.tool) + sizeof(tool_args) - 1)
                                     : mock_tokens(a.text_len);
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(req, "max_output_tokens");
    if (cJSON_IsNumber(max) && max->valuedouble >= 0 &&
        (double)a.output_tokens > max->valuedouble) {
        a.output_tokens = (long long)max->valuedouble;
        a.incomplete = true;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream"))) {
        status = responses_stream(&a);
    } else {
        cJSON *o = response_object(&a, true);
        status = o != NULL ? mock_out_json(x, 200, o)
                           : openai_error(x, 500, NULL, "mock: out of memory", NULL);
    }
out:
    cJSON_free(json_text);
    cJSON_Delete(req);
    return status;
}
