/*
 * tests/mock/gemini.c — the Gemini dialect at /gemini/v1beta/models/{model}:generateContent and
 * :streamGenerateContent (SSE with ?alt=sse, else a streamed JSON array, as Google does).
 * x-goog-api-key (or ?key=) auth, text or functionCall answers, "mock:block" in the prompt for a
 * blocked prompt, and {"error":{code,message,status}} errors with RetryInfo on 429.
 * generationConfig is read for what tests check answers of: candidateCount (that many copies of
 * the answer), responseLogprobs and logprobs (a logprobsResult per candidate, one token per word),
 * responseMimeType application/json (the answer is a sample of responseJsonSchema, else
 * {"reply": <the echo>}) and maxOutputTokens (MAX_TOKENS).
 * Veo: models/{model}:predictLongRunning starts an operation (a JOB_VIDEO job, timed by job_ms),
 * polled at models/{model}/operations/{id}; its video is served at files/{id}:download.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

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

#define GEN_MAX_CANDIDATES 8 /* Gemini's candidateCount range is 1-8 */
#define GEN_MAX_TOP 20       /* and generationConfig.logprobs' 0-20 */
#define GEN_MAX_WORDS 256    /* words of an answer given logprobs; the last takes any rest */

struct generate {
    struct exchange *x;
    char model[128];
    const char *tool; /* NULL: a text answer; borrowed from the request's JSON, kept to the end */
    const char *finish;
    bool blocked;
    int candidates;   /* generationConfig.candidateCount: that many identical candidates */
    bool logprobs;    /* generationConfig.responseLogprobs: a logprobsResult per candidate */
    int top;          /* generationConfig.logprobs: alternatives per token (0: no topCandidates) */
    char *json;       /* owned (cJSON_free): the answer to responseMimeType application/json */
    const char *text; /* the answer: json, else the echo in reply */
    size_t len;
    size_t words[GEN_MAX_WORDS]; /* end offsets of the answer's words (logprobs' tokens) */
    size_t n_words;
    long long prompt, output; /* output: per candidate */
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

/* An int member of cfg in [min, max] into *out (left as it is when absent); false when not one. */
static bool config_int(const cJSON *cfg, const char *key, int min, int max, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (v == NULL) {
        return true;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max ||
        v->valuedouble != (double)(int)v->valuedouble) {
        return false;
    }
    *out = (int)v->valuedouble;
    return true;
}

/*
 * The answer for responseMimeType application/json: a sample of responseJsonSchema, or without a
 * schema {"reply": <the echo>}. Returns false on OOM.
 */
static bool generate_json(struct generate *g, const cJSON *cfg)
{
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(cfg, "responseJsonSchema");
    cJSON *value = cJSON_IsObject(schema) ? mock_schema_sample(schema) : cJSON_CreateObject();
    if (value != NULL && !cJSON_IsObject(schema) &&
        cJSON_AddStringToObject(value, "reply", g->reply.text) == NULL) {
        cJSON_Delete(value);
        value = NULL;
    }
    g->json = value != NULL ? cJSON_PrintUnformatted(value) : NULL;
    cJSON_Delete(value);
    return g->json != NULL;
}

/*
 * The words of the answer, as logprobs' tokens: each is its leading spaces and the run of other
 * bytes after them, so the tokens joined are the answer.
 */
static void generate_words(struct generate *g)
{
    size_t i = 0;
    g->n_words = 0;
    while (i < g->len) {
        while (i < g->len && g->text[i] == ' ') {
            i++;
        }
        while (i < g->len && g->text[i] != ' ') {
            i++;
        }
        if (g->n_words == GEN_MAX_WORDS) {
            g->words[GEN_MAX_WORDS - 1] = g->len;
            return;
        }
        g->words[g->n_words++] = i;
    }
}

/* Reads generationConfig into g. Returns 0, or the error status it answered. */
static int generate_config(struct exchange *x, struct generate *g, const cJSON *root)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "generationConfig");
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(cfg, "responseLogprobs");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(cfg, "maxOutputTokens");
    bool json =
        strcmp(mock_json_str(cfg, "responseMimeType", "text/plain"), "application/json") == 0;

    g->candidates = 1;
    if (!config_int(cfg, "candidateCount", 1, GEN_MAX_CANDIDATES, &g->candidates)) {
        return gemini_error(x, 400, NULL,
                            "* GenerateContentRequest.generation_config.candidate_count: must be "
                            "in the range [1, 8].\n",
                            NULL);
    }
    g->logprobs = cJSON_IsTrue(want);
    if (!config_int(cfg, "logprobs", 0, GEN_MAX_TOP, &g->top) ||
        (cJSON_GetObjectItemCaseSensitive(cfg, "logprobs") != NULL && !g->logprobs)) {
        return gemini_error(x, 400, NULL,
                            "* GenerateContentRequest.generation_config.logprobs: logprobs must be "
                            "in [0, 20] and needs response_logprobs.\n",
                            NULL);
    }
    g->text = g->reply.text;
    g->len = g->reply.len;
    if (json && g->tool == NULL) {
        if (!generate_json(g, cfg)) {
            return gemini_error(x, 500, NULL, "mock: out of memory", NULL);
        }
        g->text = g->json;
        g->len = strlen(g->json);
    }
    generate_words(g);
    g->output = g->tool != NULL ? mock_tokens(strlen(g->tool) + sizeof(tool_args) - 1)
                                : mock_tokens(g->len);
    if (cJSON_IsNumber(max) && max->valuedouble >= 0 && (double)g->output > max->valuedouble) {
        g->output = (long long)max->valuedouble;
        g->finish = "MAX_TOKENS";
    }
    return 0;
}

