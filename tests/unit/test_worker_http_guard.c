/*
 * tests/unit/test_worker_http_guard.c — http_client_send_guarded and its streaming variant
 * against a real server.
 *
 * An evhttp server on 127.0.0.1 (port 0) shares the event_base of the client under test; it
 * answers every request with 200 "ok" and counts the connections it accepts, so a test can tell a
 * refused call (no connection at all), a fresh connection and a reused one apart. Only loopback
 * addresses are ever named: a refused address is never connected to, but a broken guard would.
 *
 * Prints `ok <name>` or `FAIL <name>: why` per test and then `N passed, N failed`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "core/netaddr.h"
#include "worker/http.h"

#define TIMEOUT_MS 5000

struct server {
    struct evhttp *http;
    int port;
    int n_conns; /* connections accepted so far */
    int n_reqs;  /* requests answered so far */
};

struct env {
    struct event_base *base;
    struct server srv;
    struct http_client *client;
    bool ipv6;       /* ::1 can be bound here (curl then resolves localhost to it too) */
    int closed_fd;   /* bound to 127.0.0.1, never listening: connects to it are refused */
    int closed_port; /* its port */
    char why[512];
};

/* What a call's callback saw. */
struct reply {
    bool done;
    enum adapter_transport transport;
    int status;
    char body[64];
    char msg[256];
};

/* Every path answers 200 "ok", except /redirect: a 302 to /hook on the same server. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    struct evbuffer *b = evbuffer_new();
    char location[64];

    srv->n_reqs++;
    if (strcmp(evhttp_request_get_uri(req), "/redirect") == 0) {
        snprintf(location, sizeof(location), "http://127.0.0.1:%d/hook", srv->port);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
        evbuffer_add(b, "moved", 5);
        evhttp_send_reply(req, 302, "Found", b);
    } else {
        evbuffer_add(b, "ok", 2);
        evhttp_send_reply(req, 200, "OK", b);
    }
    evbuffer_free(b);
}

static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct server *srv = arg;

    srv->n_conns++;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

static int server_start(struct server *srv, struct event_base *base)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    srv->http = evhttp_new(base);
    if (!srv->http) {
        return -1;
    }
    evhttp_set_gencb(srv->http, on_request, srv);
    evhttp_set_bevcb(srv->http, on_new_conn, srv);
    sock = evhttp_bind_socket_with_handle(srv->http, "127.0.0.1", 0);
    if (!sock ||
        getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &len) != 0) {
        return -1;
    }
    srv->port = ntohs(sin.sin_port);
    return 0;
}

/* Whether ::1 works on this machine; some containers have no IPv6 at all. */
static bool have_ipv6(void)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;

    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* A bound, never listening socket on 127.0.0.1, so that a connect to its port is refused. */
static int reserve_closed_port(struct env *env)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    env->closed_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (env->closed_fd < 0 || bind(env->closed_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(env->closed_fd, (struct sockaddr *)&sin, &len) != 0) {
        return -1;
    }
    env->closed_port = ntohs(sin.sin_port);
    return 0;
}

static void on_reply(const struct adapter_response *resp, void *arg)
{
    struct reply *r = arg;

    r->done = true;
    r->transport = resp->transport;
    r->status = resp->status;
    snprintf(r->body, sizeof(r->body), "%.*s", (int)resp->body_len, resp->body ? resp->body : "");
    snprintf(r->msg, sizeof(r->msg), "%s", resp->transport_msg ? resp->transport_msg : "");
}

static long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop, in 10 ms slices, until r is done or TIMEOUT_MS passes. */
static bool wait_reply(struct env *env, struct reply *r)
{
    long until = mono_ms() + TIMEOUT_MS;

    while (!r->done && mono_ms() < until) {
        struct timeval step = {0, 10000};

        event_base_loopexit(env->base, &step);
        event_base_dispatch(env->base);
    }
    return r->done;
}

