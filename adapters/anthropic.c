/*
 * adapters/anthropic.c — the Anthropic Messages dialect, chat only. Turns an OpenAI chat body into
 * a POST /messages body (the mapping is in anthropic_request.c), a message reply back into a
 * chat.completion, and Anthropic's stream events into OpenAI chat.completion.chunk objects
 * (anthropic_stream.c). This file holds the vtable, the HTTP request and reply, error
 * classification and usage.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/anthropic.h"
#include "adapters/dialect.h"

#define ANTHROPIC_VERSION "2023-06-01"
/* Token counts above this are not counts: read as 0, so sums of them stay exact in a double. */
#define ANTHROPIC_MAX_TOKENS_COUNT 1e15

/* stop_reason → OpenAI finish_reason. Anything not listed (a value added later) reads as stop. */
static const struct {
    const char *stop_reason;
    const char *finish_reason;
} anthropic_finish_table[] = {
    {"end_turn", "stop"},
    {"stop_sequence", "stop"},
    {"pause_turn", "stop"},
    {"max_tokens", "length"},
    {"model_context_window_exceeded", "length"},
    {"tool_use", "tool_calls"},
    /*
     * A refusal is still a completed message: Anthropic answered 200, billed the tokens and may
     * have streamed part of an answer before stopping, so the task is done (not failed, not
     * retried) with content_filter, as OpenAI reports a filtered completion.
     */
    {"refusal", "content_filter"},
};

/*
 * Error types as the HTTP status Anthropic answers them with. Used for errors that arrive inside a
 * 200 (a stream's error event), so they are classified by the same rules as an HTTP error: an
 * overloaded_error mid-stream is retried like a 529, an invalid_request_error is final like a 400.
 * An unknown type maps to status 0: not retryable.
 */
static const struct {
    const char *type;
    int status;
} anthropic_error_status_table[] = {
    {"invalid_request_error", 400}, {"authentication_error", 401},
    {"billing_error", 402},         {"permission_error", 403},
    {"not_found_error", 404},       {"request_too_large", 413},
    {"rate_limit_error", 429},      {"api_error", 500},
    {"timeout_error", 504},         {"overloaded_error", 529},
};

/*
 * 429s that no wait fixes, by error.details.error_code: the organization's monthly spend cap
 * (Anthropic sends it as a rate_limit_error without retry-after).
 */
static const char *const anthropic_final_429_codes[] = {"enforced_spend_limit_reached"};

/* The buckets Anthropic reports, each with the RFC 3339 time it refills. */
static const struct adapter_reset_header anthropic_reset_headers[] = {
    {"anthropic-ratelimit-requests-reset", "anthropic-ratelimit-requests-remaining"},
    {"anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-remaining"},
    {"anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-input-tokens-remaining"},
    {"anthropic-ratelimit-output-tokens-reset", "anthropic-ratelimit-output-tokens-remaining"},
};

/* Usage object field names, by ANTHROPIC_USAGE_* index. */
static const char *const anthropic_usage_fields[ANTHROPIC_USAGE_N] = {
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
};

/* A task kind this chat-only dialect cannot serve: the client's request, so a 400 on model. */
static int anthropic_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EINVAL, "model", "%s tasks are not supported by anthropic",
                        adapter_op_name(op));
}

/*
 * The Messages body is built field by field rather than copied from the client's body: the two
 * dialects share few names, and a field Anthropic does not know is a 400 there. A field with no
 * Anthropic meaning is refused first (the field policy in anthropic.h), not left out, so a client
 * never gets an answer that quietly ignored what it asked for.
 */
