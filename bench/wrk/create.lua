-- POST /api/v1/tickets with a varied mix of categories, priorities, submitters, tags and
-- assignees (a pool of 211 distinct bodies).
--
-- Seeding mode (BENCH_QUOTA=N): the threads together create exactly N tickets (each
-- thread its share), then send only GET /health until every creation has been answered;
-- then the thread is done (see common.finish_thread). With BENCH_DONE_DIR, the failure
-- count of each thread is written there.
dofile((os.getenv("WRK_LUA_DIR") or "bench/wrk") .. "/common.lua")

local categories = { "network", "account", "hardware", "software", "email", "other" }
local priorities = { "low", "medium", "medium", "high", "high", "critical" }
local agents = { "agent.alice", "agent.bob", "agent.carol" }
local words = { "wifi", "vpn", "printer", "password", "laptop", "mailbox", "license", "lab", "eduroam", "sso" }

local pool = {}
local quota, sent, answered, failed = nil, 0, 0, 0
local finished = false
local health

local function body(i)
  local n = 1 + (i * 7) % 5000
  local assigned = ""
  if i % 2 == 0 then
    assigned = string.format(',"assigned_to":"%s"', agents[1 + i % #agents])
  end
  return string.format(
    '{"title":"%s problem #%d","description":"Bench ticket %d: the %s in building %d does not work ' ..
    'since this morning; please have a look.","category":"%s","priority":"%s",' ..
    '"submitter_email":"user%d@campus.example","submitter_name":"User %d","tags":["%s","bench"]%s}',
    words[1 + i % #words], i, i, words[1 + (i * 3) % #words], i % 40,
    categories[1 + i % #categories], priorities[1 + (i * 5) % #priorities],
    n, n, words[1 + (i * 11) % #words], assigned)
end

function init(args)
  common.seed_random()
  local headers = common.headers({ ["Content-Type"] = "application/json" })
  for i = 1, 211 do
    pool[i] = wrk.format("POST", "/api/v1/tickets", headers, body(i))
  end
  health = wrk.format("GET", "/health")
  local total = tonumber(common.env("BENCH_QUOTA", ""))
  if total then
    local nthreads = tonumber(common.env("BENCH_THREADS", "1"))
    local tid = tonumber(tostring(wrk.thread:get("tid")))
    quota = math.floor(total / nthreads)
    if tid < total % nthreads then quota = quota + 1 end
  end
end

function request()
  if quota then
    if common.is_verification_call() or sent >= quota then return health end
    sent = sent + 1
  end
  return common.random_from(pool)
end

if common.env("BENCH_QUOTA", "") ~= "" then
  function response(status, headers, body)
    -- A creation is answered with 201 or an error; /health with 200.
    if status == 201 then
      answered = answered + 1
    elseif status ~= 200 then
      answered = answered + 1
      failed = failed + 1
      wrk.thread:set("failed", failed)
    end
    if answered >= quota then
      if not finished then
        finished = true
        common.finish_thread(failed)
      end
    end
  end
end
