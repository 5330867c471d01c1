/*
 * adapters/responses_check.c — the edge's check of a Responses request (responses_check): the
 * type and range of every field sluice knows, the items of its input, function tools only, and
 * every other field refused naming it. Whether a dialect can honour a field is decided later,
 * when the call is built (responses.c, responses_chat.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/dialect.h"
#include "adapters/responses.h"
#include "adapters/responses_internal.h"

#define RESPONSES_MAX_NAME 64         /* a function or schema name: ^[a-zA-Z0-9_-]{1,64}$ */
#define RESPONSES_MAX_METADATA 16     /* metadata pairs */
#define RESPONSES_MAX_META_KEY 64     /* bytes of a metadata key */
#define RESPONSES_MAX_META_VALUE 512  /* bytes of a metadata value */
#define RESPONSES_MAX_TOP_LOGPROBS 20 /* OpenAI's range for top_logprobs */

/* The closed sets of string values the edge accepts. */
static const char *const truncation_values[] = {"auto", "disabled"};
static const char *const service_tier_values[] = {"auto", "default", "flex", "scale", "priority"};
static const char *const effort_values[] = {"none", "minimal", "low", "medium", "high", "xhigh"};
static const char *const summary_values[] = {"auto", "concise", "detailed"};
static const char *const verbosity_values[] = {"low", "medium", "high"};
static const char *const tool_choice_values[] = {"none", "auto", "required"};
static const char *const role_values[] = {"user", "assistant", "system", "developer"};
static const char *const detail_values[] = {"auto", "low", "high", "original"};
static const char *const format_values[] = {"text", "json_object", "json_schema"};
static const char *const include_values[] = {
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    RESPONSES_INCLUDE_LOGPROBS,
};

/* How the edge checks one field. A null value is always absent. */
enum responses_kind {
    KIND_BOOL,
    KIND_STRING,
    KIND_NUMBER,  /* within [min, max] */
    KIND_INTEGER, /* a whole number within [min, max] */
    KIND_ENUM,    /* one of values */
    KIND_OBJECT,
    KIND_CUSTOM, /* check */
};

/* Checks one field's value v (never NULL or null); name is the param to report. */
typedef int (*responses_check_fn)(const char *name, const cJSON *v, struct core_err *err);

struct responses_field {
    const char *name;
    enum responses_kind kind;
    double min;
    double max;
    const char *const *values;
    size_t n_values;
    responses_check_fn check;
};

#define ENUM_ROW(name, list)                                                                       \
    {                                                                                              \
        name, KIND_ENUM, 0, 0, list, ARRAY_LEN(list), NULL                                         \
    }
#define CUSTOM_ROW(name, fn)                                                                       \
    {                                                                                              \
        name, KIND_CUSTOM, 0, 0, NULL, 0, fn                                                       \
    }

static int check_model(const char *name, const cJSON *v, struct core_err *err);
static int check_input(const char *name, const cJSON *v, struct core_err *err);
static int check_tools(const char *name, const cJSON *v, struct core_err *err);
static int check_tool_choice(const char *name, const cJSON *v, struct core_err *err);
static int check_text(const char *name, const cJSON *v, struct core_err *err);
static int check_reasoning(const char *name, const cJSON *v, struct core_err *err);
static int check_metadata(const char *name, const cJSON *v, struct core_err *err);
static int check_previous(const char *name, const cJSON *v, struct core_err *err);
static int check_include(const char *name, const cJSON *v, struct core_err *err);
static int check_stream_options(const char *name, const cJSON *v, struct core_err *err);

/*
 * Every field of a Responses request sluice knows. What each becomes on the translated path is
 * responses_chat.c's table; the native path sends them as they are, but for background,
 * previous_response_id, webhook (sluice's own) and store (always false upstream). Fields OpenAI
 * has that no path here can serve (conversation, prompt, context_management, moderation,
 * prompt_cache_options, ...) are unknown and refused.
 */
