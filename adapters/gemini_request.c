/*
 * adapters/gemini_request.c — an OpenAI chat body as a Gemini GenerateContentRequest: messages as
 * contents (user and model turns alternating, tool calls and results as functionCall and
 * functionResponse parts, media as inlineData or fileData) and systemInstruction, sampling fields
 * as generationConfig, tools as functionDeclarations and tool_choice as toolConfig. The fields
 * it takes, and what each becomes, are the table gemini_fields; everything else is refused
 * (gemini.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "adapters/dialect.h"
#include "adapters/gemini.h"
#include "core/util.h"

/* Longest MIME type taken from a data: URL. */
#define GEMINI_MAX_MIME 128

/* The MIME type of a file by URL extension, for fileData parts; image/jpeg when none matches. */
static const struct {
    const char *ext;
    const char *mime;
} gemini_mime_table[] = {
    {"jpg", "image/jpeg"},  {"jpeg", "image/jpeg"},     {"png", "image/png"},
    {"gif", "image/gif"},   {"webp", "image/webp"},     {"heic", "image/heic"},
    {"heif", "image/heif"}, {"pdf", "application/pdf"}, {"mp3", "audio/mp3"},
    {"wav", "audio/wav"},   {"mp4", "video/mp4"},       {"txt", "text/plain"},
};

/*
 * The OpenAI chat fields this dialect takes (model and messages, then by name), with what each
 * becomes. adapter_fields_check refuses every field not listed, and parallel_tool_calls and
 * store at any value but their default.
 */
static const struct adapter_field gemini_fields[] = {
    {"model", ADAPTER_FIELD_HANDLED},                 /* the deployment's model, in the URL */
    {"messages", ADAPTER_FIELD_HANDLED},              /* contents and systemInstruction */
    {"frequency_penalty", ADAPTER_FIELD_HANDLED},     /* generationConfig.frequencyPenalty */
    {"logprobs", ADAPTER_FIELD_HANDLED},              /* generationConfig.responseLogprobs */
    {"max_completion_tokens", ADAPTER_FIELD_HANDLED}, /* generationConfig.maxOutputTokens */
    {"max_tokens", ADAPTER_FIELD_HANDLED},            /* the same, when the above is absent */
    {"n", ADAPTER_FIELD_HANDLED},                     /* generationConfig.candidateCount, 1-8 */
    {"parallel_tool_calls", ADAPTER_FIELD_IF_TRUE},   /* Gemini has no switch for it */
    {"presence_penalty", ADAPTER_FIELD_HANDLED},      /* generationConfig.presencePenalty */
    {"response_format", ADAPTER_FIELD_HANDLED},       /* responseMimeType, responseJsonSchema */
    {"seed", ADAPTER_FIELD_HANDLED},                  /* generationConfig.seed (int32) */
    {"stop", ADAPTER_FIELD_HANDLED},                  /* generationConfig.stopSequences */
    {"store", ADAPTER_FIELD_IF_FALSE},                /* Gemini keeps no completion to list */
    {"stream", ADAPTER_FIELD_HANDLED},                /* :streamGenerateContent?alt=sse */
    {"stream_options", ADAPTER_FIELD_HANDLED},        /* usage: Gemini always reports it */
    {"temperature", ADAPTER_FIELD_HANDLED},           /* generationConfig.temperature */
    {"tool_choice", ADAPTER_FIELD_HANDLED},           /* toolConfig.functionCallingConfig */
    {"tools", ADAPTER_FIELD_HANDLED},                 /* tools[].functionDeclarations */
    {"top_logprobs", ADAPTER_FIELD_HANDLED},          /* generationConfig.logprobs, 0-20 */
    {"top_p", ADAPTER_FIELD_HANDLED},                 /* generationConfig.topP */
};

