-- core/lua/get.lua — GET: a task by id in one round trip, with, while it is queued, an estimate of
-- its place in line and when it will start: the tasks ahead of it in its tenant's list times the
-- tenants taking turns at its priority, plus everything queued at higher priorities; the wait is
-- that place over the pace its model's deployments are configured for (null when they are
-- unpaced).
-- KEYS: 1 task
-- ARGV: 1 id
-- Returns {hash, queue_position (-1 unknown), eta_seconds (-1 unknown)}.
local task_key = KEYS[1]
local id = ARGV[1]

local t = redis.call('HGETALL', task_key)
local f = redis.call('HMGET', task_key, 'status', 'inq', 'priority', 'tenant', 'model')
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
if raw then
  local rate = 0
  for _, d in ipairs(cjson.decode(raw).deps) do rate = rate + d.rpm / 60 end
  if rate > 0 then eta = math.ceil(pos / rate) end
end
return {t, pos, eta}
