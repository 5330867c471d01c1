/*
 * core/task.c — rendering tasks from their Redis hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/task.h"

static const char *const priority_names[] = {"interactive", "normal", "batch"};
static const char *const kind_names[TASK_KIND_COUNT] = {"chat", "embedding", "image", "video"};
static const char *const status_names[TASK_STATUS_COUNT] = {
    [TASK_QUEUED] = "queued",         [TASK_IN_PROGRESS] = "in_progress",
    [TASK_CANCELLING] = "cancelling", [TASK_COMPLETED] = "completed",
    [TASK_FAILED] = "failed",         [TASK_CANCELLED] = "cancelled",
    [TASK_EXPIRED] = "expired",
};

/* The index of name in names[0..n), or -1. */
static int name_index(const char *name, const char *const *names, int n)
{
    for (int i = 0; name && i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int task_priority_parse(const char *name)
{
    return name_index(name, priority_names, 3);
}

const char *task_priority_name(int prio)
{
    return (prio >= 0 && prio < 3) ? priority_names[prio] : "normal";
}

int task_kind_parse(const char *name)
{
    return name_index(name, kind_names, TASK_KIND_COUNT);
}

const char *task_kind_name(enum task_kind kind)
{
    return (int)kind >= 0 && kind < TASK_KIND_COUNT ? kind_names[kind] : "";
}

int task_status_parse(const char *name)
{
    return name_index(name, status_names, TASK_STATUS_COUNT);
}

const char *task_status_name(enum task_status status)
{
    return (int)status >= 0 && status < TASK_STATUS_COUNT ? status_names[status] : "";
}

bool task_status_is_terminal(enum task_status status)
{
    return status == TASK_COMPLETED || status == TASK_FAILED || status == TASK_CANCELLED ||
           status == TASK_EXPIRED;
}

bool task_status_terminal(const char *status)
{
    int s = task_status_parse(status);
    return s >= 0 && task_status_is_terminal((enum task_status)s);
}

bool task_status_known(const char *status)
{
    return task_status_parse(status) >= 0;
}

const char *task_hash_get(const redisReply *hash, const char *field)
{
    if (hash == NULL || hash->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < hash->elements; i += 2) {
        const redisReply *k = hash->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, field) == 0) {
            return hash->element[i + 1]->type == REDIS_REPLY_STRING ? hash->element[i + 1]->str
                                                                    : NULL;
        }
    }
    return NULL;
}

/* A stored ms timestamp as Unix seconds, or null. */
static void add_seconds(cJSON *o, const char *name, const char *ms)
{
    if (ms && ms[0]) {
        cJSON_AddNumberToObject(o, name, (double)(strtoll(ms, NULL, 10) / 1000));
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

static void add_int(cJSON *o, const char *name, const char *v)
{
    cJSON_AddNumberToObject(o, name, v ? (double)strtoll(v, NULL, 10) : 0);
}

/* A stored JSON text embedded verbatim (cJSON_CreateRaw), or null. */
static void add_raw(cJSON *o, const char *name, const char *json)
{
    if (json && json[0]) {
        cJSON_AddRawToObject(o, name, json);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

/* The kept artifacts as {index, content_type, bytes, url}; the url is sluice's, not the
 * provider's, so it does not expire with the provider's. */
static void add_artifacts(cJSON *o, const char *id, const char *json)
{
    cJSON *list = json ? cJSON_Parse(json) : NULL;
    cJSON *a;

    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return;
    }
    cJSON_ArrayForEach(a, list)
    {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(a, "index");
        char url[128];
        snprintf(url, sizeof(url), "/v1/tasks/%s/content?index=%d", id,
                 cJSON_IsNumber(index) ? (int)index->valuedouble : 0);
        cJSON_AddStringToObject(a, "url", url);
    }
    cJSON_AddItemToObject(o, "artifacts", list);
}

cJSON *task_to_json(const char *id, const redisReply *hash)
{
    cJSON *o;
    const char *prio, *meta;

    if (hash == NULL || hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        return NULL;
    }
    o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "task");
    cJSON_AddStringToObject(o, "kind", task_hash_get(hash, "kind") ?: "");
    cJSON_AddStringToObject(o, "model", task_hash_get(hash, "model") ?: "");
    cJSON_AddStringToObject(o, "status", task_hash_get(hash, "status") ?: "");
    prio = task_hash_get(hash, "priority");
    cJSON_AddStringToObject(o, "priority", task_priority_name(prio ? atoi(prio) : 1));
    add_seconds(o, "created_at", task_hash_get(hash, "created"));
    add_seconds(o, "started_at", task_hash_get(hash, "started"));
    add_seconds(o, "completed_at", task_hash_get(hash, "completed"));
    add_seconds(o, "expires_at", task_hash_get(hash, "expires"));
    if (task_hash_get(hash, "progress")) {
        add_int(o, "progress", task_hash_get(hash, "progress"));
    }
    if (task_hash_get(hash, "queue_position")) {
        add_int(o, "queue_position", task_hash_get(hash, "queue_position"));
    }
    add_int(o, "attempts", task_hash_get(hash, "attempts"));
    add_int(o, "max_attempts", task_hash_get(hash, "max_attempts"));
    add_raw(o, "provider", task_hash_get(hash, "provider"));
    add_raw(o, "result", task_hash_get(hash, "result"));
    add_raw(o, "error", task_hash_get(hash, "error"));
    if (task_hash_get(hash, "last_error")) {
        add_raw(o, "last_error", task_hash_get(hash, "last_error"));
    }
    if (task_hash_get(hash, "attempt_log")) {
        add_raw(o, "attempt_log", task_hash_get(hash, "attempt_log"));
    }
    if (task_hash_get(hash, "webhook")) {
        add_raw(o, "webhook", task_hash_get(hash, "webhook"));
        cJSON_AddRawToObject(o, "webhook_attempts", task_hash_get(hash, "webhook_log") ?: "[]");
    }
    if (task_hash_get(hash, "batch")) {
        cJSON_AddStringToObject(o, "batch_id", task_hash_get(hash, "batch"));
        cJSON_AddStringToObject(o, "custom_id", task_hash_get(hash, "custom_id") ?: "");
    }
    add_raw(o, "usage", task_hash_get(hash, "usage"));
    add_raw(o, "cost", task_hash_get(hash, "cost"));
    add_artifacts(o, id, task_hash_get(hash, "artifacts"));
    meta = task_hash_get(hash, "metadata");
    if (meta) {
        cJSON_AddRawToObject(o, "metadata", meta);
    } else {
        cJSON_AddObjectToObject(o, "metadata");
    }
    return o;
}

cJSON *task_new_json(const char *id, const char *kind, const char *model, int prio,
                     int64_t created_ms, long max_attempts, const cJSON *metadata)
{
    static const char *const nulls[] = {"started_at", "completed_at", "expires_at"};
    static const char *const empty[] = {"provider", "result", "error", "usage", "cost"};
    cJSON *o = cJSON_CreateObject();

    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "task");
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "status", "queued");
    cJSON_AddStringToObject(o, "priority", task_priority_name(prio));
    cJSON_AddNumberToObject(o, "created_at", (double)(created_ms / 1000));
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        cJSON_AddNullToObject(o, nulls[i]);
    }
    cJSON_AddNumberToObject(o, "attempts", 0);
    cJSON_AddNumberToObject(o, "max_attempts", (double)max_attempts);
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        cJSON_AddNullToObject(o, empty[i]);
    }
    if (metadata) {
        cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(metadata, true));
    } else {
        cJSON_AddObjectToObject(o, "metadata");
    }
    return o;
}

