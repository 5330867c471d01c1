/*
 * adapters/responses_chat.c — the translated path's request: a Responses request as a chat
 * completions request (responses_to_chat), the chat call a dialect's hooks take, and a dialect's
 * refusal renamed after the Responses field (responses_map_param). The way back, a
 * chat.completion as a response object, is responses_output.c.
 *
 * What each request field becomes is chat_fields below; a field a chat request cannot carry is
 * refused here, naming it, and a field the dialect cannot honour is refused by the dialect's own
 * table (adapter_fields_check) and renamed back (responses_map_param, chat_params).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/responses.h"
#include "adapters/responses_internal.h"

struct chat_build;

/*
 * Adds what a Responses field (v, never NULL or null) becomes to the chat request b->body.
 * Returns 0 or a negative code with err filled.
 */
typedef int (*chat_map_fn)(struct chat_build *b, const char *name, const cJSON *v,
                           struct core_err *err);

/* A chat request being built from a Responses request. */
struct chat_build {
    const cJSON *req;
    cJSON *body;
    cJSON *messages;
};

static int map_copy(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err);
static int map_input(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err);
static int map_tools(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err);
static int map_tool_choice(struct chat_build *b, const char *name, const cJSON *v,
                           struct core_err *err);
static int map_text(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err);
static int map_reasoning(struct chat_build *b, const char *name, const cJSON *v,
                         struct core_err *err);
static int map_truncation(struct chat_build *b, const char *name, const cJSON *v,
                          struct core_err *err);
static int map_include(struct chat_build *b, const char *name, const cJSON *v,
                       struct core_err *err);
static int map_service_tier(struct chat_build *b, const char *name, const cJSON *v,
                            struct core_err *err);
static int map_stream(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err);
static int map_stream_options(struct chat_build *b, const char *name, const cJSON *v,
                              struct core_err *err);

/*
 * Every Responses field and what the chat request gets for it: the same value under chat_name
 * (map NULL), a translation (map), or nothing (both NULL: a setting sluice itself holds — the
 * response's metadata, store, background, previous_response_id, webhook — which no provider
 * sees on this path). instructions is read by map_input, so the system message comes first.
 */
static const struct {
    const char *name;
    const char *chat_name;
    chat_map_fn map;
} chat_fields[] = {
    {"model", "model", NULL}, /* the dialect puts the deployment's model in */
    {"input", NULL, map_input},
    {"instructions", NULL, NULL}, /* map_input: a system message */
    {"tools", NULL, map_tools},
    {"tool_choice", NULL, map_tool_choice},
    {"parallel_tool_calls", "parallel_tool_calls", NULL},
    {"text", NULL, map_text}, /* response_format, verbosity */
    {"max_output_tokens", "max_completion_tokens", NULL},
    {"temperature", "temperature", NULL},
    {"top_p", "top_p", NULL},
    {"top_logprobs", "top_logprobs", NULL},
    {"reasoning", NULL, map_reasoning}, /* reasoning_effort */
    {"metadata", NULL, NULL},
    {"store", NULL, NULL}, /* chat completions store nothing unless asked */
    {"previous_response_id", NULL, NULL},
    {"truncation", NULL, map_truncation},
    {"include", NULL, map_include},
    {"service_tier", NULL, map_service_tier},
    {"stream", NULL, map_stream},
    {"stream_options", NULL, map_stream_options},
    {"background", NULL, NULL},
    {"user", "user", NULL},
    {"safety_identifier", "safety_identifier", NULL},
    {"prompt_cache_key", "prompt_cache_key", NULL},
    {"webhook", NULL, NULL},
};

/*
 * A dialect's refusal names a chat field; the client sent the Responses field it came from.
 * Chat fields not listed have the same name in both.
 */
static const struct {
    const char *chat;
    const char *responses;
} chat_params[] = {
    {"messages", "input"},
    {"response_format", "text.format"},
    {"verbosity", "text.verbosity"},
    {"max_completion_tokens", "max_output_tokens"},
    {"max_tokens", "max_output_tokens"},
    {"reasoning_effort", "reasoning.effort"},
    {"logprobs", "include"},
    {"stream_options", "stream"},
};

static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static int refuse(struct core_err *err, const char *param, const char *fmt, const char *value)
{
    core_err_set(err, CORE_EINVAL, param, fmt, value);
    core_err_set_code(err, "unsupported_parameter");
    return CORE_EINVAL;
}

