/*
 * core/sse.c — server-sent events, parsed incrementally.
 *
 * The format: lines end in CRLF, LF or CR; "data: x" appends x and a newline to the data buffer;
 * "event: x" names the event; lines starting with ':' are comments; other fields (id, retry) are
 * ignored; a blank line dispatches the event if it has data. One space after the colon is
 * dropped. No dependency offers this, so it is hand-written, small, and fuzzed.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"

struct sse_parser {
    size_t max;
    char *line; /* the line being read */
    size_t line_len;
    size_t line_cap;
    char *data; /* the event's data so far */
    size_t data_len;
    size_t data_cap;
    char event[64];
    bool has_event;
    bool after_cr; /* the last byte was CR: a following LF belongs to the same line end */
};

struct sse_parser *sse_parser_new(size_t max_event_bytes)
{
    struct sse_parser *p = calloc(1, sizeof(*p));
    if (p != NULL) {
        p->max = max_event_bytes;
    }
    return p;
}

void sse_parser_free(struct sse_parser *p)
{
    if (p == NULL) {
        return;
    }
    free(p->line);
    free(p->data);
    free(p);
}

/* Grows *buf to hold need bytes plus a NUL, never past the parser's cap. */
static int reserve(struct sse_parser *p, char **buf, size_t *cap, size_t need)
{
    size_t n;
    char *nb;

    if (need > p->max) {
        return SSE_ETOOLARGE;
    }
    if (need + 1 <= *cap) {
        return 0;
    }
    n = *cap ? *cap : 256;
    while (n < need + 1) {
        n *= 2;
    }
    nb = realloc(*buf, n);
    if (nb == NULL) {
        return SSE_ENOMEM;
    }
    *buf = nb;
    *cap = n;
    return 0;
}

static int dispatch(struct sse_parser *p, sse_event_cb cb, void *arg)
{
    int rc = 0;

    if (p->data_len > 0) {
        p->data_len--; /* the newline after the last data line */
        p->data[p->data_len] = '\0';
        rc = cb(p->has_event ? p->event : NULL, p->data, p->data_len, arg);
    }
    p->data_len = 0;
    p->has_event = false;
    return rc;
}

/* Handles one complete line (without its end). */
static int take_line(struct sse_parser *p, sse_event_cb cb, void *arg)
{
    const char *line = p->line ? p->line : "";
    size_t len = p->line_len;
    const char *colon, *value;
    size_t name_len, value_len;
    int rc;

    p->line_len = 0;
    if (len == 0) {
        return dispatch(p, cb, arg);
    }
    if (line[0] == ':') {
        return 0;
    }
    colon = memchr(line, ':', len);
    name_len = colon ? (size_t)(colon - line) : len;
    value = colon ? colon + 1 : line + len;
    value_len = len - (size_t)(value - line);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        rc = reserve(p, &p->data, &p->data_cap, p->data_len + value_len + 1);
        if (rc != 0) {
            return rc;
        }
        memcpy(p->data + p->data_len, value, value_len);
        p->data_len += value_len;
        p->data[p->data_len++] = '\n';
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        size_t n = value_len < sizeof(p->event) - 1 ? value_len : sizeof(p->event) - 1;
        memcpy(p->event, value, n);
        p->event[n] = '\0';
        p->has_event = true;
    }
    return 0;
}

int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_cb cb, void *arg)
{
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        int rc;

        if (c == '\n' && p->after_cr) {
            p->after_cr = false;
            continue;
        }
        p->after_cr = (c == '\r');
        if (c == '\n' || c == '\r') {
            if ((rc = take_line(p, cb, arg)) != 0) {
                return rc;
            }
            continue;
        }
        if ((rc = reserve(p, &p->line, &p->line_cap, p->line_len + 1)) != 0) {
            return rc;
        }
        p->line[p->line_len++] = c;
    }
    return 0;
}
