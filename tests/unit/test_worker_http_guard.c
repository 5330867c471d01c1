/*
 * tests/unit/test_worker_http_guard.c — http_client_send_guarded and its streaming variant
 * against a real server.
 *
 * The server is tests/unit/http_server.h's, on the event_base of the client under test; /ok
 * answers 200 "ok", /redirect a 302, and it counts the connections it accepts, so a test can tell
 * a refused call (no connection at all), a fresh connection and a reused one apart. Only loopback
 * addresses are ever named: a refused address is never connected to, but a broken guard would.
 *
 * Checks with tests/unit/check.h: `ok <name>` or `FAIL <name>` per test, then `N passed, N
 * failed` over the assertions.
 */
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
#include <event2/event.h>

#include "core/netaddr.h"
#include "tests/unit/check.h"
#include "tests/unit/http_server.h"
#include "worker/http.h"

#define TIMEOUT_MS 5000
#define LOOPBACK_REFUSED "address refused: 127.0.0.1 is loopback"

struct env {
    struct event_base *base;
    struct http_server srv;
    struct http_client *client;
    bool ipv6;       /* ::1 can be bound here (curl then resolves localhost to it too) */
    int closed_fd;   /* bound to 127.0.0.1, never listening: connects to it are refused */
    int closed_port; /* its port */
};

/* What a call's callback saw. */
struct reply {
    bool done;
    enum adapter_transport transport;
    int status;
    char body[64];
    char msg[256];
};

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
 * An allow list of entries (NULL-terminated), or NULL for entries NULL (no list at all). Caller
 * frees with netaddr_allow_free. A bad entry is a failed CHECK and leaves it out.
 */
static struct netaddr_allow *allow_of(const char *const *entries)
{
    struct netaddr_allow *allow;

    if (!entries) {
        return NULL;
    }
    allow = netaddr_allow_new();
    for (size_t i = 0; entries[i]; i++) {
        CHECK_MSG(netaddr_allow_add(allow, entries[i]) == 0, "bad allow entry %s", entries[i]);
    }
    return allow;
}

/*
 * Sends GET url, guarded with the allow-list entries (see allow_of), or unguarded when guarded is
 * false, and waits for the reply. True when it came.
 */
static bool call(struct env *env, const char *url, bool guarded, const char *const *entries,
                 struct reply *r)
{
    struct adapter_request req = {.method = "GET"};
    struct netaddr_allow *allow = allow_of(entries);
    struct http_call *h;
    bool ok;

    memset(r, 0, sizeof(*r));
    req.url = (char *)url;
    h = guarded ? http_client_send_guarded(env->client, &req, TIMEOUT_MS, allow, on_reply, r)
                : http_client_send(env->client, &req, TIMEOUT_MS, on_reply, r);
    ok = h != NULL && wait_reply(env, r);
    netaddr_allow_free(allow);
    return ok;
}

/* The reply was a 200 "ok". */
static bool is_ok(const struct reply *r)
{
    return r->transport == ADAPTER_TRANSPORT_OK && r->status == 200 && strcmp(r->body, "ok") == 0;
}

/* The call was refused with exactly this message. */
static bool is_refused(const struct reply *r, const char *msg)
{
    return r->transport == ADAPTER_TRANSPORT_CONNECT && r->status == 0 && strcmp(r->msg, msg) == 0;
}

/* Calls url as call() does and checks the reply was a 200 "ok"; ends the test otherwise. */
#define CHECK_CALL_OK(env, url, guarded, entries, r, what)                                         \
    do {                                                                                           \
        CHECK_OR_OUT(call((env), (url), (guarded), (entries), (r)), "%s: %s: no reply", (what),    \
                     (url));                                                                       \
        CHECK_OR_OUT(is_ok(r), "%s: transport %d status %d msg \"%s\"", (what),                    \
                     (int)(r)->transport, (r)->status, (r)->msg);                                  \
    } while (0)

/* Calls url guarded and checks it was refused with exactly want; ends the test otherwise. */
#define CHECK_CALL_REFUSED(env, url, entries, r, want, what)                                       \
    do {                                                                                           \
        CHECK_OR_OUT(call((env), (url), true, (entries), (r)), "%s: %s: no reply", (what), (url)); \
        CHECK_OR_OUT(is_refused((r), (want)),                                                      \
                     "%s: transport %d status %d msg \"%s\", want \"%s\"", (what),                 \
                     (int)(r)->transport, (r)->status, (r)->msg, (want));                          \
    } while (0)

static void url_of(struct env *env, const char *host, char *out, size_t size)
{
    snprintf(out, size, "http://%s:%d/ok", host, env->srv.port);
}

