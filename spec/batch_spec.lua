-- csms.batch against the emulator with faults on: whole-project backup, restore into an empty
-- store, corruption, a killed run resumed, incremental runs and conflicts.
local csms = require "csms"
local batch = require "csms.batch"
local shell = require "spec.support.shell"
local core = require "csms.core"
local emulator = require "spec.support.emulator"
local json = require "csms.json"

local ALL_FAULTS = { "500", "500nested", "502html", "503", "504", "429", "drop" }
local N = 30
local e

local function client(extra)
  local opts = { ak = e.ak, sk = e.sk, project_id = e.project_id, endpoint = e.endpoint,
                 backoff_base = 0.005, backoff_max = 0.05, retries = 8, timeout = 10 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  return d .. "-set"
end

local function read(path) return assert(shell.read_all(path), path) end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function snapshot()
  local t = {}
  for _, s in ipairs(e:dump()) do t[s.name] = s end
  return t
end

local function seed(n)
  for i = 1, n do
    local versions = {}
    for v = 1, 1 + i % 3 do versions[v] = ("value %d of secret %d %s"):format(v, i, ("x"):rep(i * 7)) end
    e:create_secret(("app-%02d"):format(i), versions, { description = "secret " .. i })
  end
end

-- Starts `batch.backup` into dir in another process (concurrency 2); returns its pid.
local function start_backup(dir)
  local script = ([[
    package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
    local csms, batch = require "csms", require "csms.batch"
    local c = assert(csms.new { ak = %q, sk = %q, project_id = %q, endpoint = %q })
    batch.backup(c, { dir = %q, concurrency = 2 })
  ]]):format(e.ak, e.sk, e.project_id, e.endpoint, dir)
  local interp = require("spec.support.interpreter")
  local cpath = package.cpath:match("[^;]*build/[^;]*") or "./build/" .. interp.build .. "/?.so"
  local pidfile = os.tmpname()
  os.execute(("LUA_CPATH=%q %s -e %q >/dev/null 2>&1 & echo $! > %s"):format(cpath .. ";;", interp.command,
    script, pidfile))
  local pid = read(pidfile):match("%d+")
  os.remove(pidfile)
  return pid
end

-- Whether process pid still runs (a zombie does not).
local function alive(pid)
  local p = io.popen("ps -o stat= -p " .. pid)
  local stat = p:read("*l")
  p:close()
  return stat ~= nil and not stat:find("^Z")
end

-- The items dir's set records (its journal, while a run goes on).
local function recorded(dir)
  local m = batch.read_manifest(dir)
  local n = 0
  for _ in pairs(m and m.items or {}) do n = n + 1 end
  return n
end

-- Stops (SIGSTOP) the backup process pid once dir's set records n items, so that it records
-- no more until continued or killed; returns early if it ended. No deadline: under load (the
-- suites run side by side, this one perhaps under ASan) it may take any time to get there.
local function stop_at(dir, n, pid)
  while true do
    os.execute("kill -STOP " .. pid .. " 2>/dev/null")
    if recorded(dir) >= n or not alive(pid) then return end
    os.execute("kill -CONT " .. pid .. " 2>/dev/null; sleep 0.2")
  end
end

setup(function() e = emulator.start {} end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("batch.backup and batch.restore", function()
  it("back up a whole project and restore it identical, with 15% of requests failing", function()
    seed(N)
    local before = snapshot()
    local dir = tmpdir()
    e:config { fault_rate = 0.15, faults = ALL_FAULTS, retry_after = 0 } -- a Retry-After pauses the whole client
    -- Each kind once for certain, then the 15% at random: with the rate alone, a run of about
    -- 31 requests drew no fault at all once in 150 (0.85^31), and the check below failed.
    local queued = {}
    for i, kind in ipairs(ALL_FAULTS) do queued[i] = { kind = kind, op = "backup" } end
    e:fail_next(queued)
    local progress = 0
    local report = assert(batch.backup(client(), { dir = dir, concurrency = 6,
      on_progress = function(done, total) progress = done; assert.equal(N, total) end }))
    assert.equal(N, report.ok)
    assert.equal(0, report.failed)
    assert.equal(N, progress)
    assert.is_true(e:stats().faults >= #ALL_FAULTS, "faults were really injected")

    -- on disk: 0700 directory, 0600 files, a manifest that verifies
    assert.equal(448, core.fs.lstat(dir, true).mode) -- 0700
    assert.equal(384, core.fs.lstat(dir .. "/app-07.blob", true).mode) -- 0600
    assert.equal(384, core.fs.lstat(dir .. "/manifest.json", true).mode)
    local m = assert(batch.read_manifest(dir))
    assert.equal(batch.FORMAT, m.format)
    assert.equal(e.project_id, m.project_id)
    assert.equal(e.endpoint, m.endpoint)
    assert.is_true(m.complete)
    assert.equal("lua-csms/" .. csms._VERSION, m.tool)
    local it = m.items["app-07"]
    assert.equal(core.crypto.sha256_hex(read(dir .. "/app-07.blob")), it.sha256)
    assert.equal(#read(dir .. "/app-07.blob"), it.bytes)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", it.backed_up_at)
    local v = batch.verify(dir)
    assert.equal(N, v.ok)
    assert.equal(0, v.failed)

    e:reset() -- an empty store (same emulator key)
    e:config { fault_rate = 0.15, faults = ALL_FAULTS, retry_after = 0 } -- a Retry-After pauses the whole client
    report = assert(batch.restore(client(), { dir = dir, concurrency = 6 }))
    assert.equal(0, report.failed, tostring(report.items[1].err))
    assert.equal(N, report.ok)
    e:config { fault_rate = 0 }
    assert.same(before, snapshot())
    os.execute("rm -rf " .. dir)
  end)

  it("back up the first pages' secrets while the later pages are listed (issue 12)", function()
    -- 450 secrets: three pages of the listing (200, 200, 50)
    local list = {}
    for i = 1, 450 do list[i] = { name = ("page-%03d"):format(i), versions = json.array { "v" .. i } } end
    assert.equal(200, (e:admin("POST", "/__emulator/seed", { secrets = json.array(list) })))
    e:config { latency_ms = 5 }
    local dir = tmpdir()
    local report = assert(batch.backup(client(), { dir = dir, concurrency = 8 }))
    e:config { latency_ms = 0 }
    assert.equal(450, report.ok)
    -- The emulator's arrivals, in order: a backup came before the last page was asked for.
    -- A run that lists everything first sends its first backup after the third page.
    local first_backup, last_list, lists = emulator.listing_order(e:stats().arrivals)
    assert.equal(3, lists)
    assert.is_true(first_backup < last_list, ("first backup arrived %s, last page %s"):format(first_backup,
      last_list))
    assert.equal(450, batch.verify(dir).ok)
    os.execute("rm -rf " .. dir)
  end)

  it("refuse a corrupted or missing file and restore the rest", function()
    seed(5)
    local dir = tmpdir()
    assert.equal(5, assert(batch.backup(client(), { dir = dir })).ok)
    local blob = read(dir .. "/app-02.blob")
    write(dir .. "/app-02.blob", blob:sub(1, -2) .. (blob:sub(-1) == "A" and "B" or "A"))
    os.remove(dir .. "/app-04.blob")
    local v = batch.verify(dir)
    assert.equal(3, v.ok)
    assert.equal(2, v.failed)
    e:reset()
    local report = assert(batch.restore(client(), { dir = dir }))
    assert.equal(3, report.ok)
    assert.equal(2, report.failed)
    for _, item in ipairs(report.items) do
      if not item.ok then
        assert.equal("corrupt", item.err.kind)
        assert.truthy(item.name == "app-02" or item.name == "app-04")
      end
    end
    assert.equal(3, e:stats().requests.restore, "corrupt files are never uploaded")
    os.execute("rm -rf " .. dir)
  end)

  it("skip existing secrets with on_conflict = skip, fail them by default, and dry-run sends nothing", function()
    seed(4)
    local dir = tmpdir()
    assert(batch.backup(client(), { dir = dir, names = { "app-01", "app-02", "app-03" } }))
    local c = client()
    assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/app-02"))
    local before = e:stats().requests.restore or 0
    local dry = assert(batch.restore(c, { dir = dir, dry_run = true, on_conflict = "skip" }))
    assert.equal(1, dry.ok)
    assert.equal(2, dry.skipped)
    assert.equal(before, e:stats().requests.restore or 0, "a dry run sends no restore")
    local failing = assert(batch.restore(c, { dir = dir }))
    assert.equal(1, failing.ok)
    assert.equal(2, failing.failed)
    assert.is_true(failing.items[1].err.conflict or failing.items[2].err.conflict)
    assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/app-02"))
    local skipping = assert(batch.restore(c, { dir = dir, on_conflict = "skip" }))
    assert.equal(1, skipping.ok)
    assert.equal(2, skipping.skipped)
    os.execute("rm -rf " .. dir)
  end)

  it("select with names and match", function()
    seed(12)
    local dir = tmpdir()
    local report = assert(batch.backup(client(), { dir = dir, match = "app-1?" }))
    assert.equal(3, report.ok) -- app-10, app-11, app-12
    report = assert(batch.backup(client(), { dir = dir, names = { "app-01", "nope", "bad/name" } }))
    assert.equal(1, report.ok)
    assert.equal(2, report.failed)
    local m = assert(batch.read_manifest(dir))
    local count = 0
    for _ in pairs(m.items) do count = count + 1 end
    assert.equal(4, count)
    assert.is_false(m.complete)
    os.execute("rm -rf " .. dir)
  end)

  it("back up incrementally only what changed", function()
    seed(6)
    local dir = tmpdir()
    assert.equal(6, assert(batch.backup(client(), { dir = dir, incremental = true })).ok)
    local c = client()
    assert(c:request("POST", "/v1/" .. e.project_id .. "/secrets/app-03/versions", { secret_string = "new" }))
    local before = e:stats().requests.backup
    local report = assert(batch.backup(c, { dir = dir, incremental = true }))
    assert.equal(1, report.ok)
    assert.equal(5, report.skipped)
    assert.equal(before + 1, e:stats().requests.backup)
    os.execute("rm -rf " .. dir)
  end)

  it("refuse to mix projects in one directory", function()
    seed(1)
    local dir = tmpdir()
    assert(batch.backup(client(), { dir = dir }))
    local m = read(dir .. "/manifest.json"):gsub(e.project_id, ("0"):rep(32))
    write(dir .. "/manifest.json", m)
    local report, err = batch.backup(client(), { dir = dir })
    assert.is_nil(report)
    assert.equal("config", err.kind)
    os.execute("rm -rf " .. dir)
  end)

  it("refuse to overwrite a manifest it cannot read", function()
    seed(2)
    local dir = tmpdir()
    assert(batch.backup(client(), { dir = dir }))
    write(dir .. "/manifest.json", "{ not json")
    local report, err = batch.backup(client(), { dir = dir })
    assert.is_nil(report)
    assert.equal("corrupt", err.kind)
    assert.matches("move it away", err.message)
    assert.equal("{ not json", read(dir .. "/manifest.json"))
    os.execute("rm -rf " .. dir)
  end)

  it("resume a killed run without downloading again what it had done", function()
    seed(N)
    local dir = tmpdir()
    e:config { latency_ms = 150 }
    local pid = start_backup(dir)
    -- let it finish some items, then kill it hard
    stop_at(dir, 6, pid)
    os.execute("kill -9 " .. pid)
    while alive(pid) do os.execute("sleep 0.1") end
    local done = recorded(dir)
    assert.is_true(done >= 6 and done < N, "killed midway, recorded " .. done)
    assert.is_nil(io.open(dir .. "/manifest.json"), "the killed run never wrote its final manifest")

    e:config { latency_ms = 0 }
    local before = e:stats().requests.backup
    local report = assert(batch.backup(client(), { dir = dir, resume = true, concurrency = 4 }))
    assert.equal(N, report.ok + report.skipped)
    assert.equal(done, report.skipped)
    assert.equal(N - done, e:stats().requests.backup - before)
    assert.equal(N, batch.verify(dir).ok)
    assert.is_nil(io.open(dir .. "/manifest.journal"), "the journal is folded into the manifest")
    os.execute("rm -rf " .. dir)
  end)

  it("refuse a backup into a directory another process is backing up to, which stays consistent", function()
    seed(N)
    local dir = tmpdir()
    e:config { latency_ms = 100 }
    local pid = start_backup(dir)
    stop_at(dir, 2, pid) -- midway, holding the directory
    assert.is_true(alive(pid), "the other run is still going")
    -- Unrefused, this run would replace app-01/02 with new encryptions that the other run's
    -- final manifest does not describe: verify would then fail them.
    local report, err = batch.backup(client(), { dir = dir, names = { "app-01", "app-02" } })
    assert.is_nil(report)
    assert.equal("busy", err.kind)
    assert.equal("backup", err.op)
    assert.matches(dir .. " is being written by another backup", tostring(err), 1, true)
    os.execute("kill -CONT " .. pid)
    while alive(pid) do os.execute("sleep 0.1") end
    local v = batch.verify(dir)
    assert.equal(N, v.ok)
    assert.equal(0, v.failed)
    os.execute("rm -rf " .. dir)
  end)

  it("hold the directory's lock (0600) for exactly the run, even one that raises", function()
    seed(2)
    local dir = tmpdir()
    assert(core.fs.mkdir(dir))
    local other = assert(core.fs.lock(dir .. "/.csms.lock")) -- in this process counts too (nginx)
    local total = e:stats().total
    local report, err = batch.backup(client(), { dir = dir })
    assert.is_nil(report)
    assert.equal("busy", err.kind)
    assert.equal(total, e:stats().total, "a refused run sends nothing")
    other:unlock()

    local seen
    report = assert(batch.backup(client(), { dir = dir, on_progress = function()
      seen = seen or select(3, core.fs.lock(dir .. "/.csms.lock"))
    end }))
    assert.equal(2, report.ok)
    assert.equal("busy", seen, "held while the run goes on")
    assert.equal(384, core.fs.lstat(dir .. "/.csms.lock", true).mode)
    assert(core.fs.lock(dir .. "/.csms.lock")):unlock() -- released by the run's end

    assert.has_error(function()
      batch.backup(client(), { dir = dir, on_progress = function() error("callback failed") end })
    end, "callback failed")
    assert(core.fs.lock(dir .. "/.csms.lock")):unlock() -- released by the raise too
    os.execute("rm -rf " .. dir)
  end)

  it("remove the temporary files a killed run left, and nothing else", function()
    seed(2)
    local dir = tmpdir()
    assert(core.fs.mkdir(dir))
    local leftovers = { ".app-01.blob.tmp.123456789", ".gone.blob.tmp.7", "manifest.json.tmp.4242.0" }
    local kept = { "notes.txt", ".app-01.blob.tmp.12x", "app-01.blob.tmp.5", ".profile.tmp.1" }
    for _, n in ipairs(leftovers) do write(dir .. "/" .. n, "partial") end
    for _, n in ipairs(kept) do write(dir .. "/" .. n, "mine") end
    assert.equal(2, assert(batch.backup(client(), { dir = dir })).ok)
    for _, n in ipairs(leftovers) do assert.is_nil(io.open(dir .. "/" .. n), n) end
    for _, n in ipairs(kept) do assert.equal("mine", read(dir .. "/" .. n), n) end
    assert.equal(2, batch.verify(dir).ok)
    os.execute("rm -rf " .. dir)
  end)
end)

describe("batch argument checks", function()
  it("raise on misuse", function()
    local c = assert(csms.new { ak = "a", sk = "b", project_id = "p", endpoint = "http://127.0.0.1:1" })
    assert.has_error(function() batch.backup(c, {}) end, "csms.batch: dir must be a non-empty string")
    assert.has_error(function() batch.backup(c, { dir = "x", concurency = 2 }) end)
    assert.has_error(function() batch.backup(c, { dir = "x", concurrency = 0 }) end)
    assert.has_error(function() batch.backup({}, { dir = "x" }) end)
    assert.has_error(function() batch.restore(c, { dir = "x", on_conflict = "overwrite" }) end)
    assert.has_error(function() batch.verify(nil) end)
  end)

  it("report a missing set as nil, err", function()
    local report, err = batch.verify("/nonexistent/set")
    assert.is_nil(report)
    assert.equal("io", err.kind)
  end)
end)
