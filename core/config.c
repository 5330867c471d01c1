/*
 * core/config.c — loading and validating sluice.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "core/artifact_url.h"
#include "core/config.h"
#include "core/config_internal.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/util.h"

#define CONFIG_MAX_FILE_BYTES (4 * 1024 * 1024)

/* Numeric settings: section, key, where it lives in struct config, bounds and default. */
struct num_option {
    const char *section;
    const char *key;
    size_t offset;
    long min;
    long max;
    long def;
};

#define OPT(sec, field, key, lo, hi, d)                                                            \
    {                                                                                              \
        sec, key, offsetof(struct config, field), lo, hi, d                                        \
    }

static const struct num_option num_options[] = {
    OPT("limits", limits.max_body_bytes, "max_body_bytes", 1024, 64L << 20, 8L << 20),
    OPT("limits", limits.max_header_bytes, "max_header_bytes", 1024, 1L << 20, 16384),
    OPT("limits", limits.max_json_depth, "max_json_depth", 4, 512, 64),
    OPT("limits", limits.request_timeout_s, "request_timeout_s", 1, 3600, 30),
    OPT("limits", limits.max_list_limit, "max_list_limit", 1, 1000, 100),
    OPT("limits", limits.sync_wait_s, "sync_wait_s", 1, 3600, 600),
    OPT("limits", limits.max_connections, "max_connections", 0, 10000000, 0),
    OPT("limits", limits.header_timeout_s, "header_timeout_s", 1, 600, 10),
    OPT("limits", limits.min_body_rate, "min_body_rate", 0, 1L << 30, 1024),
    OPT("limits", limits.body_rate_window_s, "body_rate_window_s", 1, 600, 10),
    OPT("blobs", blobs.max_bytes, "max_bytes", 1024, 1L << 34, 1L << 30),
    OPT("blobs", blobs.url_ttl_s, "url_ttl_s", 1, 7L * 86400, 3600),
    OPT("files", files.max_bytes, "max_bytes", 1024, 1L << 30, 200L << 20),
    OPT("files", files.max_lines, "max_lines", 1, 10000000, 50000),
    OPT("batches", batches.lease_ms, "lease_ms", 1000, 3600000, 60000),
    OPT("batches", batches.poll_ms, "poll_ms", 50, 60000, 500),
    OPT("batches", batches.window_s, "window_s", 1, 30L * 86400, 86400),
    OPT("budgets", budgets.hour_s, "hour_s", 1, 3600, 3600),
    OPT("budgets", budgets.day_s, "day_s", 1, 86400, 86400),
    OPT("usage", usage.retention_days, "retention_days", 1, 3650, 90),
    OPT("pipelines", pipelines.max_steps, "max_steps", 1, 256, 32),
    OPT("pipelines", pipelines.max_fan_out, "max_fan_out", 1, 10000, 100),
    OPT("pipelines", pipelines.lease_ms, "lease_ms", 1000, 3600000, 60000),
    OPT("pipelines", pipelines.poll_ms, "poll_ms", 10, 60000, 200),
    OPT("tasks", tasks.max_attempts, "max_attempts", 1, 100, 3),
    OPT("tasks", tasks.lease_ms, "lease_ms", 500, 3600000, 30000),
    OPT("tasks", tasks.retention_s, "retention_s", 1, 365L * 86400, 86400),
    OPT("tasks", tasks.backoff_base_ms, "backoff_base_ms", 1, 3600000, 1000),
    OPT("tasks", tasks.backoff_max_ms, "backoff_max_ms", 1, 86400000, 60000),
    OPT("worker", worker.concurrency, "concurrency", 1, 100000, 256),
    OPT("worker", worker.claim_batch, "claim_batch", 1, 1000, 32),
    OPT("worker", worker.shutdown_grace_ms, "shutdown_grace_ms", 0, 3600000, 10000),
    OPT("worker", worker.max_response_bytes, "max_response_bytes", 1024, 1L << 30, 16L << 20),
    OPT("scheduler", scheduler.tick_ms, "tick_ms", 10, 60000, 500),
    OPT("scheduler", scheduler.burst_ms, "burst_ms", 50, 60000, 1000),
    OPT("scheduler", scheduler.pace_pct, "pace_pct", 50, 100, 97),
    OPT("breaker", breaker.min_requests, "min_requests", 1, 100000, 10),
    OPT("breaker", breaker.failure_pct, "failure_pct", 1, 100, 50),
    OPT("breaker", breaker.window_ms, "window_ms", 100, 3600000, 30000),
    OPT("breaker", breaker.open_ms, "open_ms", 100, 3600000, 15000),
    OPT("quotas", default_quota.max_queued, "default_max_queued", 1, 100000000, 100000),
    OPT("quotas", default_quota.max_stored_bytes, "default_max_stored_bytes", 1024, 1L << 40,
        1L << 30),
    OPT("quotas", default_quota.max_files, "default_max_files", 1, 100000000, 10000),
    OPT("quotas", default_quota.max_file_bytes, "default_max_file_bytes", 1024, 1L << 44,
        20L << 30),
    OPT("quotas", default_quota.max_artifact_bytes, "default_max_artifact_bytes", 1024, 1L << 44,
        20L << 30),
    OPT("quotas", default_quota.max_cache_bytes, "default_max_cache_bytes", 1024, 1L << 40,
        256L << 20),
    OPT(NULL, redis_timeout_ms, "redis_timeout_ms", 10, 600000, 2000),
};

static const char *const known_strategies[] = {"cost", "latency", "weighted", "ordered", NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0) {
            return true;
        }
    }
    return false;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/*
 * Resolves a secret reference: "env:NAME" reads the environment, anything else is the literal
 * value. *out is NULL when the value is missing. Returns 0 or CORE_EINVAL naming field.
 */
