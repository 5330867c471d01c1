/*
 * adapters/gemini.c — Google's Gemini generateContent dialect (the Gemini Developer API,
 * generativelanguage.googleapis.com/v1beta). Chat: the client's OpenAI chat body becomes a
 * GenerateContentRequest, the reply (whole, or streamed as server-sent events with alt=sse) becomes
 * OpenAI's chat.completion or chat.completion.chunk objects, and Google's error envelope
 * {"error":{"code","message","status","details"}} becomes sluice's error with the gRPC status name
 * as its type and code. The request mapping is in gemini_request.c. Video tasks (Veo, a
 * long-running operation: the only polled kind, so build_poll and parse_poll are Veo's) are in
 * gemini_video.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/gemini.h"
#include "core/util.h"

/* Hex digits of a reply's SHA-256 in the ids made up for replies without a responseId. */
#define GEMINI_ID_HASH_CHARS 24
/* Random characters after "call_" in the ids of Gemini's tool calls, as in OpenAI's. */
#define GEMINI_CALL_ID_CHARS 24

/* finishReason → OpenAI finish_reason. Anything not listed (OTHER, RECITATION, …) is "stop". */
static const struct {
    const char *reason;
    const char *finish;
} gemini_finish_table[] = {
    {"STOP", "stop"},
    {"MAX_TOKENS", "length"},
    {"SAFETY", "content_filter"},
    {"BLOCKLIST", "content_filter"},
    {"PROHIBITED_CONTENT", "content_filter"},
    {"SPII", "content_filter"},
    {"IMAGE_SAFETY", "content_filter"},
    {"IMAGE_PROHIBITED_CONTENT", "content_filter"},
    {"LANGUAGE", "content_filter"},
};

/*
 * Google's status names and whether a retry can help. A name decides over the HTTP status, so an
 * error event inside a 200 stream is classified the same way as the same error as an HTTP reply.
 */
static const struct {
    const char *status;
    bool retryable;
} gemini_status_table[] = {
    {"RESOURCE_EXHAUSTED", true}, {"UNAVAILABLE", true},       {"DEADLINE_EXCEEDED", true},
    {"INTERNAL", true},           {"INVALID_ARGUMENT", false}, {"FAILED_PRECONDITION", false},
    {"PERMISSION_DENIED", false}, {"UNAUTHENTICATED", false},  {"NOT_FOUND", false},
    {"OUT_OF_RANGE", false},      {"UNIMPLEMENTED", false},
};

/* Per-candidate progress of a stream. */
struct gemini_cand_state {
    bool seen;
    bool role_sent;
    bool finished;
    int n_calls; /* tool calls sent so far: the next call's index */
};

/* What a stream remembers between events. */
struct gemini_stream {
    char id[96];
    bool have_id;
    char *model; /* owned */
    bool model_from_reply;
    int64_t created;
    int want; /* candidates asked for (n): the stream is done once they have all finished */
    struct gemini_cand_state cands[GEMINI_MAX_CANDIDATES];
    cJSON *usage; /* OpenAI usage from the latest usageMetadata; owned */
    bool usage_sent;
    bool done;
};

int gemini_oom(struct core_err *err)
{
    return core_err_set(err, CORE_ENOMEM, NULL, "out of memory in the gemini dialect");
}

static double gemini_num(const cJSON *o, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(n) ? n->valuedouble : 0;
}

/* A part that is not one of Gemini's thought summaries ("thought": true). */
static bool gemini_not_thought(const cJSON *part)
{
    return !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought"));
}

char *gemini_text(const cJSON *parts, bool *any)
{
    return adapter_text_join(parts, "", gemini_not_thought, any);
}

/* ---- request ---------------------------------------------------------------------------- */

/* A task kind this chat-only dialect cannot serve: the client's request, so a 400 on model. */
static int gemini_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EINVAL, "model", "%s tasks are not supported by gemini",
                        adapter_op_name(op));
}

