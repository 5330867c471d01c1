/*
 * tests/unit/test_worker_http.c — worker/http.h against a real HTTP server.
 *
 * The server is tests/unit/http_server.h's, on the same event_base as the client under test: an
 * echo that returns the request as JSON, a reply delayed by an evtimer, a 503 with retry-after, a
 * huge body (with a Content-Length or chunked), many and oversized headers, a connection that
 * closes without an answer, and a chunked stream whose chunks an evtimer sends one by one. It
 * counts the connections it accepts, so reuse can be shown, and the stream chunks it sends, so
 * that a test can tell streaming from buffering.
 *
 * Checks with tests/unit/check.h: `ok <name>` or `FAIL <name>` per test, then `N passed, N
 * failed` over the assertions.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "tests/unit/check.h"
#include "tests/unit/http_server.h"
#include "worker/http.h"

#define N_CONCURRENT 200
#define N_SEQUENTIAL 50
#define SMALL_CAP 65536

/* ---- the client side ----------------------------------------------------------------------- */

struct env {
    struct event_base *base;
    struct http_server srv;
    char refused_url[64]; /* a bound port nobody listens on */
    int refused_fd;
    bool in_send;   /* true while the test is inside http_client_send */
    int cb_in_send; /* callbacks that ran inside http_client_send: must stay 0 */
};

/* What a callback saw, copied out (resp is only valid during the callback). */
struct reply {
    struct env *env;
    int calls;
    int status;
    enum adapter_transport transport;
    char msg[CURL_ERROR_SIZE + 64];
    bool msg_null;
    bool body_null;
    char *body;
    size_t body_len;
    size_t n_headers;
    char **names, **values;
    int64_t now_ms;
    /* for re-entrancy tests */
    struct http_client *client;
    struct http_call *other; /* cancelled from the callback */
    struct reply *follow_up; /* sent from the callback to /echo */
    struct http_call *self;
    bool free_client;
};

static void reply_cleanup(struct reply *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->body);
    r->names = r->values = NULL;
    r->body = NULL;
    r->n_headers = 0;
}

static const char *reply_header(const struct reply *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcmp(r->names[i], name) == 0) {
            return r->values[i];
        }
    }
    return NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct http_call *send_to(struct env *env, struct http_client *c, const char *method,
                                 const char *url, const char *body, long timeout_ms,
                                 http_client_cb cb, struct reply *r);

static void on_reply(const struct adapter_response *resp, void *arg)
{
    struct reply *r = arg;

    r->calls++;
    if (r->env->in_send) {
        r->env->cb_in_send++;
    }
    if (r->calls > 1) {
        return;
    }
    r->status = resp->status;
    r->transport = resp->transport;
    r->msg_null = resp->transport_msg == NULL;
    snprintf(r->msg, sizeof(r->msg), "%s", resp->transport_msg ? resp->transport_msg : "");
    r->body_null = resp->body == NULL;
    if (resp->body) {
        r->body = malloc(resp->body_len + 1);
        memcpy(r->body, resp->body, resp->body_len);
        r->body[resp->body_len] = '\0';
        r->body_len = resp->body_len;
    }
    r->names = calloc(resp->n_headers + 1, sizeof(char *));
    r->values = calloc(resp->n_headers + 1, sizeof(char *));
    for (size_t i = 0; i < resp->n_headers; i++) {
        r->names[i] = strdup(resp->headers[i].name);
        r->values[i] = strdup(resp->headers[i].value);
    }
    r->n_headers = resp->n_headers;
    r->now_ms = resp->now_ms;
}

/* on_reply, then cancels r->other, tries to cancel itself, sends r->follow_up, or frees. */
static void on_reply_reentrant(const struct adapter_response *resp, void *arg)
{
    struct reply *r = arg;
    char url[128];

    on_reply(resp, arg);
    if (r->other) {
        http_call_cancel(r->other);
        r->other = NULL;
    }
    http_call_cancel(r->self); /* documented no-op from its own callback */
    if (r->follow_up) {
        snprintf(url, sizeof(url), "%s/echo", r->env->srv.url);
        send_to(r->env, r->client, "POST", url, "follow-up", 5000, on_reply, r->follow_up);
    }
    if (r->free_client) {
        http_client_free(r->client);
        r->client = NULL;
        /* resp stays readable until we return */
        r->status = resp->status;
    }
}

/*
 * Sends method url with body (may be NULL) and two request headers, streamed when on_data is not
 * NULL; the url and body are freed at once.
 */
static struct http_call *start_call(struct env *env, struct http_client *c, const char *method,
                                    const char *url, const char *body, long timeout_ms,
                                    http_client_data_cb on_data, http_client_cb cb, void *arg)
{
    char h1[] = "Content-Type: application/json";
    char h2[] = "X-Custom: abc";
    char *headers[] = {h1, h2};
    struct adapter_request req = {0};
    struct http_call *call;

    snprintf(req.method, sizeof(req.method), "%s", method);
    req.url = strdup(url);
    req.headers = headers;
    req.n_headers = 2;
    req.body = body ? strdup(body) : NULL;
    req.body_len = body ? strlen(body) : 0;
    env->in_send = true;
    if (on_data) {
        call = http_client_send_stream(c, &req, timeout_ms, on_data, cb, arg);
    } else {
        call = http_client_send(c, &req, timeout_ms, cb, arg);
    }
    env->in_send = false;
    /* borrowed: gone as soon as the call returns */
    free(req.url);
    free(req.body);
    return call;
}

static struct http_call *send_to(struct env *env, struct http_client *c, const char *method,
                                 const char *url, const char *body, long timeout_ms,
                                 http_client_cb cb, struct reply *r)
{
    r->env = env;
    return start_call(env, c, method, url, body, timeout_ms, NULL, cb, r);
}

static struct http_call *send_path(struct env *env, struct http_client *c, const char *method,
                                   const char *path, const char *body, long timeout_ms,
                                   struct reply *r)
{
    char url[256];

