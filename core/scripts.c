/*
 * core/scripts.c — the Lua scripts, one per state transition.
 *
 * Statuses: queued → in_progress → completed | failed; cancel from queued (→ cancelled) or
 * in_progress (→ cancelling, then cancelled when the worker or the lease recovery finishes it).
 * A terminal write sets `completed`, `expires`, a PEXPIRE for the retention period and an entry in
 * the expiry index, so the tenant's list forgets the task when its hash is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/keys.h"
#include "core/scripts.h"

/*
 * Shared by every script: the one way a task becomes terminal. It stamps the time, schedules the
 * hash's expiry and the tenant-list cleanup, drops the task from the deadline set, and tells the
 * API process waiting on it (a synchronous request, Prefer: wait, a stream), if any.
 * Fixed key names are literals here: every key shares the {sl} hash tag, so they live in the slot
 * the script's declared keys route it to.
 */
static const char prelude_lua[] =
    "local function finalize(k, id, status, now, ret, tenant)\n"
    "  redis.call('HSET', k, 'status', status, 'completed', now, 'expires', now + ret)\n"
    "  redis.call('PEXPIRE', k, ret)\n"
    "  redis.call('ZADD', '" KEY_EXPIRY "', now + ret, tenant .. '|' .. id)\n"
    "  redis.call('ZREM', '" KEY_DEADLINES "', id)\n"
    "  redis.call('ZREM', '" KEY_POLLS "', id)\n"
    "  local r = redis.call('HGET', k, 'reply_to')\n"
    "  if r then redis.call('PUBLISH', r, 'd ' .. id) end\n"
    "end\n"
    "local function cancelled_status(k)\n"
    "  if redis.call('HGET', k, 'cancel_reason') == 'expired' then return 'expired' end\n"
    "  return 'cancelled'\n"
    "end\n";

/*
 * SUBMIT — create a queued task.
 * KEYS: 1 task, 2 queue of its priority, 3 tenant index, 4 idempotency key
 * ARGV: 1 id, 2 tenant, 3 kind, 4 model, 5 priority (0-2), 6 now ms, 7 max_attempts, 8 input,
 *       9 metadata ("" none), 10 use idempotency (0/1), 11 body sha256, 12 idempotency ttl ms,
 *       13 wake channel, 14 task key prefix, 15 reply_to channel ("" none), 16 stream (0/1),
 *       17 deadline ms ("" none)
 * Returns {"ok"} | {"dup", id, hash...} | {"conflict"}.
 */
static const char submit_lua[] =
    "if ARGV[10] == '1' then\n"
    "  local prev = redis.call('GET', KEYS[4])\n"
    "  if prev then\n"
    "    local h, id = string.match(prev, '^(%x+) (.+)$')\n"
    "    if h ~= ARGV[11] then return {'conflict'} end\n"
    "    local t = redis.call('HGETALL', ARGV[14] .. id)\n"
    "    if #t > 0 then return {'dup', id, t} end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tenant', ARGV[2], 'kind', ARGV[3], 'model', ARGV[4],\n"
    "  'status', 'queued', 'priority', ARGV[5], 'created', ARGV[6], 'attempts', 0,\n"
    "  'max_attempts', ARGV[7], 'fence', 0, 'input', ARGV[8])\n"
    "if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'metadata', ARGV[9]) end\n"
    "if ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'reply_to', ARGV[15]) end\n"
    "if ARGV[16] == '1' then redis.call('HSET', KEYS[1], 'stream', '1') end\n"
    "if ARGV[17] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], 'deadline', ARGV[17])\n"
    "  redis.call('ZADD', '" KEY_DEADLINES "', ARGV[17], ARGV[1])\n"
    "end\n"
    "local was = redis.call('LLEN', KEYS[2])\n"
    "redis.call('LPUSH', KEYS[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])\n"
    "if ARGV[10] == '1' then\n"
    "  redis.call('SET', KEYS[4], ARGV[11] .. ' ' .. ARGV[1], 'PX', ARGV[12])\n"
    "end\n"
    "if was == 0 then redis.call('PUBLISH', ARGV[13], '1') end\n"
    "return {'ok'}\n";

