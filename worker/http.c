/*
 * worker/http.c — libcurl multi driven by libevent (the "multi-event" pattern).
 *
 * curl owns the protocol; libevent owns the waiting. curl names the sockets it cares about through
 * on_curl_socket (one struct http_sock with a persistent event each) and its next deadline through
 * on_curl_timer (one evtimer). When either fires we hand the socket or the timeout to
 * curl_multi_socket_action and then drain curl's finished transfers, which is the only place a
 * user callback runs. Because http_client_send only adds the easy handle (curl answers with a
 * zero timeout that our evtimer turns into a loop iteration), a callback can never run inside
 * http_client_send.
 *
 * Calls are recycled: a finished struct http_call keeps its easy handle and buffers on an idle
 * list, and its connection goes back to the multi handle's connection cache for the next call.
 *
 * Streaming calls are the exception to "user code runs only after curl returns": a data callback
 * runs inside curl's write callback, where curl refuses curl_multi_add_handle and
 * curl_multi_remove_handle. So while curl runs (in_curl), a cancel only marks the call doomed and
 * parks it; run_curl takes doomed calls out of curl as soon as curl returns, before it delivers
 * finished transfers.
 *
 * What a call sends (method, headers, body) is put on its easy handle by worker/http_request.c,
 * what it keeps of the response is bounded by worker/http_response.c, and where a guarded call
 * may connect is worker/http_guard.c's business.
 */
#include "worker/http.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "worker/http_guard.h"
#include "worker/http_request.h"
#include "worker/http_response.h"

/* Defaults for zero fields of struct http_client_opts. */
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define HTTP_DEFAULT_MAX_RESPONSE_BYTES ((size_t)64 * 1024 * 1024)
#define HTTP_DEFAULT_USER_AGENT "sluice"
/* Idle connections the cache keeps when the total is unlimited: enough for a busy worker. */
#define HTTP_DEFAULT_MAX_CACHED_CONNECTIONS 1024L
/* Idle calls kept for reuse; beyond this a finished call is freed. */
#define HTTP_MAX_IDLE_CALLS 512
/* A recycled call keeps a body buffer up to this size; larger ones are freed so that one big reply
 * does not pin memory in every idle call. */
#define HTTP_KEEP_BUFFER_BYTES ((size_t)16 * 1024)
/*
 * curl's receive buffer per transfer (CURLOPT_BUFFERSIZE; curl's default 16 KiB, its minimum
 * 1 KiB). curl allocates it before connecting and keeps it while the call waits, and thousands of
 * calls wait at once. An untouched 16 KiB block costs little RSS by itself, but the pages it
 * shares with its neighbours on the heap do: measured at 10,000 waiting calls, 1 KiB takes about
 * 3 kB of RSS off each call (30 MB). The price is more reads for a large body: receiving costs
 * about 0.85 ms of CPU per MB instead of 0.25, nothing for the few-kB replies that are the norm.
 * See easy_set_buffer for why it is set where it is.
 */
#define HTTP_RECV_BUFFER_BYTES 1024L
/* TCP keepalive probes on idle pooled connections, in seconds. */
#define HTTP_KEEPIDLE_S 60L
#define HTTP_KEEPINTVL_S 20L

enum call_state {
    CALL_IDLE = 0, /* on the idle list, or being set up */
    CALL_ACTIVE,   /* in the multi handle, on the active list */
    CALL_IN_CB,    /* finished; its callback is running */
    CALL_DOOMED,   /* cancelled while curl ran; still in the multi handle, on the doomed list */
};

/*
 * One upstream call. Thousands may wait at once, each for seconds, so what a waiting call holds
 * is kept small: the response's headers are stored packed (struct http_response_buf) and only
 * laid out as an array, on the stack, when the callback runs (call_finish); the idle timer and
 * the guard exist only for the calls that use them.
 */
struct http_call {
    struct http_client *client;
    CURL *easy;
    struct event *deadline; /* the whole call's timeout, see on_call_deadline */
    struct event *idle;     /* streaming calls with an idle limit: see on_call_idle; else NULL */
    long timeout_ms;
    struct http_call *prev, *next; /* active list (both), idle or doomed list (next) */
    enum call_state state;
    http_client_cb cb;
    http_client_data_cb on_data; /* NULL: a buffered call */
    void *arg;

    struct http_request_buf tx;  /* what curl sends, see http_request_set */
    struct http_response_buf rx; /* what the call keeps of the response */

