-- csms inside a real nginx (lua-nginx-module, LuaJIT build of csms.core): requests go through
-- cosockets and never block the worker; TLS is verified against lua_ssl_trusted_certificate.
-- "Does not block" and "concurrently" are shown by overlap, never by seconds: a server that
-- holds every request until N wait at once (rawserver's gate) proves N calls were in flight
-- together, and /ping answering while they wait proves the worker was free.
local emulator = require "spec.support.emulator"
local rawserver = require "spec.support.rawserver"
local test_nginx = require "spec.support.test_nginx"

local ROOT = emulator.root
local MODULES = test_nginx.modules
local q = emulator.shell_quote
local sh = emulator.run
local write = test_nginx.write

-- A CA and a certificate for 127.0.0.1 signed by it, with the openssl command line.
local function make_ca(dir, name)
  local ca, key = dir .. "/" .. name .. "-ca.pem", dir .. "/" .. name .. "-ca.key"
  local cert, ckey = dir .. "/" .. name .. "-cert.pem", dir .. "/" .. name .. "-cert.key"
  write(dir .. "/san.ext", "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
  assert(sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s "
    .. "-days 2 -subj /CN=%s-test-ca"):format(q(key), q(ca), name)))
  assert(sh(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s.csr "
    .. "-subj /CN=127.0.0.1"):format(q(ckey), q(cert))))
  assert(sh(("openssl x509 -req -in %s.csr -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s")
    :format(q(cert), q(ca), q(key), q(cert), q(dir .. "/san.ext"))))
  return { ca = ca, cert = cert, key = ckey }
end

local HTTP = [[
  lua_ssl_trusted_certificate CA;
  lua_shared_dict results 1m;
  init_by_lua_block { require("nginx_app").init() }
]]
local SERVER = [[
    location = /backup { content_by_lua_block { require("nginx_app").backup() } }
    location = /backup-all { content_by_lua_block { require("nginx_app").backup_all() } }
    location = /filter {
      content_by_lua_block { ngx.say("body") }
      header_filter_by_lua_block { require("nginx_app").header_filter() }
    }
    location = /schedule { content_by_lua_block { require("nginx_app").schedule() } }
    location = /result { content_by_lua_block { require("nginx_app").result() } }
]]

local plain, good, bad, app, dir

-- The test nginx's error log, to explain an unexpected status (a Lua error is a 500).
local function app_log()
  return "\nerror.log:\n" .. app:log():sub(-3000)
end

local function get(path)
  local code, body = app:get(path)
  assert(code, body)
  return code, body
end

-- Waits (up to about 30 s) until check() is true; returns its last value.
local function eventually(check)
  local v
  for _ = 1, 300 do
    v = check()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return v
end

