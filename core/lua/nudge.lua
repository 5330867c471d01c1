-- core/lua/nudge.lua — NUDGE: a provider called back (api/provider_callbacks.c, its signature
-- already verified): the upstream job of a parked long-running task ended, so its poll is made due
-- now instead of at poll_interval_ms. A callback only says "look now": the poll that follows reads
-- the authoritative state, so nothing of the callback's body is written here.
-- Only a task that exists, is in_progress or cancelling, runs on one of the calling provider's
-- deployments (its model|dep is one of the pairs given) and is parked (in the polls set) moves; a
-- task that is being polled right now is left alone (that poll, or its next one, sees the end).
-- KEYS: 1 the task, 2 polls
-- ARGV: 1 id, 2 now ms, 3 wake channel, then the provider's deployments as "alias|index", one each
-- Returns {what it did}: "nudged" (due now; idle workers woken) | "notfound" | "finished" (not
-- in_progress/cancelling) | "foreign" (another provider's deployment) | "notparked".
local task_key, polls_key = KEYS[1], KEYS[2]
local id, now_ms, wake_channel = ARGV[1], ARGV[2], ARGV[3]

local f = redis.call('HMGET', task_key, 'status', 'model', 'dep')
if not f[1] then return {'notfound'} end
if f[1] ~= 'in_progress' and f[1] ~= 'cancelling' then return {'finished'} end
local mine = false
if f[2] and f[3] then
  local pair = f[2] .. '|' .. f[3]
  for i = 4, #ARGV do
    if ARGV[i] == pair then
      mine = true
      break
    end
  end
end
if not mine then return {'foreign'} end
-- only a task already in the set (parked) moves; one leased to a worker is not added to it, and
-- one due earlier keeps its time
local due = redis.call('ZSCORE', polls_key, id)
if not due then return {'notparked'} end
if tonumber(due) > tonumber(now_ms) then redis.call('ZADD', polls_key, 'XX', now_ms, id) end
redis.call('PUBLISH', wake_channel, '1')
return {'nudged'}
