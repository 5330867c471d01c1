/*
 * adapters/gemini.h — internal to the gemini dialect, split by concept: gemini.c (the vtable, the
 * HTTP request, replies and streams, errors and usage) and gemini_request.c (an OpenAI chat body
 * as a GenerateContentRequest).
 */
#ifndef SLUICE_ADAPTER_GEMINI_H
#define SLUICE_ADAPTER_GEMINI_H

#include <stdbool.h>

#include <cJSON.h>

#include "core/err.h"

/*
 * Adds what an OpenAI chat body (input, borrowed) maps to onto body: contents and
 * systemInstruction, generationConfig, tools and toolConfig. Returns 0, or CORE_EINVAL /
 * CORE_EUNPROCESSABLE / CORE_ENOMEM with err filled.
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

#endif
