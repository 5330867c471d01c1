/*
 * Unit tests of core/http_head: finding a head's end over pieces, parsing it strictly, and a
 * chunked body's framing.
 */
#include "core/http_head.h"
#include "check.h"

/* Scans s in pieces of `step` bytes; returns the head's length or 0. */
static size_t scan_in_pieces(const char *s, size_t step)
{
    struct http_head_scan sc;
    size_t len = strlen(s), at = 0;

    http_head_scan_init(&sc);
    while (at < len) {
        size_t n = len - at < step ? len - at : step;
        size_t end = http_head_scan(&sc, s + at, n);
        if (end > 0) {
            return at + end;
        }
        at += n;
    }
    return 0;
}

static int parse(const char *s, struct http_head *h)
{
    return http_head_parse(s, strlen(s), h);
}

static void test_scan(void)
{
    const char *crlf = "GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
    const char *lf = "GET / HTTP/1.1\nHost: x\n\nNEXT";

    for (size_t step = 1; step < 40; step++) {
        CHECK(scan_in_pieces(crlf, step) == strlen(crlf) - 4);
        CHECK(scan_in_pieces(lf, step) == strlen(lf) - 4);
    }
    CHECK(scan_in_pieces("GET / HTTP/1.1\r\nHost: x\r\n", 5) == 0);
    /* leading empty lines are the caller's to skip: here they make a head with an empty
     * request line, which the parser refuses */
    CHECK(scan_in_pieces("\r\n\r\n", 1) == 4);
    CHECK(scan_in_pieces("GET / HTTP/1.1\r\n\r\n", 3) == 18);
}

