/*
 * api/dashboard.h — what the dashboard's two files share (api/dashboard.c: the page, the routes,
 * history and tasks; api/dashboard_state.c: the state). Not for other files.
 *
 * The DASH script answers in JSON (core/lua/dash.lua); its numbers may come as numbers or as
 * numeric strings (the stats hash), and a number the dashboard does not know is null in the
 * answer, never 0 or a guess: the helpers below read and write them that way.
 */
#ifndef SLUICE_API_DASHBOARD_H
#define SLUICE_API_DASHBOARD_H

#include <event2/http.h>
#include <cJSON.h>

#include "api/internal.h"
#include "core/txn_dash.h"

/* Aliases, tenants and such names in a dashboard query or key, at most. */
#define DASH_MODEL_MAX 128

/* Sends body (taken) with status, Cache-Control: no-store and nosniff (data answers). */
void api_dash_reply(struct api *a, struct evhttp_request *req, int status, cJSON *body);

/* o's member name as a number (a number or a numeric string), or NAN when absent or not one. */
double api_dash_num(const cJSON *o, const char *name);

/* o's member name as a string (borrowed from o), or NULL. */
const char *api_dash_str(const cJSON *o, const char *name);

/* Adds name: v, or null when v is NAN (an unknown number). */
void api_dash_add_num(cJSON *o, const char *name, double v);

/* Adds name: v (copied), or null when v is NULL. */
void api_dash_add_str(cJSON *o, const char *name, const char *v);

/* Adds name: ms (a time in Unix ms) in whole Unix seconds, or null when ms is NAN. */
void api_dash_add_secs(cJSON *o, const char *name, double ms);

/* A context for a dashboard read (tenant NULL: the admin's); NULL after answering 500. */
struct api_ctx *api_dash_ctx(struct api *a, struct evhttp_request *req, const char *tenant);

/* Sends d for c (cb owns c from then on), or answers 503 and frees c. */
void api_dash_send(struct api_ctx *c, const struct txn_dash *d, txn_dash_cb cb);

/* GET /v1/dashboard/state for tenant (NULL: the admin), authenticated already. */
void api_dash_state(struct api *a, struct evhttp_request *req, const char *tenant);

#endif
