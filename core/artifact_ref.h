/*
 * core/artifact_ref.h — an image task's stored result refers to its kept artifacts; the api
 * renders the references for each answer. The contract between the worker, which writes the
 * stored form, and the api, which reads it.
 *
 * The worker keeps every image's bytes in the blob directory (core/blobs.h), then stores the
 * result with each data item's "url" and "b64_json" replaced by {"artifact": index} and, as the
 * object's first member, the form the client is answered in:
 *
 *   {"sluice_response_format":"url","created":1700000000,
 *    "data":[{"artifact":0,"revised_prompt":"a cat"}],"usage":{"images":1}}
 *
 * So nothing in Redis points at a provider's URL (which expires and may not be reachable by the
 * client) or holds a signed URL of ours (which expires too, and names the host the client used);
 * and an image's base64 is neither in Redis next to its blob nor in the message that answers a
 * waiting request. Because the marker is the first member, the api tells a stored image result
 * from any other result (a chat completion on the hot path) by its first bytes, without parsing.
 */
#ifndef SLUICE_CORE_ARTIFACT_REF_H
#define SLUICE_CORE_ARTIFACT_REF_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "core/blobs.h" /* artifact_blob_path, artifact_blob_remove: the blob layout */

/* How a client gets an image: OpenAI's response_format values. */
enum artifact_form { ARTIFACT_FORM_URL = 0, ARTIFACT_FORM_B64_JSON };

#define ARTIFACT_REF_KEY "sluice_response_format" /* the stored result's first member */
#define ARTIFACT_REF_ITEM "artifact"              /* a data item's reference: the index */
#define ARTIFACT_REF_MAX 128                      /* references one result may hold */
/*
 * An answer from the response cache shows the files of the task that made it: its stored result
 * names that task after the marker ("sluice_artifact_task": "<id>"), and each of its artifacts
 * as ARTIFACT_REF_BLOB_TASK (core/lua/prelude.lua cache_owned). Readers take the files from there.
 */
#define ARTIFACT_REF_OWNER "sluice_artifact_task"
#define ARTIFACT_REF_BLOB_TASK "blob_task"
#define ARTIFACT_REF_OWNER_MAX 64 /* bytes of an owner's id, with its NUL */

/* "url" → ARTIFACT_FORM_URL, "b64_json" → ARTIFACT_FORM_B64_JSON; -1 for anything else. */
int artifact_form_parse(const char *name);

/* The response_format value of a form ("url", "b64_json"). */
const char *artifact_form_name(enum artifact_form form);

/*
 * The form a client's image request (input, borrowed) asks for: its response_format; when it
 * names none (absent or null), the form the provider answered in — b64_json when every image came
 * inline (provider_inline: gpt-image models always answer so, and their clients read b64_json),
 * url otherwise. Returns 0 with *out set, or -1 (and *out = url) when response_format is given
 * but is not "url" or "b64_json".
 */
int artifact_form_for(const cJSON *input, bool provider_inline, enum artifact_form *out);

/*
 * Rewrites result, an OpenAI images response (modified in place; still the caller's), into the
 * stored form: the marker first, the first n data items' "url" and "b64_json" replaced by
 * {"artifact": i}, and "url" and "b64_json" dropped from any further item (they have no kept
 * bytes behind them). Returns 0, CORE_EINVAL when result is not an object with a data array or n
 * passes ARTIFACT_REF_MAX, or CORE_ENOMEM (result is then partly rewritten).
 */
int artifact_ref_store(cJSON *result, enum artifact_form form, size_t n);

/* True when text (len bytes, need not be NUL-terminated) begins like a stored result. */
bool artifact_ref_is(const char *text, size_t len);

/*
 * Reads a stored result of len bytes: *form, and *out (caller frees) the result without its
 * marker (nor its owner), data items still holding {"artifact": i}. owner (may be NULL; cap
 * ARTIFACT_REF_OWNER_MAX bytes) gets the id of the task whose files the result shows when that
 * is another task's (a cached answer), else "". Returns 0, or -1 when text is not a stored result
 * (bad JSON, no marker, an unknown form).
 */
int artifact_ref_load(const char *text, size_t len, enum artifact_form *form, cJSON **out,
                      char *owner);

/* The task whose files artifact item (one of a task's artifacts, borrowed) are: its
 * ARTIFACT_REF_BLOB_TASK when it has a valid one, else task_id. Borrowed from either. */
const char *artifact_ref_blob_task(const cJSON *item, const char *task_id);

/*
 * A stored result (text, NUL-terminated) as an images response whose items name the task's
 * bearer-authenticated content URL, "<base>/v1/tasks/<id>/content?index=<i>" (base may be "" for
 * a path), for answers that are not made to a request (a webhook body). Caller frees; NULL when
 * text is not a stored result or on OOM.
 */
cJSON *artifact_ref_content_urls(const char *text, const char *base, const char *id);

/* The artifact index a data item refers to, or -1 when it refers to none. */
long artifact_ref_index(const cJSON *item);

#endif