int config_resolve_secret(const char *value, const char *field, char **out, struct core_err *err)
{
    *out = NULL;
    if (strncmp(value, "env:", 4) == 0) {
        const char *v = getenv(value + 4);
        if (v == NULL || v[0] == '\0') {
            return core_err_set(err, CORE_EINVAL, field, "%s: environment variable %s is not set",
                                field, value + 4);
        }
        *out = strdup(v);
    } else {
        *out = strdup(value);
    }
    return *out ? 0 : core_err_set(err, CORE_ENOMEM, field, "out of memory");
}

int config_parse_host_port(const char *s, const char *field, char **host, int *port,
                           struct core_err *err)
{
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long p;

    if (colon == NULL || colon == s) {
        return core_err_set(err, CORE_EINVAL, field, "%s: expected host:port, got \"%s\"", field,
                            s);
    }
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535) {
        return core_err_set(err, CORE_EINVAL, field, "%s: bad port in \"%s\"", field, s);
    }
    *host = strndup(s, (size_t)(colon - s));
    *port = (int)p;
    return *host ? 0 : core_err_set(err, CORE_ENOMEM, field, "out of memory");
}

/* redis://[:password@]host[:port][/db], parsed with curl_url(). */
static int parse_redis_url(struct config *cfg, const char *url, struct core_err *err)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *path = NULL, *password = NULL;
    int rc = 0;

    if (u == NULL) {
        return core_err_set(err, CORE_ENOMEM, "redis", "out of memory");
    }
    if (strncmp(url, "redis://", 8) != 0 ||
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = core_err_set(err, CORE_EINVAL, "redis",
                          "redis: expected redis://host:port/db, got \"%s\"", url);
        goto out;
    }
    cfg->redis_host = strdup(host);
    cfg->redis_port = 6379;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
        cfg->redis_port = atoi(port);
    }
    cfg->redis_db = 0;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path[0] == '/' && path[1]) {
        char *end = NULL;
        long db = strtol(path + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 15) {
            rc = core_err_set(err, CORE_EINVAL, "redis", "redis: bad database number in \"%s\"",
                              url);
            goto out;
        }
        cfg->redis_db = (int)db;
    }
    if (curl_url_get(u, CURLUPART_PASSWORD, &password, CURLU_URLDECODE) == CURLUE_OK &&
        password[0]) {
        cfg->redis_password = strdup(password);
    }
out:
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(password);
    curl_url_cleanup(u);
    return rc;
}

static int parse_numbers(struct config *cfg, const cJSON *root, struct core_err *err)
{
    for (size_t i = 0; i < sizeof(num_options) / sizeof(num_options[0]); i++) {
        const struct num_option *o = &num_options[i];
        const cJSON *sec = o->section ? cJSON_GetObjectItemCaseSensitive(root, o->section) : root;
        const cJSON *v = cJSON_IsObject(sec) ? cJSON_GetObjectItemCaseSensitive(sec, o->key) : NULL;
        long *slot = (long *)((char *)cfg + o->offset);
        char field[64];

        snprintf(field, sizeof(field), "%s%s%s", o->section ? o->section : "",
                 o->section ? "." : "", o->key);
        if (o->section && sec && !cJSON_IsObject(sec)) {
            return core_err_set(err, CORE_EINVAL, o->section, "%s: must be an object", o->section);
        }
        *slot = o->def;
        if (v == NULL) {
            continue;
        }
        if (!cJSON_IsNumber(v)) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be an integer", field);
        }
        /* Range first, in double: casting an out-of-range double to long is undefined. */
        if (v->valuedouble < (double)o->min || v->valuedouble > (double)o->max) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be between %ld and %ld", field,
                                o->min, o->max);
        }
        if (v->valuedouble != (double)(long)v->valuedouble) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be an integer", field);
        }
        *slot = (long)v->valuedouble;
    }
    return 0;
}

const char *config_get_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * The log section: `log: {level, format}`; the older top-level `log_level` still sets the level
 * (both at once is refused, so no file says two things). Unset: info, logfmt.
 */
static int parse_log(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(root, "log");
    const char *level = config_get_string(root, "log_level"), *field = "log_level", *format = NULL;
    int f = LOG_FORMAT_LOGFMT;

    if (log != NULL && !cJSON_IsObject(log)) {
        return core_err_set(err, CORE_EINVAL, "log", "log: must be an object {level, format}");
    }
    if (cJSON_GetObjectItemCaseSensitive(log, "level") != NULL) {
        if (level != NULL) {
            return core_err_set(err, CORE_EINVAL, "log.level",
                                "log.level: set either log.level or log_level, not both");
        }
        level = config_get_string(log, "level");
        field = "log.level";
        if (level == NULL) {
            level = "";
        }
    }
    if (level != NULL && log_level_parse(level) < 0) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be one of debug, info, warn, error",
                            field);
    }
    if (cJSON_GetObjectItemCaseSensitive(log, "format") != NULL &&
        ((format = config_get_string(log, "format")) == NULL ||
         (f = log_format_parse(format)) < 0)) {
        return core_err_set(err, CORE_EINVAL, "log.format",
                            "log.format: must be \"logfmt\" or \"json\"");
    }
    cfg->log_level = xstrdup(level ? level : "info");
    cfg->log_format = (enum log_format)f;
    return 0;
}

/*
 * public_base_url and callback_base_url (field names which): an http(s) URL with a host, no
 * credentials, query or fragment, kept in *slot without a trailing '/', so a URL under it is
 * base + "/v1/...". public_base_url absent: the api uses each request's Host header;
 * callback_base_url absent: providers are not asked for callbacks.
 */
