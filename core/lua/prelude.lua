-- core/lua/prelude.lua — shared by every script: Redis loads prelude.lua followed by the script
-- (core/scripts.c joins them; the SHA-1 is over both), so an error's line number counts from the
-- first line of this file.
--
-- Statuses: queued → in_progress → completed | failed; cancel from queued (→ cancelled) or
-- in_progress (→ cancelling, then cancelled when the worker or the lease recovery finishes it).
-- A terminal write sets `completed`, `expires`, a PEXPIRE for the retention period and an entry in
-- the expiry index, so the tenant's list forgets the task when its hash is gone.
--
-- finalize below is the one way a task becomes terminal. It stamps the time, schedules the hash's
-- expiry and the tenant-list cleanup, drops the task from the deadline set, and tells the API
-- process waiting on it (a synchronous request, Prefer: wait, a stream), if any.
-- Key names are built here from the families of core/keys.h: every key shares the keyspace's
-- hash tag, so they live in the slot the script's declared keys route it to. A name in double
-- braces is a key family (KS_TASK, KS_QUEUE, ...): the build splices the family in after a mark
-- (cmake/embed_lua.cmake) and the store replaces the mark with its keyspace's prefix "{<tag>}:"
-- (core/scripts.c), so the layout is written once, in keys.h, and the tag is a parameter.
local T = '{{KS_TASK}}'
-- a script of several ops (BATCH, PIPE): ARGV from first on, named by names (the op's argument
-- names, nil: none) into a table; what follows them (field, value pairs, ids) in a list
local function op_arguments(names, first)
  local a, rest = {}, {}
  names = names or {}
  for i = first, #ARGV do
    local k = i - first + 1
    if k <= #names then a[names[k]] = ARGV[i] else rest[#rest+1] = ARGV[i] end
  end
  return a, rest
end
local STATS = '{{KS_STATS}}'
local function num(x, d) return tonumber(x) or d end
-- the /metrics counters: a script that moves many tasks sets ACC to a table and sums its moves
-- there (stat), then writes each counter once (flush_stats); with ACC nil a move is written at
-- once
local ACC = nil
local function stat(field, by)
  if ACC then ACC[field] = (ACC[field] or 0) + by else redis.call('HINCRBY', STATS, field, by) end
end
local function flush_stats()
  for field, by in pairs(ACC) do
    if by ~= 0 then redis.call('HINCRBY', STATS, field, by) end
  end
end
-- a script that finishes many tasks sets DEFER to {expiry = {}, polls = {}}: finalize then
-- collects its expiry-set entries and poll-set removals there for one ZADD and one ZREM
local DEFER = nil
-- status moves keep the per-status gauges of /metrics true (count_status: the gauges of a move
-- old → new, old ~= new); old: the status when the caller has just read it (false: none), nil to
-- read it here
local function count_status(old, new)
  if old then stat('status|' .. old, -1) end
  stat('status|' .. new, 1)
end
local function set_status(k, new, old)
  if old == nil then old = redis.call('HGET', k, 'status') end
  if old == new then return end
  count_status(old, new)
  redis.call('HSET', k, 'status', new)
end
-- into the ready list of (priority, tenant, alias), head = next to be claimed: one list per alias,
-- so a paced alias's backlog never stands in front of another alias's tasks
local function enqueue(k, id, head)
  local f = redis.call('HMGET', k, 'priority', 'tenant', 'model')
  local member = f[2] .. '|' .. f[3]
  local q = '{{KS_QUEUE}}' .. f[1] .. ':' .. member
  local was = redis.call('LLEN', q)
  if head then redis.call('RPUSH', q, id) else redis.call('LPUSH', q, id) end
  if redis.call('SADD', '{{KS_RINGSET}}' .. f[1], member) == 1 then
    redis.call('RPUSH', '{{KS_RING}}' .. f[1], member)
  end
  redis.call('HSET', k, 'inq', '1')
  stat('tq|' .. f[2], 1)
  stat('depth|' .. f[3] .. '|' .. f[1], 1)
  stat('depthp|' .. f[1], 1)
  return was
end
-- a queued task leaves the ready lists without a claim (cancel, expiry): its list entry stays and
-- is dropped when it reaches the head
local function dequeued(k)
  if redis.call('HGET', k, 'inq') == '1' then
    local f = redis.call('HMGET', k, 'priority', 'model', 'tenant')
    stat('depth|' .. f[2] .. '|' .. f[1], -1)
    stat('depthp|' .. f[1], -1)
    stat('tq|' .. f[3], -1)
    redis.call('HDEL', k, 'inq')
  end