/*
 * The URL of the call: <base_url>/models/{model}:generateContent, or :streamGenerateContent with
 * alt=sse for server-sent events. A model already written as a resource name ("models/x",
 * "tunedModels/y") is used as it is. Caller frees; NULL on OOM.
 */
static char *gemini_url(const struct adapter_target *t, bool stream)
{
    const char *prefix = strchr(t->model, '/') ? "" : "models/";
    const char *method = stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
    size_t n = strlen(prefix) + strlen(t->model) + strlen(method) + 1;
    char *path = malloc(n);
    char *url;

    if (path == NULL) {
        return NULL;
    }
    snprintf(path, n, "%s%s%s", prefix, t->model, method);
    url = adapter_url_join(t->base_url, path);
    free(path);
    return url;
}

static int gemini_build_request(const struct adapter_call *call, struct adapter_request *out,
                                struct core_err *err)
{
    const cJSON *input = call->input;
    const struct adapter_target *t = call->target;
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(input, "messages");
    cJSON *body = NULL;
    int rc = 0;

    if (call->op == ADAPTER_OP_VIDEO) {
        return gemini_video_build_request(call, out, err);
    }
    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc = gemini_unsupported(call->op, err);
        goto out;
    }
    if ((rc = adapter_target_check(t, err)) != 0) {
        goto out;
    }
    if (cJSON_IsObject(input) && (rc = gemini_check_fields(input, err)) != 0) {
        goto out;
    }
    if (!cJSON_IsObject(input) || !cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "a chat request needs a non-empty messages array");
        goto out;
    }
    if ((body = cJSON_CreateObject()) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    if ((rc = gemini_map_request(input, body, err)) != 0) {
        goto out;
    }
    if (adapter_request_set_json(out, "POST", gemini_url(t, call->stream), body) != 0 ||
        adapter_request_add_key(out, "x-goog-api-key: ", t->api_key) != 0 ||
        adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        rc = gemini_oom(err);
        goto out;
    }
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/* ---- replies ---------------------------------------------------------------------------- */

/*
 * The error object of a Google error envelope: {"error":{...}}, or the first element of the
 * [{"error":{...}}] array that streamGenerateContent answers with. NULL when root is neither.
 */
static const cJSON *gemini_error_root(const cJSON *root)
{
    if (cJSON_IsArray(root)) {
        root = cJSON_GetArrayItem(root, 0);
    }
    return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "error")) ? root : NULL;
}

/* The wait a google.rpc.RetryInfo detail asks for ("13s", "0.5s"), or -1. */
static int64_t gemini_retry_info_ms(const cJSON *error)
{
    const cJSON *d;

    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(error, "details"))
    {
        const char *type = adapter_json_str(d, "@type");
        const char *delay = adapter_json_str(d, "retryDelay");
        size_t n = type ? strlen(type) : 0;
        int64_t ms;

        if (n >= 20 && strcmp(type + n - 20, "google.rpc.RetryInfo") == 0 && delay != NULL &&
            adapter_parse_duration_ms(delay, &ms) == 0) {
            return ms;
        }
    }
    return -1;
}

/*
 * Fills err from a Google error envelope (root may be NULL or not an envelope) in a reply with
 * resp->status: the shared HTTP rules, then Google's status name as type and code and as the
 * judge of retryability, and RetryInfo's delay when no retry-after header named a wait.
 */
int gemini_http_error(const struct adapter_response *resp, const cJSON *root, struct core_err *err)
{
    const cJSON *env = gemini_error_root(root);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(env, "error");
    const char *status = adapter_json_str(error, "status");
    struct adapter_error_fields f;
    bool have = adapter_error_fields_read(env, &f);

    if (have && status != NULL) {
        f.type = status;
        snprintf(f.code, sizeof(f.code), "%s", status);
    }
    adapter_http_error(resp, have ? &f : NULL, err);
    for (size_t i = 0; status != NULL && i < ARRAY_LEN(gemini_status_table); i++) {
        if (strcmp(status, gemini_status_table[i].status) == 0) {
            err->retryable = gemini_status_table[i].retryable;
        }
    }
    if (err->retry_after_ms < 0) {
        err->retry_after_ms = gemini_retry_info_ms(error);
    }
    return err->code;
}

