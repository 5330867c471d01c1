/*
 * adapters/responses_internal.h — what the responses_*.c files share, internal to adapters/ (the
 * worker, the API and the tests see only responses.h): responses_check.c (the edge's check),
 * responses.c (the response object, the calls), responses_chat.c (the translated request),
 * responses_output.c (output items, usage, a chat.completion as a response), responses_stream.c
 * (the typed event streams).
 */
#ifndef SLUICE_ADAPTER_RESPONSES_INTERNAL_H
#define SLUICE_ADAPTER_RESPONSES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "adapters/adapter.h"
#include "adapters/responses.h"
#include "core/err.h"

/* Room for an item id derived from a response id ("fc_" + the id's suffix + "_" + an index). */
#define RESPONSES_ITEM_ID_LEN 160

/* Room for a param path ("input[3].content[1].type"), as core_err's param holds it. */
#define RESPONSES_PARAM_LEN 64

/*
 * A param path below parent: "parent.key", or "parent[index]" when key is NULL. Cut to
 * RESPONSES_PARAM_LEN - 1 bytes when longer (out holds RESPONSES_PARAM_LEN bytes).
 */
void responses_param(char *out, const char *parent, const char *key, int index);

/* The include value that asks for output_text logprobs, the one a chat dialect can honour. */
#define RESPONSES_INCLUDE_LOGPROBS "message.output_text.logprobs"

/*
 * The id of an output item of response id: prefix ("msg_", "fc_", "rs_") + the id without its
 * "resp_", and "_<n>" when n >= 0 (the second and later function calls). Deterministic, so a
 * retried call and its stream name the same items. out holds RESPONSES_ITEM_ID_LEN bytes.
 */
void responses_item_id(char *out, const char *prefix, const char *id, int n);

/*
 * A function call's call_id: the one the provider gave (given, when not NULL or ""), else one
 * derived like an item id ("call_" + the id's suffix, "_<n>" for n > 0), since a response's
 * function calls need unique non-empty call ids (the next turn answers them by it).
 */
void responses_call_id(char *out, size_t cap, const char *given, const char *id, int n);

/*
 * The reasoning text of a chat message or delta: "reasoning_content" or "reasoning", where some
 * OpenAI-compatible servers (vLLM, DeepSeek) put it. NULL when none or empty. Borrowed.
 */
const char *responses_chat_reasoning(const cJSON *msg);

/*
 * Output items as the Responses API shapes them; strings copied, NULL on OOM. status is
 * "in_progress", "completed" or "incomplete".
 *   message: {"type":"message","id","status","role":"assistant","content":[parts]} with an
 *            output_text part {"type","text","annotations":[],"logprobs"} when text is not NULL
 *            (logprobs: a copy of the chat logprobs entries, [] when NULL) and a refusal part
 *            {"type":"refusal","refusal"} when refusal is not NULL.
 *   function_call: {"type","id","call_id","name","arguments","status"}, and "extra_content" (a
 *            copy of extra, when not NULL): the provider's round-trip data of a tool call (Gemini's
 *            thought signature), which the next turn's function_call item hands back.
 *   reasoning: {"type","id","summary":[],"content":[{"type":"reasoning_text","text"}],"status"}.
 */
cJSON *responses_item_message(const char *id, const char *status, const char *text,
                              const cJSON *logprobs, const char *refusal);
cJSON *responses_item_function_call(const char *id, const char *status, const char *call_id,
                                    const char *name, const char *arguments, const cJSON *extra);
cJSON *responses_item_reasoning(const char *id, const char *status, const char *text);

/*
 * Usage between the two namings. From chat: {input_tokens, input_tokens_details.cached_tokens,
 * output_tokens, output_tokens_details.reasoning_tokens, total_tokens} (details 0 when the chat
 * usage has none). To chat: {prompt_tokens, completion_tokens, total_tokens,
 * prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens}. usage
 * borrowed; NULL when it is not an object or on OOM. Caller frees.
 */
cJSON *responses_usage_from_chat(const cJSON *usage);
cJSON *responses_usage_to_chat(const cJSON *usage);

/* True when a Responses request (borrowed) lists RESPONSES_INCLUDE_LOGPROBS in include. */
bool responses_wants_logprobs(const cJSON *req);

/*
 * Puts an upstream response object (native path) in sluice's terms: id and created_at sluice's,
 * model the client's alias, and the settings only sluice holds (store, background,
 * previous_response_id, metadata) as the client's request says. Returns 0 or CORE_ENOMEM.
 */
int responses_normalize(cJSON *obj, const cJSON *req, const char *id, int64_t created_s);

/* The native path serves this call: an OpenAI deployment with POST /responses. */
bool responses_is_native(const struct adapter *ad, const struct adapter_target *t);

/*
 * The translated path's chat call for a response call: *body (caller frees, also on failure) is
 * responses_to_chat's request and chat (which borrows *body and call's target) the call to hand
 * to ad's chat hooks. Returns 0 or a negative code with err filled (param in Responses names).
 */
int responses_chat_call(const struct adapter_call *call, cJSON **body, struct adapter_call *chat,
                        struct core_err *err);

/*
 * Renames a chat field named in err->param (and quoted in its message) after the Responses
 * field it came from ("response_format" → "text.format"), so a refusal of the dialect's build
 * names what the client sent.
 */
void responses_map_param(struct core_err *err);

/*
 * The error object {code, message} of a failed response for err: err's OpenAI code when it has
 * one, else "rate_limit_exceeded" for a 429 and "server_error" otherwise. Caller frees; NULL on
 * OOM.
 */
cJSON *responses_error_json(const struct core_err *err);

#endif