/*
 * OpenAI's number fields: the values Gemini takes (OpenAI's ranges, narrowed where Gemini's are
 * narrower), and the generationConfig field each maps to one to one (NULL: sent by the code that
 * reads it). A value outside is refused here, naming the field, rather than by Gemini.
 */
static const struct {
    const char *openai;
    const char *gemini;
    bool integer;
    double min;
    double max;
} gemini_number_fields[] = {
    {"temperature", "temperature", false, 0, 2},
    {"top_p", "topP", false, 0, 1},
    {"n", "candidateCount", true, 1, GEMINI_MAX_CANDIDATES},
    {"seed", "seed", true, INT32_MIN, INT32_MAX},
    {"presence_penalty", "presencePenalty", false, -2, 2},
    {"frequency_penalty", "frequencyPenalty", false, -2, 2},
    {"max_completion_tokens", NULL, true, 1, INT32_MAX},
    {"max_tokens", NULL, true, 1, INT32_MAX},
    {"top_logprobs", NULL, true, 0, GEMINI_MAX_TOP_LOGPROBS},
};

/* tool_choice strings → functionCallingConfig.mode. */
static const struct {
    const char *choice;
    const char *mode;
} gemini_tool_modes[] = {
    {"none", "NONE"},
    {"auto", "AUTO"},
    {"required", "ANY"},
};

static const char *gemini_guess_mime(const char *url)
{
    CURLU *u = curl_url();
    char *path = NULL;
    const char *dot = NULL;
    const char *mime = "image/jpeg";

    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        dot = strrchr(path, '.');
        if (dot != NULL && strchr(dot, '/') != NULL) {
            dot = NULL;
        }
    }
    for (size_t i = 0; dot != NULL && i < ARRAY_LEN(gemini_mime_table); i++) {
        if (strcasecmp(dot + 1, gemini_mime_table[i].ext) == 0) {
            mime = gemini_mime_table[i].mime;
            break;
        }
    }
    curl_free(path);
    curl_url_cleanup(u);
    return mime;
}

/* {key: {"mimeType": mime, field: value}}: an inlineData or fileData part. NULL on OOM. */
static cJSON *gemini_media(const char *key, const char *mime, const char *field, const char *value)
{
    cJSON *inner = cJSON_CreateObject();

    if (inner == NULL || cJSON_AddStringToObject(inner, "mimeType", mime) == NULL ||
        cJSON_AddStringToObject(inner, field, value) == NULL) {
        cJSON_Delete(inner);
        return NULL;
    }
    return adapter_json_wrap(key, inner);
}

/*
 * A media reference as a part: a base64 data: URL becomes inlineData, an http(s) URL fileData
 * with the MIME type guessed from its extension. Other schemes and non-base64 data: URLs cannot be
 * sent, so they are refused rather than dropped.
 */
static int gemini_url_part(const char *url, const char *param, cJSON *parts, struct core_err *err)
{
    char mime[GEMINI_MAX_MIME];
    const char *data;

    if (strncasecmp(url, "data:", 5) == 0) {
        int rc = adapter_data_url(url, true, mime, sizeof(mime), &data);
        if (rc == ADAPTER_DATA_URL_NOT_BASE64) {
            return core_err_set(err, CORE_EINVAL, param, "a data: URL must be base64-encoded");
        }
        if (rc != 0) {
            return core_err_set(err, CORE_EINVAL, param, "a data: URL needs a MIME type");
        }
        return adapter_json_push(parts, gemini_media("inlineData", mime, "data", data))
                   ? 0
                   : gemini_oom(err);
    }
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        return adapter_json_push(parts,
                                 gemini_media("fileData", gemini_guess_mime(url), "fileUri", url))
                   ? 0
                   : gemini_oom(err);
    }
    return core_err_set(err, CORE_EINVAL, param,
                        "the gemini dialect takes media as data: or http(s) URLs only");
}

