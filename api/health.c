/*
 * api/health.c — liveness, readiness (Redis answers a PING) and Prometheus metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api/guard.h"
#include "api/internal.h"
#include "core/task.h"
#include "core/txn_task.h"
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

/* The config's provider name for deployment index d of alias (labels only). */
static const char *dep_provider(const struct config *cfg, const char *alias, long d)
{
    const struct config_model *m = config_model_find(cfg, alias);
    return (m && d >= 0 && (size_t)d < m->n_deployments) ? m->deployments[d].provider->name : "";
}

/* Prometheus families, each written as one group after its TYPE line. */
enum family {
    F_ACCEPTED,
    F_TASKS,
    F_READY,
    F_DEPTH,
    F_CALLS,
    F_LATENCY,
    F_429,
    F_WEBHOOKS,
    F_NOROUTING,
    F_USAGE,
    F_CACHE,
    F_SPEND,
    F_COUNT
};

/* Every family on the page has a HELP line: `promtool check metrics` lints one without it. */
static const struct {
    const char *name;
    const char *type;
    const char *help;
} families[F_COUNT] = {
    [F_ACCEPTED] = {"sluice_tasks_accepted_total", "counter", "Tasks accepted by submits."},
    [F_TASKS] = {"sluice_tasks", "gauge", "Tasks held in Redis, by status."},
    [F_READY] = {"sluice_queue_ready", "gauge",
                 "Tasks ready to be claimed, by priority, over every model."},
    [F_DEPTH] = {"sluice_queue_depth", "gauge",
                 "Tasks ready to be claimed, by model and priority."},
    [F_CALLS] = {"sluice_upstream_calls_total", "counter",
                 "Upstream calls finished, by model, deployment, provider and outcome."},
    [F_LATENCY] = {"sluice_upstream_latency_seconds", "histogram",
                   "Upstream call latency, by model and deployment."},
    [F_429] = {"sluice_provider_429_total", "counter",
               "Upstream answers 429 (rate limited), by model and deployment."},
    [F_WEBHOOKS] = {"sluice_webhook_attempts_total", "counter",
                    "Webhook delivery attempts, by outcome."},
    [F_NOROUTING] = {"sluice_routing_missing_total", "counter",
                     "Claims that found an alias's routing missing from Redis, by model."},
    [F_USAGE] = {"sluice_tenant_storage_bytes", "gauge",
                 "Bytes a tenant holds, by what holds them (tasks, artifacts, files)."},
    [F_CACHE] = {"sluice_cache_requests_total", "counter",
                 "Response cache lookups of submits, by outcome (hit, miss, join, bypass)."},
    [F_SPEND] = {"sluice_spend_usd_total", "counter",
                 "Real cost of finished tasks in USD, by tenant and model."},
};

/* A family's HELP and TYPE lines (help is a constant sentence: nothing in it needs escaping). */
static void family_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define LABEL_MAX 256 /* a label value's bytes (model, tenant, provider); longer ones are cut */

/*
 * s as the inside of a Prometheus label value in buf (2 * LABEL_MAX + 1 bytes): backslash, double
 * quote and newline escaped, cut at LABEL_MAX source bytes. Returns buf.
 */
static const char *label_value(char *buf, const char *s)
{
    size_t n = 0;

    for (size_t i = 0; s[i] != '\0' && i < LABEL_MAX; i++) {
        if (s[i] == '\\' || s[i] == '"' || s[i] == '\n') {
            buf[n++] = '\\';
            buf[n++] = s[i] == '\n' ? 'n' : s[i];
        } else {
            buf[n++] = s[i];
        }
    }
    buf[n] = '\0';
    return buf;
}

/* The stats fields of a tenant's stored bytes, by what they store (sluice_tenant_storage_bytes). */
static const struct {
    const char *prefix;
    const char *kind;
} usage_fields[] = {
    {"sb|", "tasks"},
    {"ab|", "artifacts"},
    {"fb|", "files"},
};

/* Latency buckets (ms) as FINISH counts them: one bucket per call, not cumulative. */
static const long latency_le_ms[] = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
#define N_LE (sizeof(latency_le_ms) / sizeof(latency_le_ms[0]))

struct latency_series {
    char model[LABEL_MAX];
    char dep[32];
    long long counts[N_LE + 1]; /* the last is above every bound */
    long long sum_us;           /* FINISH's integer sum (latus|) */
    double sum_s;               /* the older float sum in seconds (latsum|), if any */
};

