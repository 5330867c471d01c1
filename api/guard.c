/*
 * api/guard.c — the connection guard (what it does and why: api/guard.h).
 *
 * How it sits under evhttp. evhttp_set_bevcb gives evhttp, for each accepted connection, a
 * bufferevent filter over a socket bufferevent ("under"). The input filter (api/guard_input.c) sees
 * every byte first and decides what evhttp gets; the output filter writes evhttp's answers straight
 * to the socket. That second part is not optional: evhttp thinks an answer is sent once its output
 * buffer is empty, which with the stock filter is when the bytes have moved to the socket
 * bufferevent's buffer, not to the kernel — so a "Connection: close" answer was cut off when
 * evhttp closed, and an answer added while evhttp's write side was still off (every answer: it
 * enables writing afterwards) waited for an event that never came (measured: the second request
 * on a keep-alive connection hung). Writing in the filter, and kicking it from an event when evhttp
 * adds output, makes "output empty" mean "in the kernel", as evhttp assumes.
 *
 * libevent's rules, kept: the filters run inside bufferevent processing, so they never free
 * anything and never call back into evhttp; what must happen from outside (flushing output,
 * resuming input, closing on a deadline) happens in the connection's own events (kick, timer,
 * writable), which first check that evhttp has not freed the connection meanwhile (its event
 * callback is cleared then; the memory stays valid until libevent's finalizer runs conn_free).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "api/files.h"
#include "api/guard_internal.h"
#include "api/internal.h"
#include "core/log.h"

#define GUARD_LOG_INTERVAL_MS 5000
#define GUARD_RETRY_MS 100
#define GUARD_READ_SLACK 16384 /* bytes the socket may hold beyond a head (one read's worth) */
#define GUARD_LINGER_MS 2000   /* how long a refused connection's input is still read and dropped */

/*
 * The guards whose listener may report an accept error. libevent hands the error callback the
 * argument of the accept callback, which evhttp set to itself, so the guard is found here by its
 * listener. The one mutable global of the api: one entry per api in the process.
 */
static struct api_guard *listening;

/* True when evhttp waits for a request: reading enabled with its read callback (while it
 * writes an answer, reading is enabled too but without a read callback). */
static bool evhttp_ready(const struct api_guard_conn *c)
{
    bufferevent_data_cb readcb = NULL;
    bufferevent_getcb(c->bev, &readcb, NULL, NULL, NULL);
    return readcb != NULL && (bufferevent_get_enabled(c->bev) & EV_READ);
}

/* ---- accepting: the cap and the accept errors -------------------------------------------- */

/* Counts a pause and logs it, at most once per GUARD_LOG_INTERVAL_MS per cause. */
static void note_pause(struct api_guard *g, enum pause_cause cause, int err)
{
    int64_t now = util_mono_ms();

    g->pauses[cause]++;
    g->unlogged[cause]++;
    if (g->logged_ms[cause] != 0 && now - g->logged_ms[cause] < GUARD_LOG_INTERVAL_MS) {
        return;
    }
    if (cause == PAUSE_CAP) {
        log_warn("connection cap reached: not accepting until a connection closes",
                 "max_connections=%ld times=%" PRIu64, g->cfg->limits.max_connections,
                 g->unlogged[cause]);
    } else {
        log_warn("accept failed: not accepting for a moment",
                 "errno=%d error=\"%s\" times=%" PRIu64, err, strerror(err), g->unlogged[cause]);
    }
    g->unlogged[cause] = 0;
    g->logged_ms[cause] = now;
}

static void pause_accepting(struct api_guard *g)
{
    if (g->listener != NULL && !g->paused) {
        evconnlistener_disable(g->listener);
        g->paused = true;
    }
}

static void maybe_resume(struct api_guard *g)
{
    if (g->paused && g->listener != NULL && g->live < (size_t)g->cfg->limits.max_connections) {
        evconnlistener_enable(g->listener);
        g->paused = false;
        event_del(g->retry);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    maybe_resume(arg);
}

/* accept() failed with something libevent does not retry (EMFILE, ENFILE, ENOBUFS, ENOMEM...):
 * without this, libevent logs it and tries again at once, thousands of times a second. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct api_guard *g = listening;
    struct timeval tv = {0, GUARD_RETRY_MS * 1000};

    (void)arg; /* evhttp's, not ours */
    while (g != NULL && g->listener != lev) {
        g = g->next;
    }
    if (g == NULL) {
        evconnlistener_disable(lev); /* cannot happen: every listener we watch is listed */
        return;
    }
    note_pause(g, PAUSE_ERROR, err);
    pause_accepting(g);
    event_add(g->retry, &tv);
}

