/*
 * scheduler/scheduler.h — the clock.
 *
 * Every tick it promotes retries whose backoff is over, returns tasks whose lease expired to the
 * head of their queue, and forgets finished tasks past retention. Safe to run many: a leader lock
 * in Redis lets one do the work, and every step is an idempotent script anyway.
 */
#ifndef SLUICE_SCHEDULER_H
#define SLUICE_SCHEDULER_H

#include <event2/event.h>

#include "core/config.h"
#include "core/err.h"
#include "core/store.h"

struct sched;

/* Starts ticking on base. cfg and store are borrowed. NULL with err filled on failure. */
struct sched *sched_new(struct event_base *base, const struct config *cfg, struct store *store,
                        struct core_err *err);

/* Frees the scheduler; if a tick is in flight, its reply finishes the free. NULL is a no-op. */
void sched_free(struct sched *s);

#endif
