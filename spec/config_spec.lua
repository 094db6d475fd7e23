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

  it("takes the project id from the options, then HUAWEICLOUD_SDK_PROJECT_ID, then the profile", function()
    local path = tmpfile("[other]\nproject_id = wrong\n\n[basic]\n  ak = pak \nsk=psk\n; comment\n"
      .. "project_id = from-profile\niam_endpoint = https://iam.example.test\n")
    local getenv = env { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, HUAWEICLOUD_SDK_PROJECT_ID = "from-env" }
    local s = assert(config.resolve({ project_id = P, region = "cn-north-4" }, getenv))
    assert.same({ P, "https://kms.cn-north-4.myhuaweicloud.com" }, { s.project_id, s.endpoint })
    s = assert(config.resolve({ region = "cn-north-4" }, getenv))
    assert.equal("from-env", s.project_id)
    s = assert(config.resolve({ endpoint = "http://127.0.0.1:1" }, env { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path }))
    os.remove(path)
    assert.same({ "from-profile", "http://127.0.0.1:1", path }, { s.project_id, s.endpoint, s.profile_path })
    assert.same({ ak = "pak", sk = "psk", project_id = "from-profile", iam_endpoint = "https://iam.example.test" },
      s.profile)
  end)

  it("leaves the project id to IAM when none is configured", function()
    local s = assert(config.resolve({ region = "cn-north-4" }, env {}))
    assert.is_nil(s.project_id)
    assert.same({}, s.profile)
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
    assert.equal("hak", s.profile.ak)
  end)

  it("lets HUAWEICLOUD_SDK_REGION_CSMS_<REGION> override a region's endpoint", function()
    local s = assert(config.resolve({ region = "cn-north-4" },
      env { HUAWEICLOUD_SDK_REGION_CSMS_CN_NORTH_4 = "https://csms.internal:8443/" }))
    assert.equal("https://csms.internal:8443", s.endpoint)
  end)

  it("takes an endpoint of a name, an IPv4 or a bracketed IPv6 address and a port 1-65535", function()
    for given, want in pairs {
      ["http://[::1]:8080/"] = "http://[::1]:8080", ["https://[2001:db8::7]"] = "https://[2001:db8::7]",
      ["http://127.0.0.1:1"] = "http://127.0.0.1:1", ["https://h:65535"] = "https://h:65535",
    } do
      assert.equal(want, config.endpoint(given))
    end
    for _, bad in ipairs { "http://h:0", "http://h:", "http://h:080x", "http://[::1", "http://::1]",
                           "http://h:123456", "http://[]" } do
      assert.is_nil(config.endpoint(bad), bad)
    end
  end)

  it("explains what is missing or wrong, naming the field", function()
    local cases = {
      { { project_id = P }, {}, "no endpoint", "region" },
      { { project_id = P, region = "cn-nort-4" }, {}, "unknown region 'cn%-nort%-4'", "region" },
      { { project_id = P, endpoint = "kms.example.com" }, {}, "endpoint must be", "endpoint" },
      { { project_id = P, endpoint = "https://h/path" }, {}, "endpoint must be", "endpoint" },
      { { project_id = "a/b", region = "cn-north-4" }, {}, "project_id must be", "project_id" },
      { { project_id = ("p"):rep(65), region = "cn-north-4" }, {}, "project_id must be", "project_id" },
      { { region = "cn-north-4" }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = "/nonexistent/credentials" },
        "cannot read HUAWEICLOUD_SDK_CREDENTIALS_FILE", "HUAWEICLOUD_SDK_CREDENTIALS_FILE" },
    }
    for _, c in ipairs(cases) do
      local s, err = config.resolve(c[1], env(c[2]))
      assert.is_nil(s)
      assert.equal("config", err.kind)
      assert.matches(c[3], err.message)
      assert.equal(c[4], err.field)
    end
  end)
end)

describe("csms.new's credentials", function()
  local P = "0123456789abcdef0123456789abcdef"

  -- The AK a client signs with, from the Authorization of the one request it sends.
  local function signing_ak(opts)
    local seen
    opts.transport = function(req)
      seen = req.headers.Authorization:match("Access=([^,]+)")
      return { status = 200, headers = {}, body = '{"secret_blob":"b"}' }
    end
    opts.endpoint, opts.project_id = "http://127.0.0.1:1", P
    local c = assert(csms.new(opts))
    assert(c:backup("s"))
    c:close()
    return seen
  end

  it("uses the keys given, or a provider of the caller's own", function()
    assert.equal("given-ak", signing_ak { ak = "given-ak", sk = "s" })
    local mine = { credentials = function() return { ak = "provided-ak", sk = "s" } end }
    assert.equal("provided-ak", signing_ak { credentials = mine })
  end)

  it("explains what is missing or wrong before any network, naming the field", function()
    local cases = {
      { { ak = "a", project_id = P, region = "cn-north-4" }, "ak and sk must be given together", "credentials" },
      { { ak = "a", sk = "s", endpoint = "http://127.0.0.1:1" }, "no project_id", "project_id" },
      { { ak = "a", sk = "s", project_id = P }, "no endpoint", "region" },
      { { ak = "a", sk = "s", region = "cn-north-4", iam_endpoint = "iam.example.com" }, "iam_endpoint must be",
        "iam_endpoint" },
    }
    for _, c in ipairs(cases) do
      local called = false
      c[1].transport = function() called = true end
      local client, err = csms.new(c[1])
      assert.is_nil(client)
      assert.equal("config", err.kind)
      assert.matches(c[2], err.message)
      assert.equal(c[3], err.field)
      assert.is_false(called)
    end
    assert.has_error(function() csms.new { credentials = {} } end,
      "csms: credentials must be a provider (a table with a credentials method), got table")
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
