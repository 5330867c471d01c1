/*
 * core/http_head.c — a strict HTTP/1.x request head parser and a chunked framing decoder for the
 * API's connection guard. Hand-written (evhttp parses only after it has read the whole body),
 * bounded by the caller (the guard caps a head at limits.max_header_bytes) and fuzzed
 * (tests/fuzz/fuzz_http_head.c).
 */
#include <string.h>
#include <strings.h>

#include "core/http_head.h"

/* ---- finding the end of a head ------------------------------------------------------------ */

enum { SCAN_TEXT, SCAN_LF, SCAN_LF_CR };

void http_head_scan_init(struct http_head_scan *s)
{
    s->state = SCAN_TEXT;
}

size_t http_head_scan(struct http_head_scan *s, const char *data, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (s->state == SCAN_TEXT) {
            const char *nl = memchr(data + i, '\n', len - i);
            if (nl == NULL) {
                return 0;
            }
            i = (size_t)(nl - data) + 1;
            s->state = SCAN_LF;
            continue;
        }
        if (data[i] == '\n') {
            s->state = SCAN_TEXT;
            return i + 1;
        }
        s->state = data[i] == '\r' && s->state == SCAN_LF ? SCAN_LF_CR : SCAN_TEXT;
        i++;
    }
    return 0;
}

/* ---- parsing a head ----------------------------------------------------------------------- */

/* The header fields the guard acts on; every other field is passed on untouched. */
enum field {
    F_OTHER,
    F_CONTENT_LENGTH,
    F_TRANSFER_ENCODING,
    F_EXPECT,
    F_CONNECTION,
    F_AUTHORIZATION,
    F_CONTENT_TYPE,
    F_INTERNAL,
};

static const struct {
    const char *name;
    size_t len;
    enum field field;
    int strip; /* HTTP_HEAD_STRIP_* of its line, 0 when it is never left out */
} fields[] = {
    {"content-length", 14, F_CONTENT_LENGTH, HTTP_HEAD_STRIP_LENGTH},
    {"transfer-encoding", 17, F_TRANSFER_ENCODING, HTTP_HEAD_STRIP_LENGTH},
    {"expect", 6, F_EXPECT, HTTP_HEAD_STRIP_EXPECT},
    {"connection", 10, F_CONNECTION, HTTP_HEAD_STRIP_CONNECTION},
    {"authorization", 13, F_AUTHORIZATION, 0},
    {"content-type", 12, F_CONTENT_TYPE, 0},
    {"x-sluice-upload", 15, F_INTERNAL, 0},
};

/*
 * RFC 9110 tchar, the characters of a method and of a field name (ALPHA, DIGIT and
 * !#$%&'*+-.^_`|~), as a bitmap of the 128 ASCII codes: every byte of every name is tested,
 * and this is the test's cheapest form (a profile of the accept path).
 */
static const uint32_t tchar_bits[4] = {0x00000000, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff};

static bool is_tchar(unsigned char c)
{
    return c < 128 && (tchar_bits[c >> 5] >> (c & 31)) & 1;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* True when v (n bytes) is token, compared without case. */
static bool token_is(const char *v, size_t n, const char *token)
{
    return n == strlen(token) && strncasecmp(v, token, n) == 0;
}

/*
 * The next line of buf[*pos..end): its content in [*line, *line + *n) without CRLF or LF, *pos
 * moved past it. Returns -1 when a CR appears anywhere but right before the LF (evhttp would keep
 * it in the value; we refuse it), or when the line has no LF (never for a scanned head).
 */
static int next_line(const char *buf, size_t end, size_t *pos, const char **line, size_t *n)
{
    const char *start = buf + *pos;
    const char *nl = memchr(start, '\n', end - *pos);
    size_t len;

    if (nl == NULL) {
        return -1;
    }
    len = (size_t)(nl - start);
    *pos += len + 1;
    if (len > 0 && start[len - 1] == '\r') {
        len--;
    }
    if (memchr(start, '\r', len) != NULL) {
        return -1;
    }
    *line = start;
    *n = len;
    return 0;
}

/* method SP request-target SP HTTP/1.DIGIT */
static int parse_request_line(const char *line, size_t n, struct http_head *h)
{
    size_t i = 0, t;

    while (i < n && is_tchar((unsigned char)line[i])) {
        i++;
    }
    if (i == 0 || i >= n || line[i] != ' ') {
        return HTTP_HEAD_EBAD;
    }
    h->method = line;
    h->method_len = i;
    t = ++i;
    while (i < n && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f) {
        i++;
    }
    if (i == t || i >= n || line[i] != ' ') {
        return HTTP_HEAD_EBAD;
    }
    h->target = line + t;
    h->target_len = i - t;
    while (h->path_len < h->target_len && h->target[h->path_len] != '?' &&
           h->target[h->path_len] != '#') {
        h->path_len++;
    }
    i++;
    if (n - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || line[i + 7] < '0' ||
        line[i + 7] > '9') {
        return HTTP_HEAD_EBAD;
    }
    h->minor = line[i + 7] - '0';
    return 0;
}

/* Content-Length: 1 to 18 digits; a repeated field must repeat the value. */
static int parse_length(const char *v, size_t n, struct http_head *h)
{
    int64_t len = 0;

    if (n == 0 || n > 18) {
        return HTTP_HEAD_EBAD;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return HTTP_HEAD_EBAD;
        }
        len = len * 10 + (v[i] - '0');
    }
    if (h->content_length >= 0 && h->content_length != len) {
        return HTTP_HEAD_EBAD;
    }
    h->content_length = len;
    return 0;
}

