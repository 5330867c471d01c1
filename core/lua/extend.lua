-- core/lua/extend.lua — EXTEND: the workers' heartbeat: push the lease deadline of each
-- (id, fence) still held.
-- KEYS: 1 leases
-- ARGV: 1 new deadline ms, 2 task key prefix, then pairs id, fence
-- Returns one status per pair: "ok", "cancelling" (stop and finish it) or "lost" (drop it).
local leases_key = KEYS[1]
local deadline, task_prefix = ARGV[1], ARGV[2]
-- the attempts held, in order (a list as long as the worker's concurrency: no unpack)
local held = {}
for i = 3, #ARGV, 2 do held[#held+1] = {id = ARGV[i], fence = ARGV[i+1]} end

local out = {}
for _, h in ipairs(held) do
  local id = h.id
  local f = redis.call('HMGET', task_prefix .. id, 'status', 'fence')
  if f[2] == h.fence and (f[1] == 'in_progress' or f[1] == 'cancelling') then
    redis.call('ZADD', leases_key, deadline, id)
    out[#out+1] = (f[1] == 'cancelling') and 'cancelling' or 'ok'
  else
    out[#out+1] = 'lost'
  end
end
return out
