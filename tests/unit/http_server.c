/*
 * tests/unit/http_server.c — the transport tests' HTTP server (see http_server.h).
 */
#include "tests/unit/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

/* A reply held back by /delay; answered by its timer or when the server stops. */
struct http_server_delayed {
    struct http_server *srv;
    struct evhttp_request *req;
    struct event *ev;
    struct http_server_delayed *prev, *next;
};

/* A chunked reply in progress on /stream; ended by its timer or when the server stops. */
struct http_server_stream {
    struct http_server *srv;
    struct evhttp_request *req;
    struct event *ev;
    long n, sent;         /* chunks to send, chunks sent */
    long gap_ms;          /* between chunks */
    long stall, stall_ms; /* after chunk number stall (1-based), wait stall_ms instead */
    struct http_server_stream *prev, *next;
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
static void route_echo(struct http_server *srv, struct evhttp_request *req)
{
    static const struct {
        enum evhttp_cmd_type cmd;
        const char *name;
    } methods[] = {
        {EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"}, {EVHTTP_REQ_PUT, "PUT"},
        {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_HEAD, "HEAD"}, {EVHTTP_REQ_PATCH, "PATCH"},
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

static void route_ok(struct http_server *srv, struct evhttp_request *req)
{
    reply_text(req, 200, "text/plain", "ok");
}

static void route_redirect(struct http_server *srv, struct evhttp_request *req)
{
    char location[96];

    snprintf(location, sizeof(location), "%s/ok", srv->url);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
    reply_text(req, 302, "text/plain", "moved");
}

static void delayed_unlink(struct http_server *srv, struct http_server_delayed *d)
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
    struct http_server_delayed *d = arg;

    delayed_unlink(d->srv, d);
    reply_text(d->req, 200, "application/json", "{\"delayed\":true}");
    event_free(d->ev);
    free(d);
}

static void route_delay(struct http_server *srv, struct evhttp_request *req)
{
    long ms = query_long(req, "ms", 100);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct http_server_delayed *d = calloc(1, sizeof(*d));

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

static void route_503(struct http_server *srv, struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "7");
    reply_text(req, 503, "application/json", "{\"error\":{\"message\":\"overloaded\"}}");
}

static void route_huge(struct http_server *srv, struct evhttp_request *req)
{
    size_t n = (size_t)query_long(req, "bytes", 1 << 20);
    bool chunked = query_long(req, "chunked", 0) != 0;
    int status = (int)query_long(req, "status", 200);
    struct evbuffer *b = evbuffer_new();
    char chunk[4096];

    memset(chunk, 'x', sizeof(chunk));
    if (!chunked) {
        for (size_t left = n; left > 0;) {
            size_t k = left < sizeof(chunk) ? left : sizeof(chunk);

            evbuffer_add(b, chunk, k);
            left -= k;
        }
        evhttp_send_reply(req, status, NULL, b);
    } else {
        evhttp_send_reply_start(req, status, NULL);
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

static void route_headers(struct http_server *srv, struct evhttp_request *req)
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

static void stream_unlink(struct http_server *srv, struct http_server_stream *st)
{
    if (st->prev) {
        st->prev->next = st->next;
    } else {
        srv->streams = st->next;
    }
    if (st->next) {
        st->next->prev = st->prev;
    }
}

static void stream_end(struct http_server_stream *st)
{
    stream_unlink(st->srv, st);
    evhttp_send_reply_end(st->req);
    event_free(st->ev);
    free(st);
}

/*
 * Sends the next chunk, "chunk-<i>\n", or ends the reply. As with /delay, a client that went away
 * leaves the request detached from its connection: chunks then go nowhere and
 * evhttp_send_reply_end frees it.
 */
static void stream_tick(evutil_socket_t fd, short what, void *arg)
{
    struct http_server_stream *st = arg;
    struct evbuffer *b;
    long ms;
    struct timeval tv;

    if (st->sent == st->n) {
        stream_end(st);
        return;
    }
    b = evbuffer_new();
    evbuffer_add_printf(b, "chunk-%ld\n", st->sent);
    evhttp_send_reply_chunk(st->req, b);
    evbuffer_free(b);
    st->sent++;
    st->srv->n_chunks++;
    ms = st->sent == st->stall ? st->stall_ms : st->gap_ms;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(st->ev, &tv);
}

static void route_stream(struct http_server *srv, struct evhttp_request *req)
{
    struct http_server_stream *st = calloc(1, sizeof(*st));
    int status = (int)query_long(req, "status", 200);
    struct timeval tv;

    st->srv = srv;
    st->req = req;
    st->n = query_long(req, "n", 5);
    st->gap_ms = query_long(req, "gap", 50);
    st->stall = query_long(req, "stall", 0);
    st->stall_ms = query_long(req, "stall_ms", 2000);
    st->ev = evtimer_new(srv->base, stream_tick, st);
    st->next = srv->streams;
    if (srv->streams) {
        srv->streams->prev = st;
    }
    srv->streams = st;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    if (status == 429) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "3");
    }
    evhttp_send_reply_start(req, status, NULL);
    tv.tv_sec = st->gap_ms / 1000;
    tv.tv_usec = (st->gap_ms % 1000) * 1000;
    evtimer_add(st->ev, &tv);
}

/* Closes the connection without a byte of answer; evhttp frees the request with it. */
static void route_close(struct http_server *srv, struct evhttp_request *req)
{
    srv->n_closed++;
    evhttp_connection_free(evhttp_request_get_connection(req));
}

static const struct {
    const char *path;
    void (*handler)(struct http_server *srv, struct evhttp_request *req);
} routes[] = {
    {"/echo", route_echo},   {"/ok", route_ok},           {"/redirect", route_redirect},
    {"/delay", route_delay}, {"/503", route_503},         {"/huge", route_huge},
    {"/close", route_close}, {"/headers", route_headers}, {"/stream", route_stream},
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct http_server *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    srv->n_reqs++;
    for (size_t i = 0; path && i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0) {
            routes[i].handler(srv, req);
            return;
        }
    }
    reply_text(req, 404, "text/plain", "not found");
}

/* Called once per accepted connection: the count the reuse tests read. */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct http_server *srv = arg;

    srv->n_conns++;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/* Its own listener rather than evhttp_bind_socket: a backlog that takes 200 simultaneous connects.
 */
int http_server_start(struct http_server *srv, struct event_base *base)
{
    struct sockaddr_in sin = {0};
    socklen_t slen = sizeof(sin);
    struct evconnlistener *l;

    memset(srv, 0, sizeof(*srv));
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
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PATCH);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
    snprintf(srv->url, sizeof(srv->url), "http://127.0.0.1:%d", srv->port);
    return 0;
}

void http_server_stop(struct http_server *srv)
{
    while (srv->delayed) {
        struct http_server_delayed *d = srv->delayed;

        event_del(d->ev);
        delayed_fire(-1, 0, d);
    }
    while (srv->streams) {
        stream_end(srv->streams);
    }
    if (srv->http) {
        evhttp_free(srv->http);
        srv->http = NULL;
    }
}

int http_server_closed_port(int *fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);

    *fd = socket(AF_INET, SOCK_STREAM, 0);
    if (*fd < 0) {
        return -1;
    }
    if (bind(*fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(*fd, (struct sockaddr *)&sin, &slen) != 0) {
        close(*fd);
        *fd = -1;
        return -1;
    }
    return ntohs(sin.sin_port);
}
