-- Crash safety as a property (issue 13): backups killed with SIGKILL at random moments, and
-- after every trial every set must verify (no item corrupt, a complete set still whole) and
-- restore (the emulator's secrets, deleted, come back identical from the set).
--
-- Four kinds of trial, in turn: a fresh run into a new directory; a resume of that killed set;
-- a full re-run (no --resume) over a complete set, the case that once broke sets (issue 13,
-- item 1); the same re-run with verify and restore --dry-run running against the directory
-- meanwhile (each must be refused "busy" or find every item intact). Each backup is a
-- separate process (concurrency 4) against the emulator with 10-20 ms latency per request,
-- killed once its journal has a random number of lines (a random point of its progress), plus
-- up to 40 ms; one trial in ten lets it end.
--
-- As a module (spec/crash_spec.lua): require("spec.support.crash_trials").run(e, opts).
-- As a script, from the repository root, with its own emulator:
--   lua5.4 spec/support/crash_trials.lua [TRIALS=200] [SEED]
--   luajit spec/support/crash_trials.lua 500
-- It prints one line per trial and then `trials N, sets checked N, failures N`; exit 1 on any.
local M = {}

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- opts: trials (default 32), secrets (80), seed, log (function(line))
function M.run(e, opts)
  opts = opts or {}
  local csms = require "csms"
  local batch = require "csms.batch"
  local core = require "csms.core"
  local trials, nsecrets = opts.trials or 32, opts.secrets or 80
  local log = opts.log or function() end
  math.randomseed(opts.seed or os.time())

  local function client()
    return assert(csms.new { ak = e.ak, sk = e.sk, project_id = e.project_id, endpoint = e.endpoint,
      retries = 8, backoff_base = 0.005, backoff_max = 0.05, timeout = 10 })
  end

  local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    return d .. "-crash"
  end

  e:reset()
  for i = 1, nsecrets do
    e:create_secret(("s-%03d"):format(i), { "first " .. i, ("second %d %s"):format(i, ("v"):rep(i)) })
  end
  local original = {}
  for _, s in ipairs(e:dump()) do original[s.name] = s end
  local c = client()
  local dirs = {}

  -- A backup of dir in a process of its own; returns its pid.
  local function start_backup(dir, resume)
    local script = ([[
      package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
      local csms, batch = require "csms", require "csms.batch"
      local c = assert(csms.new { ak = %q, sk = %q, project_id = %q, endpoint = %q, retries = 8,
        backoff_base = 0.005, backoff_max = 0.05 })
      batch.backup(c, { dir = %q, concurrency = 4, resume = %s })
    ]]):format(e.ak, e.sk, e.project_id, e.endpoint, dir, tostring(resume))
    local interp = require("spec.support.interpreter").command
    local cpath = package.cpath:match("[^;]*build/[^;]*") or "./build/lua54/?.so"
    local pidfile = os.tmpname()
    os.execute(("LUA_CPATH=%q %s -e %q >/dev/null 2>&1 & echo $! > %s"):format(cpath .. ";;", interp,
      script, pidfile))
    local pid = read(pidfile):match("%d+")
    os.remove(pidfile)
    return pid
  end

  local function alive(pid) -- os.execute gives true under Lua 5.4, 0 under LuaJIT
    local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
    return r == true or r == 0
  end

  local function journal_lines(dir)
    return select(2, (read(dir .. "/" .. "manifest.journal") or ""):gsub("\n", ""))
  end

  -- Lets a backup run until its journal has `lines` lines (or it ends), `extra` seconds more,
  -- then kills it with SIGKILL; readers, when asked, run against dir meanwhile. Waiting on the
  -- run's progress rather than a clock puts the kills across the whole run on any machine.
  -- Returns the problems the readers met and whether the run was still going on.
  local function run_and_kill(dir, resume, lines, extra, readers)
    local problems = {}
    local rc = readers and client()
    local pid = start_backup(dir, resume)
    local deadline, polls = core.time.monotonic() + 60, 0
    while journal_lines(dir) < lines and core.time.monotonic() < deadline do
      polls = polls + 1
      if polls % 20 == 0 and not alive(pid) then break end
      if readers then
        local v, err = batch.verify(dir)
        if v and v.failed > 0 then problems[#problems + 1] = "verify during a backup: " .. tostring(v.items[1].err) end
        if not v and err.kind ~= "busy" then problems[#problems + 1] = "verify during a backup: " .. tostring(err) end
        local r, rerr = batch.restore(rc, { dir = dir, dry_run = true, on_conflict = "skip" })
        if r and r.failed > 0 then problems[#problems + 1] = "restore --dry-run during a backup: failed items" end
        if not r and rerr.kind ~= "busy" then problems[#problems + 1] = "restore --dry-run: " .. tostring(rerr) end
      else
        core.time.sleep(0.003)
      end
    end
    core.time.sleep(extra)
    local midway = alive(pid)
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    while alive(pid) do core.time.sleep(0.01) end
    if rc then rc:close() end
    return problems, midway
  end

  -- The property, for one set: it verifies (nothing corrupt; a set that was complete keeps
  -- every item) and every recorded item restores to the original secret.
  local sets_checked, failures = 0, {}
  local function check(dir, what, must_be_whole)
    sets_checked = sets_checked + 1
    local v, err = batch.verify(dir)
    if not v then
      if err.kind == "io" and not must_be_whole then return 0 end -- killed before anything
      return nil, what .. ": verify: " .. tostring(err)
    end
    if v.failed > 0 then
      for _, it in ipairs(v.items) do
        if not it.ok then return nil, what .. ": verify: " .. tostring(it.err) end
      end
    end
    if must_be_whole and v.ok ~= nsecrets then
      return nil, ("%s: a complete set now holds %d of %d items"):format(what, v.ok, nsecrets)
    end
    if v.ok == 0 then -- killed before its first file: nothing to restore, and restore says so
      local r, rerr = batch.restore(c, { dir = dir })
      if r or rerr.kind ~= "invalid_argument" then return nil, what .. ": restore of an empty set did not refuse" end
      return 0
    end
    for _, it in ipairs(v.items) do
      assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/" .. it.name))
    end
    local r, rerr = batch.restore(c, { dir = dir, concurrency = 8 })
    if not r then return nil, what .. ": restore: " .. tostring(rerr) end
    if r.failed > 0 or r.ok ~= v.ok then
      for _, it in ipairs(r.items) do
        if not it.ok then return nil, what .. ": restore: " .. tostring(it.err) end
      end
    end
    local now = {}
    for _, s in ipairs(e:dump()) do now[s.name] = s end
    if count(now) ~= nsecrets then return nil, what .. ": the project lost secrets" end
    for name, s in pairs(original) do
      local got = now[name]
      for i, ver in ipairs(s.versions or {}) do
        local g = got.versions and got.versions[i]
        if not g or g.value ~= ver.value then return nil, what .. ": " .. name .. " restored different" end
      end
    end
    return v.ok
  end

  local complete = tmpdir()
  assert(batch.backup(c, { dir = complete, concurrency = 8 }))
  dirs[#dirs + 1] = complete
  local fresh, midway_kills = nil, 0
  local kinds = { "fresh", "resume", "rerun", "rerun+readers" }
  for t = 1, trials do
    local kind = kinds[(t - 1) % #kinds + 1]
    -- the kill: after a random share of the run's journal lines (the header, then one line a
    -- file), plus up to 40 ms; one trial in ten lets the run end.
    local lines = math.random() < 0.1 and math.huge or math.random(0, nsecrets)
    local extra = math.random() * 0.04
    e:config { latency_ms = 10, latency_jitter_ms = 10 }
    local dir, problems, whole, midway
    if kind == "fresh" then
      fresh = tmpdir()
      dirs[#dirs + 1] = fresh
      dir, whole = fresh, false
      problems, midway = run_and_kill(dir, false, lines, extra)
    elseif kind == "resume" then
      dir, whole = fresh, false
      problems, midway = run_and_kill(dir, true, lines, extra)
    else
      dir, whole = complete, true
      problems, midway = run_and_kill(dir, false, lines, extra, kind == "rerun+readers")
    end
    if midway then midway_kills = midway_kills + 1 end
    e:config { latency_ms = 0, latency_jitter_ms = 0 }
    local at = ("%s lines + %.3f s"):format(lines == math.huge and "all" or tostring(lines), extra)
    local items, err = check(dir, ("trial %d (%s, killed at %s)"):format(t, kind, at), whole)
    for _, p in ipairs(problems) do failures[#failures + 1] = ("trial %d: %s"):format(t, p) end
    if not items then failures[#failures + 1] = err end
    log(("trial %d %-14s %s at %s: %s"):format(t, kind, midway and "killed" or "ended", at,
      items and (items .. " items verified and restored") or ("FAILED " .. err)))
  end
  c:close()
  for _, d in ipairs(dirs) do os.execute("rm -rf '" .. d .. "'") end
  return { trials = trials, sets_checked = sets_checked, failures = failures, midway = midway_kills }
end

-- ---------------------------------------------------------------- as a script

if arg and arg[0] and arg[0]:find("crash_trials%.lua$") and not package.loaded["spec.support.crash_trials"] then
  package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
  package.cpath = "./build/" .. (rawget(_G, "jit") and "luajit" or "lua54") .. "/?.so;" .. package.cpath
  local emulator = require "spec.support.emulator"
  local e = emulator.start {}
  local ok, res = pcall(M.run, e, { trials = tonumber(arg[1]) or 200, seed = tonumber(arg[2]),
    log = function(line) print(line) io.stdout:flush() end })
  e:stop()
  if not ok then error(res, 0) end
  for _, f in ipairs(res.failures) do print("FAILURE: " .. f) end
  print(("trials %d (%d killed mid-run), sets checked %d, failures %d"):format(res.trials, res.midway,
    res.sets_checked, #res.failures))
  os.exit(#res.failures == 0 and 0 or 1)
end

return M