static int anthropic_build_request(const struct adapter_call *call, struct adapter_request *out,
                                   struct core_err *err)
{
    const cJSON *input = call->input;
    const struct adapter_target *t = call->target;
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(input, "messages");
    cJSON *body = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc = anthropic_unsupported(call->op, err);
        goto out;
    }
    if ((rc = adapter_target_check(t, err)) != 0) {
        goto out;
    }
    if ((rc = anthropic_fields_check(input, err)) != 0) {
        goto out;
    }
    if (!cJSON_IsObject(input) || !cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "a chat request needs a non-empty messages array");
        goto out;
    }
    body = cJSON_CreateObject();
    if (body == NULL || !adapter_json_put(body, "model", cJSON_CreateString(t->model))) {
        rc = adapter_oom(err);
        goto out;
    }
    if ((rc = anthropic_map_request(input, t, body, err)) != 0) {
        goto out;
    }
    if (call->stream && !adapter_json_put(body, "stream", cJSON_CreateTrue())) {
        rc = adapter_oom(err);
        goto out;
    }
    rc = adapter_request_set_json(out, "POST", adapter_url_join(t->base_url, "messages"), body);
    if (rc != 0 || adapter_request_add_key(out, "x-api-key: ", t->api_key) != 0 ||
        adapter_request_add_header(out, "anthropic-version: %s", ANTHROPIC_VERSION) != 0 ||
        adapter_request_add_header(out, "content-type: application/json") != 0) {
        rc = adapter_oom(err);
        goto out;
    }
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/* Reads exactly n decimal digits at *p. */
static bool rfc3339_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int k = 0; k < n; k++) {
        if (!isdigit((unsigned char)(*p)[k])) {
            return false;
        }
        v = v * 10 + ((*p)[k] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t era;
    int yoe;
    int doy;
    int doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (int)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/*
 * An RFC 3339 date-time ("2025-01-15T14:24:00Z", "…00.25+01:00") as Unix ms, fractions rounded
 * up. Strict: fixed-width fields, ranges checked, nothing after the offset but blanks. curl_getdate
 * reads HTTP dates, not this. Returns 0, or -1 when s is not such a time.
 */
static int rfc3339_parse_ms(const char *s, int64_t *out_ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s + strspn(s, " \t");
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    int64_t ms = 0;
    int frac_digits = 0;
    bool round_up = false;
    bool leap;

    if (!rfc3339_digits(&p, 4, &y) || *p++ != '-' || !rfc3339_digits(&p, 2, &mo) || *p++ != '-' ||
        !rfc3339_digits(&p, 2, &d) || (*p != 'T' && *p != 't')) {
        return -1;
    }
    p++;
    if (!rfc3339_digits(&p, 2, &h) || *p++ != ':' || !rfc3339_digits(&p, 2, &mi) || *p++ != ':' ||
        !rfc3339_digits(&p, 2, &sec)) {
        return -1;
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, frac_digits++) {
            if (frac_digits >= 18) {
                return -1;
            }
            if (frac_digits < 3) {
                ms = ms * 10 + (*p - '0');
            } else if (*p != '0') {
                round_up = true;
            }
        }
        if (frac_digits == 0) {
            return -1;
        }
        for (int k = frac_digits; k < 3; k++) {
            ms *= 10;
        }
        ms += round_up;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = (*p++ == '-') ? -1 : 1;
        if (!rfc3339_digits(&p, 2, &oh) || *p++ != ':' || !rfc3339_digits(&p, 2, &om) || oh > 23 ||
            om > 59) {
            return -1;
        }
    } else {
        return -1;
    }
    if (p[strspn(p, " \t")] != '\0') {
        return -1;
    }
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 60) {
        return -1;
    }
    *out_ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) -
               (int64_t)sign * (oh * 3600 + om * 60)) *
                  1000 +
              ms;
    return 0;
}

/*
 * A reset header's RFC 3339 time as a wait from when the reply arrived, capped at
 * ADAPTER_MAX_WAIT_MS (a time already past is no wait).
 */
static int anthropic_reset_parse(const struct adapter_response *resp, const char *value,
                                 int64_t *ms)
{
    int64_t at;

    if (rfc3339_parse_ms(value, &at) != 0) {
        return -1;
    }
    *ms = at - resp->now_ms;
    *ms = *ms < 0 ? 0 : *ms > ADAPTER_MAX_WAIT_MS ? ADAPTER_MAX_WAIT_MS : *ms;
    return 0;
}

