/*
 * tests/mock/openai.c — the OpenAI dialect at /v1: chat completions (plain, streamed, tool
 * calls), embeddings, image generations and edits. Videos are in videos.c, Responses in
 * responses.c. The image files an edit brings (here as multipart, at fal and Replicate as data:
 * URIs) are recorded for GET /_mock/edits, so a test can check the bytes that arrived.
 *
 * Success answers are written with printf into evbuffers rather than built with cJSON: chat is
 * the benchmark baseline's hot path.
 */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "tests/mock/mock.h"

/* ---- dialect ---- */

static const char *openai_error_type(int status)
{
    static const struct {
        int status;
        const char *type;
    } types[] = {
        {400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
        {404, "not_found_error"},       {429, "rate_limit_error"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (types[i].status == status) {
            return types[i].type;
        }
    }
    return status >= 500 ? "server_error" : "invalid_request_error";
}

int openai_error_param(struct exchange *x, int status, const char *type, const char *message,
                       const char *param, const char *code)
{
    struct evbuffer *out = mock_out_body(x);
    if (status == 429) {
        faults_retry_after_header(x);
    }
    evbuffer_drain(out, (size_t)-1);
    evbuffer_add_printf(out, "{\"error\":{\"message\":\"");
    mock_json_escape(out, message, strlen(message));
    evbuffer_add_printf(
        out, "\",\"type\":\"%s\",\"param\":", type != NULL ? type : openai_error_type(status));
    mock_json_string(out, param);
    evbuffer_add_printf(out, ",\"code\":");
    mock_json_string(out, code);
    evbuffer_add_printf(out, "}}");
    return status;
}

int openai_error(struct exchange *x, int status, const char *type, const char *message,
                 const char *code)
{
    return openai_error_param(x, status, type, message, NULL, code);
}

static int openai_auth(struct exchange *x)
{
    const char *key = x->m->api_key;
    if (key == NULL) {
        return ANSWER_PASS;
    }
    const char *got = mock_in_header(x, "Authorization");
    if (got != NULL && strncmp(got, "Bearer ", 7) == 0 && strcmp(got + 7, key) == 0) {
        return ANSWER_PASS;
    }
    return openai_error(x, 401, "authentication_error", "Incorrect API key provided.",
                        "invalid_api_key");
}

/* Formats a duration the way OpenAI's x-ratelimit-reset-* headers do: "12ms", "1s", "2.5s". */
static void format_duration(char *buf, size_t len, double s)
{
    if (s < 1.0) {
        snprintf(buf, len, "%lldms", (long long)ceil(s * 1000.0));
    } else {
        snprintf(buf, len, "%gs", ceil(s * 1000.0) / 1000.0);
    }
}

static int openai_rate_limited(struct exchange *x, double reset_s)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%.0f", ceil(x->m->config.rate_limit_rps));
    mock_out_header(x, "x-ratelimit-limit-requests", buf);
    mock_out_header(x, "x-ratelimit-remaining-requests", "0");
    format_duration(buf, sizeof(buf), reset_s);
    mock_out_header(x, "x-ratelimit-reset-requests", buf);
    return openai_error(x, 429, "requests", "Rate limit reached for requests",
                        "rate_limit_exceeded");
}

const struct dialect dialect_openai = {
    .name = "openai",
    .request_id_header = NULL,
    .auth = openai_auth,
    .error = openai_error,
    .rate_limited = openai_rate_limited,
    .broken_body = "{\"id\":\"chatcmpl-broken\",\"choices\":[{",
};

/* ---- chat ---- */

/* Adds a message's content (a string, or parts with "text") to the prompt, echoing if asked. */
static void content_scan(const cJSON *content, struct mock_reply *r, bool echo)
{
    if (cJSON_IsString(content)) {
        size_t n = strlen(content->valuestring);
        r->prompt_bytes += echo ? 0 : n;
        if (echo) {
            mock_reply_echo(r, content->valuestring, n);
        }
        return;
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(text)) {
            size_t n = strlen(text->valuestring);
            r->prompt_bytes += echo ? 0 : n;
            if (echo) {
                mock_reply_echo(r, text->valuestring, n);
            }
        }
    }
}

