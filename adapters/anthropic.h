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
 * The field policy (dialect.h) of this dialect: every top-level field of a client's chat body is
 * honoured, translated or refused with a 400 naming it (CORE_EINVAL, param = the field), never
 * dropped. anthropic_fields in anthropic_request.c is the table of the fields handled:
 *   model, messages, max_tokens, max_completion_tokens, temperature, top_p, top_k, stop, stream,
 *   stream_options, tools, tool_choice, parallel_tool_calls, user (metadata.user_id) and
 *   response_format (below) are honoured or translated;
 *   n (only 1), logprobs and store (only false), presence_penalty and frequency_penalty (only 0)
 *   have no Anthropic meaning and are accepted only at the value that asks for nothing;
 *   everything else (seed, top_logprobs, logit_bias, metadata, service_tier, modalities, audio,
 *   prediction, web_search_options, reasoning_effort, functions, ...) is refused.
 * A null value is always accepted, as absent. Values a handled field cannot have on Anthropic are
 * refused the same way (temperature above 1, a tool type other than function, a content part
 * Anthropic does not take, response_format json with tools).
 *
 * response_format: text is the default and adds nothing. json_schema and json_object become one
 * tool {name: json_schema.name or "json_response", description, input_schema: the schema, or
 * {"type":"object"} for json_object}, forced by tool_choice {type: "tool", name}. In the
 * reply that tool's (first) input is the message content (the JSON text, unformatted; streamed:
 * its input_json_delta pieces as content deltas), it is no tool call, and stop_reason tool_use
 * reads as finish_reason stop. Client tools beside it are refused.
 *
 * max_tokens: the client's max_completion_tokens or max_tokens, else t->default_max_tokens (the
 * deployment's, else the provider's default_max_tokens), else the model's output limit from a
 * table of Claude models by name prefix, else 4096 for a model the table does not know.
 */

/* Checks input's top-level fields against the table above. Returns 0 or CORE_EINVAL. */
int anthropic_fields_check(const cJSON *input, struct core_err *err);

/*
 * Adds the Messages fields an OpenAI chat body (input, borrowed) maps to onto body: max_tokens,
 * messages and system, stop_sequences, sampling and metadata, tools and tool_choice, and the
 * response_format tool. Expects anthropic_fields_check to have passed. Returns 0, or CORE_EINVAL
 * (param naming the field) / CORE_ENOMEM with err filled.
 */
int anthropic_map_request(const cJSON *input, const struct adapter_target *t, cJSON *body,
                          struct core_err *err);

/*
 * The name of the tool that carries a JSON answer for input's response_format (json_schema or
 * json_object), borrowed from input or static; NULL when the client asked for no JSON (input may
 * be NULL). Reply and stream use it to turn that tool's input into content.
 */
const char *anthropic_format_tool(const cJSON *input);

/*
 * OpenAI's choices of a one-choice reply: [{"index": 0, key: value, "finish_reason": finish or
 * null}] with key "message" or "delta". Takes value (freed on failure). NULL on OOM.
 */
cJSON *anthropic_choices(const char *key, cJSON *value, const char *finish);

/*
 * The OpenAI finish_reason for a stop_reason (may be NULL); "stop" for one not known. format_only:
 * the only tool used was the response_format tool, whose use is the answer, so tool_use is "stop".
 */
const char *anthropic_finish_reason(const char *stop_reason, bool format_only);

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
