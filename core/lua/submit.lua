-- core/lua/submit.lua — SUBMIT: create queued tasks, each unless its tenant's quota of queued
-- tasks is used up: every task an API process accepted in one loop turn (up to 64), applied in
-- order, as separate calls would be. Each task is written with one HSET; what the tasks of one
-- call share is written once per call: the /metrics counters (summed), each ready list (one LPUSH
-- of its new ids, in order), each ring entry, each tenant index (one ZADD), the wake message.
-- KEYS: none (the keys are in each group; all in the keyspace's one slot)
-- ARGV: 1 wake channel, then SUBMIT_GROUP arguments per task, in submit_one's order:
--       task key, tenant index key, idempotency key, id, tenant, kind, model, priority (0-2),
--       now ms, max_attempts, input, metadata ("" none), use idempotency (0/1), body sha256,
--       idempotency ttl ms, reply_to channel ("" none), stream (0/1), deadline ms ("" none),
--       estimated tokens, routing JSON ("" none), the tenant's quota of queued tasks, webhook
--       JSON {url, events} ("" none), batch id ("" none), custom_id, the tenant's quota of stored
--       bytes, the tenant's quota of artifact bytes (image and video tasks are refused past it),
--       pipeline id ("" none), the pipeline's step id
-- Stored bytes: a task's input counts against its tenant from SUBMIT (its result from FINISH)
-- until the scheduler forgets the task (`sb|<tenant>` in the stats hash, `sb` on the task, and
-- the expiry index member carries the task's total so the sweep can give it back).
-- A batch's task has an id derived from its batch and line, so a runner that submits a chunk
-- again (after a crash) finds the task there: {"dup", id, hash}, nothing created twice; so has a
-- pipeline's task (from its pipeline, step and place in the step).
-- Returns one entry per task, in order: {"ok"} | {"dup", id, hash} | {"conflict"} |
-- {"quota", queued} | {"storage", stored bytes} | {"artifacts", artifact bytes}.
local wake_channel = ARGV[1]
-- fn called with each task's SUBMIT_GROUP arguments, in order; its answers, in order
local function each_task(fn)
  local out = {}
  for base = 2, #ARGV - {{SUBMIT_GROUP_S}} + 1, {{SUBMIT_GROUP_S}} do
    out[#out+1] = fn(unpack(ARGV, base, base + {{SUBMIT_GROUP_S}} - 1))
  end
  return out
end

ACC = {}
-- the tenants' queued counts (read once, then counted here), the ready lists' new ids, the ring
-- entries seen, the tenant indexes' new entries
local queued, lists, list_order, rings, index, index_order = {}, {}, {}, {}, {}, {}
local stored = {}
local function submit_one(task_key, index_key, idem_key, id, tenant, kind, model, prio, now,
    max_attempts, input, metadata, use_idem, body_hash, idem_ttl, reply_to, stream, deadline,
    est, routing, max_queued, webhook, batch, custom_id, max_stored, max_artifacts, pipe, pstep)
  if (batch ~= '' or pipe ~= '') and redis.call('EXISTS', task_key) == 1 then
    return {'dup', id, redis.call('HGETALL', task_key)}
  end
  if use_idem == '1' then
    local prev = redis.call('GET', idem_key)
    if prev then
      local h, prev_id = string.match(prev, '^(%x+) (.+)$')
      if h ~= body_hash then return {'conflict'} end
      local t = redis.call('HGETALL', T .. prev_id)
      if #t > 0 then return {'dup', prev_id, t} end
    end
  end
  local q = queued[tenant] or num(redis.call('HGET', STATS, 'tq|' .. tenant), 0)
  queued[tenant] = q
  if q >= tonumber(max_queued) then return {'quota', q} end
  local sb = stored[tenant] or num(redis.call('HGET', STATS, 'sb|' .. tenant), 0)
  stored[tenant] = sb
  if sb + #input > tonumber(max_stored) then return {'storage', sb} end
  if kind == 'image' or kind == 'video' then
    local ab = num(redis.call('HGET', STATS, 'ab|' .. tenant), 0)
    if ab >= tonumber(max_artifacts) then return {'artifacts', ab} end
  end
  stored[tenant] = sb + #input
  queued[tenant] = q + 1
  -- the whole task in one write, queued (the same steps as set_status and enqueue, without
  -- reading back what this script is writing)
  local h = {'tenant', tenant, 'kind', kind, 'model', model, 'priority', prio,
    'created', now, 'attempts', 0, 'max_attempts', max_attempts, 'fence', 0, 'input', input,
    'est', est, 'status', 'queued', 'inq', '1', 'sb', #input}
  local function opt(field, v) if v ~= '' then h[#h+1] = field; h[#h+1] = v end end
  opt('metadata', metadata); opt('reply_to', reply_to); opt('deadline', deadline)
  opt('routing', routing); opt('webhook', webhook); opt('batch', batch)
  if stream == '1' then opt('stream', '1') end
  if batch ~= '' then opt('custom_id', custom_id) end
  if pipe ~= '' then opt('pipe', pipe); opt('pstep', pstep) end
  redis.call('HSET', task_key, unpack(h))
  if deadline ~= '' then redis.call('ZADD', '{{KS_DEADLINES}}', deadline, id) end
  local member = tenant .. '|' .. model
  local ql = '{{KS_QUEUE}}' .. prio .. ':' .. member
  if not lists[ql] then lists[ql] = {}; list_order[#list_order+1] = ql end
  table.insert(lists[ql], id)
  local rk = prio .. ':' .. member
  if not rings[rk] then
    rings[rk] = true
    if redis.call('SADD', '{{KS_RINGSET}}' .. prio, member) == 1 then
      redis.call('RPUSH', '{{KS_RING}}' .. prio, member)
    end
  end
  if not index[index_key] then index[index_key] = {}; index_order[#index_order+1] = index_key end
  local ix = index[index_key]
  ix[#ix+1] = now; ix[#ix+1] = id
  if use_idem == '1' then redis.call('SET', idem_key, body_hash .. ' ' .. id, 'PX', idem_ttl) end
  stat('status|queued', 1); stat('tq|' .. tenant, 1); stat('accepted', 1)
  stat('sb|' .. tenant, #input)
  stat('depth|' .. model .. '|' .. prio, 1); stat('depthp|' .. prio, 1)
  return {'ok'}
end
local out = each_task(submit_one)
-- a list that was empty gets a claim loop going: wake the workers
local wake = false
for _, ql in ipairs(list_order) do
  local ids = lists[ql]
  if redis.call('LPUSH', ql, unpack(ids)) == #ids then wake = true end
end
for _, key in ipairs(index_order) do redis.call('ZADD', key, unpack(index[key])) end
flush_stats()
if wake then redis.call('PUBLISH', wake_channel, '1') end
return out