/*
 * The tool to call, or NULL for a text answer: the first tool (or the one tool_choice names),
 * unless tool_choice is "none" or the conversation ends with a tool result (so agent loops end).
 */
static const char *chat_tool(const cJSON *root, const cJSON *last)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0 ||
        (cJSON_IsString(choice) && strcmp(choice->valuestring, "none") == 0) ||
        strcmp(mock_json_str(last, "role", ""), "tool") == 0) {
        return NULL;
    }
    const char *named =
        mock_json_str(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name", NULL);
    if (named != NULL) {
        return named;
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tools, 0), "function");
    return mock_json_str(fn, "name", "tool");
}

static const char tool_args[] = "{\"q\":\"mock\"}";

struct chat {
    struct exchange *x;
    const char *model;
    const char *tool; /* NULL: a text answer */
    const char *finish;
    long long created, prompt, completion;
    bool usage_chunk;
    struct mock_reply reply;
    const char *text; /* the answer's text: the echo, or the JSON response_format asked for */
    size_t text_len;
    int n;            /* choices, all alike */
    int top_logprobs; /* -1: no logprobs asked */
};

/*
 * choices[].logprobs for text: one token per word (its leading spaces and the word, so tokens
 * join back to the text), word k at -0.125 * (1 + k % 8); top_logprobs alternatives per token
 * (the token, then "alt1"... each 1 lower).
 */
static void chat_logprobs(struct evbuffer *out, const struct chat *c)
{
    const char *t = c->text;
    size_t i = 0;
    int k = 0;

    evbuffer_add_printf(out, "{\"content\":[");
    while (i < c->text_len) {
        size_t start = i;
        while (i < c->text_len && t[i] == ' ') {
            i++;
        }
        while (i < c->text_len && t[i] != ' ') {
            i++;
        }
        double lp = -0.125 * (1 + k % 8);
        evbuffer_add_printf(out, "%s{\"token\":\"", k > 0 ? "," : "");
        mock_json_escape(out, t + start, i - start);
        evbuffer_add_printf(out, "\",\"logprob\":%g,\"bytes\":[", lp);
        for (size_t b = start; b < i; b++) {
            evbuffer_add_printf(out, "%s%u", b > start ? "," : "", (unsigned char)t[b]);
        }
        evbuffer_add_printf(out, "],\"top_logprobs\":[");
        for (int a = 0; a < c->top_logprobs; a++) {
            evbuffer_add_printf(out, "%s{\"token\":\"", a > 0 ? "," : "");
            if (a == 0) {
                mock_json_escape(out, t + start, i - start);
            } else {
                evbuffer_add_printf(out, "alt%d", a);
            }
            evbuffer_add_printf(out, "\",\"logprob\":%g,\"bytes\":null}", lp - a);
        }
        evbuffer_add_printf(out, "]}");
        k++;
    }
    evbuffer_add_printf(out, "],\"refusal\":null}");
}

static void chat_usage(struct evbuffer *out, const struct chat *c)
{
    evbuffer_add_printf(out,
                        "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
                        c->prompt, c->completion, c->prompt + c->completion);
}

static void chat_plain(struct evbuffer *out, const struct chat *c)
{
    evbuffer_add_printf(out,
                        "{\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion\","
                        "\"created\":%lld,\"model\":",
                        c->x->seq, c->created);
    mock_json_string(out, c->model);
    evbuffer_add_printf(out, ",\"choices\":[");
    for (int i = 0; i < c->n; i++) {
        evbuffer_add_printf(out, "%s{\"index\":%d,\"message\":{\"role\":\"assistant\",",
                            i > 0 ? "," : "", i);
        if (c->tool != NULL) {
            evbuffer_add_printf(out,
                                "\"content\":null,\"tool_calls\":[{\"id\":\"call_mock_%llu_%d\","
                                "\"type\":\"function\",\"function\":{\"name\":",
                                c->x->seq, i);
            mock_json_string(out, c->tool);
            evbuffer_add_printf(out, ",\"arguments\":");
            mock_json_string(out, tool_args);
            evbuffer_add_printf(out, "}}]");
        } else {
            evbuffer_add_printf(out, "\"content\":\"");
            mock_json_escape(out, c->text, c->text_len);
            evbuffer_add_printf(out, "\"");
        }
        evbuffer_add_printf(out, ",\"refusal\":null},\"logprobs\":");
        if (c->tool == NULL && c->top_logprobs >= 0) {
            chat_logprobs(out, c);
        } else {
            evbuffer_add_printf(out, "null");
        }
        evbuffer_add_printf(out, ",\"finish_reason\":\"%s\"}", c->finish);
    }
    evbuffer_add_printf(out, "],");
    evbuffer_add_printf(out, "\"usage\":");
    chat_usage(out, c);
    evbuffer_add_printf(out, "}");
}

