/*
 * adapters/anthropic.c — the Anthropic Messages dialect, chat only. Turns an OpenAI chat body into
 * a POST /messages body (system hoisted, turns merged to alternate, tool calls and results as
 * blocks), a message reply back into a chat.completion, and Anthropic's stream events into OpenAI
 * chat.completion.chunk objects.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define ANTHROPIC_VERSION "2023-06-01"
/* Content blocks one streamed message may open; a stream past this is refused as malformed. */
#define ANTHROPIC_MAX_BLOCKS 4096
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
static const struct {
    const char *reset;
    const char *remaining;
} anthropic_reset_headers[] = {
    {"anthropic-ratelimit-requests-reset", "anthropic-ratelimit-requests-remaining"},
    {"anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-remaining"},
    {"anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-input-tokens-remaining"},
    {"anthropic-ratelimit-output-tokens-reset", "anthropic-ratelimit-output-tokens-remaining"},
};

/* The usage fields of a message, in the order they are read from usage objects. */
enum { USAGE_INPUT, USAGE_CACHE_CREATION, USAGE_CACHE_READ, USAGE_OUTPUT, USAGE_N };
static const char *const anthropic_usage_fields[USAGE_N] = {
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
};

/* Per-call state of a stream: what message_start said and what later events refer back to. */
struct anthropic_stream {
    char *id;        /* message id, "" until message_start */
    char *model;     /* from message_start; the deployment's model until then */
    bool started;    /* message_start seen */
    bool finished;   /* message_stop seen */
    int n_tools;     /* tool_use blocks opened so far: the next tool_calls index */
    int *tool_index; /* per content block index: its tool_calls index, -1 for other blocks */
    size_t n_blocks; /* entries in tool_index */
    double usage[USAGE_N];
};

