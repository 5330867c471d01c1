/*
 * scheduler/dash_sample.c — the dashboard's history sample (scheduler/dash_sample.h).
 */
#include "core/log.h"
#include "core/txn_dash.h"
#include "scheduler/dash_sample.h"

void sched_dash_sample(struct store *store, struct txn_args *args, int64_t now_ms, long tick_ms)
{
    struct txn_dash d = {.op = TXN_DASH_SAMPLE, .now_ms = now_ms};
    long window = tick_ms < DASH_SAMPLE_MS ? tick_ms : DASH_SAMPLE_MS;

    if (now_ms % DASH_SAMPLE_MS >= window || !store_ready(store)) {
        return;
    }
    if (txn_dash(store, args, &d, NULL, NULL) < 0) {
        log_warn("cannot send the dashboard's history sample", "now=%lld", (long long)now_ms);
    }
}
