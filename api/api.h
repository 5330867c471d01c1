/*
 * api/api.h — the HTTP front end (libevent evhttp).
 *
 * Stateless: authenticates, validates, writes tasks to Redis through the store and answers reads.
 * Every error is OpenAI's envelope with the right status.
 */
#ifndef SLUICE_API_H
#define SLUICE_API_H

#include <event2/event.h>

#include "core/config.h"
#include "core/err.h"
#include "core/store.h"

struct api;

/*
 * Binds cfg->listen and starts serving on base. cfg and store are borrowed and must outlive the
 * api. Returns NULL with err filled when the address cannot be bound.
 */
struct api *api_new(struct event_base *base, const struct config *cfg, struct store *store,
                    struct core_err *err);

/* Stops accepting connections; requests already read are still answered. */
void api_stop(struct api *a);

/* Requests whose answer is still pending (waiting for Redis). */
size_t api_in_flight(const struct api *a);

/* Frees the api. NULL is a no-op. */
void api_free(struct api *a);

/*
 * The metrics listener (cfg->metrics_host:metrics_port): GET /metrics without a key, for the
 * operator's network only. a is borrowed and must outlive it. NULL with err filled when the
 * address cannot be bound. Free it before the api; NULL is a no-op.
 */
struct api_metrics_listener;
struct api_metrics_listener *api_metrics_listener_new(struct api *a, struct core_err *err);
void api_metrics_listener_free(struct api_metrics_listener *m);

#endif
