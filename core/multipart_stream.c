/*
 * core/multipart_stream.c — multipart/form-data parsed piece by piece (see the header for the
 * grammar). Hand-written like core/multipart.c, bounded (one header block, one delimiter held
 * back) and fuzzed (tests/fuzz/fuzz_multipart_stream.c, which also checks it against the
 * whole-body parser).
 *
 * Finding a delimiter ("\r\n--" + boundary) in a part's bytes: a boundary has no CR (RFC 2046
 * bchars; multipart_stream_new refuses one that has), so the delimiter's only CR is its first
 * byte. A match can therefore only start at a CR, and when a partial match fails, none of the
 * bytes it covered can start another: scanning goes on right after them. The bytes of a match
 * still open at the end of a piece (at most the delimiter's length) are held back and reported as
 * data only if the next piece does not complete it.
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/multipart.h"
#include "core/multipart_stream.h"

#define DELIM_MAX 80 /* "\r\n--" + a boundary of at most 70 characters, with room */

enum state {
    MP_PREAMBLE,    /* before the first delimiter */
    MP_AFTER_DELIM, /* right after a delimiter: CRLF (a part follows) or "--" (the end) */
    MP_HEADERS,     /* a part's header block, buffered until CRLFCRLF */
    MP_DATA,        /* a part's bytes */
    MP_END,         /* after the closing delimiter: the epilogue, ignored */
    MP_STOPPED,     /* malformed, or a callback stopped the parse */
};

struct multipart_stream {
    const struct multipart_stream_cbs *cbs;
    void *arg;
    enum state state;
    int rc; /* what MP_STOPPED returns */
    char delim[DELIM_MAX];
    size_t dlen;
    size_t hold;           /* MP_DATA: delimiter bytes matched at the end of the last piece */
    char carry[DELIM_MAX]; /* MP_PREAMBLE: the last bytes seen, shorter than "--" + boundary */
    size_t carry_len;
    char after[2]; /* MP_AFTER_DELIM: the bytes seen so far */
    size_t n_after;
    int parts;
    size_t hdr_len;
    char hdr[MULTIPART_STREAM_HEADER_MAX];
};

struct multipart_stream *multipart_stream_new(const char *boundary,
                                              const struct multipart_stream_cbs *cbs, void *arg)
{
    size_t blen = boundary ? strlen(boundary) : 0;
    struct multipart_stream *s;

    if (blen == 0 || blen > 70 || strpbrk(boundary, "\r\n") != NULL || cbs == NULL) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->cbs = cbs;
    s->arg = arg;
    s->state = MP_PREAMBLE;
    s->dlen = (size_t)snprintf(s->delim, sizeof(s->delim), "\r\n--%s", boundary);
    return s;
}

void multipart_stream_free(struct multipart_stream *s)
{
    free(s);
}

int multipart_stream_finish(const struct multipart_stream *s)
{
    return s->state == MP_END ? 0 : -1;
}

/* Stops the parse with rc, which every later feed returns too. */
static int stop(struct multipart_stream *s, int rc)
{
    s->state = MP_STOPPED;
    s->rc = rc;
    return rc;
}

static int emit_data(struct multipart_stream *s, const char *data, size_t len)
{
    if (len == 0 || s->cbs->part_data == NULL) {
        return 0;
    }
    return s->cbs->part_data(data, len, s->arg);
}

/* ---- the states ------------------------------------------------------------------------------ */

/* The first "--" + boundary, anywhere (as the whole-body parser finds it); the preamble is
 * dropped. Returns the bytes used: through the match, or all of them. Sets *found. */
static size_t feed_preamble(struct multipart_stream *s, const char *d, size_t n, bool *found)
{
    const char *pat = s->delim + 2;
    size_t plen = s->dlen - 2, keep;
    const char *m;

    *found = true;
    if (s->carry_len > 0) {
        /* a match that starts in the carried bytes and ends in this piece */
        char both[2 * DELIM_MAX];
        size_t take = n < plen - 1 ? n : plen - 1;
        memcpy(both, s->carry, s->carry_len);
        memcpy(both + s->carry_len, d, take);
        m = memmem(both, s->carry_len + take, pat, plen);
        if (m != NULL) {
            return (size_t)(m - both) + plen - s->carry_len;
        }
    }
    m = memmem(d, n, pat, plen);
    if (m != NULL) {
        return (size_t)(m - d) + plen;
    }
    *found = false;
    /* carry the last plen - 1 bytes seen */
    if (n >= plen - 1) {
        memcpy(s->carry, d + n - (plen - 1), plen - 1);
        s->carry_len = plen - 1;
    } else {
        keep = s->carry_len < plen - 1 - n ? s->carry_len : plen - 1 - n;
        memmove(s->carry, s->carry + s->carry_len - keep, keep);
        memcpy(s->carry + keep, d, n);
        s->carry_len = keep + n;
    }
    return n;
}