#define MAX_SERIES 256

struct metrics_page {
    struct evbuffer *fam[F_COUNT];
    char lv[4][2 * LABEL_MAX + 1]; /* label_value's buffers for one line */
    bool ready_seen[3];
    bool accepted_seen;
    struct latency_series lat[MAX_SERIES];
    size_t n_lat;
};

static struct latency_series *series(struct metrics_page *pg, const char *model, const char *dep)
{
    for (size_t i = 0; i < pg->n_lat; i++) {
        if (strcmp(pg->lat[i].model, model) == 0 && strcmp(pg->lat[i].dep, dep) == 0) {
            return &pg->lat[i];
        }
    }
    if (pg->n_lat == MAX_SERIES) {
        return NULL;
    }
    if (strlen(model) >= sizeof(pg->lat[0].model)) {
        return NULL;
    }
    snprintf(pg->lat[pg->n_lat].model, sizeof(pg->lat[0].model), "%s", model);
    snprintf(pg->lat[pg->n_lat].dep, sizeof(pg->lat[0].dep), "%s", dep);
    return &pg->lat[pg->n_lat++];
}

/*
 * One field of the stats hash, "kind|a|b|c", into its family. The hash is written only by the
 * scripts, so the names are known; anything else (per-tenant counters) is skipped.
 */
/* A tenant's stored bytes (a usage_fields counter): its gauge line. False for other names. */
static bool usage_line(struct metrics_page *pg, const char *name, const char *value)
{
    for (size_t i = 0; i < sizeof(usage_fields) / sizeof(usage_fields[0]); i++) {
        size_t n = strlen(usage_fields[i].prefix);
        if (strncmp(name, usage_fields[i].prefix, n) == 0 && name[n] != '\0') {
            evbuffer_add_printf(pg->fam[F_USAGE],
                                "sluice_tenant_storage_bytes{tenant=\"%s\",kind=\"%s\"} %s\n",
                                label_value(pg->lv[0], name + n), usage_fields[i].kind, value);
            return true;
        }
    }
    return false;
}

