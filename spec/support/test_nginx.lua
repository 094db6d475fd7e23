-- An nginx (lua-nginx-module, LuaJIT build of csms.core) for the specs that run csms inside
-- nginx: spec/nginx_spec.lua and spec/hostile_server_spec.lua.
--
--   local test_nginx = require "spec.support.test_nginx"
--   local app = test_nginx.start { http = "lines inside http {}", server = "lines inside server {}",
--                                  settings = "Lua source of nginx_app_settings.lua" }
--   app.port, app.prefix; app:get(path) -> status, body; app:log(); app:stop()
--
-- The checkout may live where other users cannot enter (a clone in /root, a 0700 home, a
-- `mktemp -d` folder): run as root, nginx's workers would be `nobody` and could not read
-- lua/ and build/. So as root the workers stay root (`user root;`), as bin/csms-emulator does;
-- as anyone else they are that user already.
local emulator = require "spec.support.emulator"

local M = {}

local ROOT = emulator.root
M.root = ROOT
M.modules = os.getenv("CSMS_EMULATOR_NGINX_MODULES") or "/usr/lib/nginx/modules"
local q, sh = emulator.shell_quote, emulator.run

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end
M.write = write

-- The line that keeps workers able to read a private checkout: "user root;" when root, else "".
function M.user_line()
  local p = io.popen("id -u")
  local uid = p:read("*l")
  p:close()
  return uid == "0" and "user root;" or ""
end

local CONF = [[
USER
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
  HTTP
  server {
    listen 127.0.0.1:PORT;
    location = /ping { content_by_lua_block { ngx.say("pong") } }
    SERVER
  }
}
]]

local App = {}
App.__index = App

function M.start(opts)
  local dir = emulator.tmpdir()
  assert(sh("mkdir -p " .. q(dir) .. "/logs " .. q(dir) .. "/tmp " .. q(dir) .. "/lua"))
  write(dir .. "/lua/nginx_app_settings.lua", opts.settings or "return {}")
  local app = setmetatable({ prefix = dir }, App)
  local function lit(s) return (s:gsub("%%", "%%%%")) end
  local ok, out
  -- A free port may be taken before nginx binds it (other suites run beside this one): another.
  for _ = 1, 5 do
    app.port = emulator.free_port()
    local conf = CONF:gsub("USER", lit(M.user_line())):gsub("MODULES", lit(M.modules))
      :gsub("PREFIX", lit(dir)):gsub("ROOT", lit(ROOT)):gsub("PORT", tostring(app.port))
      :gsub("HTTP", lit(opts.http or "")):gsub("SERVER", lit(opts.server or ""))
    write(dir .. "/nginx.conf", conf)
    ok, out = sh(("nginx -p %s -c nginx.conf"):format(q(dir)))
    if ok or not out:find("Address already in use", 1, true) then break end
  end
  assert(ok, out)
  for _ = 1, 100 do
    if sh(("curl -s -m 1 http://127.0.0.1:%d/ping | grep -q pong"):format(app.port)) then return app end
    os.execute("sleep 0.05")
  end
  error("the test nginx did not start: " .. app:log())
end

function App:log()
  return emulator.read_all(self.prefix .. "/logs/error.log") or ""
end

-- GET path: status, body (nil, curl's output when curl fails).
function App:get(path, max_seconds)
  local url = ("http://127.0.0.1:%d%s"):format(self.port, path)
  local ok, out = sh(("curl -s -m %d -w '\\n%%{http_code}\\n' %s"):format(max_seconds or 30, q(url)))
  if not ok then return nil, out end
  local body, code = out:match("^(.*)\n(%d+)\n")
  return tonumber(code), body
end

function App:stop()
  sh(("nginx -p %s -c nginx.conf -s stop"):format(q(self.prefix)))
  os.execute("sleep 0.2; rm -rf " .. q(self.prefix))
end

return M
