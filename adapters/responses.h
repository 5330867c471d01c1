/*
 * adapters/responses.h — OpenAI's Responses API (POST /v1/responses) over every chat dialect.
 *
 * A response is a task of kind "response" whose input is the client's Responses request, with
 * `previous_response_id` already expanded by the API into the full `input` item list (so no call
 * ever depends on a provider's stored state). This file is the one place that knows the
 * Responses shapes; like every adapter it is pure (no I/O, no clock: times are arguments).
 *
 * Two paths, chosen per call by the deployment (adapter_target.responses_native):
 *   native      an OpenAI deployment is called on its own POST {base}/responses (the request
 *               with the upstream model, `store: false`, without `background` and
 *               `previous_response_id`), and its answer (or its typed event stream) is
 *               normalized: sluice's response id, the request's settings echoed.
 *   translated  every other chat dialect (Anthropic, Gemini, an OpenAI-compatible server that has
 *               only chat completions): the request becomes a chat completions request
 *               (responses_to_chat), the dialect's own chat hooks build and parse the call, and
 *               the chat.completion (or the stream of chat chunks) becomes the response object
 *               (or its typed events).
 * The worker calls responses_build_request / responses_parse_response / the responses_stream_*
 * functions for a response task instead of the dialect's hooks; the golden tests call the same
 * functions, so what they check is what runs.
 *
 * Field policy (as for chat, README's table): every request field is honoured, translated, or
 * refused with a 400 naming it — never dropped. responses_check is the edge's check (the API calls
 * it before a task exists); responses_build_request refuses what the chosen dialect cannot do.
 * What each field becomes on the translated path is the table in responses_chat.c; a dialect's
 * own refusal of a chat field is reported under the Responses field it came from
 * ("response_format" → "text.format", "reasoning_effort" → "reasoning.effort").
 *
 * Files: responses_check.c (the edge's check), responses.c (the object, the calls),
 * responses_chat.c (request → chat), responses_output.c (output items, usage, chat → response),
 * responses_stream.c (the event streams); responses_internal.h is what they share.
 */
#ifndef SLUICE_ADAPTER_RESPONSES_H
#define SLUICE_ADAPTER_RESPONSES_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "adapters/adapter.h"
#include "core/err.h"

#define RESPONSES_ID_PREFIX "resp_"

/* What a response is, besides its output: the status and why it stopped short. */
enum responses_status {
    RESPONSES_QUEUED,
    RESPONSES_IN_PROGRESS,
    RESPONSES_COMPLETED,
    RESPONSES_FAILED,
    RESPONSES_CANCELLED,
    RESPONSES_INCOMPLETE,
};

/* The status's wire name ("in_progress"). Static. */
const char *responses_status_name(enum responses_status status);

/*
 * Checks a client's Responses request body (borrowed) at the edge: types and ranges of every
 * known field (null counts as absent), input items (messages, function_call,
 * function_call_output, reasoning; other item types such as item_reference refused), function
 * tools only (built-in tools refused on every path, the native one too: 400 with param "tools"
 * and the tool's type in the message), unknown fields refused (400 naming the field),
 * `background: true` with `store: false` refused. `webhook` (sluice's extension) is accepted as
 * an object: the API checks and keeps it, no provider sees it. 0, or CORE_EINVAL with err's
 * param naming the field (a path such as "input[2].content[0].type" where it helps).
 */
int responses_check(const cJSON *req, struct core_err *err);

/*
 * The response object for a request (borrowed) in a state that has no output yet or an error:
 * id, object "response", created_at (Unix s), status, error (NULL: null; borrowed, copied in:
 * {code, message}), incomplete_details null, output [], usage null, and the request's settings
 * echoed (model as the client named it, instructions, tools, tool_choice, parallel_tool_calls,
 * text, max_output_tokens, temperature, top_p, reasoning, metadata, store, previous_response_id,
 * truncation, service_tier, background). What GET /v1/responses/{id} shows while the task is
 * queued, running, failed or cancelled. Caller frees; NULL on OOM.
 */
cJSON *responses_object(const cJSON *req, const char *id, int64_t created_s,
                        enum responses_status status, const cJSON *error);

/*
 * The chat completions request that asks a chat dialect for the same thing (translated path):
 * instructions → a system message; input items → messages (input_text/input_image/input_file
 * parts → text/image_url/file parts, function_call → an assistant tool call with its
 * extra_content, function_call_output → a tool message, reasoning items dropped from what is
 * sent, as OpenAI's own chat path does); tools → function tools; tool_choice;
 * parallel_tool_calls; text.format → response_format; text.verbosity → verbosity;
 * max_output_tokens → max_completion_tokens; temperature; top_p; top_logprobs; reasoning.effort
 * → reasoning_effort; include message.output_text.logprobs → logprobs; user, safety_identifier,
 * prompt_cache_key as they are; stream (with stream_options.include_usage). metadata, store,
 * background, previous_response_id and webhook are sluice's and not sent. The model is the
 * request's (the dialect replaces it). What the chat form cannot carry is refused (CORE_EINVAL
 * naming the field): reasoning.summary, truncation "auto", service_tier other than auto/default,
 * other include values, stream_options.include_obfuscation true, images and files by file_id or
 * file_url. *out: caller frees.
 */
