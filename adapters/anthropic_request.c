/*
 * adapters/anthropic_request.c — an OpenAI chat body as an Anthropic Messages body: system
 * hoisted, turns merged to alternate, tool calls and results as blocks, images as image blocks,
 * and the sampling, stop, tool, tool_choice and response_format fields that have an Anthropic
 * meaning. Which request fields those are is anthropic_fields below (the field policy, dialect.h);
 * every other field is refused before anything is built.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/anthropic.h"
#include "adapters/dialect.h"

/* The format tool's name when json_schema names none, and its description. */
#define ANTHROPIC_FORMAT_TOOL "json_response"
#define ANTHROPIC_FORMAT_DESCRIPTION "Respond with JSON that matches this schema"
/* Anthropic's (and OpenAI's) limit on a tool name: ^[a-zA-Z0-9_-]{1,64}$. */
#define ANTHROPIC_TOOL_NAME_MAX 64
/* max_tokens for a model anthropic_output_limits does not know: every Claude model allows it. */
#define ANTHROPIC_FALLBACK_MAX_TOKENS 4096

/*
 * The OpenAI Chat Completions fields this dialect honours or translates; any other field the
 * client sets (seed, top_logprobs, logit_bias, metadata, modalities, audio, prediction,
 * service_tier, web_search_options, reasoning_effort, functions, ...) is refused with a 400 naming
 * it. Rows with an IF_ rule have no Anthropic meaning and are accepted only at the value that asks
 * for nothing. top_k is not OpenAI's, but OpenAI-compatible clients send it and Anthropic has it.
 */
static const struct adapter_field anthropic_fields[] = {
    {"model", ADAPTER_FIELD_HANDLED},                 /* the deployment's model replaces it */
    {"messages", ADAPTER_FIELD_HANDLED},              /* messages + system */
    {"max_tokens", ADAPTER_FIELD_HANDLED},            /* max_tokens (map_max_tokens) */
    {"max_completion_tokens", ADAPTER_FIELD_HANDLED}, /* the same, and it wins */
    {"temperature", ADAPTER_FIELD_HANDLED},           /* 0..1 on Anthropic */
    {"top_p", ADAPTER_FIELD_HANDLED},                 /* 0..1 */
    {"top_k", ADAPTER_FIELD_HANDLED},                 /* as is */
    {"stop", ADAPTER_FIELD_HANDLED},                  /* stop_sequences */
    {"stream", ADAPTER_FIELD_HANDLED},                /* call->stream */
    {"stream_options", ADAPTER_FIELD_HANDLED},        /* the usage chunk is always made */
    {"tools", ADAPTER_FIELD_HANDLED},                 /* function tools as {name, input_schema} */
    {"tool_choice", ADAPTER_FIELD_HANDLED},           /* {type: auto|any|none|tool} */
    {"parallel_tool_calls", ADAPTER_FIELD_HANDLED},   /* false: disable_parallel_tool_use */
    {"user", ADAPTER_FIELD_HANDLED},                  /* metadata.user_id */
    {"response_format", ADAPTER_FIELD_HANDLED},       /* a forced tool: map_response_format */
    {"n", ADAPTER_FIELD_IF_ONE},                      /* one choice per request */
    {"logprobs", ADAPTER_FIELD_IF_FALSE},             /* Anthropic has no logprobs */
    {"presence_penalty", ADAPTER_FIELD_IF_ZERO},      /* nor penalties */
    {"frequency_penalty", ADAPTER_FIELD_IF_ZERO},     /* (likewise) */
    {"store", ADAPTER_FIELD_IF_FALSE},                /* nor stored completions */
};

/*
 * Output limits of Claude models by upstream model-name prefix (the longest matching prefix
 * wins), from Anthropic's model overview: the max_tokens a chat gets when neither the client nor
 * the deployment or provider (default_max_tokens) set one. OpenAI clients rarely send max_tokens
 * and mean "as long as the model goes". Anthropic counts max_tokens against the output-token rate
 * limit when a call starts, so an operator who wants less sets default_max_tokens.
 */
