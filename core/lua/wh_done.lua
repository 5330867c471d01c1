-- core/lua/wh_done.lua — WH_DONE: a delivery attempt's outcome: delivered | retry (due again at
-- next_at) | stopped (410) | failed (final). The attempt is recorded on the delivery and on its
-- task (both capped), and the body the first attempt rendered is kept, so every retry sends the
-- same bytes.
-- KEYS: 1 delivery queue
-- ARGV: 1 msg id, 2 outcome, 3 next at ms, 4 attempt record JSON, 5 body ("" keep)
-- Returns {outcome}, or {"gone"} when the delivery no longer exists.
local queue_key = KEYS[1]
local msg_id, outcome, next_at, record, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local dk = '{{KS_DELIVERY}}' .. msg_id
local task = redis.call('HGET', dk, 'task')
if not task then redis.call('ZREM', queue_key, msg_id); return {'gone'} end
if body ~= '' then redis.call('HSETNX', dk, 'body', body) end
redis.call('HSET', dk, 'state', outcome)
local rec = cjson.decode(record)
local function append(key, field, cap)
  local raw = redis.call('HGET', key, field)
  local list = raw and cjson.decode(raw) or {}
  list[#list+1] = rec
  while #list > cap do table.remove(list, 1) end
  redis.call('HSET', key, field, cjson.encode(list))
end
append(dk, 'log', 20)
if redis.call('EXISTS', T .. task) == 1 then append(T .. task, 'webhook_log', 50) end
if outcome == 'retry' then
  redis.call('ZADD', queue_key, next_at, msg_id)
else
  redis.call('ZREM', queue_key, msg_id)
end
redis.call('HINCRBY', STATS, 'webhooks|' .. outcome, 1)
return {outcome}
