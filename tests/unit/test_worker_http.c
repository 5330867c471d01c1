/*
 * tests/unit/test_worker_http.c — worker/http.h against a real HTTP server.
 *
 * An evhttp server on 127.0.0.1 (port 0) runs on the same event_base as the client under test, so
 * every test is one process, one loop, no threads. Routes (table below): an echo that returns the
 * request as JSON, a reply delayed by an evtimer, a 503 with retry-after, a huge body (with a
 * Content-Length or chunked), many and oversized headers, and a connection that closes without an
 * answer. The server counts the connections it accepts (evhttp_set_bevcb) so reuse can be shown.
 *
 * Prints `ok <name>` or `FAIL <name>: why` per test and then `N passed, N failed`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "worker/http.h"

#define N_CONCURRENT 200
#define N_SEQUENTIAL 50
#define SMALL_CAP 65536

/* ---- the server ---------------------------------------------------------------------------- */

/* A reply held back by /delay; answered by its timer or when the server is freed. */
struct delayed {
    struct server *srv;
    struct evhttp_request *req;
    struct event *ev;
    struct delayed *prev, *next;
};

struct server {
    struct event_base *base;
    struct evhttp *http;
    int port;
    int n_conns;  /* connections accepted so far */
    int n_closed; /* requests answered by closing the connection */
    struct delayed *delayed;
};

/* An integer query parameter of req, or def when absent. */
static long query_long(struct evhttp_request *req, const char *key, long def)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *v;
    long n = def;

    if (!q || evhttp_parse_query_str(q, &params) != 0) {
        return def;
    }
    v = evhttp_find_header(&params, key);
    if (v) {
        n = strtol(v, NULL, 10);
    }
    evhttp_clear_headers(&params);
    return n;
}

static void reply_text(struct evhttp_request *req, int code, const char *type, const char *text)
{
    struct evbuffer *b = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply(req, code, NULL, b);
    evbuffer_free(b);
}

/* {"method", "uri", "body", "headers": {lower-case name: value}}, plus X-Test and two X-Multi. */
static void route_echo(struct server *srv, struct evhttp_request *req)
{
    static const struct {
        enum evhttp_cmd_type cmd;
        const char *name;
    } methods[] = {
        {EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"}, {EVHTTP_REQ_PUT, "PUT"},
        {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_HEAD, "HEAD"},
    };
    const char *method = "OTHER";
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    cJSON *o = cJSON_CreateObject();
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char *body = calloc(1, len + 1);
    char *text;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (methods[i].cmd == cmd) {
            method = methods[i].name;
        }
    }
    evbuffer_remove(in, body, len);
    cJSON_AddStringToObject(o, "method", method);
    cJSON_AddStringToObject(o, "uri", evhttp_request_get_uri(req));
    cJSON_AddStringToObject(o, "body", body);
    for (struct evkeyval *kv = hdrs->tqh_first; kv; kv = kv->next.tqe_next) {
        char name[128];
        size_t i;

        for (i = 0; kv->key[i] && i < sizeof(name) - 1; i++) {
            name[i] = (char)(kv->key[i] >= 'A' && kv->key[i] <= 'Z' ? kv->key[i] + 32 : kv->key[i]);
        }
        name[i] = '\0';
        cJSON_AddStringToObject(h, name, kv->value);
    }
    text = cJSON_PrintUnformatted(o);
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Test", "yes");
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Multi", "one");
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Multi", "two");
    reply_text(req, 200, "application/json", text);
    free(text);
    free(body);
    cJSON_Delete(o);
}

static void delayed_unlink(struct server *srv, struct delayed *d)
{
    if (d->prev) {
        d->prev->next = d->next;
    } else {
        srv->delayed = d->next;
    }
    if (d->next) {
        d->next->prev = d->prev;
    }
}

/*
 * Answers a delayed request. If the client gave up meanwhile, evhttp has detached the request
 * from its connection and evhttp_send_reply just frees it, so this is safe either way.
 */
static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *d = arg;

    delayed_unlink(d->srv, d);
    reply_text(d->req, 200, "application/json", "{\"delayed\":true}");
    event_free(d->ev);
    free(d);
}

