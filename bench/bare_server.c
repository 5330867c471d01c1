/*
 * bench/bare_server.c — the ceiling for sluice's accept path: a bare libevent evhttp server that
 * answers every request with 202 and a fixed ~300-byte task-shaped JSON body.
 *
 *   bare_server --listen HOST:PORT
 *
 * It does what evhttp has to do for any request (parse, read the body, write headers and body)
 * and nothing sluice does on top (auth, JSON parsing, validation, ids, Redis). bench/run compares
 * the accept rate of `sluice api` with this one on the same machine and the same wrk load.
 * Prints "listening on HOST:PORT" on stdout once the socket is bound; SIGINT/SIGTERM stop it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define BARE_MAX_BODY (1024 * 1024)
#define BARE_MAX_HEADERS (16 * 1024)
#define BARE_TIMEOUT_S 30

/* A queued task as `POST /v1/tasks` returns it (same fields, fixed values). */
static const char task_body[] =
    "{\"id\":\"task_abcdefghijklmnopqrstuvwxyz\",\"object\":\"task\",\"kind\":\"chat\","
    "\"model\":\"bench-chat\",\"status\":\"queued\",\"priority\":\"normal\","
    "\"created_at\":1700000000,\"started_at\":null,\"completed_at\":null,"
    "\"expires_at\":null,\"attempts\":0,\"max_attempts\":3,\"provider\":null,"
    "\"result\":null,\"error\":null,\"usage\":null,\"cost\":null,\"metadata\":null}";

/* All of the process's state. */
struct bare {
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint;
    struct event *sigterm;
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    (void)arg;

    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Location", "/v1/tasks/task_abcdefghijklmnopqrstuvwxyz");
    evbuffer_add_reference(out, task_body, sizeof(task_body) - 1, NULL, NULL);
    evhttp_send_reply(req, 202, "Accepted", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct bare *b = arg;
    (void)sig;
    (void)what;
    event_base_loopexit(b->base, NULL);
}

/* Splits "HOST:PORT" (the last colon separates the port). Returns 0, or -1 on a bad address. */
static int parse_listen(const char *s, char *host, size_t host_size, unsigned short *port)
{
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long p;

    if (colon == NULL || colon == s || (size_t)(colon - s) >= host_size) {
        return -1;
    }
    p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 1 || p > 65535) {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (unsigned short)p;
    return 0;
}

int main(int argc, char **argv)
{
    struct bare b = {0};
    char host[256];
    unsigned short port = 0;
    int rc = 1;

    if (argc != 3 || strcmp(argv[1], "--listen") != 0 ||
        parse_listen(argv[2], host, sizeof(host), &port) < 0) {
        fprintf(stderr, "usage: bare_server --listen HOST:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    {
        /* the loop configured as sluice's (cmd/sluice.c: epoll's changelist), so the ratio
         * against this baseline measures sluice's own work, not a loop setting */
        struct event_config *ec = event_config_new();
        if (ec != NULL) {
            event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
            b.base = event_base_new_with_config(ec);
            event_config_free(ec);
        }
    }
    b.http = b.base ? evhttp_new(b.base) : NULL;
    if (b.http == NULL) {
        fprintf(stderr, "bare_server: cannot create the event loop\n");
        goto out;
    }
    /* evhttp's defaults are unbounded; the same kind of caps sluice sets. */
    evhttp_set_max_body_size(b.http, BARE_MAX_BODY);
    evhttp_set_max_headers_size(b.http, BARE_MAX_HEADERS);
    evhttp_set_timeout(b.http, BARE_TIMEOUT_S);
    evhttp_set_allowed_methods(b.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(b.http, on_request, &b);
    if (evhttp_bind_socket(b.http, host, port) < 0) {
        fprintf(stderr, "bare_server: cannot listen on %s:%u\n", host, port);
        goto out;
    }
    b.sigint = evsignal_new(b.base, SIGINT, on_signal, &b);
    b.sigterm = evsignal_new(b.base, SIGTERM, on_signal, &b);
    if (b.sigint == NULL || b.sigterm == NULL || event_add(b.sigint, NULL) < 0 ||
        event_add(b.sigterm, NULL) < 0) {
        fprintf(stderr, "bare_server: cannot install signal handlers\n");
        goto out;
    }
    printf("listening on %s:%u\n", host, port);
    fflush(stdout);
    rc = event_base_dispatch(b.base) < 0 ? 1 : 0;
out:
    if (b.sigint) {
        event_free(b.sigint);
    }
    if (b.sigterm) {
        event_free(b.sigterm);
    }
    if (b.http) {
        evhttp_free(b.http);
    }
    if (b.base) {
        event_base_free(b.base);
    }
    return rc;
}