static int map_copy(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err)
{
    return adapter_json_put(b->body, name, cJSON_Duplicate(v, true)) ? 0 : adapter_oom(err);
}

/* {"type": "text", "text"}: a chat text part. */
static cJSON *text_part(const char *text)
{
    cJSON *p = cJSON_CreateObject();

    if (p == NULL || cJSON_AddStringToObject(p, "type", "text") == NULL ||
        cJSON_AddStringToObject(p, "text", text) == NULL) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

/* input_image → {"type": "image_url", "image_url": {"url", "detail"?}}. */
static int image_part(const char *param, const cJSON *part, cJSON **out, struct core_err *err)
{
    const char *url = adapter_json_str(part, "image_url");
    const char *detail = adapter_json_str(part, "detail");
    cJSON *iu;

    if (url == NULL) {
        return refuse(err, param,
                      "%s: images by file_id need OpenAI's file store; send an image_url (a "
                      "data: or https URL).",
                      param);
    }
    iu = cJSON_CreateObject();
    if (iu == NULL || cJSON_AddStringToObject(iu, "url", url) == NULL ||
        (detail != NULL && cJSON_AddStringToObject(iu, "detail", detail) == NULL)) {
        cJSON_Delete(iu);
        return adapter_oom(err);
    }
    *out = adapter_json_wrap("image_url", iu);
    if (*out == NULL || cJSON_AddStringToObject(*out, "type", "image_url") == NULL) {
        cJSON_Delete(*out);
        return adapter_oom(err);
    }
    return 0;
}

/* input_file with file_data → {"type": "file", "file": {"file_data", "filename"?}}. */
static int file_part(const char *param, const cJSON *part, cJSON **out, struct core_err *err)
{
    const char *data = adapter_json_str(part, "file_data");
    const char *name = adapter_json_str(part, "filename");
    cJSON *f;

    if (data == NULL) {
        return refuse(err, param,
                      "%s: files by file_id or file_url cannot be sent to this model; send "
                      "file_data.",
                      param);
    }
    f = cJSON_CreateObject();
    if (f == NULL || cJSON_AddStringToObject(f, "file_data", data) == NULL ||
        (name != NULL && cJSON_AddStringToObject(f, "filename", name) == NULL)) {
        cJSON_Delete(f);
        return adapter_oom(err);
    }
    *out = adapter_json_wrap("file", f);
    if (*out == NULL || cJSON_AddStringToObject(*out, "type", "file") == NULL) {
        cJSON_Delete(*out);
        return adapter_oom(err);
    }
    return 0;
}

/*
 * A content value (a string, or input_text / input_image / input_file parts) as chat content:
 * a string stays a string, parts become text, image_url and file parts. *out: caller frees.
 */
static int chat_content(const char *param, const cJSON *content, cJSON **out, struct core_err *err)
{
    const cJSON *part;
    char sub[RESPONSES_PARAM_LEN];
    int j = 0;
    int rc = 0;

    *out = NULL;
    if (cJSON_IsString(content)) {
        *out = cJSON_CreateString(content->valuestring);
        return *out ? 0 : adapter_oom(err);
    }
    if ((*out = cJSON_CreateArray()) == NULL) {
        return adapter_oom(err);
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *type = adapter_json_str(part, "type");
        cJSON *p = NULL;

        responses_param(sub, param, NULL, j++);
        if (type != NULL && strcmp(type, "input_image") == 0) {
            rc = image_part(sub, part, &p, err);
        } else if (type != NULL && strcmp(type, "input_file") == 0) {
            rc = file_part(sub, part, &p, err);
        } else if (adapter_json_str(part, "text") != NULL) {
            p = text_part(adapter_json_str(part, "text"));
            rc = p ? 0 : adapter_oom(err);
        } else {
            rc = refuse(err, sub, "%s: this content part cannot be sent to this model.", sub);
        }
        if (rc != 0) {
            break;
        }
        if (!adapter_json_push(*out, p)) {
            rc = adapter_oom(err);
            break;
        }
    }
    if (rc != 0) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return rc;
}

/* {"role", "content"} appended to the messages; content taken. */
static int push_message(struct chat_build *b, const char *role, cJSON *content,
                        struct core_err *err)
{
    cJSON *m = cJSON_CreateObject();

    if (m == NULL || cJSON_AddStringToObject(m, "role", role) == NULL ||
        !adapter_json_put(m, "content", content) || !adapter_json_push(b->messages, m)) {
        if (m == NULL) {
            cJSON_Delete(content);
        } else if (cJSON_GetObjectItemCaseSensitive(m, "content") == NULL) {
            cJSON_Delete(m);
        }
        return adapter_oom(err);
    }
    return 0;
}

/* A part's words: an output_text's (or input_text's) text, or a refusal's refusal. */
static const char *part_words(const cJSON *part)
{
    const char *t = adapter_json_str(part, "text");
    return t != NULL ? t : adapter_json_str(part, "refusal");
}

/*
 * An earlier assistant message as a chat assistant message: its parts' words joined (a refusal
 * the model gave is what it said in that turn), null content when it had none.
 */
static int assistant_message(struct chat_build *b, const cJSON *content, struct core_err *err)
{
    const cJSON *part;
    size_t len = 0;
    bool any = false;
    char *text;
    char *w;
    cJSON *s;

    if (cJSON_IsString(content)) {
        return push_message(b, "assistant", cJSON_CreateString(content->valuestring), err);
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *words = part_words(part);
        len += words ? strlen(words) : 0;
        any = any || words != NULL;
    }
    if ((w = text = malloc(len + 1)) == NULL) {
        return adapter_oom(err);
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *words = part_words(part);
        size_t n = words ? strlen(words) : 0;
        memcpy(w, words ? words : "", n);
        w += n;
    }
    *w = '\0';
    s = any ? cJSON_CreateString(text) : cJSON_CreateNull();
    free(text);
    return push_message(b, "assistant", s, err);
}

/*
 * A function_call item as a tool call of the assistant message it follows (chat completions put
 * an answer's tool calls on its message); a new assistant message when the last one is not. The
 * provider's round-trip data (extra_content: Gemini's thought signature) goes back with it.
 */
static int function_call(struct chat_build *b, const cJSON *item, struct core_err *err)
{
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(item, "extra_content");
    cJSON *last = cJSON_GetArrayItem(b->messages, cJSON_GetArraySize(b->messages) - 1);
    const char *role = adapter_json_str(last, "role");
    cJSON *calls;
    cJSON *tc;

    if (role == NULL || strcmp(role, "assistant") != 0) {
        int rc = push_message(b, "assistant", cJSON_CreateNull(), err);
        if (rc != 0) {
            return rc;
        }
        last = cJSON_GetArrayItem(b->messages, cJSON_GetArraySize(b->messages) - 1);
    }
    calls = cJSON_GetObjectItemCaseSensitive(last, "tool_calls");
    if (calls == NULL && (calls = cJSON_AddArrayToObject(last, "tool_calls")) == NULL) {
        return adapter_oom(err);
    }
    tc =
        adapter_tool_call_json(-1, adapter_json_str(item, "call_id"),
                               adapter_json_str(item, "name"), adapter_json_str(item, "arguments"));
    if (tc != NULL && cJSON_IsObject(extra) &&
        !adapter_json_put(tc, "extra_content", cJSON_Duplicate(extra, true))) {
        cJSON_Delete(tc);
        tc = NULL;
    }
    return adapter_json_push(calls, tc) ? 0 : adapter_oom(err);
}

static int function_output(struct chat_build *b, const char *param, const cJSON *item,
                           struct core_err *err)
{
    cJSON *content = NULL;
    cJSON *m;
    int rc = chat_content(param, cJSON_GetObjectItemCaseSensitive(item, "output"), &content, err);

    if (rc != 0) {
        return rc;
    }
    m = cJSON_CreateObject();
    if (m == NULL || cJSON_AddStringToObject(m, "role", "tool") == NULL ||
        cJSON_AddStringToObject(m, "tool_call_id", adapter_json_str(item, "call_id")) == NULL ||
        !adapter_json_put(m, "content", content)) {
        if (m == NULL || cJSON_GetObjectItemCaseSensitive(m, "content") == NULL) {
            cJSON_Delete(content);
        }
        cJSON_Delete(m);
        return adapter_oom(err);
    }
    return adapter_json_push(b->messages, m) ? 0 : adapter_oom(err);
}

/*
 * One input item as messages. Reasoning items are left out of what is sent, as OpenAI's own
 * chat completions path does: they are the model's earlier thinking, which a chat request has
 * no place for.
 */
static int input_item(struct chat_build *b, const char *param, const cJSON *item,
                      struct core_err *err)
{
    const char *type = adapter_json_str(item, "type");
    const char *role = adapter_json_str(item, "role");
    char sub[RESPONSES_PARAM_LEN];
    cJSON *content = NULL;
    int rc;

    if ((type == NULL || strcmp(type, "message") == 0) && role != NULL) {
        responses_param(sub, param, "content", -1);
        if (strcmp(role, "assistant") == 0) {
            return assistant_message(b, cJSON_GetObjectItemCaseSensitive(item, "content"), err);
        }
        if ((rc = chat_content(sub, cJSON_GetObjectItemCaseSensitive(item, "content"), &content,
                               err)) != 0) {
            return rc;
        }
        return push_message(b, role, content, err);
    }
    if (type != NULL && strcmp(type, "function_call") == 0) {
        return function_call(b, item, err);
    }
    if (type != NULL && strcmp(type, "function_call_output") == 0) {
        responses_param(sub, param, "output", -1);
        return function_output(b, sub, item, err);
    }
    if (type != NULL && strcmp(type, "reasoning") == 0) {
        return 0;
    }
    responses_param(sub, param, "type", -1);
    return refuse(err, sub, "Input items of type '%.64s' cannot be sent to this model.",
                  type ? type : "(none)");
}

/* instructions as the first (system) message, then the input: a string is one user message. */
static int map_input(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err)
{
    const char *instructions = adapter_json_str(b->req, "instructions");
    const cJSON *item;
    char param[RESPONSES_PARAM_LEN];
    int i = 0;
    int rc;

    if (instructions != NULL && instructions[0] != '\0' &&
        (rc = push_message(b, "system", cJSON_CreateString(instructions), err)) != 0) {
        return rc;
    }
    if (cJSON_IsString(v)) {
        return push_message(b, "user", cJSON_CreateString(v->valuestring), err);
    }
    cJSON_ArrayForEach(item, v)
    {
        responses_param(param, name, NULL, i++);
        if ((rc = input_item(b, param, item, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* A key of src copied into dst when present and not null. false on OOM. */
static bool copy_key(cJSON *dst, const cJSON *src, const char *key)
{
    const cJSON *v = field(src, key);
    return v == NULL || adapter_json_put(dst, key, cJSON_Duplicate(v, true));
}

/* Function tools: {type, name, description, parameters, strict} → {type, function: {...}}. */
static int map_tools(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err)
{
    static const char *const keys[] = {"name", "description", "parameters", "strict"};
    cJSON *tools = cJSON_AddArrayToObject(b->body, "tools");
    const cJSON *tool;

    if (tools == NULL) {
        return adapter_oom(err);
    }
    cJSON_ArrayForEach(tool, v)
    {
        const char *type = adapter_json_str(tool, "type");
        cJSON *fn;
        cJSON *t;
        bool ok;

        if (type == NULL || strcmp(type, "function") != 0) {
            return refuse(err, name, "Tools of type '%.64s' are not supported.",
                          type ? type : "(none)");
        }
        fn = cJSON_CreateObject();
        ok = fn != NULL;
        for (size_t k = 0; ok && k < ARRAY_LEN(keys); k++) {
            ok = copy_key(fn, tool, keys[k]);
        }
        t = ok ? adapter_json_wrap("function", fn) : NULL;
        if (!ok) {
            cJSON_Delete(fn);
        }
        if (t == NULL || cJSON_AddStringToObject(t, "type", "function") == NULL ||
            !adapter_json_push(tools, t)) {
            if (t != NULL && cJSON_GetObjectItemCaseSensitive(t, "type") == NULL) {
                cJSON_Delete(t);
            }
            return adapter_oom(err);
        }
    }
    return 0;
}

/* "none" / "auto" / "required" as they are; {type: function, name} → {type, function: {name}}. */
static int map_tool_choice(struct chat_build *b, const char *name, const cJSON *v,
                           struct core_err *err)
{
    const char *fn = adapter_json_str(v, "name");
    cJSON *choice;

    if (cJSON_IsString(v)) {
        return map_copy(b, name, v, err);
    }
    if (fn == NULL) {
        return refuse(err, name, "%s: only none, auto, required or a function can be sent.", name);
    }
    choice = adapter_json_wrap("function", adapter_json_wrap("name", cJSON_CreateString(fn)));
    if (choice == NULL || cJSON_AddStringToObject(choice, "type", "function") == NULL ||
        !adapter_json_put(b->body, name, choice)) {
        if (choice != NULL && cJSON_GetObjectItemCaseSensitive(choice, "type") == NULL) {
            cJSON_Delete(choice);
        }
        return adapter_oom(err);
    }
    return 0;
}

/*
 * text.format → response_format ("text" is the default and asks for nothing; json_schema's
 * name, schema, strict and description move under json_schema); text.verbosity → verbosity.
 */
static int map_text(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err)
{
    static const char *const schema_keys[] = {"name", "schema", "strict", "description"};
    const cJSON *format = field(v, "format");
    const cJSON *verbosity = field(v, "verbosity");
    const char *type = adapter_json_str(format, "type");
    cJSON *rf = NULL;
    cJSON *js = NULL;
    bool ok = true;

    if (verbosity != NULL &&
        !adapter_json_put(b->body, "verbosity", cJSON_Duplicate(verbosity, true))) {
        return adapter_oom(err);
    }
    if (type == NULL || strcmp(type, "text") == 0) {
        return 0;
    }
    rf = cJSON_CreateObject();
    ok = rf != NULL && cJSON_AddStringToObject(rf, "type", type) != NULL;
    if (ok && strcmp(type, "json_schema") == 0) {
        ok = (js = cJSON_AddObjectToObject(rf, "json_schema")) != NULL;
        for (size_t k = 0; ok && k < ARRAY_LEN(schema_keys); k++) {
            ok = copy_key(js, format, schema_keys[k]);
        }
    }
    if (!ok || !adapter_json_put(b->body, "response_format", rf)) {
        if (!ok) {
            cJSON_Delete(rf);
        }
        return adapter_oom(err);
    }
    return 0;
}

/*
 * reasoning.effort → reasoning_effort (honoured by dialects that take it, refused by the rest
 * as reasoning.effort). A summary cannot be asked of a chat completion: refused.
 */
static int map_reasoning(struct chat_build *b, const char *name, const cJSON *v,
                         struct core_err *err)
{
    const cJSON *effort = field(v, "effort");

    if (field(v, "summary") != NULL) {
        return refuse(err, "reasoning.summary",
                      "'%s' cannot be honoured by this model's dialect: chat completions give "
                      "no reasoning summary.",
                      "reasoning.summary");
    }
    if (field(v, "generate_summary") != NULL) {
        return refuse(err, "reasoning.generate_summary",
                      "'%s' cannot be honoured by this model's dialect: chat completions give "
                      "no reasoning summary.",
                      "reasoning.generate_summary");
    }
    if (effort != NULL &&
        !adapter_json_put(b->body, "reasoning_effort", cJSON_Duplicate(effort, true))) {
        return adapter_oom(err);
    }
    return 0;
}

/* "disabled" is what a chat request does; "auto" would need the oldest items dropped to fit. */
static int map_truncation(struct chat_build *b, const char *name, const cJSON *v,
                          struct core_err *err)
{
    if (cJSON_IsString(v) && strcmp(v->valuestring, "disabled") == 0) {
        return 0;
    }
    return refuse(err, name,
                  "'%s' can only be \"disabled\" for this model: its dialect cannot drop the "
                  "oldest input items to fit.",
                  name);
}

/*
 * message.output_text.logprobs → logprobs: true (the chat logprobs become the output_text's);
 * message.input_image.image_url asks for the stored input, which sluice keeps whatever the
 * dialect. Everything else asks for output no chat completion has.
 */
static int map_include(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *x;

    cJSON_ArrayForEach(x, v)
    {
        const char *s = cJSON_GetStringValue(x);
        if (s != NULL && strcmp(s, RESPONSES_INCLUDE_LOGPROBS) == 0) {
            if (cJSON_GetObjectItemCaseSensitive(b->body, "logprobs") == NULL &&
                cJSON_AddTrueToObject(b->body, "logprobs") == NULL) {
                return adapter_oom(err);
            }
        } else if (s == NULL || strcmp(s, "message.input_image.image_url") != 0) {
            core_err_set(err, CORE_EINVAL, name,
                         "include value '%.64s' cannot be honoured by this model's dialect.",
                         s ? s : "(not a string)");
            core_err_set_code(err, "unsupported_parameter");
            return CORE_EINVAL;
        }
    }
    return 0;
}

/* Only the tiers that ask for nothing special: a chat-only provider has no service tiers. */
static int map_service_tier(struct chat_build *b, const char *name, const cJSON *v,
                            struct core_err *err)
{
    const char *s = cJSON_GetStringValue(v);

    if (s != NULL && (strcmp(s, "auto") == 0 || strcmp(s, "default") == 0)) {
        return 0;
    }
    return refuse(err, name, "'%s' can only be auto or default for this model.", name);
}

/* stream: true asks for the stream and its usage chunk (the dialect streams per call->stream). */
static int map_stream(struct chat_build *b, const char *name, const cJSON *v, struct core_err *err)
{
    cJSON *opts;

    if (!cJSON_IsTrue(v)) {
        return 0;
    }
    opts = adapter_json_wrap("include_usage", cJSON_CreateTrue());
    if (cJSON_AddTrueToObject(b->body, "stream") == NULL ||
        !adapter_json_put(b->body, "stream_options", opts)) {
        return adapter_oom(err);
    }
    return 0;
}

/* The translated stream adds no obfuscation padding, so only false can be honoured. */
static int map_stream_options(struct chat_build *b, const char *name, const cJSON *v,
                              struct core_err *err)
{
    if (cJSON_IsTrue(field(v, "include_obfuscation"))) {
        return refuse(err, "stream_options.include_obfuscation",
                      "'%s' cannot be honoured by this model's dialect.",
                      "stream_options.include_obfuscation");
    }
    return 0;
}

int responses_to_chat(const cJSON *req, cJSON **out, struct core_err *err)
{
    struct chat_build b = {.req = req};
    const cJSON *v;
    int rc = 0;

    *out = NULL;
    core_err_clear(err);
    b.body = cJSON_CreateObject();
    if (b.body == NULL || (b.messages = cJSON_AddArrayToObject(b.body, "messages")) == NULL) {
        rc = adapter_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(v, req)
    {
        size_t i = 0;

        while (i < ARRAY_LEN(chat_fields) &&
               (v->string == NULL || strcmp(v->string, chat_fields[i].name) != 0)) {
            i++;
        }
        if (cJSON_IsNull(v)) {
            continue;
        }
        if (i == ARRAY_LEN(chat_fields)) {
            rc = refuse(err, v->string ? v->string : "", "Unsupported parameter: '%.64s'.",
                        v->string ? v->string : "");
        } else if (chat_fields[i].map != NULL) {
            rc = chat_fields[i].map(&b, v->string, v, err);
        } else if (chat_fields[i].chat_name != NULL) {
            rc = map_copy(&b, chat_fields[i].chat_name, v, err);
        }
        if (rc != 0) {
            goto out;
        }
    }
    *out = b.body;
    b.body = NULL;
out:
    cJSON_Delete(b.body);
    return rc;
}

int responses_chat_call(const struct adapter_call *call, cJSON **body, struct adapter_call *chat,
                        struct core_err *err)
{
    int rc = responses_to_chat(call->input, body, err);

    memset(chat, 0, sizeof(*chat));
    chat->op = ADAPTER_OP_CHAT;
    chat->input = *body;
    chat->target = call->target;
    chat->stream = call->stream;
    return rc;
}

void responses_map_param(struct core_err *err)
{
    for (size_t i = 0; i < ARRAY_LEN(chat_params); i++) {
        size_t n = strlen(chat_params[i].chat);
        char quoted[80];
        char *at;

        if (strncmp(err->param, chat_params[i].chat, n) != 0 ||
            (err->param[n] != '\0' && err->param[n] != '[' && err->param[n] != '.')) {
            continue;
        }
        snprintf(quoted, sizeof(quoted), "'%s'", chat_params[i].chat);
        at = strstr(err->message, quoted);
        if (at != NULL) {
            char rest[sizeof(err->message)];
            snprintf(rest, sizeof(rest), "%s", at + strlen(quoted));
            snprintf(at, sizeof(err->message) - (size_t)(at - err->message), "'%s'%s",
                     chat_params[i].responses, rest);
        }
        snprintf(err->param, sizeof(err->param), "%s", chat_params[i].responses);
        return;
    }
}