static int parse_base_url(const cJSON *root, const char *field, char **slot, struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    CURLU *u = NULL;
    char *host = NULL, *query = NULL, *fragment = NULL, *user = NULL;
    size_t len;
    int rc = 0;

    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsString(v) || (strncmp(v->valuestring, "http://", 7) != 0 &&
                               strncmp(v->valuestring, "https://", 8) != 0)) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be an http:// or https:// URL",
                            field);
    }
    len = strlen(v->valuestring);
    while (len > 0 && v->valuestring[len - 1] == '/') {
        len--;
    }
    if ((u = curl_url()) == NULL) {
        return core_err_set(err, CORE_ENOMEM, field, "out of memory");
    }
    if (len >= ARTIFACT_URL_BASE_MAX || curl_url_set(u, CURLUPART_URL, v->valuestring, 0) != 0 ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != 0 ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == 0 ||
        curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == 0 ||
        curl_url_get(u, CURLUPART_USER, &user, 0) == 0) {
        rc = core_err_set(err, CORE_EINVAL, field,
                          "%s: must be a URL with a host and no credentials, query or fragment, "
                          "shorter than %d bytes",
                          field, ARTIFACT_URL_BASE_MAX);
        goto out;
    }
    if ((*slot = strndup(v->valuestring, len)) == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, field, "out of memory");
    }
out:
    curl_free(user);
    curl_free(host);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return rc;
}

/* blobs.dir, and blobs.url_key: a secret ("env:NAME") of ARTIFACT_URL_KEY_MIN..MAX bytes. */
static int parse_blobs(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(root, "blobs");
    const char *dir = cJSON_IsObject(blobs) ? config_get_string(blobs, "dir") : NULL;
    const cJSON *key =
        cJSON_IsObject(blobs) ? cJSON_GetObjectItemCaseSensitive(blobs, "url_key") : NULL;
    size_t len;
    int rc;

    if ((cfg->blobs.dir = strdup(dir ? dir : "sluice-blobs")) == NULL) {
        return core_err_set(err, CORE_ENOMEM, "blobs.dir", "out of memory");
    }
    if (key == NULL || cJSON_IsNull(key)) {
        return 0;
    }
    if (!cJSON_IsString(key)) {
        return core_err_set(err, CORE_EINVAL, "blobs.url_key",
                            "blobs.url_key: must be a string (\"env:NAME\")");
    }
    if ((rc = config_resolve_secret(key->valuestring, "blobs.url_key", &cfg->blobs.url_key, err)) <
        0) {
        return rc;
    }
    len = strlen(cfg->blobs.url_key);
    if (len < ARTIFACT_URL_KEY_MIN || len > ARTIFACT_URL_KEY_MAX) {
        return core_err_set(err, CORE_EINVAL, "blobs.url_key",
                            "blobs.url_key: must be %d to %d bytes long", ARTIFACT_URL_KEY_MIN,
                            ARTIFACT_URL_KEY_MAX);
    }
    return 0;
}

static int parse_keys(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    const cJSON *k;
    size_t i = 0;

    if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) == 0) {
        return core_err_set(err, CORE_EINVAL, "keys", "keys: must be a non-empty array");
    }
    cfg->keys = calloc((size_t)cJSON_GetArraySize(keys), sizeof(*cfg->keys));
    if (cfg->keys == NULL) {
        return core_err_set(err, CORE_ENOMEM, "keys", "out of memory");
    }
    cJSON_ArrayForEach(k, keys)
    {
        char field[64];
        const char *key = config_get_string(k, "key");
        const char *tenant = config_get_string(k, "tenant");
        char *secret = NULL;
        int rc;

        snprintf(field, sizeof(field), "keys[%zu].key", i);
        if (key == NULL) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be a string", field);
        }
        if ((rc = config_resolve_secret(key, field, &secret, err)) < 0) {
            return rc;
        }
        if (strlen(secret) < 8) {
            OPENSSL_cleanse(secret, strlen(secret));
            free(secret);
            return core_err_set(err, CORE_EINVAL, field, "%s: a key needs at least 8 characters",
                                field);
        }
        util_sha256(secret, strlen(secret), cfg->keys[i].hash);
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
        snprintf(field, sizeof(field), "keys[%zu].tenant", i);
        if (tenant == NULL || tenant[0] == '\0' || strlen(tenant) > 64 ||
            strpbrk(tenant, ":{}| \t\r\n") != NULL) {
            return core_err_set(err, CORE_EINVAL, field,
                                "%s: must be a name of 1-64 characters without ':{}|' or spaces",
                                field);
        }
        cfg->keys[i].tenant = strdup(tenant);
        cfg->n_keys = ++i;
    }
    return 0;
}

/*
 * providers.NAME.responses: whether the server has OpenAI's POST /responses, so response tasks
 * are sent there as they are instead of being translated to chat completions. Only OpenAI's
 * dialect has that endpoint, so it defaults to true there (OpenAI itself) and an
 * OpenAI-compatible server that only has chat completions says false; any other dialect may only
 * leave it out or say false. 0 or CORE_EINVAL naming the field.
 */
static int parse_provider_responses(struct config_provider *pr, const cJSON *p,
                                    struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "responses");
    bool openai = pr->dialect != NULL && strcmp(pr->dialect, "openai") == 0;
    char field[160];

    pr->responses = openai;
    if (v == NULL) {
        return 0;
    }
    snprintf(field, sizeof(field), "providers.%s.responses", p->string);
    if (!cJSON_IsBool(v)) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be true or false", field);
    }
    if (cJSON_IsTrue(v) && !openai) {
        return core_err_set(err, CORE_EINVAL, field,
                            "%s: only an openai provider has POST /responses (the %s dialect "
                            "serves responses through its chat API)",
                            field, pr->dialect);
    }
    pr->responses = cJSON_IsTrue(v);
    return 0;
}

