/*
 * api/keys.c — the bearer keys an api process accepts (what and why: api/keys.h): the config's
 * keys, and the table of the keys kept in Redis, polled for changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "api/internal.h"
#include "api/keys.h"
#include "core/log.h"
#include "core/txn_keys.h"
#include "core/util.h"

#define KEYS_BUCKETS 4096 /* a power of two */
#define KEYS_MODELS_MAX 256

/* A Redis key: its secret's hash and its identity. */
struct entry {
    unsigned char sha[32];
    struct api_key_ref ref;
    uint64_t seen; /* the load that last listed it */
    struct entry *next;
};

/* An interned tenant name. */
struct tenant_name {
    struct tenant_name *next;
    char name[];
};

struct api_keys {
    struct api *api;
    struct event *timer;
    struct txn_args args;
    bool busy;       /* a LOAD is in flight */
    bool again;      /* a refresh was asked for while one was: check again at its answer */
    bool down;       /* the last LOAD failed (logged once until one succeeds) */
    int64_t version; /* of the records loaded; -1 none yet */
    uint64_t gen;    /* moves on every change of the table */
    uint64_t loads;  /* loads applied (entry.seen) */
    struct api_key_ref *cfg_refs; /* the config's keys, in the config's order */
    size_t n_cfg;
    struct entry *buckets[KEYS_BUCKETS];
    struct tenant_name *tenants;
};

static void load(struct api_keys *k);