/* One element of an OpenAI content array as Gemini parts. media: images, audio, files allowed. */
static int gemini_content_part(const cJSON *part, const char *param, bool media, cJSON *parts,
                               struct core_err *err)
{
    const char *type = adapter_json_str(part, "type");
    const cJSON *inner;

    if (type == NULL) {
        return core_err_set(err, CORE_EINVAL, param, "a content part needs a type");
    }
    if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
        const char *text = adapter_json_str(part, type);
        if (text == NULL) {
            return core_err_set(err, CORE_EINVAL, param, "a %s part needs a string %s", type, type);
        }
        if (text[0] == '\0') {
            return 0;
        }
        return adapter_json_push(parts, adapter_json_wrap("text", cJSON_CreateString(text)))
                   ? 0
                   : gemini_oom(err);
    }
    if (!media) {
        return core_err_set(err, CORE_EINVAL, param,
                            "the gemini dialect takes only text in this message");
    }
    inner = cJSON_GetObjectItemCaseSensitive(part, type);
    if (strcmp(type, "image_url") == 0) {
        const char *url =
            cJSON_IsString(inner) ? inner->valuestring : adapter_json_str(inner, "url");
        if (url == NULL) {
            return core_err_set(err, CORE_EINVAL, param, "an image_url part needs a url");
        }
        return gemini_url_part(url, param, parts, err);
    }
    if (strcmp(type, "input_audio") == 0) {
        const char *data = adapter_json_str(inner, "data");
        const char *format = adapter_json_str(inner, "format");
        char mime[GEMINI_MAX_MIME];
        if (data == NULL || format == NULL || strlen(format) > 32) {
            return core_err_set(err, CORE_EINVAL, param, "input_audio needs data and format");
        }
        snprintf(mime, sizeof(mime), "audio/%s", format);
        return adapter_json_push(parts, gemini_media("inlineData", mime, "data", data))
                   ? 0
                   : gemini_oom(err);
    }
    if (strcmp(type, "file") == 0 && adapter_json_str(inner, "file_data") != NULL) {
        return gemini_url_part(adapter_json_str(inner, "file_data"), param, parts, err);
    }
    return core_err_set(err, CORE_EINVAL, param,
                        "the gemini dialect cannot send a content part of type %.32s", type);
}

/* An OpenAI message content (string, array of parts, or null) appended to parts. */
static int gemini_content(const cJSON *content, int msg, bool media, cJSON *parts,
                          struct core_err *err)
{
    char param[64];
    const cJSON *part;
    int j = 0;
    int rc;

