/*
 * adapters/gemini.c — Google's Gemini generateContent dialect (the Gemini Developer API,
 * generativelanguage.googleapis.com/v1beta). Chat only: the client's OpenAI chat body becomes a
 * GenerateContentRequest, the reply (whole, or streamed as server-sent events with alt=sse) becomes
 * OpenAI's chat.completion or chat.completion.chunk objects, and Google's error envelope
 * {"error":{"code","message","status","details"}} becomes sluice's error with the gRPC status name
 * as its type and code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "adapters/adapter.h"
#include "core/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Gemini allows candidateCount 1-8; a streamed candidate index past this is refused. */
#define GEMINI_MAX_CANDIDATES 8
/* Hex digits of a reply's SHA-256 in the ids made up for replies without a responseId. */
#define GEMINI_ID_HASH_CHARS 24
/* Longest MIME type taken from a data: URL. */
#define GEMINI_MAX_MIME 128

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

/* OpenAI sampling fields that map one to one onto generationConfig numbers. */
static const struct {
    const char *openai;
    const char *gemini;
} gemini_number_fields[] = {
    {"temperature", "temperature"},
    {"top_p", "topP"},
    {"n", "candidateCount"},
    {"seed", "seed"},
    {"presence_penalty", "presencePenalty"},
    {"frequency_penalty", "frequencyPenalty"},
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
    struct gemini_cand_state cands[GEMINI_MAX_CANDIDATES];
    cJSON *usage; /* OpenAI usage from the latest usageMetadata; owned */
    bool usage_sent;
    bool done;
};

static int gemini_oom(struct core_err *err)
{
    return core_err_set(err, CORE_ENOMEM, NULL, "out of memory in the gemini dialect");
}

/* Adds item to parent under key, or to the array parent when key is NULL; frees it on failure. */
static bool gemini_put(cJSON *parent, const char *key, cJSON *item)
{
    bool ok;

    if (item == NULL) {
        return false;
    }
    ok = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!ok) {
        cJSON_Delete(item);
    }
    return ok;
}

/* {key: value} as a new object; NULL on OOM. */
static cJSON *gemini_wrap(const char *key, cJSON *value)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !gemini_put(o, key, value)) {
        cJSON_Delete(o);
        if (o == NULL) {
            cJSON_Delete(value);
        }
        return NULL;
    }
    return o;
}

static const char *gemini_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static double gemini_num(const cJSON *o, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(n) ? n->valuedouble : 0;
}

/*
 * The "text" members of an array of parts joined (Gemini parts or OpenAI text parts), leaving out
 * Gemini's thought summaries ("thought": true). *any tells whether there was a text part at all.
 * Caller frees; NULL on OOM.
 */
static char *gemini_text(const cJSON *parts, bool *any)
{
    const cJSON *p;
    size_t len = 0;
    char *text;
    char *w;

    *any = false;
    cJSON_ArrayForEach(p, parts)
    {
        const char *t = gemini_str(p, "text");
        if (t != NULL && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought"))) {
            len += strlen(t);
            *any = true;
        }
    }
    if ((text = malloc(len + 1)) == NULL) {
        return NULL;
    }
    w = text;
    cJSON_ArrayForEach(p, parts)
    {
        const char *t = gemini_str(p, "text");
        if (t != NULL && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought"))) {
            size_t n = strlen(t);
            memcpy(w, t, n);
            w += n;
        }
    }
    *w = '\0';
    return text;
}

/* ---- request ---------------------------------------------------------------------------- */

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
    return gemini_wrap(key, inner);
}

/*
 * A media reference as a part: a base64 data: URL becomes inlineData, an http(s) URL fileData
 * with the MIME type guessed from its extension. Other schemes and non-base64 data: URLs cannot be
 * sent, so they are refused rather than dropped.
 */
static int gemini_url_part(const char *url, const char *param, cJSON *parts, struct core_err *err)
{
    char mime[GEMINI_MAX_MIME];

    if (strncasecmp(url, "data:", 5) == 0) {
        const char *comma = strchr(url, ',');
        size_t mlen = strcspn(url + 5, ";,");
        if (comma == NULL || comma - url < 12 || strncasecmp(comma - 7, ";base64", 7) != 0) {
            return core_err_set(err, CORE_EINVAL, param, "a data: URL must be base64-encoded");
        }
        if (mlen == 0 || mlen >= sizeof(mime)) {
            return core_err_set(err, CORE_EINVAL, param, "a data: URL needs a MIME type");
        }
        memcpy(mime, url + 5, mlen);
        mime[mlen] = '\0';
        return gemini_put(parts, NULL, gemini_media("inlineData", mime, "data", comma + 1))
                   ? 0
                   : gemini_oom(err);
    }
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        return gemini_put(parts, NULL,
                          gemini_media("fileData", gemini_guess_mime(url), "fileUri", url))
                   ? 0
                   : gemini_oom(err);
    }
    return core_err_set(err, CORE_EUNPROCESSABLE, param,
                        "the gemini dialect takes media as data: or http(s) URLs only");
}