/* "data: {chunk head" … up to the choices array, which the caller fills. */
static void chunk_open(struct evbuffer *out, const struct chat *c)
{
    evbuffer_add_printf(out,
                        "data: {\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion.chunk\","
                        "\"created\":%lld,\"model\":",
                        c->x->seq, c->created);
    mock_json_string(out, c->model);
    evbuffer_add_printf(out, ",\"system_fingerprint\":null,\"choices\":[");
}

static void chunk_close(struct evbuffer *out, const struct chat *c, const char *finish)
{
    evbuffer_add_printf(out, "},\"logprobs\":null,\"finish_reason\":");
    mock_json_string(out, finish);
    evbuffer_add_printf(out, "}]%s}\n\n", c->usage_chunk ? ",\"usage\":null" : "");
    mock_stream_mark(c->x);
}

/*
 * The stream: a role chunk, the content in ~4 deltas (or the tool call's arguments in two), a
 * finish_reason chunk, with include_usage a final `choices: []` chunk carrying usage, then
 * `data: [DONE]`.
 */
static int chat_stream(struct chat *c)
{
    struct evbuffer *out = mock_stream_open(c->x, "text/event-stream");
    size_t ends[MOCK_STREAM_PIECES];
    if (out == NULL) {
        return openai_error(c->x, 500, NULL, "mock: out of memory", NULL);
    }
    chunk_open(out, c);
    evbuffer_add_printf(out, "{\"index\":0,\"delta\":{\"role\":\"assistant\",");
    if (c->tool != NULL) {
        evbuffer_add_printf(out,
                            "\"content\":null,\"tool_calls\":[{\"index\":0,"
                            "\"id\":\"call_mock_%llu\",\"type\":\"function\",\"function\":{"
                            "\"name\":",
                            c->x->seq);
        mock_json_string(out, c->tool);
        evbuffer_add_printf(out, ",\"arguments\":\"\"}}],\"refusal\":null");
    } else {
        evbuffer_add_printf(out, "\"content\":\"\",\"refusal\":null");
    }
    chunk_close(out, c, NULL);

    const char *text = c->tool != NULL ? tool_args : c->text;
    size_t len = c->tool != NULL ? sizeof(tool_args) - 1 : c->text_len;
    size_t n = mock_split(text, len, c->tool != NULL ? 2 : MOCK_STREAM_PIECES, ends);
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
        chunk_open(out, c);
        if (c->tool != NULL) {
            evbuffer_add_printf(out, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                                     "\"function\":{\"arguments\":\"");
        } else {
            evbuffer_add_printf(out, "{\"index\":0,\"delta\":{\"content\":\"");
        }
        mock_json_escape(out, text + start, ends[i] - start);
        evbuffer_add_printf(out, c->tool != NULL ? "\"}}]" : "\"");
        chunk_close(out, c, NULL);
    }
    chunk_open(out, c);
    evbuffer_add_printf(out, "{\"index\":0,\"delta\":{");
    chunk_close(out, c, c->finish);
    if (c->usage_chunk) {
        chunk_open(out, c);
        evbuffer_add_printf(out, "],\"usage\":");
        chat_usage(out, c);
        evbuffer_add_printf(out, "}\n\n");
        mock_stream_mark(c->x);
    }
    evbuffer_add_printf(out, "data: [DONE]\n\n");
    mock_stream_mark(c->x);
    return 200;
}

