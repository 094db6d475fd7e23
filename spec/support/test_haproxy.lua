-- A real HAProxy (Debian's 2.6, Lua 5.3) running spec/support/haproxy_app.lua, for
-- spec/haproxy_spec.lua and spec/error_surface_hosts_spec.lua. csms.core comes from the Lua 5.3
-- build (build/lua53, made by .ci/build; CSMS_LUA53_CPATH overrides).
--
--   local test_haproxy = require "spec.support.test_haproxy"
--   local app = test_haproxy.start { settings = "Lua source of haproxy_app_settings.lua",
--                                    frontend = "extra lines inside the frontend" }
--   app.port, app.prefix; app:get(path [, max_seconds [, method]]) -> status, body; app:log(); app:stop()
--   test_haproxy.start { config = function(prefix, port) return "a whole haproxy.cfg" end,
--                        env = { NAME = value }, ready = "/path answering 200 once up" }
--
-- One thread (nbthread 1): a call that blocked would stop everything, which is what the specs
-- look for. HAProxy's log and Lua errors go to its stderr, kept in <prefix>/haproxy.log. It
-- stops with the Lua process that started it, even if the spec dies first.
local emulator = require "spec.support.emulator"

local M = {}

local ROOT = emulator.root
local q, sh = emulator.shell_quote, emulator.run

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

function M.cpath()
  local p = os.getenv("CSMS_LUA53_CPATH") or (ROOT .. "/build/lua53/?.so")
  local f = io.open((p:gsub("%?", "csms/core")), "rb")
  if not f then error("no Lua 5.3 build of csms.core at " .. p .. ": run bash .ci/build") end
  f:close()
  return p
end

local CONF = [[
global
  nbthread 1
  lua-prepend-path ROOT/lua/?.lua
  lua-prepend-path ROOT/lua/?/init.lua
  lua-prepend-path ROOT/spec/support/?.lua
  lua-prepend-path PREFIX/?.lua
  lua-prepend-path CPATH cpath
  lua-load ROOT/spec/support/haproxy_app.lua
  log stderr format raw local0 info
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend app
  bind 127.0.0.1:PORT
  http-request use-service lua.csms_ping if { path /ping }
  http-request use-service lua.csms_backup if { path /backup }
  http-request use-service lua.csms_restore if { path /restore }
  http-request use-service lua.csms_backup_all if { path /backup-all }
  http-request use-service lua.csms_error if { path /error }
  FRONTEND
]]

local App = {}
App.__index = App

local function my_pid()
  local p = io.popen("echo $PPID")
  local pid = p:read("*l")
  p:close()
  return pid
end

function M.start(opts)
  opts = opts or {}
  local dir = emulator.tmpdir()
  write(dir .. "/haproxy_app_settings.lua", opts.settings or "return {}")
  local app = setmetatable({ prefix = dir }, App)
  local function lit(s) return (s:gsub("%%", "%%%%")) end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = "export " .. k .. "=" .. q(v) .. "\n" end
  -- A free port may be taken before HAProxy binds it (other suites run beside this one):
  -- HAProxy then logs "cannot bind socket" and exits, and it starts again on another.
  for _ = 1, 5 do
    app.port = emulator.free_port()
    local conf = opts.config and opts.config(dir, app.port) or CONF:gsub("ROOT", lit(ROOT))
      :gsub("PREFIX", lit(dir)):gsub("CPATH", lit(M.cpath())):gsub("PORT", tostring(app.port))
      :gsub("FRONTEND", lit(opts.frontend or ""))
    write(dir .. "/haproxy.cfg", conf)
    local ok, out = sh("haproxy -c -q -f " .. q(dir .. "/haproxy.cfg"))
    assert(ok, "haproxy -c: " .. tostring(out))
    -- Started by a shell that stays to stop it when this Lua process (the spec run) exits.
    write(dir .. "/run.sh", table.concat(env) .. ([[
haproxy -f %s > %s 2>&1 &
hp=$!
echo $hp > %s
while kill -0 %s 2>/dev/null && kill -0 $hp 2>/dev/null; do sleep 1; done
kill $hp 2>/dev/null
]]):format(q(dir .. "/haproxy.cfg"), q(dir .. "/haproxy.log"), q(dir .. "/haproxy.pid"), my_pid()))
    os.remove(dir .. "/haproxy.log") -- the last attempt's
    assert(sh("sh " .. q(dir .. "/run.sh") .. " > /dev/null 2>&1 &"))
    for _ = 1, 100 do
      local code, body = app:get(opts.ready or "/ping", 1)
      if code == 200 and (opts.ready or body:find("^pong")) then
        app.pid = (emulator.read_all(dir .. "/haproxy.pid") or ""):match("%d+")
        return app
      end
      if app:log():find("cannot bind socket", 1, true) then break end
      os.execute("sleep 0.05")
    end
    if not app:log():find("cannot bind socket", 1, true) then break end
  end
  local log = app:log()
  if not os.getenv("KEEP") then app:stop() end
  error("the test HAProxy did not start in " .. dir .. ":\n" .. log)
end

function App:log()
  return emulator.read_all(self.prefix .. "/haproxy.log") or ""
end

-- GET (or method) path: status, body (nil, curl's output when curl fails).
function App:get(path, max_seconds, method)
  local url = ("http://127.0.0.1:%d%s"):format(self.port, path)
  local ok, out = sh(("curl -s -X %s -m %s -w '\\n%%{http_code}\\n' %s")
    :format(method or "GET", max_seconds or 30, q(url)))
  if not ok then return nil, out end
  local body, code = out:match("^(.*)\n(%d+)\n")
  return tonumber(code), body
end

function App:stop()
  local pid = self.pid or (emulator.read_all(self.prefix .. "/haproxy.pid") or ""):match("%d+")
  if pid then sh("kill " .. pid .. " 2>/dev/null") end
  os.execute("sleep 0.2; rm -rf " .. q(self.prefix))
end

return M
