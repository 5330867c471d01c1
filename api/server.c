/*
 * api/server.c — evhttp setup, the route table, authentication and the reply helpers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "adapters/responses.h"
#include "api/batches.h"
#include "api/pipelines.h"
#include "api/files.h"
#include "api/guard.h"
#include "api/internal.h"
#include "api/provider_callbacks.h"
#include "api/usage.h"
#include "core/json_in.h"
#include "core/log.h"
#include "core/task.h"
#include "core/util.h"

/* What evhttp may see of a head beyond limits.max_header_bytes: the lines the connection guard
 * adds to a head it hands on (Content-Length, the upload's name, Connection). */
#define API_HEAD_ADDED_MAX 512

/* The api and what only this file sees: the connection guard (api/guard.h). api_new allocates
 * this; a struct api * the rest of the api holds is its first member. */
struct api_server {
    struct api api;
    struct api_guard *guard;
};

typedef void (*api_handler)(struct api *a, struct evhttp_request *req, const char *tenant,
                            const char *arg);

/* A route: method, a path pattern whose "*" segment matches one id, the handler, whether it
 * needs a bearer key, and how its body is read (JSON: up to limits.max_body_bytes, read whole). */
struct route {
    enum evhttp_cmd_type method;
    const char *pattern;
    api_handler handler;
    bool auth;
    enum api_route_body body;
};

static void usage_route(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);

