/*
 * core/config.h — sluice.json, parsed and validated once at start.
 *
 * The file is JSON; line and block comments are allowed and stripped first (cJSON_Minify). Secrets
 * are written as "env:NAME" and read from the environment; API keys are kept only as SHA-256
 * hashes. Every validation error names the field ("models.gpt-4o-mini.deployments[0].provider:
 * ...").
 */
#ifndef SLUICE_CORE_CONFIG_H
#define SLUICE_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/netaddr.h"
#include "core/task.h"
#include "core/fal_sign.h"
#include "core/log.h"
#include "core/webhook_sign.h"

struct config_key {
    unsigned char hash[32]; /* SHA-256 of the bearer key */
    char *tenant;
};

struct config_provider {
    char *name;
    char *dialect;  /* adapter name: "openai" */
    char *base_url; /* includes the version path */
    char *api_key;  /* resolved secret, may be NULL */
    long timeout_ms;
    long poll_interval_ms;   /* long-running jobs: how often to ask the provider */
    long default_max_tokens; /* dialects that require max_tokens (anthropic); 0 = none */
    /* The server has OpenAI's POST /responses: response tasks call it natively
     * (adapter_target.responses_native) instead of going through chat completions. `responses`
     * in the file; default true for dialect openai, only ever true for it. */
    bool responses;
    /* The provider's job-completion callbacks can be verified, so with callback_base_url set a
     * long-running job's submit asks for one (api/provider_callbacks.c): true when it has
     * webhook_key or, for dialect fal, fal_keys. */
    bool has_webhook_key;
    /* providers.NAME.webhook_secret ("whsec_<base64>", or "env:NAME" holding one): the provider
     * signs its callbacks with it (Standard Webhooks). Refused for dialect fal. */
    struct webhook_key webhook_key;
    /* providers.NAME.webhook_public_keys (dialect fal only): fal's JWKS `x` values, the ED25519
     * keys its callbacks are signed with (core/fal_sign.h); n_fal_keys of them. */
    struct fal_sign_key fal_keys[FAL_SIGN_KEYS_MAX];
    size_t n_fal_keys;
};

struct config_price {
    double input_per_mtok;
    double output_per_mtok;
    double per_image;
    double per_video_second;
};

struct config_deployment {
    const struct config_provider *provider; /* borrowed from config.providers */
    char *model;                            /* upstream model name */
    struct config_price price;
    long rpm, tpm, max_concurrency, weight; /* 0 = unlimited; pacing arrives with the scheduler */
    long default_max_tokens; /* overrides the provider's (anthropic's max_tokens); 0 = none */
};

struct config_model {
    char *alias;
    enum task_kind kind; /* parsed once, here */
    char *strategy;      /* cost | latency | weighted | ordered */
    struct config_deployment *deployments;
    size_t n_deployments;
    /* the exact response cache (api/cache.c): 0 off, else how long an entry lives (1 s to 30
     * days); scope NULL: each tenant its own entries, else the string every tenant shares them
     * under (tenants that trust each other's answers) */
    long cache_ttl_s;
    char *cache_scope;
};

struct config_limits {
    long max_body_bytes;
    long max_header_bytes;
    long max_json_depth;
    long request_timeout_s;
    long max_list_limit;
    long sync_wait_s;      /* how long a synchronous endpoint holds the connection for its task */
    long max_connections;  /* client connections at once; 0 in the file: derived (config_load) */
    long header_timeout_s; /* a request's line and headers must arrive within this */
    long min_body_rate;    /* bytes/s a body must keep up, per body_rate_window_s; 0: off */
    long body_rate_window_s;
};

struct config_tasks {
    long max_attempts;
    long lease_ms;
    long retention_s;
    long backoff_base_ms;
    long backoff_max_ms;
};

struct config_worker {
    long concurrency;
    long claim_batch;
    long shutdown_grace_ms;
    long max_response_bytes;
};

struct config_scheduler {
    long tick_ms;
    long burst_ms; /* a deployment's request/token buckets hold this much of its rate */
    long
        pace_pct; /* the share of each deployment's rpm/tpm sluice uses (arrival jitter headroom) */
};

/* The circuit breaker every deployment has (state shared through Redis). */
struct config_breaker {
    long min_requests; /* calls in the window before the failure ratio counts */
    long failure_pct;  /* open at this share of failed calls */
    long window_ms;
    long open_ms; /* how long an open breaker waits before a half-open probe */
};

/* A tenant's webhook signing secret; an old one stays valid (and signs) until until_s. */
struct config_webhook_secret {
    char *tenant;
    struct webhook_key key;
    int64_t until_s; /* 0 = no end */
};

#define CONFIG_WEBHOOK_MAX_SCHEDULE 16

struct config_webhooks {
    struct config_webhook_secret *secrets;
    size_t n_secrets;
    struct netaddr_allow *allow; /* allow_hosts: private/loopback targets that may be called */
    long schedule_ms[CONFIG_WEBHOOK_MAX_SCHEDULE]; /* waits before retries 1, 2, ... */
    size_t n_schedule;
    long timeout_ms;
};

/* What one tenant may hold; the defaults come from quotas.default_*. */
struct config_quota {
    long max_queued;         /* tasks queued at once; past it POST /v1/tasks answers 429 */
    long max_stored_bytes;   /* bytes of task inputs and results kept in Redis */
    long max_files;          /* files kept (Files API) */
    long max_file_bytes;     /* bytes of those files */
    long max_artifact_bytes; /* bytes of kept image and video artifacts */
    long max_cache_bytes;    /* bytes of cached responses (least recently used evicted past it) */
};