static const struct {
    const char *prefix;
    long max_tokens;
} anthropic_output_limits[] = {
    {"claude-opus-4-5", 64000},   {"claude-opus-4-1", 32000},  {"claude-opus-4", 32000},
    {"claude-sonnet-4-5", 64000}, {"claude-sonnet-4", 64000},  {"claude-haiku-4-5", 64000},
    {"claude-3-7-sonnet", 64000}, {"claude-3-5-sonnet", 8192}, {"claude-3-5-haiku", 8192},
    {"claude-3-opus", 4096},      {"claude-3-haiku", 4096},
};

/* OpenAI's string tool_choice values → Anthropic's tool_choice type. */
static const struct {
    const char *openai;
    const char *anthropic;
} anthropic_tool_choice_table[] = {
    {"auto", "auto"},
    {"required", "any"},
    {"none", "none"},
};

/*
 * response_format types. json: the answer comes as the input of one forced tool (Anthropic's
 * portable way to structured output); schema: json_schema.schema is that tool's input_schema,
 * else any object.
 */
static const struct {
    const char *type;
    bool json;
    bool schema;
} anthropic_format_table[] = {
    {"text", false, false},
    {"json_object", true, false},
    {"json_schema", true, true},
};

static cJSON *text_block(const char *text)
{
    cJSON *b = cJSON_CreateObject();

    if (b == NULL || !adapter_json_put(b, "type", cJSON_CreateString("text")) ||
        !adapter_json_put(b, "text", cJSON_CreateString(text))) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

/*
 * An image part's URL as an image block: data: URLs become a base64 source (the media type is
 * what the URL names), http(s) URLs a url source. Anything else cannot be sent.
 */
static int image_block(const char *url, int i, cJSON **out, struct core_err *err)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *src = cJSON_CreateObject();
    char media[128];
    const char *data;

    *out = NULL;
    if (b == NULL || src == NULL) {
        goto oom;
    }
    if (strncmp(url, "data:", 5) == 0) {
        if (adapter_data_url(url, false, media, sizeof(media), &data) != 0) {
            cJSON_Delete(b);
            cJSON_Delete(src);
            return core_err_set(err, CORE_EINVAL, "messages",
                                "messages[%d]: an image data URL must be data:<type>;base64,...",
                                i);
        }
        if (!adapter_json_put(src, "type", cJSON_CreateString("base64")) ||
            !adapter_json_put(src, "media_type", cJSON_CreateString(media)) ||
            !adapter_json_put(src, "data", cJSON_CreateString(data))) {
            goto oom;
        }
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
        if (!adapter_json_put(src, "type", cJSON_CreateString("url")) ||
            !adapter_json_put(src, "url", cJSON_CreateString(url))) {
            goto oom;
        }
    } else {
        cJSON_Delete(b);
        cJSON_Delete(src);
        return core_err_set(err, CORE_EINVAL, "messages",
                            "messages[%d]: an image URL must be a data: or http(s) URL", i);
    }
    if (!adapter_json_put(b, "type", cJSON_CreateString("image"))) {
        goto oom;
    }
    if (!adapter_json_put(b, "source", src)) {
        src = NULL;
        goto oom;
    }
    *out = b;
    return 0;
oom:
    cJSON_Delete(b);
    cJSON_Delete(src);
    return adapter_oom(err);
}

/*
 * Appends the blocks of an OpenAI content value to blocks: a string or text part becomes a text
 * block, an image_url part an image block where Anthropic takes images (user turns and tool
 * results; not system or assistant). Empty text is dropped (Anthropic refuses empty text blocks);
 * null content adds nothing.
 */
static int content_blocks(const cJSON *content, int i, bool images, cJSON *blocks,
                          struct core_err *err)
{
    const cJSON *part;