static const struct route routes[] = {
    {EVHTTP_REQ_POST, "/v1/tasks", api_tasks_create, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/tasks", api_tasks_list, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/tasks/*", api_tasks_get, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/tasks/*/cancel", api_tasks_cancel, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/tasks/*/content", api_tasks_content, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/chat/completions", api_compat_chat, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/responses", api_responses_create, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/responses/*", api_responses_get, true, API_ROUTE_JSON},
    {EVHTTP_REQ_DELETE, "/v1/responses/*", api_responses_delete, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/responses/*/cancel", api_responses_cancel, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/responses/*/input_items", api_responses_input_items, true,
     API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/embeddings", api_compat_embeddings, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/images/generations", api_compat_images, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/images/edits", api_images_edits, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/videos", api_videos_create, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/videos/*", api_videos_get, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/videos/*/content", api_videos_content, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/files", api_files_create, true, API_ROUTE_UPLOAD},
    {EVHTTP_REQ_GET, "/v1/files", api_files_list, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/files/*", api_files_get, true, API_ROUTE_JSON},
    {EVHTTP_REQ_DELETE, "/v1/files/*", api_files_delete, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/files/*/content", api_files_content, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/batches", api_batches_create, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/batches", api_batches_list, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/batches/*", api_batches_get, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/batches/*/cancel", api_batches_cancel, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/pipelines", api_pipelines_create, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/pipelines", api_pipelines_list, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/pipelines/*", api_pipelines_get, true, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/pipelines/*/cancel", api_pipelines_cancel, true, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/models", api_models_list, true, API_ROUTE_JSON},
    /* a tenant's key, or an admin key (any tenant): usage_route authenticates */
    {EVHTTP_REQ_GET, "/v1/usage", usage_route, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/models/*", api_models_get, true, API_ROUTE_JSON},
    /* the admin surface: the handlers check the admin key themselves */
    {EVHTTP_REQ_GET, "/v1/admin/models", api_admin_models_list, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/admin/models/*", api_admin_models_get, false, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/admin/keys", api_admin_keys_create, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/admin/keys", api_admin_keys_list, false, API_ROUTE_JSON},
    {EVHTTP_REQ_POST, "/v1/admin/keys/*/revoke", api_admin_keys_revoke, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/admin/tenants/*/budget", api_budgets_get, false, API_ROUTE_JSON},
    {EVHTTP_REQ_PUT, "/v1/admin/tenants/*/budget", api_budgets_put, false, API_ROUTE_JSON},
    {EVHTTP_REQ_DELETE, "/v1/admin/tenants/*/budget", api_budgets_delete, false, API_ROUTE_JSON},
    /* an image's capability URL: the signature in the query is the credential */
    {EVHTTP_REQ_GET, "/v1/artifacts/*/*", api_artifacts_get, false, API_ROUTE_JSON},
    /* no key: the handler authenticates the provider's signature (api/provider_callbacks.h) */
    {EVHTTP_REQ_POST, "/v1/provider_callbacks/*/*", api_provider_callback, false, API_ROUTE_SIGNED},
    /* the dashboard: its page needs no key (it holds no data); its data routes take an admin
     * key or a tenant's key (api_scope_auth in the handler) */
    {EVHTTP_REQ_GET, "/dashboard", api_dashboard_static, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/dashboard/", api_dashboard_static, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/dashboard/*", api_dashboard_static, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/dashboard/*", api_dashboard_get, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/dashboard/tasks/*", api_dashboard_task, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/v1/dashboard/tasks/*/content/*", api_dashboard_content, false,
     API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/healthz", api_health_live, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/readyz", api_health_ready, false, API_ROUTE_JSON},
    {EVHTTP_REQ_GET, "/metrics", api_health_metrics, false, API_ROUTE_JSON},
    /* the connection guard's refusals; the segment holds its per-process token */
    {EVHTTP_REQ_GET, "/_guard/*", api_guard_answer, false, API_ROUTE_JSON},
};

/* The methods evhttp knows, and whether it reads a body for them (evhttp_method_may_have_body). */
static const struct {
    const char *name;
    enum evhttp_cmd_type method;
    bool body;
} methods[] = {
    {"GET", EVHTTP_REQ_GET, true},       {"POST", EVHTTP_REQ_POST, true},
    {"PUT", EVHTTP_REQ_PUT, true},       {"PATCH", EVHTTP_REQ_PATCH, true},
    {"DELETE", EVHTTP_REQ_DELETE, true}, {"OPTIONS", EVHTTP_REQ_OPTIONS, true},
    {"HEAD", EVHTTP_REQ_HEAD, false},
};

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {202, "Accepted"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Payload Too Large"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *reason_for(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return "Unknown";
}

/*
 * Matches path against pattern segment by segment; "*" takes one non-empty segment, copied into
 * arg. Returns true on a match.
 */
static bool path_match(const char *pattern, const char *path, char *arg, size_t arg_size)
{
    const char *p = pattern, *s = path;

    arg[0] = '\0';
    while (*p && *s) {
        if (*p == '*') {
            size_t n = strcspn(s, "/");
            if (n == 0 || n >= arg_size) {
                return false;
            }
            memcpy(arg, s, n);
            arg[n] = '\0';
            s += n;
            p++;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            return false;
        }
    }
    return *p == '\0' && *s == '\0';
}

/*
 * The connection guard asks before a body is read: the same table and matching as on_request, so
 * what the guard lets through (a key checked, a body of the route's kind) is what the handler
 * gets. A path too long for any route is no route.
 */
void api_route_classify(const char *method, size_t method_len, const char *path, size_t path_len,
                        struct api_route_info *out)
{
    char p[1024], id[128];
    bool method_known = false;
    enum evhttp_cmd_type cmd = EVHTTP_REQ_GET;

    out->known = false;
    out->auth = false;
    out->body = API_ROUTE_NO_BODY;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strlen(methods[i].name) == method_len &&
            memcmp(methods[i].name, method, method_len) == 0) {
            method_known = true;
            cmd = methods[i].method;
            out->body = methods[i].body ? API_ROUTE_JSON : API_ROUTE_NO_BODY;
            break;
        }
    }
    if (!method_known || path_len >= sizeof(p)) {
        return;
    }
    memcpy(p, path, path_len);
    p[path_len] = '\0';
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (routes[i].method == cmd && path_match(routes[i].pattern, p, id, sizeof(id))) {
            out->known = true;
            out->auth = routes[i].auth;
            if (out->body != API_ROUTE_NO_BODY) {
                out->body = routes[i].body;
            }
            return;
        }
    }
}

