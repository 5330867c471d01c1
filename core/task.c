/*
 * core/task.c — the task's closed sets (names parsed once, printed once) and its one renderer.
 */
#include <float.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/artifact_ref.h"
#include "core/task.h"
#include "core/util.h"

static const char *const priority_names[] = {"interactive", "normal", "batch"};
static const char *const kind_names[TASK_KIND_COUNT] = {"chat", "embedding", "image", "video",
                                                        "response"};
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

bool task_id_valid(const char *id)
{
    return id != NULL &&
           (util_id_valid(TASK_ID_PREFIX, id) || util_id_valid(TASK_RESPONSE_ID_PREFIX, id));
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

/* ---- the view, from a hash or from a new task ------------------------------------------- */

/* A stored ms timestamp as Unix seconds, or TASK_VIEW_NONE (null) when absent or empty. */
static int64_t seconds_of(const char *ms)
{
    return ms && ms[0] ? strtoll(ms, NULL, 10) / 1000 : TASK_VIEW_NONE;
}

/*
 * A stored integer; dflt when absent. INT64_MIN reads as INT64_MIN + 1 so it is never taken for
 * TASK_VIEW_NONE: both are the same double, so the JSON (cJSON's printing of it) is the same.
 */
static int64_t int_of(const char *v, int64_t dflt)
{
    long long n;

    if (v == NULL) {
        return dflt;
    }
    n = strtoll(v, NULL, 10);
    return n == INT64_MIN ? INT64_MIN + 1 : n;
}

int task_view_from_hash(struct task_view *v, const char *id, const redisReply *hash)
{
    const char *prio, *batch;

    if (hash == NULL || hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        return -1;
    }
    prio = task_hash_get(hash, "priority");
    batch = task_hash_get(hash, "batch");
    *v = (struct task_view){
        .id = id,
        .kind = task_hash_get(hash, "kind") ?: "",
        .model = task_hash_get(hash, "model") ?: "",
        .status = task_hash_get(hash, "status") ?: "",
        .priority = task_priority_name(prio ? atoi(prio) : 1),
        .created_at = seconds_of(task_hash_get(hash, "created")),
        .started_at = seconds_of(task_hash_get(hash, "started")),
        .completed_at = seconds_of(task_hash_get(hash, "completed")),
        .expires_at = seconds_of(task_hash_get(hash, "expires")),
        .progress = int_of(task_hash_get(hash, "progress"), TASK_VIEW_NONE),
        .queue_position = int_of(task_hash_get(hash, "queue_position"), TASK_VIEW_NONE),
        .attempts = int_of(task_hash_get(hash, "attempts"), 0),
        .max_attempts = int_of(task_hash_get(hash, "max_attempts"), 0),
        .provider = task_hash_get(hash, "provider"),
        .result = task_hash_get(hash, "result"),
        .error = task_hash_get(hash, "error"),
        .usage = task_hash_get(hash, "usage"),
        .cost = task_hash_get(hash, "cost"),
        .last_error = task_hash_get(hash, "last_error"),
        .attempt_log = task_hash_get(hash, "attempt_log"),
        .webhook = task_hash_get(hash, "webhook"),
        .batch_id = batch,
        .custom_id = batch ? task_hash_get(hash, "custom_id") : NULL,
        .artifacts = task_hash_get(hash, "artifacts"),
        .metadata = task_hash_get(hash, "metadata"),
        .queue_position_now = TASK_VIEW_NONE,
        .eta_seconds = TASK_VIEW_NONE,
        .cached = task_hash_get(hash, "cached") != NULL,
    };
    if (v->webhook != NULL) {
        v->webhook_attempts = task_hash_get(hash, "webhook_log") ?: "[]";
    }
    return 0;
}

void task_view_new(struct task_view *v, const char *id, const char *kind, const char *model,
                   int prio, int64_t created_ms, long max_attempts, const char *metadata)
{
    *v = (struct task_view){
        .id = id,
        .kind = kind,
        .model = model,
        .status = status_names[TASK_QUEUED],
        .priority = task_priority_name(prio),
        .created_at = created_ms / 1000,
        .started_at = TASK_VIEW_NONE,
        .completed_at = TASK_VIEW_NONE,
        .expires_at = TASK_VIEW_NONE,
        .progress = TASK_VIEW_NONE,
        .queue_position = TASK_VIEW_NONE,
        .attempts = 0,
        .max_attempts = max_attempts,
        .metadata = metadata,
        .queue_position_now = TASK_VIEW_NONE,
        .eta_seconds = TASK_VIEW_NONE,
    };
}

/* ---- the renderer ------------------------------------------------------------------------- */

/*
 * Room for everything of a task object but its strings and stored texts: every key with its
 * quotes, colon and comma (368 bytes), the ten numbers (at most 23 bytes each, as
 * "-9.2233720368547758e+18"), a null for each of the eight stored texts that may be empty,
 * ",\"cached\":true" (14) and the closing brace: 646 at most.
 */
#define TASK_RENDER_FIXED 768

/* The JSON string of s (quoted, escaped exactly as cJSON prints one: the two-character escapes,
 * other control characters as \u00xx, every other byte as it is) at p, which has room for
 * json_string_max(s); returns the end. */
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

static size_t json_string_max(const char *s)
{
    return 6 * strlen(s) + 2;
}

/*
 * v as cJSON prints the number (double)v: an int's range in decimal; beyond it "%1.15g", or
 * "%1.17g" when that does not read back as the same double (cJSON's print_number and its
 * compare_double). Writes at most 23 bytes at p; returns the end.
 */
static char *put_number(char *p, int64_t v)
{
    char tmp[32];
    size_t n = 0;

    if (v >= INT_MIN && v <= INT_MAX) {
        uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        do {
            tmp[n++] = (char)('0' + m % 10);
            m /= 10;
        } while (m > 0);
        if (v < 0) {
            *p++ = '-';
        }
        while (n > 0) {
            *p++ = tmp[--n];
        }
        return p;
    }
    double d = (double)v;
    snprintf(tmp, sizeof(tmp), "%1.15g", d);
    double back = strtod(tmp, NULL);
    double ad = d < 0 ? -d : d, ab = back < 0 ? -back : back;
    double diff = back - d < 0 ? d - back : back - d;
    if (diff > (ad > ab ? ad : ab) * DBL_EPSILON) {
        snprintf(tmp, sizeof(tmp), "%1.17g", d);
    }
    n = strlen(tmp);
    memcpy(p, tmp, n);
    return p + n;
}

/* A number, or null for TASK_VIEW_NONE. */
static char *put_number_or_null(char *p, int64_t v)
{
    return v == TASK_VIEW_NONE ? (char *)memcpy(p, "null", 4) + 4 : put_number(p, v);
}

/* A stored JSON text verbatim (NULL: nothing). */
static char *put_text(char *p, const char *json)
{
    size_t n = json ? strlen(json) : 0;

    memcpy(p, json ? json : "", n);
    return p + n;
}

/* A stored JSON text verbatim, or null when it is NULL or empty. */
static char *put_text_or_null(char *p, const char *json)
{
    return json && json[0] ? put_text(p, json) : (char *)memcpy(p, "null", 4) + 4;
}

static size_t text_len(const char *s)
{
    return s ? strlen(s) : 0;
}

cJSON *task_artifacts_json(const char *id, const char *json)
{
    cJSON *list = json ? cJSON_Parse(json) : NULL;
    cJSON *a;

    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return NULL;
    }
    cJSON_ArrayForEach(a, list)
    {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(a, "index");
        char url[128];
        snprintf(url, sizeof(url), "/v1/tasks/%s/content?index=%d", id,
                 cJSON_IsNumber(index) ? (int)index->valuedouble : 0);
        cJSON_AddStringToObject(a, "url", url);
        /* whose files they are is sluice's business: the url leads to them */
        cJSON_DeleteItemFromObjectCaseSensitive(a, ARTIFACT_REF_BLOB_TASK);
    }
    return list;
}