static void stat_line(struct metrics_page *pg, const struct config *cfg, const char *name,
                      const char *value)
{
    char a[LABEL_MAX], b[32], c[32];
    const char *rest;
    char(*lv)[2 * LABEL_MAX + 1] = pg->lv;

    if (strcmp(name, "accepted") == 0) {
        evbuffer_add_printf(pg->fam[F_ACCEPTED], "sluice_tasks_accepted_total %s\n", value);
        pg->accepted_seen = true;
    } else if (sscanf(name, "status|%31s", c) == 1) {
        evbuffer_add_printf(pg->fam[F_TASKS], "sluice_tasks{status=\"%s\"} %s\n",
                            label_value(lv[0], c), value);
    } else if (sscanf(name, "depthp|%31s", c) == 1) {
        int p = atoi(c);
        p = p >= 0 && p < 3 ? p : 1;
        pg->ready_seen[p] = true;
        evbuffer_add_printf(pg->fam[F_READY], "sluice_queue_ready{priority=\"%s\"} %s\n",
                            task_priority_name(p), value);
    } else if (strncmp(name, "depth|", 6) == 0 && (rest = strrchr(name, '|')) != NULL) {
        int p = atoi(rest + 1);
        snprintf(a, sizeof(a), "%.*s", (int)(rest - name - 6), name + 6);
        evbuffer_add_printf(pg->fam[F_DEPTH],
                            "sluice_queue_depth{model=\"%s\",priority=\"%s\"} %s\n",
                            label_value(lv[0], a), task_priority_name(p), value);
    } else if (sscanf(name, "calls|%255[^|]|%31[^|]|%31s", a, b, c) == 3) {
        evbuffer_add_printf(pg->fam[F_CALLS],
                            "sluice_upstream_calls_total{model=\"%s\",deployment=\"%s\",provider="
                            "\"%s\",status=\"%s\"} %s\n",
                            label_value(lv[0], a), label_value(lv[1], b),
                            label_value(lv[2], dep_provider(cfg, a, atol(b))),
                            label_value(lv[3], c), value);
    } else if (sscanf(name, "lat|%255[^|]|%31[^|]|%31s", a, b, c) == 3) {
        struct latency_series *ls = series(pg, a, b);
        size_t i = N_LE;
        for (size_t k = 0; k < N_LE; k++) {
            if (atol(c) == latency_le_ms[k] && strcmp(c, "inf") != 0) {
                i = k;
            }
        }
        if (ls) {
            ls->counts[i] += atoll(value);
        }
    } else if (sscanf(name, "latus|%255[^|]|%31s", a, b) == 2) {
        struct latency_series *ls = series(pg, a, b);
        if (ls) {
            ls->sum_us += strtoll(value, NULL, 10);
        }
    } else if (sscanf(name, "latsum|%255[^|]|%31s", a, b) == 2) {
        /* the float seconds FINISH kept before it counted integer µs (latus|): still summed, so
         * an upgraded deployment's _sum carries on */
        struct latency_series *ls = series(pg, a, b);
        if (ls) {
            ls->sum_s += atof(value);
        }
    } else if (sscanf(name, "r429|%255[^|]|%31s", a, b) == 2) {
        evbuffer_add_printf(pg->fam[F_429],
                            "sluice_provider_429_total{model=\"%s\",deployment=\"%s\"} %s\n",
                            label_value(lv[0], a), label_value(lv[1], b), value);
    } else if (usage_line(pg, name, value)) {
        /* written by usage_line */
    } else if (strncmp(name, "norouting|", 10) == 0 && name[10] != '\0') {
        evbuffer_add_printf(pg->fam[F_NOROUTING], "sluice_routing_missing_total{model=\"%s\"} %s\n",
                            label_value(lv[0], name + 10), value);
    } else if (sscanf(name, "cache|%31s", c) == 1) {
        /* SUBMIT's response-cache lookups: hit, miss (it leads), join (it waits for the
         * leader: single-flight), bypass (Cache-Control: no-cache) */
        evbuffer_add_printf(pg->fam[F_CACHE], "sluice_cache_requests_total{outcome=\"%s\"} %s\n",
                            label_value(lv[0], c), value);
    } else if (strncmp(name, "spend|", 6) == 0 && (rest = strchr(name + 6, '|')) != NULL) {
        /* the real cost of finished tasks, per tenant and alias (the rest of the name, which
         * may hold spaces), counted in nano-USD */
        snprintf(a, sizeof(a), "%.*s", (int)(rest - name - 6), name + 6);
        evbuffer_add_printf(pg->fam[F_SPEND],
                            "sluice_spend_usd_total{tenant=\"%s\",model=\"%s\"} %.9f\n",
                            label_value(lv[0], a), label_value(lv[1], rest + 1),
                            (double)strtoll(value, NULL, 10) / 1e9);
    } else if (sscanf(name, "webhooks|%31s", c) == 1) {
        evbuffer_add_printf(pg->fam[F_WEBHOOKS],
                            "sluice_webhook_attempts_total{outcome=\"%s\"} %s\n",
                            label_value(lv[0], c), value);
    }
}

/* Cumulative Prometheus buckets (le in seconds), _sum and _count for each series. */
static void latency_lines(struct metrics_page *pg)
{
    for (size_t i = 0; i < pg->n_lat; i++) {
        const struct latency_series *ls = &pg->lat[i];
        const char *model = label_value(pg->lv[0], ls->model),
                   *dep = label_value(pg->lv[1], ls->dep);
        long long cum = 0;
        for (size_t k = 0; k <= N_LE; k++) {
            cum += ls->counts[k];
            if (k < N_LE) {
                evbuffer_add_printf(pg->fam[F_LATENCY],
                                    "sluice_upstream_latency_seconds_bucket{model=\"%s\","
                                    "deployment=\"%s\",le=\"%g\"} %lld\n",
                                    model, dep, latency_le_ms[k] / 1000.0, cum);
            }
        }
        evbuffer_add_printf(pg->fam[F_LATENCY],
                            "sluice_upstream_latency_seconds_bucket{model=\"%s\",deployment=\"%s\","
                            "le=\"+Inf\"} %lld\n",
                            model, dep, cum);
        evbuffer_add_printf(pg->fam[F_LATENCY],
                            "sluice_upstream_latency_seconds_sum{model=\"%s\",deployment=\"%s\"} "
                            "%.6f\n",
                            model, dep, ls->sum_s + (double)ls->sum_us / 1e6);
        evbuffer_add_printf(pg->fam[F_LATENCY],
                            "sluice_upstream_latency_seconds_count{model=\"%s\",deployment=\"%s\"} "
                            "%lld\n",
                            model, dep, cum);
    }
}

