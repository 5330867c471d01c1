/*
 * core/config_access.c — the parts of the config that say who may do what and how much: each
 * tenant's quotas, the admin keys, the metrics listener, the private hosts artifacts may be
 * fetched from, and the connection cap derived from the descriptor limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "core/config_internal.h"
#include "core/netaddr.h"
#include "core/util.h"

/* The limits a tenant's quota object may set, each with its field and range. */
static const struct {
    const char *key;
    size_t offset;
    double min, max;
} quota_fields[] = {
    {"max_queued", offsetof(struct config_quota, max_queued), 1, 1e8},
    {"max_stored_bytes", offsetof(struct config_quota, max_stored_bytes), 1024, 1099511627776.0},
    {"max_files", offsetof(struct config_quota, max_files), 1, 1e8},
    {"max_file_bytes", offsetof(struct config_quota, max_file_bytes), 1024, 17592186044416.0},
    {"max_artifact_bytes", offsetof(struct config_quota, max_artifact_bytes), 1024,
     17592186044416.0},
    {"max_cache_bytes", offsetof(struct config_quota, max_cache_bytes), 1024, 1099511627776.0},
};

/*
 * quotas.tenants: {"name": N} (N tasks queued at most, as before) or {"name": {max_queued?,
 * max_stored_bytes?, max_files?, max_file_bytes?, max_artifact_bytes?}}; what a tenant does not set
 * is the default.
 */
int config_parse_quotas(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quotas");
    const cJSON *tenants =
        cJSON_IsObject(q) ? cJSON_GetObjectItemCaseSensitive(q, "tenants") : NULL;
    const cJSON *t;
    size_t i = 0;

    if (tenants == NULL) {
        return 0;
    }
    if (!cJSON_IsObject(tenants)) {
        return core_err_set(err, CORE_EINVAL, "quotas.tenants",
                            "quotas.tenants: must be an object");
    }
    cfg->quotas = calloc((size_t)cJSON_GetArraySize(tenants) + 1, sizeof(*cfg->quotas));
    if (cfg->quotas == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    cJSON_ArrayForEach(t, tenants)
    {
        struct config_tenant_quota *tq = &cfg->quotas[i];

        tq->q = cfg->default_quota;
        if ((tq->tenant = strdup(t->string)) == NULL) {
            return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        }
        cfg->n_quotas = ++i;
        if (cJSON_IsNumber(t) && t->valuedouble >= 1 && t->valuedouble <= 1e8) {
            tq->q.max_queued = (long)t->valuedouble;
            continue;
        }
        if (!cJSON_IsObject(t)) {
            return core_err_set(err, CORE_EINVAL, "quotas.tenants",
                                "quotas.tenants.%s: must be a number between 1 and 100000000 "
                                "or an object of limits",
                                t->string);
        }
        for (size_t k = 0; k < sizeof(quota_fields) / sizeof(quota_fields[0]); k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, quota_fields[k].key);
            if (v == NULL) {
                continue;
            }
            if (!cJSON_IsNumber(v) || v->valuedouble < quota_fields[k].min ||
                v->valuedouble > quota_fields[k].max) {
                return core_err_set(err, CORE_EINVAL, "quotas.tenants",
                                    "quotas.tenants.%s.%s: must be a number from %.0f to %.0f",
                                    t->string, quota_fields[k].key, quota_fields[k].min,
                                    quota_fields[k].max);
            }
            *(long *)((char *)&tq->q + quota_fields[k].offset) = (long)v->valuedouble;
        }
    }
    return 0;
}

const struct config_quota *config_quota_for(const struct config *cfg, const char *tenant)
{
    for (size_t i = 0; i < cfg->n_quotas; i++) {
        if (strcmp(cfg->quotas[i].tenant, tenant) == 0) {
            return &cfg->quotas[i].q;
        }
    }
    return &cfg->default_quota;
}

long config_max_queued(const struct config *cfg, const char *tenant)
{
    return config_quota_for(cfg, tenant)->max_queued;
}