/* No list, or one that does not cover loopback: refused before any connection is made. */
static void test_refused(struct env *env)
{
    static const char *const none[] = {NULL};
    static const char *const other[] = {"10.0.0.0/8", "hooks.internal", "::1", NULL};
    char url[128];
    struct reply r;
    int conns = env->srv.n_conns;

    url_of(env, "127.0.0.1", url, sizeof(url));
    CHECK_CALL_REFUSED(env, url, NULL, &r, LOOPBACK_REFUSED, "no list");
    CHECK_CALL_REFUSED(env, url, none, &r, LOOPBACK_REFUSED, "empty list");
    CHECK_CALL_REFUSED(env, url, other, &r, LOOPBACK_REFUSED, "other entries");
    CHECK_OR_OUT(env->srv.n_conns == conns, "a refused call connected");
out:;
}

/* An address entry, a range entry, and neither for the neighbouring loopback address. */
static void test_allowed_by_address(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    static const char *const range[] = {"127.0.0.0/8", NULL};
    static const char *const mapped[] = {"::ffff:127.0.0.1", NULL};
    char url[128];
    struct reply r;

    url_of(env, "127.0.0.1", url, sizeof(url));
    CHECK_CALL_OK(env, url, true, addr, &r, "127.0.0.1");
    CHECK_CALL_OK(env, url, true, range, &r, "127.0.0.0/8");
    CHECK_CALL_OK(env, url, true, mapped, &r, "::ffff:127.0.0.1");
    /* 127.0.0.2 is loopback too but not listed: the guard, not the closed port, refuses it */
    url_of(env, "127.0.0.2", url, sizeof(url));
    CHECK_CALL_REFUSED(env, url, addr, &r, "address refused: 127.0.0.2 is loopback", "127.0.0.2");
    /* 0.0.0.0 reaches the local host on Linux; an entry for 127.0.0.1 does not cover it */
    url_of(env, "0.0.0.0", url, sizeof(url));
    CHECK_CALL_REFUSED(env, url, addr, &r, "address refused: 0.0.0.0 is unspecified", "0.0.0.0");
    if (env->ipv6) {
        url_of(env, "[::1]", url, sizeof(url));
        CHECK_CALL_REFUSED(env, url, addr, &r, "address refused: ::1 is loopback", "[::1]");
    }
    /* an address that passes and then fails to connect reports curl's failure, not a refusal */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", env->closed_port);
    CHECK_OR_OUT(call(env, url, true, addr, &r), "closed port: no reply");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_CONNECT && strstr(r.msg, "refused:") == NULL,
                 "closed port: transport %d \"%s\"", (int)r.transport, r.msg);
out:;
}

/*
 * The name "localhost", resolved by curl (to ::1 and 127.0.0.1; the server listens on the
 * latter only). A name entry lets both through; an entry for 127.0.0.1 lets that address through,
 * skipping ::1; the name entry does not admit an address literal in the URL.
 */
static void test_allowed_by_name(struct env *env)
{
    static const char *const name[] = {"LocalHost", NULL};
    static const char *const addr[] = {"127.0.0.1", NULL};
    static const char *const v6only[] = {"::1", NULL};
    char url[128];
    struct reply r;

    url_of(env, "localhost", url, sizeof(url));
    CHECK_CALL_OK(env, url, true, name, &r, "name localhost");
    CHECK_CALL_OK(env, url, true, addr, &r, "localhost via 127.0.0.1");
    CHECK_OR_OUT(call(env, url, true, NULL, &r), "localhost without a list: no reply");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_CONNECT &&
                     strncmp(r.msg, "address refused: ", 17) == 0,
                 "localhost without a list: %d \"%s\"", (int)r.transport, r.msg);
    /* ::1 is allowed but nothing listens there; 127.0.0.1 is refused. The failure reported is
     * the connect to ::1, not the refusal, since an address did pass. */
    if (env->ipv6) {
        CHECK_OR_OUT(call(env, url, true, v6only, &r), "localhost with ::1 only: no reply");
        CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_CONNECT &&
                         strncmp(r.msg, "address refused", 15) != 0,
                     "localhost with ::1 only: %d \"%s\"", (int)r.transport, r.msg);
    }
    url_of(env, "127.0.0.1", url, sizeof(url));
    CHECK_CALL_REFUSED(env, url, name, &r, LOOPBACK_REFUSED, "literal, name entry");
out:;
}