    snprintf(param, sizeof(param), "messages[%d].content", msg);
    if (content == NULL || cJSON_IsNull(content)) {
        return 0;
    }
    if (cJSON_IsString(content)) {
        if (content->valuestring[0] == '\0') {
            return 0;
        }
        return adapter_json_push(
                   parts, adapter_json_wrap("text", cJSON_CreateString(content->valuestring)))
                   ? 0
                   : gemini_oom(err);
    }
    if (!cJSON_IsArray(content)) {
        return core_err_set(err, CORE_EINVAL, param, "content must be a string or an array");
    }
    cJSON_ArrayForEach(part, content)
    {
        snprintf(param, sizeof(param), "messages[%d].content[%d]", msg, j++);
        if ((rc = gemini_content_part(part, param, media, parts, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * text parsed as JSON when it is exactly one JSON object, nested no deeper than replies may be;
 * NULL otherwise (or on OOM). Caller frees.
 */
static cJSON *gemini_json_object(const char *text)
{
    size_t len = strlen(text);
    const char *end = NULL;
    cJSON *j;

    if (len == 0 || util_json_depth(text, len, ADAPTER_MAX_JSON_DEPTH) > ADAPTER_MAX_JSON_DEPTH) {
        return NULL;
    }
    j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!cJSON_IsObject(j) || end[strspn(end, " \t\r\n")] != '\0') {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/*
 * An assistant message's tool_calls as functionCall parts. arguments is JSON text in OpenAI and
 * an object in Gemini; "" counts as {}. A thought signature the client kept from an earlier reply
 * (tool_calls[].extra_content.google.thought_signature, as Google's own OpenAI endpoint spells
 * it) goes back on the part: Gemini 3 refuses function-call history without it.
 */
static int gemini_tool_calls(const cJSON *msg, int i, cJSON *parts, struct core_err *err)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    const cJSON *call;
    char param[64];
    int j = 0;

    if (calls == NULL || cJSON_IsNull(calls)) {
        return 0;
    }
    snprintf(param, sizeof(param), "messages[%d].tool_calls", i);
    if (!cJSON_IsArray(calls)) {
        return core_err_set(err, CORE_EINVAL, param, "tool_calls must be an array");
    }
    cJSON_ArrayForEach(call, calls)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const char *name = adapter_json_str(fn, "name");
        const char *text = adapter_json_str(fn, "arguments");
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(call, "extra_content");
        const char *sig =
            adapter_json_str(cJSON_GetObjectItemCaseSensitive(ext, "google"), "thought_signature");
        cJSON *args;
        cJSON *part;
        cJSON *fc;

        snprintf(param, sizeof(param), "messages[%d].tool_calls[%d]", i, j++);
        if (name == NULL) {
            return core_err_set(err, CORE_EINVAL, param, "a tool call needs function.name");
        }
        args = (text == NULL || text[0] == '\0') ? cJSON_CreateObject() : gemini_json_object(text);
        if (args == NULL) {
            return core_err_set(err, CORE_EINVAL, param,
                                "function.arguments must be a JSON object");
        }
        part = cJSON_CreateObject();
        fc = part ? cJSON_AddObjectToObject(part, "functionCall") : NULL;
        if (fc == NULL) {
            cJSON_Delete(args);
            cJSON_Delete(part);
            return gemini_oom(err);
        }
        if (cJSON_AddStringToObject(fc, "name", name) == NULL ||
            !adapter_json_put(fc, "args", args) ||
            (sig != NULL && cJSON_AddStringToObject(part, "thoughtSignature", sig) == NULL)) {
            cJSON_Delete(part);
            return gemini_oom(err);
        }
        if (!adapter_json_push(parts, part)) {
            return gemini_oom(err);
        }
    }
    return 0;
}

/*
 * The function name the tool message msg answers. OpenAI links results to calls by id and Gemini
 * by name, so the id is looked up in the messages before msg, nearest first (a history may hold
 * ids that repeat from one turn to the next: this dialect's were positional before they were
 * random, and other servers' may still be), walking back along the list rather than indexing
 * it. Any id works. NULL when no earlier call has that id.
 */
static const char *gemini_tool_name(const cJSON *messages, const cJSON *msg, const char *id)
{
    const cJSON *m = msg;

    while (m != messages->child) {
        const cJSON *call;
        m = m->prev;
        cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            const char *cid = adapter_json_str(call, "id");
            if (cid != NULL && strcmp(cid, id) == 0) {
                return adapter_json_str(cJSON_GetObjectItemCaseSensitive(call, "function"), "name");
            }
        }
    }
    return NULL;
}

/*
 * A tool (or legacy function) message as a functionResponse part. Gemini wants the response as
 * an object: a result that is a JSON object goes as it is, anything else as {"content": text}.
 */
static int gemini_tool_result(const cJSON *messages, const cJSON *msg, int i, cJSON *parts,
                              struct core_err *err)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const char *role = adapter_json_str(msg, "role");
    const char *name = NULL;
    char param[64];
    char *joined = NULL;
    const char *text;
    cJSON *part;
    cJSON *fr;
    bool ok;
    int rc = 0;

    if (strcmp(role, "tool") == 0) {
        const char *id = adapter_json_str(msg, "tool_call_id");
        snprintf(param, sizeof(param), "messages[%d].tool_call_id", i);
        if (id == NULL || (name = gemini_tool_name(messages, msg, id)) == NULL) {
            return core_err_set(err, CORE_EINVAL, param,
                                "a tool message must answer a tool call of an earlier message");
        }
    } else if ((name = adapter_json_str(msg, "name")) == NULL) {
        snprintf(param, sizeof(param), "messages[%d].name", i);
        return core_err_set(err, CORE_EINVAL, param, "a function message needs a name");
    }
    if (cJSON_IsArray(content)) {
        bool any;
        if ((joined = gemini_text(content, &any)) == NULL) {
            return gemini_oom(err);
        }
    }
    text = joined ? joined : cJSON_IsString(content) ? content->valuestring : "";
    part = cJSON_CreateObject();
    fr = part ? cJSON_AddObjectToObject(part, "functionResponse") : NULL;
    ok = fr != NULL && cJSON_AddStringToObject(fr, "name", name) != NULL;
    if (ok) {
        cJSON *response = gemini_json_object(text);
        if (response == NULL) {
            response = adapter_json_wrap("content", cJSON_CreateString(text));
        }
        ok = adapter_json_put(fr, "response", response);
    }
    if (!ok) {
        cJSON_Delete(part);
        rc = gemini_oom(err);
    } else if (!adapter_json_push(parts, part)) {
        rc = gemini_oom(err);
    }
    free(joined);
    return rc;
}

/*
 * Adds parts (taken over) as a turn of role to contents. Gemini wants user and model turns to
 * alternate, so parts for the same role as the last turn join it: parallel tool results become
 * one user turn, as Gemini answers parallel calls in one model turn. An empty parts array adds
 * nothing.
 */
static int gemini_add_turn(cJSON *contents, const char *role, cJSON *parts, struct core_err *err)
{
    cJSON *last = cJSON_GetArrayItem(contents, cJSON_GetArraySize(contents) - 1);
    cJSON *turn;

    if (cJSON_GetArraySize(parts) == 0) {
        cJSON_Delete(parts);
        return 0;
    }
    if (last != NULL && strcmp(adapter_json_str(last, "role"), role) == 0) {
        cJSON *into = cJSON_GetObjectItemCaseSensitive(last, "parts");
        cJSON *item;
        while ((item = cJSON_DetachItemFromArray(parts, 0)) != NULL) {
            cJSON_AddItemToArray(into, item);
        }
        cJSON_Delete(parts);
        return 0;
    }
    turn = cJSON_CreateObject();
    if (turn == NULL || cJSON_AddStringToObject(turn, "role", role) == NULL ||
        !adapter_json_put(turn, "parts", parts)) {
        if (turn == NULL || cJSON_GetObjectItemCaseSensitive(turn, "role") == NULL) {
            cJSON_Delete(parts);
        }
        cJSON_Delete(turn);
        return gemini_oom(err);
    }
    return adapter_json_push(contents, turn) ? 0 : gemini_oom(err);
}

/*
 * messages → contents and systemInstruction. System and developer messages, wherever they are,
 * become the system instruction (text only); user, assistant ("model"), tool and function
 * messages become turns.
 */
static int gemini_messages(const cJSON *messages, cJSON *body, struct core_err *err)
{
    cJSON *contents = cJSON_AddArrayToObject(body, "contents");
    cJSON *system = cJSON_CreateArray();
    const cJSON *msg;
    int i = 0;
    int rc = 0;

    if (contents == NULL || system == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    cJSON_ArrayForEach(msg, messages)
    {
        const char *role = adapter_json_str(msg, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        cJSON *parts;
        char param[64];

        if (role == NULL) {
            snprintf(param, sizeof(param), "messages[%d].role", i);
            rc = core_err_set(err, CORE_EINVAL, param, "a message needs a role");
            goto out;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            if ((rc = gemini_content(content, i, false, system, err)) != 0) {
                goto out;
            }
            i++;
            continue;
        }
        if ((parts = cJSON_CreateArray()) == NULL) {
            rc = gemini_oom(err);
            goto out;
        }
        if (strcmp(role, "user") == 0) {
            rc = gemini_content(content, i, true, parts, err);
        } else if (strcmp(role, "assistant") == 0) {
            rc = gemini_content(content, i, false, parts, err);
            rc = rc ? rc : gemini_tool_calls(msg, i, parts, err);
        } else if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) {
            rc = gemini_tool_result(messages, msg, i, parts, err);
        } else {
            snprintf(param, sizeof(param), "messages[%d].role", i);
            rc = core_err_set(err, CORE_EINVAL, param, "unknown role %s", role);
        }
        if (rc != 0) {
            cJSON_Delete(parts);
            goto out;
        }
        if ((rc = gemini_add_turn(contents, strcmp(role, "assistant") == 0 ? "model" : "user",
                                  parts, err)) != 0) {
            goto out;
        }
        i++;
    }
    if (cJSON_GetArraySize(contents) == 0) {
        rc = core_err_set(err, CORE_EINVAL, "messages",
                          "a gemini request needs a user or assistant message with content");
        goto out;
    }
    if (cJSON_GetArraySize(system) > 0) {
        cJSON *si = adapter_json_wrap("parts", system);
        system = NULL;
        if (!adapter_json_put(body, "systemInstruction", si)) {
            rc = gemini_oom(err);
        }
    }
out:
    cJSON_Delete(system);
    return rc;
}

/* v is set: present and not null, which OpenAI reads as absent. */
static bool gemini_set(const cJSON *v)
{
    return v != NULL && !cJSON_IsNull(v);
}

/*
 * The number fields: each checked against its range, and those that map one to one copied onto
 * gc. max_completion_tokens (or else max_tokens) becomes maxOutputTokens.
 */
static int gemini_numbers(const cJSON *input, cJSON *gc, struct core_err *err)
{
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(input, "max_completion_tokens");

    for (size_t i = 0; i < ARRAY_LEN(gemini_number_fields); i++) {
        const char *name = gemini_number_fields[i].openai;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, name);
        double min = gemini_number_fields[i].min;
        double top = gemini_number_fields[i].max;

        if (!gemini_set(v)) {
            continue;
        }
        /* the range is checked first, so the cast to long long is defined */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= top) ||
            (gemini_number_fields[i].integer &&
             v->valuedouble != (double)(long long)v->valuedouble)) {
            return core_err_set(err, CORE_EINVAL, name, "%s must be %s from %.10g to %.10g", name,
                                gemini_number_fields[i].integer ? "an integer" : "a number", min,
                                top);
        }
        if (gemini_number_fields[i].gemini != NULL &&
            cJSON_AddNumberToObject(gc, gemini_number_fields[i].gemini, v->valuedouble) == NULL) {
            return gemini_oom(err);
        }
    }
    if (!gemini_set(max)) {
        max = cJSON_GetObjectItemCaseSensitive(input, "max_tokens");
    }
    if (gemini_set(max) &&
        cJSON_AddNumberToObject(gc, "maxOutputTokens", max->valuedouble) == NULL) {
        return gemini_oom(err);
    }
    return 0;
}

