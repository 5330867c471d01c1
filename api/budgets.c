/*
 * api/budgets.c — a tenant's budget (admin keys only): PUT, GET and DELETE
 * /v1/admin/tenants/{tenant}/budget.
 *
 * A budget is {"limits": [{"window": "hour"|"day"|"month", "max_usd": N}], "policy":
 * "reject"|"pace"}. Each limit caps what the tenant's tasks cost in the current window of its
 * kind (an hour, a day — budgets.hour_s and budgets.day_s, shorter only in tests —, the calendar
 * month in UTC). CLAIM reserves a task's estimated cost in every window when it admits the task
 * and the task's end replaces the estimate with its real cost (core/lua/prelude.lua), all in the
 * scripts that move the task, so any number of api and worker processes share one exact count:
 * a cap is passed by at most the tasks in flight when it was reached, never by what one process
 * did not yet tell another. Policy "pace": past a cap, the tenant's tasks stay queued and are
 * admitted as the next window allows (other tenants are not held up); "reject": new tasks are
 * refused with 429 budget_exceeded and Retry-After at the window's end (those already queued are
 * paced, never dropped). The answer of GET shows each limit with what its window used — the real
 * cost of the tasks that ended in it and the estimates of those still running — and what remains.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/log.h"
#include "core/txn_budget.h"
#include "core/util.h"

#define BUDGET_TENANT_MAX 60
#define BUDGET_MAX_USD 1e6 /* counted in nano-USD: exact below 2^53 */

static const char *const windows[] = {"hour", "day", "month"};

/* The tenant the route's "*" took (arg), copied; false when it is not a tenant's name. */
static bool tenant_of_path(const char *arg, char *out, size_t size)
{
    size_t n = arg ? strlen(arg) : 0;

    if (n == 0 || n > BUDGET_TENANT_MAX || n >= size) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = arg[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.')) {
            return false;
        }
    }
    memcpy(out, arg, n + 1);
    return true;
}

/* A window's length in ms (0: the calendar month). */
static int64_t window_ms(const struct config *cfg, const char *w)
{
    if (strcmp(w, "hour") == 0) {
        return (int64_t)cfg->budgets.hour_s * 1000;
    }
    if (strcmp(w, "day") == 0) {
        return (int64_t)cfg->budgets.day_s * 1000;
    }
    return 0;
}

cJSON *api_budget_cfg(const struct config *cfg, const cJSON *body, struct core_err *e)
{
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(body, "limits");
    const cJSON *policy = cJSON_GetObjectItemCaseSensitive(body, "policy");
    const cJSON *f, *l;
    cJSON *out, *list;
    bool seen[3] = {false, false, false};
    int i = 0;

    if (!cJSON_IsObject(body)) {
        core_err_set(e, CORE_EINVAL, NULL, "The request body must be a JSON object");
        return NULL;
    }
    cJSON_ArrayForEach(f, body)
    {
        if (strcmp(f->string, "limits") != 0 && strcmp(f->string, "policy") != 0) {
            core_err_set(e, CORE_EINVAL, f->string,
                         "Unknown field '%.64s' of a budget: it has limits and policy", f->string);
            return NULL;
        }
    }
    if (!cJSON_IsString(policy) ||
        (strcmp(policy->valuestring, "reject") != 0 && strcmp(policy->valuestring, "pace") != 0)) {
        core_err_set(e, CORE_EINVAL, "policy", "'policy' must be \"reject\" or \"pace\"");
        return NULL;
    }
    if (!cJSON_IsArray(limits) || cJSON_GetArraySize(limits) < 1 ||
        cJSON_GetArraySize(limits) > 3) {
        core_err_set(e, CORE_EINVAL, "limits",
                     "'limits' must be a list of 1 to 3 {window, max_usd}, one per window");
        return NULL;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "policy", policy->valuestring);
    list = cJSON_AddArrayToObject(out, "limits");
    cJSON_ArrayForEach(l, limits)
    {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(l, "window");
        const cJSON *max = cJSON_GetObjectItemCaseSensitive(l, "max_usd");
        char param[32];
        int k = -1;
        cJSON *item;

        for (int j = 0; cJSON_IsString(w) && j < 3; j++) {
            if (strcmp(w->valuestring, windows[j]) == 0) {
                k = j;
            }
        }
        snprintf(param, sizeof(param), "limits[%d].window", i);
        if (!cJSON_IsObject(l) || k < 0) {
            core_err_set(e, CORE_EINVAL, param, "'%s' must be \"hour\", \"day\" or \"month\"",
                         param);
            goto fail;
        }
        if (seen[k]) {
            core_err_set(e, CORE_EINVAL, param, "Two limits for the %s window", windows[k]);
            goto fail;
        }
        seen[k] = true;
        snprintf(param, sizeof(param), "limits[%d].max_usd", i);
        if (!cJSON_IsNumber(max) || !(max->valuedouble > 0) || max->valuedouble > BUDGET_MAX_USD) {
            core_err_set(e, CORE_EINVAL, param,
                         "'%s' must be a number of USD above 0, at most 1000000", param);
            goto fail;
        }
        item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "window", windows[k]);
        cJSON_AddNumberToObject(item, "ms", (double)window_ms(cfg, windows[k]));
        cJSON_AddNumberToObject(item, "max", floor(max->valuedouble * 1e9 + 0.5));
        cJSON_AddNumberToObject(item, "max_usd", max->valuedouble);
        cJSON_AddItemToArray(list, item);
        i++;
    }
    return out;