static void guard_destroy(struct api_guard *g)
{
    event_free(g->retry);
    free(g);
}

/* One connection fewer (a finalized connection, or a linger's end): resumes accepting, or frees
 * a guard whose api is gone. */
static void conn_count_out(struct api_guard *g)
{
    g->live--;
    if (g->closing && g->live == 0) {
        guard_destroy(g);
        return;
    }
    maybe_resume(g);
}

static void linger_end(struct api_guard_linger *l)
{
    struct api_guard *g = l->g;

    for (struct api_guard_linger **p = &g->lingers; *p != NULL; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    event_free(l->ev);
    close(l->fd);
    free(l);
    conn_count_out(g);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct api_guard_linger *l = arg;
    char buf[16384];
    int64_t left = l->until_ms - util_mono_ms();

    for (int i = 0; i < 4 && (what & EV_READ); i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            left = 0; /* the client closed (or reset): done */
            break;
        }
        if (n < 0) {
            break;
        }
    }
    if (left <= 0) {
        linger_end(l);
        return;
    }
    {
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        event_add(l->ev, &tv);
    }
}

/* Takes over fd (evhttp has sent its answer and shut down writing). Returns 0, or -1 (OOM:
 * the caller closes it). */
static int linger_start(struct api_guard *g, evutil_socket_t fd)
{
    struct api_guard_linger *l = calloc(1, sizeof(*l));
    struct timeval tv = {GUARD_LINGER_MS / 1000, (GUARD_LINGER_MS % 1000) * 1000};

    if (l == NULL || (l->ev = event_new(g->base, fd, EV_READ, on_linger, l)) == NULL) {
        free(l);
        return -1;
    }
    l->g = g;
    l->fd = fd;
    l->until_ms = util_mono_ms() + GUARD_LINGER_MS;
    l->next = g->lingers;
    g->lingers = l;
    g->live++;
    event_add(l->ev, &tv);
    return 0;
}

/* ---- output: straight to the socket ------------------------------------------------------ */

static void on_writable(evutil_socket_t fd, short what, void *arg);

/*
 * evhttp's answer bytes, written to the kernel as far as it takes them; what it does not take
 * waits for the socket to be writable. Returns BEV_OK when something was written (evhttp's write
 * callback follows, which sees the rest still queued or an empty buffer: all in the kernel).
 *
 * It writes only when the kick or the writable event flushes (c->flushing), never from inside
 * evhttp's own evbuffer_add: evhttp often adds the last bytes of an answer and only then says what
 * its write callback should do (evhttp_send_reply_end adds the last chunk, then sets
 * evhttp_send_done), so a write finished inside the add would call back too early, and the
 * request would never be done (measured: a request after a streamed answer on the same
 * connection got no answer).
 */
static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                 void *arg)
{
    struct api_guard_conn *c = arg;
    int n, err;

    (void)dst;
    (void)limit;
    (void)mode;
    if (!c->flushing || c->write_failed || evbuffer_get_length(src) == 0) {
        return BEV_NEED_MORE;
    }
    n = evbuffer_write(src, conn_fd(c));
    if (n > 0) {
        return BEV_OK; /* libevent calls again while output is left: EAGAIN lands below */
    }
    err = errno;
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        c->write_failed = true; /* the kick tells evhttp, outside this callback */
        event_active(c->kick, EV_TIMEOUT, 1);
        return BEV_ERROR;
    }
    if (c->writable == NULL &&
        (c->writable = event_new(c->g->base, conn_fd(c), EV_WRITE, on_writable, c)) == NULL) {
        c->write_failed = true;
        event_active(c->kick, EV_TIMEOUT, 1);
        return BEV_ERROR;
    }
    event_add(c->writable, NULL);
    return BEV_NEED_MORE;
}

/* evhttp added output: flush it from the kick (evhttp enables writing only after adding). */
static void on_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct api_guard_conn *c = arg;

    if (info->n_added > 0 && evbuffer_get_length(buf) > 0) {
        event_active(c->kick, EV_TIMEOUT, 1);
    }
}