/* stop (a string or an array of strings) → stopSequences. */
static int gemini_stop(const cJSON *input, cJSON *gc, struct core_err *err)
{
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(input, "stop");
    const cJSON *s;
    cJSON *seq;

    if (!gemini_set(stop)) {
        return 0;
    }
    if (!cJSON_IsString(stop) && !cJSON_IsArray(stop)) {
        return core_err_set(err, CORE_EINVAL, "stop",
                            "stop must be a string or an array of strings");
    }
    cJSON_ArrayForEach(s, stop)
    {
        if (!cJSON_IsString(s)) {
            return core_err_set(err, CORE_EINVAL, "stop", "stop must hold strings");
        }
    }
    seq = cJSON_IsString(stop) ? cJSON_CreateArray() : cJSON_Duplicate(stop, true);
    if (seq != NULL && cJSON_IsString(stop) &&
        !adapter_json_push(seq, cJSON_CreateString(stop->valuestring))) {
        cJSON_Delete(seq);
        seq = NULL;
    }
    return adapter_json_put(gc, "stopSequences", seq) ? 0 : gemini_oom(err);
}

/*
 * logprobs → responseLogprobs and top_logprobs → logprobs (the number of alternatives per token,
 * already range-checked). As in OpenAI, top_logprobs above 0 needs logprobs: true; without it,
 * nothing is asked for.
 */
