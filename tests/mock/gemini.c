/*
 * tests/mock/gemini.c — the Gemini dialect at /gemini/v1beta/models/{model}:generateContent and
 * :streamGenerateContent (SSE with ?alt=sse, else a streamed JSON array, as Google does).
 * x-goog-api-key (or ?key=) auth, text or functionCall answers, "mock:block" in the prompt for a
 * blocked prompt, and {"error":{code,message,status}} errors with RetryInfo on 429.
 */
#include <stdio.h>
#include <string.h>

#include "tests/mock/mock.h"

static const char *gemini_status(int code)
{
    static const struct {
        int code;
        const char *status;
    } statuses[] = {
        {400, "INVALID_ARGUMENT"}, {401, "UNAUTHENTICATED"},   {403, "PERMISSION_DENIED"},
        {404, "NOT_FOUND"},        {409, "ABORTED"},           {429, "RESOURCE_EXHAUSTED"},
        {499, "CANCELLED"},        {500, "INTERNAL"},          {501, "NOT_IMPLEMENTED"},
        {503, "UNAVAILABLE"},      {504, "DEADLINE_EXCEEDED"},
    };
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (statuses[i].code == code) {
            return statuses[i].status;
        }
    }
    return code >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
}

/* Writes the google.rpc envelope; details is a raw JSON array or NULL. */
static int gemini_envelope(struct exchange *x, int status, const char *type, const char *message,
                           const char *details)
{
    struct evbuffer *out = mock_out_body(x);
    evbuffer_drain(out, (size_t)-1);
    evbuffer_add_printf(out, "{\"error\":{\"code\":%d,\"message\":", status);
    mock_json_string(out, message);
    evbuffer_add_printf(out, ",\"status\":\"%s\"", type != NULL ? type : gemini_status(status));
    if (details != NULL) {
        evbuffer_add_printf(out, ",\"details\":%s", details);
    }
    evbuffer_add_printf(out, "}}");
    return status;
}

/* A 429 carries no retry-after header, only RetryInfo in the body, as Google sends it. */
static int gemini_error(struct exchange *x, int status, const char *type, const char *message,
                        const char *code)
{
    char details[160];
    (void)code;
    if (status != 429) {
        return gemini_envelope(x, status, type, message, NULL);
    }
    snprintf(details, sizeof(details),
             "[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"%lds\"}]",
             x->m->config.retry_after_s);
    return gemini_envelope(x, status, type, message, details);
}

/* Like Google: no key is 403 PERMISSION_DENIED, a wrong key 400 INVALID_ARGUMENT. */
static int gemini_auth(struct exchange *x)
{
    const char *key = x->m->api_key;
    char query_key[256];
    const char *got = mock_in_header(x, "x-goog-api-key");
    if (got == NULL) {
        got = mock_query(x, "key", query_key, sizeof(query_key));
    }
    if (key == NULL || (got != NULL && strcmp(got, key) == 0)) {
        return ANSWER_PASS;
    }
    if (got == NULL) {
        return gemini_envelope(x, 403, NULL,
                               "Method doesn't allow unregistered callers (callers without "
                               "established identity). Please use API Key or other form of API "
                               "consumer identity to call this API.",
                               NULL);
    }
    return gemini_envelope(x, 400, NULL, "API key not valid. Please pass a valid API key.",
                           "[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                           "\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\","
                           "\"metadata\":{\"service\":\"generativelanguage.googleapis.com\"}}]");
}

static int gemini_rate_limited(struct exchange *x, double reset_s)
{
    (void)reset_s;
    return gemini_error(x, 429, NULL, "Resource has been exhausted (e.g. check quota).", NULL);
}

const struct dialect dialect_gemini = {
    .name = "gemini",
    .request_id_header = NULL,
    .auth = gemini_auth,
    .error = gemini_error,
    .rate_limited = gemini_rate_limited,
    .broken_body = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"mock",
};

