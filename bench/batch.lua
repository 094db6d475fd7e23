-- Benchmarks of csms.batch against the bundled emulator (not tests: nothing here passes or fails).
--
--   lua5.4 bench/batch.lua [--quick] [--out FILE]     (from the repository root; luajit works too)
--
-- Scaling: a whole-project backup of 1,000 secrets with 20 ms of emulator latency at
-- concurrency 1, 4, 16 and 64: wall time, secrets/s, and the ratio to the ideal
-- N x 20 ms / concurrency (target at 16 in flight: within 1.25x of the ideal 1.25 s, issue 12).
-- Memory: peak RSS of a whole-project backup of 500 vs 5,000 secrets, each in a fresh child
-- process (target: the ratio within 2x). --quick: 100 secrets at 1 and 16; 200 vs 1,000.
local JIT = rawget(_G, "jit")
local common = dofile("bench/common.lua")

local csms = require "csms"
local batch = require "csms.batch"
local core = require "csms.core"

local function interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end -- the interpreter is the lowest index
  return arg[i] or (JIT and "luajit" or "lua5.4")
end

local function new_client(endpoint, ak, sk, project_id)
  return assert(csms.new { endpoint = endpoint, ak = ak, sk = sk, project_id = project_id,
                           timeout = 60, retries = 3 })
end

-- ---------------------------------------------------------------- child: one backup, its peak RSS

local function vm_hwm_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

if arg[1] == "--child-backup" then
  local c = new_client(os.getenv("BENCH_ENDPOINT"), os.getenv("BENCH_AK"), os.getenv("BENCH_SK"),
    os.getenv("BENCH_PROJECT_ID"))
  local t0 = core.time.monotonic()
  local report = assert(batch.backup(c, { dir = arg[2], concurrency = 16 }))
  local wall = core.time.monotonic() - t0
  c:close()
  collectgarbage()
  io.stdout:write(("ok=%d failed=%d wall=%.3f hwm_kb=%s\n"):format(report.ok, report.failed, wall,
    tostring(vm_hwm_kb())))
  os.exit(report.failed == 0 and 0 or 1)
end

-- ---------------------------------------------------------------- parent