/* /delay?ms=N: answers after N ms. */
static void route_delay(struct server *srv, struct evhttp_request *req)
{
    long ms = query_long(req, "ms", 100);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct delayed *d = calloc(1, sizeof(*d));

    d->srv = srv;
    d->req = req;
    d->ev = evtimer_new(srv->base, delayed_fire, d);
    d->next = srv->delayed;
    if (srv->delayed) {
        srv->delayed->prev = d;
    }
    srv->delayed = d;
    evtimer_add(d->ev, &tv);
}

static void route_503(struct server *srv, struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "7");
    reply_text(req, 503, "application/json", "{\"error\":{\"message\":\"overloaded\"}}");
}

/* /huge?bytes=N[&chunked=1]: N bytes of 'x', with a Content-Length or chunked. */
static void route_huge(struct server *srv, struct evhttp_request *req)
{
    size_t n = (size_t)query_long(req, "bytes", 1 << 20);
    bool chunked = query_long(req, "chunked", 0) != 0;
    struct evbuffer *b = evbuffer_new();
    char chunk[4096];

    memset(chunk, 'x', sizeof(chunk));
    if (!chunked) {
        for (size_t left = n; left > 0;) {
            size_t k = left < sizeof(chunk) ? left : sizeof(chunk);

            evbuffer_add(b, chunk, k);
            left -= k;
        }
        evhttp_send_reply(req, 200, "OK", b);
    } else {
        evhttp_send_reply_start(req, 200, "OK");
        for (size_t left = n; left > 0;) {
            size_t k = left < sizeof(chunk) ? left : sizeof(chunk);

            evbuffer_add(b, chunk, k);
            evhttp_send_reply_chunk(req, b);
            left -= k;
        }
        evhttp_send_reply_end(req);
    }
    evbuffer_free(b);
}

/* /headers?n=N: one 10 KB header, then N headers X-H-000.. with upper-case names. */
static void route_headers(struct server *srv, struct evhttp_request *req)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    long n = query_long(req, "n", 150);
    char *big = malloc(10241);
    char name[32], value[32];

    memset(big, 'b', 10240);
    big[10240] = '\0';
    evhttp_add_header(out, "X-Big", big);
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "X-H-%03ld", i);
        snprintf(value, sizeof(value), "v%ld", i);
        evhttp_add_header(out, name, value);
    }
    reply_text(req, 200, "text/plain", "headers");
    free(big);
}

/* Closes the connection without a byte of answer; evhttp frees the request with it. */
static void route_close(struct server *srv, struct evhttp_request *req)
{
    srv->n_closed++;
    evhttp_connection_free(evhttp_request_get_connection(req));
}

static const struct {
    const char *path;
    void (*handler)(struct server *srv, struct evhttp_request *req);
} routes[] = {
    {"/echo", route_echo}, {"/delay", route_delay},     {"/503", route_503},
    {"/huge", route_huge}, {"/headers", route_headers}, {"/close", route_close},
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    for (size_t i = 0; path && i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0) {
            routes[i].handler(srv, req);
            return;
        }
    }
    reply_text(req, 404, "text/plain", "not found");
}

/* Called once per accepted connection: the count the reuse test reads. */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct server *srv = arg;

    srv->n_conns++;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

static int server_start(struct server *srv, struct event_base *base)
{
    struct sockaddr_in sin = {0};
    socklen_t slen = sizeof(sin);
    struct evconnlistener *l;

    srv->base = base;
    srv->http = evhttp_new(base);
    if (!srv->http) {
        return -1;
    }
    evhttp_set_gencb(srv->http, on_request, srv);
    evhttp_set_bevcb(srv->http, on_new_conn, srv);
    evhttp_set_max_headers_size(srv->http, 64 * 1024);
    evhttp_set_max_body_size(srv->http, 1024 * 1024);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Our own listener for a backlog that takes 200 simultaneous connects. */
    l = evconnlistener_new_bind(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                (struct sockaddr *)&sin, sizeof(sin));
    if (!l) {
        return -1;
    }
    if (!evhttp_bind_listener(srv->http, l)) {
        evconnlistener_free(l);
        return -1;
    }
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen) != 0) {
        return -1;
    }
    srv->port = ntohs(sin.sin_port);
    return 0;
}