setup(function()
  dir = emulator.tmpdir()
  local good_ca, bad_ca = make_ca(dir, "good"), make_ca(dir, "bad")
  plain = emulator.start()
  good = emulator.start { tls = { cert = good_ca.cert, key = good_ca.key } }
  bad = emulator.start { tls = { cert = bad_ca.cert, key = bad_ca.key } }
  for _, e in ipairs { plain, good, bad } do e:create_secret("s", { "value one", "value two" }) end
  for i = 1, 10 do plain:create_secret("bulk-" .. i, { "v" .. i }) end

  local settings = { "return {" }
  for name, e in pairs { plain = plain, good = good, bad = bad } do
    settings[#settings + 1] = ("  %s = { ak = %q, sk = %q, project_id = %q, endpoint = %q },")
      :format(name, e.ak, e.sk, e.project_id, e.endpoint)
  end
  settings[#settings + 1] = "}"
  app = test_nginx.start { http = HTTP:gsub("CA;", good_ca.ca .. ";"), server = SERVER,
    settings = table.concat(settings, "\n") }
end)

teardown(function()
  if app then app:stop() end
  for _, e in ipairs { plain, good, bad } do if e then e:stop() end end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

describe("csms inside nginx", function()
  it("backs up through cosockets: 20 calls wait on the server together, /ping answers meanwhile", function()
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
    -- All 20 reach the server and wait there at once: one blocking call would hold the
    -- single worker, and the server would never see a second.
    local held = eventually(function() return gate.log():find("held 20", 1, true) end)
    -- ... and while they wait, the same worker answers.
    local code, body = app:get("/ping", 10)
    local log_then = gate.log()
    write(flag, "")
    burst:read("*a")
    burst:close()
    assert.truthy(held, "the server never held 20 requests at once:\n" .. gate.log())
    assert.equal(200, code, body)
    assert.equal("pong\n", body)
    assert.is_nil(log_then:find("released", 1, true), "/ping was answered before the server let the calls go")
    for i = 1, 20 do
      assert.equal("200\n", emulator.read_all(dir .. "/code." .. i), "request " .. i .. app_log())
      assert.matches("^ok %d+", emulator.read_all(dir .. "/out." .. i))
    end
    assert.matches("released 20", gate.log())
  end)

  it("runs csms.batch with light threads: 8 backups in flight at once, never 9", function()
    local gate = rawserver.start("gate", { env = { RAWSERVER_GATE = "8", RAWSERVER_NAMES = "11" } })
    finally(gate.stop)
    assert(sh("mkdir -p " .. q(dir .. "/sets")))
    local code, body = app:get("/backup-all?endpoint=" .. gate.url .. "&dir=" .. dir .. "/sets/one", 90)
    assert.equal(200, code, tostring(body) .. app_log())
    assert.equal("ok=11 failed=0\n", body)
    local log = gate.log()
    assert.matches("held 8\nreleased 8", log)
    assert.is_nil(log:find("held 9", 1, true), log)
    local backups = 0
    for _ in log:gmatch("request POST [^\n]*/backup") do backups = backups + 1 end
    assert.equal(11, backups)
    assert.truthy(io.open(dir .. "/sets/one/bulk-3.blob"))
  end)

  it("a plain emulator backup through cosockets", function()
    local before = plain:stats().requests.backup
    local code, body = get("/backup?name=bulk-2")
    assert.equal(200, code, body .. app_log())
    assert.matches("^ok %d+", body)
    assert.equal(1, plain:stats().requests.backup - before)
  end)

  it("verifies TLS against lua_ssl_trusted_certificate", function()
    local code, body = get("/backup?target=good&name=s")
    assert.equal(200, code, body .. app_log())
    assert.matches("^ok %d+", body)
    code, body = get("/backup?target=bad&name=s")
    assert.equal(502, code, body .. app_log())
    assert.matches("^tls csms backup: tls: TLS handshake with 127%.0%.0%.1:%d+: .*certificate", body)
    assert.matches("lua_ssl_trusted_certificate", body)
    assert.equal(0, bad:stats().requests.backup or 0)
  end)

  it("refuses clearly in a phase without cosockets, and works from a timer", function()
    local ok, out = sh(("curl -s -i -m 5 http://127.0.0.1:%d/filter"):format(app.port))
    assert(ok, out)
    assert.matches("X%-Csms%-Result: phase: cannot send from nginx's header_filter phase: "
      .. "cosockets are not available there", out)
    local code, body = get("/schedule?name=s")
    assert.equal(200, code)
    assert.equal("scheduled\n", body)
    local result
    for _ = 1, 50 do
      _, result = get("/result?key=timer")
      if result ~= "none\n" then break end
      os.execute("sleep 0.1")
    end
    assert.matches("^ok %d+", result)
  end)

  it("used libcurl in init_by_lua, where blocking is allowed", function()
    local _, result = get("/result?key=init")
    assert.matches("^ok %d+", result)
  end)

  it("serves examples/nginx/nginx.conf: /backup and the project timer", function()
    local conf = emulator.read_all(ROOT .. "/examples/nginx/nginx.conf")
    local port = emulator.free_port()
    conf = conf:gsub("listen 127%.0%.0%.1:8081;", "listen 127.0.0.1:" .. port .. ";")
      :gsub("pid logs/nginx%.pid;", "pid " .. dir .. "/example.pid;")
      :gsub("error_log logs/error%.log warn;", "error_log " .. dir .. "/example.log warn;")
      :gsub("/usr/lib/nginx/modules", MODULES)
      :gsub("/etc/ssl/certs/ca%-certificates%.crt", dir .. "/good-ca.pem")
    local example = dir .. "/example.conf"
    write(example, test_nginx.user_line() .. "\n" .. conf)
    local sets = dir .. "/example-sets"
    assert(sh("mkdir -p " .. q(sets)))
    local env = ("CSMS_ENDPOINT=%s HUAWEICLOUD_SDK_AK=%s HUAWEICLOUD_SDK_SK=%s HUAWEICLOUD_SDK_PROJECT_ID=%s "
      .. "BACKUP_MINUTES=0.02 BACKUP_ROOT=%s"):format(q(plain.endpoint), q(plain.ak), q(plain.sk),
      q(plain.project_id), q(sets))
    local prefix = ROOT .. "/examples/nginx"
    assert(sh(("mkdir -p %s/logs && %s nginx -p %s -c %s"):format(q(prefix), env, q(prefix), q(example))))
    finally(function() sh(("nginx -p %s -c %s -s stop"):format(q(prefix), q(example))) end)
    local out
    for _ = 1, 50 do
      local ok
      ok, out = sh(("curl -s -m 5 'http://127.0.0.1:%d/backup?name=bulk-2'"):format(port))
      if ok and out:find("backed up", 1, true) then break end
      os.execute("sleep 0.1")
    end
    assert.matches("^backed up bulk%-2: %d+ bytes %(request %x+%)", out)
    -- ls's exit status, not its output: "No such file ... manifest.json" names the file too.
    local found
    for _ = 1, 60 do
      found = sh("ls " .. q(sets) .. "/*/manifest.json")
      if found then break end
      os.execute("sleep 0.1")
    end
    assert.is_true(found, "the timer wrote no backup set")
  end)

  it("runs csms.batch with light threads that back up the first pages while later ones are listed", function()
    -- 450 more secrets: the listing has three pages (200, 200, 61 with the 11 above)
    local list = {}
    for i = 1, 450 do list[i] = { name = ("page-%03d"):format(i), versions = { "v" .. i } } end
    assert.equal(200, (plain:admin("POST", "/__emulator/seed", { secrets = list })))
    plain:config { latency_ms = 5 }
    plain:reset_stats()
    assert(sh("mkdir -p " .. q(dir .. "/sets")))
    local code, body = app:get("/backup-all?endpoint=" .. plain.endpoint .. "&dir=" .. dir .. "/sets/paged", 90)
    plain:config { latency_ms = 0 }
    assert.equal(200, code, tostring(body) .. app_log())
    assert.equal("ok=461 failed=0\n", body)
    -- The emulator's arrivals, in order: a backup came before the last page was asked for.
    local first_backup, last_list, lists = emulator.listing_order(plain:stats().arrivals)
    assert.equal(3, lists)
    assert.is_true(first_backup < last_list, ("first backup arrived %s, last page %s"):format(first_backup,
      last_list))
  end)
end)