/* Connection: a comma-separated list of options; "close" and "keep-alive" are the ones we read. */
static void parse_connection(const char *v, size_t n, bool *close, bool *keep_alive)
{
    size_t i = 0;

    while (i < n) {
        size_t start, end;
        while (i < n && (v[i] == ',' || is_ows(v[i]))) {
            i++;
        }
        start = i;
        while (i < n && v[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && is_ows(v[end - 1])) {
            end--;
        }
        if (token_is(v + start, end - start, "close")) {
            *close = true;
        } else if (token_is(v + start, end - start, "keep-alive")) {
            *keep_alive = true;
        }
    }
}

/* One field line: records what the guard needs and marks the lines it may leave out. */
static int parse_field(const char *line, size_t n, size_t off, size_t line_len, struct http_head *h,
                       bool *keep_alive)
{
    const char *colon = memchr(line, ':', n);
    const char *v, *end = line + n;
    size_t name_len;
    enum field f = F_OTHER;
    int strip = 0;

    if (colon == NULL || colon == line) {
        return HTTP_HEAD_EBAD;
    }
    name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++) {
        if (!is_tchar((unsigned char)line[i])) {
            return HTTP_HEAD_EBAD;
        }
    }
    /* RFC 9110 5.5: a value with NUL (CR and LF end the line already) must be refused; other
     * control characters may be kept, and evhttp keeps them */
    v = colon + 1;
    if (memchr(v, '\0', (size_t)(end - v)) != NULL) {
        return HTTP_HEAD_EBAD;
    }
    while (v < end && is_ows(*v)) {
        v++;
    }
    while (end > v && is_ows(end[-1])) {
        end--;
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (fields[i].len == name_len && strncasecmp(fields[i].name, line, name_len) == 0) {
            f = fields[i].field;
            strip = fields[i].strip;
            break;
        }
    }
    if (strip != 0) {
        if (h->n_marked == HTTP_HEAD_MAX_MARKED) {
            return HTTP_HEAD_EBAD;
        }
        h->marked[h->n_marked].off = off;
        h->marked[h->n_marked].len = line_len;
        h->marked[h->n_marked].kind = strip;
        h->n_marked++;
    }
    switch (f) {
    case F_CONTENT_LENGTH:
        return parse_length(v, (size_t)(end - v), h);
    case F_TRANSFER_ENCODING:
        if (h->chunked || !token_is(v, (size_t)(end - v), "chunked")) {
            return HTTP_HEAD_ENOTIMPL;
        }
        h->chunked = true;
        return 0;
    case F_EXPECT:
        if (!token_is(v, (size_t)(end - v), "100-continue")) {
            return HTTP_HEAD_EEXPECT;
        }
        h->expect_continue = true;
        return 0;
    case F_CONNECTION:
        parse_connection(v, (size_t)(end - v), &h->conn_close, keep_alive);
        return 0;
    case F_AUTHORIZATION:
        if (h->authorization != NULL) {
            return HTTP_HEAD_EBAD; /* two keys: which one evhttp reads is not ours to guess */
        }
        h->authorization = v;
        h->authorization_len = (size_t)(end - v);
        return 0;
    case F_CONTENT_TYPE:
        if (h->content_type == NULL) {
            h->content_type = v;
            h->content_type_len = (size_t)(end - v);
        }
        return 0;
    case F_INTERNAL:
        h->internal = true;
        return 0;
    case F_OTHER:
        break;
    }
    return 0;
}

