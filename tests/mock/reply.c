/*
 * tests/mock/reply.c — sending answers: now, after a wait (latency, hang, Prefer: wait), as a
 * connection reset, or as a chunked stream of events, optionally paced by stream_chunk_ms.
 *
 * A parked answer is a `struct held`; a stream being paced is a `struct mock_stream` with a
 * timer. Both watch for the client leaving and free themselves when it does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/bufferevent.h>

#include "tests/mock/mock.h"

/* evhttp's own phrases are generic ("Client Error"); clients log these. */
static const struct {
    int status;
    const char *reason;
} status_reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Payload Too Large"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {529, "Overloaded"},
};

/* A provider answer that waits for its timer, or (status ANSWER_HANG) for nothing. */
struct held {
    struct mock *m;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    struct event *watch; /* readable socket: the client may have gone */
    int status;
    struct mock_stream *stream; /* owned; NULL for a plain answer */
    struct held *prev, *next;
};

/* A streamed answer: events rendered up front, sent one chunk at a time. */
struct mock_stream {
    struct mock *m;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    struct evbuffer *events;
    size_t lens[MOCK_STREAM_MAX_EVENTS];
    size_t n, sent, marked; /* marked: bytes of events already closed by a mark */
    char content_type[40];
    struct mock_stream *prev, *next;
};

static const char *status_reason(int status)
{
    for (size_t i = 0; i < sizeof(status_reasons) / sizeof(status_reasons[0]); i++) {
        if (status_reasons[i].status == status) {
            return status_reasons[i].reason;
        }
    }
    return NULL; /* evhttp picks a generic phrase */
}

static void count_status(struct mock *m, int status)
{
    if (status > 0 && status < MOCK_STATUS_MAX) {
        m->by_status[status]++;
    }
}

void reply_send(struct mock *m, struct evhttp_request *req, int status)
{
    count_status(m, status);
    evhttp_send_reply(req, status, status_reason(status), NULL);
}

void reply_send_control(struct evhttp_request *req, int status)
{
    evhttp_send_reply(req, status, status_reason(status), NULL);
}

/* ---- streams ---- */

struct evbuffer *mock_stream_open(struct exchange *x, const char *content_type)
{
    if (x->stream != NULL) {
        return x->stream->events;
    }
    struct mock_stream *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->events = evbuffer_new()) == NULL) {
        free(s);
        return NULL;
    }
    s->m = x->m;
    snprintf(s->content_type, sizeof(s->content_type), "%s", content_type);
    x->stream = s;
    return s->events;
}

/* Closes the current event. Past the cap, later events join the last one: still valid bytes. */
void mock_stream_mark(struct exchange *x)
{
    struct mock_stream *s = x->stream;
    size_t len = evbuffer_get_length(s->events);
    if (len == s->marked) {
        return;
    }
    if (s->n < MOCK_STREAM_MAX_EVENTS) {
        s->lens[s->n++] = len - s->marked;
    } else {
        s->lens[s->n - 1] += len - s->marked;
    }
    s->marked = len;
}

void mock_stream_free(struct mock_stream *s)
{
    if (s == NULL) {
        return;
    }
    if (s->timer != NULL) {
        event_free(s->timer);
    }
    evbuffer_free(s->events);
    free(s);
}

static void stream_unlink(struct mock_stream *s)
{
    struct mock *m = s->m;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        m->streams = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    m->in_flight--;
}

/* Sends the next event as one chunk; returns true when that was the last. */
static bool stream_send_next(struct mock_stream *s)
{
    struct evbuffer *chunk = evbuffer_new();
    if (chunk != NULL) {
        evbuffer_remove_buffer(s->events, chunk, s->lens[s->sent]);
        evhttp_send_reply_chunk(s->req, chunk);
        evbuffer_free(chunk);
    }
    s->sent++;
    return s->sent >= s->n;
}

/*
 * The client left mid-stream. evhttp detaches a request it was still writing (evcon NULL) and
 * leaves it to us: evhttp_send_reply_end then frees it. On our own evhttp_connection_free
 * (shutdown) the request is still attached and goes with the connection.
 */
static void stream_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct mock_stream *s = arg;
    (void)evcon;
    stream_unlink(s);
    if (evhttp_request_get_connection(s->req) == NULL) {
        evhttp_send_reply_end(s->req);
    }
    mock_stream_free(s);
}

static void stream_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mock_stream *s = arg;
    (void)fd;
    (void)what;
    if (!stream_send_next(s)) {
        struct timeval tv = {s->m->config.stream_chunk_ms / 1000,
                             (s->m->config.stream_chunk_ms % 1000) * 1000};
        event_add(s->timer, &tv);
        return;
    }
    evhttp_connection_set_closecb(s->evcon, NULL, NULL);
    stream_unlink(s);
    evhttp_send_reply_end(s->req);
    mock_stream_free(s);
}

/*
 * Sends the headers, then every event as its own chunk: all at once, or one per
 * stream_chunk_ms. The body bytes must leave the request's own output buffer first, or
 * evhttp_send_reply_start would send them unchunked with the headers.
 */