/* The JSON string of s (quoted, escaped exactly as cJSON prints one) at p, which has room for
 * json_string_max(strlen(s)); returns the end. */
static char *put_json_string(char *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    *p++ = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        const char *short_esc = NULL;
        switch (ch) {
        case '"':
            short_esc = "\\\"";
            break;
        case '\\':
            short_esc = "\\\\";
            break;
        case '\b':
            short_esc = "\\b";
            break;
        case '\f':
            short_esc = "\\f";
            break;
        case '\n':
            short_esc = "\\n";
            break;
        case '\r':
            short_esc = "\\r";
            break;
        case '\t':
            short_esc = "\\t";
            break;
        default:
            break;
        }
        if (short_esc) {
            *p++ = short_esc[0];
            *p++ = short_esc[1];
        } else if (ch < 32) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    *p++ = '"';
    return p;
}

static size_t json_string_max(size_t len)
{
    return 6 * len + 2;
}

/* Copies the string literal lit to p; evaluates to the end. */
#define PUT_LIT(p, lit) ((char *)memcpy((p), (lit), sizeof(lit) - 1) + sizeof(lit) - 1)

char *task_new_text(const char *id, const char *kind, const char *model, int prio,
                    int64_t created_ms, long max_attempts, const char *metadata)
{
    const char *prio_name = task_priority_name(prio);
    const char *meta = metadata ? metadata : "{}";
    size_t meta_len = strlen(meta);
    size_t cap = 320 + json_string_max(strlen(id)) + json_string_max(strlen(kind)) +
                 json_string_max(strlen(model)) + json_string_max(strlen(prio_name)) + meta_len;
    char *out = malloc(cap);
    char *p = out;

    if (out == NULL) {
        return NULL;
    }
    p = put_json_string(PUT_LIT(p, "{\"id\":"), id);
    p = put_json_string(PUT_LIT(p, ",\"object\":\"task\",\"kind\":"), kind);
    p = put_json_string(PUT_LIT(p, ",\"model\":"), model);
    p = put_json_string(PUT_LIT(p, ",\"status\":\"queued\",\"priority\":"), prio_name);
    p += sprintf(p, ",\"created_at\":%lld", (long long)(created_ms / 1000));
    p = PUT_LIT(p, ",\"started_at\":null,\"completed_at\":null,\"expires_at\":null,"
                   "\"attempts\":0");
    p += sprintf(p, ",\"max_attempts\":%ld", max_attempts);
    p = PUT_LIT(p, ",\"provider\":null,\"result\":null,\"error\":null,\"usage\":null,"
                   "\"cost\":null,\"metadata\":");
    memcpy(p, meta, meta_len);
    p += meta_len;
    memcpy(p, "}", 2);
    return out;
}