    snprintf(url, sizeof(url), "%s%s", env->srv.url, path);
    return send_to(env, c, method, url, body, timeout_ms, on_reply, r);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/*
 * Runs the loop until *counter reaches target or limit_ms passes. counter NULL: just run for
 * limit_ms. Returns true when the target was reached (or, for counter NULL, always).
 */
static bool run_until(struct env *env, const int *counter, int target, long limit_ms)
{
    bool expired = false;
    struct event *t = evtimer_new(env->base, on_deadline, &expired);
    struct timeval tv = {limit_ms / 1000, (limit_ms % 1000) * 1000};

    evtimer_add(t, &tv);
    while (!expired && (!counter || *counter < target)) {
        event_base_loop(env->base, EVLOOP_ONCE);
    }
    event_free(t);
    return !counter || *counter >= target;
}

static struct http_client *new_client_idle(struct env *env, size_t max_response_bytes,
                                           int max_total, long idle_timeout_ms)
{
    struct http_client_opts o = {
        .max_total_connections = max_total,
        .max_host_connections = 0,
        .connect_timeout_ms = 2000,
        .max_response_bytes = max_response_bytes,
        .user_agent = "sluice-test/1",
        .idle_timeout_ms = idle_timeout_ms,
    };

    return http_client_new(env->base, &o);
}

static struct http_client *new_client(struct env *env, size_t max_response_bytes, int max_total)
{
    return new_client_idle(env, max_response_bytes, max_total, 0);
}

/* What a streaming call saw: its data callbacks, and its final callback in r. */
struct stream_rx {
    struct reply r; /* from on_done */
    char data[4096];
    size_t len;           /* bytes kept in data */
    size_t total;         /* bytes received */
    int n_data;           /* on_data calls */
    int status;           /* the status the last on_data got */
    int chunks_at_first;  /* server chunks sent when the first on_data ran */
    int64_t last_data_ms; /* mono_ms of the last on_data */
    int data_after_done;  /* on_data calls after on_done: must stay 0 */
    bool cancelled;       /* the test cancelled the call */
    int data_after_cancel;
    /* what on_data does on its n-th call (1-based; 0 = never) */
    int abort_at;        /* return non-zero */
    int cancel_self_at;  /* http_call_cancel(self) */
    int cancel_other_at; /* http_call_cancel(other) */
    int free_at;         /* http_client_free(client) */
    int send_at;         /* try http_client_send: must return NULL */
    struct http_call *self, *other;
    struct stream_rx *other_rx; /* marked cancelled along with other */
    struct http_client *client;
    bool send_refused;
};

static int on_stream_data(int status, const char *buf, size_t len, void *arg)
{
    struct stream_rx *rx = arg;
    struct env *env = rx->r.env;
    size_t keep = len < sizeof(rx->data) - rx->len ? len : sizeof(rx->data) - rx->len;

    rx->n_data++;
    if (env->in_send) {
        env->cb_in_send++;
    }
    rx->data_after_done += rx->r.calls > 0;
    rx->data_after_cancel += rx->cancelled;
    if (rx->n_data == 1) {
        rx->chunks_at_first = env->srv.n_chunks;
    }
    rx->status = status;
    rx->last_data_ms = mono_ms();
    memcpy(rx->data + rx->len, buf, keep);
    rx->len += keep;
    rx->total += len;
    if (rx->n_data == rx->cancel_other_at) {
        http_call_cancel(rx->other);
        rx->other_rx->cancelled = true;
    }
    if (rx->n_data == rx->cancel_self_at) {
        http_call_cancel(rx->self);
        rx->cancelled = true;
    }
    if (rx->n_data == rx->send_at) {
        char url[128];
        struct reply never = {0};

        snprintf(url, sizeof(url), "%s/echo", env->srv.url);
        rx->send_refused =
            send_to(env, rx->client, "GET", url, NULL, 1000, on_reply, &never) == NULL;
        reply_cleanup(&never);
    }
    if (rx->n_data == rx->free_at) {
        http_client_free(rx->client);
        rx->client = NULL;
        rx->cancelled = true;
    }
    return rx->n_data == rx->abort_at;
}

static void on_stream_done(const struct adapter_response *resp, void *arg)
{
    struct stream_rx *rx = arg;

    on_reply(resp, &rx->r);
}

static void stream_rx_cleanup(struct stream_rx *rx)
{
    reply_cleanup(&rx->r);
}

static struct http_call *stream_path(struct env *env, struct http_client *c, const char *method,
                                     const char *path, long timeout_ms, struct stream_rx *rx)
{
    char url[256];

    snprintf(url, sizeof(url), "%s%s", env->srv.url, path);
    rx->r.env = env;
    rx->client = c;
    rx->self =
        start_call(env, c, method, url, NULL, timeout_ms, on_stream_data, on_stream_done, rx);
    return rx->self;
}

/* "chunk-0\nchunk-1\n..." for chunks [0, n). */
static const char *chunks_text(long n)
{
    static char buf[1024];
    size_t len = 0;

    buf[0] = '\0';
    for (long i = 0; i < n && len < sizeof(buf) - 32; i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "chunk-%ld\n", i);
    }
    return buf;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_success(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    cJSON *echo = NULL;
    int64_t t0 = wall_ms(), t1;

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "POST", "/echo", "{\"hello\":\"world\"}", 5000, &r), "send");
    CHECK_OR_OUT(http_client_in_flight(c) == 1, "in_flight %zu, want 1", http_client_in_flight(c));
    CHECK_OR_OUT(r.calls == 0, "callback ran before the loop");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    t1 = wall_ms();
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_OK, "transport %d (%s)", r.transport, r.msg);
    CHECK_OR_OUT(r.status == 200, "status %d", r.status);
    CHECK_OR_OUT(r.msg_null, "transport_msg set on success: %s", r.msg);
    CHECK_OR_OUT(r.now_ms >= t0 && r.now_ms <= t1, "now_ms %lld outside [%lld, %lld]",
                 (long long)r.now_ms, (long long)t0, (long long)t1);
    echo = cJSON_ParseWithLength(r.body, r.body_len);
    CHECK_OR_OUT(echo, "body is not JSON: %s", r.body);
    CHECK_OR_OUT(strcmp(cJSON_GetObjectItem(echo, "method")->valuestring, "POST") == 0, "method");
    CHECK_OR_OUT(strcmp(cJSON_GetObjectItem(echo, "body")->valuestring, "{\"hello\":\"world\"}") ==
                     0,
                 "echoed body %s", cJSON_GetObjectItem(echo, "body")->valuestring);
    {
        cJSON *h = cJSON_GetObjectItem(echo, "headers");
        cJSON *custom = cJSON_GetObjectItem(h, "x-custom");
        cJSON *ua = cJSON_GetObjectItem(h, "user-agent");
        cJSON *expect = cJSON_GetObjectItem(h, "expect");

        CHECK_OR_OUT(cJSON_IsString(custom) && strcmp(custom->valuestring, "abc") == 0,
                     "request header x-custom not received");
        CHECK_OR_OUT(cJSON_IsString(ua) && strcmp(ua->valuestring, "sluice-test/1") == 0,
                     "user-agent not sent");
        CHECK_OR_OUT(!expect, "Expect header sent");
    }
    CHECK_OR_OUT(reply_header(&r, "content-type") &&
                     strcmp(reply_header(&r, "content-type"), "application/json") == 0,
                 "content-type header missing");
    CHECK_OR_OUT(reply_header(&r, "x-test") && strcmp(reply_header(&r, "x-test"), "yes") == 0,
                 "x-test header missing");
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu after completion",
                 http_client_in_flight(c));
    CHECK_OR_OUT(env->cb_in_send == 0, "callback ran inside http_client_send");