/*
 * providers.NAME.webhook_secret: the Standard Webhooks secret ("whsec_<base64>", or "env:NAME"
 * holding one) the provider signs its callbacks with. Kept decoded only; the text is wiped.
 */
static int parse_provider_webhook_secret(struct config_provider *pr, const cJSON *p,
                                         struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "webhook_secret");
    char field[160];
    char *secret = NULL;
    int rc;

    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    snprintf(field, sizeof(field), "providers.%s.webhook_secret", p->string);
    if (strcmp(pr->dialect, "fal") == 0) {
        return core_err_set(err, CORE_EINVAL, field,
                            "%s: fal does not sign its callbacks with a shared secret; list fal's "
                            "ED25519 public keys (its JWKS `x` values) in "
                            "providers.%s.webhook_public_keys instead",
                            field, p->string);
    }
    if (!cJSON_IsString(v)) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be a string", field);
    }
    if ((rc = config_resolve_secret(v->valuestring, field, &secret, err)) < 0) {
        return rc;
    }
    rc = webhook_key_parse(secret, &pr->webhook_key);
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    if (rc < 0) {
        return core_err_set(err, CORE_EINVAL, field, "%s: %s", field, webhook_strerror(rc));
    }
    pr->has_webhook_key = true;
    return 0;
}

/*
 * providers.NAME.webhook_public_keys: 1..FAL_SIGN_KEYS_MAX ED25519 public keys (fal's JWKS `x`,
 * base64url or base64 of 32 bytes) that verify a fal provider's callbacks. Only dialect fal has
 * them: the others sign with a webhook_secret. Public keys are no secret, so no "env:" form.
 */
static int parse_provider_public_keys(struct config_provider *pr, const cJSON *p,
                                      struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "webhook_public_keys");
    const cJSON *k;
    char field[160];

    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    snprintf(field, sizeof(field), "providers.%s.webhook_public_keys", p->string);
    if (strcmp(pr->dialect, "fal") != 0) {
        return core_err_set(err, CORE_EINVAL, field,
                            "%s: only a fal provider has public keys (the %s dialect signs with "
                            "webhook_secret)",
                            field, pr->dialect);
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
        cJSON_GetArraySize(v) > FAL_SIGN_KEYS_MAX) {
        return core_err_set(err, CORE_EINVAL, field,
                            "%s: must be an array of 1 to %d ED25519 public keys (fal's JWKS `x`)",
                            field, FAL_SIGN_KEYS_MAX);
    }
    cJSON_ArrayForEach(k, v)
    {
        if (!cJSON_IsString(k) ||
            fal_sign_key_parse(k->valuestring, &pr->fal_keys[pr->n_fal_keys]) < 0) {
            return core_err_set(err, CORE_EINVAL, field, "%s[%zu]: %s", field, pr->n_fal_keys,
                                fal_sign_strerror(FAL_SIGN_EKEY));
        }
        pr->n_fal_keys++;
    }
    pr->has_webhook_key = true;
    return 0;
}

static int parse_providers(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *providers = cJSON_GetObjectItemCaseSensitive(root, "providers");
    const cJSON *p;
    size_t i = 0;
    int rc;

    if (!cJSON_IsObject(providers) || cJSON_GetArraySize(providers) == 0) {
        return core_err_set(err, CORE_EINVAL, "providers", "providers: must be a non-empty object");
    }
    cfg->providers = calloc((size_t)cJSON_GetArraySize(providers), sizeof(*cfg->providers));
    if (cfg->providers == NULL) {
        return core_err_set(err, CORE_ENOMEM, "providers", "out of memory");
    }
    cJSON_ArrayForEach(p, providers)
    {
        struct config_provider *pr = &cfg->providers[i];
        char field[160];
        const char *dialect = config_get_string(p, "dialect");
        const char *base_url = config_get_string(p, "base_url");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(p, "api_key");

        pr->name = strdup(p->string);
        cfg->n_providers = ++i;
        snprintf(field, sizeof(field), "providers.%s.dialect", p->string);
        if (dialect == NULL) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be a string", field);
        }
        pr->dialect = strdup(dialect);
        snprintf(field, sizeof(field), "providers.%s.base_url", p->string);
        if (base_url == NULL ||
            (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be an http(s) URL", field);
        }
        pr->base_url = strdup(base_url);
        if ((rc = parse_provider_responses(pr, p, err)) < 0 ||
            (rc = parse_provider_webhook_secret(pr, p, err)) < 0 ||
            (rc = parse_provider_public_keys(pr, p, err)) < 0) {
            return rc;
        }
        snprintf(field, sizeof(field), "providers.%s.api_key", p->string);
        if (key != NULL) {
            if (!cJSON_IsString(key)) {
                return core_err_set(err, CORE_EINVAL, field, "%s: must be a string", field);
            }
            if ((rc = config_resolve_secret(key->valuestring, field, &pr->api_key, err)) < 0) {
                return rc;
            }
        }
        {
            /* Per-provider numbers: key, slot, bounds, default. */
            const struct {
                const char *key;
                long *slot;
                long min, max, def;
            } nums[] = {
                {"timeout_ms", &pr->timeout_ms, 100, 3600000, 60000},
                {"poll_interval_ms", &pr->poll_interval_ms, 50, 3600000, 5000},
                {"default_max_tokens", &pr->default_max_tokens, 0, 10000000, 0},
            };
            for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, nums[k].key);
                *nums[k].slot = nums[k].def;
                if (v == NULL) {
                    continue;
                }
                snprintf(field, sizeof(field), "providers.%s.%s", p->string, nums[k].key);
                if (!cJSON_IsNumber(v) || v->valuedouble < (double)nums[k].min ||
                    v->valuedouble > (double)nums[k].max) {
                    return core_err_set(err, CORE_EINVAL, field,
                                        "%s: must be a number between %ld and %ld", field,
                                        nums[k].min, nums[k].max);
                }
                *nums[k].slot = (long)v->valuedouble;
            }
        }
    }
    return 0;
}