/*
 * Parses and checks the request into g; *rootp is the parsed request, which g points into: the
 * caller frees it after the answer is written. Returns 0, or the error status it answered.
 */
static int generate_parse(struct exchange *x, struct generate *g, cJSON **rootp)
{
    cJSON *root = *rootp = mock_body_json(x);
    const cJSON *contents = cJSON_GetObjectItemCaseSensitive(root, "contents");
    const cJSON *content, *last_user = NULL;
    bool fn_response = false, ignored = false;
    *g = (struct generate){.x = x, .finish = "STOP"};
    if (!cJSON_IsObject(root)) {
        return gemini_error(x, 400, NULL, "Invalid JSON payload received.", NULL);
    }
    if (!cJSON_IsArray(contents) || cJSON_GetArraySize(contents) == 0) {
        return gemini_error(x, 400, NULL,
                            "* GenerateContentRequest.contents: contents is not specified\n", NULL);
    }
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
    return generate_config(x, g, root);
}

/* One {"token", "logProbability"} of a logprobsResult. */
static void logprob_json(struct evbuffer *out, const char *token, size_t n, double lp)
{
    evbuffer_add_printf(out, "{\"token\":\"");
    mock_json_escape(out, token, n);
    evbuffer_add_printf(out, "\",\"logProbability\":%g}", lp);
}

/*
 * The logprobsResult of the words of the answer between byte offsets from and to: word k is
 * chosen with logProbability -0.125 * (1 + k % 8); its top candidates are itself, then "alt1",
 * "alt2", … each 1 lower.
 */
static void logprobs_json(struct evbuffer *out, const struct generate *g, size_t from, size_t to)
{
    bool first = true;
    evbuffer_add_printf(out, ",\"logprobsResult\":{");
    if (g->top > 0) {
        evbuffer_add_printf(out, "\"topCandidates\":[");
        for (size_t k = 0; k < g->n_words; k++) {
            size_t start = k == 0 ? 0 : g->words[k - 1];
            double lp = -0.125 * (double)(1 + k % 8);
            char alt[16];
            if (start < from || g->words[k] > to) {
                continue;
            }
            evbuffer_add_printf(out, "%s{\"candidates\":[", first ? "" : ",");
            first = false;
            logprob_json(out, g->text + start, g->words[k] - start, lp);
            for (int i = 1; i < g->top; i++) {
                int n = snprintf(alt, sizeof(alt), "alt%d", i);
                evbuffer_add_printf(out, ",");
                logprob_json(out, alt, (size_t)n, lp - i);
            }
            evbuffer_add_printf(out, "]}");
        }
        evbuffer_add_printf(out, "],");
    }
    evbuffer_add_printf(out, "\"chosenCandidates\":[");
    first = true;
    for (size_t k = 0; k < g->n_words; k++) {
        size_t start = k == 0 ? 0 : g->words[k - 1];
        if (start < from || g->words[k] > to) {
            continue;
        }
        evbuffer_add_printf(out, "%s", first ? "" : ",");
        first = false;
        logprob_json(out, g->text + start, g->words[k] - start, -0.125 * (double)(1 + k % 8));
    }
    evbuffer_add_printf(out, "]}");
}

