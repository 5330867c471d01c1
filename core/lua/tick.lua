-- core/lua/tick.lua — TICK: the scheduler's clock, one round trip: hold the leader lock, promote
-- due retries, recover tasks whose lease expired, expire tasks past their deadline, and forget
-- finished tasks in the tenant lists.
-- Lease recovery: a task with an upstream job goes back to the poll set (the job still runs);
-- others go back to the head of their queue, or fail once they used every attempt; cancelling
-- ones become cancelled. Deadlines: a queued task expires at once; a running one becomes
-- cancelling with reason "expired" (a parked one is made due, so a worker cancels the job).
-- KEYS: 1 delayed, 2 leases, 3 expiry, 4 leader
-- ARGV: 1 now ms, 2 limit per step, 3 node id, 4 leader ttl ms, 5 task key prefix,
--       6 tenant key prefix, 7 wake channel, 8 retention ms, 9 queue key prefix, 10 error JSON
--       for a task whose worker was lost on its last attempt
-- Returns {"follower"} or {"leader", promoted, recovered, swept, expired, {ids of swept tasks
-- that kept artifacts: the caller removes their blob folders}}.
local delayed_key, leases_key, expiry_key, leader_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- (the task and queue key prefixes are not read: T and enqueue of the prelude build those keys)
local now_ms, limit, node, leader_ttl, task_prefix, tenant_prefix, wake_channel, ret_ms,
  queue_prefix, lost_error = unpack(ARGV, 1, 10)

local cur = redis.call('GET', leader_key)
if cur and cur ~= node then return {'follower'} end
redis.call('SET', leader_key, node, 'PX', leader_ttl)
local now = tonumber(now_ms)
local lim = tonumber(limit)
local ret = tonumber(ret_ms)
local woke = 0
local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, lim)
for _, id in ipairs(due) do
  redis.call('ZREM', delayed_key, id)
  local k = T .. id
  if redis.call('HGET', k, 'status') == 'queued' then
    enqueue(k, id, true)
    woke = woke + 1
  end
end
local lost = redis.call('ZRANGEBYSCORE', leases_key, '-inf', now, 'LIMIT', 0, lim)
for _, id in ipairs(lost) do
  redis.call('ZREM', leases_key, id)
  local k = T .. id
  local f = redis.call('HMGET', k, 'status', 'attempts', 'max_attempts', 'model', 'tenant',
    'up_id', 'dep')
  if (f[1] == 'in_progress' or f[1] == 'cancelling') and not f[6] and f[7] then
    local dk = '{{KS_DEP}}' .. f[4] .. ':' .. f[7]
    redis.call('HSET', dk, 'inf', math.max(0, num(redis.call('HGET', dk, 'inf'), 1) - 1))
  end
  if f[1] == 'in_progress' and f[6] then
    redis.call('ZADD', '{{KS_POLLS}}', now, id)
  elseif f[1] == 'in_progress' then
    if tonumber(f[2]) >= tonumber(f[3]) then
      redis.call('HSET', k, 'error', lost_error)
      finalize(k, id, 'failed', now, ret, f[5])
    else
      -- its budget reservation goes back: the next claim reserves again
      budget_settle(k, 0)
      set_status(k, 'queued')
      enqueue(k, id, true)
      woke = woke + 1
    end
  elseif f[1] == 'cancelling' then
    finalize(k, id, cancelled_status(k), now, ret, f[5])
  end
end
local late = redis.call('ZRANGEBYSCORE', '{{KS_DEADLINES}}', '-inf', now, 'LIMIT', 0, lim)
for _, id in ipairs(late) do
  redis.call('ZREM', '{{KS_DEADLINES}}', id)
  local k = T .. id
  local f = redis.call('HMGET', k, 'status', 'tenant')
  if f[1] == 'queued' then
    redis.call('ZREM', delayed_key, id)
    dequeued(k)
    finalize(k, id, 'expired', now, ret, f[2])
  elseif f[1] == 'in_progress' then
    set_status(k, 'cancelling')
    redis.call('HSET', k, 'cancel_reason', 'expired')
    if redis.call('ZSCORE', '{{KS_POLLS}}', id) then
      redis.call('ZADD', '{{KS_POLLS}}', now, id)
    end
  end
end
local gone = {}
local old = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', now, 'LIMIT', 0, lim)
for _, m in ipairs(old) do
  redis.call('ZREM', expiry_key, m)
  -- tenant|id|status, and since stored bytes are counted |stored|artifact bytes (tenants and ids
  -- have no '|'); the scheduler removes the blob folders of the swept tasks
  local tenant, id, status, sb, ab =
    string.match(m, '^([^|]*)|([^|]*)|([^|]*)|?(%d*)|?(%d*)$')
  if tenant then
    redis.call('ZREM', tenant_prefix .. tenant, id)
    redis.call('HINCRBY', STATS, 'status|' .. status, -1)
    if sb ~= '' and sb ~= '0' then redis.call('HINCRBY', STATS, 'sb|' .. tenant, -sb) end
    if ab ~= '' and ab ~= '0' then
      redis.call('HINCRBY', STATS, 'ab|' .. tenant, -ab)
      gone[#gone+1] = id
    end
  end
end
if woke > 0 then redis.call('PUBLISH', wake_channel, '1') end
return {'leader', #due, #lost, #old, #late, gone}