struct config_tenant_quota {
    char *tenant;
    struct config_quota q;
};

struct config_blobs {
    struct netaddr_allow
        *allow;     /* allow_hosts: private/loopback artifact hosts that may be fetched */
    char *dir;      /* where artifacts (images, videos) are kept, one folder per task */
    long max_bytes; /* the largest artifact sluice will fetch */
    char *url_key;  /* resolved secret that signs artifact URLs; NULL: a random key in Redis */
    long url_ttl_s; /* how long a signed artifact URL works */
};

/* The Files API (uploads for the Batch API). evhttp holds an upload in memory while it arrives. */
struct config_files {
    long max_bytes; /* the largest file POST /v1/files accepts */
    long max_lines; /* the most lines a purpose "batch" file may have */
};

/* The Batch API's runner (api/batch_runner.c). */
struct config_batches {
    long lease_ms; /* a runner's hold on a batch; a dead runner's batch resumes after it */
    long poll_ms;  /* how often an idle runner looks for due batches */
    long window_s; /* what completion_window "24h" means (shorter only for tests) */
};

/* Budgets (api/budgets.c): what a budget's "hour" and "day" windows mean, in seconds (shorter only
 * for tests); "month" is the calendar month (UTC). */
struct config_budgets {
    long hour_s;
    long day_s;
};

/* Usage analytics (api/usage.c): how long the hourly usage counters are kept, in days. */
struct config_usage {
    long retention_days;
};

/* Pipelines (api/pipelines.c, api/pipeline_runner.c). */
struct config_pipelines {
    long max_steps;   /* steps one pipeline may have */
    long max_fan_out; /* tasks one for_each step may make */
    long lease_ms;    /* a runner's hold on a pipeline; a dead runner's pipeline resumes after it */
    long poll_ms;     /* how often an idle runner looks for due pipelines */
};

struct config {
    char *listen_host;
    int listen_port;
    char *public_base_url; /* how clients reach the api ("https://host[/prefix]"); may be NULL */
    /* How providers reach the api for their job callbacks ("https://host[:port][/prefix]", no
     * trailing '/'); NULL: no provider is asked for one, every long-running job is polled. */
    char *callback_base_url;
    char *redis_host;
    int redis_port;
    int redis_db;
    char *redis_password; /* may be NULL */
    long redis_timeout_ms;
    char *redis_key_tag;        /* the keyspace's hash tag: every key starts with "{<tag>}:" */
    char *log_level;            /* "log_level" or "log.level": debug | info | warn | error */
    enum log_format log_format; /* "log.format": logfmt (the default) or json */

    struct config_key *keys;
    size_t n_keys;
    struct config_provider *providers;
    size_t n_providers;
    struct config_model *models;
    size_t n_models;

    struct config_limits limits;
    struct config_tasks tasks;
    struct config_worker worker;
    struct config_scheduler scheduler;
    struct config_blobs blobs;
    struct config_files files;
    struct config_batches batches;
    struct config_pipelines pipelines;
    struct config_budgets budgets;
    struct config_usage usage;
    struct config_breaker breaker;
    struct config_webhooks webhooks;
    struct config_quota default_quota; /* quotas.default_*: every tenant's unless overridden */
    struct config_tenant_quota *quotas;
    size_t n_quotas;

    /* The admin surface (/metrics on the public listener, later the admin API). */
    unsigned char (*admin_keys)[32]; /* SHA-256 of each admin bearer key */
    size_t n_admin_keys;
    char *metrics_host; /* metrics_listen: /metrics without a key on its own address; NULL: none */
    int metrics_port;
};

/*
 * The tenant's signing keys valid at now_s (up to max), newest first as configured. Returns how
 * many it wrote.
 */
size_t config_webhook_keys(const struct config *cfg, const char *tenant, int64_t now_s,
                           struct webhook_key *out, size_t max);

/* The most tasks tenant may have queued. */
long config_max_queued(const struct config *cfg, const char *tenant);

/* The tenant's quota (its own, else the defaults). Borrowed. */
const struct config_quota *config_quota_for(const struct config *cfg, const char *tenant);

/* True when key is one of admin_keys (compared in constant time against every stored hash). */
bool config_is_admin_key(const struct config *cfg, const char *key);

/*
 * The model's routing as JSON for the CLAIM script ({strategy, breaker, deps: [{rpm, tpm, maxc,
 * weight, pin, pout}]}): workers publish it in Redis so admission, shared by every worker, reads
 * one definition. Caller frees. NULL on OOM.
 */
char *config_model_routing_json(const struct config *cfg, const struct config_model *m);

/*
 * Loads and validates the file at path. On success returns 0 and *out (caller frees with
 * config_free). On failure returns CORE_EINVAL with err->message naming the field.
 */
int config_load(const char *path, struct config **out, struct core_err *err);

/* The same from a JSON text (used by tests). text is borrowed. */
int config_parse(const char *text, struct config **out, struct core_err *err);

void config_free(struct config *cfg);

/* The model alias, or NULL. Borrowed. */
const struct config_model *config_model_find(const struct config *cfg, const char *alias);

/*
 * The tenant whose key hashes to hash, or NULL. Compares against every stored hash in constant
 * time (CRYPTO_memcmp, no early exit), so timing tells nothing about which prefix matched.
 */
const char *config_tenant_for_key(const struct config *cfg, const char *key);

#endif