out:
    cJSON_Delete(echo);
    reply_cleanup(&r);
    http_client_free(c);
}

static void test_get_and_methods(struct env *env)
{
    static const struct {
        const char *method;
        const char *body;
        const char *want;
    } cases[] = {
        {"GET", NULL, "GET"},
        {"PUT", "{\"a\":1}", "PUT"},
        {"POST", NULL, "POST"},
    };
    struct http_client *c = new_client(env, 0, 0);
    struct reply r[3] = {{0}};
    cJSON *echo = NULL;
    int done = 0;

    CHECK_OR_OUT(c, "http_client_new failed");
    for (size_t i = 0; i < 3; i++) {
        CHECK_OR_OUT(send_path(env, c, cases[i].method, "/echo", cases[i].body, 5000, &r[i]),
                     "send %s", cases[i].method);
    }
    for (;;) {
        done = r[0].calls + r[1].calls + r[2].calls;
        if (done == 3 || !run_until(env, NULL, 0, 50)) {
            break;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        cJSON_Delete(echo);
        echo = cJSON_ParseWithLength(r[i].body, r[i].body_len);
        CHECK_OR_OUT(r[i].calls == 1 && r[i].status == 200 && echo, "%s: calls %d status %d",
                     cases[i].method, r[i].calls, r[i].status);
        CHECK_OR_OUT(strcmp(cJSON_GetObjectItem(echo, "method")->valuestring, cases[i].want) == 0,
                     "%s arrived as %s", cases[i].method,
                     cJSON_GetObjectItem(echo, "method")->valuestring);
        CHECK_OR_OUT(strcmp(cJSON_GetObjectItem(echo, "body")->valuestring,
                            cases[i].body ? cases[i].body : "") == 0,
                     "%s body %s", cases[i].method, cJSON_GetObjectItem(echo, "body")->valuestring);
    }
out:
    cJSON_Delete(echo);
    for (size_t i = 0; i < 3; i++) {
        reply_cleanup(&r[i]);
    }
    http_client_free(c);
}

static void test_concurrent(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply *r = calloc(N_CONCURRENT, sizeof(*r));
    cJSON *echo = NULL;
    int64_t deadline = mono_ms() + 20000;
    int done = 0;

    CHECK_OR_OUT(c && r, "setup failed");
    for (int i = 0; i < N_CONCURRENT; i++) {
        char body[32];

        snprintf(body, sizeof(body), "req-%d", i);
        CHECK_OR_OUT(send_path(env, c, "POST", "/echo", body, 15000, &r[i]), "send %d", i);
    }
    CHECK_OR_OUT(http_client_in_flight(c) == N_CONCURRENT, "in_flight %zu",
                 http_client_in_flight(c));
    while (done < N_CONCURRENT && mono_ms() < deadline) {
        run_until(env, NULL, 0, 20);
        done = 0;
        for (int i = 0; i < N_CONCURRENT; i++) {
            done += r[i].calls > 0;
        }
    }
    CHECK_OR_OUT(done == N_CONCURRENT, "only %d of %d completed", done, N_CONCURRENT);
    run_until(env, NULL, 0, 100); /* a duplicate callback would show up here */
    for (int i = 0; i < N_CONCURRENT; i++) {
        char want[32];
        cJSON *b;

        snprintf(want, sizeof(want), "req-%d", i);
        CHECK_OR_OUT(r[i].calls == 1, "call %d: %d callbacks", i, r[i].calls);
        CHECK_OR_OUT(r[i].transport == ADAPTER_TRANSPORT_OK && r[i].status == 200,
                     "call %d: transport %d status %d (%s)", i, r[i].transport, r[i].status,
                     r[i].msg);
        cJSON_Delete(echo);
        echo = cJSON_ParseWithLength(r[i].body, r[i].body_len);
        b = cJSON_GetObjectItem(echo, "body");
        CHECK_OR_OUT(cJSON_IsString(b) && strcmp(b->valuestring, want) == 0,
                     "call %d got another call's reply", i);
    }
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    CHECK_OR_OUT(env->cb_in_send == 0, "callback ran inside http_client_send");
out:
    cJSON_Delete(echo);
    for (int i = 0; r && i < N_CONCURRENT; i++) {
        reply_cleanup(&r[i]);
    }
    free(r);
    http_client_free(c);
}

/* Sequential calls: each callback starts the next one. */
struct chain {
    struct env *env;
    struct http_client *c;
    struct reply r;
    int done;
    int failed;
};

static void on_chain(const struct adapter_response *resp, void *arg)
{
    struct chain *ch = arg;
    char url[128];
    char h[] = "X-Custom: chain";
    char *headers[] = {h};
    struct adapter_request req = {.method = "GET", .headers = headers, .n_headers = 1};

    ch->done++;
    if (resp->transport != ADAPTER_TRANSPORT_OK || resp->status != 200) {
        ch->failed++;
    }
    if (ch->done < N_SEQUENTIAL) {
        snprintf(url, sizeof(url), "%s/echo", ch->env->srv.url);
        req.url = url;
        if (!http_client_send(ch->c, &req, 5000, on_chain, ch)) {
            ch->failed++;
            ch->done = N_SEQUENTIAL;
        }
    }
}

static void test_reuse(struct env *env)
{
    struct chain ch = {.env = env};
    char url[128];
    char *headers[] = {NULL};
    struct adapter_request req = {.method = "GET", .url = url, .headers = headers};
    int before = env->srv.n_conns;
    int made;

    ch.c = new_client(env, 0, 0);
    CHECK_OR_OUT(ch.c, "http_client_new failed");
    snprintf(url, sizeof(url), "%s/echo", env->srv.url);
    CHECK_OR_OUT(http_client_send(ch.c, &req, 5000, on_chain, &ch), "send");
    CHECK_OR_OUT(run_until(env, &ch.done, N_SEQUENTIAL, 10000), "only %d of %d calls completed",
                 ch.done, N_SEQUENTIAL);
    CHECK_OR_OUT(ch.failed == 0, "%d calls failed", ch.failed);
    made = env->srv.n_conns - before;
    CHECK_OR_OUT(made >= 1 && made <= 2, "%d connections for %d sequential calls", made,
                 N_SEQUENTIAL);
out:
    http_client_free(ch.c);
}

/* Bursts of calls after the first: connections from the first burst are reused. */
static void test_reuse_burst(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r[2][20];
    int before = env->srv.n_conns;
    int first = 0, second;

    memset(r, 0, sizeof(r));
    CHECK_OR_OUT(c, "http_client_new failed");
    for (int round = 0; round < 2; round++) {
        int done = 0;
        int64_t deadline = mono_ms() + 10000;

        for (int i = 0; i < 20; i++) {
            CHECK_OR_OUT(send_path(env, c, "GET", "/echo", NULL, 5000, &r[round][i]), "send");
        }
        while (done < 20 && mono_ms() < deadline) {
            run_until(env, NULL, 0, 20);
            done = 0;
            for (int i = 0; i < 20; i++) {
                done += r[round][i].calls;
            }
        }
        CHECK_OR_OUT(done == 20, "round %d: %d of 20 completed", round, done);
        if (round == 0) {
            first = env->srv.n_conns - before;
        }
    }
    second = env->srv.n_conns - before - first;
    CHECK_OR_OUT(first <= 20, "first burst opened %d connections for 20 calls", first);
    CHECK_OR_OUT(second == 0, "second burst opened %d new connections (first opened %d)", second,
                 first);
out:
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20; i++) {
            reply_cleanup(&r[round][i]);
        }
    }
    http_client_free(c);
}

