/*
 * scheduler/dash_sample.h — the dashboard's history: the scheduler leader writes one point (queue
 * depths, accepted/completed/failed counters) every DASH_SAMPLE_MS (core/txn_dash.h) into a
 * capped list, which GET /v1/dashboard/history reads.
 */
#ifndef SLUICE_SCHEDULER_DASH_SAMPLE_H
#define SLUICE_SCHEDULER_DASH_SAMPLE_H

#include <stdint.h>

#include "core/store.h"
#include "core/txn.h"

/*
 * Called on every tick of the leader (tick_ms apart): in the first tick of each DASH_SAMPLE_MS
 * window of the wall clock it sends one DASH sample on store (args: the caller's scratch, reset;
 * free again once this returns), nobody waiting for the answer. Stateless: the script refuses a
 * point closer than 0.9 DASH_SAMPLE_MS to the last, so a repeated tick (a backlog) or a second
 * leader in a hand-over writes nothing; a tick late past its window skips one point.
 */
void sched_dash_sample(struct store *store, struct txn_args *args, int64_t now_ms, long tick_ms);

#endif