    if (content == NULL || cJSON_IsNull(content)) {
        return 0;
    }
    if (cJSON_IsString(content)) {
        if (content->valuestring[0] != '\0' &&
            !adapter_json_push(blocks, text_block(content->valuestring))) {
            return adapter_oom(err);
        }
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return core_err_set(err, CORE_EINVAL, "messages",
                            "messages[%d]: content must be a string or an array of parts", i);
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *type = adapter_json_str(part, "type");
        if (type != NULL && strcmp(type, "text") == 0) {
            const char *text = adapter_json_str(part, "text");
            if (text == NULL) {
                return core_err_set(err, CORE_EINVAL, "messages",
                                    "messages[%d]: a text part needs a text string", i);
            }
            if (text[0] != '\0' && !adapter_json_push(blocks, text_block(text))) {
                return adapter_oom(err);
            }
        } else if (images && type != NULL && strcmp(type, "image_url") == 0) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const char *url = cJSON_IsString(iu) ? iu->valuestring : adapter_json_str(iu, "url");
            cJSON *b;
            int rc;
            if (url == NULL) {
                return core_err_set(err, CORE_EINVAL, "messages",
                                    "messages[%d]: an image_url part needs a url", i);
            }
            if ((rc = image_block(url, i, &b, err)) != 0) {
                return rc;
            }
            if (!adapter_json_push(blocks, b)) {
                return adapter_oom(err);
            }
        } else {
            return core_err_set(err, CORE_EINVAL, "messages",
                                "messages[%d]: content part type \"%s\" is not supported by "
                                "anthropic here",
                                i, type ? type : "(none)");
        }
    }
    return 0;
}

/*
 * An assistant's tool_calls as tool_use blocks. Anthropic wants the input as a JSON object, so
 * the arguments text is parsed; "" (a call without arguments) is {}.
 */
static int tool_use_blocks(const cJSON *tool_calls, int i, cJSON *blocks, struct core_err *err)
{
    const cJSON *tc;

    if (tool_calls == NULL || cJSON_IsNull(tool_calls)) {
        return 0;
    }
    if (!cJSON_IsArray(tool_calls)) {
        return core_err_set(err, CORE_EINVAL, "messages",
                            "messages[%d]: tool_calls must be an array", i);
    }
    cJSON_ArrayForEach(tc, tool_calls)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *id = adapter_json_str(tc, "id");
        const char *name = adapter_json_str(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        cJSON *input = NULL;
        cJSON *b;

        if (id == NULL || name == NULL) {
            return core_err_set(err, CORE_EINVAL, "messages",
                                "messages[%d]: a tool call needs an id and a function name", i);
        }
        if (cJSON_IsString(args) && args->valuestring[0] != '\0') {
            input = adapter_json_parse(args->valuestring, strlen(args->valuestring));
        } else if (cJSON_IsObject(args)) {
            input = cJSON_Duplicate(args, true);
        } else if (args == NULL || cJSON_IsString(args)) {
            input = cJSON_CreateObject();
            if (input == NULL) {
                return adapter_oom(err);
            }
        }
        if (!cJSON_IsObject(input)) {
            cJSON_Delete(input);
            return core_err_set(err, CORE_EINVAL, "messages",
                                "messages[%d]: the arguments of tool call %s are not a JSON object",
                                i, id);
        }
        b = cJSON_CreateObject();
        if (b == NULL || !adapter_json_put(b, "type", cJSON_CreateString("tool_use")) ||
            !adapter_json_put(b, "id", cJSON_CreateString(id)) ||
            !adapter_json_put(b, "name", cJSON_CreateString(name))) {
            cJSON_Delete(b);
            cJSON_Delete(input);
            return adapter_oom(err);
        }
        if (!adapter_json_put(b, "input", input)) {
            cJSON_Delete(b);
            return adapter_oom(err);
        }
        if (!adapter_json_push(blocks, b)) {
            return adapter_oom(err);
        }
    }
    return 0;
}

/* A role "tool" message as a tool_result block; string content stays a string. */
static int tool_result_block(const cJSON *msg, int i, cJSON *blocks, struct core_err *err)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const char *id = adapter_json_str(msg, "tool_call_id");
    cJSON *inner;
    cJSON *b;
    int rc;

    if (id == NULL) {
        return core_err_set(err, CORE_EINVAL, "messages",
                            "messages[%d]: a tool message needs a tool_call_id", i);
    }
    if (cJSON_IsString(content)) {
        inner = cJSON_CreateString(content->valuestring);
    } else if ((inner = cJSON_CreateArray()) != NULL &&
               (rc = content_blocks(content, i, true, inner, err)) != 0) {
        cJSON_Delete(inner);
        return rc;
    }
    b = cJSON_CreateObject();
    if (inner == NULL || b == NULL ||
        !adapter_json_put(b, "type", cJSON_CreateString("tool_result")) ||
        !adapter_json_put(b, "tool_use_id", cJSON_CreateString(id))) {
        cJSON_Delete(inner);
        cJSON_Delete(b);
        return adapter_oom(err);
    }
    if (cJSON_IsArray(inner) && inner->child == NULL) {
        cJSON_Delete(inner);
    } else if (!adapter_json_put(b, "content", inner)) {
        cJSON_Delete(b);
        return adapter_oom(err);
    }
    return adapter_json_push(blocks, b) ? 0 : adapter_oom(err);
}