static const struct config_provider *provider_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_providers; i++) {
        if (strcmp(cfg->providers[i].name, name) == 0) {
            return &cfg->providers[i];
        }
    }
    return NULL;
}

/* price: {input_per_mtok, output_per_mtok, per_image, per_video_second}, all optional, ≥ 0. */
static int parse_price(struct config_price *price, const cJSON *obj, const char *field,
                       struct core_err *err)
{
    static const struct {
        const char *key;
        size_t offset;
    } keys[] = {
        {"input_per_mtok", offsetof(struct config_price, input_per_mtok)},
        {"output_per_mtok", offsetof(struct config_price, output_per_mtok)},
        {"per_image", offsetof(struct config_price, per_image)},
        {"per_video_second", offsetof(struct config_price, per_video_second)},
    };
    if (obj == NULL) {
        return 0;
    }
    if (!cJSON_IsObject(obj)) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be an object", field);
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, keys[i].key);
        if (v == NULL) {
            continue;
        }
        if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
            return core_err_set(err, CORE_EINVAL, field, "%s.%s: must be a number >= 0", field,
                                keys[i].key);
        }
        *(double *)((char *)price + keys[i].offset) = v->valuedouble;
    }
    return 0;
}

static int parse_deployment(struct config *cfg, struct config_deployment *d, const cJSON *obj,
                            const char *base, struct core_err *err)
{
    static const struct {
        const char *key;
        size_t offset;
    } limits[] = {
        {"rpm", offsetof(struct config_deployment, rpm)},
        {"tpm", offsetof(struct config_deployment, tpm)},
        {"max_concurrency", offsetof(struct config_deployment, max_concurrency)},
        {"weight", offsetof(struct config_deployment, weight)},
        {"default_max_tokens", offsetof(struct config_deployment, default_max_tokens)},
    };
    char field[200];
    const char *provider = config_get_string(obj, "provider");
    const char *model = config_get_string(obj, "model");

    snprintf(field, sizeof(field), "%s.provider", base);
    if (provider == NULL) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be a string", field);
    }
    d->provider = provider_find(cfg, provider);
    if (d->provider == NULL) {
        return core_err_set(err, CORE_EINVAL, field, "%s: unknown provider \"%s\"", field,
                            provider);
    }
    snprintf(field, sizeof(field), "%s.model", base);
    if (model == NULL || model[0] == '\0') {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be a non-empty string", field);
    }
    d->model = strdup(model);
    d->weight = 1;
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, limits[i].key);
        if (v == NULL) {
            continue;
        }
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12) {
            snprintf(field, sizeof(field), "%s.%s", base, limits[i].key);
            return core_err_set(err, CORE_EINVAL, field, "%s: must be a number >= 0", field);
        }
        *(long *)((char *)d + limits[i].offset) = (long)v->valuedouble;
    }
    snprintf(field, sizeof(field), "%s.price", base);
    return parse_price(&d->price, cJSON_GetObjectItemCaseSensitive(obj, "price"), field, err);
}

/* The longest a cached response may live: 30 days. */
#define CONFIG_CACHE_TTL_MAX_S (30L * 86400)

/*
 * models.ALIAS.cache: absent (no cache), or {ttl_s: 1 s to 30 days, scope?: a string of 1 to 64
 * characters that every tenant shares the alias's entries under}, on a chat, embedding or image
 * alias (a chat alias serves Responses too; a cached image names the task whose files it shows).
 * Video aliases are refused: a video job is minutes of a provider's work per request.
 */
static int parse_model_cache(struct config_model *mo, const cJSON *c, struct core_err *err)
{
    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(c, "ttl_s");
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(c, "scope");
    char field[160];

    if (c == NULL || cJSON_IsNull(c)) {
        return 0;
    }
    snprintf(field, sizeof(field), "models.%s.cache", mo->alias);
    if (!cJSON_IsObject(c) || mo->kind == TASK_KIND_VIDEO) {
        return core_err_set(
            err, CORE_EINVAL, field,
            "%s: must be an object {ttl_s, scope?} on a chat, embedding or image alias", field);
    }
    if (!cJSON_IsNumber(ttl) || ttl->valuedouble < 1 || ttl->valuedouble > CONFIG_CACHE_TTL_MAX_S) {
        return core_err_set(err, CORE_EINVAL, field, "%s.ttl_s: must be a number from 1 to %ld",
                            field, CONFIG_CACHE_TTL_MAX_S);
    }
    mo->cache_ttl_s = (long)ttl->valuedouble;
    if (scope != NULL) {
        if (!cJSON_IsString(scope) || scope->valuestring[0] == '\0' ||
            strlen(scope->valuestring) > 64) {
            return core_err_set(err, CORE_EINVAL, field,
                                "%s.scope: must be a string of 1 to 64 characters", field);
        }
        mo->cache_scope = strdup(scope->valuestring);
        if (mo->cache_scope == NULL) {
            return core_err_set(err, CORE_ENOMEM, field, "out of memory");
        }
    }
    return 0;
}

