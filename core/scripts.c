/*
 * core/scripts.c — the Lua scripts, one per state transition.
 *
 * Statuses: queued → in_progress → completed | failed; cancel from queued (→ cancelled) or
 * in_progress (→ cancelling, then cancelled when the worker or the lease recovery finishes it).
 * A terminal write sets `completed`, `expires`, a PEXPIRE for the retention period and an entry in
 * the expiry index, so the tenant's list forgets the task when its hash is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/keys.h"
#include "core/scripts.h"

/*
 * Shared by every script: the one way a task becomes terminal. It stamps the time, schedules the
 * hash's expiry and the tenant-list cleanup, drops the task from the deadline set, and tells the
 * API process waiting on it (a synchronous request, Prefer: wait, a stream), if any.
 * Fixed key names are literals here: every key shares the {sl} hash tag, so they live in the slot
 * the script's declared keys route it to.
 */
static const char prelude_lua[] =
    "local T = '" KEY_TASK "'\n"
    "local STATS = '" KEY_STATS "'\n"
    "local function num(x, d) return tonumber(x) or d end\n"
    /* status moves keep the per-status gauges of /metrics true (count_status: the gauges of a
       move old → new, old ~= new); old: the status when the caller has just read it (false:
       none), nil to read it here */
    /* the /metrics counters: a script that moves many tasks sets ACC to a table and sums its
       moves there (stat), then writes each counter once (flush_stats); with ACC nil a move is
       written at once */
    "local ACC = nil\n"
    "local function stat(field, by)\n"
    "  if ACC then ACC[field] = (ACC[field] or 0) + by else redis.call('HINCRBY', STATS, field, "
    "by) end\n"
    "end\n"
    "local function flush_stats()\n"
    "  for field, by in pairs(ACC) do\n"
    "    if by ~= 0 then redis.call('HINCRBY', STATS, field, by) end\n"
    "  end\n"
    "end\n"
    /* a script that finishes many tasks sets DEFER to {expiry = {}, polls = {}}: finalize then
       collects its expiry-set entries and poll-set removals there for one ZADD and one ZREM */
    "local DEFER = nil\n"
    "local function count_status(old, new)\n"
    "  if old then stat('status|' .. old, -1) end\n"
    "  stat('status|' .. new, 1)\n"
    "end\n"
    "local function set_status(k, new, old)\n"
    "  if old == nil then old = redis.call('HGET', k, 'status') end\n"
    "  if old == new then return end\n"
    "  count_status(old, new)\n"
    "  redis.call('HSET', k, 'status', new)\n"
    "end\n"
    /* into the ready list of (priority, tenant, alias), head = next to be claimed: one list per
       alias, so a paced alias's backlog never stands in front of another alias's tasks */
    "local function enqueue(k, id, head)\n"
    "  local f = redis.call('HMGET', k, 'priority', 'tenant', 'model')\n"
    "  local member = f[2] .. '|' .. f[3]\n"
    "  local q = '" KEY_QUEUE "' .. f[1] .. ':' .. member\n"
    "  local was = redis.call('LLEN', q)\n"
    "  if head then redis.call('RPUSH', q, id) else redis.call('LPUSH', q, id) end\n"
    "  if redis.call('SADD', '" KEY_RINGSET "' .. f[1], member) == 1 then\n"
    "    redis.call('RPUSH', '" KEY_RING "' .. f[1], member)\n"
    "  end\n"
    "  redis.call('HSET', k, 'inq', '1')\n"
    "  stat('tq|' .. f[2], 1)\n"
    "  stat('depth|' .. f[3] .. '|' .. f[1], 1)\n"
    "  stat('depthp|' .. f[1], 1)\n"
    "  return was\n"
    "end\n"
    /* a queued task leaves the ready lists without a claim (cancel, expiry): its list entry
       stays and is dropped when it reaches the head */
    "local function dequeued(k)\n"
    "  if redis.call('HGET', k, 'inq') == '1' then\n"
    "    local f = redis.call('HMGET', k, 'priority', 'model', 'tenant')\n"
    "    stat('depth|' .. f[2] .. '|' .. f[1], -1)\n"
    "    stat('depthp|' .. f[1], -1)\n"
    "    stat('tq|' .. f[3], -1)\n"
    "    redis.call('HDEL', k, 'inq')\n"
    "  end\n"
    "end\n"
    /* a webhook event for the task, if its webhook asked for it (task.progress at most once a
       second); the delivery id doubles as the stable webhook-id; wh: the task's webhook field
       when the caller has just read it (false: none), nil to read it here */
    "local function webhook_event(k, id, event, now, wh)\n"
    "  if wh == nil then wh = redis.call('HGET', k, 'webhook') end\n"
    "  if not wh then return end\n"
    "  local w = cjson.decode(wh)\n"
    "  local wanted = false\n"
    "  for _, e in ipairs(w.events) do if e == event then wanted = true end end\n"
    "  if not wanted then return end\n"
    "  if event == 'task.progress' then\n"
    "    if now - num(redis.call('HGET', k, 'wh_prog'), 0) < 1000 then return end\n"
    "    redis.call('HSET', k, 'wh_prog', now)\n"
    "  end\n"
    "  local seq = redis.call('HINCRBY', k, 'wh_seq', 1)\n"
    "  local did = 'msg_' .. string.sub(id, 6) .. '_' .. seq\n"
    "  local dk = '" KEY_DELIVERY "' .. did\n"
    "  redis.call('HSET', dk, 'task', id, 'tenant', redis.call('HGET', k, 'tenant'), 'event', "
    "event,\n"
    "    'url', w.url, 'attempts', 0, 'created', now)\n"
    "  redis.call('PEXPIRE', dk, 172800000)\n"
    "  redis.call('ZADD', '" KEY_WEBHOOK_QUEUE "', now, did)\n"
    "end\n"
    "local terminal_event = {completed = 'task.completed', failed = 'task.failed',\n"
    "  cancelled = 'task.cancelled', expired = 'task.failed'}\n"
    /* a batch whose submitted tasks are all finished (and whose expansion is over) is due for its
       runner: in_progress moves to finalizing; cancelling stays (the runner ends it) */
    "local function batch_check(bk, bid, now)\n"
    "  local b = redis.call('HMGET', bk, 'status', 'completed', 'failed', 'expanded', "
    "'expanded_all')\n"
    "  if b[5] ~= '1' or num(b[2], 0) + num(b[3], 0) < num(b[4], 0) then return false end\n"
    "  if b[1] == 'in_progress' then\n"
    "    redis.call('HSET', bk, 'status', 'finalizing', 'finalizing_at', math.floor(now / 1000))\n"
    "  end\n"
    /* a runner holding the batch checks again itself at the end of its pass */
    "  local busy = num(redis.call('HGET', bk, 'leased'), 0) > now\n"
    "  if not busy and (b[1] == 'in_progress' or b[1] == 'cancelling' or b[1] == 'finalizing') "
    "then\n"
    "    redis.call('ZADD', '" KEY_BATCH_WORK "', 0, bid)\n"
    "  end\n"
    "  return true\n"
    "end\n"
    /* the one way a task becomes terminal; a batch's task is counted on its batch and kept until
       the batch's output is written (BATCH release starts its retention). known (optional): the
       task's status, batch, reply_to, webhook and deadline fields as the caller has just read
       them (false: absent; nil: read here), `fields`, more field, value pairs for the task's
       one HSET, and `result`, the result being stored (for the reply_to message) */
    "local function finalize(k, id, status, now, ret, tenant, known)\n"
    "  known = known or {}\n"
    "  local old = known.status\n"
    "  if old == nil then old = redis.call('HGET', k, 'status') end\n"
    "  if old ~= status then count_status(old, status) end\n"
    "  local w = known.fields or {}\n"
    "  w[#w+1] = 'status'; w[#w+1] = status; w[#w+1] = 'completed'; w[#w+1] = now\n"
    /* the stored result counts against the tenant's stored bytes too, until the task is gone */
    "  local sb = known.sb\n"
    "  if sb == nil then sb = redis.call('HGET', k, 'sb') end\n"
    "  sb = num(sb, 0)\n"
    "  if status == 'completed' and known.result and known.result ~= '' then\n"
    "    sb = sb + #known.result\n"
    "    stat('sb|' .. tenant, #known.result)\n"
    "    w[#w+1] = 'sb'; w[#w+1] = sb\n"
    "  end\n"
    "  local bid = known.batch\n"
    "  if bid == nil then bid = redis.call('HGET', k, 'batch') end\n"
    "  local bk = bid and '" KEY_BATCH "' .. bid\n"
    "  if bk and redis.call('EXISTS', bk) == 1 then\n"
    "    redis.call('HSET', k, unpack(w))\n"
    "    redis.call('HINCRBY', bk, status == 'completed' and 'completed' or 'failed', 1)\n"
    "    batch_check(bk, bid, now)\n"
    "  else\n"
    "    w[#w+1] = 'expires'; w[#w+1] = now + ret\n"
    "    redis.call('HSET', k, unpack(w))\n"
    "    redis.call('PEXPIRE', k, ret)\n"
    "    local member = tenant .. '|' .. id .. '|' .. status .. '|' .. sb .. '|' .. num(known.ab, "
    "0)\n"
    "    if DEFER then\n"
    "      DEFER.expiry[#DEFER.expiry+1] = now + ret; DEFER.expiry[#DEFER.expiry+1] = member\n"
    "    else\n"
    "      redis.call('ZADD', '" KEY_EXPIRY "', now + ret, member)\n"
    "    end\n"
    "  end\n"
    /* only a task submitted with a deadline is in the deadline set */
    "  if known.deadline ~= false then redis.call('ZREM', '" KEY_DEADLINES "', id) end\n"
    "  if DEFER then DEFER.polls[#DEFER.polls+1] = id else redis.call('ZREM', '" KEY_POLLS
    "', id) end\n"
    "  local r = known.reply_to\n"
    "  if r == nil then r = redis.call('HGET', k, 'reply_to') end\n"
    /* a completed task's result goes with the message (known.result), so the waiting request
       is answered without reading the task back; not a large one (an image's base64), which would
       crowd the subscriber's output buffer (Redis drops a subscriber past its limit) */
    "  if r and status == 'completed' and known.result and known.result ~= '' and\n"
    "      #known.result <= 65536 then\n"
    "    redis.call('PUBLISH', r, 'r ' .. id .. ' ' .. known.result)\n"
    "  elseif r then\n"
    "    redis.call('PUBLISH', r, 'd ' .. id)\n"
    "  end\n"
    "  webhook_event(k, id, terminal_event[status], now, known.webhook)\n"
    "end\n"
    "local function cancelled_status(k)\n"
    "  if redis.call('HGET', k, 'cancel_reason') == 'expired' then return 'expired' end\n"
    "  return 'cancelled'\n"
    "end\n";

