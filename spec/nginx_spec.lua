-- csms inside a real nginx (lua-nginx-module, LuaJIT build of csms.core): requests go through
-- cosockets and never block the worker; TLS is verified against lua_ssl_trusted_certificate.
local emulator = require "spec.support.emulator"

local ROOT = emulator.root
local MODULES = os.getenv("CSMS_EMULATOR_NGINX_MODULES") or "/usr/lib/nginx/modules"
local q = emulator.shell_quote

local sh = emulator.run

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

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

local NGINX_CONF = [[
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
load_module MODULES/ndk_http_module.so;
load_module MODULES/ngx_http_lua_module.so;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  lua_package_path "PREFIX/lua/?.lua;ROOT/lua/?.lua;ROOT/lua/?/init.lua;ROOT/spec/support/?.lua;;";
  lua_package_cpath "ROOT/build/luajit/?.so;;";
  lua_ssl_trusted_certificate CA;
  lua_shared_dict results 1m;
  init_by_lua_block { require("nginx_app").init() }
  server {
    listen 127.0.0.1:PORT;
    location = /ping { content_by_lua_block { ngx.say("pong") } }
    location = /backup { content_by_lua_block { require("nginx_app").backup() } }
    location = /backup-all { content_by_lua_block { require("nginx_app").backup_all() } }
    location = /filter {
      content_by_lua_block { ngx.say("body") }
      header_filter_by_lua_block { require("nginx_app").header_filter() }
    }
    location = /schedule { content_by_lua_block { require("nginx_app").schedule() } }
    location = /result { content_by_lua_block { require("nginx_app").result() } }
  }
}
]]

local plain, good, bad, app, dir

-- The test nginx's error log, to explain an unexpected status (a Lua error is a 500).
local function app_log()
  return "\nerror.log:\n" .. (emulator.read_all(app.prefix .. "/logs/error.log") or ""):sub(-3000)
end

local function get(path)
  local url = ("http://127.0.0.1:%d%s"):format(app.port, path)
  local ok, out = sh("curl -s -m 10 -w '\\n%{http_code} %{time_total}\\n' " .. q(url))
  assert(ok, out)
  local body, code, t = out:match("^(.*)\n(%d+) ([%d.]+)\n")
  return tonumber(code), body, tonumber(t)
end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p " .. q(dir) .. "/prefix/logs " .. q(dir) .. "/prefix/tmp " .. q(dir) .. "/prefix/lua"))
  local good_ca, bad_ca = make_ca(dir, "good"), make_ca(dir, "bad")
  plain = emulator.start { latency_ms = 200 }
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
  write(dir .. "/prefix/lua/nginx_app_settings.lua", table.concat(settings, "\n"))

  app = { port = emulator.free_port(), prefix = dir .. "/prefix" }
  local conf = NGINX_CONF:gsub("MODULES", MODULES):gsub("PREFIX", app.prefix):gsub("ROOT", ROOT)
    :gsub("CA;", good_ca.ca .. ";"):gsub("PORT", tostring(app.port))
  write(app.prefix .. "/nginx.conf", conf)
  local ok, out = sh(("nginx -p %s -c nginx.conf"):format(q(app.prefix)))
  assert(ok, out)
  for _ = 1, 100 do
    if sh(("curl -s -m 1 http://127.0.0.1:%d/ping | grep -q pong"):format(app.port)) then return end
    os.execute("sleep 0.05")
  end
  error("the test nginx did not start: " .. (emulator.read_all(app.prefix .. "/logs/error.log") or ""))
end)

teardown(function()
  if app then sh(("nginx -p %s -c nginx.conf -s stop"):format(q(app.prefix))) end
  for _, e in ipairs { plain, good, bad } do if e then e:stop() end end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

describe("csms inside nginx", function()
  it("backs up through cosockets: 20 concurrent requests at 200 ms each overlap, /ping answers meanwhile", function()
    local before = plain:stats().requests.backup
    local script = dir .. "/burst.sh"
    write(script, ([[
      for i in $(seq 20); do
        curl -s -m 10 -o %s/out.$i -w '%%{http_code} %%{time_total}\n' \
          'http://127.0.0.1:%d/backup?name=s' > %s/code.$i &
      done
      sleep 0.1
      curl -s -m 10 -o /dev/null -w '%%{time_total}\n' http://127.0.0.1:%d/ping > %s/ping
      wait
    ]]):format(dir, app.port, dir, app.port, dir))
    assert(sh("bash " .. q(script)))
    local slowest = 0
    for i = 1, 20 do
      local code, t = emulator.read_all(dir .. "/code." .. i):match("(%d+) ([%d.]+)")
      assert.equal("200", code, "request " .. i)
      assert.matches("^ok %d+", emulator.read_all(dir .. "/out." .. i))
      slowest = math.max(slowest, tonumber(t))
    end
    -- One blocking client would need 20 x 200 ms = 4 s on this single worker: the last
    -- request would wait for all the others.
    assert.is_true(slowest < 1.5, ("the slowest of 20 backups took %.2f s"):format(slowest))
    local ping = tonumber(emulator.read_all(dir .. "/ping"))
    assert.is_true(ping < 0.15, ("/ping took %.3f s during the backups"):format(ping))
    assert.equal(20, plain:stats().requests.backup - before)
  end)

  it("runs csms.batch with light threads", function()
    local before = plain:stats().requests.backup
    -- nginx's workers run as an unprivileged user: the set's parent must be theirs to write
    assert(sh("mkdir -p " .. q(dir .. "/sets") .. " && chmod 0777 " .. q(dir .. "/sets")))
    local code, body = get("/backup-all?dir=" .. dir .. "/sets/one")
    assert.equal(200, code, body)
    local ok, failed, seconds = body:match("ok=(%d+) failed=(%d+) seconds=([%d.]+)")
    assert.equal("11", ok)
    assert.equal("0", failed)
    -- 11 backups at 200 ms: 2.2 s one at a time, about 0.4 s with 8 threads
    assert.is_true(tonumber(seconds) < 1.2, "batch took " .. seconds .. " s")
    assert.equal(11, plain:stats().requests.backup - before)
    assert.truthy(io.open(dir .. "/sets/one/bulk-3.blob"))
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
    write(example, conf)
    local sets = dir .. "/example-sets"
    assert(sh("mkdir -p " .. q(sets) .. " && chmod 0777 " .. q(sets)))
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
    local listing
    for _ = 1, 60 do
      listing = select(2, sh("ls " .. q(sets) .. "/*/manifest.json"))
      if listing:find("manifest.json", 1, true) then break end
      os.execute("sleep 0.1")
    end
    assert.matches("manifest%.json", listing)
  end)
end)