/*
 * The turn being built: consecutive messages of one role, merged, since Anthropic requires user
 * and assistant to alternate. In a user turn Anthropic wants tool_result blocks before any other
 * block, so they are kept apart until the turn is flushed. Everything here is O(1) per block:
 * cJSON arrays are linked lists, and a client's body may hold hundreds of thousands of messages.
 */
struct turn {
    const char *role; /* "user" or "assistant"; NULL while empty */
    cJSON *results;   /* tool_result blocks; NULL until one comes */
    cJSON *others;    /* every other block; NULL until one comes */
};

static void turn_cleanup(struct turn *t)
{
    cJSON_Delete(t->results);
    cJSON_Delete(t->others);
    memset(t, 0, sizeof(*t));
}

/* Appends the turn as a message to messages and empties it. false on OOM. */
static bool turn_flush(struct turn *t, cJSON *messages)
{
    cJSON *content = t->results != NULL ? t->results : t->others;
    const char *role = t->role;
    bool ok = true;
    cJSON *msg;

    if (t->results != NULL && t->others != NULL) {
        while (ok && t->others->child != NULL) {
            ok =
                adapter_json_push(content, cJSON_DetachItemViaPointer(t->others, t->others->child));
        }
        cJSON_Delete(t->others);
    }
    memset(t, 0, sizeof(*t));
    if (content == NULL) {
        return true;
    }
    msg = cJSON_CreateObject();
    if (!ok || msg == NULL || !adapter_json_put(msg, "role", cJSON_CreateString(role))) {
        cJSON_Delete(msg);
        cJSON_Delete(content);
        return false;
    }
    if (!adapter_json_put(msg, "content", content)) {
        cJSON_Delete(msg);
        return false;
    }
    return adapter_json_push(messages, msg);
}

/*
 * Adds a message's blocks (taken) to the turn, flushing the turn first when the role changes. A
 * message without blocks (an empty assistant turn) is dropped, so its neighbours merge.
 */
static bool turn_add(struct turn *t, const char *role, cJSON *blocks, cJSON *messages)
{
    bool ok = true;

    if (blocks->child == NULL) {
        cJSON_Delete(blocks);
        return true;
    }
    if (t->role != NULL && strcmp(t->role, role) != 0) {
        ok = turn_flush(t, messages);
    }
    t->role = role;
    while (ok && blocks->child != NULL) {
        cJSON *b = cJSON_DetachItemViaPointer(blocks, blocks->child);
        const char *type = adapter_json_str(b, "type");
        cJSON **into =
            (type != NULL && strcmp(type, "tool_result") == 0) ? &t->results : &t->others;
        if (*into == NULL && (*into = cJSON_CreateArray()) == NULL) {
            cJSON_Delete(b);
            ok = false;
        } else {
            ok = adapter_json_push(*into, b);
        }
    }
    cJSON_Delete(blocks);
    return ok;
}

/* A message whose content is one plain text block is sent with string content, as clients do. */
static bool collapse_text(cJSON *messages)
{
    cJSON *msg;

    cJSON_ArrayForEach(msg, messages)
    {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        cJSON *only = cJSON_GetArrayItem(content, 0);
        const char *type = adapter_json_str(only, "type");
        cJSON *s;

        if (cJSON_GetArraySize(content) != 1 || cJSON_GetArraySize(only) != 2 || type == NULL ||
            strcmp(type, "text") != 0) {
            continue;
        }
        s = cJSON_CreateString(adapter_json_str(only, "text"));
        if (s == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", s)) {
            cJSON_Delete(s);
            return false;
        }
    }
    return true;
}

/*
 * The system prompt from the text of every system and developer message: one string (joined by
 * blank lines) when all of them were strings, else their text blocks, so part boundaries stay.
 * Takes system. NULL with *oom false when there is no system text.
 */
