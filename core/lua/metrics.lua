-- core/lua/metrics.lua — METRICS: everything /metrics shows from Redis in one round trip: the
-- counters and gauges hash, each deployment's live state, and the sizes of the delayed, leased and
-- parked sets.
-- KEYS: none
-- ARGV: pairs of alias, number of deployments
-- (the budgets' windows are read at Redis's own TIME: /metrics is a read)
-- Returns {stats hash, deployments {alias, index, rt, tt, inf, br, pause, lat}..., delayed,
-- leased, parked, budgets {subject, window, max nano-USD, used nano-USD}...}.
local aliases = {}
for i = 1, #ARGV, 2 do aliases[#aliases+1] = {name = ARGV[i], deployments = ARGV[i+1]} end

local deps = {}
for _, alias in ipairs(aliases) do
  for d = 0, tonumber(alias.deployments) - 1 do
    local s = redis.call('HMGET', '{{KS_DEP}}' .. alias.name .. ':' .. d, 'rt', 'tt', 'inf',
      'br', 'pause', 'lat')
    deps[#deps+1] = {alias.name, tostring(d), s[1] or '', s[2] or '', s[3] or '0',
      s[4] or 'closed', s[5] or '0', s[6] or ''}
  end
end
-- every budget's current windows (at most 1000 subjects: /metrics stays bounded)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local budgets = {}
for i, subject in ipairs(redis.call('SMEMBERS', '{{KS_BUDGETS}}')) do
  if i > 1000 then break end
  local raw = redis.call('HGET', '{{KS_BUDGET}}' .. subject, 'cfg')
  for _, l in ipairs(raw and cjson.decode(raw).limits or {}) do
    local start = budget_window(l.ms, now)
    local used = redis.call('GET', '{{KS_BUDGET_USED}}' .. subject .. ':' .. l.window .. ':' .. start)
    budgets[#budgets+1] = {subject, l.window, tostring(l.max), used or '0'}
  end
end
return {redis.call('HGETALL', STATS), deps, redis.call('ZCARD', '{{KS_DELAYED}}'),
  redis.call('ZCARD', '{{KS_LEASES}}'), redis.call('ZCARD', '{{KS_POLLS}}'), budgets}
