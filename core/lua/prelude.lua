-- core/lua/prelude.lua — shared by every script: Redis loads prelude.lua followed by the script
-- (core/scripts.c joins them; the SHA-1 is over both), so an error's line number counts from the
-- first line of this file.
--
-- Statuses: queued → in_progress → completed | failed; cancel from queued (→ cancelled) or
-- in_progress (→ cancelling, then cancelled when the worker or the lease recovery finishes it).
-- A terminal write sets `completed`, `expires`, a PEXPIRE for the retention period and an entry in
-- the expiry index, so the tenant's list forgets the task when its hash is gone.
--
-- finalize below is the one way a task becomes terminal. It stamps the time, schedules the hash's
-- expiry and the tenant-list cleanup, drops the task from the deadline set, and tells the API
-- process waiting on it (a synchronous request, Prefer: wait, a stream), if any.
-- Key names are built here from the families of core/keys.h: every key shares the keyspace's
-- hash tag, so they live in the slot the script's declared keys route it to. A name in double
-- braces is a key family (KS_TASK, KS_QUEUE, ...): the build splices the family in after a mark
-- (cmake/embed_lua.cmake) and the store replaces the mark with its keyspace's prefix "{<tag>}:"
-- (core/scripts.c), so the layout is written once, in keys.h, and the tag is a parameter.
local T = '{{KS_TASK}}'
-- a script of several ops (BATCH, PIPE): ARGV from first on, named by names (the op's argument
-- names, nil: none) into a table; what follows them (field, value pairs, ids) in a list
local function op_arguments(names, first)
  local a, rest = {}, {}
  names = names or {}
  for i = first, #ARGV do
    local k = i - first + 1
    if k <= #names then a[names[k]] = ARGV[i] else rest[#rest+1] = ARGV[i] end
  end
  return a, rest
end
local STATS = '{{KS_STATS}}'
local function num(x, d) return tonumber(x) or d end
-- the /metrics counters: a script that moves many tasks sets ACC to a table and sums its moves
-- there (stat), then writes each counter once (flush_stats); with ACC nil a move is written at
-- once
local ACC = nil
local function stat(field, by)
  if ACC then ACC[field] = (ACC[field] or 0) + by else redis.call('HINCRBY', STATS, field, by) end
end
local function flush_stats()
  for field, by in pairs(ACC) do
    if by ~= 0 then redis.call('HINCRBY', STATS, field, by) end
  end
end
-- a script that finishes many tasks sets DEFER to {expiry = {}, polls = {}}: finalize then
-- collects its expiry-set entries and poll-set removals there for one ZADD and one ZREM
local DEFER = nil
-- status moves keep the per-status gauges of /metrics true (count_status: the gauges of a move
-- old → new, old ~= new); old: the status when the caller has just read it (false: none), nil to
-- read it here
local function count_status(old, new)
  if old then stat('status|' .. old, -1) end
  stat('status|' .. new, 1)
end
local function set_status(k, new, old)
  if old == nil then old = redis.call('HGET', k, 'status') end
  if old == new then return end
  count_status(old, new)
  redis.call('HSET', k, 'status', new)
end
-- into the ready list of (priority, tenant, alias), head = next to be claimed: one list per alias,
-- so a paced alias's backlog never stands in front of another alias's tasks
local function enqueue(k, id, head)
  local f = redis.call('HMGET', k, 'priority', 'tenant', 'model')
  local member = f[2] .. '|' .. f[3]
  local q = '{{KS_QUEUE}}' .. f[1] .. ':' .. member
  local was = redis.call('LLEN', q)
  if head then redis.call('RPUSH', q, id) else redis.call('LPUSH', q, id) end
  if redis.call('SADD', '{{KS_RINGSET}}' .. f[1], member) == 1 then
    redis.call('RPUSH', '{{KS_RING}}' .. f[1], member)
  end
  redis.call('HSET', k, 'inq', '1')
  stat('tq|' .. f[2], 1)
  stat('depth|' .. f[3] .. '|' .. f[1], 1)
  stat('depthp|' .. f[1], 1)
  return was
end
-- a queued task leaves the ready lists without a claim (cancel, expiry): its list entry stays and
-- is dropped when it reaches the head
local function dequeued(k)
  if redis.call('HGET', k, 'inq') == '1' then
    local f = redis.call('HMGET', k, 'priority', 'model', 'tenant')
    stat('depth|' .. f[2] .. '|' .. f[1], -1)
    stat('depthp|' .. f[1], -1)
    stat('tq|' .. f[3], -1)
    redis.call('HDEL', k, 'inq')
  end