/*
 * SUBMIT — create queued tasks, each unless its tenant's quota of queued tasks is used up: every
 * task an API process accepted in one loop turn (up to 64), applied in order, as separate calls
 * would be. Each task is written with one HSET; what the tasks of one call share is written once
 * per call: the /metrics counters (summed), each ready list (one LPUSH of its new ids, in order),
 * each ring entry, each tenant index (one ZADD), the wake message.
 * KEYS: none (the keys are in each group; all in the {sl} slot)
 * ARGV: 1 wake channel, then SUBMIT_GROUP arguments per task:
 *       +1 task key, +2 tenant index key, +3 idempotency key, +4 id, +5 tenant, +6 kind, +7 model,
 *       +8 priority (0-2), +9 now ms, +10 max_attempts, +11 input, +12 metadata ("" none),
 *       +13 use idempotency (0/1), +14 body sha256, +15 idempotency ttl ms, +16 reply_to channel
 *       ("" none), +17 stream (0/1), +18 deadline ms ("" none), +19 estimated tokens, +20 routing
 *       JSON ("" none), +21 the tenant's quota of queued tasks, +22 webhook JSON {url, events}
 *       ("" none), +23 batch id ("" none), +24 custom_id, +25 the tenant's quota of stored bytes,
 *       +26 the tenant's quota of artifact bytes (image and video tasks are refused past it)
 * Stored bytes: a task's input counts against its tenant from SUBMIT (its result from FINISH)
 * until the scheduler forgets the task (`sb|<tenant>` in the stats hash, `sb` on the task, and
 * the expiry index member carries the task's total so the sweep can give it back).
 * A batch's task has an id derived from its batch and line, so a runner that submits a chunk
 * again (after a crash) finds the task there: {"dup", id, hash}, nothing created twice.
 * Returns one entry per task, in order: {"ok"} | {"dup", id, hash} | {"conflict"} |
 * {"quota", queued} | {"storage", stored bytes} | {"artifacts", artifact bytes}.
 */
static const char submit_lua[] =
    "ACC = {}\n"
    /* the tenants' queued counts (read once, then counted here), the ready lists' new ids, the
       ring entries seen, the tenant indexes' new entries */
    "local queued, lists, list_order, rings, index, index_order = {}, {}, {}, {}, {}, {}\n"
    "local stored = {}\n"
    "local function submit_one(A)\n"
    "  if A[23] ~= '' and redis.call('EXISTS', A[1]) == 1 then\n"
    "    return {'dup', A[4], redis.call('HGETALL', A[1])}\n"
    "  end\n"
    "  if A[13] == '1' then\n"
    "    local prev = redis.call('GET', A[3])\n"
    "    if prev then\n"
    "      local h, id = string.match(prev, '^(%x+) (.+)$')\n"
    "      if h ~= A[14] then return {'conflict'} end\n"
    "      local t = redis.call('HGETALL', T .. id)\n"
    "      if #t > 0 then return {'dup', id, t} end\n"
    "    end\n"
    "  end\n"
    "  local tenant, model, prio = A[5], A[7], A[8]\n"
    "  local q = queued[tenant] or num(redis.call('HGET', STATS, 'tq|' .. tenant), 0)\n"
    "  queued[tenant] = q\n"
    "  if q >= tonumber(A[21]) then return {'quota', q} end\n"
    "  local sb = stored[tenant] or num(redis.call('HGET', STATS, 'sb|' .. tenant), 0)\n"
    "  stored[tenant] = sb\n"
    "  if sb + #A[11] > tonumber(A[25]) then return {'storage', sb} end\n"
    "  if A[6] == 'image' or A[6] == 'video' then\n"
    "    local ab = num(redis.call('HGET', STATS, 'ab|' .. tenant), 0)\n"
    "    if ab >= tonumber(A[26]) then return {'artifacts', ab} end\n"
    "  end\n"
    "  stored[tenant] = sb + #A[11]\n"
    "  queued[tenant] = q + 1\n"
    /* the whole task in one write, queued (the same steps as set_status and enqueue, without
       reading back what this script is writing) */
    "  local h = {'tenant', tenant, 'kind', A[6], 'model', model, 'priority', prio,\n"
    "    'created', A[9], 'attempts', 0, 'max_attempts', A[10], 'fence', 0, 'input', A[11],\n"
    "    'est', A[19], 'status', 'queued', 'inq', '1', 'sb', #A[11]}\n"
    "  local function opt(field, v) if v ~= '' then h[#h+1] = field; h[#h+1] = v end end\n"
    "  opt('metadata', A[12]); opt('reply_to', A[16]); opt('deadline', A[18])\n"
    "  opt('routing', A[20]); opt('webhook', A[22]); opt('batch', A[23])\n"
    "  if A[17] == '1' then opt('stream', '1') end\n"
    "  if A[23] ~= '' then opt('custom_id', A[24]) end\n"
    "  redis.call('HSET', A[1], unpack(h))\n"
    "  if A[18] ~= '' then redis.call('ZADD', '" KEY_DEADLINES "', A[18], A[4]) end\n"
    "  local member = tenant .. '|' .. model\n"
    "  local ql = '" KEY_QUEUE "' .. prio .. ':' .. member\n"
    "  if not lists[ql] then lists[ql] = {}; list_order[#list_order+1] = ql end\n"
    "  table.insert(lists[ql], A[4])\n"
    "  local rk = prio .. ':' .. member\n"
    "  if not rings[rk] then\n"
    "    rings[rk] = true\n"
    "    if redis.call('SADD', '" KEY_RINGSET "' .. prio, member) == 1 then\n"
    "      redis.call('RPUSH', '" KEY_RING "' .. prio, member)\n"
    "    end\n"
    "  end\n"
    "  if not index[A[2]] then index[A[2]] = {}; index_order[#index_order+1] = A[2] end\n"
    "  local ix = index[A[2]]\n"
    "  ix[#ix+1] = A[9]; ix[#ix+1] = A[4]\n"
    "  if A[13] == '1' then redis.call('SET', A[3], A[14] .. ' ' .. A[4], 'PX', A[15]) end\n"
    "  stat('status|queued', 1); stat('tq|' .. tenant, 1); stat('accepted', 1)\n"
    "  stat('sb|' .. tenant, #A[11])\n"
    "  stat('depth|' .. model .. '|' .. prio, 1); stat('depthp|' .. prio, 1)\n"
    "  return {'ok'}\n"
    "end\n"
    "local out = {}\n"
    "for base = 2, #ARGV - " SUBMIT_GROUP_S " + 1, " SUBMIT_GROUP_S " do\n"
    "  out[#out+1] = submit_one({unpack(ARGV, base, base + " SUBMIT_GROUP_S " - 1)})\n"
    "end\n"
    /* a list that was empty gets a claim loop going: wake the workers */
    "local wake = false\n"
    "for _, ql in ipairs(list_order) do\n"
    "  local ids = lists[ql]\n"
    "  if redis.call('LPUSH', ql, unpack(ids)) == #ids then wake = true end\n"
    "end\n"
    "for _, key in ipairs(index_order) do redis.call('ZADD', key, unpack(index[key])) end\n"
    "flush_stats()\n"
    "if wake then redis.call('PUBLISH', ARGV[1], '1') end\n"
    "return out\n";

/*
 * CLAIM — the scheduler's admission step, shared by every worker on every host. Takes up to n
 * units of work and leases them: first parked long-running tasks whose poll is due (mode "poll";
 * no budget: a poll is a cheap read), then queued tasks: interactive before normal before batch,
 * and within a priority the tenants take turns (the ring rotates one tenant per task), so one
 * tenant's backlog cannot starve another's single request. A task is claimed only when a
 * deployment of its model is healthy and has budget now (requests, tokens, calls in flight), picked
 * by the alias's strategy (or the task's narrower routing); the budget is taken in the same step.
 * A task that finds no capacity stays at the head of its tenant's list; the reply says how long
 * until capacity returns, so the worker sleeps rather than spins.
 * KEYS: 1 leases, 2 polls
 * ARGV: 1 now ms, 2 lease ms, 3 n, 4 random seed, 5 burst ms, 6 pace (share of a deployment's
 *       rpm and tpm that sluice uses: a little under 1, so arrival jitter does not meet the limit),
 *       7 error JSON for a task whose routing.max_cost no deployment meets, 8 retention ms
 * Returns {wait_ms (-1: nothing waiting on capacity), the aliases whose routing is missing from
 * Redis (comma-separated, "" when none: their tasks wait until a worker publishes it again), then
 * 15 per unit: id, fence, attempts, max_attempts, tenant, model, kind, input, mode, status, up_id,
 * job, dep, stream, reply_to}.
 */