    bool too_large;    /* the write callback refused the body because of the cap */
    bool oom;          /* a buffer could not grow */
    bool body_seen;    /* stream calls: the first body byte arrived and the mode is decided */
    bool streaming;    /* stream calls: the status is 2xx and the body goes to on_data */
    int stream_status; /* stream calls: the status on_data is given */
    bool aborted;      /* on_data asked to stop */
    char errbuf[CURL_ERROR_SIZE];

    struct http_guard *guard; /* guarded calls only, else NULL */
};

/* One socket curl asked us to watch. */
struct http_sock {
    struct event *ev;
    struct http_sock *prev, *next;
};

struct http_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    char *user_agent;
    long connect_timeout_ms;
    size_t max_response_bytes;
    long idle_timeout_ms;

    struct http_call *active; /* in flight, doubly linked */
    size_t n_active;
    struct http_call *idle; /* recycled, singly linked */
    size_t n_idle;
    struct http_call *doomed; /* cancelled while curl ran, singly linked; see reap_doomed */
    struct http_sock *socks;  /* every watched socket, so free can release them all */

    bool dispatching;  /* user callbacks may run: http_client_free must wait */
    bool free_pending; /* http_client_free was called from a callback */
    bool in_curl;      /* inside curl_multi_socket_action: curl's multi API is off limits */
};

/* Options every call gets, whatever it sends. */
static const struct {
    CURLoption opt;
    long value;
} call_fixed_opts[] = {
    {CURLOPT_NOSIGNAL, 1L},
    {CURLOPT_NOPROGRESS, 1L},
    {CURLOPT_TCP_NODELAY, 1L},
    {CURLOPT_TCP_KEEPALIVE, 1L},
    {CURLOPT_TCP_KEEPIDLE, HTTP_KEEPIDLE_S},
    {CURLOPT_TCP_KEEPINTVL, HTTP_KEEPINTVL_S},
    {CURLOPT_FOLLOWLOCATION, 0L},
    {CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1},
};

/* How a curl result reads as an adapter transport outcome; anything not listed is OTHER. */
static const struct {
    CURLcode code;
    enum adapter_transport transport;
} transport_table[] = {
    {CURLE_OK, ADAPTER_TRANSPORT_OK},
    {CURLE_OPERATION_TIMEDOUT, ADAPTER_TRANSPORT_TIMEOUT},
    {CURLE_COULDNT_CONNECT, ADAPTER_TRANSPORT_CONNECT},
    {CURLE_COULDNT_RESOLVE_HOST, ADAPTER_TRANSPORT_CONNECT},
    {CURLE_COULDNT_RESOLVE_PROXY, ADAPTER_TRANSPORT_CONNECT},
    {CURLE_RECV_ERROR, ADAPTER_TRANSPORT_RESET},
    {CURLE_SEND_ERROR, ADAPTER_TRANSPORT_RESET},
    {CURLE_GOT_NOTHING, ADAPTER_TRANSPORT_RESET},
    {CURLE_PARTIAL_FILE, ADAPTER_TRANSPORT_RESET},
    {CURLE_FILESIZE_EXCEEDED, ADAPTER_TRANSPORT_TOO_LARGE}, /* Content-Length over the cap */
};

/* A streaming call hands a response with this status to on_data; any other is buffered. */
static bool status_streams(long status)
{
    return status >= 200 && status < 300;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void active_link(struct http_client *c, struct http_call *call)
{
    call->prev = NULL;
    call->next = c->active;
    if (c->active) {
        c->active->prev = call;
    }
    c->active = call;
    c->n_active++;
}

static void active_unlink(struct http_client *c, struct http_call *call)
{
    if (call->prev) {
        call->prev->next = call->next;
    } else {
        c->active = call->next;
    }
    if (call->next) {
        call->next->prev = call->prev;
    }
    call->prev = call->next = NULL;
    c->n_active--;
}

static void call_destroy(struct http_call *call)
{
    if (!call) {
        return;
    }
    if (call->easy) {
        curl_easy_cleanup(call->easy);
    }
    if (call->deadline) {
        event_free(call->deadline);
    }
    if (call->idle) {
        event_free(call->idle);
    }
    http_request_buf_cleanup(&call->tx);
    http_response_buf_cleanup(&call->rx);
    http_guard_free(call->guard);
    free(call);
}

/*
 * Sets HTTP_RECV_BUFFER_BYTES on a fresh or just reset easy handle. curl (7.88) refuses
 * CURLOPT_BUFFERSIZE while the handle still holds a receive buffer, and curl_easy_reset puts the
 * size back to 16 KiB without freeing one: curl frees it when a transfer ends on a connection,
 * but not when the transfer ended before it had one (a bad URL, a cancel while waiting for a free
 * connection). Such a handle must not run again (its next transfer would read 16 KiB into the
 * small buffer), so a refusal here means: throw the handle away. Returns 0 or -1.
 */
static int easy_set_buffer(CURL *easy)
{
    return curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, HTTP_RECV_BUFFER_BYTES) == CURLE_OK ? 0 : -1;
}