/* admin_keys: ["env:NAME", ...] (or literal keys in tests), kept only as SHA-256 hashes. */
static int parse_admin_keys(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "admin_keys");
    const cJSON *k;

    if (keys == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(keys)) {
        return core_err_set(err, CORE_EINVAL, "admin_keys",
                            "admin_keys: must be an array of keys (\"env:NAME\")");
    }
    cfg->admin_keys = calloc((size_t)cJSON_GetArraySize(keys) + 1, sizeof(*cfg->admin_keys));
    if (cfg->admin_keys == NULL) {
        return core_err_set(err, CORE_ENOMEM, "admin_keys", "out of memory");
    }
    cJSON_ArrayForEach(k, keys)
    {
        char field[48];
        char *secret = NULL;
        int rc;

        snprintf(field, sizeof(field), "admin_keys[%zu]", cfg->n_admin_keys);
        if (!cJSON_IsString(k)) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be a string", field);
        }
        if ((rc = config_resolve_secret(k->valuestring, field, &secret, err)) < 0) {
            return rc;
        }
        if (strlen(secret) < 16) {
            OPENSSL_cleanse(secret, strlen(secret));
            free(secret);
            return core_err_set(err, CORE_EINVAL, field,
                                "%s: an admin key needs at least 16 characters", field);
        }
        util_sha256(secret, strlen(secret), cfg->admin_keys[cfg->n_admin_keys++]);
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    return 0;
}

bool config_is_admin_key(const struct config *cfg, const char *key)
{
    unsigned char hash[32];
    bool found = false;

    util_sha256(key, strlen(key), hash);
    for (size_t i = 0; i < cfg->n_admin_keys; i++) {
        /* No early exit: every stored hash is compared, whatever matched. */
        if (CRYPTO_memcmp(hash, cfg->admin_keys[i], sizeof(hash)) == 0) {
            found = true;
        }
    }
    return found;
}

/*
 * limits.max_connections when the file leaves it 0: the descriptor limit less what the process
 * needs besides client connections — its Redis connections, the worker's upstream calls and
 * webhook deliveries (serve runs them in the same process), files being written — so a flood of
 * clients meets sluice's cap, answered cleanly, before the kernel's EMFILE.
 */
static long derived_max_connections(const struct config *cfg)
{
    struct rlimit rl;
    long nofile = 1024;
    long reserve = cfg->worker.concurrency + 64 /* webhooks */ + 128 /* Redis, files, logs */;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        nofile = (long)rl.rlim_cur;
    } else if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        nofile = 1L << 20;
    }
    return nofile - reserve > 32 ? nofile - reserve : 32;
}

int config_parse_access(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const char *metrics = config_get_string(root, "metrics_listen");
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(root, "blobs");
    const cJSON *allow =
        cJSON_IsObject(blobs) ? cJSON_GetObjectItemCaseSensitive(blobs, "allow_hosts") : NULL;
    const cJSON *v;
    int rc;

    if ((rc = parse_admin_keys(cfg, root, err)) < 0) {
        return rc;
    }
    if (metrics != NULL &&
        (rc = config_parse_host_port(metrics, "metrics_listen", &cfg->metrics_host,
                                     &cfg->metrics_port, err)) < 0) {
        return rc;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "metrics_listen") != NULL && metrics == NULL) {
        return core_err_set(err, CORE_EINVAL, "metrics_listen",
                            "metrics_listen: must be \"host:port\"");
    }
    if ((cfg->blobs.allow = netaddr_allow_new()) == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    if (allow != NULL && !cJSON_IsArray(allow)) {
        return core_err_set(err, CORE_EINVAL, "blobs.allow_hosts",
                            "blobs.allow_hosts: must be an array of names, addresses or CIDRs");
    }
    cJSON_ArrayForEach(v, allow)
    {
        if (!cJSON_IsString(v) || netaddr_allow_add(cfg->blobs.allow, v->valuestring) < 0) {
            return core_err_set(err, CORE_EINVAL, "blobs.allow_hosts",
                                "blobs.allow_hosts: \"%s\" is not a host name, address or CIDR "
                                "range",
                                cJSON_IsString(v) ? v->valuestring : "?");
        }
    }
    if (cfg->limits.max_connections == 0) {
        cfg->limits.max_connections = derived_max_connections(cfg);
    }
    return 0;
}

void config_access_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_quotas; i++) {
        free(cfg->quotas[i].tenant);
    }
    free(cfg->quotas);
    free(cfg->admin_keys);
    free(cfg->metrics_host);
    netaddr_allow_free(cfg->blobs.allow);
}