end
-- a webhook event for the task, if its webhook asked for it (task.progress at most once a
-- second); the delivery id doubles as the stable webhook-id; wh: the task's webhook field when
-- the caller has just read it (false: none), nil to read it here
local function webhook_event(k, id, event, now, wh)
  if wh == nil then wh = redis.call('HGET', k, 'webhook') end
  if not wh then return end
  local w = cjson.decode(wh)
  local wanted = false
  for _, e in ipairs(w.events) do if e == event then wanted = true end end
  if not wanted then return end
  if event == 'task.progress' then
    if now - num(redis.call('HGET', k, 'wh_prog'), 0) < 1000 then return end
    redis.call('HSET', k, 'wh_prog', now)
  end
  local seq = redis.call('HINCRBY', k, 'wh_seq', 1)
  local did = 'msg_' .. string.sub(id, 6) .. '_' .. seq
  local dk = '{{KS_DELIVERY}}' .. did
  redis.call('HSET', dk, 'task', id, 'tenant', redis.call('HGET', k, 'tenant'), 'event', event,
    'url', w.url, 'attempts', 0, 'created', now)
  redis.call('PEXPIRE', dk, 172800000)
  redis.call('ZADD', '{{KS_WEBHOOK_QUEUE}}', now, did)
end
-- an event of an object that is not a task (a batch, a pipeline: key k, id id, the prefix of id
-- dropped from the delivery id) whose body the caller rendered: queued like a task's, if the
-- object's webhook asked for event; the delivery's `body` is sent as it is
local function body_event(k, id, prefix_len, event, body, now)
  local wh = redis.call('HGET', k, 'webhook')
  if not wh or body == '' then return end
  local w = cjson.decode(wh)
  for _, e in ipairs(w.events) do
    if e == event then
      local seq = redis.call('HINCRBY', k, 'wh_seq', 1)
      local did = 'msg_' .. string.sub(id, prefix_len + 1) .. '_' .. seq
      local dk = '{{KS_DELIVERY}}' .. did
      redis.call('HSET', dk, 'task', id, 'tenant', redis.call('HGET', k, 'tenant'),
        'event', e, 'url', w.url, 'attempts', 0, 'created', now, 'body', body)
      redis.call('PEXPIRE', dk, 172800000)
      redis.call('ZADD', '{{KS_WEBHOOK_QUEUE}}', now, did)
    end
  end
end
local terminal_event = {completed = 'task.completed', failed = 'task.failed',
  cancelled = 'task.cancelled', expired = 'task.failed'}
-- a response task's (kind response: the Responses API) carry OpenAI's names instead; a completed
-- response that stopped short (`rstatus` incomplete, written by FINISH before this is asked) is
-- response.incomplete
local response_event = {completed = 'response.completed', failed = 'response.failed',
  cancelled = 'response.cancelled', expired = 'response.failed'}
local function terminal_event_name(k, status)
  local f = redis.call('HMGET', k, 'kind', 'rstatus')
  if f[1] ~= 'response' then return terminal_event[status] end
  if status == 'completed' and f[2] == 'incomplete' then return 'response.incomplete' end
  return response_event[status]
end
-- a batch whose submitted tasks are all finished (and whose expansion is over) is due for its
-- runner: in_progress moves to finalizing; cancelling stays (the runner ends it)
local function batch_check(bk, bid, now)
  local b = redis.call('HMGET', bk, 'status', 'completed', 'failed', 'expanded', 'expanded_all')
  if b[5] ~= '1' or num(b[2], 0) + num(b[3], 0) < num(b[4], 0) then return false end
  if b[1] == 'in_progress' then
    redis.call('HSET', bk, 'status', 'finalizing', 'finalizing_at', math.floor(now / 1000))
  end
  -- a runner holding the batch checks again itself at the end of its pass
  local busy = num(redis.call('HGET', bk, 'leased'), 0) > now
  if not busy and (b[1] == 'in_progress' or b[1] == 'cancelling' or b[1] == 'finalizing') then
    redis.call('ZADD', '{{KS_BATCH_WORK}}', 0, bid)
  end
  return true
