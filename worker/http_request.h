/*
 * worker/http_request.h — what an upstream call sends: a struct adapter_request (method, URL,
 * headers, body) put on a curl easy handle, under the transport's rules for methods and bodies.
 *
 * Internal to worker/http*.c; callers see the contract in worker/http.h. How the call runs
 * (timeouts, caps, callbacks, connection options) is worker/http.c's business.
 */
#ifndef SLUICE_WORKER_HTTP_REQUEST_H
#define SLUICE_WORKER_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "adapters/adapter.h"

/*
 * The request's copies curl reads while the call runs: its header list and its body. Embedded in
 * a call and reused across the calls it serves, so that a call does not allocate a body per
 * request; zero-initialised it is empty.
 */
struct http_request_buf {
    struct curl_slist *headers;
    char *body;
    size_t body_cap;
};

/* True when method (a field of size bytes) is a non-empty token of letters that fits it. */
bool http_request_method_ok(const char *method, size_t size);

/*
 * Sets easy up to send req (borrowed: method, URL, headers and body are copied, the last two
 * into rb, before this returns): the URL, the request headers (a line holding CR or LF is
 * refused) plus an empty "Expect:", the method, and the body. POST, PUT and PATCH always send a
 * body (an empty one when req->body is NULL); HEAD never does; the others only when they have
 * one. rb must be empty (fresh, or after http_request_buf_recycle) and stays owned by the
 * caller; curl points into it until the handle is reset. Returns 0 or -1 (a bad header, out of
 * memory, curl refused an option).
 */
int http_request_set(CURL *easy, const struct adapter_request *req, struct http_request_buf *rb);

/*
 * Empties rb for the next request, once curl no longer points into it (after curl_easy_reset):
 * frees the header list, and the body buffer when it is larger than keep bytes.
 */
void http_request_buf_recycle(struct http_request_buf *rb, size_t keep);

/* Frees what rb holds (after the handle that pointed into it is gone). */
void http_request_buf_cleanup(struct http_request_buf *rb);

#endif