static int parse_models(struct config *cfg, const cJSON *root, struct core_err *err)
{
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    const cJSON *m;
    size_t i = 0;

    if (!cJSON_IsObject(models) || cJSON_GetArraySize(models) == 0) {
        return core_err_set(err, CORE_EINVAL, "models", "models: must be a non-empty object");
    }
    cfg->models = calloc((size_t)cJSON_GetArraySize(models), sizeof(*cfg->models));
    if (cfg->models == NULL) {
        return core_err_set(err, CORE_ENOMEM, "models", "out of memory");
    }
    cJSON_ArrayForEach(m, models)
    {
        struct config_model *mo = &cfg->models[i];
        char field[160];
        const char *kind = config_get_string(m, "kind");
        const char *strategy = config_get_string(m, "strategy");
        const cJSON *deps = cJSON_GetObjectItemCaseSensitive(m, "deployments");
        const cJSON *d;
        size_t j = 0;
        int crc;

        mo->alias = strdup(m->string);
        cfg->n_models = ++i;
        snprintf(field, sizeof(field), "models.%s.kind", m->string);
        /* a response task runs on a chat alias: no alias serves only responses */
        if (task_kind_parse(kind) < 0 || task_kind_parse(kind) == TASK_KIND_RESPONSE) {
            return core_err_set(err, CORE_EINVAL, field,
                                "%s: must be one of chat, embedding, image, video", field);
        }
        mo->kind = (enum task_kind)task_kind_parse(kind);
        snprintf(field, sizeof(field), "models.%s.strategy", m->string);
        if (strategy != NULL && !in_list(strategy, known_strategies)) {
            return core_err_set(err, CORE_EINVAL, field,
                                "%s: must be one of cost, latency, weighted, ordered", field);
        }
        mo->strategy = strdup(strategy ? strategy : "ordered");
        crc = parse_model_cache(mo, cJSON_GetObjectItemCaseSensitive(m, "cache"), err);
        if (crc < 0) {
            return crc;
        }
        snprintf(field, sizeof(field), "models.%s.deployments", m->string);
        if (!cJSON_IsArray(deps) || cJSON_GetArraySize(deps) == 0) {
            return core_err_set(err, CORE_EINVAL, field, "%s: must be a non-empty array", field);
        }
        mo->deployments = calloc((size_t)cJSON_GetArraySize(deps), sizeof(*mo->deployments));
        if (mo->deployments == NULL) {
            return core_err_set(err, CORE_ENOMEM, field, "out of memory");
        }
        cJSON_ArrayForEach(d, deps)
        {
            char base[160];
            int rc;
            snprintf(base, sizeof(base), "models.%s.deployments[%zu]", m->string, j);
            mo->n_deployments = ++j;
            if (!cJSON_IsObject(d)) {
                return core_err_set(err, CORE_EINVAL, base, "%s: must be an object", base);
            }
            if ((rc = parse_deployment(cfg, &mo->deployments[j - 1], d, base, err)) < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* One secret entry: "env:NAME" / "whsec_..." or {"secret": ..., "until": unix seconds}. */
static int parse_webhook_secret(struct config_webhook_secret *ws, const char *tenant,
                                const cJSON *v, size_t index, struct core_err *err)
{
    char field[160];
    const cJSON *sec = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "secret") : v;
    const cJSON *until = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "until") : NULL;
    char *secret = NULL;
    int rc;

    snprintf(field, sizeof(field), "webhooks.secrets.%s[%zu]", tenant, index);
    if (!cJSON_IsString(sec)) {
        return core_err_set(err, CORE_EINVAL, field, "%s: must be a string or {secret, until}",
                            field);
    }
    if ((rc = config_resolve_secret(sec->valuestring, field, &secret, err)) < 0) {
        return rc;
    }
    rc = webhook_key_parse(secret, &ws->key);
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    if (rc < 0) {
        return core_err_set(err, CORE_EINVAL, field, "%s: %s", field, webhook_strerror(rc));
    }
    if (until != NULL && (!cJSON_IsNumber(until) || until->valuedouble < 0)) {
        return core_err_set(err, CORE_EINVAL, field, "%s.until: must be Unix seconds", field);
    }
    ws->until_s = until ? (int64_t)until->valuedouble : 0;
    ws->tenant = strdup(tenant);
    return ws->tenant ? 0 : core_err_set(err, CORE_ENOMEM, field, "out of memory");
}

/*
 * webhooks: {secrets: {tenant: [secret, ...]}, allow_hosts: [...], retry_schedule_ms: [...],
 * timeout_ms}. The default schedule is Standard Webhooks' usual one: about 5 s, 5 min, 30 min,
 * 2 h, 5 h, 10 h.
 */
static int parse_webhooks(struct config *cfg, const cJSON *root, struct core_err *err)
{
    static const long default_schedule[] = {5000, 300000, 1800000, 7200000, 18000000, 36000000};
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(root, "webhooks");
    const cJSON *secrets = cJSON_GetObjectItemCaseSensitive(wh, "secrets");
    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(wh, "allow_hosts");
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(wh, "retry_schedule_ms");
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(wh, "timeout_ms");
    const cJSON *t, *v;
    size_t total = 0;
    int rc;

    cfg->webhooks.allow = netaddr_allow_new();
    cfg->webhooks.timeout_ms = 10000;
    cfg->webhooks.n_schedule = sizeof(default_schedule) / sizeof(default_schedule[0]);
    memcpy(cfg->webhooks.schedule_ms, default_schedule, sizeof(default_schedule));
    if (cfg->webhooks.allow == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    if (wh == NULL) {
        return 0;
    }
    if (!cJSON_IsObject(wh)) {
        return core_err_set(err, CORE_EINVAL, "webhooks", "webhooks: must be an object");
    }
    cJSON_ArrayForEach(t, secrets)
    {
        total += cJSON_IsArray(t) ? (size_t)cJSON_GetArraySize(t) : 1;
    }
    cfg->webhooks.secrets = calloc(total + 1, sizeof(*cfg->webhooks.secrets));
    if (cfg->webhooks.secrets == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    cJSON_ArrayForEach(t, secrets)
    {
        size_t i = 0;
        if (!cJSON_IsArray(t)) {
            if ((rc = parse_webhook_secret(&cfg->webhooks.secrets[cfg->webhooks.n_secrets],
                                           t->string, t, 0, err)) < 0) {
                return rc;
            }
            cfg->webhooks.n_secrets++;
            continue;
        }
        cJSON_ArrayForEach(v, t)
        {
            if ((rc = parse_webhook_secret(&cfg->webhooks.secrets[cfg->webhooks.n_secrets],
                                           t->string, v, i++, err)) < 0) {
                return rc;
            }
            cfg->webhooks.n_secrets++;
        }
    }
    if (allow != NULL && !cJSON_IsArray(allow)) {
        return core_err_set(err, CORE_EINVAL, "webhooks.allow_hosts",
                            "webhooks.allow_hosts: must be an array of names, addresses or CIDRs");
    }
    cJSON_ArrayForEach(v, allow)
    {
        if (!cJSON_IsString(v) || netaddr_allow_add(cfg->webhooks.allow, v->valuestring) < 0) {
            return core_err_set(err, CORE_EINVAL, "webhooks.allow_hosts",
                                "webhooks.allow_hosts: \"%s\" is not a host name, address or "
                                "CIDR range",
                                cJSON_IsString(v) ? v->valuestring : "?");
        }
    }
    if (sched != NULL) {
        size_t i = 0;
        if (!cJSON_IsArray(sched) || cJSON_GetArraySize(sched) < 1 ||
            cJSON_GetArraySize(sched) > CONFIG_WEBHOOK_MAX_SCHEDULE) {
            return core_err_set(err, CORE_EINVAL, "webhooks.retry_schedule_ms",
                                "webhooks.retry_schedule_ms: must be an array of 1 to %d waits",
                                CONFIG_WEBHOOK_MAX_SCHEDULE);
        }
        cJSON_ArrayForEach(v, sched)
        {
            if (!cJSON_IsNumber(v) || v->valuedouble < 10 || v->valuedouble > 7 * 86400000.0) {
                return core_err_set(err, CORE_EINVAL, "webhooks.retry_schedule_ms",
                                    "webhooks.retry_schedule_ms: waits are 10 ms to 7 days");
            }
            cfg->webhooks.schedule_ms[i++] = (long)v->valuedouble;
        }
        cfg->webhooks.n_schedule = i;
    }
    if (timeout != NULL) {
        if (!cJSON_IsNumber(timeout) || timeout->valuedouble < 100 ||
            timeout->valuedouble > 120000) {
            return core_err_set(err, CORE_EINVAL, "webhooks.timeout_ms",
                                "webhooks.timeout_ms: must be 100 to 120000");
        }
        cfg->webhooks.timeout_ms = (long)timeout->valuedouble;
    }
    return 0;
}

size_t config_webhook_keys(const struct config *cfg, const char *tenant, int64_t now_s,
                           struct webhook_key *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->webhooks.n_secrets && n < max; i++) {
        const struct config_webhook_secret *ws = &cfg->webhooks.secrets[i];
        if (strcmp(ws->tenant, tenant) == 0 && (ws->until_s == 0 || ws->until_s > now_s)) {
            out[n++] = ws->key;
        }
    }
    return n;
}

char *config_model_routing_json(const struct config *cfg, const struct config_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *br = cJSON_AddObjectToObject(o, "breaker");
    cJSON *deps = cJSON_AddArrayToObject(o, "deps");
    char *s;

    cJSON_AddStringToObject(o, "strategy", m->strategy);
    cJSON_AddNumberToObject(br, "min", (double)cfg->breaker.min_requests);
    cJSON_AddNumberToObject(br, "pct", (double)cfg->breaker.failure_pct);
    cJSON_AddNumberToObject(br, "window", (double)cfg->breaker.window_ms);
    cJSON_AddNumberToObject(br, "open", (double)cfg->breaker.open_ms);
    for (size_t i = 0; i < m->n_deployments; i++) {
        const struct config_deployment *d = &m->deployments[i];
        cJSON *dj = cJSON_CreateObject();
        cJSON_AddNumberToObject(dj, "rpm", (double)d->rpm);
        cJSON_AddNumberToObject(dj, "tpm", (double)d->tpm);
        cJSON_AddNumberToObject(dj, "maxc", (double)d->max_concurrency);
        cJSON_AddNumberToObject(dj, "weight", (double)d->weight);
        cJSON_AddNumberToObject(dj, "pin", d->price.input_per_mtok);
        cJSON_AddNumberToObject(dj, "pout", d->price.output_per_mtok);
        cJSON_AddNumberToObject(dj, "pimg", d->price.per_image);
        cJSON_AddNumberToObject(dj, "psec", d->price.per_video_second);
        cJSON_AddItemToArray(deps, dj);
    }
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int config_parse(const char *text, struct config **out, struct core_err *err)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    char *copy = strdup(text);
    cJSON *root = NULL;
    const char *listen, *redis, *tag;
    struct keyspace ks;
    int rc = 0;

    *out = NULL;
    core_err_clear(err);
    if (cfg == NULL || copy == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        goto out;
    }
    cJSON_Minify(copy); /* strips // and block comments, so the example can explain itself */
    root = cJSON_Parse(copy);
    if (!cJSON_IsObject(root)) {
        rc = core_err_set(err, CORE_EINVAL, NULL, "config: not a JSON object (syntax error?)");
        goto out;
    }
    listen = config_get_string(root, "listen");
    if ((rc = config_parse_host_port(listen ? listen : "127.0.0.1:8080", "listen",
                                     &cfg->listen_host, &cfg->listen_port, err)) < 0) {
        goto out;
    }
    redis = config_get_string(root, "redis");
    if ((rc = parse_redis_url(cfg, redis ? redis : "redis://127.0.0.1:6379/0", err)) < 0) {
        goto out;
    }
    tag = config_get_string(root, "redis_key_tag");
    if (tag != NULL && keyspace_init(&ks, tag) != 0) {
        rc = core_err_set(err, CORE_EINVAL, "redis_key_tag",
                          "redis_key_tag: 1 to %d letters, digits, '_', '-' or '.'", KEY_TAG_MAX);
        goto out;
    }
    cfg->redis_key_tag = xstrdup(tag ? tag : KEY_TAG_DEFAULT);
    if ((rc = parse_log(cfg, root, err)) < 0 || (rc = parse_blobs(cfg, root, err)) < 0 ||
        (rc = parse_base_url(root, "public_base_url", &cfg->public_base_url, err)) < 0 ||
        (rc = parse_base_url(root, "callback_base_url", &cfg->callback_base_url, err)) < 0) {
        goto out;
    }
    if ((rc = parse_numbers(cfg, root, err)) < 0 || (rc = parse_keys(cfg, root, err)) < 0 ||
        (rc = parse_providers(cfg, root, err)) < 0 || (rc = parse_models(cfg, root, err)) < 0) {
        goto out;
    }
    if ((rc = config_parse_quotas(cfg, root, err)) < 0 ||
        (rc = parse_webhooks(cfg, root, err)) < 0 ||
        (rc = config_parse_access(cfg, root, err)) < 0) {
        goto out;
    }
    if (cfg->tasks.backoff_max_ms < cfg->tasks.backoff_base_ms) {
        rc = core_err_set(err, CORE_EINVAL, "tasks.backoff_max_ms",
                          "tasks.backoff_max_ms: must be >= tasks.backoff_base_ms");
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    cJSON_Delete(root);
    free(copy);
    config_free(cfg);
    return rc;
}

int config_load(const char *path, struct config **out, struct core_err *err)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t n;
    int rc;

    core_err_clear(err);
    if (f == NULL) {
        return core_err_set(err, CORE_EINVAL, NULL, "config: cannot open %s", path);
    }
    text = malloc(CONFIG_MAX_FILE_BYTES + 1);
    if (text == NULL) {
        fclose(f);
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    n = fread(text, 1, CONFIG_MAX_FILE_BYTES + 1, f);
    fclose(f);
    if (n > CONFIG_MAX_FILE_BYTES) {
        free(text);
        return core_err_set(err, CORE_EINVAL, NULL, "config: %s is larger than 4 MB", path);
    }
    text[n] = '\0';
    rc = config_parse(text, out, err);
    free(text);
    return rc;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->n_keys; i++) {
        free(cfg->keys[i].tenant);
    }
    for (size_t i = 0; i < cfg->n_providers; i++) {
        struct config_provider *p = &cfg->providers[i];
        free(p->name);
        free(p->dialect);
        free(p->base_url);
        if (p->api_key) {
            OPENSSL_cleanse(p->api_key, strlen(p->api_key));
        }
        free(p->api_key);
        webhook_key_clear(&p->webhook_key);
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        struct config_model *m = &cfg->models[i];
        for (size_t j = 0; j < m->n_deployments; j++) {
            free(m->deployments[j].model);
        }
        free(m->deployments);
        free(m->alias);
        free(m->strategy);
        free(m->cache_scope);
    }
    free(cfg->keys);
    free(cfg->providers);
    free(cfg->models);
    free(cfg->listen_host);
    free(cfg->redis_host);
    if (cfg->redis_password) {
        OPENSSL_cleanse(cfg->redis_password, strlen(cfg->redis_password));
    }
    free(cfg->redis_password);
    free(cfg->redis_key_tag);
    free(cfg->log_level);
    free(cfg->blobs.dir);
    if (cfg->blobs.url_key) {
        OPENSSL_cleanse(cfg->blobs.url_key, strlen(cfg->blobs.url_key));
    }
    free(cfg->blobs.url_key);
    free(cfg->public_base_url);
    free(cfg->callback_base_url);
    config_access_free(cfg);
    for (size_t i = 0; i < cfg->webhooks.n_secrets; i++) {
        webhook_key_clear(&cfg->webhooks.secrets[i].key);
        free(cfg->webhooks.secrets[i].tenant);
    }
    free(cfg->webhooks.secrets);
    netaddr_allow_free(cfg->webhooks.allow);
    free(cfg);
}

const struct config_model *config_model_find(const struct config *cfg, const char *alias)
{
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (strcmp(cfg->models[i].alias, alias) == 0) {
            return &cfg->models[i];
        }
    }
    return NULL;
}

const char *config_tenant_for_key(const struct config *cfg, const char *key)
{
    unsigned char hash[32];
    const char *tenant = NULL;

    util_sha256(key, strlen(key), hash);
    for (size_t i = 0; i < cfg->n_keys; i++) {
        /* No early exit: every stored hash is compared, whatever matched. */
        if (CRYPTO_memcmp(hash, cfg->keys[i].hash, sizeof(hash)) == 0) {
            tenant = cfg->keys[i].tenant;
        }
    }
    return tenant;
}