struct generate {
    struct exchange *x;
    char model[128];
    const char *tool; /* NULL: a text answer */
    const char *finish;
    bool blocked;
    long long prompt, output;
    struct mock_reply reply;
};

static const char tool_args[] = "{\"q\":\"mock\"}";

/* Adds the text parts of a Content to the prompt (echo: to the reply). */
static void parts_scan(const cJSON *content, struct generate *g, bool echo, bool *fn_response)
{
    const cJSON *part;
    cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(content, "parts"))
    {
        const char *text = mock_json_str(part, "text", NULL);
        if (cJSON_GetObjectItemCaseSensitive(part, "functionResponse") != NULL) {
            *fn_response = true;
        }
        if (text == NULL) {
            continue;
        }
        size_t n = strlen(text);
        if (echo) {
            mock_reply_echo(&g->reply, text, n);
        } else {
            g->reply.prompt_bytes += n;
            g->blocked = g->blocked || strstr(text, "mock:block") != NULL;
        }
    }
}

/*
 * The function to call: the first declared (or allowed), unless mode NONE or the last turn carries
 * a functionResponse (so agent loops end).
 */
static const char *generate_tool(const cJSON *root, bool fn_response)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "toolConfig"), "functionCallingConfig");
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(cfg, "allowedFunctionNames");
    const cJSON *tool;
    if (fn_response || strcmp(mock_json_str(cfg, "mode", "AUTO"), "NONE") == 0) {
        return NULL;
    }
    if (cJSON_IsString(cJSON_GetArrayItem(allowed, 0))) {
        return cJSON_GetArrayItem(allowed, 0)->valuestring;
    }
    cJSON_ArrayForEach(tool, cJSON_GetObjectItemCaseSensitive(root, "tools"))
    {
        const cJSON *decls = cJSON_GetObjectItemCaseSensitive(tool, "functionDeclarations");
        const char *name = mock_json_str(cJSON_GetArrayItem(decls, 0), "name", NULL);
        if (name != NULL) {
            return name;
        }
    }
    return NULL;
}

/* Parses and checks the request into g. Returns 0, or the error status it answered. */
static int generate_parse(struct exchange *x, struct generate *g, cJSON **rootp)
{
    cJSON *root = *rootp = mock_body_json(x);
    const cJSON *contents = cJSON_GetObjectItemCaseSensitive(root, "contents");
    const cJSON *content, *last_user = NULL;
    bool fn_response = false, ignored = false;
    if (!cJSON_IsObject(root)) {
        return gemini_error(x, 400, NULL, "Invalid JSON payload received.", NULL);
    }
    if (!cJSON_IsArray(contents) || cJSON_GetArraySize(contents) == 0) {
        return gemini_error(x, 400, NULL,
                            "* GenerateContentRequest.contents: contents is not specified\n", NULL);
    }
    *g = (struct generate){.x = x, .finish = "STOP"};
    mock_cap(x, 0, g->model, sizeof(g->model));
    mock_reply_init(&g->reply);
    parts_scan(cJSON_GetObjectItemCaseSensitive(root, "systemInstruction"), g, false, &ignored);
    cJSON_ArrayForEach(content, contents)
    {
        if (strcmp(mock_json_str(content, "role", "user"), "user") == 0) {
            last_user = content;
        }
        fn_response = false; /* only the last turn's counts, whatever its role */
        parts_scan(content, g, false, &fn_response);
    }
    if (last_user != NULL) {
        parts_scan(last_user, g, true, &ignored);
    }
    g->tool = generate_tool(root, fn_response);
    g->prompt = mock_tokens(g->reply.prompt_bytes);
    g->prompt = g->prompt < 1 ? 1 : g->prompt;
    g->output = g->tool != NULL ? mock_tokens(strlen(g->tool) + sizeof(tool_args) - 1)
                                : mock_tokens(g->reply.len);
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "generationConfig"), "maxOutputTokens");
    if (cJSON_IsNumber(max) && max->valuedouble >= 0 && (double)g->output > max->valuedouble) {
        g->output = (long long)max->valuedouble;
        g->finish = "MAX_TOKENS";
    }
    return 0;
}