/*
 * Sends GET url, guarded with the allow-list entries (NULL-terminated; entries NULL: no list at
 * all), or unguarded when guarded is false, and waits for the reply.
 */
static bool call(struct env *env, const char *url, bool guarded, const char *const *entries,
                 struct reply *r)
{
    struct adapter_request req = {.method = "GET"};
    struct netaddr_allow *allow = NULL;
    struct http_call *h;
    bool ok;

    memset(r, 0, sizeof(*r));
    req.url = (char *)url;
    if (entries) {
        allow = netaddr_allow_new();
        for (size_t i = 0; entries[i]; i++) {
            if (netaddr_allow_add(allow, entries[i]) != 0) {
                snprintf(env->why, sizeof(env->why), "bad allow entry %s", entries[i]);
                netaddr_allow_free(allow);
                return false;
            }
        }
    }
    h = guarded ? http_client_send_guarded(env->client, &req, TIMEOUT_MS, allow, on_reply, r)
                : http_client_send(env->client, &req, TIMEOUT_MS, on_reply, r);
    ok = h != NULL && wait_reply(env, r);
    netaddr_allow_free(allow);
    if (!ok) {
        snprintf(env->why, sizeof(env->why), "%s: no reply", url);
    }
    return ok;
}

/* The reply was a 200 "ok". */
static bool is_ok(struct env *env, const struct reply *r, const char *what)
{
    if (r->transport == ADAPTER_TRANSPORT_OK && r->status == 200 && strcmp(r->body, "ok") == 0) {
        return true;
    }
    snprintf(env->why, sizeof(env->why), "%s: transport %d status %d msg \"%s\"", what,
             (int)r->transport, r->status, r->msg);
    return false;
}

/* The call was refused with exactly this message. */
static bool is_refused(struct env *env, const struct reply *r, const char *msg, const char *what)
{
    if (r->transport == ADAPTER_TRANSPORT_CONNECT && r->status == 0 && strcmp(r->msg, msg) == 0) {
        return true;
    }
    snprintf(env->why, sizeof(env->why), "%s: transport %d status %d msg \"%s\", want \"%s\"", what,
             (int)r->transport, r->status, r->msg, msg);
    return false;
}

static void url_of(struct env *env, const char *host, char *out, size_t size)
{
    snprintf(out, size, "http://%s:%d/hook", host, env->srv.port);
}

/* No list, or one that does not cover loopback: refused before any connection is made. */
static int test_refused(struct env *env)
{
    static const char *const none[] = {NULL};
    static const char *const other[] = {"10.0.0.0/8", "hooks.internal", "::1", NULL};
    char url[128];
    struct reply r;
    int conns = env->srv.n_conns;

    url_of(env, "127.0.0.1", url, sizeof(url));
    if (!call(env, url, true, NULL, &r) ||
        !is_refused(env, &r, "address refused: 127.0.0.1 is loopback", "no list")) {
        return -1;
    }
    if (!call(env, url, true, none, &r) ||
        !is_refused(env, &r, "address refused: 127.0.0.1 is loopback", "empty list")) {
        return -1;
    }
    if (!call(env, url, true, other, &r) ||
        !is_refused(env, &r, "address refused: 127.0.0.1 is loopback", "other entries")) {
        return -1;
    }
    if (env->srv.n_conns != conns) {
        snprintf(env->why, sizeof(env->why), "a refused call connected");
        return -1;
    }
    return 0;
}