/*
 * Runs outside libevent's bufferevent processing: reports a failed write to evhttp, flushes
 * pending output, and once evhttp answered the request it holds, lets the next one in.
 */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct api_guard_conn *c = arg;

    if (conn_gone(c)) {
        return;
    }
    if (c->write_failed) {
        bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING, 0);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
        (bufferevent_get_enabled(c->bev) & EV_WRITE)) {
        c->flushing = true;
        bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
        c->flushing = false; /* c lives until libevent's finalizer, even if evhttp freed it */
        if (conn_gone(c)) {
            return; /* that was the answer to a "Connection: close" request */
        }
    }
    if (c->state == C_AWAIT && evhttp_ready(c)) {
        c->state = C_HEAD;
        api_guard_request_reset(c);
        if (evbuffer_get_length(bufferevent_get_input(c->under)) > 0) {
            kick_input(c);
        }
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    on_kick(fd, what, arg);
}

/* ---- a connection's life ----------------------------------------------------------------- */

/*
 * The filter's free_context: libevent's finalizer, once evhttp freed the connection. A connection
 * whose client may still be sending what was not read lingers: its socket is taken from the
 * socket bufferevent (which would close it) before that one is finalized.
 */
static void conn_free(void *arg)
{
    struct api_guard_conn *c = arg;
    struct api_guard *g = c->g;
    evutil_socket_t fd = bufferevent_getfd(c->under);

    if (c->state == C_DROP && !g->closing && fd >= 0 && linger_start(g, fd) == 0) {
        bufferevent_setfd(c->under, -1);
    }
    event_free(c->timer);
    event_free(c->kick);
    if (c->writable != NULL) {
        event_free(c->writable);
    }
    if (c->out_cb != NULL) {
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    }
    for (struct api_guard_conn **p = &g->uploads; *p != NULL; p = &(*p)->next_upload) {
        if (*p == c) {
            *p = c->next_upload;
            break;
        }
    }
    api_upload_free(c->upload); /* removes the file of an upload cut off mid-way */
    if (c->held != NULL) {
        evbuffer_free(c->held);
    }
    free(c->head_copy);
    free(c);
    conn_count_out(g);
}

/*
 * evhttp's bevcb: the filter for a connection just accepted. At the cap, stops accepting (the
 * cap counts this connection). On OOM returns NULL: evhttp then makes its own plain
 * bufferevent, so the connection is served unguarded — the accepting pauses as after an accept
 * error, and it is logged.
 */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
    struct api_guard *g = arg;
    struct api_guard_conn *c = calloc(1, sizeof(*c));
    struct bufferevent *under = NULL, *f = NULL;

    if (c == NULL || (c->timer = evtimer_new(base, api_guard_on_timer, c)) == NULL ||
        (c->kick = event_new(base, -1, 0, on_kick, c)) == NULL ||
        (under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
        (f = bufferevent_filter_new(under, api_guard_in_filter, out_filter, BEV_OPT_CLOSE_ON_FREE,
                                    conn_free, c)) == NULL) {
        if (under != NULL) {
            bufferevent_free(under);
        }
        if (c != NULL && c->timer != NULL) {
            event_free(c->timer);
        }
        if (c != NULL && c->kick != NULL) {
            event_free(c->kick);
        }
        free(c);
        note_pause(g, PAUSE_ERROR, ENOMEM);
        pause_accepting(g);
        {
            struct timeval tv = {0, GUARD_RETRY_MS * 1000};
            event_add(g->retry, &tv);
        }
        return NULL;
    }
    c->g = g;
    c->bev = f;
    c->under = under;
    c->fd = -1;
    c->pending = R_COUNT;
    c->state = C_HEAD;
    api_guard_request_reset(c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(f), on_output_added, c);
    /* the socket's own output is never used (out_filter writes), and it reads one head's
     * worth ahead at most while a request is with evhttp */
    bufferevent_disable(under, EV_WRITE);
    bufferevent_setwatermark(under, EV_READ, 0,
                             (size_t)g->cfg->limits.max_header_bytes + GUARD_READ_SLACK);
    /* a new connection's first head is due within header_timeout_s of the accept */
    c->deadline_ms = util_mono_ms() + g->cfg->limits.header_timeout_s * 1000;
    timer_arm(c, g->cfg->limits.header_timeout_s * 1000);
    g->live++;
    if (g->live >= (size_t)g->cfg->limits.max_connections && g->listener != NULL) {
        note_pause(g, PAUSE_CAP, 0);
        pause_accepting(g);
    }
    return f;
}