/*
 * An error envelope {"type":"error","error":{"type","message"}} under the shared HTTP rules, with
 * Anthropic's error type also as the OpenAI code. 429s wait for the reset headers when no
 * retry-after came, and a spend-cap 429 is final.
 */
static int anthropic_http_error(const struct adapter_response *resp, const cJSON *root,
                                struct core_err *err)
{
    struct adapter_error_fields f;
    bool have = adapter_error_fields_read(root, &f);
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "error"), "details");
    const char *detail_code = adapter_json_str(details, "error_code");

    adapter_http_error(resp, have ? &f : NULL, err);
    if (have && f.type != NULL && f.type[0] != '\0' && strlen(f.type) < sizeof(err->err_code)) {
        core_err_set_code(err, f.type);
    }
    if (resp->status == 429 && detail_code != NULL) {
        for (size_t i = 0; i < ARRAY_LEN(anthropic_final_429_codes); i++) {
            if (strcmp(detail_code, anthropic_final_429_codes[i]) == 0) {
                err->retryable = false;
            }
        }
    }
    if (resp->status == 429 && err->retryable && err->retry_after_ms < 0) {
        err->retry_after_ms =
            adapter_reset_wait_ms(resp, anthropic_reset_headers, ARRAY_LEN(anthropic_reset_headers),
                                  anthropic_reset_parse);
    }
    return err->code;
}

/* provider_status is the status the type stands for, so an overloaded_error reads as a 529. */
int anthropic_inline_error(const cJSON *root, struct core_err *err)
{
    struct adapter_response as_http;
    const char *type = adapter_json_str(cJSON_GetObjectItemCaseSensitive(root, "error"), "type");

    memset(&as_http, 0, sizeof(as_http));
    for (size_t i = 0; type != NULL && i < ARRAY_LEN(anthropic_error_status_table); i++) {
        if (strcmp(type, anthropic_error_status_table[i].type) == 0) {
            as_http.status = anthropic_error_status_table[i].status;
        }
    }
    return anthropic_http_error(&as_http, root, err);
}

const char *anthropic_finish_reason(const char *stop_reason, bool format_only)
{
    if (format_only && stop_reason != NULL && strcmp(stop_reason, "tool_use") == 0) {
        return "stop";
    }
    for (size_t i = 0; stop_reason != NULL && i < ARRAY_LEN(anthropic_finish_table); i++) {
        if (strcmp(stop_reason, anthropic_finish_table[i].stop_reason) == 0) {
            return anthropic_finish_table[i].finish_reason;
        }
    }
    return "stop";
}

/* Counts past ANTHROPIC_MAX_TOKENS_COUNT read as 0, so sums of them stay exact in a double. */
void anthropic_usage_merge(double counts[ANTHROPIC_USAGE_N], const cJSON *usage)
{
    for (int k = 0; k < ANTHROPIC_USAGE_N; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, anthropic_usage_fields[k]);
        if (cJSON_IsNumber(v)) {
            double n = floor(v->valuedouble);
            counts[k] = (n >= 0 && n <= ANTHROPIC_MAX_TOKENS_COUNT) ? n : 0;
        }
    }
}

/*
 * Anthropic's input_tokens leaves out tokens written to or read from the prompt cache; OpenAI's
 * prompt_tokens counts every prompt token, cached or not.
 */
cJSON *anthropic_openai_usage(const double counts[ANTHROPIC_USAGE_N])
{
    double prompt = counts[ANTHROPIC_USAGE_INPUT] + counts[ANTHROPIC_USAGE_CACHE_CREATION] +
                    counts[ANTHROPIC_USAGE_CACHE_READ];
    cJSON *u = cJSON_CreateObject();
    cJSON *details = cJSON_CreateObject();

    if (u == NULL || details == NULL ||
        !adapter_json_put(u, "prompt_tokens", cJSON_CreateNumber(prompt)) ||
        !adapter_json_put(u, "completion_tokens",
                          cJSON_CreateNumber(counts[ANTHROPIC_USAGE_OUTPUT])) ||
        !adapter_json_put(u, "total_tokens",
                          cJSON_CreateNumber(prompt + counts[ANTHROPIC_USAGE_OUTPUT])) ||
        !adapter_json_put(details, "cached_tokens",
                          cJSON_CreateNumber(counts[ANTHROPIC_USAGE_CACHE_READ]))) {
        cJSON_Delete(u);
        cJSON_Delete(details);
        return NULL;
    }
    if (!adapter_json_put(u, "prompt_tokens_details", details)) {
        cJSON_Delete(u);
        return NULL;
    }
    return u;
}

