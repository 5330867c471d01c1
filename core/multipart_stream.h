/*
 * core/multipart_stream.h — multipart/form-data (RFC 7578) parsed as it arrives, for uploads too
 * large to hold in memory (POST /v1/files streams its file part to disk through this). The body
 * is fed in pieces of any size; each part's headers are reported once, then its bytes as runs,
 * then its end. Only a part's header block is buffered (at most MULTIPART_STREAM_HEADER_MAX
 * bytes) and at most one delimiter's worth of bytes is held back between pieces, so memory is
 * constant whatever the body's size.
 *
 * The grammar is core/multipart.h's (the whole-body parser): the first delimiter may follow a
 * preamble, each later one is preceded by CRLF, a delimiter line ends in CRLF or, for the
 * closing one, "--" (the epilogue is ignored); a part's headers end at the first CRLFCRLF and
 * must name the part (Content-Disposition: form-data; name=...); at most MULTIPART_MAX_PARTS
 * parts.
 */
#ifndef SLUICE_CORE_MULTIPART_STREAM_H
#define SLUICE_CORE_MULTIPART_STREAM_H

#include <stddef.h>

#include "core/multipart.h"

#define MULTIPART_STREAM_HEADER_MAX 4096

struct multipart_stream;

/*
 * What the parser reports, in order, for each part: begin (part's name, filename and
 * content_type set, data NULL and len 0; the slices are valid during the call only), data runs
 * (valid during the call), end. A callback returns 0 to go on or a non-zero value that stops the
 * parse and is returned by multipart_stream_feed. NULL callbacks are skipped.
 */
struct multipart_stream_cbs {
    int (*part_begin)(const struct multipart_part *part, void *arg);
    int (*part_data)(const char *data, size_t len, void *arg);
    int (*part_end)(void *arg);
};

/*
 * A parser for a body with boundary (at most 70 characters, no CR or LF: multipart_boundary's
 * output). cbs and arg are borrowed and must outlive it. NULL on OOM or a bad boundary. Caller
 * frees with multipart_stream_free.
 */
struct multipart_stream *multipart_stream_new(const char *boundary,
                                              const struct multipart_stream_cbs *cbs, void *arg);

void multipart_stream_free(struct multipart_stream *s);

/*
 * Parses the next len bytes of the body. Returns 0, -1 when the body is malformed (and on every
 * later call), or the first non-zero value a callback returned (the parser is then stopped too).
 */
int multipart_stream_feed(struct multipart_stream *s, const char *data, size_t len);

/* The body ended: 0 when the closing delimiter was seen, -1 otherwise (truncated or stopped). */
int multipart_stream_finish(const struct multipart_stream *s);

#endif
