/*
 * adapters/ratelimit.c — remaining-budget headers, by provider.
 */
#include <stdlib.h>

#include "adapters/ratelimit.h"

/* Header names per budget, in the order they are tried. */
static const char *const request_headers[] = {
    "x-ratelimit-remaining-requests",
    "anthropic-ratelimit-requests-remaining",
};
static const char *const token_headers[] = {
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-remaining",
};

static int64_t first_number(const struct adapter_response *resp, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = adapter_header_get(resp, names[i]);
        char *end = NULL;
        long long x;
        if (v == NULL) {
            continue;
        }
        x = strtoll(v, &end, 10);
        if (end != v && x >= 0) {
            return (int64_t)x;
        }
    }
    return -1;
}

void adapter_ratelimit_remaining(const struct adapter_response *resp, int64_t *requests,
                                 int64_t *tokens)
{
    *requests =
        first_number(resp, request_headers, sizeof(request_headers) / sizeof(request_headers[0]));
    *tokens = first_number(resp, token_headers, sizeof(token_headers) / sizeof(token_headers[0]));
}