/*
 * Puts a call that is no longer in the multi handle back on the idle list. curl_easy_reset drops
 * every option (so no pointer into our freed buffers stays set) but keeps the handle's caches. A
 * call whose handle cannot take the buffer size again (see easy_set_buffer) is freed instead.
 */
static void call_recycle(struct http_client *c, struct http_call *call)
{
    evtimer_del(call->deadline);
    if (call->idle) {
        evtimer_del(call->idle);
    }
    curl_easy_reset(call->easy);
    http_request_buf_recycle(&call->tx, HTTP_KEEP_BUFFER_BYTES);
    http_response_buf_recycle(&call->rx, HTTP_KEEP_BUFFER_BYTES);
    http_guard_free(call->guard);
    call->guard = NULL;
    call->state = CALL_IDLE;
    call->cb = NULL;
    call->on_data = NULL;
    call->arg = NULL;
    if (c->n_idle >= HTTP_MAX_IDLE_CALLS || easy_set_buffer(call->easy) != 0) {
        call_destroy(call);
        return;
    }
    call->prev = NULL;
    call->next = c->idle;
    c->idle = call;
    c->n_idle++;
}

static void on_call_deadline(evutil_socket_t fd, short what, void *arg);
static void on_call_idle(evutil_socket_t fd, short what, void *arg);

/* An idle call, or a new one. NULL on out of memory. */
static struct http_call *call_get(struct http_client *c)
{
    struct http_call *call = c->idle;

    if (call) {
        c->idle = call->next;
        c->n_idle--;
        call->next = NULL;
        return call;
    }
    call = calloc(1, sizeof(*call));
    if (!call) {
        return NULL;
    }
    call->client = c;
    call->easy = curl_easy_init();
    call->deadline = evtimer_new(c->base, on_call_deadline, call);
    if (!call->easy || !call->deadline || easy_set_buffer(call->easy) != 0) {
        call_destroy(call);
        return NULL;
    }
    return call;
}

/*
 * A byte of the response arrived on a streaming call: restart its silence limit. Cheap enough per
 * write (a min-heap update), and a separate timer per call keeps one slow stream from holding up
 * the others.
 */
static void call_touch(struct http_call *call)
{
    long ms = call->client->idle_timeout_ms;
    struct timeval tv;

    if (!call->on_data || ms <= 0) {
        return;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(call->idle, &tv);
}

/*
 * CURLOPT_PREREQFUNCTION: a streaming call's connection is ready and the request about to go out.
 * The silence limit starts here, so that waiting for a free connection and connecting stay under
 * timeout_ms and connect_timeout_ms only.
 */
static int on_prereq(void *userp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    call_touch(userp);
    return CURL_PREREQFUNC_OK;
}

/*
 * Hands a piece of a streamed 2xx body to on_data. on_data may cancel this call or free the
 * client: either leaves the call doomed (see call_abort) with its memory intact until curl
 * returns, so its state can still be read here. A refused write stops the transfer.
 */
static size_t stream_write(struct http_call *call, const char *data, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (call->on_data(call->stream_status, data, len, call->arg) != 0 &&
        call->state == CALL_ACTIVE) {
        call->aborted = true;
    }
    return call->state == CALL_ACTIVE && !call->aborted ? len : 0;
}

/*
 * Body writes. Refusing a write (returning less than offered) makes curl end the transfer with
 * CURLE_WRITE_ERROR; the flags tell call_finish why. A doomed call's data is refused so that it
 * stops at once and reaches no callback. A streaming call decides at its first body byte, by the
 * final status (curl has parsed it by then; 1xx responses have no body), whether the body goes
 * to on_data or into the buffer.
 */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_call *call = userp;
    size_t len = size * nmemb;
    int rc;

    if (call->state != CALL_ACTIVE) {
        return 0;
    }
    if (call->on_data) {
        call_touch(call);
        if (!call->body_seen) {
            long status = 0;

            curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
            call->body_seen = true;
            call->streaming = status_streams(status);
            call->stream_status = (int)status;
        }
        if (call->streaming) {
            return stream_write(call, data, len);
        }
    }
    rc = http_response_buf_body(&call->rx, data, len, call->client->max_response_bytes);
    if (rc == HTTP_RESPONSE_TOO_LARGE) {
        call->too_large = true;
    } else if (rc != HTTP_RESPONSE_OK) {
        call->oom = true;
    }
    return rc == HTTP_RESPONSE_OK ? len : 0;
}