static size_t bucket_of(const unsigned char sha[32])
{
    return ((size_t)sha[0] << 8 | sha[1]) & (KEYS_BUCKETS - 1);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* 64 lower-case hex characters into 32 bytes; -1 for anything else. */
static int sha_from_hex(const char *hex, unsigned char out[32])
{
    if (strlen(hex) != 64) {
        return -1;
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* The one copy of tenant kept for the process's life (NULL on OOM). Tenants are few: a list. */
static const char *intern(struct api_keys *k, const char *tenant)
{
    struct tenant_name *t;
    size_t n = strlen(tenant);

    for (t = k->tenants; t != NULL; t = t->next) {
        if (strcmp(t->name, tenant) == 0) {
            return t->name;
        }
    }
    t = malloc(sizeof(*t) + n + 1);
    if (t == NULL) {
        return NULL;
    }
    memcpy(t->name, tenant, n + 1);
    t->next = k->tenants;
    k->tenants = t;
    return t->name;
}

static struct entry *find(const struct api_keys *k, const unsigned char sha[32])
{
    for (struct entry *e = k->buckets[bucket_of(sha)]; e != NULL; e = e->next) {
        if (memcmp(e->sha, sha, 32) == 0) {
            return e;
        }
    }
    return NULL;
}

/*
 * The aliases of a record's models JSON ("" any) into ref: the configured ones, resolved once
 * here so a request compares pointers. 0, or -1 on OOM.
 */
static int set_models(const struct config *cfg, struct api_key_ref *ref, const char *models)
{
    cJSON *list, *m;
    size_t n = 0;

    if (models[0] == '\0') {
        return 0;
    }
    ref->limited = true; /* even when nothing in it parses: a limited key never becomes open */
    list = cJSON_Parse(models);
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return 0;
    }
    ref->models = calloc(KEYS_MODELS_MAX, sizeof(*ref->models));
    if (ref->models == NULL) {
        cJSON_Delete(list);
        return -1;
    }
    cJSON_ArrayForEach(m, list)
    {
        const struct config_model *cm =
            cJSON_IsString(m) ? config_model_find(cfg, m->valuestring) : NULL;
        if (cm != NULL && n < KEYS_MODELS_MAX) {
            ref->models[n++] = cm;
        }
    }
    ref->n_models = n;
    cJSON_Delete(list);
    return 0;
}

/* A record the table does not have yet: a new entry (NULL on OOM or a malformed record). */
static struct entry *entry_new(struct api_keys *k, const struct txn_key_rec *r,
                               const unsigned char sha[32])
{
    struct entry *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        return NULL;
    }
    memcpy(e->sha, sha, 32);
    snprintf(e->ref.id, sizeof(e->ref.id), "%s", r->id);
    e->ref.tenant = intern(k, r->tenant);
    e->ref.expires_s = r->expires_s;
    if (e->ref.tenant == NULL || set_models(k->api->cfg, &e->ref, r->models) < 0) {
        free(e->ref.models);
        free(e);
        return NULL;
    }
    e->next = k->buckets[bucket_of(sha)];
    k->buckets[bucket_of(sha)] = e;
    return e;
}

/* Applies a LOAD's records: new keys added, revokes marked; a key no longer listed (its record
 * gone from Redis) is refused from now on. Identities are never freed (api/keys.h). */
static void apply(struct api_keys *k, const struct txn_keys_reply *r)
{
    size_t added = 0;

    k->loads++;
    for (size_t i = 0; i < r->n; i++) {
        const struct txn_key_rec *rec = &r->recs[i];
        unsigned char sha[32];
        struct entry *e;

        if (rec->tenant[0] == '\0' || sha_from_hex(rec->sha, sha) < 0) {
            continue;
        }
        e = find(k, sha);
        if (e == NULL && (e = entry_new(k, rec, sha)) == NULL) {
            continue;
        }
        if (e->seen == 0) {
            added++;
        }
        e->seen = k->loads;
        e->ref.revoked = rec->revoked_s > 0;
    }
    for (size_t b = 0; b < KEYS_BUCKETS; b++) {
        for (struct entry *e = k->buckets[b]; e != NULL; e = e->next) {
            if (e->seen != k->loads) {
                e->ref.revoked = true;
            }
        }
    }
    k->version = r->version;
    k->gen++;
    log_info("api keys loaded", "version=%lld keys=%zu new=%zu", (long long)r->version, r->n,
             added);
}

static void on_loaded(const struct txn_keys_reply *r, const struct core_err *err, void *arg)
{
    struct api_keys *k = arg;

    k->busy = false;
    if (err != NULL) {
        if (!k->down) {
            log_warn("api keys not loaded", "error=\"%s\"", err->message);
        }
        k->down = true;
    } else {
        k->down = false;
        if (r->status != TXN_KEYS_SAME) {
            apply(k, r);
        }
    }
    if (k->again) {
        k->again = false;
        load(k);
    }
}

/* Sends a LOAD with the version the table has (its answer carries records only when it moved). */
static void load(struct api_keys *k)
{
    struct txn_keys q = {.op = TXN_KEYS_LOAD, .version = k->version};

    if (k->busy) {
        k->again = true;
        return;
    }
    k->busy = true;
    if (txn_keys(k->api->store, &k->args, &q, on_loaded, k) < 0) {
        k->busy = false;
    }
    txn_args_reset(&k->args);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    load(arg);
}

/* The config's keys as identities: "cfg:<tenant>:<index>", never limited, never expiring. */
static int config_refs(struct api_keys *k, const struct config *cfg)
{
    if (cfg->n_keys == 0) {
        return 0;
    }
    k->cfg_refs = calloc(cfg->n_keys, sizeof(*k->cfg_refs));
    if (k->cfg_refs == NULL) {
        return -1;
    }
    k->n_cfg = cfg->n_keys;
    for (size_t i = 0; i < cfg->n_keys; i++) {
        struct api_key_ref *ref = &k->cfg_refs[i];
        snprintf(ref->id, sizeof(ref->id), "cfg:%.64s:%zu", cfg->keys[i].tenant, i);
        ref->tenant = cfg->keys[i].tenant;
        ref->config = true;
    }
    return 0;
}

struct api_keys *api_keys_new(struct api *a)
{
    struct api_keys *k = calloc(1, sizeof(*k));
    struct timeval tv = {0, API_KEYS_POLL_MS * 1000};

    if (k == NULL) {
        return NULL;
    }
    k->api = a;
    k->version = -1;
    txn_args_init(&k->args);
    if (config_refs(k, a->cfg) < 0 ||
        (k->timer = event_new(a->base, -1, EV_PERSIST, on_timer, k)) == NULL ||
        event_add(k->timer, &tv) < 0) {
        api_keys_free(k);
        return NULL;
    }
    load(k);
    return k;
}

void api_keys_free(struct api_keys *k)
{
    if (k == NULL) {
        return;
    }
    if (k->timer) {
        event_free(k->timer);
    }
    for (size_t b = 0; b < KEYS_BUCKETS; b++) {
        while (k->buckets[b] != NULL) {
            struct entry *e = k->buckets[b];
            k->buckets[b] = e->next;
            free(e->ref.models);
            free(e);
        }
    }
    while (k->tenants != NULL) {
        struct tenant_name *t = k->tenants;
        k->tenants = t->next;
        free(t);
    }
    free(k->cfg_refs);
    txn_args_cleanup(&k->args);
    free(k);
}

bool api_key_ref_usable(const struct api_key_ref *ref, int64_t now_s)
{
    return ref != NULL && !ref->revoked && (ref->expires_s == 0 || ref->expires_s > now_s);
}

const struct api_key_ref *api_keys_auth(struct api_keys *k, const struct config *cfg,
                                        const char *key, size_t len, int64_t now_s)
{
    unsigned char sha[32];
    const struct api_key_ref *ref = NULL;
    struct entry *e;

    if (k == NULL) {
        return NULL;
    }
    util_sha256(key, len, sha);
    for (size_t i = 0; i < k->n_cfg && i < cfg->n_keys; i++) {
        /* No early exit: every stored hash is compared, whatever matched. */
        if (CRYPTO_memcmp(sha, cfg->keys[i].hash, sizeof(sha)) == 0) {
            ref = &k->cfg_refs[i];
        }
    }
    if (ref == NULL && (e = find(k, sha)) != NULL) {
        ref = &e->ref;
    }
    return api_key_ref_usable(ref, now_s) ? ref : NULL;
}

const struct api_key_ref *api_keys_find_id(const struct api_keys *k, const char *id)
{
    if (k == NULL || id == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < k->n_cfg; i++) {
        if (strcmp(k->cfg_refs[i].id, id) == 0) {
            return &k->cfg_refs[i];
        }
    }
    for (size_t b = 0; b < KEYS_BUCKETS; b++) {
        for (const struct entry *e = k->buckets[b]; e != NULL; e = e->next) {
            if (strcmp(e->ref.id, id) == 0) {
                return &e->ref;
            }
        }
    }
    return NULL;
}

bool api_key_allows(const struct api_key_ref *ref, const struct config_model *model)
{
    if (ref == NULL || !ref->limited) {
        return true;
    }
    for (size_t i = 0; i < ref->n_models; i++) {
        if (ref->models[i] == model) {
            return true;
        }
    }
    return false;
}

int api_key_model_check(const struct api_key_ref *key, const struct config_model *model,
                        const char *param, struct core_err *e)
{
    if (api_key_allows(key, model)) {
        return 0;
    }
    core_err_set(e, CORE_EPERM, param, "This API key may not use the model '%.128s'", model->alias);
    core_err_set_code(e, "model_not_allowed");
    return e->code;
}

uint64_t api_keys_gen(const struct api_keys *k)
{
    return k ? k->gen : 0;
}

void api_keys_refresh(struct api_keys *k)
{
    if (k != NULL) {
        load(k);
    }
}