static void server_stop(struct server *srv)
{
    while (srv->delayed) {
        struct delayed *d = srv->delayed;

        event_del(d->ev);
        delayed_fire(-1, 0, d);
    }
    if (srv->http) {
        evhttp_free(srv->http);
    }
}

/* ---- the client side ----------------------------------------------------------------------- */

struct env {
    struct event_base *base;
    struct server srv;
    char base_url[64];
    char refused_url[64]; /* a bound port nobody listens on */
    int refused_fd;
    bool in_send;   /* true while the test is inside http_client_send */
    int cb_in_send; /* callbacks that ran inside http_client_send: must stay 0 */
    char why[512];
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
        snprintf(url, sizeof(url), "%s/echo", r->env->base_url);
        send_to(r->env, r->client, "POST", url, "follow-up", 5000, on_reply, r->follow_up);
    }
    if (r->free_client) {
        http_client_free(r->client);
        r->client = NULL;
        /* resp stays readable until we return */
        r->status = resp->status;
    }
}

/* Sends method url with body (may be NULL) and two request headers; the url is freed at once. */
static struct http_call *send_to(struct env *env, struct http_client *c, const char *method,
                                 const char *url, const char *body, long timeout_ms,
                                 http_client_cb cb, struct reply *r)
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
    r->env = env;
    env->in_send = true;
    call = http_client_send(c, &req, timeout_ms, cb, r);
    env->in_send = false;
    /* borrowed: gone as soon as the call returns */
    free(req.url);
    free(req.body);
    return call;
}

static struct http_call *send_path(struct env *env, struct http_client *c, const char *method,
                                   const char *path, const char *body, long timeout_ms,
                                   struct reply *r)
{
    char url[256];

    snprintf(url, sizeof(url), "%s%s", env->base_url, path);
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

static struct http_client *new_client(struct env *env, size_t max_response_bytes, int max_total)
{
    struct http_client_opts o = {
        .max_total_connections = max_total,
        .max_host_connections = 0,
        .connect_timeout_ms = 2000,
        .max_response_bytes = max_response_bytes,
        .user_agent = "sluice-test/1",
    };

    return http_client_new(env->base, &o);
}

#define CHECK(env, cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf((env)->why, sizeof((env)->why), __VA_ARGS__);                                 \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- tests --------------------------------------------------------------------------------- */

static int test_success(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    cJSON *echo = NULL;
    int64_t t0 = wall_ms(), t1;
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "POST", "/echo", "{\"hello\":\"world\"}", 5000, &r), "send");
    CHECK(env, http_client_in_flight(c) == 1, "in_flight %zu, want 1", http_client_in_flight(c));
    CHECK(env, r.calls == 0, "callback ran before the loop");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    t1 = wall_ms();
    CHECK(env, r.transport == ADAPTER_TRANSPORT_OK, "transport %d (%s)", r.transport, r.msg);
    CHECK(env, r.status == 200, "status %d", r.status);
    CHECK(env, r.msg_null, "transport_msg set on success: %s", r.msg);
    CHECK(env, r.now_ms >= t0 && r.now_ms <= t1, "now_ms %lld outside [%lld, %lld]",
          (long long)r.now_ms, (long long)t0, (long long)t1);
    echo = cJSON_ParseWithLength(r.body, r.body_len);
    CHECK(env, echo, "body is not JSON: %s", r.body);
    CHECK(env, strcmp(cJSON_GetObjectItem(echo, "method")->valuestring, "POST") == 0, "method");
    CHECK(env, strcmp(cJSON_GetObjectItem(echo, "body")->valuestring, "{\"hello\":\"world\"}") == 0,
          "echoed body %s", cJSON_GetObjectItem(echo, "body")->valuestring);
    {
        cJSON *h = cJSON_GetObjectItem(echo, "headers");
        cJSON *custom = cJSON_GetObjectItem(h, "x-custom");
        cJSON *ua = cJSON_GetObjectItem(h, "user-agent");
        cJSON *expect = cJSON_GetObjectItem(h, "expect");

        CHECK(env, cJSON_IsString(custom) && strcmp(custom->valuestring, "abc") == 0,
              "request header x-custom not received");
        CHECK(env, cJSON_IsString(ua) && strcmp(ua->valuestring, "sluice-test/1") == 0,
              "user-agent not sent");
        CHECK(env, !expect, "Expect header sent");
    }
    CHECK(env,
          reply_header(&r, "content-type") &&
              strcmp(reply_header(&r, "content-type"), "application/json") == 0,
          "content-type header missing");
    CHECK(env, reply_header(&r, "x-test") && strcmp(reply_header(&r, "x-test"), "yes") == 0,
          "x-test header missing");
    CHECK(env, http_client_in_flight(c) == 0, "in_flight %zu after completion",
          http_client_in_flight(c));
    CHECK(env, env->cb_in_send == 0, "callback ran inside http_client_send");
    rc = 0;
