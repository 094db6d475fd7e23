-- Rate limiting inside a real nginx: csms.batch's light threads share one client's limiter, and
-- clients share the learned rate through a lua_shared_dict (counts from the emulator's stats).
local emulator = require "spec.support.emulator"

local ROOT = emulator.root
local MODULES = os.getenv("CSMS_EMULATOR_NGINX_MODULES") or "/usr/lib/nginx/modules"
local q, sh = emulator.shell_quote, emulator.run

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
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
  lua_shared_dict csms_rate 1m;
  server {
    listen 127.0.0.1:PORT;
    location = /batch { content_by_lua_block { require("nginx_throttle_app").batch() } }
    location = /fresh { content_by_lua_block { require("nginx_throttle_app").fresh() } }
  }
}
]]

local e, app, dir

local function get(path)
  local ok, out = sh(("curl -s -m 60 'http://127.0.0.1:%d%s'"):format(app.port, path))
  assert(ok, out)
  return out
end

setup(function()
  dir = emulator.tmpdir()
  assert(sh("mkdir -p " .. q(dir) .. "/prefix/logs " .. q(dir) .. "/prefix/tmp " .. q(dir)
    .. "/prefix/lua " .. q(dir) .. "/sets && chmod 0777 " .. q(dir) .. " " .. q(dir) .. "/sets"))
  e = emulator.start {}
  write(dir .. "/prefix/lua/nginx_throttle_settings.lua", ("return { ak = %q, sk = %q, project_id = %q, "
    .. "endpoint = %q }"):format(e.ak, e.sk, e.project_id, e.endpoint))
  app = { port = emulator.free_port(), prefix = dir .. "/prefix" }
  write(app.prefix .. "/nginx.conf", (NGINX_CONF:gsub("MODULES", MODULES):gsub("PREFIX", app.prefix)
    :gsub("ROOT", ROOT):gsub("PORT", tostring(app.port))))
  local ok, out = sh(("nginx -p %s -c nginx.conf"):format(q(app.prefix)))
  assert(ok, out)
  for _ = 1, 100 do
    if sh(("curl -s -m 1 -o /dev/null http://127.0.0.1:%d/fresh"):format(app.port)) then return end
    os.execute("sleep 0.05")
  end
  error("the test nginx did not start")
end)

teardown(function()
  if app then sh(("nginx -p %s -c nginx.conf -s stop"):format(q(app.prefix))) end
  if e then e:stop() end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

describe("rate limiting inside nginx", function()
  it("light threads share the client's limiter: a throttled batch loses nothing, and the rate is shared", function()
    -- before any throttle, a new client has no rate, with or without the dict
    assert.equal("off", get("/fresh?dict=1"):match("rate=(%S+)"))
    for i = 1, 30 do e:create_secret(("n-%02d"):format(i), { "v" .. i }) end
    e:config { throttle_rps = 10, retry_after = 0, latency_ms = 10 }
    local out = get("/batch?dir=" .. dir .. "/sets/a")
    local ok, failed, throttled, rate = out:match("ok=(%d+) failed=(%d+) throttled=(%d+) rate=(%S+)")
    assert.equal("30", ok, out)
    assert.equal("0", failed)
    assert.is_true(tonumber(throttled) > 0)
    assert.equal(e:stats().throttled, tonumber(throttled), "one limiter saw every thread's 429s")
    assert.is_truthy(tonumber(rate), "the limiter turned on: " .. rate)
    -- a new client (another request) starts at the rate learned, through lua_shared_dict
    local shared = get("/fresh?dict=1"):match("rate=(%S+)")
    assert.is_truthy(tonumber(shared), shared)
    assert.equal("off", get("/fresh?dict=0"):match("rate=(%S+)"))
  end)

  it("holds every light thread back for a Retry-After and resends only the throttled item", function()
    e:reset()
    for i = 1, 12 do e:create_secret(("r-%02d"):format(i), { "v" .. i }) end
    e:config { throttle_rps = 0, retry_after = 1, latency_ms = 50 }
    e:fail_next { { kind = "429", op = "backup" } }
    local out = get("/batch?dir=" .. dir .. "/sets/b")
    assert.matches("^ok=12 failed=0 throttled=1 ", out)
    assert.equal(13, e:stats().requests.backup)
  end)
end)
