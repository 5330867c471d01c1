-- bench/post.lua — wrk script: POST one fixed JSON body for the whole run, count the answers.
--
--   wrk -t2 -c64 -d10s -s bench/post.lua URL -- PATH BODY EXPECT [KEY_VAR]
--
-- KEY_VAR names an environment variable that holds the bearer key (kept off wrk's command line).
--
-- The request is static (no request() function), so wrk formats it once per thread. response()
-- counts the answers with status EXPECT as ok and every other one as bad, by status, and keeps one
-- bad body per thread. done() prints one machine-readable line for bench/run:
--   BENCH requests=R ok=O bad=B seconds=S ok_per_s=X p50_ms=A p99_ms=B statuses=S:N,...
-- followed by "BENCH_SAMPLE <status> <body>" for the first bad answer, if any.

local threads = {}

-- Adds a per-thread "status:count,..." tally into the table acc.
local function merge_statuses(acc, s)
   for code, n in string.gmatch(s or "", "(%d+):(%d+)") do
      acc[code] = (acc[code] or 0) + tonumber(n)
   end
end

local function format_statuses(acc)
   local parts = {}
   for code, n in pairs(acc) do
      table.insert(parts, code .. ":" .. n)
   end
   table.sort(parts)
   return (#parts > 0) and table.concat(parts, ",") or "-"
end

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   wrk.method = "POST"
   wrk.path = args[1]
   wrk.body = args[2]
   expect = tonumber(args[3])
   wrk.headers["Content-Type"] = "application/json"
   if args[4] and args[4] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. (os.getenv(args[4]) or "")
   end
   ok, bad, sample = 0, 0, ""
   by_status = {}
end

function response(status, headers, body)
   if status == expect then
      ok = ok + 1
      return
   end
   bad = bad + 1
   by_status[status] = (by_status[status] or 0) + 1
   if sample == "" then
      sample = status .. " " .. string.sub(body or "", 1, 300)
   end
   -- thread:get() only sees globals of plain types, so keep the tally as a string.
   local parts = {}
   for s, n in pairs(by_status) do
      table.insert(parts, s .. ":" .. n)
   end
   statuses = table.concat(parts, ",")
end

function done(summary, latency, requests)
   local t_ok, t_bad, all, sample_out = 0, 0, {}, ""
   for _, t in ipairs(threads) do
      t_ok = t_ok + (t:get("ok") or 0)
      t_bad = t_bad + (t:get("bad") or 0)
      merge_statuses(all, t:get("statuses"))
      local smp = t:get("sample")
      if sample_out == "" and smp and smp ~= "" then
         sample_out = smp
      end
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d ok=%d bad=%d seconds=%.3f ok_per_s=%.1f p50_ms=%.2f p99_ms=%.2f " ..
      "socket_errors=%d statuses=%s\n",
      summary.requests, t_ok, t_bad, secs, t_ok / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      e.connect + e.read + e.write + e.timeout,
      format_statuses(all)))
   if sample_out ~= "" then
      io.write("BENCH_SAMPLE " .. string.gsub(sample_out, "\n", " ") .. "\n")
   end
end