struct api_guard *api_guard_of(struct api *a)
{
    return ((struct api_server *)a)->guard;
}

static void free_text(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    cJSON_free((void *)data);
}

void api_reply_json(struct api *a, struct evhttp_request *req, int status, cJSON *body)
{
    char *text = NULL;

    if (body != NULL) {
        text = cJSON_PrintUnformatted(body);
        cJSON_Delete(body);
    }
    api_reply_json_text(a, req, status, text);
}

void api_reply_json_text(struct api *a, struct evhttp_request *req, int status, char *text)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    if (text != NULL) {
        evbuffer_add_reference(out, text, strlen(text), free_text, NULL);
        evbuffer_add(out, "\n", 1);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (status >= 100 && status < 600) {
        a->responses[status / 100]++;
    }
    evhttp_send_reply(req, status, reason_for(status), NULL);
}

const char *api_request_id(struct evhttp_request *req)
{
    return evhttp_find_header(evhttp_request_get_output_headers(req), "x-request-id");
}

void api_error_add_request_id(cJSON *error, struct evhttp_request *req)
{
    const char *rid = api_request_id(req);

    if (rid != NULL && cJSON_IsObject(error)) {
        cJSON_AddStringToObject(error, "request_id", rid);
    }
}

void api_reply_err(struct api *a, struct evhttp_request *req, const struct core_err *e)
{
    cJSON *env = cJSON_CreateObject();
    cJSON *obj = core_err_to_json(e, false);

    api_error_add_request_id(obj, req);
    cJSON_AddItemToObject(env, "error", obj);
    if (e->code == CORE_EQUOTA && e->retry_after_ms >= 0) {
        char v[32];
        snprintf(v, sizeof(v), "%lld", (long long)((e->retry_after_ms + 999) / 1000));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", v);
    }
    api_reply_json(a, req, e->http_status ? e->http_status : 500, env);
}

void api_reply_error(struct api *a, struct evhttp_request *req, int code, const char *param,
                     const char *err_code, const char *fmt, ...)
{
    struct core_err e;
    va_list ap;

    core_err_clear(&e);
    core_err_set(&e, code, param, "%s", "");
    core_err_set_code(&e, err_code);
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    api_reply_err(a, req, &e);
}

struct api_ctx *api_ctx_new(struct api *a, struct evhttp_request *req, const char *tenant)
{
    struct api_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->api = a;
    c->req = req;
    c->tenant = tenant;
    c->key = req != NULL ? a->req_key : NULL;
    a->in_flight++;
    return c;
}

/* A context for id, already checked to be one of the right kind (or NULL after answering 500). */
static struct api_ctx *ctx_for_valid_id(struct api *a, struct evhttp_request *req,
                                        const char *tenant, const char *id)
{
    struct api_ctx *c = api_ctx_new(a, req, tenant);

    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return NULL;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    return c;
}

struct api_ctx *api_ctx_for_task(struct api *a, struct evhttp_request *req, const char *tenant,
                                 const char *id)
{
    if (!task_id_valid(id)) {
        api_reply_not_found(a, req, id);
        return NULL;
    }
    return ctx_for_valid_id(a, req, tenant, id);
}

struct api_ctx *api_ctx_for_id(struct api *a, struct evhttp_request *req, const char *tenant,
                               const char *prefix, const char *id, api_not_found_fn not_found)
{
    if (!util_id_valid(prefix, id)) {
        not_found(a, req, id);
        return NULL;
    }
    return ctx_for_valid_id(a, req, tenant, id);
}

const char *api_task_id_prefix(enum task_kind kind)
{
    return kind == TASK_KIND_RESPONSE ? RESPONSES_ID_PREFIX : TASK_ID_PREFIX;
}

bool api_model_serves(const struct config_model *m, enum task_kind kind)
{
    return m->kind == (kind == TASK_KIND_RESPONSE ? TASK_KIND_CHAT : kind);
}