static const char *json_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Adds item to obj under key; obj takes item. false on OOM (item, which may be NULL, freed). */
static bool put(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL) {
        return false;
    }
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* Appends item to arr; arr takes item. false on OOM (item, which may be NULL, freed). */
static bool push(cJSON *arr, cJSON *item)
{
    if (item == NULL) {
        return false;
    }
    if (!cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

static int anthropic_oom(struct core_err *err)
{
    return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
}

static cJSON *text_block(const char *text)
{
    cJSON *b = cJSON_CreateObject();

    if (b == NULL || !put(b, "type", cJSON_CreateString("text")) ||
        !put(b, "text", cJSON_CreateString(text))) {
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

    *out = NULL;
    if (b == NULL || src == NULL) {
        goto oom;
    }
    if (strncmp(url, "data:", 5) == 0) {
        const char *comma = strchr(url, ',');
        size_t mlen = strcspn(url + 5, ";,");
        if (comma == NULL || comma - url < 12 || strncmp(comma - 7, ";base64", 7) != 0 ||
            mlen == 0 || mlen >= sizeof(media)) {
            cJSON_Delete(b);
            cJSON_Delete(src);
            return core_err_set(err, CORE_EINVAL, "messages",
                                "messages[%d]: an image data URL must be data:<type>;base64,...",
                                i);
        }
        memcpy(media, url + 5, mlen);
        media[mlen] = '\0';
        if (!put(src, "type", cJSON_CreateString("base64")) ||
            !put(src, "media_type", cJSON_CreateString(media)) ||
            !put(src, "data", cJSON_CreateString(comma + 1))) {
            goto oom;
        }
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
        if (!put(src, "type", cJSON_CreateString("url")) ||
            !put(src, "url", cJSON_CreateString(url))) {
            goto oom;
        }
    } else {
        cJSON_Delete(b);
        cJSON_Delete(src);
        return core_err_set(err, CORE_EINVAL, "messages",
                            "messages[%d]: an image URL must be a data: or http(s) URL", i);
    }
    if (!put(b, "type", cJSON_CreateString("image"))) {
        goto oom;
    }
    if (!put(b, "source", src)) {
        src = NULL;
        goto oom;
    }
    *out = b;
    return 0;
oom:
    cJSON_Delete(b);
    cJSON_Delete(src);
    return anthropic_oom(err);
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
        if (content->valuestring[0] != '\0' && !push(blocks, text_block(content->valuestring))) {
            return anthropic_oom(err);
        }
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return core_err_set(err, CORE_EINVAL, "messages",
                            "messages[%d]: content must be a string or an array of parts", i);
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *type = json_str(part, "type");
        if (type != NULL && strcmp(type, "text") == 0) {
            const char *text = json_str(part, "text");
            if (text == NULL) {
                return core_err_set(err, CORE_EINVAL, "messages",
                                    "messages[%d]: a text part needs a text string", i);
            }
            if (text[0] != '\0' && !push(blocks, text_block(text))) {
                return anthropic_oom(err);
            }
        } else if (images && type != NULL && strcmp(type, "image_url") == 0) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const char *url = cJSON_IsString(iu) ? iu->valuestring : json_str(iu, "url");
            cJSON *b;
            int rc;
            if (url == NULL) {
                return core_err_set(err, CORE_EINVAL, "messages",
                                    "messages[%d]: an image_url part needs a url", i);
            }
            if ((rc = image_block(url, i, &b, err)) != 0) {
                return rc;
            }
            if (!push(blocks, b)) {
                return anthropic_oom(err);
            }
        } else {
            return core_err_set(err, CORE_EUNPROCESSABLE, "messages",
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
        const char *id = json_str(tc, "id");
        const char *name = json_str(fn, "name");
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
                return anthropic_oom(err);
            }
        }
        if (!cJSON_IsObject(input)) {
            cJSON_Delete(input);
            return core_err_set(err, CORE_EINVAL, "messages",
                                "messages[%d]: the arguments of tool call %s are not a JSON object",
                                i, id);
        }
        b = cJSON_CreateObject();
        if (b == NULL || !put(b, "type", cJSON_CreateString("tool_use")) ||
            !put(b, "id", cJSON_CreateString(id)) || !put(b, "name", cJSON_CreateString(name))) {
            cJSON_Delete(b);
            cJSON_Delete(input);
            return anthropic_oom(err);
        }
        if (!put(b, "input", input)) {
            cJSON_Delete(b);
            return anthropic_oom(err);
        }
        if (!push(blocks, b)) {
            return anthropic_oom(err);
        }
    }
    return 0;
}

/* A role "tool" message as a tool_result block; string content stays a string. */
static int tool_result_block(const cJSON *msg, int i, cJSON *blocks, struct core_err *err)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const char *id = json_str(msg, "tool_call_id");
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
    if (inner == NULL || b == NULL || !put(b, "type", cJSON_CreateString("tool_result")) ||
        !put(b, "tool_use_id", cJSON_CreateString(id))) {
        cJSON_Delete(inner);
        cJSON_Delete(b);
        return anthropic_oom(err);
    }
    if (cJSON_IsArray(inner) && inner->child == NULL) {
        cJSON_Delete(inner);
    } else if (!put(b, "content", inner)) {
        cJSON_Delete(b);
        return anthropic_oom(err);
    }
    return push(blocks, b) ? 0 : anthropic_oom(err);
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
            ok = push(content, cJSON_DetachItemViaPointer(t->others, t->others->child));
        }
        cJSON_Delete(t->others);
    }
    memset(t, 0, sizeof(*t));
    if (content == NULL) {
        return true;
    }
    msg = cJSON_CreateObject();
    if (!ok || msg == NULL || !put(msg, "role", cJSON_CreateString(role))) {
        cJSON_Delete(msg);
        cJSON_Delete(content);
        return false;
    }
    if (!put(msg, "content", content)) {
        cJSON_Delete(msg);
        return false;
    }
    return push(messages, msg);
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
        const char *type = json_str(b, "type");
        cJSON **into =
            (type != NULL && strcmp(type, "tool_result") == 0) ? &t->results : &t->others;
        if (*into == NULL && (*into = cJSON_CreateArray()) == NULL) {
            cJSON_Delete(b);
            ok = false;
        } else {
            ok = push(*into, b);
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
        const char *type = json_str(only, "type");
        cJSON *s;

        if (cJSON_GetArraySize(content) != 1 || cJSON_GetArraySize(only) != 2 || type == NULL ||
            strcmp(type, "text") != 0) {
            continue;
        }
        s = cJSON_CreateString(json_str(only, "text"));
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
    const cJSON *b;
    size_t len = 0;
    char *joined;
    char *w;
    cJSON *s;

    *oom = false;
    if (cJSON_GetArraySize(system) == 0) {
        cJSON_Delete(system);
        return NULL;
    }
    if (as_blocks) {
        return system;
    }
    cJSON_ArrayForEach(b, system)
    {
        len += strlen(json_str(b, "text")) + 2;
    }
    joined = malloc(len + 1);
    if (joined == NULL) {
        cJSON_Delete(system);
        *oom = true;
        return NULL;
    }
    w = joined;
    cJSON_ArrayForEach(b, system)
    {
        const char *t = json_str(b, "text");
        size_t n = strlen(t);
        if (w != joined) {
            memcpy(w, "\n\n", 2);
            w += 2;
        }
        memcpy(w, t, n);
        w += n;
    }
    *w = '\0';
    s = cJSON_CreateString(joined);
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
        rc = anthropic_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(m, in)
    {
        const char *role = json_str(m, "role");
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
            rc = anthropic_oom(err);
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
            rc = anthropic_oom(err);
            goto out;
        }
        i++;
    }
    if (!turn_flush(&turn, messages)) {
        rc = anthropic_oom(err);
        goto out;
    }
    if (messages->child == NULL) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "anthropic needs at least one user or assistant message with content");
        goto out;
    }
    if (!collapse_text(messages)) {
        rc = anthropic_oom(err);
        goto out;
    }
    sys = system_value(system, system_parts, &oom);
    system = NULL;
    if (oom || (sys != NULL && !put(body, "system", sys))) {
        rc = anthropic_oom(err);
        goto out;
    }
    if (!put(body, "messages", messages)) {
        messages = NULL;
        rc = anthropic_oom(err);
        goto out;
    }
    messages = NULL;
out:
    turn_cleanup(&turn);
    cJSON_Delete(messages);
    cJSON_Delete(system);
    return rc;
}