/*
 * Header lines, one per call (see http_response_buf_header for which are kept). Any header byte
 * restarts a streaming call's silence limit. Refusing a line ends the transfer.
 */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_call *call = userp;
    size_t len = size * nmemb;

    call_touch(call);
    if (http_response_buf_header(&call->rx, data, len) != HTTP_RESPONSE_OK) {
        call->oom = true;
        return 0;
    }
    return len;
}

/*
 * Sets the easy handle up for req: what it sends (http_request_set), how every call goes out
 * (call_fixed_opts, http and https only), and this client's limits and callbacks. A streaming
 * call gets no CURLOPT_MAXFILESIZE (its 2xx body is not capped; on_body caps a buffered one) and,
 * with an idle limit, its idle timer and the hook that starts it. Returns 0 or -1.
 */
static int call_prepare(struct http_client *c, struct http_call *call,
                        const struct adapter_request *req, long timeout_ms)
{
    CURL *e = call->easy;
    bool ok = true;
    int rc = -1;

    http_response_buf_clear(&call->rx);
    call->too_large = false;
    call->oom = false;
    call->body_seen = false;
    call->streaming = false;
    call->stream_status = 0;
    call->aborted = false;
    call->errbuf[0] = '\0';

    if (http_request_set(e, req, &call->tx) != 0) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(call_fixed_opts) / sizeof(call_fixed_opts[0]); i++) {
        ok &= curl_easy_setopt(e, call_fixed_opts[i].opt, call_fixed_opts[i].value) == CURLE_OK;
    }
    ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms) == CURLE_OK;
    if (!call->on_data) {
        ok &= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_bytes) ==
              CURLE_OK;
    } else if (c->idle_timeout_ms > 0) {
        if (!call->idle) {
            call->idle = evtimer_new(c->base, on_call_idle, call);
            if (!call->idle) {
                goto out;
            }
        }
        ok &= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_PREREQDATA, call) == CURLE_OK;
    }
    ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, call) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, call) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, call) == CURLE_OK;
    if (ok) {
        rc = 0;
    }
out:
    return rc;
}

static enum adapter_transport transport_of(const struct http_call *call, CURLcode code)
{
    if (code == CURLE_WRITE_ERROR && call->too_large) {
        return ADAPTER_TRANSPORT_TOO_LARGE;
    }
    for (size_t i = 0; i < sizeof(transport_table) / sizeof(transport_table[0]); i++) {
        if (transport_table[i].code == code) {
            return transport_table[i].transport;
        }
    }
    return ADAPTER_TRANSPORT_OTHER;
}

/*
 * Builds the response for a transfer curl reported done and hands it to the user's callback. The
 * header array lives on this stack frame, not in the call: it is only needed while the callback
 * runs, and a waiting call would otherwise carry it for nothing.
 */
static void call_finish(struct http_client *c, struct http_call *call, CURLcode code)
{
    struct adapter_response resp = {0};
    struct adapter_header headers[HTTP_CLIENT_MAX_HEADERS];
    long status = 0;

    resp.transport = transport_of(call, code);
    resp.now_ms = wall_ms();
    resp.headers = headers;
    resp.n_headers = http_response_buf_headers(&call->rx, headers);
    if (resp.transport == ADAPTER_TRANSPORT_OK) {
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
        resp.status = (int)status;
        if (!call->on_data || !status_streams(status)) {
            resp.body = http_response_buf_text(&call->rx, &resp.body_len);
        }
    } else {
        if (call->too_large || code == CURLE_FILESIZE_EXCEEDED) {
            snprintf(call->errbuf, sizeof(call->errbuf), "response body over %zu bytes",
                     c->max_response_bytes);
        } else if (call->aborted) {
            snprintf(call->errbuf, sizeof(call->errbuf), "aborted by the receiver");
        } else if (call->oom) {
            snprintf(call->errbuf, sizeof(call->errbuf), "out of memory reading the response");
        } else if (!http_guard_refusal(call->guard, code, call->errbuf, sizeof(call->errbuf)) &&
                   call->errbuf[0] == '\0') {
            snprintf(call->errbuf, sizeof(call->errbuf), "%s", curl_easy_strerror(code));
        }
        resp.transport_msg = call->errbuf;
    }
    call->state = CALL_IN_CB;
    call->cb(&resp, call->arg);
}