/*
 * One GenerateContentResponse: each candidate the text between offsets from and to (or the
 * function call, or none when blocked) with its logprobs when asked, finishReason and
 * usageMetadata only when `last`.
 */
static void response_json(struct evbuffer *out, const struct generate *g, size_t from, size_t to,
                          bool last)
{
    if (g->blocked) {
        evbuffer_add_printf(out, "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}");
    } else {
        evbuffer_add_printf(out, "{\"candidates\":[");
        for (int c = 0; c < g->candidates; c++) {
            evbuffer_add_printf(out, "%s{\"content\":{\"parts\":[", c > 0 ? "," : "");
            if (g->tool != NULL) {
                evbuffer_add_printf(out, "{\"functionCall\":{\"name\":");
                mock_json_string(out, g->tool);
                evbuffer_add_printf(out, ",\"args\":%s}}", tool_args);
            } else {
                evbuffer_add_printf(out, "{\"text\":\"");
                mock_json_escape(out, g->text + from, to - from);
                evbuffer_add_printf(out, "\"}");
            }
            evbuffer_add_printf(out, "],\"role\":\"model\"}");
            if (last) {
                evbuffer_add_printf(out, ",\"finishReason\":\"%s\"", g->finish);
            }
            if (g->logprobs && g->tool == NULL) {
                logprobs_json(out, g, from, to);
            }
            evbuffer_add_printf(out, ",\"index\":%d}", c);
        }
        evbuffer_add_printf(out, "]");
    }
    if (last) {
        long long output = g->blocked ? 0 : g->output * g->candidates;
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
        response_json(mock_out_body(x), &g, 0, g.len, true);
        status = 200;
    }
    cJSON_free(g.json);
    cJSON_Delete(root);
    return status;
}

/*
 * The end offsets of the stream's pieces of text (ends holds MOCK_STREAM_PIECES): ~4, cut on word
 * boundaries when logprobs are asked for (so each event's logprobsResult has whole words), else
 * anywhere between UTF-8 characters. Returns the count, at least 1.
 */
static size_t stream_pieces(const struct generate *g, size_t *ends)
{
    size_t n = g->n_words < MOCK_STREAM_PIECES ? g->n_words : MOCK_STREAM_PIECES;
    if (!g->logprobs) {
        n = mock_split(g->text, g->len, MOCK_STREAM_PIECES, ends);
    } else {
        for (size_t i = 0; i < n; i++) {
            ends[i] = g->words[(i + 1) * g->n_words / n - 1];
        }
    }
    if (n == 0) { /* an empty answer still streams one event */
        ends[n++] = g->len;
    }
    return n;
}

/*
 * POST /gemini/v1beta/models/{model}:streamGenerateContent. With alt=sse: `data: {response}`
 * events, CRLF-framed as Google sends them, and no [DONE]. Without: one JSON array, element by
 * element. The text comes in ~4 parts; the last event has finishReason and usageMetadata. The
 * function name and the schema point into the request, so it is freed only at the end.
 */
int gemini_stream(struct exchange *x)
{
    struct generate g;
    cJSON *root;
    char alt[16];
    int status = generate_parse(x, &g, &root);
    const char *a = mock_query(x, "alt", alt, sizeof(alt));
    bool sse = a != NULL && strcmp(a, "sse") == 0;
    struct evbuffer *out = NULL;
    size_t ends[MOCK_STREAM_PIECES] = {0}, n = 1;
    if (status != 0) {
        goto out;
    }
    if ((out = mock_stream_open(x, sse ? "text/event-stream" : "application/json")) == NULL) {
        status = gemini_error(x, 500, NULL, "mock: out of memory", NULL);
        goto out;
    }
    if (g.tool == NULL && !g.blocked) {
        n = stream_pieces(&g, ends);
    }
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
        evbuffer_add_printf(out, sse ? "data: " : (i == 0 ? "[" : ",\r\n"));
        response_json(out, &g, start, ends[i], i + 1 == n);
        if (sse) {
            evbuffer_add_printf(out, "\r\n\r\n");
        } else if (i + 1 == n) {
            evbuffer_add_printf(out, "]");
        }
        mock_stream_mark(x);
    }
    status = 200;