/* max_completion_tokens, else max_tokens, else the deployment's default: Anthropic requires one. */
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
    if (n == 0 && t->default_max_tokens > 0) {
        n = (double)t->default_max_tokens;
    }
    if (n == 0) {
        return core_err_set(err, CORE_EINVAL, "max_tokens",
                            "max_tokens is required for anthropic models; set default_max_tokens "
                            "on the provider");
    }
    return put(body, "max_tokens", cJSON_CreateNumber(n)) ? 0 : anthropic_oom(err);
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
        return anthropic_oom(err);
    }
    if (cJSON_IsString(stop) && !push(seqs, cJSON_CreateString(stop->valuestring))) {
        cJSON_Delete(seqs);
        return anthropic_oom(err);
    }
    cJSON_ArrayForEach(s, stop)
    {
        if (!cJSON_IsString(s)) {
            cJSON_Delete(seqs);
            return core_err_set(err, CORE_EINVAL, "stop", "stop must hold strings");
        }
        if (!push(seqs, cJSON_CreateString(s->valuestring))) {
            cJSON_Delete(seqs);
            return anthropic_oom(err);
        }
    }
    if (cJSON_GetArraySize(seqs) == 0) {
        cJSON_Delete(seqs);
        return 0;
    }
    return put(body, "stop_sequences", seqs) ? 0 : anthropic_oom(err);
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
        return anthropic_oom(err);
    }
    cJSON_ArrayForEach(tool, tools)
    {
        const char *type = json_str(tool, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const char *name = json_str(fn, "name");
        const char *desc = json_str(fn, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON *t;

        if (type == NULL || strcmp(type, "function") != 0) {
            cJSON_Delete(out);
            return core_err_set(err, CORE_EUNPROCESSABLE, "tools",
                                "tool type \"%s\" is not supported by anthropic",
                                type ? type : "(none)");
        }
        if (name == NULL) {
            cJSON_Delete(out);
            return core_err_set(err, CORE_EINVAL, "tools", "a function tool needs a name");
        }
        t = cJSON_CreateObject();
        if (!push(out, t) || !put(t, "name", cJSON_CreateString(name)) ||
            (desc != NULL && !put(t, "description", cJSON_CreateString(desc))) ||
            !put(t, "input_schema",
                 cJSON_IsObject(params) ? cJSON_Duplicate(params, true)
                                        : cJSON_Parse("{\"type\":\"object\",\"properties\":{}}"))) {
            cJSON_Delete(out);
            return anthropic_oom(err);
        }
    }
    return put(body, "tools", out) ? 0 : anthropic_oom(err);
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
        name = json_str(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
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
    if (out == NULL || !put(out, "type", cJSON_CreateString(type)) ||
        (name != NULL && !put(out, "name", cJSON_CreateString(name))) ||
        (serial && strcmp(type, "none") != 0 &&
         !put(out, "disable_parallel_tool_use", cJSON_CreateTrue()))) {
        cJSON_Delete(out);
        return anthropic_oom(err);
    }
    return put(body, "tool_choice", out) ? 0 : anthropic_oom(err);
}

/* Sampling fields that mean the same in both dialects, passed when they are numbers. */
static int map_sampling(const cJSON *input, cJSON *body, struct core_err *err)
{
    static const char *const keys[] = {"temperature", "top_p", "top_k"};
    const char *user = json_str(input, "user");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(input, "n");
    cJSON *meta;

    if (cJSON_IsNumber(n) && n->valuedouble != 1) {
        return core_err_set(err, CORE_EUNPROCESSABLE, "n",
                            "anthropic returns one choice per request; n must be 1");
    }
    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, keys[k]);
        if (cJSON_IsNumber(v) && !put(body, keys[k], cJSON_CreateNumber(v->valuedouble))) {
            return anthropic_oom(err);
        }
    }
    if (user != NULL) {
        meta = cJSON_CreateObject();
        if (meta == NULL || !put(meta, "user_id", cJSON_CreateString(user))) {
            cJSON_Delete(meta);
            return anthropic_oom(err);
        }
        if (!put(body, "metadata", meta)) {
            return anthropic_oom(err);
        }
    }
    return 0;
}

static int anthropic_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EUNPROCESSABLE, NULL, "%s tasks are not supported by anthropic",
                        adapter_op_name(op));
}

