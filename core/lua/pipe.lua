-- core/lua/pipe.lua — PIPE: every step of a pipeline's life, one op per call: the API's create,
-- get, list and cancel, and the pipeline runner's claim, reads and moves (api/pipeline_runner.c
-- says when each runs). A pipeline's tasks are counted on it by finalize (the prelude's
-- pipe_count), which makes it due for a runner — the atomic step that records a task's end; a
-- runner then starts the steps those counts allow, with task ids derived from the pipeline, so a
-- runner that dies between two ops leaves nothing that the next pass does not redo exactly once.
-- A claimed pipeline carries `leased` (ms) until its runner unleases it; a task that ends in the
-- meantime sets `dirty`, and the unlease makes it due again at once. A pipeline's score in the work
-- set is when it became due (never 0): claims take the longest-waiting first, not the lowest ids.
-- KEYS: 1 pipeline, 2 work zset, 3 the tenant's pipeline index
-- ARGV: 1 pipeline id, 2 op, 3 now ms, then per op (named in op_args below):
--   create   4 tenant, 5.. field, value pairs               → {"ok"}
--   get      4 tenant                                       → {"ok", hash} | {"notfound"}
--   list     4 tenant, 5 after id ("" none), 6 limit        → {"ok", has_more, hash...}
--   cancel   4 tenant                                       → {"ok"|"conflict", hash} | {"notfound"}
--   claim    4 lease ms, 5 at most (the pipeline key is not used) → {id, hash, id, hash, ...}
--   tasks    4.. task ids: each task's status, kind, result, artifacts, error (false: absent),
--            5 per task in order                          → {...}
--   advance  4 lease (the claim's `leased`), 5 status ("" keep), 6 retention ms, 7 webhook body
--            ("" none), 8 event, 9.. field, value pairs to write → {"ok"} | {"stale"} | {"gone"}
--   unlease  4 lease, 5 due ms                              → {"ok"} | {"stale"} | {"gone"}
-- advance is the runner's write: step fields (st:<step>, n:<step>, t0, t1, err), and with a
-- terminal status the end: `completed`, the retention, the webhook delivery. advance and unlease
-- answer "stale" (nothing written) when the pipeline has ended already, so an end is written
-- once, or when its lease is no longer the caller's (it ran out and another runner holds it).
local pk, work, index_key = KEYS[1], KEYS[2], KEYS[3]
local id, op = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local op_args = {
  create = {'tenant'},
  get = {'tenant'},
  list = {'tenant', 'after', 'limit'},
  cancel = {'tenant'},
  claim = {'lease_ms', 'max'},
  tasks = {},
  advance = {'lease', 'status', 'ret_ms', 'webhook_body', 'event'},
  unlease = {'lease', 'due_ms'},
}
local a, rest = op_arguments(op_args[op], 4)
local terminal = {completed = true, failed = true, cancelled = true, expired = true}

if op == 'create' then
  redis.call('HSET', pk, 'tenant', a.tenant, 'status', 'queued', 'created', now, unpack(rest))
  redis.call('ZADD', index_key, now, id)
  redis.call('ZADD', work, now, id)
  return {'ok'}
elseif op == 'get' then
  local h = redis.call('HGETALL', pk)
  if #h == 0 or redis.call('HGET', pk, 'tenant') ~= a.tenant then return {'notfound'} end
  return {'ok', h}
elseif op == 'list' then
  local start = 0
  if a.after ~= '' then
    local r = redis.call('ZREVRANK', index_key, a.after)
    if r then start = r + 1 end
  end
  local n = tonumber(a.limit)
  local out = {'ok', 0}
  -- a pipeline past its retention has left its hash only: its index entry goes now
  local gone = {}
  while #out - 2 < n do
    local ids = redis.call('ZREVRANGE', index_key, start, start + n)
    if #ids == 0 then break end
    for _, pid in ipairs(ids) do
      start = start + 1
      local h = redis.call('HGETALL', '{{KS_PIPE}}' .. pid)
      if #h == 0 then
        gone[#gone+1] = pid
      elseif #out - 2 < n then
        out[#out+1] = h
      else
        out[2] = 1
        break
      end
    end
    if out[2] == 1 or #ids <= n then break end
  end
  for _, pid in ipairs(gone) do redis.call('ZREM', index_key, pid) end
  return out
elseif op == 'cancel' then
  local f = redis.call('HMGET', pk, 'tenant', 'status', 'leased')
  if not f[1] or f[1] ~= a.tenant then return {'notfound'} end
  if terminal[f[2]] or f[2] == 'cancelling' then
    return {f[2] == 'cancelling' and 'ok' or 'conflict', redis.call('HGETALL', pk)}
  end
  redis.call('HSET', pk, 'status', 'cancelling')
  if tonumber(f[3] or '0') > now then
    redis.call('HSET', pk, 'dirty', '1')
  else
    redis.call('ZADD', work, 'LT', now, id)
  end
  return {'ok', redis.call('HGETALL', pk)}
elseif op == 'claim' then
  local out = {}
  local ids = redis.call('ZRANGEBYSCORE', work, '-inf', now, 'LIMIT', 0, tonumber(a.max))
  for _, pid in ipairs(ids) do
    local k = '{{KS_PIPE}}' .. pid
    local st = redis.call('HGET', k, 'status')
    if not st or terminal[st] then
      redis.call('ZREM', work, pid)
    else
      local until_ms = now + tonumber(a.lease_ms)
      redis.call('HSET', k, 'leased', until_ms)
      redis.call('HDEL', k, 'dirty')
      redis.call('ZADD', work, until_ms, pid)
      out[#out+1] = pid
      out[#out+1] = redis.call('HGETALL', k)
    end
  end
  return out
elseif op == 'tasks' then
  local out = {}
  for _, tid in ipairs(rest) do
    local f = redis.call('HMGET', T .. tid, 'status', 'kind', 'result', 'artifacts', 'error')
    for i = 1, 5 do out[#out+1] = f[i] end
  end
  return out
end

-- the runner's ops: the pipeline must still exist
local st = redis.call('HGET', pk, 'status')
if not st then
  redis.call('ZREM', work, id)
  return {'gone'}
end
if terminal[st] then
  redis.call('ZREM', work, id)
  return {'stale'}
end
if redis.call('HGET', pk, 'leased') ~= a.lease then return {'stale'} end
if op == 'advance' then
  if #rest > 0 then redis.call('HSET', pk, unpack(rest)) end
  if a.status ~= '' and a.status ~= st then redis.call('HSET', pk, 'status', a.status) end
  if terminal[a.status] then
    redis.call('HSET', pk, 'completed', now)
    redis.call('HDEL', pk, 'leased', 'dirty')
    redis.call('ZREM', work, id)
    redis.call('PEXPIRE', pk, tonumber(a.ret_ms))
    body_event(pk, id, #'pipe_', a.event, a.webhook_body, now)
  end
  return {'ok'}
elseif op == 'unlease' then
  local dirty = redis.call('HGET', pk, 'dirty')
  redis.call('HDEL', pk, 'leased', 'dirty')
  redis.call('ZADD', work, dirty and now or tonumber(a.due_ms), id)
  return {'ok'}
end
return redis.error_reply('PIPE: unknown op ' .. tostring(op))
