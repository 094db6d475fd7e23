-- Settings resolution: options, then environment, then the profile file; clear errors before
-- any network.
local config = require "csms.config"
local csms = require "csms"

local function env(t)
  return function(k) return t[k] end
end

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

describe("config.resolve", function()
  local P = "0123456789abcdef0123456789abcdef"

  it("takes what the options give first", function()
    local s = assert(config.resolve({ ak = "A", sk = "S", project_id = P, region = "cn-north-4" },
      env { HUAWEICLOUD_SDK_AK = "envak", HUAWEICLOUD_SDK_SK = "envsk" }))
    assert.same({ ak = "A", sk = "S", project_id = P, endpoint = "https://kms.cn-north-4.myhuaweicloud.com" }, s)
  end)

  it("falls back to HUAWEICLOUD_SDK_*, then CLOUD_SDK_*", function()
    local s = assert(config.resolve({ region = "ap-southeast-1" }, env {
      HUAWEICLOUD_SDK_AK = "ak1", HUAWEICLOUD_SDK_SK = "sk1", HUAWEICLOUD_SDK_SECURITY_TOKEN = "t1",
      HUAWEICLOUD_SDK_PROJECT_ID = P, CLOUD_SDK_AK = "ak2", CLOUD_SDK_SK = "sk2" }))
    assert.equal("ak1", s.ak)
    assert.equal("t1", s.security_token)
    assert.equal(P, s.project_id)
    s = assert(config.resolve({ region = "cn-east-3", project_id = P },
      env { CLOUD_SDK_AK = "ak2", CLOUD_SDK_SK = "sk2" }))
    assert.equal("ak2", s.ak)
    assert.equal("sk2", s.sk)
  end)

  it("then reads [basic] from the profile file", function()
    local path = tmpfile("[other]\nak = wrong\n\n[basic]\n  ak = pak \nsk=psk\n; comment\n"
      .. "project_id = " .. P .. "\nsecurity_token = ptok\n")
    local s = assert(config.resolve({ endpoint = "http://127.0.0.1:1" },
      env { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path }))
    os.remove(path)
    assert.same({ ak = "pak", sk = "psk", security_token = "ptok", project_id = P,
      endpoint = "http://127.0.0.1:1" }, s)
  end)

  it("finds ~/.huaweicloud/credentials through HOME", function()
    local home = os.tmpname()
    os.remove(home)
    assert(os.execute("mkdir -p " .. home .. "/.huaweicloud"))
    local f = assert(io.open(home .. "/.huaweicloud/credentials", "w"))
    f:write("[basic]\nak=hak\nsk=hsk\n")
    f:close()
    local s = assert(config.resolve({ endpoint = "http://x:1", project_id = P }, env { HOME = home }))
    os.execute("rm -rf " .. home)
    assert.equal("hak", s.ak)
  end)

  it("prefers an IAM token when one is given", function()
    local s = assert(config.resolve({ auth_token = "tok", project_id = P, region = "cn-north-4" }, env {}))
    assert.equal("tok", s.auth_token)
    assert.is_nil(s.ak)
  end)

  it("lets HUAWEICLOUD_SDK_REGION_CSMS_<REGION> override a region's endpoint", function()
    local s = assert(config.resolve({ ak = "a", sk = "s", project_id = P, region = "cn-north-4" },
      env { HUAWEICLOUD_SDK_REGION_CSMS_CN_NORTH_4 = "https://csms.internal:8443/" }))
    assert.equal("https://csms.internal:8443", s.endpoint)
  end)

  it("explains what is missing or wrong", function()
    local cases = {
      { { project_id = P, region = "cn-north-4" }, {}, "no credentials" },
      { { ak = "a", project_id = P, region = "cn-north-4" }, {}, "ak and sk must be given together" },
      { { region = "cn-north-4", project_id = P }, { HUAWEICLOUD_SDK_AK = "a" }, "must be set together" },
      { { ak = "a", sk = "s", region = "cn-north-4" }, {}, "no project_id" },
      { { ak = "a", sk = "s", project_id = P }, {}, "no endpoint" },
      { { ak = "a", sk = "s", project_id = P, region = "cn-nort-4" }, {}, "unknown region 'cn%-nort%-4'" },
      { { ak = "a", sk = "s", project_id = P, endpoint = "kms.example.com" }, {}, "endpoint must be" },
      { { ak = "a", sk = "s", project_id = P, endpoint = "https://h/path" }, {}, "endpoint must be" },
      { { ak = "a", sk = "s", project_id = "a/b", region = "cn-north-4" }, {}, "project_id must be" },
      { { ak = "a", sk = "s", project_id = ("p"):rep(65), region = "cn-north-4" }, {}, "project_id must be" },
    }
    for _, c in ipairs(cases) do
      local s, err = config.resolve(c[1], env(c[2]))
      assert.is_nil(s)
      assert.equal("config", err.kind)
      assert.matches(c[3], err.message)
    end
  end)

  it("reaches csms.new and the one-shots before any network", function()
    local called = false
    local c, err = csms.new { ak = "a", sk = "s", transport = function() called = true end }
    assert.is_nil(c)
    assert.equal("config", err.kind)
    local res
    res, err = csms.backup("name", { ak = "a", sk = "s", region = "nowhere", project_id = P })
    assert.is_nil(res)
    assert.matches("unknown region", tostring(err))
    assert.is_false(called)
  end)
end)

describe("client hygiene", function()
  it("never shows the SK or tokens in tostring", function()
    local c = assert(csms.new { ak = "AKVISIBLE", sk = "SK-SECRET-VALUE", security_token = "TOKEN-SECRET",
      project_id = "p", endpoint = "http://127.0.0.1:1" })
    local s = tostring(c)
    assert.matches("^csms%.client%(http://127%.0%.0%.1:1, project p, aksk auth%)$", s)
    for k, v in pairs(c) do
      assert.falsy(tostring(v):find("SECRET", 1, true), k)
    end
    c:close()
    c:close() -- twice is fine
    assert.has_error(function() c:backup("x") end, "csms: client used after close")
  end)
end)
