/*
 * api/guard_input.c — the connection guard's input side (what it does and why: api/guard.h): each
 * request's line and headers read and decided on before its body, the body handed to evhttp whole
 * or streamed into an upload, the deadlines, and the refusals with the answers evhttp gives for
 * them through the "/_guard/" route.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api/files.h"
#include "api/guard_internal.h"
#include "api/internal.h"
#include "api/provider_callbacks.h"
#include "core/log.h"

#define GUARD_KEY_MAX 1024
#define GUARD_SCAN_VECS 8

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* What a refusal's message shows besides text: nothing, the limit, or the size and the limit. */
enum shape { SHOW_NONE, SHOW_LIMIT, SHOW_SIZE_LIMIT };

/* Which configured limit a message names. */
enum limit { LIMIT_NONE, LIMIT_BODY, LIMIT_HEADERS, LIMIT_HEADER_S, LIMIT_RATE };

static const struct refusal_row {
    const char *name; /* in the "/_guard/" path and the metrics */
    int status;
    int code; /* CORE_E*: the error type */
    const char *err_code;
    enum shape shape;
    enum limit limit;
    const char *message; /* SHOW_LIMIT: one %ld; SHOW_SIZE_LIMIT: %lld then %ld */
} refusals[R_COUNT] = {
    [R_KEY_MISSING] = {"key_missing", 401, CORE_EAUTH, "missing_api_key", SHOW_NONE, LIMIT_NONE,
                       "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'"},
    [R_KEY_INVALID] = {"key_invalid", 401, CORE_EAUTH, "invalid_api_key", SHOW_NONE, LIMIT_NONE,
                       "Incorrect API key provided"},
    [R_BODY_TOO_LARGE] = {"body_too_large", 413, CORE_ETOOLARGE, "request_too_large",
                          SHOW_SIZE_LIMIT, LIMIT_BODY,
                          "Request body of %lld bytes is larger than the limit of %ld bytes"},
    [R_HEADERS_TOO_LARGE] = {"headers_too_large", 431, CORE_EINVAL, "headers_too_large", SHOW_LIMIT,
                             LIMIT_HEADERS,
                             "The request line and headers are larger than the limit of %ld "
                             "bytes"},
    [R_BAD_REQUEST] = {"bad_request", 400, CORE_EINVAL, "invalid_http_request", SHOW_NONE,
                       LIMIT_NONE, "The request line or a header field is malformed"},
    [R_BAD_CHUNKS] = {"bad_chunks", 400, CORE_EINVAL, "invalid_http_request", SHOW_NONE, LIMIT_NONE,
                      "The chunked request body is malformed"},
    [R_RESERVED_HEADER] = {"reserved_header", 400, CORE_EINVAL, "invalid_http_request", SHOW_NONE,
                           LIMIT_NONE, "The header " API_UPLOAD_HEADER " is sluice's own"},
    [R_NOT_ORIGIN_FORM] = {"not_origin_form", 400, CORE_EINVAL, "invalid_http_request", SHOW_NONE,
                           LIMIT_NONE, "The request target must be a path"},
    [R_NOT_IMPLEMENTED] = {"not_implemented", 501, CORE_EINVAL, "unsupported_transfer_encoding",
                           SHOW_NONE, LIMIT_NONE,
                           "Transfer-Encoding other than chunked is not supported"},
    [R_EXPECTATION] = {"expectation", 417, CORE_EINVAL, "expectation_failed", SHOW_NONE, LIMIT_NONE,
                       "The only expectation supported is 100-continue"},
    [R_HEADER_TIMEOUT] = {"header_timeout", 408, CORE_EINVAL, "request_timeout", SHOW_LIMIT,
                          LIMIT_HEADER_S,
                          "The request line and headers did not arrive within %ld s"},
    [R_BODY_TIMEOUT] = {"body_timeout", 408, CORE_EINVAL, "request_timeout", SHOW_LIMIT, LIMIT_RATE,
                        "The request body arrived slower than %ld bytes/s"},
    [R_BODY_NOT_READ] = {"body_not_read", 0, 0, NULL, SHOW_NONE, LIMIT_NONE, NULL},
};

