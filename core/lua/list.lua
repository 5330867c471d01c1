-- core/lua/list.lua — LIST: a page of a tenant's tasks, newest first, optionally filtered by
-- status. Scans at most `cap` index entries per call so a filter that matches nothing stays
-- bounded; the last id it looked at is returned as the cursor, so a page that found nothing still
-- lets the client go on.
-- KEYS: 1 tenant index
-- ARGV: 1 after id ("" for the first page), 2 limit, 3 status ("" any), 4 task key prefix, 5 cap
-- Returns {"ok", has_more (0/1), cursor ("" none), id, hash, id, hash, ...} | {"badcursor"}.
local index_key = KEYS[1]
local after, limit, status, task_prefix, scan_cap = unpack(ARGV, 1, 5)

local start = 0
if after ~= '' then
  local r = redis.call('ZREVRANK', index_key, after)
  if not r then return {'badcursor'} end
  start = r + 1
end
local lim = tonumber(limit)
local cap = tonumber(scan_cap)
local out = {'ok', 0, ''}
local found = 0
local scanned = 0
while scanned < cap do
  local ids = redis.call('ZREVRANGE', index_key, start, start + 99)
  if #ids == 0 then return out end
  for _, id in ipairs(ids) do
    local k = task_prefix .. id
    local st = redis.call('HGET', k, 'status')
    if st and (status == '' or status == st) then
      if found == lim then out[2] = 1; return out end
      found = found + 1
      out[#out+1] = id
      out[#out+1] = redis.call('HGETALL', k)
    end
    scanned = scanned + 1
    start = start + 1
    out[3] = id
    if scanned >= cap then break end
  end
end
if redis.call('ZCARD', index_key) > start then out[2] = 1 end
return out
