/*
 * api/admin_keys.c — API keys kept as data (admin keys only): POST /v1/admin/keys makes one for a
 * tenant and answers its secret this once; GET /v1/admin/keys?tenant= lists them (never a
 * secret); POST /v1/admin/keys/{id}/revoke revokes one. Redis keeps a key's SHA-256, never the
 * key (core/lua/keys.lua), and every api process accepts or refuses keys from its table of them
 * (api/keys.h), which sees a create or a revoke within API_KEYS_POLL_MS.
 *
 * A key may carry `models` (the aliases it may use; others are 403 model_not_allowed), an
 * `expires_at` (Unix s; from then on it is refused as an unknown key) and a `budget` (the
 * budget's shape, stored as the key record's `budget` for the budget code to read).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>

#include "api/internal.h"
#include "core/log.h"
#include "core/txn_keys.h"
#include "core/util.h"

#define KEYS_LIST_DEFAULT 20
#define KEYS_LIST_MAX 100
#define KEY_PREFIX "sk-sluice-"
#define KEY_SECRET_CHARS 40 /* base32: 200 bits */
#define KEY_TENANT_MAX 64
#define KEY_NAME_MAX 128
#define KEY_MODELS_MAX 64
#define KEY_EXPIRES_MAX 253402300799LL /* 9999-12-31 */

static const char *const key_fields[] = {"tenant", "name", "budget", "expires_at", "models"};
static const char *const windows[] = {"hour", "day", "month"};

/* A tenant's name: 1 to KEY_TENANT_MAX letters, digits, '_', '-' or '.'. */
static bool tenant_valid(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > KEY_TENANT_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.')) {
            return false;
        }
    }
    return true;
}

/* A budget's shape: {"limits": [{"window", "max_usd" > 0}, ...], "policy": "reject"|"pace"}. */
static int budget_check(const cJSON *b, struct core_err *e)
{
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(b, "limits");
    const cJSON *policy = cJSON_GetObjectItemCaseSensitive(b, "policy");
    const cJSON *f, *l;
    bool seen[3] = {false, false, false};

    if (!cJSON_IsObject(b)) {
        return core_err_set(e, CORE_EINVAL, "budget",
                            "'budget' must be an object {limits, policy}");
    }
    cJSON_ArrayForEach(f, b)
    {
        if (strcmp(f->string, "limits") != 0 && strcmp(f->string, "policy") != 0) {
            return core_err_set(e, CORE_EINVAL, "budget",
                                "Unknown field '%.64s' of 'budget': it has limits and policy",
                                f->string);
        }
    }
    if (!cJSON_IsString(policy) ||
        (strcmp(policy->valuestring, "reject") != 0 && strcmp(policy->valuestring, "pace") != 0)) {
        return core_err_set(e, CORE_EINVAL, "budget.policy",
                            "'budget.policy' must be \"reject\" or \"pace\"");
    }
    if (!cJSON_IsArray(limits) || cJSON_GetArraySize(limits) < 1 ||
        cJSON_GetArraySize(limits) > 3) {
        return core_err_set(e, CORE_EINVAL, "budget.limits",
                            "'budget.limits' must be a list of 1 to 3 {window, max_usd}");
    }
    cJSON_ArrayForEach(l, limits)
    {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(l, "window");
        const cJSON *max = cJSON_GetObjectItemCaseSensitive(l, "max_usd");
        int k = -1;

        for (int j = 0; cJSON_IsString(w) && j < 3; j++) {
            if (strcmp(w->valuestring, windows[j]) == 0) {
                k = j;
            }
        }
        if (!cJSON_IsObject(l) || k < 0 || seen[k]) {
            return core_err_set(e, CORE_EINVAL, "budget.limits",
                                "Each of 'budget.limits' needs a window \"hour\", \"day\" or "
                                "\"month\", each window at most once");
        }
        seen[k] = true;
        if (!cJSON_IsNumber(max) || !(max->valuedouble > 0) || max->valuedouble > 1e9) {
            return core_err_set(e, CORE_EINVAL, "budget.limits",
                                "Each of 'budget.limits' needs a 'max_usd' above 0");
        }
    }
    return 0;
}