static long limit_value(const struct config *cfg, enum limit l)
{
    switch (l) {
    case LIMIT_BODY:
        return cfg->limits.max_body_bytes;
    case LIMIT_HEADERS:
        return cfg->limits.max_header_bytes;
    case LIMIT_HEADER_S:
        return cfg->limits.header_timeout_s;
    case LIMIT_RATE:
        return cfg->limits.min_body_rate;
    case LIMIT_NONE:
        break;
    }
    return 0;
}

const char *api_guard_refusal_name(enum refusal r)
{
    return refusals[r].name;
}

void api_guard_request_reset(struct api_guard_conn *c)
{
    http_head_scan_init(&c->scan);
    c->scanned = 0;
    c->deadline_ms = 0;
    c->body_left = 0;
    c->body_bytes = 0;
    c->window_bytes = 0;
    c->tenant = NULL;
    c->key = NULL;
    c->key_checked = false;
    if (c->held != NULL) {
        evbuffer_drain(c->held, evbuffer_get_length(c->held));
    }
    free(c->head_copy);
    c->head_copy = NULL;
    c->head_copy_len = 0;
}

/* ---- input: the requests, one at a time -------------------------------------------------- */

/*
 * Hands evhttp a bodiless GET of the refusal route for r (n: the size its message shows), drops
 * what the client sent, and drops the rest of its input: evhttp answers, then closes.
 */
static void refuse(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst,
                   enum refusal r, int64_t n)
{
    evbuffer_add_printf(dst, "GET /_guard/%s.%s?n=%lld HTTP/1.1\r\nConnection: close\r\n\r\n",
                        c->g->token, refusals[r].name, (long long)n);
    c->g->refused[r]++;
    c->g->handoff_bev = NULL;
    evbuffer_drain(src, evbuffer_get_length(src));
    api_upload_free(c->upload);
    c->upload = NULL;
    timer_off(c);
    api_guard_request_reset(c);
    c->state = C_DROP;
}

/* Appends the head's field lines (not its empty line), leaving out the marked kinds in strip. */
static void add_head(struct evbuffer *out, const char *head, const struct http_head *h, int strip)
{
    size_t at = 0;

    for (size_t i = 0; i < h->n_marked; i++) {
        if (h->marked[i].kind & strip) {
            evbuffer_add(out, head + at, h->marked[i].off - at);
            at = h->marked[i].off + h->marked[i].len;
        }
    }
    evbuffer_add(out, head + at, h->fields_end - at);
}

/* A copy of the head without its framing lines and its empty line, for a head rebuilt later. */
static int keep_head(struct api_guard_conn *c, const char *head, const struct http_head *h,
                     int strip)
{
    char *out = malloc(h->fields_end + 1);
    size_t at = 0, n = 0;

    if (out == NULL) {
        return -1;
    }
    for (size_t i = 0; i < h->n_marked; i++) {
        if (h->marked[i].kind & strip) {
            memcpy(out + n, head + at, h->marked[i].off - at);
            n += h->marked[i].off - at;
            at = h->marked[i].off + h->marked[i].len;
        }
    }
    memcpy(out + n, head + at, h->fields_end - at);
    c->head_copy = out;
    c->head_copy_len = n + h->fields_end - at;
    return 0;
}

/* The kinds of marked lines the head has. */
static int marked_kinds(const struct http_head *h)
{
    int kinds = 0;
    for (size_t i = 0; i < h->n_marked; i++) {
        kinds |= h->marked[i].kind;
    }
    return kinds;
}

