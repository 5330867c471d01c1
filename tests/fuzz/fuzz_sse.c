/*
 * Fuzz target: the SSE parser, fed the input in two pieces split at a position the first byte
 * picks, with a small event cap so the limit path runs too.
 */
#include <stdint.h>
#include <string.h>

#include "core/sse.h"

static int count(const char *event, const char *data, size_t len, void *arg)
{
    (void)event;
    (void)data;
    (*(size_t *)arg) += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sse_parser *p = sse_parser_new(512);
    size_t total = 0, cut;

    if (p == NULL || size == 0) {
        sse_parser_free(p);
        return 0;
    }
    cut = data[0] % size;
    if (sse_parser_feed(p, (const char *)data + 1, cut ? cut - 1 : 0, count, &total) == 0) {
        sse_parser_feed(p, (const char *)data + (cut ? cut : 1), size - (cut ? cut : 1), count,
                        &total);
    }
    sse_parser_free(p);
    return 0;
}