out:
    cJSON_Delete(echo);
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int test_get_and_methods(struct env *env)
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
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    for (size_t i = 0; i < 3; i++) {
        CHECK(env, send_path(env, c, cases[i].method, "/echo", cases[i].body, 5000, &r[i]),
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
        CHECK(env, r[i].calls == 1 && r[i].status == 200 && echo, "%s: calls %d status %d",
              cases[i].method, r[i].calls, r[i].status);
        CHECK(env, strcmp(cJSON_GetObjectItem(echo, "method")->valuestring, cases[i].want) == 0,
              "%s arrived as %s", cases[i].method,
              cJSON_GetObjectItem(echo, "method")->valuestring);
        CHECK(env,
              strcmp(cJSON_GetObjectItem(echo, "body")->valuestring,
                     cases[i].body ? cases[i].body : "") == 0,
              "%s body %s", cases[i].method, cJSON_GetObjectItem(echo, "body")->valuestring);
    }
    rc = 0;
out:
    cJSON_Delete(echo);
    for (size_t i = 0; i < 3; i++) {
        reply_cleanup(&r[i]);
    }
    http_client_free(c);
    return rc;
}

static int test_concurrent(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply *r = calloc(N_CONCURRENT, sizeof(*r));
    cJSON *echo = NULL;
    int64_t deadline = mono_ms() + 20000;
    int done = 0;
    int rc = -1;

    CHECK(env, c && r, "setup failed");
    for (int i = 0; i < N_CONCURRENT; i++) {
        char body[32];

        snprintf(body, sizeof(body), "req-%d", i);
        CHECK(env, send_path(env, c, "POST", "/echo", body, 15000, &r[i]), "send %d", i);
    }
    CHECK(env, http_client_in_flight(c) == N_CONCURRENT, "in_flight %zu", http_client_in_flight(c));
    while (done < N_CONCURRENT && mono_ms() < deadline) {
        run_until(env, NULL, 0, 20);
        done = 0;
        for (int i = 0; i < N_CONCURRENT; i++) {
            done += r[i].calls > 0;
        }
    }
    CHECK(env, done == N_CONCURRENT, "only %d of %d completed", done, N_CONCURRENT);
    run_until(env, NULL, 0, 100); /* a duplicate callback would show up here */
    for (int i = 0; i < N_CONCURRENT; i++) {
        char want[32];
        cJSON *b;

        snprintf(want, sizeof(want), "req-%d", i);
        CHECK(env, r[i].calls == 1, "call %d: %d callbacks", i, r[i].calls);
        CHECK(env, r[i].transport == ADAPTER_TRANSPORT_OK && r[i].status == 200,
              "call %d: transport %d status %d (%s)", i, r[i].transport, r[i].status, r[i].msg);
        cJSON_Delete(echo);
        echo = cJSON_ParseWithLength(r[i].body, r[i].body_len);
        b = cJSON_GetObjectItem(echo, "body");
        CHECK(env, cJSON_IsString(b) && strcmp(b->valuestring, want) == 0,
              "call %d got another call's reply", i);
    }
    CHECK(env, http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    CHECK(env, env->cb_in_send == 0, "callback ran inside http_client_send");
    rc = 0;
out:
    cJSON_Delete(echo);
    for (int i = 0; r && i < N_CONCURRENT; i++) {
        reply_cleanup(&r[i]);
    }
    free(r);
    http_client_free(c);
    return rc;
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
        snprintf(url, sizeof(url), "%s/echo", ch->env->base_url);
        req.url = url;
        if (!http_client_send(ch->c, &req, 5000, on_chain, ch)) {
            ch->failed++;
            ch->done = N_SEQUENTIAL;
        }
    }
}