/*
 * A prompt Gemini refused to answer (no candidates, promptFeedback.blockReason): a content-policy
 * failure that the same prompt will meet again anywhere, so not retryable. Returns 0 when root
 * names no blockReason.
 */
static int gemini_blocked(const cJSON *root, int status, struct core_err *err)
{
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(root, "promptFeedback");
    const char *reason = adapter_json_str(fb, "blockReason");
    const char *detail = adapter_json_str(fb, "blockReasonMessage");

    if (reason == NULL) {
        return 0;
    }
    core_err_set(err, CORE_EUPSTREAM, NULL, "the provider blocked the prompt (blockReason %s)%s%s",
                 reason, detail ? ": " : "", detail ? detail : "");
    core_err_set_code(err, "content_policy_violation");
    snprintf(err->type, sizeof(err->type), "invalid_request_error");
    err->http_status = 400;
    err->provider_status = status;
    err->retryable = false;
    err->retry_after_ms = -1;
    return err->code;
}

static const char *gemini_finish(const char *reason, bool tool_calls)
{
    if (tool_calls) {
        return "tool_calls";
    }
    for (size_t i = 0; reason != NULL && i < ARRAY_LEN(gemini_finish_table); i++) {
        if (strcmp(reason, gemini_finish_table[i].reason) == 0) {
            return gemini_finish_table[i].finish;
        }
    }
    return "stop";
}

/*
 * usageMetadata → OpenAI usage. Thinking tokens are billed as output, so they count in
 * completion_tokens and are also shown as reasoning_tokens. *out is NULL when meta is not an
 * object. Returns 0 or CORE_ENOMEM.
 */
static int gemini_usage(const cJSON *meta, cJSON **out)
{
    double prompt = gemini_num(meta, "promptTokenCount");
    double thoughts = gemini_num(meta, "thoughtsTokenCount");
    double completion = gemini_num(meta, "candidatesTokenCount") + thoughts;
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(meta, "totalTokenCount");
    cJSON *u;
    cJSON *pd;
    cJSON *cd;

    *out = NULL;
    if (!cJSON_IsObject(meta)) {
        return 0;
    }
    u = cJSON_CreateObject();
    if (u == NULL || cJSON_AddNumberToObject(u, "prompt_tokens", prompt) == NULL ||
        cJSON_AddNumberToObject(u, "completion_tokens", completion) == NULL ||
        cJSON_AddNumberToObject(u, "total_tokens",
                                cJSON_IsNumber(total) ? total->valuedouble : prompt + completion) ==
            NULL ||
        (pd = cJSON_AddObjectToObject(u, "prompt_tokens_details")) == NULL ||
        cJSON_AddNumberToObject(pd, "cached_tokens", gemini_num(meta, "cachedContentTokenCount")) ==
            NULL ||
        (cd = cJSON_AddObjectToObject(u, "completion_tokens_details")) == NULL ||
        cJSON_AddNumberToObject(cd, "reasoning_tokens", thoughts) == NULL) {
        cJSON_Delete(u);
        return CORE_ENOMEM;
    }
    *out = u;
    return 0;
}

/*
 * A functionCall part as an OpenAI tool call {id, type, function{name, arguments}}, with its
 * thought signature kept where Google's OpenAI endpoint puts it. Gemini gives its calls no id (it
 * links results by name), so each gets a random one in OpenAI's shape, "call_" + 24: an id made
 * from positions would repeat on every turn of a conversation and collide in clients that key
 * tool state by id. index >= 0 adds the "index" a stream delta carries. Returns 0 with *out set,
 * or CORE_ENOMEM / CORE_EINTERNAL (no randomness) with err filled.
 */