/*
 * The Messages body is built field by field rather than copied from the client's body: the two
 * dialects share few names, and a field Anthropic does not know is a 400 there. OpenAI fields
 * without an Anthropic meaning (seed, response_format, logprobs, penalties) are left out.
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
    if (t == NULL || t->base_url == NULL || t->model == NULL || t->model[0] == '\0') {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "deployment has no base_url or model");
        goto out;
    }
    if (!cJSON_IsObject(input) || !cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "a chat request needs a non-empty messages array");
        goto out;
    }
    body = cJSON_CreateObject();
    if (body == NULL || !put(body, "model", cJSON_CreateString(t->model))) {
        rc = anthropic_oom(err);
        goto out;
    }
    if ((rc = map_max_tokens(input, t, body, err)) != 0 ||
        (rc = map_messages(input, body, err)) != 0 || (rc = map_stop(input, body, err)) != 0 ||
        (rc = map_sampling(input, body, err)) != 0 || (rc = map_tools(input, body, err)) != 0 ||
        (rc = map_tool_choice(input, body, err)) != 0) {
        goto out;
    }
    if (call->stream && !put(body, "stream", cJSON_CreateTrue())) {
        rc = anthropic_oom(err);
        goto out;
    }
    snprintf(out->method, sizeof(out->method), "POST");
    out->url = adapter_url_join(t->base_url, "messages");
    out->body = cJSON_PrintUnformatted(body);
    if (out->url == NULL || out->body == NULL) {
        rc = anthropic_oom(err);
        goto out;
    }
    out->body_len = strlen(out->body);
    if ((t->api_key != NULL && t->api_key[0] != '\0' &&
         adapter_request_add_header(out, "x-api-key: %s", t->api_key) != 0) ||
        adapter_request_add_header(out, "anthropic-version: %s", ANTHROPIC_VERSION) != 0 ||
        adapter_request_add_header(out, "content-type: application/json") != 0) {
        rc = anthropic_oom(err);
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
 * The wait a 429 implies when it carried no retry-after: until the emptied bucket refills. Buckets
 * reported at zero remaining are the ones that tripped; when none is, the latest reset given.
 * Measured from when the reply arrived, capped at ADAPTER_MAX_WAIT_MS. -1 when none parse.
 */
static int64_t anthropic_reset_wait_ms(const struct adapter_response *resp)
{
    int64_t any = -1;
    int64_t exhausted = -1;

    for (size_t i = 0; i < ARRAY_LEN(anthropic_reset_headers); i++) {
        const char *reset = adapter_header_get(resp, anthropic_reset_headers[i].reset);
        const char *left = adapter_header_get(resp, anthropic_reset_headers[i].remaining);
        int64_t at;
        int64_t ms;

        if (reset == NULL || rfc3339_parse_ms(reset, &at) != 0) {
            continue;
        }
        ms = at - resp->now_ms;
        ms = ms < 0 ? 0 : ms > ADAPTER_MAX_WAIT_MS ? ADAPTER_MAX_WAIT_MS : ms;
        if (ms > any) {
            any = ms;
        }
        if (left != NULL && strcmp(left, "0") == 0 && ms > exhausted) {
            exhausted = ms;
        }
    }
    return exhausted >= 0 ? exhausted : any;
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
    const char *detail_code = json_str(details, "error_code");

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
        err->retry_after_ms = anthropic_reset_wait_ms(resp);
    }
    return err->code;
}

/*
 * An error that came inside a 200 (a stream's error event), classified as the HTTP status its type
 * stands for. provider_status is that status, so an overloaded_error reads as a 529.
 */
static int anthropic_inline_error(const cJSON *root, struct core_err *err)
{
    struct adapter_response as_http;
    const char *type = json_str(cJSON_GetObjectItemCaseSensitive(root, "error"), "type");

    memset(&as_http, 0, sizeof(as_http));
    for (size_t i = 0; type != NULL && i < ARRAY_LEN(anthropic_error_status_table); i++) {
        if (strcmp(type, anthropic_error_status_table[i].type) == 0) {
            as_http.status = anthropic_error_status_table[i].status;
        }
    }
    return anthropic_http_error(&as_http, root, err);
}

/* A 2xx that is not a message: retryable (a cut body), unless it passed the size cap. */
static int anthropic_malformed(int status, size_t body_len, const char *why, struct core_err *err)
{
    core_err_set(err, CORE_EUPSTREAM, NULL, "malformed reply from the provider: %s", why);
    core_err_set_code(err, "malformed_reply");
    err->provider_status = status;
    err->retryable = body_len <= ADAPTER_MAX_REPLY_BYTES;
    err->retry_after_ms = -1;
    return err->code;
}

static const char *finish_reason(const char *stop_reason)
{
    for (size_t i = 0; stop_reason != NULL && i < ARRAY_LEN(anthropic_finish_table); i++) {
        if (strcmp(stop_reason, anthropic_finish_table[i].stop_reason) == 0) {
            return anthropic_finish_table[i].finish_reason;
        }
    }
    return "stop";
}

/* Overwrites the counts that usage (an Anthropic usage object, may be NULL) carries. */
static void usage_merge(double counts[USAGE_N], const cJSON *usage)
{
    for (int k = 0; k < USAGE_N; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, anthropic_usage_fields[k]);
        if (cJSON_IsNumber(v)) {
            double n = floor(v->valuedouble);
            counts[k] = (n >= 0 && n <= ANTHROPIC_MAX_TOKENS_COUNT) ? n : 0;
        }
    }
}

/*
 * OpenAI usage from Anthropic's counts. Anthropic's input_tokens leaves out tokens written to or
 * read from the prompt cache; OpenAI's prompt_tokens counts every prompt token, cached or not.
 */
