/*
 * core/multipart.c — a small multipart/form-data parser. No Debian library parses it, so it is
 * hand-written, bounded and fuzzed (tests/fuzz/fuzz_multipart.c).
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/multipart.h"

int multipart_boundary(const char *content_type, char *out, size_t out_size)
{
    const char *b;
    size_t n = 0;

    if (content_type == NULL || strncasecmp(content_type, "multipart/form-data", 19) != 0) {
        return -1;
    }
    b = strcasestr(content_type, "boundary=");
    if (b == NULL) {
        return -1;
    }
    b += 9;
    if (*b == '"') {
        b++;
        while (b[n] && b[n] != '"') {
            n++;
        }
    } else {
        n = strcspn(b, "; \t");
    }
    if (n == 0 || n > 70 || n + 1 > out_size) {
        return -1;
    }
    memcpy(out, b, n);
    out[n] = '\0';
    return 0;
}

/* The value of param (name or filename) in a Content-Disposition line, quoted or not. */
static bool disposition_param(const char *line, size_t len, const char *param, const char **v,
                              size_t *vlen)
{
    size_t plen = strlen(param);

    for (size_t i = 0; i + plen + 1 < len; i++) {
        /* the parameter starts after ';' or a space, so "filename" never matches "name" */
        if ((line[i] == ';' || line[i] == ' ') && strncasecmp(line + i + 1, param, plen) == 0 &&
            line[i + 1 + plen] == '=') {
            const char *p = line + i + 2 + plen;
            const char *end = line + len;
            if (p < end && *p == '"') {
                const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
                if (q == NULL) {
                    return false;
                }
                *v = p + 1;
                *vlen = (size_t)(q - p - 1);
            } else {
                const char *q = p;
                while (q < end && *q != ';' && *q != ' ') {
                    q++;
                }
                *v = p;
                *vlen = (size_t)(q - p);
            }
            return true;
        }
    }
    return false;
}

int multipart_part_headers(const char *h, const char *end, struct multipart_part *part)
{
    bool have_name = false;

    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        size_t len = eol ? (size_t)(eol - h) : (size_t)(end - h);

        if (len > 20 && strncasecmp(h, "Content-Disposition:", 20) == 0) {
            have_name = disposition_param(h, len, "name", &part->name, &part->name_len);
            if (!disposition_param(h, len, "filename", &part->filename, &part->filename_len)) {
                part->filename = NULL;
                part->filename_len = 0;
            }
        } else if (len > 13 && strncasecmp(h, "Content-Type:", 13) == 0) {
            const char *v = h + 13;
            while (v < h + len && *v == ' ') {
                v++;
            }
            part->content_type = v;
            part->content_type_len = (size_t)(h + len - v);
        }
        h += len + 2;
    }
    return have_name ? 0 : -1;
}

int multipart_parse(const char *body, size_t len, const char *boundary,
                    int (*cb)(const struct multipart_part *part, void *arg), void *arg)
{
    char delim[80];
    size_t dlen;
    const char *p, *end = body + len;
    int parts = 0;

    dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
    if (dlen >= sizeof(delim) || len < dlen) {
        return -1;
    }
    /* The first delimiter may follow a preamble; later ones are preceded by CRLF. */
    p = memmem(body, len, delim, dlen);
    if (p == NULL) {
        return -1;
    }
    p += dlen;
    for (;;) {
        struct multipart_part part = {0};
        const char *hdr_end, *next;
        char close_delim[84];
        int rc;

        if ((size_t)(end - p) >= 2 && p[0] == '-' && p[1] == '-') {
            return 0; /* the closing delimiter */
        }
        if ((size_t)(end - p) < 2 || p[0] != '\r' || p[1] != '\n') {
            return -1;
        }
        p += 2;
        hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (hdr_end == NULL || ++parts > MULTIPART_MAX_PARTS) {
            return -1;
        }
        if (multipart_part_headers(p, hdr_end, &part) < 0) {
            return -1;
        }
        p = hdr_end + 4;
        snprintf(close_delim, sizeof(close_delim), "\r\n%s", delim);
        next = memmem(p, (size_t)(end - p), close_delim, dlen + 2);
        if (next == NULL) {
            return -1;
        }
        part.data = p;
        part.len = (size_t)(next - p);
        if ((rc = cb(&part, arg)) != 0) {
            return rc;
        }
        p = next + dlen + 2;
    }
}
