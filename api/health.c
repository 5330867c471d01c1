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
#include "core/scripts.h"
#include "core/util.h"

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

static const char *const prio_names[] = {"interactive", "normal", "batch"};

/* The config's provider name for deployment index d of alias (labels only). */
static const char *dep_provider(const struct config *cfg, const char *alias, long d)
{
    const struct config_model *m = config_model_find(cfg, alias);
    return (m && d >= 0 && (size_t)d < m->n_deployments) ? m->deployments[d].provider->name : "";
}

static long long field_ll(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : r->integer;
}

/*
 * One counter of the stats hash, "kind|a|b|c" → a Prometheus line. The hash is written only by
 * the scripts, so the names are known; anything else is skipped.
 */
static void stat_line(struct evbuffer *out, const struct config *cfg, const char *name,
                      const char *value)
{
    char a[128], b[32], c[32];
    const char *rest;

    if (strcmp(name, "accepted") == 0) {
        evbuffer_add_printf(out, "sluice_tasks_accepted_total %s\n", value);
    } else if (sscanf(name, "status|%31s", c) == 1) {
        evbuffer_add_printf(out, "sluice_tasks{status=\"%s\"} %s\n", c, value);
    } else if (sscanf(name, "depthp|%31s", c) == 1) {
        int p = atoi(c);
        evbuffer_add_printf(out, "sluice_queue_ready{priority=\"%s\"} %s\n",
                            prio_names[p >= 0 && p < 3 ? p : 1], value);
    } else if (strncmp(name, "depth|", 6) == 0 && (rest = strrchr(name, '|')) != NULL) {
        int p = atoi(rest + 1);
        snprintf(a, sizeof(a), "%.*s", (int)(rest - name - 6), name + 6);
        evbuffer_add_printf(out, "sluice_queue_depth{model=\"%s\",priority=\"%s\"} %s\n", a,
                            prio_names[p >= 0 && p < 3 ? p : 1], value);
    } else if (sscanf(name, "calls|%127[^|]|%31[^|]|%31s", a, b, c) == 3) {
        evbuffer_add_printf(out,
                            "sluice_upstream_calls_total{model=\"%s\",deployment=\"%s\",provider="
                            "\"%s\",status=\"%s\"} %s\n",
                            a, b, dep_provider(cfg, a, atol(b)), c, value);
    } else if (sscanf(name, "lat|%127[^|]|%31[^|]|%31s", a, b, c) == 3) {
        if (strcmp(c, "inf") == 0) {
            evbuffer_add_printf(out,
                                "sluice_upstream_latency_seconds_count{model=\"%s\",deployment="
                                "\"%s\"} %s\n",
                                a, b, value);
        }
        evbuffer_add_printf(
            out,
            "sluice_upstream_latency_seconds_bucket{model=\"%s\",deployment=\"%s\",le=\"%s\"} %s\n",
            a, b, strcmp(c, "inf") == 0 ? "+Inf" : c, value);
    } else if (sscanf(name, "latsum|%127[^|]|%31s", a, b) == 2) {
        evbuffer_add_printf(
            out, "sluice_upstream_latency_seconds_sum{model=\"%s\",deployment=\"%s\"} %s\n", a, b,
            value);
    } else if (sscanf(name, "r429|%127[^|]|%31s", a, b) == 2) {
        evbuffer_add_printf(out, "sluice_provider_429_total{model=\"%s\",deployment=\"%s\"} %s\n",
                            a, b, value);
    }
}

static void on_metrics(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct api *a = c->api;
    struct evbuffer *out = evhttp_request_get_output_buffer(c->req);
    bool ok = err == NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 5;

    evbuffer_add_printf(out, "# TYPE sluice_http_responses_total counter\n");
    for (int i = 1; i < 6; i++) {
        evbuffer_add_printf(out, "sluice_http_responses_total{class=\"%dxx\"} %llu\n", i,
                            (unsigned long long)a->responses[i]);
    }
    evbuffer_add_printf(out, "sluice_api_waiting_requests %zu\n", a->n_waiters);
    evbuffer_add_printf(out, "sluice_store_up %d\n", ok ? 1 : 0);
    if (ok) {
        const redisReply *stats = reply->element[0];
        const redisReply *deps = reply->element[1];
        evbuffer_add_printf(out, "sluice_queue_delayed %lld\n", reply->element[2]->integer);
        evbuffer_add_printf(out, "sluice_tasks_leased %lld\n", reply->element[3]->integer);
        evbuffer_add_printf(out, "sluice_tasks_parked %lld\n", reply->element[4]->integer);
        for (size_t i = 0; i + 1 < stats->elements; i += 2) {
            stat_line(out, a->cfg, stats->element[i]->str, stats->element[i + 1]->str);
        }
        for (size_t i = 0; i < deps->elements; i++) {
            redisReply **d = deps->element[i]->element;
            const char *br = d[5]->str;
            const char *labels_fmt = "{model=\"%s\",deployment=\"%s\",provider=\"%s\"}";
            char labels[256];
            snprintf(labels, sizeof(labels), labels_fmt, d[0]->str, d[1]->str,
                     dep_provider(a->cfg, d[0]->str, atol(d[1]->str)));
            if (d[2]->str[0]) {
                evbuffer_add_printf(out, "sluice_deployment_budget_requests%s %s\n", labels,
                                    d[2]->str);
            }
            if (d[3]->str[0]) {
                evbuffer_add_printf(out, "sluice_deployment_budget_tokens%s %s\n", labels,
                                    d[3]->str);
            }
            evbuffer_add_printf(out, "sluice_deployment_in_flight%s %lld\n", labels,
                                field_ll(d[4]));
            evbuffer_add_printf(out, "sluice_deployment_breaker_state%s %d\n", labels,
                                strcmp(br, "open") == 0   ? 2
                                : strcmp(br, "half") == 0 ? 1
                                                          : 0);
            evbuffer_add_printf(out, "sluice_deployment_paused%s %d\n", labels,
                                field_ll(d[6]) > util_now_ms() ? 1 : 0);
            if (d[7]->str[0]) {
                evbuffer_add_printf(out, "sluice_deployment_latency_ewma_seconds%s %.4f\n", labels,
                                    atof(d[7]->str) / 1000);
            }
        }
    }
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
                      "text/plain; version=0.0.4");
    a->responses[2]++;
    evhttp_send_reply(c->req, 200, "OK", NULL);
    api_ctx_free(c);
}

void api_health_metrics(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    struct api_ctx *c = api_ctx_new(a, req, NULL);
    const char **argv = calloc(2 * a->cfg->n_models + 1, sizeof(*argv));
    char(*counts)[16] = calloc(a->cfg->n_models + 1, sizeof(*counts));

    if (c == NULL || argv == NULL || counts == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        api_ctx_free(c);
        goto out;
    }
    for (size_t i = 0; i < a->cfg->n_models; i++) {
        snprintf(counts[i], sizeof(counts[i]), "%zu", a->cfg->models[i].n_deployments);
        argv[2 * i] = a->cfg->models[i].alias;
        argv[2 * i + 1] = counts[i];
    }
    if (store_script(a->store, SCRIPT_METRICS, on_metrics, c, 0, (int)(2 * a->cfg->n_models), argv,
                     NULL) < 0) {
        on_metrics(NULL, &(struct core_err){.code = CORE_EUNAVAILABLE}, c);
    }
out:
    free(argv);
    free(counts);
}
