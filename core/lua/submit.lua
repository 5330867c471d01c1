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
--       pipeline id ("" none), the pipeline's step id, the response cache ("" none; else
--       "<r|w> <key> <ttl ms> <max bytes>", api/cache.h: r reads and stores, w only stores),
--       the id of the key that submitted it ("" none; stored as the task's `key`, api/keys.h)
-- Stored bytes: a task's input counts against its tenant from SUBMIT (its result from FINISH)
-- until the scheduler forgets the task (`sb|<tenant>` in the stats hash, `sb` on the task, and
-- the expiry index member carries the task's total so the sweep can give it back).
-- A batch's task has an id derived from its batch and line, so a runner that submits a chunk
-- again (after a crash) finds the task there: {"dup", id, hash}, nothing created twice; so has a
-- pipeline's task (from its pipeline, step and place in the step).
-- Returns one entry per task, in order: {"ok"} | {"dup", id, hash} | {"conflict"} |
-- {"quota", queued} | {"storage", stored bytes} | {"artifacts", artifact bytes} | {"budget", ms until
-- the tenant's full budget window ends (policy "reject")}.
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
-- A tenant's budget with policy "reject" refuses a new task its window cannot take now — used
-- up, or past its cap with this task's estimate at the alias's cheapest deployment (CLAIM's own
-- rule, so what is accepted can be admitted) — with the ms until that window ends (the longest,
-- when several are full); nil when it may come, and then the reservation to make if the task is
-- created (its estimate, nano-USD, and the counters it goes to): a "reject" budget reserves at
-- submit, so what it accepts it can run, and CLAIM takes that reservation as its own. A budget,
-- its counters and an alias's routing are read once per call. ("pace" budgets accept
-- everything: CLAIM reserves and holds their tasks back.)
local budgets, budget_used, cheapest = {}, {}, {}
local function budget_refused(tenant, model, est, now)
  local c = budget_of('t:' .. tenant, budgets)
  if not c or c.policy ~= 'reject' then return nil end
  local nano = cheapest[model]
  if nano == nil then
    local raw = redis.call('GET', '{{KS_ROUTING}}' .. model)
    nano = budget_cheapest(raw and cjson.decode(raw).deps or {}, est) or false
    cheapest[model] = nano
  end
  local take = {}
  local wait = budget_windows('t:' .. tenant, c, nano or 0, now, budget_used, take)
  if wait then return wait end
  return nil, {nano = nano or 0, take = take, now = now}
end
-- The response cache (api/cache.c; cache_end in prelude.lua stores what a task computed and
-- answers its followers). A task with a cache argument: a stored response completes it at once
-- (a hit: cached, cost 0, finalize as for any completed task); else, when the task computing
-- the same key (its leader, in cf) is still queued or running, it waits for it: created queued
-- but not in a ready list, listed in the leader's cw (a follower, single-flight); else it leads
-- (cf names it) and goes to the queue. Returns {"ok"} or {"dup", id, hash} (a hit no request
-- waits for: the completed task for the answer) for a task it created, nil for one the normal
-- path queues (then h carries `ck`, what cache_end needs). h: the task's fields, its status
-- and inq the last four. The no-cache path ("w") never reads the cache nor joins a leader, and
-- leads only when no task does.
local function strip_queued(h)
  local f = {}
  for i = 1, #h - 4, 2 do f[#f+1] = h[i]; f[#f+1] = h[i + 1] end
  return f
end
local function cache_submit(cache, k, id, tenant, kind, now, ret, h, reply_to, webhook, deadline,
    nin)
  local mode, key, rest = string.match(cache, '^(%a) (%x+) (%d+ %d+)$')
  if not key then return nil end
  local ck = key .. ' ' .. rest
  local flight = '{{KS_CACHE_FLIGHT}}' .. key
  if mode ~= 'r' then
    stat('cache|bypass', 1)
    h[#h+1] = 'ck'; h[#h+1] = ck
    redis.call('SET', flight, id, 'NX', 'PX', CACHE_FLIGHT_MS)
    return nil
  end
  local e = redis.call('HMGET', '{{KS_CACHE}}' .. key, 'r', 'u', 'n', 't', 's', 'a')
  if e[1] then
    local r = cache_result_for(e[1], kind, e[5], id)
    stat('cache|hit', 1); stat('accepted', 1); stat('sb|' .. tenant, nin)
    redis.call('ZADD', '{{KS_CACHE_LRU}}' .. e[4], 'XX', now, key .. ':' .. e[3])
    local f = strip_queued(h)
    f[#f+1] = 'result'; f[#f+1] = r; f[#f+1] = 'cost'; f[#f+1] = CACHE_ZERO_COST
    f[#f+1] = 'cached'; f[#f+1] = '1'
    if e[2] and e[2] ~= '' then f[#f+1] = 'usage'; f[#f+1] = e[2] end
    if e[6] then
      -- an image's: the files of the task that made it, kept as long as this task is
      f[#f+1] = 'artifacts'; f[#f+1] = e[6]
      cache_keep_owner(e[5], tonumber(now) + tonumber(ret))
    end
    finalize(k, id, 'completed', tonumber(now), tonumber(ret), tenant, {status = false,
      batch = false, reply_to = reply_to ~= '' and reply_to, webhook = webhook ~= '' and webhook,
      deadline = false, sb = nin, fields = f, result = r, pipe = false, pstep = false,
      bres = false, usage = e[2] or '', cost = CACHE_ZERO_COST, ck = false, cached = true})
    if reply_to ~= '' then return {'ok'} end
    return {'dup', id, redis.call('HGETALL', k)}
  end
  local leader = redis.call('GET', flight)
  local st = leader and redis.call('HGET', T .. leader, 'status')
  if st == 'queued' or st == 'in_progress' then
    stat('cache|join', 1); stat('accepted', 1); stat('sb|' .. tenant, nin)
    local f = strip_queued(h)
    f[#f+1] = 'cfk'; f[#f+1] = ck; f[#f+1] = 'status'; f[#f+1] = 'queued'
    redis.call('HSET', k, unpack(f))
    count_status(false, 'queued')
    if deadline ~= '' then redis.call('ZADD', '{{KS_DEADLINES}}', deadline, id) end
    local wk = '{{KS_CACHE_WAIT}}' .. leader
    redis.call('RPUSH', wk, id)
    redis.call('PEXPIRE', wk, CACHE_FLIGHT_MS)
    return {'ok'}
  end
  stat('cache|miss', 1)
  h[#h+1] = 'ck'; h[#h+1] = ck
  redis.call('SET', flight, id, 'PX', CACHE_FLIGHT_MS)
  return nil
end
local function submit_one(task_key, index_key, idem_key, id, tenant, kind, model, prio, now,
    max_attempts, input, metadata, use_idem, body_hash, idem_ttl, reply_to, stream, deadline,
    est, routing, max_queued, webhook, batch, custom_id, max_stored, max_artifacts, pipe, pstep,
    cache, key_id)
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
  local bwait, breserve = budget_refused(tenant, model, tonumber(est), tonumber(now))
  if bwait then return {'budget', bwait} end
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
    'est', est, 'sb', #input}
  local function opt(field, v) if v ~= '' then h[#h+1] = field; h[#h+1] = v end end
  opt('metadata', metadata); opt('reply_to', reply_to); opt('deadline', deadline)
  opt('routing', routing); opt('webhook', webhook); opt('batch', batch)
  if breserve then
    opt('bres', breserve.nano)
    opt('bwin', budget_reserve(breserve.take, breserve.nano, breserve.now, budget_used))
  end
  if stream == '1' then opt('stream', '1') end
  if batch ~= '' then opt('custom_id', custom_id) end
  if pipe ~= '' then opt('pipe', pipe); opt('pstep', pstep) end
  opt('key', key_id)
  h[#h+1] = 'status'; h[#h+1] = 'queued'; h[#h+1] = 'inq'; h[#h+1] = '1'
  if cache ~= '' then
    local done = cache_submit(cache, task_key, id, tenant, kind, now, idem_ttl, h, reply_to,
      webhook, deadline, #input)
    if done then
      -- created completed, or waiting for its leader: in no ready list
      queued[tenant] = q
      if not index[index_key] then
        index[index_key] = {}; index_order[#index_order+1] = index_key
      end
      local ix = index[index_key]
      ix[#ix+1] = now; ix[#ix+1] = id
      if use_idem == '1' then
        redis.call('SET', idem_key, body_hash .. ' ' .. id, 'PX', idem_ttl)
      end
      return done
    end
  end
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
