/*
 * Unit tests of core/multipart_stream: the same parts as the whole-body parser whatever the piece
 * sizes, delimiters split across pieces, near-delimiters in the data, truncation, a callback
 * that stops, the part and header limits.
 */
#include <stdlib.h>

#include "core/multipart_stream.h"
#include "check.h"

struct seen {
    char log[1024]; /* "B<name>[:<filename>]" per begin, the data, "E" per end */
    size_t len;
    int runs;
    int stop_on_data; /* answer 9 from the first data run */
};

static void append(struct seen *s, const char *p, size_t n)
{
    if (s->len + n < sizeof(s->log)) {
        memcpy(s->log + s->len, p, n);
        s->len += n;
        s->log[s->len] = '\0';
    }
}

static int on_begin(const struct multipart_part *p, void *arg)
{
    struct seen *s = arg;
    append(s, "B", 1);
    append(s, p->name, p->name_len);
    if (p->filename != NULL) {
        append(s, ":", 1);
        append(s, p->filename, p->filename_len);
    }
    append(s, "|", 1);
    return 0;
}

static int on_data(const char *d, size_t n, void *arg)
{
    struct seen *s = arg;
    s->runs++;
    if (s->stop_on_data) {
        return 9;
    }
    append(s, d, n);
    return 0;
}

static int on_end(void *arg)
{
    append(arg, "|E|", 3);
    return 0;
}

static const struct multipart_stream_cbs cbs = {on_begin, on_data, on_end};

/* Feeds body in pieces of step bytes; returns the first non-zero feed result, else finish's. */
static int run(const char *body, size_t len, size_t step, const char *boundary, struct seen *s)
{
    struct multipart_stream *mp = multipart_stream_new(boundary, &cbs, s);
    int rc = 0;

    if (mp == NULL) {
        return -100;
    }
    for (size_t at = 0; at < len && rc == 0; at += step) {
        rc = multipart_stream_feed(mp, body + at, len - at < step ? len - at : step);
    }
    if (rc == 0) {
        rc = multipart_stream_finish(mp);
    }
    multipart_stream_free(mp);
    return rc;
}

static const char body[] = "preamble\r\n--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
                           "sora-2\r\n"
                           "--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"prompt\"\r\n\r\n"
                           "a cat\r\non two lines\r\n--XyY\r\n\r\n--X\r\r\n"
                           "--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"ref\"; filename=\"r.png\"\r\n"
                           "Content-Type: image/png\r\n\r\n"
                           "PNG--XyZ-not-a-delimiter\r\n"
                           "--XyZ--\r\nepilogue";

static const char want[] = "Bmodel|sora-2|E|"
                           "Bprompt|a cat\r\non two lines\r\n--XyY\r\n\r\n--X\r|E|"
                           "Bref:r.png|PNG--XyZ-not-a-delimiter|E|";

int main(void)
{
    struct seen s;

    /* every piece size gives the same parts */
    for (size_t step = 1; step <= sizeof(body); step++) {
        memset(&s, 0, sizeof(s));
        CHECK(run(body, sizeof(body) - 1, step, "XyZ", &s) == 0);
        if (strcmp(s.log, want) != 0) {
            fprintf(stderr, "step %zu: %s\n", step, s.log);
        }
        CHECK(strcmp(s.log, want) == 0);
    }
    /* one piece: one data run per part */
    memset(&s, 0, sizeof(s));
    CHECK(run(body, sizeof(body) - 1, sizeof(body), "XyZ", &s) == 0);
    CHECK(s.runs == 3);

    /* partial delimiters right before the real one */
    {
        const char b2[] = "--a\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
                          "x\r\n--b\r\n-\r\n--a--";
        for (size_t step = 1; step < sizeof(b2); step++) {
            memset(&s, 0, sizeof(s));
            CHECK(run(b2, sizeof(b2) - 1, step, "a", &s) == 0);
            CHECK_STR(s.log, "Bf|x\r\n--b\r\n-|E|");
        }
    }

    /* truncated bodies: no closing delimiter */
    for (size_t cut = 0; cut < sizeof(body) - 12; cut += 7) {
        memset(&s, 0, sizeof(s));
        CHECK(run(body, cut, 5, "XyZ", &s) == -1);
    }

    /* malformed: junk after a delimiter, a part without a name */
    memset(&s, 0, sizeof(s));
    CHECK(run("--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--XyZab", 60, 4, "XyZ",
              &s) == -1);
    memset(&s, 0, sizeof(s));
    CHECK(run("--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--", 44, 3, "XyZ", &s) == -1);

    /* a callback's value stops the parse and comes back, again on a later feed */
    {
        struct multipart_stream *mp;
        memset(&s, 0, sizeof(s));
        s.stop_on_data = 1;
        mp = multipart_stream_new("XyZ", &cbs, &s);
        CHECK(mp != NULL);
        CHECK(multipart_stream_feed(mp, body, sizeof(body) - 1) == 9);
        CHECK(multipart_stream_feed(mp, "x", 1) == 9);
        CHECK(multipart_stream_finish(mp) == -1);
        multipart_stream_free(mp);
    }

    /* limits: MULTIPART_MAX_PARTS parts, a header block of MULTIPART_STREAM_HEADER_MAX bytes */
    {
        size_t cap = 100 * (MULTIPART_MAX_PARTS + 2), n = 0;
        char *many = malloc(cap);
        for (int i = 0; i <= MULTIPART_MAX_PARTS; i++) {
            n += (size_t)snprintf(
                many + n, cap - n,
                "--b\r\nContent-Disposition: form-data; name=\"p%d\"\r\n\r\nv\r\n", i);
        }
        n += (size_t)snprintf(many + n, cap - n, "--b--");
        memset(&s, 0, sizeof(s));
        CHECK(run(many, n, 64, "b", &s) == -1);
        free(many);
    }
    {
        size_t cap = MULTIPART_STREAM_HEADER_MAX + 200, n;
        char *big = malloc(cap);
        n = (size_t)snprintf(big, cap, "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX: ");
        memset(big + n, 'y', MULTIPART_STREAM_HEADER_MAX);
        n += MULTIPART_STREAM_HEADER_MAX;
        n += (size_t)snprintf(big + n, cap - n, "\r\n\r\nv\r\n--b--");
        memset(&s, 0, sizeof(s));
        CHECK(run(big, n, 1000, "b", &s) == -1);
        free(big);
    }

    /* boundaries: none, too long, with CR or LF */
    {
        char long_b[80];
        memset(long_b, 'b', 71);
        long_b[71] = '\0';
        CHECK(multipart_stream_new("", &cbs, NULL) == NULL);
        CHECK(multipart_stream_new(long_b, &cbs, NULL) == NULL);
        CHECK(multipart_stream_new("a\rb", &cbs, NULL) == NULL);
        CHECK(multipart_stream_new("a\nb", &cbs, NULL) == NULL);
    }
    return check_done();
}
