/*
 * api/health.c — liveness, readiness (Redis answers a PING) and Prometheus metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api/internal.h"
#include "core/keys.h"

void api_health_live(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    api_reply_json(a, req, 200, o);
}

static void on_ping(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_error(c->api, c->req, CORE_EUNAVAILABLE, NULL, "store_unavailable",
                        "Redis is not reachable");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ready");
        api_reply_json(c->api, c->req, 200, o);
    }
    api_ctx_free(c);
}

void api_health_ready(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    struct api_ctx *c = api_ctx_new(a, req, NULL);
    const char *argv[] = {"PING"};

    if (c == NULL || store_command(a->store, on_ping, c, 1, argv, NULL) < 0) {
        api_reply_error(a, req, CORE_EUNAVAILABLE, NULL, "store_unavailable",
                        "Redis is not reachable");
        api_ctx_free(c);
    }
}

/* Gauges read from Redis for /metrics: the ready queues, delayed retries and leased tasks. */
static const struct {
    const char *cmd;
    const char *key;
    const char *line; /* printf format taking the value */
} gauges[] = {
    {"LLEN", KEY_QUEUE_0, "sluice_queue_ready{priority=\"interactive\"} %lld\n"},
    {"LLEN", KEY_QUEUE_1, "sluice_queue_ready{priority=\"normal\"} %lld\n"},
    {"LLEN", KEY_QUEUE_2, "sluice_queue_ready{priority=\"batch\"} %lld\n"},
    {"ZCARD", KEY_DELAYED, "sluice_queue_delayed %lld\n"},
    {"ZCARD", KEY_LEASES, "sluice_tasks_leased %lld\n"},
};
#define N_GAUGES (sizeof(gauges) / sizeof(gauges[0]))

static void send_metrics(struct api_ctx *c, bool ok)
{
    struct api *a = c->api;
    struct evbuffer *out = evhttp_request_get_output_buffer(c->req);

    evbuffer_add_printf(out, "# TYPE sluice_http_responses_total counter\n");
    for (int i = 1; i < 6; i++) {
        evbuffer_add_printf(out, "sluice_http_responses_total{class=\"%dxx\"} %llu\n", i,
                            (unsigned long long)a->responses[i]);
    }
    evbuffer_add_printf(out, "# TYPE sluice_tasks_accepted_total counter\n");
    evbuffer_add_printf(out, "sluice_tasks_accepted_total %llu\n",
                        (unsigned long long)a->tasks_accepted);
    evbuffer_add_printf(out, "# TYPE sluice_store_up gauge\nsluice_store_up %d\n", ok ? 1 : 0);
    if (ok) {
        for (size_t i = 0; i < N_GAUGES; i++) {
            evbuffer_add_printf(out, gauges[i].line, (long long)c->values[i]);
        }
    }
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
                      "text/plain; version=0.0.4");
    a->responses[2]++;
    evhttp_send_reply(c->req, 200, "OK", NULL);
}

/* One reply per gauge; the last one to arrive sends the page. */
static void on_gauge(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    size_t i = N_GAUGES - (size_t)c->pending;

    if (err == NULL && reply->type == REDIS_REPLY_INTEGER && i < N_GAUGES) {
        c->values[i] = reply->integer;
    } else {
        c->values[7] = -1; /* remember a failure */
    }
    if (--c->pending == 0) {
        send_metrics(c, c->values[7] == 0);
        api_ctx_free(c);
    }
}

void api_health_metrics(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    struct api_ctx *c = api_ctx_new(a, req, NULL);

    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return;
    }
    /* Redis answers in order, so the i-th reply belongs to the i-th gauge. */
    for (size_t i = 0; i < N_GAUGES; i++) {
        const char *argv[] = {gauges[i].cmd, gauges[i].key};
        if (store_command(a->store, on_gauge, c, 2, argv, NULL) < 0) {
            c->values[7] = -1;
            break;
        }
        c->pending++;
    }
    /* If only some were sent, their callbacks finish the page, marked failed by values[7]. */
    if (c->pending == 0) {
        send_metrics(c, false);
        api_ctx_free(c);
    }
}