/* The models list: configured aliases, 1 to KEY_MODELS_MAX of them; written as JSON (caller
 * frees) into *out. */
static int models_check(const struct config *cfg, const cJSON *m, char **out, struct core_err *e)
{
    const cJSON *it;
    cJSON *list;

    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) < 1 || cJSON_GetArraySize(m) > KEY_MODELS_MAX) {
        return core_err_set(e, CORE_EINVAL, "models",
                            "'models' must be a list of 1 to %d model aliases", KEY_MODELS_MAX);
    }
    cJSON_ArrayForEach(it, m)
    {
        if (!cJSON_IsString(it) || config_model_find(cfg, it->valuestring) == NULL) {
            return core_err_set(e, CORE_EINVAL, "models",
                                "'models' must name configured aliases; '%.128s' is not one",
                                cJSON_IsString(it) ? it->valuestring : "(not a string)");
        }
    }
    list = cJSON_Duplicate(m, true);
    *out = list ? cJSON_PrintUnformatted(list) : NULL;
    cJSON_Delete(list);
    return *out ? 0 : core_err_set(e, CORE_ENOMEM, NULL, "Out of memory");
}

/* What a create body says, checked; strings borrowed from the body, models and budget owned. */
struct key_spec {
    const char *tenant, *name;
    char *models, *budget;
    int64_t expires_s;
};

static void spec_cleanup(struct key_spec *s)
{
    cJSON_free(s->models);
    cJSON_free(s->budget);
}

/* Checks a POST /v1/admin/keys body into s (cleaned up by the caller either way). */
static int spec_check(const struct config *cfg, const cJSON *body, int64_t now_s,
                      struct key_spec *s, struct core_err *e)
{
    const cJSON *tenant = cJSON_GetObjectItemCaseSensitive(body, "tenant");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *budget = cJSON_GetObjectItemCaseSensitive(body, "budget");
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(body, "expires_at");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(body, "models");
    const cJSON *f;

    if (!cJSON_IsObject(body)) {
        return core_err_set(e, CORE_EINVAL, NULL, "The request body must be a JSON object");
    }
    cJSON_ArrayForEach(f, body)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(key_fields) / sizeof(key_fields[0]); i++) {
            known = known || strcmp(f->string, key_fields[i]) == 0;
        }
        if (!known) {
            return core_err_set(e, CORE_EINVAL, f->string,
                                "Unknown field '%.64s': a key has tenant, name, budget, "
                                "expires_at and models",
                                f->string);
        }
    }
    if (!cJSON_IsString(tenant) || !tenant_valid(tenant->valuestring)) {
        return core_err_set(e, CORE_EINVAL, "tenant",
                            "'tenant' must be a name of 1 to %d letters, digits, '_', '-' or '.'",
                            KEY_TENANT_MAX);
    }
    s->tenant = tenant->valuestring;
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0' ||
        strlen(name->valuestring) > KEY_NAME_MAX) {
        return core_err_set(e, CORE_EINVAL, "name", "'name' must be a string of 1 to %d bytes",
                            KEY_NAME_MAX);
    }
    for (const char *p = name->valuestring; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return core_err_set(e, CORE_EINVAL, "name", "'name' must not hold control characters");
        }
    }
    s->name = name->valuestring;
    if (expires != NULL && !cJSON_IsNull(expires)) {
        if (!cJSON_IsNumber(expires) ||
            expires->valuedouble != (double)(int64_t)expires->valuedouble ||
            expires->valuedouble <= (double)now_s || expires->valuedouble > KEY_EXPIRES_MAX) {
            return core_err_set(e, CORE_EINVAL, "expires_at",
                                "'expires_at' must be a time in the future, in whole Unix seconds");
        }
        s->expires_s = (int64_t)expires->valuedouble;
    }
    if (models != NULL && !cJSON_IsNull(models) && models_check(cfg, models, &s->models, e) < 0) {
        return e->code;
    }
    if (budget != NULL && !cJSON_IsNull(budget)) {
        if (budget_check(budget, e) < 0) {
            return e->code;
        }
        /* kept in the budgets' stored form (windows' lengths, caps in nano-USD), which CLAIM
         * reads for the key (api/budgets.c) */
        cJSON *stored = api_budget_cfg(cfg, budget, e);
        if (stored == NULL) {
            return e->code;
        }
        s->budget = cJSON_PrintUnformatted(stored);
        cJSON_Delete(stored);
        if (s->budget == NULL) {
            return core_err_set(e, CORE_ENOMEM, NULL, "Out of memory");
        }
    }
    return 0;
}

