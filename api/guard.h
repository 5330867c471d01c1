/*
 * api/guard.h — the connection guard: every client connection of the API passes through it before
 * evhttp sees a byte. api-internal, like api/internal.h.
 *
 * libevent 2.1.12's evhttp reads a request's whole body into memory before any callback runs, has
 * no connection cap and no deadline on a head or a body. So each accepted connection gets a
 * bufferevent filter under evhttp (evhttp_set_bevcb) that reads every request itself first:
 *
 *   - its line and headers (core/http_head.h), at most limits.max_header_bytes, all of them within
 *     limits.header_timeout_s of their first byte (of the accept, for a connection's first
 *     request); an idle keep-alive connection is still closed by evhttp after request_timeout_s;
 *   - the route (server.c's table, api_route_classify) and, where the route needs one, the bearer
 *     key: a missing or wrong key is answered 401 before a byte of the body is read;
 *   - the declared length against the route's limit (limits.max_body_bytes for JSON routes; an
 *     authenticated POST /v1/files is an upload, capped by files.max_bytes): 413 before the body;
 *   - a body that does not bring limits.min_body_rate bytes/s over each body_rate_window_s: 408;
 *   - a request that may not carry a body (a route that needs no key, or a method evhttp reads none
 *     for) but declares one: answered on its headers alone, the body never read.
 *
 * A request accepted is handed to evhttp whole (head and body, a chunked body turned into a
 * Content-Length one), one at a time: the next request's bytes wait until evhttp has answered.
 * `Expect: 100-continue` is answered by the guard once the headers passed. An upload's body is
 * never handed on: it is streamed into its file as it arrives (api_upload_*), and evhttp gets a
 * bodiless POST /v1/files naming the finished upload (API_UPLOAD_HEADER); an upload that fails
 * part-way (a file over files.max_bytes, too many lines) still has the rest of its declared body
 * read and dropped, so its client gets the answer on a usable connection. A refusal is handed to
 * evhttp as a bodiless GET of "/_guard/<token>.<reason>" (the token is random per process, so no
 * client can reach that route), which api_guard_answer turns into OpenAI's error envelope with
 * "Connection: close"; the rest of the client's input is dropped, and after the answer the
 * socket lingers (input read and dropped) for up to 2 s or until the client closes, so that a
 * client still sending its body reads the answer instead of a reset. A connection that sent
 * nothing by its head deadline is closed without an answer.
 *
 * It also caps the connections at limits.max_connections: at the cap it stops accepting and
 * resumes when one closes; an accept that fails (EMFILE and the like) pauses accepting until a
 * connection closes or 100 ms passed; either is logged at most once per 5 s, with a count (the
 * first of a burst at once, the rest in the next line). A lingering socket counts against the
 * cap until it closes.
 *
 * Memory per connection is bounded: the socket reads at most limits.max_header_bytes + 16 KiB
 * ahead of what the guard consumed, a JSON body at most limits.max_body_bytes, an upload one read.
 */
#ifndef SLUICE_API_GUARD_H
#define SLUICE_API_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "core/err.h"

struct api;
struct api_guard;
struct api_key_ref;
struct api_upload;

/*
 * Installs the guard on a->http (evhttp_set_bevcb). a is borrowed and must outlive the guard's
 * connections' use of it (api_guard_free orders that). NULL with err filled on OOM.
 */
struct api_guard *api_guard_new(struct api *a, struct core_err *err);

/* Takes charge of the listener of bound (the cap and the accept errors). */
void api_guard_listen(struct api_guard *g, struct evhttp_bound_socket *bound);

/* Forgets the listener (call before evhttp_del_accept_socket frees it). */
void api_guard_stop(struct api_guard *g);

/*
 * Frees the guard once its last connection is gone: connections evhttp_free closed are finalized
 * later by libevent (at the latest in event_base_free), and each still counts itself out. NULL
 * is a no-op.
 */
void api_guard_free(struct api_guard *g);

/* The route of refusals ("/_guard/<token>.<reason>" in server.c's table): answers the error the
 * guard chose. */
void api_guard_answer(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);

/*
 * The tenant the guard found for req's key, when req is the request it just handed to evhttp and
 * its key was checked: true with *tenant set (NULL: a key no tenant has) and *key its identity
 * (api/keys.h; NULL with the tenant), so that on_request need not hash the key a second time.
 * False otherwise: authenticate as usual.
 */
bool api_guard_tenant(struct api *a, struct evhttp_request *req, const char **tenant,
                      const struct api_key_ref **key);

/*
 * The finished upload a guarded POST /v1/files names (the value of its API_UPLOAD_HEADER): the
 * caller takes it (api_upload_free). NULL when the value names none, which only a request the
 * guard did not make can do.
 */
struct api_upload *api_guard_take_upload(struct api *a, const char *value);

/*
 * Appends the guard's metrics in Prometheus text to out: sluice_http_connections (gauge),
 * sluice_http_connections_max, sluice_http_accept_paused_total{cause="cap"|"error"} and
 * sluice_http_refused_total{reason}.
 */
void api_guard_metrics(struct api *a, struct evbuffer *out);

/* ---- provided by server.c ---------------------------------------------------------------- */

/* How a route's body is read. */
enum api_route_body {
    API_ROUTE_JSON = 0, /* read whole, at most limits.max_body_bytes */
    API_ROUTE_UPLOAD,   /* POST /v1/files: streamed to disk by the guard */
    API_ROUTE_NO_BODY,  /* evhttp reads no body for the method (HEAD, methods it does not know) */
    API_ROUTE_SIGNED,   /* no bearer key, a body all the same: the handler authenticates it by its
                         * signature (provider callbacks, api/provider_callbacks.h); read whole,
                         * at most API_CALLBACK_BODY_MAX, and only for a callback URL sluice
                         * handed out (else answered on its headers alone) */
};

struct api_route_info {
    bool known; /* a route of the table has this path and method */
    bool auth;  /* it needs a tenant's key */
    enum api_route_body body;
};

/* What server.c's route table says about method and path (neither NUL-terminated). */
void api_route_classify(const char *method, size_t method_len, const char *path, size_t path_len,
                        struct api_route_info *out);

/* The api's guard (api_new makes it). */
struct api_guard *api_guard_of(struct api *a);

#endif
