-- csms.batch against a rate-limiting gateway (the bundled emulator's throttle): not a test.
--
--   lua5.4 bench/throttle.lua [--quick] [--out FILE] [--jobs J]
--
-- Cells: the emulator's throttle models (fixed window, fixed window with a computed Retry-After,
-- sliding window, token bucket with a burst of a quarter second) at 10, 40 and 100 requests/s
-- x concurrency 4, 16 and 64 x backup and restore: 72 cells of 1,000 secrets (--quick: 200), 20 ms
-- latency, default client options. Per cell: wall time against the ideal N/R, the share of
-- requests answered 429, items failed, the rate the client settled at. Cells run J at a time
-- (default 8), each in its own process with its own emulator: a cell mostly waits on the
-- gateway's limit, so they overlap well on 2 CPUs (bench/README.md).
local common = dofile("bench/common.lua")
local csms = require "csms"
local batch = require "csms.batch"
local core = require "csms.core"

local function new_client(env)
  return assert(csms.new { endpoint = env.endpoint, ak = env.ak, sk = env.sk,
    project_id = env.project_id, timeout = 60 })
end

-- ---------------------------------------------------------------- child: one cell
if arg[1] == "--cell" then
  local emulator = require "spec.support.emulator"
  local ejson = require "csms.json"
  local n, rps, conc, what, model = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6]
  local e = emulator.start {}
  local ok, err = pcall(function()
    local value = ("v"):rep(64)
    local list = {}
    for j = 1, n do list[j] = { name = ("bench-%05d"):format(j), versions = ejson.array { value .. j } } end
    assert(e:admin("POST", "/__emulator/seed", { secrets = ejson.array(list) }) == 200)
    local dir = emulator.tmpdir()
    local c = new_client(e)
    if what == "restore" then
      assert(batch.backup(c, { dir = dir, concurrency = 16 }).failed == 0)
      c:close()
      e:reset()
      c = new_client(e)
    end
    local rule = { model = model:match("^%a+"), rate = rps, retry_after = model:find("+ra", 1, true) ~= nil,
      burst = model == "bucket" and math.max(1, math.ceil(rps / 4)) or nil }
    e:config { latency_ms = 20, throttle = rule }
    if os.getenv("THROTTLE_TRACE") then -- the limiter's changes, on stderr
      local t0 = core.time.monotonic()
      common.trace_limiter(c.limiter, function() return core.time.monotonic() - t0 end)
    end
    local before = e:stats()
    local t0 = core.time.monotonic()
    local report = assert(batch[what](c, { dir = dir, concurrency = conc }))
    local wall = core.time.monotonic() - t0
    local st = e:stats()
    local total, throttled = st.total - before.total, st.throttled - before.throttled
    local status = c.limiter:status()
    io.stdout:write(("cell %s %s %d %d ok=%d failed=%d wall=%.3f total=%d throttled=%d rate=%s\n")
      :format(model, what, rps, conc, report.ok, report.failed, wall, total, throttled,
        status.rate and ("%.1f"):format(status.rate) or "off"))
    os.execute("rm -rf " .. emulator.shell_quote(dir))
  end)
  e:stop()
  if not ok then io.stderr:write(tostring(err), "\n") os.exit(1) end
  os.exit(0)
end

-- ---------------------------------------------------------------- parent
local USAGE = "usage: lua5.4 bench/throttle.lua [--quick] [--n N] [--out FILE] [--jobs J]\n"
  .. "  [--models fixed,fixed+ra,sliding,bucket] [--limits 10,40,100] [--concurrency 4,16,64]\n"
  .. "  [--ops backup,restore]\n"
local quick, out_file, jobs, n_opt = false, nil, 8, nil
local MODELS, LIMITS, CONCURRENCY, OPS = { "fixed", "fixed+ra", "sliding", "bucket" }, { 10, 40, 100 },
  { 4, 16, 64 }, { "backup", "restore" }
