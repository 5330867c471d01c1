/*
 * core/http_head.h — an HTTP/1.x request head (request line and header fields) and a chunked body's
 * framing, parsed strictly so that the API's connection guard (api/guard.c) can decide on a
 * request before its body is read: authenticate on the headers, check the declared length against
 * the route's limit, and know where each body ends on a keep-alive connection.
 *
 * Strict on purpose: the guard hands evhttp only heads this parser accepted, so whatever evhttp's
 * more lenient parser could read differently (obsolete line folding, a space before a colon,
 * Content-Length together with Transfer-Encoding, two different Content-Lengths, a Content-Length
 * that is not all digits, a transfer coding other than chunked) is refused here instead. Lines
 * end in CRLF or a bare LF, as evhttp reads them. Everything works on the caller's bytes; nothing
 * is allocated or copied.
 */
#ifndef SLUICE_CORE_HTTP_HEAD_H
#define SLUICE_CORE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a parse went: 0, or one of these. */
enum {
    HTTP_HEAD_EBAD = -1,     /* malformed request line or header field */
    HTTP_HEAD_ENOTIMPL = -2, /* a Transfer-Encoding other than chunked */
    HTTP_HEAD_EEXPECT = -3,  /* an Expect other than 100-continue */
};

/* Lines of a head the guard may leave out when it hands the head on (HTTP_HEAD_STRIP_*). */
enum http_head_strip {
    HTTP_HEAD_STRIP_EXPECT = 1,     /* Expect: answered by the guard itself */
    HTTP_HEAD_STRIP_LENGTH = 2,     /* Content-Length and Transfer-Encoding: the body is replaced */
    HTTP_HEAD_STRIP_CONNECTION = 4, /* Connection: replaced by the guard's own */
};

#define HTTP_HEAD_MAX_MARKED 8 /* header lines of the kinds above one head may carry */

/* A request head: slices of the parsed buffer (not NUL-terminated), valid while it is. */
struct http_head {
    const char *method;
    size_t method_len;
    const char *target; /* the request-target as sent */
    size_t target_len;
    size_t path_len;        /* of target, up to '?' or '#' */
    int minor;              /* HTTP/1.minor */
    int64_t content_length; /* -1: none */
    bool chunked;
    bool expect_continue;
    bool conn_close; /* Connection: close, or HTTP/1.0 without keep-alive */
    bool internal;   /* carries a header only sluice itself may set (X-Sluice-Upload) */
    const char *authorization;
    size_t authorization_len;
    const char *content_type;
    size_t content_type_len;
    size_t fields_end; /* offset of the empty line that ends the head */
    size_t len;        /* the whole head, empty line included */
    /* the lines of Expect, Content-Length, Transfer-Encoding and Connection: [off, off + len) */
    struct {
        size_t off, len;
        int kind; /* HTTP_HEAD_STRIP_* */
    } marked[HTTP_HEAD_MAX_MARKED];
    size_t n_marked;
};

/*
 * Finding where a head ends, over bytes that arrive in pieces: feed each new piece in order.
 * Starts inside the request line (so a head never ends before it has one).
 */
struct http_head_scan {
    int state;
};

/* Resets a scan for the next head. */
void http_head_scan_init(struct http_head_scan *s);

/*
 * Scans the next len bytes of the head. Returns how many of them belong to the head when its
 * empty line ends within them (1..len), or 0 when the head goes on past them.
 */
size_t http_head_scan(struct http_head_scan *s, const char *data, size_t len);

/*
 * Parses a complete head of len bytes (as http_head_scan delimited it) into h. Returns 0 or an
 * HTTP_HEAD_E* code.
 */
int http_head_parse(const char *buf, size_t len, struct http_head *h);

/*
 * A chunked body's framing (RFC 9112 section 7.1): chunk sizes in hex, extensions skipped, each
 * chunk's CRLF, the last chunk and the trailer fields (discarded). Each line is at most
 * HTTP_CHUNKED_LINE_MAX bytes and the trailers at most HTTP_CHUNKED_TRAILER_MAX.
 */
#define HTTP_CHUNKED_LINE_MAX 1024
#define HTTP_CHUNKED_TRAILER_MAX 8192

struct http_chunked {
    int state;
    uint64_t left;  /* payload bytes left in the current chunk */
    size_t line;    /* bytes of the current size or trailer line */
    size_t trailer; /* bytes of trailers so far */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Decodes the framing in data[0..len). Payload bytes are reported as runs to payload (in order;
 * a run never spans calls), which returns 0 to go on or non-zero to stop. *used is set to the
 * bytes consumed: all of them unless the body ended (the rest belongs to the next request) or an
 * error stopped it. Returns 1 when the body ended (trailers included), 0 when more is needed,
 * -1 when the framing is malformed, or payload's non-zero value.
 */
int http_chunked_feed(struct http_chunked *c, const char *data, size_t len, size_t *used,
                      int (*payload)(const char *run, size_t n, void *arg), void *arg);

#endif