static int gemini_logprobs_config(const cJSON *input, cJSON *gc, struct core_err *err)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(input, "logprobs");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(input, "top_logprobs");

    if (gemini_set(want) && !cJSON_IsBool(want)) {
        return core_err_set(err, CORE_EINVAL, "logprobs", "logprobs must be a boolean");
    }
    if (!cJSON_IsTrue(want)) {
        if (cJSON_IsNumber(top) && top->valuedouble > 0) {
            return core_err_set(err, CORE_EINVAL, "top_logprobs",
                                "top_logprobs needs logprobs set to true");
        }
        return 0;
    }
    if (cJSON_AddTrueToObject(gc, "responseLogprobs") == NULL ||
        (cJSON_IsNumber(top) &&
         cJSON_AddNumberToObject(gc, "logprobs", top->valuedouble) == NULL)) {
        return gemini_oom(err);
    }
    return 0;
}

/*
 * response_format → responseMimeType, and json_schema's schema as responseJsonSchema, which
 * takes JSON Schema as OpenAI clients write it (responseSchema takes only Google's OpenAPI
 * subset). Gemini holds every answer to the schema, so strict needs nothing more.
 */
static int gemini_response_format(const cJSON *input, cJSON *gc, struct core_err *err)
{
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(input, "response_format");
    const char *type = adapter_json_str(format, "type");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(format, "json_schema"), "schema");

    if (!gemini_set(format)) {
        return 0;
    }
    if (type == NULL || (strcmp(type, "text") != 0 && strcmp(type, "json_object") != 0 &&
                         strcmp(type, "json_schema") != 0)) {
        return core_err_set(err, CORE_EINVAL, "response_format",
                            "response_format must be an object of type text, json_object or "
                            "json_schema");
    }
    if (strcmp(type, "json_schema") == 0 && gemini_set(schema) && !cJSON_IsObject(schema)) {
        return core_err_set(err, CORE_EINVAL, "response_format",
                            "response_format.json_schema.schema must be an object");
    }
    if (strcmp(type, "text") == 0) {
        return 0;
    }
    if (cJSON_AddStringToObject(gc, "responseMimeType", "application/json") == NULL ||
        (strcmp(type, "json_schema") == 0 && cJSON_IsObject(schema) &&
         !adapter_json_put(gc, "responseJsonSchema", cJSON_Duplicate(schema, true)))) {
        return gemini_oom(err);
    }
    return 0;
}

