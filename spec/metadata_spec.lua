-- Credentials from the ECS metadata service: when it is asked at all (never off-cloud unless
-- told), and the provider end to end against the emulator's stand-in of the service.
local config = require "csms.config"
local core = require "csms.core"
local credentials = require "csms.credentials"
local csms = require "csms"
local emulator = require "spec.support.emulator"

local function env(t) return function(k) return t[k] end end
local function dmi(t) return function(path) return t[path:match("[^/]+$")] end end

describe("config.metadata_endpoint", function()
  local DEFAULT = "http://169.254.169.254"

  it("follows the option first", function()
    assert.is_nil(config.metadata_endpoint(false, env { HUAWEICLOUD_SDK_ECS_METADATA = "on" }))
    assert.equal(DEFAULT, config.metadata_endpoint(true, env {}))
    assert.equal("http://127.0.0.1:9", config.metadata_endpoint("http://127.0.0.1:9/", env {}))
  end)

  it("then HUAWEICLOUD_SDK_ECS_METADATA", function()
    local openstack = dmi { sys_vendor = "OpenStack Foundation" }
    assert.equal(DEFAULT, config.metadata_endpoint(nil, env { HUAWEICLOUD_SDK_ECS_METADATA = "on" }, dmi {}))
    assert.equal(DEFAULT, config.metadata_endpoint(nil, env { HUAWEICLOUD_SDK_ECS_METADATA = "1" }, dmi {}))
    assert.is_nil(config.metadata_endpoint(nil, env { HUAWEICLOUD_SDK_ECS_METADATA = "off" }, openstack))
  end)

  it("else asks only on a machine whose DMI says it is a cloud server", function()
    assert.equal(DEFAULT, config.metadata_endpoint(nil, env {}, dmi { product_name = "OpenStack Nova" }))
    assert.equal(DEFAULT, config.metadata_endpoint(nil, env {}, dmi { sys_vendor = "HUAWEICLOUD" }))
    assert.is_nil(config.metadata_endpoint(nil, env {}, dmi { sys_vendor = "QEMU", product_name = "Standard PC" }))
    assert.is_nil(config.metadata_endpoint(nil, env {}, dmi {}))
  end)

  it("comes after the environment and the profile", function()
    local chain = credentials.default { metadata = true, getenv = env { HUAWEICLOUD_SDK_AK = "a",
      HUAWEICLOUD_SDK_SK = "s" } }
    assert(chain:check())
    assert.equal("env", chain.name)
    chain = credentials.default { metadata = "http://127.0.0.1:9", getenv = env {} }
    assert(chain:check())
    assert.equal("ecs-metadata", chain.name)
  end)
end)

describe("the ECS metadata provider", function()
  local e
  setup(function() e = emulator.start {} end)
  teardown(function() if e then e:stop() end end)
  before_each(function()
    e:reset()
    credentials.forget()
  end)

  it("signs with the server's temporary credentials and its project id, fetched at the first call", function()
    e:create_secret("s", { "x" })
    local c = assert(csms.new { metadata = e.endpoint, endpoint = e.endpoint })
    assert.is_nil(c.project_id)
    assert.equal("csms.client(" .. e.endpoint .. ", project not yet known, ecs-metadata auth)", tostring(c))
    assert.equal(0, e:stats().metadata, "csms.new sends nothing")
    local sent
    local real = c.transport.request
    c.transport.request = function(t, req)
      sent = req
      return real(t, req)
    end
    assert(c:backup("s"))
    assert.equal(e.project_id, c.project_id)
    assert.equal("csms.client(" .. e.endpoint .. ", project " .. e.project_id .. ", ecs-metadata auth)",
      tostring(c))
    assert.equal(3, e:stats().metadata) -- session token, security key, meta_data.json
    assert.matches("^emulator%-security%-token%-%x+$", sent.headers["X-Security-Token"])
    assert.matches("SignedHeaders=[^,]*x%-security%-token", sent.headers.Authorization)
    assert(c:backup("s"))
    assert.equal(3, e:stats().metadata, "nothing is fetched again while the credentials are fresh")
    c:close()
  end)

  it("fetches new credentials before the old ones expire (half-way through a short life)", function()
    e:create_secret("s", { "x" })
    e:config { metadata_ttl_s = 4 }
    local c = assert(csms.new { metadata = e.endpoint, endpoint = e.endpoint, project_id = e.project_id })
    assert(c:backup("s"))
    assert.equal(2, e:stats().metadata) -- the project id was given
    assert(c:backup("s"))
    assert.equal(2, e:stats().metadata)
    core.time.sleep(2.2)
    assert(c:backup("s"))
    assert.equal(4, e:stats().metadata)
  end)

  it("fails clearly when no metadata service answers", function()
    local c = assert(csms.new { metadata = "http://127.0.0.1:" .. emulator.closed_port(), endpoint = e.endpoint })
    local res, err = c:backup("s")
    assert.is_nil(res)
    assert.equal("config", err.kind)
    assert.matches("^csms backup: config: ECS metadata at http://127%.0%.0%.1:%d+: no session token", tostring(err))
  end)

  it("refuses an answer without credentials", function()
    local c = assert(csms.new { metadata = e.endpoint .. "/__emulator", endpoint = e.endpoint })
    local res, err = c:backup("s")
    assert.is_nil(res)
    assert.equal("config", err.kind)
    assert.matches("ECS metadata", err.message)
  end)
end)
