/*
 * tests/mock/anthropic.c — the Anthropic Messages dialect at /anthropic/v1/messages: x-api-key
 * auth, a required anthropic-version header and max_tokens, text or tool_use answers (a tool forced
 * by tool_choice answers with a value of its input_schema, as structured output through a tool
 * does), the real streaming event sequence, and {"type":"error","error":{type,message}} errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/mock/mock.h"

static const char *anthropic_error_type(int status)
{
    static const struct {
        int status;
        const char *type;
    } types[] = {
        {400, "invalid_request_error"}, {401, "authentication_error"},
        {402, "billing_error"},         {403, "permission_error"},
        {404, "not_found_error"},       {413, "request_too_large"},
        {429, "rate_limit_error"},      {500, "api_error"},
        {504, "timeout_error"},         {529, "overloaded_error"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (types[i].status == status) {
            return types[i].type;
        }
    }
    return status >= 500 ? "api_error" : "invalid_request_error";
}

static int anthropic_error(struct exchange *x, int status, const char *type, const char *message,
                           const char *code)
{
    struct evbuffer *out = mock_out_body(x);
    (void)code;
    if (status == 429) {
        faults_retry_after_header(x);
    }
    evbuffer_drain(out, (size_t)-1);
    evbuffer_add_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
                        type != NULL ? type : anthropic_error_type(status));
    mock_json_string(out, message);
    evbuffer_add_printf(out, "},\"request_id\":\"req_mock_%llu\"}", x->seq);
    return status;
}

static int anthropic_auth(struct exchange *x)
{
    const char *key = x->m->api_key;
    const char *got = mock_in_header(x, "x-api-key");
    if (key == NULL || (got != NULL && strcmp(got, key) == 0)) {
        return ANSWER_PASS;
    }
    return anthropic_error(x, 401, NULL, "invalid x-api-key", NULL);
}

/* 429 with retry-after and anthropic-ratelimit-requests-* (reset as an RFC 3339 time). */
static int anthropic_rate_limited(struct exchange *x, double reset_s)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%.0f", ceil(x->m->config.rate_limit_rps));
    mock_out_header(x, "anthropic-ratelimit-requests-limit", buf);
    mock_out_header(x, "anthropic-ratelimit-requests-remaining", "0");
    int64_t at = mock_wall_ms() + (int64_t)ceil(reset_s * 1000.0);
    mock_iso8601(buf, sizeof(buf), at - at % 1000);
    strcpy(buf + 19, "Z"); /* whole seconds, as Anthropic sends them */
    mock_out_header(x, "anthropic-ratelimit-requests-reset", buf);
    return anthropic_error(x, 429, NULL,
                           "Number of requests has exceeded your per-minute rate limit.", NULL);
}

const struct dialect dialect_anthropic = {
    .name = "anthropic",
    .request_id_header = "request-id",
    .auth = anthropic_auth,
    .error = anthropic_error,
    .rate_limited = anthropic_rate_limited,
    .broken_body = "{\"id\":\"msg_broken\",\"type\":\"message\",\"content\":[{",
};

/* Adds content (a string, or blocks with "text") to the prompt, echoing if asked. */
static void content_scan(const cJSON *content, struct mock_reply *r, bool echo, bool *tool_result)
{
    if (cJSON_IsString(content)) {
        size_t n = strlen(content->valuestring);
        r->prompt_bytes += echo ? 0 : n;
        if (echo) {
            mock_reply_echo(r, content->valuestring, n);
        }
        return;
    }
    const cJSON *block;
    cJSON_ArrayForEach(block, content)
    {
        const char *type = mock_json_str(block, "type", "");
        if (strcmp(type, "tool_result") == 0) {
            *tool_result = true;
            content_scan(cJSON_GetObjectItemCaseSensitive(block, "content"), r, echo, tool_result);
            continue;
        }
        const char *text = mock_json_str(block, "text", NULL);
        if (text != NULL) {
            size_t n = strlen(text);
            r->prompt_bytes += echo ? 0 : n;
            if (echo) {
                mock_reply_echo(r, text, n);
            }
        }
    }
}

struct messages {
    struct exchange *x;
    const char *model;
    const char *tool;       /* NULL: a text answer */
    const char *tool_input; /* the tool's input as JSON text */
    const char *stop_reason;
    long long input, output;
    struct mock_reply reply;
};

static const char tool_input[] = "{\"q\":\"mock\"}";