static cJSON *system_value(cJSON *system, bool as_blocks, bool *oom)
{
    char *joined;
    bool any;
    cJSON *s;

    *oom = false;
    if (cJSON_GetArraySize(system) == 0) {
        cJSON_Delete(system);
        return NULL;
    }
    if (as_blocks) {
        return system;
    }
    joined = adapter_text_join(system, "\n\n", NULL, &any);
    s = joined != NULL ? cJSON_CreateString(joined) : NULL;
    free(joined);
    cJSON_Delete(system);
    *oom = (s == NULL);
    return s;
}

/* OpenAI's messages as Anthropic's messages and system, added to body. */
static int map_messages(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(input, "messages");
    const cJSON *m;
    cJSON *messages = cJSON_CreateArray();
    cJSON *system = cJSON_CreateArray();
    cJSON *sys;
    struct turn turn = {0};
    bool system_parts = false;
    bool oom;
    int i = 0;
    int rc = 0;

    if (messages == NULL || system == NULL) {
        rc = adapter_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(m, in)
    {
        const char *role = adapter_json_str(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        cJSON *blocks;

        if (role == NULL) {
            rc = core_err_set(err, CORE_EINVAL, "messages", "messages[%d]: role is missing", i);
            goto out;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            system_parts = system_parts || cJSON_IsArray(content);
            if ((rc = content_blocks(content, i, false, system, err)) != 0) {
                goto out;
            }
            i++;
            continue;
        }
        if ((blocks = cJSON_CreateArray()) == NULL) {
            rc = adapter_oom(err);
            goto out;
        }
        if (strcmp(role, "user") == 0) {
            rc = content_blocks(content, i, true, blocks, err);
        } else if (strcmp(role, "assistant") == 0) {
            rc = content_blocks(content, i, false, blocks, err);
            if (rc == 0) {
                rc = tool_use_blocks(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), i, blocks,
                                     err);
            }
        } else if (strcmp(role, "tool") == 0) {
            rc = tool_result_block(m, i, blocks, err);
        } else {
            rc = core_err_set(err, CORE_EINVAL, "messages",
                              "messages[%d]: role \"%s\" is not supported by anthropic", i, role);
        }
        if (rc != 0) {
            cJSON_Delete(blocks);
            goto out;
        }
        if (!turn_add(&turn, strcmp(role, "assistant") == 0 ? "assistant" : "user", blocks,
                      messages)) {
            rc = adapter_oom(err);
            goto out;
        }
        i++;
    }
    if (!turn_flush(&turn, messages)) {
        rc = adapter_oom(err);
        goto out;
    }
    if (messages->child == NULL) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "anthropic needs at least one user or assistant message with content");
        goto out;
    }
    if (!collapse_text(messages)) {
        rc = adapter_oom(err);
        goto out;
    }
    sys = system_value(system, system_parts, &oom);
    system = NULL;
    if (oom || (sys != NULL && !adapter_json_put(body, "system", sys))) {
        rc = adapter_oom(err);
        goto out;
    }
    if (!adapter_json_put(body, "messages", messages)) {
        messages = NULL;
        rc = adapter_oom(err);
        goto out;
    }
    messages = NULL;
out:
    turn_cleanup(&turn);
    cJSON_Delete(messages);
    cJSON_Delete(system);
    return rc;
}

/* The output limit of a model by anthropic_output_limits, or ANTHROPIC_FALLBACK_MAX_TOKENS. */
static long model_max_tokens(const char *model)
{
    long n = ANTHROPIC_FALLBACK_MAX_TOKENS;
    size_t best = 0;

    for (size_t k = 0; k < ARRAY_LEN(anthropic_output_limits); k++) {
        size_t len = strlen(anthropic_output_limits[k].prefix);
        if (len > best && strncmp(model, anthropic_output_limits[k].prefix, len) == 0) {
            best = len;
            n = anthropic_output_limits[k].max_tokens;
        }
    }
    return n;
}

/*
 * max_completion_tokens, else max_tokens, else the deployment's (or provider's) default, else the
 * model's output limit: Anthropic requires one.
 */
