-- core/lua/cancel.lua — CANCEL: a client cancels its task. Queued: cancelled at once. In
-- progress: cancelling, and a parked long-running task is made due now, so a worker cancels the
-- upstream job and finishes it.
-- KEYS: 1 task, 2 delayed, 3 polls
-- ARGV: 1 id, 2 tenant, 3 now ms, 4 retention ms
-- Returns {"ok", hash} | {"notfound"} | {"conflict", hash}.
local task_key, delayed_key, polls_key = KEYS[1], KEYS[2], KEYS[3]
local id, tenant, now_ms, ret_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local f = redis.call('HMGET', task_key, 'status', 'tenant')
if not f[1] or f[2] ~= tenant then return {'notfound'} end
if f[1] == 'queued' then
  redis.call('ZREM', delayed_key, id)
  dequeued(task_key)
  finalize(task_key, id, 'cancelled', tonumber(now_ms), tonumber(ret_ms), f[2])
elseif f[1] == 'in_progress' then
  set_status(task_key, 'cancelling')
  if redis.call('ZSCORE', polls_key, id) then
    redis.call('ZADD', polls_key, now_ms, id)
  end
elseif f[1] ~= 'cancelling' then
  return {'conflict', redis.call('HGETALL', task_key)}
end
return {'ok', redis.call('HGETALL', task_key)}
