/*
 * api/dashboard_state.c — GET /v1/dashboard/state: the one answer the dashboard polls, rendered
 * from DASH state's JSON (core/lua/dash.lua) and the config (deployments' limits, providers).
 * Unknown numbers are null, never invented; a tenant's key gets its own numbers only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dashboard.h"
#include "api/internal.h"
#include "core/task.h"
#include "core/txn_dash.h"
#include "core/util.h"

/* Counter name of the stats hash as a number (absent: def). */
static double stat_num(const cJSON *stats, const char *name, double def)
{
    double v = api_dash_num(stats, name);
    return isnan(v) ? def : v;
}

/* The totals: the admin's from the status gauges and counters; a tenant's queue gauge and its
 * running tasks (other counters are not kept per tenant: null). */
static cJSON *totals_json(const cJSON *res, const char *tenant)
{
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(res, "stats");
    cJSON *o = cJSON_CreateObject();
    char f[API_KEY_MAX];

    if (tenant == NULL) {
        api_dash_add_num(o, "queued", stat_num(stats, "status|queued", 0));
        api_dash_add_num(o, "in_progress", stat_num(stats, "status|in_progress", 0));
        api_dash_add_num(o, "delayed", api_dash_num(res, "delayed"));
        api_dash_add_num(o, "parked", api_dash_num(res, "parked"));
        api_dash_add_num(o, "accepted_total", stat_num(stats, "accepted", 0));
        api_dash_add_num(o, "completed_total", api_dash_num(stats, "done|completed"));
        api_dash_add_num(o, "failed_total", stat_num(stats, "done|failed", 0));
        return o;
    }
    util_join(f, sizeof(f), "tq|", tenant);
    api_dash_add_num(o, "queued", stat_num(stats, f, 0));
    api_dash_add_num(
        o, "in_progress",
        api_dash_num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "tenants"), 0),
                     "running"));
    api_dash_add_num(o, "delayed", NAN);
    api_dash_add_num(o, "parked", NAN);
    api_dash_add_num(o, "accepted_total", NAN);
    api_dash_add_num(o, "completed_total", NAN);
    api_dash_add_num(o, "failed_total", NAN);
    return o;
}

/* The rates between the two newest history points (the admin's counters only). */
static cJSON *rates_json(const cJSON *res, bool admin)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(res, "history");
    cJSON *p0 = NULL, *p1 = NULL, *o = cJSON_CreateObject();
    double acc = NAN, done = NAN;

    if (admin && cJSON_GetArraySize(h) == 2) {
        p0 = cJSON_Parse(cJSON_GetStringValue(cJSON_GetArrayItem(h, 0)));
        p1 = cJSON_Parse(cJSON_GetStringValue(cJSON_GetArrayItem(h, 1)));
    }
    if (p0 && p1) {
        double dt = (api_dash_num(p0, "t") - api_dash_num(p1, "t")) / 1000;
        if (dt > 0) {
            acc = (api_dash_num(p0, "a") - api_dash_num(p1, "a")) / dt;
            done = (api_dash_num(p0, "c") - api_dash_num(p1, "c")) / dt;
        }
    }
    api_dash_add_num(o, "accepted_per_s", acc);
    api_dash_add_num(o, "completed_per_s", done);
    cJSON_Delete(p0);
    cJSON_Delete(p1);
    return o;
}

/* One queue row, found or added in list by alias and priority. */
static cJSON *queue_row(cJSON *list, const char *alias, int p)
{
    const char *prio = task_priority_name(p);
    cJSON *q;

    cJSON_ArrayForEach(q, list)
    {
        if (strcmp(api_dash_str(q, "model"), alias) == 0 &&
            strcmp(api_dash_str(q, "priority"), prio) == 0) {
            return q;
        }
    }
    q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "model", alias);
    cJSON_AddStringToObject(q, "priority", prio);
    cJSON_AddNumberToObject(q, "depth", 0);
    cJSON_AddNullToObject(q, "oldest_queued_at");
    cJSON_AddItemToArray(list, q);
    return q;
}

/* The queues: the admin's depths from the depth|<alias>|<p> gauges, a tenant's from its lists;
 * the oldest waiting task of each from the script. */