static const char claim_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local n = tonumber(ARGV[3])\n"
    "local burst = tonumber(ARGV[5])\n"
    "local pace = tonumber(ARGV[6])\n"
    "local deadline = now + tonumber(ARGV[2])\n"
    "math.randomseed(tonumber(ARGV[4]))\n"
    "local out = {-1, ''}\n"
    "local norouting = {}\n"
    "local got = 0\n"
    "local wait = -1\n"
    "local routing = {}\n"
    /* per-script caches, written back once at the end: the deployments' state (read once, then
       charged in memory) and the /metrics counters (summed, one HINCRBY per counter) */
    "local deps, dirty = {}, {}\n"
    "ACC = {}\n"
    /* the leases taken, score, id pairs for one ZADD at the end (n <= 1000: unpack's limit holds)
     */
    "local leases = {}\n"
    "local function note_wait(ms)\n"
    "  if ms > 0 and (wait < 0 or ms < wait) then wait = math.ceil(ms) end\n"
    "end\n"
    /* one unit of the reply (its 15 fields), leased */
    "local function put(id, fence, mode, f)\n"
    "  local o = #out\n"
    "  out[o+1] = id; out[o+2] = tostring(fence); out[o+3] = f[1]; out[o+4] = f[2]\n"
    "  out[o+5] = f[3]; out[o+6] = f[4]; out[o+7] = f[5]; out[o+8] = f[6]; out[o+9] = mode\n"
    "  out[o+10] = f[7]; out[o+11] = f[8] or ''; out[o+12] = f[9] or ''\n"
    "  out[o+13] = f[10] or ''; out[o+14] = f[11] or ''; out[o+15] = f[12] or ''\n"
    "  leases[#leases+1] = deadline; leases[#leases+1] = id\n"
    "  got = got + 1\n"
    "end\n"
    "local function emit(id, k, mode, fence)\n"
    "  put(id, fence, mode, redis.call('HMGET', k, 'attempts', 'max_attempts', 'tenant', 'model',\n"
    "    'kind', 'input', 'status', 'up_id', 'job', 'dep', 'stream', 'reply_to'))\n"
    "end\n"
    /* what a queued task's claim needs, in one read */
    "local function fetch(k)\n"
    "  local v = redis.call('HMGET', k, 'status', 'model', 'est', 'routing', 'avoid', 'attempts',\n"
    "    'max_attempts', 'tenant', 'kind', 'input', 'up_id', 'job', 'stream', 'reply_to', "
    "'fence',\n"
    "    'started', 'webhook', 'queue_position')\n"
    "  return {status = v[1], model = v[2], est = v[3], routing = v[4], avoid = v[5],\n"
    "    attempts = v[6], max_attempts = v[7], tenant = v[8], kind = v[9], input = v[10],\n"
    "    up_id = v[11], job = v[12], stream = v[13], reply_to = v[14], fence = v[15],\n"
    "    started = v[16], webhook = v[17], queue_position = v[18]}\n"
    "end\n"
    /* a deployment's state with its buckets refilled to now; wait = ms until it can take one */
    "local function dep_state(alias, i, d, est)\n"
    "  local key = '" KEY_DEP "' .. alias .. ':' .. i\n"
    "  local s = deps[key]\n"
    "  if not s then\n"
    "    s = redis.call('HMGET', key, 'rt', 'tt', 'ts', 'inf', 'pause', 'br', 'bro',\n"
    "      'probe', 'lat', 'latts')\n"
    "    deps[key] = s\n"
    "  end\n"
    "  local st = {key = key, s = s, inf = num(s[4], 0), br = s[6] or 'closed', lat = num(s[9], "
    "0)}\n"
    /* a latency nobody has looked at for 2 s counts as unknown, so the latency strategy sends one
       task to re-measure a deployment it stopped using (its latency may have changed) */
    "  if now - num(s[10], 0) > 2000 then st.lat = 0 end\n"
    "  local rpm, tpm = d.rpm * pace, d.tpm * pace\n"
    "  local rcap = math.max(1, rpm * burst / 60000)\n"
    "  local tcap = math.max(est, tpm * burst / 60000)\n"
    "  local el = math.max(0, now - num(s[3], now))\n"
    "  st.rt = math.min(rcap, num(s[1], rcap) + el * rpm / 60000)\n"
    "  st.tt = math.min(tcap, num(s[2], tcap) + el * tpm / 60000)\n"
    "  local w = 0\n"
    "  local pause = num(s[5], 0)\n"
    "  if pause > now then w = pause - now end\n"
    "  if st.br == 'open' then\n"
    "    local reopen = num(s[7], 0) + routing[alias].breaker.open\n"
    "    if now >= reopen then st.br = 'half' else w = math.max(w, reopen - now) end\n"
    "  end\n"
    "  if st.br == 'half' and now - num(s[8], 0) < routing[alias].breaker.open then\n"
    "    w = math.max(w, 1000)\n"
    "  end\n"
    "  if rpm > 0 and st.rt < 1 then w = math.max(w, (1 - st.rt) * 60000 / rpm) end\n"
    "  if tpm > 0 and st.tt < est then w = math.max(w, (est - st.tt) * 60000 / tpm) end\n"
    "  if d.maxc > 0 and st.inf >= d.maxc then w = math.max(w, 1000) end\n"
    "  st.wait = w\n"
    "  return st\n"
    "end\n"
    /* picks and charges a deployment for a task (its fetched fields f); nil when none can take
       it now */
    "local function admit(alias, f)\n"
    "  if routing[alias] == nil then\n"
    "    local raw = redis.call('GET', '" KEY_ROUTING "' .. alias)\n"
    "    routing[alias] = raw and cjson.decode(raw) or false\n"
    "  end\n"
    "  local r = routing[alias]\n"
    "  if not r then return nil, 'norouting' end\n"
    "  local est = num(f.est, 0)\n"
    "  local strategy = r.strategy\n"
    "  local max_cost = nil\n"
    "  if f.routing then\n"
    "    local tr = cjson.decode(f.routing)\n"
    "    if tr.strategy then strategy = tr.strategy end\n"
    "    if tr.max_cost then max_cost = tonumber(tr.max_cost) end\n"
    "  end\n"
    "  local avoid = num(f.avoid, -1)\n"
    "  local best, best_st, best_score, total_w = nil, nil, nil, 0\n"
    "  local fallback, fallback_st = nil, nil\n"
    "  local cands = {}\n"
    "  local eligible = 0\n"
    "  for i, d in ipairs(r.deps) do\n"
    "    local idx = i - 1\n"
    "    local cost = (d.pin * est + d.pout * est) / 1000000\n"
    "    if max_cost == nil or cost <= max_cost then\n"
    "      eligible = eligible + 1\n"
    "      local st = dep_state(alias, idx, d, est)\n"
    "      if st.wait > 0 then note_wait(st.wait)\n"
    "      elseif idx == avoid and #r.deps > 1 then fallback, fallback_st = idx, st\n"
    "      else\n"
    "        local score = 0\n"
    "        if strategy == 'cost' then score = cost * 1e9 + d.pin + d.pout\n"
    "        elseif strategy == 'latency' then score = st.lat\n"
    "        elseif strategy == 'ordered' then score = idx end\n"
    "        cands[#cands+1] = {idx, st, score, d.weight}\n"
    "        total_w = total_w + math.max(d.weight, 0)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if #cands == 0 and fallback then cands[1] = {fallback, fallback_st, 0, 1}; total_w = 1 end\n"
    "  if eligible == 0 then return nil, 'impossible' end\n"
    "  if #cands == 0 then return nil, (f.routing and 'own' or 'capacity') end\n"
    "  if strategy == 'weighted' and total_w > 0 then\n"
    "    local x = math.random() * total_w\n"
    "    for _, c in ipairs(cands) do\n"
    "      x = x - math.max(c[4], 0)\n"
    "      if x <= 0 then best, best_st = c[1], c[2] break end\n"
    "    end\n"
    "    if best == nil then best, best_st = cands[#cands][1], cands[#cands][2] end\n"
    "  else\n"
    "    for _, c in ipairs(cands) do\n"
    "      if best_score == nil or c[3] < best_score then best, best_st, best_score = c[1], c[2], "
    "c[3] end\n"
    "    end\n"
    "  end\n"
    "  local st = best_st\n"
    "  local d = r.deps[best + 1]\n"
    /* charged in the cache exactly as the store would hold it; written back at the end */
    "  local s = st.s\n"
    "  s[1] = d.rpm > 0 and st.rt - 1 or st.rt\n"
    "  s[2] = d.tpm > 0 and st.tt - est or st.tt\n"
    "  s[3] = math.max(now, num(s[3], 0))\n"
    "  s[4] = st.inf + 1\n"
    "  s[6] = st.br\n"
    "  if st.br == 'half' then s[8] = now end\n"
    "  if strategy == 'latency' then s[10] = now end\n"
    "  dirty[st.key] = true\n"
    "  return best\n"
    "end\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, n)\n"
    "for _, id in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[2], id)\n"
    "  local k = T .. id\n"
    "  local st = redis.call('HGET', k, 'status')\n"
    "  if st == 'in_progress' or st == 'cancelling' then\n"
    "    emit(id, k, 'poll', redis.call('HINCRBY', k, 'fence', 1))\n"
    "  end\n"
    "end\n"
    /* a queued task taken off its list: attempt, fence, deployment, in_progress, leased; one
       write, its answer built from what fetch read */
    "local function claim(id, k, f, dep, p)\n"
    "  local attempts = num(f.attempts, 0) + 1\n"
    "  local fence = num(f.fence, 0) + 1\n"
    /* inq '0': out of the ready lists (readers test for '1'; one write instead of an HDEL) */
    "  if f.started then\n"
    "    redis.call('HSET', k, 'attempts', attempts, 'fence', fence, 'dep', dep, 'status',\n"
    "      'in_progress', 'inq', '0')\n"
    "  else\n"
    "    redis.call('HSET', k, 'attempts', attempts, 'fence', fence, 'dep', dep, 'status',\n"
    "      'in_progress', 'inq', '0', 'started', ARGV[1])\n"
    "  end\n"
    "  if f.queue_position then redis.call('HDEL', k, 'queue_position') end\n"
    "  stat('depth|' .. f.model .. '|' .. p, -1)\n"
    "  stat('depthp|' .. p, -1)\n"
    "  stat('tq|' .. f.tenant, -1)\n"
    "  stat('status|queued', -1)\n"
    "  stat('status|in_progress', 1)\n"
    "  if not f.started and f.webhook then webhook_event(k, id, 'task.started', now) end\n"
    "  put(id, fence, 'call', {tostring(attempts), f.max_attempts, f.tenant, f.model, f.kind,\n"
    "    f.input, 'in_progress', f.up_id, f.job, tostring(dep), f.stream, f.reply_to})\n"
    "end\n"
    "for p = 0, 2 do\n"
    "  local ring = '" KEY_RING "' .. p\n"
    "  local rlen = redis.call('LLEN', ring)\n"
    "  local idle = 0\n"
    "  local blocked = {}\n"
    "  while got < n and rlen > 0 and idle < rlen do\n"
    "    local member = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')\n"
    "    local tenant = string.match(member, '^(.*)|') or member\n"
    "    local q = '" KEY_QUEUE "' .. p .. ':' .. member\n"
    "    local id = redis.call('LINDEX', q, -1)\n"
    "    local f = id and fetch(T .. id)\n"
    "    while id and f.status ~= 'queued' do\n"
    "      redis.call('RPOP', q)\n"
    "      id = redis.call('LINDEX', q, -1)\n"
    "      f = id and fetch(T .. id)\n"
    "    end\n"
    "    if not id then\n"
    "      redis.call('LREM', ring, -1, member)\n"
    "      redis.call('SREM', '" KEY_RINGSET "' .. p, member)\n"
    "      rlen = rlen - 1\n"
    "    else\n"
    "      local k = T .. id\n"
    "      local model = f.model\n"
    "      local dep, why = nil, 'capacity'\n"
    "      if not blocked[model] then dep, why = admit(model, f) end\n"
    "      if dep == nil and why == 'impossible' then\n"
    /* no deployment of the alias fits the task's own routing: it can never run */
    "        redis.call('RPOP', q)\n"
    "        dequeued(k)\n"
    "        redis.call('HSET', k, 'error', ARGV[7])\n"
    "        finalize(k, id, 'failed', now, tonumber(ARGV[8]), tenant)\n"
    "        idle = 0\n"
    "      elseif dep == nil and why == 'own' then\n"
    /* the head waits for a deployment its own routing allows: a few tasks behind it that can go
       now are not held up (bounded lookahead) */
    "        local behind = redis.call('LRANGE', q, -9, -2)\n"
    "        local taken = false\n"
    "        for j = #behind, 1, -1 do\n"
    "          local id2 = behind[j]\n"
    "          local k2 = T .. id2\n"
    "          local f2 = fetch(k2)\n"
    "          if f2.status == 'queued' then\n"
    "            local dep2, why2 = admit(model, f2)\n"
    "            if dep2 ~= nil then\n"
    "              redis.call('LREM', q, -1, id2)\n"
    "              claim(id2, k2, f2, dep2, p)\n"
    "              taken = true\n"
    "              break\n"
    "            elseif why2 == 'capacity' then\n"
    "              break\n"
    "            end\n"
    "          end\n"
    "        end\n"
    "        if taken then idle = 0 else idle = idle + 1 end\n"
    "      elseif dep == nil and why == 'norouting' then\n"
    /* the alias's routing is not in Redis (lost with a flush or an old snapshot): its tasks wait,
       counted, and the worker is told so it publishes the routing again */
    "        if not blocked[model] then\n"
    "          norouting[#norouting+1] = model\n"
    "          stat('norouting|' .. model, 1)\n"
    "        end\n"
    "        blocked[model] = true\n"
    "        idle = idle + 1\n"
    "      elseif dep == nil then\n"
    /* the alias's capacity blocks all its tasks */
    "        blocked[model] = true\n"
    "        idle = idle + 1\n"
    "      else\n"
    "        idle = 0\n"
    "        redis.call('RPOP', q)\n"
    "        claim(id, k, f, dep, p)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for key in pairs(dirty) do\n"
    "  local s = deps[key]\n"
    "  local w = {'rt', s[1], 'tt', s[2], 'ts', s[3], 'inf', s[4], 'br', s[6]}\n"
    "  if s[8] then w[#w+1] = 'probe'; w[#w+1] = s[8] end\n"
    "  if s[10] then w[#w+1] = 'latts'; w[#w+1] = s[10] end\n"
    "  redis.call('HSET', key, unpack(w))\n"
    "end\n"
    "if #leases > 0 then redis.call('ZADD', KEYS[1], unpack(leases)) end\n"
    "flush_stats()\n"
    "out[1] = wait\n"
    "out[2] = table.concat(norouting, ',')\n"
    "return out\n";