static void usage_json(struct evbuffer *out, long long input, long long output)
{
    evbuffer_add_printf(out,
                        "{\"input_tokens\":%lld,\"output_tokens\":%lld,"
                        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}",
                        input, output);
}

static void messages_plain(struct evbuffer *out, const struct messages *c)
{
    evbuffer_add_printf(out,
                        "{\"id\":\"msg_mock_%llu\",\"type\":\"message\","
                        "\"role\":\"assistant\",\"model\":",
                        c->x->seq);
    mock_json_string(out, c->model);
    if (c->tool != NULL) {
        evbuffer_add_printf(out,
                            ",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_mock_%llu\","
                            "\"name\":",
                            c->x->seq);
        mock_json_string(out, c->tool);
        evbuffer_add_printf(out, ",\"input\":%s}]", c->tool_input);
    } else {
        evbuffer_add_printf(out, ",\"content\":[{\"type\":\"text\",\"text\":\"");
        mock_json_escape(out, c->reply.text, c->reply.len);
        evbuffer_add_printf(out, "\"}]");
    }
    evbuffer_add_printf(
        out, ",\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":", c->stop_reason);
    usage_json(out, c->input, c->output);
    evbuffer_add_printf(out, "}");
}

static void event_open(struct evbuffer *out, const char *name)
{
    evbuffer_add_printf(out, "event: %s\ndata: {\"type\":\"%s\"", name, name);
}

static void event_close(struct evbuffer *out, struct exchange *x)
{
    evbuffer_add_printf(out, "}\n\n");
    mock_stream_mark(x);
}

/*
 * message_start, content_block_start, ping, content_block_delta ×N (text_delta, or
 * input_json_delta for a tool), content_block_stop, message_delta, message_stop.
 */
static int messages_stream(struct messages *c)
{
    struct exchange *x = c->x;
    struct evbuffer *out = mock_stream_open(x, "text/event-stream");
    size_t ends[MOCK_STREAM_PIECES];
    if (out == NULL) {
        return anthropic_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    event_open(out, "message_start");
    evbuffer_add_printf(out,
                        ",\"message\":{\"id\":\"msg_mock_%llu\",\"type\":\"message\","
                        "\"role\":\"assistant\",\"model\":",
                        x->seq);
    mock_json_string(out, c->model);
    evbuffer_add_printf(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                             "\"usage\":");
    usage_json(out, c->input, 1);
    evbuffer_add_printf(out, "}");
    event_close(out, x);

    event_open(out, "content_block_start");
    if (c->tool != NULL) {
        evbuffer_add_printf(out,
                            ",\"index\":0,\"content_block\":{\"type\":\"tool_use\","
                            "\"id\":\"toolu_mock_%llu\",\"name\":",
                            x->seq);
        mock_json_string(out, c->tool);
        evbuffer_add_printf(out, ",\"input\":{}}");
    } else {
        evbuffer_add_printf(out,
                            ",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}");
    }
    event_close(out, x);
    event_open(out, "ping");
    event_close(out, x);

    const char *text = c->tool != NULL ? c->tool_input : c->reply.text;
    size_t len = c->tool != NULL ? strlen(c->tool_input) : c->reply.len;
    size_t n = mock_split(text, len, c->tool != NULL ? 2 : MOCK_STREAM_PIECES, ends);
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
        event_open(out, "content_block_delta");
        evbuffer_add_printf(out, c->tool != NULL
                                     ? ",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
                                       "\"partial_json\":\""
                                     : ",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                                       "\"text\":\"");
        mock_json_escape(out, text + start, ends[i] - start);
        evbuffer_add_printf(out, "\"}");
        event_close(out, x);
    }
    event_open(out, "content_block_stop");
    evbuffer_add_printf(out, ",\"index\":0");
    event_close(out, x);
    event_open(out, "message_delta");
    evbuffer_add_printf(out,
                        ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                        "\"usage\":{\"output_tokens\":%lld}",
                        c->stop_reason, c->output);
    event_close(out, x);
    event_open(out, "message_stop");
    event_close(out, x);
    return 200;
}

/* The element of tools named name, or NULL. */
static const cJSON *tool_named(const cJSON *tools, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        if (strcmp(mock_json_str(t, "name", ""), name) == 0) {
            return t;
        }
    }
    return NULL;
}

/*
 * Anthropic's checks of tools and tool_choice: every tool has a name and an object input_schema
 * of type object, and a tool_choice of type tool names one of them. NULL when they pass, else the
 * message of the 400.
 */