end
-- a webhook event for the task, if its webhook asked for it (task.progress at most once a
-- second); the delivery id doubles as the stable webhook-id; wh: the task's webhook field when
-- the caller has just read it (false: none), nil to read it here
local function webhook_event(k, id, event, now, wh)
  if wh == nil then wh = redis.call('HGET', k, 'webhook') end
  if not wh then return end
  local w = cjson.decode(wh)
  local wanted = false
  for _, e in ipairs(w.events) do if e == event then wanted = true end end
  if not wanted then return end
  if event == 'task.progress' then
    if now - num(redis.call('HGET', k, 'wh_prog'), 0) < 1000 then return end
    redis.call('HSET', k, 'wh_prog', now)
  end
  local seq = redis.call('HINCRBY', k, 'wh_seq', 1)
  local did = 'msg_' .. string.sub(id, 6) .. '_' .. seq
  local dk = '{{KS_DELIVERY}}' .. did
  redis.call('HSET', dk, 'task', id, 'tenant', redis.call('HGET', k, 'tenant'), 'event', event,
    'url', w.url, 'attempts', 0, 'created', now)
  redis.call('PEXPIRE', dk, 172800000)
  redis.call('ZADD', '{{KS_WEBHOOK_QUEUE}}', now, did)
end
-- an event of an object that is not a task (a batch, a pipeline: key k, id id, the prefix of id
-- dropped from the delivery id) whose body the caller rendered: queued like a task's, if the
-- object's webhook asked for event; the delivery's `body` is sent as it is
local function body_event(k, id, prefix_len, event, body, now)
  local wh = redis.call('HGET', k, 'webhook')
  if not wh or body == '' then return end
  local w = cjson.decode(wh)
  for _, e in ipairs(w.events) do
    if e == event then
      local seq = redis.call('HINCRBY', k, 'wh_seq', 1)
      local did = 'msg_' .. string.sub(id, prefix_len + 1) .. '_' .. seq
      local dk = '{{KS_DELIVERY}}' .. did
      redis.call('HSET', dk, 'task', id, 'tenant', redis.call('HGET', k, 'tenant'),
        'event', e, 'url', w.url, 'attempts', 0, 'created', now, 'body', body)
      redis.call('PEXPIRE', dk, 172800000)
      redis.call('ZADD', '{{KS_WEBHOOK_QUEUE}}', now, did)
    end
  end
end
local terminal_event = {completed = 'task.completed', failed = 'task.failed',
  cancelled = 'task.cancelled', expired = 'task.failed'}
-- a response task's (kind response: the Responses API) carry OpenAI's names instead; a completed
-- response that stopped short (`rstatus` incomplete, written by FINISH before this is asked) is
-- response.incomplete
local response_event = {completed = 'response.completed', failed = 'response.failed',
  cancelled = 'response.cancelled', expired = 'response.failed'}
local function terminal_event_name(k, status)
  local f = redis.call('HMGET', k, 'kind', 'rstatus')
  if f[1] ~= 'response' then return terminal_event[status] end
  if status == 'completed' and f[2] == 'incomplete' then return 'response.incomplete' end
  return response_event[status]
end
-- a batch whose submitted tasks are all finished (and whose expansion is over) is due for its
-- runner: in_progress moves to finalizing; cancelling stays (the runner ends it)
local function batch_check(bk, bid, now)
  local b = redis.call('HMGET', bk, 'status', 'completed', 'failed', 'expanded', 'expanded_all')
  if b[5] ~= '1' or num(b[2], 0) + num(b[3], 0) < num(b[4], 0) then return false end
  if b[1] == 'in_progress' then
    redis.call('HSET', bk, 'status', 'finalizing', 'finalizing_at', math.floor(now / 1000))
  end
  -- a runner holding the batch checks again itself at the end of its pass
  local busy = num(redis.call('HGET', bk, 'leased'), 0) > now
  if not busy and (b[1] == 'in_progress' or b[1] == 'cancelling' or b[1] == 'finalizing') then
    redis.call('ZADD', '{{KS_BATCH_WORK}}', 0, bid)
  end
  return true