/*
 * EXTEND — the workers' heartbeat: push the lease deadline of each (id, fence) still held.
 * KEYS: 1 leases
 * ARGV: 1 new deadline ms, 2 task key prefix, then pairs id, fence
 * Returns one status per pair: "ok", "cancelling" (stop and finish it) or "lost" (drop it).
 */
static const char extend_lua[] =
    "local out = {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local id = ARGV[i]\n"
    "  local f = redis.call('HMGET', ARGV[2] .. id, 'status', 'fence')\n"
    "  if f[2] == ARGV[i+1] and (f[1] == 'in_progress' or f[1] == 'cancelling') then\n"
    "    redis.call('ZADD', KEYS[1], ARGV[1], id)\n"
    "    out[#out+1] = (f[1] == 'cancelling') and 'cancelling' or 'ok'\n"
    "  else\n"
    "    out[#out+1] = 'lost'\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * FINISH — a worker reports its attempts' outcomes, fenced, and what it learned of the
 * deployments: every outcome it has at the end of a loop turn in one call (up to
 * 64), applied in order, as separate calls would be.
 * outcome: completed | failed | retry (back off, then queued again; `avoid` steers the next
 * attempt to another deployment) | release (back to the head of the queue at once without spending
 * an attempt: shutdown, a provider's 429/529) | park (an upstream job is running: keep the task
 * in_progress, due for a poll at poll_at; an empty up_id or job keeps the stored one). A retry with
 * no attempts left becomes failed; any outcome on a cancelling task becomes cancelled (or expired,
 * when its deadline caused it) — except park, which makes it due at once so a worker cancels the
 * upstream job first.
 * The deployment's shared state is updated in the same step: the call slot is returned, the token
 * estimate reconciled with the real usage, a provider pause or lowered budget applied, the latency
 * EWMA and the breaker window moved (a half-open probe closes or reopens it).
 * It runs once per attempt, so it is kept cheap. Each task is read once (its first HMGET also
 * serves the status move, the attempt log and finalize) and written with one HSET. What the
 * outcomes of one call share is read and written once per call: each deployment's state (read
 * at its first outcome, moved in memory, one HSET at the end), the /metrics counters (summed,
 * one HINCRBY per counter), the leases, the expiry set and the poll set (one ZREM or ZADD each),
 * the wake message. The breaker's parameters come from the worker's config rather than the
 * stored routing JSON, the latency sum is counted in integer µs (`latus|`; /metrics shows
 * seconds), and the attempt log (the last 20 attempts, a JSON array; `alog_n` counts its entries)
 * grows by string append, decoded only once it is full.
 * KEYS: 1 leases, 2 delayed, 3 polls
 * ARGV: 1 now ms, 2 retention ms, 3 wake channel, 4 breaker min requests, 5 breaker failure %,
 *       6 breaker window ms, then FINISH_GROUP arguments per outcome:
 *       +1 task key, +2 id, +3 fence, +4 outcome, +5 result, +6 usage, +7 provider, +8 cost,
 *       +9 error, +10 retry at ms, +11 up_id, +12 job, +13 progress, +14 queue_position,
 *       +15 poll at ms, +16 artifacts, +17 took a slot (0/1), +18 latency ms, +19 class (ok | fail
 *       | rate | client | none), +20 pause until ms, +21 remaining requests, +22 remaining tokens,
 *       +23 tokens used, +24 http status, +25 avoid this deployment (0/1), +26 attempt record JSON
 *       ("" none; one JSON object), +27 wake other workers when the slot is returned (0/1: the
 *       deployment has max_concurrency)
 * Returns one entry per outcome, in order: the outcome as applied, or "stale" (the attempt is no
 * longer current: nothing written).
 */
