-- What a raised csms failure looks like in the logs of the hosts that run Lua: a real nginx
-- (lua-nginx-module) and a real HAProxy (2.6, Lua 5.3). Both print only string errors (a table,
-- __tostring or not, becomes "unknown reason" / "unknown runtime error"): csms.assert, an err
-- concatenated into error()'s message, and the library's own misuse errors reach them as
-- strings, with the line of spec/support/error_surface_app.lua that raised them.
local emulator = require "spec.support.emulator"
local test_nginx = require "spec.support.test_nginx"
local test_haproxy = require "spec.support.test_haproxy"

local APP = emulator.root .. "/spec/support/error_surface_app.lua"

-- The line of the app marked [case].
local function line_of(case)
  local n = 0
  for line in io.lines(APP) do
    n = n + 1
    if line:find("-- [" .. case .. "]", 1, true) then return n end
  end
  error("no [" .. case .. "] in " .. APP)
end

local NAME = "secret name may only hold letters, digits, '_' and '-'"
local CASES = {
  { "assert", "csms backup: invalid_argument: " .. NAME },
  { "concat", "backup failed: csms backup: invalid_argument: " .. NAME },
  { "misuse", "csms: timeout must be a number, got string" },
}

local hosts = {
  nginx = function()
    local app = test_nginx.start { server = [[
      location = /error { content_by_lua_block { require("error_surface_app").run(ngx.var.arg_case) } }
    ]] }
    return app, "lua entry thread aborted: runtime error: "
  end,
  haproxy = function()
    return test_haproxy.start { settings = "return {}" }, "runtime error: "
  end,
}

for _, host in ipairs { "nginx", "haproxy" } do
  describe("inside " .. host .. ", a raised failure is logged with its message and line:", function()
    local app, prefix
    setup(function() app, prefix = hosts[host]() end)
    teardown(function() if app then app:stop() end end)

    for _, case in ipairs(CASES) do
      it(case[1], function()
        local code = app:get("/error?case=" .. case[1])
        assert.equal(500, code)
        local want = prefix .. "[^\n]*error_surface_app%.lua:" .. line_of(case[1]) .. ": "
          .. case[2]:gsub("%p", "%%%0")
        local log
        for _ = 1, 50 do -- the log line may follow the answer by a moment
          log = app:log()
          if log:find(want) then break end
          os.execute("sleep 0.1")
        end
        assert.truthy(log:find(want), "not in the log: " .. want .. "\n" .. log:sub(-2000))
      end)
    end
  end)
end
