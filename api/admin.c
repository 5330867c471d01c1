/*
 * api/admin.c — the admin surface: admin bearer keys (admin_keys in the config, never a tenant
 * key), /metrics behind one on the public listener, and the metrics listener (metrics_listen),
 * where /metrics needs no key because only the operator's network reaches that address.
 */
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "api/internal.h"
#include "core/log.h"

struct api_metrics_listener {
    struct api *api;
    struct evhttp *http;
};

bool api_admin_authorized(const struct api *a, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

    return h != NULL && strncasecmp(h, "Bearer ", 7) == 0 && h[7] != '\0' &&
           config_is_admin_key(a->cfg, h + 7);
}

void api_reply_admin_required(struct api *a, struct evhttp_request *req)
{
    api_reply_error(a, req, CORE_EAUTH, NULL, "admin_key_required",
                    "This endpoint needs an admin key (admin_keys in the config) as "
                    "'Authorization: Bearer KEY'");
}

/* GET /metrics on the public listener: the admin's only. */
void api_health_metrics(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return;
    }
    api_metrics_serve(a, req);
}

/* The metrics listener's one callback: /metrics and /healthz, nothing else. */
static void on_metrics_request(struct evhttp_request *req, void *arg)
{
    struct api_metrics_listener *m = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || path == NULL) {
        api_reply_error(m->api, req, CORE_EINVAL, NULL, "method_not_allowed",
                        "Only GET /metrics and GET /healthz are served here");
    } else if (strcmp(path, "/metrics") == 0) {
        api_metrics_serve(m->api, req);
    } else if (strcmp(path, "/healthz") == 0) {
        api_health_live(m->api, req, NULL, NULL);
    } else {
        api_reply_error(m->api, req, CORE_ENOTFOUND, NULL, "unknown_url",
                        "Unknown request URL: %.200s", path);
    }
}

struct api_metrics_listener *api_metrics_listener_new(struct api *a, struct core_err *err)
{
    const struct config *cfg = a->cfg;
    struct api_metrics_listener *m = calloc(1, sizeof(*m));

    if (m == NULL || (m->http = evhttp_new(a->base)) == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        api_metrics_listener_free(m);
        return NULL;
    }
    m->api = a;
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_max_headers_size(m->http, cfg->limits.max_header_bytes);
    evhttp_set_timeout(m->http, (int)cfg->limits.request_timeout_s);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
    evhttp_set_gencb(m->http, on_metrics_request, m);
    if (evhttp_bind_socket_with_handle(m->http, cfg->metrics_host,
                                       (ev_uint16_t)cfg->metrics_port) == NULL) {
        core_err_set(err, CORE_EINVAL, "metrics_listen", "cannot listen on %s:%d",
                     cfg->metrics_host, cfg->metrics_port);
        api_metrics_listener_free(m);
        return NULL;
    }
    log_info("metrics listening", "addr=%s:%d", cfg->metrics_host, cfg->metrics_port);
    return m;
}

void api_metrics_listener_free(struct api_metrics_listener *m)
{
    if (m == NULL) {
        return;
    }
    if (m->http) {
        evhttp_free(m->http);
    }
    free(m);
}