/*
 * The answer's options: n (1..MOCK_MAX_N choices; streams give one), logprobs with top_logprobs
 * (0..20), and response_format: json_schema answers the JSON of a value that satisfies the schema
 * (*json_text, caller frees), json_object {"reply": <echo>}. Returns 0, or -1 with *bad the
 * message of a 400.
 */
static int chat_options(const cJSON *root, struct chat *c, char **json_text, const char **bad)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "n");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    const char *type = mock_json_str(rf, "type", "text");

    if (n != NULL && !cJSON_IsNull(n)) {
        if (!cJSON_IsNumber(n) || n->valuedouble < 1 || n->valuedouble > MOCK_MAX_N) {
            *bad = "Invalid 'n': must be an integer from 1 to 10.";
            return -1;
        }
        c->n = (int)n->valuedouble;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "logprobs"))) {
        c->top_logprobs = cJSON_IsNumber(top) ? (int)top->valuedouble : 0;
        if (c->top_logprobs < 0 || c->top_logprobs > 20) {
            *bad = "Invalid 'top_logprobs': must be an integer from 0 to 20.";
            return -1;
        }
    } else if (cJSON_IsNumber(top) && top->valuedouble > 0) {
        *bad = "'top_logprobs' requires 'logprobs' to be true.";
        return -1;
    }
    if (strcmp(type, "json_schema") == 0) {
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(rf, "json_schema"), "schema");
        cJSON *v = mock_schema_sample(schema);
        *json_text = v ? cJSON_PrintUnformatted(v) : NULL;
        cJSON_Delete(v);
    } else if (strcmp(type, "json_object") == 0) {
        cJSON *v = cJSON_CreateObject();
        if (v != NULL) {
            cJSON_AddItemToObject(v, "reply", cJSON_CreateString(c->reply.text));
        }
        *json_text = v ? cJSON_PrintUnformatted(v) : NULL;
        cJSON_Delete(v);
    } else if (strcmp(type, "text") != 0) {
        *bad = "Invalid 'response_format.type': must be text, json_object or json_schema.";
        return -1;
    }
    if (*json_text != NULL) {
        c->text = *json_text;
        c->text_len = strlen(*json_text);
    }
    return 0;
}

/* POST /v1/chat/completions */
int openai_chat(struct exchange *x)
{
    cJSON *root = mock_body_json(x);
    if (root == NULL) {
        return openai_error(x, 400, NULL, "We could not parse the JSON body of your request.",
                            NULL);
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, "Missing required parameter: 'messages'.", NULL);
    }
    struct chat c = {
        .x = x, .created = (long long)time(NULL), .finish = "stop", .n = 1, .top_logprobs = -1};
    const char *bad = NULL;
    mock_reply_init(&c.reply);
    const cJSON *msg, *last_user = NULL, *last = NULL;
    cJSON_ArrayForEach(msg, messages)
    {
        if (strcmp(mock_json_str(msg, "role", ""), "user") == 0) {
            last_user = msg;
        }
        last = msg;
        content_scan(cJSON_GetObjectItemCaseSensitive(msg, "content"), &c.reply, false);
    }
    if (last_user != NULL) {
        content_scan(cJSON_GetObjectItemCaseSensitive(last_user, "content"), &c.reply, true);
    }
    c.tool = chat_tool(root, last);
    c.prompt = mock_tokens(c.reply.prompt_bytes);
    c.prompt = c.prompt < 1 ? 1 : c.prompt;
    c.text = c.reply.text;
    c.text_len = c.reply.len;
    char *json_text = NULL;
    if (chat_options(root, &c, &json_text, &bad) < 0) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, bad, NULL);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"))) {
        c.n = 1; /* a stream carries one choice */
    }
    if (c.tool != NULL) {
        c.completion = mock_tokens(strlen(c.tool) + sizeof(tool_args) - 1) * c.n;
        c.finish = "tool_calls";
    } else {
        c.completion = mock_tokens(c.text_len) * c.n;
    }
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    if (!cJSON_IsNumber(max)) {
        max = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    }
    if (cJSON_IsNumber(max) && max->valuedouble >= 0 && (double)c.completion > max->valuedouble) {
        c.completion = (long long)max->valuedouble;
        c.finish = "length";
    }
    c.model = mock_json_str(root, "model", "mock-model");
    int status;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"))) {
        const cJSON *opts = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
        c.usage_chunk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
        status = chat_stream(&c);
    } else {
        chat_plain(mock_out_body(x), &c);
        status = 200;
    }
    cJSON_free(json_text);
    cJSON_Delete(root);
    return status;
}