/* One element of an OpenAI content array as Gemini parts. media: images, audio, files allowed. */
static int gemini_content_part(const cJSON *part, const char *param, bool media, cJSON *parts,
                               struct core_err *err)
{
    const char *type = gemini_str(part, "type");
    const cJSON *inner;

    if (type == NULL) {
        return core_err_set(err, CORE_EINVAL, param, "a content part needs a type");
    }
    if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
        const char *text = gemini_str(part, type);
        if (text == NULL) {
            return core_err_set(err, CORE_EINVAL, param, "a %s part needs a string %s", type, type);
        }
        if (text[0] == '\0') {
            return 0;
        }
        return gemini_put(parts, NULL, gemini_wrap("text", cJSON_CreateString(text)))
                   ? 0
                   : gemini_oom(err);
    }
    if (!media) {
        return core_err_set(err, CORE_EUNPROCESSABLE, param,
                            "the gemini dialect takes only text in this message");
    }
    inner = cJSON_GetObjectItemCaseSensitive(part, type);
    if (strcmp(type, "image_url") == 0) {
        const char *url = cJSON_IsString(inner) ? inner->valuestring : gemini_str(inner, "url");
        if (url == NULL) {
            return core_err_set(err, CORE_EINVAL, param, "an image_url part needs a url");
        }
        return gemini_url_part(url, param, parts, err);
    }
    if (strcmp(type, "input_audio") == 0) {
        const char *data = gemini_str(inner, "data");
        const char *format = gemini_str(inner, "format");
        char mime[GEMINI_MAX_MIME];
        if (data == NULL || format == NULL || strlen(format) > 32) {
            return core_err_set(err, CORE_EINVAL, param, "input_audio needs data and format");
        }
        snprintf(mime, sizeof(mime), "audio/%s", format);
        return gemini_put(parts, NULL, gemini_media("inlineData", mime, "data", data))
                   ? 0
                   : gemini_oom(err);
    }
    if (strcmp(type, "file") == 0 && gemini_str(inner, "file_data") != NULL) {
        return gemini_url_part(gemini_str(inner, "file_data"), param, parts, err);
    }
    return core_err_set(err, CORE_EUNPROCESSABLE, param,
                        "the gemini dialect cannot send a content part of type %s", type);
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
        return gemini_put(parts, NULL,
                          gemini_wrap("text", cJSON_CreateString(content->valuestring)))
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
        const char *name = gemini_str(fn, "name");
        const char *text = gemini_str(fn, "arguments");
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(call, "extra_content");
        const char *sig =
            gemini_str(cJSON_GetObjectItemCaseSensitive(ext, "google"), "thought_signature");
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
        if (cJSON_AddStringToObject(fc, "name", name) == NULL || !gemini_put(fc, "args", args) ||
            (sig != NULL && cJSON_AddStringToObject(part, "thoughtSignature", sig) == NULL)) {
            cJSON_Delete(part);
            return gemini_oom(err);
        }
        if (!gemini_put(parts, NULL, part)) {
            return gemini_oom(err);
        }
    }
    return 0;
}

/*
 * The function name the tool message msg answers. OpenAI links results to calls by id and Gemini
 * by name, so the id is looked up in the messages before msg, nearest first (ids made up by this
 * dialect repeat from one reply to the next), walking back along the list rather than indexing it.
 * NULL when no earlier call has that id.
 */