static cJSON *queues_json(const cJSON *res, bool admin)
{
    cJSON *list = cJSON_CreateArray();
    const cJSON *s, *q;

    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(res, "stats"))
    {
        const char *bar = strrchr(s->string, '|');
        char alias[DASH_MODEL_MAX];
        if (!admin || strncmp(s->string, "depth|", 6) != 0 || bar == NULL || bar < s->string + 6) {
            continue;
        }
        snprintf(alias, sizeof(alias), "%.*s", (int)(bar - s->string - 6), s->string + 6);
        cJSON_SetNumberValue(cJSON_GetObjectItem(queue_row(list, alias, atoi(bar + 1)), "depth"),
                             cJSON_IsString(s) ? atof(s->valuestring) : 0);
    }
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(res, "queues"))
    {
        const char *alias = api_dash_str(q, "alias");
        cJSON *row;
        double oldest = api_dash_num(q, "oldest");
        if (alias == NULL) {
            continue;
        }
        row = queue_row(list, alias, (int)api_dash_num(q, "p"));
        if (!admin) {
            cJSON_SetNumberValue(cJSON_GetObjectItem(row, "depth"), api_dash_num(q, "depth"));
        }
        if (!isnan(oldest)) {
            cJSON_ReplaceItemInObject(row, "oldest_queued_at",
                                      cJSON_CreateNumber(floor(oldest / 1000)));
        }
    }
    return list;
}

/* The cost of this clock hour of deployment d of alias (the usage hashes count cost per alias and
 * provider: a provider that serves two deployments of the alias cannot be split, so null). */
static double dep_cost(const cJSON *res, const struct config_model *m, size_t d)
{
    const char *provider = m->deployments[d].provider->name;
    char key[2 * DASH_MODEL_MAX + 2];
    double v;

    for (size_t i = 0; i < m->n_deployments; i++) {
        if (i != d && strcmp(m->deployments[i].provider->name, provider) == 0) {
            return NAN;
        }
    }
    snprintf(key, sizeof(key), "%s|%s", m->alias, provider);
    v = api_dash_num(cJSON_GetObjectItemCaseSensitive(res, "cost_hour"), key);
    return isnan(v) ? 0 : v / 1e9;
}

/* A limit of the config (0: unlimited) as a number, or null. */
static void add_limit(cJSON *o, const char *name, long v)
{
    api_dash_add_num(o, name, v > 0 ? (double)v : NAN);
}

/* One deployment's row: its config, and its live state from Redis. */
static cJSON *deployment_json(struct api *a, const cJSON *res, const cJSON *dep, bool admin)
{
    const struct config_model *m = config_model_find(a->cfg, api_dash_str(dep, "alias"));
    double idx = api_dash_num(dep, "index"), now = api_dash_num(res, "now"),
           pause = api_dash_num(dep, "pause");
    double bro = api_dash_num(dep, "bro");
    const struct config_deployment *cd;
    const char *br = api_dash_str(dep, "br");
    char f[2 * DASH_MODEL_MAX];
    cJSON *o;
    size_t d;

    if (m == NULL || isnan(idx) || idx < 0 || (size_t)idx >= m->n_deployments) {
        return NULL;
    }
    d = (size_t)idx;
    cd = &m->deployments[d];
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", m->alias);
    cJSON_AddNumberToObject(o, "index", (double)d);
    cJSON_AddStringToObject(o, "provider", cd->provider->name);
    cJSON_AddStringToObject(o, "upstream_model", cd->model);
    api_dash_add_num(o, "in_flight",
                     isnan(api_dash_num(dep, "inf")) ? 0 : api_dash_num(dep, "inf"));
    add_limit(o, "max_concurrency", cd->max_concurrency);
    add_limit(o, "rpm", cd->rpm);
    api_dash_add_num(o, "requests_available", cd->rpm > 0 ? api_dash_num(dep, "rt") : NAN);
    add_limit(o, "tpm", cd->tpm);
    api_dash_add_num(o, "tokens_available", cd->tpm > 0 ? api_dash_num(dep, "tt") : NAN);
    cJSON_AddBoolToObject(o, "paused", !isnan(pause) && pause > now);
    api_dash_add_secs(o, "paused_until", !isnan(pause) && pause > now ? pause + 999 : NAN);
    {
        /* what paused it: FINISH keeps the provider's answer with the pause's end */
        const char *pr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(dep, "pr"));
        if (!isnan(pause) && pause > now && pr != NULL) {
            cJSON_AddStringToObject(o, "pause_reason", pr);
        } else {
            cJSON_AddNullToObject(o, "pause_reason");
        }
    }
    br = br == NULL ? "closed" : strcmp(br, "half") == 0 ? "half_open" : br;
    cJSON_AddStringToObject(o, "breaker", br);
    api_dash_add_secs(
        o, "breaker_until",
        strcmp(br, "open") == 0 && !isnan(bro) ? bro + (double)a->cfg->breaker.open_ms + 999 : NAN);
    api_dash_add_num(o, "latency_ewma_ms", api_dash_num(dep, "lat"));
    snprintf(f, sizeof(f), "r429|%s|%zu", m->alias, d);
    api_dash_add_num(o, "rate_limited_total",
                     stat_num(cJSON_GetObjectItemCaseSensitive(res, "stats"), f, 0));
    api_dash_add_num(o, "cost_last_hour_usd", admin ? dep_cost(res, m, d) : NAN);
    return o;
}