/*
 * One GenerateContentResponse: text (or the function call, or nothing when blocked), with
 * finishReason and usageMetadata only when `last`.
 */
static void response_json(struct evbuffer *out, const struct generate *g, const char *text,
                          size_t n, bool last)
{
    if (g->blocked) {
        evbuffer_add_printf(out, "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}");
    } else {
        evbuffer_add_printf(out, "{\"candidates\":[{\"content\":{\"parts\":[");
        if (g->tool != NULL) {
            evbuffer_add_printf(out, "{\"functionCall\":{\"name\":");
            mock_json_string(out, g->tool);
            evbuffer_add_printf(out, ",\"args\":%s}}", tool_args);
        } else {
            evbuffer_add_printf(out, "{\"text\":\"");
            mock_json_escape(out, text, n);
            evbuffer_add_printf(out, "\"}");
        }
        evbuffer_add_printf(out, "],\"role\":\"model\"}");
        if (last) {
            evbuffer_add_printf(out, ",\"finishReason\":\"%s\"", g->finish);
        }
        evbuffer_add_printf(out, ",\"index\":0}]");
    }
    if (last) {
        long long output = g->blocked ? 0 : g->output;
        evbuffer_add_printf(out,
                            ",\"usageMetadata\":{\"promptTokenCount\":%lld,"
                            "\"candidatesTokenCount\":%lld,\"totalTokenCount\":%lld}",
                            g->prompt, output, g->prompt + output);
    }
    evbuffer_add_printf(out, ",\"modelVersion\":");
    mock_json_string(out, g->model);
    evbuffer_add_printf(out, ",\"responseId\":\"mock-%llu\"}", g->x->seq);
}

/* POST /gemini/v1beta/models/{model}:generateContent */
int gemini_generate(struct exchange *x)
{
    struct generate g;
    cJSON *root;
    int status = generate_parse(x, &g, &root);
    if (status == 0) {
        response_json(mock_out_body(x), &g, g.reply.text, g.reply.len, true);
        status = 200;
    }
    cJSON_Delete(root);
    return status;
}

/*
 * POST /gemini/v1beta/models/{model}:streamGenerateContent. With alt=sse: `data: {response}`
 * events, CRLF-framed as Google sends them, and no [DONE]. Without: one JSON array, element by
 * element. The text comes in ~4 parts; the last event has finishReason and usageMetadata.
 */
int gemini_stream(struct exchange *x)
{
    struct generate g;
    cJSON *root;
    char alt[16];
    int status = generate_parse(x, &g, &root);
    cJSON_Delete(root);
    if (status != 0) {
        return status;
    }
    const char *a = mock_query(x, "alt", alt, sizeof(alt));
    bool sse = a != NULL && strcmp(a, "sse") == 0;
    struct evbuffer *out = mock_stream_open(x, sse ? "text/event-stream" : "application/json");
    size_t ends[MOCK_STREAM_PIECES], n = 1;
    if (out == NULL) {
        return gemini_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    if (g.tool == NULL && !g.blocked) {
        n = mock_split(g.reply.text, g.reply.len, MOCK_STREAM_PIECES, ends);
    }
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
        evbuffer_add_printf(out, sse ? "data: " : (i == 0 ? "[" : ",\r\n"));
        size_t len = g.tool == NULL && !g.blocked ? ends[i] - start : 0;
        response_json(out, &g, g.reply.text + start, len, i + 1 == n);
        if (sse) {
            evbuffer_add_printf(out, "\r\n\r\n");
        } else if (i + 1 == n) {
            evbuffer_add_printf(out, "]");
        }
        mock_stream_mark(x);
    }
    return 200;
}