static int gemini_tool_call(const cJSON *part, int index, cJSON **out, struct core_err *err)
{
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(part, "functionCall");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fc, "args");
    const char *name = adapter_json_str(fc, "name");
    const char *sig = adapter_json_str(part, "thoughtSignature");
    char *text = NULL;
    cJSON *call = NULL;
    char id[48];
    int rc = 0;

    *out = NULL;
    if (adapter_random_id("call_", GEMINI_CALL_ID_CHARS, id, sizeof(id)) != 0) {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "no randomness for a tool call id");
        goto out;
    }
    text = cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : strdup("{}");
    if (text == NULL ||
        (call = adapter_tool_call_json(index, id, name ? name : "", text)) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    if (sig != NULL) {
        cJSON *google = adapter_json_wrap("thought_signature", cJSON_CreateString(sig));
        if (!adapter_json_put(call, "extra_content", adapter_json_wrap("google", google))) {
            rc = gemini_oom(err);
            goto out;
        }
    }
    *out = call;
    call = NULL;
out:
    free(text);
    cJSON_Delete(call);
    return rc;
}

/*
 * A Gemini logprob candidate {token, logProbability} as OpenAI's {token, logprob, bytes}, bytes
 * being the token's UTF-8 bytes. proto3 JSON leaves out a logProbability of 0. NULL on OOM.
 */