static void test_parse(void)
{
    struct http_head h;
    const char *post = "POST /v1/files?x=1 HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n"
                       "Authorization:  Bearer sk-1 \r\n"
                       "Content-Type: multipart/form-data; boundary=b\r\n"
                       "Content-Length: 1234\r\n"
                       "Expect: 100-continue\r\n"
                       "Connection: keep-alive, Close\r\n"
                       "\r\n";

    CHECK(parse(post, &h) == 0);
    CHECK(h.method_len == 4 && memcmp(h.method, "POST", 4) == 0);
    CHECK(h.target_len == 13 && h.path_len == 9 && memcmp(h.target, "/v1/files", 9) == 0);
    CHECK(h.minor == 1);
    CHECK(h.content_length == 1234);
    CHECK(!h.chunked);
    CHECK(h.expect_continue);
    CHECK(h.conn_close);
    CHECK(h.authorization_len == 11 && memcmp(h.authorization, "Bearer sk-1", 11) == 0);
    CHECK(h.content_type != NULL && h.content_type_len == 31);
    CHECK(h.len == strlen(post) && h.fields_end == strlen(post) - 2);
    CHECK(h.n_marked == 3);
    CHECK(h.marked[0].kind == HTTP_HEAD_STRIP_LENGTH &&
          memcmp(post + h.marked[0].off, "Content-Length: 1234\r\n", h.marked[0].len) == 0);
    CHECK(h.marked[1].kind == HTTP_HEAD_STRIP_EXPECT);
    CHECK(h.marked[2].kind == HTTP_HEAD_STRIP_CONNECTION);

    CHECK(parse("GET /healthz HTTP/1.0\n\n", &h) == 0);
    CHECK(h.minor == 0 && h.conn_close && h.content_length == -1 && h.authorization == NULL);
    CHECK(parse("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h) == 0);
    CHECK(!h.conn_close);
    CHECK(parse("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &h) == 0);
    CHECK(h.chunked && h.content_length == -1);
    CHECK(parse("POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h) == 0);
    CHECK(h.content_length == 5);
    CHECK(parse("POST /x HTTP/1.1\r\nX-Sluice-Upload: t.1\r\n\r\n", &h) == 0 && h.internal);
    /* Expect is ignored in HTTP/1.0 */
    CHECK(parse("POST /x HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &h) == 0);
    CHECK(!h.expect_continue);
    CHECK(parse("GET /a#frag HTTP/1.1\r\n\r\n", &h) == 0 && h.path_len == 2);

    /* refused: what evhttp could read differently, or what we do not implement */
    static const struct {
        const char *head;
        int rc;
    } bad[] = {
        {"GET  / HTTP/1.1\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/2.0\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1 \r\n\r\n", HTTP_HEAD_EBAD},
        {"GET /\x01 HTTP/1.1\r\n\r\n", HTTP_HEAD_EBAD},
        {"G(T / HTTP/1.1\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\n: v\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         HTTP_HEAD_EBAD},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_HEAD_EBAD},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_HEAD_ENOTIMPL},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         HTTP_HEAD_ENOTIMPL},
        {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", HTTP_HEAD_EEXPECT},
        {"GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\n\r\nextra", HTTP_HEAD_EBAD},
        {"GET / HTTP/1.1\r\nA: b\r\n", HTTP_HEAD_EBAD},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].head, &h);
        if (rc != bad[i].rc) {
            fprintf(stderr, "case %zu: rc %d, want %d\n", i, rc, bad[i].rc);
        }
        CHECK(rc == bad[i].rc);
    }
    /* control characters other than NUL are kept in a value, as evhttp keeps them; NUL is not */
    CHECK(parse("GET / HTTP/1.1\r\nA: b\x01\r\nB: c\x7f\r\nHost:\r\n\r\n", &h) == 0);
    {
        static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
        CHECK(http_head_parse(nul, sizeof(nul) - 1, &h) == HTTP_HEAD_EBAD);
    }
    {
        char many[512] = "POST / HTTP/1.1\r\n";
        for (int i = 0; i <= HTTP_HEAD_MAX_MARKED; i++) {
            strcat(many, "Connection: keep-alive\r\n");
        }
        strcat(many, "\r\n");
        CHECK(parse(many, &h) == HTTP_HEAD_EBAD);
    }
}

struct sink {
    char out[256];
    size_t len;
    int stop_after; /* runs to accept before answering 7; 0: never stop */
    int runs;
};

static int collect(const char *run, size_t n, void *arg)
{
    struct sink *s = arg;

    if (s->stop_after > 0 && s->runs == s->stop_after) {
        return 7;
    }
    s->runs++;
    if (s->len + n < sizeof(s->out)) {
        memcpy(s->out + s->len, run, n);
        s->len += n;
    }
    return 0;
}

/* Decodes body in pieces of step bytes: the result (1 done, 0 more, negative) and bytes used. */
static int chunked_in_pieces(const char *body, size_t step, struct sink *s, size_t *used_total)
{
    struct http_chunked c;
    size_t len = strlen(body), at = 0;
    int rc = 0;

    http_chunked_init(&c);
    memset(s->out, 0, sizeof(s->out));
    s->len = 0;
    s->runs = 0;
    while (at < len) {
        size_t n = len - at < step ? len - at : step, used;
        rc = http_chunked_feed(&c, body + at, n, &used, collect, s);
        at += used;
        if (rc != 0) {
            break;
        }
    }
    *used_total = at;
    return rc;
}

static void test_chunked(void)
{
    struct sink s = {0};
    size_t used;
    const char *body = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nGET /next";
    const char *lf = "3\nabc\n0\n\nX";

    for (size_t step = 1; step < 60; step++) {
        CHECK(chunked_in_pieces(body, step, &s, &used) == 1);
        CHECK(used == strlen(body) - 9);
        CHECK_STR(s.out, "hello, world");
    }
    CHECK(chunked_in_pieces(lf, 2, &s, &used) == 1 && used == strlen(lf) - 1);
    CHECK_STR(s.out, "abc");
    CHECK(chunked_in_pieces("A \r\n0123456789\r\n0\r\n\r\n", 4, &s, &used) == 1);
    CHECK_STR(s.out, "0123456789");
    CHECK(chunked_in_pieces("5\r\nhel", 3, &s, &used) == 0 && used == 6);

    static const char *bad[] = {
        "x\r\n",                 /* not hex */
        "\r\n",                  /* no size */
        "5\r\nhelloX\r\n",       /* no CRLF after the payload */
        "5\r\nhello\rX",         /* CR without LF */
        "5\rX",                  /* CR without LF on the size line */
        "1234567890abcdef0\r\n", /* more than 15 hex digits */
        "5-\r\n",                /* junk after the size */
        "0\r\n\rX",              /* the final empty line's CR without LF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(chunked_in_pieces(bad[i], 1, &s, &used) == -1);
    }
    {
        /* a chunk extension longer than a line may be */
        char ext[HTTP_CHUNKED_LINE_MAX + 16] = "1;";
        memset(ext + 2, 'e', HTTP_CHUNKED_LINE_MAX);
        strcpy(ext + 2 + HTTP_CHUNKED_LINE_MAX, "\r\nx\r\n0\r\n\r\n");
        CHECK(chunked_in_pieces(ext, 100, &s, &used) == -1);
    }
    {
        /* trailers past HTTP_CHUNKED_TRAILER_MAX */
        static char big[HTTP_CHUNKED_TRAILER_MAX + 64];
        strcpy(big, "0\r\n");
        for (size_t n = strlen(big); n < HTTP_CHUNKED_TRAILER_MAX + 16; n = strlen(big)) {
            strcat(big, "T: 0123456789\r\n");
        }
        strcat(big, "\r\n");
        CHECK(chunked_in_pieces(big, 512, &s, &used) == -1);
    }
    /* the payload callback stops the decoding, and the rest is not consumed */
    s.stop_after = 1;
    CHECK(chunked_in_pieces("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", 64, &s, &used) == 7);
    CHECK(used == 10);
    CHECK_STR(s.out, "ab");
}

int main(void)
{
    test_scan();
    test_parse();
    test_chunked();
    return check_done();
}