/*
 * CLAIM — take up to n units of work and lease them: first parked long-running tasks whose poll
 * is due (mode "poll"; their fence moves, their attempts do not), then queued tasks, interactive
 * before normal before batch (mode "call"). Entries whose task is no longer queued (cancelled,
 * expired) are dropped on the way: cancel does not search the lists. This is the scheduler's
 * admission step: per-deployment budgets are taken here when pacing arrives, so a task that finds
 * no capacity simply stays queued.
 * KEYS: 1-3 queues 0..2, 4 leases, 5 polls
 * ARGV: 1 now ms, 2 lease ms, 3 n, 4 task key prefix
 * Returns a flat array, 15 per unit: id, fence, attempts, max_attempts, tenant, model, kind,
 * input, mode, status, up_id, job, dep, stream, reply_to.
 */
static const char claim_lua[] =
    "local out = {}\n"
    "local n = tonumber(ARGV[3])\n"
    "local got = 0\n"
    "local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])\n"
    "local function emit(id, k, mode, fence)\n"
    "  local f = redis.call('HMGET', k, 'attempts', 'max_attempts', 'tenant', 'model', 'kind',\n"
    "    'input', 'status', 'up_id', 'job', 'dep', 'stream', 'reply_to')\n"
    "  local o = #out\n"
    "  out[o+1] = id; out[o+2] = tostring(fence); out[o+3] = f[1]; out[o+4] = f[2]\n"
    "  out[o+5] = f[3]; out[o+6] = f[4]; out[o+7] = f[5]; out[o+8] = f[6]; out[o+9] = mode\n"
    "  out[o+10] = f[7]; out[o+11] = f[8] or ''; out[o+12] = f[9] or ''\n"
    "  out[o+13] = f[10] or ''; out[o+14] = f[11] or ''; out[o+15] = f[12] or ''\n"
    "  redis.call('ZADD', KEYS[4], deadline, id)\n"
    "  got = got + 1\n"
    "end\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1], 'LIMIT', 0, n)\n"
    "for _, id in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[5], id)\n"
    "  local k = ARGV[4] .. id\n"
    "  local st = redis.call('HGET', k, 'status')\n"
    "  if st == 'in_progress' or st == 'cancelling' then\n"
    "    emit(id, k, 'poll', redis.call('HINCRBY', k, 'fence', 1))\n"
    "  end\n"
    "end\n"
    "for q = 1, 3 do\n"
    "  while got < n do\n"
    "    local id = redis.call('RPOP', KEYS[q])\n"
    "    if not id then break end\n"
    "    local k = ARGV[4] .. id\n"
    "    if redis.call('HGET', k, 'status') == 'queued' then\n"
    "      redis.call('HINCRBY', k, 'attempts', 1)\n"
    "      local fence = redis.call('HINCRBY', k, 'fence', 1)\n"
    "      redis.call('HSET', k, 'status', 'in_progress')\n"
    "      redis.call('HSETNX', k, 'started', ARGV[1])\n"
    "      emit(id, k, 'call', fence)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * EXTEND — the workers' heartbeat: push the lease deadline of each (id, fence) still held.
 * KEYS: 1 leases
 * ARGV: 1 new deadline ms, 2 task key prefix, then pairs id, fence
 * Returns one status per pair: "ok", "cancelling" (stop and finish it) or "lost" (drop it).
 */
