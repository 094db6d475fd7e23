-- Secret hygiene: every error path we can reach, run with recognisable credentials, and none
-- of the SK, the security token or the IAM token may show up in any error (every field,
-- recursively, and tostring), in anything bin/csms-backup prints, or in tostring(client).
-- Paths: configuration errors and misuse, authentication failures against the emulator (whose
-- 401 message echoes the canonical request, security token included), emulator faults,
-- conflicts, hostile servers (one echoes every credential in its 401), refused input,
-- csms.batch (faults, corrupt backup files) and the command line.
local csms = require "csms"
local batch = require "csms.batch"
local emulator = require "spec.support.emulator"
local rawserver = require "spec.support.rawserver"

local SK = "SK-CANARY-7f3a9c1e5b2d8f40"
local TOKEN = "TOKEN-CANARY-4e8a2b6c0d1f"
local AUTH = "AUTHTOK-CANARY-9d1f3a5c7e2b"
local CANARIES = { SK, TOKEN, AUTH }
local BLOB = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"

-- Every string reachable from v (keys, values, tostring of tables with a metatable) must be
-- free of the canaries. Leaks are collected (so one leak does not hide the next path's) and
-- each test ends with assert_no_leaks().
local leaks = {}
local function assert_clean(where, v, seen)
  seen = seen or {}
  local function check_string(s, path)
    for _, c in ipairs(CANARIES) do
      -- also a fragment, in case a message quotes part of a value
      if s:find(c:sub(-12), 1, true) then
        leaks[#leaks + 1] = where .. ": " .. path .. " holds " .. c:match("^%u+") .. ": " .. s
      end
    end
  end
  local function walk(x, path)
    local t = type(x)
    if t == "string" then
      check_string(x, path)
    elseif t == "table" then
      if seen[x] then return end
      seen[x] = true
      if getmetatable(x) then check_string(tostring(x), "tostring(" .. path .. ")") end
      for k, val in pairs(x) do
        walk(k, path .. "[key]")
        walk(val, path .. "." .. tostring(k))
      end
    elseif t == "userdata" then
      check_string(tostring(x), "tostring(" .. path .. ")")
    end
  end
  walk(v, "value")
end

local function assert_no_leaks()
  local found = leaks
  leaks = {}
  assert.same({}, found, #found .. " leaks:\n" .. table.concat(found, "\n"))
end

local errors_seen = 0
local function check_err(where, res, err)
  assert.is_nil(res, where .. ": expected a failure")
  assert.is_table(err, where)
  errors_seen = errors_seen + 1
  assert_clean(where, err)
end

local function check_raise(where, fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok, where .. ": expected a raise")
  errors_seen = errors_seen + 1
  assert_clean(where, tostring(msg))
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function write_file(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
  os.execute("chmod 600 " .. quote(path))
end

local e, tmp
setup(function()
  e = emulator.start { token = AUTH }
  tmp = rawserver.tmpdir()
end)
teardown(function()
  if e then e:stop() end
  if tmp then os.execute("rm -rf " .. quote(tmp)) end
end)
before_each(function()
  e:reset()
  leaks = {}
end)

-- A test whose collected leaks fail it at the end.
local function case(name, fn)
  it(name, function()
    fn()
    assert_no_leaks()
  end)
end

local function aksk(extra)
  local o = { ak = e.ak, sk = SK, security_token = TOKEN, project_id = e.project_id,
    endpoint = e.endpoint, retries = 1, backoff_base = 0.01, timeout = 3 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function token(extra)
  local o = { auth_token = AUTH, project_id = e.project_id, endpoint = e.endpoint, retries = 1,
    backoff_base = 0.01, timeout = 3 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("secret hygiene", function()
  case("configuration errors and misuse", function()
    local cases = {
      { sk = SK, security_token = TOKEN, endpoint = "https://h/with/path", project_id = "p" },
      { sk = SK, security_token = TOKEN, endpoint = "https://h", project_id = "bad/project" },
      { ak = "A,B", sk = SK, security_token = TOKEN, endpoint = "https://h", project_id = "p" },
      { ak = "AK", sk = SK, security_token = TOKEN .. "\r\n", endpoint = "https://h", project_id = "p" },
      { ak = "AK", sk = SK, security_token = TOKEN, region = "xx-none-1", project_id = "p" },
      { ak = "AK", sk = SK, security_token = TOKEN, endpoint = "https://h" },
      { auth_token = AUTH, region = "xx-none-1", project_id = "p" },
      { sk = SK, endpoint = "https://h", project_id = "p" },
    }
    for i, o in ipairs(cases) do check_err("config #" .. i, csms.new(o)) end
    check_raise("unknown option", function() return csms.new { ak = "AK", sk = SK, tiemout = SK } end)
    check_raise("option type", function() return csms.new { ak = "AK", sk = SK, timeout = SK } end)
    check_raise("sign sk type", function() return csms.sign({ method = "GET", url = "https://h/" }, { ak = SK }) end)
    check_err("sign bad url", csms.sign({ method = "GET", url = "https://h/\r\n" .. TOKEN },
      { ak = "AK", sk = SK, security_token = TOKEN }))
    check_err("sign bad token", csms.sign({ method = "GET", url = "https://h/" },
      { ak = "AK", sk = SK, security_token = TOKEN .. "\n" }))
  end)

  case("authentication failures against the emulator (its 401 echoes the canonical request)", function()
    local c = assert(csms.new(aksk()))
    check_err("wrong SK + security token: backup", c:backup("x"))
    check_err("wrong SK: restore", c:restore(BLOB))
    check_err("wrong SK: list", c:list_secrets())
    check_err("wrong SK: request", c:request("GET", "/v1/" .. e.project_id .. "/secrets?limit=1"))
    assert_clean("tostring(client)", tostring(c))
    assert_clean("client table", c)
    c:close()
    local u = assert(csms.new(aksk { ak = "UNKNOWN-AK" }))
    check_err("unknown AK", u:backup("x"))
    u:close()
    local t = assert(csms.new(token { auth_token = AUTH .. "-not-the-one" }))
    check_err("wrong IAM token", t:backup("x"))
    assert_clean("tostring(token client)", tostring(t))
    assert_clean("token client table", t)
    t:close()
    assert.is_true(e:stats().auth_failures >= 6)
  end)

  case("emulator faults, missing secrets and conflicts (IAM token client)", function()
    e:create_secret("s1", { "value-1" })
    -- throttle_deadline = 0: the injected 429 ends the call (kind throttled) instead of waiting
    local c = assert(csms.new(token { throttle_deadline = 0 }))
    check_err("missing secret", c:backup("missing"))
    local blob = assert(c:backup("s1")).secret_blob
    check_err("conflict", c:restore(blob))
    assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/s1"))
    e:fail_next { { kind = "drop_after_apply", op = "restore" } }
    check_err("conflict after retry", c:restore(blob))
    for _, kind in ipairs { "500", "500nested", "502html", "503", "504", "429", "drop" } do
      e:config { fault_rate = 1, faults = { kind } }
      check_err("fault " .. kind, c:backup("s1"))
    end
    e:config { fault_rate = 0 }
    c:close()
  end)

  case("hostile servers, two of which echo the request and the credentials in their 401", function()
    for _, scenario in ipairs { "echo_401", "echo_401_text", "truncated", "short_length", "endless_headers",
      "invalid_json", "blob_number", "garbage", "redirect_302", "silent" } do
      for _, o in ipairs { aksk { ak = "AK", retries = 0, timeout = 1 }, token { retries = 0, timeout = 1 } } do
        -- the echo: what the client sent, then its credentials again, raw and in header form
        local cred = o.auth_token or o.security_token
        local s = rawserver.start(scenario, { env = { RAWSERVER_ECHO = "\nraw " .. cred .. " again; "
          .. "X-Security-Token: " .. cred .. ", x-auth-token:" .. cred } })
        o.endpoint = s.url
        local c = assert(csms.new(o))
        check_err(scenario .. " backup", c:backup("x"))
        if scenario:find("^echo") then
          check_err(scenario .. " restore", c:restore(BLOB))
          check_err(scenario .. " list", c:list_secrets())
        end
        c:close()
        s.stop()
      end
    end
  end)

  case("OIDC federation: the id token, unscoped token, temporary SK and security token", function()
    local credentials = require "csms.credentials"
    credentials.forget()
    local id_token = "IDTOKEN-CANARY-2b7d9f1c3e5a"
    assert.equal(200, (e:admin("POST", "/__emulator/iam", { id_token = id_token })))
    local file = tmp .. "/id-token"
    write_file(file, id_token)
    local p = credentials.oidc { idp_id = "emulator-idp", id_token_file = file, iam_endpoint = e.endpoint }
    local creds = assert(p:credentials())
    -- the values this exchange handed out are canaries too (a wrong id token first: the error
    -- must not quote it)
    local added = { id_token, creds.sk, creds.security_token, "emulator-unscoped-" }
    for _, c in ipairs(added) do table.insert(CANARIES, c) end
    local bad = credentials.oidc { idp_id = "emulator-idp", id_token_file = tmp .. "/no-such-file",
      iam_endpoint = e.endpoint }
    check_err("unreadable token file", bad:credentials())
    write_file(tmp .. "/wrong-token", id_token .. "-wrong")
    check_err("refused id token", credentials.oidc { idp_id = "emulator-idp", id_token_file = tmp .. "/wrong-token",
      iam_endpoint = e.endpoint }:credentials())
    assert_clean("tostring(creds)", tostring(creds))
    local c = assert(csms.new { credentials = p, endpoint = e.endpoint, project_id = e.project_id, retries = 0 })
    check_err("missing secret", c:backup("missing"))
    assert_clean("client", c)
    assert_clean("tostring(client)", tostring(c))
    c:close()
    -- a server that echoes the security token in its 401
    local s = rawserver.start("echo_401", { env = { RAWSERVER_ECHO = "\nraw " .. creds.security_token
      .. " again; X-Security-Token: " .. creds.security_token } })
    c = assert(csms.new { credentials = p, endpoint = s.url, project_id = e.project_id, retries = 0, timeout = 1 })
    check_err("echo_401 backup", c:backup("x"))
    c:close()
    s.stop()
    for _ = 1, #added do table.remove(CANARIES) end
  end)

  case("refused input", function()
    local c = assert(csms.new(aksk()))
    check_err("bad name", c:backup("a\r\n" .. TOKEN))
    check_err("bad blob", c:restore("not a blob " .. TOKEN))
    check_err("bad path", c:request("GET", "/v1\r\n"))
    check_err("bad limit", c:list_secrets { limit = 0 })
    check_raise("name type", function() return c:backup(1) end)
    c:close()
    check_raise("after close", function() return c:backup("x") end)
  end)

  case("csms.batch: faults, an auth failure and corrupt backup files", function()
    for i = 1, 4 do e:create_secret("b" .. i, { "v" .. i }) end
    local dir = tmp .. "/set"
    local c = assert(csms.new(token { retries = 0 }))
    local report = batch.backup(c, { dir = dir })
    assert.equal(4, report.ok)
    e:config { fault_rate = 1, faults = { "500", "drop", "502html" } }
    local failing, ferr = batch.backup(c, { dir = tmp .. "/set2" })
    assert.is_true(ferr ~= nil or failing.failed > 0)
    assert_clean("batch backup with faults", { failing, ferr })
    failing, ferr = batch.backup(c, { dir = tmp .. "/set2b", names = { "b1", "b2", "b3" } })
    assert.is_true(ferr ~= nil or failing.failed > 0)
    assert_clean("batch backup of named secrets with faults", { failing, ferr })
    e:config { fault_rate = 0 }
    -- corrupt two files and the manifest's view of a third
    local f = assert(io.open(dir .. "/manifest.json"))
    local manifest = f:read("*a")
    f:close()
    local n = 0
    for file in manifest:gmatch('"file"%s*:%s*"([^"]+)"') do
      n = n + 1
      if n <= 2 then write_file(dir .. "/" .. file, "corrupted " .. n) end
    end
    local verified, verr = batch.verify(dir)
    assert.is_true(verr ~= nil or verified.failed >= 2)
    assert_clean("batch verify of corrupt files", { verified, verr })
    local restored, rerr = batch.restore(c, { dir = dir })
    assert.is_true(rerr ~= nil or restored.failed >= 2)
    assert_clean("batch restore of corrupt files", { restored, rerr })
    c:close()
    local bad = assert(csms.new(aksk { retries = 0 }))
    local denied, derr = batch.backup(bad, { dir = tmp .. "/set3" })
    assert.is_true(derr ~= nil or denied.failed > 0)
    assert_clean("batch backup with a wrong SK", { denied, derr })
    bad:close()
    errors_seen = errors_seen + 4
  end)

  case("bin/csms-backup prints no credential on any path", function()
    e:create_secret("cli-1", { "v" })
    local skf, tokf, badtokf = tmp .. "/sk", tmp .. "/token", tmp .. "/badtoken"
    write_file(skf, SK .. "\n")
    write_file(tokf, AUTH .. "\n")
    write_file(badtokf, AUTH .. "-wrong\n")
    local conn = ("--endpoint %s --project-id %s --timeout 3 --retries 0"):format(e.endpoint, e.project_id)
    local runs = {
      "list " .. conn .. " --ak " .. e.ak .. " --sk-file " .. skf,
      "list --json " .. conn .. " --ak " .. e.ak .. " --sk-file " .. skf,
      "backup " .. tmp .. "/cli1 " .. conn .. " --ak " .. e.ak .. " --sk-file " .. skf,
      "backup --json " .. tmp .. "/cli2 " .. conn .. " --auth-token-file " .. badtokf,
      "list " .. conn .. " --auth-token-file " .. badtokf,
      "list " .. conn .. " --sk " .. SK,
      "list " .. conn .. " --auth-token " .. AUTH,
      "list " .. conn .. " --ak AK --sk-file /nonexistent",
      "list --endpoint http://127.0.0.1:1 --project-id p --ak AK --sk-file " .. skf,
      "list --endpoint 'https://h/" .. TOKEN .. "' --project-id p --ak AK --sk-file " .. skf,
    }
    local env = ("HUAWEICLOUD_SDK_AK=%s HUAWEICLOUD_SDK_SK=%s HUAWEICLOUD_SDK_SECURITY_TOKEN=%s ")
      :format(e.ak, SK, TOKEN)
    runs[#runs + 1] = { env = env, args = "list " .. conn }
    runs[#runs + 1] = { env = env, args = "backup --json " .. tmp .. "/cli3 " .. conn }
    e:config { fault_rate = 1, faults = { "500", "drop" } }
    runs[#runs + 1] = "backup " .. tmp .. "/cli4 " .. conn .. " --auth-token-file " .. tokf
    for i, r in ipairs(runs) do
      if type(r) == "string" then r = { env = "", args = r } end
      local out = tmp .. "/cli.out"
      os.execute(("cd %s && %s lua5.4 bin/csms-backup %s >%s 2>&1"):format(".", r.env, r.args, out))
      local f = assert(io.open(out))
      local text = f:read("*a")
      f:close()
      assert.is_true(#text > 0, "run " .. i .. " printed something")
      assert_clean("csms-backup run " .. i .. " (" .. r.args .. ")", text)
    end
    e:config { fault_rate = 0 }
  end)

  case("reached a good number of error values", function()
    assert.is_true(errors_seen >= 50, "errors checked: " .. errors_seen)
  end)
end)