static cJSON *gemini_token_logprob(const cJSON *c)
{
    const char *token = adapter_json_str(c, "token");
    cJSON *o = cJSON_CreateObject();
    cJSON *bytes = NULL;

    token = token ? token : "";
    if (o == NULL || cJSON_AddStringToObject(o, "token", token) == NULL ||
        cJSON_AddNumberToObject(o, "logprob", gemini_num(c, "logProbability")) == NULL ||
        (bytes = cJSON_AddArrayToObject(o, "bytes")) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    for (const unsigned char *b = (const unsigned char *)token; *b != '\0'; b++) {
        if (!adapter_json_push(bytes, cJSON_CreateNumber(*b))) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/*
 * A candidate's logprobsResult as an OpenAI choice's logprobs (ChatCompletion's shape):
 * {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], refusal: null},
 * chosenCandidates[i] with topCandidates[i].candidates as its alternatives ([] when Gemini sent
 * none, as OpenAI does without top_logprobs). *out is NULL when the candidate carries no
 * logprobsResult. Returns 0 or CORE_ENOMEM.
 */
static int gemini_choice_logprobs(const cJSON *cand, cJSON **out)
{
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(cand, "logprobsResult");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(lr, "topCandidates");
    const cJSON *step = cJSON_IsArray(top) ? top->child : NULL;
    const cJSON *chosen;
    cJSON *lp = NULL;
    cJSON *content = NULL;

    *out = NULL;
    if (!cJSON_IsObject(lr)) {
        return 0;
    }
    if ((lp = cJSON_CreateObject()) == NULL ||
        (content = cJSON_AddArrayToObject(lp, "content")) == NULL ||
        cJSON_AddNullToObject(lp, "refusal") == NULL) {
        cJSON_Delete(lp);
        return CORE_ENOMEM;
    }
    cJSON_ArrayForEach(chosen, cJSON_GetObjectItemCaseSensitive(lr, "chosenCandidates"))
    {
        cJSON *entry = gemini_token_logprob(chosen);
        cJSON *alts = NULL;
        const cJSON *alt;

        if (!adapter_json_push(content, entry) ||
            (alts = cJSON_AddArrayToObject(entry, "top_logprobs")) == NULL) {
            cJSON_Delete(lp);
            return CORE_ENOMEM;
        }
        cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(step, "candidates"))
        {
            if (!adapter_json_push(alts, gemini_token_logprob(alt))) {
                cJSON_Delete(lp);
                return CORE_ENOMEM;
            }
        }
        step = step ? step->next : NULL;
    }
    *out = lp;
    return 0;
}

/* A candidate's index: its "index", which proto3 JSON leaves out when it is 0; else pos. */
static int gemini_cand_index(const cJSON *cand, int pos)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(cand, "index");

    if (cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < 1e6) {
        return (int)idx->valuedouble;
    }
    return pos;
}

/*
 * One candidate as an OpenAI choice appended to choices: its text, its function calls, its
 * logprobs when it carries them (left out otherwise) and its finish. Returns 0, or a negative
 * code with err filled.
 */
static int gemini_choice(const cJSON *cand, int pos, cJSON *choices, struct core_err *err)
{
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
    const char *reason = adapter_json_str(cand, "finishReason");
    int index = gemini_cand_index(cand, pos);
    cJSON *choice = cJSON_CreateObject();
    cJSON *msg = NULL;
    cJSON *calls = NULL;
    cJSON *logprobs = NULL;
    const cJSON *p;
    bool any = false;
    char *text = gemini_text(parts, &any);
    int n = 0;
    int rc = 0;

    if (!adapter_json_push(choices, choice) || text == NULL ||
        cJSON_AddNumberToObject(choice, "index", index) == NULL ||
        (msg = cJSON_AddObjectToObject(choice, "message")) == NULL ||
        cJSON_AddStringToObject(msg, "role", "assistant") == NULL ||
        (any ? cJSON_AddStringToObject(msg, "content", text)
             : cJSON_AddNullToObject(msg, "content")) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(p, parts)
    {
        cJSON *call;

        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "functionCall"))) {
            continue;
        }
        if (calls == NULL && (calls = cJSON_AddArrayToObject(msg, "tool_calls")) == NULL) {
            rc = gemini_oom(err);
            goto out;
        }
        if ((rc = gemini_tool_call(p, -1, &call, err)) != 0) {
            goto out;
        }
        if (!adapter_json_push(calls, call)) {
            rc = gemini_oom(err);
            goto out;
        }
        n++;
    }
    if (gemini_choice_logprobs(cand, &logprobs) != 0 ||
        (logprobs != NULL && !adapter_json_put(choice, "logprobs", logprobs)) ||
        cJSON_AddStringToObject(choice, "finish_reason", gemini_finish(reason, n > 0)) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
out:
    free(text);
    return rc;
}

/*
 * The id of a reply: Gemini's responseId, else "chatcmpl-gemini-" and the start of the SHA-256 of
 * the bytes, so the same reply always gets the same id.
 */
static void gemini_reply_id(const cJSON *root, const char *body, size_t len, char *out, size_t size)
{
    const char *rid = adapter_json_str(root, "responseId");
    char hex[65];

    if (rid != NULL && rid[0] != '\0') {
        snprintf(out, size, "%s", rid);
        return;
    }
    util_sha256_hex(body, len, hex);
    snprintf(out, size, "chatcmpl-gemini-%.*s", GEMINI_ID_HASH_CHARS, hex);
}

static int gemini_parse_response(const struct adapter_call *call,
                                 const struct adapter_response *resp, struct adapter_result *out,
                                 struct core_err *err)
{
    const struct adapter_target *t = call->target;
    cJSON *root = NULL;
    cJSON *result = NULL;
    cJSON *choices;
    const cJSON *cands;
    const cJSON *cand;
    const char *model;
    char id[96];
    int pos = 0;
    int rc = 0;

