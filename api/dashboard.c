/*
 * api/dashboard.c — the operator's dashboard: its static page (the files of api/dashboard/,
 * embedded at build time by cmake/embed_asset.cmake) and the JSON it polls (the contract: README
 * "Dashboard").
 *
 * Every data route takes an admin key (every tenant) or a tenant's key (its own numbers only) and
 * makes one round trip: a DASH read (core/txn_dash.h) for the state (rendered in
 * api/dashboard_state.c), the history and task lists, a GET (core/txn_task.h) for one task. The
 * static files need no key: they hold no data.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/dashboard.h"
#include "api/internal.h"
#include "core/task.h"
#include "core/txn_dash.h"
#include "core/txn_task.h"
#include "core/util.h"

/* One embedded file of api/dashboard/. */
struct dash_asset {
    const char *name;
    const char *type;
    const unsigned char *data;
    size_t len;
};

#include "dashboard/assets.h"

#define DASH_MAX_SECONDS 3600
#define DASH_TASKS_DEFAULT 50

static const char page_csp[] =
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:";

/* ---- static files ------------------------------------------------------------------------ */

/*
 * GET /dashboard, /dashboard/ (index.html) and /dashboard/<file>: the embedded bytes with their
 * Content-Type, nosniff, and on the page the strict CSP (no inline script, no third party).
 */
void api_dashboard_static(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg)
{
    const char *name = arg && arg[0] ? arg : "index.html";
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    for (size_t i = 0; i < DASH_N_ASSETS; i++) {
        const struct dash_asset *f = &dash_assets[i];
        if (strcmp(f->name, name) != 0) {
            continue;
        }
        evhttp_add_header(h, "Content-Type", f->type);
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        if (strncmp(f->type, "text/html", 9) == 0) {
            evhttp_add_header(h, "Content-Security-Policy", page_csp);
            evhttp_add_header(h, "X-Frame-Options", "DENY");
            evhttp_add_header(h, "Referrer-Policy", "no-referrer");
        }
        evbuffer_add_reference(evhttp_request_get_output_buffer(req), f->data, f->len, NULL, NULL);
        a->responses[2]++;
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    api_reply_error(a, req, CORE_ENOTFOUND, NULL, "unknown_url", "Unknown dashboard file: %s",
                    name);
}

/* ---- shared ------------------------------------------------------------------------------ */

/* The data answers are never cached (they carry a tenant's numbers, and change every second). */
static void data_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

void api_dash_reply(struct api *a, struct evhttp_request *req, int status, cJSON *body)
{
    data_headers(req);
    api_reply_json(a, req, status, body);
}

/* The same with the body as JSON text (taken; NULL: out of memory, a 500). */
static void reply_data_text(struct api *a, struct evhttp_request *req, char *text)
{
    data_headers(req);
    api_reply_json_text(a, req, text ? 200 : 500, text);
}

/* A number of the script's JSON (a number or a numeric string), or NAN when absent. */
double api_dash_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (cJSON_IsNumber(v)) {
        return v->valuedouble;
    }
    if (cJSON_IsString(v) && v->valuestring[0] != '\0') {
        char *end = NULL;
        double d = strtod(v->valuestring, &end);
        return *end == '\0' ? d : NAN;
    }
    return NAN;
}

const char *api_dash_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* name: v, or null when v is NAN (unknown is null, never invented). */
void api_dash_add_num(cJSON *o, const char *name, double v)
{
    if (isnan(v)) {
        cJSON_AddNullToObject(o, name);
    } else {
        cJSON_AddNumberToObject(o, name, v);
    }
}

void api_dash_add_str(cJSON *o, const char *name, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(o, name, v);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

/* A time of the script's (ms) in Unix seconds, or null. */
void api_dash_add_secs(cJSON *o, const char *name, double ms)
{
    api_dash_add_num(o, name, isnan(ms) ? NAN : floor(ms / 1000));
}

/* Context of a dashboard read: tenant NULL for the admin. */
struct api_ctx *api_dash_ctx(struct api *a, struct evhttp_request *req, const char *tenant)
{
    struct api_ctx *c = api_ctx_new(a, req, tenant);

    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
    }
    return c;
}

/* Sends d for c, or answers 503 and frees c. */
void api_dash_send(struct api_ctx *c, const struct txn_dash *d, txn_dash_cb cb)
{
    if (txn_dash(c->api->store, &c->api->txn, d, cb, c) < 0) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
    }
}

/* ---- history ----------------------------------------------------------------------------- */

/* A point's queues for the caller: the admin's "alias|p" cells with priority names; a tenant's
 * own cells, or null when the point had too many tenants' cells to keep them all. */
