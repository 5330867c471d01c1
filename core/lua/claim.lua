-- core/lua/claim.lua — CLAIM: the scheduler's admission step, shared by every worker on every
-- host. Takes up to n units of work and leases them: first parked long-running tasks whose poll is
-- due (mode "poll"; no budget: a poll is a cheap read), then queued tasks: interactive before
-- normal before batch, and within a priority the tenants take turns (the ring rotates one tenant
-- per task), so one tenant's backlog cannot starve another's single request. A task is claimed
-- only when a deployment of its model is healthy and has budget now (requests, tokens, calls in
-- flight), picked by the alias's strategy (or the task's narrower routing); the budget is taken in
-- the same step. A task that finds no capacity stays at the head of its tenant's list; the reply
-- says how long until capacity returns, so the worker sleeps rather than spins. A task whose
-- tenant or key has a budget reserves its estimated cost in the budget's windows in the same
-- step, or waits (at the head of its list) until a window has room.
-- KEYS: 1 leases, 2 polls
-- ARGV: 1 now ms, 2 lease ms, 3 n, 4 random seed, 5 burst ms, 6 pace (share of a deployment's
--       rpm and tpm that sluice uses: a little under 1, so arrival jitter does not meet the
--       limit), 7 error JSON for a task whose routing.max_cost no deployment meets, 8 retention ms
-- Returns {wait_ms (-1: nothing waiting on capacity), the aliases whose routing is missing from
-- Redis (comma-separated, "" when none: their tasks wait until a worker publishes it again), then
-- 16 per unit: id, fence, attempts, max_attempts, tenant, model, kind, input, mode, status, up_id,
-- job, dep, stream, reply_to, created (ms)}.
local leases_key, polls_key = KEYS[1], KEYS[2]
local now_ms, lease_ms, n_arg, seed, burst_ms, pace_arg, impossible_error, ret_ms =
  unpack(ARGV, 1, 8)
