-- GET one fixed path (the URL's path), e.g. /health or a filtered list, through the same
-- pooled request() as the other scripts. BENCH_PATH overrides the URL's path.
dofile((os.getenv("WRK_LUA_DIR") or "bench/wrk") .. "/common.lua")

local pool
function init(args)
  common.seed_random()
  pool = { wrk.format("GET", common.env("BENCH_PATH", wrk.path), common.headers()) }
end

function request()
  return common.random_from(pool)
end