/*
 * Takes an active call out of curl and the active list, then calls back and recycles it. Taking
 * it out first gives the callback a consistent client: it may start calls (they only join the
 * multi handle) or cancel others. Runs only inside a dispatch (see dispatch_end).
 */
static void call_complete(struct http_client *c, struct http_call *call, CURLcode code)
{
    curl_multi_remove_handle(c->multi, call->easy);
    active_unlink(c, call);
    call_finish(c, call, code);
    call_recycle(c, call);
}

/*
 * A dispatch brackets every stretch of code that may run user callbacks, so that a callback's
 * http_client_free only aborts the calls and leaves the memory to dispatch_end. The caller must
 * not touch the client after dispatch_end.
 */
static void dispatch_begin(struct http_client *c)
{
    c->dispatching = true;
}

static void dispatch_end(struct http_client *c)
{
    c->dispatching = false;
    if (c->free_pending) {
        http_client_free(c);
    }
}

/*
 * Takes a call out of flight without calling back. Outside curl it leaves the multi handle at
 * once. Inside curl (a data callback cancelling a call or freeing the client) curl would refuse
 * that, so the call is doomed instead: parked, still in the multi handle, until curl returns and
 * reap_doomed removes it. Meanwhile on_body refuses its data, so no data callback runs for it.
 */
static void call_abort(struct http_client *c, struct http_call *call)
{
    active_unlink(c, call);
    if (c->in_curl) {
        evtimer_del(call->deadline);
        if (call->idle) {
            evtimer_del(call->idle);
        }
        call->state = CALL_DOOMED;
        call->next = c->doomed;
        c->doomed = call;
        return;
    }
    curl_multi_remove_handle(c->multi, call->easy);
    call_recycle(c, call);
}

/* Takes the doomed calls out of curl, which also drops their queued done messages. */
static void reap_doomed(struct http_client *c)
{
    while (c->doomed) {
        struct http_call *call = c->doomed;

        c->doomed = call->next;
        call->next = NULL;
        curl_multi_remove_handle(c->multi, call->easy);
        call_recycle(c, call);
    }
}

/*
 * Delivers every transfer curl has finished. curl_multi_info_read is asked afresh after every
 * callback, and a call a callback cancels is removed from the multi handle, which drops its queued
 * done message, so the loop never sees a call twice. Stops early when a callback freed the client.
 * Runs only inside a dispatch, outside curl.
 */
static void drain_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;

    while (!c->free_pending && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct http_call *call;
        void *priv = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        call = priv;
        call_complete(c, call, code);
    }
}

/*
 * Lets curl work on fd (or on its timeouts, for CURL_SOCKET_TIMEOUT), then takes out what data
 * callbacks cancelled meanwhile and delivers what finished. The whole run is one dispatch, since
 * a data callback may free the client. The caller must not touch the client afterwards.
 */
static void run_curl(struct http_client *c, curl_socket_t fd, int action)
{
    int running;

    dispatch_begin(c);
    c->in_curl = true;
    curl_multi_socket_action(c->multi, fd, action, &running);
    c->in_curl = false;
    reap_doomed(c);
    drain_done(c);
    dispatch_end(c);
}

/*
 * The whole call's time is up. curl's own CURLOPT_TIMEOUT_MS does not run while a transfer waits
 * for a free connection (max_total_connections / max_host_connections), so this timer is what
 * makes timeout_ms bound the whole call. Whichever fires first reports TIMEOUT.
 */
