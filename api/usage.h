/*
 * api/usage.h — usage analytics: GET /v1/usage (api/usage.c says what it answers) and the one
 * setting the scripts need from the config (usage.retention_days, for the counters' expiry).
 */
#ifndef SLUICE_API_USAGE_H
#define SLUICE_API_USAGE_H

#include <event2/http.h>

struct api;

/*
 * GET /v1/usage for tenant (borrowed; NULL: the caller holds an admin key, which may name any
 * tenant or all of them). Answers the request itself (200, 400, 403 or 503).
 */
void api_usage_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg);

/* Writes usage.retention_days to Redis (KS_USAGE_CFG) now and on every reconnect, where finalize
 * reads it when it makes a new hour's counters. a is borrowed and outlives its store. */
void api_usage_init(struct api *a);

#endif
