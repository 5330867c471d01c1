/*
 * worker/http_request.c — a struct adapter_request on a curl easy handle (see
 * worker/http_request.h).
 */
#include "worker/http_request.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Methods whose request always carries a body: with req->body NULL they send an empty one, so
 * that "Content-Length: 0" goes out (RFC 9110 8.6: a request whose method defines a meaning for
 * content should say its length). Every other method sends a body only when it has one.
 */
static const char *const body_methods[] = {"POST", "PUT", "PATCH"};

/* A header line we send must be one line: refuse CR/LF so config values cannot inject headers. */
static bool header_line_ok(const char *h)
{
    return h && strpbrk(h, "\r\n") == NULL;
}

bool http_request_method_ok(const char *method, size_t size)
{
    size_t n = strnlen(method, size);

    if (n == 0 || n == size) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalpha((unsigned char)method[i])) {
            return false;
        }
    }
    return true;
}

/* True when method's request carries a body even if req->body is NULL (see body_methods). */
static bool method_has_body(const char *method)
{
    for (size_t i = 0; i < sizeof(body_methods) / sizeof(body_methods[0]); i++) {
        if (strcmp(method, body_methods[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * The body is copied into rb's buffer (reused across calls) instead of CURLOPT_COPYPOSTFIELDS, to
 * avoid one allocation per call; it is sized to the body rather than grown geometrically, because
 * the call holds it for as long as it waits (curl may need it again to resend on a fresh
 * connection). An explicit empty "Expect:" stops curl from waiting for 100-continue on large
 * bodies. Any body goes out through CURLOPT_POSTFIELDS, which makes curl send a POST; every other
 * method is then named with CURLOPT_CUSTOMREQUEST, which changes only the request line.
 */
int http_request_set(CURL *easy, const struct adapter_request *req, struct http_request_buf *rb)
{
    bool has_body = req->body != NULL || method_has_body(req->method);
    bool has_expect = false;
    bool ok = true;
    int rc = -1;

    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *l;

        if (!header_line_ok(req->headers[i])) {
            goto out;
        }
        has_expect = has_expect || strncasecmp(req->headers[i], "expect:", 7) == 0;
        l = curl_slist_append(rb->headers, req->headers[i]);
        if (!l) {
            goto out;
        }
        rb->headers = l;
    }
    if (!has_expect) {
        struct curl_slist *l = curl_slist_append(rb->headers, "Expect:");

        if (!l) {
            goto out;
        }
        rb->headers = l;
    }
    if (has_body) {
        size_t len = req->body ? req->body_len : 0;

        if (rb->body_cap < len + 1) {
            free(rb->body);
            rb->body_cap = 0;
            rb->body = malloc(len + 1);
            if (!rb->body) {
                goto out;
            }
            rb->body_cap = len + 1;
        }
        if (len) {
            memcpy(rb->body, req->body, len);
        }
        rb->body[len] = '\0';
        ok &= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK;
        ok &= curl_easy_setopt(easy, CURLOPT_POSTFIELDS, rb->body) == CURLE_OK;
    }
    if (strcmp(req->method, "HEAD") == 0) {
        ok &= curl_easy_setopt(easy, CURLOPT_NOBODY, 1L) == CURLE_OK;
    } else if (strcmp(req->method, "POST") != 0 && (strcmp(req->method, "GET") != 0 || has_body)) {
        /* POSTFIELDS alone means POST and no body means GET; anything else is named. */
        ok &= curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method) == CURLE_OK;
    }
    ok &= curl_easy_setopt(easy, CURLOPT_URL, req->url) == CURLE_OK;
    ok &= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, rb->headers) == CURLE_OK;
    if (ok) {
        rc = 0;
    }
out:
    return rc;
}

void http_request_buf_recycle(struct http_request_buf *rb, size_t keep)
{
    curl_slist_free_all(rb->headers);
    rb->headers = NULL;
    if (rb->body_cap > keep) {
        free(rb->body);
        rb->body = NULL;
        rb->body_cap = 0;
    }
}

void http_request_buf_cleanup(struct http_request_buf *rb)
{
    curl_slist_free_all(rb->headers);
    free(rb->body);
    rb->headers = NULL;
    rb->body = NULL;
    rb->body_cap = 0;
}
