-- Timeouts that would silently mean "no timeout", and verify_tls = false said out loud.
-- libcurl reads a timeout of 0 ms as none: a value under 1 ms must not get there, and a value
-- past what a C long of milliseconds holds has no defined conversion. Lua refuses both; the C
-- side clamps whatever reaches it (core.http can be called directly).
local csms = require "csms"
local core = require "csms.core"
local emulator = require "spec.support.emulator"
local rawserver = require "spec.support.rawserver"

local BASE = { ak = "AK", sk = "SK-OPTIONS", project_id = "0123456789abcdef0123456789abcdef",
  endpoint = "http://127.0.0.1:9", transport = function() return nil, { kind = "transport", message = "x" } end }

local function opts(extra)
  local o = {}
  for k, v in pairs(BASE) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

describe("timeout options", function()
  -- { option, value, accepted }
  local CASES = {
    { "timeout", 0.0005, false }, { "timeout", 0.0009999, false }, { "timeout", 0.001, true },
    { "timeout", 1e300, false }, { "timeout", 2147484, false }, { "timeout", 2147483, true },
    { "timeout", math.huge, false }, { "timeout", 0 / 0, false }, { "timeout", 0, false },
    { "connect_timeout", 0.0001, false }, { "connect_timeout", 2 ^ 63, false },
    { "connect_timeout", 0.001, true }, { "connect_timeout", 30, true },
  }
  for _, c in ipairs(CASES) do
    it(("%s = %s is %s"):format(c[1], tostring(c[2]), c[3] and "accepted" or "refused (raises)"), function()
      local ok, err = pcall(csms.new, opts { [c[1]] = c[2] })
      if c[3] then
        assert.is_true(ok, tostring(err))
      else
        assert.is_false(ok)
        assert.matches(c[1] .. " must be a positive number of seconds, from 0.001 to 2147483", err)
      end
    end)
  end

  it("core.http clamps what reaches it to 1 ms .. INT_MAX ms", function()
    for _, c in ipairs { { 0.0004, 1 }, { 0, 1 }, { -5, 1 }, { 0 / 0, 1 }, { 1e300, 2147483647 },
                          { math.huge, 2147483647 }, { 2.5, 2500 } } do
      local h = core.http.new { timeout = c[1], connect_timeout = c[1] }
      assert.equal(("csms.http (open, timeout %d ms, connect %d ms)"):format(c[2], c[2]), tostring(h))
      h:close()
    end
  end)

  it("a timeout under 1 ms given to core.http still ends a call that gets no answer", function()
    local s = rawserver.start("silent")
    finally(s.stop)
    local h = core.http.new { timeout = 0.0004 }
    assert.truthy(h:submit("GET", s.url .. "/", {}))
    -- With 0 ms (no timeout) nothing would complete before the server goes away (120 s).
    local done = {}
    for _ = 1, 30 do
      done = h:wait(1)
      if #done > 0 then break end
    end
    h:close()
    assert.equal(1, #done)
    assert.equal("timeout", done[1].error)
  end)
end)

describe("verify_tls = false", function()
  local function run(code)
    local script = emulator.tmpname()
    local f = assert(io.open(script, "w"))
    f:write('package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path\n',
      'local csms = require "csms"\n', code)
    f:close()
    local lua = require "spec.support.interpreter" -- children run the interpreter running this
    local interp, cpath = lua.command, "./build/" .. lua.build .. "/?.so;;"
    local p = io.popen(("LUA_CPATH=%s %s %s 2>&1 >/dev/null"):format(emulator.shell_quote(cpath), interp,
      emulator.shell_quote(script)))
    local err = p:read("*a")
    p:close()
    os.remove(script)
    return err
  end

  local MAKE = [[
local function make(extra)
  local o = { ak = "AK", sk = "SK-CANARY-1234", security_token = "TOKEN-CANARY-5678",
    project_id = "p1", endpoint = "https://kms.example:8443" }
  for k, v in pairs(extra) do o[k] = v end
  assert(csms.new(o)):close()
end
]]

  it("warns once per process on stderr, naming the endpoint and no secret", function()
    local err = run(MAKE .. "make { verify_tls = false }; make { verify_tls = false }\n")
    local _, n = err:gsub("verify_tls = false", "")
    assert.equal(1, n, err)
    assert.matches("^csms: warning: verify_tls = false: the TLS certificate of 'https://kms%.example:8443' "
      .. "is not verified; anyone on the path can read and change the traffic\n$", err)
    assert.is_nil(err:find("CANARY", 1, true))
  end)

  it("says nothing when TLS is verified, or when there is no TLS", function()
    assert.equal("", run(MAKE .. "make {}; make { verify_tls = true }\n"
      .. "make { endpoint = 'http://127.0.0.1:1', verify_tls = false }\n"))
  end)
end)