local function list(s, numbers)
  local t = {}
  for v in s:gmatch("[^,]+") do t[#t + 1] = numbers and assert(tonumber(v), USAGE) or v end
  return t
end
do
  local i = 1
  while arg[i] do
    local a, v = arg[i], arg[i + 1]
    if a == "--quick" then quick = true; i = i - 1
    elseif a == "--out" and v then out_file = v
    elseif a == "--jobs" and v then jobs = tonumber(v)
    elseif a == "--n" and v then n_opt = tonumber(v)
    elseif a == "--models" and v then MODELS = list(v)
    elseif a == "--limits" and v then LIMITS = list(v, true)
    elseif a == "--concurrency" and v then CONCURRENCY = list(v, true)
    elseif a == "--ops" and v then OPS = list(v)
    else io.stderr:write(USAGE) os.exit(2) end
    i = i + 2
  end
end

local function interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return arg[i] or "lua5.4"
end

local N = n_opt or (quick and 200 or 1000)
local cells = {}
for _, model in ipairs(MODELS) do
  for _, what in ipairs(OPS) do
    for _, rps in ipairs(LIMITS) do
      for _, conc in ipairs(CONCURRENCY) do
        cells[#cells + 1] = { model = model, what = what, rps = rps, conc = conc }
      end
    end
  end
end
-- The slowest cells (lowest rate) first, so the pool stays busy.
table.sort(cells, function(a, b) if a.rps ~= b.rps then return a.rps < b.rps end return a.conc < b.conc end)

local running, results, next_cell = {}, {}, 1
local t_start = core.time.monotonic()
while next_cell <= #cells or #running > 0 do
  while #running < jobs and next_cell <= #cells do
    local c = cells[next_cell]
    next_cell = next_cell + 1
    local out = os.tmpname()
    os.execute(("%s bench/throttle.lua --cell %d %d %d %s %s >%s 2>&1 & echo $! >%s.pid"):format(
      interpreter(), N, c.rps, c.conc, c.what, c.model, out, out))
    running[#running + 1] = { cell = c, out = out }
  end
  core.time.sleep(0.5)
  for i = #running, 1, -1 do
    local r = running[i]
    local f = io.open(r.out)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    local pf = io.open(r.out .. ".pid")
    local pid = pf and pf:read("*l")
    if pf then pf:close() end
    local alive = pid and os.execute("kill -0 " .. pid .. " 2>/dev/null")
    if not (alive == true or alive == 0) then
      r.cell.line = text:match("cell [^\n]+") or ("error: " .. text:sub(1, 300))
      results[#results + 1] = r.cell
      os.remove(r.out); os.remove(r.out .. ".pid")
      table.remove(running, i)
    end
  end
end

local TARGET_RATIO, TARGET_SHARE = 1.15, 5 -- issue 12: within 1.15x of N/R, at most 5% 429s, 0 failed
local out = {}
local function emit(s) print(s) out[#out + 1] = s end
emit(("## Throttled gateway: %d secrets, 20 ms latency, default options (%d cells, %d at a time, %.0f s)")
  :format(N, #cells, jobs, core.time.monotonic() - t_start))
emit("")
emit("Models: `fixed` window (no Retry-After), `fixed+ra` (a computed Retry-After: the seconds to "
  .. "the next window), `sliding` window, token `bucket` (burst: a quarter second's worth).")
emit(("Targets per cell: wall time within %.2fx of N/R, at most %d%% of requests answered 429, 0 items "
  .. "failed%s."):format(TARGET_RATIO, TARGET_SHARE, N < 1000 and " (set for 1,000 secrets: with fewer, "
  .. "the first second's probing weighs more)" or ""))
emit("")
emit("| model | op | limit (req/s) | concurrency | ideal N/R (s) | wall (s) | wall / ideal | 429 share "
  .. "| failed | settled rate (req/s) | targets |")
emit("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
local order = {}
for i, m in ipairs(MODELS) do order[m] = i end
table.sort(results, function(a, b)
  if a.model ~= b.model then return order[a.model] < order[b.model] end
  if a.what ~= b.what then return a.what < b.what end
  if a.rps ~= b.rps then return a.rps < b.rps end
  return a.conc < b.conc
end)
local worst, per_model, met = { ratio = 0, share = 0, failed = 0 }, {}, 0
for _, c in ipairs(results) do
  local w = per_model[c.model] or { ratio = 0, share = 0, failed = 0, met = 0, cells = 0 }
  per_model[c.model] = w
  w.cells = w.cells + 1
  local ok_, failed, wall, total, thr, rate = c.line:match(
    "ok=(%d+) failed=(%d+) wall=([%d.]+) total=(%d+) throttled=(%d+) rate=(%S+)")
  if ok_ then
    local ideal = N / c.rps
    local ratio, share = tonumber(wall) / ideal, 100 * tonumber(thr) / math.max(1, tonumber(total))
    failed = tonumber(failed)
    for _, x in ipairs { worst, w } do
      x.ratio, x.share, x.failed = math.max(x.ratio, ratio), math.max(x.share, share), x.failed + failed
    end
    local miss = {}
    if ratio > TARGET_RATIO then miss[#miss + 1] = "wall" end
    if share > TARGET_SHARE then miss[#miss + 1] = "429s" end
    if failed > 0 then miss[#miss + 1] = "failed" end
    if #miss == 0 then met, w.met = met + 1, w.met + 1 end
    emit(("| %s | %s | %d | %d | %.1f | %.1f | %.2fx | %.1f%% | %d | %s | %s |"):format(c.model, c.what,
      c.rps, c.conc, ideal, tonumber(wall), ratio, share, failed, rate,
      #miss == 0 and "met" or "MISSED: " .. table.concat(miss, ", ")))
  else
    worst.failed, w.failed = worst.failed + N, w.failed + N
    emit(("| %s | %s | %d | %d | %s |"):format(c.model, c.what, c.rps, c.conc, c.line))
  end
end
emit("")
emit("| model | cells meeting every target | worst wall / ideal | worst 429 share | items failed |")
emit("|---|---:|---:|---:|---:|")
for _, m in ipairs(MODELS) do
  local w = per_model[m]
  if w then
    emit(("| %s | %d of %d | %.2fx | %.1f%% | %d |"):format(m, w.met, w.cells, w.ratio, w.share, w.failed))
  end
end
emit("")
emit(("Worst cell: %.2fx the ideal (target %.2fx), %.1f%% of requests answered 429 (target %d%%); "
  .. "items failed in all cells: %d (target 0). Cells meeting every target: %d of %d.")
  :format(worst.ratio, TARGET_RATIO, worst.share, TARGET_SHARE, worst.failed, met, #results))
emit("")
emit(("Command: `%s bench/throttle.lua%s`"):format(interpreter(), #arg > 0 and " " .. table.concat(arg, " ") or ""))
if out_file then
  local f = assert(io.open(out_file, "w"))
  f:write(table.concat(out, "\n"), "\n")
  f:close()
end
