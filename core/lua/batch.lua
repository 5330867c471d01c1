-- core/lua/batch.lua — BATCH: every step of a batch's life, one op per call: the API's create,
-- get, list and cancel, and the batch runner's claim and state moves (api/batch_runner.c says when
-- each runs). A batch's tasks are counted on it by finalize (the prelude), which also moves it to
-- finalizing once they are all done and makes it due, unless a runner holds it (field `leased`,
-- set by claim and renew, dropped by the op that ends the runner's pass): that runner checks again
-- itself at the end of its pass.
-- KEYS: 1 batch, 2 work zset, 3 the tenant's batch index
-- ARGV: 1 batch id, 2 op, 3 now ms, then per op (named in op_args below):
--   create   4 tenant, 5.. field, value pairs            → {"ok"}
--   get      4 tenant                                    → {"ok", hash} | {"notfound"}
--   list     4 tenant, 5 after id ("" none), 6 limit     → {"ok", has_more, hash...}
--   cancel   4 tenant                                    → {"ok"|"conflict", hash} | {"notfound"}
--   claim    4 lease ms (the batch key is not used)      → {id, hash} | {}
--   renew    4 lease until ms                            → {"ok"}
--   unlease  4 due ms                                    → {"ok"}
--   started  4 total lines                               → {status after}
--   progress 4 expanded, 5 byte offset, 6 all (0/1), 7 due ms → {"ok"} | {"stop"}
--   expire   4 end reason (expired | failed): stop expanding, make it due → {status}
--   check    4 due ms if not done, 5 field to mark ("" none) → {"done"} | {"waiting"}
--   done     4 final status, 5 output file id, 6 error file id, 7 webhook body, 8 event,
--            9 errors JSON (each "" none)                → {"ok"} | {"stale"}
--   release  4 retention ms, 5.. task ids                → {"ok"}
-- Every op but create, get, list and claim answers {"gone"} when the batch no longer exists.
local bk, work, index_key = KEYS[1], KEYS[2], KEYS[3]
local id, op = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
-- each op's arguments from ARGV[4] on, by name (a); what follows them (create's field, value
-- pairs, release's task ids) is `rest`
local op_args = {
  create = {'tenant'},
  get = {'tenant'},
  list = {'tenant', 'after', 'limit'},
  cancel = {'tenant'},
  claim = {'lease_ms'},
  renew = {'until_ms'},
  unlease = {'due_ms'},
  started = {'total'},
  progress = {'expanded', 'offset', 'all', 'due_ms'},
  expire = {'reason'},
  check = {'due_ms', 'mark'},
  done = {'status', 'output_file', 'error_file', 'webhook_body', 'event', 'errors'},
  release = {'ret_ms'},
}
local a, rest = op_arguments(op_args[op], 4)

local secs = math.floor(now / 1000)
local function owned(tenant)
  return redis.call('HGET', bk, 'tenant') == tenant
end
if op == 'create' then
  redis.call('HSET', bk, 'id', id, 'tenant', a.tenant, 'status', 'validating', 'created_at', secs,
    'completed', 0, 'failed', 0, 'total', 0, 'expanded', 0, 'exp_off', 0)
  for i = 1, #rest, 2 do redis.call('HSET', bk, rest[i], rest[i+1]) end
  redis.call('ZADD', index_key, now, id)
  redis.call('ZADD', work, 0, id)
  return {'ok'}
elseif op == 'get' then
  if not owned(a.tenant) then return {'notfound'} end
  return {'ok', redis.call('HGETALL', bk)}
elseif op == 'list' then
  local start = 0
  if a.after ~= '' then
    local r = redis.call('ZREVRANK', index_key, a.after)
    if r then start = r + 1 end
  end
  local n = tonumber(a.limit)
  local ids = redis.call('ZREVRANGE', index_key, start, start + n)
  local out = {'ok', #ids > n and 1 or 0}
  for i = 1, math.min(#ids, n) do
    local h = redis.call('HGETALL', '{{KS_BATCH}}' .. ids[i])
    if #h > 0 then out[#out+1] = h end
  end
  return out
elseif op == 'cancel' then
  if not owned(a.tenant) then return {'notfound'} end
  local st = redis.call('HGET', bk, 'status')
  if st == 'validating' or st == 'in_progress' then
    redis.call('HSET', bk, 'status', 'cancelling', 'cancelling_at', secs, 'end', 'cancelled')
    redis.call('ZADD', work, 0, id)
  elseif st ~= 'cancelling' and st ~= 'cancelled' then
    return {'conflict', redis.call('HGETALL', bk)}
  end
  return {'ok', redis.call('HGETALL', bk)}
elseif op == 'claim' then
  for _ = 1, 8 do
    local due = redis.call('ZRANGEBYSCORE', work, '-inf', now, 'LIMIT', 0, 1)
    if #due == 0 then return {} end
    local held = num(redis.call('HGET', '{{KS_BATCH}}' .. due[1], 'leased'), 0)
    local h = held > now and {} or redis.call('HGETALL', '{{KS_BATCH}}' .. due[1])
    if held > now then
      redis.call('ZADD', work, held, due[1])
    elseif #h > 0 then
      redis.call('ZADD', work, now + tonumber(a.lease_ms), due[1])
      redis.call('HSET', '{{KS_BATCH}}' .. due[1], 'leased', now + tonumber(a.lease_ms))
      return {due[1], h}
    else
      redis.call('ZREM', work, due[1])
    end
  end
  return {}
end
local st = redis.call('HGET', bk, 'status')
if not st then redis.call('ZREM', work, id); return {'gone'} end
-- the runner's lease: kept by renew, handed back by every op that ends its pass
if op == 'renew' then
  redis.call('ZADD', work, 'XX', a.until_ms, id)
  redis.call('HSET', bk, 'leased', a.until_ms)
  return {'ok'}
elseif op == 'unlease' then
  redis.call('ZADD', work, 'XX', a.due_ms, id)
  redis.call('HDEL', bk, 'leased')
  return {'ok'}
elseif op ~= 'release' and op ~= 'progress' then
  redis.call('HDEL', bk, 'leased')
end
if op == 'started' then
  if st == 'validating' then
    redis.call('HSET', bk, 'status', 'in_progress', 'in_progress_at', secs, 'total', a.total)
    return {'in_progress'}
  elseif st == 'cancelling' then
    redis.call('HSET', bk, 'total', 0, 'expanded', 0, 'expanded_all', 1)
    batch_check(bk, id, now)
  end
  return {st}
elseif op == 'progress' then
  redis.call('HSET', bk, 'expanded', a.expanded, 'exp_off', a.offset)
  if st == 'in_progress' and a.all ~= '1' then
    redis.call('HSET', bk, 'leased', a.due_ms)
  else
    redis.call('HDEL', bk, 'leased')
  end
  if st ~= 'in_progress' then
    -- cancelled or expiring while expanding: the lines not submitted are not part of it
    redis.call('HSET', bk, 'expanded_all', 1, 'total', a.expanded)
    batch_check(bk, id, now)
    redis.call('ZADD', work, 0, id)
    return {'stop'}
  end
  if a.all == '1' then
    redis.call('HSET', bk, 'expanded_all', 1)
    if not batch_check(bk, id, now) then
      redis.call('ZADD', work, num(redis.call('HGET', bk, 'expires_at'), 0) * 1000, id)
    end
  else
    redis.call('ZADD', work, a.due_ms, id)
  end
  return {'ok'}
elseif op == 'expire' then
  if st == 'in_progress' or st == 'cancelling' then
    if not redis.call('HGET', bk, 'end') then redis.call('HSET', bk, 'end', a.reason) end
    if redis.call('HGET', bk, 'expanded_all') ~= '1' then
      redis.call('HSET', bk, 'expanded_all', 1, 'total', redis.call('HGET', bk, 'expanded'))
    end
  end
  redis.call('ZADD', work, 0, id)
  return {st}
elseif op == 'check' then
  if a.mark ~= '' then redis.call('HSET', bk, a.mark, 1) end
  if batch_check(bk, id, now) then return {'done'} end
  redis.call('ZADD', work, a.due_ms, id)
  return {'waiting'}
elseif op == 'done' then
  if st ~= 'validating' and st ~= 'finalizing' and st ~= 'cancelling' then
    redis.call('ZREM', work, id)
    return {'stale'}
  end
  redis.call('HSET', bk, 'status', a.status, a.status .. '_at', secs)
  if a.output_file ~= '' then redis.call('HSET', bk, 'output_file_id', a.output_file) end
  if a.error_file ~= '' then redis.call('HSET', bk, 'error_file_id', a.error_file) end
  if a.errors ~= '' then redis.call('HSET', bk, 'errors', a.errors) end
  redis.call('ZREM', work, id)
  body_event(bk, id, #'batch_', a.event, a.webhook_body, now)
  return {'ok'}
elseif op == 'release' then
  local ret = tonumber(a.ret_ms)
  for _, task_id in ipairs(rest) do
    local k = T .. task_id
    local f = redis.call('HMGET', k, 'status', 'tenant', 'sb', 'ab')
    if f[1] == 'completed' or f[1] == 'failed' or f[1] == 'cancelled' or f[1] == 'expired' then
      redis.call('HSET', k, 'expires', now + ret)
      redis.call('PEXPIRE', k, ret)
      redis.call('ZADD', '{{KS_EXPIRY}}', now + ret,
        f[2] .. '|' .. task_id .. '|' .. f[1] .. '|' .. num(f[3], 0) .. '|' .. num(f[4], 0))
    end
  end
  return {'ok'}
end
return redis.error_reply('unknown batch op ' .. op)
