-- GET /api/v1/tickets/<id> with id uniform in 1..BENCH_MAX_ID (all existing tickets).
dofile((os.getenv("WRK_LUA_DIR") or "bench/wrk") .. "/common.lua")

local pool = {}
function init(args)
  common.seed_random()
  local max_id = tonumber(common.env("BENCH_MAX_ID", "100000"))
  local headers = common.headers()
  for id = 1, max_id do
    pool[id] = wrk.format("GET", "/api/v1/tickets/" .. id, headers)
  end
end

function request()
  return common.random_from(pool)
end
