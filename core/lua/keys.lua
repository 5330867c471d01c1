-- core/lua/keys.lua — API_KEYS: API keys kept as data (the admin API, api/admin_keys.c; every api
-- process's table of them, api/keys.c). A key's record holds the SHA-256 of its secret, never
-- the secret. Every create and revoke bumps the version, which the api processes poll to know
-- when to load the records again. Records are never deleted: a revoked key stays listed, with
-- its revoked time.
-- KEYS: 1 the key's record (ak:<id>; load and list: unused), 2 sha → id (akh), 3 the version
-- (akv)
-- ARGV: 1 op (create | list | revoke | load), then
--       create: 2 id, 3 tenant, 4 name, 5 sha (hex), 6 models JSON ("" any), 7 created (s),
--               8 expires (s, "" never), 9 budget JSON ("" none)
--       list:   2 tenant ("" every tenant), 3 the id to go on after ("" from the newest), 4 the
--               most records to answer ("" all)
--       revoke: 2 now (s)
--       load:   2 the version the caller has ("" none)
-- Returns {status, version, then REC fields per record: id, tenant, name, sha, models, created,
-- expires, revoked, budget} ("" for an absent field). status: "ok"; create "exists" (the sha is
-- another key's: nothing written); revoke "not_found"; load "same" (the version is the caller's:
-- no records); list "more" (records follow the page's last). list: newest first.
local rec_key, sha_key, ver_key = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local fields = {'id', 'tenant', 'name', 'sha', 'models', 'created', 'expires', 'revoked', 'budget'}

local function version()
  return redis.call('GET', ver_key) or '0'
end
-- appends the record of key k to out (nothing when it is gone)
local function add_rec(out, k)
  local v = redis.call('HMGET', k, unpack(fields))
  if not v[1] then return end
  for i = 1, #fields do out[#out+1] = v[i] or '' end
end
-- the records' keys of every key, newest first (tenant "" any), each as {created, key}
local function all_recs(tenant)
  local ids = redis.call('HVALS', sha_key)
  local recs = {}
  for _, id in ipairs(ids) do
    local k = '{{KS_API_KEY}}' .. id
    local t, created = unpack(redis.call('HMGET', k, 'tenant', 'created'))
    if t and (tenant == '' or t == tenant) then
      recs[#recs+1] = {tonumber(created) or 0, k, id}
    end
  end
  table.sort(recs, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[3] > b[3]
  end)
  return recs
end

if op == 'create' then
  local id, tenant, name, sha, models, created, expires, budget =
    ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  if redis.call('EXISTS', rec_key) == 1 or redis.call('HSETNX', sha_key, sha, id) == 0 then
    return {'exists', version()}
  end
  local h = {'id', id, 'tenant', tenant, 'name', name, 'sha', sha, 'created', created}
  if models ~= '' then h[#h+1] = 'models'; h[#h+1] = models end
  if expires ~= '' then h[#h+1] = 'expires'; h[#h+1] = expires end
  if budget ~= '' then
    h[#h+1] = 'budget'; h[#h+1] = budget
    -- the key's own budget, where CLAIM looks for it (core/lua/prelude.lua)
    redis.call('HSET', '{{KS_BUDGET}}k:' .. id, 'cfg', budget)
    redis.call('SADD', '{{KS_BUDGETS}}', 'k:' .. id)
  end
  redis.call('HSET', rec_key, unpack(h))
  local out = {'ok', tostring(redis.call('INCR', ver_key))}
  add_rec(out, rec_key)
  return out
elseif op == 'revoke' then
  if redis.call('EXISTS', rec_key) == 0 then return {'not_found', version()} end
  local v
  if redis.call('HEXISTS', rec_key, 'revoked') == 0 then
    redis.call('HSET', rec_key, 'revoked', ARGV[2])
    v = tostring(redis.call('INCR', ver_key))
  else
    v = version() -- revoked already: the first time stays
  end
  local out = {'ok', v}
  add_rec(out, rec_key)
  return out
elseif op == 'list' then
  local after, limit = ARGV[3] or '', tonumber(ARGV[4] or '')
  local out = {'ok', version()}
  local recs = all_recs(ARGV[2])
  local first = 1
  if after ~= '' then
    first = #recs + 1
    for i, r in ipairs(recs) do
      if r[3] == after then first = i + 1; break end
    end
  end
  local last = limit and math.min(#recs, first + limit - 1) or #recs
  for i = first, last do add_rec(out, recs[i][2]) end
  if last < #recs then out[1] = 'more' end
  return out
elseif op == 'load' then
  local v = version()
  if v == ARGV[2] then return {'same', v} end
  local out = {'ok', v}
  for _, r in ipairs(all_recs('')) do add_rec(out, r[2]) end
  return out
end
return redis.error_reply('API_KEYS: unknown op ' .. tostring(op))