int http_head_parse(const char *buf, size_t len, struct http_head *h)
{
    size_t pos = 0;
    const char *line;
    size_t n;
    bool keep_alive = false;
    int rc;

    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    if (next_line(buf, len, &pos, &line, &n) < 0 || parse_request_line(line, n, h) < 0) {
        return HTTP_HEAD_EBAD;
    }
    for (;;) {
        size_t off = pos;
        if (next_line(buf, len, &pos, &line, &n) < 0) {
            return HTTP_HEAD_EBAD;
        }
        if (n == 0) {
            h->fields_end = off;
            h->len = pos;
            break;
        }
        if (is_ows(line[0])) {
            return HTTP_HEAD_EBAD; /* obsolete line folding */
        }
        if ((rc = parse_field(line, n, off, pos - off, h, &keep_alive)) < 0) {
            return rc;
        }
    }
    if (h->len != len) {
        return HTTP_HEAD_EBAD;
    }
    if (h->chunked && (h->content_length >= 0 || h->minor == 0)) {
        return HTTP_HEAD_EBAD; /* both framings (a smuggling attempt), or chunked in HTTP/1.0 */
    }
    if (h->minor == 0) {
        h->expect_continue = false; /* RFC 9110 10.1.1: ignored in an HTTP/1.0 request */
        h->conn_close = h->conn_close || !keep_alive;
    }
    return 0;
}

/* ---- chunked framing ---------------------------------------------------------------------- */

enum {
    CH_SIZE,       /* at the start of a chunk-size line */
    CH_SIZE_MORE,  /* after at least one hex digit */
    CH_EXT,        /* in a chunk extension, skipped */
    CH_SIZE_CR,    /* the size line's CR was seen */
    CH_DATA,       /* in a chunk's payload */
    CH_DATA_END,   /* right after the payload: CRLF or LF */
    CH_DATA_CR,    /* the payload's CR was seen */
    CH_TRAILER,    /* at the start of a trailer line */
    CH_TRAILER_LN, /* in a trailer line */
    CH_TRAILER_CR, /* the final empty line's CR was seen */
    CH_DONE,
};

#define CHUNK_SIZE_DIGITS 15

void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* The size line ended: a payload follows, or the last chunk's trailers. */
static void size_line_done(struct http_chunked *c)
{
    c->state = c->left > 0 ? CH_DATA : CH_TRAILER;
    c->line = 0;
}

int http_chunked_feed(struct http_chunked *c, const char *data, size_t len, size_t *used,
                      int (*payload)(const char *run, size_t n, void *arg), void *arg)
{
    size_t i = 0;
    int rc = 0;

    while (i < len && c->state != CH_DONE) {
        char ch = data[i];

        if (c->state == CH_DATA) {
            size_t n = len - i < c->left ? len - i : (size_t)c->left;
            if (payload != NULL && (rc = payload(data + i, n, arg)) != 0) {
                break;
            }
            i += n;
            c->left -= n;
            if (c->left == 0) {
                c->state = CH_DATA_END;
            }
            continue;
        }
        i++;
        if (c->state <= CH_SIZE_CR && ++c->line > HTTP_CHUNKED_LINE_MAX) {
            rc = -1;
            break;
        }
        if (c->state >= CH_TRAILER && ++c->trailer > HTTP_CHUNKED_TRAILER_MAX) {
            rc = -1;
            break;
        }
        switch (c->state) {
        case CH_SIZE:
        case CH_SIZE_MORE:
            if (hex_value(ch) >= 0 && c->line <= CHUNK_SIZE_DIGITS) {
                c->left = c->left * 16 + (uint64_t)hex_value(ch);
                c->state = CH_SIZE_MORE;
            } else if (c->state == CH_SIZE) {
                rc = -1;
            } else if (ch == ';' || is_ows(ch)) {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_CR;
            } else if (ch == '\n') {
                size_line_done(c);
            } else {
                rc = -1;
            }
            break;
        case CH_EXT:
            if (ch == '\r') {
                c->state = CH_SIZE_CR;
            } else if (ch == '\n') {
                size_line_done(c);
            }
            break;
        case CH_SIZE_CR:
            if (ch != '\n') {
                rc = -1;
            } else {
                size_line_done(c);
            }
            break;
        case CH_DATA_END:
            if (ch == '\r') {
                c->state = CH_DATA_CR;
            } else if (ch == '\n') {
                c->state = CH_SIZE;
            } else {
                rc = -1;
            }
            break;
        case CH_DATA_CR:
            if (ch != '\n') {
                rc = -1;
            }
            c->state = CH_SIZE;
            break;
        case CH_TRAILER:
            c->state = ch == '\r' ? CH_TRAILER_CR : ch == '\n' ? CH_DONE : CH_TRAILER_LN;
            break;
        case CH_TRAILER_LN:
            if (ch == '\n') {
                c->state = CH_TRAILER;
            }
            break;
        case CH_TRAILER_CR:
            if (ch != '\n') {
                rc = -1;
            }
            c->state = CH_DONE;
            break;
        }
        if (rc != 0) {
            break;
        }
    }
    *used = i;
    if (rc != 0) {
        return rc;
    }
    return c->state == CH_DONE ? 1 : 0;
}
