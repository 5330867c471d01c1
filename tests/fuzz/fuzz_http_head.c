/*
 * Fuzz target: the API guard's request head parser and chunked framing decoder. The input is
 * scanned for a head in pieces (the first byte picks their size); a head found is parsed, and
 * what follows it is decoded as a chunked body in the same pieces. Checks the invariants the
 * guard relies on: a scan reports the same end whatever the piece size, a parsed head's slices
 * and marked lines lie inside it, and the decoder never consumes past what it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_head.h"

static int count(const char *run, size_t n, void *arg)
{
    size_t *total = arg;
    (void)run;
    *total += n;
    return 0;
}

static size_t scan(const char *p, size_t len, size_t step)
{
    struct http_head_scan sc;

    http_head_scan_init(&sc);
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        size_t end = http_head_scan(&sc, p + at, n);
        if (end > 0) {
            if (end > n) {
                abort();
            }
            return at + end;
        }
    }
    return 0;
}

static int inside(const char *base, size_t len, const char *p, size_t n)
{
    return p == NULL || (p >= base && p + n <= base + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data + 1;
    size_t len, step, end, total = 0;
    struct http_head h;
    struct http_chunked c;

    if (size < 1) {
        return 0;
    }
    step = (size_t)data[0] % 32 + 1;
    len = size - 1;
    end = scan(p, len, step);
    if (end != scan(p, len, len ? len : 1)) {
        abort();
    }
    if (end > 0 && http_head_parse(p, end, &h) == 0) {
        if (h.len != end || h.fields_end >= end || !inside(p, end, h.method, h.method_len) ||
            !inside(p, end, h.target, h.target_len) || h.path_len > h.target_len ||
            !inside(p, end, h.authorization, h.authorization_len) ||
            !inside(p, end, h.content_type, h.content_type_len) ||
            h.n_marked > HTTP_HEAD_MAX_MARKED || (h.chunked && h.content_length >= 0)) {
            abort();
        }
        for (size_t i = 0; i < h.n_marked; i++) {
            if (h.marked[i].off + h.marked[i].len > h.fields_end) {
                abort();
            }
        }
    }
    http_chunked_init(&c);
    for (size_t at = end; at < len; at += step) {
        size_t n = len - at < step ? len - at : step, used = 0;
        int rc = http_chunked_feed(&c, p + at, n, &used, count, &total);
        if (used > n || total > len) {
            abort();
        }
        if (rc != 0) {
            break;
        }
    }
    return 0;
}