static void test_timeout(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    int64_t t0 = mono_ms(), took;

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "GET", "/delay?ms=3000", NULL, 200, &r), "send");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    took = mono_ms() - t0;
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_TIMEOUT, "transport %d (%s)", r.transport, r.msg);
    CHECK_OR_OUT(r.status == 0 && r.body_null, "status %d / body on a timeout", r.status);
    CHECK_OR_OUT(r.msg[0] != '\0', "no transport_msg");
    CHECK_OR_OUT(took >= 150 && took < 2000, "timed out after %lld ms", (long long)took);
out:
    reply_cleanup(&r);
    http_client_free(c);
}

/* With one connection allowed, a call waiting for it still times out on its own clock. */
static void test_timeout_while_queued(struct env *env)
{
    struct http_client *c = new_client(env, 0, 1);
    struct reply slow = {0}, queued = {0};
    int64_t t0 = mono_ms(), took;

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "GET", "/delay?ms=1500", NULL, 5000, &slow), "send slow");
    CHECK_OR_OUT(send_path(env, c, "GET", "/echo", NULL, 300, &queued), "send queued");
    CHECK_OR_OUT(run_until(env, &queued.calls, 1, 5000), "no callback for the queued call");
    took = mono_ms() - t0;
    CHECK_OR_OUT(queued.transport == ADAPTER_TRANSPORT_TIMEOUT, "queued: transport %d (%s)",
                 queued.transport, queued.msg);
    CHECK_OR_OUT(took < 1200, "queued call timed out after %lld ms", (long long)took);
    CHECK_OR_OUT(run_until(env, &slow.calls, 1, 5000), "no callback for the slow call");
    CHECK_OR_OUT(slow.transport == ADAPTER_TRANSPORT_OK && slow.status == 200,
                 "slow: transport %d status %d", slow.transport, slow.status);
out:
    reply_cleanup(&slow);
    reply_cleanup(&queued);
    http_client_free(c);
}

static void test_connect_refused(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_to(env, c, "GET", env->refused_url, NULL, 5000, on_reply, &r), "send");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_CONNECT, "transport %d (%s)", r.transport, r.msg);
    CHECK_OR_OUT(r.status == 0, "status %d", r.status);
    CHECK_OR_OUT(r.msg[0] != '\0', "no transport_msg");
    CHECK_OR_OUT(env->cb_in_send == 0, "callback ran inside http_client_send");
out:
    reply_cleanup(&r);
    http_client_free(c);
}

static void test_too_large(struct env *env)
{
    static const struct {
        const char *path;
        enum adapter_transport want;
        size_t want_len;
    } cases[] = {
        {"/huge?bytes=1000000", ADAPTER_TRANSPORT_TOO_LARGE, 0},           /* Content-Length */
        {"/huge?bytes=1000000&chunked=1", ADAPTER_TRANSPORT_TOO_LARGE, 0}, /* write callback */
        {"/huge?bytes=65536&chunked=1", ADAPTER_TRANSPORT_OK, SMALL_CAP},  /* exactly the cap */
        {"/huge?bytes=65537&chunked=1", ADAPTER_TRANSPORT_TOO_LARGE, 0},   /* one byte over */
    };
    struct http_client *c = new_client(env, SMALL_CAP, 0);
    struct reply r = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reply_cleanup(&r);
        memset(&r, 0, sizeof(r));
        CHECK_OR_OUT(send_path(env, c, "GET", cases[i].path, NULL, 5000, &r), "send");
        CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "%s: no callback", cases[i].path);
        CHECK_OR_OUT(r.transport == cases[i].want, "%s: transport %d (%s)", cases[i].path,
                     r.transport, r.msg);
        CHECK_OR_OUT(r.body_len == cases[i].want_len, "%s: body_len %zu", cases[i].path,
                     r.body_len);
        CHECK_OR_OUT(cases[i].want == ADAPTER_TRANSPORT_OK || strstr(r.msg, "65536"),
                     "%s: message '%s' does not name the cap", cases[i].path, r.msg);
    }
out:
    reply_cleanup(&r);
    http_client_free(c);
}

static void test_reset(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "POST", "/close", "x", 5000, &r), "send");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_RESET, "transport %d (%s)", r.transport, r.msg);
    CHECK_OR_OUT(r.status == 0, "status %d", r.status);
out:
    reply_cleanup(&r);
    http_client_free(c);
}

static void test_503_retry_after(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "POST", "/503", "{}", 5000, &r), "send");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_OK, "transport %d (%s)", r.transport, r.msg);
    CHECK_OR_OUT(r.status == 503, "status %d", r.status);
    CHECK_OR_OUT(reply_header(&r, "retry-after") &&
                     strcmp(reply_header(&r, "retry-after"), "7") == 0,
                 "retry-after missing");
    CHECK_OR_OUT(r.body && strstr(r.body, "overloaded"), "body %s", r.body ? r.body : "(null)");
out:
    reply_cleanup(&r);
    http_client_free(c);
}

static void test_headers(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0}, multi = {0};
    int n_multi = 0;

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "GET", "/headers?n=150", NULL, 5000, &r), "send");
    CHECK_OR_OUT(send_path(env, c, "GET", "/echo", NULL, 5000, &multi), "send");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK_OR_OUT(run_until(env, &multi.calls, 1, 5000), "no callback");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_OK && r.status == 200, "transport %d status %d",
                 r.transport, r.status);
    CHECK_OR_OUT(r.n_headers == HTTP_CLIENT_MAX_HEADERS, "%zu headers kept", r.n_headers);
    CHECK_OR_OUT(!reply_header(&r, "x-big"), "the 10 KB header was kept");
    for (size_t i = 0; i < r.n_headers; i++) {
        char name[32], value[32];

        snprintf(name, sizeof(name), "x-h-%03zu", i);
        snprintf(value, sizeof(value), "v%zu", i);
        CHECK_OR_OUT(strcmp(r.names[i], name) == 0 && strcmp(r.values[i], value) == 0,
                     "header %zu is %s: %s", i, r.names[i], r.values[i]);
    }
    for (size_t i = 0; i < multi.n_headers; i++) {
        n_multi += strcmp(multi.names[i], "x-multi") == 0;
    }
    CHECK_OR_OUT(n_multi == 2, "%d x-multi headers, want both", n_multi);
