/*
 * worker/http_response.c — a response's body and headers as they arrive, bounded (see
 * worker/http_response.h).
 */
#include "worker/http_response.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"

/* The packed headers never need more than this: every kept line at its longest. */
#define HDR_LIMIT ((size_t)HTTP_CLIENT_MAX_HEADERS * (HTTP_CLIENT_MAX_HEADER_LINE + 2))

/*
 * Makes *buf hold at least need bytes, growing geometrically but never past limit. Returns 0, or
 * -1 when need passes limit or realloc fails (the old buffer stays valid either way).
 */
static int buf_reserve(char **buf, size_t *cap, size_t need, size_t limit)
{
    size_t n = *cap ? *cap : 1024;
    char *p;

    if (need <= *cap) {
        return 0;
    }
    if (need > limit) {
        return -1;
    }
    while (n < need) {
        n = n > limit / 2 ? limit : n * 2;
    }
    if (n > limit) {
        n = limit;
    }
    p = realloc(*buf, n);
    if (!p) {
        return -1;
    }
    *buf = p;
    *cap = n;
    return 0;
}

void http_response_buf_clear(struct http_response_buf *rb)
{
    rb->body_len = 0;
    rb->hdr_len = 0;
    rb->n_hdrs = 0;
}

/* One byte more than the body is reserved, for the NUL http_response_buf_text adds. */
int http_response_buf_body(struct http_response_buf *rb, const char *data, size_t len, size_t max)
{
    if (len > max - rb->body_len) {
        return HTTP_RESPONSE_TOO_LARGE;
    }
    if (buf_reserve(&rb->body, &rb->body_cap, rb->body_len + len + 1, max + 1) != 0) {
        return HTTP_RESPONSE_NOMEM;
    }
    memcpy(rb->body + rb->body_len, data, len);
    rb->body_len += len;
    return HTTP_RESPONSE_OK;
}

int http_response_buf_header(struct http_response_buf *rb, const char *data, size_t len)
{
    const char *colon, *v, *end = data + len;
    size_t name_len, value_len;
    char *out;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        rb->n_hdrs = 0;
        rb->hdr_len = 0;
        return HTTP_RESPONSE_OK;
    }
    if (len > HTTP_CLIENT_MAX_HEADER_LINE || rb->n_hdrs == HTTP_CLIENT_MAX_HEADERS || len == 0 ||
        data[0] == ' ' || data[0] == '\t' || memchr(data, '\0', len) != NULL) {
        return HTTP_RESPONSE_OK;
    }
    colon = memchr(data, ':', len);
    if (!colon || colon == data) {
        return HTTP_RESPONSE_OK;
    }
    name_len = (size_t)(colon - data);
    while (name_len > 0 && (data[name_len - 1] == ' ' || data[name_len - 1] == '\t')) {
        name_len--;
    }
    v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    value_len = (size_t)(end - v);
    if (buf_reserve(&rb->hdr_buf, &rb->hdr_cap, rb->hdr_len + name_len + value_len + 2,
                    HDR_LIMIT) != 0) {
        return HTTP_RESPONSE_NOMEM;
    }
    out = rb->hdr_buf + rb->hdr_len;
    for (size_t i = 0; i < name_len; i++) {
        out[i] = (char)tolower((unsigned char)data[i]);
    }
    out[name_len] = '\0';
    memcpy(out + name_len + 1, v, value_len);
    out[name_len + 1 + value_len] = '\0';
    rb->n_hdrs++;
    rb->hdr_len += name_len + value_len + 2;
    return HTTP_RESPONSE_OK;
}

const char *http_response_buf_text(struct http_response_buf *rb, size_t *len)
{
    *len = rb->body_len;
    if (!rb->body) {
        return "";
    }
    rb->body[rb->body_len] = '\0';
    return rb->body;
}

size_t http_response_buf_headers(const struct http_response_buf *rb, struct adapter_header *out)
{
    const char *p = rb->hdr_buf;

    for (size_t i = 0; i < rb->n_hdrs; i++) {
        out[i].name = p;
        p += strlen(p) + 1;
        out[i].value = p;
        p += strlen(p) + 1;
    }
    return rb->n_hdrs;
}

void http_response_buf_recycle(struct http_response_buf *rb, size_t keep)
{
    http_response_buf_clear(rb);
    if (rb->body_cap > keep) {
        free(rb->body);
        rb->body = NULL;
        rb->body_cap = 0;
    }
    if (rb->hdr_cap > keep) {
        free(rb->hdr_buf);
        rb->hdr_buf = NULL;
        rb->hdr_cap = 0;
    }
}

void http_response_buf_cleanup(struct http_response_buf *rb)
{
    free(rb->body);
    free(rb->hdr_buf);
    memset(rb, 0, sizeof(*rb));
}
