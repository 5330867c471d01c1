/*
 * tests/unit/http_server.h — the HTTP server the transport's unit tests talk to.
 *
 * An evhttp server on 127.0.0.1 (port 0) that runs on the event_base of the client under test, so
 * a test is one process, one loop, no threads. Its routes, one table in http_server.c:
 *   /echo                      200, the request as JSON: {"method", "uri", "body", "headers":
 *                              {lower-case name: value}}, with X-Test: yes and two X-Multi
 *   /ok                        200 "ok"
 *   /redirect                  302 "moved", Location: /ok on this server
 *   /delay?ms=N                200 {"delayed":true} after N ms (default 100)
 *   /503                       503 with Retry-After: 7
 *   /huge?bytes=N[&chunked=1][&status=S]
 *                              N bytes of 'x' (default 1 MiB), with a Content-Length or chunked
 *   /headers?n=N               one 10 KB header X-Big, then N headers X-H-000.. (default 150)
 *   /close                     closes the connection without a byte of answer
 *   /stream?n=N&gap=MS[&status=S][&stall=K&stall_ms=T]
 *                              a chunked reply with status S (a 429 also carries Retry-After: 3)
 *                              whose N chunks "chunk-<i>\n" (default 5) go out MS apart (default
 *                              50), the first MS after the headers; after the K-th chunk the
 *                              pause is T ms instead (default 2000)
 *   anything else              404
 * It counts what a test needs to tell a refused call, a fresh connection, a reused one and
 * streaming from buffering apart: connections accepted, requests, connections closed unanswered,
 * stream chunks sent. It accepts a backlog of 1024 connects, headers up to 64 KiB and bodies up
 * to 1 MiB.
 *
 * The process should ignore SIGPIPE: the server may write to a connection the client just closed.
 */
#ifndef SLUICE_TESTS_UNIT_HTTP_SERVER_H
#define SLUICE_TESTS_UNIT_HTTP_SERVER_H

#include <event2/event.h>

struct http_server_delayed;
struct http_server_stream;

struct http_server {
    struct event_base *base;
    struct evhttp *http;
    int port;
    char url[64];                        /* "http://127.0.0.1:<port>", no trailing slash */
    int n_conns;                         /* connections accepted so far */
    int n_reqs;                          /* requests received so far */
    int n_closed;                        /* requests answered by closing the connection */
    int n_chunks;                        /* /stream chunks sent so far */
    struct http_server_delayed *delayed; /* replies /delay holds back */
    struct http_server_stream *streams;  /* replies /stream is sending */
};

/*
 * Starts srv (caller-owned, zeroed or not) on base (borrowed; must outlive the server). Returns 0,
 * or -1 with the server half made: http_server_stop releases it either way.
 */
int http_server_start(struct http_server *srv, struct event_base *base);

/*
 * Answers what /delay holds back, ends the streams in progress and frees the server. Clients may
 * still be connected; their connections close.
 */
void http_server_stop(struct http_server *srv);

/*
 * A loopback port that is bound but not listening, so that a connect to it is refused: returns
 * the port and puts the socket in *fd (the caller closes it), or -1 with *fd -1.
 */
int http_server_closed_port(int *fd);

#endif
