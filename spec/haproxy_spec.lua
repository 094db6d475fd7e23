-- csms inside a real HAProxy (Debian's 2.6, Lua 5.3) over csms.haproxy (core.httpclient):
-- requests never block HAProxy's single thread, and csms.batch keeps many in flight. Proofs by
-- order and overlap, never by time: a server that holds every request until N wait at once
-- (rawserver's gate), HAProxy answering /ping meanwhile, and the emulator's own arrivals.
local batch = require "csms.batch"
local emulator = require "spec.support.emulator"
local rawserver = require "spec.support.rawserver"
local test_haproxy = require "spec.support.test_haproxy"

local q = emulator.shell_quote
local LATENCY_MS = 300

local e, app, dir

local function eventually(check)
  local v
  for _ = 1, 300 do
    v = check()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return v
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

setup(function()
  dir = emulator.tmpdir()
  e = emulator.start()
  e:create_secret("s", { "value one", "value two" })
  for i = 1, 12 do e:create_secret("bulk-" .. i, { "v" .. i }) end
  app = test_haproxy.start { settings = ("return { ak = %q, sk = %q, project_id = %q, endpoint = %q }")
    :format(e.ak, e.sk, e.project_id, e.endpoint) }
end)

teardown(function()
  if app then app:stop() end
  if e then e:stop() end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

local function app_log() return "\nhaproxy.log:\n" .. app:log():sub(-3000) end

-- The fenced block of docs/haproxy.md that opens with ```<lang>, whose first line is first.
local function doc_block(lang, first)
  local doc = emulator.read_all(emulator.root .. "/docs/haproxy.md")
  for block in doc:gmatch("```" .. lang .. "\n(.-)```") do
    if block:sub(1, #first) == first then return block end
  end
  error("no ```" .. lang .. " block starting with " .. first .. " in docs/haproxy.md")
end

local function replace(text, from, to)
  local a, b = text:find(from, 1, true)
  assert(a, "not in the recipe: " .. from)
  return text:sub(1, a - 1) .. to .. text:sub(b + 1)
end

describe("csms inside HAProxy", function()
  it("backs up and restores through core.httpclient, signed as the emulator checks", function()
    e:reset_stats()
    local code, body = app:get("/backup?name=s")
    assert.equal(200, code, tostring(body) .. app_log())
    assert.matches("^ok %d+\n$", body)
    -- The secret gone, its blob brings it back (a POST with a JSON body).
    local status = e:request { method = "DELETE", path = "/v1/" .. e.project_id .. "/secrets/s", sign = "node" }
    assert.equal(204, status)
    code, body = app:get("/restore?name=s")
    assert.equal(200, code, tostring(body) .. app_log())
    assert.equal("ok s\n", body)
    local stats = e:stats()
    assert.equal(1, stats.requests.backup)
    assert.equal(1, stats.requests.restore)
    assert.equal(0, stats.auth_failures)
  end)

  it("never blocks HAProxy: 20 calls wait on the server together, /ping answers meanwhile", function()
    local flag = dir .. "/open-the-gate"
    local gate = rawserver.start("gate", { env = { RAWSERVER_GATE = "20", RAWSERVER_GATE_FLAG = flag } })
    finally(gate.stop)
    local script = dir .. "/burst.sh"
    write(script, ([[
      for i in $(seq 20); do
        curl -s -m 60 -o %s/out.$i -w '%%{http_code}\n' 'http://127.0.0.1:%d/backup?endpoint=%s' > %s/code.$i &
      done
      wait
    ]]):format(dir, app.port, gate.url, dir))
    local burst = io.popen("bash " .. q(script) .. " 2>&1")
    -- All 20 reach the server and wait there at once: a blocking call would hold HAProxy's one
    -- thread, and the server would never see a second.
    local held = eventually(function() return gate.log():find("held 20", 1, true) end)
    -- ... and while they wait, HAProxy runs Lua and answers.
    local code, body = app:get("/ping", 10)
    local log_then = gate.log()
    write(flag, "")
    burst:read("*a")
    burst:close()
    assert.truthy(held, "the server never held 20 requests at once:\n" .. gate.log() .. app_log())
    assert.equal(200, code, body)
    assert.equal("pong inflight=20\n", body)
    assert.is_nil(log_then:find("released", 1, true), "/ping was answered before the server let the calls go")
    for i = 1, 20 do
      assert.equal("200\n", emulator.read_all(dir .. "/code." .. i), "request " .. i .. app_log())
      assert.matches("^ok %d+", emulator.read_all(dir .. "/out." .. i))
    end
    assert.matches("released 20", gate.log())
  end)

  it("runs csms.batch concurrently: 8 backups in flight at once, never 9", function()
    local gate = rawserver.start("gate", { env = { RAWSERVER_GATE = "8", RAWSERVER_NAMES = "11" } })
    finally(gate.stop)
    local code, body = app:get("/backup-all?concurrency=8&endpoint=" .. gate.url .. "&dir=" .. dir .. "/gate-set", 90)
    assert.equal(200, code, tostring(body) .. app_log())
    assert.equal("ok=11 failed=0\n", body)
    local log = gate.log()
    assert.matches("held 8\nreleased 8", log)
    assert.is_nil(log:find("held 9", 1, true), log)
    local backups = 0
    for _ in log:gmatch("request POST [^\n]*/backup") do backups = backups + 1 end
    assert.equal(11, backups)
  end)

  it("backs up a whole project from the emulator with 4 requests overlapping, as its arrivals show", function()
    e:config { latency_ms = LATENCY_MS }
    finally(function() e:config { latency_ms = 0 } end)
    e:reset_stats()
    local set = dir .. "/emulator-set"
    local code, body = app:get("/backup-all?concurrency=4&dir=" .. set, 90)
    assert.equal(200, code, tostring(body) .. app_log())
    assert.equal("ok=13 failed=0\n", body)
    -- The emulator holds each request LATENCY_MS after its arrival: requests that arrived less
    -- than that apart were at the server together.
    local times = {}
    for _, a in ipairs(e:stats().arrivals) do
      if a.op == "backup" then times[#times + 1] = a.t end
    end
    assert.equal(13, #times)
    table.sort(times)
    local most = 0
    for i = 1, #times do
      local n = 0
      for j = i, #times do if times[j] - times[i] < LATENCY_MS then n = n + 1 end end
      most = math.max(most, n)
    end
    assert.equal(4, most)
    -- The files are whole: the manifest lists every blob with its digest.
    local report = assert(batch.verify(set))
    assert.same({ 13, 0 }, { report.ok, report.failed })
  end)

  it("shares one client between a batch and single calls made meanwhile", function()
    e:config { latency_ms = 100 }
    finally(function() e:config { latency_ms = 0 } end)
    local batch_run = io.popen(("curl -s -m 60 -w '\\n%%{http_code}\\n' %s 2>&1"):format(
      q(("http://127.0.0.1:%d/backup-all?concurrency=4&dir=%s/shared-set"):format(app.port, dir))))
    local singles = {}
    for i = 1, 3 do singles[i] = { app:get("/backup?name=s", 30) } end
    local out = batch_run:read("*a")
    batch_run:close()
    for i = 1, 3 do
      assert.equal(200, singles[i][1], tostring(singles[i][2]) .. app_log())
      assert.matches("^ok %d+", singles[i][2])
    end
    assert.equal("ok=13 failed=0\n\n200\n", out, app_log())
  end)

  it("runs the recipe of docs/haproxy.md as written (paths, port and credentials aside)", function()
    e:config { latency_ms = 0 }
    local recipe = doc_block("lua", "-- CSMS backups from inside HAProxy")
    local backups = dir .. "/recipe-backups"
    recipe = replace(recipe, '"/var/backups/csms"', ("%q"):format(backups))
    local docs_app = test_haproxy.start {
      config = function(prefix, port)
        local f = assert(io.open(prefix .. "/csms_backup.lua", "w"))
        f:write(recipe)
        f:close()
        local cfg = doc_block("text", "global")
        cfg = replace(cfg, "/opt/lua-csms/build/lua53/?.so", test_haproxy.cpath())
        cfg = replace(cfg, "/opt/lua-csms/lua/?.lua", emulator.root .. "/lua/?.lua")
        cfg = replace(cfg, "/opt/lua-csms/lua/?/init.lua", emulator.root .. "/lua/?/init.lua")
        cfg = replace(cfg, "/etc/haproxy/csms_backup.lua", prefix .. "/csms_backup.lua")
        return replace(cfg, "127.0.0.1:8404", "127.0.0.1:" .. port)
      end,
      env = { HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk, HUAWEICLOUD_SDK_PROJECT_ID = e.project_id,
              HUAWEICLOUD_SDK_REGION_CSMS_CN_NORTH_4 = e.endpoint },
      ready = "/health",
    }
    finally(function() docs_app:stop() end)
    local code, body = docs_app:get("/csms/backup", 60, "POST")
    assert.equal(200, code, tostring(body) .. "\n" .. docs_app:log())
    assert.equal("ok=13 failed=0\n", body)
    local report = assert(batch.verify(backups))
    assert.same({ 13, 0 }, { report.ok, report.failed })
    -- Only POST starts a backup.
    code = docs_app:get("/csms/backup", 10)
    assert.are_not.equal(200, code)
  end)

  it("verifies TLS against httpclient.ssl.ca-file", function()
    local tls = emulator.start { tls = true }
    finally(function() tls:stop() end)
    tls:create_secret("s", { "value" })
    local tls_app = test_haproxy.start {
      config = function(prefix, port)
        local cfg = emulator.read_all(app.prefix .. "/haproxy.cfg")
        cfg = cfg:gsub("global\n", "global\n  httpclient.ssl.ca-file " .. tls.tls.cert .. "\n", 1)
        cfg = cfg:gsub("bind 127%.0%.0%.1:%d+", "bind 127.0.0.1:" .. port)
        return (cfg:gsub(app.prefix:gsub("%p", "%%%0"), prefix))
      end,
      settings = ("return { ak = %q, sk = %q, project_id = %q, endpoint = %q }")
        :format(tls.ak, tls.sk, tls.project_id, tls.endpoint),
    }
    finally(function() tls_app:stop() end)
    local code, body = tls_app:get("/backup?name=s")
    assert.equal(200, code, tostring(body) .. "\n" .. tls_app:log())
    assert.matches("^ok %d+\n$", body)
    -- The same server through the HAProxy that trusts only the system's CAs.
    code, body = app:get("/backup?name=s&endpoint=" .. tls.endpoint, 60)
    assert.equal(502, code, tostring(body))
    assert.matches("^transport ", body)
  end)

  it("reports HAProxy's 504 as kind timeout, after HAProxy itself sent the request 4 times", function()
    -- A server that never answers; a 1 s timeout; retries = 1 in the app's client.
    local gate = rawserver.start("gate", { env = { RAWSERVER_GATE = "1000" } })
    finally(gate.stop)
    local code, body = app:get("/backup?timeout=1&endpoint=" .. gate.url, 60)
    assert.equal(502, code, tostring(body) .. app_log())
    assert.matches("^timeout csms backup: timeout: HAProxy: 504 The server didn't respond in time%.", body)
    assert.matches("after 2 attempts", body)
    -- 2 attempts, each sent 4 times by HAProxy 2.6's httpclient (docs/haproxy.md, Timeouts).
    local sent = 0
    for _ in gate.log():gmatch("request POST [^\n]*/backup") do sent = sent + 1 end
    assert.equal(8, sent, gate.log())
  end)

  it("tells a server it could not reach from the service's own errors", function()
    local code, body = app:get("/backup?endpoint=http://127.0.0.1:1", 60)
    assert.equal(502, code, tostring(body) .. app_log())
    assert.matches("^transport csms backup: transport: HAProxy: 503 No server is available", body)
    -- A name that does not resolve: HAProxy answers 503 with no body.
    code, body = app:get("/backup?endpoint=http://csms.nonexistent.invalid", 60)
    assert.equal(502, code, tostring(body) .. app_log())
    assert.matches("^transport csms backup: transport: HAProxy: 503 without a body", body)
  end)
end)