static const char finish_lua[] =
    "local now, ret = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local br_min, br_pct, br_win = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "ACC, DEFER = {}, {expiry = {}, polls = {}}\n"
    "local leases, wake = {}, false\n"
    /* the deployments' state: d.s the fields as read and moved so far, d.w what to write */
    "local deps, dep_list = {}, {}\n"
    "local function dep_state(dk)\n"
    "  local d = deps[dk]\n"
    "  if d then return d end\n"
    "  local s = redis.call('HMGET', dk, 'inf', 'tt', 'rt', 'lat', 'br', 'wst', 'wok', 'wfail')\n"
    "  d = {key = dk, w = {}, order = {}, s = {inf = num(s[1], 1), tt = tonumber(s[2]),\n"
    "    rt = tonumber(s[3]), lat = tonumber(s[4]), br = s[5] or 'closed', wst = num(s[6], 0),\n"
    "    wok = num(s[7], 0), wfail = num(s[8], 0)}}\n"
    "  deps[dk] = d; dep_list[#dep_list+1] = d\n"
    "  return d\n"
    "end\n"
    /* a field to write (a field put twice takes its later value); the state moves with it, also
       a field absent when read, so the call's next outcome on the deployment sees the write as a
       separate call would */
    "local function dput(d, field, v)\n"
    "  if d.w[field] == nil then d.order[#d.order+1] = field end\n"
    "  d.w[field] = v\n"
    "  d.s[field] = v\n"
    "end\n"
    /* a claimed call that never went out (refused before it): its slot, its request and its
       token estimate go back (CLAIM's refill clamps the buckets to their caps) */
    "local function slot_back(A, model, dep, est)\n"
    "  local d = dep_state('" KEY_DEP "' .. model .. ':' .. dep)\n"
    "  local s = d.s\n"
    "  dput(d, 'inf', math.max(0, s.inf - 1))\n"
    "  if s.rt then dput(d, 'rt', s.rt + 1) end\n"
    "  if s.tt then dput(d, 'tt', s.tt + num(est, 0)) end\n"
    "  if A[27] ~= '0' then wake = true end\n"
    "end\n"
    "local lat_buckets = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}\n"
    "local function dep_outcome(A, model, dep, est)\n"
    "  local d = dep_state('" KEY_DEP "' .. model .. ':' .. dep)\n"
    "  local s, class = d.s, A[19]\n"
    "  if A[17] == '1' then dput(d, 'inf', math.max(0, s.inf - 1)) end\n"
    "  if A[23] ~= '' and s.tt then dput(d, 'tt', s.tt + num(est, 0) - tonumber(A[23])) end\n"
    "  if A[20] ~= '' then\n"
    /* a provider pause: the bucket starts empty when it ends, so it does not refill to a burst
       that meets the provider's limit again */
    "    dput(d, 'pause', A[20]); dput(d, 'rt', math.min(s.rt or 0, 0)); dput(d, 'ts', A[20])\n"
    "  end\n"
    "  if A[21] ~= '' and (s.rt or 1e18) > tonumber(A[21]) then dput(d, 'rt', tonumber(A[21])) "
    "end\n"
    "  if A[22] ~= '' and (s.tt or 1e18) > tonumber(A[22]) then dput(d, 'tt', tonumber(A[22])) "
    "end\n"
    "  if class == 'ok' and A[18] ~= '' then\n"
    "    local l = tonumber(A[18])\n"
    "    dput(d, 'lat', s.lat and (0.8 * s.lat + 0.2 * l) or l)\n"
    "  end\n"
    "  if s.br == 'half' and class ~= 'ok' and class ~= 'fail' then dput(d, 'probe', '0') end\n"
    "  if class == 'ok' or class == 'fail' then\n"
    "    local wok, wfail, state = s.wok, s.wfail, s.br\n"
    "    if now - s.wst > br_win then wok, wfail = 0, 0; dput(d, 'wst', now) end\n"
    "    if class == 'ok' then wok = wok + 1 else wfail = wfail + 1 end\n"
    "    if state == 'half' then\n"
    "      if class == 'ok' then state = 'closed'; wok, wfail = 0, 0\n"
    "      else state = 'open'; dput(d, 'bro', now) end\n"
    "      dput(d, 'probe', '0')\n"
    "    elseif state == 'closed' and wok + wfail >= br_min and\n"
    "        wfail * 100 >= br_pct * (wok + wfail) then\n"
    "      state = 'open'\n"
    "      dput(d, 'bro', now)\n"
    "      wok, wfail = 0, 0\n"
    "    end\n"
    "    dput(d, 'br', state); dput(d, 'wok', wok); dput(d, 'wfail', wfail)\n"
    "  end\n"
    "  local series = model .. '|' .. dep\n"
    "  stat('calls|' .. series .. '|' .. (A[24] ~= '' and A[24] or 'error'), 1)\n"
    "  if A[18] ~= '' then\n"
    "    local l = tonumber(A[18])\n"
    /* one (non-cumulative) bucket per call; /metrics sums them into Prometheus buckets */
    "    local bucket = 'inf'\n"
    "    for _, le in ipairs(lat_buckets) do\n"
    "      if l <= le then\n"
    "        bucket = le\n"
    "        break\n"
    "      end\n"
    "    end\n"
    "    stat('lat|' .. series .. '|' .. bucket, 1)\n"
    "    stat('latus|' .. series, math.floor(l * 1000 + 0.5))\n"
    "  end\n"
    "  if class == 'rate' then stat('r429|' .. series, 1) end\n"
    /* a freed call slot matters to other workers only when the deployment caps its calls */
    "  if A[17] == '1' and A[27] ~= '0' then wake = true end\n"
    "end\n"
    /* f: 1 status, 2 fence, 3 attempts, 4 max_attempts, 5 priority, 6 tenant, 7 model, 8 dep,
       9 est, 10 attempt_log, 11 alog_n, 12 batch, 13 reply_to, 14 webhook, 15 progress,
       16 last_error, 17 queue_position, 18 deadline, 19 sb (stored bytes) */
    "local function finish_one(A)\n"
    "  local k, id = A[1], A[2]\n"
    "  local f = redis.call('HMGET', k, 'status', 'fence', 'attempts', 'max_attempts',\n"
    "    'priority', 'tenant', 'model', 'dep', 'est', 'attempt_log', 'alog_n', 'batch', "
    "'reply_to',\n"
    "    'webhook', 'progress', 'last_error', 'queue_position', 'deadline', 'sb')\n"
    "  if f[2] ~= A[3] or (f[1] ~= 'in_progress' and f[1] ~= 'cancelling') then\n"
    "    return 'stale'\n"
    "  end\n"
    "  leases[#leases+1] = id\n"
    /* field, value pairs for the task's one HSET */
    "  local tw = {}\n"
    "  local function put(field, v) tw[#tw+1] = field; tw[#tw+1] = v end\n"
    "  local function keep(field, v) if v ~= '' then put(field, v) end end\n"
    "  if A[26] ~= '' then\n"
    "    local log, n = f[10], tonumber(f[11])\n"
    "    if not log then\n"
    "      log, n = '[' .. A[26] .. ']', 1\n"
    "    elseif n and n < 20 then\n"
    "      log, n = string.sub(log, 1, -2) .. ',' .. A[26] .. ']', n + 1\n"
    "    else\n"
    /* full (or written before alog_n was kept): drop the oldest entries */
    "      local list = cjson.decode(log)\n"
    "      list[#list+1] = cjson.decode(A[26])\n"
    "      while #list > 20 do table.remove(list, 1) end\n"
    "      log, n = cjson.encode(list), #list\n"
    "    end\n"
    "    put('attempt_log', log); put('alog_n', n)\n"
    "  end\n"
    "  if f[8] and A[19] ~= 'none' then dep_outcome(A, f[7], f[8], f[9])\n"
    /* no call went out (refused before it, or a poll): only the claimed slot goes back */
    "  elseif f[8] and A[17] == '1' then slot_back(A, f[7], f[8], f[9]) end\n"
    "  local outcome = A[4]\n"
    "  if outcome == 'park' then\n"
    "    keep('up_id', A[11]); keep('job', A[12])\n"
    "    keep('progress', A[13]); keep('queue_position', A[14]); keep('provider', A[7])\n"
    "    if #tw > 0 then redis.call('HSET', k, unpack(tw)) end\n"
    "    if A[13] ~= '' and f[15] ~= A[13] then\n"
    "      webhook_event(k, id, 'task.progress', now, f[14])\n"
    "    end\n"
    "    redis.call('ZADD', KEYS[3], f[1] == 'cancelling' and now or A[15], id)\n"
    "    return 'park'\n"
    "  end\n"
    "  if f[1] == 'cancelling' then outcome = cancelled_status(k) end\n"
    "  if outcome == 'retry' and tonumber(f[3]) >= tonumber(f[4]) then outcome = 'failed' end\n"
    "  if outcome == 'retry' then\n"
    "    set_status(k, 'queued', f[1])\n"
    "    put('last_error', A[9])\n"
    "    if A[25] == '1' and f[8] then put('avoid', f[8]) end\n"
    "    redis.call('HSET', k, unpack(tw))\n"
    "    redis.call('ZADD', KEYS[2], A[10], id)\n"
    "    return 'retry'\n"
    "  end\n"
    "  if outcome == 'release' then\n"
    "    set_status(k, 'queued', f[1])\n"
    "    put('attempts', num(f[3], 0) - 1)\n"
    "    redis.call('HSET', k, unpack(tw))\n"
    "    enqueue(k, id, true)\n"
    "    wake = true\n"
    "    return 'release'\n"
    "  end\n"
    "  local ab = nil\n"
    "  if outcome == 'completed' then\n"
    "    put('result', A[5]); put('progress', '100')\n"
    "    keep('artifacts', A[16])\n"
    /* the kept artifacts' bytes count against the tenant until the task is swept (and its
       blob folder removed) */
    "    if A[16] ~= '' then\n"
    "      ab = 0\n"
    "      for _, x in ipairs(cjson.decode(A[16])) do ab = ab + num(x.bytes, 0) end\n"
    "      put('ab', ab)\n"
    "      stat('ab|' .. f[6], ab)\n"
    "    end\n"
    "  elseif outcome == 'failed' then\n"
    "    put('error', A[9])\n"
    "  end\n"
    "  keep('usage', A[6]); keep('provider', A[7]); keep('cost', A[8])\n"
    "  if f[16] or f[17] then redis.call('HDEL', k, 'last_error', 'queue_position') end\n"
    "  finalize(k, id, outcome, now, ret, f[6], {status = f[1], batch = f[12],\n"
    "    reply_to = f[13], webhook = f[14], deadline = f[18], sb = f[19] or false, ab = ab,\n"
    "    fields = tw, result = A[5]})\n"
    "  return outcome\n"
    "end\n"
    "local out = {}\n"
    "for base = 7, #ARGV - " FINISH_GROUP_S " + 1, " FINISH_GROUP_S " do\n"
    "  out[#out+1] = finish_one({unpack(ARGV, base, base + " FINISH_GROUP_S " - 1)})\n"
    "end\n"
    "if #leases > 0 then redis.call('ZREM', KEYS[1], unpack(leases)) end\n"
    "if #DEFER.polls > 0 then redis.call('ZREM', KEYS[3], unpack(DEFER.polls)) end\n"
    "if #DEFER.expiry > 0 then redis.call('ZADD', '" KEY_EXPIRY "', unpack(DEFER.expiry)) end\n"
    "for _, d in ipairs(dep_list) do\n"
    "  if #d.order > 0 then\n"
    "    local w = {}\n"
    "    for _, field in ipairs(d.order) do w[#w+1] = field; w[#w+1] = d.w[field] end\n"
    "    redis.call('HSET', d.key, unpack(w))\n"
    "  end\n"
    "end\n"
    "flush_stats()\n"
    "if wake then redis.call('PUBLISH', ARGV[3], '1') end\n"
    "return out\n";