/* ---- the guard --------------------------------------------------------------------------- */

struct api_guard *api_guard_new(struct api *a, struct core_err *err)
{
    struct api_guard *g = calloc(1, sizeof(*g));

    if (g == NULL || util_random_id("", g->token, sizeof(g->token)) < 0 ||
        (g->retry = evtimer_new(a->base, on_retry, g)) == NULL) {
        free(g);
        core_err_set(err, CORE_ENOMEM, NULL, "cannot set up the connection guard");
        return NULL;
    }
    g->api = a;
    g->cfg = a->cfg;
    g->base = a->base;
    evhttp_set_bevcb(a->http, on_accept, g);
    return g;
}

void api_guard_listen(struct api_guard *g, struct evhttp_bound_socket *bound)
{
    g->listener = evhttp_bound_socket_get_listener(bound);
    evconnlistener_set_error_cb(g->listener, on_accept_error);
    g->next = listening;
    listening = g;
}

void api_guard_stop(struct api_guard *g)
{
    if (g == NULL || g->listener == NULL) {
        return;
    }
    for (struct api_guard **p = &listening; *p != NULL; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            break;
        }
    }
    g->listener = NULL;
    g->paused = false;
    event_del(g->retry);
}

void api_guard_free(struct api_guard *g)
{
    if (g == NULL) {
        return;
    }
    api_guard_stop(g);
    g->closing = true;
    while (g->lingers != NULL) {
        struct api_guard_linger *l = g->lingers;
        if (g->live == 1) {
            linger_end(l); /* the last one frees the guard */
            return;
        }
        linger_end(l);
    }
    if (g->live == 0) {
        guard_destroy(g);
    }
}

bool api_guard_tenant(struct api *a, struct evhttp_request *req, const char **tenant,
                      const struct api_key_ref **key)
{
    struct api_guard *g = api_guard_of(a);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    if (g->handoff_bev == NULL || evcon == NULL ||
        evhttp_connection_get_bufferevent(evcon) != g->handoff_bev) {
        return false;
    }
    g->handoff_bev = NULL;
    *tenant = g->handoff_tenant;
    *key = g->handoff_key;
    return true;
}

struct api_upload *api_guard_take_upload(struct api *a, const char *value)
{
    struct api_guard *g = api_guard_of(a);
    const char *id = after_token(g, value);
    char *end = NULL;
    uint64_t n;

    if (id == NULL) {
        return NULL;
    }
    n = strtoull(id, &end, 10);
    if (end == id || *end != '\0') {
        return NULL;
    }
    for (struct api_guard_conn **p = &g->uploads; *p != NULL; p = &(*p)->next_upload) {
        struct api_guard_conn *c = *p;
        if (c->upload_id == n) {
            struct api_upload *u = c->upload;
            *p = c->next_upload;
            c->upload = NULL;
            return u;
        }
    }
    return NULL;
}

void api_guard_metrics(struct api *a, struct evbuffer *out)
{
    const struct api_guard *g = api_guard_of(a);

    evbuffer_add_printf(out,
                        "# HELP sluice_http_connections Client connections open now.\n"
                        "# TYPE sluice_http_connections gauge\n"
                        "sluice_http_connections %zu\n"
                        "# HELP sluice_http_connections_max limits.max_connections.\n"
                        "# TYPE sluice_http_connections_max gauge\n"
                        "sluice_http_connections_max %ld\n"
                        "# HELP sluice_http_accept_paused_total Times accepting paused: at the "
                        "connection cap, or after an accept error (EMFILE...).\n"
                        "# TYPE sluice_http_accept_paused_total counter\n"
                        "sluice_http_accept_paused_total{cause=\"cap\"} %" PRIu64 "\n"
                        "sluice_http_accept_paused_total{cause=\"error\"} %" PRIu64 "\n"
                        "# HELP sluice_http_refused_total Requests refused on their line and "
                        "headers or for a slow body, by reason (body_not_read: answered without "
                        "reading the body).\n"
                        "# TYPE sluice_http_refused_total counter\n",
                        g->live, g->cfg->limits.max_connections, g->pauses[PAUSE_CAP],
                        g->pauses[PAUSE_ERROR]);
    for (size_t i = 0; i < R_COUNT; i++) {
        evbuffer_add_printf(out, "sluice_http_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                            api_guard_refusal_name((enum refusal)i), g->refused[i]);
    }
}
