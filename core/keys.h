/*
 * core/keys.h — the Redis key layout.
 *
 * Every key starts with the keyspace's prefix "{<tag>}:" (the tag is `redis.key_tag`, "sl" by
 * default), so every atomic script touches one slot and the layout works on Redis Cluster (at the
 * price of one slot holding all of a keyspace's keys; sharding by tenant is a later step), and two
 * deployments can share one Redis under two tags. The tag is a parameter, never a constant: C code
 * builds a key with keyspace_key(store_keys(store), KS_TASK, id); a Lua script writes
 * '{{KS_TASK}}' .. id, and the store renders the script with its own prefix before loading it
 * (core/scripts.h). Below, the layout with the default tag:
 *
 *   {sl}:t:<id>              hash   the task (fields in core/task.c)
 *   {sl}:q:<p>:<tenant>|<alias>  list   a tenant's ready queue for one alias at priority p
 *                                    (LPUSH new, RPOP claims, RPUSH = back to the head)
 *   {sl}:ring:<p>            list   "tenant|alias" members with queued tasks at priority p,
 *                                    rotated by CLAIM so they take turns (fairness); {sl}:rs:<p>
 *                                    is its set
 *   {sl}:cfg:<alias>         string the alias's routing (strategy, deployments' limits and
 *                                    prices, breaker), published by workers for CLAIM
 *   {sl}:dep:<alias>:<i>     hash   deployment i's shared state: request and token buckets,
 *                                    calls in flight, pause, breaker, latency EWMA
 *   {sl}:stats               hash   counters and gauges for /metrics
 *   {sl}:wd:<msg id>         hash   one webhook delivery: task, event, url, attempts, body, log
 *   {sl}:whq                 zset   msg id → ms when the delivery's next attempt is due
 *   {sl}:delayed             zset   id → due ms (retries waiting for their backoff)
 *   {sl}:leases              zset   id → lease deadline ms (claimed tasks)
 *   {sl}:expiry              zset   "tenant|id|status|stored bytes|artifact bytes" → ms when
 *                                    the finished task's hash expires (TICK sweeps it then and
 *                                    gives the counts back; DELETE makes it due at once: 0)
 *   {sl}:tn:<tenant>         zset   id → created ms (the tenant's list, newest first)
 *   {sl}:idem:<tenant>:<h>   string "<sha256 of body> <id>" for an Idempotency-Key (h = its hash)
 *   {sl}:polls               zset   id → ms when a parked long-running task is due for a poll
 *   {sl}:deadlines           zset   id → the client's deadline ms (then the task expires)
 *   {sl}:leader              string the scheduler holding the leader lock
 *   {sl}:f:<file id>         hash   an uploaded file's metadata: tenant, bytes, filename, purpose,
 *                                    created (ms), path (of its bytes under blobs.dir/files)
 *   {sl}:fn:<tenant>         zset   file id → created ms (the tenant's files, newest first)
 *   {sl}:b:<batch id>        hash   a batch: tenant, status, endpoint, input_file_id, the *_at
 *                                    times (s), total/completed/failed, expansion progress
 *                                    (expanded, exp_off, expanded_all), webhook, metadata, errors
 *   {sl}:bn:<tenant>         zset   batch id → created ms (the tenant's batches, newest first)
 *   {sl}:bw                  zset   batch id → ms when a batch runner should next look at it
 *                                    (0: now); claiming it moves it a lease ahead
 *   {sl}:artifact_url_key    string the random key artifact URLs are signed with when
 *                                    blobs.url_key is not configured (SET NX by the first api)
 *   {sl}:p:<pipeline id>     hash   a pipeline: tenant, status, spec (its steps as sent), priority,
 *                                    webhook, metadata, deadline, and per step <field>:<step id>
 *                                    (st status, n tasks, ok/bad finished tasks, t0/t1 times,
 *                                    err), the usage (u:<name>) and cost summed by finalize
 *   {sl}:pn:<tenant>         zset   pipeline id → created ms (the tenant's pipelines, newest first)
 *   {sl}:pw                  zset   pipeline id → ms when a pipeline runner should next look at
 *                                    it (0: now); claiming it moves it a lease ahead
 *   {sl}:bud:<subject>       hash   a budget: cfg (JSON: policy and limits, each with its window's
 *                                    length and its cap in micro-USD); subject "t:<tenant>" or
 *                                    "k:<key id>" (core/lua/prelude.lua, budget.lua)
 *   {sl}:buds                set    the subjects that have a budget (for /metrics)
 *   {sl}:bu:<subject>:<window>:<start ms>  string  nano-USD used in one window of a limit:
 *                                    admitted tasks' estimates, moved to their real cost when they
 *                                    end; expires a day after the window
 *   {sl}:c:<key>             hash   a cached response (key: the SHA-256 hex of scope, alias, kind
 *                                    and the canonical request; api/cache.c): r result, u usage,
 *                                    n bytes, t the tenant whose bytes it counts in; PEXPIRE its
 *                                    TTL (core/lua/prelude.lua cache_end writes it, SUBMIT reads)
 *   {sl}:cf:<key>            string the id of the task computing key's response (the leader);
 *                                    read with the task's status: a finished leader is none
 *   {sl}:cw:<leader id>      list   the followers: tasks of the same key that wait for the leader,
 *                                    queued but never enqueued (single-flight)
 *   {sl}:cl:<tenant>         zset   "<key>:<bytes>" → last use ms: the tenant's cached entries,
 *                                    least recently used evicted first past its max_cache_bytes
 *   {sl}:cb:<tenant>         string the bytes of the tenant's entries in cl (expired ones included
 *                                    until evicted)
 *   {sl}:u:<tenant>:<hour s> hash   usage counters of the tasks that ended in one hour (its start,
 *                                    Unix s): "<alias>|<provider>|<key>|<metric>" → count (in/out
 *                                    tokens, cost micro-USD, hit; <o><i>: tasks of outcome o (c, f,
 *                                    x) in latency bucket i), added by finalize (usage_count in
 *                                    core/lua/prelude.lua); expires usage.retention_days + a day
 *                                    after the hour (core/lua/usage.lua reads it)
 *   {sl}:ut:<hour s>         set    the tenants with a usage hash for that hour (same expiry)
 *   {sl}:ucfg                string usage.retention_days in seconds, written by every api process
 *                                    when it connects (finalize reads it when it makes a new hour's
 *                                    hash; absent: 90 days)
 *   {sl}:ak:<key id>         hash   an API key kept as data (core/lua/keys.lua): id, tenant,
 *                                    name, sha (hex SHA-256 of the secret; the secret is never
 *                                    stored), models (JSON list of aliases, absent: any), created
 *                                    and expires (Unix s, absent: never), revoked (Unix s, once),
 *                                    budget (JSON, read by the budget code)
 *   {sl}:akh                 hash   sha → key id: how a bearer key is found
 *   {sl}:akv                 string the keys' version, bumped by every create and revoke: api
 *                                    processes poll it (api/keys.c), load the keys when it moved
 *   {sl}:ev:<id>             list   a streamed response task's Responses events (JSON text each,
 *                                    sequence_number order), appended by the worker as they are
 *                                    made (each attempt starts it again), expiring an hour after
 *                                    the task's retention; DELETE removes it: GET /v1/responses/
 *                                    {id}?stream=true&starting_after=N replays them
 *   {sl}:dh                  list   the dashboard's history: one JSON point per sample (queue
 *                                    depths per alias and priority, per tenant while few, the
 *                                    accepted/completed/failed counters), newest first, the last
 *                                    360 kept; LPUSHed by the scheduler leader every 10 s
 *                                    (core/lua/dash.lua sample)
 *   {sl}:df                  list   the dashboard's recent failures: one JSON record per failed
 *                                    or expired task (at ms, task, tenant, code, model, provider,
 *                                    message), newest first, the last 1000 kept (finalize's
 *                                    dash_failed in core/lua/prelude.lua)
 *   {sl}:api:<node>          channel one API process's waiters: "d <id>" (task finished),
 *                                    "c <id> <chunk>" (a streamed chat chunk)
 *   {sl}:wake                channel "work arrived" for idle workers
 */
