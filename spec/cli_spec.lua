-- bin/csms-backup as a subprocess (the interpreter running busted) against the emulator:
-- backup -> verify -> restore, exit codes, --json, --dry-run, --help, credentials from the
-- environment, a profile file and files named by flags, the progress bar under a pseudo-TTY,
-- and no SK or token in any output.
local cjson = require "cjson"
local csms = require "csms"
local core = require "csms.core"
local emulator = require "spec.support.emulator"
local ejson = require "csms.json"

local LUA = require("spec.support.interpreter").command
local CLI = emulator.root .. "/bin/csms-backup"
local q = emulator.shell_quote

local e, home
local transcript = {} -- every stdout and stderr of every run, for the no-secrets check
local secrets = {}    -- strings that must never be printed

local tmpdir = emulator.tmpdir

local read = emulator.read_all

local function write(path, data, mode)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  if mode then os.execute("chmod " .. mode .. " " .. q(path)) end
end

local function lines(s)
  local t = {}
  for l in (s or ""):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local function assert_no_secrets(text, what)
  for _, s in ipairs(secrets) do
    assert.is_nil(text:find(s, 1, true), what .. " shows a secret")
  end
end

-- Runs the CLI with a clean environment. opts.creds: "env" (default: the emulator's AK, SK and
-- project id in HUAWEICLOUD_SDK_*) or false; opts.env: more variables; opts.tty: under script(1).
-- Returns { code, out, err }.
local function run(args, opts)
  opts = opts or {}
  local env = { PATH = os.getenv("PATH"), HOME = home, LANG = "C" }
  if opts.creds ~= false then
    env.HUAWEICLOUD_SDK_AK, env.HUAWEICLOUD_SDK_SK = e.ak, e.sk
    env.HUAWEICLOUD_SDK_PROJECT_ID = e.project_id
  end
  for k, v in pairs(opts.env or {}) do env[k] = v or nil end
  local envs = {}
  for k, v in pairs(env) do envs[#envs + 1] = q(k .. "=" .. v) end
  local argv = { LUA, q(CLI) }
  for _, a in ipairs(args) do argv[#argv + 1] = q(a) end
  local cmd = table.concat(argv, " ")
  if opts.tty then cmd = "script -qfec " .. q(cmd) .. " /dev/null" end
  local out, err = os.tmpname(), os.tmpname()
  local p = io.popen("cd " .. q(emulator.root) .. " && env -i " .. table.concat(envs, " ") .. " "
    .. cmd .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo $?")
  local code = tonumber(p:read("*l"))
  p:close()
  local r = { code = code, out = read(out) or "", err = read(err) or "" }
  os.remove(out)
  os.remove(err)
  transcript[#transcript + 1] = r.out
  transcript[#transcript + 1] = r.err
  assert_no_secrets(r.out, "stdout of " .. table.concat(args, " "))
  assert_no_secrets(r.err, "stderr of " .. table.concat(args, " "))
  return r
end

local function seed(n, prefix)
  local list = {}
  for i = 1, n do
    list[i] = { name = ("%s-%02d"):format(prefix or "app", i),
                versions = ejson.array { "first value " .. i, ("second value %d %s"):format(i, ("y"):rep(i * 5)) },
                description = "secret " .. i }
  end
  local status, doc = e:admin("POST", "/__emulator/seed", { secrets = ejson.array(list) })
  assert(status == 200, "seed failed: " .. tostring(status))
  return doc
end

local function snapshot()
  local t = {}
  for _, s in ipairs(e:dump()) do t[s.name] = s end
  return t
end

local function client()
  return assert(csms.new { ak = e.ak, sk = e.sk, project_id = e.project_id, endpoint = e.endpoint })
end

setup(function()
  e = emulator.start {}
  home = tmpdir()
  secrets = { e.sk, e.token }
end)
teardown(function()
  if e then e:stop() end
  if home then os.execute("rm -rf " .. q(home)) end
end)
before_each(function() e:reset() end)

describe("csms-backup backup, verify, restore", function()
  it("round-trips a whole project: ok lines with the sizes on disk, verify offline, restore identical", function()
    seed(12)
    local before = snapshot()
    local dir = tmpdir() .. "/set"

    local r = run { "backup", dir, "--endpoint", e.endpoint }
    assert.equal(0, r.code, r.err)
    local oks = 0
    for _, l in ipairs(lines(r.out)) do
      local name, bytes = l:match("^ok (app%-%d%d) %((%d+) bytes%)$")
      if name then
        oks = oks + 1
        assert.equal(#read(dir .. "/" .. name .. ".blob"), tonumber(bytes))
      end
    end
    assert.equal(12, oks)
    assert.matches("backup: 12 ok, 0 failed, 0 skipped of 12", r.out, 1, true)
    assert.equal(12, e:stats().requests.backup)
    assert.equal("", r.err, "nothing on stderr when it is not a terminal")

    -- verify needs no credentials and sends nothing
    local total = e:stats().total
    r = run({ "verify", dir }, { creds = false })
    assert.equal(0, r.code, r.err)
    local verified = 0
    for _, l in ipairs(lines(r.out)) do
      if l:find("^ok app%-%d%d %(%d+ bytes%)$") then verified = verified + 1 end
    end
    assert.equal(12, verified)
    assert.matches("verify: 12 ok, 0 failed", r.out, 1, true)
    assert.equal(total, e:stats().total)

    e:reset() -- an empty store, same emulator key
    r = run { "restore", dir, "--endpoint", e.endpoint, "--concurrency", "3" }
    assert.equal(0, r.code, r.out .. r.err)
    assert.matches("restore: 12 ok, 0 failed, 0 skipped of 12", r.out, 1, true)
    assert.equal(12, e:stats().requests.restore)
    assert.same(before, snapshot())
    os.execute("rm -rf " .. q(dir))
  end)

  it("--json prints one document whose items match the files on disk and the manifest", function()
    seed(6)
    local dir = tmpdir() .. "/set"
    -- A selection of nothing is an error, in one JSON document, and writes no set.
    local r = run { "backup", dir, "--endpoint", e.endpoint, "--json", "--match", "nothing-*" }
    assert.equal(2, r.code, r.err)
    local doc = cjson.decode(r.out)
    assert.equal("invalid_argument", doc.error_kind)
    assert.equal(2, doc.exit)
    assert.matches("selects none of the 6 secrets", doc.error)
    assert.is_nil(io.open(dir .. "/manifest.json"))

    r = run { "backup", dir, "--endpoint", e.endpoint, "--json", "--match", "app-0?",
              "--names", "app-01,app-03,app-05" }
    assert.equal(0, r.code, r.err)
    doc = cjson.decode(r.out) -- the whole of stdout is one JSON document
    assert.equal(3, doc.ok)
    assert.equal(0, doc.failed)
    -- As docs/cli.md shows it: "/" is not escaped (lua-cjson would write "\/tmp\/...").
    assert.truthy(r.out:find('"dir":"' .. dir .. '"', 1, true), r.out)
    assert.same({ command = "backup", total = 3, ok = 3, failed = 0, skipped = 0, dir = dir },
      { command = doc.summary.command, total = doc.summary.total, ok = doc.summary.ok,
        failed = doc.summary.failed, skipped = doc.summary.skipped, dir = doc.summary.dir })
    assert.is_number(doc.summary.elapsed_s)
    local manifest = cjson.decode(read(dir .. "/manifest.json"))
    local in_manifest = {}
    for _, it in ipairs(manifest.items) do in_manifest[it.name] = it end
    local names = {}
    for _, it in ipairs(doc.items) do
      names[#names + 1] = it.name
      assert.is_true(it.ok)
      assert.equal(it.name .. ".blob", it.file)
      assert.equal(#read(dir .. "/" .. it.file), it.bytes)
      assert.equal(in_manifest[it.name].bytes, it.bytes)
      assert.is_nil(it.error)
    end
    table.sort(names)
    assert.same({ "app-01", "app-03", "app-05" }, names)

    r = run({ "verify", dir, "--json" }, { creds = false })
    assert.equal(0, r.code)
    doc = cjson.decode(r.out)
    assert.equal(3, doc.ok)
    assert.equal(e.project_id, doc.manifest.project_id)
    os.execute("rm -rf " .. q(dir))
  end)

  it("exits 1 when an item fails: a corrupted file is reported and never uploaded", function()
    seed(5)
    local dir = tmpdir() .. "/set"
    assert.equal(0, run({ "backup", dir, "--endpoint", e.endpoint }).code)
    local blob = read(dir .. "/app-02.blob")
    write(dir .. "/app-02.blob", blob:sub(1, 100) .. (blob:sub(101, 101) == "A" and "B" or "A") .. blob:sub(102))

    local r = run({ "verify", dir }, { creds = false })
    assert.equal(1, r.code)
    assert.matches("\nfailed app%-02: [^\n]*SHA%-256", "\n" .. r.out)

    e:reset()
    r = run { "restore", dir, "--endpoint", e.endpoint, "--json" }
    assert.equal(1, r.code, r.err)
    local doc = cjson.decode(r.out)
    assert.equal(4, doc.ok)
    assert.equal(1, doc.failed)
    for _, it in ipairs(doc.items) do
      if it.name == "app-02" then
        assert.is_false(it.ok)
        assert.equal("corrupt", it.error_kind)
        assert.matches("app-02.blob", it.error, 1, true)
      else
        assert.is_true(it.ok, it.name)
      end
    end
    assert.equal(4, e:stats().requests.restore, "the corrupt file is never sent")

    -- the plain form says the same, and exits 1 again (app-02 still fails; the rest exist now)
    r = run { "restore", dir, "--endpoint", e.endpoint, "--on-conflict", "skip" }
    assert.equal(1, r.code)
    assert.matches("\nfailed app%-02: ", "\n" .. r.out)
    assert.matches("\nskipped app%-01 %(exists%)", "\n" .. r.out)
    assert.matches("restore: 0 ok, 1 failed, 4 skipped of 5", r.out, 1, true)
    os.execute("rm -rf " .. q(dir))
  end)

  it("--dry-run restores nothing and tells what would conflict", function()
    seed(3)
    local dir = tmpdir() .. "/set"
    assert.equal(0, run({ "backup", dir, "--endpoint", e.endpoint }).code)
    e:reset()
    local r = run { "restore", dir, "--endpoint", e.endpoint, "--dry-run" }
    assert.equal(0, r.code, r.err)
    assert.equal(3, select(2, r.out:gsub("would restore", "")))
    assert.matches("restore (dry run): 3 ok", r.out, 1, true)
    assert.equal(0, e:stats().requests.restore or 0)
    assert.same({}, e:dump())

    e:create_secret("app-02", { "something else" })
    r = run { "restore", dir, "--endpoint", e.endpoint, "--dry-run", "--json" }
    assert.equal(1, r.code)
    local doc = cjson.decode(r.out)
    assert.equal(2, doc.ok)
    assert.equal(1, doc.failed)
    assert.is_true(doc.summary.dry_run)
    for _, it in ipairs(doc.items) do
      if it.name == "app-02" then assert.matches("already exists", it.error, 1, true) end
    end
    r = run { "restore", dir, "--endpoint", e.endpoint, "--dry-run", "--on-conflict", "skip" }
    assert.equal(0, r.code)
    assert.matches("\nskipped app%-02 %(exists%)", "\n" .. r.out)
    assert.equal(0, e:stats().requests.restore or 0)
    os.execute("rm -rf " .. q(dir))
  end)

  it("--incremental skips unchanged secrets, --resume skips what the set holds", function()
    seed(3)
    local dir = tmpdir() .. "/set"
    assert.equal(0, run({ "backup", dir, "--endpoint", e.endpoint }).code)
    local c = client()
    assert(c:request("POST", "/v1/" .. e.project_id .. "/secrets/app-02/versions", { secret_string = "third" }))
    c:close()
    local before = e:stats().requests.backup
    local r = run { "backup", dir, "--endpoint", e.endpoint, "--incremental" }
    assert.equal(0, r.code, r.err)
    assert.matches("\nskipped app%-01 %(unchanged%)", "\n" .. r.out)
    assert.matches("\nok app%-02 %(%d+ bytes%)", "\n" .. r.out)
    assert.equal(before + 1, e:stats().requests.backup)

    r = run { "backup", dir, "--endpoint", e.endpoint, "--resume" }
    assert.equal(0, r.code)
    assert.matches("backup: 0 ok, 0 failed, 3 skipped of 3", r.out, 1, true)
    assert.equal(before + 1, e:stats().requests.backup)
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("csms-backup exit code 2", function()
  local function one_line(s)
    return s:sub(-1) == "\n" and not s:sub(1, -2):find("\n")
  end

  it("for bad flags and settings, with one line on stderr and no request sent", function()
    seed(2)
    local dir = tmpdir() .. "/set"
    local nodir = tmpdir() .. "/none"
    local cases = {
      { { "backup", dir, "--bogus", "--endpoint", e.endpoint }, nil, "bogus" },
      { { "backup", dir, "--concurrency", "0", "--endpoint", e.endpoint }, nil, "concurrency" },
      { { "backup", dir, "--retries=-1", "--endpoint", e.endpoint }, nil, "retries" },
      { { "restore", dir, "--on-conflict", "maybe", "--endpoint", e.endpoint }, nil, "on%-conflict" },
      { { "backup", "--endpoint", e.endpoint }, nil, "dir" },
      { {}, nil, "command" },
      { { "backup", dir, "--endpoint", e.endpoint }, { creds = false }, "HUAWEICLOUD_SDK_AK" },
      { { "backup", dir }, nil, "%-%-region" },
      { { "list", "--region", "xx-nowhere-9" }, nil, "unknown region 'xx%-nowhere%-9'.*%-%-endpoint" },
      { { "list", "--endpoint", "ftp://example" }, nil, "%-%-endpoint" },
      { { "backup", dir, "--endpoint", e.endpoint, "--sk=" .. e.sk }, nil, "%-%-sk%-file" },
      { { "backup", dir, "--endpoint", e.endpoint, "--sk", e.sk }, nil, "%-%-sk%-file" },
      { { "backup", dir, "--endpoint", e.endpoint, "--names", "ok,not ok!" }, nil, "not ok!" },
      { { "restore", nodir, "--endpoint", e.endpoint }, nil, "no manifest.json" },
      { { "verify", nodir }, { creds = false }, "no manifest.json" },
      { { "list", "--endpoint", e.endpoint, "--ak", e.ak }, { creds = false }, "%-%-sk%-file" },
      { { "list", "--endpoint", e.endpoint, "--ak", e.ak, "--sk-file", nodir .. "/sk" }, { creds = false }, "SK file" },
      { { "list", "--endpoint", e.endpoint },
        { creds = false, env = { HUAWEICLOUD_SDK_CREDENTIALS_FILE = nodir .. "/cred" } },
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE" },
      { { "list", "--endpoint", e.endpoint }, { env = { HUAWEICLOUD_SDK_PROJECT_ID = false } }, "%-%-project%-id" },
    }
    local total = e:stats().total
    for _, c in ipairs(cases) do
      local what = table.concat(c[1], " ")
      local r = run(c[1], c[2])
      assert.equal(2, r.code, what .. ": " .. r.err)
      assert.equal("", r.out, what)
      assert.is_true(one_line(r.err), what .. ": " .. r.err)
      assert.matches("^csms%-backup: ", r.err, nil, false, what)
      assert.matches(c[3], r.err, nil, false, what)
      assert.equal(total, e:stats().total, what .. " sent a request")
    end
    assert.is_nil(read(dir .. "/manifest.json"), "nothing was written")
  end)

  it("when the service refuses the credentials, without printing them", function()
    seed(2)
    local wrong = "wrong-" .. e.sk:sub(7)
    secrets[#secrets + 1] = wrong
    local dir = tmpdir() .. "/set"
    local r = run({ "backup", dir, "--endpoint", e.endpoint }, { env = { HUAWEICLOUD_SDK_SK = wrong } })
    assert.equal(2, r.code)
    assert.matches("HTTP 401", r.err, 1, true)
    assert.matches("check the AK/SK", r.err, 1, true)
    assert.is_true(e:stats().auth_failures >= 1)
    os.execute("rm -rf " .. q(dir))
  end)

  it("when another backup is writing the directory, and runs once it has ended", function()
    seed(2)
    local dir = tmpdir() .. "/set"
    assert(core.fs.mkdir(dir))
    local other = assert(core.fs.lock(dir .. "/.csms.lock")) -- what a running csms-backup holds
    local total = e:stats().total
    local r = run({ "backup", dir, "--endpoint", e.endpoint })
    assert.equal(2, r.code, r.err)
    assert.matches("^csms%-backup: csms backup: busy: .* is being written by another backup", r.err)
    assert.matches("must not overlap", r.err, 1, true)
    assert.equal(total, e:stats().total, "nothing was sent")
    assert.is_nil(read(dir .. "/manifest.json"))
    other:unlock()
    r = run({ "backup", dir, "--endpoint", e.endpoint })
    assert.equal(0, r.code, r.err)
    assert.equal(0, run({ "verify", dir }, { creds = false }).code)
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("csms-backup credentials", function()
  it("come from a profile file named by HUAWEICLOUD_SDK_CREDENTIALS_FILE or in ~/.huaweicloud", function()
    seed(2)
    local d = tmpdir()
    local profile = ("[basic]\nak = %s\nsk = %s\nproject_id = %s\n"):format(e.ak, e.sk, e.project_id)
    write(d .. "/credentials", profile, "600")
    local r = run({ "list", "--endpoint", e.endpoint },
      { creds = false, env = { HUAWEICLOUD_SDK_CREDENTIALS_FILE = d .. "/credentials" } })
    assert.equal(0, r.code, r.err)
    assert.equal("app-01\napp-02\n", r.out)

    os.execute("mkdir -p " .. q(d .. "/.huaweicloud"))
    write(d .. "/.huaweicloud/credentials", profile, "600")
    r = run({ "list", "--endpoint", e.endpoint }, { creds = false, env = { HOME = d } })
    assert.equal(0, r.code, r.err)
    assert.equal("app-01\napp-02\n", r.out)
    assert.equal(2, e:stats().requests.list)
    os.execute("rm -rf " .. q(d))
  end)

  it("come from --ak with --sk-file, or --auth-token-file", function()
    seed(1)
    local d = tmpdir()
    write(d .. "/sk", e.sk .. "\n", "600")
    write(d .. "/token", e.token .. "\n", "644")
    local r = run({ "list", "--endpoint", e.endpoint, "--project-id", e.project_id, "--ak", e.ak,
                    "--sk-file", d .. "/sk" },
      { creds = false })
    assert.equal(0, r.code, r.err)
    assert.equal("app-01\n", r.out)
    assert.equal("", r.err)

    r = run({ "list", "--endpoint", e.endpoint, "--project-id", e.project_id, "--auth-token-file", d .. "/token" },
      { creds = false })
    assert.equal(0, r.code, r.err)
    assert.equal("app-01\n", r.out)
    assert.matches("readable by other users", r.err, 1, true)
    assert.equal(2, e:stats().requests.list)
    assert.equal(0, e:stats().auth_failures)
    os.execute("rm -rf " .. q(d))
  end)
end)

describe("csms-backup list", function()
  it("prints every name across pages, and --json the secret objects", function()
    seed(205, "s")
    local r = run { "list", "--endpoint", e.endpoint }
    assert.equal(0, r.code, r.err)
    local names, want = lines(r.out), {}
    for i = 1, 205 do want[i] = ("s-%02d"):format(i) end
    table.sort(want) -- byte order, as the service lists them
    assert.same(want, names)
    assert.equal(2, e:stats().requests.list, "two pages of 200")

    r = run { "list", "--endpoint", e.endpoint, "--json" }
    assert.equal(0, r.code)
    local doc = cjson.decode(r.out)
    assert.equal(205, #doc)
    local dump = snapshot()
    for _, s in ipairs(doc) do
      assert.equal(dump[s.name].id, s.id)
      assert.is_nil(s.versions, "no values")
    end
    assert.matches('"event_subscriptions":[]', r.out, 1, true)
  end)

  it("--insecure warns on stderr", function()
    local r = run { "list", "--endpoint", e.endpoint, "--insecure" }
    assert.equal(0, r.code)
    assert.equal("", r.out)
    assert.matches("warning: %-%-insecure", r.err)
  end)
end)

describe("csms-backup --help", function()
  it("documents each subcommand and sends nothing", function()
    local total = e:stats().total
    local want = {
      backup = { "--incremental", "--resume", "--names", "--match", "--concurrency", "--sk-file" },
      restore = { "--on-conflict", "--dry-run", "--names", "--auth-token-file" },
      verify = { "--json", "--quiet" },
      list = { "--json", "--endpoint", "--region" },
    }
    for sub, flags in pairs(want) do
      local r = run({ sub, "--help" }, { creds = false })
      assert.equal(0, r.code, sub)
      assert.matches("^Usage: csms%-backup " .. sub, r.out)
      for _, f in ipairs(flags) do assert.matches(f, r.out, 1, true, sub .. " " .. f) end
    end
    assert.is_nil(run({ "verify", "--help" }).out:find("--endpoint", 1, true), "verify is offline")
    local r = run({ "--help" }, { creds = false })
    assert.equal(0, r.code)
    for _, sub in ipairs { "backup", "restore", "verify", "list" } do assert.matches("\n   " .. sub, r.out, 1, true) end
    assert.equal(total, e:stats().total)
  end)

  it("runs by its shebang too", function()
    local p = io.popen(q(CLI) .. " --version")
    local out = p:read("*a")
    p:close()
    assert.equal("csms-backup " .. csms._VERSION .. "\n", out)
  end)
end)

describe("csms-backup progress", function()
  it("redraws one line with \\r on a terminal, and prints plain lines otherwise", function()
    seed(5)
    e:config { latency_ms = 120 }
    local dir = tmpdir() .. "/set"
    local r = run({ "backup", dir, "--endpoint", e.endpoint, "--concurrency", "1" }, { tty = true })
    assert.equal(0, r.code, r.out)
    local screen = r.out -- script(1) merges the pty's output; its newlines are \r\n
    local redraws = select(2, screen:gsub("\r[^\n]", ""))
    assert.is_true(redraws >= 3, "redrawn " .. redraws .. " times: " .. screen)
    local bars = {}
    for bar in screen:gmatch("\r(backup %[[^\r\n]-)\27%[K") do bars[#bars + 1] = bar end
    assert.matches("^backup %[#+%] 5/5  ok 5  failed 0  skipped 0  %d", bars[#bars])
    assert.matches("^backup %[[#.]+%] [1-4]/5", bars[1])
    assert.is_nil(screen:find("ok app-01 (", 1, true), "the bar replaces the per-item lines")
    assert.matches("backup: 5 ok, 0 failed, 0 skipped of 5", screen, 1, true)

    e:config { latency_ms = 0 }
    r = run { "backup", dir .. "2", "--endpoint", e.endpoint, "--concurrency", "1" }
    assert.is_nil(r.out:find("\r", 1, true))
    assert.is_nil(r.err:find("\r", 1, true))
    assert.equal(5, select(2, r.out:gsub("ok app%-%d%d %(", "")))

    -- --quiet: nothing but failures
    r = run({ "backup", dir .. "3", "--endpoint", e.endpoint, "--quiet" }, { tty = true })
    assert.equal(0, r.code)
    assert.equal("", r.out)
    os.execute("rm -rf " .. q(dir) .. " " .. q(dir .. "2") .. " " .. q(dir .. "3"))
  end)
end)

describe("csms-backup progress while the listing goes on", function()
  it("shows the total selected so far with a + until the listing has ended", function()
    seed(450) -- three pages; app-01..03 are on the first
    local dir = tmpdir() .. "/set"
    assert.equal(0, run { "backup", dir, "--endpoint", e.endpoint, "--names", "app-01,app-02,app-03" }.code)
    e:config { latency_ms = 30 }
    -- resume: the three are counted as skipped when the first page comes, while the next is listed
    local r = run({ "backup", dir, "--endpoint", e.endpoint, "--resume" }, { tty = true })
    e:config { latency_ms = 0 }
    assert.equal(0, r.code, r.out)
    local bars = {}
    for bar in r.out:gmatch("\r(backup %[[^\r\n]-)\27%[K") do bars[#bars + 1] = bar end
    assert.matches("^backup %[[#.]+%] %d+/%d+%+  ok %d+  failed 0  skipped [1-3]", bars[1])
    assert.matches("^backup %[#+%] 450/450  ok 447  failed 0  skipped 3  %d", bars[#bars])
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("csms-backup output", function()
  it("never held the SK or the token (checked on every run above)", function()
    assert.is_true(#transcript >= 60, "runs recorded: " .. #transcript / 2)
    local all = table.concat(transcript)
    assert.is_true(#all > 1000)
    for _, s in ipairs(secrets) do assert.is_nil(all:find(s, 1, true)) end
  end)
end)
