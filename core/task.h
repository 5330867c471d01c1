/*
 * core/task.h — the task object: names of statuses and priorities, and its JSON form.
 *
 * A task lives in Redis as a hash (fields below); every read renders the client-visible object of
 * DESIGN.md from that hash, and the API's answer to a task just accepted renders the same object
 * from the values it submitted: one renderer (struct task_view) writes both. Stored JSON fields
 * (result, error, usage, provider, cost, metadata ...) are embedded verbatim, never re-parsed.
 *
 *   tenant kind model status priority(0-2) created started completed expires (Unix ms)
 *   attempts max_attempts fence input result error last_error usage provider cost metadata
 *   rstatus ("incomplete": a completed response task whose response stopped short; it names
 *   the task's webhook event response.incomplete)
 *   cached ("1": completed from the response cache, api/cache.c)
 */
#ifndef SLUICE_CORE_TASK_H
#define SLUICE_CORE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <hiredis/hiredis.h>

/* The closed sets of a task, each parsed once at the edge and printed once (the names below are
 * the wire and the Redis form). */
enum task_priority { TASK_PRIO_INTERACTIVE = 0, TASK_PRIO_NORMAL = 1, TASK_PRIO_BATCH = 2 };
enum task_kind {
    TASK_KIND_CHAT,
    TASK_KIND_EMBEDDING,
    TASK_KIND_IMAGE,
    TASK_KIND_VIDEO,
    TASK_KIND_RESPONSE, /* a Responses API request, served by a chat alias */
    TASK_KIND_COUNT
};
enum task_status {
    TASK_QUEUED,
    TASK_IN_PROGRESS,
    TASK_CANCELLING,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_CANCELLED,
    TASK_EXPIRED,
    TASK_STATUS_COUNT
};

#define TASK_ID_PREFIX "task_"
/* A response task's id (the Responses API names its objects "resp_…"; adapters/responses.h's
 * RESPONSES_ID_PREFIX is the same text). */
#define TASK_RESPONSE_ID_PREFIX "resp_"
#define TASK_ID_LEN (5 + 26) /* either prefix (5 characters) + 26 random base32 characters */

/*
 * True when id is a task's id: TASK_ID_PREFIX or TASK_RESPONSE_ID_PREFIX, then 26 random base32
 * characters (util_id_valid's alphabet). What every check of a task id outside the API's routes
 * uses (blob folders, the artifact sweep), so a response task is a task everywhere. NULL: false.
 */
bool task_id_valid(const char *id);

/* "interactive" → 0 …; -1 for an unknown name (or NULL). */
int task_priority_parse(const char *name);
/* The name of prio ("normal" for a value out of range). Static. */
const char *task_priority_name(int prio);

/* "chat" → TASK_KIND_CHAT …; -1 for an unknown name (or NULL). */
int task_kind_parse(const char *name);
/* The name of kind ("" for a value out of range). Static. */
const char *task_kind_name(enum task_kind kind);

/* "queued" → TASK_QUEUED …; -1 for an unknown name (or NULL). */
int task_status_parse(const char *name);
/* The name of status ("" for a value out of range). Static. */
const char *task_status_name(enum task_status status);
/* True for a status no transition leaves: completed, failed, cancelled, expired. */
bool task_status_is_terminal(enum task_status status);

/* task_status_is_terminal of a status name (false for NULL or an unknown name). */
bool task_status_terminal(const char *status);

/* True for a status name a client may filter on. */
bool task_status_known(const char *status);

/*
 * The value of field in an HGETALL reply (array of field, value pairs); NULL when absent.
 * Borrowed from the reply.
 */
const char *task_hash_get(const redisReply *hash, const char *field);