struct api_ctx *api_ctx_for_new_kind(struct api *a, struct evhttp_request *req, const char *tenant,
                                     enum task_kind kind)
{
    struct api_ctx *c = api_ctx_new(a, req, tenant);

    if (c == NULL || util_random_id(api_task_id_prefix(kind), c->id, sizeof(c->id)) < 0) {
        api_ctx_free(c);
        api_reply_error(a, req, CORE_EINTERNAL, NULL, NULL, "Could not create a task id");
        return NULL;
    }
    return c;
}

struct api_ctx *api_ctx_for_new_task(struct api *a, struct evhttp_request *req, const char *tenant)
{
    return api_ctx_for_new_kind(a, req, tenant, TASK_KIND_CHAT);
}

void api_ctx_free(struct api_ctx *c)
{
    if (c == NULL) {
        return;
    }
    c->api->in_flight--;
    cJSON_Delete(c->task);
    cJSON_free(c->task_text);
    api_pending_submit_free(c->submit);
    cJSON_Delete(c->body);
    cJSON_Delete(c->webhook);
    free(c);
}

cJSON *api_list_page(cJSON *data, bool has_more)
{
    cJSON *list = cJSON_CreateObject();
    int n = cJSON_GetArraySize(data);
    const cJSON *first = n > 0 ? cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "id") : NULL;
    const cJSON *last = n > 0 ? cJSON_GetObjectItem(cJSON_GetArrayItem(data, n - 1), "id") : NULL;

    cJSON_AddStringToObject(list, "object", "list");
    cJSON_AddItemToObject(list, "data", data);
    if (cJSON_IsString(first) && cJSON_IsString(last)) {
        cJSON_AddStringToObject(list, "first_id", first->valuestring);
        cJSON_AddStringToObject(list, "last_id", last->valuestring);
    } else {
        cJSON_AddNullToObject(list, "first_id");
        cJSON_AddNullToObject(list, "last_id");
    }
    cJSON_AddBoolToObject(list, "has_more", has_more);
    return list;
}

bool api_query_long(struct api *a, struct evhttp_request *req, const char *name, const char *s,
                    long lo, long hi, long def, long *v)
{
    char *end = NULL;

    *v = def;
    if (s == NULL) {
        return true;
    }
    *v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *v < lo || *v > hi) {
        api_reply_error(a, req, CORE_EINVAL, name, NULL,
                        "'%s' must be an integer between %ld and %ld", name, lo, hi);
        return false;
    }
    return true;
}

int api_list_query(struct api *a, struct evhttp_request *req, struct evkeyvalq *params,
                   const struct api_list_spec *spec, long *limit, const char **after)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    const char *limit_s;

    TAILQ_INIT(params);
    if (query && evhttp_parse_query_str(query, params) < 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, NULL, "Malformed query string");
        return -1;
    }
    limit_s = evhttp_find_header(params, "limit");
    *after = evhttp_find_header(params, "after");
    if (!api_query_long(a, req, "limit", limit_s, 1, spec->max, spec->def, limit)) {
        return -1;
    }
    if (*after && !(spec->prefix ? util_id_valid(spec->prefix, *after) : task_id_valid(*after))) {
        api_reply_error(a, req, CORE_EINVAL, "after", NULL, "'after' must be a %s id", spec->what);
        return -1;
    }
    return 0;
}

cJSON *api_read_json(struct api *a, struct evhttp_request *req, const char **raw, size_t *raw_len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body;
    struct core_err e;
    cJSON *json;

    if (len > (size_t)a->cfg->limits.max_body_bytes) {
        api_reply_error(a, req, CORE_ETOOLARGE, NULL, "request_too_large",
                        "Request body of %zu bytes is larger than the limit of %ld bytes", len,
                        a->cfg->limits.max_body_bytes);
        return NULL;
    }
    if (len == 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, "invalid_json",
                        "Request body is empty; expected a JSON object");
        return NULL;
    }
    body = (const char *)evbuffer_pullup(in, -1);
    core_err_clear(&e);
    if (json_in_parse(body, len, (int)a->cfg->limits.max_json_depth, &json, &e) < 0) {
        api_reply_err(a, req, &e);
        return NULL;
    }
    *raw = body;
    *raw_len = len;
    return json;
}

