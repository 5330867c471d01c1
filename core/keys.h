/*
 * core/keys.h — the Redis key layout.
 *
 * Every key shares the hash tag {sl}, so every atomic script touches one slot and the layout
 * works on Redis Cluster (at the price of one slot holding all of sluice's keys; sharding by tenant
 * is a later step). Scripts build per-task keys from KEY_TASK + id.
 *
 *   {sl}:t:<id>              hash   the task (fields in core/task.c)
 *   {sl}:q:<0|1|2>           list   ready queue per priority (LPUSH new, RPOP claims, RPUSH = head)
 *   {sl}:delayed             zset   id → due ms (retries waiting for their backoff)
 *   {sl}:leases              zset   id → lease deadline ms (claimed tasks)
 *   {sl}:expiry              zset   "tenant|id" → ms when the finished task's hash expires
 *   {sl}:tn:<tenant>         zset   id → created ms (the tenant's list, newest first)
 *   {sl}:idem:<tenant>:<h>   string "<sha256 of body> <id>" for an Idempotency-Key (h = its hash)
 *   {sl}:polls               zset   id → ms when a parked long-running task is due for a poll
 *   {sl}:deadlines           zset   id → the client's deadline ms (then the task expires)
 *   {sl}:leader              string the scheduler holding the leader lock
 *   {sl}:api:<node>          channel one API process's waiters: "d <id>" (task finished),
 *                                    "c <id> <chunk>" (a streamed chat chunk)
 *   {sl}:wake                channel "work arrived" for idle workers
 */
#ifndef SLUICE_CORE_KEYS_H
#define SLUICE_CORE_KEYS_H

#define KEY_TASK "{sl}:t:"
#define KEY_QUEUE "{sl}:q:"
#define KEY_QUEUE_0 "{sl}:q:0"
#define KEY_QUEUE_1 "{sl}:q:1"
#define KEY_QUEUE_2 "{sl}:q:2"
#define KEY_DELAYED "{sl}:delayed"
#define KEY_LEASES "{sl}:leases"
#define KEY_EXPIRY "{sl}:expiry"
#define KEY_TENANT "{sl}:tn:"
#define KEY_IDEM "{sl}:idem:"
#define KEY_POLLS "{sl}:polls"
#define KEY_DEADLINES "{sl}:deadlines"
#define KEY_LEADER "{sl}:leader"
#define CHANNEL_API "{sl}:api:"
#define CHANNEL_WAKE "{sl}:wake"

#endif