local quick, out_file = false, nil
do
  local i = 1
  while arg[i] do
    if arg[i] == "--quick" then
      quick = true
    elseif arg[i] == "--out" and arg[i + 1] then
      out_file = arg[i + 1]
      i = i + 1
    else
      io.stderr:write("usage: lua5.4 bench/batch.lua [--quick] [--out FILE]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

local emulator = require "spec.support.emulator"
local ejson = require "csms.json"
local shell_quote, read_cmd = emulator.shell_quote, common.read_cmd

local function machine()
  local nproc = read_cmd("nproc 2>/dev/null"):gsub("%s+$", "")
  local model = "unknown CPU"
  local f = io.open("/proc/cpuinfo", "r")
  if f then
    local s = f:read("*a")
    f:close()
    model = s:match("model name%s*:%s*([^\n]+)") or s:match("Hardware%s*:%s*([^\n]+)") or model
  end
  local mem = ""
  f = io.open("/proc/meminfo", "r")
  if f then
    local kb = tonumber(f:read("*a"):match("MemTotal:%s*(%d+)"))
    f:close()
    if kb then mem = (", %.1f GiB RAM"):format(kb / 1048576) end
  end
  return ("%s CPU(s), %s%s; %s; %s"):format(nproc, model, mem, JIT and JIT.version or _VERSION,
    os.date("!%Y-%m-%d %H:%M UTC"))
end

local function tmpdir(base)
  return (read_cmd("mktemp -d" .. (base and " -p " .. shell_quote(base) or "")):gsub("%s+$", ""))
end

-- Seeds n secrets through /__emulator/seed, 1,000 per request.
local function seed(e, n)
  e:reset()
  local value = ("v"):rep(64)
  local i = 1
  while i <= n do
    local list = {}
    for j = i, math.min(n, i + 999) do
      list[#list + 1] = { name = ("bench-%05d"):format(j), versions = ejson.array { value .. j } }
    end
    local status, doc = e:admin("POST", "/__emulator/seed", { secrets = ejson.array(list) })
    assert(status == 200, "seed failed: " .. tostring(status) .. " " .. tostring(doc))
    i = i + #list
  end
  assert(e:health().secrets == n, "the emulator does not hold " .. n .. " secrets")
end

local out = {}
local function emit(line)
  print(line)
  out[#out + 1] = line
end

local e = emulator.start {}
local ok, err = pcall(function()
  emit("# csms.batch benchmarks" .. (quick and " (--quick)" or ""))
  emit("")
  emit("Machine: " .. machine())
  emit("")

  -- Scaling ------------------------------------------------------------------------------
  local N, LAT = quick and 100 or 1000, 20
  local levels = quick and { 1, 16 } or { 1, 4, 16, 64 }
  local t0 = core.time.monotonic()
  seed(e, N)
  local seed_s = core.time.monotonic() - t0
  e:config { latency_ms = LAT }
  emit(("## Scaling: whole-project backup of %d secrets, emulator latency %d ms (seeded in %.2f s)")
    :format(N, LAT, seed_s))
  emit("")
  -- The set on the ordinary temporary directory (a real disk: blobs are made durable in groups)
  -- and, when there is one, on tmpfs, which shows what the disk writes cost.
  local bases = { { label = "disk", dir = os.getenv("TMPDIR") or "/tmp" } }
  if os.execute("test -d /dev/shm -a -w /dev/shm") == true or os.execute("test -w /dev/shm") == 0 then
    bases[2] = { label = "tmpfs", dir = "/dev/shm" }
  end
  local head, rule = { "| concurrency | ideal (s)" }, { "|---:|---:" }
  for _, b in ipairs(bases) do
    head[#head + 1] = (" | wall, %s (s) | secrets/s | wall / ideal"):format(b.label)
    rule[#rule + 1] = "|---:|---:|---:"
  end
  emit(table.concat(head) .. " |")
  emit(table.concat(rule) .. "|")
  for _, c in ipairs(levels) do
    local ideal = N * LAT / 1000 / c
    local row = { ("| %d | %.3f"):format(c, ideal) }
    for _, b in ipairs(bases) do
      local dir = tmpdir(b.dir)
      local client = new_client(e.endpoint, e.ak, e.sk, e.project_id)
      local s = core.time.monotonic()
      local report = assert(batch.backup(client, { dir = dir, concurrency = c }))
      local wall = core.time.monotonic() - s
      client:close()
      os.execute("rm -rf " .. shell_quote(dir))
      assert(report.ok == N and report.failed == 0, ("backup at %d: %d ok, %d failed"):format(c, report.ok,
        report.failed))
      row[#row + 1] = (" | %.2f | %.0f | %.2fx"):format(wall, N / wall, wall / ideal)
    end
    emit(table.concat(row) .. " |")
  end
  emit("")
  emit(("The wall time includes listing the project (%d page(s) of 200, %d ms each; the backups "
    .. "start with the first page's secrets while the next pages are listed). Blobs are made "
    .. "durable in groups (temporary files, one syncfs per 64 files or 0.1 s, then renames), so "
    .. "the disk costs one sync per group, not two per secret.")
    :format(math.ceil(N / 200), LAT))
  emit("")

  -- Memory -------------------------------------------------------------------------------
  local sizes = quick and { 200, 1000 } or { 500, 5000 }
  e:config { latency_ms = 0 }
  local have_time = os.execute("test -x /usr/bin/time") -- true (5.4) or 0 (LuaJIT)
  have_time = have_time == true or have_time == 0
  local rss, walls = {}, {}
  for i, n in ipairs(sizes) do
    seed(e, n)
    local dir = tmpdir()
    local errf = os.tmpname()
    local cmd = ("cd %s && env BENCH_ENDPOINT=%s BENCH_AK=%s BENCH_SK=%s BENCH_PROJECT_ID=%s %s%s "
      .. "bench/batch.lua --child-backup %s 2>%s"):format(shell_quote(emulator.root),
      shell_quote(e.endpoint), shell_quote(e.ak), shell_quote(e.sk), shell_quote(e.project_id),
      have_time and "/usr/bin/time -f 'maxrss_kb=%M' " or "", shell_quote(interpreter()),
      shell_quote(dir), shell_quote(errf))
    local child = read_cmd(cmd)
    local f = io.open(errf, "r")
    local stderr = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(errf)
    os.execute("rm -rf " .. shell_quote(dir))
    assert(child:find("ok=" .. n .. " failed=0", 1, true), "child backup failed: " .. child .. stderr)
    rss[i] = tonumber(stderr:match("maxrss_kb=(%d+)")) or tonumber(child:match("hwm_kb=(%d+)"))
    walls[i] = tonumber(child:match("wall=([%d.]+)"))
  end
  emit(("## Memory: peak RSS of a whole-project backup in a fresh process (concurrency 16, no latency, "
    .. "set on disk; %s)"):format(have_time and "/usr/bin/time -f %M" or "VmHWM"))
  emit("")
  emit(("| | %d secrets | %d secrets | ratio |"):format(sizes[1], sizes[2]))
  emit("|---|---:|---:|---:|")
  emit(("| peak RSS (MiB) | %.1f | %.1f | %.2fx |"):format(rss[1] / 1024, rss[2] / 1024, rss[2] / rss[1]))
  emit(("| wall (s) | %.2f | %.2f | %.2fx |"):format(walls[1], walls[2], walls[2] / walls[1]))
  emit("")
  emit(("Command: `%s bench/batch.lua%s`"):format(interpreter(), quick and " --quick" or ""))
end)
e:stop()
if not ok then
  io.stderr:write("bench/batch.lua: ", tostring(err), "\n")
  os.exit(1)
end
if out_file then
  local f = assert(io.open(out_file, "w"))
  f:write(table.concat(out, "\n"), "\n")
  f:close()
end