out:
    reply_cleanup(&r);
    reply_cleanup(&multi);
    http_client_free(c);
}

/*
 * Cancel before the loop runs; cancel another call and start a new one from inside a callback;
 * cancel oneself from one's own callback (no-op). Cancelled calls never call back.
 */
static void test_cancel(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply a = {0}, b = {0}, cr = {0}, d = {0}, e = {0};
    struct http_call *call_a, *call_c;
    char url[128];

    CHECK_OR_OUT(c, "http_client_new failed");
    call_a = send_path(env, c, "GET", "/delay?ms=300", NULL, 5000, &a);
    CHECK_OR_OUT(call_a, "send a");
    CHECK_OR_OUT(send_path(env, c, "GET", "/delay?ms=100", NULL, 5000, &b), "send b");
    http_call_cancel(call_a);
    CHECK_OR_OUT(http_client_in_flight(c) == 1, "in_flight %zu after cancel",
                 http_client_in_flight(c));
    d.env = env;
    cr.other = send_path(env, c, "GET", "/delay?ms=200", NULL, 5000, &d);
    CHECK_OR_OUT(cr.other, "send d");
    cr.client = c;
    cr.follow_up = &e;
    cr.env = env;
    snprintf(url, sizeof(url), "%s/echo", env->srv.url);
    call_c = send_to(env, c, "GET", url, NULL, 5000, on_reply_reentrant, &cr);
    CHECK_OR_OUT(call_c, "send c");
    cr.self = call_c;
    CHECK_OR_OUT(run_until(env, &cr.calls, 1, 5000), "c: no callback");
    CHECK_OR_OUT(run_until(env, &e.calls, 1, 5000), "follow-up: no callback");
    CHECK_OR_OUT(run_until(env, &b.calls, 1, 5000), "b: no callback");
    run_until(env, NULL, 0, 400); /* past a's and d's replies */
    CHECK_OR_OUT(a.calls == 0, "cancelled call a called back %d times", a.calls);
    CHECK_OR_OUT(d.calls == 0, "call d cancelled from a callback called back %d times", d.calls);
    CHECK_OR_OUT(cr.calls == 1 && b.calls == 1 && e.calls == 1, "calls c %d b %d e %d", cr.calls,
                 b.calls, e.calls);
    CHECK_OR_OUT(e.transport == ADAPTER_TRANSPORT_OK && e.status == 200, "follow-up status %d",
                 e.status);
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    CHECK_OR_OUT(env->cb_in_send == 0, "callback ran inside http_client_send");
out:
    reply_cleanup(&a);
    reply_cleanup(&b);
    reply_cleanup(&cr);
    reply_cleanup(&d);
    reply_cleanup(&e);
    http_client_free(c);
}

/* Immediate failures return NULL; a URL curl refuses is reported through the callback. */
static void test_bad_input(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0}, never = {0};
    char url[128];
    char bad_h[] = "X-Evil: a\r\nX-Injected: b";
    char *headers[] = {bad_h};
    struct adapter_request req = {.method = "GET", .url = url, .headers = headers, .n_headers = 1};

    CHECK_OR_OUT(c, "http_client_new failed");
    snprintf(url, sizeof(url), "%s/echo", env->srv.url);
    CHECK_OR_OUT(!http_client_send(c, &req, 5000, on_reply, &never), "CRLF in a header accepted");
    req.n_headers = 0;
    CHECK_OR_OUT(!http_client_send(c, &req, 0, on_reply, &never), "timeout 0 accepted");
    CHECK_OR_OUT(!http_client_send(c, &req, 1000, NULL, &never), "NULL callback accepted");
    req.method[0] = '\0';
    CHECK_OR_OUT(!http_client_send(c, &req, 1000, on_reply, &never), "empty method accepted");
    CHECK_OR_OUT(!http_client_send(NULL, &req, 1000, on_reply, &never), "NULL client accepted");
    CHECK_OR_OUT(send_to(env, c, "GET", "ftp://127.0.0.1/x", NULL, 5000, on_reply, &r),
                 "ftp URL refused up front");
    CHECK_OR_OUT(run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_OTHER, "transport %d (%s)", r.transport, r.msg);
    CHECK_OR_OUT(never.calls == 0, "a refused call called back");
    CHECK_OR_OUT(env->cb_in_send == 0, "callback ran inside http_client_send");
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
out:
    reply_cleanup(&r);
    http_client_free(c);
}

static void test_free_in_flight(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r[6];
    int total = 0;

    memset(r, 0, sizeof(r));
    CHECK_OR_OUT(c, "http_client_new failed");
    for (int i = 0; i < 5; i++) {
        CHECK_OR_OUT(send_path(env, c, "POST", "/delay?ms=100", "x", 5000, &r[i]), "send");
    }
    run_until(env, NULL, 0, 20); /* on the wire, waiting for the replies */
    CHECK_OR_OUT(send_path(env, c, "GET", "/echo", NULL, 5000, &r[5]), "send"); /* not started */
    CHECK_OR_OUT(http_client_in_flight(c) == 6, "in_flight %zu", http_client_in_flight(c));
    http_client_free(c);
    c = NULL;
    run_until(env, NULL, 0, 300);
    for (int i = 0; i < 6; i++) {
        total += r[i].calls;
    }
    CHECK_OR_OUT(total == 0, "%d callbacks after free", total);
    http_client_free(NULL);
out:
    for (int i = 0; i < 6; i++) {
        reply_cleanup(&r[i]);
    }
    http_client_free(c);
}

static void test_free_in_callback(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply first = {0}, other = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(send_path(env, c, "GET", "/delay?ms=100", NULL, 5000, &other), "send other");
    first.client = c;
    first.free_client = true;
    first.env = env;
    {
        char url[128];

        snprintf(url, sizeof(url), "%s/echo", env->srv.url);
        CHECK_OR_OUT(send_to(env, c, "GET", url, NULL, 5000, on_reply_reentrant, &first), "send");
    }
    c = NULL; /* the callback frees it */
    CHECK_OR_OUT(run_until(env, &first.calls, 1, 5000), "no callback");
    run_until(env, NULL, 0, 300);
    CHECK_OR_OUT(first.client == NULL && first.status == 200, "status %d", first.status);
    CHECK_OR_OUT(other.calls == 0, "call aborted by free called back");
out:
    reply_cleanup(&first);
    reply_cleanup(&other);
    http_client_free(c);
}

/*
 * DELETE and PATCH, each with and without a body. POST, PUT and PATCH always send a body (an
 * empty one says Content-Length: 0); DELETE without a body sends none.
 */