/*
 * The client-visible task object (DESIGN.md), field by field, before it is written as JSON: the
 * one renderer (task_view_render) writes every form of it, whether the fields come from a task's
 * hash (task_view_from_hash) or from a task just accepted (task_view_new). A caller that shows a
 * task differently (an images result rendered, the live queue position of GET /v1/tasks/{id})
 * fills a view, changes those fields and renders it. Every string is borrowed: the view is only
 * valid while what it was filled from is.
 *
 * The keys, in the order they are written (the order clients see):
 *   id object kind model status priority created_at started_at completed_at expires_at
 *   [progress] [queue_position] attempts max_attempts provider result error [last_error]
 *   [attempt_log] [webhook] [webhook_attempts] [batch_id custom_id] usage cost [artifacts]
 *   metadata [queue_position] [eta_seconds]
 */
#define TASK_VIEW_NONE INT64_MIN /* a number shown as null (times) or not shown (the others) */

struct task_view {
    const char *id;
    const char *kind;
    const char *model;
    const char *status;
    const char *priority; /* the name */
    /* Unix seconds; TASK_VIEW_NONE: null */
    int64_t created_at;
    int64_t started_at;
    int64_t completed_at;
    int64_t expires_at;
    /* TASK_VIEW_NONE: not shown */
    int64_t progress;
    int64_t queue_position;
    /* always shown */
    int64_t attempts;
    int64_t max_attempts;
    /* Stored JSON texts, written verbatim. NULL or "": null. */
    const char *provider;
    const char *result;
    const char *error;
    const char *usage;
    const char *cost;
    /* Stored JSON texts, written verbatim; NULL: not shown, "": null. */
    const char *last_error;
    const char *attempt_log;
    const char *webhook;
    /* JSON text written verbatim (even ""); NULL: not shown. */
    const char *webhook_attempts;
    /* A string; NULL: neither it nor custom_id is shown (custom_id NULL: ""). */
    const char *batch_id;
    const char *custom_id;
    /* The stored artifact list; shown, each item with its content URL added, when it is a JSON
     * array (NULL or anything else: not shown). */
    const char *artifacts;
    /* JSON text written verbatim; NULL: {}. */
    const char *metadata;
    /* What GET /v1/tasks/{id} adds after metadata (TASK_VIEW_NONE: not shown). */
    int64_t queue_position_now;
    int64_t eta_seconds;
    /* answered from the response cache (the hash's `cached`): "cached": true after cost */
    bool cached;
};

/*
 * Fills v from an HGETALL reply of task id (both borrowed for as long as v is used). Returns 0,
 * or -1 when the hash is empty or not a hash (no such task; v is then unusable).
 */
int task_view_from_hash(struct task_view *v, const char *id, const redisReply *hash);

/*
 * Fills v for a task just accepted (queued, nothing run yet), so the API answers 202 without
 * reading it back. id, kind, model and metadata (JSON text, NULL: {}) are borrowed for as long
 * as v is used.
 */
void task_view_new(struct task_view *v, const char *id, const char *kind, const char *model,
                   int prio, int64_t created_ms, long max_attempts, const char *metadata);

/*
 * The JSON text of v, written directly (no cJSON tree: on the accept path the tree built,
 * printed and freed for it was about a third of an accepted task's instructions). Strings are
 * escaped exactly as cJSON prints them and numbers printed as cJSON prints them, so the text is
 * byte for byte what a cJSON tree of the same object prints. Caller frees; NULL when out of
 * memory.
 */
char *task_view_render(const struct task_view *v);

/*
 * A stored artifact list (JSON text, borrowed) of task id with each item's content URL added:
 * {index, content_type, bytes, url}; the url is sluice's (GET /v1/tasks/{id}/content?index=i),
 * not the provider's, so it does not expire with the provider's. NULL when json is not a JSON
 * array, or on OOM. Caller frees.
 */
cJSON *task_artifacts_json(const char *id, const char *json);

/* The task object of an HGETALL reply as JSON text. Caller frees; NULL on OOM or when the hash is
 * empty. */
char *task_render_hash(const char *id, const redisReply *hash);

/*
 * The object of a task just accepted, as JSON text (task_view_new, then task_view_render; the
 * accept path's answer). metadata: the task's metadata as JSON text, NULL for none ({}). Caller
 * frees; NULL when out of memory.
 */
char *task_new_text(const char *id, const char *kind, const char *model, int prio,
                    int64_t created_ms, long max_attempts, const char *metadata);

#endif