/* A tool_use block; named name when name is not NULL. */
static bool is_tool_use(const cJSON *b, const char *name)
{
    const char *type = adapter_json_str(b, "type");
    const char *n = adapter_json_str(b, "name");

    return type != NULL && strcmp(type, "tool_use") == 0 &&
           (name == NULL || (n != NULL && strcmp(n, name) == 0));
}

/*
 * The pieces of a reply's text as [{"text"}] for adapter_text_join: its text blocks and, with a
 * response_format tool (format, may be NULL), that tool's input printed as JSON, in block order
 * as a stream delivers them. Only the tool's first use counts: two JSON texts in a row would not
 * parse. *format_seen tells whether the format tool was used. NULL on OOM.
 */
static cJSON *text_pieces(const cJSON *content, const char *format, bool *format_seen)
{
    const cJSON *b;
    cJSON *pieces = cJSON_CreateArray();

    *format_seen = false;
    cJSON_ArrayForEach(b, content)
    {
        const char *type = adapter_json_str(b, "type");
        const char *text = adapter_json_str(b, "text");
        char *json = NULL;
        bool ok;

        if (format != NULL && is_tool_use(b, format)) {
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
            if (*format_seen) {
                continue;
            }
            json = in != NULL ? cJSON_PrintUnformatted(in) : strdup("{}");
            *format_seen = true;
            text = json;
        } else if (type == NULL || strcmp(type, "text") != 0 || text == NULL) {
            continue;
        }
        ok = text != NULL &&
             adapter_json_push(pieces, adapter_json_wrap("text", cJSON_CreateString(text)));
        free(json);
        if (!ok) {
            cJSON_Delete(pieces);
            return NULL;
        }
    }
    return pieces;
}

/*
 * tool_use blocks as OpenAI tool_calls, input printed as the arguments text; the response_format
 * tool (format, may be NULL) is the answer, not a call. Empty when none.
 */
static cJSON *tool_calls_from(const cJSON *content, const char *format)
{
    const cJSON *b;
    cJSON *calls = cJSON_CreateArray();

    if (calls == NULL) {
        return NULL;
    }
    cJSON_ArrayForEach(b, content)
    {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
        const char *id = adapter_json_str(b, "id");
        const char *name = adapter_json_str(b, "name");
        char *args;
        cJSON *call;

        if (!is_tool_use(b, NULL) || (format != NULL && is_tool_use(b, format))) {
            continue;
        }
        args = in != NULL ? cJSON_PrintUnformatted(in) : strdup("{}");
        call =
            args != NULL ? adapter_tool_call_json(-1, id ? id : "", name ? name : "", args) : NULL;
        free(args);
        if (!adapter_json_push(calls, call)) {
            cJSON_Delete(calls);
            return NULL;
        }
    }
    return calls;
}

cJSON *anthropic_choices(const char *key, cJSON *value, const char *finish)
{
    cJSON *choice = cJSON_CreateObject();
    cJSON *choices;

    if (choice == NULL || !adapter_json_put(choice, "index", cJSON_CreateNumber(0))) {
        cJSON_Delete(choice);
        cJSON_Delete(value);
        return NULL;
    }
    if (!adapter_json_put(choice, key, value) ||
        !adapter_json_put(choice, "finish_reason",
                          finish ? cJSON_CreateString(finish) : cJSON_CreateNull())) {
        cJSON_Delete(choice);
        return NULL;
    }
    choices = cJSON_CreateArray();
    if (!adapter_json_push(choices, choice)) {
        cJSON_Delete(choices);
        return NULL;
    }
    return choices;
}