static void test_delete_patch(struct env *env)
{
    static const struct {
        const char *method;
        const char *body;
        const char *want_length; /* the Content-Length the server saw; NULL: none */
    } cases[] = {
        {"DELETE", NULL, NULL},      {"DELETE", "{\"id\":7}", "8"},
        {"PATCH", "{\"b\":2}", "7"}, {"PATCH", NULL, "0"},
        {"PUT", NULL, "0"},          {"POST", NULL, "0"},
        {"GET", NULL, NULL},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    struct http_client *c = new_client(env, 0, 0);
    struct reply r[N];
    cJSON *echo = NULL;

    memset(r, 0, sizeof(r));
    CHECK_OR_OUT(c, "http_client_new failed");
    for (size_t i = 0; i < N; i++) {
        CHECK_OR_OUT(send_path(env, c, cases[i].method, "/echo", cases[i].body, 5000, &r[i]),
                     "send %s", cases[i].method);
    }
    for (size_t i = 0; i < N; i++) {
        cJSON *h, *len;

        CHECK_OR_OUT(run_until(env, &r[i].calls, 1, 5000), "%s: no callback", cases[i].method);
        cJSON_Delete(echo);
        echo = cJSON_ParseWithLength(r[i].body, r[i].body_len);
        CHECK_OR_OUT(r[i].transport == ADAPTER_TRANSPORT_OK && r[i].status == 200 && echo,
                     "%s %s: transport %d status %d (%s)", cases[i].method,
                     cases[i].body ? "with body" : "without", r[i].transport, r[i].status,
                     r[i].msg);
        CHECK_OR_OUT(strcmp(cJSON_GetObjectItem(echo, "method")->valuestring, cases[i].method) == 0,
                     "%s arrived as %s", cases[i].method,
                     cJSON_GetObjectItem(echo, "method")->valuestring);
        CHECK_OR_OUT(strcmp(cJSON_GetObjectItem(echo, "body")->valuestring,
                            cases[i].body ? cases[i].body : "") == 0,
                     "%s body %s", cases[i].method, cJSON_GetObjectItem(echo, "body")->valuestring);
        h = cJSON_GetObjectItem(echo, "headers");
        len = cJSON_GetObjectItem(h, "content-length");
        CHECK_OR_OUT(cases[i].want_length ? cJSON_IsString(len) &&
                                                strcmp(len->valuestring, cases[i].want_length) == 0
                                          : len == NULL,
                     "%s %s: content-length %s, want %s", cases[i].method,
                     cases[i].body ? "with body" : "without",
                     cJSON_IsString(len) ? len->valuestring : "(none)",
                     cases[i].want_length ? cases[i].want_length : "(none)");
    }
    run_until(env, NULL, 0, 50);
    for (size_t i = 0; i < N; i++) {
        CHECK_OR_OUT(r[i].calls == 1, "%s: %d callbacks", cases[i].method, r[i].calls);
    }
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
out:
    cJSON_Delete(echo);
    for (size_t i = 0; i < N; i++) {
        reply_cleanup(&r[i]);
    }
    http_client_free(c);
}

/*
 * A 2xx streams: the chunks reach on_data in order while the server is still sending, on_done
 * comes once with the status and headers and no body. The stream lasts longer than the idle
 * limit, which each chunk restarts. An empty 2xx body streams nothing and still completes.
 */
static void test_stream_chunks(struct env *env)
{
    struct http_client *c = new_client_idle(env, 0, 0, 400);
    struct stream_rx rx = {0}, empty = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "POST", "/stream?n=8&gap=60", 10000, &rx), "send");
    CHECK_OR_OUT(http_client_in_flight(c) == 1, "in_flight %zu", http_client_in_flight(c));
    CHECK_OR_OUT(rx.n_data == 0 && rx.r.calls == 0, "callback before the loop ran");
    CHECK_OR_OUT(run_until(env, &rx.r.calls, 1, 8000), "no on_done (%d on_data)", rx.n_data);
    run_until(env, NULL, 0, 100); /* a duplicate or late callback would show up here */
    CHECK_OR_OUT(rx.r.calls == 1, "on_done called %d times", rx.r.calls);
    CHECK_OR_OUT(rx.r.transport == ADAPTER_TRANSPORT_OK, "transport %d (%s)", rx.r.transport,
                 rx.r.msg);
    CHECK_OR_OUT(rx.r.status == 200 && rx.status == 200, "status %d, on_data saw %d", rx.r.status,
                 rx.status);
    CHECK_OR_OUT(rx.r.body_null && rx.r.body_len == 0, "on_done got a body of %zu bytes",
                 rx.r.body_len);
    CHECK_OR_OUT(rx.r.msg_null, "transport_msg %s", rx.r.msg);
    CHECK_OR_OUT(reply_header(&rx.r, "content-type") &&
                     strcmp(reply_header(&rx.r, "content-type"), "text/plain") == 0,
                 "content-type missing");
    CHECK_OR_OUT(rx.len == strlen(chunks_text(8)) && memcmp(rx.data, chunks_text(8), rx.len) == 0,
                 "streamed '%.*s'", (int)rx.len, rx.data);
    CHECK_OR_OUT(rx.n_data >= 2, "%d on_data calls for 8 chunks", rx.n_data);
    CHECK_OR_OUT(rx.chunks_at_first < 8, "first on_data only after all %d chunks were sent",
                 rx.chunks_at_first);
    CHECK_OR_OUT(rx.data_after_done == 0, "on_data after on_done");
    CHECK_OR_OUT(env->cb_in_send == 0, "a callback ran inside http_client_send_stream");

    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=0&gap=10", 5000, &empty), "send empty");
    CHECK_OR_OUT(run_until(env, &empty.r.calls, 1, 5000), "empty: no on_done");
    CHECK_OR_OUT(empty.r.transport == ADAPTER_TRANSPORT_OK && empty.r.status == 200,
                 "empty: transport %d status %d", empty.r.transport, empty.r.status);
    CHECK_OR_OUT(empty.n_data == 0 && empty.r.body_null, "empty: %d on_data, body %s", empty.n_data,
                 empty.r.body_null ? "NULL" : "set");
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
out:
    stream_rx_cleanup(&rx);
    stream_rx_cleanup(&empty);
    http_client_free(c);
}