/* KEY_PREFIX + KEY_SECRET_CHARS random base32 characters into out. 0, or -1 (no randomness). */
static int new_secret(char out[sizeof(KEY_PREFIX) + KEY_SECRET_CHARS])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char bytes[KEY_SECRET_CHARS * 5 / 8];
    size_t o = sizeof(KEY_PREFIX) - 1;
    unsigned acc = 0;
    int bits = 0;

    if (RAND_bytes(bytes, (int)sizeof(bytes)) != 1) {
        return -1;
    }
    memcpy(out, KEY_PREFIX, o);
    for (size_t i = 0; i < sizeof(bytes); i++) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    out[o] = '\0';
    OPENSSL_cleanse(bytes, sizeof(bytes));
    return 0;
}

/* A key's object as the admin API shows it (never the secret: the create answer adds it). */
static cJSON *key_json(const struct txn_key_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *models = r->models[0] ? cJSON_Parse(r->models) : NULL;
    cJSON *budget = r->budget[0] ? api_budget_public(r->budget) : NULL;

    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", "api_key");
    cJSON_AddStringToObject(o, "tenant", r->tenant);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddItemToObject(o, "models", models ? models : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "created_at", (double)r->created_s);
    if (r->expires_s > 0) {
        cJSON_AddNumberToObject(o, "expires_at", (double)r->expires_s);
    } else {
        cJSON_AddNullToObject(o, "expires_at");
    }
    if (r->revoked_s > 0) {
        cJSON_AddNumberToObject(o, "revoked_at", (double)r->revoked_s);
    } else {
        cJSON_AddNullToObject(o, "revoked_at");
    }
    cJSON_AddItemToObject(o, "budget", budget ? budget : cJSON_CreateNull());
    return o;
}

/* One API_KEYS call for c (answered by cb). */
static int keys_op(struct api_ctx *c, const struct txn_keys *k, txn_keys_cb cb)
{
    struct txn_args args;
    int rc;

    txn_args_init(&args);
    rc = txn_keys(c->api->store, &args, k, cb, c);
    txn_args_cleanup(&args);
    return rc;
}

static void on_created(const struct txn_keys_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *o;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->status != TXN_KEYS_OK || r->n != 1) {
        /* the same 200 bits twice: never in practice; the client may simply ask again */
        api_reply_error(c->api, c->req, CORE_ECONFLICT, NULL, "key_exists",
                        "A key with this id or secret exists already; try again");
    } else {
        o = key_json(&r->recs[0]);
        cJSON_AddStringToObject(o, "key", c->task_text);
        log_info("api key created", "id=%s tenant=%s", r->recs[0].id, r->recs[0].tenant);
        api_keys_refresh(c->api->keys);
        api_reply_json(c->api, c->req, 201, o);
    }
    /* the secret is shown once: no copy stays behind */
    OPENSSL_cleanse(c->task_text, strlen(c->task_text));
    api_ctx_free(c);
}