/* ---- embeddings ---- */

/* A unit vector of dims floats derived from the text: the same text, the same vector. */
static void embed_vector(const char *text, size_t n, int dims, float *v)
{
    uint64_t seed = mock_hash(text, n);
    double norm = 0;
    for (int i = 0; i < dims; i++) {
        uint64_t h = mock_mix64(seed + (uint64_t)i);
        v[i] = (float)((double)(h >> 11) * 0x1.0p-53 * 2.0 - 1.0);
        norm += (double)v[i] * (double)v[i];
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    for (int i = 0; i < dims; i++) {
        v[i] = (float)(v[i] / norm);
    }
}

static int embed_one(struct evbuffer *out, const cJSON *item, int index, int dims, bool b64,
                     size_t *bytes)
{
    float v[MOCK_EMBED_DIMS_MAX];
    char *printed = NULL;
    const char *text;
    if (cJSON_IsString(item)) {
        text = item->valuestring;
    } else if ((printed = cJSON_PrintUnformatted(item)) != NULL) {
        text = printed; /* token arrays: hashed as their JSON */
    } else {
        return -1;
    }
    size_t n = strlen(text);
    *bytes += n;
    embed_vector(text, n, dims, v);
    cJSON_free(printed);
    evbuffer_add_printf(out, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":",
                        index > 0 ? "," : "", index);
    if (b64) {
        unsigned char le[4 * MOCK_EMBED_DIMS_MAX];
        for (int i = 0; i < dims; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++) {
                le[4 * i + k] = (unsigned char)(u >> (8 * k));
            }
        }
        evbuffer_add(out, "\"", 1);
        mock_base64(out, le, 4 * (size_t)dims);
        evbuffer_add(out, "\"}", 2);
    } else {
        evbuffer_add(out, "[", 1);
        for (int i = 0; i < dims; i++) {
            evbuffer_add_printf(out, "%s%.8g", i > 0 ? "," : "", (double)v[i]);
        }
        evbuffer_add(out, "]}", 2);
    }
    return 0;
}

/*
 * POST /v1/embeddings: input is a string or an array (strings or token arrays). A model whose name
 * contains "mock:floats" plays an OpenAI-compatible server that ignores encoding_format: it always
 * answers floats, even when base64 was asked for.
 */
int openai_embeddings(struct exchange *x)
{
    cJSON *root = mock_body_json(x);
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *dims_j = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    const char *format = mock_json_str(root, "encoding_format", "float");
    const char *bad = NULL;
    int dims = MOCK_EMBED_DIMS;
    if (root == NULL) {
        bad = "We could not parse the JSON body of your request.";
    } else if (input == NULL) {
        bad = "Missing required parameter: 'input'.";
    } else if ((cJSON_IsString(input) && input->valuestring[0] == '\0') ||
               (cJSON_IsArray(input) &&
                (cJSON_GetArraySize(input) == 0 || cJSON_GetArraySize(input) > 2048)) ||
               (!cJSON_IsString(input) && !cJSON_IsArray(input))) {
        bad = "'$.input' is invalid. Please check the API reference.";
    } else if (strcmp(format, "float") != 0 && strcmp(format, "base64") != 0) {
        bad = "Invalid value for 'encoding_format': must be 'float' or 'base64'.";
    } else if (dims_j != NULL) {
        if (!cJSON_IsNumber(dims_j) || dims_j->valuedouble < 1 ||
            dims_j->valuedouble > MOCK_EMBED_DIMS_MAX) {
            bad = "Invalid value for 'dimensions'.";
        } else {
            dims = (int)dims_j->valuedouble;
        }
    }
    if (bad != NULL) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, bad, NULL);
    }
    struct evbuffer *out = mock_out_body(x);
    bool b64 = strcmp(format, "base64") == 0 &&
               strstr(mock_json_str(root, "model", ""), "mock:floats") == NULL;
    size_t bytes = 0;
    int index = 0;
    evbuffer_add_printf(out, "{\"object\":\"list\",\"data\":[");
    if (cJSON_IsString(input)) {
        embed_one(out, input, index++, dims, b64, &bytes);
    } else {
        const cJSON *item;
        cJSON_ArrayForEach(item, input)
        {
            embed_one(out, item, index++, dims, b64, &bytes);
        }
    }
    long long tokens = mock_tokens(bytes);
    evbuffer_add_printf(out, "],\"model\":");
    mock_json_string(out, mock_json_str(root, "model", "mock-embedding"));
    evbuffer_add_printf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", tokens,
                        tokens);
    cJSON_Delete(root);
    return 200;
}

