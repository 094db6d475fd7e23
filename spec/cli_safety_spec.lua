-- bin/csms-backup under hostile service text, Ctrl-C, a full disk, selections of nothing and
-- sets that are not whole (issue 13): nothing the service says can forge a line or reach the
-- terminal as an escape sequence, --json is always one valid document, an interrupted or
-- failed run says what to do and leaves a set a later run completes.
local cjson = require "cjson"
local emulator = require "spec.support.emulator"

local LUA = require("spec.support.interpreter").command
local CLI = emulator.root .. "/bin/csms-backup"
local q = emulator.shell_quote
local read = emulator.read_all
local e, home

local function base_env(extra)
  local env = { PATH = os.getenv("PATH"), HOME = home, LANG = "C",
    HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk, HUAWEICLOUD_SDK_PROJECT_ID = e.project_id }
  for k, v in pairs(extra or {}) do env[k] = v end
  local out = {}
  for k, v in pairs(env) do out[#out + 1] = q(k .. "=" .. v) end
  return "env -i " .. table.concat(out, " ")
end

local function command(args)
  local argv = { LUA, q(CLI) }
  for _, a in ipairs(args) do argv[#argv + 1] = q(a) end
  return table.concat(argv, " ")
end

-- Runs the CLI; opts.prefix: a shell snippet run before it in the same shell (ulimit...).
local function run(args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local cmd = command(args)
  if opts.prefix then cmd = "bash -c " .. q(opts.prefix .. "; exec " .. cmd) end
  local p = io.popen("cd " .. q(emulator.root) .. " && " .. base_env(opts.env) .. " " .. cmd
    .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo $?")
  local code = tonumber(p:read("*l"))
  p:close()
  local r = { code = code, out = read(out) or "", err = read(err) or "" }
  os.remove(out)
  os.remove(err)
  return r
end

local function seed(n)
  for i = 1, n do e:create_secret(("app-%02d"):format(i), { "value " .. i }) end
end

-- Valid UTF-8 with no C0, DEL or C1 control other than newlines and tabs.
local function printable(s)
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xC2 and c <= 0xDF and 2 or c >= 0xE0 and c <= 0xEF and 3
      or c >= 0xF0 and c <= 0xF4 and 4 or nil
    if not len then return false, ("byte 0x%02X at %d"):format(c, i) end
    for k = 1, len - 1 do
      local b = s:byte(i + k)
      if not b or b < 0x80 or b > 0xBF then return false, ("bad continuation at %d"):format(i + k) end
    end
    if (c < 0x20 and c ~= 10 and c ~= 9) or c == 0x7F or (c == 0xC2 and s:byte(i + 1) < 0xA0) then
      return false, ("control 0x%02X at %d"):format(c, i)
    end
    i = i + len
  end
  return true
end

-- A one-process CSMS stand-in (lua5.4 + LuaSocket) whose error messages are hostile: each
-- request gets the next answer of the script, in a loop, connection closed after each.
local HOSTILE = [=[
local socket = require "socket"
local answers = { ... }
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
io.stdout:write(port, "\n") io.stdout:flush()
srv:settimeout(60)
local listing = '{"secrets":[{"name":"db-password","update_time":NaN},{"name":"ok-one","create_time":-1e400}],'
  .. '"page_info":{"next_marker":null}}'
local evil = [[{"error_code":"CSMS.0002","error_msg":"refused\nok db-password (1499 bytes)\u001b[2J]]
  .. [[\u001b]0;owned\u0007\u009b31m]] .. "\255\254\192\175" .. [["}]]
local deadline = socket.gettime() + 60
while socket.gettime() < deadline do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  local line = c:receive("*l") or ""
  local len = 0
  repeat
    local h = c:receive("*l")
    local n = h and h:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  until not h or h == ""
  if len > 0 then c:receive(len) end
  local status, body = "200 OK", listing
  if line:find("/backup") then status, body = "400 Bad Request", evil end
  c:send(("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Request-Id: r\r\n"
    .. "Connection: close\r\n\r\n%s"):format(status, #body, body))
  c:close()
end
]=]

setup(function()
  e = emulator.start {}
  home = emulator.tmpdir()
end)
teardown(function()
  if e then e:stop() end
  os.execute("rm -rf " .. q(home))
end)
before_each(function() e:reset() end)

describe("csms-backup prints what the service says safely (item 20)", function()
  local server, port
  setup(function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(HOSTILE)
    f:close()
    local portfile = os.tmpname()
    server = io.popen("lua5.4 " .. q(script) .. " >" .. q(portfile) .. " 2>&1 & echo $!")
    server = server:read("*l")
    for _ = 1, 50 do
      port = (read(portfile) or ""):match("^(%d+)\n")
      if port then break end
      os.execute("sleep 0.1")
    end
    os.remove(portfile)
    os.remove(script)
  end)
  teardown(function() if server then os.execute("kill " .. server .. " 2>/dev/null") end end)

  it("no forged line, no escape sequence, no invalid UTF-8, in text and in --json", function()
    assert.truthy(tonumber(port), "the hostile server started")
    local dir = emulator.tmpdir() .. "/set"
    local endpoint = "http://127.0.0.1:" .. port
    local r = run { "backup", dir, "--endpoint", endpoint, "--retries", "0", "--names", "db-password" }
    assert.equal(1, r.code, r.err)
    for _, line in ipairs { r.out, r.err } do
      assert.is_true(printable(line))
      assert.is_nil(line:find("\27", 1, true), "an escape reached the terminal")
    end
    for l in r.out:gmatch("[^\n]+") do
      assert.is_nil(l:match("^ok db%-password"), "a forged line: " .. l)
    end
    assert.matches("failed db-password: ", r.out, 1, true)
    assert.matches("refused\\x0Aok db-password", r.out, 1, true)

    r = run { "backup", dir, "--endpoint", endpoint, "--retries", "0", "--names", "db-password", "--json" }
    assert.equal(1, r.code)
    assert.is_true(printable(r.out))
    local doc = assert(cjson.decode(r.out))
    assert.matches("refused", doc.items[1].error, 1, true)
    assert.is_nil(doc.items[1].error:find("\n", 1, true))
    os.execute("rm -rf " .. q(dir))
  end)

  it("list --json: numbers JSON cannot carry (lua-cjson reads NaN, 1e400) are printed as null", function()
    local r = run { "list", "--json", "--endpoint", "http://127.0.0.1:" .. port, "--retries", "0" }
    assert.equal(0, r.code, r.err)
    local doc = assert(cjson.decode(r.out), r.out)
    assert.same({ "db-password", "ok-one" }, { doc[1].name, doc[2].name })
    assert.equal(cjson.null, doc[1].update_time)
    assert.equal(cjson.null, doc[2].create_time)
  end)
end)

describe("csms-backup --json", function()
  it("prints one JSON document for every error: usage, settings, the set, the service", function()
    -- A directory of this run's own: a fixed one (/tmp/x) could be locked ("busy") by the same
    -- test of another suite running beside this one.
    local x = emulator.tmpdir() .. "/x"
    finally(function() os.execute("rm -rf " .. q(x:match("^(.*)/x$"))) end)
    local cases = {
      { { "verify", "/nonexistent/set", "--json" }, 2, "io" },
      { { "backup", "--json" }, 2, "usage" },
      { { "backup", x, "--json", "--concurrency", "0" }, 2, "usage" },
      { { "list", "--json", "--endpoint", "http://127.0.0.1:1", "--retries", "0" }, 1, "transport" },
      { { "backup", x, "--json", "--endpoint", e.endpoint, "--match", "zz*" }, 2, "invalid_argument" },
    }
    for _, case in ipairs(cases) do
      local r = run(case[1])
      assert.equal(case[2], r.code, table.concat(case[1], " ") .. ": " .. r.err)
      local doc = cjson.decode(r.out)
      assert.is_table(doc, table.concat(case[1], " ") .. " printed: " .. r.out)
      assert.equal(case[3], doc.error_kind)
      assert.equal(case[2], doc.exit)
      assert.is_string(doc.error)
      assert.matches("^[^\n]*\n$", r.out) -- one line, one document
    end
  end)
end)

describe("csms-backup selections", function()
  it("--names x,x restores once; --match selecting nothing is an error, not an empty set (item 19)", function()
    seed(3)
    local dir = emulator.tmpdir() .. "/set"
    local r = run { "backup", dir, "--endpoint", e.endpoint, "--match", "nope-*" }
    assert.equal(2, r.code)
    assert.matches("selects none of the 3 secrets", r.err, 1, true)
    assert.is_nil(io.open(dir .. "/manifest.json"))
    assert.equal(0, run { "backup", dir, "--endpoint", e.endpoint }.code)
    e:reset()
    r = run { "restore", dir, "--endpoint", e.endpoint, "--names", "app-01,app-01, app-01" }
    assert.equal(0, r.code, r.err)
    assert.equal(1, e:stats().requests.restore)
    assert.matches("1 ok, 0 failed, 0 skipped of 1", r.out, 1, true)
    r = run { "restore", dir, "--endpoint", e.endpoint, "--match", "zz*" }
    assert.equal(2, r.code)
    assert.matches("selects none", r.err, 1, true)
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("csms-backup verify of a set that is not whole (items 17, 18)", function()
  it("exits 1 and says so for complete: false (journal-only: see the full-disk case)", function()
    seed(3)
    local dir = emulator.tmpdir() .. "/set"
    assert.equal(0, run { "backup", dir, "--endpoint", e.endpoint }.code)
    local r = run { "verify", dir }
    assert.equal(0, r.code)
    local m = read(dir .. "/manifest.json")
    local f = assert(io.open(dir .. "/manifest.json", "w"))
    f:write((m:gsub('"complete": true', '"complete": false')))
    f:close()
    r = run { "verify", dir }
    assert.equal(1, r.code)
    assert.matches("incomplete", r.err, 1, true)
    r = run { "verify", dir, "--json" }
    assert.equal(1, r.code)
    assert.matches("incomplete", cjson.decode(r.out).incomplete, 1, true)
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("csms-backup on a full disk (item 17)", function()
  it("stops on the first journal write that fails, claims nothing unrecorded, and resumes", function()
    seed(40)
    local dir = emulator.tmpdir() .. "/set"
    -- a 6 KiB file-size limit: every blob fits, the journal soon does not (EFBIG, as ENOSPC)
    local r = run({ "backup", dir, "--endpoint", e.endpoint, "--concurrency", "1" },
      { prefix = "trap '' XFSZ; ulimit -f 6" })
    assert.equal(2, r.code, r.out .. r.err)
    assert.matches("cannot write manifest.journal", r.err, 1, true)
    assert.matches("resumed", r.err, 1, true)
    local claimed = select(2, r.out:gsub("\nok ", "")) + (r.out:find("^ok ") and 1 or 0)
    -- what it claimed is recorded: verify finds exactly those, intact, and calls the set incomplete
    local v = run { "verify", dir, "--json" }
    assert.equal(1, v.code, v.err)
    local doc = cjson.decode(v.out)
    assert.equal(claimed, doc.ok)
    assert.equal(0, doc.failed)
    assert.is_true(claimed < 40)
    assert.matches("--resume", doc.incomplete, 1, true)
    r = run { "restore", dir, "--endpoint", e.endpoint, "--dry-run" }
    assert.is_true(r.code ~= 0, "restore of what was left does not pass as whole")
    r = run { "backup", dir, "--endpoint", e.endpoint, "--resume" }
    assert.equal(0, r.code, r.err)
    assert.equal(0, run { "verify", dir }.code)
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("csms-backup interrupted by Ctrl-C", function()
  -- Starts a backup in the background (under script(1), a terminal, when tty), waits until it
  -- has recorded a few files, sends SIGINT; returns its exit code, stdout and stderr.
  local function interrupt(dir, tty)
    local out, err, codef, pidf = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
    local inner = "echo $$ > " .. pidf .. "; exec " .. command { "backup", dir, "--endpoint", e.endpoint,
      "--concurrency", "2" }
    local cmd = base_env() .. " sh -c " .. q(inner)
    if tty then cmd = "script -qfec " .. q(cmd) .. " /dev/null" end
    os.execute("cd " .. q(emulator.root) .. " && ( " .. cmd
      .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo $? > " .. q(codef) .. " ) &")
    local deadline = os.time() + 20
    local lines
    repeat
      os.execute("sleep 0.1")
      lines = select(2, (read(dir .. "/manifest.journal") or ""):gsub("\n", ""))
    until lines >= 4 or os.time() > deadline
    assert.is_true(lines >= 4, "the run got going")
    os.execute("kill -INT " .. read(pidf):match("%d+"))
    repeat os.execute("sleep 0.1") until (read(codef) or "") ~= "" or os.time() > deadline + 10
    local r = { code = tonumber(read(codef)), out = read(out), err = read(err) }
    for _, p in ipairs { out, err, codef, pidf } do os.remove(p) end
    return r
  end

  it("on a terminal: clears the progress bar before it says so", function()
    seed(30)
    e:config { latency_ms = 100 }
    local dir = emulator.tmpdir() .. "/set"
    local r = interrupt(dir, true)
    e:config { latency_ms = 0 }
    assert.equal(130, r.code)
    assert.matches("/30  ok ", r.out, 1, true) -- the bar was drawn
    assert.matches("\r\27[Kcsms-backup: interrupted", r.out, 1, true)
    os.execute("rm -rf " .. q(dir))
  end)

  it("exits 130 with no traceback, says --resume, and leaves a set that resumes", function()
    seed(30)
    e:config { latency_ms = 100 }
    local dir = emulator.tmpdir() .. "/set"
    local res = interrupt(dir)
    e:config { latency_ms = 0 }
    assert.equal(130, res.code)
    local stderr = res.err
    assert.matches("interrupted", stderr, 1, true)
    assert.matches("--resume", stderr, 1, true)
    assert.is_nil(stderr:find("traceback", 1, true))
    local r = run { "backup", dir, "--endpoint", e.endpoint, "--resume" }
    assert.equal(0, r.code, r.err)
    assert.matches("skipped", r.out, 1, true)
    assert.equal(0, run { "verify", dir }.code)
    os.execute("rm -rf " .. q(dir))
  end)
end)