/* max_response_bytes caps a buffered reply but not a streamed 2xx. */
static void test_stream_uncapped(struct env *env)
{
    struct http_client *c = new_client(env, SMALL_CAP, 0);
    struct stream_rx chunked = {0}, sized = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/huge?bytes=300000&chunked=1", 5000, &chunked),
                 "send chunked");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/huge?bytes=300000", 5000, &sized), "send sized");
    CHECK_OR_OUT(run_until(env, &chunked.r.calls, 1, 5000), "chunked: no on_done");
    CHECK_OR_OUT(run_until(env, &sized.r.calls, 1, 5000), "sized: no on_done");
    CHECK_OR_OUT(chunked.r.transport == ADAPTER_TRANSPORT_OK && chunked.total == 300000,
                 "chunked: transport %d (%s), %zu bytes", chunked.r.transport, chunked.r.msg,
                 chunked.total);
    CHECK_OR_OUT(sized.r.transport == ADAPTER_TRANSPORT_OK && sized.total == 300000,
                 "content-length: transport %d (%s), %zu bytes", sized.r.transport, sized.r.msg,
                 sized.total);
out:
    stream_rx_cleanup(&chunked);
    stream_rx_cleanup(&sized);
    http_client_free(c);
}

/*
 * A non-2xx on a stream call is buffered like http_client_send: on_data never runs, on_done gets
 * the whole body and headers; over max_response_bytes it is TOO_LARGE, however it is framed.
 */
static void test_stream_error_status(struct env *env)
{
    static const char *const too_large[] = {
        "/huge?bytes=100000&chunked=1&status=500",
        "/huge?bytes=100000&status=500",
    };
    struct http_client *c = new_client(env, SMALL_CAP, 0);
    struct stream_rx rx = {0}, big = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "POST", "/stream?n=3&gap=30&status=429", 5000, &rx), "send");
    CHECK_OR_OUT(run_until(env, &rx.r.calls, 1, 5000), "no on_done");
    run_until(env, NULL, 0, 50);
    CHECK_OR_OUT(rx.n_data == 0, "on_data called %d times for a 429", rx.n_data);
    CHECK_OR_OUT(rx.r.calls == 1, "on_done called %d times", rx.r.calls);
    CHECK_OR_OUT(rx.r.transport == ADAPTER_TRANSPORT_OK && rx.r.status == 429,
                 "transport %d status %d (%s)", rx.r.transport, rx.r.status, rx.r.msg);
    CHECK_OR_OUT(rx.r.body && strcmp(rx.r.body, chunks_text(3)) == 0, "body '%s'",
                 rx.r.body ? rx.r.body : "(null)");
    CHECK_OR_OUT(reply_header(&rx.r, "retry-after") &&
                     strcmp(reply_header(&rx.r, "retry-after"), "3") == 0,
                 "retry-after missing");
    for (size_t i = 0; i < sizeof(too_large) / sizeof(too_large[0]); i++) {
        stream_rx_cleanup(&big);
        memset(&big, 0, sizeof(big));
        CHECK_OR_OUT(stream_path(env, c, "GET", too_large[i], 5000, &big), "send");
        CHECK_OR_OUT(run_until(env, &big.r.calls, 1, 5000), "%s: no on_done", too_large[i]);
        CHECK_OR_OUT(big.r.transport == ADAPTER_TRANSPORT_TOO_LARGE && big.n_data == 0,
                     "%s: transport %d (%s), %d on_data", too_large[i], big.r.transport, big.r.msg,
                     big.n_data);
        CHECK_OR_OUT(strstr(big.r.msg, "65536"), "%s: message '%s'", too_large[i], big.r.msg);
    }
out:
    stream_rx_cleanup(&rx);
    stream_rx_cleanup(&big);
    http_client_free(c);
}

/* on_data returning non-zero ends the call: OTHER, "aborted by the receiver", no more data. */
static void test_stream_abort(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct stream_rx rx = {.abort_at = 2};
    struct reply after = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=6&gap=40", 5000, &rx), "send");
    CHECK_OR_OUT(run_until(env, &rx.r.calls, 1, 5000), "no on_done");
    run_until(env, NULL, 0, 300); /* past the rest of the stream */
    CHECK_OR_OUT(rx.r.calls == 1, "on_done called %d times", rx.r.calls);
    CHECK_OR_OUT(rx.n_data == 2, "on_data called %d times, want 2", rx.n_data);
    CHECK_OR_OUT(rx.r.transport == ADAPTER_TRANSPORT_OTHER, "transport %d (%s)", rx.r.transport,
                 rx.r.msg);
    CHECK_OR_OUT(strcmp(rx.r.msg, "aborted by the receiver") == 0, "message '%s'", rx.r.msg);
    CHECK_OR_OUT(rx.r.status == 0 && rx.r.body_null, "status %d", rx.r.status);
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    CHECK_OR_OUT(send_path(env, c, "GET", "/echo", NULL, 5000, &after), "send after");
    CHECK_OR_OUT(run_until(env, &after.calls, 1, 5000), "no callback after the abort");
    CHECK_OR_OUT(after.transport == ADAPTER_TRANSPORT_OK && after.status == 200,
                 "after the abort: transport %d status %d", after.transport, after.status);
out:
    stream_rx_cleanup(&rx);
    reply_cleanup(&after);
    http_client_free(c);
}

/*
 * The idle limit: a stream that stalls after two chunks times out about idle_timeout_ms after
 * the last byte, well before the call's own timeout; a server silent before its headers does too
 * (the limit starts when the request goes out). A buffered call ignores it.
 */
static void test_stream_idle(struct env *env)
{
    struct http_client *c = new_client_idle(env, 0, 0, 200);
    struct stream_rx rx = {0}, silent = {0};
    struct reply buffered = {0};
    int64_t t0, took;

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=4&gap=30&stall=2&stall_ms=3000", 10000, &rx),
                 "send");
    CHECK_OR_OUT(run_until(env, &rx.r.calls, 1, 5000), "no on_done");
    took = mono_ms() - rx.last_data_ms;
    CHECK_OR_OUT(rx.r.transport == ADAPTER_TRANSPORT_TIMEOUT, "transport %d (%s)", rx.r.transport,
                 rx.r.msg);
    CHECK_OR_OUT(strstr(rx.r.msg, "200 ms"), "message '%s'", rx.r.msg);
    CHECK_OR_OUT(rx.len == strlen(chunks_text(2)) && memcmp(rx.data, chunks_text(2), rx.len) == 0,
                 "streamed '%.*s'", (int)rx.len, rx.data);
    CHECK_OR_OUT(took >= 150 && took < 2000, "timed out %lld ms after the last chunk",
                 (long long)took);

    t0 = mono_ms();
    CHECK_OR_OUT(stream_path(env, c, "GET", "/delay?ms=3000", 10000, &silent), "send silent");
    CHECK_OR_OUT(send_path(env, c, "GET", "/delay?ms=400", NULL, 10000, &buffered),
                 "send buffered");
    CHECK_OR_OUT(run_until(env, &silent.r.calls, 1, 5000), "silent: no on_done");
    took = mono_ms() - t0;
    CHECK_OR_OUT(silent.r.transport == ADAPTER_TRANSPORT_TIMEOUT && silent.n_data == 0,
                 "silent: transport %d (%s), %d on_data", silent.r.transport, silent.r.msg,
                 silent.n_data);
    CHECK_OR_OUT(took >= 150 && took < 2000, "silent: timed out after %lld ms", (long long)took);
    CHECK_OR_OUT(run_until(env, &buffered.calls, 1, 5000), "buffered: no callback");
    CHECK_OR_OUT(buffered.transport == ADAPTER_TRANSPORT_OK && buffered.status == 200,
                 "buffered call: transport %d (%s)", buffered.transport, buffered.msg);