static int test_reuse(struct env *env)
{
    struct chain ch = {.env = env};
    char url[128];
    char *headers[] = {NULL};
    struct adapter_request req = {.method = "GET", .url = url, .headers = headers};
    int before = env->srv.n_conns;
    int made;
    int rc = -1;

    ch.c = new_client(env, 0, 0);
    CHECK(env, ch.c, "http_client_new failed");
    snprintf(url, sizeof(url), "%s/echo", env->base_url);
    CHECK(env, http_client_send(ch.c, &req, 5000, on_chain, &ch), "send");
    CHECK(env, run_until(env, &ch.done, N_SEQUENTIAL, 10000), "only %d of %d calls completed",
          ch.done, N_SEQUENTIAL);
    CHECK(env, ch.failed == 0, "%d calls failed", ch.failed);
    made = env->srv.n_conns - before;
    CHECK(env, made >= 1 && made <= 2, "%d connections for %d sequential calls", made,
          N_SEQUENTIAL);
    rc = 0;
out:
    http_client_free(ch.c);
    return rc;
}

/* Bursts of calls after the first: connections from the first burst are reused. */
static int test_reuse_burst(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r[2][20];
    int before = env->srv.n_conns;
    int first = 0, second;
    int rc = -1;

    memset(r, 0, sizeof(r));
    CHECK(env, c, "http_client_new failed");
    for (int round = 0; round < 2; round++) {
        int done = 0;
        int64_t deadline = mono_ms() + 10000;

        for (int i = 0; i < 20; i++) {
            CHECK(env, send_path(env, c, "GET", "/echo", NULL, 5000, &r[round][i]), "send");
        }
        while (done < 20 && mono_ms() < deadline) {
            run_until(env, NULL, 0, 20);
            done = 0;
            for (int i = 0; i < 20; i++) {
                done += r[round][i].calls;
            }
        }
        CHECK(env, done == 20, "round %d: %d of 20 completed", round, done);
        if (round == 0) {
            first = env->srv.n_conns - before;
        }
    }
    second = env->srv.n_conns - before - first;
    CHECK(env, first <= 20, "first burst opened %d connections for 20 calls", first);
    CHECK(env, second == 0, "second burst opened %d new connections (first opened %d)", second,
          first);
    rc = 0;
out:
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20; i++) {
            reply_cleanup(&r[round][i]);
        }
    }
    http_client_free(c);
    return rc;
}

static int test_timeout(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    int64_t t0 = mono_ms(), took;
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "GET", "/delay?ms=3000", NULL, 200, &r), "send");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    took = mono_ms() - t0;
    CHECK(env, r.transport == ADAPTER_TRANSPORT_TIMEOUT, "transport %d (%s)", r.transport, r.msg);
    CHECK(env, r.status == 0 && r.body_null, "status %d / body on a timeout", r.status);
    CHECK(env, r.msg[0] != '\0', "no transport_msg");
    CHECK(env, took >= 150 && took < 2000, "timed out after %lld ms", (long long)took);
    rc = 0;
out:
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

