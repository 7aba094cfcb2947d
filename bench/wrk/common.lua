-- Shared by the bench/http.sh wrk scripts: each script does
--   dofile((os.getenv("WRK_LUA_DIR") or "bench/wrk") .. "/common.lua")
-- and then defines its own init()/request() (and response() when it must count).
--
-- Environment (set by bench/http.sh):
--   BENCH_TOKEN   bearer token sent as Authorization (omitted when unset)
--   BENCH_NAME       label of the RESULT line printed by done()
--   BENCH_THREADS    the -t given to wrk (used to split quotas between threads)

common = {}

function common.env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

function common.headers(extra)
  local h = {}
  local token = common.env("BENCH_TOKEN", nil)
  if token then h["Authorization"] = "Bearer " .. token end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- Every script serves its requests from a pool of preformatted requests, so that wrk's
-- per-request Lua cost is the same for /health as for the API calls.
function common.random_from(pool)
  return pool[math.random(#pool)]
end

-- Runs in the main Lua state, once per thread, before the threads start.
threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- Seeds the per-thread generator (each thread has its own Lua state).
function common.seed_random()
  local tid = tonumber(tostring(wrk.thread:get("tid") or 0)) or 0
  math.randomseed(os.time() * 1000 + tid * 7919 + math.floor((os.clock() * 1e6) % 1e6))
  for _ = 1, 10 do math.random() end
end

-- wrk (4.1) calls request() once in the first thread before it starts, only to check the
-- request, and does not send that one. Quota scripts answer that call with this and do
-- not count it (if a wrk does not make that call, one extra /health is sent).
function common.is_verification_call()
  if common.verified then return false end
  common.verified = true
  return tonumber(tostring(wrk.thread:get("tid"))) == 0
end

-- Quota scripts (seeding): wrk's -d always runs to its end even when every thread has
-- stopped, so a thread that has finished its share writes BENCH_DONE_DIR/<tid> (its
-- failure count) and the thread that completes the set ends the process at once.
function common.finish_thread(failed)
  local dir = common.env("BENCH_DONE_DIR", nil)
  if not dir then
    wrk.thread:stop()
    return
  end
  local tid = tostring(wrk.thread:get("tid"))
  local f = assert(io.open(dir .. "/" .. tid .. ".tmp", "w"))
  f:write(tostring(failed), "\n")
  f:close()
  os.rename(dir .. "/" .. tid .. ".tmp", dir .. "/" .. tid)
  local n = tonumber(common.env("BENCH_THREADS", "1"))
  for t = 0, n - 1 do
    local g = io.open(dir .. "/" .. t, "r")
    if not g then
      wrk.thread:stop()
      return
    end
    g:close()
  end
  os.exit(0)
end

-- One machine-readable line per run (latencies in microseconds), parsed by bench/http.sh:
-- RESULT name requests seconds req_per_s p50 p90 p99 max non2xx socket_errors failed
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local failed = 0
  for _, t in ipairs(threads) do
    failed = failed + (tonumber(tostring(t:get("failed") or 0)) or 0)
  end
  io.write(string.format("RESULT %s %d %.3f %.1f %d %d %d %d %d %d %d\n",
    common.env("BENCH_NAME", "run"), summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout, failed))
end
