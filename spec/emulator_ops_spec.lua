-- The CSMS emulator's operational side against real nginx: injected faults, latency that does
-- not block, throttling, persistence in --state-dir, the launcher (seed, TLS, credentials,
-- SIGTERM).
local emulator = require "spec.support.emulator"
local json = require "csms.json"
local defaults = require "csms.emulator.defaults"

local JSON_CT = "application/json;charset=UTF-8"
local CT = { ["Content-Type"] = JSON_CT }
local q = emulator.shell_quote

local sh, mkdtemp = emulator.sh, emulator.tmpdir

describe("csms emulator faults", function()
  local e

  setup(function() e = emulator.start{} end)
  teardown(function() if e then e:stop() end end)
  before_each(function() e:reset() end)

  local function tok(method, path, body)
    return e:request{ method = method, path = e:api(path), sign = "token",
      headers = body and CT or nil, body = body }
  end

  local function create(name)
    return tok("POST", "/secrets", { name = name, secret_string = "v" })
  end

  it("sends each kind from faults/next, once, before applying the operation", function()
    local cases = {
      { kind = "500", status = 500, check = function(doc, _, h)
          assert.are.equal("CSMS.0500", doc.error_code)
          assert.are.equal(JSON_CT, h["content-type"])
        end },
      { kind = "500nested", status = 500, check = function(doc)
          assert.are.equal("CSMS.0500", doc.error.code)
          assert.is_string(doc.error.message)
          assert.is_nil(doc.error_code)
        end },
      { kind = "502html", status = 502, check = function(doc, body, h)
          assert.is_nil(doc)
          assert.matches("^text/html", h["content-type"])
          assert.matches("502 Bad Gateway", body)
        end },
      { kind = "503", status = 503, check = function(doc) assert.is_string(doc.error_code) end },
      { kind = "504", status = 504, check = function(doc)
          assert.are.equal("APIG.0203", doc.error_code)
        end },
      { kind = "429", status = 429, check = function(doc, _, h)
          assert.are.equal("APIG.0308", doc.error_code)
          assert.are.equal("1", h["retry-after"])
        end },
    }
    for i, c in ipairs(cases) do
      local name = "pre-" .. i
      e:fail_next({ { kind = c.kind } })
      local status, headers, body, doc = create(name)
      assert.are.equal(c.status, status, c.kind)
      assert.are.equal(32, #headers["x-request-id"])
      c.check(doc, body, headers)
      assert.are.equal(404, (tok("GET", "/secrets/" .. name)), c.kind .. " must not apply")
      assert.are.equal(200, (create(name)), c.kind .. " must be used once")
    end
    assert.are.equal(#cases, e:stats().faults)
  end)

  it("drops the connection without an answer for drop", function()
    e:fail_next({ { kind = "drop" } })
    local status, err = create("dropped")
    assert.is_nil(status)
    assert.matches("closed", err)
    assert.are.equal(404, (tok("GET", "/secrets/dropped")))
  end)

  it("applies the operation first for the *_after_apply kinds", function()
    e:fail_next({ { kind = "drop_after_apply", op = "create" } })
    local status, err = create("applied-1")
    assert.is_nil(status)
    assert.matches("closed", err)
    assert.are.equal(200, (tok("GET", "/secrets/applied-1")))

    e:fail_next({ { kind = "504_after_apply", op = "create_version" } })
    local st2, _, _, doc2 = tok("POST", "/secrets/applied-1/versions", { secret_string = "two" })
    assert.are.equal(504, st2)
    assert.are.equal("APIG.0203", doc2.error_code)
    local _, _, _, latest = tok("GET", "/secrets/applied-1/versions/latest")
    assert.are.equal("two", latest.version.secret_string)

    local _, _, _, b = tok("POST", "/secrets/applied-1/backup")
    tok("DELETE", "/secrets/applied-1")
    e:fail_next({ { kind = "500_after_apply", op = "restore" } })
    local st3 = tok("POST", "/secrets/restore", { secret_blob = b.secret_blob })
    assert.are.equal(500, st3)
    assert.are.equal(200, (tok("GET", "/secrets/applied-1")))
    -- the retried restore meets its own secret
    local st4, _, _, doc4 = tok("POST", "/secrets/restore", { secret_blob = b.secret_blob })
    assert.are.equal(400, st4)
    assert.matches("already exist", doc4.error_msg)
  end)

  it("keeps the queue in order and gives an entry with an op to that op only", function()
    e:create_secret("q1", { "x" })
    e:fail_next({ { kind = "503", op = "backup" }, { kind = "500" }, { kind = "504", op = "backup" } })
    -- first get: the first entry that fits is the op-less 500
    assert.are.equal(500, (tok("GET", "/secrets/q1")))
    assert.are.equal(200, (tok("GET", "/secrets/q1")))
    assert.are.equal(503, (tok("POST", "/secrets/q1/backup")))
    assert.are.equal(504, (tok("POST", "/secrets/q1/backup")))
    assert.are.equal(200, (tok("POST", "/secrets/q1/backup")))
  end)

  it("refuses unknown kinds and ops in faults/next and config", function()
    assert.are.equal(400, (e:admin("POST", "/__emulator/faults/next", json.array({ { kind = "boom" } }))))
    assert.are.equal(400, (e:admin("POST", "/__emulator/faults/next",
      json.array({ { kind = "500", op = "nope" } }))))
    assert.are.equal(400, (e:admin("POST", "/__emulator/config", { faults = { "boom" } })))
    assert.are.equal(400, (e:admin("POST", "/__emulator/config", { no_such_setting = 1 })))
    assert.are.equal(400, (e:admin("POST", "/__emulator/config", { fault_rate = 2 })))
  end)

  it("injects faults at fault_rate, of the configured kinds, on the configured ops only", function()
    e:create_secret("r1", { "x" })
    e:config({ fault_rate = 1, faults = { "503" }, fault_ops = { "backup" } })
    for _ = 1, 5 do
      assert.are.equal(503, (tok("POST", "/secrets/r1/backup")))
      assert.are.equal(200, (tok("GET", "/secrets/r1")))
    end
    -- never on the admin API
    assert.is_true(e:health().ok)
    local s = e:stats()
    assert.are.equal(5, s.faults)
    assert.are.equal(5, s.requests.backup)
    assert.are.equal(5, s.requests.get)
    assert.are.equal(10, s.total)
    e:config({ fault_rate = 0.5, faults = { "500", "429" }, fault_ops = json.null })
    local counts = {}
    for _ = 1, 40 do
      local st = tok("GET", "/secrets/r1")
      counts[st] = (counts[st] or 0) + 1
    end
    assert.is_true((counts[200] or 0) > 5 and (counts[200] or 0) < 35)
    assert.is_true((counts[500] or 0) > 0 and (counts[429] or 0) > 0)
    assert.are.equal(40, (counts[200] or 0) + (counts[500] or 0) + (counts[429] or 0))
  end)

  it("counts API requests per op and leaves admin calls out", function()
    e:create_secret("c1", { "x" })
    tok("GET", "/secrets")
    tok("GET", "/secrets/c1")
    tok("GET", "/secrets/c1/versions")
    tok("GET", "/secrets/c1/versions/v1")
    tok("POST", "/secrets/c1/versions", { secret_string = "y" })
    tok("POST", "/secrets/c1/backup")
    tok("DELETE", "/secrets/c1")
    e:request{ method = "GET", path = e:api("/secrets"), sign = "token", token = "bad" }
    e:health()
    local s = e:stats()
    assert.are.same({ backup = 1, restore = 0, create = 0, list = 2, get = 1, delete = 1,
      create_version = 1, list_versions = 1, get_version = 1, unknown = 0 }, s.requests)
    assert.are.equal(8, s.total)
    assert.are.equal(1, s.auth_failures)
    e:reset()
    assert.are.equal(0, e:stats().total)
  end)

  it("throttles above throttle_rps with 429 APIG.0308 and Retry-After", function()
    e:config({ throttle_rps = 3, retry_after = 2 })
    local statuses, throttled = {}, nil
    for i = 1, 12 do
      local st, h, _, doc = tok("GET", "/secrets")
      statuses[i] = st
      if st == 429 then throttled = { h = h, doc = doc } end
    end
    local ok, n429 = 0, 0
    for _, st in ipairs(statuses) do
      if st == 200 then ok = ok + 1 elseif st == 429 then n429 = n429 + 1 end
    end
    assert.are.equal(12, ok + n429)
    assert.is_true(ok >= 3)
    assert.is_true(n429 >= 1)
    assert.are.equal("APIG.0308", throttled.doc.error_code)
    assert.are.equal("2", throttled.h["retry-after"])
    assert.is_true(e:stats().throttled >= 1)
    e:config({ throttle_rps = 0 })
    for _ = 1, 8 do assert.are.equal(200, (tok("GET", "/secrets"))) end
  end)

  it("delays API requests without blocking others (latency)", function()
    e:config({ latency_ms = 300 })
    local dir = mkdtemp()
    local url = e.endpoint .. e:api("/secrets")
    local curl = "curl -s -o /dev/null -H " .. q("X-Auth-Token: " .. e.token) .. " "
    local script = table.concat({
      "cd " .. q(dir),
      "date +%s%N > t0",
      "( " .. curl .. q(url) .. "; date +%s%N > a ) &",
      "( " .. curl .. q(url) .. "; date +%s%N > b ) &",
      "sleep 0.1",
      "curl -s -o health.json " .. q(e.endpoint .. "/__emulator/health") .. "; date +%s%N > h",
      "wait",
    }, "\n")
    assert.is_true(sh("bash -c " .. q(script)))
    local function t(name) return tonumber(emulator.read_all(dir .. "/" .. name)) / 1e9 end
    local t0, a, b, h = t("t0"), t("a"), t("b"), t("h")
    sh("rm -rf " .. q(dir))
    -- the latency is real (a lower bound: a loaded machine only adds to it)
    assert.is_true(a - t0 >= 0.3 and b - t0 >= 0.3)
    -- the health check was answered while both slow requests were still waiting
    assert.is_true(h < a and h < b)
    -- and the two slow ones overlapped: the emulator saw both arrive before either was answered
    -- (order, not duration: one after the other, the second would arrive after the first ended)
    local arrivals = {}
    for _, r in ipairs(e:stats().arrivals) do
      if r.op == "list" then arrivals[#arrivals + 1] = r.t / 1000 end
    end
    assert.are.equal(2, #arrivals)
    assert.is_true(math.max(arrivals[1], arrivals[2]) < math.min(a, b))
  end)
end)

describe("csms emulator launcher", function()
  it("prints the endpoint, project id and credentials it accepts, and honours them", function()
    local e = emulator.start{ args = { "--project-id", "0123456789abcdef0123456789abcdef",
      "--ak", "MYAK1234567890123456" }, sk = "my-sk", token = "my-token" }
    local ok, err = pcall(function()
      assert.matches("^endpoint=http://127%.0%.0%.1:%d+$", e.output:match("endpoint=[^\n]*"))
      assert.are.equal("0123456789abcdef0123456789abcdef", e.project_id)
      assert.are.equal("MYAK1234567890123456", e.ak)
      assert.are.equal("my-sk", e.sk)
      assert.are.equal(200, (e:request{ method = "GET", path = e:api("/secrets"), sign = "node" }))
      assert.are.equal(200, (e:request{ method = "GET", path = e:api("/secrets"), sign = "token" }))
      local st = e:request{ method = "GET", path = e:api("/secrets"), sign = "node",
        ak = defaults.ak, sk = defaults.sk }
      assert.are.equal(401, st)
      local st2 = e:request{ method = "GET", path = e:api("/secrets", defaults.project_id),
        sign = "node" }
      assert.are.equal(403, st2)
    end)
    e:stop()
    assert(ok, err)
  end)

  it("prints the defaults of lua/csms/emulator/defaults.lua when given none", function()
    local e = emulator.start{}
    e:stop()
    assert.are.same({ defaults.project_id, defaults.ak, defaults.sk, defaults.token },
      { e.project_id, e.ak, e.sk, e.token })
    local p = io.popen(q(emulator.launcher) .. " --help")
    local out = p:read("*a")
    p:close()
    assert.matches("(default " .. defaults.port .. ";", out, 1, true)
    assert.matches("(default " .. defaults.host .. ")", out, 1, true)
  end)

  it("takes the SK and token from files or the environment, never from its command line", function()
    for _, opt in ipairs({ "--sk", "--token" }) do
      local ok, out = emulator.run(q(emulator.launcher) .. " " .. opt .. " leaked-on-ps")
      assert.is_false(ok)
      assert.matches(opt .. "-file FILE", out, 1, true)
      assert.matches("$CSMS_EMULATOR_" .. opt:sub(3):upper(), out, 1, true)
      assert.is_nil(out:find("Usage"))
    end
    -- Canaries unique to this run: another suite on the machine (whose shell command lines
    -- name its own canaries) cannot make this check fail. mktemp's random name, not
    -- os.time() and math.random: suites started together (.ci/test runs them side by side)
    -- share the second, and 5.1-5.3's unseeded math.random its sequence.
    local tagfile = emulator.tmpname()
    finally(function() os.remove(tagfile) end)
    local tag = tagfile:match("([^/.]+)$")
    local SK, TOKEN = "SK-ENV-CANARY-" .. tag, "TOKEN-ENV-CANARY-" .. tag
    local port = emulator.free_port()
    local ok, out = emulator.run("CSMS_EMULATOR_SK=" .. SK .. " CSMS_EMULATOR_TOKEN=" .. TOKEN .. " " ..
      q(emulator.launcher) .. " --background --port " .. port)
    assert(ok, out)
    local pid = out:match("pid=(%d+)")
    local _, ps = emulator.run("ps -eo args")
    sh("kill -TERM " .. pid)
    assert.matches("sk=" .. SK, out, 1, true)
    assert.matches("token=" .. TOKEN, out, 1, true)
    assert.is_nil(ps:find(SK, 1, true))
    assert.is_nil(ps:find(TOKEN, 1, true))
    -- and from files (the spec helper's way), the file's first line
    local e = emulator.start{ sk = "SK-FILE-CANARY-" .. tag, token = "TOKEN-FILE-CANARY-" .. tag }
    _, ps = emulator.run("ps -eo args")
    local st = e:request{ method = "GET", path = e:api("/secrets"), sign = "node" }
    local st2 = e:request{ method = "GET", path = e:api("/secrets"), sign = "token" }
    e:stop()
    assert.are.same({ "SK-FILE-CANARY-" .. tag, "TOKEN-FILE-CANARY-" .. tag }, { e.sk, e.token })
    assert.are.same({ 200, 200 }, { st, st2 })
    assert.is_nil(ps:find("FILE-CANARY-" .. tag, 1, true))
    ok, out = emulator.run(q(emulator.launcher) .. " --sk-file /nonexistent/sk")
    assert.is_false(ok)
    assert.matches("cannot read --sk-file /nonexistent/sk", out, 1, true)
  end)

  it("prints --help and refuses unknown options", function()
    local p = io.popen(q(emulator.launcher) .. " --help")
    local out = p:read("*a")
    p:close()
    assert.matches("Usage: csms%-emulator", out)
    assert.matches("%-%-state%-dir", out)
    assert.is_false(sh(q(emulator.launcher) .. " --bogus >/dev/null 2>&1"))
  end)

  it("stops on SIGTERM: nginx exits and the temporary prefix is removed", function()
    local e = emulator.start{}
    local prefix = e.prefix
    local nginx_pid = tonumber(emulator.read_all(prefix .. "/logs/nginx.pid"))
    assert.is_number(nginx_pid)
    assert.is_true(sh("kill -0 " .. nginx_pid))
    assert.is_true(sh("test -d " .. q(prefix)))
    e:stop()
    assert.is_false(sh("kill -0 " .. nginx_pid .. " 2>/dev/null"))
    assert.is_false(sh("test -e " .. q(prefix)))
    assert.is_false(sh("kill -0 " .. e.stopped_pid .. " 2>/dev/null"))
    local status = e:http({ method = "GET", target = "/__emulator/health" })
    assert.is_nil(status)
  end)

  it("runs in the foreground until SIGTERM, then removes its prefix", function()
    local port = emulator.free_port()
    local out = emulator.tmpname()
    local p = io.popen(q(emulator.launcher) .. " --port " .. port .. " > " .. q(out) ..
      " 2>&1 & echo $!")
    local pid = tonumber(p:read("*l"))
    p:close()
    local text
    for _ = 1, 200 do
      text = emulator.read_all(out) or ""
      if text:find("prefix=[^\n]*\n") then break end
      os.execute("sleep 0.05")
    end
    local prefix = text:match("prefix=([^\n]*)\n")
    assert.is_string(prefix, text)
    assert.matches("endpoint=http://127.0.0.1:" .. port, text, 1, true)
    local st = emulator.http({ port = port, target = "/__emulator/health" })
    assert.are.equal(200, st)
    assert.is_true(sh("kill -TERM " .. pid))
    for _ = 1, 200 do
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then break end
      os.execute("sleep 0.05")
    end
    os.remove(out)
    assert.is_false(sh("kill -0 " .. pid .. " 2>/dev/null"))
    assert.is_false(sh("test -e " .. q(prefix)))
    assert.is_nil((emulator.http({ port = port, target = "/__emulator/health" })))
  end)

  it("reports a port in use with nginx's error, and exits non-zero", function()
    local e = emulator.start{}
    local p = io.popen(q(emulator.launcher) .. " --background --port " .. e.port .. " 2>&1; echo rc=$?")
    local out = p:read("*a")
    p:close()
    local ok = pcall(function() assert.are.equal(200, (e:admin("GET", "/__emulator/health"))) end)
    e:stop()
    assert.is_true(ok)
    assert.matches("rc=1", out, 1, true)
    assert.matches("Address already in use", out, 1, true)
  end)

  it("loads --seed secrets at start", function()
    local dir = mkdtemp()
    local f = assert(io.open(dir .. "/seed.json", "w"))
    f:write(json.encode({ secrets = { { name = "seeded", versions = { "first", "second" },
      description = "from seed" } } }))
    f:close()
    local e = emulator.start{ seed = dir .. "/seed.json" }
    local ok, err = pcall(function()
      local st, _, _, doc = e:request{ method = "GET", path = e:api("/secrets/seeded"), sign = "node" }
      assert.are.equal(200, st)
      assert.are.equal("from seed", doc.secret.description)
      local _, _, _, v = e:request{ method = "GET", path = e:api("/secrets/seeded/versions/latest"),
        sign = "token" }
      assert.are.equal("second", v.version.secret_string)
      assert.are.equal("v2", v.version.version_metadata.id)
    end)
    e:stop()
    sh("rm -rf " .. q(dir))
    assert(ok, err)
  end)

  it("fails clearly on a bad seed file, with the nginx error log", function()
    local dir = mkdtemp()
    local f = assert(io.open(dir .. "/seed.json", "w"))
    f:write("{not json")
    f:close()
    local ok, err = pcall(emulator.start, { seed = dir .. "/seed.json" })
    sh("rm -rf " .. q(dir))
    assert.is_false(ok)
    assert.matches("seed file", tostring(err))
  end)

  it("keeps secrets and the master key in --state-dir across a restart", function()
    local dir = mkdtemp()
    local e = emulator.start{ state_dir = dir }
    local before, blob
    local ok, err = pcall(function()
      assert.are.equal(200, (e:request{ method = "POST", path = e:api("/secrets"), sign = "node",
        headers = CT, body = { name = "persist", secret_string = "one" } }))
      assert.are.equal(200, (e:request{ method = "POST", path = e:api("/secrets/persist/versions"),
        sign = "node", headers = CT, body = { secret_string = "two" } }))
      e:create_secret("other", { "x" })
      assert.are.equal(204, (e:request{ method = "DELETE", path = e:api("/secrets/other"),
        sign = "token" }))
      local _, _, _, b = e:request{ method = "POST", path = e:api("/secrets/persist/backup"),
        sign = "token" }
      blob = b.secret_blob
      before = e:dump()
    end)
    e:stop()
    assert(ok, err)
    local p = io.popen("stat -c %a " .. q(dir .. "/master-key.json"))
    assert.are.equal("600", p:read("*l"))
    p:close()

    local e2 = emulator.start{ state_dir = dir }
    ok, err = pcall(function()
      assert.are.same(before, e2:dump())
      local _, _, _, v = e2:request{ method = "GET", path = e2:api("/secrets/persist/versions/latest"),
        sign = "node" }
      assert.are.equal("two", v.version.secret_string)
      assert.are.equal(404, (e2:request{ method = "GET", path = e2:api("/secrets/other"), sign = "token" }))
      -- the same master key: the old blob restores
      e2:request{ method = "DELETE", path = e2:api("/secrets/persist"), sign = "token" }
      local st = e2:request{ method = "POST", path = e2:api("/secrets/restore"), sign = "node",
        headers = CT, body = { secret_blob = blob } }
      assert.are.equal(200, st)
      assert.are.same(before, e2:dump())
    end)
    e2:stop()
    -- a copy of the key with another project id: the blob is refused for the project
    local dir2 = mkdtemp()
    sh("cp " .. q(dir .. "/master-key.json") .. " " .. q(dir2 .. "/"))
    local e3 = emulator.start{ state_dir = dir2, args = { "--project-id", string.rep("b", 32) } }
    local ok3, err3 = pcall(function()
      local st, _, _, doc = e3:request{ method = "POST", path = e3:api("/secrets/restore"),
        sign = "node", headers = CT, body = { secret_blob = blob } }
      assert.are.equal(400, st)
      assert.are.equal("CSMS.0002", doc.error_code)
      assert.are.equal("The secret_blob is invalid: it was created in another project.", doc.error_msg)
    end)
    e3:stop()
    sh("rm -rf " .. q(dir) .. " " .. q(dir2))
    assert(ok, err)
    assert(ok3, err3)
  end)

  it("serves HTTPS with --tls-cert/--tls-key and checks signatures there too", function()
    local e = emulator.start{ tls = true }
    local ok, err = pcall(function()
      assert.matches("^https://", e.endpoint)
      local st = e:request{ method = "POST", path = e:api("/secrets"), sign = "node", headers = CT,
        body = { name = "tls1", secret_string = "x" } }
      assert.are.equal(200, st)
      local st2, _, _, doc = e:request{ method = "GET", path = e:api("/secrets/tls1"), sign = "node" }
      assert.are.equal(200, st2)
      assert.are.equal("tls1", doc.secret.name)
      assert.are.equal(401, (e:request{ method = "GET", path = e:api("/secrets"), sign = "node",
        sk = "wrong" }))
    end)
    e:stop()
    assert(ok, err)
  end)
end)
