/*
 * adapters/replicate.c — the replicate dialect. Placeholder: every hook is NULL until the providers
 * work lands, so the worker refuses tasks routed here as unsupported.
 */
#include "adapters/adapter.h"

const struct adapter adapter_replicate = {
    .name = "replicate",
};
