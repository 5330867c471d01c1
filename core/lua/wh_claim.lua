-- core/lua/wh_claim.lua — WH_CLAIM: lease due webhook deliveries for one worker: at most n, and
-- each tenant no more than its share of the worker's delivery slots (worker/webhooks.c says why).
-- A lease moves the delivery's due time lease ms ahead, so a worker that dies mid-delivery costs a
-- late retry, not a lost one.
-- The oldest `scan` due deliveries are looked at. The tenants among them and the tenants the
-- worker is delivering for split `slots`: each may hold max(1, min(most, floor(slots / tenants))),
-- its deliveries in flight counted. A due delivery of a tenant at its share stays queued; when
-- more are due than one claim looks at, it moves just behind those due now (keeping their order),
-- so that the next claim looks further on and one tenant's backlog cannot hide the deliveries of
-- the others behind it.
-- KEYS: 1 delivery queue
-- ARGV: 1 now ms, 2 n, 3 lease ms, 4 slots, 5 most one tenant holds, 6 scan, then the worker's
--       deliveries in flight per tenant: 7 tenant, 8 count, ...
-- Returns a flat array, 7 per delivery: msg id, task id, tenant, event, url, attempt, body.
local queue_key = KEYS[1]
local now, n, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local slots, most, scan = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- deliveries in flight per tenant, and how many tenants share the slots
local held, tenants = {}, 0
for i = 7, #ARGV - 1, 2 do
  if not held[ARGV[i]] then tenants = tenants + 1 end
  held[ARGV[i]] = tonumber(ARGV[i+1])
end

local due = redis.call('ZRANGEBYSCORE', queue_key, '-inf', now, 'LIMIT', 0, scan)
local owner = {}
for i, did in ipairs(due) do
  local f = redis.call('HMGET', '{{KS_DELIVERY}}' .. did, 'task', 'tenant')
  if not f[1] then
    redis.call('ZREM', queue_key, did)
  else
    owner[i] = f[2] or ''
    if not held[owner[i]] then held[owner[i]] = 0; tenants = tenants + 1 end
  end
end
local share = math.max(1, math.min(most, math.floor(slots / math.max(tenants, 1))))
local out, behind = {}, 0
for i, did in ipairs(due) do
  local t = owner[i]
  if n <= 0 then break end
  if t and held[t] >= share then
    if #due == scan then
      behind = behind + 1
      redis.call('ZADD', queue_key, now + behind, did)
    end
  elseif t then
    local dk = '{{KS_DELIVERY}}' .. did
    local f = redis.call('HMGET', dk, 'task', 'event', 'url', 'body')
    redis.call('ZADD', queue_key, now + lease, did)
    local a = redis.call('HINCRBY', dk, 'attempts', 1)
    held[t] = held[t] + 1
    n = n - 1
    local o = #out
    out[o+1] = did; out[o+2] = f[1]; out[o+3] = t; out[o+4] = f[2]; out[o+5] = f[3]
    out[o+6] = tostring(a); out[o+7] = f[4] or ''
  end
end
return out