fail:
    cJSON_Delete(out);
    return NULL;
}

cJSON *api_budget_public(const char *stored)
{
    cJSON *cfg = cJSON_Parse(stored), *out, *list;
    const cJSON *l;

    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return NULL;
    }
    out = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(out, "limits");
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(cfg, "limits"))
    {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddItemToObject(item, "window",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(l, "window"), true));
        cJSON_AddItemToObject(
            item, "max_usd", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(l, "max_usd"), true));
        cJSON_AddItemToArray(list, item);
    }
    cJSON_AddItemToObject(out, "policy",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cfg, "policy"), true));
    cJSON_Delete(cfg);
    return out;
}

/* The budget object of a GET reply (r->cfg not NULL) for tenant. */
static cJSON *budget_json(const char *tenant, const struct txn_budget_reply *r, int64_t now_ms)
{
    cJSON *cfg = cJSON_Parse(r->cfg), *o = cJSON_CreateObject(), *list;
    const cJSON *l;
    size_t i = 0;

    cJSON_AddStringToObject(o, "object", "budget");
    cJSON_AddStringToObject(o, "tenant", tenant);
    cJSON_AddItemToObject(o, "policy",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cfg, "policy"), true));
    list = cJSON_AddArrayToObject(o, "limits");
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(cfg, "limits"))
    {
        const cJSON *max = cJSON_GetObjectItemCaseSensitive(l, "max");
        double cap = cJSON_IsNumber(max) ? max->valuedouble : 0;
        cJSON *item = cJSON_CreateObject();
        const struct txn_budget_window *w = i < r->n ? &r->windows[i] : NULL;
        double used = w ? (double)w->used : 0;

        cJSON_AddItemToObject(item, "window",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(l, "window"), true));
        cJSON_AddNumberToObject(item, "max_usd", cap / 1e9);
        cJSON_AddNumberToObject(item, "spent_usd", used / 1e9);
        cJSON_AddNumberToObject(item, "remaining_usd", cap > used ? (cap - used) / 1e9 : 0);
        if (w) {
            cJSON_AddNumberToObject(item, "window_start", (double)(w->start_ms / 1000));
            cJSON_AddNumberToObject(item, "window_end", (double)(w->end_ms / 1000));
            cJSON_AddNumberToObject(item, "resets_in_s",
                                    (double)((w->end_ms - now_ms + 999) / 1000));
        }
        cJSON_AddItemToArray(list, item);
        i++;
    }
    cJSON_Delete(cfg);
    return o;
}

