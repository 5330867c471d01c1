/*
 * core/keys.h — the Redis key layout.
 *
 * Every key shares the hash tag {sl}, so every atomic script touches one slot and the layout
 * works on Redis Cluster (at the price of one slot holding all of sluice's keys; sharding by tenant
 * is a later step). Scripts build per-task keys from KEY_TASK + id.
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
 *   {sl}:expiry              zset   "tenant|id" → ms when the finished task's hash expires
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
 *   {sl}:api:<node>          channel one API process's waiters: "d <id>" (task finished),
 *                                    "c <id> <chunk>" (a streamed chat chunk)
 *   {sl}:wake                channel "work arrived" for idle workers
 */
#ifndef SLUICE_CORE_KEYS_H
#define SLUICE_CORE_KEYS_H

#define KEY_TASK "{sl}:t:"
#define KEY_QUEUE "{sl}:q:"
#define KEY_RING "{sl}:ring:"
#define KEY_RINGSET "{sl}:rs:"
#define KEY_ROUTING "{sl}:cfg:"
#define KEY_DEP "{sl}:dep:"
#define KEY_STATS "{sl}:stats"
#define KEY_DELIVERY "{sl}:wd:"
#define KEY_WEBHOOK_QUEUE "{sl}:whq"
#define KEY_DELAYED "{sl}:delayed"
#define KEY_LEASES "{sl}:leases"
#define KEY_EXPIRY "{sl}:expiry"
#define KEY_TENANT "{sl}:tn:"
#define KEY_IDEM "{sl}:idem:"
#define KEY_POLLS "{sl}:polls"
#define KEY_DEADLINES "{sl}:deadlines"
#define KEY_LEADER "{sl}:leader"
#define KEY_FILE "{sl}:f:"
#define KEY_FILES_TENANT "{sl}:fn:"
#define KEY_BATCH "{sl}:b:"
#define KEY_BATCHES_TENANT "{sl}:bn:"
#define KEY_BATCH_WORK "{sl}:bw"
#define CHANNEL_API "{sl}:api:"
#define CHANNEL_WAKE "{sl}:wake"

#endif
