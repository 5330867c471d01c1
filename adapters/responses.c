/*
 * adapters/responses.c — the response object and a response task's call on either path
 * (responses.h says which path serves which deployment). The edge's check is
 * responses_check.c; what the translated path sends is responses_chat.c, what it gets back
 * responses_output.c; the streams are responses_stream.c.
 *
 * The native path passes the request through but for what only sluice holds (background,
 * previous_response_id, the webhook, store: always false upstream); the translated path
 * refuses what chat completions cannot say, and the dialect what it cannot honour.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/responses.h"
#include "adapters/responses_internal.h"

static const char *const responses_status_names[] = {
    [RESPONSES_QUEUED] = "queued",       [RESPONSES_IN_PROGRESS] = "in_progress",
    [RESPONSES_COMPLETED] = "completed", [RESPONSES_FAILED] = "failed",
    [RESPONSES_CANCELLED] = "cancelled", [RESPONSES_INCOMPLETE] = "incomplete",
};

/*
 * The settings a response object echoes, with the value it shows when the request left one out
 * (as OpenAI's objects show them). JSON text, parsed per object.
 */
static const struct {
    const char *name;
    const char *def;
} responses_echoed[] = {
    {"instructions", "null"},
    {"max_output_tokens", "null"},
    {"metadata", "{}"},
    {"parallel_tool_calls", "true"},
    {"previous_response_id", "null"},
    {"reasoning", "{\"effort\":null,\"summary\":null}"},
    {"service_tier", "\"auto\""},
    {"store", "true"},
    {"temperature", "1"},
    {"text", "{\"format\":{\"type\":\"text\"}}"},
    {"tool_choice", "\"auto\""},
    {"tools", "[]"},
    {"top_p", "1"},
    {"truncation", "\"disabled\""},
    {"background", "false"},
    {"user", "null"},
    {"top_logprobs", "0"},
    {"safety_identifier", "null"},
    {"prompt_cache_key", "null"},
};

/* The settings only sluice holds: an upstream object's values are replaced by the request's. */
static const char *const responses_sluice_owned[] = {"store", "background", "previous_response_id",
                                                     "metadata"};

const char *responses_status_name(enum responses_status status)
{
    if ((size_t)status >= ARRAY_LEN(responses_status_names)) {
        return "unknown";
    }
    return responses_status_names[status];
}

/* o's value at key, treating null as absent. */
static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* obj[name] = a copy of req[name], or the default (JSON text) when the request has none. */
static bool echo_field(cJSON *obj, const cJSON *req, const char *name, const char *def)
{
    const cJSON *v = field(req, name);
    cJSON *copy = v != NULL ? cJSON_Duplicate(v, true) : cJSON_Parse(def);

    cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
    return adapter_json_put(obj, name, copy);
}

cJSON *responses_object(const cJSON *req, const char *id, int64_t created_s,
                        enum responses_status status, const cJSON *error)
{
    const char *model = adapter_json_str(req, "model");
    cJSON *obj = cJSON_CreateObject();
    bool ok = obj != NULL;

