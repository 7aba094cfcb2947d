-- Seeding helper: moves tickets 1..BENCH_MAX_ID along the workflow so that the data set
-- has a realistic mix of statuses. BENCH_PASS=1: id%10 in 0..2 -> in_progress,
-- 3..4 -> resolved. BENCH_PASS=2: id%10 == 0 -> waiting, == 3 -> closed. Result: open 50 %,
-- in_progress 20 %, waiting 10 %, resolved 10 %, closed 10 %.
-- Each thread takes the ids congruent to its number; when it has sent them all it sends
-- only GET /health until every PATCH has been answered; then the thread is done (see
-- common.finish_thread). Errors are counted in "failed".
dofile((os.getenv("WRK_LUA_DIR") or "bench/wrk") .. "/common.lua")

local pass, max_id, nthreads, tid
local next_id
local sent, answered, failed = 0, 0, 0
local exhausted, finished = false, false
local headers, health

local function target(id)
  local r = id % 10
  if pass == 1 then
    if r <= 2 then return '{"status":"in_progress"}' end
    if r <= 4 then return '{"status":"resolved","resolution_notes":"Fixed by the bench."}' end
  else
    if r == 0 then return '{"status":"waiting"}' end
    if r == 3 then return '{"status":"closed"}' end
  end
  return nil
end

function init(args)
  pass = tonumber(common.env("BENCH_PASS", "1"))
  max_id = tonumber(common.env("BENCH_MAX_ID", "100000"))
  nthreads = tonumber(common.env("BENCH_THREADS", "1"))
  tid = tonumber(tostring(wrk.thread:get("tid")))
  next_id = tid + 1
  headers = common.headers({ ["Content-Type"] = "application/json" })
  health = wrk.format("GET", "/health")
end

function request()
  if common.is_verification_call() then return health end
  while not exhausted do
    local id = next_id
    if id > max_id then
      exhausted = true
      break
    end
    next_id = next_id + nthreads
    local b = target(id)
    if b then
      sent = sent + 1
      return wrk.format("PATCH", "/api/v1/tickets/" .. id, headers, b)
    end
  end
  return health
end

function response(status, headers, body)
  -- A PATCH is answered with 200 and an ETag, or an error; /health with 200 and no ETag.
  if status == 200 and (headers["etag"] or headers["ETag"]) then
    answered = answered + 1
  elseif status ~= 200 then
    answered = answered + 1
    failed = failed + 1
    wrk.thread:set("failed", failed)
  end
  if exhausted and answered >= sent and not finished then
    finished = true
    common.finish_thread(failed)
  end
end
