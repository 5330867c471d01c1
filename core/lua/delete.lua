-- core/lua/delete.lua — DELETE: a client deletes its finished task (DELETE /v1/responses/{id}).
-- The task's hash and its events list go at once, and so does its entry in the tenant's list, so
-- it is no longer read, listed or continued. What the expiry sweep gives back when a task's
-- retention ends — the per-status gauge of /metrics, the tenant's stored and artifact bytes —
-- and the blob folder of its artifacts are given back by that sweep itself: the task's expiry
-- member is made due at once (score 0), so the scheduler's next TICK sweeps it exactly as it
-- would have at the end of the retention (tick.lua) and hands back its id for the folder. Nothing
-- is counted twice: a member the sweep already took is not added again (ZADD XX).
-- Refused (conflict): a task that is not terminal (cancel it first), and a finished task its
-- batch still holds (no `expires` yet: the batch's output file is not written; BATCH release
-- starts its retention).
-- KEYS: 1 task, 2 the tenant's index, 3 the task's events list, 4 expiry
-- ARGV: 1 id, 2 tenant
-- Returns {"deleted"} | {"notfound"} (no such task of this tenant) | {"conflict", status}.
local task_key, tenant_key, events_key, expiry_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, tenant = ARGV[1], ARGV[2]

local f = redis.call('HMGET', task_key, 'status', 'tenant', 'sb', 'ab', 'expires')
if not f[1] or f[2] ~= tenant then return {'notfound'} end
local terminal = {completed = true, failed = true, cancelled = true, expired = true}
if not terminal[f[1]] or not f[5] then return {'conflict', f[1]} end
-- the member finalize (or BATCH release) wrote: tenant|id|status|stored bytes|artifact bytes,
-- the numbers as they were written to the task then
local member = tenant .. '|' .. id .. '|' .. f[1] .. '|' .. num(f[3], 0) .. '|' .. num(f[4], 0)
redis.call('ZADD', expiry_key, 'XX', 0, member)
redis.call('DEL', task_key, events_key)
redis.call('ZREM', tenant_key, id)
return {'deleted'}
