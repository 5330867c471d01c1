-- bench/submit_n.lua — wrk script: submit exactly N tasks as fast as possible, then idle.
--
--   wrk -tT -cC -dLIMIT -s bench/submit_n.lua URL -- N T BODY KEY_VAR
--
-- KEY_VAR names an environment variable that holds the bearer key (kept off wrk's command line).
-- Thread i posts its share of N (N/T, the first N%T threads one more). Once a thread has sent its
-- share, its connections send GET /healthz instead (wrk has no "send nothing"), and when all of its
-- posts are answered it stops its loop. wrk itself still sleeps for the whole -d duration:
-- bench/run watches /metrics and interrupts wrk (SIGINT) once all N are accepted.
-- done() prints: BENCH_SUBMIT posted=P ok=O bad=B statuses=S:N,...
-- and "BENCH_SAMPLE <status> <body>" for the first bad answer, if any.

local threads = {}
local next_id = 0

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
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local n, t = tonumber(args[1]), tonumber(args[2])
   quota = math.floor(n / t)
   if tid < n % t then
      quota = quota + 1
   end
   local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. (os.getenv(args[4]) or ""),
   }
   post = wrk.format("POST", "/v1/tasks", headers, args[3])
   filler = wrk.format("GET", "/healthz", {}, nil)
   sent, ok, bad, filler_n, sample, statuses = 0, 0, 0, 0, "", ""
   by_status = {}
   -- wrk calls request() once on thread 0's state before the run, to check the script, and
   -- throws that request away: start thread 0's count one lower so N are really sent.
   if tid == 0 then
      sent = -1
   end
end

function request()
   if sent < quota then
      sent = sent + 1
      return post
   end
   return filler
end

function response(status, headers, body)
   if status == 200 then
      filler_n = filler_n + 1
      return
   end
   if status == 202 then
      ok = ok + 1
   else
      bad = bad + 1
      by_status[status] = (by_status[status] or 0) + 1
      if sample == "" then
         sample = status .. " " .. string.sub(body or "", 1, 300)
      end
      local parts = {}
      for s, c in pairs(by_status) do
         table.insert(parts, s .. ":" .. c)
      end
      statuses = table.concat(parts, ",")
   end
   if ok + bad >= quota then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local posted, t_ok, t_bad, all, sample_out = 0, 0, 0, {}, ""
   for _, t in ipairs(threads) do
      posted = posted + (t:get("sent") or 0)
      t_ok = t_ok + (t:get("ok") or 0)
      t_bad = t_bad + (t:get("bad") or 0)
      merge_statuses(all, t:get("statuses"))
      local smp = t:get("sample")
      if sample_out == "" and smp and smp ~= "" then
         sample_out = smp
      end
   end
   io.write(string.format("BENCH_SUBMIT posted=%d ok=%d bad=%d statuses=%s\n", posted, t_ok,
      t_bad, format_statuses(all)))
   if sample_out ~= "" then
      io.write("BENCH_SAMPLE " .. string.gsub(sample_out, "\n", " ") .. "\n")
   end
end