/* With one connection allowed, a call waiting for it still times out on its own clock. */
static int test_timeout_while_queued(struct env *env)
{
    struct http_client *c = new_client(env, 0, 1);
    struct reply slow = {0}, queued = {0};
    int64_t t0 = mono_ms(), took;
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "GET", "/delay?ms=1500", NULL, 5000, &slow), "send slow");
    CHECK(env, send_path(env, c, "GET", "/echo", NULL, 300, &queued), "send queued");
    CHECK(env, run_until(env, &queued.calls, 1, 5000), "no callback for the queued call");
    took = mono_ms() - t0;
    CHECK(env, queued.transport == ADAPTER_TRANSPORT_TIMEOUT, "queued: transport %d (%s)",
          queued.transport, queued.msg);
    CHECK(env, took < 1200, "queued call timed out after %lld ms", (long long)took);
    CHECK(env, run_until(env, &slow.calls, 1, 5000), "no callback for the slow call");
    CHECK(env, slow.transport == ADAPTER_TRANSPORT_OK && slow.status == 200,
          "slow: transport %d status %d", slow.transport, slow.status);
    rc = 0;
out:
    reply_cleanup(&slow);
    reply_cleanup(&queued);
    http_client_free(c);
    return rc;
}

static int test_connect_refused(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_to(env, c, "GET", env->refused_url, NULL, 5000, on_reply, &r), "send");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK(env, r.transport == ADAPTER_TRANSPORT_CONNECT, "transport %d (%s)", r.transport, r.msg);
    CHECK(env, r.status == 0, "status %d", r.status);
    CHECK(env, r.msg[0] != '\0', "no transport_msg");
    CHECK(env, env->cb_in_send == 0, "callback ran inside http_client_send");
    rc = 0;
out:
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int test_too_large(struct env *env)
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
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reply_cleanup(&r);
        memset(&r, 0, sizeof(r));
        CHECK(env, send_path(env, c, "GET", cases[i].path, NULL, 5000, &r), "send");
        CHECK(env, run_until(env, &r.calls, 1, 5000), "%s: no callback", cases[i].path);
        CHECK(env, r.transport == cases[i].want, "%s: transport %d (%s)", cases[i].path,
              r.transport, r.msg);
        CHECK(env, r.body_len == cases[i].want_len, "%s: body_len %zu", cases[i].path, r.body_len);
        CHECK(env, cases[i].want == ADAPTER_TRANSPORT_OK || strstr(r.msg, "65536"),
              "%s: message '%s' does not name the cap", cases[i].path, r.msg);
    }
    rc = 0;
out:
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int test_reset(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "POST", "/close", "x", 5000, &r), "send");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK(env, r.transport == ADAPTER_TRANSPORT_RESET, "transport %d (%s)", r.transport, r.msg);
    CHECK(env, r.status == 0, "status %d", r.status);
    rc = 0;
out:
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int test_503_retry_after(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0};
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "POST", "/503", "{}", 5000, &r), "send");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK(env, r.transport == ADAPTER_TRANSPORT_OK, "transport %d (%s)", r.transport, r.msg);
    CHECK(env, r.status == 503, "status %d", r.status);
    CHECK(env, reply_header(&r, "retry-after") && strcmp(reply_header(&r, "retry-after"), "7") == 0,
          "retry-after missing");
    CHECK(env, r.body && strstr(r.body, "overloaded"), "body %s", r.body ? r.body : "(null)");
    rc = 0;
out:
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int test_headers(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0}, multi = {0};
    int n_multi = 0;
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "GET", "/headers?n=150", NULL, 5000, &r), "send");
    CHECK(env, send_path(env, c, "GET", "/echo", NULL, 5000, &multi), "send");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK(env, run_until(env, &multi.calls, 1, 5000), "no callback");
    CHECK(env, r.transport == ADAPTER_TRANSPORT_OK && r.status == 200, "transport %d status %d",
          r.transport, r.status);
    CHECK(env, r.n_headers == HTTP_CLIENT_MAX_HEADERS, "%zu headers kept", r.n_headers);
    CHECK(env, !reply_header(&r, "x-big"), "the 10 KB header was kept");
    for (size_t i = 0; i < r.n_headers; i++) {
        char name[32], value[32];

        snprintf(name, sizeof(name), "x-h-%03zu", i);
        snprintf(value, sizeof(value), "v%zu", i);
        CHECK(env, strcmp(r.names[i], name) == 0 && strcmp(r.values[i], value) == 0,
              "header %zu is %s: %s", i, r.names[i], r.values[i]);
    }
    for (size_t i = 0; i < multi.n_headers; i++) {
        n_multi += strcmp(multi.names[i], "x-multi") == 0;
    }
    CHECK(env, n_multi == 2, "%d x-multi headers, want both", n_multi);
    rc = 0;