static cJSON *point_queues(const cJSON *p, const char *tenant)
{
    const cJSON *cells = cJSON_GetObjectItemCaseSensitive(p, "q"), *q;
    cJSON *o;

    if (tenant != NULL) {
        const cJSON *mine =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "tq"), tenant);
        if (mine == NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "tt"))) {
            return cJSON_CreateNull();
        }
        cells = mine;
    }
    o = cJSON_CreateObject();
    cJSON_ArrayForEach(q, cells)
    {
        const char *bar = strrchr(q->string, '|');
        char name[DASH_MODEL_MAX + 16];
        if (bar == NULL || !cJSON_IsNumber(q)) {
            continue;
        }
        snprintf(name, sizeof(name), "%.*s|%s", (int)(bar - q->string), q->string,
                 task_priority_name(atoi(bar + 1)));
        cJSON_AddNumberToObject(o, name, q->valuedouble);
    }
    return o;
}

static void on_history(const struct txn_dash_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *o, *points;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "dashboard.history");
    cJSON_AddNumberToObject(o, "interval_s", DASH_SAMPLE_MS / 1000);
    points = cJSON_AddArrayToObject(o, "points");
    for (size_t i = r->n; i-- > 0;) {
        size_t len;
        const char *text = txn_dash_point(r, i, &len);
        cJSON *p = cJSON_ParseWithLength(text, len), *out;
        if (p == NULL) {
            continue;
        }
        out = cJSON_CreateObject();
        api_dash_add_secs(out, "t", api_dash_num(p, "t"));
        cJSON_AddItemToObject(out, "queues", point_queues(p, c->tenant));
        api_dash_add_num(out, "accepted_total", c->tenant ? NAN : api_dash_num(p, "a"));
        api_dash_add_num(out, "completed_total", c->tenant ? NAN : api_dash_num(p, "c"));
        cJSON_AddItemToArray(points, out);
        cJSON_Delete(p);
    }
    api_dash_reply(c->api, c->req, 200, o);
    api_ctx_free(c);
}

/* The query parameter name of req (borrowed from params, which the caller clears), or NULL. */
static const char *query_of(struct evhttp_request *req, struct evkeyvalq *params, const char *name)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

    if (TAILQ_EMPTY(params) && q != NULL && evhttp_parse_query_str(q, params) < 0) {
        return NULL;
    }
    return evhttp_find_header(params, name);
}

/* GET /v1/dashboard/history?seconds=N (1..3600, default 3600): oldest first. */
static void dashboard_history(struct api *a, struct evhttp_request *req, const char *tenant)
{
    struct evkeyvalq params;
    struct txn_dash d = {.op = TXN_DASH_HISTORY, .now_ms = util_now_ms()};
    long seconds;
    struct api_ctx *c;

    TAILQ_INIT(&params);
    if (api_query_long(a, req, "seconds", query_of(req, &params, "seconds"), 1, DASH_MAX_SECONDS,
                       DASH_MAX_SECONDS, &seconds) &&
        (c = api_dash_ctx(a, req, tenant)) != NULL) {
        d.since_ms = d.now_ms - (int64_t)seconds * 1000;
        api_dash_send(c, &d, on_history);
    }
    evhttp_clear_headers(&params);
}

/* ---- tasks ------------------------------------------------------------------------------- */

static void on_tasks(const struct txn_dash_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *o, *data;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < r->n; i++) {
        const char *id;
        const redisReply *hash;
        char *text;
        txn_dash_task(r, i, &id, &hash);
        text = api_task_text(c->api, c->req, id, hash, false, NULL);
        if (text) {
            cJSON_AddItemToArray(data, cJSON_CreateRaw(text));
            cJSON_free(text);
        }
    }
    api_dash_reply(c->api, c->req, 200, o);
    api_ctx_free(c);
}

/* GET /v1/dashboard/tasks?status=&model=&limit=&tenant= (tenant: the admin's filter; a tenant's
 * key lists its own, whatever it names). */
static void dashboard_tasks(struct api *a, struct evhttp_request *req, const char *tenant)
{
    struct evkeyvalq params;
    struct txn_dash d = {.op = TXN_DASH_TASKS, .now_ms = util_now_ms(), .tenant = tenant};
    const char *who;
    struct api_ctx *c;

    TAILQ_INIT(&params);
    if (!api_query_long(a, req, "limit", query_of(req, &params, "limit"), 1, DASH_TASKS_MAX,
                        DASH_TASKS_DEFAULT, &d.limit)) {
        goto out;
    }
    d.status = query_of(req, &params, "status");
    d.model = query_of(req, &params, "model");
    who = query_of(req, &params, "tenant");
    if (d.status && d.status[0] && task_status_parse(d.status) < 0) {
        api_reply_error(a, req, CORE_EINVAL, "status", NULL, "'status' is not a task status");
        goto out;
    }
    if ((d.model && strlen(d.model) > DASH_MODEL_MAX) || (who && strlen(who) > DASH_MODEL_MAX)) {
        api_reply_error(a, req, CORE_EINVAL, d.model ? "model" : "tenant", NULL,
                        "'model' and 'tenant' are at most %d characters", DASH_MODEL_MAX);
        goto out;
    }
    if (tenant == NULL && who && who[0]) {
        d.tenant = who;
    }
    if ((c = api_dash_ctx(a, req, tenant)) != NULL) {
        api_dash_send(c, &d, on_tasks);
    }
out:
    evhttp_clear_headers(&params);
}