/* Scans the new bytes of src for the head's end. Returns the head's length, or 0. */
static size_t scan_head(struct api_guard_conn *c, struct evbuffer *src, size_t limit)
{
    size_t len = evbuffer_get_length(src);
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[GUARD_SCAN_VECS];

    if (len > limit) {
        len = limit;
    }
    while (c->scanned < len) {
        int n;
        if (evbuffer_ptr_set(src, &at, c->scanned, EVBUFFER_PTR_SET) < 0) {
            return 0;
        }
        n = evbuffer_peek(src, (ev_ssize_t)(len - c->scanned), &at, v, GUARD_SCAN_VECS);
        for (int i = 0; i < n && i < GUARD_SCAN_VECS; i++) {
            size_t take = v[i].iov_len < len - c->scanned ? v[i].iov_len : len - c->scanned;
            size_t end = http_head_scan(&c->scan, v[i].iov_base, take);
            if (end > 0) {
                return c->scanned + end;
            }
            c->scanned += take;
        }
    }
    return 0;
}

/*
 * The identity of the bearer key in the request's Authorization when it is a usable key (its
 * tenant: ->tenant), or NULL; *given: a key was sent. api_keys_auth hashes the key (SHA-256, a
 * twentieth of an accepted task's instructions), so a connection remembers its last
 * Authorization value and identity: a client sends the same one on every request of a
 * keep-alive connection. The comparison is against what this same connection sent before, so
 * its timing tells the client nothing it did not send itself. The memory is dropped when the
 * keys' table changed since (a key created or revoked anywhere: api/keys.h), and a remembered
 * identity is checked again for its expiry and revocation on every request.
 */
static const struct api_key_ref *tenant_of(struct api_guard_conn *c, const struct http_head *h,
                                           bool *given)
{
    struct api_keys *keys = c->g->api->keys;
    int64_t now_s = util_now_ms() / 1000;
    uint64_t gen = api_keys_gen(keys);

    *given = h->authorization != NULL && h->authorization_len > 7 &&
             strncasecmp(h->authorization, "Bearer ", 7) == 0;
    if (!*given) {
        return NULL;
    }
    if (c->key_cache_len > 0 && c->key_cache_len == h->authorization_len &&
        c->key_cache_gen == gen && memcmp(c->key_cache, h->authorization, c->key_cache_len) == 0) {
        return api_key_ref_usable(c->key_cache_ref, now_s) ? c->key_cache_ref : NULL;
    }
    if (h->authorization_len - 7 >= GUARD_KEY_MAX) {
        return NULL;
    }
    c->key_cache_ref =
        api_keys_auth(keys, c->g->cfg, h->authorization + 7, h->authorization_len - 7, now_s);
    c->key_cache_gen = gen;
    c->key_cache_len = h->authorization_len <= sizeof(c->key_cache) ? h->authorization_len : 0;
    memcpy(c->key_cache, h->authorization, c->key_cache_len);
    return c->key_cache_ref;
}

/* Whether path (path_len bytes) is on the admin surface, /v1/admin/... */
static bool is_admin_path(const char *path, size_t path_len)
{
    static const char prefix[] = "/v1/admin/";

    return path_len > sizeof(prefix) - 1 && memcmp(path, prefix, sizeof(prefix) - 1) == 0;
}

/* Whether the request's bearer key is one of the config's admin keys (hashed and compared as
 * api_admin_authorized does; only for a body to the admin surface, never on the task path). */
static bool admin_key_of(const struct config *cfg, const struct http_head *h)
{
    char key[GUARD_KEY_MAX];
    size_t n;

    if (h->authorization == NULL || h->authorization_len <= 7 ||
        strncasecmp(h->authorization, "Bearer ", 7) != 0) {
        return false;
    }
    n = h->authorization_len - 7;
    if (n >= sizeof(key)) {
        return false;
    }
    memcpy(key, h->authorization + 7, n);
    key[n] = '\0';
    return config_is_admin_key(cfg, key);
}