static const struct responses_field responses_fields[] = {
    CUSTOM_ROW("model", check_model),
    CUSTOM_ROW("input", check_input),
    {"instructions", KIND_STRING, 0, 0, NULL, 0, NULL},
    CUSTOM_ROW("tools", check_tools),
    CUSTOM_ROW("tool_choice", check_tool_choice),
    {"parallel_tool_calls", KIND_BOOL, 0, 0, NULL, 0, NULL},
    CUSTOM_ROW("text", check_text),
    {"max_output_tokens", KIND_INTEGER, 1, 2147483647.0, NULL, 0, NULL},
    {"temperature", KIND_NUMBER, 0, 2, NULL, 0, NULL},
    {"top_p", KIND_NUMBER, 0, 1, NULL, 0, NULL},
    {"top_logprobs", KIND_INTEGER, 0, RESPONSES_MAX_TOP_LOGPROBS, NULL, 0, NULL},
    CUSTOM_ROW("reasoning", check_reasoning),
    CUSTOM_ROW("metadata", check_metadata),
    {"store", KIND_BOOL, 0, 0, NULL, 0, NULL},
    CUSTOM_ROW("previous_response_id", check_previous),
    ENUM_ROW("truncation", truncation_values),
    CUSTOM_ROW("include", check_include),
    ENUM_ROW("service_tier", service_tier_values),
    {"stream", KIND_BOOL, 0, 0, NULL, 0, NULL},
    CUSTOM_ROW("stream_options", check_stream_options),
    {"background", KIND_BOOL, 0, 0, NULL, 0, NULL},
    {"user", KIND_STRING, 0, 0, NULL, 0, NULL},
    {"safety_identifier", KIND_STRING, 0, 0, NULL, 0, NULL},
    {"prompt_cache_key", KIND_STRING, 0, 0, NULL, 0, NULL},
    {"webhook", KIND_OBJECT, 0, 0, NULL, 0, NULL}, /* sluice's own: the API checks and keeps it */
};

/* The keys each nested object may have; anything else is refused naming it. */
static const char *const function_tool_keys[] = {"type", "name", "description", "parameters",
                                                 "strict"};