/*
 * Connection reuse cannot carry a call past the guard: an unguarded call leaves a kept-alive
 * connection to 127.0.0.1 in the client's pool; a guarded call without an allow entry must still
 * be refused, and an allowed one must open its own connection (and close it after). Unguarded
 * calls go on reusing their pooled connection.
 */
static void test_no_reuse(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    char url[128];
    struct reply r;
    int conns;

    url_of(env, "127.0.0.1", url, sizeof(url));
    CHECK_CALL_OK(env, url, false, NULL, &r, "unguarded");
    conns = env->srv.n_conns;
    CHECK_CALL_OK(env, url, false, NULL, &r, "unguarded again");
    CHECK_OR_OUT(env->srv.n_conns == conns, "unguarded calls should share a connection: %d -> %d",
                 conns, env->srv.n_conns);
    CHECK_CALL_REFUSED(env, url, NULL, &r, LOOPBACK_REFUSED, "guarded after pool");
    CHECK_OR_OUT(env->srv.n_conns == conns, "the refused call connected");
    for (int i = 1; i <= 2; i++) {
        CHECK_CALL_OK(env, url, true, addr, &r, "guarded allowed");
        CHECK_OR_OUT(env->srv.n_conns == conns + i, "guarded call %d reused a connection (%d, %d)",
                     i, conns, env->srv.n_conns);
    }
    CHECK_CALL_OK(env, url, false, NULL, &r, "unguarded after");
    CHECK_OR_OUT(env->srv.n_conns == conns + 2, "unguarded call after guarded ones: %d -> %d",
                 conns, env->srv.n_conns);
out:;
}

/* Concurrent guarded calls, half refused, half allowed, on one client. */
static void test_mixed_burst(struct env *env)
{
    enum { N = 20 };
    struct netaddr_allow *allow = netaddr_allow_new();
    struct adapter_request req = {.method = "POST"};
    struct reply r[N];
    char url[128];

    url_of(env, "127.0.0.1", url, sizeof(url));
    req.url = url;
    req.body = "{}";
    req.body_len = 2;
    memset(r, 0, sizeof(r));
    CHECK_OR_OUT(netaddr_allow_add(allow, "127.0.0.1") == 0, "allow 127.0.0.1");
    for (int i = 0; i < N; i++) {
        CHECK_OR_OUT(http_client_send_guarded(env->client, &req, TIMEOUT_MS, i % 2 ? allow : NULL,
                                              on_reply, &r[i]),
                     "send %d failed", i);
    }
    for (int i = 0; i < N; i++) {
        CHECK_OR_OUT(wait_reply(env, &r[i]), "call %d: no reply", i);
    }
    for (int i = 0; i < N; i++) {
        CHECK_MSG(i % 2 ? is_ok(&r[i]) : is_refused(&r[i], LOOPBACK_REFUSED),
                  "burst %s %d: transport %d status %d msg \"%s\"", i % 2 ? "allowed" : "refused",
                  i, (int)r[i].transport, r[i].status, r[i].msg);
    }
out:
    netaddr_allow_free(allow);
}

/* Bad input: NULL as for http_client_send; an unparsable URL through the callback. */
static void test_bad_input(struct env *env)
{
    struct adapter_request req = {.method = "GET"};
    struct reply r;

    memset(&r, 0, sizeof(r));
    CHECK(http_client_send_guarded(env->client, NULL, TIMEOUT_MS, NULL, on_reply, &r) == NULL);
    CHECK(http_client_send_guarded(env->client, &req, TIMEOUT_MS, NULL, on_reply, &r) == NULL);
    req.url = "http://127.0.0.1:1/x";
    CHECK(http_client_send_guarded(env->client, &req, 0, NULL, on_reply, &r) == NULL);
    CHECK(http_client_send_guarded(env->client, &req, TIMEOUT_MS, NULL, NULL, &r) == NULL);
    CHECK_OR_OUT(call(env, "http://[::1", true, NULL, &r), "bad URL: no reply");
    CHECK_OR_OUT(r.transport == ADAPTER_TRANSPORT_OTHER, "bad URL: transport %d \"%s\"",
                 (int)r.transport, r.msg);
    CHECK_OR_OUT(call(env, "ftp://127.0.0.1/x", true, NULL, &r), "ftp URL: no reply");
    CHECK_OR_OUT(r.transport != ADAPTER_TRANSPORT_OK, "ftp URL went through");
out:;
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
 * for, then the loop run a little longer so that a second callback would show. True when
 * on_done was called exactly once.
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
    return ok && s->n_done == 1;
}

/*
 * The streaming variant: refused before any connection (on_done once, never on_data, and
 * http_response_refused says so); allowed, the 2xx body goes to on_data only.
 */