/* An address entry, a range entry, and neither for the neighbouring loopback address. */
static int test_allowed_by_address(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    static const char *const range[] = {"127.0.0.0/8", NULL};
    static const char *const mapped[] = {"::ffff:127.0.0.1", NULL};
    char url[128];
    struct reply r;

    url_of(env, "127.0.0.1", url, sizeof(url));
    if (!call(env, url, true, addr, &r) || !is_ok(env, &r, "127.0.0.1")) {
        return -1;
    }
    if (!call(env, url, true, range, &r) || !is_ok(env, &r, "127.0.0.0/8")) {
        return -1;
    }
    if (!call(env, url, true, mapped, &r) || !is_ok(env, &r, "::ffff:127.0.0.1")) {
        return -1;
    }
    /* 127.0.0.2 is loopback too but not listed: the guard, not the closed port, refuses it */
    url_of(env, "127.0.0.2", url, sizeof(url));
    if (!call(env, url, true, addr, &r) ||
        !is_refused(env, &r, "address refused: 127.0.0.2 is loopback", "127.0.0.2")) {
        return -1;
    }
    /* 0.0.0.0 reaches the local host on Linux; an entry for 127.0.0.1 does not cover it */
    url_of(env, "0.0.0.0", url, sizeof(url));
    if (!call(env, url, true, addr, &r) ||
        !is_refused(env, &r, "address refused: 0.0.0.0 is unspecified", "0.0.0.0")) {
        return -1;
    }
    if (env->ipv6) {
        url_of(env, "[::1]", url, sizeof(url));
        if (!call(env, url, true, addr, &r) ||
            !is_refused(env, &r, "address refused: ::1 is loopback", "[::1]")) {
            return -1;
        }
    }
    /* an address that passes and then fails to connect reports curl's failure, not a refusal */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", env->closed_port);
    if (!call(env, url, true, addr, &r) || r.transport != ADAPTER_TRANSPORT_CONNECT ||
        strstr(r.msg, "refused:") != NULL) {
        snprintf(env->why, sizeof(env->why), "closed port: transport %d \"%s\"", (int)r.transport,
                 r.msg);
        return -1;
    }
    return 0;
}

/*
 * The name "localhost", resolved by curl (to ::1 and 127.0.0.1; the server listens on the
 * latter only). A name entry lets both through; an entry for 127.0.0.1 lets that address through,
 * skipping ::1; the name entry does not admit an address literal in the URL.
 */
static int test_allowed_by_name(struct env *env)
{
    static const char *const name[] = {"LocalHost", NULL};
    static const char *const addr[] = {"127.0.0.1", NULL};
    static const char *const v6only[] = {"::1", NULL};
    char url[128];
    struct reply r;

    url_of(env, "localhost", url, sizeof(url));
    if (!call(env, url, true, name, &r) || !is_ok(env, &r, "name localhost")) {
        return -1;
    }
    if (!call(env, url, true, addr, &r) || !is_ok(env, &r, "localhost via 127.0.0.1")) {
        return -1;
    }
    if (!call(env, url, true, NULL, &r) || r.transport != ADAPTER_TRANSPORT_CONNECT ||
        strncmp(r.msg, "address refused: ", 17) != 0) {
        snprintf(env->why, sizeof(env->why), "localhost without a list: %d \"%s\"",
                 (int)r.transport, r.msg);
        return -1;
    }
    /* ::1 is allowed but nothing listens there; 127.0.0.1 is refused. The failure reported is
     * the connect to ::1, not the refusal, since an address did pass. */
    if (env->ipv6 &&
        (!call(env, url, true, v6only, &r) || r.transport != ADAPTER_TRANSPORT_CONNECT ||
         strncmp(r.msg, "address refused", 15) == 0)) {
        snprintf(env->why, sizeof(env->why), "localhost with ::1 only: %d \"%s\"", (int)r.transport,
                 r.msg);
        return -1;
    }
    url_of(env, "127.0.0.1", url, sizeof(url));
    if (!call(env, url, true, name, &r) ||
        !is_refused(env, &r, "address refused: 127.0.0.1 is loopback", "literal, name entry")) {
        return -1;
    }
    return 0;
}

/*
 * Connection reuse cannot carry a call past the guard: an unguarded call leaves a kept-alive
 * connection to 127.0.0.1 in the client's pool; a guarded call without an allow entry must still
 * be refused, and an allowed one must open its own connection (and close it after). Unguarded
 * calls go on reusing their pooled connection.
 */
