-- core/lua/dash.lua — DASH: the operator's dashboard (api/dashboard.c). Reads only, each in one
-- round trip and bounded, except `sample`, the scheduler leader's history point (every
-- DASH_SAMPLE_MS, scheduler/dash_sample.c). A tenant ('' = the admin: every tenant) sees its own
-- numbers only. Nothing here SCANs: tenants come from the stats hash's tq|<tenant> gauges, queues
-- from the ring sets, work in progress from the leases, batch and pipeline work sets.
-- KEYS: none (every key is built from the families: one slot)
-- ARGV: 1 op, 2 now ms, then per op:
--   state   3 tenant, 4.. pairs alias, number of deployments   → JSON text (below)
--   tasks   3 tenant, 4 status ('' any), 5 model ('' any), 6 limit → {id, hash, id, hash, ...}
--           newest first: the tenant's list, or every tenant's lists merged (the admin)
--   history 3 since ms                                           → {point JSON, ...} newest first
--   sample  3 least ms between two points, 4 points kept         → 1 sampled, 0 too soon
-- A history point: {t ms, q {"alias|p": depth}, a accepted, c completed, f failed (absent: no
-- counter), tq {tenant: {"alias|p": depth}} (at most DASH_TENANT_CELLS cells; tt true when cut)}.
local op, now = ARGV[1], tonumber(ARGV[2])
local MAX_TENANTS, MAX_RING, MAX_LEASED, MAX_WORK, MAX_LISTED = 100, 500, 2000, 500, 50
local MAX_FAIL_READ, MAX_TASK_SCAN, DASH_TENANT_CELLS = 1000, 2000, 100
local HOUR_MS = 3600000
local terminal = {completed = true, failed = true, cancelled = true, expired = true}

local function stats_map()
  local h, m = redis.call('HGETALL', STATS), {}
  for i = 1, #h, 2 do m[h[i]] = h[i + 1] end
  return m