static void on_call_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct http_call *call = arg;
    struct http_client *c = call->client;

    if (call->state != CALL_ACTIVE) {
        return;
    }
    snprintf(call->errbuf, sizeof(call->errbuf), "call timed out after %ld ms", call->timeout_ms);
    dispatch_begin(c);
    call_complete(c, call, CURLE_OPERATION_TIMEDOUT);
    dispatch_end(c);
}

/* A streaming call heard nothing for idle_timeout_ms: it ends as a timeout, like the deadline. */
static void on_call_idle(evutil_socket_t fd, short what, void *arg)
{
    struct http_call *call = arg;
    struct http_client *c = call->client;

    if (call->state != CALL_ACTIVE) {
        return;
    }
    snprintf(call->errbuf, sizeof(call->errbuf), "no data for %ld ms", c->idle_timeout_ms);
    dispatch_begin(c);
    call_complete(c, call, CURLE_OPERATION_TIMEDOUT);
    dispatch_end(c);
}

static void sock_free(struct http_client *c, struct http_sock *s)
{
    if (!s) {
        return;
    }
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        c->socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    if (s->ev) {
        event_free(s->ev);
    }
    free(s);
}

/* libevent says a curl socket is ready: let curl work on it, then deliver what finished. */
static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct http_client *c = arg;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    run_curl(c, fd, action);
}

/* curl's deadline passed: let it time transfers out and start queued ones. */
static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    struct http_client *c = arg;

    run_curl(c, CURL_SOCKET_TIMEOUT, 0);
}

/*
 * CURLMOPT_SOCKETFUNCTION: curl wants fd watched for what (or no longer watched). The event's
 * argument is the client, not the struct http_sock, because a callback run from that event may
 * cancel a call and make curl drop the very socket whose event is running.
 * Returns 0, or -1 (out of memory) which makes curl fail the transfer.
 */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = socketp;
    short kind = EV_PERSIST;
    int rc = -1;

    if (what == CURL_POLL_REMOVE) {
        sock_free(c, s);
        rc = 0;
        goto out;
    }
    kind |= (what & CURL_POLL_IN) ? EV_READ : 0;
    kind |= (what & CURL_POLL_OUT) ? EV_WRITE : 0;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            goto out;
        }
        s->ev = event_new(c->base, fd, kind, on_socket_event, c);
        if (!s->ev) {
            free(s);
            goto out;
        }
        s->next = c->socks;
        if (c->socks) {
            c->socks->prev = s;
        }
        c->socks = s;
        if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
            sock_free(c, s);
            goto out;
        }
    } else {
        event_del(s->ev);
        if (event_assign(s->ev, c->base, fd, kind, on_socket_event, c) != 0) {
            goto out;
        }
    }
    if (event_add(s->ev, NULL) != 0) {
        goto out;
    }
    rc = 0;
out:
    return rc;
}

/*
 * CURLMOPT_TIMERFUNCTION: curl wants to be woken after timeout_ms (-1: never). curl forbids calling
 * curl_multi_socket_action from here, so even a zero timeout goes through the loop — which is also
 * what keeps user callbacks out of http_client_send.
 */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

struct http_client *http_client_new(struct event_base *base, const struct http_client_opts *opts)
{
    static const struct http_client_opts defaults = {0};
    struct http_client *c = NULL;
    bool ok = true;
    long max_total, max_cached;

    if (!base) {
        goto fail;
    }
    if (!opts) {
        opts = &defaults;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        goto fail;
    }
    c->base = base;
    c->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    c->max_response_bytes =
        opts->max_response_bytes > 0 ? opts->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE_BYTES;
    c->idle_timeout_ms = opts->idle_timeout_ms > 0 ? opts->idle_timeout_ms : 0;
    c->user_agent = strdup(opts->user_agent ? opts->user_agent : HTTP_DEFAULT_USER_AGENT);
    c->timer = evtimer_new(base, on_timer_event, c);
    c->multi = curl_multi_init();
    if (!c->user_agent || !c->timer || !c->multi) {
        goto fail;
    }
    max_total = opts->max_total_connections > 0 ? opts->max_total_connections : 0;
    max_cached = max_total > 0 ? max_total : HTTP_DEFAULT_MAX_CACHED_CONNECTIONS;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) == CURLM_OK;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) == CURLM_OK;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) == CURLM_OK;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) == CURLM_OK;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING) == CURLM_OK;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total) == CURLM_OK;
    ok &= curl_multi_setopt(
              c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
              (long)(opts->max_host_connections > 0 ? opts->max_host_connections : 0)) == CURLM_OK;
    ok &= curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, max_cached) == CURLM_OK;
    if (!ok) {
        goto fail;
    }
    return c;
