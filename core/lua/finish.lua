-- core/lua/finish.lua — FINISH: a worker reports its attempts' outcomes, fenced, and what it
-- learned of the deployments: every outcome it has at the end of a loop turn in one call (up to
-- 64), applied in order, as separate calls would be.
-- outcome: completed | failed | retry (back off, then queued again; `avoid` steers the next
-- attempt to another deployment) | release (back to the head of the queue at once without
-- spending an attempt: shutdown, a provider's 429/529) | park (an upstream job is running: keep
-- the task in_progress, due for a poll at poll_at; an empty up_id or job keeps the stored one).
-- A retry with no attempts left becomes failed; any outcome on a cancelling task becomes
-- cancelled (or expired, when its deadline caused it) — except park, which makes it due at once
-- so a worker cancels the upstream job first.
-- The deployment's shared state is updated in the same step: the call slot is returned, the token
-- estimate reconciled with the real usage, a provider pause or lowered budget applied, the latency
-- EWMA and the breaker window moved (a half-open probe closes or reopens it).
-- It runs once per attempt, so it is kept cheap. Each task is read once (its first HMGET also
-- serves the status move, the attempt log and finalize) and written with one HSET. What the
-- outcomes of one call share is read and written once per call: each deployment's state (read at
-- its first outcome, moved in memory, one HSET at the end), the /metrics counters (summed, one
-- HINCRBY per counter), the leases, the expiry set and the poll set (one ZREM or ZADD each), the
-- wake message. The breaker's parameters come from the worker's config rather than the stored
-- routing JSON, the latency sum is counted in integer µs (`latus|`; /metrics shows seconds), and
-- the attempt log (the last 20 attempts, a JSON array; `alog_n` counts its entries) grows by
-- string append, decoded only once it is full.
-- KEYS: 1 leases, 2 delayed, 3 polls
-- ARGV: 1 now ms, 2 retention ms, 3 wake channel, 4 breaker min requests, 5 breaker failure %,
--       6 breaker window ms, then FINISH_GROUP arguments per outcome, named in each_outcome:
--       task key, id, fence, outcome, result, usage, provider, cost, error, retry at ms, up_id,
--       job, progress, queue_position, poll at ms, artifacts, took a slot (0/1), latency ms,
--       class (ok | fail | rate | client | none), pause until ms, remaining requests, remaining
--       tokens, tokens used, http status, avoid this deployment (0/1), attempt record JSON
--       ("" none; one JSON object), wake other workers when the slot is returned (0/1: the
--       deployment has max_concurrency), detail (completed: "incomplete" for a response that
--       stopped short, "" none; kept as the task's `rstatus`, which names its webhook event)
-- Returns one entry per outcome, in order: the outcome as applied, or "stale" (the attempt is no
-- longer current: nothing written).
local leases_key, delayed_key, polls_key = KEYS[1], KEYS[2], KEYS[3]
local now, ret = tonumber(ARGV[1]), tonumber(ARGV[2])
local wake_channel = ARGV[3]
local br_min, br_pct, br_win = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- fn called with each outcome's FINISH_GROUP arguments, as a table of named fields, in order;
-- its answers, in order
local function each_outcome(fn)
  local out = {}
  for base = 7, #ARGV - {{FINISH_GROUP_S}} + 1, {{FINISH_GROUP_S}} do
    local a = {}
    a.task_key, a.id, a.fence, a.outcome, a.result, a.usage, a.provider, a.cost, a.error,
      a.retry_at, a.up_id, a.job, a.progress, a.queue_position, a.poll_at, a.artifacts,
      a.took_slot, a.latency_ms, a.class, a.pause_until, a.remaining_requests,
      a.remaining_tokens, a.tokens_used, a.http_status, a.avoid, a.attempt, a.wake_on_slot,
      a.detail = unpack(ARGV, base, base + {{FINISH_GROUP_S}} - 1)
    out[#out+1] = fn(a)
  end
  return out
end

ACC, DEFER, UACC = {}, {expiry = {}, polls = {}}, {}
local leases, wake = {}, false
-- the deployments' state: d.s the fields as read and moved so far, d.w what to write
local deps, dep_list = {}, {}
local function dep_state(dk)
  local d = deps[dk]
  if d then return d end
  local s = redis.call('HMGET', dk, 'inf', 'tt', 'rt', 'lat', 'br', 'wst', 'wok', 'wfail')
  d = {key = dk, w = {}, order = {}, s = {inf = num(s[1], 1), tt = tonumber(s[2]),
    rt = tonumber(s[3]), lat = tonumber(s[4]), br = s[5] or 'closed', wst = num(s[6], 0),
    wok = num(s[7], 0), wfail = num(s[8], 0)}}
  deps[dk] = d; dep_list[#dep_list+1] = d
  return d
end
-- a field to write (a field put twice takes its later value); the state moves with it, also a
-- field absent when read, so the call's next outcome on the deployment sees the write as a
-- separate call would
local function dput(d, field, v)
  if d.w[field] == nil then d.order[#d.order+1] = field end
  d.w[field] = v
  d.s[field] = v
end
-- a claimed call that never went out (refused before it): its slot, its request and its token
-- estimate go back (CLAIM's refill clamps the buckets to their caps)
local function slot_back(a, model, dep, est)
  local d = dep_state('{{KS_DEP}}' .. model .. ':' .. dep)
  local s = d.s
  dput(d, 'inf', math.max(0, s.inf - 1))
  if s.rt then dput(d, 'rt', s.rt + 1) end
  if s.tt then dput(d, 'tt', s.tt + num(est, 0)) end
  if a.wake_on_slot ~= '0' then wake = true end
end
local lat_buckets = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}
local function dep_outcome(a, model, dep, est)
  local d = dep_state('{{KS_DEP}}' .. model .. ':' .. dep)
  local s, class = d.s, a.class
  if a.took_slot == '1' then dput(d, 'inf', math.max(0, s.inf - 1)) end
  if a.tokens_used ~= '' and s.tt then
    dput(d, 'tt', s.tt + num(est, 0) - tonumber(a.tokens_used))
  end
  if a.pause_until ~= '' then
    -- a provider pause: the bucket starts empty when it ends, so it does not refill to a burst
    -- that meets the provider's limit again
    dput(d, 'pause', a.pause_until); dput(d, 'rt', math.min(s.rt or 0, 0))
    dput(d, 'ts', a.pause_until)
    -- why, for the dashboard: the provider's answer that paused it
    dput(d, 'pr', a.http_status ~= '' and a.http_status ~= '0' and
      ('provider answered ' .. a.http_status) or 'provider rate limit')
  end
  if a.remaining_requests ~= '' and (s.rt or 1e18) > tonumber(a.remaining_requests) then
    dput(d, 'rt', tonumber(a.remaining_requests))
  end
  if a.remaining_tokens ~= '' and (s.tt or 1e18) > tonumber(a.remaining_tokens) then
    dput(d, 'tt', tonumber(a.remaining_tokens))
  end
  if class == 'ok' and a.latency_ms ~= '' then
    local l = tonumber(a.latency_ms)
    dput(d, 'lat', s.lat and (0.8 * s.lat + 0.2 * l) or l)
  end
  if s.br == 'half' and class ~= 'ok' and class ~= 'fail' then dput(d, 'probe', '0') end
  if class == 'ok' or class == 'fail' then
    local wok, wfail, state = s.wok, s.wfail, s.br
    if now - s.wst > br_win then wok, wfail = 0, 0; dput(d, 'wst', now) end
    if class == 'ok' then wok = wok + 1 else wfail = wfail + 1 end
    if state == 'half' then
      if class == 'ok' then state = 'closed'; wok, wfail = 0, 0
      else state = 'open'; dput(d, 'bro', now) end
      dput(d, 'probe', '0')
    elseif state == 'closed' and wok + wfail >= br_min and
        wfail * 100 >= br_pct * (wok + wfail) then
      state = 'open'
      dput(d, 'bro', now)
      wok, wfail = 0, 0
    end
    dput(d, 'br', state); dput(d, 'wok', wok); dput(d, 'wfail', wfail)
  end
  local series = model .. '|' .. dep
  stat('calls|' .. series .. '|' .. (a.http_status ~= '' and a.http_status or 'error'), 1)
  if a.latency_ms ~= '' then
    local l = tonumber(a.latency_ms)
    -- one (non-cumulative) bucket per call; /metrics sums them into Prometheus buckets
    local bucket = 'inf'
    for _, le in ipairs(lat_buckets) do
      if l <= le then
        bucket = le
        break
      end
    end
    stat('lat|' .. series .. '|' .. bucket, 1)
    stat('latus|' .. series, math.floor(l * 1000 + 0.5))
  end
  if class == 'rate' then stat('r429|' .. series, 1) end
  -- a freed call slot matters to other workers only when the deployment caps its calls
  if a.took_slot == '1' and a.wake_on_slot ~= '0' then wake = true end
end
-- f: 1 status, 2 fence, 3 attempts, 4 max_attempts, 5 priority, 6 tenant, 7 model, 8 dep, 9 est,
-- 10 attempt_log, 11 alog_n, 12 batch, 13 reply_to, 14 webhook, 15 progress, 16 last_error,
-- 17 queue_position, 18 deadline, 19 sb (stored bytes), 20 pipe, 21 pstep, 22 bres, 23 bwin,
-- 24 provider, 25 key, 26 created, 27 cached, 28 ck (what finalize's usage and cache steps read)
local function finish_one(a)
  local k, id = a.task_key, a.id
  local f = redis.call('HMGET', k, 'status', 'fence', 'attempts', 'max_attempts',
    'priority', 'tenant', 'model', 'dep', 'est', 'attempt_log', 'alog_n', 'batch', 'reply_to',
    'webhook', 'progress', 'last_error', 'queue_position', 'deadline', 'sb', 'pipe', 'pstep',
    'bres', 'bwin', 'provider', 'key', 'created', 'cached', 'ck')
  if f[2] ~= a.fence or (f[1] ~= 'in_progress' and f[1] ~= 'cancelling') then
    return 'stale'
  end
  leases[#leases+1] = id
  -- field, value pairs for the task's one HSET
  local tw = {}
  local function put(field, v) tw[#tw+1] = field; tw[#tw+1] = v end
  local function keep(field, v) if v ~= '' then put(field, v) end end
  if a.attempt ~= '' then
    local log, n = f[10], tonumber(f[11])
    if not log then
      log, n = '[' .. a.attempt .. ']', 1
    elseif n and n < 20 then
      log, n = string.sub(log, 1, -2) .. ',' .. a.attempt .. ']', n + 1
    else
      -- full (or written before alog_n was kept): drop the oldest entries
      local list = cjson.decode(log)
      list[#list+1] = cjson.decode(a.attempt)
      while #list > 20 do table.remove(list, 1) end
      log, n = cjson.encode(list), #list
    end
    put('attempt_log', log); put('alog_n', n)
  end
  if f[8] and a.class ~= 'none' then dep_outcome(a, f[7], f[8], f[9])
  -- no call went out (refused before it, or a poll): only the claimed slot goes back
  elseif f[8] and a.took_slot == '1' then slot_back(a, f[7], f[8], f[9]) end
  local outcome = a.outcome
  -- the attempt's budget reservation becomes its real cost (none for a retry or a release: the
  -- next claim reserves again); a parked job keeps it until its final poll
  if f[22] and outcome ~= 'park' then budget_settle(k, cost_nano(a.cost), f[22], f[23]) end
  if outcome == 'park' then
    keep('up_id', a.up_id); keep('job', a.job)
    keep('progress', a.progress); keep('queue_position', a.queue_position)
    keep('provider', a.provider)
    if #tw > 0 then redis.call('HSET', k, unpack(tw)) end
    if a.progress ~= '' and f[15] ~= a.progress then
      webhook_event(k, id, 'task.progress', now, f[14])
    end
    redis.call('ZADD', polls_key, f[1] == 'cancelling' and now or a.poll_at, id)
    return 'park'
  end
  if f[1] == 'cancelling' then outcome = cancelled_status(k) end
  if outcome == 'retry' and tonumber(f[3]) >= tonumber(f[4]) then outcome = 'failed' end
  if outcome == 'retry' then
    set_status(k, 'queued', f[1])
    put('last_error', a.error)
    if a.avoid == '1' and f[8] then put('avoid', f[8]) end
    redis.call('HSET', k, unpack(tw))
    redis.call('ZADD', delayed_key, a.retry_at, id)
    return 'retry'
  end
  if outcome == 'release' then
    set_status(k, 'queued', f[1])
    put('attempts', num(f[3], 0) - 1)
    redis.call('HSET', k, unpack(tw))
    enqueue(k, id, true)
    wake = true
    return 'release'
  end
  local ab = nil
  if outcome == 'completed' then
    put('result', a.result); put('progress', '100')
    keep('artifacts', a.artifacts); keep('rstatus', a.detail)
    -- the kept artifacts' bytes count against the tenant until the task is swept (and its blob
    -- folder removed)
    if a.artifacts ~= '' then
      ab = 0
      for _, x in ipairs(cjson.decode(a.artifacts)) do ab = ab + num(x.bytes, 0) end
      put('ab', ab)
      stat('ab|' .. f[6], ab)
    end
  elseif outcome == 'failed' then
    put('error', a.error)
  end
  keep('usage', a.usage); keep('provider', a.provider); keep('cost', a.cost)
  if f[16] or f[17] then redis.call('HDEL', k, 'last_error', 'queue_position') end
  finalize(k, id, outcome, now, ret, f[6], {status = f[1], batch = f[12],
    reply_to = f[13], webhook = f[14], deadline = f[18], sb = f[19] or false, ab = ab,
    fields = tw, result = a.result, pipe = f[20] or false, pstep = f[21] or false, bres = false,
    error = outcome == 'failed' and a.error or nil, usage = a.usage, cost = a.cost,
    task = {model = f[7], provider = a.provider ~= '' and a.provider or f[24], key = f[25],
      created = f[26], cached = f[27]},
    ck = f[28] or false})
  return outcome
end
local out = each_outcome(finish_one)
if #leases > 0 then redis.call('ZREM', leases_key, unpack(leases)) end
if #DEFER.polls > 0 then redis.call('ZREM', polls_key, unpack(DEFER.polls)) end
if #DEFER.expiry > 0 then redis.call('ZADD', '{{KS_EXPIRY}}', unpack(DEFER.expiry)) end
for _, d in ipairs(dep_list) do
  if #d.order > 0 then
    local w = {}
    for _, field in ipairs(d.order) do w[#w+1] = field; w[#w+1] = d.w[field] end
    redis.call('HSET', d.key, unpack(w))
  end
end
flush_stats()
usage_flush()
if wake then redis.call('PUBLISH', wake_channel, '1') end
return out