out:
    cJSON_free(g.json);
    cJSON_Delete(root);
    return status;
}

/* ---- Veo: predictLongRunning, its operations and the file download ---- */

/* Veo's aspect ratios; any other is refused as Google does. */
static bool veo_ratio_ok(const char *r)
{
    return strcmp(r, "16:9") == 0 || strcmp(r, "9:16") == 0;
}

/* The operation of GET .../models/{model}/operations/{id} (caps 0 and 1), or NULL. */
static struct job *veo_find(struct exchange *x)
{
    char model[256];
    struct job *j;
    if (x->n_caps < 2) {
        return NULL;
    }
    j = jobs_find(x->m, JOB_VIDEO, x->cap[1].s, x->cap[1].n);
    mock_cap(x, 0, model, sizeof(model));
    return j != NULL && j->video && strcmp(j->model, model) == 0 ? j : NULL;
}

/*
 * Veo's first frame, instances[0].image = {bytesBase64Encoded, mimeType}, decoded into r.
 * Returns 0, or -1 when either is missing or the bytes are not base64.
 */
static int veo_image_read(const cJSON *image, struct mock_video_ref *r)
{
    const char *b64 = mock_json_str(image, "bytesBase64Encoded", NULL);
    const char *mime = mock_json_str(image, "mimeType", NULL);
    size_t n = b64 != NULL ? strlen(b64) : 0;

    memset(r, 0, sizeof(*r));
    if (n == 0 || n % 4 != 0 || n > (size_t)INT32_MAX || mime == NULL ||
        (r->bytes = malloc(n / 4 * 3)) == NULL) {
        return -1;
    }
    if (EVP_DecodeBlock(r->bytes, (const unsigned char *)b64, (int)n) != (int)(n / 4 * 3)) {
        return -1;
    }
    r->present = true;
    r->len = n / 4 * 3 - (b64[n - 1] == '=') - (b64[n - 2] == '=');
    snprintf(r->content_type, sizeof(r->content_type), "%s", mime);
    return 0;
}

/*
 * POST /gemini/v1beta/models/{model}:predictLongRunning: {instances: [{prompt, image?}],
 * parameters: {aspectRatio?, durationSeconds?, resolution?}} → {name:
 * "models/{model}/operations/{id}"}. The operation runs for the job_ms switch; "mock:fail" in the
 * prompt makes it end with an error. An image (the first frame) is recorded for GET
 * /_mock/video_inputs.
 */
int gemini_predict_long_running(struct exchange *x)
{
    char model[256];
    cJSON *root = mock_body_json(x);
    const cJSON *inst = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "instances"), 0);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    const char *prompt = mock_json_str(inst, "prompt", NULL);
    const char *ratio = mock_json_str(params, "aspectRatio", NULL);
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(params, "durationSeconds");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(inst, "image");
    const char *bad = NULL;
    struct job *j;

    if (prompt == NULL || prompt[0] == '\0') {
        bad = "instances[0].prompt is required.";
    } else if (ratio != NULL && !veo_ratio_ok(ratio)) {
        bad = "aspectRatio must be 16:9 or 9:16.";
    } else if (secs != NULL &&
               (!cJSON_IsNumber(secs) || secs->valuedouble < 1 || secs->valuedouble > 60 ||
                secs->valuedouble != (double)(int)secs->valuedouble)) {
        bad = "durationSeconds must be a whole number of seconds.";
    }
    if (bad != NULL) {
        cJSON_Delete(root);
        return gemini_envelope(x, 400, NULL, bad, NULL);
    }
    struct mock_video_ref ref = {0};
    if (image != NULL && veo_image_read(image, &ref) < 0) {
        cJSON_Delete(root);
        mock_video_ref_cleanup(&ref);
        return gemini_envelope(x, 400, NULL,
                               "instances[0].image needs bytesBase64Encoded (base64) and mimeType.",
                               NULL);
    }
    mock_cap(x, 0, model, sizeof(model));
    j = jobs_add(x->m, JOB_VIDEO, model);
    if (j == NULL || jobs_set(&j->prompt, prompt, MOCK_PROMPT_KEEP) < 0) {
        cJSON_Delete(root);
        mock_video_ref_cleanup(&ref);
        return gemini_envelope(x, 503, NULL, "mock: job store full", NULL);
    }
    mock_video_ref_record("gemini", j->id, &ref);
    j->video = true;
    j->fail = jobs_prompt_fails(prompt);
    if (cJSON_IsNumber(secs)) {
        snprintf(j->seconds, sizeof(j->seconds), "%d", (int)secs->valuedouble);
    }
    snprintf(j->size, sizeof(j->size), "%s", ratio != NULL ? ratio : "16:9");
    cJSON_Delete(root);
    struct evbuffer *out = mock_out_body(x);
    evbuffer_add_printf(out, "{\"name\":\"models/");
    mock_json_escape(out, j->model, strlen(j->model));
    evbuffer_add_printf(out, "/operations/%s\"}", j->id);
    return 200;
}

