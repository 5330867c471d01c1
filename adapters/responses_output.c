/*
 * adapters/responses_output.c — a response's output: the output items (message, function_call,
 * reasoning) both the plain reply and the streams build, their ids, usage in both namings, and
 * the response object of a chat.completion (responses_from_chat) on the translated path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/responses.h"
#include "adapters/responses_internal.h"

/* finish_reason values that end a response short, and the reason it reports. */
static const struct {
    const char *finish;
    const char *reason;
} chat_incomplete[] = {
    {"length", "max_output_tokens"},
    {"content_filter", "content_filter"},
};

/* Chat message fields some OpenAI-compatible servers (vLLM, DeepSeek) carry reasoning text in. */
static const char *const chat_reasoning_keys[] = {"reasoning_content", "reasoning"};

/* The longest generated tool call id ("call_" + an item id's suffix). */
#define CHAT_CALL_ID_LEN (RESPONSES_ITEM_ID_LEN + 8)

void responses_item_id(char *out, const char *prefix, const char *id, int n)
{
    size_t plen = strlen(RESPONSES_ID_PREFIX);
    const char *suffix = strncmp(id, RESPONSES_ID_PREFIX, plen) == 0 ? id + plen : id;

    if (n < 0) {
        snprintf(out, RESPONSES_ITEM_ID_LEN, "%s%.120s", prefix, suffix);
    } else {
        snprintf(out, RESPONSES_ITEM_ID_LEN, "%s%.120s_%d", prefix, suffix, n);
    }
}