    if (call->op == ADAPTER_OP_VIDEO) {
        return gemini_video_parse_response(call, resp, out, err);
    }
    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc = gemini_unsupported(call->op, err);
        goto out;
    }
    if ((rc = adapter_reply_root(resp, gemini_http_error, &root, err)) != 0) {
        goto out;
    }
    cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    if (cJSON_GetArraySize(cands) == 0) {
        if ((rc = gemini_blocked(root, resp->status, err)) == 0) {
            rc = adapter_malformed_body(resp->status, resp->body_len, "no candidates", err);
        }
        goto out;
    }
    model = adapter_json_str(root, "modelVersion");
    model = model ? model : (t && t->model ? t->model : "");
    gemini_reply_id(root, resp->body, resp->body_len, id, sizeof(id));
    result = cJSON_CreateObject();
    if (result == NULL || cJSON_AddStringToObject(result, "id", id) == NULL ||
        cJSON_AddStringToObject(result, "object", "chat.completion") == NULL ||
        cJSON_AddNumberToObject(result, "created", (double)(resp->now_ms / 1000)) == NULL ||
        cJSON_AddStringToObject(result, "model", model) == NULL ||
        (choices = cJSON_AddArrayToObject(result, "choices")) == NULL ||
        gemini_usage(cJSON_GetObjectItemCaseSensitive(root, "usageMetadata"), &out->usage) != 0) {
        rc = gemini_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(cand, cands)
    {
        if ((rc = gemini_choice(cand, pos++, choices, err)) != 0) {
            goto out;
        }
    }
    if ((out->usage != NULL &&
         !adapter_json_put(result, "usage", cJSON_Duplicate(out->usage, true))) ||
        (adapter_json_str(root, "responseId") != NULL &&
         (out->upstream_id = strdup(adapter_json_str(root, "responseId"))) == NULL)) {
        rc = gemini_oom(err);
        goto out;
    }
    out->result = result;
    result = NULL;
out:
    cJSON_Delete(root);
    cJSON_Delete(result);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

/* ---- streaming -------------------------------------------------------------------------- */

static void *gemini_stream_new(const struct adapter_call *call)
{
    struct gemini_stream *s = calloc(1, sizeof(*s));
    const char *model = (call && call->target && call->target->model) ? call->target->model : "";
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(call ? call->input : NULL, "n");

    if (s == NULL || (s->model = strdup(model)) == NULL) {
        free(s);
        return NULL;
    }
    s->created = util_now_ms() / 1000;
    s->want = 1;
    if (cJSON_IsNumber(n) && n->valuedouble >= 1 && n->valuedouble <= GEMINI_MAX_CANDIDATES) {
        s->want = (int)n->valuedouble;
    }
    return s;
}

static void gemini_stream_free(void *state)
{
    struct gemini_stream *s = state;

    if (s == NULL) {
        return;
    }
    free(s->model);
    cJSON_Delete(s->usage);
    free(s);
}

/*
 * A chat.completion.chunk with one choice {index, delta, logprobs?, finish_reason} appended to
 * chunks, or with choices [] and usage when index < 0. Takes delta (or usage) and logprobs (NULL:
 * none, and the choice leaves the field out). Returns false on OOM.
 */
static bool gemini_chunk(const struct gemini_stream *s, cJSON *chunks, int index, cJSON *delta,
                         cJSON *logprobs, const char *finish)
{
    cJSON *chunk = cJSON_CreateObject();
    cJSON *choices = NULL;
    cJSON *choice = NULL;
    bool ok = chunk != NULL && cJSON_AddStringToObject(chunk, "id", s->id) != NULL &&
              cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk") != NULL &&
              cJSON_AddNumberToObject(chunk, "created", (double)s->created) != NULL &&
              cJSON_AddStringToObject(chunk, "model", s->model) != NULL &&
              (choices = cJSON_AddArrayToObject(chunk, "choices")) != NULL;

    if (ok && index >= 0) {
        ok = adapter_json_push(choices, choice = cJSON_CreateObject()) &&
             cJSON_AddNumberToObject(choice, "index", index) != NULL;
    }
    if (!ok) {
        cJSON_Delete(delta);
    } else {
        ok = adapter_json_put(index < 0 ? chunk : choice, index < 0 ? "usage" : "delta", delta);
    }
    if (ok && logprobs != NULL && index >= 0) {
        ok = adapter_json_put(choice, "logprobs", logprobs);
        logprobs = NULL;
    }
    if (ok && index >= 0) {
        ok = (finish ? cJSON_AddStringToObject(choice, "finish_reason", finish)
                     : cJSON_AddNullToObject(choice, "finish_reason")) != NULL;
    }
    cJSON_Delete(logprobs);
    if (!ok) {
        cJSON_Delete(chunk);
        return false;
    }
    return adapter_json_push(chunks, chunk);
}

/* *lp handed over to the one chunk that carries it: *lp is NULL after. */
static cJSON *gemini_take(cJSON **lp)
{
    cJSON *v = *lp;

    *lp = NULL;
    return v;
}

/*
 * One streamed candidate as chunks: the role on its first appearance, its new text, its function
 * calls (each complete, with its id: Gemini does not split a call across events, so one delta
 * carries the whole call and the id needs no keeping), and its finish. The logprobs of the
 * event's tokens ride on the first chunk after the role one, as OpenAI's do on the content
 * delta; on an empty delta when the event brought nothing else.
 */
static int gemini_stream_candidate(struct gemini_stream *s, const cJSON *cand, int pos,
                                   cJSON *chunks, struct core_err *err)
{
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
    const char *reason = adapter_json_str(cand, "finishReason");
    int index = gemini_cand_index(cand, pos);
    struct gemini_cand_state *c;
    cJSON *calls = NULL;
    cJSON *lp = NULL;
    const cJSON *p;
    bool any = false;
    char *text = NULL;
    int rc = 0;

    if (index >= GEMINI_MAX_CANDIDATES) {
        return adapter_malformed_body(200, 0, "a stream event names a candidate past the limit",
                                      err);
    }
    c = &s->cands[index];
    c->seen = true;
    if (gemini_choice_logprobs(cand, &lp) != 0 || (text = gemini_text(parts, &any)) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    if (!c->role_sent) {
        if (!gemini_chunk(s, chunks, index,
                          adapter_json_wrap("role", cJSON_CreateString("assistant")), NULL, NULL)) {
            rc = gemini_oom(err);
            goto out;
        }
        c->role_sent = true;
    }
    if (text[0] != '\0' &&
        !gemini_chunk(s, chunks, index, adapter_json_wrap("content", cJSON_CreateString(text)),
                      gemini_take(&lp), NULL)) {
        rc = gemini_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(p, parts)
    {
        cJSON *call;

        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "functionCall"))) {
            continue;
        }
        if (calls == NULL && (calls = cJSON_CreateArray()) == NULL) {
            rc = gemini_oom(err);
            goto out;
        }
        if ((rc = gemini_tool_call(p, c->n_calls, &call, err)) != 0) {
            goto out;
        }
        if (!adapter_json_push(calls, call)) {
            rc = gemini_oom(err);
            goto out;
        }
        c->n_calls++;
    }
    if (calls != NULL &&
        !gemini_chunk(s, chunks, index, adapter_json_wrap("tool_calls", gemini_take(&calls)),
                      gemini_take(&lp), NULL)) {
        rc = gemini_oom(err);
        goto out;
    }
    if (reason != NULL && !c->finished) {
        if (!gemini_chunk(s, chunks, index, cJSON_CreateObject(), gemini_take(&lp),
                          gemini_finish(reason, c->n_calls > 0))) {
            rc = gemini_oom(err);
            goto out;
        }
        c->finished = true;
    }
    if (lp != NULL &&
        !gemini_chunk(s, chunks, index, cJSON_CreateObject(), gemini_take(&lp), NULL)) {
        rc = gemini_oom(err);
        goto out;
    }
out:
    free(text);
    cJSON_Delete(calls);
    cJSON_Delete(lp);
    return rc;
}