/*
 * GET /gemini/v1beta/models/{model}/operations/{id}: {name} while it runs; then done with an error
 * (mock:fail) or with generatedSamples[0].video.uri at this mock's files/{id}:download (the
 * artifact_url switch replaces it), as the Gemini API names its files.
 */
int gemini_operation_get(struct exchange *x)
{
    struct job *j = veo_find(x);
    struct job_view v;
    char origin[300];
    if (j == NULL) {
        return gemini_envelope(x, 404, NULL, "Operation not found.", NULL);
    }
    jobs_view(j, mock_monotonic_ms(), &v);
    struct evbuffer *out = mock_out_body(x);
    evbuffer_add_printf(out, "{\"name\":\"models/");
    mock_json_escape(out, j->model, strlen(j->model));
    evbuffer_add_printf(out, "/operations/%s\"", j->id);
    if (v.phase == PHASE_QUEUED || v.phase == PHASE_RUNNING) {
        evbuffer_add_printf(out, "}");
        return 200;
    }
    if (v.phase != PHASE_DONE) {
        evbuffer_add_printf(out, ",\"done\":true,\"error\":{\"code\":13,\"message\":\"mock: "
                                 "generation failed (the prompt asked for mock:fail)\"}}");
        return 200;
    }
    evbuffer_add_printf(out, ",\"done\":true,\"response\":{\"@type\":\"type.googleapis.com/"
                             "google.ai.generativelanguage.v1beta.PredictLongRunningResponse\","
                             "\"generateVideoResponse\":{\"generatedSamples\":[{\"video\":{"
                             "\"uri\":");
    if (x->m->config.artifact_url != NULL) {
        mock_json_string(out, x->m->config.artifact_url);
    } else {
        mock_origin(x, origin, sizeof(origin));
        evbuffer_add_printf(out, "\"");
        mock_json_escape(out, origin, strlen(origin));
        evbuffer_add_printf(out, "/gemini/v1beta/files/%s:download?alt=media\"", j->id);
    }
    evbuffer_add_printf(out, "}}]}}}");
    return 200;
}

/*
 * GET /gemini/v1beta/files/{id}:download: the video's bytes, the same as /_mock/blob/{id}.mp4, to
 * callers with the key (the dialect's auth has run). The content_redirect switch answers 302 to
 * it instead, as Google's download does to its storage host.
 */
int gemini_file_download(struct exchange *x)
{
    struct job *j = x->n_caps >= 1 ? jobs_find(x->m, JOB_VIDEO, x->cap[0].s, x->cap[0].n) : NULL;
    struct job_view v;
    char name[96];
    const char *type;
    if (j == NULL || !j->video) {
        return gemini_envelope(x, 404, NULL, "File not found.", NULL);
    }
    jobs_view(j, mock_monotonic_ms(), &v);
    if (v.phase != PHASE_DONE) {
        return gemini_envelope(x, 404, NULL, "File not found.", NULL);
    }
    if (x->m->config.content_redirect != NULL) {
        mock_out_header(x, "Location", x->m->config.content_redirect);
        return 302;
    }
    snprintf(name, sizeof(name), "%s.mp4", j->id);
    type = blob_render(mock_out_body(x), name);
    if (type == NULL) {
        return gemini_envelope(x, 500, NULL, "mock: could not render the file", NULL);
    }
    mock_out_header(x, "Content-Type", type);
    return 200;
}