static const char extend_lua[] =
    "local out = {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local id = ARGV[i]\n"
    "  local f = redis.call('HMGET', ARGV[2] .. id, 'status', 'fence')\n"
    "  if f[2] == ARGV[i+1] and (f[1] == 'in_progress' or f[1] == 'cancelling') then\n"
    "    redis.call('ZADD', KEYS[1], ARGV[1], id)\n"
    "    out[#out+1] = (f[1] == 'cancelling') and 'cancelling' or 'ok'\n"
    "  else\n"
    "    out[#out+1] = 'lost'\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * FINISH — a worker reports an attempt's outcome, fenced.
 * outcome: completed | failed | retry (back off, then queued again) | release (back to the head
 * of the queue at once, without spending an attempt: shutdown, provider rate limits) | park (an
 * upstream job is running: keep the task in_progress, due for a poll at poll_at; an empty up_id
 * or job keeps the stored one). A retry with no attempts left becomes failed; any outcome on a
 * cancelling task becomes cancelled (or expired, when its deadline caused it) — except park, which
 * makes it due at once so a worker cancels the upstream job first.
 * KEYS: 1 task, 2 leases, 3 delayed, 4 polls
 * ARGV: 1 id, 2 fence, 3 now ms, 4 outcome, 5 result, 6 usage, 7 provider, 8 cost, 9 error,
 *       10 retry at ms, 11 retention ms, 12 queue key prefix, 13 wake channel, 14 up_id, 15 job,
 *       16 progress, 17 queue_position, 18 poll at ms, 19 deployment index, 20 artifacts
 * Returns {outcome} as applied, or {"stale", status}.
 */
static const char finish_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'status', 'fence', 'attempts', 'max_attempts',\n"
    "  'priority', 'tenant')\n"
    "if f[2] ~= ARGV[2] or (f[1] ~= 'in_progress' and f[1] ~= 'cancelling') then\n"
    "  return {'stale', f[1] or ''}\n"
    "end\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "local outcome = ARGV[4]\n"
    "local function keep(field, v) if v ~= '' then redis.call('HSET', KEYS[1], field, v) end end\n"
    "if outcome == 'park' then\n"
    "  keep('up_id', ARGV[14]); keep('job', ARGV[15]); keep('dep', ARGV[19])\n"
    "  keep('progress', ARGV[16]); keep('queue_position', ARGV[17]); keep('provider', ARGV[7])\n"
    "  local at = ARGV[18]\n"
    "  if f[1] == 'cancelling' then at = ARGV[3] end\n"
    "  redis.call('ZADD', KEYS[4], at, ARGV[1])\n"
    "  return {'park'}\n"
    "end\n"
    "if f[1] == 'cancelling' then outcome = cancelled_status(KEYS[1]) end\n"
    "if outcome == 'retry' and tonumber(f[3]) >= tonumber(f[4]) then outcome = 'failed' end\n"
    "if outcome == 'retry' then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'queued', 'last_error', ARGV[9])\n"
    "  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[1])\n"
    "  return {'retry'}\n"
    "end\n"
    "if outcome == 'release' then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'queued')\n"
    "  redis.call('HINCRBY', KEYS[1], 'attempts', -1)\n"
    "  redis.call('RPUSH', ARGV[12] .. f[5], ARGV[1])\n"
    "  redis.call('PUBLISH', ARGV[13], '1')\n"
    "  return {'release'}\n"
    "end\n"
    "if outcome == 'completed' then\n"
    "  redis.call('HSET', KEYS[1], 'result', ARGV[5], 'progress', 100)\n"
    "  keep('artifacts', ARGV[20])\n"
    "elseif outcome == 'failed' then\n"
    "  redis.call('HSET', KEYS[1], 'error', ARGV[9])\n"
    "end\n"
    "keep('usage', ARGV[6]); keep('provider', ARGV[7]); keep('cost', ARGV[8])\n"
    "redis.call('HDEL', KEYS[1], 'last_error', 'queue_position')\n"
    "finalize(KEYS[1], ARGV[1], outcome, tonumber(ARGV[3]), tonumber(ARGV[11]), f[6])\n"
    "return {outcome}\n";

/*
 * CANCEL — a client cancels its task. Queued: cancelled at once. In progress: cancelling, and a
 * parked long-running task is made due now, so a worker cancels the upstream job and finishes it.
 * KEYS: 1 task, 2 delayed, 3 polls
 * ARGV: 1 id, 2 tenant, 3 now ms, 4 retention ms
 * Returns {"ok", hash} | {"notfound"} | {"conflict", hash}.
 */
