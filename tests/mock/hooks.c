/*
 * tests/mock/hooks.c — provider webhooks: a job submitted with a webhook URL (Replicate's
 * `webhook`, fal's `fal_webhook`) POSTs to it once, a little after the job ends. What is shared
 * lives here: the loopback-only URL check, the timer, the POST (Host, Content-Type, a 10 s
 * timeout) and the bookkeeping; each dialect gives only its body and its signature headers (a
 * `mock_hook_write_fn`). A webhook is sent once and never retried; the receiver's answer is
 * ignored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "tests/mock/mock.h"

/* A webhook waiting for its job's end. */
struct mock_hook {
    struct mock_hook *next;
    struct mock *m;
    struct event *timer;
    enum job_kind kind;
    mock_hook_write_fn write_body;
    char job_id[48];
    char origin[300]; /* of the submit request, for the URLs in the body */
    char host[64];
    int port;
    char *path; /* path and query of the webhook URL */
};

static void hook_free(struct mock_hook *h)
{
    if (h->timer != NULL) {
        event_free(h->timer);
    }
    free(h->path);
    free(h);
}

void mock_hooks_cleanup(struct mock *m, enum job_kind kind)
{
    struct mock_hook **link = &m->hooks;
    while (*link != NULL) {
        struct mock_hook *h = *link;
        if (h->kind == kind) {
            *link = h->next;
            hook_free(h);
        } else {
            link = &h->next;
        }
    }
}

/* The receiver's answer: nothing to do (a webhook is sent once; the connection frees itself). */
static void hook_done(struct evhttp_request *req, void *arg)
{
    (void)req;
    (void)arg;
}

/*
 * The job ended: the dialect writes the body and its signature headers, the POST goes out, and
 * the hook is forgotten whatever happened. Nothing is sent when the job is gone (swept) or the
 * dialect declines.
 */
static void hook_fire(evutil_socket_t fd, short what, void *arg)
{
    struct mock_hook *h = arg;
    struct mock *m = h->m;
    struct job *j = jobs_find(m, h->kind, h->job_id, strlen(h->job_id));
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req = NULL;
    struct evkeyvalq *hd;
    struct evbuffer *body;
    char host[80];
    (void)fd;
    (void)what;

    for (struct mock_hook **link = &m->hooks; *link != NULL; link = &(*link)->next) {
        if (*link == h) {
            *link = h->next;
            break;
        }
    }
    if (j == NULL ||
        (conn = evhttp_connection_base_new(m->base, NULL, h->host, (ev_uint16_t)h->port)) == NULL ||
        (req = evhttp_request_new(hook_done, NULL)) == NULL) {
        goto out;
    }
    hd = evhttp_request_get_output_headers(req);
    body = evhttp_request_get_output_buffer(req);
    snprintf(host, sizeof(host), "%s:%d", h->host, h->port);
    evhttp_add_header(hd, "Host", host);
    evhttp_add_header(hd, "Content-Type", "application/json");
    if (h->write_body(m, j, h->origin, body, hd) != 0 || evbuffer_get_length(body) == 0) {
        goto out;
    }
    evhttp_connection_set_timeout(conn, 10);
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, h->path) == 0) {
        evhttp_connection_free_on_completion(conn);
        conn = NULL;
        m->webhooks_sent++;
    }
    req = NULL; /* evhttp_make_request owns it, sent or not */
out:
    if (req != NULL) {
        evhttp_request_free(req);
    }
    if (conn != NULL) {
        evhttp_connection_free(conn);
    }
    hook_free(h);
}

int mock_hook_add(struct exchange *x, const struct job *j, const char *url,
                  mock_hook_write_fn write_body)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    struct mock_hook *h = NULL;
    int rc = 1;

    if (scheme == NULL || strcmp(scheme, "http") != 0 || host == NULL ||
        (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 &&
         strcmp(host, "::1") != 0) ||
        strlen(host) >= sizeof(h->host)) {
        goto out;
    }
    rc = -1;
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        goto out;
    }
    size_t n = (path && path[0] ? strlen(path) : 1) + (query ? strlen(query) + 1 : 0) + 1;
    if ((h->path = malloc(n)) == NULL) {
        goto out;
    }
    snprintf(h->path, n, "%s%s%s", path && path[0] ? path : "/", query ? "?" : "",
             query ? query : "");
    snprintf(h->host, sizeof(h->host), "%s", host);
    h->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    h->m = x->m;
    h->kind = j->kind;
    h->write_body = write_body;
    snprintf(h->job_id, sizeof(h->job_id), "%s", j->id);
    mock_origin(x, h->origin, sizeof(h->origin));
    if ((h->timer = evtimer_new(x->m->base, hook_fire, h)) == NULL) {
        goto out;
    }
    /* a little after the end, so the job reads as ended when the body is written */
    long ms = j->duration_ms + 20;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_add(h->timer, &tv) < 0) {
        goto out;
    }
    h->next = x->m->hooks;
    x->m->hooks = h;
    h = NULL;
    rc = 0;
out:
    if (h != NULL) {
        hook_free(h);
    }
    if (u != NULL) {
        evhttp_uri_free(u);
    }
    return rc;
}