local now = tonumber(now_ms)
local n = tonumber(n_arg)
local burst = tonumber(burst_ms)
local pace = tonumber(pace_arg)
local deadline = now + tonumber(lease_ms)
math.randomseed(tonumber(seed))
local out = {-1, ''}
local norouting = {}
local got = 0
local wait = -1
local routing = {}
-- per-script caches, written back once at the end: the deployments' state (read once, then
-- charged in memory) and the /metrics counters (summed, one HINCRBY per counter)
local deps, dirty = {}, {}
ACC = {}
-- the leases taken, score, id pairs for one ZADD at the end (n <= 1000: unpack's limit holds)
local leases = {}
local function note_wait(ms)
  if ms > 0 and (wait < 0 or ms < wait) then wait = math.ceil(ms) end
end
-- one unit of the reply (its 16 fields), leased
local function put(id, fence, mode, f)
  local o = #out
  out[o+1] = id; out[o+2] = tostring(fence); out[o+3] = f[1]; out[o+4] = f[2]
  out[o+5] = f[3]; out[o+6] = f[4]; out[o+7] = f[5]; out[o+8] = f[6]; out[o+9] = mode
  out[o+10] = f[7]; out[o+11] = f[8] or ''; out[o+12] = f[9] or ''
  out[o+13] = f[10] or ''; out[o+14] = f[11] or ''; out[o+15] = f[12] or ''
  out[o+16] = f[13] or ''
  leases[#leases+1] = deadline; leases[#leases+1] = id
  got = got + 1
end
local function emit(id, k, mode, fence)
  put(id, fence, mode, redis.call('HMGET', k, 'attempts', 'max_attempts', 'tenant', 'model',
    'kind', 'input', 'status', 'up_id', 'job', 'dep', 'stream', 'reply_to', 'created'))
end
-- what a queued task's claim needs, in one read
local function fetch(k)
  local v = redis.call('HMGET', k, 'status', 'model', 'est', 'routing', 'avoid', 'attempts',
    'max_attempts', 'tenant', 'kind', 'input', 'up_id', 'job', 'stream', 'reply_to', 'fence',
    'started', 'webhook', 'queue_position', 'created', 'key', 'bres')
  return {status = v[1], model = v[2], est = v[3], routing = v[4], avoid = v[5],
    attempts = v[6], max_attempts = v[7], tenant = v[8], kind = v[9], input = v[10],
    up_id = v[11], job = v[12], stream = v[13], reply_to = v[14], fence = v[15],
    started = v[16], webhook = v[17], queue_position = v[18], created = v[19], key = v[20],
    reserved = v[21]}
end
-- Budgets (the prelude says what they hold): each subject's budget and each window counter are
-- read once per call, then kept in memory as this call moves them.
local bcfg, bused = {}, {}
-- Reserves nano (nano-USD, the task's estimated cost) in every window of the task's tenant's
-- and key's budgets: the counters it went to, space-separated ("" when it has none); or nil, the
-- ms until the last full window ends and whose budget is full: "tenant" (then the tenant's every
-- task waits) or "key" (only that key's).
local function budget_take(tenant, key, nano)
  local subjects = {'t:' .. tenant}
  if key and key ~= '' then subjects[2] = 'k:' .. key end
  local take, wait, whose = {}, nil, nil
  for i, subj in ipairs(subjects) do
    local c = budget_of(subj, bcfg)
    local w = c and budget_windows(subj, c, nano, now, bused, take)
    if w then
      if wait == nil or w > wait then wait = w end
      if whose == nil then whose = i == 1 and 'tenant' or 'key' end
    end
  end
  if wait then return nil, wait, whose end
  return budget_reserve(take, nano, now, bused)
end
-- a deployment's state with its buckets refilled to now; wait = ms until it can take one
local function dep_state(alias, i, d, est)
  local key = '{{KS_DEP}}' .. alias .. ':' .. i
  local s = deps[key]
  if not s then
    s = redis.call('HMGET', key, 'rt', 'tt', 'ts', 'inf', 'pause', 'br', 'bro',
      'probe', 'lat', 'latts')
    deps[key] = s
  end
  local st = {key = key, s = s, inf = num(s[4], 0), br = s[6] or 'closed', lat = num(s[9], 0)}
  -- a latency nobody has looked at for 2 s counts as unknown, so the latency strategy sends one
  -- task to re-measure a deployment it stopped using (its latency may have changed)
  if now - num(s[10], 0) > 2000 then st.lat = 0 end
  local rpm, tpm = d.rpm * pace, d.tpm * pace
  local rcap = math.max(1, rpm * burst / 60000)
  local tcap = math.max(est, tpm * burst / 60000)
  local el = math.max(0, now - num(s[3], now))
  st.rt = math.min(rcap, num(s[1], rcap) + el * rpm / 60000)
  st.tt = math.min(tcap, num(s[2], tcap) + el * tpm / 60000)
  local w = 0
  local pause = num(s[5], 0)
  if pause > now then w = pause - now end
  if st.br == 'open' then
    local reopen = num(s[7], 0) + routing[alias].breaker.open
    if now >= reopen then st.br = 'half' else w = math.max(w, reopen - now) end
  end
  if st.br == 'half' and now - num(s[8], 0) < routing[alias].breaker.open then
    w = math.max(w, 1000)
  end
  if rpm > 0 and st.rt < 1 then w = math.max(w, (1 - st.rt) * 60000 / rpm) end
  if tpm > 0 and st.tt < est then w = math.max(w, (est - st.tt) * 60000 / tpm) end
  if d.maxc > 0 and st.inf >= d.maxc then w = math.max(w, 1000) end
  st.wait = w
  return st
end
-- picks and charges a deployment for a task (its fetched fields f); nil when none can take it
-- now
local function admit(alias, f)
  if routing[alias] == nil then
    local raw = redis.call('GET', '{{KS_ROUTING}}' .. alias)
    routing[alias] = raw and cjson.decode(raw) or false
  end
  local r = routing[alias]
  if not r then return nil, 'norouting' end
  local est = num(f.est, 0)
  local strategy = r.strategy
  local max_cost = nil
  if f.routing then
    local tr = cjson.decode(f.routing)
    if tr.strategy then strategy = tr.strategy end
    if tr.max_cost then max_cost = tonumber(tr.max_cost) end
  end
  local avoid = num(f.avoid, -1)
  local best, best_st, best_score, total_w = nil, nil, nil, 0
  local fallback, fallback_st = nil, nil
  local cands = {}
  local eligible = 0
  for i, d in ipairs(r.deps) do
    local idx = i - 1
    local cost = (d.pin * est + d.pout * est) / 1000000
    if max_cost == nil or cost <= max_cost then
      eligible = eligible + 1
      local st = dep_state(alias, idx, d, est)
      if st.wait > 0 then note_wait(st.wait)
      elseif idx == avoid and #r.deps > 1 then fallback, fallback_st = idx, st
      else
        local score = 0
        if strategy == 'cost' then score = cost * 1e9 + d.pin + d.pout
        elseif strategy == 'latency' then score = st.lat
        elseif strategy == 'ordered' then score = idx end
        cands[#cands+1] = {idx, st, score, d.weight}
        total_w = total_w + math.max(d.weight, 0)
      end
    end
  end
  if #cands == 0 and fallback then cands[1] = {fallback, fallback_st, 0, 1}; total_w = 1 end
  if eligible == 0 then return nil, 'impossible' end
  if #cands == 0 then return nil, (f.routing and 'own' or 'capacity') end
  if strategy == 'weighted' and total_w > 0 then
    local x = math.random() * total_w
    for _, c in ipairs(cands) do
      x = x - math.max(c[4], 0)
      if x <= 0 then best, best_st = c[1], c[2] break end
    end
    if best == nil then best, best_st = cands[#cands][1], cands[#cands][2] end
  else
    for _, c in ipairs(cands) do
      if best_score == nil or c[3] < best_score then
        best, best_st, best_score = c[1], c[2], c[3]
      end
    end
  end
  local st = best_st
  local d = r.deps[best + 1]
  -- the tenant's and key's budgets: the estimate (tokens both ways at the deployment's prices, an
  -- image, 8 s of video) is reserved now, or the task waits for its window
  local nano = budget_estimate(d, est)
  -- (a task of a "reject" budget reserved when it was submitted: that reservation is this one)
  if not f.reserved then
    local counters, bwait, whose = budget_take(f.tenant, f.key, nano)
    if counters == nil then
      note_wait(bwait)
      return nil, whose == 'key' and 'keybudget' or 'budget'
    end
    if counters ~= '' then f.bres, f.bwin = nano, counters end
  end
  -- charged in the cache exactly as the store would hold it; written back at the end
  local s = st.s
  s[1] = d.rpm > 0 and st.rt - 1 or st.rt
  s[2] = d.tpm > 0 and st.tt - est or st.tt
  s[3] = math.max(now, num(s[3], 0))
  s[4] = st.inf + 1
  s[6] = st.br
  if st.br == 'half' then s[8] = now end
  if strategy == 'latency' then s[10] = now end
  dirty[st.key] = true
  return best
end
local due = redis.call('ZRANGEBYSCORE', polls_key, '-inf', now, 'LIMIT', 0, n)
for _, id in ipairs(due) do
  redis.call('ZREM', polls_key, id)
  local k = T .. id
  local st = redis.call('HGET', k, 'status')
  if st == 'in_progress' or st == 'cancelling' then
    emit(id, k, 'poll', redis.call('HINCRBY', k, 'fence', 1))
  end
end
-- a queued task taken off its list: attempt, fence, deployment, in_progress, leased; one write,
-- its answer built from what fetch read
local function claim(id, k, f, dep, p)
  local attempts = num(f.attempts, 0) + 1
  local fence = num(f.fence, 0) + 1
  -- inq '0': out of the ready lists (readers test for '1'; one write instead of an HDEL)
  if f.started then
    redis.call('HSET', k, 'attempts', attempts, 'fence', fence, 'dep', dep, 'status',
      'in_progress', 'inq', '0')
  else
    redis.call('HSET', k, 'attempts', attempts, 'fence', fence, 'dep', dep, 'status',
      'in_progress', 'inq', '0', 'started', now_ms)
  end
  if f.queue_position then redis.call('HDEL', k, 'queue_position') end
  if f.bres then redis.call('HSET', k, 'bres', f.bres, 'bwin', f.bwin) end
  stat('depth|' .. f.model .. '|' .. p, -1)
  stat('depthp|' .. p, -1)
  stat('tq|' .. f.tenant, -1)
  stat('status|queued', -1)
  stat('status|in_progress', 1)
  if not f.started and f.webhook then webhook_event(k, id, 'task.started', now) end
  put(id, fence, 'call', {tostring(attempts), f.max_attempts, f.tenant, f.model, f.kind,
    f.input, 'in_progress', f.up_id, f.job, tostring(dep), f.stream, f.reply_to, f.created})
end
for p = 0, 2 do
  local ring = '{{KS_RING}}' .. p
  local rlen = redis.call('LLEN', ring)
  local idle = 0
  local blocked = {}
  while got < n and rlen > 0 and idle < rlen do
    local member = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    local tenant = string.match(member, '^(.*)|') or member
    local q = '{{KS_QUEUE}}' .. p .. ':' .. member
    local id = redis.call('LINDEX', q, -1)
    local f = id and fetch(T .. id)
    while id and f.status ~= 'queued' do
      redis.call('RPOP', q)
      id = redis.call('LINDEX', q, -1)
      f = id and fetch(T .. id)
    end
    if not id then
      redis.call('LREM', ring, -1, member)
      redis.call('SREM', '{{KS_RINGSET}}' .. p, member)
      rlen = rlen - 1
    else
      local k = T .. id
      local model = f.model
      local dep, why = nil, 'capacity'
      if not blocked[model] then dep, why = admit(model, f) end
      if dep == nil and why == 'impossible' then
        -- no deployment of the alias fits the task's own routing: it can never run
        redis.call('RPOP', q)
        dequeued(k)
        redis.call('HSET', k, 'error', impossible_error)
        finalize(k, id, 'failed', now, tonumber(ret_ms), tenant)
        idle = 0
      elseif dep == nil and (why == 'own' or why == 'keybudget') then
        -- the head waits for a deployment its own routing allows, or for its key's budget: a few
        -- tasks behind it that can go now are not held up (bounded lookahead)
        local behind = redis.call('LRANGE', q, -9, -2)
        local taken = false
        for j = #behind, 1, -1 do
          local id2 = behind[j]
          local k2 = T .. id2
          local f2 = fetch(k2)
          if f2.status == 'queued' then
            local dep2, why2 = admit(model, f2)
            if dep2 ~= nil then
              redis.call('LREM', q, -1, id2)
              claim(id2, k2, f2, dep2, p)
              taken = true
              break
            elseif why2 == 'capacity' then
              break
            end
          end
        end
        if taken then idle = 0 else idle = idle + 1 end
      elseif dep == nil and why == 'norouting' then
        -- the alias's routing is not in Redis (lost with a flush or an old snapshot): its tasks
        -- wait, counted, and the worker is told so it publishes the routing again
        if not blocked[model] then
          norouting[#norouting+1] = model
          stat('norouting|' .. model, 1)
        end
        blocked[model] = true
        idle = idle + 1
      elseif dep == nil and why == 'budget' then
        -- the tenant's (or its key's) budget is used up for now: its task waits at the head, the
        -- alias stays open to other tenants
        idle = idle + 1
      elseif dep == nil then
        -- the alias's capacity blocks all its tasks
        blocked[model] = true
        idle = idle + 1
      else
        idle = 0
        redis.call('RPOP', q)
        claim(id, k, f, dep, p)
      end
    end
  end
end
for key in pairs(dirty) do
  local s = deps[key]
  local w = {'rt', s[1], 'tt', s[2], 'ts', s[3], 'inf', s[4], 'br', s[6]}
  if s[8] then w[#w+1] = 'probe'; w[#w+1] = s[8] end
  if s[10] then w[#w+1] = 'latts'; w[#w+1] = s[10] end
  redis.call('HSET', key, unpack(w))
end
if #leases > 0 then redis.call('ZADD', leases_key, unpack(leases)) end
flush_stats()
out[1] = wait
out[2] = table.concat(norouting, ',')
return out