/* {"type": type, key: text} and the rest of a content part; NULL on OOM. */
static cJSON *content_part(const char *type, const char *key, const char *text)
{
    cJSON *p = cJSON_CreateObject();

    if (p == NULL || cJSON_AddStringToObject(p, "type", type) == NULL ||
        cJSON_AddStringToObject(p, key, text) == NULL) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

/* {"type", "id", "status"}: what every output item starts with. */
static cJSON *item_head(const char *type, const char *id, const char *status)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "type", type) == NULL ||
        cJSON_AddStringToObject(o, "id", id) == NULL ||
        cJSON_AddStringToObject(o, "status", status) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *responses_item_message(const char *id, const char *status, const char *text,
                              const cJSON *logprobs, const char *refusal)
{
    cJSON *o = item_head("message", id, status);
    cJSON *content = NULL;
    cJSON *p;
    bool ok = o != NULL && cJSON_AddStringToObject(o, "role", "assistant") != NULL &&
              (content = cJSON_AddArrayToObject(o, "content")) != NULL;

    if (ok && text != NULL) {
        p = content_part("output_text", "text", text);
        ok = p != NULL && adapter_json_push(content, p) &&
             cJSON_AddArrayToObject(p, "annotations") != NULL &&
             adapter_json_put(p, "logprobs",
                              logprobs ? cJSON_Duplicate(logprobs, true) : cJSON_CreateArray());
    }
    if (ok && refusal != NULL) {
        ok = adapter_json_push(content, content_part("refusal", "refusal", refusal));
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *responses_item_function_call(const char *id, const char *status, const char *call_id,
                                    const char *name, const char *arguments, const cJSON *extra)
{
    cJSON *o = item_head("function_call", id, status);

    if (o == NULL || cJSON_AddStringToObject(o, "call_id", call_id ? call_id : "") == NULL ||
        cJSON_AddStringToObject(o, "name", name ? name : "") == NULL ||
        cJSON_AddStringToObject(o, "arguments", arguments ? arguments : "") == NULL ||
        (cJSON_IsObject(extra) &&
         !adapter_json_put(o, "extra_content", cJSON_Duplicate(extra, true)))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *responses_item_reasoning(const char *id, const char *status, const char *text)
{
    cJSON *o = item_head("reasoning", id, status);
    cJSON *content = NULL;

    if (o == NULL || cJSON_AddArrayToObject(o, "summary") == NULL ||
        (content = cJSON_AddArrayToObject(o, "content")) == NULL ||
        !adapter_json_push(content, content_part("reasoning_text", "text", text))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The number at o.key (o.key.sub when sub is set), or 0. */
static double usage_num(const cJSON *o, const char *key, const char *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (sub != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    }
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* One usage number each naming has: {key, detail-object, detail-key} in both directions. */
static const struct {
    const char *chat;
    const char *chat_sub;
    const char *resp;
    const char *resp_sub;
} usage_map[] = {
    {"prompt_tokens", NULL, "input_tokens", NULL},
    {"prompt_tokens_details", "cached_tokens", "input_tokens_details", "cached_tokens"},
    {"completion_tokens", NULL, "output_tokens", NULL},
    {"completion_tokens_details", "reasoning_tokens", "output_tokens_details", "reasoning_tokens"},
    {"total_tokens", NULL, "total_tokens", NULL},
};

/* Converts usage from one naming to the other: to_resp says which way. */
static cJSON *usage_convert(const cJSON *usage, bool to_resp)
{
    cJSON *o;
    bool ok;

    if (!cJSON_IsObject(usage)) {
        return NULL;
    }
    o = cJSON_CreateObject();
    ok = o != NULL;
    for (size_t i = 0; ok && i < ARRAY_LEN(usage_map); i++) {
        const char *from = to_resp ? usage_map[i].chat : usage_map[i].resp;
        const char *from_sub = to_resp ? usage_map[i].chat_sub : usage_map[i].resp_sub;
        const char *to = to_resp ? usage_map[i].resp : usage_map[i].chat;
        const char *to_sub = to_resp ? usage_map[i].resp_sub : usage_map[i].chat_sub;
        double n = usage_num(usage, from, from_sub);

        if (to_sub == NULL) {
            ok = cJSON_AddNumberToObject(o, to, n) != NULL;
        } else {
            cJSON *d = cJSON_AddObjectToObject(o, to);
            ok = d != NULL && cJSON_AddNumberToObject(d, to_sub, n) != NULL;
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *responses_usage_from_chat(const cJSON *usage)
{
    return usage_convert(usage, true);
}

cJSON *responses_usage_to_chat(const cJSON *usage)
{
    return usage_convert(usage, false);
}

const char *responses_chat_reasoning(const cJSON *msg)
{
    for (size_t i = 0; i < ARRAY_LEN(chat_reasoning_keys); i++) {
        const char *r = adapter_json_str(msg, chat_reasoning_keys[i]);
        if (r != NULL && r[0] != '\0') {
            return r;
        }
    }
    return NULL;
}

void responses_call_id(char *out, size_t cap, const char *given, const char *id, int n)
{
    char item[RESPONSES_ITEM_ID_LEN];

    if (given != NULL && given[0] != '\0') {
        snprintf(out, cap, "%s", given);
        return;
    }
    responses_item_id(item, "call_", id, n > 0 ? n : -1);
    snprintf(out, cap, "%s", item);
}

/* obj's usage: chat_usage (borrowed) in the Responses names. false on OOM. */
static bool replace_usage(cJSON *obj, const cJSON *chat_usage)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "usage");
    return adapter_json_put(obj, "usage", responses_usage_from_chat(chat_usage));
}

/* A chat message's content as text: a string, or the text of its parts (some servers send them). */
static char *message_text(const cJSON *content, bool *any)
{
    *any = false;
    if (cJSON_IsString(content)) {
        *any = true;
        return strdup(content->valuestring);
    }
    if (cJSON_IsArray(content)) {
        return adapter_text_join(content, "", NULL, any);
    }
    return strdup("");
}

/*
 * The output items of a chat choice's message, appended to output in the order a reply reads:
 * its reasoning, its words (a message unless it has only tool calls), its tool calls.
 */
static int chat_output(const cJSON *msg, const cJSON *logprobs, const char *id, const char *status,
                       cJSON *output, struct core_err *err)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    const char *refusal = adapter_json_str(msg, "refusal");
    char item_id[RESPONSES_ITEM_ID_LEN];
    const cJSON *tc;
    bool any = false;
    char *text = message_text(cJSON_GetObjectItemCaseSensitive(msg, "content"), &any);
    const char *reasoning = responses_chat_reasoning(msg);
    char call_id[CHAT_CALL_ID_LEN];
    int n = 0;
    bool ok = text != NULL;

    if (ok && reasoning != NULL) {
        responses_item_id(item_id, "rs_", id, -1);
        ok = adapter_json_push(output, responses_item_reasoning(item_id, status, reasoning));
    }
    if (ok && ((any && text[0] != '\0') || refusal != NULL || cJSON_GetArraySize(calls) == 0)) {
        /* a message with only a refusal has no output_text part */
        const char *shown = (any || refusal == NULL) ? text : NULL;

        responses_item_id(item_id, "msg_", id, -1);
        ok = adapter_json_push(output,
                               responses_item_message(item_id, status, shown, logprobs, refusal));
    }
    cJSON_ArrayForEach(tc, ((ok && cJSON_IsArray(calls)) ? calls : NULL))
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        responses_item_id(item_id, "fc_", id, n > 0 ? n : -1);
        responses_call_id(call_id, sizeof(call_id), adapter_json_str(tc, "id"), id, n);
        n++;
        ok = adapter_json_push(output, responses_item_function_call(
                                           item_id, status, call_id, adapter_json_str(fn, "name"),
                                           adapter_json_str(fn, "arguments"),
                                           cJSON_GetObjectItemCaseSensitive(tc, "extra_content")));
        if (!ok) {
            break;
        }
    }
    free(text);
    return ok ? 0 : adapter_oom(err);
}

/* Sets status and incomplete_details of a response object from a finish_reason. */
static bool set_finish(cJSON *obj, const char *finish, const char **item_status)
{
    const char *reason = NULL;

    for (size_t i = 0; finish != NULL && i < ARRAY_LEN(chat_incomplete); i++) {
        if (strcmp(finish, chat_incomplete[i].finish) == 0) {
            reason = chat_incomplete[i].reason;
        }
    }
    *item_status = reason ? "incomplete" : "completed";
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "incomplete_details");
    return cJSON_AddStringToObject(obj, "status",
                                   responses_status_name(reason ? RESPONSES_INCOMPLETE
                                                                : RESPONSES_COMPLETED)) != NULL &&
           adapter_json_put(obj, "incomplete_details",
                            reason ? adapter_json_wrap("reason", cJSON_CreateString(reason))
                                   : cJSON_CreateNull());
}

int responses_from_chat(const cJSON *req, const cJSON *completion, const char *id,
                        int64_t created_s, cJSON **out, struct core_err *err)
{
    const cJSON *choice =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(completion, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    const cJSON *logprobs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(choice, "logprobs"), "content");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(completion, "usage");
    const char *item_status = "completed";
    cJSON *obj = NULL;
    int rc = 0;

    *out = NULL;
    if (!cJSON_IsObject(msg)) {
        return adapter_malformed(200, true, err, "a chat completion without a message");
    }
    obj = responses_object(req, id, created_s, RESPONSES_COMPLETED, NULL);
    if (obj == NULL || !set_finish(obj, adapter_json_str(choice, "finish_reason"), &item_status)) {
        rc = adapter_oom(err);
        goto out;
    }
    if ((rc = chat_output(msg, responses_wants_logprobs(req) ? logprobs : NULL, id, item_status,
                          cJSON_GetObjectItemCaseSensitive(obj, "output"), err)) != 0) {
        goto out;
    }
    if (cJSON_IsObject(usage) && !replace_usage(obj, usage)) {
        rc = adapter_oom(err);
        goto out;
    }
    *out = obj;
    obj = NULL;
out:
    cJSON_Delete(obj);
    return rc;
}