out:
    stream_rx_cleanup(&rx);
    stream_rx_cleanup(&silent);
    reply_cleanup(&buffered);
    http_client_free(c);
}

/*
 * Cancelling streams: from the loop between chunks, from inside its own on_data, and another
 * stream from inside on_data. A cancelled stream never sees on_data or on_done again, and the
 * client goes on working. on_data cannot start a call.
 */
static void test_stream_cancel(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct stream_rx outside = {0}, self = {.cancel_self_at = 2, .send_at = 1};
    struct stream_rx killer = {.cancel_other_at = 2}, victim = {0};
    struct reply after = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=8&gap=40", 5000, &outside), "send outside");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=8&gap=40", 5000, &self), "send self");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=8&gap=60", 5000, &victim), "send victim");
    killer.other = victim.self;
    killer.other_rx = &victim;
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=8&gap=40", 5000, &killer), "send killer");
    CHECK_OR_OUT(run_until(env, &outside.n_data, 1, 5000), "outside: no data");
    http_call_cancel(outside.self);
    outside.cancelled = true;
    CHECK_OR_OUT(run_until(env, &killer.r.calls, 1, 5000), "killer: no on_done");
    run_until(env, NULL, 0, 500); /* past every stream's end */
    CHECK_OR_OUT(outside.r.calls == 0 && outside.data_after_cancel == 0,
                 "outside: %d on_done, %d on_data after cancel", outside.r.calls,
                 outside.data_after_cancel);
    CHECK_OR_OUT(self.r.calls == 0 && self.n_data == 2 && self.data_after_cancel == 0,
                 "self: %d on_done, %d on_data", self.r.calls, self.n_data);
    CHECK_OR_OUT(self.send_refused, "http_client_send from on_data was not refused");
    CHECK_OR_OUT(victim.r.calls == 0 && victim.data_after_cancel == 0,
                 "victim: %d on_done, %d on_data after cancel", victim.r.calls,
                 victim.data_after_cancel);
    CHECK_OR_OUT(killer.r.transport == ADAPTER_TRANSPORT_OK && killer.n_data >= 2 &&
                     memcmp(killer.data, chunks_text(8), killer.len) == 0 &&
                     killer.len == strlen(chunks_text(8)),
                 "killer: transport %d (%s), '%.*s'", killer.r.transport, killer.r.msg,
                 (int)killer.len, killer.data);
    CHECK_OR_OUT(http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    CHECK_OR_OUT(send_path(env, c, "GET", "/echo", NULL, 5000, &after), "send after");
    CHECK_OR_OUT(run_until(env, &after.calls, 1, 5000), "no callback after the cancels");
    CHECK_OR_OUT(after.transport == ADAPTER_TRANSPORT_OK && after.status == 200,
                 "after the cancels: transport %d status %d", after.transport, after.status);
    CHECK_OR_OUT(env->cb_in_send == 0, "a callback ran inside a send");
out:
    stream_rx_cleanup(&outside);
    stream_rx_cleanup(&self);
    stream_rx_cleanup(&killer);
    stream_rx_cleanup(&victim);
    reply_cleanup(&after);
    http_client_free(c);
}

/* http_client_free from inside on_data: nothing calls back afterwards, nothing leaks. */
static void test_stream_free_in_data(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct stream_rx rx = {.free_at = 2}, other = {0};
    struct reply plain = {0};

    CHECK_OR_OUT(c, "http_client_new failed");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=6&gap=40", 5000, &rx), "send");
    CHECK_OR_OUT(stream_path(env, c, "GET", "/stream?n=6&gap=40", 5000, &other), "send other");
    CHECK_OR_OUT(send_path(env, c, "GET", "/delay?ms=150", NULL, 5000, &plain), "send plain");
    c = NULL; /* on_data frees it */
    CHECK_OR_OUT(run_until(env, &rx.n_data, 2, 5000), "only %d on_data", rx.n_data);
    run_until(env, NULL, 0, 400);
    CHECK_OR_OUT(rx.client == NULL, "client not freed");
    CHECK_OR_OUT(rx.n_data == 2 && rx.r.calls == 0, "%d on_data, %d on_done", rx.n_data,
                 rx.r.calls);
    CHECK_OR_OUT(other.r.calls == 0 && plain.calls == 0, "calls of a freed client called back");
out:
    stream_rx_cleanup(&rx);
    stream_rx_cleanup(&other);
    reply_cleanup(&plain);
    http_client_free(c);
}

static const struct {
    const char *name;
    void (*fn)(struct env *env);
} tests[] = {
    {"success", test_success},
    {"methods", test_get_and_methods},
    {"concurrent_200", test_concurrent},
    {"reuse_sequential", test_reuse},
    {"reuse_burst", test_reuse_burst},
    {"timeout", test_timeout},
    {"timeout_while_queued", test_timeout_while_queued},
    {"connect_refused", test_connect_refused},
    {"too_large", test_too_large},
    {"reset", test_reset},
    {"status_503_retry_after", test_503_retry_after},
    {"headers", test_headers},
    {"cancel", test_cancel},
    {"bad_input", test_bad_input},
    {"free_in_flight", test_free_in_flight},
    {"free_in_callback", test_free_in_callback},
    {"delete_patch", test_delete_patch},
    {"stream_chunks", test_stream_chunks},
    {"stream_uncapped", test_stream_uncapped},
    {"stream_error_status", test_stream_error_status},
    {"stream_abort", test_stream_abort},
    {"stream_idle", test_stream_idle},
    {"stream_cancel", test_stream_cancel},
    {"stream_free_in_data", test_stream_free_in_data},
};

int main(void)
{
    struct env env = {0};
    int port;

    /* the server may write a chunk to a connection the client just closed */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    env.base = event_base_new();
    port = http_server_closed_port(&env.refused_fd);
    if (!env.base || http_server_start(&env.srv, env.base) != 0 || port < 0) {
        fprintf(stderr, "test setup failed\n");
        return 2;
    }
    snprintf(env.refused_url, sizeof(env.refused_url), "http://127.0.0.1:%d/echo", port);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        env.cb_in_send = 0;
        check_test_begin(tests[i].name);
        tests[i].fn(&env);
        check_test_end();
    }
    http_server_stop(&env.srv);
    close(env.refused_fd);
    event_base_free(env.base);
    curl_global_cleanup();
    libevent_global_shutdown();
    return check_done();
}
