/*
 * api/guard_internal.h — what the connection guard's two files share (the contract is
 * api/guard.h): the guard, a connection and the small helpers both use. api/guard.c accepts,
 * carries a connection through its life and writes evhttp's answers; api/guard_input.c reads the
 * requests (the input filter, the deadlines, the refusals and their answers). For these two
 * files only.
 */
#ifndef SLUICE_API_GUARD_INTERNAL_H
#define SLUICE_API_GUARD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "api/guard.h"
#include "core/http_head.h"
#include "core/util.h"

#define GUARD_TOKEN_LEN UTIL_ID_RANDOM_CHARS
#define GUARD_KEY_CACHE 128 /* an Authorization value a connection remembers, at most */

/* Why the guard refused a request (api/guard_input.c has each one's answer). */
enum refusal {
    R_KEY_MISSING,
    R_KEY_INVALID,
    R_BODY_TOO_LARGE,
    R_HEADERS_TOO_LARGE,
    R_BAD_REQUEST,
    R_BAD_CHUNKS,
    R_RESERVED_HEADER,
    R_NOT_ORIGIN_FORM,
    R_NOT_IMPLEMENTED,
    R_EXPECTATION,
    R_HEADER_TIMEOUT,
    R_BODY_TIMEOUT,
    R_BODY_NOT_READ, /* not answered by the guard: evhttp answers the request without its body */
    R_COUNT,
};

enum pause_cause { PAUSE_CAP, PAUSE_ERROR, PAUSE_COUNT };

/*
 * A connection closed while the client may still be sending what the guard did not read (a
 * refused request's body): its input is read and dropped for up to GUARD_LINGER_MS, or until the
 * client closes, before the socket closes. Closing at once with unread input makes the kernel
 * answer with a reset, which can reach the client before it has read the answer, and clients
 * that are still writing a body (undici's fetch) report a failed request instead of the answer.
 */
struct api_guard_linger {
    struct api_guard *g;
    struct event *ev;
    evutil_socket_t fd;
    int64_t until_ms;
    struct api_guard_linger *next;
};

struct api_guard_conn;

struct api_guard {
    struct api *api;
    const struct config *cfg;
    struct event_base *base;
    struct evconnlistener *listener; /* NULL until api_guard_listen and after api_guard_stop */
    struct api_guard *next;          /* in the registry of guards with a listener */
    char token[GUARD_TOKEN_LEN + 1]; /* in refusal paths and upload names: only we know it */
    size_t live;                     /* connections handed to evhttp and not yet finalized */
    bool paused;                     /* the listener is disabled (cap or accept error) */
    bool closing;                    /* api_guard_free was called: free with the last conn */
    struct event *retry;             /* resumes accepting a moment after an accept error */
    uint64_t pauses[PAUSE_COUNT];
    uint64_t unlogged[PAUSE_COUNT]; /* pauses since the last log line of that cause */
    int64_t logged_ms[PAUSE_COUNT];
    uint64_t refused[R_COUNT];
    /* the request just handed to evhttp, and the tenant the guard found for its key */
    const struct bufferevent *handoff_bev;
    const char *handoff_tenant;
    const struct api_key_ref *handoff_key; /* and its identity (api/keys.h) */
    uint64_t next_upload;
    /* connections holding a finished upload for api_files_create */
    struct api_guard_conn *uploads;
    /* closed connections still dropping input (counted in live) */
    struct api_guard_linger *lingers;
};

/* Where a connection's current request is. */
enum conn_state {
    C_HEAD,   /* reading a request line and headers (they stay in the socket's buffer) */
    C_BODY,   /* reading a body into held, to hand on whole */
    C_UPLOAD, /* streaming an upload's body into its file */
    C_AWAIT,  /* a request is with evhttp: the next one waits until it is answered */
    C_DROP,   /* refused or done: input is dropped until evhttp has answered and closed */
};