/* task_artifacts_json as text (NULL: not shown). Caller frees. cJSON here: a media task's few
 * artifacts, never the accept path. */
static char *artifacts_text(const char *id, const char *json)
{
    cJSON *list = task_artifacts_json(id, json);
    char *text = list ? cJSON_PrintUnformatted(list) : NULL;

    cJSON_Delete(list);
    return text;
}

/* Copies the string literal lit to p; evaluates to the end. */
#define PUT_LIT(p, lit) ((char *)memcpy((p), (lit), sizeof(lit) - 1) + sizeof(lit) - 1)

char *task_view_render(const struct task_view *v)
{
    char *arts = v->artifacts ? artifacts_text(v->id, v->artifacts) : NULL;
    const char *meta = v->metadata ? v->metadata : "{}";
    size_t cap = TASK_RENDER_FIXED + json_string_max(v->id) + json_string_max(v->kind) +
                 json_string_max(v->model) + json_string_max(v->status) +
                 json_string_max(v->priority) + text_len(v->provider) + text_len(v->result) +
                 text_len(v->error) + text_len(v->usage) + text_len(v->cost) +
                 text_len(v->last_error) + text_len(v->attempt_log) + text_len(v->webhook) +
                 text_len(v->webhook_attempts) + text_len(arts) + strlen(meta);
    char *out, *p;

    if (v->batch_id) {
        cap += json_string_max(v->batch_id) + json_string_max(v->custom_id ? v->custom_id : "");
    }
    if ((out = p = malloc(cap)) == NULL) {
        goto out;
    }
    p = put_json_string(PUT_LIT(p, "{\"id\":"), v->id);
    p = put_json_string(PUT_LIT(p, ",\"object\":\"task\",\"kind\":"), v->kind);
    p = put_json_string(PUT_LIT(p, ",\"model\":"), v->model);
    p = put_json_string(PUT_LIT(p, ",\"status\":"), v->status);
    p = put_json_string(PUT_LIT(p, ",\"priority\":"), v->priority);
    p = put_number_or_null(PUT_LIT(p, ",\"created_at\":"), v->created_at);
    p = put_number_or_null(PUT_LIT(p, ",\"started_at\":"), v->started_at);
    p = put_number_or_null(PUT_LIT(p, ",\"completed_at\":"), v->completed_at);
    p = put_number_or_null(PUT_LIT(p, ",\"expires_at\":"), v->expires_at);
    if (v->progress != TASK_VIEW_NONE) {
        p = put_number(PUT_LIT(p, ",\"progress\":"), v->progress);
    }
    if (v->queue_position != TASK_VIEW_NONE) {
        p = put_number(PUT_LIT(p, ",\"queue_position\":"), v->queue_position);
    }
    p = put_number(PUT_LIT(p, ",\"attempts\":"), v->attempts);
    p = put_number(PUT_LIT(p, ",\"max_attempts\":"), v->max_attempts);
    p = put_text_or_null(PUT_LIT(p, ",\"provider\":"), v->provider);
    p = put_text_or_null(PUT_LIT(p, ",\"result\":"), v->result);
    p = put_text_or_null(PUT_LIT(p, ",\"error\":"), v->error);
    if (v->last_error) {
        p = put_text_or_null(PUT_LIT(p, ",\"last_error\":"), v->last_error);
    }
    if (v->attempt_log) {
        p = put_text_or_null(PUT_LIT(p, ",\"attempt_log\":"), v->attempt_log);
    }
    if (v->webhook) {
        p = put_text_or_null(PUT_LIT(p, ",\"webhook\":"), v->webhook);
    }
    if (v->webhook_attempts) {
        p = put_text(PUT_LIT(p, ",\"webhook_attempts\":"), v->webhook_attempts);
    }
    if (v->batch_id) {
        p = put_json_string(PUT_LIT(p, ",\"batch_id\":"), v->batch_id);
        p = put_json_string(PUT_LIT(p, ",\"custom_id\":"), v->custom_id ? v->custom_id : "");
    }
    p = put_text_or_null(PUT_LIT(p, ",\"usage\":"), v->usage);
    p = put_text_or_null(PUT_LIT(p, ",\"cost\":"), v->cost);
    if (v->cached) {
        p = PUT_LIT(p, ",\"cached\":true");
    }
    if (arts) {
        p = put_text(PUT_LIT(p, ",\"artifacts\":"), arts);
    }
    p = put_text(PUT_LIT(p, ",\"metadata\":"), meta);
    if (v->queue_position_now != TASK_VIEW_NONE) {
        p = put_number(PUT_LIT(p, ",\"queue_position\":"), v->queue_position_now);
    }
    if (v->eta_seconds != TASK_VIEW_NONE) {
        p = put_number(PUT_LIT(p, ",\"eta_seconds\":"), v->eta_seconds);
    }
    memcpy(p, "}", 2);
out:
    cJSON_free(arts);
    return out;
}

char *task_render_hash(const char *id, const redisReply *hash)
{
    struct task_view v;

    return task_view_from_hash(&v, id, hash) == 0 ? task_view_render(&v) : NULL;
}

char *task_new_text(const char *id, const char *kind, const char *model, int prio,
                    int64_t created_ms, long max_attempts, const char *metadata)
{
    struct task_view v;

    task_view_new(&v, id, kind, model, prio, created_ms, max_attempts, metadata);
    return task_view_render(&v);
}