    ok = ok && cJSON_AddStringToObject(obj, "id", id) != NULL;
    ok = ok && cJSON_AddStringToObject(obj, "object", "response") != NULL;
    ok = ok && cJSON_AddNumberToObject(obj, "created_at", (double)created_s) != NULL;
    ok = ok && cJSON_AddStringToObject(obj, "status", responses_status_name(status)) != NULL;
    ok = ok && adapter_json_put(obj, "error",
                                error != NULL ? cJSON_Duplicate(error, true) : cJSON_CreateNull());
    ok = ok && cJSON_AddNullToObject(obj, "incomplete_details") != NULL;
    ok = ok &&
         adapter_json_put(obj, "model", model ? cJSON_CreateString(model) : cJSON_CreateNull());
    ok = ok && cJSON_AddArrayToObject(obj, "output") != NULL;
    ok = ok && cJSON_AddNullToObject(obj, "usage") != NULL;
    for (size_t i = 0; ok && i < ARRAY_LEN(responses_echoed); i++) {
        ok = echo_field(obj, req, responses_echoed[i].name, responses_echoed[i].def);
    }
    if (!ok) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

/* obj[key] = a new value (taken), replacing what was there. false on OOM. */
static bool replace(cJSON *obj, const char *key, cJSON *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    return adapter_json_put(obj, key, value);
}

int responses_normalize(cJSON *obj, const cJSON *req, const char *id, int64_t created_s)
{
    const char *model = adapter_json_str(req, "model");
    bool ok = replace(obj, "id", cJSON_CreateString(id)) &&
              replace(obj, "created_at", cJSON_CreateNumber((double)created_s)) &&
              (model == NULL || replace(obj, "model", cJSON_CreateString(model)));

    for (size_t i = 0; ok && i < ARRAY_LEN(responses_sluice_owned); i++) {
        for (size_t k = 0; k < ARRAY_LEN(responses_echoed); k++) {
            if (strcmp(responses_echoed[k].name, responses_sluice_owned[i]) == 0) {
                ok = echo_field(obj, req, responses_echoed[k].name, responses_echoed[k].def);
            }
        }
    }
    return ok ? 0 : CORE_ENOMEM;
}

bool responses_is_native(const struct adapter *ad, const struct adapter_target *t)
{
    return ad == &adapter_openai && t != NULL && t->responses_native;
}

bool responses_wants_logprobs(const cJSON *req)
{
    const cJSON *x;

    cJSON_ArrayForEach(x, field(req, "include"))
    {
        if (cJSON_IsString(x) && strcmp(x->valuestring, RESPONSES_INCLUDE_LOGPROBS) == 0) {
            return true;
        }
    }
    return false;
}

cJSON *responses_error_json(const struct core_err *err)
{
    const char *code = err->err_code[0] != '\0' ? err->err_code
                       : (err->provider_status == 429 || err->http_status == 429)
                           ? "rate_limit_exceeded"
                           : "server_error";
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "code", code) == NULL ||
        cJSON_AddStringToObject(o, "message", err->message) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Fields of the client's request the native call leaves out: sluice's own, and the stream's. */
static const char *const native_dropped[] = {"background", "previous_response_id", "webhook",
                                             "stream",     "stream_options",       "store"};

/*
 * The input items as the native call sends them, with store: false upstream. Nothing is stored
 * there, so nothing may be looked up by id: item ids are left out (input items do not need
 * them; an earlier turn served by another dialect has ids OpenAI never issued), and reasoning
 * items without encrypted_content are left out, since OpenAI could only resolve them from its
 * store (OpenAI's stateless mode passes reasoning as encrypted_content). A function call's
 * extra_content (another dialect's round-trip data, not OpenAI's field) is left out too.
 */
static void native_input(cJSON *body)
{
    cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    cJSON *item = cJSON_IsArray(input) ? input->child : NULL;

    while (item != NULL) {
        cJSON *next = item->next;
        const char *type = adapter_json_str(item, "type");
        bool reasoning = type != NULL && strcmp(type, "reasoning") == 0;

        if (reasoning && adapter_json_str(item, "encrypted_content") == NULL) {
            cJSON_Delete(cJSON_DetachItemViaPointer(input, item));
        } else if (!reasoning) {
            cJSON_DeleteItemFromObjectCaseSensitive(item, "id");
            cJSON_DeleteItemFromObjectCaseSensitive(item, "extra_content");
        }
        item = next;
    }
}

/* The native call's body: the request as sent, the deployment's model, store false. */
static int native_body(const struct adapter_call *call, cJSON **out, struct core_err *err)
{
    const cJSON *opts = field(call->input, "stream_options");
    cJSON *body = cJSON_Duplicate(call->input, true);
    bool ok = body != NULL;

    for (size_t i = 0; ok && i < ARRAY_LEN(native_dropped); i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(body, native_dropped[i]);
    }
    ok = ok && replace(body, "model", cJSON_CreateString(call->target->model));
    ok = ok && cJSON_AddFalseToObject(body, "store") != NULL;
    if (ok) {
        native_input(body);
    }
    if (ok && call->stream) {
        ok = cJSON_AddTrueToObject(body, "stream") != NULL &&
             (opts == NULL || adapter_json_put(body, "stream_options", cJSON_Duplicate(opts, 1)));
    }
    if (!ok) {
        cJSON_Delete(body);
        return adapter_oom(err);
    }
    *out = body;
    return 0;
}

static int native_build(const struct adapter_call *call, struct adapter_request *out,
                        struct core_err *err)
{
    const struct adapter_target *t = call->target;
    cJSON *body = NULL;
    int rc;

    if ((rc = native_body(call, &body, err)) != 0) {
        goto out;
    }
    if (adapter_request_set_json(out, "POST", adapter_url_join(t->base_url, "responses"), body) !=
            0 ||
        adapter_request_add_key(out, "Authorization: Bearer ", t->api_key) != 0 ||
        adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        rc = adapter_oom(err);
        goto out;
    }
out:
    cJSON_Delete(body);
    return rc;
}

int responses_build_request(const struct adapter *ad, const struct adapter_call *call,
                            struct adapter_request *out, struct core_err *err)
{
    struct adapter_call chat;
    cJSON *body = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (ad == NULL || call->op != ADAPTER_OP_RESPONSE) {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "not a response call");
        goto out;
    }
    if ((rc = adapter_target_check(call->target, err)) != 0 ||
        (rc = responses_check(call->input, err)) != 0) {
        goto out;
    }
    if (responses_is_native(ad, call->target)) {
        rc = native_build(call, out, err);
        goto out;
    }
    if (ad->build_request == NULL || ad->parse_response == NULL) {
        rc = adapter_unsupported(ad->name, call->op, err);
        goto out;
    }
    if ((rc = responses_chat_call(call, &body, &chat, err)) != 0) {
        goto out;
    }
    if ((rc = ad->build_request(&chat, out, err)) != 0) {
        responses_map_param(err);
    }
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/*
 * An upstream response object that came back failed (a 200 whose status says the model could
 * not answer): the provider's error, retryable when OpenAI names it a server or rate error.
 */
static int native_failed(const struct adapter_response *resp, const cJSON *root,
                         struct core_err *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *code = adapter_json_str(e, "code");
    const char *message = adapter_json_str(e, "message");

    core_err_set(err, CORE_EUPSTREAM, NULL, "%s",
                 message ? message : "the provider failed the response");
    core_err_set_code(err, code ? code : "server_error");
    err->provider_status = resp->status;
    err->retryable = code == NULL || strcmp(code, "server_error") == 0 ||
                     strcmp(code, "rate_limit_exceeded") == 0;
    return err->code;
}

/*
 * The shared reading of an error reply. native_parse sees only 2xx replies (the OpenAI dialect
 * reads the others), so this is adapter_reply_root's required hook rather than a path taken.
 */
static int native_http_error(const struct adapter_response *resp, const cJSON *root,
                             struct core_err *err)
{
    struct adapter_error_fields f;