static int test_no_reuse(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    char url[128];
    struct reply r;
    int conns;

    url_of(env, "127.0.0.1", url, sizeof(url));
    if (!call(env, url, false, NULL, &r) || !is_ok(env, &r, "unguarded")) {
        return -1;
    }
    conns = env->srv.n_conns;
    if (!call(env, url, false, NULL, &r) || !is_ok(env, &r, "unguarded again") ||
        env->srv.n_conns != conns) {
        snprintf(env->why + strlen(env->why), sizeof(env->why) - strlen(env->why),
                 " (unguarded calls should share a connection: %d -> %d)", conns, env->srv.n_conns);
        return -1;
    }
    if (!call(env, url, true, NULL, &r) ||
        !is_refused(env, &r, "address refused: 127.0.0.1 is loopback", "guarded after pool")) {
        return -1;
    }
    if (env->srv.n_conns != conns) {
        snprintf(env->why, sizeof(env->why), "the refused call connected");
        return -1;
    }
    for (int i = 1; i <= 2; i++) {
        if (!call(env, url, true, addr, &r) || !is_ok(env, &r, "guarded allowed")) {
            return -1;
        }
        if (env->srv.n_conns != conns + i) {
            snprintf(env->why, sizeof(env->why), "guarded call %d reused a connection (%d, %d)", i,
                     conns, env->srv.n_conns);
            return -1;
        }
    }
    if (!call(env, url, false, NULL, &r) || !is_ok(env, &r, "unguarded after") ||
        env->srv.n_conns != conns + 2) {
        snprintf(env->why, sizeof(env->why), "unguarded call after guarded ones: %d -> %d", conns,
                 env->srv.n_conns);
        return -1;
    }
    return 0;
}

/* Concurrent guarded calls, half refused, half allowed, on one client. */
static int test_mixed_burst(struct env *env)
{
    enum { N = 20 };
    struct netaddr_allow *allow = netaddr_allow_new();
    struct adapter_request req = {.method = "POST"};
    struct reply r[N];
    char url[128];
    int done = 0;

    url_of(env, "127.0.0.1", url, sizeof(url));
    req.url = url;
    req.body = "{}";
    req.body_len = 2;
    if (netaddr_allow_add(allow, "127.0.0.1") != 0) {
        netaddr_allow_free(allow);
        return -1;
    }
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        if (!http_client_send_guarded(env->client, &req, TIMEOUT_MS, i % 2 ? allow : NULL, on_reply,
                                      &r[i])) {
            snprintf(env->why, sizeof(env->why), "send %d failed", i);
            netaddr_allow_free(allow);
            return -1;
        }
    }
    for (int i = 0; i < N; i++) {
        if (!wait_reply(env, &r[i])) {
            snprintf(env->why, sizeof(env->why), "call %d: no reply", i);
            netaddr_allow_free(allow);
            return -1;
        }
    }
    netaddr_allow_free(allow);
    for (int i = 0; i < N; i++) {
        bool good = i % 2 ? is_ok(env, &r[i], "burst allowed")
                          : is_refused(env, &r[i], "address refused: 127.0.0.1 is loopback",
                                       "burst refused");
        done += good;
    }
    return done == N ? 0 : -1;
}

/* Bad input: NULL as for http_client_send; an unparsable URL through the callback. */
static int test_bad_input(struct env *env)
{
    struct adapter_request req = {.method = "GET"};
    struct reply r;

    memset(&r, 0, sizeof(r));
    if (http_client_send_guarded(env->client, NULL, TIMEOUT_MS, NULL, on_reply, &r) != NULL ||
        http_client_send_guarded(env->client, &req, TIMEOUT_MS, NULL, on_reply, &r) != NULL) {
        snprintf(env->why, sizeof(env->why), "bad request accepted");
        return -1;
    }
    req.url = "http://127.0.0.1:1/x";
    if (http_client_send_guarded(env->client, &req, 0, NULL, on_reply, &r) != NULL ||
        http_client_send_guarded(env->client, &req, TIMEOUT_MS, NULL, NULL, &r) != NULL) {
        snprintf(env->why, sizeof(env->why), "bad timeout or callback accepted");
        return -1;
    }
    if (!call(env, "http://[::1", true, NULL, &r) || r.transport != ADAPTER_TRANSPORT_OTHER) {
        snprintf(env->why, sizeof(env->why), "bad URL: transport %d \"%s\"", (int)r.transport,
                 r.msg);
        return -1;
    }
    if (!call(env, "ftp://127.0.0.1/x", true, NULL, &r) || r.transport == ADAPTER_TRANSPORT_OK) {
        snprintf(env->why, sizeof(env->why), "ftp URL went through");
        return -1;
    }
    return 0;
}