out:
    reply_cleanup(&r);
    reply_cleanup(&multi);
    http_client_free(c);
    return rc;
}

/*
 * Cancel before the loop runs; cancel another call and start a new one from inside a callback;
 * cancel oneself from one's own callback (no-op). Cancelled calls never call back.
 */
static int test_cancel(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply a = {0}, b = {0}, cr = {0}, d = {0}, e = {0};
    struct http_call *call_a, *call_c;
    char url[128];
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    call_a = send_path(env, c, "GET", "/delay?ms=300", NULL, 5000, &a);
    CHECK(env, call_a, "send a");
    CHECK(env, send_path(env, c, "GET", "/delay?ms=100", NULL, 5000, &b), "send b");
    http_call_cancel(call_a);
    CHECK(env, http_client_in_flight(c) == 1, "in_flight %zu after cancel",
          http_client_in_flight(c));
    d.env = env;
    cr.other = send_path(env, c, "GET", "/delay?ms=200", NULL, 5000, &d);
    CHECK(env, cr.other, "send d");
    cr.client = c;
    cr.follow_up = &e;
    cr.env = env;
    snprintf(url, sizeof(url), "%s/echo", env->base_url);
    call_c = send_to(env, c, "GET", url, NULL, 5000, on_reply_reentrant, &cr);
    CHECK(env, call_c, "send c");
    cr.self = call_c;
    CHECK(env, run_until(env, &cr.calls, 1, 5000), "c: no callback");
    CHECK(env, run_until(env, &e.calls, 1, 5000), "follow-up: no callback");
    CHECK(env, run_until(env, &b.calls, 1, 5000), "b: no callback");
    run_until(env, NULL, 0, 400); /* past a's and d's replies */
    CHECK(env, a.calls == 0, "cancelled call a called back %d times", a.calls);
    CHECK(env, d.calls == 0, "call d cancelled from a callback called back %d times", d.calls);
    CHECK(env, cr.calls == 1 && b.calls == 1 && e.calls == 1, "calls c %d b %d e %d", cr.calls,
          b.calls, e.calls);
    CHECK(env, e.transport == ADAPTER_TRANSPORT_OK && e.status == 200, "follow-up status %d",
          e.status);
    CHECK(env, http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    CHECK(env, env->cb_in_send == 0, "callback ran inside http_client_send");
    rc = 0;
out:
    reply_cleanup(&a);
    reply_cleanup(&b);
    reply_cleanup(&cr);
    reply_cleanup(&d);
    reply_cleanup(&e);
    http_client_free(c);
    return rc;
}

/* Immediate failures return NULL; a URL curl refuses is reported through the callback. */
static int test_bad_input(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r = {0}, never = {0};
    char url[128];
    char bad_h[] = "X-Evil: a\r\nX-Injected: b";
    char *headers[] = {bad_h};
    struct adapter_request req = {.method = "GET", .url = url, .headers = headers, .n_headers = 1};
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    snprintf(url, sizeof(url), "%s/echo", env->base_url);
    CHECK(env, !http_client_send(c, &req, 5000, on_reply, &never), "CRLF in a header accepted");
    req.n_headers = 0;
    CHECK(env, !http_client_send(c, &req, 0, on_reply, &never), "timeout 0 accepted");
    CHECK(env, !http_client_send(c, &req, 1000, NULL, &never), "NULL callback accepted");
    req.method[0] = '\0';
    CHECK(env, !http_client_send(c, &req, 1000, on_reply, &never), "empty method accepted");
    CHECK(env, !http_client_send(NULL, &req, 1000, on_reply, &never), "NULL client accepted");
    CHECK(env, send_to(env, c, "GET", "ftp://127.0.0.1/x", NULL, 5000, on_reply, &r),
          "ftp URL refused up front");
    CHECK(env, run_until(env, &r.calls, 1, 5000), "no callback");
    CHECK(env, r.transport == ADAPTER_TRANSPORT_OTHER, "transport %d (%s)", r.transport, r.msg);
    CHECK(env, never.calls == 0, "a refused call called back");
    CHECK(env, env->cb_in_send == 0, "callback ran inside http_client_send");
    CHECK(env, http_client_in_flight(c) == 0, "in_flight %zu", http_client_in_flight(c));
    rc = 0;
out:
    reply_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int test_free_in_flight(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply r[6];
    int rc = -1;
    int total = 0;

    memset(r, 0, sizeof(r));
    CHECK(env, c, "http_client_new failed");
    for (int i = 0; i < 5; i++) {
        CHECK(env, send_path(env, c, "POST", "/delay?ms=100", "x", 5000, &r[i]), "send");
    }
    run_until(env, NULL, 0, 20); /* on the wire, waiting for the replies */
    CHECK(env, send_path(env, c, "GET", "/echo", NULL, 5000, &r[5]), "send"); /* not started */
    CHECK(env, http_client_in_flight(c) == 6, "in_flight %zu", http_client_in_flight(c));
    http_client_free(c);
    c = NULL;
    run_until(env, NULL, 0, 300);
    for (int i = 0; i < 6; i++) {
        total += r[i].calls;
    }
    CHECK(env, total == 0, "%d callbacks after free", total);
    http_client_free(NULL);
    rc = 0;
out:
    for (int i = 0; i < 6; i++) {
        reply_cleanup(&r[i]);
    }
    http_client_free(c);
    return rc;
}

static int test_free_in_callback(struct env *env)
{
    struct http_client *c = new_client(env, 0, 0);
    struct reply first = {0}, other = {0};
    int rc = -1;

    CHECK(env, c, "http_client_new failed");
    CHECK(env, send_path(env, c, "GET", "/delay?ms=100", NULL, 5000, &other), "send other");
    first.client = c;
    first.free_client = true;
    first.env = env;
    {
        char url[128];

        snprintf(url, sizeof(url), "%s/echo", env->base_url);
        CHECK(env, send_to(env, c, "GET", url, NULL, 5000, on_reply_reentrant, &first), "send");
    }
    c = NULL; /* the callback frees it */
    CHECK(env, run_until(env, &first.calls, 1, 5000), "no callback");
    run_until(env, NULL, 0, 300);
    CHECK(env, first.client == NULL && first.status == 200, "status %d", first.status);
    CHECK(env, other.calls == 0, "call aborted by free called back");
    rc = 0;
out:
    reply_cleanup(&first);
    reply_cleanup(&other);
    http_client_free(c);
    return rc;
}

static const struct {
    const char *name;
    int (*fn)(struct env *env);
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
};

/* A loopback port that is bound but not listening: connecting to it is refused. */
static int reserve_refused_port(struct env *env)
{
    struct sockaddr_in sin = {0};
    socklen_t slen = sizeof(sin);

    env->refused_fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (env->refused_fd < 0 || bind(env->refused_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(env->refused_fd, (struct sockaddr *)&sin, &slen) != 0) {
        return -1;
    }
    snprintf(env->refused_url, sizeof(env->refused_url), "http://127.0.0.1:%d/echo",
             ntohs(sin.sin_port));
    return 0;
}

int main(void)
{
    struct env env = {0};
    int passed = 0, failed = 0;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    env.base = event_base_new();
    if (!env.base || server_start(&env.srv, env.base) != 0 || reserve_refused_port(&env) != 0) {
        fprintf(stderr, "test setup failed\n");
        return 2;
    }
    snprintf(env.base_url, sizeof(env.base_url), "http://127.0.0.1:%d", env.srv.port);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        env.why[0] = '\0';
        env.cb_in_send = 0;
        if (tests[i].fn(&env) == 0) {
            printf("ok %s\n", tests[i].name);
            passed++;
        } else {
            printf("FAIL %s: %s\n", tests[i].name, env.why);
            failed++;
        }
        fflush(stdout);
    }
    server_stop(&env.srv);
    close(env.refused_fd);
    event_base_free(env.base);
    curl_global_cleanup();
    libevent_global_shutdown();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