static const char cancel_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'status', 'tenant')\n"
    "if not f[1] or f[2] ~= ARGV[2] then return {'notfound'} end\n"
    "if f[1] == 'queued' then\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "  finalize(KEYS[1], ARGV[1], 'cancelled', tonumber(ARGV[3]), tonumber(ARGV[4]), f[2])\n"
    "elseif f[1] == 'in_progress' then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'cancelling')\n"
    "  if redis.call('ZSCORE', KEYS[3], ARGV[1]) then\n"
    "    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])\n"
    "  end\n"
    "elseif f[1] ~= 'cancelling' then\n"
    "  return {'conflict', redis.call('HGETALL', KEYS[1])}\n"
    "end\n"
    "return {'ok', redis.call('HGETALL', KEYS[1])}\n";

/*
 * TICK — the scheduler's clock, one round trip: hold the leader lock, promote due retries,
 * recover tasks whose lease expired, expire tasks past their deadline, and forget finished tasks
 * in the tenant lists.
 * Lease recovery: a task with an upstream job goes back to the poll set (the job still runs);
 * others go back to the head of their queue, or fail once they used every attempt; cancelling
 * ones become cancelled. Deadlines: a queued task expires at once; a running one becomes
 * cancelling with reason "expired" (a parked one is made due, so a worker cancels the job).
 * KEYS: 1 delayed, 2 leases, 3 expiry, 4 leader
 * ARGV: 1 now ms, 2 limit per step, 3 node id, 4 leader ttl ms, 5 task key prefix,
 *       6 tenant key prefix, 7 wake channel, 8 retention ms, 9 queue key prefix, 10 error JSON
 *       for a task whose worker was lost on its last attempt
 * Returns {"follower"} or {"leader", promoted, recovered, swept, expired}.
 */
static const char tick_lua[] =
    "local cur = redis.call('GET', KEYS[4])\n"
    "if cur and cur ~= ARGV[3] then return {'follower'} end\n"
    "redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])\n"
    "local now = tonumber(ARGV[1])\n"
    "local lim = tonumber(ARGV[2])\n"
    "local ret = tonumber(ARGV[8])\n"
    "local woke = 0\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, id in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  local f = redis.call('HMGET', ARGV[5] .. id, 'status', 'priority')\n"
    "  if f[1] == 'queued' then\n"
    "    redis.call('RPUSH', ARGV[9] .. f[2], id)\n"
    "    woke = woke + 1\n"
    "  end\n"
    "end\n"
    "local lost = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, id in ipairs(lost) do\n"
    "  redis.call('ZREM', KEYS[2], id)\n"
    "  local k = ARGV[5] .. id\n"
    "  local f = redis.call('HMGET', k, 'status', 'attempts', 'max_attempts', 'priority',\n"
    "    'tenant', 'up_id')\n"
    "  if f[1] == 'in_progress' and f[6] then\n"
    "    redis.call('ZADD', '" KEY_POLLS "', now, id)\n"
    "  elseif f[1] == 'in_progress' then\n"
    "    if tonumber(f[2]) >= tonumber(f[3]) then\n"
    "      redis.call('HSET', k, 'error', ARGV[10])\n"
    "      finalize(k, id, 'failed', now, ret, f[5])\n"
    "    else\n"
    "      redis.call('HSET', k, 'status', 'queued')\n"
    "      redis.call('RPUSH', ARGV[9] .. f[4], id)\n"
    "      woke = woke + 1\n"
    "    end\n"
    "  elseif f[1] == 'cancelling' then\n"
    "    finalize(k, id, cancelled_status(k), now, ret, f[5])\n"
    "  end\n"
    "end\n"
    "local late = redis.call('ZRANGEBYSCORE', '" KEY_DEADLINES "', '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, id in ipairs(late) do\n"
    "  redis.call('ZREM', '" KEY_DEADLINES "', id)\n"
    "  local k = ARGV[5] .. id\n"
    "  local f = redis.call('HMGET', k, 'status', 'tenant')\n"
    "  if f[1] == 'queued' then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    finalize(k, id, 'expired', now, ret, f[2])\n"
    "  elseif f[1] == 'in_progress' then\n"
    "    redis.call('HSET', k, 'status', 'cancelling', 'cancel_reason', 'expired')\n"
    "    if redis.call('ZSCORE', '" KEY_POLLS "', id) then\n"
    "      redis.call('ZADD', '" KEY_POLLS "', now, id)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, m in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[3], m)\n"
    "  local tenant, id = string.match(m, '^(.*)|(.*)$')\n"
    "  if tenant then redis.call('ZREM', ARGV[6] .. tenant, id) end\n"
    "end\n"
    "if woke > 0 then redis.call('PUBLISH', ARGV[7], '1') end\n"
    "return {'leader', #due, #lost, #old, #late}\n";