/* What a guarded stream's callbacks saw. */
struct stream_reply {
    struct reply r;
    int n_done;
    int n_data;
    char data[64];
    size_t data_len;
    bool refused; /* http_response_refused of the final response */
};

static int on_stream_data(int status, const char *buf, size_t len, void *arg)
{
    struct stream_reply *s = arg;

    s->n_data++;
    if (len > sizeof(s->data) - s->data_len) {
        len = sizeof(s->data) - s->data_len;
    }
    memcpy(s->data + s->data_len, buf, len);
    s->data_len += len;
    return 0;
}

static void on_stream_done(const struct adapter_response *resp, void *arg)
{
    struct stream_reply *s = arg;

    s->n_done++;
    s->refused = http_response_refused(resp);
    on_reply(resp, &s->r);
}

/*
 * A guarded stream to url with the allow-list entries (NULL-terminated; NULL: no list), waited
 * for, then the loop run a little longer so that a second callback would show.
 */
static bool stream_call(struct env *env, const char *url, const char *const *entries,
                        struct stream_reply *s)
{
    struct adapter_request req = {.method = "GET"};
    struct netaddr_allow *allow = netaddr_allow_new();
    struct timeval settle = {0, 50000};
    bool ok;

    memset(s, 0, sizeof(*s));
    req.url = (char *)url;
    for (size_t i = 0; entries && entries[i]; i++) {
        netaddr_allow_add(allow, entries[i]);
    }
    ok = http_client_send_guarded_stream(env->client, &req, TIMEOUT_MS, entries ? allow : NULL,
                                         on_stream_data, on_stream_done, s) != NULL &&
         wait_reply(env, &s->r);
    event_base_loopexit(env->base, &settle);
    event_base_dispatch(env->base);
    netaddr_allow_free(allow);
    if (!ok) {
        snprintf(env->why, sizeof(env->why), "%s: no reply", url);
    } else if (s->n_done != 1) {
        snprintf(env->why, sizeof(env->why), "%s: on_done called %d times", url, s->n_done);
        ok = false;
    }
    return ok;
}

/*
 * The streaming variant: refused before any connection (on_done once, never on_data, and
 * http_response_refused says so); allowed, the 2xx body goes to on_data only.
 */
static int test_stream(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    struct stream_reply s;
    char url[128];
    int conns = env->srv.n_conns;

    url_of(env, "127.0.0.1", url, sizeof(url));
    if (!stream_call(env, url, NULL, &s) ||
        !is_refused(env, &s.r, "address refused: 127.0.0.1 is loopback", "stream refused")) {
        return -1;
    }
    if (s.n_data != 0 || !s.refused || env->srv.n_conns != conns) {
        snprintf(env->why, sizeof(env->why), "refused stream: %d data calls, refused %d, %d conns",
                 s.n_data, (int)s.refused, env->srv.n_conns - conns);
        return -1;
    }
    if (!stream_call(env, url, addr, &s)) {
        return -1;
    }
    if (s.r.transport != ADAPTER_TRANSPORT_OK || s.r.status != 200 || s.r.body[0] != '\0' ||
        s.data_len != 2 || memcmp(s.data, "ok", 2) != 0 || s.refused) {
        snprintf(env->why, sizeof(env->why),
                 "allowed stream: transport %d status %d body \"%s\" data \"%.*s\" refused %d",
                 (int)s.r.transport, s.r.status, s.r.body, (int)s.data_len, s.data, (int)s.refused);
        return -1;
    }
    return 0;
}

