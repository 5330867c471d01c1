-- core/lua/get.lua — GET: a task by id in one round trip, with, while it is queued, an estimate of
-- its place in line and when it will start: the tasks ahead of it in its tenant's list times the
-- tenants taking turns at its priority, plus everything queued at higher priorities; the wait is
-- that place over the pace its model's deployments are configured for (null when they are
-- unpaced).
-- A task held back by a "pace" budget (its tenant's or its key's) waits for the budget, not for
-- the queue: its place is its tenant's tasks ahead of it (other tenants pass it), and its wait is
-- when the budget's windows will have let those and it through at its estimated cost (the
-- cheapest deployment's), read at Redis's own TIME (a read takes no clock from its caller).
-- KEYS: 1 task
-- ARGV: 1 id
-- Returns {hash, queue_position (-1 unknown), eta_seconds (-1 unknown)}.
local task_key = KEYS[1]
local id = ARGV[1]

local t = redis.call('HGETALL', task_key)
local f = redis.call('HMGET', task_key, 'status', 'inq', 'priority', 'tenant', 'model', 'est',
  'key')
if #t == 0 or f[1] ~= 'queued' or f[2] ~= '1' then return {t, -1, -1} end
local p = tonumber(f[3])
local q = '{{KS_QUEUE}}' .. p .. ':' .. f[4] .. '|' .. f[5]
local idx = redis.call('LPOS', q, id, 'RANK', -1, 'MAXLEN', 100000)
if not idx then return {t, -1, -1} end
local mine = redis.call('LLEN', q) - 1 - idx
local tenants = math.max(1, redis.call('LLEN', '{{KS_RING}}' .. p))
local pos = mine * tenants
for hp = 0, p - 1 do pos = pos + math.max(0, num(redis.call('HGET', STATS, 'depthp|' .. hp), 0)) end
local eta = -1
local raw = redis.call('GET', '{{KS_ROUTING}}' .. f[5])
local deps = raw and cjson.decode(raw).deps or {}
local rate = 0
for _, d in ipairs(deps) do rate = rate + d.rpm / 60 end
if rate > 0 then eta = math.ceil(pos / rate) end

-- The ms until a "pace" budget of subject lets n tasks of nano each through (nil: it is not what
-- holds them): per window its cap's worth (at least one: a task dearer than the cap runs alone),
-- this window what is left of it.
local function budget_wait(subject, nano, n, now)
  local c = budget_of(subject, {})
  if not c or c.policy ~= 'pace' or nano <= 0 then return nil end
  local wait = nil
  for _, l in ipairs(c.limits) do
    local start, stop = budget_window(l.ms, now)
    local u = num(redis.call('GET', '{{KS_BUDGET_USED}}' .. subject .. ':' .. l.window .. ':' ..
      start), 0)
    local now_fit = u == 0 and math.max(1, math.floor(l.max / nano)) or
      math.max(0, math.floor((l.max - u) / nano))
    if n > now_fit then
      local per = math.max(1, math.floor(l.max / nano))
      local w = (stop - now) + (math.ceil((n - now_fit) / per) - 1) * (stop - start)
      if wait == nil or w > wait then wait = w end
    end
  end
  return wait
end
local nano = budget_cheapest(deps, num(f[6], 0))
if nano then
  local tm = redis.call('TIME')
  local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
  local bw = budget_wait('t:' .. f[4], nano, mine + 1, now)
  if f[7] and f[7] ~= '' then
    local kw = budget_wait('k:' .. f[7], nano, mine + 1, now)
    if kw and (bw == nil or kw > bw) then bw = kw end
  end
  if bw then return {t, mine, math.max(eta, math.ceil(bw / 1000))} end
end
return {t, pos, eta}