/*
 * LIST — a page of a tenant's tasks, newest first, optionally filtered by status. Scans at most
 * `cap` index entries per call so a filter that matches nothing stays bounded.
 * KEYS: 1 tenant index
 * ARGV: 1 after id ("" for the first page), 2 limit, 3 status ("" any), 4 task key prefix, 5 cap
 * Returns {"ok", has_more (0/1), id, hash, id, hash, ...} | {"badcursor"}.
 */
static const char list_lua[] = "local start = 0\n"
                               "if ARGV[1] ~= '' then\n"
                               "  local r = redis.call('ZREVRANK', KEYS[1], ARGV[1])\n"
                               "  if not r then return {'badcursor'} end\n"
                               "  start = r + 1\n"
                               "end\n"
                               "local lim = tonumber(ARGV[2])\n"
                               "local cap = tonumber(ARGV[5])\n"
                               "local out = {'ok', 0}\n"
                               "local found = 0\n"
                               "local scanned = 0\n"
                               "while scanned < cap do\n"
                               "  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + 99)\n"
                               "  if #ids == 0 then return out end\n"
                               "  for _, id in ipairs(ids) do\n"
                               "    scanned = scanned + 1\n"
                               "    start = start + 1\n"
                               "    local k = ARGV[4] .. id\n"
                               "    local st = redis.call('HGET', k, 'status')\n"
                               "    if st and (ARGV[3] == '' or ARGV[3] == st) then\n"
                               "      if found == lim then out[2] = 1; return out end\n"
                               "      found = found + 1\n"
                               "      out[#out+1] = id\n"
                               "      out[#out+1] = redis.call('HGETALL', k)\n"
                               "    end\n"
                               "    if scanned >= cap then break end\n"
                               "  end\n"
                               "end\n"
                               "if redis.call('ZCARD', KEYS[1]) > start then out[2] = 1 end\n"
                               "return out\n";

static const char *const bodies[SCRIPT_COUNT] = {
    [SCRIPT_SUBMIT] = submit_lua, [SCRIPT_CLAIM] = claim_lua,   [SCRIPT_EXTEND] = extend_lua,
    [SCRIPT_FINISH] = finish_lua, [SCRIPT_CANCEL] = cancel_lua, [SCRIPT_TICK] = tick_lua,
    [SCRIPT_LIST] = list_lua,
};

/* Constants once scripts_init has run (prelude + body); written only there. */
static char *sources[SCRIPT_COUNT];
static char shas[SCRIPT_COUNT][41];

void scripts_init(void)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        size_t n = strlen(prelude_lua) + strlen(bodies[i]) + 1;
        if (sources[i] == NULL) {
            sources[i] = malloc(n);
            if (sources[i] == NULL) {
                abort(); /* at start, before anything runs: nothing to recover */
            }
            snprintf(sources[i], n, "%s%s", prelude_lua, bodies[i]);
        }
        SHA1((const unsigned char *)sources[i], strlen(sources[i]), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            snprintf(&shas[i][2 * j], 3, "%02x", md[j]);
        }
    }
}

const char *script_source(int id)
{
    return sources[id];
}

const char *script_sha(int id)
{
    return shas[id];
}