/* After a delimiter: "--" ends the body, CRLF starts a part. Returns bytes used or -1. */
static long feed_after_delim(struct multipart_stream *s, const char *d, size_t n)
{
    size_t i = 0;

    while (i < n && s->n_after < 2) {
        s->after[s->n_after++] = d[i++];
    }
    if (s->n_after < 2) {
        return (long)i;
    }
    if (s->after[0] == '-' && s->after[1] == '-') {
        s->state = MP_END;
    } else if (s->after[0] == '\r' && s->after[1] == '\n') {
        if (++s->parts > MULTIPART_MAX_PARTS) {
            return -1;
        }
        s->state = MP_HEADERS;
        s->hdr_len = 0;
    } else {
        return -1;
    }
    s->n_after = 0;
    return (long)i;
}

/* A part's header block, up to CRLFCRLF; then part_begin. Returns bytes used, -1 when it is
 * malformed or too long, or stops with the callback's value (*rc). */
static long feed_headers(struct multipart_stream *s, const char *d, size_t n, int *rc)
{
    size_t old = s->hdr_len, from = old > 3 ? old - 3 : 0;
    size_t take = MULTIPART_STREAM_HEADER_MAX - old < n ? MULTIPART_STREAM_HEADER_MAX - old : n;
    struct multipart_part part = {0};
    const char *end;
    size_t used;

    memcpy(s->hdr + old, d, take);
    s->hdr_len += take;
    end = memmem(s->hdr + from, s->hdr_len - from, "\r\n\r\n", 4);
    if (end == NULL) {
        return s->hdr_len == MULTIPART_STREAM_HEADER_MAX ? -1 : (long)take;
    }
    used = (size_t)(end - s->hdr) + 4 - old;
    if (multipart_part_headers(s->hdr, end, &part) < 0) {
        return -1;
    }
    s->state = MP_DATA;
    s->hold = 0;
    if (s->cbs->part_begin != NULL && (*rc = s->cbs->part_begin(&part, s->arg)) != 0) {
        return -1;
    }
    return (long)used;
}

/* A part's bytes up to its delimiter, reported as one run per piece where possible. Returns
 * bytes used; *found when the delimiter ended within them; *rc a callback's non-zero value. */
static size_t feed_data(struct multipart_stream *s, const char *d, size_t n, bool *found, int *rc)
{
    size_t i = 0, run, k;

    *found = false;
    if (s->hold > 0) {
        k = 0;
        while (s->hold + k < s->dlen && k < n && d[k] == s->delim[s->hold + k]) {
            k++;
        }
        if (s->hold + k == s->dlen) {
            s->hold = 0;
            *found = true;
            return k;
        }
        if (k == n) {
            s->hold += k;
            return n;
        }
        /* not a delimiter after all: the held bytes and these k are the part's */
        if ((*rc = emit_data(s, s->delim, s->hold + k)) != 0) {
            return 0;
        }
        s->hold = 0;
        i = k;
    }
    run = i;
    while (i < n) {
        const char *cr = memchr(d + i, '\r', n - i);
        size_t c;
        if (cr == NULL) {
            break;
        }
        c = (size_t)(cr - d);
        k = 0;
        while (k < s->dlen && c + k < n && d[c + k] == s->delim[k]) {
            k++;
        }
        if (k == s->dlen || c + k == n) {
            if ((*rc = emit_data(s, d + run, c - run)) != 0) {
                return 0;
            }
            if (k == s->dlen) {
                *found = true;
                return c + k;
            }
            s->hold = k;
            return n;
        }
        i = c + k; /* a partial match that failed: its bytes are data, and none starts a match */
    }
    *rc = emit_data(s, d + run, n - run);
    return n;
}

int multipart_stream_feed(struct multipart_stream *s, const char *data, size_t len)
{
    size_t i = 0;

    while (i < len) {
        int rc = 0;
        bool found;
        long r;

        switch (s->state) {
        case MP_PREAMBLE:
            i += feed_preamble(s, data + i, len - i, &found);
            if (found) {
                s->state = MP_AFTER_DELIM;
            }
            break;
        case MP_AFTER_DELIM:
            if ((r = feed_after_delim(s, data + i, len - i)) < 0) {
                return stop(s, -1);
            }
            i += (size_t)r;
            break;
        case MP_HEADERS:
            if ((r = feed_headers(s, data + i, len - i, &rc)) < 0) {
                return stop(s, rc != 0 ? rc : -1);
            }
            i += (size_t)r;
            break;
        case MP_DATA:
            i += feed_data(s, data + i, len - i, &found, &rc);
            if (rc != 0) {
                return stop(s, rc);
            }
            if (found) {
                if (s->cbs->part_end != NULL && (rc = s->cbs->part_end(s->arg)) != 0) {
                    return stop(s, rc);
                }
                s->state = MP_AFTER_DELIM;
            }
            break;
        case MP_END:
            return 0;
        case MP_STOPPED:
            return s->rc;
        }
    }
    return s->state == MP_STOPPED ? s->rc : 0;
}