int responses_to_chat(const cJSON *req, cJSON **out, struct core_err *err);

/*
 * The response object made from a chat.completion (translated path; completion borrowed):
 * output items (a reasoning item with a reasoning_text part when the message carries reasoning
 * text — reasoning_content or reasoning, as OpenAI-compatible servers send it; the message with
 * an output_text part (and a refusal part for a refusal) unless it has only tool calls; a
 * function_call item per tool call, with the tool call's extra_content), status completed — or
 * incomplete with incomplete_details.reason "max_output_tokens" for finish_reason "length",
 * "content_filter" for "content_filter" — and usage in the Responses names (input_tokens,
 * output_tokens, total_tokens, input_tokens_details.cached_tokens,
 * output_tokens_details.reasoning_tokens). Item ids derive from id ("msg_…", "fc_…" and "fc_…_1"
 * on, "rs_…"), and so does a call_id the provider did not give ("call_…"). *out: caller frees.
 */
int responses_from_chat(const cJSON *req, const cJSON *completion, const char *id,
                        int64_t created_s, cJSON **out, struct core_err *err);

/*
 * The upstream request of a response task's call: native (call->target->responses_native and
 * the dialect is OpenAI's) or translated through ad's chat hooks. call->op is
 * ADAPTER_OP_RESPONSE and call->input the stored Responses request; call->stream asks for the
 * stream. Same contract as adapter.build_request.
 */
int responses_build_request(const struct adapter *ad, const struct adapter_call *call,
                            struct adapter_request *out, struct core_err *err);

/*
 * Parses the reply to responses_build_request's request into the response object (out->result,
 * normalized: id, created_s, the request's settings echoed; out->usage in the chat usage names
 * the rest of sluice (cost, token reconciliation) reads: prompt_tokens, completion_tokens,
 * total_tokens). Same contract as adapter.parse_response.
 */
int responses_parse_response(const struct adapter *ad, const struct adapter_call *call,
                             const char *id, int64_t created_s, const struct adapter_response *resp,
                             struct adapter_result *out, struct core_err *err);

/*
 * A response task's stream: the provider's server-sent events in (native: OpenAI's typed
 * events; translated: the dialect's own, through ad's stream hooks), OpenAI's typed Responses
 * events out, each {"type", "sequence_number", ...} with sequence numbers from 0 and increasing:
 * response.created, response.in_progress, response.output_item.added,
 * response.content_part.added, response.output_text.delta / .done, response.content_part.done,
 * response.function_call_arguments.delta / .done, response.output_item.done, and at the end
 * response.completed (or response.incomplete / response.failed) carrying the final response
 * object, which responses_stream_result also hands over for the task's result.
 */
struct responses_stream;

/* NULL on OOM (or when ad cannot stream: the caller then makes a plain call). call borrowed for
 * the stream's life; id copied. */
struct responses_stream *responses_stream_new(const struct adapter *ad,
                                              const struct adapter_call *call, const char *id,
                                              int64_t created_s);

/*
 * The first events (response.created, response.in_progress), appended to events (a cJSON array),
 * before any upstream byte. 0 or CORE_ENOMEM.
 */
int responses_stream_start(struct responses_stream *s, cJSON *events);

/*
 * One server-sent event of the provider's stream (as adapter.stream_event takes it); appends the
 * Responses events it makes to events (responses_stream_start's first, when it was not called),
 * sets *done when the stream has ended (then the closing events are appended too; later events
 * append nothing). 0, or a negative code with err filled (the provider sent an error event or
 * something unreadable; not retryable, as for chat streams: events may have gone out).
 */
int responses_stream_event(struct responses_stream *s, const char *event, const char *data,
                           size_t len, cJSON *events, bool *done, struct core_err *err);

/*
 * The closing events of a stream that failed (response.failed, its response's error {code,
 * message}: err's OpenAI code, else rate_limit_exceeded for a 429, else server_error) appended to
 * events. 0 or CORE_ENOMEM.
 */
int responses_stream_fail(struct responses_stream *s, const struct core_err *err, cJSON *events);

/*
 * After *done: the final response object (out->result) and usage (out->usage, chat names, as
 * responses_parse_response), outcome DONE. 0, CORE_EINVAL before the stream ended, or
 * CORE_ENOMEM.
 */
int responses_stream_result(struct responses_stream *s, struct adapter_result *out);

/* NULL is a no-op. */
void responses_stream_free(struct responses_stream *s);

#endif