static cJSON *openai_usage(const double counts[USAGE_N])
{
    double prompt = counts[USAGE_INPUT] + counts[USAGE_CACHE_CREATION] + counts[USAGE_CACHE_READ];
    cJSON *u = cJSON_CreateObject();
    cJSON *details = cJSON_CreateObject();

    if (u == NULL || details == NULL || !put(u, "prompt_tokens", cJSON_CreateNumber(prompt)) ||
        !put(u, "completion_tokens", cJSON_CreateNumber(counts[USAGE_OUTPUT])) ||
        !put(u, "total_tokens", cJSON_CreateNumber(prompt + counts[USAGE_OUTPUT])) ||
        !put(details, "cached_tokens", cJSON_CreateNumber(counts[USAGE_CACHE_READ]))) {
        cJSON_Delete(u);
        cJSON_Delete(details);
        return NULL;
    }
    if (!put(u, "prompt_tokens_details", details)) {
        cJSON_Delete(u);
        return NULL;
    }
    return u;
}

/* The concatenated text of the text blocks; NULL when there are none (*oom says why). */
static char *content_text(const cJSON *content, bool *oom)
{
    const cJSON *b;
    size_t len = 0;
    bool any = false;
    char *text;
    char *w;

    *oom = false;
    cJSON_ArrayForEach(b, content)
    {
        const char *type = json_str(b, "type");
        const char *t = json_str(b, "text");
        if (type != NULL && strcmp(type, "text") == 0 && t != NULL) {
            len += strlen(t);
            any = true;
        }
    }
    if (!any) {
        return NULL;
    }
    if ((text = malloc(len + 1)) == NULL) {
        *oom = true;
        return NULL;
    }
    w = text;
    cJSON_ArrayForEach(b, content)
    {
        const char *type = json_str(b, "type");
        const char *t = json_str(b, "text");
        if (type != NULL && strcmp(type, "text") == 0 && t != NULL) {
            size_t n = strlen(t);
            memcpy(w, t, n);
            w += n;
        }
    }
    *w = '\0';
    return text;
}

/* tool_use blocks as OpenAI tool_calls, input printed as the arguments text. Empty when none. */
static cJSON *tool_calls_from(const cJSON *content)
{
    const cJSON *b;
    cJSON *calls = cJSON_CreateArray();

    if (calls == NULL) {
        return NULL;
    }
    cJSON_ArrayForEach(b, content)
    {
        const char *type = json_str(b, "type");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
        char *args;
        cJSON *call;
        cJSON *fn;

        if (type == NULL || strcmp(type, "tool_use") != 0) {
            continue;
        }
        args = in != NULL ? cJSON_PrintUnformatted(in) : strdup("{}");
        call = cJSON_CreateObject();
        fn = cJSON_CreateObject();
        if (args == NULL || call == NULL || fn == NULL || !push(calls, call) ||
            !put(call, "id", cJSON_CreateString(json_str(b, "id") ? json_str(b, "id") : "")) ||
            !put(call, "type", cJSON_CreateString("function")) ||
            !put(fn, "name", cJSON_CreateString(json_str(b, "name") ? json_str(b, "name") : "")) ||
            !put(fn, "arguments", cJSON_CreateString(args))) {
            free(args);
            cJSON_Delete(fn);
            cJSON_Delete(calls);
            return NULL;
        }
        free(args);
        if (!put(call, "function", fn)) {
            cJSON_Delete(calls);
            return NULL;
        }
    }
    return calls;
}

/* A message reply as a chat.completion with one choice. NULL on OOM. */
static cJSON *completion_from(const cJSON *root, const struct adapter_call *call, int64_t now_ms,
                              const cJSON *usage)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    const char *id = json_str(root, "id");
    const char *model = json_str(root, "model");
    cJSON *c = cJSON_CreateObject();
    cJSON *choices = cJSON_CreateArray();
    cJSON *choice = cJSON_CreateObject();
    cJSON *msg = cJSON_CreateObject();
    cJSON *calls = tool_calls_from(content);
    bool oom;
    char *text = content_text(content, &oom);

    if (model == NULL && call->target != NULL) {
        model = call->target->model;
    }
    if (c == NULL || choices == NULL || choice == NULL || msg == NULL || calls == NULL || oom ||
        !put(c, "id", cJSON_CreateString(id ? id : "")) ||
        !put(c, "object", cJSON_CreateString("chat.completion")) ||
        !put(c, "created", cJSON_CreateNumber((double)(now_ms / 1000))) ||
        !put(c, "model", cJSON_CreateString(model ? model : "")) ||
        !put(msg, "role", cJSON_CreateString("assistant")) ||
        !put(msg, "content", text ? cJSON_CreateString(text) : cJSON_CreateNull())) {
        goto oom;
    }
    free(text);
    text = NULL;
    if (cJSON_GetArraySize(calls) > 0) {
        if (!put(msg, "tool_calls", calls)) {
            calls = NULL;
            goto oom;
        }
    } else {
        cJSON_Delete(calls);
    }
    calls = NULL;
    if (!put(choice, "index", cJSON_CreateNumber(0)) || !put(choice, "message", msg)) {
        msg = NULL;
        goto oom;
    }
    msg = NULL;
    if (!put(choice, "finish_reason",
             cJSON_CreateString(finish_reason(json_str(root, "stop_reason"))))) {
        goto oom;
    }
    if (!push(choices, choice)) {
        choice = NULL;
        goto oom;
    }
    choice = NULL;
    if (!put(c, "choices", choices)) {
        choices = NULL;
        goto oom;
    }
    choices = NULL;
    if (usage != NULL && !put(c, "usage", cJSON_Duplicate(usage, true))) {
        goto oom;
    }
    return c;