/*
 * Bearer authentication: the key's identity (api/keys.h: its tenant and what it may use), or NULL
 * after answering 401 (a revoked or expired key as an unknown one).
 */
static const struct api_key_ref *authenticate(struct api *a, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const struct api_key_ref *key;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
        api_reply_error(a, req, CORE_EAUTH, NULL, "missing_api_key",
                        "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'");
        return NULL;
    }
    key = api_keys_auth(a->keys, a->cfg, h + 7, strlen(h + 7), util_now_ms() / 1000);
    if (key == NULL) {
        api_reply_error(a, req, CORE_EAUTH, NULL, "invalid_api_key", "Incorrect API key provided");
        return NULL;
    }
    return key;
}

/* The key of a route an admin key or a tenant's key may call: *tenant NULL and *key NULL for an
 * admin key (api/admin.c), else the tenant's key as on every tenant route; false after 401. */
static bool scope_auth(struct api *a, struct evhttp_request *req, const char **tenant,
                       const struct api_key_ref **key)
{
    *key = NULL;
    if (api_admin_authorized(a, req)) {
        *tenant = NULL;
        return true;
    }
    if (!api_guard_tenant(a, req, tenant, key) || *tenant == NULL) {
        if ((*key = authenticate(a, req)) == NULL) {
            return false;
        }
        *tenant = (*key)->tenant;
    }
    return true;
}

bool api_scope_auth(struct api *a, struct evhttp_request *req, const char **tenant)
{
    const struct api_key_ref *key;

    return scope_auth(a, req, tenant, &key);
}

/* GET /v1/usage: an admin key reads any tenant's usage, any other key is a tenant's. */
static void usage_route(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    const struct api_key_ref *key;

    if (!scope_auth(a, req, &tenant, &key)) {
        return;
    }
    a->req_key = key;
    api_usage_get(a, req, tenant, arg);
    a->req_key = NULL;
}

/* The one evhttp callback: match the route table, then authenticate, then dispatch. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct api *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool path_known = false;
    char id[128];
    char rid[48];

    /* every answer names its request, as OpenAI's do (also in error bodies: request_id) */
    if (util_random_id("req_", rid, sizeof(rid)) == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "x-request-id", rid);
    }
    if (path == NULL) {
        api_reply_error(a, req, CORE_EINVAL, NULL, NULL, "Malformed request URI");
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *r = &routes[i];
        if (!path_match(r->pattern, path, id, sizeof(id))) {
            continue;
        }
        path_known = true;
        if (r->method != method) {
            continue;
        }
        const char *tenant = NULL;
        const struct api_key_ref *key = NULL;
        /* the connection guard checked the key already, unless this request is not the one it
         * just handed on */
        if (r->auth && (!api_guard_tenant(a, req, &tenant, &key) || tenant == NULL)) {
            if ((key = authenticate(a, req)) == NULL) {
                return;
            }
            tenant = key->tenant;
        }
        /* the handler runs now: what it starts copies the key (api_ctx_new) */
        a->req_key = r->auth ? key : NULL;
        r->handler(a, req, tenant, id);
        a->req_key = NULL;
        return;
    }
    if (path_known) {
        struct core_err e;
        core_err_clear(&e);
        core_err_set(&e, CORE_EINVAL, NULL, "Method not allowed on %s", path);
        core_err_set_code(&e, "method_not_allowed");
        e.http_status = 405; /* the one status with no code of its own in the error table */
        api_reply_err(a, req, &e);
        return;
    }
    api_reply_error(a, req, CORE_ENOTFOUND, NULL, "unknown_url", "Unknown request URL: %s", path);
}