end
-- the tenants with a queue gauge (every tenant that ever queued a task), at most MAX_TENANTS
local function known_tenants(stats, tenant)
  if tenant ~= '' then return {tenant} end
  local out = {}
  for f in pairs(stats) do
    if #out >= MAX_TENANTS then break end
    if string.sub(f, 1, 3) == 'tq|' then out[#out + 1] = string.sub(f, 4) end
  end
  table.sort(out)
  return out
end
-- each "tenant|alias" queue at priority p (of tenant only, unless ''): fn(member, list key)
local function each_queue(p, tenant, fn)
  local members = redis.call('SRANDMEMBER', '{{KS_RINGSET}}' .. p, MAX_RING)
  for _, m in ipairs(members) do
    if tenant == '' or string.sub(m, 1, #tenant + 1) == tenant .. '|' then
      fn(m, '{{KS_QUEUE}}' .. p .. ':' .. m)
    end
  end
end
local function alias_of(member)
  return string.match(member, '^.-|(.*)$') or member
end

if op == 'sample' then
  local gap, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
  local last = redis.call('LINDEX', '{{KS_DASH_HIST}}', 0)
  if last then
    local ok, p = pcall(cjson.decode, last)
    if ok and type(p) == 'table' and tonumber(p.t) and now - tonumber(p.t) < gap then return 0 end
  end
  local stats = stats_map()
  local q = {}
  for f, v in pairs(stats) do
    if string.sub(f, 1, 6) == 'depth|' then q[string.sub(f, 7)] = tonumber(v) or 0 end
  end
  local tq, cells, cut = {}, 0, false
  for p = 0, 2 do
    each_queue(p, '', function(member, key)
      local n = redis.call('LLEN', key)
      if n == 0 then return end
      if cells >= DASH_TENANT_CELLS then cut = true; return end
      local tenant = string.match(member, '^(.-)|') or member
      tq[tenant] = tq[tenant] or {}
      tq[tenant][alias_of(member) .. '|' .. p] = n
      cells = cells + 1
    end)
  end
  local point = {t = now, q = q, a = tonumber(stats['accepted']) or 0,
    c = tonumber(stats['done|completed']), f = tonumber(stats['done|failed']), tq = tq, tt = cut}
  redis.call('LPUSH', '{{KS_DASH_HIST}}', cjson.encode(point))
  redis.call('LTRIM', '{{KS_DASH_HIST}}', 0, keep - 1)
  return 1
end

if op == 'history' then
  local since, out = tonumber(ARGV[3]), {}
  for _, p in ipairs(redis.call('LRANGE', '{{KS_DASH_HIST}}', 0, 359)) do
    local t = tonumber(string.match(p, '"t":(%d+)'))
    if t and t < since then break end
    out[#out + 1] = p
  end
  return out
end

if op == 'tasks' then
  local tenant, status, model, limit = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
  -- each tenant's newest (MAX_TASK_SCAN shared among the tenants, at least limit each), merged
  local cand, tenants = {}, known_tenants(stats_map(), tenant)
  local each = math.max(limit, math.floor(MAX_TASK_SCAN / math.max(#tenants, 1)))
  for _, t in ipairs(tenants) do
    local z = redis.call('ZREVRANGE', '{{KS_TENANT}}' .. t, 0, each - 1, 'WITHSCORES')
    for i = 1, #z, 2 do cand[#cand + 1] = {z[i], tonumber(z[i + 1])} end
  end
  table.sort(cand, function(x, y) return x[2] > y[2] end)
  local out, n = {}, 0
  for i, c in ipairs(cand) do
    if n >= limit or i > MAX_TASK_SCAN then break end
    local k = '{{KS_TASK}}' .. c[1]
    local f = redis.call('HMGET', k, 'status', 'model')
    if f[1] and (status == '' or f[1] == status) and (model == '' or f[2] == model) then
      out[#out + 1] = c[1]
      out[#out + 1] = redis.call('HGETALL', k)
      n = n + 1
    end
  end
  return out
end

if op ~= 'state' then return redis.error_reply('DASH: unknown op ' .. tostring(op)) end

local tenant = ARGV[3]
local admin = tenant == ''
local stats = stats_map()
local res = {now = now, stats = {}, deps = {}, queues = {}, tenants = {}, batches = {},
  pipelines = {}, failures = {}, history = {}}

-- the counters the page shows: the admin's totals, a tenant's own queue gauge
for f, v in pairs(stats) do
  local pre = string.match(f, '^(%a+%d*)|') or f
  if (admin and (pre == 'status' or pre == 'depth' or pre == 'accepted' or pre == 'done')) or
      pre == 'r429' or f == 'tq|' .. tenant then
    res.stats[f] = v
  end
end
res.delayed = redis.call('ZCARD', '{{KS_DELAYED}}')
res.parked = redis.call('ZCARD', '{{KS_POLLS}}')

for i = 4, #ARGV, 2 do
  for d = 0, (tonumber(ARGV[i + 1]) or 0) - 1 do
    local s = redis.call('HMGET', '{{KS_DEP}}' .. ARGV[i] .. ':' .. d, 'rt', 'tt', 'inf', 'br',
      'pause', 'lat', 'bro', 'pr')
    res.deps[#res.deps + 1] = {alias = ARGV[i], index = d, rt = s[1], tt = s[2], inf = s[3],
      br = s[4], pause = s[5], lat = s[6], bro = s[7], pr = s[8]}
  end
end

-- each alias and priority: the oldest waiting task (the list's head is its right end), and for a
-- tenant the depth of its lists (list entries: a cancelled task's entry stays until its turn)
local queues = {}
for p = 0, 2 do
  each_queue(p, tenant, function(member, key)
    local id = redis.call('LINDEX', key, -1)
    local qk = alias_of(member) .. '|' .. p
    local q = queues[qk] or {alias = alias_of(member), p = p, depth = 0}
    queues[qk] = q
    if not admin then q.depth = q.depth + redis.call('LLEN', key) end
    if id then
      local f = redis.call('HMGET', '{{KS_TASK}}' .. id, 'status', 'created')
      local at = f[1] == 'queued' and tonumber(f[2])
      if at and (not q.oldest or at < q.oldest) then q.oldest = at end
    end
  end)
end
for _, q in pairs(queues) do res.queues[#res.queues + 1] = q end

-- tasks running per tenant: the leased ones (at most MAX_LEASED looked at)
local running = {}
for _, id in ipairs(redis.call('ZRANGE', '{{KS_LEASES}}', 0, MAX_LEASED - 1)) do
  local t = redis.call('HGET', '{{KS_TASK}}' .. id, 'tenant')
  if t and (admin or t == tenant) then running[t] = (running[t] or 0) + 1 end
end
res.leased_cut = redis.call('ZCARD', '{{KS_LEASES}}') > MAX_LEASED

-- this hour's spend (the usage hashes: tasks that ended this clock hour), per tenant and, for the
-- admin, per alias and provider
local hour = math.floor(now / HOUR_MS) * 3600
local spend_tenants = admin and redis.call('SRANDMEMBER', '{{KS_USAGE_TENANTS}}' .. hour,
  MAX_TENANTS) or {tenant}
local spent, cost_by = {}, {}
for _, t in ipairs(spend_tenants) do
  local h = redis.call('HGETALL', '{{KS_USAGE}}' .. t .. ':' .. hour)
  for i = 1, #h, 2 do
    local alias, provider = string.match(h[i], '^(.-)|(.-)|.*|cost$')
    if alias then
      local v = tonumber(h[i + 1]) or 0
      spent[t] = (spent[t] or 0) + v
      cost_by[alias .. '|' .. provider] = (cost_by[alias .. '|' .. provider] or 0) + v
    end
  end
end
if admin then res.cost_hour = cost_by end

for _, t in ipairs(known_tenants(stats, tenant)) do
  local e = {tenant = t, queued = tonumber(stats['tq|' .. t]) or 0, running = running[t] or 0,
    spent_hour = spent[t] or 0, windows = {}}
  local raw = redis.call('HGET', '{{KS_BUDGET}}t:' .. t, 'cfg')
  if raw then
    e.budget = raw
    for _, l in ipairs(cjson.decode(raw).limits or {}) do
      local start = budget_window(l.ms, now)
      local used = redis.call('GET', '{{KS_BUDGET_USED}}t:' .. t .. ':' .. l.window .. ':' .. start)
      e.windows[#e.windows + 1] = {window = l.window, max = l.max, used = tonumber(used) or 0}
    end
  end
  res.tenants[#res.tenants + 1] = e
end

-- batches and pipelines not finished yet, newest first: the runners' work sets hold them
local function in_work(set, family, fields, into)
  for _, id in ipairs(redis.call('ZRANGE', set, 0, MAX_WORK - 1)) do
    local f = redis.call('HMGET', family .. id, 'tenant', 'status', unpack(fields))
    if f[1] and (admin or f[1] == tenant) and f[2] and not terminal[f[2]] then
      into[#into + 1] = {id = id, f = f}
    end
  end
end
local b = {}
in_work('{{KS_BATCH_WORK}}', '{{KS_BATCH}}', {'created_at', 'total', 'completed', 'failed',
  'endpoint'}, b)
table.sort(b, function(x, y) return (tonumber(x.f[3]) or 0) > (tonumber(y.f[3]) or 0) end)
for i = 1, math.min(#b, MAX_LISTED) do
  local f = b[i].f
  res.batches[i] = {id = b[i].id, tenant = f[1], status = f[2], created_at = tonumber(f[3]),
    total = tonumber(f[4]) or 0, completed = tonumber(f[5]) or 0, failed = tonumber(f[6]) or 0,
    endpoint = f[7]}
end
local p = {}
in_work('{{KS_PIPE_WORK}}', '{{KS_PIPE}}', {'created'}, p)
table.sort(p, function(x, y) return (tonumber(x.f[3]) or 0) > (tonumber(y.f[3]) or 0) end)
for i = 1, math.min(#p, MAX_LISTED) do
  local h = redis.call('HGETALL', '{{KS_PIPE}}' .. p[i].id)
  local e = {id = p[i].id, tenant = p[i].f[1], status = p[i].f[2],
    created = tonumber(p[i].f[3]), steps_total = 0, steps_done = 0, tasks_total = 0,
    tasks_done = 0}
  for j = 1, #h, 2 do
    local k, v = h[j], h[j + 1]
    local pre = string.match(k, '^(%a+):')
    if k == 'spec' then
      local ok, s = pcall(cjson.decode, v)
      if ok and type(s) == 'table' then e.steps_total = #s end
    elseif pre == 'st' and (v == 'completed' or v == 'failed' or v == 'skipped' or
        v == 'cancelled') then
      e.steps_done = e.steps_done + 1
    elseif pre == 'n' then
      e.tasks_total = e.tasks_total + (tonumber(v) or 0)
    elseif pre == 'ok' or pre == 'bad' then
      e.tasks_done = e.tasks_done + (tonumber(v) or 0)
    end
  end
  res.pipelines[i] = e
end

-- the last hour's failures (the prelude's dash_failed keeps the newest MAX_FAIL_READ), grouped by
-- code and deployment, most frequent first
local groups, order = {}, {}
for _, raw in ipairs(redis.call('LRANGE', '{{KS_DASH_FAIL}}', 0, MAX_FAIL_READ - 1)) do
  local ok, f = pcall(cjson.decode, raw)
  if ok and type(f) == 'table' then
    if (tonumber(f.at) or 0) < now - HOUR_MS then break end
    if admin or f.tenant == tenant then
      local g = (f.code or '') .. '\n' .. (f.model or '') .. '\n' .. (f.provider or '')
      if not groups[g] then
        groups[g] = {code = f.code, model = f.model, provider = f.provider, count = 0,
          last_at = f.at, last_task = f.task, last_message = f.message}
        order[#order + 1] = groups[g]
      end
      groups[g].count = groups[g].count + 1
    end
  end
end
table.sort(order, function(x, y)
  if x.count ~= y.count then return x.count > y.count end
  return x.last_at > y.last_at
end)
for i = 1, math.min(#order, MAX_LISTED) do res.failures[i] = order[i] end
res.history = redis.call('LRANGE', '{{KS_DASH_HIST}}', 0, 1)
return cjson.encode(res)