    return adapter_http_error(resp, adapter_error_fields_read(root, &f) ? &f : NULL, err);
}

/*
 * A 2xx of the native call: the response object, normalized. A synchronous call (sluice never
 * sends background upstream) ends completed, incomplete or failed; any other status is a reply
 * sluice cannot use.
 */
static int native_parse(const struct adapter_call *call, const char *id, int64_t created_s,
                        const struct adapter_response *resp, struct adapter_result *out,
                        struct core_err *err)
{
    cJSON *root = NULL;
    const char *status;
    const char *upstream;
    int rc;

    if ((rc = adapter_reply_root(resp, native_http_error, &root, err)) != 0) {
        goto out;
    }
    status = adapter_json_str(root, "status");
    upstream = adapter_json_str(root, "id");
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "output")) || status == NULL) {
        rc = adapter_malformed_body(resp->status, resp->body_len, "not a response object", err);
        goto out;
    }
    if (strcmp(status, "failed") == 0) {
        rc = native_failed(resp, root, err);
        goto out;
    }
    if (strcmp(status, "completed") != 0 && strcmp(status, "incomplete") != 0) {
        rc = adapter_malformed(resp->status, true, err, "a response in status %.32s", status);
        goto out;
    }
    if ((upstream != NULL && (out->upstream_id = strdup(upstream)) == NULL) ||
        responses_normalize(root, call->input, id, created_s) != 0) {
        rc = adapter_oom(err);
        goto out;
    }
    out->usage = responses_usage_to_chat(cJSON_GetObjectItemCaseSensitive(root, "usage"));
    out->outcome = ADAPTER_DONE;
    out->result = root;
    root = NULL;
out:
    cJSON_Delete(root);
    return rc;
}

/*
 * The translated call's reply: the dialect parses its own reply into a chat.completion, which
 * becomes the response object; usage stays in the chat names the dialect gave.
 */
static int translated_parse(const struct adapter *ad, const struct adapter_call *call,
                            const char *id, int64_t created_s, const struct adapter_response *resp,
                            struct adapter_result *out, struct core_err *err)
{
    struct adapter_call chat;
    struct adapter_result res;
    cJSON *body = NULL;
    int rc;

    memset(&res, 0, sizeof(res));
    if ((rc = responses_chat_call(call, &body, &chat, err)) != 0 ||
        (rc = ad->parse_response(&chat, resp, &res, err)) != 0) {
        goto out;
    }
    if (res.outcome != ADAPTER_DONE || res.result == NULL) {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "the %s dialect left a chat call pending",
                          ad->name);
        goto out;
    }
    if ((rc = responses_from_chat(call->input, res.result, id, created_s, &out->result, err)) !=
        0) {
        goto out;
    }
    out->outcome = ADAPTER_DONE;
    out->usage = res.usage;
    out->upstream_id = res.upstream_id;
    res.usage = NULL;
    res.upstream_id = NULL;
out:
    adapter_result_cleanup(&res);
    cJSON_Delete(body);
    return rc;
}

/*
 * On the native path a reply that is no 2xx, or no reply at all, is read by the OpenAI dialect
 * itself (through its public hook, as a chat call would be): its error classification (final
 * codes, reset headers) is the same for /responses as for /chat/completions.
 */
int responses_parse_response(const struct adapter *ad, const struct adapter_call *call,
                             const char *id, int64_t created_s, const struct adapter_response *resp,
                             struct adapter_result *out, struct core_err *err)
{
    bool ok2xx =
        resp->transport == ADAPTER_TRANSPORT_OK && resp->status >= 200 && resp->status <= 299;
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (ad == NULL || ad->parse_response == NULL || call->op != ADAPTER_OP_RESPONSE) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "not a response call");
    }
    if (!responses_is_native(ad, call->target)) {
        rc = translated_parse(ad, call, id, created_s, resp, out, err);
    } else if (!ok2xx) {
        struct adapter_call chat = *call;
        chat.op = ADAPTER_OP_CHAT;
        chat.stream = false;
        rc = ad->parse_response(&chat, resp, out, err);
        if (rc == 0) {
            rc = adapter_malformed_body(resp->status, resp->body_len, "not a response object", err);
        }
    } else {
        rc = native_parse(call, id, created_s, resp, out, err);
    }
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}
