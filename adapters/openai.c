/*
 * adapters/openai.c — the OpenAI-compatible dialect: OpenAI itself and every server that speaks its
 * chat API. Chat only for now; embeddings, images and videos come with the providers issue.
 * Streaming is relayed later, so every call is made with streaming off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Fields removed from the client's body before the call: the call does not stream, and OpenAI
 * refuses stream_options unless stream is on.
 */
static const char *const openai_dropped_fields[] = {"stream", "stream_options"};

/*
 * Provider error codes (or types) that no retry can fix, whatever the status says: an account out
 * of credit, and content-policy refusals (OpenAI's and Azure OpenAI's spelling).
 */
static const char *const openai_final_codes[] = {
    "insufficient_quota",
    "content_policy_violation",
    "content_filter",
};

/* The buckets OpenAI reports on a 429, each with the header saying when it refills. */
static const struct {
    const char *reset;
    const char *remaining;
} openai_reset_headers[] = {
    {"x-ratelimit-reset-requests", "x-ratelimit-remaining-requests"},
    {"x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"},
};

static int openai_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EUNPROCESSABLE, NULL,
                        "the openai dialect does not support %s tasks yet", adapter_op_name(op));
}

/*
 * The client's chat body with the alias replaced by the deployment's model and streaming off.
 * Everything else passes through untouched, so parameters sluice does not know yet still reach
 * the provider. Caller frees; NULL on OOM.
 */
static cJSON *openai_chat_body(const cJSON *input, const char *model)
{
    cJSON *body = cJSON_Duplicate(input, true);
    cJSON *item;

    if (body == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_LEN(openai_dropped_fields); i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(body, openai_dropped_fields[i]);
    }
    item = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (cJSON_IsString(item) && cJSON_SetValuestring(item, model) != NULL) {
        return body;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(body, "model");
    if (cJSON_AddStringToObject(body, "model", model) == NULL) {
        cJSON_Delete(body);
        return NULL;
    }
    return body;
}

static int openai_build_request(const struct adapter_call *call, struct adapter_request *out,
                                struct core_err *err)
{
    enum adapter_op op = call->op;
    const cJSON *input = call->input;
    const struct adapter_target *t = call->target;
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(input, "messages");
    cJSON *body = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (op != ADAPTER_OP_CHAT) {
        rc = openai_unsupported(op, err);
        goto out;
    }
    if (t == NULL || t->base_url == NULL || t->model == NULL || t->model[0] == '\0') {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url or model");
        goto out;
    }
    if (!cJSON_IsObject(input) || !cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "a chat request needs a non-empty messages array");
        goto out;
    }
    snprintf(out->method, sizeof(out->method), "POST");
    body = openai_chat_body(input, t->model);
    out->url = adapter_url_join(t->base_url, "chat/completions");
    out->body = body ? cJSON_PrintUnformatted(body) : NULL;
    if (out->url == NULL || out->body == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        goto out;
    }
    out->body_len = strlen(out->body);
    if ((t->api_key != NULL && t->api_key[0] != '\0' &&
         adapter_request_add_header(out, "Authorization: Bearer %s", t->api_key) != 0) ||
        adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory building the request");
        goto out;
    }
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/*
 * The wait a 429 implies when it carried no retry-after: when the emptied bucket refills. Buckets
 * reported at zero remaining are the ones that tripped; when none is reported empty, wait for the
 * longest reset given, since waiting a little long costs less than another 429. -1 when none parse.
 */
static int64_t openai_reset_wait_ms(const struct adapter_response *resp)
{
    int64_t any = -1;
    int64_t exhausted = -1;

    for (size_t i = 0; i < ARRAY_LEN(openai_reset_headers); i++) {
        const char *reset = adapter_header_get(resp, openai_reset_headers[i].reset);
        const char *left = adapter_header_get(resp, openai_reset_headers[i].remaining);
        int64_t ms;

        if (reset == NULL || adapter_parse_duration_ms(reset, &ms) != 0) {
            continue;
        }
        if (ms > any) {
            any = ms;
        }
        if (left != NULL && strcmp(left, "0") == 0 && ms > exhausted) {
            exhausted = ms;
        }
    }
    return exhausted >= 0 ? exhausted : any;
}

static bool openai_is_final(const struct core_err *err)
{
    for (size_t i = 0; i < ARRAY_LEN(openai_final_codes); i++) {
        if (strcmp(err->err_code, openai_final_codes[i]) == 0 ||
            strcmp(err->type, openai_final_codes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A non-2xx reply: the shared rules, plus OpenAI's final codes and its reset headers. */
static int openai_http_error(const struct adapter_response *resp, const cJSON *root,
                             struct core_err *err)
{
    struct adapter_error_fields f;
    bool have = adapter_error_fields_read(root, &f);

    adapter_http_error(resp, have ? &f : NULL, err);
    if (openai_is_final(err)) {
        err->retryable = false;
    }
    if (resp->status == 429 && err->retry_after_ms < 0) {
        err->retry_after_ms = openai_reset_wait_ms(resp);
    }
    return err->code;
}

/*
 * A 2xx that is not a chat completion. Retryable: a proxy or an overloaded server cut the body,
 * and the next attempt usually gets a whole one. Too large is final: it would come back as large.
 */
static int openai_malformed(const struct adapter_response *resp, const char *why,
                            struct core_err *err)
{
    core_err_set(err, CORE_EUPSTREAM, NULL, "malformed reply from the provider: %s", why);
    core_err_set_code(err, "malformed_reply");
    err->provider_status = resp->status;
    err->retryable = resp->body_len <= ADAPTER_MAX_REPLY_BYTES;
    return err->code;
}

static int openai_parse_response(const struct adapter_call *call,
                                 const struct adapter_response *resp, struct adapter_result *out,
                                 struct core_err *err)
{
    enum adapter_op op = call->op;
    const struct adapter_target *t = call->target;
    cJSON *root = NULL;
    const cJSON *usage;
    const cJSON *id;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (op != ADAPTER_OP_CHAT) {
        rc = openai_unsupported(op, err);
        goto out;
    }
    if (resp->transport != ADAPTER_TRANSPORT_OK) {
        rc = adapter_classify_transport(resp, err);
        goto out;
    }
    root = adapter_json_parse(resp->body, resp->body_len);
    if (resp->status < 200 || resp->status > 299) {
        rc = openai_http_error(resp, root, err);
        goto out;
    }
    if (resp->body_len > ADAPTER_MAX_REPLY_BYTES) {
        rc = openai_malformed(resp, "the body passed the size limit", err);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = openai_malformed(resp, "the body is not a JSON object", err);
        goto out;
    }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "choices"))) {
        rc = openai_malformed(resp, "no choices array", err);
        goto out;
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "model")) && t != NULL &&
        t->model != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "model");
        if (cJSON_AddStringToObject(root, "model", t->model) == NULL) {
            rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory reading the reply");
            goto out;
        }
    }
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (cJSON_IsObject(usage) && (out->usage = cJSON_Duplicate(usage, true)) == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory reading the reply");
        goto out;
    }
    if (cJSON_IsString(id) && (out->upstream_id = strdup(id->valuestring)) == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory reading the reply");
        goto out;
    }
    out->result = root;
    root = NULL;
out:
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

const struct adapter adapter_openai = {
    .name = "openai",
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
};