/*
 * A redirect is not followed, guarded or not, streamed or not: the 3xx itself is the answer,
 * buffered (not streamed), and the server sees one request.
 */
static int test_stream_redirect(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    struct stream_reply s;
    char url[128];
    int reqs = env->srv.n_reqs;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect", env->srv.port);
    if (!stream_call(env, url, addr, &s)) {
        return -1;
    }
    if (s.r.transport != ADAPTER_TRANSPORT_OK || s.r.status != 302 ||
        strcmp(s.r.body, "moved") != 0 || s.n_data != 0 || env->srv.n_reqs != reqs + 1) {
        snprintf(env->why, sizeof(env->why),
                 "redirect: transport %d status %d body \"%s\", %d data calls, %d requests",
                 (int)s.r.transport, s.r.status, s.r.body, s.n_data, env->srv.n_reqs - reqs);
        return -1;
    }
    return 0;
}

/* An allowed address whose connection fails is not a refusal; neither is a plain call's reply. */
static int test_refused_predicate(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    struct stream_reply s;
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", env->closed_port);
    if (!stream_call(env, url, addr, &s)) {
        return -1;
    }
    if (s.r.transport != ADAPTER_TRANSPORT_CONNECT || s.refused) {
        snprintf(env->why, sizeof(env->why), "closed port: transport %d refused %d \"%s\"",
                 (int)s.r.transport, (int)s.refused, s.r.msg);
        return -1;
    }
    if (http_response_refused(NULL)) {
        snprintf(env->why, sizeof(env->why), "NULL counted as refused");
        return -1;
    }
    return 0;
}

/* The streaming variant refuses what the others refuse, and a NULL data callback. */
static int test_stream_bad_input(struct env *env)
{
    struct adapter_request req = {.method = "GET", .url = "http://127.0.0.1:1/x"};
    struct stream_reply s;

    memset(&s, 0, sizeof(s));
    if (http_client_send_guarded_stream(env->client, &req, TIMEOUT_MS, NULL, NULL, on_stream_done,
                                        &s) != NULL ||
        http_client_send_guarded_stream(env->client, &req, TIMEOUT_MS, NULL, on_stream_data, NULL,
                                        &s) != NULL ||
        http_client_send_guarded_stream(env->client, &req, 0, NULL, on_stream_data, on_stream_done,
                                        &s) != NULL) {
        snprintf(env->why, sizeof(env->why), "bad argument accepted");
        return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(struct env *env);
} tests[] = {
    {"refused", test_refused},
    {"allowed_by_address", test_allowed_by_address},
    {"allowed_by_name", test_allowed_by_name},
    {"no_reuse", test_no_reuse},
    {"mixed_burst", test_mixed_burst},
    {"bad_input", test_bad_input},
    {"stream", test_stream},
    {"stream_redirect", test_stream_redirect},
    {"refused_predicate", test_refused_predicate},
    {"stream_bad_input", test_stream_bad_input},
};

int main(void)
{
    struct env env = {0};
    int passed = 0, failed = 0;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    env.base = event_base_new();
    env.ipv6 = have_ipv6();
    if (!env.base || server_start(&env.srv, env.base) != 0 || reserve_closed_port(&env) != 0 ||
        !(env.client = http_client_new(env.base, NULL))) {
        fprintf(stderr, "test setup failed\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        env.why[0] = '\0';
        if (tests[i].fn(&env) == 0) {
            printf("ok %s\n", tests[i].name);
            passed++;
        } else {
            printf("FAIL %s: %s\n", tests[i].name, env.why);
            failed++;
        }
        fflush(stdout);
    }
    http_client_free(env.client);
    evhttp_free(env.srv.http);
    close(env.closed_fd);
    event_base_free(env.base);
    curl_global_cleanup();
    libevent_global_shutdown();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