/* ---- images ---- */

/*
 * POST /v1/images/generations: n PNGs, as b64_json or as URLs of /_mock/blob/img_<seq>_<i>.png
 * (the same bytes either way). gpt-image models default to b64_json and report usage.
 */
static int images_reply(struct exchange *x, cJSON *root)
{
    const char *prompt = mock_json_str(root, "prompt", NULL);
    const char *model = mock_json_str(root, "model", "dall-e-2");
    bool gpt_image = strncmp(model, "gpt-image", 9) == 0;
    const char *format = mock_json_str(root, "response_format", gpt_image ? "b64_json" : "url");
    const cJSON *n_j = cJSON_GetObjectItemCaseSensitive(root, "n");
    int n = cJSON_IsNumber(n_j) ? (int)n_j->valuedouble : 1;
    const char *bad = NULL;
    if (root == NULL) {
        bad = "We could not parse the JSON body of your request.";
    } else if (prompt == NULL || prompt[0] == '\0') {
        bad = "Missing required parameter: 'prompt'.";
    } else if (n < 1 || n > MOCK_MAX_N || (n_j != NULL && !cJSON_IsNumber(n_j))) {
        bad = "Invalid value for 'n': must be between 1 and 10.";
    } else if (strcmp(format, "url") != 0 && strcmp(format, "b64_json") != 0) {
        bad = "Invalid value for 'response_format': must be 'url' or 'b64_json'.";
    }
    if (bad != NULL) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, bad, NULL);
    }
    struct evbuffer *out = mock_out_body(x);
    struct evbuffer *png = evbuffer_new();
    char origin[300], name[64];
    mock_origin(x, origin, sizeof(origin));
    evbuffer_add_printf(out, "{\"created\":%lld,\"data\":[", (long long)time(NULL));
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "img_%llu_%d.png", x->seq, i);
        evbuffer_add_printf(out, "%s{", i > 0 ? "," : "");
        if (strcmp(format, "url") == 0) {
            evbuffer_add_printf(out, "\"url\":\"");
            mock_json_escape(out, origin, strlen(origin));
            evbuffer_add_printf(out, "/_mock/blob/%s\"", name);
        } else if (png != NULL) {
            evbuffer_drain(png, (size_t)-1);
            blob_render(png, name);
            evbuffer_add_printf(out, "\"b64_json\":\"");
            mock_base64(out, evbuffer_pullup(png, -1), evbuffer_get_length(png));
            evbuffer_add_printf(out, "\"");
        }
        evbuffer_add_printf(out, ",\"revised_prompt\":");
        mock_json_string(out, prompt);
        evbuffer_add_printf(out, "}");
    }
    evbuffer_add_printf(out, "]");
    if (gpt_image) {
        long long in = mock_tokens(strlen(prompt)), outt = 272LL * n;
        evbuffer_add_printf(out,
                            ",\"usage\":{\"total_tokens\":%lld,\"input_tokens\":%lld,"
                            "\"output_tokens\":%lld,\"input_tokens_details\":{"
                            "\"text_tokens\":%lld,\"image_tokens\":0}}",
                            in + outt, in, outt, in);
    }
    evbuffer_add_printf(out, "}");
    if (png != NULL) {
        evbuffer_free(png);
    }
    cJSON_Delete(root);
    return 200;
}

/* POST /v1/images/generations */
int openai_images(struct exchange *x)
{
    return images_reply(x, mock_body_json(x));
}

