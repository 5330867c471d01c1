/*
 * worker/worker.h — claims tasks, calls providers, stores results.
 *
 * Upstream calls run through libcurl's multi interface on the process's libevent loop (worker/
 * http.h): hundreds of concurrent calls, no thread per call. Each claimed task carries a lease
 * that the worker extends by heartbeat; every outcome is written back with the attempt's fencing
 * token, and a write that Redis could not take is kept and sent again once it is back.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <event2/event.h>

#include "core/config.h"
#include "core/err.h"
#include "core/store.h"

struct worker;

/*
 * Starts a worker on base. cfg, store (commands) and wake (a store used only for the "work
 * arrived" subscription) are borrowed and must outlive the worker. NULL with err filled on failure.
 */
struct worker *worker_new(struct event_base *base, const struct config *cfg, struct store *store,
                          struct store *wake, struct core_err *err);

/*
 * Graceful stop: claims nothing more, lets calls in flight finish for up to
 * worker.shutdown_grace_ms, then aborts the rest and returns their tasks to the queue. done(arg)
 * is called once, from the loop, when nothing is left pending.
 */
void worker_stop(struct worker *w, void (*done)(void *arg), void *arg);

/* Tasks held right now (calling or waiting to write their outcome). */
size_t worker_jobs(const struct worker *w);

/* Frees the worker; in-flight calls are dropped (their leases expire). NULL is a no-op. */
void worker_free(struct worker *w);

#endif
