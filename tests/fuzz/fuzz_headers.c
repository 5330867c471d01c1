/*
 * Fuzz target: the hand-written header parsers — retry-after (seconds or HTTP date),
 * retry-after-ms and Go-style durations of x-ratelimit-reset-*.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size + 1);
    int64_t ms;

    if (v == NULL) {
        return 0;
    }
    memcpy(v, data, size);
    v[size] = '\0';
    adapter_parse_duration_ms(v, &ms);
    {
        struct adapter_header h1[] = {{"retry-after", v}};
        struct adapter_header h2[] = {{"retry-after-ms", v}, {"retry-after", v}};
        struct adapter_response r = {0};
        r.now_ms = 1700000000000;
        r.headers = h1;
        r.n_headers = 1;
        adapter_retry_after_ms(&r);
        r.headers = h2;
        r.n_headers = 2;
        adapter_retry_after_ms(&r);
    }
    free(v);
    return 0;
}
