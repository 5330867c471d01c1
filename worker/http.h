/*
 * worker/http.h — the worker's upstream HTTP transport.
 *
 * libcurl's multi interface driven by the worker's libevent loop: curl tells us which sockets to
 * watch and when to wake it (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION), libevent watches
 * them, and curl_multi_socket_action does the work. Nothing here blocks and nothing starts a
 * thread (curl's own resolver may use one for DNS; that is curl's business). Hundreds to thousands
 * of calls may be in flight per client; connections are kept alive in the client's connection
 * cache and reused, and finished easy handles are recycled.
 *
 * The process calls curl_global_init() once at start, before any http_client_new, and
 * curl_global_cleanup() after the last http_client_free.
 *
 * Callback rules, in the libuv spirit: a call that returns NULL never calls its callback; a call
 * that returns a handle calls its callback exactly once, always from the event loop (never from
 * inside http_client_send), unless it is cancelled or its client freed first.
 */
#ifndef SLUICE_WORKER_HTTP_H
#define SLUICE_WORKER_HTTP_H

#include <stddef.h>

#include <event2/event.h>

#include "adapters/adapter.h"

struct http_client;
struct http_call;

/*
 * Client settings. Zero (or NULL) in any field means the default named here.
 *   max_total_connections  open connections across all hosts; calls beyond it wait inside curl
 *                          for a free connection (default 0: unlimited)
 *   max_host_connections   open connections to one host (default 0: unlimited)
 *   connect_timeout_ms     TCP + TLS connect limit (default 10000)
 *   max_response_bytes     response body cap; a longer body ends the call with
 *                          ADAPTER_TRANSPORT_TOO_LARGE (default 64 MiB)
 *   user_agent             User-Agent header (default "sluice"); copied
 */
struct http_client_opts {
    int max_total_connections;
    int max_host_connections;
    long connect_timeout_ms;
    size_t max_response_bytes;
    const char *user_agent;
};

/* At most this many response headers are kept per call; later ones are dropped. */
#define HTTP_CLIENT_MAX_HEADERS 100
/* A response header line longer than this (name, value and CRLF) is dropped. */
#define HTTP_CLIENT_MAX_HEADER_LINE 8192

/*
 * A new client on base (borrowed; must outlive the client). opts is borrowed and may be NULL for
 * all defaults. Returns NULL on failure (out of memory, curl refused an option).
 */
struct http_client *http_client_new(struct event_base *base, const struct http_client_opts *opts);

/*
 * Aborts every in-flight call WITHOUT calling its callback, closes the cached connections and
 * frees everything the client owns. Every http_call handle of this client becomes invalid.
 * NULL is a no-op.
 *
 * May be called from inside an http_client_cb: the in-flight calls are aborted at once and the
 * memory is released when that callback returns, so the callback may still read its resp but must
 * not use the client again.
 */
void http_client_free(struct http_client *c);

/*
 * The result of a call. resp and everything it points to (body, headers, transport_msg) are
 * borrowed and valid only while the callback runs: copy out what you keep.
 *   transport == ADAPTER_TRANSPORT_OK: status is the HTTP status, body is the whole body (never
 *     NULL, NUL-terminated for convenience, body_len excludes the NUL), transport_msg is NULL.
 *   otherwise: status is 0, body is NULL, body_len 0, transport_msg says what went wrong.
 * headers holds the final response's headers (names in lower case, values trimmed, at most
 * HTTP_CLIENT_MAX_HEADERS) as far as they arrived. now_ms is the wall clock at completion.
 */
typedef void (*http_client_cb)(const struct adapter_response *resp, void *arg);

/*
 * Starts req on c. req is borrowed: method, url, headers and body are copied before this returns.
 * Methods: GET, POST, or any other token sent as a custom method with the body, if any. Redirects
 * are not followed; HTTP/1.1 only. timeout_ms (> 0) bounds the whole call, including waiting for
 * a free connection, connecting, sending and receiving. arg is passed to cb untouched.
 *
 * Returns the call handle, valid until cb returns or the call is cancelled; or NULL on immediate
 * failure (bad argument, out of memory), in which case cb is never called. Otherwise cb is called
 * exactly once from the event loop, never from inside this function, unless the call is cancelled
 * with http_call_cancel or the client freed first. A URL curl cannot use is reported through cb
 * (transport OTHER), not as NULL.
 *
 * Re-entrancy: cb may call http_client_send and http_call_cancel on the same client, and
 * http_client_free (see there).
 */
struct http_call *http_client_send(struct http_client *c, const struct adapter_request *req,
                                   long timeout_ms, http_client_cb cb, void *arg);

/*
 * Aborts an in-flight call; its callback is not called. Safe from inside any callback, including
 * another call's http_client_cb. Cancelling a call from inside its own callback is a no-op.
 * call must be a live handle (not yet completed, cancelled, or freed with its client).
 */
void http_call_cancel(struct http_call *call);

/* Calls started and not yet completed or cancelled. */
size_t http_client_in_flight(const struct http_client *c);

#endif