struct api *api_new(struct event_base *base, const struct config *cfg, struct store *store,
                    struct core_err *err)
{
    struct api_server *srv = calloc(1, sizeof(*srv));
    struct api *a = srv != NULL ? &srv->api : NULL;

    if (a == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    a->base = base;
    a->cfg = cfg;
    a->store = store;
    a->http = evhttp_new(base);
    a->submit_ev = event_new(base, -1, 0, api_submit_flush, a);
    txn_args_init(&a->txn);
    if (a->http == NULL || a->submit_ev == NULL || (srv->guard = api_guard_new(a, err)) == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "evhttp_new failed");
        if (a->http) {
            evhttp_free(a->http);
        }
        if (a->submit_ev) {
            event_free(a->submit_ev);
        }
        free(srv);
        return NULL;
    }
    /* The guard hands evhttp whole requests only: JSON bodies within limits.max_body_bytes (an
     * upload is streamed to disk and never reaches evhttp), heads within max_header_bytes plus
     * what the guard adds. evhttp's own caps are those, a second line behind the guard. */
    evhttp_set_max_body_size(a->http, cfg->limits.max_body_bytes);
    evhttp_set_max_headers_size(a->http, cfg->limits.max_header_bytes + API_HEAD_ADDED_MAX);
    evhttp_set_timeout(a->http, (int)cfg->limits.request_timeout_s);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(a->http, on_request, a);
    a->listener =
        evhttp_bind_socket_with_handle(a->http, cfg->listen_host, (ev_uint16_t)cfg->listen_port);
    if (a->listener == NULL) {
        core_err_set(err, CORE_EUNAVAILABLE, "listen", "cannot listen on %s:%d", cfg->listen_host,
                     cfg->listen_port);
        evhttp_free(a->http);
        api_guard_free(srv->guard);
        event_free(a->submit_ev);
        free(srv);
        return NULL;
    }
    api_guard_listen(srv->guard, a->listener);
    if ((a->keys = api_keys_new(a)) == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot make the table of API keys");
        api_free(a);
        return NULL;
    }
    if (api_waiters_init(a) < 0) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot subscribe for task notifications");
        api_free(a);
        return NULL;
    }
    a->batches = batch_runner_new(a);
    if (a->batches == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot start the batch runner");
        api_free(a);
        return NULL;
    }
    a->pipelines = pipe_runner_new(a);
    if (a->pipelines == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "cannot start the pipeline runner");
        api_free(a);
        return NULL;
    }
    api_artifacts_init(a);
    api_usage_init(a);
    log_info("listening", "addr=%s:%d max_connections=%ld", cfg->listen_host, cfg->listen_port,
             cfg->limits.max_connections);
    return a;
}

void api_stop(struct api *a)
{
    if (a && a->listener) {
        api_guard_stop(api_guard_of(a));
        evhttp_del_accept_socket(a->http, a->listener);
        a->listener = NULL;
    }
    if (a) {
        batch_runner_stop(a->batches);
        pipe_runner_stop(a->pipelines);
        api_responses_follow_cleanup(a);
    }
}

size_t api_in_flight(const struct api *a)
{
    return a->in_flight;
}

void api_free(struct api *a)
{
    if (a == NULL) {
        return;
    }
    batch_runner_free(a->batches);
    pipe_runner_free(a->pipelines);
    /* submits still queued (freed within the loop turn that queued them): dropped unanswered */
    while (a->submit_head) {
        struct api_ctx *c = a->submit_head;
        a->submit_head = c->submit_next;
        api_ctx_free(c);
    }
    event_free(a->submit_ev);
    txn_args_cleanup(&a->txn);
    api_artifacts_cleanup(a);
    api_waiters_cleanup(a);
    api_responses_follow_cleanup(a);
    evhttp_free(a->http);
    api_keys_free(a->keys);
    a->keys = NULL;
    api_guard_free(api_guard_of(a)); /* freed with its last connection, if any is left */
    free((struct api_server *)a);
}