static const char *tools_invalid(const cJSON *root)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
        if (mock_json_str(t, "name", NULL) == NULL) {
            return "tools: name: Field required";
        }
        if (strcmp(mock_json_str(schema, "type", ""), "object") != 0) {
            return "tools: input_schema: type: Input should be 'object'";
        }
    }
    if (strcmp(mock_json_str(choice, "type", ""), "tool") == 0 &&
        tool_named(tools, mock_json_str(choice, "name", "")) == NULL) {
        return "tool_choice: the tool named by tool_choice is not in tools";
    }
    return NULL;
}

/*
 * The tool to call, or NULL: the first tool (or the one tool_choice names) unless tool_choice is
 * none or the last user turn carries a tool_result (so agent loops end). *forced: tool_choice
 * named it (type tool), so it answers with a value of its input_schema.
 */
static const char *messages_tool(const cJSON *root, bool tool_result, const cJSON **forced)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    const char *choice_type = mock_json_str(choice, "type", "auto");
    *forced = NULL;
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0 || tool_result ||
        strcmp(choice_type, "none") == 0) {
        return NULL;
    }
    if (strcmp(choice_type, "tool") == 0) {
        *forced = tool_named(tools, mock_json_str(choice, "name", ""));
        return mock_json_str(*forced, "name", NULL);
    }
    return mock_json_str(cJSON_GetArrayItem(tools, 0), "name", "tool");
}

/* POST /anthropic/v1/messages */
int anthropic_messages(struct exchange *x)
{
    if (mock_in_header(x, "anthropic-version") == NULL) {
        return anthropic_error(x, 400, NULL, "anthropic-version: header is required", NULL);
    }
    cJSON *root = mock_body_json(x);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    const char *bad = NULL;
    if (!cJSON_IsObject(root)) {
        bad = "There was an error parsing the body of your request.";
    } else if (mock_json_str(root, "model", NULL) == NULL) {
        bad = "model: Field required";
    } else if (!cJSON_IsNumber(max) || max->valuedouble < 1) {
        bad = cJSON_IsNumber(max) ? "max_tokens: Input should be greater than or equal to 1"
                                  : "max_tokens: Field required";
    } else if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        bad = "messages: Field required";
    } else {
        bad = tools_invalid(root);
    }
    if (bad != NULL) {
        cJSON_Delete(root);
        return anthropic_error(x, 400, NULL, bad, NULL);
    }
    struct messages c = {
        .x = x, .model = mock_json_str(root, "model", ""), .stop_reason = "end_turn"};
    bool tool_result = false, ignored = false;
    const cJSON *msg, *last_user = NULL;
    mock_reply_init(&c.reply);
    content_scan(cJSON_GetObjectItemCaseSensitive(root, "system"), &c.reply, false, &ignored);
    cJSON_ArrayForEach(msg, messages)
    {
        if (strcmp(mock_json_str(msg, "role", ""), "user") == 0) {
            last_user = msg;
        }
        content_scan(cJSON_GetObjectItemCaseSensitive(msg, "content"), &c.reply, false, &ignored);
    }
    if (last_user != NULL) {
        content_scan(cJSON_GetObjectItemCaseSensitive(last_user, "content"), &c.reply, true,
                     &tool_result);
    }
    const cJSON *forced;
    char *sampled = NULL;
    c.tool = messages_tool(root, tool_result, &forced);
    c.tool_input = tool_input;
    if (forced != NULL) {
        cJSON *value = mock_schema_sample(cJSON_GetObjectItemCaseSensitive(forced, "input_schema"));
        sampled = value != NULL ? cJSON_PrintUnformatted(value) : NULL;
        cJSON_Delete(value);
        if (sampled == NULL) {
            cJSON_Delete(root);
            return anthropic_error(x, 500, NULL, "mock: out of memory", NULL);
        }
        c.tool_input = sampled;
    }
    c.input = mock_tokens(c.reply.prompt_bytes);
    c.input = c.input < 1 ? 1 : c.input;
    if (c.tool != NULL) {
        c.output = mock_tokens(strlen(c.tool) + strlen(c.tool_input));
        c.stop_reason = "tool_use";
    } else {
        c.output = mock_tokens(c.reply.len);
    }
    if ((double)c.output > max->valuedouble) {
        c.output = (long long)max->valuedouble;
        c.stop_reason = "max_tokens";
    }
    int status = 200;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"))) {
        status = messages_stream(&c);
    } else {
        messages_plain(mock_out_body(x), &c);
    }
    free(sampled);
    cJSON_Delete(root);
    return status;
}
