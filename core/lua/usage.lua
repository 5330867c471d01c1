-- core/lua/usage.lua — USAGE: reads the hourly usage counters that finalize writes (usage_count in
-- the prelude says what they hold) for one tenant or all of them over a range of hours, for
-- GET /v1/usage (api/usage.c groups and sums them). Read only; bounded by max hours per call (the
-- caller checks the range first; a longer one is an error here too).
-- KEYS: 1 the tenant set of the first hour (declares the keyspace's slot; the other keys are
--       named from the families, in the same slot)
-- ARGV: 1 tenant ("": every tenant with counters in the hour, from its tenant set), 2 first hour
--       start s, 3 end s (exclusive; hours are multiples of 3600), 4 max hours
-- Returns, for each hour in order and each of its tenants (sorted) with counters: the tenant, the
-- hour start s, and the hash's field, value pairs as one nested list.
local tenant, first, stop, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not first or not stop or not max or first % 3600 ~= 0 or stop < first or
    (stop - first) / 3600 > max then
  return redis.error_reply('USAGE: bad hour range')
end
local out = {}
for hour = first, stop - 1, 3600 do
  local tenants = {tenant}
  if tenant == '' then
    tenants = redis.call('SMEMBERS', '{{KS_USAGE_TENANTS}}' .. hour)
    table.sort(tenants)
  end
  for _, t in ipairs(tenants) do
    local h = redis.call('HGETALL', '{{KS_USAGE}}' .. t .. ':' .. hour)
    if #h > 0 then
      out[#out+1] = t; out[#out+1] = tostring(hour); out[#out+1] = h
    end
  end
end
return out