/* The generation fields → generationConfig, sent only when one of them asked for something. */
static int gemini_generation_config(const cJSON *input, cJSON *body, struct core_err *err)
{
    cJSON *gc = cJSON_CreateObject();
    int rc;

    if (gc == NULL) {
        return gemini_oom(err);
    }
    if ((rc = gemini_numbers(input, gc, err)) != 0 || (rc = gemini_stop(input, gc, err)) != 0 ||
        (rc = gemini_logprobs_config(input, gc, err)) != 0 ||
        (rc = gemini_response_format(input, gc, err)) != 0) {
        cJSON_Delete(gc);
        return rc;
    }
    if (cJSON_GetArraySize(gc) == 0) {
        cJSON_Delete(gc);
        return 0;
    }
    return adapter_json_put(body, "generationConfig", gc) ? 0 : gemini_oom(err);
}

/*
 * tools → functionDeclarations and tool_choice → toolConfig. OpenAI's parameters are JSON
 * Schema, so they go as parametersJsonSchema: Gemini's `parameters` takes only its OpenAPI subset
 * and refuses common JSON Schema keywords such as additionalProperties.
 */
static int gemini_tools(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(input, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(input, "tool_choice");
    const cJSON *tool;
    cJSON *decls = NULL;
    cJSON *config = NULL;
    const char *mode = NULL;
    const char *only = NULL;
    int j = 0;

    if (gemini_set(tools) && !cJSON_IsArray(tools)) {
        return core_err_set(err, CORE_EINVAL, "tools", "tools must be an array");
    }
    if (cJSON_GetArraySize(tools) > 0) {
        cJSON *holder = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(body, "tools");
        if (holder == NULL || !adapter_json_push(list, holder) ||
            (decls = cJSON_AddArrayToObject(holder, "functionDeclarations")) == NULL) {
            return gemini_oom(err);
        }
    }
    if (decls == NULL) {
        tools = NULL;
    }
    cJSON_ArrayForEach(tool, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const char *type = adapter_json_str(tool, "type");
        const char *name = adapter_json_str(fn, "name");
        const char *desc = adapter_json_str(fn, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON *d = cJSON_CreateObject();
        char param[64];

        snprintf(param, sizeof(param), "tools[%d]", j++);
        if (type == NULL || strcmp(type, "function") != 0 || name == NULL) {
            cJSON_Delete(d);
            return core_err_set(err, CORE_EINVAL, param,
                                "the gemini dialect takes only function tools with a name");
        }
        if (!adapter_json_push(decls, d) || cJSON_AddStringToObject(d, "name", name) == NULL ||
            (desc != NULL && cJSON_AddStringToObject(d, "description", desc) == NULL) ||
            (cJSON_IsObject(params) &&
             !adapter_json_put(d, "parametersJsonSchema", cJSON_Duplicate(params, true)))) {
            return gemini_oom(err);
        }
    }
    if (cJSON_IsString(choice)) {
        for (size_t i = 0; i < ARRAY_LEN(gemini_tool_modes); i++) {
            if (strcmp(choice->valuestring, gemini_tool_modes[i].choice) == 0) {
                mode = gemini_tool_modes[i].mode;
            }
        }
    } else if (cJSON_IsObject(choice)) {
        only = adapter_json_str(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
        mode = only ? "ANY" : NULL;
    } else if (choice == NULL || cJSON_IsNull(choice)) {
        return 0;
    }
    if (mode == NULL) {
        return core_err_set(err, CORE_EINVAL, "tool_choice",
                            "tool_choice must be none, auto, required or a named function");
    }
    config = cJSON_AddObjectToObject(body, "toolConfig");
    config = config ? cJSON_AddObjectToObject(config, "functionCallingConfig") : NULL;
    if (config == NULL || cJSON_AddStringToObject(config, "mode", mode) == NULL ||
        (only != NULL && !adapter_json_push(cJSON_AddArrayToObject(config, "allowedFunctionNames"),
                                            cJSON_CreateString(only)))) {
        return gemini_oom(err);
    }
    return 0;
}

int gemini_check_fields(const cJSON *input, struct core_err *err)
{
    return adapter_fields_check(input, "gemini", gemini_fields, ARRAY_LEN(gemini_fields), err);
}

int gemini_map_request(const cJSON *input, cJSON *body, struct core_err *err)
{
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(input, "messages");
    int rc;

    if ((rc = gemini_messages(messages, body, err)) != 0 ||
        (rc = gemini_generation_config(input, body, err)) != 0 ||
        (rc = gemini_tools(input, body, err)) != 0) {
        return rc;
    }
    return 0;
}