static const char *const text_keys[] = {"format", "verbosity"};
static const char *const format_keys[] = {"type", "name", "schema", "strict", "description"};
static const char *const reasoning_keys[] = {"effort", "summary", "generate_summary"};
static const char *const stream_options_keys[] = {"include_obfuscation"};
void responses_param(char *out, const char *parent, const char *key, int index)
{
    int n = key != NULL ? snprintf(out, RESPONSES_PARAM_LEN, "%s.%s", parent, key)
                        : snprintf(out, RESPONSES_PARAM_LEN, "%s[%d]", parent, index);

    if (n < 0) {
        out[0] = '\0';
    }
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (strcmp(s, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* o's value at key, treating null as absent. */
static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static int invalid(struct core_err *err, const char *param, const char *what)
{
    core_err_set(err, CORE_EINVAL, param, "Invalid '%s': %s.", param, what);
    core_err_set_code(err, "invalid_value");
    return CORE_EINVAL;
}

static int unsupported(struct core_err *err, const char *param, const char *what)
{
    core_err_set(err, CORE_EINVAL, param, "%s", what);
    core_err_set_code(err, "unsupported_parameter");
    return CORE_EINVAL;
}

/* Refuses a key of o that is not in keys; prefix names o ("text.format"). */
static int check_keys(const char *prefix, const cJSON *o, const char *const *keys, size_t n,
                      struct core_err *err)
{
    const cJSON *k;
    char param[RESPONSES_PARAM_LEN];

    cJSON_ArrayForEach(k, o)
    {
        if (k->string != NULL && !in_list(k->string, keys, n)) {
            responses_param(param, prefix, k->string, -1);
            return unsupported(err, param, "This field is not supported.");
        }
    }
    return 0;
}

/* A name the Responses API (and every chat dialect) takes: 1-64 of [a-zA-Z0-9_-]. */
static bool name_ok(const char *s)
{
    return adapter_id_ok(s, RESPONSES_MAX_NAME, "_-");
}

static int check_model(const char *name, const cJSON *v, struct core_err *err)
{
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        return invalid(err, name, "expected a model name");
    }
    return 0;
}

/*
 * One content part of an input message, a function_call_output's output list, or an assistant
 * message (output_text, refusal). param names the part.
 */
static int check_part(const char *param, const cJSON *part, bool assistant, struct core_err *err)
{
    const char *type = adapter_json_str(part, "type");
    char sub[RESPONSES_PARAM_LEN];

    if (!cJSON_IsObject(part) || type == NULL) {
        return invalid(err, param, "expected a content part with a type");
    }
    if (strcmp(type, "input_text") == 0 || (assistant && strcmp(type, "output_text") == 0)) {
        responses_param(sub, param, "text", -1);
        return adapter_json_str(part, "text") ? 0 : invalid(err, sub, "expected a string");
    }
    if (assistant && strcmp(type, "refusal") == 0) {
        responses_param(sub, param, "refusal", -1);
        return adapter_json_str(part, "refusal") ? 0 : invalid(err, sub, "expected a string");
    }
    if (!assistant && strcmp(type, "input_image") == 0) {
        const cJSON *detail = field(part, "detail");
        if (adapter_json_str(part, "image_url") == NULL &&
            adapter_json_str(part, "file_id") == NULL) {
            return invalid(err, param, "an input_image needs an image_url or a file_id");
        }
        if (detail != NULL &&
            !in_list(cJSON_GetStringValue(detail), detail_values, ARRAY_LEN(detail_values))) {
            responses_param(sub, param, "detail", -1);
            return invalid(err, sub, "expected auto, low, high or original");
        }
        return 0;
    }
    if (!assistant && strcmp(type, "input_file") == 0) {
        if (adapter_json_str(part, "file_data") == NULL &&
            adapter_json_str(part, "file_id") == NULL &&
            adapter_json_str(part, "file_url") == NULL) {
            return invalid(err, param, "an input_file needs file_data, file_id or file_url");
        }
        return 0;
    }
    responses_param(sub, param, "type", -1);
    return unsupported(err, sub, "This content part type is not supported here.");
}

static int check_parts(const char *param, const cJSON *content, bool assistant,
                       struct core_err *err)
{
    const cJSON *part;
    char sub[RESPONSES_PARAM_LEN];
    int j = 0;
    int rc;

    if (cJSON_IsString(content)) {
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        return invalid(err, param, "expected a string or an array of content parts");
    }
    cJSON_ArrayForEach(part, content)
    {
        responses_param(sub, param, NULL, j++);
        if ((rc = check_part(sub, part, assistant, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* Checks that each of the named fields of item is a string. */
static int check_strings(const char *param, const cJSON *item, const char *const *keys, size_t n,
                         struct core_err *err)
{
    char sub[RESPONSES_PARAM_LEN];

    for (size_t i = 0; i < n; i++) {
        if (adapter_json_str(item, keys[i]) == NULL) {
            responses_param(sub, param, keys[i], -1);
            return invalid(err, sub, "expected a string");
        }
    }
    return 0;
}

/*
 * One input item: a message (type "message" or none, with a role), a function_call, a
 * function_call_output, or a reasoning item from an earlier response. Other item types need
 * state or tools no path here has (item_reference, built-in tool calls) and are refused.
 */
static int check_item(const char *param, const cJSON *item, struct core_err *err)
{
    static const char *const call_keys[] = {"call_id", "name", "arguments"};
    static const char *const output_keys[] = {"call_id"};
    const char *type = adapter_json_str(item, "type");
    char sub[RESPONSES_PARAM_LEN];

    if (!cJSON_IsObject(item)) {
        return invalid(err, param, "expected an input item object");
    }
    if (type == NULL || strcmp(type, "message") == 0) {
        const char *role = adapter_json_str(item, "role");
        if (!in_list(role, role_values, ARRAY_LEN(role_values))) {
            responses_param(sub, param, "role", -1);
            return invalid(err, sub, "expected user, assistant, system or developer");
        }
        responses_param(sub, param, "content", -1);
        return check_parts(sub, cJSON_GetObjectItemCaseSensitive(item, "content"),
                           strcmp(role, "assistant") == 0, err);
    }
    if (strcmp(type, "function_call") == 0) {
        return check_strings(param, item, call_keys, ARRAY_LEN(call_keys), err);
    }
    if (strcmp(type, "function_call_output") == 0) {
        int rc = check_strings(param, item, output_keys, ARRAY_LEN(output_keys), err);
        responses_param(sub, param, "output", -1);
        return rc != 0
                   ? rc
                   : check_parts(sub, cJSON_GetObjectItemCaseSensitive(item, "output"), false, err);
    }
    if (strcmp(type, "reasoning") == 0) {
        const cJSON *summary = field(item, "summary");
        if (summary != NULL && !cJSON_IsArray(summary)) {
            responses_param(sub, param, "summary", -1);
            return invalid(err, sub, "expected an array");
        }
        return 0;
    }
    responses_param(sub, param, "type", -1);
    core_err_set(err, CORE_EINVAL, sub, "Input items of type '%.64s' are not supported.", type);
    core_err_set_code(err, "unsupported_parameter");
    return CORE_EINVAL;
}

static int check_input(const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *item;
    char param[RESPONSES_PARAM_LEN];
    int i = 0;
    int rc;

    if (cJSON_IsString(v)) {
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
        return invalid(err, name, "expected a string or a non-empty array of input items");
    }
    cJSON_ArrayForEach(item, v)
    {
        responses_param(param, name, NULL, i++);
        if ((rc = check_item(param, item, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * Function tools only. Built-in tools (web_search, file_search, code_interpreter, computer use,
 * image_generation, mcp, ...) are refused on every path, the native one included: they run on
 * state in the provider's account (vector stores, containers, files) that sluice neither holds
 * nor can carry to another deployment on failover, they leave items no other dialect can take
 * as the next turn's input, and they are billed per call where sluice's cost counts tokens.
 */
static int check_tools(const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *tool;
    char param[RESPONSES_PARAM_LEN];
    int i = 0;

    if (!cJSON_IsArray(v)) {
        return invalid(err, name, "expected an array of tools");
    }
    cJSON_ArrayForEach(tool, v)
    {
        const char *type = adapter_json_str(tool, "type");
        const cJSON *params = field(tool, "parameters");
        const cJSON *strict = field(tool, "strict");
        const cJSON *desc = field(tool, "description");
        int rc;

        responses_param(param, name, NULL, i++);
        if (!cJSON_IsObject(tool) || type == NULL) {
            return invalid(err, param, "expected a tool object with a type");
        }
        if (strcmp(type, "function") != 0) {
            core_err_set(err, CORE_EINVAL, name,
                         "Tools of type '%.64s' are not supported: sluice serves function tools "
                         "only.",
                         type);
            core_err_set_code(err, "unsupported_parameter");
            return CORE_EINVAL;
        }
        if ((rc = check_keys(param, tool, function_tool_keys, ARRAY_LEN(function_tool_keys),
                             err)) != 0) {
            return rc;
        }
        if (!name_ok(adapter_json_str(tool, "name"))) {
            char sub[RESPONSES_PARAM_LEN];
            responses_param(sub, param, "name", -1);
            return invalid(err, sub, "expected 1-64 letters, digits, '_' or '-'");
        }
        if ((params != NULL && !cJSON_IsObject(params)) ||
            (strict != NULL && !cJSON_IsBool(strict)) || (desc != NULL && !cJSON_IsString(desc))) {
            return invalid(err, param,
                           "parameters must be an object, strict a boolean, description a string");
        }
    }
    return 0;
}

static int check_tool_choice(const char *name, const cJSON *v, struct core_err *err)
{
    const char *type = adapter_json_str(v, "type");

    if (cJSON_IsString(v)) {
        return in_list(v->valuestring, tool_choice_values, ARRAY_LEN(tool_choice_values))
                   ? 0
                   : invalid(err, name, "expected none, auto, required or a function");
    }
    if (!cJSON_IsObject(v) || type == NULL) {
        return invalid(err, name, "expected none, auto, required or a function");
    }
    if (strcmp(type, "function") != 0) {
        core_err_set(err, CORE_EINVAL, name,
                     "tool_choice of type '%.64s' is not supported: sluice serves function "
                     "tools only.",
                     type);
        core_err_set_code(err, "unsupported_parameter");
        return CORE_EINVAL;
    }
    return name_ok(adapter_json_str(v, "name"))
               ? 0
               : invalid(err, "tool_choice.name", "expected a function name");
}

static int check_format(const cJSON *f, struct core_err *err)
{
    const char *type = adapter_json_str(f, "type");
    const cJSON *strict = field(f, "strict");
    const cJSON *desc = field(f, "description");
    int rc;

    if (!cJSON_IsObject(f)) {
        return invalid(err, "text.format", "expected an object");
    }
    if (!in_list(type, format_values, ARRAY_LEN(format_values))) {
        return invalid(err, "text.format.type", "expected text, json_object or json_schema");
    }
    if ((rc = check_keys("text.format", f, format_keys, ARRAY_LEN(format_keys), err)) != 0) {
        return rc;
    }
    if (strcmp(type, "json_schema") != 0) {
        return 0;
    }
    if (!name_ok(adapter_json_str(f, "name"))) {
        return invalid(err, "text.format.name", "expected 1-64 letters, digits, '_' or '-'");
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(f, "schema"))) {
        return invalid(err, "text.format.schema", "expected a JSON schema object");
    }
    if (strict != NULL && !cJSON_IsBool(strict)) {
        return invalid(err, "text.format.strict", "expected a boolean");
    }
    if (desc != NULL && !cJSON_IsString(desc)) {
        return invalid(err, "text.format.description", "expected a string");
    }
    return 0;
}

static int check_text(const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *format = field(v, "format");
    const cJSON *verbosity = field(v, "verbosity");
    int rc;

    if (!cJSON_IsObject(v)) {
        return invalid(err, name, "expected an object");
    }
    if ((rc = check_keys(name, v, text_keys, ARRAY_LEN(text_keys), err)) != 0) {
        return rc;
    }
    if (verbosity != NULL &&
        !in_list(cJSON_GetStringValue(verbosity), verbosity_values, ARRAY_LEN(verbosity_values))) {
        return invalid(err, "text.verbosity", "expected low, medium or high");
    }
    return format != NULL ? check_format(format, err) : 0;
}

static int check_reasoning(const char *name, const cJSON *v, struct core_err *err)
{
    static const struct {
        const char *key;
        const char *param;
        const char *const *values;
        size_t n;
    } rows[] = {
        {"effort", "reasoning.effort", effort_values, ARRAY_LEN(effort_values)},
        {"summary", "reasoning.summary", summary_values, ARRAY_LEN(summary_values)},
        {"generate_summary", "reasoning.generate_summary", summary_values,
         ARRAY_LEN(summary_values)},
    };
    int rc;

    if (!cJSON_IsObject(v)) {
        return invalid(err, name, "expected an object");
    }
    if ((rc = check_keys(name, v, reasoning_keys, ARRAY_LEN(reasoning_keys), err)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        const cJSON *x = field(v, rows[i].key);
        if (x != NULL && !in_list(cJSON_GetStringValue(x), rows[i].values, rows[i].n)) {
            return invalid(err, rows[i].param, "not one of the accepted values");
        }
    }
    return 0;
}

static int check_metadata(const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *kv;

    if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) > RESPONSES_MAX_METADATA) {
        return invalid(err, name, "expected an object of at most 16 string values");
    }
    cJSON_ArrayForEach(kv, v)
    {
        if (kv->string == NULL || strlen(kv->string) > RESPONSES_MAX_META_KEY ||
            !cJSON_IsString(kv) || strlen(kv->valuestring) > RESPONSES_MAX_META_VALUE) {
            return invalid(err, name,
                           "keys are at most 64 characters, values strings of at most 512");
        }
    }
    return 0;
}

static int check_previous(const char *name, const cJSON *v, struct core_err *err)
{
    if (!cJSON_IsString(v) ||
        strncmp(v->valuestring, RESPONSES_ID_PREFIX, strlen(RESPONSES_ID_PREFIX)) != 0) {
        return invalid(err, name, "expected a response id (resp_...)");
    }
    return 0;
}

static int check_include(const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *x;

    if (!cJSON_IsArray(v)) {
        return invalid(err, name, "expected an array of strings");
    }
    cJSON_ArrayForEach(x, v)
    {
        if (!cJSON_IsString(x) ||
            !in_list(x->valuestring, include_values, ARRAY_LEN(include_values))) {
            core_err_set(err, CORE_EINVAL, name, "Invalid include value '%.64s'.",
                         cJSON_IsString(x) ? x->valuestring : "(not a string)");
            core_err_set_code(err, "invalid_value");
            return CORE_EINVAL;
        }
    }
    return 0;
}

static int check_stream_options(const char *name, const cJSON *v, struct core_err *err)
{
    const cJSON *obf = field(v, "include_obfuscation");
    int rc;

    if (!cJSON_IsObject(v)) {
        return invalid(err, name, "expected an object");
    }
    if ((rc = check_keys(name, v, stream_options_keys, ARRAY_LEN(stream_options_keys), err)) != 0) {
        return rc;
    }
    return (obf == NULL || cJSON_IsBool(obf))
               ? 0
               : invalid(err, "stream_options.include_obfuscation", "expected a boolean");
}

static int check_field(const struct responses_field *f, const cJSON *v, struct core_err *err)
{
    switch (f->kind) {
    case KIND_BOOL:
        return cJSON_IsBool(v) ? 0 : invalid(err, f->name, "expected a boolean");
    case KIND_STRING:
        return cJSON_IsString(v) ? 0 : invalid(err, f->name, "expected a string");
    case KIND_OBJECT:
        return cJSON_IsObject(v) ? 0 : invalid(err, f->name, "expected an object");
    case KIND_NUMBER:
    case KIND_INTEGER:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < f->min ||
            v->valuedouble > f->max ||
            (f->kind == KIND_INTEGER && v->valuedouble != floor(v->valuedouble))) {
            core_err_set(err, CORE_EINVAL, f->name, "Invalid '%s': expected %s from %g to %g.",
                         f->name, f->kind == KIND_INTEGER ? "an integer" : "a number", f->min,
                         f->max);
            core_err_set_code(err, "invalid_value");
            return CORE_EINVAL;
        }
        return 0;
    case KIND_ENUM:
        return in_list(cJSON_GetStringValue(v), f->values, f->n_values)
                   ? 0
                   : invalid(err, f->name, "not one of the accepted values");
    case KIND_CUSTOM:
        return f->check(f->name, v, err);
    }
    return invalid(err, f->name, "unknown field kind");
}

int responses_check(const cJSON *req, struct core_err *err)
{
    const cJSON *v;
    const cJSON *store;

    core_err_clear(err);
    if (!cJSON_IsObject(req)) {
        return invalid(err, "body", "expected a JSON object");
    }
    cJSON_ArrayForEach(v, req)
    {
        const struct responses_field *f = NULL;
        int rc;

        if (cJSON_IsNull(v)) {
            continue; /* null is absent, as OpenAI reads it */
        }
        for (size_t i = 0; i < ARRAY_LEN(responses_fields) && f == NULL; i++) {
            if (v->string != NULL && strcmp(v->string, responses_fields[i].name) == 0) {
                f = &responses_fields[i];
            }
        }
        if (f == NULL) {
            core_err_set(err, CORE_EINVAL, v->string, "Unsupported parameter: '%.64s'.",
                         v->string ? v->string : "");
            core_err_set_code(err, "unsupported_parameter");
            return CORE_EINVAL;
        }
        if ((rc = check_field(f, v, err)) != 0) {
            return rc;
        }
    }
    if (field(req, "model") == NULL) {
        return core_err_set(err, CORE_EINVAL, "model", "Missing required parameter: 'model'.");
    }
    if (field(req, "input") == NULL) {
        return core_err_set(err, CORE_EINVAL, "input", "Missing required parameter: 'input'.");
    }
    store = field(req, "store");
    if (cJSON_IsTrue(field(req, "background")) && cJSON_IsFalse(store)) {
        return unsupported(err, "background",
                           "Background responses need store: a background response with "
                           "store: false could never be read.");
    }
    return 0;
}