/*
 * CANCEL — a client cancels its task. Queued: cancelled at once. In progress: cancelling, and a
 * parked long-running task is made due now, so a worker cancels the upstream job and finishes it.
 * KEYS: 1 task, 2 delayed, 3 polls
 * ARGV: 1 id, 2 tenant, 3 now ms, 4 retention ms
 * Returns {"ok", hash} | {"notfound"} | {"conflict", hash}.
 */
static const char cancel_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'status', 'tenant')\n"
    "if not f[1] or f[2] ~= ARGV[2] then return {'notfound'} end\n"
    "if f[1] == 'queued' then\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "  dequeued(KEYS[1])\n"
    "  finalize(KEYS[1], ARGV[1], 'cancelled', tonumber(ARGV[3]), tonumber(ARGV[4]), f[2])\n"
    "elseif f[1] == 'in_progress' then\n"
    "  set_status(KEYS[1], 'cancelling')\n"
    "  if redis.call('ZSCORE', KEYS[3], ARGV[1]) then\n"
    "    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])\n"
    "  end\n"
    "elseif f[1] ~= 'cancelling' then\n"
    "  return {'conflict', redis.call('HGETALL', KEYS[1])}\n"
    "end\n"
    "return {'ok', redis.call('HGETALL', KEYS[1])}\n";

/*
 * TICK — the scheduler's clock, one round trip: hold the leader lock, promote due retries,
 * recover tasks whose lease expired, expire tasks past their deadline, and forget finished tasks
 * in the tenant lists.
 * Lease recovery: a task with an upstream job goes back to the poll set (the job still runs);
 * others go back to the head of their queue, or fail once they used every attempt; cancelling
 * ones become cancelled. Deadlines: a queued task expires at once; a running one becomes
 * cancelling with reason "expired" (a parked one is made due, so a worker cancels the job).
 * KEYS: 1 delayed, 2 leases, 3 expiry, 4 leader
 * ARGV: 1 now ms, 2 limit per step, 3 node id, 4 leader ttl ms, 5 task key prefix,
 *       6 tenant key prefix, 7 wake channel, 8 retention ms, 9 queue key prefix, 10 error JSON
 *       for a task whose worker was lost on its last attempt
 * Returns {"follower"} or {"leader", promoted, recovered, swept, expired, {ids of swept tasks
 * that kept artifacts: the caller removes their blob folders}}.
 */
static const char tick_lua[] =
    "local cur = redis.call('GET', KEYS[4])\n"
    "if cur and cur ~= ARGV[3] then return {'follower'} end\n"
    "redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])\n"
    "local now = tonumber(ARGV[1])\n"
    "local lim = tonumber(ARGV[2])\n"
    "local ret = tonumber(ARGV[8])\n"
    "local woke = 0\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, id in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  local k = T .. id\n"
    "  if redis.call('HGET', k, 'status') == 'queued' then\n"
    "    enqueue(k, id, true)\n"
    "    woke = woke + 1\n"
    "  end\n"
    "end\n"
    "local lost = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, id in ipairs(lost) do\n"
    "  redis.call('ZREM', KEYS[2], id)\n"
    "  local k = T .. id\n"
    "  local f = redis.call('HMGET', k, 'status', 'attempts', 'max_attempts', 'model', 'tenant',\n"
    "    'up_id', 'dep')\n"
    "  if (f[1] == 'in_progress' or f[1] == 'cancelling') and not f[6] and f[7] then\n"
    "    local dk = '" KEY_DEP "' .. f[4] .. ':' .. f[7]\n"
    "    redis.call('HSET', dk, 'inf', math.max(0, num(redis.call('HGET', dk, 'inf'), 1) - 1))\n"
    "  end\n"
    "  if f[1] == 'in_progress' and f[6] then\n"
    "    redis.call('ZADD', '" KEY_POLLS "', now, id)\n"
    "  elseif f[1] == 'in_progress' then\n"
    "    if tonumber(f[2]) >= tonumber(f[3]) then\n"
    "      redis.call('HSET', k, 'error', ARGV[10])\n"
    "      finalize(k, id, 'failed', now, ret, f[5])\n"
    "    else\n"
    "      set_status(k, 'queued')\n"
    "      enqueue(k, id, true)\n"
    "      woke = woke + 1\n"
    "    end\n"
    "  elseif f[1] == 'cancelling' then\n"
    "    finalize(k, id, cancelled_status(k), now, ret, f[5])\n"
    "  end\n"
    "end\n"
    "local late = redis.call('ZRANGEBYSCORE', '" KEY_DEADLINES "', '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, id in ipairs(late) do\n"
    "  redis.call('ZREM', '" KEY_DEADLINES "', id)\n"
    "  local k = T .. id\n"
    "  local f = redis.call('HMGET', k, 'status', 'tenant')\n"
    "  if f[1] == 'queued' then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    dequeued(k)\n"
    "    finalize(k, id, 'expired', now, ret, f[2])\n"
    "  elseif f[1] == 'in_progress' then\n"
    "    set_status(k, 'cancelling')\n"
    "    redis.call('HSET', k, 'cancel_reason', 'expired')\n"
    "    if redis.call('ZSCORE', '" KEY_POLLS "', id) then\n"
    "      redis.call('ZADD', '" KEY_POLLS "', now, id)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local gone = {}\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, lim)\n"
    "for _, m in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[3], m)\n"
    /* tenant|id|status, and since stored bytes are counted |stored|artifact bytes (tenants and
       ids have no '|'); the scheduler removes the blob folders of the swept tasks */
    "  local tenant, id, status, sb, ab =\n"
    "    string.match(m, '^([^|]*)|([^|]*)|([^|]*)|?(%d*)|?(%d*)$')\n"
    "  if tenant then\n"
    "    redis.call('ZREM', ARGV[6] .. tenant, id)\n"
    "    redis.call('HINCRBY', STATS, 'status|' .. status, -1)\n"
    "    if sb ~= '' and sb ~= '0' then redis.call('HINCRBY', STATS, 'sb|' .. tenant, -sb) end\n"
    "    if ab ~= '' and ab ~= '0' then\n"
    "      redis.call('HINCRBY', STATS, 'ab|' .. tenant, -ab)\n"
    "      gone[#gone+1] = id\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if woke > 0 then redis.call('PUBLISH', ARGV[7], '1') end\n"
    "return {'leader', #due, #lost, #old, #late, gone}\n";

/*
 * LIST — a page of a tenant's tasks, newest first, optionally filtered by status. Scans at most
 * `cap` index entries per call so a filter that matches nothing stays bounded; the last id it
 * looked at is returned as the cursor, so a page that found nothing still lets the client go on.
 * KEYS: 1 tenant index
 * ARGV: 1 after id ("" for the first page), 2 limit, 3 status ("" any), 4 task key prefix, 5 cap
 * Returns {"ok", has_more (0/1), cursor ("" none), id, hash, id, hash, ...} | {"badcursor"}.
 */
static const char list_lua[] = "local start = 0\n"
                               "if ARGV[1] ~= '' then\n"
                               "  local r = redis.call('ZREVRANK', KEYS[1], ARGV[1])\n"
                               "  if not r then return {'badcursor'} end\n"
                               "  start = r + 1\n"
                               "end\n"
                               "local lim = tonumber(ARGV[2])\n"
                               "local cap = tonumber(ARGV[5])\n"
                               "local out = {'ok', 0, ''}\n"
                               "local found = 0\n"
                               "local scanned = 0\n"
                               "while scanned < cap do\n"
                               "  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + 99)\n"
                               "  if #ids == 0 then return out end\n"
                               "  for _, id in ipairs(ids) do\n"
                               "    local k = ARGV[4] .. id\n"
                               "    local st = redis.call('HGET', k, 'status')\n"
                               "    if st and (ARGV[3] == '' or ARGV[3] == st) then\n"
                               "      if found == lim then out[2] = 1; return out end\n"
                               "      found = found + 1\n"
                               "      out[#out+1] = id\n"
                               "      out[#out+1] = redis.call('HGETALL', k)\n"
                               "    end\n"
                               "    scanned = scanned + 1\n"
                               "    start = start + 1\n"
                               "    out[3] = id\n"
                               "    if scanned >= cap then break end\n"
                               "  end\n"
                               "end\n"
                               "if redis.call('ZCARD', KEYS[1]) > start then out[2] = 1 end\n"
                               "return out\n";

/*
 * GET — a task by id in one round trip, with, while it is queued, an estimate of its place in line
 * and when it will start: the tasks ahead of it in its tenant's list times the tenants taking
 * turns at its priority, plus everything queued at higher priorities; the wait is that place over
 * the pace its model's deployments are configured for (null when they are unpaced).
 * KEYS: 1 task
 * ARGV: 1 id
 * Returns {hash, queue_position (-1 unknown), eta_seconds (-1 unknown)}.
 */
static const char get_lua[] =
    "local t = redis.call('HGETALL', KEYS[1])\n"
    "local f = redis.call('HMGET', KEYS[1], 'status', 'inq', 'priority', 'tenant', 'model')\n"
    "if #t == 0 or f[1] ~= 'queued' or f[2] ~= '1' then return {t, -1, -1} end\n"
    "local p = tonumber(f[3])\n"
    "local q = '" KEY_QUEUE "' .. p .. ':' .. f[4] .. '|' .. f[5]\n"
    "local idx = redis.call('LPOS', q, ARGV[1], 'RANK', -1, 'MAXLEN', 100000)\n"
    "if not idx then return {t, -1, -1} end\n"
    "local mine = redis.call('LLEN', q) - 1 - idx\n"
    "local tenants = math.max(1, redis.call('LLEN', '" KEY_RING "' .. p))\n"
    "local pos = mine * tenants\n"
    "for hp = 0, p - 1 do pos = pos + math.max(0, num(redis.call('HGET', STATS, 'depthp|' .. hp), "
    "0)) end\n"
    "local eta = -1\n"
    "local raw = redis.call('GET', '" KEY_ROUTING "' .. f[5])\n"
    "if raw then\n"
    "  local rate = 0\n"
    "  for _, d in ipairs(cjson.decode(raw).deps) do rate = rate + d.rpm / 60 end\n"
    "  if rate > 0 then eta = math.ceil(pos / rate) end\n"
    "end\n"
    "return {t, pos, eta}\n";