oom:
    free(text);
    cJSON_Delete(calls);
    cJSON_Delete(msg);
    cJSON_Delete(choice);
    cJSON_Delete(choices);
    cJSON_Delete(c);
    return NULL;
}

static int anthropic_parse_response(const struct adapter_call *call,
                                    const struct adapter_response *resp, struct adapter_result *out,
                                    struct core_err *err)
{
    cJSON *root = NULL;
    const cJSON *usage;
    const char *type;
    const char *id;
    double counts[USAGE_N] = {0};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc = anthropic_unsupported(call->op, err);
        goto out;
    }
    if (resp->transport != ADAPTER_TRANSPORT_OK) {
        rc = adapter_classify_transport(resp, err);
        goto out;
    }
    root = adapter_json_parse(resp->body, resp->body_len);
    if (resp->status < 200 || resp->status > 299) {
        rc = anthropic_http_error(resp, root, err);
        goto out;
    }
    type = json_str(root, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        rc = anthropic_inline_error(root, err);
        goto out;
    }
    if (resp->body_len > ADAPTER_MAX_REPLY_BYTES) {
        rc = anthropic_malformed(resp->status, resp->body_len, "the body passed the size limit",
                                 err);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc =
            anthropic_malformed(resp->status, resp->body_len, "the body is not a JSON object", err);
        goto out;
    }
    if (type == NULL || strcmp(type, "message") != 0 ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "content"))) {
        rc = anthropic_malformed(resp->status, resp->body_len, "not a message with content", err);
        goto out;
    }
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        usage_merge(counts, usage);
        if ((out->usage = openai_usage(counts)) == NULL) {
            rc = anthropic_oom(err);
            goto out;
        }
    }
    id = json_str(root, "id");
    if ((out->result = completion_from(root, call, resp->now_ms, out->usage)) == NULL ||
        (id != NULL && (out->upstream_id = strdup(id)) == NULL)) {
        rc = anthropic_oom(err);
        goto out;
    }
out:
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

static void *anthropic_stream_new(const struct adapter_call *call)
{
    struct anthropic_stream *s = calloc(1, sizeof(*s));
    const char *model = (call != NULL && call->target != NULL) ? call->target->model : NULL;

    if (s == NULL) {
        return NULL;
    }
    s->id = strdup("");
    s->model = strdup(model != NULL ? model : "");
    if (s->id == NULL || s->model == NULL) {
        free(s->id);
        free(s->model);
        free(s);
        return NULL;
    }
    return s;
}

static void anthropic_stream_free(void *state)
{
    struct anthropic_stream *s = state;

    if (s == NULL) {
        return;
    }
    free(s->id);
    free(s->model);
    free(s->tool_index);
    free(s);
}

/*
 * A chunk for this stream around delta (taken; NULL for a usage chunk, which has no choices).
 * created is 0: adapters have no clock, the worker stamps it. NULL on OOM.
 */
static cJSON *stream_chunk(const struct anthropic_stream *s, cJSON *delta, const char *finish)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *choices = cJSON_CreateArray();
    cJSON *choice = delta != NULL ? cJSON_CreateObject() : NULL;

    if (c == NULL || choices == NULL || (delta != NULL && choice == NULL) ||
        !put(c, "id", cJSON_CreateString(s->id)) ||
        !put(c, "object", cJSON_CreateString("chat.completion.chunk")) ||
        !put(c, "created", cJSON_CreateNumber(0)) ||
        !put(c, "model", cJSON_CreateString(s->model))) {
        goto oom;
    }
    if (choice != NULL) {
        if (!put(choice, "index", cJSON_CreateNumber(0)) || !put(choice, "delta", delta)) {
            delta = NULL;
            goto oom;
        }
        delta = NULL;
        if (!put(choice, "finish_reason",
                 finish ? cJSON_CreateString(finish) : cJSON_CreateNull())) {
            goto oom;
        }
        if (!push(choices, choice)) {
            choice = NULL;
            goto oom;
        }
        choice = NULL;
    }
    if (!put(c, "choices", choices)) {
        choices = NULL;
        goto oom;
    }
    return c;
oom:
    cJSON_Delete(delta);
    cJSON_Delete(choice);
    cJSON_Delete(choices);
    cJSON_Delete(c);
    return NULL;
}

/* A delta {"tool_calls":[call]} (call taken). NULL on OOM. */
static cJSON *tool_delta(cJSON *call)
{
    cJSON *delta = cJSON_CreateObject();
    cJSON *calls = cJSON_CreateArray();

    if (delta == NULL || calls == NULL || !push(calls, call)) {
        cJSON_Delete(delta);
        cJSON_Delete(calls);
        return NULL;
    }
    if (!put(delta, "tool_calls", calls)) {
        cJSON_Delete(delta);
        return NULL;
    }
    return delta;
}

