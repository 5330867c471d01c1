/*
 * api/internal.h — what the api's files share: the api struct, the request context, and reply
 * helpers. Not for other roles.
 */
#ifndef SLUICE_API_INTERNAL_H
#define SLUICE_API_INTERNAL_H

#include <stdint.h>

#include <event2/http.h>
#include <cJSON.h>

#include "api/api.h"

struct api {
    struct event_base *base;
    const struct config *cfg;
    struct store *store;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    size_t in_flight;
    uint64_t responses[6]; /* by status class: 1xx..5xx, index 0 unused */
    uint64_t tasks_accepted;
};

/* One request waiting for Redis. Freed by api_ctx_free after the answer is sent. */
struct api_ctx {
    struct api *api;
    struct evhttp_request *req;
    const char *tenant; /* borrowed from the config */
    char id[64];
    cJSON *task; /* a task rendered before the round trip (submit), owned */
    int pending; /* round trips still outstanding (metrics) */
    int64_t values[8];
};

struct api_ctx *api_ctx_new(struct api *a, struct evhttp_request *req, const char *tenant);
void api_ctx_free(struct api_ctx *c);

/* Sends body (takes ownership, may be NULL for an empty body) with status. */
void api_reply_json(struct api *a, struct evhttp_request *req, int status, cJSON *body);

/* Sends the error envelope for e with e->http_status. */
void api_reply_err(struct api *a, struct evhttp_request *req, const struct core_err *e);

/* Shorthand: builds the error and sends it. */
void api_reply_error(struct api *a, struct evhttp_request *req, int code, const char *param,
                     const char *err_code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/*
 * Reads the request body as JSON: enforces the body size and depth limits and parses it.
 * Returns the parsed value (caller frees) and sets *raw and *raw_len to the body bytes (valid while
 * the request lives), or NULL after answering the error itself.
 */
cJSON *api_read_json(struct api *a, struct evhttp_request *req, const char **raw, size_t *raw_len);

/* Handlers: tasks.c */
void api_tasks_create(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
void api_tasks_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_tasks_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);
void api_tasks_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);

/* Handlers: health.c */
void api_health_live(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_health_ready(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
void api_health_metrics(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);

#endif
