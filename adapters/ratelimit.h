/*
 * adapters/ratelimit.h — what a provider's reply says of its remaining budget, whatever the
 * dialect: OpenAI's x-ratelimit-remaining-* and Anthropic's anthropic-ratelimit-*-remaining.
 * The worker hands the figures to the FINISH script, which lowers the deployment's shared budget
 * before the provider runs out (pacing from provider signals).
 */
#ifndef SLUICE_ADAPTERS_RATELIMIT_H
#define SLUICE_ADAPTERS_RATELIMIT_H

#include <stdint.h>

#include "adapters/adapter.h"

/* Remaining requests and tokens the reply reported, or -1 each when it named none. */
void adapter_ratelimit_remaining(const struct adapter_response *resp, int64_t *requests,
                                 int64_t *tokens);

#endif
