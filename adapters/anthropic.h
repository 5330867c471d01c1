/*
 * adapters/anthropic.h — internal to the anthropic dialect, whose hooks are split by concept:
 * anthropic.c (the vtable, HTTP requests and replies, errors, usage), anthropic_request.c (an
 * OpenAI chat body as a Messages body) and anthropic_stream.c (Anthropic's stream events as OpenAI
 * chunks).
 */
#ifndef SLUICE_ADAPTER_ANTHROPIC_H
#define SLUICE_ADAPTER_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "adapters/adapter.h"
#include "core/err.h"

/* The usage fields of a message, in the order they are read from usage objects. */
enum {
    ANTHROPIC_USAGE_INPUT,
    ANTHROPIC_USAGE_CACHE_CREATION,
    ANTHROPIC_USAGE_CACHE_READ,
    ANTHROPIC_USAGE_OUTPUT,
    ANTHROPIC_USAGE_N
};

/*
 * Adds the Messages fields an OpenAI chat body (input, borrowed) maps to onto body: max_tokens
 * (from the input or t's default), messages and system, stop_sequences, sampling and metadata,
 * tools and tool_choice. Returns 0, or CORE_EINVAL / CORE_EUNPROCESSABLE / CORE_ENOMEM with err
 * filled.
 */
int anthropic_map_request(const cJSON *input, const struct adapter_target *t, cJSON *body,
                          struct core_err *err);

/*
 * OpenAI's choices of a one-choice reply: [{"index": 0, key: value, "finish_reason": finish or
 * null}] with key "message" or "delta". Takes value (freed on failure). NULL on OOM.
 */
cJSON *anthropic_choices(const char *key, cJSON *value, const char *finish);

/* The OpenAI finish_reason for a stop_reason (may be NULL); "stop" for one not known. */
const char *anthropic_finish_reason(const char *stop_reason);

/* Overwrites the counts that usage (an Anthropic usage object, may be NULL) carries. */
void anthropic_usage_merge(double counts[ANTHROPIC_USAGE_N], const cJSON *usage);

/* OpenAI usage from Anthropic's counts. Caller frees; NULL on OOM. */
cJSON *anthropic_openai_usage(const double counts[ANTHROPIC_USAGE_N]);

/*
 * Fills err for an error that came inside a 200 ({"type":"error","error":{...}}; root borrowed),
 * classified as the HTTP status its type stands for. Returns the negative code it set.
 */
int anthropic_inline_error(const cJSON *root, struct core_err *err);

/* The streaming hooks of adapter_anthropic (adapter.h's contracts). */
void *anthropic_stream_new(const struct adapter_call *call);
int anthropic_stream_event(void *state, const char *event, const char *data, size_t len,
                           cJSON *chunks, bool *done, struct core_err *err);
void anthropic_stream_free(void *state);

#endif
