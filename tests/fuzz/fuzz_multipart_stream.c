/*
 * Fuzz target: the streaming multipart/form-data parser. The input's first byte picks the piece
 * size the body is fed in; the rest is the body (boundary "XyZ"). Whenever the stream parser
 * accepts a body, the whole-body parser (core/multipart.c) must accept it too and find the same
 * parts, byte for byte; for inputs too small to hit the stream parser's header limit, the
 * converse must hold as well.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/multipart_stream.h"

#define LOG_MAX 8192

struct log {
    char buf[LOG_MAX];
    size_t len;
    int overflow;
};

static void append(struct log *l, const char *p, size_t n)
{
    if (l->len + n > LOG_MAX) {
        l->overflow = 1;
        return;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

/* One record per part: name, filename (or "-"), content type, data, each length-prefixed. */
static void field(struct log *l, const char *p, size_t n)
{
    char len[sizeof(size_t)];
    memcpy(len, &n, sizeof(n));
    append(l, len, sizeof(len));
    append(l, p ? p : "-", p ? n : 1);
}

static int on_begin(const struct multipart_part *p, void *arg)
{
    field(arg, p->name, p->name_len);
    field(arg, p->filename, p->filename_len);
    field(arg, p->content_type, p->content_type_len);
    return 0;
}

static int on_data(const char *d, size_t n, void *arg)
{
    append(arg, d, n);
    return 0;
}

static int on_end(void *arg)
{
    append(arg, "\x01END", 4);
    return 0;
}

static int on_whole_part(const struct multipart_part *p, void *arg)
{
    on_begin(p, arg);
    on_data(p->data, p->len, arg);
    return on_end(arg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct multipart_stream_cbs cbs = {on_begin, on_data, on_end};
    static struct log streamed, whole;
    struct multipart_stream *mp;
    const char *body = (const char *)data + 1;
    size_t len, step;
    int rc = 0, whole_rc;

    if (size < 1) {
        return 0;
    }
    step = (size_t)data[0] % 64 + 1;
    len = size - 1;
    memset(&streamed, 0, sizeof(streamed));
    memset(&whole, 0, sizeof(whole));
    mp = multipart_stream_new("XyZ", &cbs, &streamed);
    if (mp == NULL) {
        return 0;
    }
    for (size_t at = 0; at < len && rc == 0; at += step) {
        rc = multipart_stream_feed(mp, body + at, len - at < step ? len - at : step);
    }
    if (rc == 0) {
        rc = multipart_stream_finish(mp);
    }
    multipart_stream_free(mp);
    whole_rc = multipart_parse(body, len, "XyZ", on_whole_part, &whole);
    if (streamed.overflow || whole.overflow) {
        return 0;
    }
    if (rc == 0 && (whole_rc != 0 || streamed.len != whole.len ||
                    memcmp(streamed.buf, whole.buf, whole.len) != 0)) {
        abort();
    }
    if (whole_rc == 0 && len < MULTIPART_STREAM_HEADER_MAX && rc != 0) {
        abort();
    }
    return 0;
}