static const char *gemini_tool_name(const cJSON *messages, const cJSON *msg, const char *id)
{
    const cJSON *m = msg;

    while (m != messages->child) {
        const cJSON *call;
        m = m->prev;
        cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            const char *cid = gemini_str(call, "id");
            if (cid != NULL && strcmp(cid, id) == 0) {
                return gemini_str(cJSON_GetObjectItemCaseSensitive(call, "function"), "name");
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
    const char *role = gemini_str(msg, "role");
    const char *name = NULL;
    char param[64];
    char *joined = NULL;
    const char *text;
    cJSON *part;
    cJSON *fr;
    bool ok;
    int rc = 0;

    if (strcmp(role, "tool") == 0) {
        const char *id = gemini_str(msg, "tool_call_id");
        snprintf(param, sizeof(param), "messages[%d].tool_call_id", i);
        if (id == NULL || (name = gemini_tool_name(messages, msg, id)) == NULL) {
            return core_err_set(err, CORE_EINVAL, param,
                                "a tool message must answer a tool call of an earlier message");
        }
    } else if ((name = gemini_str(msg, "name")) == NULL) {
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
            response = gemini_wrap("content", cJSON_CreateString(text));
        }
        ok = gemini_put(fr, "response", response);
    }
    if (!ok) {
        cJSON_Delete(part);
        rc = gemini_oom(err);
    } else if (!gemini_put(parts, NULL, part)) {
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
    if (last != NULL && strcmp(gemini_str(last, "role"), role) == 0) {
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
        !gemini_put(turn, "parts", parts)) {
        if (turn == NULL || cJSON_GetObjectItemCaseSensitive(turn, "role") == NULL) {
            cJSON_Delete(parts);
        }
        cJSON_Delete(turn);
        return gemini_oom(err);
    }
    return gemini_put(contents, NULL, turn) ? 0 : gemini_oom(err);
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
        const char *role = gemini_str(msg, "role");
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
        cJSON *si = gemini_wrap("parts", system);
        system = NULL;
        if (!gemini_put(body, "systemInstruction", si)) {
            rc = gemini_oom(err);
        }
    }
out:
    cJSON_Delete(system);
    return rc;
}

/*
 * Sampling fields → generationConfig. response_format json_schema also sends the schema as
 * responseJsonSchema, which takes JSON Schema as OpenAI clients write it (responseSchema takes
 * only Google's OpenAPI subset). Fields Gemini has no counterpart for are not sent.
 */
static int gemini_generation_config(const cJSON *input, cJSON *body, struct core_err *err)
{
    cJSON *gc = cJSON_CreateObject();
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(input, "max_completion_tokens");
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(input, "stop");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(input, "response_format");
    bool ok = gc != NULL;
    int rc = 0;

    for (size_t i = 0; ok && i < ARRAY_LEN(gemini_number_fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, gemini_number_fields[i].openai);
        if (v == NULL || cJSON_IsNull(v)) {
            continue;
        }
        if (!cJSON_IsNumber(v)) {
            rc = core_err_set(err, CORE_EINVAL, gemini_number_fields[i].openai,
                              "%s must be a number", gemini_number_fields[i].openai);
            goto out;
        }
        ok = cJSON_AddNumberToObject(gc, gemini_number_fields[i].gemini, v->valuedouble) != NULL;
    }
    if (!cJSON_IsNumber(max)) {
        max = cJSON_GetObjectItemCaseSensitive(input, "max_tokens");
    }
    if (ok && cJSON_IsNumber(max)) {
        ok = cJSON_AddNumberToObject(gc, "maxOutputTokens", max->valuedouble) != NULL;
    }
    if (ok && cJSON_IsString(stop)) {
        cJSON *seq = cJSON_AddArrayToObject(gc, "stopSequences");
        ok = seq != NULL && gemini_put(seq, NULL, cJSON_CreateString(stop->valuestring));
    } else if (ok && cJSON_IsArray(stop)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stop)
        {
            if (!cJSON_IsString(s)) {
                rc = core_err_set(err, CORE_EINVAL, "stop", "stop must hold strings");
                goto out;
            }
        }
        ok = gemini_put(gc, "stopSequences", cJSON_Duplicate(stop, true));
    }
    if (ok && cJSON_IsObject(format)) {
        const char *type = gemini_str(format, "type");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(format, "json_schema"), "schema");
        if (type == NULL || (strcmp(type, "text") != 0 && strcmp(type, "json_object") != 0 &&
                             strcmp(type, "json_schema") != 0)) {
            rc = core_err_set(err, CORE_EUNPROCESSABLE, "response_format",
                              "the gemini dialect cannot send this response_format");
            goto out;
        }
        if (strcmp(type, "text") != 0) {
            ok = cJSON_AddStringToObject(gc, "responseMimeType", "application/json") != NULL;
        }
        if (ok && strcmp(type, "json_schema") == 0 && cJSON_IsObject(schema)) {
            ok = gemini_put(gc, "responseJsonSchema", cJSON_Duplicate(schema, true));
        }
    }
    if (!ok) {
        rc = gemini_oom(err);
        goto out;
    }
    if (cJSON_GetArraySize(gc) > 0) {
        ok = gemini_put(body, "generationConfig", gc);
        gc = NULL;
        rc = ok ? 0 : gemini_oom(err);
    }