static int map_max_tokens(const cJSON *input, const struct adapter_target *t, cJSON *body,
                          struct core_err *err)
{
    static const char *const keys[] = {"max_completion_tokens", "max_tokens"};
    double n = 0;

    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, keys[k]);
        if (v == NULL || cJSON_IsNull(v)) {
            continue;
        }
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e9 ||
            v->valuedouble != floor(v->valuedouble)) {
            return core_err_set(err, CORE_EINVAL, keys[k], "%s must be a positive integer",
                                keys[k]);
        }
        n = v->valuedouble;
        break;
    }
    if (n == 0) {
        n = (double)(t->default_max_tokens > 0 ? t->default_max_tokens
                                               : model_max_tokens(t->model));
    }
    return adapter_json_put(body, "max_tokens", cJSON_CreateNumber(n)) ? 0 : adapter_oom(err);
}

/* stop (a string or an array of strings) as stop_sequences. */
static int map_stop(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(input, "stop");
    const cJSON *s;
    cJSON *seqs;

    if (stop == NULL || cJSON_IsNull(stop)) {
        return 0;
    }
    if (!cJSON_IsString(stop) && !cJSON_IsArray(stop)) {
        return core_err_set(err, CORE_EINVAL, "stop", "stop must be a string or an array");
    }
    if ((seqs = cJSON_CreateArray()) == NULL) {
        return adapter_oom(err);
    }
    if (cJSON_IsString(stop) && !adapter_json_push(seqs, cJSON_CreateString(stop->valuestring))) {
        cJSON_Delete(seqs);
        return adapter_oom(err);
    }
    cJSON_ArrayForEach(s, stop)
    {
        if (!cJSON_IsString(s)) {
            cJSON_Delete(seqs);
            return core_err_set(err, CORE_EINVAL, "stop", "stop must hold strings");
        }
        if (!adapter_json_push(seqs, cJSON_CreateString(s->valuestring))) {
            cJSON_Delete(seqs);
            return adapter_oom(err);
        }
    }
    if (cJSON_GetArraySize(seqs) == 0) {
        cJSON_Delete(seqs);
        return 0;
    }
    return adapter_json_put(body, "stop_sequences", seqs) ? 0 : adapter_oom(err);
}

/* tools [{type:function, function{name, description, parameters}}] → [{name, description,
 * input_schema}]; a function without parameters takes an empty object. */
static int map_tools(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(input, "tools");
    const cJSON *tool;
    cJSON *out;

    if (tools == NULL || cJSON_IsNull(tools)) {
        return 0;
    }
    if (!cJSON_IsArray(tools)) {
        return core_err_set(err, CORE_EINVAL, "tools", "tools must be an array");
    }
    if ((out = cJSON_CreateArray()) == NULL) {
        return adapter_oom(err);
    }
    cJSON_ArrayForEach(tool, tools)
    {
        const char *type = adapter_json_str(tool, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const char *name = adapter_json_str(fn, "name");
        const char *desc = adapter_json_str(fn, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON *t;

        if (type == NULL || strcmp(type, "function") != 0) {
            cJSON_Delete(out);
            return core_err_set(err, CORE_EINVAL, "tools",
                                "tool type \"%s\" is not supported by anthropic",
                                type ? type : "(none)");
        }
        if (name == NULL) {
            cJSON_Delete(out);
            return core_err_set(err, CORE_EINVAL, "tools", "a function tool needs a name");
        }
        t = cJSON_CreateObject();
        if (!adapter_json_push(out, t) || !adapter_json_put(t, "name", cJSON_CreateString(name)) ||
            (desc != NULL && !adapter_json_put(t, "description", cJSON_CreateString(desc))) ||
            !adapter_json_put(t, "input_schema",
                              cJSON_IsObject(params)
                                  ? cJSON_Duplicate(params, true)
                                  : cJSON_Parse("{\"type\":\"object\",\"properties\":{}}"))) {
            cJSON_Delete(out);
            return adapter_oom(err);
        }
    }
    return adapter_json_put(body, "tools", out) ? 0 : adapter_oom(err);
}

/*
 * tool_choice as Anthropic's {type: auto|any|none|tool}; parallel_tool_calls: false becomes
 * disable_parallel_tool_use (on an auto choice when the client named none and sent tools).
 */
static int map_tool_choice(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(input, "tool_choice");
    bool serial = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(input, "parallel_tool_calls"));
    const char *type = NULL;
    const char *name = NULL;
    cJSON *out;

    if (cJSON_IsString(tc)) {
        for (size_t k = 0; k < ARRAY_LEN(anthropic_tool_choice_table); k++) {
            if (strcmp(tc->valuestring, anthropic_tool_choice_table[k].openai) == 0) {
                type = anthropic_tool_choice_table[k].anthropic;
            }
        }
    } else if (cJSON_IsObject(tc)) {
        name = adapter_json_str(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
        type = name != NULL ? "tool" : NULL;
    } else if (tc == NULL || cJSON_IsNull(tc)) {
        if (!serial || cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "tools")) == 0) {
            return 0;
        }
        type = "auto";
    }
    if (type == NULL) {
        return core_err_set(err, CORE_EINVAL, "tool_choice",
                            "tool_choice must be auto, required, none or a named function");
    }
    out = cJSON_CreateObject();
    if (out == NULL || !adapter_json_put(out, "type", cJSON_CreateString(type)) ||
        (name != NULL && !adapter_json_put(out, "name", cJSON_CreateString(name))) ||
        (serial && strcmp(type, "none") != 0 &&
         !adapter_json_put(out, "disable_parallel_tool_use", cJSON_CreateTrue()))) {
        cJSON_Delete(out);
        return adapter_oom(err);
    }
    return adapter_json_put(body, "tool_choice", out) ? 0 : adapter_oom(err);
}