end
-- Budgets (core/lua/budget.lua writes them; api/budgets.c says what they mean). A subject — a
-- tenant ("t:<tenant>") or a key ("k:<key id>") — may have a budget {"policy", "limits": [{"window",
-- "ms" (the window's length; 0: the calendar month, UTC), "max" (nano-USD: a counter stays an exact integer below 2^53, caps up to $1,000,000)}]} in
-- '{{KS_BUDGET}}' .. subject (field cfg). Each limit's window has one counter,
-- '{{KS_BUDGET_USED}}' .. subject .. ':' .. window .. ':' .. start ms, of nano-USD used in it:
-- CLAIM adds a task's estimated cost when it admits the task (a reservation, kept on the task as
-- `bres` with the counters it went to in `bwin`), and the task's end moves the counters by its
-- real cost less the estimate (budget_settle), so what every process admits is counted at once
-- and the counters hold the real spend once the tasks end.
-- The start of the window of length wms (0: the calendar month, UTC) that holds now (ms), and its
-- end.
local function budget_window(wms, now)
  if wms > 0 then
    local start = now - now % wms
    return start, start + wms
  end
  -- the civil date of the day (Howard Hinnant's days_from_civil, inverted), then its month's start
  local days = math.floor(now / 86400000)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) -
    math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local first = days - (d - 1)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  local len = ({31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31})[m]
  if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then len = 29 end
  return first * 86400000, (first + len) * 86400000
end
-- subject's budget (its decoded cfg; false: none), read once per call: cache is the caller's
local function budget_of(subject, cache)
  local c = cache[subject]
  if c == nil then
    local raw = redis.call('HGET', '{{KS_BUDGET}}' .. subject, 'cfg')
    c = raw and cjson.decode(raw) or false
    cache[subject] = c
  end
  return c
end
-- A task's estimated cost at deployment d (its routing entry: prices per million tokens, per
-- image, per video second) for est tokens, in nano-USD: the tokens both ways, an image, 8 s of
-- video — generous, so a reservation rarely falls short of the real cost.
local function budget_estimate(d, est)
  return math.floor(((d.pin + d.pout) * est / 1000000 + (d.pimg or 0) + 8 * (d.psec or 0)) *
    1000000000 + 0.5)
end
-- The estimate (budget_estimate) at the cheapest of deps, a routing's deployments, or nil when
-- it has none: what a task costs at least, wherever it runs.
local function budget_cheapest(deps, est)
  local nano = nil
  for _, d in ipairs(deps) do
    local e = budget_estimate(d, est)
    if nano == nil or e < nano then nano = e end
  end
  return nano
end
-- The windows of subject's budget c (decoded cfg) at now for a task of nano: the ms until the
-- last full one ends (full: used up, or past its cap with nano more — unless empty: a task dearer
-- than the whole cap still runs, alone, so nothing waits for ever), or nil; the windows' counters
-- are appended to take as {key, window end}. used: the caller's per-call cache of counters.
local function budget_windows(subject, c, nano, now, used, take)
  local wait = nil
  for _, l in ipairs(c.limits) do
    local start, stop = budget_window(l.ms, now)
    local ck = '{{KS_BUDGET_USED}}' .. subject .. ':' .. l.window .. ':' .. start
    local u = used[ck]
    if u == nil then
      u = num(redis.call('GET', ck), 0)
      used[ck] = u
    end
    if u >= l.max or (u > 0 and u + nano > l.max) then
      if wait == nil or stop - now > wait then wait = stop - now end
    end
    take[#take+1] = {ck, stop}
  end
  return wait
end
-- Reserves nano in the counters of take (from budget_windows): each moves by it (a new one
-- expires a day after its window); the counters' names, space-separated, for the task's bwin.
local function budget_reserve(take, nano, now, used)
  local names = {}
  for _, t in ipairs(take) do
    used[t[1]] = used[t[1]] + nano
    if redis.call('INCRBY', t[1], nano) == nano then
      redis.call('PEXPIRE', t[1], t[2] - now + 86400000)
    end
    names[#names+1] = t[1]
  end
  return table.concat(names, ' ')
end
-- A task's reservation ends: each counter it went to moves by real (nano-USD, 0: nothing was
-- spent) less the reservation. known: the task's bres and bwin as just read (nil: read here).
local function budget_settle(k, real, bres, bwin)
  if bres == nil then
    local f = redis.call('HMGET', k, 'bres', 'bwin')
    bres, bwin = f[1], f[2]
  end
  if not bres then return end
  local delta = real - tonumber(bres)
  if delta ~= 0 then
    for counter in string.gmatch(bwin or '', '%S+') do
      -- a window long over whose counter had expired: it lives a day more, not for ever
      if redis.call('INCRBY', counter, delta) == delta then
        redis.call('PEXPIRE', counter, 86400000)
      end
    end
  end
  redis.call('HDEL', k, 'bres', 'bwin')
end
-- The real cost of an outcome's cost JSON ("" or absent: 0) in nano-USD.
local function cost_nano(cost)
  if not cost or cost == '' then return 0 end
  local amount = string.match(cost, '"amount":%s*([%d%.eE+-]+)')
  return math.floor((tonumber(amount) or 0) * 1000000000 + 0.5)
end
-- a pipeline's task is counted on its pipeline when it ends: `ok:<step>` or `bad:<step>` (with
-- the step's first error kept in `err:<step>`), its usage and cost added to the pipeline's sums,
-- and the pipeline made due for its runner — unless a runner holds it (`leased` in the future):
-- then `dirty` tells that runner to look again at the end of its pass. This is the atomic step
-- that advances a pipeline: a runner starts the next steps from these counts.
-- known: pipe and pstep (false: none; nil: read here), error, usage and cost as just written
local function pipe_count(k, status, now, known)
  local p, step = known.pipe, known.pstep
  if p == nil then
    local f = redis.call('HMGET', k, 'pipe', 'pstep')
    p, step = f[1], f[2]
  end
  if not p or not step then return end
  local pk = '{{KS_PIPE}}' .. p
  if redis.call('EXISTS', pk) == 0 then return end
  if status == 'completed' then
    redis.call('HINCRBY', pk, 'ok:' .. step, 1)
  else
    redis.call('HINCRBY', pk, 'bad:' .. step, 1)
    local e = known.error
    if not e or e == '' then e = redis.call('HGET', k, 'error') end
    if not e or e == '' then
      e = cjson.encode({message = 'task ' .. status, type = 'server_error', code = 'task_' .. status})
    end
    redis.call('HSETNX', pk, 'err:' .. step, e)
  end
  if known.usage and known.usage ~= '' then
    local ok, u = pcall(cjson.decode, known.usage)
    if ok and type(u) == 'table' then
      for name, v in pairs(u) do
        if type(v) == 'number' then redis.call('HINCRBYFLOAT', pk, 'u:' .. name, v) end
      end
    end
  end
  if known.cost and known.cost ~= '' then
    local ok, c = pcall(cjson.decode, known.cost)
    if ok and type(c) == 'table' and type(c.amount) == 'number' then
      redis.call('HINCRBYFLOAT', pk, 'cost', c.amount)
      if type(c.currency) == 'string' then redis.call('HSET', pk, 'cur', c.currency) end
    end
  end
  if num(redis.call('HGET', pk, 'leased'), 0) > now then
    redis.call('HSET', pk, 'dirty', '1')
  else
    -- due now, unless it was due earlier (then it keeps its place in line)
    redis.call('ZADD', '{{KS_PIPE_WORK}}', 'LT', now, p)
  end
end
-- Usage analytics (api/usage.c reads them with core/lua/usage.lua): every task that ends is
-- counted once, here, in its tenant's hash of the hour it ended in, '{{KS_USAGE}}' .. tenant ..
-- ':' .. hour start s, under "<alias>|<provider name, - none>|<key, - none>|<metric>": in and
-- out (tokens, either spelling), cost (nano-USD), hit (answered from the cache), and the task
-- itself, packed into one counter of its outcome and its end-to-end latency (created → now):
-- "<o><i>", o = c completed, f failed or expired, x cancelled, i the latency histogram's bucket
-- (what took at most USAGE_LAT[i + 1] ms; the last one the rest) — requests, completions,
-- failures and the percentiles are all sums over these (api/usage.c). So a task costs one
-- HINCRBY, plus one per other field that moves. A counter that starts at 1 may be a new hash's
-- first: it gets (again) its expiry, usage.retention_days (KS_USAGE_CFG, s) + a day after its
-- hour, and its tenant joins the hour's tenant set (admin reads of all tenants).
local USAGE_LAT = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}
local USAGE_RET_S = 90 * 86400
local USAGE_OUTCOME = {completed = 'c', failed = 'f', expired = 'f', cancelled = 'x'}
-- A script that ends many tasks (FINISH) sets UACC to a table: usage_count then sums its counts
-- there, per hash and field, and usage_flush writes each sum once — the tasks of one call mostly
-- share their tenant, alias, provider, key and hour, so a call of n tasks costs a few HINCRBYs,
-- not four per task. With UACC nil a count is written at once.
local UACC = nil
-- Gives hash h (tenant's, of the hour starting hour s) the expiry of a hash that has just been
-- made; last, so that a hash whose time is already past goes whole.
local function usage_expire(h, tenant, hour)
  local at = hour + 3600 + num(redis.call('GET', '{{KS_USAGE_CFG}}'), USAGE_RET_S) + 86400
  local tk = '{{KS_USAGE_TENANTS}}' .. hour
  redis.call('EXPIREAT', h, at)
  redis.call('SADD', tk, tenant)
  redis.call('EXPIREAT', tk, at)
end
-- adds by to field of hash h (see UACC); true when the counter may be the hash's first
local function usage_add(h, tenant, hour, field, by)
  if UACC then
    local e = UACC[h]
    if not e then
      e = {tenant = tenant, hour = hour, fields = {}, order = {}}
      UACC[h] = e
      UACC[#UACC+1] = h
    end
    if not e.fields[field] then e.order[#e.order+1] = field end
    e.fields[field] = (e.fields[field] or 0) + by
    return false
  end
  return redis.call('HINCRBY', h, field, by) == by
end
-- writes what UACC summed: each field once, then a new hash's expiry
local function usage_flush()
  for _, h in ipairs(UACC) do
    local e, fresh = UACC[h], false
    for _, field in ipairs(e.order) do
      local by = e.fields[field]
      if redis.call('HINCRBY', h, field, by) == by then fresh = true end
    end
    if fresh then usage_expire(h, e.tenant, e.hour) end
  end
end
-- the name in a task's provider JSON ({name, model, upstream_id}), or nil
local function provider_name(raw)
  if not raw or raw == '' then return nil end
  local ok, p = pcall(cjson.decode, raw)
  if ok and type(p) == 'table' and type(p.name) == 'string' and p.name ~= '' then return p.name end
  return nil
end
local function usage_count(k, status, now, tenant, known)
  -- the task's fields: as FINISH has just read them (known.task), else read here
  local t, f = known.task, nil
  if t then
    f = {t.model, t.provider, t.key, t.created, t.cached}
  else
    f = redis.call('HMGET', k, 'model', 'provider', 'key', 'created', 'cached', 'usage', 'cost')
  end
  local usage, cost = known.usage, known.cost
  if usage == nil then usage = f[6] end
  if cost == nil then cost = f[7] end
  local provider = provider_name(f[2]) or '-'
  local hour = math.floor(now / 3600000) * 3600
  local h = '{{KS_USAGE}}' .. tenant .. ':' .. hour
  local pre = (f[1] or '-') .. '|' .. provider .. '|' .. (f[3] or '-') .. '|'
  local lat, i = now - num(f[4], now), 1
  while i <= #USAGE_LAT and lat > USAGE_LAT[i] do i = i + 1 end
  local o = USAGE_OUTCOME[status] or 'x'
  local fresh = usage_add(h, tenant, hour, pre .. o .. (i - 1), 1)
  if f[5] == '1' or known.cached then usage_add(h, tenant, hour, pre .. 'hit', 1) end
  if usage and usage ~= '' then
    local ok, u = pcall(cjson.decode, usage)
    if ok and type(u) == 'table' then
      local tin = tonumber(u.prompt_tokens) or tonumber(u.input_tokens) or 0
      local tout = tonumber(u.completion_tokens) or tonumber(u.output_tokens) or 0
      if tin ~= 0 then usage_add(h, tenant, hour, pre .. 'in', math.floor(tin)) end
      if tout ~= 0 then usage_add(h, tenant, hour, pre .. 'out', math.floor(tout)) end
    end
  end
  local nano = cost_nano(cost)
  if nano ~= 0 then
    usage_add(h, tenant, hour, pre .. 'cost', nano)
    -- /metrics: spend per tenant and alias (sluice_spend_usd_total)
    stat('spend|' .. tenant .. '|' .. (f[1] or '-'), nano)
  end
  if fresh then usage_expire(h, tenant, hour) end
end
-- The response cache (api/cache.c computes the key; SUBMIT reads the cache and joins leaders):
-- a task that computes a key's response carries `ck` ("<key> <ttl ms> <max bytes>"), a follower
-- waiting for it `cfk` (the same). cache_end (below finalize, which calls it) stores a completed
-- task's result and answers its followers. A cached answer's cost; how long a leader and its
-- follower list are kept at most (a leader that ends first clears them).
local CACHE_ZERO_COST = '{"amount":0,"currency":"USD"}'
local CACHE_FLIGHT_MS = 7 * 86400000
local cache_end
-- the dashboard's recent failures (core/lua/dash.lua groups them by code and deployment): a failed
-- or expired task's code, alias, provider and message, newest first, the last 1000 kept, and the
-- failed-tasks counter; finalize calls it on its failure path only, with its known (the error,
-- alias and provider as FINISH read them; else read here)
local function dash_failed(k, id, status, now, tenant, known)
  local t, f = known.task, nil
  if t and known.error then
    f = {known.error, t.model, t.provider}
  else
    f = redis.call('HMGET', k, 'error', 'model', 'provider')
  end
  local ok, e = pcall(cjson.decode, f[1] or '')
  if not ok or type(e) ~= 'table' then e = {} end
  local provider = provider_name(f[3])
  local msg = type(e.message) == 'string' and string.sub(e.message, 1, 300) or nil
  local code = type(e.code) == 'string' and e.code or type(e.type) == 'string' and e.type or
    'task_' .. status
  redis.call('LPUSH', '{{KS_DASH_FAIL}}', cjson.encode({at = now, task = id, tenant = tenant,
    code = code, model = f[2], provider = provider, message = msg}))
  redis.call('LTRIM', '{{KS_DASH_FAIL}}', 0, 999)
  stat('done|failed', 1)
end
-- the one way a task becomes terminal; a batch's task is counted on its batch and kept until the
-- batch's output is written (BATCH release starts its retention). known (optional): the task's
-- status, batch, reply_to, webhook and deadline fields as the caller has just read them (false:
-- absent; nil: read here), `fields`, more field, value pairs for the task's one HSET, and
-- `result`, the result being stored (for the reply_to message); for the steps below it
-- (pipe_count, usage_count, cache_end, budget_settle) what they say they take, e.g. `task`
-- {model, provider, key, created, cached} and `ck` as FINISH read them
local function finalize(k, id, status, now, ret, tenant, known)
  known = known or {}
  local old = known.status
  if old == nil then old = redis.call('HGET', k, 'status') end
  if old ~= status then count_status(old, status) end
  local w = known.fields or {}
  w[#w+1] = 'status'; w[#w+1] = status; w[#w+1] = 'completed'; w[#w+1] = now
  -- the stored result counts against the tenant's stored bytes too, until the task is gone
  local sb = known.sb
  if sb == nil then sb = redis.call('HGET', k, 'sb') end
  sb = num(sb, 0)
  if status == 'completed' and known.result and known.result ~= '' then
    sb = sb + #known.result
    stat('sb|' .. tenant, #known.result)
    w[#w+1] = 'sb'; w[#w+1] = sb
  end
  local bid = known.batch
  if bid == nil then bid = redis.call('HGET', k, 'batch') end
  local bk = bid and '{{KS_BATCH}}' .. bid
  if bk and redis.call('EXISTS', bk) == 1 then
    redis.call('HSET', k, unpack(w))
    redis.call('HINCRBY', bk, status == 'completed' and 'completed' or 'failed', 1)
    batch_check(bk, bid, now)
  else
    w[#w+1] = 'expires'; w[#w+1] = now + ret
    redis.call('HSET', k, unpack(w))
    redis.call('PEXPIRE', k, ret)
    local member = tenant .. '|' .. id .. '|' .. status .. '|' .. sb .. '|' .. num(known.ab, 0)
    if DEFER then
      DEFER.expiry[#DEFER.expiry+1] = now + ret; DEFER.expiry[#DEFER.expiry+1] = member
    else
      redis.call('ZADD', '{{KS_EXPIRY}}', now + ret, member)
    end
  end
  -- only a task submitted with a deadline is in the deadline set
  if known.deadline ~= false then redis.call('ZREM', '{{KS_DEADLINES}}', id) end
  if DEFER then DEFER.polls[#DEFER.polls+1] = id else redis.call('ZREM', '{{KS_POLLS}}', id) end
  local r = known.reply_to
  if r == nil then r = redis.call('HGET', k, 'reply_to') end
  -- a completed task's result goes with the message (known.result), so the waiting request is
  -- answered without reading the task back; not a large one (an image's base64), which would
  -- crowd the subscriber's output buffer (Redis drops a subscriber past its limit)
  if r and status == 'completed' and known.result and known.result ~= '' and
      #known.result <= 65536 then
    redis.call('PUBLISH', r, 'r ' .. id .. ' ' .. known.result)
  elseif r then
    redis.call('PUBLISH', r, 'd ' .. id)
  end
  pipe_count(k, status, now, known)
  usage_count(k, status, now, tenant, known)
  cache_end(k, id, status, now, ret, tenant, known)
  -- a reservation left on a task that ends outside FINISH (FINISH settles its own first)
  if known.bres ~= false then budget_settle(k, 0) end
  -- the event's name needs the task's kind: read only when the task has a webhook
  local wh = known.webhook
  if wh == nil then wh = redis.call('HGET', k, 'webhook') end
  if wh then webhook_event(k, id, terminal_event_name(k, status), now, wh) end
  if status == 'failed' or status == 'expired' then
    dash_failed(k, id, status, now, tenant, known)
  elseif status == 'completed' then
    -- the dashboard's completion rate (FINISH adds its tasks' counts up and writes them once)
    stat('done|completed', 1)
  end
end
-- A cached result as task id's: a response (Responses API) names its task, so the id of the task
-- src that computed it becomes id's (other kinds are returned as they are).
local function cache_result_for(result, kind, src, id)
  if kind ~= 'response' or not src then return result end
  return (string.gsub(result, '"id":"' .. src .. '"', '"id":"' .. id .. '"', 1))
end
-- An image's answer refers to the artifact files its task kept (core/artifact_ref.h): a cached
-- one names that task, src, as the files' owner — in the stored result, after its marker, and on
-- each artifact — so a task answered from it shows the same files. The result (nil: not an
-- image's) and the artifacts so marked.
local function cache_owned(result, artifacts, src)
  local marker = '{"sluice_response_format":'
  if string.sub(result, 1, #marker) ~= marker or not artifacts then return nil end
  local form_end = string.find(result, ',', #marker + 1, true)
  if not form_end then return nil end
  local ok, list = pcall(cjson.decode, artifacts)
  if not ok or type(list) ~= 'table' then return nil end
  for _, a in ipairs(list) do a.blob_task = src end
  return string.sub(result, 1, form_end) .. '"sluice_artifact_task":"' .. src .. '",' ..
    string.sub(result, form_end + 1), cjson.encode(list)
end
-- A task answered from a cached image shows src's files: src's sweep (which removes them) moves
-- to when the answered task's retention ends, if that is later.
local function cache_keep_owner(src, until_ms)
  local s = redis.call('HMGET', T .. src, 'tenant', 'status', 'sb', 'ab', 'expires')
  if not (s[1] and s[5]) then return end
  redis.call('ZADD', '{{KS_EXPIRY}}', 'GT', until_ms, s[1] .. '|' .. src .. '|' .. s[2] .. '|' ..
    num(s[3], 0) .. '|' .. num(s[4], 0))
end
-- Keeps a response task src computed under key for ttl ms, counted in tenant's cache bytes (at
-- most max: the least recently used entries go first; one larger than max is not kept). An entry
-- stored again replaces the old one and its count. art: an image's artifacts (nil: none).
local function cache_store(key, result, usage, tenant, ttl, max, now, src, art)
  local ek = '{{KS_CACHE}}' .. key
  local lru, bk = '{{KS_CACHE_LRU}}' .. tenant, '{{KS_CACHE_BYTES}}' .. tenant
  local old = redis.call('HMGET', ek, 'n', 't')
  if old[1] and redis.call('ZREM', '{{KS_CACHE_LRU}}' .. old[2], key .. ':' .. old[1]) == 1 then
    redis.call('DECRBY', '{{KS_CACHE_BYTES}}' .. old[2], old[1])
  end
  local n = #result + #usage + (art and #art or 0)
  if n > max then
    redis.call('DEL', ek)
    return
  end
  redis.call('HSET', ek, 'r', result, 'u', usage, 'n', n, 't', tenant, 's', src)
  if art then redis.call('HSET', ek, 'a', art) else redis.call('HDEL', ek, 'a') end
  redis.call('PEXPIRE', ek, ttl)
  redis.call('ZADD', lru, now, key .. ':' .. n)
  local total = redis.call('INCRBY', bk, n)
  -- the newest entry scores highest: past the bound the others go before it does
  for _ = 1, 1000 do
    if total <= max then break end
    local m = redis.call('ZPOPMIN', lru)
    if #m == 0 then break end
    local mk, mn = string.match(m[1], '^(%x+):(%d+)$')
    if mk then
      local e = redis.call('HMGET', '{{KS_CACHE}}' .. mk, 'n', 't')
      if e[1] == mn and e[2] == tenant then redis.call('DEL', '{{KS_CACHE}}' .. mk) end
      total = redis.call('DECRBY', bk, mn)
    end
  end
  -- the index lives as long as the longest entry can
  redis.call('PEXPIRE', lru, 31 * 86400000)
  redis.call('PEXPIRE', bk, 31 * 86400000)
end
-- A task of the cache ends (finalize; known.ck: its `ck` as just read, false: none, nil: read
-- here). Completed with a result: the result is stored and, if it led its key, each follower
-- still queued completes with it (cached, cost 0). Else its followers go to the queue as
-- ordinary tasks (they compute and store their own answer), the first one leading the key.
cache_end = function(k, id, status, now, ret, tenant, known)
  local ck = known.ck
  if ck == nil then ck = redis.call('HGET', k, 'ck') end
  if not ck then return end
  local key, ttl, max = string.match(ck, '^(%x+) (%d+) (%d+)$')
  if not key then return end
  local flight = '{{KS_CACHE_FLIGHT}}' .. key
  local waiting = {}
  if redis.call('GET', flight) == id then
    local wk = '{{KS_CACHE_WAIT}}' .. id
    waiting = redis.call('LRANGE', wk, 0, -1)
    redis.call('DEL', flight, wk)
  end
  local result = known.result
  if result == nil then result = redis.call('HGET', k, 'result') end
  if status == 'completed' and result and result ~= '' then
    local usage = known.usage
    if usage == nil then usage = redis.call('HGET', k, 'usage') end
    usage = usage or ''
    -- an image's files live as long as their task: its entry no longer (tasks answered from it
    -- keep the files on, cache_keep_owner)
    local owned, art = cache_owned(result, redis.call('HGET', k, 'artifacts'), id)
    if owned then
      result = owned
      ttl = math.min(tonumber(ttl), ret)
    end
    cache_store(key, result, usage, tenant, tonumber(ttl), tonumber(max), now, id, art)
    for _, fid in ipairs(waiting) do
      local fk = T .. fid
      local f = redis.call('HMGET', fk, 'status', 'tenant', 'reply_to', 'webhook', 'sb',
        'deadline', 'kind')
      if f[1] == 'queued' then
        local fr = cache_result_for(result, f[7], id, fid)
        local w = {'result', fr, 'cost', CACHE_ZERO_COST, 'cached', '1'}
        if usage ~= '' then w[#w+1] = 'usage'; w[#w+1] = usage end
        if art then w[#w+1] = 'artifacts'; w[#w+1] = art end
        redis.call('HDEL', fk, 'cfk')
        finalize(fk, fid, 'completed', now, ret, f[2], {status = 'queued', batch = false,
          reply_to = f[3] or false, webhook = f[4] or false, sb = f[5] or false,
          deadline = f[6] or false, fields = w, result = fr, pipe = false, pstep = false,
          bres = false, usage = usage, cost = CACHE_ZERO_COST, ck = false, cached = true})
      end
    end
    return
  end
  local lead = nil
  for _, fid in ipairs(waiting) do
    local fk = T .. fid
    local f = redis.call('HMGET', fk, 'status', 'cfk')
    if f[1] == 'queued' and f[2] then
      redis.call('HSET', fk, 'ck', f[2])
      redis.call('HDEL', fk, 'cfk')
      enqueue(fk, fid)
      lead = lead or fid
    end
  end
  if lead then
    redis.call('SET', flight, lead, 'PX', CACHE_FLIGHT_MS)
    redis.call('PUBLISH', '{{KS_CHANNEL_WAKE}}', '1')
  end
end
local function cancelled_status(k)
  if redis.call('HGET', k, 'cancel_reason') == 'expired' then return 'expired' end
  return 'cancelled'
end