static void test_stream(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    struct stream_reply s;
    char url[128];
    int conns = env->srv.n_conns;

    url_of(env, "127.0.0.1", url, sizeof(url));
    CHECK_OR_OUT(stream_call(env, url, NULL, &s), "stream refused: %d on_done", s.n_done);
    CHECK_OR_OUT(is_refused(&s.r, LOOPBACK_REFUSED),
                 "stream refused: transport %d status %d msg \"%s\"", (int)s.r.transport,
                 s.r.status, s.r.msg);
    CHECK_OR_OUT(s.n_data == 0 && s.refused && env->srv.n_conns == conns,
                 "refused stream: %d data calls, refused %d, %d conns", s.n_data, (int)s.refused,
                 env->srv.n_conns - conns);
    CHECK_OR_OUT(stream_call(env, url, addr, &s), "allowed stream: %d on_done", s.n_done);
    CHECK_OR_OUT(s.r.transport == ADAPTER_TRANSPORT_OK && s.r.status == 200 &&
                     s.r.body[0] == '\0' && s.data_len == 2 && memcmp(s.data, "ok", 2) == 0 &&
                     !s.refused,
                 "allowed stream: transport %d status %d body \"%s\" data \"%.*s\" refused %d",
                 (int)s.r.transport, s.r.status, s.r.body, (int)s.data_len, s.data, (int)s.refused);
out:;
}

/*
 * A redirect is not followed, guarded or not, streamed or not: the 3xx itself is the answer,
 * buffered (not streamed), and the server sees one request.
 */
static void test_stream_redirect(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    struct stream_reply s;
    char url[128];
    int reqs = env->srv.n_reqs;

    snprintf(url, sizeof(url), "%s/redirect", env->srv.url);
    CHECK_OR_OUT(stream_call(env, url, addr, &s), "redirect: %d on_done", s.n_done);
    CHECK_OR_OUT(s.r.transport == ADAPTER_TRANSPORT_OK && s.r.status == 302 &&
                     strcmp(s.r.body, "moved") == 0 && s.n_data == 0 && env->srv.n_reqs == reqs + 1,
                 "redirect: transport %d status %d body \"%s\", %d data calls, %d requests",
                 (int)s.r.transport, s.r.status, s.r.body, s.n_data, env->srv.n_reqs - reqs);
out:;
}

/* An allowed address whose connection fails is not a refusal; neither is a plain call's reply. */
static void test_refused_predicate(struct env *env)
{
    static const char *const addr[] = {"127.0.0.1", NULL};
    struct stream_reply s;
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", env->closed_port);
    CHECK_OR_OUT(stream_call(env, url, addr, &s), "closed port: %d on_done", s.n_done);
    CHECK_OR_OUT(s.r.transport == ADAPTER_TRANSPORT_CONNECT && !s.refused,
                 "closed port: transport %d refused %d \"%s\"", (int)s.r.transport, (int)s.refused,
                 s.r.msg);
    CHECK_OR_OUT(!http_response_refused(NULL), "NULL counted as refused");
out:;
}

/* The streaming variant refuses what the others refuse, and a NULL data callback. */
static void test_stream_bad_input(struct env *env)
{
    struct adapter_request req = {.method = "GET", .url = "http://127.0.0.1:1/x"};
    struct stream_reply s;

    memset(&s, 0, sizeof(s));
    CHECK(http_client_send_guarded_stream(env->client, &req, TIMEOUT_MS, NULL, NULL, on_stream_done,
                                          &s) == NULL);
    CHECK(http_client_send_guarded_stream(env->client, &req, TIMEOUT_MS, NULL, on_stream_data, NULL,
                                          &s) == NULL);
    CHECK(http_client_send_guarded_stream(env->client, &req, 0, NULL, on_stream_data,
                                          on_stream_done, &s) == NULL);
}

static const struct {
    const char *name;
    void (*fn)(struct env *env);
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

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    env.base = event_base_new();
    env.ipv6 = have_ipv6();
    env.closed_port = http_server_closed_port(&env.closed_fd);
    if (!env.base || http_server_start(&env.srv, env.base) != 0 || env.closed_port < 0 ||
        !(env.client = http_client_new(env.base, NULL))) {
        fprintf(stderr, "test setup failed\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        check_test_begin(tests[i].name);
        tests[i].fn(&env);
        check_test_end();
    }
    http_client_free(env.client);
    http_server_stop(&env.srv);
    close(env.closed_fd);
    event_base_free(env.base);
    curl_global_cleanup();
    libevent_global_shutdown();
    return check_done();
}