fail:
    http_client_free(c);
    return NULL;
}

/* Takes every in-flight call out of flight without calling back (see call_abort). */
static void abort_all(struct http_client *c)
{
    while (c->active) {
        call_abort(c, c->active);
    }
}

/*
 * Order matters: easy handles leave the multi handle before curl_multi_cleanup (which closes the
 * cached connections and may still tell on_curl_socket to drop their sockets, so the client must
 * be intact then); sockets curl never told us to drop are released last.
 */
void http_client_free(struct http_client *c)
{
    if (!c) {
        return;
    }
    if (c->multi) {
        abort_all(c);
    }
    if (c->dispatching) {
        c->free_pending = true;
        return;
    }
    if (c->multi) {
        reap_doomed(c);
    }
    while (c->idle) {
        struct http_call *call = c->idle;

        c->idle = call->next;
        call_destroy(call);
    }
    if (c->multi) {
        curl_multi_cleanup(c->multi);
    }
    while (c->socks) {
        sock_free(c, c->socks);
    }
    if (c->timer) {
        event_free(c->timer);
    }
    free(c->user_agent);
    free(c);
}

/* What a guarded call checks before it connects (see http_client_send_guarded). */
struct call_guard {
    const struct netaddr_allow *allow; /* NULL: public addresses only */
};

/*
 * Every kind of call; guard is NULL for an unguarded one. Refused inside curl (from a data
 * callback), where curl_multi_add_handle would fail anyway: checked here so that no half-started
 * call is left behind.
 */
static struct http_call *call_start(struct http_client *c, const struct adapter_request *req,
                                    long timeout_ms, http_client_data_cb on_data, http_client_cb cb,
                                    void *arg, const struct call_guard *guard)
{
    struct http_call *call = NULL;
    struct timeval tv;

    if (!c || !req || !req->url || !cb || timeout_ms <= 0 || c->free_pending || c->in_curl ||
        !http_request_method_ok(req->method, sizeof(req->method))) {
        goto fail;
    }
    call = call_get(c);
    if (!call) {
        goto fail;
    }
    call->on_data = on_data;
    if (call_prepare(c, call, req, timeout_ms) != 0 ||
        (guard && http_guard_attach(call->easy, req->url, guard->allow, &call->guard) != 0)) {
        goto fail;
    }
    call->timeout_ms = timeout_ms;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (evtimer_add(call->deadline, &tv) != 0 ||
        curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
        goto fail;
    }
    call->cb = cb;
    call->arg = arg;
    call->state = CALL_ACTIVE;
    active_link(c, call);
    return call;
fail:
    if (call) {
        call_recycle(c, call);
    }
    return NULL;
}

struct http_call *http_client_send(struct http_client *c, const struct adapter_request *req,
                                   long timeout_ms, http_client_cb cb, void *arg)
{
    return call_start(c, req, timeout_ms, NULL, cb, arg, NULL);
}

struct http_call *http_client_send_stream(struct http_client *c, const struct adapter_request *req,
                                          long timeout_ms, http_client_data_cb on_data,
                                          http_client_cb on_done, void *arg)
{
    if (!on_data) {
        return NULL;
    }
    return call_start(c, req, timeout_ms, on_data, on_done, arg, NULL);
}

struct http_call *http_client_send_guarded(struct http_client *c, const struct adapter_request *req,
                                           long timeout_ms, const struct netaddr_allow *allow,
                                           http_client_cb cb, void *arg)
{
    const struct call_guard guard = {allow};

    return call_start(c, req, timeout_ms, NULL, cb, arg, &guard);
}

struct http_call *
http_client_send_guarded_stream(struct http_client *c, const struct adapter_request *req,
                                long timeout_ms, const struct netaddr_allow *allow,
                                http_client_data_cb on_data, http_client_cb on_done, void *arg)
{
    const struct call_guard guard = {allow};

    if (!on_data) {
        return NULL;
    }
    return call_start(c, req, timeout_ms, on_data, on_done, arg, &guard);
}

void http_call_cancel(struct http_call *call)
{
    if (!call || call->state != CALL_ACTIVE) {
        return;
    }
    call_abort(call->client, call);
}

size_t http_client_in_flight(const struct http_client *c)
{
    return c ? c->n_active : 0;
}
