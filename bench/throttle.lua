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
local _ = common
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
local quick, out_file, jobs = false, nil, 8
do
  local i = 1
  while arg[i] do
    if arg[i] == "--quick" then quick = true
    elseif arg[i] == "--out" and arg[i + 1] then out_file = arg[i + 1]; i = i + 1
    elseif arg[i] == "--jobs" and arg[i + 1] then jobs = tonumber(arg[i + 1]); i = i + 1
    else io.stderr:write("usage: lua5.4 bench/throttle.lua [--quick] [--out FILE] [--jobs J]\n") os.exit(2) end
    i = i + 1
  end
end

local function interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return arg[i] or "lua5.4"
end

local N = quick and 200 or 1000
local cells = {}
local MODELS = { "fixed", "fixed+ra", "sliding", "bucket" }
for _, model in ipairs(MODELS) do
  for _, what in ipairs { "backup", "restore" } do
    for _, rps in ipairs { 10, 40, 100 } do
      for _, conc in ipairs { 4, 16, 64 } do
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

local out = {}
local function emit(s) print(s) out[#out + 1] = s end
emit(("## Throttled gateway: %d secrets, 20 ms latency, default options (%d cells, %d at a time, %.0f s)")
  :format(N, #cells, jobs, core.time.monotonic() - t_start))
emit("")
emit("Models: `fixed` window (no Retry-After), `fixed+ra` (a computed Retry-After: the seconds to "
  .. "the next window), `sliding` window, token `bucket` (burst: a quarter second's worth).")
emit("")
emit("| model | op | limit (req/s) | concurrency | ideal N/R (s) | wall (s) | wall / ideal | 429 share "
  .. "| failed | settled rate (req/s) |")
emit("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
local order = {}
for i, m in ipairs(MODELS) do order[m] = i end
table.sort(results, function(a, b)
  if a.model ~= b.model then return order[a.model] < order[b.model] end
  if a.what ~= b.what then return a.what < b.what end
  if a.rps ~= b.rps then return a.rps < b.rps end
  return a.conc < b.conc
end)
local worst = { ratio = 0, share = 0, failed = 0 }
for _, c in ipairs(results) do
  local ok_, failed, wall, total, thr, rate = c.line:match(
    "ok=(%d+) failed=(%d+) wall=([%d.]+) total=(%d+) throttled=(%d+) rate=(%S+)")
  if ok_ then
    local ideal = N / c.rps
    local ratio, share = tonumber(wall) / ideal, 100 * tonumber(thr) / math.max(1, tonumber(total))
    worst.ratio, worst.share = math.max(worst.ratio, ratio), math.max(worst.share, share)
    worst.failed = worst.failed + tonumber(failed)
    emit(("| %s | %s | %d | %d | %.1f | %.1f | %.2fx | %.1f%% | %s | %s |"):format(c.model, c.what, c.rps,
      c.conc, ideal, tonumber(wall), ratio, share, failed, rate))
  else
    worst.failed = worst.failed + N
    emit(("| %s | %s | %d | %d | %s |"):format(c.model, c.what, c.rps, c.conc, c.line))
  end
end
emit("")
emit(("Worst cell: %.2fx the ideal (target 1.15x), %.1f%% of requests answered 429 (target 5%%); "
  .. "items failed in all cells: %d (target 0).") :format(worst.ratio, worst.share, worst.failed))
emit("")
emit(("Command: `%s bench/throttle.lua%s`"):format(interpreter(), quick and " --quick" or ""))
if out_file then
  local f = assert(io.open(out_file, "w"))
  f:write(table.concat(out, "\n"), "\n")
  f:close()
end
