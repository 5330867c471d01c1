/*
 * worker/http_response.h — what an upstream call keeps of its response while it arrives: the
 * body, up to a cap, and the final response's headers, packed. Both grow from network input, so
 * both are bounded (the body by the caller's cap, the headers by HTTP_CLIENT_MAX_HEADERS and
 * HTTP_CLIENT_MAX_HEADER_LINE).
 *
 * Internal to worker/http*.c; callers see the contract in worker/http.h. Nothing here knows curl:
 * worker/http.c feeds it what curl's write and header callbacks receive.
 */
#ifndef SLUICE_WORKER_HTTP_RESPONSE_H
#define SLUICE_WORKER_HTTP_RESPONSE_H

#include <stddef.h>

#include "adapters/adapter.h"

/* Errors of http_response_buf_body and http_response_buf_header. */
enum http_response_code {
    HTTP_RESPONSE_OK = 0,
    HTTP_RESPONSE_TOO_LARGE = -1, /* the body would pass its cap */
    HTTP_RESPONSE_NOMEM = -2,     /* a buffer could not grow */
};

/*
 * One response's body and headers. Thousands of calls may wait at once, each holding one, so
 * the headers are kept packed (n_hdrs "name\0value\0" pairs, neither part holding a NUL of its
 * own) and only laid out as an array when asked (http_response_buf_headers). Embedded in a call
 * and reused across the calls it serves; zero-initialised it is empty.
 */
struct http_response_buf {
    char *body;
    size_t body_len, body_cap;
    char *hdr_buf;
    size_t hdr_len, hdr_cap;
    size_t n_hdrs;
};

/* Forgets what rb holds, keeping its buffers, for the next response. */
void http_response_buf_clear(struct http_response_buf *rb);

/*
 * Appends len bytes of body (data borrowed). Returns HTTP_RESPONSE_OK, or HTTP_RESPONSE_TOO_LARGE
 * when the body would pass max bytes, or HTTP_RESPONSE_NOMEM; on either error nothing is kept.
 */
int http_response_buf_body(struct http_response_buf *rb, const char *data, size_t len, size_t max);

/*
 * One header line as received (data borrowed, len bytes, CRLF included), including status lines
 * and the blank line after each header block. A status line starts a new block (after a 1xx,
 * only the final response's headers are kept). Names are kept in lower case, values trimmed.
 * Lines over HTTP_CLIENT_MAX_HEADER_LINE, continuation lines, lines without a colon, lines
 * holding a NUL byte (which RFC 9110 forbids, and which would break the packing) and headers past
 * HTTP_CLIENT_MAX_HEADERS are skipped rather than failing: the body is what the adapter needs.
 * Returns HTTP_RESPONSE_OK (kept or skipped) or HTTP_RESPONSE_NOMEM.
 */
int http_response_buf_header(struct http_response_buf *rb, const char *data, size_t len);

/*
 * The body so far, NUL-terminated in place for convenience (never NULL: "" when none arrived),
 * its length in *len. Borrowed from rb, valid until rb changes.
 */
const char *http_response_buf_text(struct http_response_buf *rb, size_t *len);

/*
 * Lays the kept headers out in out, which holds HTTP_CLIENT_MAX_HEADERS entries, and returns how
 * many. The names and values point into rb: valid until rb changes.
 */
size_t http_response_buf_headers(const struct http_response_buf *rb, struct adapter_header *out);

/* Empties rb for the next call, freeing a buffer larger than keep bytes. */
void http_response_buf_recycle(struct http_response_buf *rb, size_t keep);

/* Frees what rb holds. */
void http_response_buf_cleanup(struct http_response_buf *rb);

#endif