out:
    cJSON_Delete(gc);
    return rc;
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

    if (cJSON_GetArraySize(tools) > 0) {
        cJSON *holder = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(body, "tools");
        if (holder == NULL || !gemini_put(list, NULL, holder) ||
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
        const char *type = gemini_str(tool, "type");
        const char *name = gemini_str(fn, "name");
        const char *desc = gemini_str(fn, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON *d = cJSON_CreateObject();
        char param[64];

        snprintf(param, sizeof(param), "tools[%d]", j++);
        if (type == NULL || strcmp(type, "function") != 0 || name == NULL) {
            cJSON_Delete(d);
            return core_err_set(err, CORE_EUNPROCESSABLE, param,
                                "the gemini dialect takes only function tools with a name");
        }
        if (!gemini_put(decls, NULL, d) || cJSON_AddStringToObject(d, "name", name) == NULL ||
            (desc != NULL && cJSON_AddStringToObject(d, "description", desc) == NULL) ||
            (cJSON_IsObject(params) &&
             !gemini_put(d, "parametersJsonSchema", cJSON_Duplicate(params, true)))) {
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
        only = gemini_str(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
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
        (only != NULL && !gemini_put(cJSON_AddArrayToObject(config, "allowedFunctionNames"), NULL,
                                     cJSON_CreateString(only)))) {
        return gemini_oom(err);
    }
    return 0;
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

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc =
            core_err_set(err, CORE_EUNPROCESSABLE, NULL,
                         "the gemini dialect does not support %s tasks", adapter_op_name(call->op));
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
    if ((body = cJSON_CreateObject()) == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    if ((rc = gemini_messages(messages, body, err)) != 0 ||
        (rc = gemini_generation_config(input, body, err)) != 0 ||
        (rc = gemini_tools(input, body, err)) != 0) {
        goto out;
    }
    snprintf(out->method, sizeof(out->method), "POST");
    out->url = gemini_url(t, call->stream);
    out->body = cJSON_PrintUnformatted(body);
    if (out->url == NULL || out->body == NULL) {
        rc = gemini_oom(err);
        goto out;
    }
    out->body_len = strlen(out->body);
    if ((t->api_key != NULL && t->api_key[0] != '\0' &&
         adapter_request_add_header(out, "x-goog-api-key: %s", t->api_key) != 0) ||
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
        const char *type = gemini_str(d, "@type");
        const char *delay = gemini_str(d, "retryDelay");
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
static int gemini_error(const struct adapter_response *resp, const cJSON *root,
                        struct core_err *err)
{
    const cJSON *env = gemini_error_root(root);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(env, "error");
    const char *status = gemini_str(error, "status");
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

/* A 2xx that is not a GenerateContentResponse: retryable, as a cut body usually is. */
static int gemini_malformed(int status, size_t body_len, const char *why, struct core_err *err)
{
    core_err_set(err, CORE_EUPSTREAM, NULL, "malformed reply from the provider: %s", why);
    core_err_set_code(err, "malformed_reply");
    err->provider_status = status;
    err->retryable = body_len <= ADAPTER_MAX_REPLY_BYTES;
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
    const char *reason = gemini_str(fb, "blockReason");
    const char *detail = gemini_str(fb, "blockReasonMessage");

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
 * A functionCall part as an OpenAI tool call {id, type, function{name, arguments}} with a made-up
 * id "call_<candidate>_<n>" (Gemini links results by name, so any unique id round-trips), and its
 * thought signature kept where Google's OpenAI endpoint puts it. index >= 0 adds the "index" a
 * stream delta carries. NULL on OOM.
 */
static cJSON *gemini_tool_call(const cJSON *part, int cand, int n, int index)
{
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(part, "functionCall");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fc, "args");
    const char *name = gemini_str(fc, "name");
    const char *sig = gemini_str(part, "thoughtSignature");
    char *text = cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : strdup("{}");
    cJSON *call = cJSON_CreateObject();
    cJSON *fn = NULL;
    char id[48];
    bool ok;

    snprintf(id, sizeof(id), "call_%d_%d", cand, n);
    ok = text != NULL && call != NULL &&
         (index < 0 || cJSON_AddNumberToObject(call, "index", index) != NULL) &&
         cJSON_AddStringToObject(call, "id", id) != NULL &&
         cJSON_AddStringToObject(call, "type", "function") != NULL &&
         (fn = cJSON_AddObjectToObject(call, "function")) != NULL &&
         cJSON_AddStringToObject(fn, "name", name ? name : "") != NULL &&
         cJSON_AddStringToObject(fn, "arguments", text) != NULL;
    if (ok && sig != NULL) {
        cJSON *google = gemini_wrap("thought_signature", cJSON_CreateString(sig));
        ok = gemini_put(call, "extra_content", gemini_wrap("google", google));
    }
    free(text);
    if (!ok) {
        cJSON_Delete(call);
        return NULL;
    }
    return call;
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

/* One candidate as an OpenAI choice. NULL on OOM. */
static cJSON *gemini_choice(const cJSON *cand, int pos)
{
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
    int index = gemini_cand_index(cand, pos);
    cJSON *choice = cJSON_CreateObject();
    cJSON *msg = NULL;
    cJSON *calls = NULL;
    const cJSON *p;
    bool any = false;
    char *text = gemini_text(parts, &any);
    int n = 0;
    bool ok = choice != NULL && text != NULL &&
              cJSON_AddNumberToObject(choice, "index", index) != NULL &&
              (msg = cJSON_AddObjectToObject(choice, "message")) != NULL &&
              cJSON_AddStringToObject(msg, "role", "assistant") != NULL &&
              (any ? cJSON_AddStringToObject(msg, "content", text)
                   : cJSON_AddNullToObject(msg, "content")) != NULL;

    if (!ok) {
        parts = NULL;
    }
    cJSON_ArrayForEach(p, parts)
    {
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "functionCall"))) {
            continue;
        }
        if (calls == NULL && (calls = cJSON_AddArrayToObject(msg, "tool_calls")) == NULL) {
            ok = false;
            break;
        }
        if (!gemini_put(calls, NULL, gemini_tool_call(p, index, n++, -1))) {
            ok = false;
            break;
        }
    }
    ok = ok && cJSON_AddNullToObject(choice, "logprobs") != NULL &&
         cJSON_AddStringToObject(choice, "finish_reason",
                                 gemini_finish(gemini_str(cand, "finishReason"), n > 0)) != NULL;
    free(text);
    if (!ok) {
        cJSON_Delete(choice);
        return NULL;
    }
    return choice;
}

/*
 * The id of a reply: Gemini's responseId, else "chatcmpl-gemini-" and the start of the SHA-256 of
 * the bytes, so the same reply always gets the same id.
 */
static void gemini_reply_id(const cJSON *root, const char *body, size_t len, char *out, size_t size)
{
    const char *rid = gemini_str(root, "responseId");
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

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (call->op != ADAPTER_OP_CHAT) {
        rc =
            core_err_set(err, CORE_EUNPROCESSABLE, NULL,
                         "the gemini dialect does not support %s tasks", adapter_op_name(call->op));
        goto out;
    }
    if (resp->transport != ADAPTER_TRANSPORT_OK) {
        rc = adapter_classify_transport(resp, err);
        goto out;
    }
    root = adapter_json_parse(resp->body, resp->body_len);
    if (resp->status < 200 || resp->status > 299) {
        rc = gemini_error(resp, root, err);
        goto out;
    }
    if (resp->body_len > ADAPTER_MAX_REPLY_BYTES) {
        rc = gemini_malformed(resp->status, resp->body_len, "the body passed the size limit", err);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = gemini_malformed(resp->status, resp->body_len, "the body is not a JSON object", err);
        goto out;
    }
    cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    if (cJSON_GetArraySize(cands) == 0) {
        if ((rc = gemini_blocked(root, resp->status, err)) == 0) {
            rc = gemini_malformed(resp->status, resp->body_len, "no candidates", err);
        }
        goto out;
    }
    model = gemini_str(root, "modelVersion");
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
        if (!gemini_put(choices, NULL, gemini_choice(cand, pos++))) {
            rc = gemini_oom(err);
            goto out;
        }
    }
    if ((out->usage != NULL && !gemini_put(result, "usage", cJSON_Duplicate(out->usage, true))) ||
        (gemini_str(root, "responseId") != NULL &&
         (out->upstream_id = strdup(gemini_str(root, "responseId"))) == NULL)) {
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

    if (s == NULL || (s->model = strdup(model)) == NULL) {
        free(s);
        return NULL;
    }
    s->created = util_now_ms() / 1000;
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
 * A chat.completion.chunk with one choice {index, delta, finish_reason} appended to chunks, or
 * with choices [] and usage when index < 0. Takes delta (or usage). Returns false on OOM.
 */
static bool gemini_chunk(const struct gemini_stream *s, cJSON *chunks, int index, cJSON *delta,
                         const char *finish)
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
        ok = gemini_put(choices, NULL, choice = cJSON_CreateObject()) &&
             cJSON_AddNumberToObject(choice, "index", index) != NULL;
    }
    if (!ok) {
        cJSON_Delete(delta);
    } else {
        ok = gemini_put(index < 0 ? chunk : choice, index < 0 ? "usage" : "delta", delta);
    }
    if (ok && index >= 0) {
        ok = cJSON_AddNullToObject(choice, "logprobs") != NULL &&
             (finish ? cJSON_AddStringToObject(choice, "finish_reason", finish)
                     : cJSON_AddNullToObject(choice, "finish_reason")) != NULL;
    }
    if (!ok) {
        cJSON_Delete(chunk);
        return false;
    }
    return gemini_put(chunks, NULL, chunk);
}

/*
 * One streamed candidate as chunks: the role on its first appearance, its new text, its function
 * calls (each complete: Gemini does not split a call across events), and its finish.
 */
static int gemini_stream_candidate(struct gemini_stream *s, const cJSON *cand, int pos,
                                   cJSON *chunks, struct core_err *err)
{
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
    const char *reason = gemini_str(cand, "finishReason");
    int index = gemini_cand_index(cand, pos);
    struct gemini_cand_state *c;
    cJSON *calls = NULL;
    const cJSON *p;
    bool any = false;
    char *text = NULL;
    bool ok = true;

    if (index >= GEMINI_MAX_CANDIDATES) {
        return gemini_malformed(200, 0, "a stream event names a candidate past the limit", err);
    }
    c = &s->cands[index];
    c->seen = true;
    if (!c->role_sent) {
        ok = gemini_chunk(s, chunks, index, gemini_wrap("role", cJSON_CreateString("assistant")),
                          NULL);
        c->role_sent = ok;
    }
    text = ok ? gemini_text(parts, &any) : NULL;
    ok = ok && text != NULL;
    if (ok && text[0] != '\0') {
        ok = gemini_chunk(s, chunks, index, gemini_wrap("content", cJSON_CreateString(text)), NULL);
    }
    if (!ok) {
        parts = NULL;
    }
    cJSON_ArrayForEach(p, parts)
    {
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "functionCall"))) {
            continue;
        }
        if (calls == NULL && (calls = cJSON_CreateArray()) == NULL) {
            ok = false;
            break;
        }
        ok = gemini_put(calls, NULL, gemini_tool_call(p, index, c->n_calls, c->n_calls));
        c->n_calls++;
    }
    if (ok && calls != NULL) {
        ok = gemini_chunk(s, chunks, index, gemini_wrap("tool_calls", calls), NULL);
        calls = NULL;
    }
    if (ok && reason != NULL && !c->finished) {
        ok = gemini_chunk(s, chunks, index, cJSON_CreateObject(),
                          gemini_finish(reason, c->n_calls > 0));
        c->finished = ok;
    }
    free(text);
    cJSON_Delete(calls);
    return ok ? 0 : gemini_oom(err);
}

/* True once every candidate the stream has shown has finished. */
static bool gemini_stream_finished(const struct gemini_stream *s)
{
    bool any = false;

    for (int i = 0; i < GEMINI_MAX_CANDIDATES; i++) {
        if (s->cands[i].seen && !s->cands[i].finished) {
            return false;
        }
        any = any || s->cands[i].seen;
    }
    return any;
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
        rc = gemini_error(&r, root, err);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = gemini_malformed(200, len, "a stream event is not a JSON object", err);
        goto out;
    }
    if (!s->have_id) {
        gemini_reply_id(root, data, len, s->id, sizeof(s->id));
        s->have_id = true;
    }
    model = gemini_str(root, "modelVersion");
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
        if (!gemini_chunk(s, chunks, -1, u, NULL)) {
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
    .stream_new = gemini_stream_new,
    .stream_event = gemini_stream_event,
    .stream_free = gemini_stream_free,
};
