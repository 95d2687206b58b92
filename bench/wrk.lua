-- The request mix for scripts/bench.sh, the same for strangler and for nginx:
-- every other request is GET /api/orders/<user> with that user in X-User-Id
-- (the route split 30% sticky on X-User-Id), the rest GET /legacy/page/<user>
-- (no route: the default backend). Users are drawn uniformly from 1..100000.
--
--   wrk -t2 -c16 -d8s --latency -s bench/wrk.lua http://127.0.0.1:PORT
--
-- done() prints one machine-readable line that scripts/bench.sh parses:
--   BENCH requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N max_us=N
--         connect=N read=N write=N status=N timeout=N non2xx=N new=N
-- `status` is wrk's own count of answers with status > 399; `non2xx` is every
-- answer outside 200..299, counted here in response(); `new` is how many
-- answers carried `X-Backend: new` (the backends add it), to check the split.

local users = 100000
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

-- Per thread (each wrk thread has its own Lua state).
local n = 0
non2xx = 0
new = 0

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
  -- LuaJIT's first draws after seeding are poorly mixed; discard a few.
  for _ = 1, 10 do math.random() end
end

-- BENCH_CONNECTION_CLOSE=1 (scripts/bench.sh --tls's handshake run): every
-- request asks for Connection: close, so each one opens a new connection.
local close = os.getenv("BENCH_CONNECTION_CLOSE") ~= nil

function request()
  n = n + 1
  local user = tostring(math.random(users))
  if n % 2 == 0 then
    local h = { ["X-User-Id"] = user }
    if close then h["Connection"] = "close" end
    return wrk.format("GET", "/api/orders/" .. user, h)
  end
  if close then return wrk.format("GET", "/legacy/page/" .. user, { ["Connection"] = "close" }) end
  return wrk.format("GET", "/legacy/page/" .. user)
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  -- (HAProxy 2 sends header names in lower case; wrk's table is case-sensitive.)
  if (headers["X-Backend"] or headers["x-backend"]) == "new" then new = new + 1 end
end

function done(summary, latency, requests)
  local bad, on_new = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    on_new = on_new + (t:get("new") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d non2xx=%d new=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, bad, on_new))
end