/*
 * Sampling fields that mean the same in both dialects, within Anthropic's ranges (OpenAI allows
 * temperature up to 2; Anthropic refuses more than 1, so such a request is refused here without
 * an upstream call), and user as metadata.user_id. n was checked by the field table.
 */
static int map_sampling(const cJSON *input, cJSON *body, struct core_err *err)
{
    static const struct {
        const char *key;
        double max; /* inclusive; the minimum is 0 for all */
    } keys[] = {{"temperature", 1}, {"top_p", 1}, {"top_k", 1e9}};
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(input, "user");
    cJSON *meta;

    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, keys[k].key);
        if (v == NULL || cJSON_IsNull(v)) {
            continue;
        }
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= keys[k].max)) {
            return core_err_set(err, CORE_EINVAL, keys[k].key,
                                "%s must be a number from 0 to %g on anthropic", keys[k].key,
                                keys[k].max);
        }
        if (!adapter_json_put(body, keys[k].key, cJSON_CreateNumber(v->valuedouble))) {
            return adapter_oom(err);
        }
    }
    if (user == NULL || cJSON_IsNull(user)) {
        return 0;
    }
    if (!cJSON_IsString(user)) {
        return core_err_set(err, CORE_EINVAL, "user", "user must be a string");
    }
    meta = cJSON_CreateObject();
    if (meta == NULL || !adapter_json_put(meta, "user_id", cJSON_CreateString(user->valuestring))) {
        cJSON_Delete(meta);
        return adapter_oom(err);
    }
    return adapter_json_put(body, "metadata", meta) ? 0 : adapter_oom(err);
}

/* The row of anthropic_format_table for the client's response_format; -1 when none matches. */
static int format_row(const cJSON *rf)
{
    const char *type = adapter_json_str(rf, "type");

    for (size_t k = 0; type != NULL && k < ARRAY_LEN(anthropic_format_table); k++) {
        if (strcmp(type, anthropic_format_table[k].type) == 0) {
            return (int)k;
        }
    }
    return -1;
}

const char *anthropic_format_tool(const cJSON *input)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(input, "response_format");
    const char *name =
        adapter_json_str(cJSON_GetObjectItemCaseSensitive(rf, "json_schema"), "name");
    int row = format_row(rf);

    if (row < 0 || !anthropic_format_table[row].json) {
        return NULL;
    }
    return anthropic_format_table[row].schema && name != NULL ? name : ANTHROPIC_FORMAT_TOOL;
}

static int format_refused(const char *why, struct core_err *err)
{
    return core_err_set(err, CORE_EINVAL, "response_format", "response_format: %s", why);
}