/* True when deployment d of alias has a request (or token) limit, so its bucket means something. */
static bool dep_limited(const struct config *cfg, const char *alias, long d, bool requests)
{
    const struct config_model *m = config_model_find(cfg, alias);
    if (m == NULL || d < 0 || (size_t)d >= m->n_deployments) {
        return false;
    }
    return requests ? m->deployments[d].rpm > 0 : m->deployments[d].tpm > 0;
}

static void deployment_gauges(struct evbuffer *out, const struct config *cfg,
                              const struct txn_metrics *m);
static void budget_gauges(struct evbuffer *out, const struct txn_metrics *m);

/* The page: this process's own counters, then what METRICS read from Redis (m; NULL when Redis
 * could not answer: sluice_store_up 0 and nothing of Redis's). */
static void metrics_page(struct api_ctx *c, const struct txn_metrics *m)
{
    struct api *a = c->api;
    struct evbuffer *out = evhttp_request_get_output_buffer(c->req);
    bool ok = m != NULL;

    family_head(out, "sluice_http_responses_total", "counter",
                "HTTP responses of this api process, by status class.");
    for (int i = 1; i < 6; i++) {
        evbuffer_add_printf(out, "sluice_http_responses_total{class=\"%dxx\"} %llu\n", i,
                            (unsigned long long)a->responses[i]);
    }
    family_head(out, "sluice_api_waiting_requests", "gauge",
                "Synchronous requests of this api process waiting for their task.");
    evbuffer_add_printf(out, "sluice_api_waiting_requests %zu\n", a->n_waiters);
    api_guard_metrics(a, out);
    family_head(out, "sluice_store_up", "gauge", "1 when Redis answered this page's read, else 0.");
    evbuffer_add_printf(out, "sluice_store_up %d\n", ok ? 1 : 0);
    if (ok) {
        struct metrics_page *pg = calloc(1, sizeof(*pg));
        family_head(out, "sluice_queue_delayed", "gauge", "Retries waiting for their backoff.");
        evbuffer_add_printf(out, "sluice_queue_delayed %lld\n", (long long)m->delayed);
        family_head(out, "sluice_tasks_leased", "gauge", "Tasks claimed by a worker now.");
        evbuffer_add_printf(out, "sluice_tasks_leased %lld\n", (long long)m->leased);
        family_head(out, "sluice_tasks_parked", "gauge",
                    "Long-running tasks waiting for their next upstream poll.");
        evbuffer_add_printf(out, "sluice_tasks_parked %lld\n", (long long)m->parked);
        for (int f = 0; pg && f < F_COUNT; f++) {
            pg->fam[f] = evbuffer_new();
        }
        for (size_t i = 0; pg && i < m->n_stats; i++) {
            const char *name, *value;
            txn_metrics_stat(m, i, &name, &value);
            stat_line(pg, a->cfg, name, value);
        }
        if (pg) {
            if (!pg->accepted_seen) {
                evbuffer_add_printf(pg->fam[F_ACCEPTED], "sluice_tasks_accepted_total 0\n");
            }
            for (int p = 0; p < 3; p++) {
                if (!pg->ready_seen[p]) {
                    evbuffer_add_printf(pg->fam[F_READY], "sluice_queue_ready{priority=\"%s\"} 0\n",
                                        task_priority_name(p));
                }
            }
            latency_lines(pg);
            for (int f = 0; f < F_COUNT; f++) {
                if (evbuffer_get_length(pg->fam[f]) > 0) {
                    family_head(out, families[f].name, families[f].type, families[f].help);
                    evbuffer_add_buffer(out, pg->fam[f]);
                }
                evbuffer_free(pg->fam[f]);
            }
            free(pg);
        }
        deployment_gauges(out, a->cfg, m);
        budget_gauges(out, m);
    }
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
                      "text/plain; version=0.0.4");
    a->responses[2]++;
    evhttp_send_reply(c->req, 200, "OK", NULL);
    api_ctx_free(c);
}

static void on_metrics(const struct txn_metrics *m, const struct core_err *err, void *arg)
{
    metrics_page(arg, err == NULL ? m : NULL);
}

/* Each budget's current windows: its cap, what it used (real costs and the estimates of tasks in
 * flight) and what remains, in USD. */