/*
 * The request is with evhttp now: the next one waits until it is answered, and on_request takes
 * the tenant checked here rather than hashing the key again (api_guard_tenant): evhttp dispatches
 * the request within this same callback, before any other connection's bytes are read.
 */
static void handed_on(struct api_guard_conn *c)
{
    c->state = C_AWAIT;
    c->g->handoff_bev = c->key_checked ? c->bev : NULL;
    c->g->handoff_tenant = c->tenant;
    c->g->handoff_key = c->key;
}

static bool write_continue(struct api_guard_conn *c)
{
    return send(conn_fd(c), continue_line, sizeof(continue_line) - 1, MSG_NOSIGNAL) ==
           (ssize_t)(sizeof(continue_line) - 1);
}

/* The request's head passed: the body follows (JSON, held until complete). */
static bool start_body(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst,
                       const char *head, const struct http_head *h)
{
    size_t len = h->len;
    int kinds = marked_kinds(h);

    if (!h->chunked && !(kinds & HTTP_HEAD_STRIP_EXPECT) &&
        evbuffer_get_length(src) >= len + (size_t)h->content_length) {
        /* the common case: all here, nothing to rewrite */
        evbuffer_remove_buffer(src, dst, len + (size_t)h->content_length);
        handed_on(c);
        return true;
    }
    if (c->held == NULL && (c->held = evbuffer_new()) == NULL) {
        refuse(c, src, dst, R_BAD_REQUEST, 0);
        return true;
    }
    if (h->chunked) {
        if (keep_head(c, head, h, HTTP_HEAD_STRIP_LENGTH | HTTP_HEAD_STRIP_EXPECT) < 0) {
            refuse(c, src, dst, R_BAD_REQUEST, 0);
            return true;
        }
        http_chunked_init(&c->chunks);
        c->body_left = -1;
    } else {
        add_head(c->held, head, h, HTTP_HEAD_STRIP_EXPECT);
        evbuffer_add(c->held, "\r\n", 2);
        c->body_left = h->content_length;
    }
    if (h->expect_continue && evbuffer_get_length(src) == len && !write_continue(c)) {
        c->write_failed = true;
        event_active(c->kick, EV_TIMEOUT, 1);
    }
    evbuffer_drain(src, len);
    c->state = C_BODY;
    return true;
}

/* The upload's answer: evhttp gets a bodiless POST /v1/files naming it; the upload waits in
 * g->uploads until api_files_create takes it. */
static void hand_upload(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst,
                        bool close)
{
    struct api_guard *g = c->g;

    c->upload_id = ++g->next_upload;
    c->next_upload = g->uploads;
    g->uploads = c;
    evbuffer_add(dst, c->head_copy, c->head_copy_len);
    evbuffer_add_printf(dst, "Content-Length: 0\r\n" API_UPLOAD_HEADER ": %s.%" PRIu64 "\r\n%s\r\n",
                        g->token, c->upload_id,
                        close || c->client_close ? "Connection: close\r\n"
                        : c->http10              ? "Connection: keep-alive\r\n"
                                                 : "");
    timer_off(c);
    handed_on(c);
    if (close) {
        /* the rest of the body was not read: nothing more can be read from this connection */
        evbuffer_drain(src, evbuffer_get_length(src));
        c->state = C_DROP;
    }
}

