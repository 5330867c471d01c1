/*
 * core/task.h — the task object: names of statuses and priorities, and its JSON form.
 *
 * A task lives in Redis as a hash (fields below); every read renders the client-visible object of
 * DESIGN.md from that hash. Stored JSON fields (input, result, error, usage, provider, cost,
 * metadata) are embedded verbatim, never re-parsed.
 *
 *   tenant kind model status priority(0-2) created started completed expires (Unix ms)
 *   attempts max_attempts fence input result error last_error usage provider cost metadata
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
#define TASK_ID_LEN (5 + 26)

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
 * Renders the client-visible task object from an HGETALL reply. Caller frees. NULL on OOM or
 * when the hash is empty.
 */
cJSON *task_to_json(const char *id, const redisReply *hash);

/*
 * The object of a task just accepted (queued, nothing run yet), so the API can answer 202 without
 * reading it back. metadata is borrowed (copied in), may be NULL. Caller frees.
 */
cJSON *task_new_json(const char *id, const char *kind, const char *model, int prio,
                     int64_t created_ms, long max_attempts, const cJSON *metadata);

/*
 * The same object as task_new_json, as JSON text written directly (the accept path's answer: the
 * cJSON tree built, printed and freed for it was about a third of an accepted task's
 * instructions). metadata: the task's metadata as JSON text, NULL for none ({}). Caller frees;
 * NULL when out of memory.
 */
char *task_new_text(const char *id, const char *kind, const char *model, int prio,
                    int64_t created_ms, long max_attempts, const char *metadata);

#endif