/* A budget's public form with each limit's spend in its current window (windows: the script's
 * {window, max, used} in the cfg's order, nano-USD); the day and month windows' spend into spent.
 */
static cJSON *budget_json(const cJSON *t, cJSON *spent)
{
    const cJSON *windows = cJSON_GetObjectItemCaseSensitive(t, "windows"), *w;
    cJSON *b = api_budget_public(api_dash_str(t, "budget")), *l;
    int i = 0;

    cJSON_ArrayForEach(w, windows)
    {
        double used = api_dash_num(w, "used") / 1e9, max = api_dash_num(w, "max") / 1e9;
        const char *name = api_dash_str(w, "window");
        l = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "limits"), i++);
        if (l) {
            cJSON_AddNumberToObject(l, "spent_usd", used);
            cJSON_AddNumberToObject(l, "remaining_usd", max > used ? max - used : 0);
        }
        if (name && (strcmp(name, "day") == 0 || strcmp(name, "month") == 0)) {
            cJSON_ReplaceItemInObject(spent, name, cJSON_CreateNumber(used));
        }
    }
    return b ? b : cJSON_CreateNull();
}

/* The tenants: queued, running, this hour's spend (the day's and month's from the budget's
 * windows when it has them, else null), the budget. */
static cJSON *tenants_json(const cJSON *res)
{
    cJSON *list = cJSON_CreateArray();
    const cJSON *t;

    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(res, "tenants"))
    {
        cJSON *o = cJSON_CreateObject(), *spent = cJSON_CreateObject();
        api_dash_add_str(o, "tenant", api_dash_str(t, "tenant"));
        api_dash_add_num(o, "queued", api_dash_num(t, "queued"));
        api_dash_add_num(o, "running", api_dash_num(t, "running"));
        api_dash_add_num(spent, "hour", api_dash_num(t, "spent_hour") / 1e9);
        cJSON_AddNullToObject(spent, "day");
        cJSON_AddNullToObject(spent, "month");
        cJSON_AddItemToObject(o, "spent_usd", spent);
        cJSON_AddItemToObject(
            o, "budget", api_dash_str(t, "budget") ? budget_json(t, spent) : cJSON_CreateNull());
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

/* How a column of a listed row is copied from the script's JSON. */
enum col_kind { COL_STR, COL_NUM, COL_SECS, COL_NULL };

struct col {
    const char *name; /* in the answer */
    const char *src;  /* in the script's row */
    enum col_kind kind;
};

#define COLS(t) t, sizeof(t) / sizeof(t[0])

static const struct col batch_cols[] = {
    {"id", "id", COL_STR},
    {"tenant", "tenant", COL_STR},
    {"status", "status", COL_STR},
    {"model", NULL, COL_NULL}, /* a batch's lines name their own models */
    {"endpoint", "endpoint", COL_STR},
    {"total", "total", COL_NUM},
    {"completed", "completed", COL_NUM},
    {"failed", "failed", COL_NUM},
    {"created_at", "created_at", COL_NUM},
};

static const struct col pipeline_cols[] = {
    {"id", "id", COL_STR},
    {"tenant", "tenant", COL_STR},
    {"status", "status", COL_STR},
    {"steps_total", "steps_total", COL_NUM},
    {"steps_done", "steps_done", COL_NUM},
    {"tasks_total", "tasks_total", COL_NUM},
    {"tasks_done", "tasks_done", COL_NUM},
    {"created_at", "created", COL_SECS},
};

static const struct col failure_cols[] = {
    {"code", "code", COL_STR},
    {"model", "model", COL_STR},
    {"provider", "provider", COL_STR},
    {"count", "count", COL_NUM},
    {"last_at", "last_at", COL_SECS},
    {"last_task", "last_task", COL_STR},
    {"last_message", "last_message", COL_STR},
};

/* The rows of the script's list `name` (batches, pipelines, failures), each with cols. */
static cJSON *rows_json(const cJSON *res, const char *name, const struct col *cols, size_t n)
{
    cJSON *list = cJSON_CreateArray();
    const cJSON *row;

    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(res, name))
    {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < n; i++) {
            switch (cols[i].kind) {
            case COL_STR:
                api_dash_add_str(o, cols[i].name, api_dash_str(row, cols[i].src));
                break;
            case COL_NUM:
                api_dash_add_num(o, cols[i].name, api_dash_num(row, cols[i].src));
                break;
            case COL_SECS:
                api_dash_add_secs(o, cols[i].name, api_dash_num(row, cols[i].src));
                break;
            case COL_NULL:
                cJSON_AddNullToObject(o, cols[i].name);
                break;
            }
        }
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

static void add_scope(cJSON *o, const char *tenant)
{
    cJSON *scope = cJSON_AddObjectToObject(o, "scope");

    cJSON_AddBoolToObject(scope, "admin", tenant == NULL);
    api_dash_add_str(scope, "tenant", tenant);
}

/* DASH state's answer: dashboard.state from the script's JSON. */
static void on_state(const struct txn_dash_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct api *a = c->api;
    bool admin = c->tenant == NULL;
    cJSON *res = NULL, *o, *deps;
    const cJSON *d;

    if (err != NULL || (res = cJSON_ParseWithLength(r->json, r->json_len)) == NULL) {
        api_reply_store_down(a, c->req);
        goto out;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "dashboard.state");
    api_dash_add_secs(o, "now", api_dash_num(res, "now"));
    add_scope(o, c->tenant);
    cJSON_AddItemToObject(o, "totals", totals_json(res, c->tenant));
    cJSON_AddItemToObject(o, "rates", rates_json(res, admin));
    cJSON_AddItemToObject(o, "queues", queues_json(res, admin));
    deps = cJSON_AddArrayToObject(o, "deployments");
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(res, "deps"))
    {
        cJSON *row = deployment_json(a, res, d, admin);
        if (row) {
            cJSON_AddItemToArray(deps, row);
        }
    }
    cJSON_AddItemToObject(o, "tenants", tenants_json(res));
    cJSON_AddItemToObject(o, "batches", rows_json(res, "batches", COLS(batch_cols)));
    cJSON_AddItemToObject(o, "pipelines", rows_json(res, "pipelines", COLS(pipeline_cols)));
    cJSON_AddItemToObject(o, "failures", rows_json(res, "failures", COLS(failure_cols)));
    api_dash_reply(a, c->req, 200, o);
out:
    cJSON_Delete(res);
    api_ctx_free(c);
}

/* GET /v1/dashboard/state: one DASH state read (its cost: README "Dashboard"). */
void api_dash_state(struct api *a, struct evhttp_request *req, const char *tenant)
{
    struct txn_dash_alias *aliases = calloc(a->cfg->n_models + 1, sizeof(*aliases));
    struct txn_dash d = {.op = TXN_DASH_STATE, .now_ms = util_now_ms(), .tenant = tenant};
    struct api_ctx *c = aliases ? api_dash_ctx(a, req, tenant) : NULL;

    if (c == NULL) {
        if (aliases == NULL) {
            api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        }
        free(aliases);
        return;
    }
    for (size_t i = 0; i < a->cfg->n_models; i++) {
        aliases[i].alias = a->cfg->models[i].alias;
        aliases[i].n_deployments = a->cfg->models[i].n_deployments;
    }
    d.aliases = aliases;
    d.n_aliases = a->cfg->n_models;
    api_dash_send(c, &d, on_state);
    free(aliases);
}
