-- core/lua/budget.lua — BUDGET: the admin's view of a subject's budget (a tenant "t:<tenant>" or
-- a key "k:<key id>"; the prelude says what a budget holds and how CLAIM and FINISH move its
-- counters): put, get with each limit's current window, delete. A put keeps the counters: a cap
-- changed mid-window applies to what the window used so far.
-- KEYS: 1 the budget hash
-- ARGV: 1 subject, 2 op (put | get | delete), 3 now ms, 4 cfg JSON (put)
-- Returns put/delete {"ok"}; get {} when there is no budget, else {cfg, then per limit in order:
-- used nano-USD, window start ms, window end ms}.
local bk = KEYS[1]
local subject, op, now_arg, cfg = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = tonumber(now_arg)

if op == 'put' then
  redis.call('HSET', bk, 'cfg', cfg)
  redis.call('SADD', '{{KS_BUDGETS}}', subject)
  return {'ok'}
elseif op == 'delete' then
  redis.call('DEL', bk)
  redis.call('SREM', '{{KS_BUDGETS}}', subject)
  return {'ok'}
elseif op == 'get' then
  local raw = redis.call('HGET', bk, 'cfg')
  if not raw then return {} end
  local out = {raw}
  for _, l in ipairs(cjson.decode(raw).limits) do
    local start, stop = budget_window(l.ms, now)
    local used = redis.call('GET', '{{KS_BUDGET_USED}}' .. subject .. ':' .. l.window .. ':' .. start)
    out[#out+1] = used or '0'
    out[#out+1] = tostring(start)
    out[#out+1] = tostring(stop)
  end
  return out
end
return redis.error_reply('BUDGET: unknown op ' .. tostring(op))