/* ---- image edits: the files received ---- */

#define EDITS_KEEP 32                     /* files remembered, the newest */
#define EDITS_MAX_BYTES (8 * 1024 * 1024) /* a file longer than this is remembered by length */

/*
 * The files edits brought, newest last. A file-level ring rather than a field of struct mock:
 * only the image routes of three dialects write it and only GET /_mock/edits reads it.
 */
static struct edit_file {
    unsigned long long seq; /* the request's x->seq */
    char route[32];
    char field[32];
    unsigned char *bytes; /* NULL past EDITS_MAX_BYTES */
    size_t len;
} edits[EDITS_KEEP];
static size_t edits_next;
static size_t edits_count;

void mock_edit_record(struct exchange *x, const char *field, const unsigned char *bytes, size_t len)
{
    struct edit_file *e = &edits[edits_next];
    free(e->bytes);
    *e = (struct edit_file){.seq = x->seq, .len = len};
    snprintf(e->route, sizeof(e->route), "%s", x->route != NULL ? x->route->name : "");
    snprintf(e->field, sizeof(e->field), "%s", field);
    if (len <= EDITS_MAX_BYTES && (e->bytes = malloc(len > 0 ? len : 1)) != NULL) {
        memcpy(e->bytes, bytes, len);
    }
    edits_next = (edits_next + 1) % EDITS_KEEP;
    edits_count += edits_count < EDITS_KEEP;
}

/* GET /_mock/edits: {"data": [{seq, route, field, len, b64}]}, oldest first. */
int mock_edits_get(struct exchange *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    struct evbuffer *b64 = evbuffer_new();
    for (size_t i = 0; b64 != NULL && i < edits_count; i++) {
        const struct edit_file *e =
            &edits[(edits_next + EDITS_KEEP - edits_count + i) % EDITS_KEEP];
        cJSON *item = cJSON_CreateObject();
        cJSON_AddNumberToObject(item, "seq", (double)e->seq);
        cJSON_AddStringToObject(item, "route", e->route);
        cJSON_AddStringToObject(item, "field", e->field);
        cJSON_AddNumberToObject(item, "len", (double)e->len);
        if (e->bytes != NULL) {
            evbuffer_drain(b64, (size_t)-1);
            mock_base64(b64, e->bytes, e->len);
            evbuffer_add(b64, "", 1);
            cJSON_AddStringToObject(item, "b64", (const char *)evbuffer_pullup(b64, -1));
        } else {
            cJSON_AddNullToObject(item, "b64");
        }
        cJSON_AddItemToArray(data, item);
    }
    if (b64 != NULL) {
        evbuffer_free(b64);
    }
    return mock_out_json(x, 200, o);
}

unsigned char *mock_data_uri_decode(const char *uri, size_t *len)
{
    const char *comma = uri != NULL ? strchr(uri, ',') : NULL;
    size_t n;
    unsigned char *bytes;

    if (comma == NULL || strncmp(uri, "data:image/", 11) != 0 || (size_t)(comma - uri) < 7 ||
        strncmp(comma - 7, ";base64", 7) != 0) {
        return NULL;
    }
    n = strlen(comma + 1);
    if (n == 0 || n % 4 != 0 || n > (size_t)INT32_MAX || (bytes = malloc(n / 4 * 3)) == NULL) {
        return NULL;
    }
    if (EVP_DecodeBlock(bytes, (const unsigned char *)comma + 1, (int)n) != (int)(n / 4 * 3)) {
        free(bytes);
        return NULL;
    }
    *len = n / 4 * 3 - (comma[n] == '=') - (comma[n - 1] == '=');
    return bytes;
}