/* One BUDGET op for the tenant in c->id ("t:" + tenant in c->orig_id). */
static int budget_op(struct api_ctx *c, struct txn_budget *b, txn_budget_cb cb)
{
    struct txn_args args;
    int rc;

    b->subject = c->orig_id;
    b->now_ms = util_now_ms();
    txn_args_init(&args);
    rc = txn_budget(c->api->store, &args, b, cb, c);
    txn_args_cleanup(&args);
    return rc;
}

static void on_got(const struct txn_budget_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->cfg == NULL) {
        api_reply_error(c->api, c->req, CORE_ENOTFOUND, "tenant", "budget_not_found",
                        "The tenant %s has no budget", c->id);
    } else {
        api_reply_json(c->api, c->req, 200, budget_json(c->id, r, util_now_ms()));
    }
    api_ctx_free(c);
}

/* After a put or a delete: the budget as it is now (GET), or 204-like {deleted}. */
static void on_written(const struct txn_budget_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct txn_budget b = {.op = TXN_BUDGET_GET};

    (void)r;
    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
        return;
    }
    if (c->mode == 1) { /* a delete */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "budget.deleted");
        cJSON_AddStringToObject(o, "tenant", c->id);
        cJSON_AddBoolToObject(o, "deleted", true);
        log_info("budget deleted", "tenant=%s", c->id);
        api_reply_json(c->api, c->req, 200, o);
        api_ctx_free(c);
        return;
    }
    log_info("budget set", "tenant=%s", c->id);
    if (budget_op(c, &b, on_got) < 0) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
    }
}

/* The admin check and the tenant of the path, into a new context (NULL: answered). */
static struct api_ctx *budget_ctx(struct api *a, struct evhttp_request *req, const char *arg)
{
    char tenant[BUDGET_TENANT_MAX + 1];
    struct api_ctx *c;

    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return NULL;
    }
    if (!tenant_of_path(arg, tenant, sizeof(tenant))) {
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "unknown_url",
                        "The path must be /v1/admin/tenants/{tenant}/budget, the tenant a name "
                        "of at most %d letters, digits, '_', '-' or '.'",
                        BUDGET_TENANT_MAX);
        return NULL;
    }
    c = api_ctx_new(a, req, NULL);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return NULL;
    }
    snprintf(c->id, sizeof(c->id), "%s", tenant);
    snprintf(c->orig_id, sizeof(c->orig_id), "t:%s", tenant);
    return c;
}

void api_budgets_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    struct api_ctx *c = budget_ctx(a, req, arg);
    struct txn_budget b = {.op = TXN_BUDGET_GET};

    (void)tenant;
    if (c != NULL && budget_op(c, &b, on_got) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

void api_budgets_put(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    struct api_ctx *c = budget_ctx(a, req, arg);
    struct txn_budget b = {.op = TXN_BUDGET_PUT};
    const char *raw;
    size_t raw_len;
    cJSON *body, *cfg;
    char *text;
    struct core_err e;

    (void)tenant;
    if (c == NULL) {
        return;
    }
    body = api_read_json(a, req, &raw, &raw_len);
    if (body == NULL) {
        api_ctx_free(c);
        return;
    }
    core_err_clear(&e);
    cfg = api_budget_cfg(a->cfg, body, &e);
    cJSON_Delete(body);
    if (cfg == NULL) {
        api_reply_err(a, req, &e);
        api_ctx_free(c);
        return;
    }
    text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    b.cfg = text;
    if (text == NULL || budget_op(c, &b, on_written) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
    cJSON_free(text);
}

void api_budgets_delete(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg)
{
    struct api_ctx *c = budget_ctx(a, req, arg);
    struct txn_budget b = {.op = TXN_BUDGET_DELETE};

    (void)tenant;
    if (c == NULL) {
        return;
    }
    c->mode = 1;
    if (budget_op(c, &b, on_written) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}