/*
 * METRICS — everything /metrics shows from Redis in one round trip: the counters and gauges
 * hash, each deployment's live state, and the sizes of the delayed, leased and parked sets.
 * ARGV: pairs of alias, number of deployments
 * Returns {stats hash, deployments {alias, index, rt, tt, inf, br, pause, lat}..., delayed,
 * leased, parked}.
 */
static const char metrics_lua[] =
    "local deps = {}\n"
    "for i = 1, #ARGV, 2 do\n"
    "  for d = 0, tonumber(ARGV[i + 1]) - 1 do\n"
    "    local s = redis.call('HMGET', '" KEY_DEP "' .. ARGV[i] .. ':' .. d, 'rt', 'tt', 'inf',\n"
    "      'br', 'pause', 'lat')\n"
    "    deps[#deps+1] = {ARGV[i], tostring(d), s[1] or '', s[2] or '', s[3] or '0',\n"
    "      s[4] or 'closed', s[5] or '0', s[6] or ''}\n"
    "  end\n"
    "end\n"
    "return {redis.call('HGETALL', STATS), deps, redis.call('ZCARD', '" KEY_DELAYED "'),\n"
    "  redis.call('ZCARD', '" KEY_LEASES "'), redis.call('ZCARD', '" KEY_POLLS "')}\n";

/*
 * WH_CLAIM — lease due webhook deliveries for one worker: at most n, and each tenant no more than
 * its share of the worker's delivery slots (worker/webhooks.c says why). A lease moves the
 * delivery's due time lease ms ahead, so a worker that dies mid-delivery costs a late retry, not
 * a lost one.
 * The oldest `scan` due deliveries are looked at. The tenants among them and the tenants the
 * worker is delivering for split `slots`: each may hold max(1, min(most, floor(slots / tenants))),
 * its deliveries in flight counted. A due delivery of a tenant at its share stays queued; when
 * more are due than one claim looks at, it moves just behind those due now (keeping their order),
 * so that the next claim looks further on and one tenant's backlog cannot hide the deliveries
 * of the others behind it.
 * KEYS: 1 delivery queue
 * ARGV: 1 now ms, 2 n, 3 lease ms, 4 slots, 5 most one tenant holds, 6 scan, then the worker's
 *       deliveries in flight per tenant: 7 tenant, 8 count, ...
 * Returns a flat array, 7 per delivery: msg id, task id, tenant, event, url, attempt, body.
 */
static const char wh_claim_lua[] =
    "local now, n, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local slots, most, scan = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local held, tenants = {}, 0\n"
    "for i = 7, #ARGV - 1, 2 do\n"
    "  if not held[ARGV[i]] then tenants = tenants + 1 end\n"
    "  held[ARGV[i]] = tonumber(ARGV[i+1])\n"
    "end\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, scan)\n"
    "local owner = {}\n"
    "for i, did in ipairs(due) do\n"
    "  local f = redis.call('HMGET', '" KEY_DELIVERY "' .. did, 'task', 'tenant')\n"
    "  if not f[1] then\n"
    "    redis.call('ZREM', KEYS[1], did)\n"
    "  else\n"
    "    owner[i] = f[2] or ''\n"
    "    if not held[owner[i]] then held[owner[i]] = 0; tenants = tenants + 1 end\n"
    "  end\n"
    "end\n"
    "local share = math.max(1, math.min(most, math.floor(slots / math.max(tenants, 1))))\n"
    "local out, behind = {}, 0\n"
    "for i, did in ipairs(due) do\n"
    "  local t = owner[i]\n"
    "  if n <= 0 then break end\n"
    "  if t and held[t] >= share then\n"
    "    if #due == scan then\n"
    "      behind = behind + 1\n"
    "      redis.call('ZADD', KEYS[1], now + behind, did)\n"
    "    end\n"
    "  elseif t then\n"
    "    local dk = '" KEY_DELIVERY "' .. did\n"
    "    local f = redis.call('HMGET', dk, 'task', 'event', 'url', 'body')\n"
    "    redis.call('ZADD', KEYS[1], now + lease, did)\n"
    "    local a = redis.call('HINCRBY', dk, 'attempts', 1)\n"
    "    held[t] = held[t] + 1\n"
    "    n = n - 1\n"
    "    local o = #out\n"
    "    out[o+1] = did; out[o+2] = f[1]; out[o+3] = t; out[o+4] = f[2]; out[o+5] = f[3]\n"
    "    out[o+6] = tostring(a); out[o+7] = f[4] or ''\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * WH_DONE — a delivery attempt's outcome: delivered | retry (due again at next_at) | stopped
 * (410) | failed (final). The attempt is recorded on the delivery and on its task (both capped),
 * and the body the first attempt rendered is kept, so every retry sends the same bytes.
 * KEYS: 1 delivery queue
 * ARGV: 1 msg id, 2 outcome, 3 next at ms, 4 attempt record JSON, 5 body ("" keep)
 * Returns {outcome}.
 */
static const char wh_done_lua[] =
    "local dk = '" KEY_DELIVERY "' .. ARGV[1]\n"
    "local task = redis.call('HGET', dk, 'task')\n"
    "if not task then redis.call('ZREM', KEYS[1], ARGV[1]); return {'gone'} end\n"
    "if ARGV[5] ~= '' then redis.call('HSETNX', dk, 'body', ARGV[5]) end\n"
    "redis.call('HSET', dk, 'state', ARGV[2])\n"
    "local rec = cjson.decode(ARGV[4])\n"
    "local function append(key, field, cap)\n"
    "  local raw = redis.call('HGET', key, field)\n"
    "  local list = raw and cjson.decode(raw) or {}\n"
    "  list[#list+1] = rec\n"
    "  while #list > cap do table.remove(list, 1) end\n"
    "  redis.call('HSET', key, field, cjson.encode(list))\n"
    "end\n"
    "append(dk, 'log', 20)\n"
    "if redis.call('EXISTS', T .. task) == 1 then append(T .. task, 'webhook_log', 50) end\n"
    "if ARGV[2] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "end\n"
    "redis.call('HINCRBY', STATS, 'webhooks|' .. ARGV[2], 1)\n"
    "return {ARGV[2]}\n";

/*
 * BATCH — every step of a batch's life, one op per call: the API's create, get, list and
 * cancel, and the batch runner's claim and state moves (api/batch_runner.c says when each runs).
 * A batch's tasks are counted on it by finalize (the prelude), which also moves it to
 * finalizing once they are all done and makes it due, unless a runner holds it (field `leased`,
 * set by claim and renew, dropped by the op that ends the runner's pass): that runner checks
 * again itself at the end of its pass.
 * KEYS: 1 batch, 2 work zset, 3 the tenant's batch index
 * ARGV: 1 batch id, 2 op, 3 now ms, then per op:
 *   create   4 tenant, 5.. field, value pairs            → {"ok"}
 *   get      4 tenant                                    → {"ok", hash} | {"notfound"}
 *   list     4 tenant, 5 after id ("" none), 6 limit     → {"ok", has_more, hash...}
 *   cancel   4 tenant                                    → {"ok"|"conflict", hash} | {"notfound"}
 *   claim    4 lease ms (KEYS[1] unused)                 → {id, hash} | {}
 *   renew    4 lease until ms                            → {"ok"}
 *   unlease  4 due ms                                    → {"ok"}
 *   started  4 total lines                               → {status after}
 *   progress 4 expanded, 5 byte offset, 6 all (0/1), 7 due ms → {"ok"} | {"stop"}
 *   expire   4 end reason (expired | failed): stop expanding, make it due → {status}
 *   check    4 due ms if not done, 5 field to mark ("" none) → {"done"} | {"waiting"}
 *   done     4 final status, 5 output file id, 6 error file id, 7 webhook body, 8 event,
 *            9 errors JSON (each "" none)                → {"ok"} | {"stale"}
 *   release  4 retention ms, 5.. task ids                → {"ok"}
 */