/* A message reply as a chat.completion with one choice. NULL on OOM. */
static cJSON *completion_from(const cJSON *root, const struct adapter_call *call, int64_t now_ms,
                              const cJSON *usage)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    const char *id = adapter_json_str(root, "id");
    const char *model = adapter_json_str(root, "model");
    const char *format = anthropic_format_tool(call->input);
    const char *finish;
    cJSON *c = cJSON_CreateObject();
    cJSON *msg = cJSON_CreateObject();
    cJSON *calls = tool_calls_from(content, format);
    bool format_seen;
    cJSON *pieces = text_pieces(content, format, &format_seen);
    bool any;
    char *text = pieces != NULL ? adapter_text_join(pieces, "", NULL, &any) : NULL;
    bool ok;

    cJSON_Delete(pieces);
    finish = anthropic_finish_reason(adapter_json_str(root, "stop_reason"),
                                     format_seen && cJSON_GetArraySize(calls) == 0);
    if (model == NULL && call->target != NULL) {
        model = call->target->model;
    }
    ok = c != NULL && msg != NULL && calls != NULL && text != NULL &&
         adapter_json_put(c, "id", cJSON_CreateString(id ? id : "")) &&
         adapter_json_put(c, "object", cJSON_CreateString("chat.completion")) &&
         adapter_json_put(c, "created", cJSON_CreateNumber((double)(now_ms / 1000))) &&
         adapter_json_put(c, "model", cJSON_CreateString(model ? model : "")) &&
         adapter_json_put(msg, "role", cJSON_CreateString("assistant")) &&
         adapter_json_put(msg, "content", any ? cJSON_CreateString(text) : cJSON_CreateNull());
    free(text);
    if (ok && cJSON_GetArraySize(calls) > 0) {
        ok = adapter_json_put(msg, "tool_calls", calls);
        calls = NULL;
    }
    cJSON_Delete(calls);
    if (!ok) {
        cJSON_Delete(msg);
        cJSON_Delete(c);
        return NULL;
    }
    if (!adapter_json_put(c, "choices", anthropic_choices("message", msg, finish)) ||
        (usage != NULL && !adapter_json_put(c, "usage", cJSON_Duplicate(usage, true)))) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

static int anthropic_parse_response(const struct adapter_call *call,
                                    const struct adapter_response *resp, struct adapter_result *out,
                                    struct core_err *err)
{
    cJSON *root = NULL;
    const cJSON *usage;
    const char *type;
    const char *id;
    double counts[ANTHROPIC_USAGE_N] = {0};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc = anthropic_unsupported(call->op, err);
        goto out;
    }
    if ((rc = adapter_reply_root(resp, anthropic_http_error, &root, err)) != 0) {
        goto out;
    }
    type = adapter_json_str(root, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        rc = anthropic_inline_error(root, err);
        goto out;
    }
    if (type == NULL || strcmp(type, "message") != 0 ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "content"))) {
        rc =
            adapter_malformed_body(resp->status, resp->body_len, "not a message with content", err);
        goto out;
    }
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        anthropic_usage_merge(counts, usage);
        if ((out->usage = anthropic_openai_usage(counts)) == NULL) {
            rc = adapter_oom(err);
            goto out;
        }
    }
    id = adapter_json_str(root, "id");
    if ((out->result = completion_from(root, call, resp->now_ms, out->usage)) == NULL ||
        (id != NULL && (out->upstream_id = strdup(id)) == NULL)) {
        rc = adapter_oom(err);
        goto out;
    }
out:
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

const struct adapter adapter_anthropic = {
    .name = "anthropic",
    .build_request = anthropic_build_request,
    .parse_response = anthropic_parse_response,
    .stream_new = anthropic_stream_new,
    .stream_event = anthropic_stream_event,
    .stream_free = anthropic_stream_free,
};
