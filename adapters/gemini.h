/*
 * adapters/gemini.h — internal to the gemini dialect, split by concept: gemini.c (the vtable, the
 * HTTP request, replies and streams, errors and usage), gemini_request.c (an OpenAI chat body
 * as a GenerateContentRequest) and gemini_video.c (video tasks on Veo's long-running operations).
 *
 * The field policy (dialect.h): every top-level field of a client's chat body is honoured,
 * translated or refused with a 400 naming it. gemini_request.c's gemini_fields table lists the
 * fields this dialect handles, each with its translation; any field not listed is refused, and
 * so is a listed field at a value it cannot honour (parallel_tool_calls false, store true). A
 * translated field whose value Gemini cannot take (n past 8, top_logprobs past 20, a stop that
 * is not strings) is refused the same way, before any provider sees the request.
 */
#ifndef SLUICE_ADAPTER_GEMINI_H
#define SLUICE_ADAPTER_GEMINI_H

#include <stdbool.h>

#include <cJSON.h>

#include "adapters/adapter.h"
#include "core/err.h"

/* Gemini's candidateCount is 1-8: n past it is refused, a streamed candidate past it too. */
#define GEMINI_MAX_CANDIDATES 8
/* Gemini's generationConfig.logprobs (OpenAI's top_logprobs) is 0-20. */
#define GEMINI_MAX_TOP_LOGPROBS 20

/*
 * Checks the top-level fields of an OpenAI chat body (input, borrowed) against the dialect's
 * table. Returns 0, or CORE_EINVAL with err naming the first field refused.
 */
int gemini_check_fields(const cJSON *input, struct core_err *err);

/*
 * Adds what an OpenAI chat body (input, borrowed) maps to onto body: contents and
 * systemInstruction, generationConfig, tools and toolConfig. Returns 0, or CORE_EINVAL (a client
 * request Gemini cannot take, err->param naming the field) / CORE_ENOMEM with err filled.
 */
int gemini_map_request(const cJSON *input, cJSON *body, struct core_err *err);

/* Fills err for an out-of-memory failure in this dialect. Returns CORE_ENOMEM. */
int gemini_oom(struct core_err *err);

/*
 * The "text" members of an array of parts joined (Gemini parts or OpenAI text parts), leaving out
 * Gemini's thought summaries ("thought": true). *any tells whether there was a text part at all.
 * Caller frees; NULL on OOM.
 */
char *gemini_text(const cJSON *parts, bool *any);

/*
 * Fills err from a Google error envelope (root, borrowed, may be NULL or not an envelope) in a
 * non-2xx reply: adapter_http_error's rules, Google's status name as type, code and judge of
 * retryability, RetryInfo's delay. Returns the negative code (adapter_http_error_fn).
 */
int gemini_http_error(const struct adapter_response *resp, const cJSON *root, struct core_err *err);

/*
 * Video tasks (gemini_video.c), with adapter.h's contracts for the hooks of the same name:
 * build_request for ADAPTER_OP_VIDEO, parse_response of its reply, and the operation's polls
 * (build_poll, parse_poll), which serve video tasks only.
 */
int gemini_video_build_request(const struct adapter_call *call, struct adapter_request *out,
                               struct core_err *err);
int gemini_video_parse_response(const struct adapter_call *call,
                                const struct adapter_response *resp, struct adapter_result *out,
                                struct core_err *err);
int gemini_video_build_poll(const struct adapter_call *call, struct adapter_request *out,
                            struct core_err *err);
int gemini_video_parse_poll(const struct adapter_call *call, const struct adapter_response *resp,
                            struct adapter_result *out, struct core_err *err);

#endif