static const char batch_lua[] =
    "local bk, work, id, op = KEYS[1], KEYS[2], ARGV[1], ARGV[2]\n"
    "local now = tonumber(ARGV[3])\n"
    "local secs = math.floor(now / 1000)\n"
    "local function owned(tenant)\n"
    "  return redis.call('HGET', bk, 'tenant') == tenant\n"
    "end\n"
    "if op == 'create' then\n"
    "  redis.call('HSET', bk, 'id', id, 'tenant', ARGV[4], 'status', 'validating', 'created_at', "
    "secs,\n"
    "    'completed', 0, 'failed', 0, 'total', 0, 'expanded', 0, 'exp_off', 0)\n"
    "  for i = 5, #ARGV, 2 do redis.call('HSET', bk, ARGV[i], ARGV[i+1]) end\n"
    "  redis.call('ZADD', KEYS[3], now, id)\n"
    "  redis.call('ZADD', work, 0, id)\n"
    "  return {'ok'}\n"
    "elseif op == 'get' then\n"
    "  if not owned(ARGV[4]) then return {'notfound'} end\n"
    "  return {'ok', redis.call('HGETALL', bk)}\n"
    "elseif op == 'list' then\n"
    "  local start = 0\n"
    "  if ARGV[5] ~= '' then\n"
    "    local r = redis.call('ZREVRANK', KEYS[3], ARGV[5])\n"
    "    if r then start = r + 1 end\n"
    "  end\n"
    "  local n = tonumber(ARGV[6])\n"
    "  local ids = redis.call('ZREVRANGE', KEYS[3], start, start + n)\n"
    "  local out = {'ok', #ids > n and 1 or 0}\n"
    "  for i = 1, math.min(#ids, n) do\n"
    "    local h = redis.call('HGETALL', '" KEY_BATCH "' .. ids[i])\n"
    "    if #h > 0 then out[#out+1] = h end\n"
    "  end\n"
    "  return out\n"
    "elseif op == 'cancel' then\n"
    "  if not owned(ARGV[4]) then return {'notfound'} end\n"
    "  local st = redis.call('HGET', bk, 'status')\n"
    "  if st == 'validating' or st == 'in_progress' then\n"
    "    redis.call('HSET', bk, 'status', 'cancelling', 'cancelling_at', secs, 'end', "
    "'cancelled')\n"
    "    redis.call('ZADD', work, 0, id)\n"
    "  elseif st ~= 'cancelling' and st ~= 'cancelled' then\n"
    "    return {'conflict', redis.call('HGETALL', bk)}\n"
    "  end\n"
    "  return {'ok', redis.call('HGETALL', bk)}\n"
    "elseif op == 'claim' then\n"
    "  for _ = 1, 8 do\n"
    "    local due = redis.call('ZRANGEBYSCORE', work, '-inf', now, 'LIMIT', 0, 1)\n"
    "    if #due == 0 then return {} end\n"
    "    local held = num(redis.call('HGET', '" KEY_BATCH "' .. due[1], 'leased'), 0)\n"
    "    local h = held > now and {} or redis.call('HGETALL', '" KEY_BATCH "' .. due[1])\n"
    "    if held > now then\n"
    "      redis.call('ZADD', work, held, due[1])\n"
    "    elseif #h > 0 then\n"
    "      redis.call('ZADD', work, now + tonumber(ARGV[4]), due[1])\n"
    "      redis.call('HSET', '" KEY_BATCH "' .. due[1], 'leased', now + tonumber(ARGV[4]))\n"
    "      return {due[1], h}\n"
    "    else\n"
    "      redis.call('ZREM', work, due[1])\n"
    "    end\n"
    "  end\n"
    "  return {}\n"
    "end\n"
    "local st = redis.call('HGET', bk, 'status')\n"
    "if not st then redis.call('ZREM', work, id); return {'gone'} end\n"
    /* the runner's lease: kept by renew, handed back by every op that ends its pass */
    "if op == 'renew' then\n"
    "  redis.call('ZADD', work, 'XX', ARGV[4], id)\n"
    "  redis.call('HSET', bk, 'leased', ARGV[4])\n"
    "  return {'ok'}\n"
    "elseif op == 'unlease' then\n"
    "  redis.call('ZADD', work, 'XX', ARGV[4], id)\n"
    "  redis.call('HDEL', bk, 'leased')\n"
    "  return {'ok'}\n"
    "elseif op ~= 'release' and op ~= 'progress' then\n"
    "  redis.call('HDEL', bk, 'leased')\n"
    "end\n"
    "if op == 'started' then\n"
    "  if st == 'validating' then\n"
    "    redis.call('HSET', bk, 'status', 'in_progress', 'in_progress_at', secs, 'total', "
    "ARGV[4])\n"
    "    return {'in_progress'}\n"
    "  elseif st == 'cancelling' then\n"
    "    redis.call('HSET', bk, 'total', 0, 'expanded', 0, 'expanded_all', 1)\n"
    "    batch_check(bk, id, now)\n"
    "  end\n"
    "  return {st}\n"
    "elseif op == 'progress' then\n"
    "  redis.call('HSET', bk, 'expanded', ARGV[4], 'exp_off', ARGV[5])\n"
    "  if st == 'in_progress' and ARGV[6] ~= '1' then\n"
    "    redis.call('HSET', bk, 'leased', ARGV[7])\n"
    "  else\n"
    "    redis.call('HDEL', bk, 'leased')\n"
    "  end\n"
    "  if st ~= 'in_progress' then\n"
    /* cancelled or expiring while expanding: the lines not submitted are not part of it */
    "    redis.call('HSET', bk, 'expanded_all', 1, 'total', ARGV[4])\n"
    "    batch_check(bk, id, now)\n"
    "    redis.call('ZADD', work, 0, id)\n"
    "    return {'stop'}\n"
    "  end\n"
    "  if ARGV[6] == '1' then\n"
    "    redis.call('HSET', bk, 'expanded_all', 1)\n"
    "    if not batch_check(bk, id, now) then\n"
    "      redis.call('ZADD', work, num(redis.call('HGET', bk, 'expires_at'), 0) * 1000, id)\n"
    "    end\n"
    "  else\n"
    "    redis.call('ZADD', work, ARGV[7], id)\n"
    "  end\n"
    "  return {'ok'}\n"
    "elseif op == 'expire' then\n"
    "  if st == 'in_progress' or st == 'cancelling' then\n"
    "    if not redis.call('HGET', bk, 'end') then redis.call('HSET', bk, 'end', ARGV[4]) end\n"
    "    if redis.call('HGET', bk, 'expanded_all') ~= '1' then\n"
    "      redis.call('HSET', bk, 'expanded_all', 1, 'total', redis.call('HGET', bk, "
    "'expanded'))\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZADD', work, 0, id)\n"
    "  return {st}\n"
    "elseif op == 'check' then\n"
    "  if ARGV[5] ~= '' then redis.call('HSET', bk, ARGV[5], 1) end\n"
    "  if batch_check(bk, id, now) then return {'done'} end\n"
    "  redis.call('ZADD', work, ARGV[4], id)\n"
    "  return {'waiting'}\n"
    "elseif op == 'done' then\n"
    "  if st ~= 'validating' and st ~= 'finalizing' and st ~= 'cancelling' then\n"
    "    redis.call('ZREM', work, id)\n"
    "    return {'stale'}\n"
    "  end\n"
    "  redis.call('HSET', bk, 'status', ARGV[4], ARGV[4] .. '_at', secs)\n"
    "  if ARGV[5] ~= '' then redis.call('HSET', bk, 'output_file_id', ARGV[5]) end\n"
    "  if ARGV[6] ~= '' then redis.call('HSET', bk, 'error_file_id', ARGV[6]) end\n"
    "  if ARGV[9] ~= '' then redis.call('HSET', bk, 'errors', ARGV[9]) end\n"
    "  redis.call('ZREM', work, id)\n"
    "  local wh = redis.call('HGET', bk, 'webhook')\n"
    "  if wh and ARGV[7] ~= '' then\n"
    "    local w = cjson.decode(wh)\n"
    "    for _, e in ipairs(w.events) do\n"
    "      if e == ARGV[8] then\n"
    "        local did = 'msg_' .. string.sub(id, 7) .. '_' .. redis.call('HINCRBY', bk, "
    "'wh_seq', 1)\n"
    "        local dk = '" KEY_DELIVERY "' .. did\n"
    "        redis.call('HSET', dk, 'task', id, 'tenant', redis.call('HGET', bk, 'tenant'),\n"
    "          'event', e, 'url', w.url, 'attempts', 0, 'created', now, 'body', ARGV[7])\n"
    "        redis.call('PEXPIRE', dk, 172800000)\n"
    "        redis.call('ZADD', '" KEY_WEBHOOK_QUEUE "', now, did)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return {'ok'}\n"
    "elseif op == 'release' then\n"
    "  local ret = tonumber(ARGV[4])\n"
    "  for i = 5, #ARGV do\n"
    "    local k = T .. ARGV[i]\n"
    "    local f = redis.call('HMGET', k, 'status', 'tenant', 'sb', 'ab')\n"
    "    if f[1] == 'completed' or f[1] == 'failed' or f[1] == 'cancelled' or f[1] == 'expired' "
    "then\n"
    "      redis.call('HSET', k, 'expires', now + ret)\n"
    "      redis.call('PEXPIRE', k, ret)\n"
    "      redis.call('ZADD', '" KEY_EXPIRY "', now + ret,\n"
    "        f[2] .. '|' .. ARGV[i] .. '|' .. f[1] .. '|' .. num(f[3], 0) .. '|' .. num(f[4], 0))\n"
    "    end\n"
    "  end\n"
    "  return {'ok'}\n"
    "end\n"
    "return redis.error_reply('unknown batch op ' .. op)\n";

static const char *const bodies[SCRIPT_COUNT] = {
    [SCRIPT_SUBMIT] = submit_lua,   [SCRIPT_CLAIM] = claim_lua,
    [SCRIPT_EXTEND] = extend_lua,   [SCRIPT_FINISH] = finish_lua,
    [SCRIPT_CANCEL] = cancel_lua,   [SCRIPT_TICK] = tick_lua,
    [SCRIPT_LIST] = list_lua,       [SCRIPT_GET] = get_lua,
    [SCRIPT_METRICS] = metrics_lua, [SCRIPT_WH_CLAIM] = wh_claim_lua,
    [SCRIPT_WH_DONE] = wh_done_lua, [SCRIPT_BATCH] = batch_lua,
};

/* Constants once scripts_init has run (prelude + body); written only there. */
static char *sources[SCRIPT_COUNT];
static char shas[SCRIPT_COUNT][41];

void scripts_init(void)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        size_t n = strlen(prelude_lua) + strlen(bodies[i]) + 1;
        if (sources[i] == NULL) {
            sources[i] = malloc(n);
            if (sources[i] == NULL) {
                abort(); /* at start, before anything runs: nothing to recover */
            }
            snprintf(sources[i], n, "%s%s", prelude_lua, bodies[i]);
        }
        SHA1((const unsigned char *)sources[i], strlen(sources[i]), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            snprintf(&shas[i][2 * j], 3, "%02x", md[j]);
        }
    }
}

const char *script_source(int id)
{
    return sources[id];
}

const char *script_sha(int id)
{
    return shas[id];
}