/* The content block index an event refers to, or -1 when it is missing or out of range. */
static int block_index(const cJSON *ev)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(ev, "index");

    if (!cJSON_IsNumber(i) || i->valuedouble < 0 || i->valuedouble >= ANTHROPIC_MAX_BLOCKS ||
        i->valuedouble != floor(i->valuedouble)) {
        return -1;
    }
    return (int)i->valuedouble;
}

/* Records block idx as tool call tool (-1: not a tool block). false on OOM. */
static bool set_block(struct anthropic_stream *s, int idx, int tool)
{
    if ((size_t)idx >= s->n_blocks) {
        int *grown = realloc(s->tool_index, ((size_t)idx + 1) * sizeof(*grown));
        if (grown == NULL) {
            return false;
        }
        for (size_t k = s->n_blocks; k <= (size_t)idx; k++) {
            grown[k] = -1;
        }
        s->tool_index = grown;
        s->n_blocks = (size_t)idx + 1;
    }
    s->tool_index[idx] = tool;
    return true;
}

static int tool_of_block(const struct anthropic_stream *s, int idx)
{
    return (idx >= 0 && (size_t)idx < s->n_blocks) ? s->tool_index[idx] : -1;
}

/* message_start: the id, model and first usage counts, and the chunk that names the role. */
static int on_message_start(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev, "message");
    const char *id = json_str(msg, "id");
    const char *model = json_str(msg, "model");
    cJSON *delta;

    if (id != NULL) {
        char *copy = strdup(id);
        if (copy == NULL) {
            return CORE_ENOMEM;
        }
        free(s->id);
        s->id = copy;
    }
    if (model != NULL) {
        char *copy = strdup(model);
        if (copy == NULL) {
            return CORE_ENOMEM;
        }
        free(s->model);
        s->model = copy;
    }
    usage_merge(s->usage, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
    s->started = true;
    delta = cJSON_CreateObject();
    if (delta == NULL || !put(delta, "role", cJSON_CreateString("assistant"))) {
        cJSON_Delete(delta);
        return CORE_ENOMEM;
    }
    *chunk = stream_chunk(s, delta, NULL);
    return *chunk != NULL ? 0 : CORE_ENOMEM;
}

/* content_block_start: a tool_use block opens a tool call; text blocks start empty. */
static int on_block_start(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(ev, "content_block");
    const char *type = json_str(block, "type");
    const char *text = json_str(block, "text");
    int idx = block_index(ev);
    cJSON *call;
    cJSON *fn;
    cJSON *delta;

    if (idx < 0) {
        return CORE_EUPSTREAM;
    }
    if (type == NULL || strcmp(type, "tool_use") != 0) {
        if (!set_block(s, idx, -1)) {
            return CORE_ENOMEM;
        }
        if (type == NULL || strcmp(type, "text") != 0 || text == NULL || text[0] == '\0') {
            return 0;
        }
        delta = cJSON_CreateObject();
        if (delta == NULL || !put(delta, "content", cJSON_CreateString(text))) {
            cJSON_Delete(delta);
            return CORE_ENOMEM;
        }
        *chunk = stream_chunk(s, delta, NULL);
        return *chunk != NULL ? 0 : CORE_ENOMEM;
    }
    if (!set_block(s, idx, s->n_tools)) {
        return CORE_ENOMEM;
    }
    call = cJSON_CreateObject();
    fn = cJSON_CreateObject();
    if (call == NULL || fn == NULL || !put(call, "index", cJSON_CreateNumber(s->n_tools)) ||
        !put(call, "id", cJSON_CreateString(json_str(block, "id") ? json_str(block, "id") : "")) ||
        !put(call, "type", cJSON_CreateString("function")) ||
        !put(fn, "name",
             cJSON_CreateString(json_str(block, "name") ? json_str(block, "name") : "")) ||
        !put(fn, "arguments", cJSON_CreateString(""))) {
        cJSON_Delete(call);
        cJSON_Delete(fn);
        return CORE_ENOMEM;
    }
    if (!put(call, "function", fn)) {
        cJSON_Delete(call);
        return CORE_ENOMEM;
    }
    s->n_tools++;
    if ((delta = tool_delta(call)) == NULL) {
        return CORE_ENOMEM;
    }
    *chunk = stream_chunk(s, delta, NULL);
    return *chunk != NULL ? 0 : CORE_ENOMEM;
}

/*
 * content_block_delta: text_delta as content, input_json_delta as a piece of the tool call's
 * arguments. Other deltas (thinking, signatures, citations) have no chat.completion form.
 */