/* An authenticated POST /v1/files: the body goes to the upload, never to evhttp. */
static bool start_upload(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst,
                         const char *head, const struct http_head *h)
{
    int strip = HTTP_HEAD_STRIP_LENGTH | HTTP_HEAD_STRIP_EXPECT | HTTP_HEAD_STRIP_CONNECTION;
    bool empty = !h->chunked && h->content_length <= 0;

    c->upload = api_upload_new(c->g->api, h->content_type, h->content_type_len,
                               h->chunked ? -1 : h->content_length);
    if (c->upload == NULL || keep_head(c, head, h, strip) < 0) {
        refuse(c, src, dst, R_BAD_REQUEST, 0);
        return true;
    }
    c->client_close = h->conn_close;
    c->http10 = h->minor == 0;
    evbuffer_drain(src, h->len);
    if (api_upload_error(c->upload) != NULL) {
        /* refused on its headers (not multipart, declared too large): the body is not read */
        hand_upload(c, src, dst, !empty);
        return true;
    }
    if (empty) {
        api_upload_finish(c->upload);
        hand_upload(c, src, dst, false);
        return true;
    }
    if (h->expect_continue && evbuffer_get_length(src) == 0 && !write_continue(c)) {
        c->write_failed = true;
        event_active(c->kick, EV_TIMEOUT, 1);
    }
    if (h->chunked) {
        http_chunked_init(&c->chunks);
        c->body_left = -1;
    } else {
        c->body_left = h->content_length;
    }
    c->state = C_UPLOAD;
    return true;
}

/* The head of a request may have come in full: decide on it. Returns true to go on reading. */
static bool read_head(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    struct api_guard *g = c->g;
    const struct config *cfg = g->cfg;
    size_t max = (size_t)cfg->limits.max_header_bytes, end;
    struct api_route_info route;
    struct http_head h;
    const char *head, *tenant = NULL;
    bool key_given = false, has_body, admin;
    int rc;

    if (c->deadline_ms == 0) {
        c->deadline_ms = util_mono_ms() + cfg->limits.header_timeout_s * 1000;
    }
    if (c->scanned == 0) {
        /* empty lines before a request line are ignored (RFC 9112 2.2) */
        unsigned char *p;
        while ((p = evbuffer_pullup(src, 1)) != NULL && (*p == '\r' || *p == '\n')) {
            evbuffer_drain(src, 1);
        }
    }
    end = scan_head(c, src, max + 1);
    if (end == 0) {
        if (evbuffer_get_length(src) > max) {
            refuse(c, src, dst, R_HEADERS_TOO_LARGE, 0);
            return true;
        }
        if (!c->timer_on) {
            int64_t left = c->deadline_ms - util_mono_ms();
            timer_arm(c, left > 0 ? left : 0);
        }
        return false;
    }
    timer_off(c);
    if (end > max) {
        refuse(c, src, dst, R_HEADERS_TOO_LARGE, 0);
        return true;
    }
    head = (const char *)evbuffer_pullup(src, (ev_ssize_t)end);
    rc = head ? http_head_parse(head, end, &h) : HTTP_HEAD_EBAD;
    if (rc < 0) {
        refuse(c, src, dst,
               rc == HTTP_HEAD_ENOTIMPL  ? R_NOT_IMPLEMENTED
               : rc == HTTP_HEAD_EEXPECT ? R_EXPECTATION
                                         : R_BAD_REQUEST,
               0);
        return true;
    }
    if (h.internal) {
        refuse(c, src, dst, R_RESERVED_HEADER, 0);
        return true;
    }
    if (h.target[0] != '/') {
        refuse(c, src, dst, R_NOT_ORIGIN_FORM, 0);
        return true;
    }
    api_route_classify(h.method, h.method_len, h.target, h.path_len, &route);
    if (route.body == API_ROUTE_SIGNED &&
        !api_provider_callback_accepts(cfg, h.target, h.path_len)) {
        route.body = API_ROUTE_NO_BODY; /* no such callback: 404 on the headers alone */
    }
    has_body = h.chunked || h.content_length > 0;
    if (route.auth || (has_body && route.body != API_ROUTE_NO_BODY)) {
        c->key = tenant_of(c, &h, &key_given);
        tenant = c->key ? c->key->tenant : NULL;
        c->tenant = tenant;
        c->key_checked = true;
    }
    if (route.known && route.auth && tenant == NULL) {
        refuse(c, src, dst, key_given ? R_KEY_INVALID : R_KEY_MISSING, 0);
        return true;
    }
    /* the admin surface takes bodies (PUT a budget, POST a key) with an admin key, no tenant's */
    admin = tenant == NULL && key_given && has_body && route.known && !route.auth &&
            is_admin_path(h.target, h.path_len) && admin_key_of(cfg, &h);
    if (route.known && route.body == API_ROUTE_UPLOAD) {
        return start_upload(c, src, dst, head, &h); /* with or without a body */
    }
    if (!has_body) {
        if (marked_kinds(&h) & HTTP_HEAD_STRIP_EXPECT) {
            add_head(dst, head, &h, HTTP_HEAD_STRIP_EXPECT);
            evbuffer_add(dst, "\r\n", 2);
            evbuffer_drain(src, end);
        } else {
            evbuffer_remove_buffer(src, dst, end);
        }
        handed_on(c);
        return true;
    }
    if (route.body == API_ROUTE_NO_BODY ||
        (tenant == NULL && !admin && route.body != API_ROUTE_SIGNED)) {
        /* no body may come here: evhttp answers on the headers alone, and the connection closes */
        add_head(dst, head, &h,
                 HTTP_HEAD_STRIP_LENGTH | HTTP_HEAD_STRIP_EXPECT | HTTP_HEAD_STRIP_CONNECTION);
        evbuffer_add(dst, "Connection: close\r\n\r\n", 21);
        g->refused[R_BODY_NOT_READ]++;
        g->handoff_bev = NULL;
        evbuffer_drain(src, evbuffer_get_length(src));
        c->state = C_DROP;
        return true;
    }
    if (h.content_length >
        (route.body == API_ROUTE_SIGNED ? API_CALLBACK_BODY_MAX : cfg->limits.max_body_bytes)) {
        refuse(c, src, dst, R_BODY_TOO_LARGE, h.content_length);
        return true;
    }
    return start_body(c, src, dst, head, &h);
}