/*
 * True once the candidates asked for (n, else 1) have finished, and every other candidate the
 * stream showed: waiting for n keeps a candidate that shows up late from being cut off.
 */
static bool gemini_stream_finished(const struct gemini_stream *s)
{
    int finished = 0;

    for (int i = 0; i < GEMINI_MAX_CANDIDATES; i++) {
        if (s->cands[i].seen && !s->cands[i].finished) {
            return false;
        }
        finished += s->cands[i].finished ? 1 : 0;
    }
    return finished >= s->want;
}

/*
 * One event of an alt=sse stream: each data is a whole GenerateContentResponse. There is no
 * [DONE]; the stream is over when every candidate has sent its finishReason, and the usage chunk
 * goes out then, from the latest usageMetadata (Gemini repeats it on every event, complete on the
 * last). An error object in the stream fails the call the way the same error as an HTTP reply
 * would.
 */
static int gemini_stream_event(void *state, const char *event, const char *data, size_t len,
                               cJSON *chunks, bool *done, struct core_err *err)
{
    struct gemini_stream *s = state;
    cJSON *root = NULL;
    const cJSON *cands;
    const cJSON *cand;
    const char *model;
    cJSON *usage = NULL;
    int pos = 0;
    int rc = 0;

    core_err_clear(err);
    if (s == NULL || data == NULL || len == 0 || (len == 6 && memcmp(data, "[DONE]", 6) == 0)) {
        goto out;
    }
    root = adapter_json_parse(data, len);
    if (gemini_error_root(root) != NULL) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(gemini_error_root(root), "error"), "code");
        struct adapter_response r = {.status = 500};
        if (cJSON_IsNumber(code) && code->valuedouble >= 400 && code->valuedouble < 600) {
            r.status = (int)code->valuedouble;
        }
        rc = gemini_http_error(&r, root, err);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = adapter_malformed_body(200, len, "a stream event is not a JSON object", err);
        goto out;
    }
    if (!s->have_id) {
        gemini_reply_id(root, data, len, s->id, sizeof(s->id));
        s->have_id = true;
    }
    model = adapter_json_str(root, "modelVersion");
    if (model != NULL && !s->model_from_reply) {
        char *m = strdup(model);
        if (m == NULL) {
            rc = gemini_oom(err);
            goto out;
        }
        free(s->model);
        s->model = m;
        s->model_from_reply = true;
    }
    cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    if (cJSON_GetArraySize(cands) == 0 && (rc = gemini_blocked(root, 200, err)) != 0) {
        goto out;
    }
    cJSON_ArrayForEach(cand, cands)
    {
        if ((rc = gemini_stream_candidate(s, cand, pos++, chunks, err)) != 0) {
            goto out;
        }
    }
    if (gemini_usage(cJSON_GetObjectItemCaseSensitive(root, "usageMetadata"), &usage) != 0) {
        rc = gemini_oom(err);
        goto out;
    }
    if (usage != NULL) {
        cJSON_Delete(s->usage);
        s->usage = usage;
    }
    s->done = s->done || gemini_stream_finished(s);
    if (s->done && s->usage != NULL && !s->usage_sent) {
        cJSON *u = cJSON_Duplicate(s->usage, true);
        if (!gemini_chunk(s, chunks, -1, u, NULL, NULL)) {
            rc = gemini_oom(err);
            goto out;
        }
        s->usage_sent = true;
    }
out:
    cJSON_Delete(root);
    if (s != NULL) {
        *done = s->done;
    }
    return rc;
}

const struct adapter adapter_gemini = {
    .name = "gemini",
    .build_request = gemini_build_request,
    .parse_response = gemini_parse_response,
    .build_poll = gemini_video_build_poll,
    .parse_poll = gemini_video_parse_poll,
    .stream_new = gemini_stream_new,
    .stream_event = gemini_stream_event,
    .stream_free = gemini_stream_free,
};