/* The most input bytes the task page is shown (a data: URI of an image edit can be megabytes). */
#define DASH_INPUT_MAX (256L << 10)

/*
 * The task's JSON text (taken) with its request: "input" (the stored JSON text, borrowed) as a
 * last member, or null with "input_omitted_bytes" when it passes DASH_INPUT_MAX. The task page
 * shows what was asked next to what came back; GET /v1/tasks/{id} keeps its own contract.
 * Returns the new text (cJSON_free), the old one when there is no input, NULL on OOM.
 */
static char *with_input(char *text, const char *input)
{
    size_t tl, il, cap;
    char *end, *out;

    if (text == NULL || input == NULL || (end = strrchr(text, '}')) == NULL) {
        return text;
    }
    tl = (size_t)(end - text);
    il = strlen(input);
    cap = tl + (il <= (size_t)DASH_INPUT_MAX ? il : 0) + 96;
    out = cJSON_malloc(cap);
    if (out != NULL) {
        if (il <= (size_t)DASH_INPUT_MAX) {
            snprintf(out, cap, "%.*s,\"input\":%s}", (int)tl, text, input);
        } else {
            snprintf(out, cap, "%.*s,\"input\":null,\"input_omitted_bytes\":%zu}", (int)tl, text,
                     il);
        }
    }
    cJSON_free(text);
    return out;
}

/* GET's answer for the dashboard: the task (any tenant's for the admin, else the key's own:
 * another's is a 404), or, with c->mode set, its artifact c->values[0]. */
static void on_task(const struct txn_got *t, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    const char *owner = t != NULL ? task_hash_get(t->hash, "tenant") : NULL;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (owner == NULL || (c->tenant != NULL && strcmp(owner, c->tenant) != 0)) {
        api_reply_not_found(c->api, c->req, c->id);
    } else if (c->mode) {
        api_send_artifact(c->api, c->req, c->id, task_hash_get(t->hash, "artifacts"),
                          (long)c->values[0]);
    } else {
        struct api_task_live live = {t->queue_position, t->eta_s};
        reply_data_text(c->api, c->req,
                        with_input(api_task_text(c->api, c->req, c->id, t->hash, true, &live),
                                   task_hash_get(t->hash, "input")));
    }
    api_ctx_free(c);
}

/* GET /v1/dashboard/tasks/{id} and /v1/dashboard/tasks/{id}/content/{i} (index >= 0). */
static void dashboard_task(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *id, long index)
{
    struct api_ctx *c = api_ctx_for_task(a, req, tenant, id);

    if (c == NULL) {
        return;
    }
    c->mode = index >= 0;
    c->values[0] = index;
    if (txn_get(a->store, &a->txn, c->id, on_task, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

/* ---- routes ------------------------------------------------------------------------------ */

enum dash_route { DASH_STATE, DASH_HISTORY, DASH_TASKS };

static const char *const route_names[] = {
    [DASH_STATE] = "state", [DASH_HISTORY] = "history", [DASH_TASKS] = "tasks"};

/*
 * GET /v1/dashboard/<arg>: an admin key or a tenant's key (api_scope_auth), then the read.
 */
void api_dashboard_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    size_t r = 0;

    if (!api_scope_auth(a, req, &tenant)) {
        return;
    }
    while (r < sizeof(route_names) / sizeof(route_names[0]) && strcmp(route_names[r], arg) != 0) {
        r++;
    }
    switch (r) {
    case DASH_STATE:
        api_dash_state(a, req, tenant);
        break;
    case DASH_HISTORY:
        dashboard_history(a, req, tenant);
        break;
    case DASH_TASKS:
        dashboard_tasks(a, req, tenant);
        break;
    default:
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "unknown_url", "Unknown dashboard URL");
    }
}

/* GET /v1/dashboard/tasks/{id}. */
void api_dashboard_task(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    if (api_scope_auth(a, req, &tenant)) {
        dashboard_task(a, req, tenant, arg, -1);
    }
}

/* GET /v1/dashboard/tasks/{id}/content/{i}: the route's two segments read from the path (the
 * table's matcher keeps one). */
void api_dashboard_content(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char id[64], tail[2];
    long index = -1;

    if (!api_scope_auth(a, req, &tenant)) {
        return;
    }
    if (path == NULL ||
        sscanf(path, "/v1/dashboard/tasks/%63[^/]/content/%ld%1s", id, &index, tail) != 2 ||
        index < 0 || index > 1000) {
        api_reply_error(a, req, CORE_EINVAL, "index", NULL,
                        "The content index must be an integer between 0 and 1000");
        return;
    }
    dashboard_task(a, req, tenant, id, index);
}