/* Arms the body's rate window unless it runs (or the rate check is off). */
static void body_window(struct api_guard_conn *c)
{
    const struct config *cfg = c->g->cfg;

    if (!c->timer_on && cfg->limits.min_body_rate > 0) {
        c->window_bytes = 0;
        timer_arm(c, cfg->limits.body_rate_window_s * 1000);
    }
}

/* A chunk of a JSON body, decoded: held, within limits.max_body_bytes. */
static int on_json_chunk(const char *run, size_t n, void *arg)
{
    struct api_guard_conn *c = arg;

    c->body_bytes += (int64_t)n;
    if (c->body_bytes > c->g->cfg->limits.max_body_bytes) {
        return 1;
    }
    return evbuffer_add(c->held, run, n) < 0 ? 1 : 0;
}

/* A chunk of an upload, decoded: to the upload (which ignores it once it failed), up to the
 * body's cap, past which the decoding stops. */
static int on_upload_chunk(const char *run, size_t n, void *arg)
{
    struct api_guard_conn *c = arg;

    api_upload_feed(c->upload, run, n);
    c->body_bytes += (int64_t)n;
    return c->body_bytes > c->g->cfg->files.max_bytes + API_FILES_FORM_OVERHEAD;
}

/*
 * Decodes chunked framing from src through payload. Returns 1 when the body ended, 0 for more,
 * -1 malformed, 2 when payload stopped it; drains what it consumed.
 */
static int read_chunks(struct api_guard_conn *c, struct evbuffer *src,
                       int (*payload)(const char *, size_t, void *))
{
    struct evbuffer_iovec v[GUARD_SCAN_VECS];
    size_t consumed = 0;
    int n = evbuffer_peek(src, -1, NULL, v, GUARD_SCAN_VECS), rc = 0;

    for (int i = 0; i < n && i < GUARD_SCAN_VECS && rc == 0; i++) {
        size_t used = 0;
        rc = http_chunked_feed(&c->chunks, v[i].iov_base, v[i].iov_len, &used, payload, c);
        consumed += used;
    }
    evbuffer_drain(src, consumed);
    c->window_bytes += (int64_t)consumed;
    return rc > 1 ? 2 : rc;
}

