/*
 * Unit tests of core/sse: events in any byte split, line endings, comments, caps.
 */
#include <stdlib.h>

#include "core/sse.h"
#include "check.h"

struct got {
    char text[4096];
    int n;
};

static int collect(const char *event, const char *data, size_t len, void *arg)
{
    struct got *g = arg;
    size_t used = strlen(g->text);
    snprintf(g->text + used, sizeof(g->text) - used, "[%s|%.*s]", event ? event : "-", (int)len,
             data);
    g->n++;
    return 0;
}

/* Feeds s in pieces of step bytes and returns what came out. */
static void feed_split(const char *s, size_t step, struct got *g)
{
    struct sse_parser *p = sse_parser_new(1024);
    size_t len = strlen(s);

    memset(g, 0, sizeof(*g));
    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        CHECK(sse_parser_feed(p, s + i, n, collect, g) == 0);
    }
    sse_parser_free(p);
}

static void test_splits(void)
{
    const char *stream = ": comment\r\n"
                         "event: message_start\r\n"
                         "data: {\"a\":1}\r\n"
                         "\r\n"
                         "data:two\n"
                         "data:  lines\n"
                         "id: 7\n"
                         "\n"
                         "data: [DONE]\r\r"
                         "event: ignored-without-data\n\n"
                         "data: unfinished";
    const char *want = "[message_start|{\"a\":1}][-|two\n lines][-|[DONE]]";

    for (size_t step = 1; step <= strlen(stream); step++) {
        struct got g;
        feed_split(stream, step, &g);
        CHECK_STR(g.text, want);
    }
}

static int stop_at_first(const char *event, const char *data, size_t len, void *arg)
{
    (*(int *)arg)++;
    return 42;
}

static void test_limits(void)
{
    struct sse_parser *p = sse_parser_new(16);
    char big[64];
    int calls = 0;

    memset(big, 'x', sizeof(big));
    CHECK(sse_parser_feed(p, "data: ", 6, stop_at_first, &calls) == 0);
    CHECK(sse_parser_feed(p, big, sizeof(big), stop_at_first, &calls) == SSE_ETOOLARGE);
    sse_parser_free(p);

    p = sse_parser_new(1024);
    CHECK(sse_parser_feed(p, "data: a\n\ndata: b\n\n", 18, stop_at_first, &calls) == 42);
    CHECK(calls == 1);
    sse_parser_free(p);
    sse_parser_free(NULL);
}

int main(void)
{
    test_splits();
    test_limits();
    return check_done();
}