end
-- a pipeline's task is counted on its pipeline when it ends: `ok:<step>` or `bad:<step>` (with
-- the step's first error kept in `err:<step>`), its usage and cost added to the pipeline's sums,
-- and the pipeline made due for its runner — unless a runner holds it (`leased` in the future):
-- then `dirty` tells that runner to look again at the end of its pass. This is the atomic step
-- that advances a pipeline: a runner starts the next steps from these counts.
-- known: pipe and pstep (false: none; nil: read here), error, usage and cost as just written
local function pipe_count(k, status, now, known)
  local p, step = known.pipe, known.pstep
  if p == nil then
    local f = redis.call('HMGET', k, 'pipe', 'pstep')
    p, step = f[1], f[2]
  end
  if not p or not step then return end
  local pk = '{{KS_PIPE}}' .. p
  if redis.call('EXISTS', pk) == 0 then return end
  if status == 'completed' then
    redis.call('HINCRBY', pk, 'ok:' .. step, 1)
  else
    redis.call('HINCRBY', pk, 'bad:' .. step, 1)
    local e = known.error
    if not e or e == '' then e = redis.call('HGET', k, 'error') end
    if not e or e == '' then
      e = cjson.encode({message = 'task ' .. status, type = 'server_error', code = 'task_' .. status})
    end
    redis.call('HSETNX', pk, 'err:' .. step, e)
  end
  if known.usage and known.usage ~= '' then
    local ok, u = pcall(cjson.decode, known.usage)
    if ok and type(u) == 'table' then
      for name, v in pairs(u) do
        if type(v) == 'number' then redis.call('HINCRBYFLOAT', pk, 'u:' .. name, v) end
      end
    end
  end
  if known.cost and known.cost ~= '' then
    local ok, c = pcall(cjson.decode, known.cost)
    if ok and type(c) == 'table' and type(c.amount) == 'number' then
      redis.call('HINCRBYFLOAT', pk, 'cost', c.amount)
      if type(c.currency) == 'string' then redis.call('HSET', pk, 'cur', c.currency) end
    end
  end
  if num(redis.call('HGET', pk, 'leased'), 0) > now then
    redis.call('HSET', pk, 'dirty', '1')
  else
    -- due now, unless it was due earlier (then it keeps its place in line)
    redis.call('ZADD', '{{KS_PIPE_WORK}}', 'LT', now, p)
  end
end
-- the one way a task becomes terminal; a batch's task is counted on its batch and kept until the
-- batch's output is written (BATCH release starts its retention). known (optional): the task's
-- status, batch, reply_to, webhook and deadline fields as the caller has just read them (false:
-- absent; nil: read here), `fields`, more field, value pairs for the task's one HSET, and
-- `result`, the result being stored (for the reply_to message)
local function finalize(k, id, status, now, ret, tenant, known)
  known = known or {}
  local old = known.status
  if old == nil then old = redis.call('HGET', k, 'status') end
  if old ~= status then count_status(old, status) end
  local w = known.fields or {}
  w[#w+1] = 'status'; w[#w+1] = status; w[#w+1] = 'completed'; w[#w+1] = now
  -- the stored result counts against the tenant's stored bytes too, until the task is gone
  local sb = known.sb
  if sb == nil then sb = redis.call('HGET', k, 'sb') end
  sb = num(sb, 0)
  if status == 'completed' and known.result and known.result ~= '' then
    sb = sb + #known.result
    stat('sb|' .. tenant, #known.result)
    w[#w+1] = 'sb'; w[#w+1] = sb
  end
  local bid = known.batch
  if bid == nil then bid = redis.call('HGET', k, 'batch') end
  local bk = bid and '{{KS_BATCH}}' .. bid
  if bk and redis.call('EXISTS', bk) == 1 then
    redis.call('HSET', k, unpack(w))
    redis.call('HINCRBY', bk, status == 'completed' and 'completed' or 'failed', 1)
    batch_check(bk, bid, now)
  else
    w[#w+1] = 'expires'; w[#w+1] = now + ret
    redis.call('HSET', k, unpack(w))
    redis.call('PEXPIRE', k, ret)
    local member = tenant .. '|' .. id .. '|' .. status .. '|' .. sb .. '|' .. num(known.ab, 0)
    if DEFER then
      DEFER.expiry[#DEFER.expiry+1] = now + ret; DEFER.expiry[#DEFER.expiry+1] = member
    else
      redis.call('ZADD', '{{KS_EXPIRY}}', now + ret, member)
    end
  end
  -- only a task submitted with a deadline is in the deadline set
  if known.deadline ~= false then redis.call('ZREM', '{{KS_DEADLINES}}', id) end
  if DEFER then DEFER.polls[#DEFER.polls+1] = id else redis.call('ZREM', '{{KS_POLLS}}', id) end
  local r = known.reply_to
  if r == nil then r = redis.call('HGET', k, 'reply_to') end
  -- a completed task's result goes with the message (known.result), so the waiting request is
  -- answered without reading the task back; not a large one (an image's base64), which would
  -- crowd the subscriber's output buffer (Redis drops a subscriber past its limit)
  if r and status == 'completed' and known.result and known.result ~= '' and
      #known.result <= 65536 then
    redis.call('PUBLISH', r, 'r ' .. id .. ' ' .. known.result)
  elseif r then
    redis.call('PUBLISH', r, 'd ' .. id)
  end
  pipe_count(k, status, now, known)
  -- the event's name needs the task's kind: read only when the task has a webhook
  local wh = known.webhook
  if wh == nil then wh = redis.call('HGET', k, 'webhook') end
  if wh then webhook_event(k, id, terminal_event_name(k, status), now, wh) end
end
local function cancelled_status(k)
  if redis.call('HGET', k, 'cancel_reason') == 'expired' then return 'expired' end
  return 'cancelled'
end