/* The rest of a JSON body. */
static bool read_body(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    if (c->body_left >= 0) {
        size_t n = evbuffer_get_length(src);
        if ((int64_t)n > c->body_left) {
            n = (size_t)c->body_left;
        }
        evbuffer_remove_buffer(src, c->held, n);
        c->body_left -= (int64_t)n;
        c->window_bytes += (int64_t)n;
        if (c->body_left > 0) {
            body_window(c);
            return false;
        }
    } else {
        int rc = read_chunks(c, src, on_json_chunk);
        if (rc < 0 || rc == 2) {
            refuse(c, src, dst, rc < 0 ? R_BAD_CHUNKS : R_BODY_TOO_LARGE, c->body_bytes);
            return true;
        }
        if (rc == 0) {
            body_window(c);
            return evbuffer_get_length(src) > 0;
        }
        evbuffer_add(dst, c->head_copy, c->head_copy_len);
        evbuffer_add_printf(dst, "Content-Length: %lld\r\n\r\n", (long long)c->body_bytes);
    }
    evbuffer_add_buffer(dst, c->held);
    timer_off(c);
    handed_on(c);
    return true;
}

/*
 * The rest of an upload's body, into its file. An upload that failed part-way (a file over the
 * limit, too many lines) still reads its body to the end, discarding it, so that the client gets
 * the answer on a connection it can go on using — as it did when evhttp read every body whole;
 * a chunked body only up to the body's cap, past which the answer closes the connection.
 */
static bool read_upload(struct api_guard_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    bool done;

    if (c->body_left >= 0) {
        struct evbuffer_iovec v[GUARD_SCAN_VECS];
        size_t want = evbuffer_get_length(src), consumed = 0;
        int n;
        if ((int64_t)want > c->body_left) {
            want = (size_t)c->body_left;
        }
        n = evbuffer_peek(src, (ev_ssize_t)want, NULL, v, GUARD_SCAN_VECS);
        for (int i = 0; i < n && i < GUARD_SCAN_VECS && consumed < want; i++) {
            size_t take = v[i].iov_len < want - consumed ? v[i].iov_len : want - consumed;
            api_upload_feed(c->upload, v[i].iov_base, take);
            consumed += take;
        }
        evbuffer_drain(src, consumed);
        c->body_left -= (int64_t)consumed;
        c->window_bytes += (int64_t)consumed;
        done = c->body_left == 0;
    } else {
        int rc = read_chunks(c, src, on_upload_chunk);
        if (rc < 0) {
            refuse(c, src, dst, R_BAD_CHUNKS, 0);
            return true;
        }
        if (rc == 2) {
            hand_upload(c, src, dst, true); /* the upload failed at the cap already */
            return true;
        }
        done = rc == 1;
    }
    if (!done) {
        body_window(c);
        return evbuffer_get_length(src) > 0; /* more than one peek's worth came */
    }
    if (api_upload_error(c->upload) == NULL) {
        api_upload_finish(c->upload);
    }
    hand_upload(c, src, dst, false);
    return true;
}

/*
 * The input filter: reads requests one at a time as laid out in api/guard.h. Returns BEV_OK when
 * it consumed or produced anything (evhttp's read callback follows; libevent calls it again while
 * input is left), else BEV_NEED_MORE. limit and mode are not used: evhttp sets no read watermark
 * on the filter, and what the guard hands on is bounded by the limits above.
 */
enum bufferevent_filter_result api_guard_in_filter(struct evbuffer *src, struct evbuffer *dst,
                                                   ev_ssize_t limit,
                                                   enum bufferevent_flush_mode mode, void *arg)
{
    struct api_guard_conn *c = arg;
    size_t src_before = evbuffer_get_length(src), dst_before = evbuffer_get_length(dst);
    bool more = true;

