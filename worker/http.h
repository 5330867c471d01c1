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
 *
 * Streaming calls (http_client_send_stream) add a data callback that sees a 2xx body chunk by
 * chunk as it arrives, instead of the body being collected for the final callback.
 */
#ifndef SLUICE_WORKER_HTTP_H
#define SLUICE_WORKER_HTTP_H

#include <stdbool.h>
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
 *                          ADAPTER_TRANSPORT_TOO_LARGE (default 64 MiB). A streamed 2xx body is
 *                          not buffered and not capped: its receiver bounds what it keeps
 *   user_agent             User-Agent header (default "sluice"); copied
 *   idle_timeout_ms        streaming calls only: once the request is on its way (connected,
 *                          about to be sent), the longest wait for the next byte of the response
 *                          (header or body); a longer silence ends the call with
 *                          ADAPTER_TRANSPORT_TIMEOUT (default 0: no idle limit, only the call's
 *                          timeout). Buffered calls ignore it: a non-streamed reply may
 *                          legitimately stay silent until it is complete
 */
struct http_client_opts {
    int max_total_connections;
    int max_host_connections;
    long connect_timeout_ms;
    size_t max_response_bytes;
    const char *user_agent;
    long idle_timeout_ms;
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
 * May be called from inside an http_client_cb or an http_client_data_cb: the in-flight calls are
 * aborted at once (none of their callbacks runs again) and the memory is released when that
 * callback returns, so the callback may still read its resp or buf but must not use the client
 * again.
 */
void http_client_free(struct http_client *c);

/*
 * The result of a call. resp and everything it points to (body, headers, transport_msg) are
 * borrowed and valid only while the callback runs: copy out what you keep.
 *   transport == ADAPTER_TRANSPORT_OK: status is the HTTP status, body is the whole body (never
 *     NULL, NUL-terminated for convenience, body_len excludes the NUL), transport_msg is NULL.
 *     Exception: a streamed 2xx (see http_client_send_stream) has body NULL and body_len 0.
 *   otherwise: status is 0, body is NULL, body_len 0, transport_msg says what went wrong.
 * headers holds the final response's headers (names in lower case, values trimmed, at most
 * HTTP_CLIENT_MAX_HEADERS) as far as they arrived. now_ms is the wall clock at completion.
 */
typedef void (*http_client_cb)(const struct adapter_response *resp, void *arg);

/*
 * A piece of a streamed 2xx body, in arrival order. status is the response's HTTP status; buf
 * (len > 0 bytes, not NUL-terminated) is borrowed and valid only during the call. Return 0 to go
 * on, or non-zero to abort the transfer: the call then completes with ADAPTER_TRANSPORT_OTHER and
 * transport_msg "aborted by the receiver".
 */
typedef int (*http_client_data_cb)(int status, const char *buf, size_t len, void *arg);

/*
 * Starts req on c. req is borrowed: method, url, headers and body are copied before this returns.
 * Methods: GET, HEAD, POST, PUT, PATCH, DELETE, or any other token of letters, sent as a custom
 * method. req->body, when not NULL, is sent with any method but HEAD; when it is NULL, POST, PUT
 * and PATCH send an empty body (Content-Length: 0) and the others none. Redirects are not
 * followed; HTTP/1.1 only. timeout_ms (> 0) bounds the whole call, including waiting for a free
 * connection, connecting, sending and receiving. arg is passed to cb untouched.
 *
 * Returns the call handle, valid until cb returns or the call is cancelled; or NULL on immediate
 * failure (bad argument, out of memory), in which case cb is never called. Otherwise cb is called
 * exactly once from the event loop, never from inside this function, unless the call is cancelled
 * with http_call_cancel or the client freed first. A URL curl cannot use is reported through cb
 * (transport OTHER), not as NULL.
 *
 * Re-entrancy: cb may call http_client_send, http_client_send_stream and http_call_cancel on the
 * same client, and http_client_free (see there).
 */
struct http_call *http_client_send(struct http_client *c, const struct adapter_request *req,
                                   long timeout_ms, http_client_cb cb, void *arg);

/*
 * Like http_client_send, but a 2xx response body is not collected: each piece is handed to
 * on_data as it arrives, and on_done then gets status and headers with body NULL, body_len 0.
 * max_response_bytes does not apply to the streamed total; idle_timeout_ms (client opts) does.
 * A non-2xx response is buffered (within max_response_bytes) and given to on_done exactly as
 * http_client_send does; on_data is never called for it. timeout_ms still bounds the whole call,
 * so a long stream needs a long one.
 *
 * on_data and on_done must not be NULL; arg goes to both. on_data is only called from the event
 * loop, never from inside this function, never after the call is cancelled or its client freed,
 * and never after on_done. on_done is called exactly once, as for http_client_send.
 *
 * Re-entrancy in on_data (which runs inside curl's processing): it may call http_call_cancel on
 * this or any other call of the client, and http_client_free (buf stays valid until on_data
 * returns); the cancelled calls, this one included, then never call back. It cannot start calls
 * on the same client: http_client_send and http_client_send_stream return NULL there (start
 * them from on_done, or from a zero timer). Returning non-zero ends this call and still gets
 * on_done.
 */
struct http_call *http_client_send_stream(struct http_client *c, const struct adapter_request *req,
                                          long timeout_ms, http_client_data_cb on_data,
                                          http_client_cb on_done, void *arg);

/*
 * Like http_client_send, for URLs that come from tenants (webhooks): the call may only connect to
 * an address netaddr_allowed(allow, <URL host>, <address>) accepts — public addresses, and the
 * exceptions allow lists (NULL: none). Otherwise the call completes through cb with
 * ADAPTER_TRANSPORT_CONNECT and a transport_msg like "address refused: 10.0.0.5 is private".
 *
 * The check runs on each address curl is about to open a socket to (CURLOPT_OPENSOCKETFUNCTION),
 * after curl's own resolution, so a DNS answer that changes between a check and the connect
 * (rebinding) cannot get past it; of a name's several addresses, the refused ones are skipped and
 * the others tried. The URL host the name entries are matched against is the one curl connects
 * to (the same parsed URL handle). A guarded call never reuses a pooled connection and its own is
 * closed after it (CURLOPT_FRESH_CONNECT, CURLOPT_FORBID_REUSE): a pooled connection may have
 * been opened by an unguarded call, or under another allow list, and never passed this check.
 * That costs a TCP (and TLS) handshake per call, which deliveries to many tenants' endpoints
 * would mostly pay anyway. Proxies from the environment are not used, so the address checked is
 * the target's own. Redirects are never followed, as for every call.
 *
 * allow is borrowed and must stay valid and unchanged until cb has run or the call is cancelled
 * (it is read when curl connects). Everything else is as for http_client_send.
 */
struct netaddr_allow;
struct http_call *http_client_send_guarded(struct http_client *c, const struct adapter_request *req,
                                           long timeout_ms, const struct netaddr_allow *allow,
                                           http_client_cb cb, void *arg);

/*
 * http_client_send_stream and http_client_send_guarded in one: a streamed 2xx body, for a URL
 * that came from a provider (artifact downloads), under the address guard. A refused call
 * completes through on_done exactly as for http_client_send_guarded; on_data is never called for
 * it. allow as for http_client_send_guarded; everything else as for http_client_send_stream.
 */
struct http_call *
http_client_send_guarded_stream(struct http_client *c, const struct adapter_request *req,
                                long timeout_ms, const struct netaddr_allow *allow,
                                http_client_data_cb on_data, http_client_cb on_done, void *arg);

/*
 * True when resp is a guarded call's refusal (the transport is ADAPTER_TRANSPORT_CONNECT and
 * no address the URL's host resolved to passed the check), as opposed to a connection that was
 * allowed and then failed. resp is borrowed; NULL is false.
 */
bool http_response_refused(const struct adapter_response *resp);

/*
 * Aborts an in-flight call; neither its callback nor (for a stream) its data callback is called
 * again. Safe from inside any callback, including another call's http_client_cb and any call's
 * http_client_data_cb (its own included). Cancelling a call from inside its own http_client_cb is
 * a no-op. call must be a live handle (not yet completed, cancelled, or freed with its client).
 */
void http_call_cancel(struct http_call *call);

/* Calls started and not yet completed or cancelled. */
size_t http_client_in_flight(const struct http_client *c);

#endif