struct api_guard_conn {
    struct api_guard *g;
    struct bufferevent *bev;   /* the filter evhttp owns */
    struct bufferevent *under; /* the socket under it */
    evutil_socket_t fd;        /* -1 until first needed (evhttp sets it after the bevcb) */
    enum conn_state state;
    struct event *timer;    /* the head deadline, or the body rate window */
    struct event *kick;     /* flushes output and resumes input, from outside the filters */
    struct event *writable; /* the socket took no more output: try again when it can (made
                               when first needed: the fd is known by then) */
    bool write_failed;
    bool flushing; /* out_filter may write: the kick or the writable event is flushing */
    bool timer_on;
    struct evbuffer_cb_entry *out_cb;
    enum refusal pending; /* a deadline passed: refuse at the next filter run; R_COUNT: none */
    /* the current request */
    struct http_head_scan scan;
    size_t scanned;      /* bytes of the head scanned so far */
    int64_t deadline_ms; /* of the head, once its first byte came (0: not yet) */
    int64_t body_left;   /* Content-Length bytes still to come; -1: chunked */
    struct http_chunked chunks;
    int64_t body_bytes;    /* of a chunked body, decoded */
    int64_t window_bytes;  /* body bytes in the current rate window */
    struct evbuffer *held; /* C_BODY: what evhttp gets once the body is complete */
    char *head_copy;       /* a chunked body's or an upload's head, without framing lines */
    size_t head_copy_len;
    const char *tenant; /* of the request's key, when key_checked (borrowed: api/keys.h) */
    const struct api_key_ref *key; /* the key's identity, when tenant is set */
    bool key_checked;
    bool client_close; /* the request asked for its connection to close */
    bool http10;
    struct api_upload *upload;
    uint64_t upload_id;
    struct api_guard_conn *next_upload; /* in g->uploads once finished */
    /* the connection's last Authorization value and its identity (tenant_of), found at the
     * keys' table generation key_cache_gen */
    char key_cache[GUARD_KEY_CACHE];
    size_t key_cache_len;
    const struct api_key_ref *key_cache_ref;
    uint64_t key_cache_gen;
};

/* True once evhttp freed the connection (bufferevent_free clears every callback). */
static inline bool conn_gone(const struct api_guard_conn *c)
{
    bufferevent_event_cb eventcb = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &eventcb, NULL);
    return eventcb == NULL;
}

static inline evutil_socket_t conn_fd(struct api_guard_conn *c)
{
    if (c->fd < 0) {
        c->fd = bufferevent_getfd(c->bev);
    }
    return c->fd;
}

static inline void timer_arm(struct api_guard_conn *c, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(c->timer, &tv);
    c->timer_on = true;
}

static inline void timer_off(struct api_guard_conn *c)
{
    if (c->timer_on) {
        event_del(c->timer);
        c->timer_on = false;
    }
}

static inline void kick_input(struct api_guard_conn *c)
{
    bufferevent_trigger(c->under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

/* "<token>.<rest>" with our token: rest, else NULL. */
static inline const char *after_token(const struct api_guard *g, const char *value)
{
    if (value == NULL || strlen(value) <= GUARD_TOKEN_LEN || value[GUARD_TOKEN_LEN] != '.' ||
        CRYPTO_memcmp(value, g->token, GUARD_TOKEN_LEN) != 0) {
        return NULL;
    }
    return value + GUARD_TOKEN_LEN + 1;
}

/* ---- api/guard_input.c --------------------------------------------------------------------- */

/* The input filter of every connection: reads its requests one at a time (api/guard.h). */
enum bufferevent_filter_result api_guard_in_filter(struct evbuffer *src, struct evbuffer *dst,
                                                   ev_ssize_t limit,
                                                   enum bufferevent_flush_mode mode, void *arg);

/* A connection's timer: the head deadline or the body's rate window. */
void api_guard_on_timer(evutil_socket_t fd, short what, void *arg);

/* Forgets the connection's current request (what it held goes). */
void api_guard_request_reset(struct api_guard_conn *c);

/* The name of refusal r, as the metrics and the refusal route show it. */
const char *api_guard_refusal_name(enum refusal r);

#endif