static int on_block_delta(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "delta");
    const char *type = json_str(d, "type");
    int idx = block_index(ev);
    int tool = tool_of_block(s, idx);
    const char *text;
    cJSON *delta = NULL;
    cJSON *call;
    cJSON *fn;

    if (idx < 0 || type == NULL) {
        return CORE_EUPSTREAM;
    }
    if (strcmp(type, "text_delta") == 0) {
        if ((text = json_str(d, "text")) == NULL) {
            return CORE_EUPSTREAM;
        }
        if (text[0] == '\0') {
            return 0;
        }
        delta = cJSON_CreateObject();
        if (delta == NULL || !put(delta, "content", cJSON_CreateString(text))) {
            cJSON_Delete(delta);
            return CORE_ENOMEM;
        }
    } else if (strcmp(type, "input_json_delta") == 0) {
        if ((text = json_str(d, "partial_json")) == NULL || tool < 0) {
            return CORE_EUPSTREAM;
        }
        if (text[0] == '\0') {
            return 0;
        }
        call = cJSON_CreateObject();
        fn = cJSON_CreateObject();
        if (call == NULL || fn == NULL || !put(call, "index", cJSON_CreateNumber(tool)) ||
            !put(fn, "arguments", cJSON_CreateString(text))) {
            cJSON_Delete(call);
            cJSON_Delete(fn);
            return CORE_ENOMEM;
        }
        if (!put(call, "function", fn)) {
            cJSON_Delete(call);
            return CORE_ENOMEM;
        }
        if ((delta = tool_delta(call)) == NULL) {
            return CORE_ENOMEM;
        }
    } else {
        return 0;
    }
    *chunk = stream_chunk(s, delta, NULL);
    return *chunk != NULL ? 0 : CORE_ENOMEM;
}

/* message_delta: the stop reason as a finish_reason chunk; usage counts so far. */
static int on_message_delta(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    const char *stop = json_str(cJSON_GetObjectItemCaseSensitive(ev, "delta"), "stop_reason");
    cJSON *delta;

    usage_merge(s->usage, cJSON_GetObjectItemCaseSensitive(ev, "usage"));
    if (stop == NULL) {
        return 0;
    }
    if ((delta = cJSON_CreateObject()) == NULL) {
        return CORE_ENOMEM;
    }
    *chunk = stream_chunk(s, delta, finish_reason(stop));
    return *chunk != NULL ? 0 : CORE_ENOMEM;
}

/* message_stop: the usage chunk (choices: [], as OpenAI's include_usage sends it). */
static int on_message_stop(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk)
{
    cJSON *usage = openai_usage(s->usage);

    if (usage == NULL || (*chunk = stream_chunk(s, NULL, NULL)) == NULL) {
        cJSON_Delete(usage);
        return CORE_ENOMEM;
    }
    if (!put(*chunk, "usage", usage)) {
        return CORE_ENOMEM;
    }
    s->finished = true;
    return 0;
}

/*
 * Stream events by type. needs_start: only meaningful after message_start, which names the
 * message every chunk carries. A NULL handler makes no chunk (content_block_stop, ping). The
 * error event is not here: it ends the stream with an error.
 */
static const struct {
    const char *type;
    bool needs_start;
    int (*handle)(struct anthropic_stream *s, const cJSON *ev, cJSON **chunk);
} anthropic_stream_events[] = {
    {"message_start", false, on_message_start},
    {"content_block_start", true, on_block_start},
    {"content_block_delta", true, on_block_delta},
    {"content_block_stop", true, NULL},
    {"message_delta", true, on_message_delta},
    {"message_stop", true, on_message_stop},
    {"ping", false, NULL},
};

/*
 * One Anthropic stream event as zero or one OpenAI chunks. The event's type is read from its data
 * (Anthropic repeats the SSE event name there), falling back to the event name. Unknown event
 * types are skipped: Anthropic's versioning policy says new ones may appear. Unreadable data,
 * content events before message_start and blocks referred to out of range are malformed
 * (retryable, as a cut reply is).
 */
static int anthropic_stream_event(void *state, const char *event, const char *data, size_t len,
                                  cJSON *chunks, bool *done, struct core_err *err)
{
    struct anthropic_stream *s = state;
    cJSON *ev = NULL;
    cJSON *chunk = NULL;
    const char *type;
    int rc = 0;

    core_err_clear(err);
    if (s->finished) {
        *done = true;
        goto out;
    }
    ev = adapter_json_parse(data, len);
    if (!cJSON_IsObject(ev)) {
        rc = anthropic_malformed(200, len, "a stream event is not a JSON object", err);
        goto out;
    }
    type = json_str(ev, "type");
    if (type == NULL) {
        type = event != NULL ? event : "";
    }
    if (strcmp(type, "error") == 0) {
        rc = anthropic_inline_error(ev, err);
        goto out;
    }
    for (size_t i = 0; i < ARRAY_LEN(anthropic_stream_events); i++) {
        if (strcmp(type, anthropic_stream_events[i].type) != 0) {
            continue;
        }
        if (anthropic_stream_events[i].needs_start && !s->started) {
            rc = CORE_EUPSTREAM;
        } else if (anthropic_stream_events[i].handle != NULL) {
            rc = anthropic_stream_events[i].handle(s, ev, &chunk);
        }
        break;
    }
    if (rc == CORE_EUPSTREAM) {
        rc = anthropic_malformed(200, len, "an unexpected stream event", err);
        goto out;
    }
    if (rc != 0) {
        rc = anthropic_oom(err);
        goto out;
    }
    if (chunk != NULL && !push(chunks, chunk)) {
        chunk = NULL;
        rc = anthropic_oom(err);
        goto out;
    }
    chunk = NULL;
    *done = s->finished;
out:
    cJSON_Delete(chunk);
    cJSON_Delete(ev);
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