/*
 * response_format json_object / json_schema as one tool whose input_schema is the schema (any
 * object for json_object), forced with tool_choice; the reply's input of that tool is the answer
 * (anthropic.c, anthropic_stream.c; should the model use it twice, only its first use counts).
 * The client's own tools cannot be offered beside it: a forced tool leaves the model no choice to
 * call them, and an optional one would not make the answer JSON, so tools (or a tool_choice) with
 * a JSON format are refused. Anthropic's input_schema must be an object schema: one without a
 * type gets type object, one of another type is refused. A null schema is no schema.
 */
static int map_response_format(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(input, "response_format");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(input, "tool_choice");
    const char *desc = adapter_json_str(js, "description");
    const char *type;
    const char *name = anthropic_format_tool(input);
    int row = format_row(rf);
    cJSON *tool;
    cJSON *tools;
    cJSON *choice;
    cJSON *input_schema;

    if (rf == NULL || cJSON_IsNull(rf)) {
        return 0;
    }
    if (cJSON_IsNull(schema)) {
        schema = NULL;
    }
    if (row < 0) {
        return format_refused("type must be text, json_object or json_schema", err);
    }
    if (!anthropic_format_table[row].json) {
        return 0;
    }
    if (anthropic_format_table[row].schema &&
        (!cJSON_IsObject(js) || (schema != NULL && !cJSON_IsObject(schema)))) {
        return format_refused("json_schema must be an object whose schema is an object", err);
    }
    type = adapter_json_str(schema, "type");
    if (schema != NULL && cJSON_GetObjectItemCaseSensitive(schema, "type") != NULL &&
        (type == NULL || strcmp(type, "object") != 0)) {
        return format_refused("anthropic needs a schema of type object", err);
    }
    if (!adapter_id_ok(name, ANTHROPIC_TOOL_NAME_MAX, "_-")) {
        return format_refused("json_schema.name must be 1 to 64 letters, digits, _ or -", err);
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "tools")) > 0 ||
        (tc != NULL && !cJSON_IsNull(tc))) {
        return format_refused("cannot be combined with tools or tool_choice on this dialect", err);
    }
    input_schema = schema != NULL ? cJSON_Duplicate(schema, true) : cJSON_CreateObject();
    tool = cJSON_CreateObject();
    if (input_schema != NULL && type == NULL &&
        !adapter_json_put(input_schema, "type", cJSON_CreateString("object"))) {
        cJSON_Delete(input_schema);
        input_schema = NULL;
    }
    if (tool == NULL || input_schema == NULL ||
        !adapter_json_put(tool, "name", cJSON_CreateString(name)) ||
        !adapter_json_put(tool, "description",
                          cJSON_CreateString(desc != NULL ? desc : ANTHROPIC_FORMAT_DESCRIPTION))) {
        cJSON_Delete(input_schema);
        cJSON_Delete(tool);
        return adapter_oom(err);
    }
    if (!adapter_json_put(tool, "input_schema", input_schema)) {
        cJSON_Delete(tool);
        return adapter_oom(err);
    }
    tools = cJSON_CreateArray();
    if (!adapter_json_push(tools, tool)) {
        cJSON_Delete(tools);
        return adapter_oom(err);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(body, "tools"); /* the client's empty list */
    choice = cJSON_CreateObject();
    if (!adapter_json_put(body, "tools", tools) || choice == NULL ||
        !adapter_json_put(choice, "type", cJSON_CreateString("tool")) ||
        !adapter_json_put(choice, "name", cJSON_CreateString(name))) {
        cJSON_Delete(choice);
        return adapter_oom(err);
    }
    return adapter_json_put(body, "tool_choice", choice) ? 0 : adapter_oom(err);
}

int anthropic_fields_check(const cJSON *input, struct core_err *err)
{
    return adapter_fields_check(input, "anthropic", anthropic_fields, ARRAY_LEN(anthropic_fields),
                                err);
}

int anthropic_map_request(const cJSON *input, const struct adapter_target *t, cJSON *body,
                          struct core_err *err)
{
    int rc;

    if ((rc = map_max_tokens(input, t, body, err)) != 0 ||
        (rc = map_messages(input, body, err)) != 0 || (rc = map_stop(input, body, err)) != 0 ||
        (rc = map_sampling(input, body, err)) != 0 || (rc = map_tools(input, body, err)) != 0 ||
        (rc = map_tool_choice(input, body, err)) != 0 ||
        (rc = map_response_format(input, body, err)) != 0) {
        return rc;
    }
    return 0;
}