static void budget_gauges(struct evbuffer *out, const struct txn_metrics *m)
{
    static const char *const names[] = {"sluice_budget_max_usd", "sluice_budget_spent_usd",
                                        "sluice_budget_remaining_usd"};
    static const char *const helps[] = {
        "A budget window's cap in USD, by subject (t:tenant or k:key id) and window.",
        "USD a budget window has used: real costs and the estimates of tasks in flight.",
        "USD left in a budget window (0 when spent)."};
    char subject[2 * LABEL_MAX + 1], window[2 * LABEL_MAX + 1];

    for (size_t g = 0; g < sizeof(names) / sizeof(names[0]); g++) {
        family_head(out, names[g], "gauge", helps[g]);
        for (size_t i = 0; i < m->n_budgets; i++) {
            struct txn_budget_state b;
            int64_t v;
            txn_metrics_budget(m, i, &b);
            v = g == 0 ? b.max_nano : g == 1 ? b.used_nano : b.max_nano - b.used_nano;
            evbuffer_add_printf(out, "%s{subject=\"%s\",window=\"%s\"} %.9f\n", names[g],
                                label_value(subject, b.subject), label_value(window, b.window),
                                (double)(v > 0 ? v : 0) / 1e9);
        }
    }
}

/* One gauge family per deployment field, each grouped under its TYPE line. */
static void deployment_gauges(struct evbuffer *out, const struct config *cfg,
                              const struct txn_metrics *m)
{
    static const char *const names[] = {
        "sluice_deployment_budget_requests", "sluice_deployment_budget_tokens",
        "sluice_deployment_in_flight",       "sluice_deployment_breaker_state",
        "sluice_deployment_paused",          "sluice_deployment_latency_ewma_seconds",
    };
    static const char *const helps[] = {
        "Requests left in a deployment's request bucket (deployments with an rpm).",
        "Tokens left in a deployment's token bucket (deployments with a tpm).",
        "Upstream calls in flight on a deployment.",
        "A deployment's circuit breaker: 0 closed, 1 half-open, 2 open.",
        "1 while a provider's pause (after a 429 or an outage) holds a deployment.",
        "A deployment's upstream latency, exponentially weighted moving average.",
    };
    char alias[2 * LABEL_MAX + 1], provider[2 * LABEL_MAX + 1];

    for (size_t g = 0; g < sizeof(names) / sizeof(names[0]); g++) {
        family_head(out, names[g], "gauge", helps[g]);
        for (size_t i = 0; i < m->n_deps; i++) {
            struct txn_dep_state d;
            const char *budget;
            char labels[4 * LABEL_MAX + 128];
            txn_metrics_dep(m, i, &d);
            budget = g == 0 ? d.requests : d.tokens;
            snprintf(labels, sizeof(labels), "{model=\"%s\",deployment=\"%ld\",provider=\"%s\"}",
                     label_value(alias, d.alias), d.index,
                     label_value(provider, dep_provider(cfg, d.alias, d.index)));
            switch (g) {
            case 0:
            case 1:
                if (budget[0] && dep_limited(cfg, d.alias, d.index, g == 0)) {
                    evbuffer_add_printf(out, "%s%s %s\n", names[g], labels, budget);
                }
                break;
            case 2:
                evbuffer_add_printf(out, "%s%s %lld\n", names[g], labels, (long long)d.in_flight);
                break;
            case 3:
                evbuffer_add_printf(out, "%s%s %d\n", names[g], labels,
                                    d.breaker == TXN_BREAKER_OPEN   ? 2
                                    : d.breaker == TXN_BREAKER_HALF ? 1
                                                                    : 0);
                break;
            case 4:
                evbuffer_add_printf(out, "%s%s %d\n", names[g], labels,
                                    d.paused_until_ms > util_now_ms() ? 1 : 0);
                break;
            default:
                if (d.has_latency) {
                    evbuffer_add_printf(out, "%s%s %.4f\n", names[g], labels, d.latency_ms / 1000);
                }
            }
        }
    }
}

void api_metrics_serve(struct api *a, struct evhttp_request *req)
{
    struct api_ctx *c = api_ctx_new(a, req, NULL);

    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return;
    }
    txn_metrics_begin(&a->txn);
    for (size_t i = 0; i < a->cfg->n_models; i++) {
        txn_metrics_add(&a->txn, a->cfg->models[i].alias, a->cfg->models[i].n_deployments);
    }
    if (txn_metrics(a->store, &a->txn, on_metrics, c) < 0) {
        metrics_page(c, NULL);
    }
}