#ifndef SLUICE_CORE_KEYS_H
#define SLUICE_CORE_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define KEY_TAG_DEFAULT "sl"
#define KEY_TAG_MAX 32

/* The key families: what follows the prefix. */
#define KS_TASK "t:"
#define KS_QUEUE "q:"
#define KS_RING "ring:"
#define KS_RINGSET "rs:"
#define KS_ROUTING "cfg:"
#define KS_DEP "dep:"
#define KS_STATS "stats"
#define KS_DELIVERY "wd:"
#define KS_WEBHOOK_QUEUE "whq"
#define KS_DELAYED "delayed"
#define KS_LEASES "leases"
#define KS_EXPIRY "expiry"
#define KS_TENANT "tn:"
#define KS_IDEM "idem:"
#define KS_POLLS "polls"
#define KS_DEADLINES "deadlines"
#define KS_LEADER "leader"
#define KS_FILE "f:"
#define KS_FILES_TENANT "fn:"
#define KS_BATCH "b:"
#define KS_BATCHES_TENANT "bn:"
#define KS_BATCH_WORK "bw"
#define KS_ARTIFACT_URL_KEY "artifact_url_key"
#define KS_PIPE "p:"
#define KS_PIPES_TENANT "pn:"
#define KS_PIPE_WORK "pw"
#define KS_BUDGET "bud:"
#define KS_BUDGET_USED "bu:"
#define KS_BUDGETS "buds"
#define KS_CACHE "c:"
#define KS_CACHE_FLIGHT "cf:"
#define KS_CACHE_WAIT "cw:"
#define KS_CACHE_LRU "cl:"
#define KS_CACHE_BYTES "cb:"
#define KS_USAGE "u:"
#define KS_USAGE_TENANTS "ut:"
#define KS_USAGE_CFG "ucfg"
#define KS_API_KEY "ak:"
#define KS_API_KEY_SHA "akh"
#define KS_API_KEY_VERSION "akv"
#define KS_EVENTS "ev:" /* a streamed response's typed events, in order (a list; see below) */
#define KS_DASH_HIST "dh"
#define KS_DASH_FAIL "df"
#define KS_CHANNEL_API "api:"
#define KS_CHANNEL_WAKE "wake"

/*
 * In the embedded Lua text, the place of the prefix: cmake/embed_lua.cmake writes KS_MARK before
 * each {{KS_...}} placeholder, and scripts_new replaces every KS_MARK with the keyspace's prefix
 * (the embedding refuses control characters in a .lua file, so the mark is never anything else).
 */
#define KS_MARK "\001"

/* A keyspace: its prefix "{<tag>}:". */
struct keyspace {
    char prefix[KEY_TAG_MAX + 4];
    size_t len;
};

/*
 * Sets ks to the keyspace of tag (NULL: KEY_TAG_DEFAULT): 1 to KEY_TAG_MAX letters, digits, '_',
 * '-' or '.'. 0, or -1 for a tag that is not one (ks then holds the default).
 */
int keyspace_init(struct keyspace *ks, const char *tag);

/*
 * prefix + family + id (id NULL: none) into buf of size bytes. 0, or -1 when it does not fit (buf
 * then holds "").
 */
int keyspace_key(const struct keyspace *ks, char *buf, size_t size, const char *family,
                 const char *id);

#endif
