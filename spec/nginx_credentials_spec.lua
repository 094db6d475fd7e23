-- Temporary credentials inside nginx: light threads that all need keys at once (none yet, or
-- expired) wait for one fetch over cosockets instead of each making their own.
local emulator = require "spec.support.emulator"
local test_nginx = require "spec.support.test_nginx"
local core = require "csms.core"

-- N light threads ask one OIDC provider (per worker) for keys at the same moment; the answer is
-- the provider's fetch count and each thread's AK.
local KEYS = [[location = /keys { content_by_lua_block { require("credentials_app").keys() } }]]

local APP = [[
local credentials = require "csms.credentials"
local s = require "nginx_app_settings"
local M = {}
local provider -- one per worker, as an application keeps it
function M.keys()
  provider = provider or credentials.oidc { idp_id = "emulator-idp", id_token_file = s.id_token_file,
    iam_endpoint = s.iam_endpoint }
  local threads = {}
  for i = 1, tonumber(ngx.var.arg_n) do
    threads[i] = ngx.thread.spawn(function()
      local c, err = provider:credentials()
      return c and c.ak or ("error:" .. tostring(err))
    end)
  end
  local aks = {}
  for i, t in ipairs(threads) do
    local _, ak = ngx.thread.wait(t)
    aks[i] = ak
  end
  ngx.say(provider.fetches, " ", table.concat(aks, " "))
end
return M
]]

describe("temporary credentials inside nginx", function()
  local e, app, token_file

  setup(function()
    e = emulator.start {}
    token_file = os.tmpname()
    test_nginx.write(token_file, "emulator-id-token\n")
    app = test_nginx.start { server = KEYS, settings = ("return { id_token_file = %q, iam_endpoint = %q }")
      :format(token_file, e.endpoint) }
    test_nginx.write(app.prefix .. "/lua/credentials_app.lua", APP) -- loaded at the first request
  end)

  teardown(function()
    if app then app:stop() end
    if e then e:stop() end
    os.remove(token_file)
  end)

  local function keys(n)
    local status, body = app:get("/keys?n=" .. n)
    assert.equal(200, status, tostring(body) .. app:log())
    local fetches, rest = body:match("^(%d+) ([^\n]*)")
    assert(fetches, body)
    local aks = {}
    for ak in rest:gmatch("%S+") do aks[#aks + 1] = ak end
    return tonumber(fetches), aks
  end

  local function iam_stats()
    local _, doc = e:admin("GET", "/__emulator/iam")
    return doc.stats
  end

  it("make one fetch for 20 light threads, and one again once the keys have expired", function()
    e:admin("POST", "/__emulator/iam", { security_token_ttl_s = 2 })
    local fetches, aks = keys(20)
    assert.equal(1, fetches)
    assert.equal(20, #aks)
    assert.matches("^EMUTMP", aks[1])
    for i = 2, 20 do assert.equal(aks[1], aks[i]) end
    assert.same({ 1, 1 }, { iam_stats().id_token, iam_stats().security_tokens })
    core.time.sleep(2.2) -- expired: every thread needs the new keys
    local first = aks[1]
    fetches, aks = keys(20)
    assert.equal(2, fetches)
    assert.are_not.equal(first, aks[1])
    for i = 2, 20 do assert.equal(aks[1], aks[i]) end
    assert.same({ 2, 2 }, { iam_stats().id_token, iam_stats().security_tokens })
  end)
end)