static void stream_start(struct mock *m, struct evhttp_request *req, int status,
                         struct mock_stream *s)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", s->content_type);
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    evbuffer_drain(evhttp_request_get_output_buffer(req), (size_t)-1);
    count_status(m, status);
    evhttp_send_reply_start(req, status, status_reason(status));
    s->req = req;
    s->evcon = evhttp_request_get_connection(req);
    long ms = m->config.stream_chunk_ms;
    if (ms > 0 && s->n > 1 && s->evcon != NULL &&
        (s->timer = evtimer_new(m->base, stream_on_timer, s)) != NULL) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        stream_send_next(s);
        if (event_add(s->timer, &tv) == 0) {
            s->next = m->streams;
            if (m->streams != NULL) {
                m->streams->prev = s;
            }
            m->streams = s;
            m->in_flight++;
            evhttp_connection_set_closecb(s->evcon, stream_on_close, s);
            return;
        }
    }
    while (s->sent < s->n) {
        stream_send_next(s);
    }
    evhttp_send_reply_end(req);
    mock_stream_free(s);
}

void reply_answer(struct mock *m, struct evhttp_request *req, int status,
                  struct mock_stream *stream)
{
    if (stream != NULL && status >= 200 && status < 300) {
        stream_start(m, req, status, stream);
        return;
    }
    mock_stream_free(stream);
    reply_send(m, req, status);
}

/* ---- held answers ---- */

/* Forgets a held answer. Touches neither the request nor the connection. */
static void held_release(struct held *h)
{
    struct mock *m = h->m;
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else {
        m->held = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    m->in_flight--;
    event_free(h->timer);
    if (h->watch != NULL) {
        event_free(h->watch);
    }
    mock_stream_free(h->stream);
    free(h);
}

/*
 * Called by evhttp_connection_free, which then frees the held request with the connection (it is
 * still queued on it because we never answered). So: forget our state, touch nothing else.
 */
static void held_on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    held_release(arg);
}

/*
 * A reset, as a crashed peer's kernel sends. SO_LINGER 0 makes the last close() send RST, but
 * evhttp_connection_free would shutdown(SHUT_WR) first and send FIN. So the socket is closed here
 * by dup2-ing a fresh unconnected socket over its descriptor: the number stays valid for evhttp
 * to shut down and close, and cannot be reused by anything else in between.
 */
static void connection_reset(struct mock *m, struct evhttp_connection *evcon)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0) {
        int dummy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (dummy >= 0) {
            dup2(dummy, fd);
            close(dummy);
        }
    }
    m->resets++;
    evhttp_connection_free(evcon);
}

static void held_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct held *h = arg;
    struct mock *m = h->m;
    struct evhttp_request *req = h->req;
    struct mock_stream *stream = h->stream;
    int status = h->status;
    if (status == ANSWER_HANG) {
        evhttp_connection_free(h->evcon); /* runs held_on_close */
        return;
    }
    if (status == ANSWER_RESET) {
        connection_reset(m, h->evcon); /* runs held_on_close */
        return;
    }
    evhttp_connection_set_closecb(h->evcon, NULL, NULL);
    h->stream = NULL;
    held_release(h);
    reply_answer(m, req, status, stream);
}

/*
 * evhttp (2.1) stops reading a connection while a request awaits its answer, so it would not
 * notice the client leaving until we write. Watch the socket ourselves: EOF or an error means the
 * client is gone and the connection is freed now. Bytes (a pipelined request) are left for evhttp
 * and the watch stops; the timer still ends the wait.
 */
static void held_on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct held *h = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        evhttp_connection_free(h->evcon); /* runs held_on_close */
    } else if (n < 0) {
        event_add(h->watch, NULL);
    } else {
        event_free(h->watch);
        h->watch = NULL;
    }
}

/* Common timeouts keep thousands of same-length latency timers O(1) each. */
static const struct timeval *latency_tv(struct mock *m, long ms, struct timeval *plain)
{
    plain->tv_sec = ms / 1000;
    plain->tv_usec = (ms % 1000) * 1000;
    if (m->common_tv == NULL || m->common_ms != ms) {
        m->common_tv = event_base_init_common_timeout(m->base, plain);
        m->common_ms = ms;
    }
    return m->common_tv != NULL ? m->common_tv : plain;
}

void reply_hold(struct mock *m, struct evhttp_request *req, int status, struct mock_stream *stream,
                long ms, bool common)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct held *h = calloc(1, sizeof(*h));
    if (h == NULL || evcon == NULL) {
        goto fail;
    }
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    *h = (struct held){
        .m = m, .req = req, .evcon = evcon, .status = status, .stream = stream, .next = m->held};
    h->timer = evtimer_new(m->base, held_on_timer, h);
    h->watch = event_new(m->base, fd, EV_READ, held_on_readable, h);
    struct timeval plain = {ms / 1000, (ms % 1000) * 1000};
    const struct timeval *tv = common ? latency_tv(m, ms, &plain) : &plain;
    if (h->timer == NULL || h->watch == NULL || event_add(h->timer, tv) < 0 ||
        event_add(h->watch, NULL) < 0) {
        goto fail;
    }
    if (m->held != NULL) {
        m->held->prev = h;
    }
    m->held = h;
    m->in_flight++;
    evhttp_connection_set_closecb(evcon, held_on_close, h);
    return;
fail:
    if (h != NULL && h->timer != NULL) {
        event_free(h->timer);
    }
    if (h != NULL && h->watch != NULL) {
        event_free(h->watch);
    }
    free(h);
    if (status == ANSWER_HANG || status == ANSWER_RESET) {
        mock_stream_free(stream);
        reply_send(m, req, 503);
    } else {
        reply_answer(m, req, status, stream);
    }
}

void reply_cleanup(struct mock *m)
{
    while (m->held != NULL) {
        evhttp_connection_free(m->held->evcon); /* runs held_on_close */
    }
    while (m->streams != NULL) {
        evhttp_connection_free(m->streams->evcon); /* runs stream_on_close */
    }
}