int mock_edit_uris(struct exchange *x, const cJSON *obj, const char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, fields[i]);
        const cJSON *list = cJSON_IsArray(v) ? v : NULL;
        const cJSON *item;
        cJSON_ArrayForEach(item, list)
        {
            const char *uri = cJSON_GetStringValue(item);
            if (uri != NULL && strncmp(uri, "data:", 5) == 0) {
                size_t len = 0;
                unsigned char *bytes = mock_data_uri_decode(uri, &len);
                if (bytes == NULL) {
                    return -1;
                }
                mock_edit_record(x, fields[i], bytes, len);
                free(bytes);
            }
        }
        if (cJSON_IsString(v) && strncmp(v->valuestring, "data:", 5) == 0) {
            size_t len = 0;
            unsigned char *bytes = mock_data_uri_decode(v->valuestring, &len);
            if (bytes == NULL) {
                return -1;
            }
            mock_edit_record(x, fields[i], bytes, len);
            free(bytes);
        }
    }
    return 0;
}

/*
 * The parts of a multipart/form-data body, one call of cb each (name and filename as C strings,
 * filename "" for a text part). Returns 0, or -1 when the body does not parse.
 */
static int form_parse(struct exchange *x,
                      int (*cb)(struct exchange *x, const char *name, const char *filename,
                                const char *data, size_t len, void *arg),
                      void *arg)
{
    const char *ct = mock_in_header(x, "Content-Type");
    const char *b = ct != NULL ? strstr(ct, "boundary=") : NULL;
    char delim[96];
    const char *p, *end = x->body + x->body_len;

    if (b == NULL || x->body == NULL) {
        return -1;
    }
    b += 9;
    size_t blen = strcspn(b, "; ");
    if (blen > 0 && b[0] == '"') {
        b++;
        blen = strcspn(b, "\"");
    }
    if (blen == 0 || blen > 70) {
        return -1;
    }
    int dlen = snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)blen, b);
    if (x->body_len < (size_t)dlen - 2 || memcmp(x->body, delim + 2, (size_t)dlen - 2) != 0) {
        return -1;
    }
    p = x->body + dlen - 2;
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            return 0; /* the closing delimiter */
        }
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            return -1;
        }
        p += 2;
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *next =
            hend ? memmem(hend + 4, (size_t)(end - hend - 4), delim, (size_t)dlen) : NULL;
        if (next == NULL) {
            return -1;
        }
        char head[1024], name[64] = "", filename[128] = "";
        snprintf(head, sizeof(head), "%.*s", (int)(hend - p), p);
        const char *n = strstr(head, " name=\"");
        const char *f = strstr(head, "filename=\"");
        if (n != NULL) {
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(n + 7, "\""), n + 7);
        }
        if (f != NULL) {
            snprintf(filename, sizeof(filename), "%.*s", (int)strcspn(f + 10, "\""), f + 10);
            if (filename[0] == '\0') {
                snprintf(filename, sizeof(filename), "file");
            }
        }
        if (cb(x, name, filename, hend + 4, (size_t)(next - hend - 4), arg) != 0) {
            return -1;
        }
        p = next + dlen;
    }
}

/* A part of an edit: files recorded, text fields into the JSON body images_reply reads. */
static int edit_part(struct exchange *x, const char *name, const char *filename, const char *data,
                     size_t len, void *arg)
{
    cJSON *root = arg;
    if (filename[0] != '\0') {
        if (strcmp(name, "image") == 0 || strcmp(name, "image[]") == 0) {
            cJSON_AddTrueToObject(root, "mock_has_image");
        }
        mock_edit_record(x, name, (const unsigned char *)data, len);
        return 0;
    }
    char value[512];
    snprintf(value, sizeof(value), "%.*s", (int)(len < 511 ? len : 511), data);
    cJSON_DeleteItemFromObjectCaseSensitive(root, name);
    if (strcmp(name, "n") == 0) {
        cJSON_AddNumberToObject(root, name, atoi(value));
    } else {
        cJSON_AddStringToObject(root, name, value);
    }
    return 0;
}

/*
 * POST /v1/images/edits: multipart, as OpenAI takes it. The files are recorded (GET
 * /_mock/edits); the answer is that of a generation of the same fields.
 */
int openai_images_edits(struct exchange *x)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL || form_parse(x, edit_part, root) != 0) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, "mock: the body is not multipart/form-data", NULL);
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "mock_has_image"))) {
        cJSON_Delete(root);
        return openai_error_param(x, 400, NULL, "Missing required parameter: 'image'.", "image",
                                  NULL);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "mock_has_image");
    return images_reply(x, root);
}