    (void)limit;
    (void)mode;
    if (c->pending != R_COUNT) {
        if (c->state == C_HEAD || c->state == C_BODY || c->state == C_UPLOAD) {
            refuse(c, src, dst, c->pending, 0);
        }
        c->pending = R_COUNT;
    }
    while (more && evbuffer_get_length(src) > 0) {
        switch (c->state) {
        case C_HEAD:
            more = read_head(c, src, dst);
            break;
        case C_BODY:
            more = read_body(c, src, dst);
            break;
        case C_UPLOAD:
            more = read_upload(c, src, dst);
            break;
        case C_AWAIT:
            more = false;
            break;
        case C_DROP:
            evbuffer_drain(src, evbuffer_get_length(src));
            break;
        }
    }
    return evbuffer_get_length(src) != src_before || evbuffer_get_length(dst) != dst_before
               ? BEV_OK
               : BEV_NEED_MORE;
}

/*
 * The head deadline or the body's rate window: a request that missed it is refused with 408
 * (through the filter, which hands evhttp the refusal), a connection that sent nothing is closed;
 * a body that kept up starts a new window.
 */
void api_guard_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct api_guard_conn *c = arg;
    const struct config *cfg = c->g->cfg;

    c->timer_on = false;
    if (conn_gone(c)) {
        return;
    }
    if (c->state == C_HEAD) {
        int64_t left = c->deadline_ms - util_mono_ms();
        if (c->deadline_ms == 0) {
            return; /* no request has begun */
        }
        if (left > 0) {
            timer_arm(c, left);
            return;
        }
        if (c->scanned == 0 && evbuffer_get_length(bufferevent_get_input(c->under)) == 0) {
            /* not a byte of a request: closed without an answer, as evhttp closes an idle
             * connection (an answer could pass a request the client sends just now) */
            bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
            return;
        }
        c->pending = R_HEADER_TIMEOUT;
    } else if (c->state == C_BODY || c->state == C_UPLOAD) {
        if (c->window_bytes >= cfg->limits.min_body_rate * cfg->limits.body_rate_window_s) {
            body_window(c);
            return;
        }
        c->pending = R_BODY_TIMEOUT;
    } else {
        return;
    }
    kick_input(c);
}

void api_guard_answer(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    const char *name = after_token(api_guard_of(a), arg);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    const struct refusal_row *r = NULL;
    long long n = 0;
    long limit;
    struct core_err e;

    for (size_t i = 0; name != NULL && i < R_COUNT; i++) {
        if (refusals[i].status != 0 && strcmp(refusals[i].name, name) == 0) {
            r = &refusals[i];
        }
    }
    if (r == NULL) {
        /* not the guard's: what any unknown path gets */
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "unknown_url", "Unknown request URL: %s",
                        evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)));
        return;
    }
    if (query != NULL && strncmp(query, "n=", 2) == 0) {
        n = strtoll(query + 2, NULL, 10);
    }
    limit = limit_value(a->cfg, r->limit);
    core_err_clear(&e);
    core_err_set(&e, r->code, NULL, "%s", "");
    core_err_set_code(&e, r->err_code);
    e.http_status = r->status;
    if (r->shape == SHOW_SIZE_LIMIT && n > 0) {
        snprintf(e.message, sizeof(e.message), r->message, n, limit);
    } else if (r->shape == SHOW_SIZE_LIMIT) {
        snprintf(e.message, sizeof(e.message), "Request body is larger than the limit of %ld bytes",
                 limit);
    } else if (r->shape == SHOW_LIMIT) {
        snprintf(e.message, sizeof(e.message), r->message, limit);
    } else {
        snprintf(e.message, sizeof(e.message), "%s", r->message);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    api_reply_err(a, req, &e);
}