void api_admin_keys_create(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    struct key_spec s = {0};
    struct txn_keys k = {.op = TXN_KEYS_CREATE};
    struct api_ctx *c = NULL;
    const char *raw;
    size_t raw_len;
    char secret[sizeof(KEY_PREFIX) + KEY_SECRET_CHARS], sha[65];
    struct core_err e;
    cJSON *body;

    (void)tenant;
    (void)arg;
    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return;
    }
    body = api_read_json(a, req, &raw, &raw_len);
    if (body == NULL) {
        return;
    }
    core_err_clear(&e);
    k.created_s = util_now_ms() / 1000;
    if (spec_check(a->cfg, body, k.created_s, &s, &e) < 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    c = api_ctx_new(a, req, NULL);
    if (c == NULL || new_secret(secret) < 0 || util_random_id("key_", c->id, sizeof(c->id)) < 0 ||
        (c->task_text = cJSON_malloc(sizeof(secret))) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        api_ctx_free(c);
        goto out;
    }
    memcpy(c->task_text, secret, sizeof(secret)); /* for the answer, then cleansed */
    util_sha256_hex(secret, strlen(secret), sha);
    OPENSSL_cleanse(secret, sizeof(secret));
    k.id = c->id;
    k.tenant = s.tenant;
    k.name = s.name;
    k.sha = sha;
    k.models = s.models;
    k.budget = s.budget;
    k.expires_s = s.expires_s;
    if (keys_op(c, &k, on_created) < 0) {
        api_reply_store_down(a, req);
        OPENSSL_cleanse(c->task_text, strlen(c->task_text));
        api_ctx_free(c);
    }
out:
    spec_cleanup(&s);
    cJSON_Delete(body);
}

static void on_listed(const struct txn_keys_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    cJSON *o, *data;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
        return;
    }
    data = cJSON_CreateArray();
    for (size_t i = 0; data != NULL && i < r->n; i++) {
        cJSON_AddItemToArray(data, key_json(&r->recs[i]));
    }
    o = api_list_page(data, r->status == TXN_KEYS_MORE);
    api_reply_json(c->api, c->req, 200, o);
    api_ctx_free(c);
}

void api_admin_keys_list(struct api *a, struct evhttp_request *req, const char *tenant,
                         const char *arg)
{
    static const struct api_list_spec spec = {KEYS_LIST_DEFAULT, KEYS_LIST_MAX, "key_", "key"};
    struct txn_keys k = {.op = TXN_KEYS_LIST};
    struct evkeyvalq params;
    struct api_ctx *c;
    const char *t, *after;
    long limit;

    (void)tenant;
    (void)arg;
    TAILQ_INIT(&params);
    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return;
    }
    if (api_list_query(a, req, &params, &spec, &limit, &after) < 0) {
        goto out;
    }
    t = evhttp_find_header(&params, "tenant");
    if (t != NULL && !tenant_valid(t)) {
        api_reply_error(a, req, CORE_EINVAL, "tenant", NULL,
                        "'tenant' must be a name of 1 to %d letters, digits, '_', '-' or '.'",
                        KEY_TENANT_MAX);
        goto out;
    }
    c = api_ctx_new(a, req, NULL);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    k.tenant = t;
    k.after = after;
    k.limit = limit;
    if (keys_op(c, &k, on_listed) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
out:
    evhttp_clear_headers(&params);
}

static void on_revoked(const struct txn_keys_reply *r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (r->status == TXN_KEYS_NOT_FOUND || r->n != 1) {
        api_reply_error(c->api, c->req, CORE_ENOTFOUND, NULL, "key_not_found", "No key %s", c->id);
    } else {
        log_info("api key revoked", "id=%s tenant=%s", r->recs[0].id, r->recs[0].tenant);
        api_keys_refresh(c->api->keys);
        api_reply_json(c->api, c->req, 200, key_json(&r->recs[0]));
    }
    api_ctx_free(c);
}

void api_admin_keys_revoke(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    struct txn_keys k = {.op = TXN_KEYS_REVOKE};
    struct api_ctx *c;

    (void)tenant;
    if (!api_admin_authorized(a, req)) {
        api_reply_admin_required(a, req);
        return;
    }
    if (arg == NULL || !util_id_valid("key_", arg)) {
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "key_not_found", "No key %.64s",
                        arg ? arg : "");
        return;
    }
    c = api_ctx_new(a, req, NULL);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return;
    }
    snprintf(c->id, sizeof(c->id), "%s", arg);
    k.id = c->id;
    k.now_s = util_now_ms() / 1000;
    if (keys_op(c, &k, on_revoked) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}
