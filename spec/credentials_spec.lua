-- csms.credentials: each provider alone on a fake transport, the default chain's order, the
-- refresh (one fetch however many callers wait), the project id from IAM (cached, zero and two
-- projects, a 401 not retried), and secrets kept out of errors.
local credentials = require "csms.credentials"
local project = require "csms.credentials.project"
local temporary = require "csms.credentials.temporary"
local fake = require "spec.support.fake_transport"
local cjson = require "cjson"

local function env(t) return function(k) return t[k] end end

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%S", t) .. ".000000Z" end

-- A clock the spec moves.
local function clock(start)
  local c = { now = start or 1800000000 }
  c.fn = function() return c.now end
  return c
end

local function sts_answer(n, expires_at, status)
  return fake.json(status or 201, { credential = { access = "TMPAK" .. n, secret = "tmp-secret-" .. n,
    securitytoken = "tmp-security-token-" .. n, expires_at = iso(expires_at) } })
end

-- An IAM stand-in for the OIDC exchange: answers step 1 with an unscoped token, step 2 with
-- keys numbered by the exchange, valid `ttl` seconds from c.now.
local function oidc_iam(c, ttl)
  local exchanges = 0
  return function(req)
    if req.url:find("/v3.0/OS-AUTH/id-token/tokens", 1, true) then
      exchanges = exchanges + 1
      return { status = 201, headers = { ["x-subject-token"] = "unscoped-token-" .. exchanges }, body = "{}" }
    elseif req.url:find("/v3.0/OS-CREDENTIAL/securitytokens", 1, true) then
      return sts_answer(exchanges, c.now + ttl)
    end
    return fake.json(404, { error = { code = 404, message = "no such API" } })
  end
end

describe("hostile answers and token files", function()
  it("an STS answer without usable keys is an error, never a traceback", function()
    local good = { access = "A", secret = "S", securitytoken = "T", expires_at = "2030-01-01T00:00:00Z" }
    local function with(k, v)
      local c = {}
      for key, val in pairs(good) do c[key] = val end
      c[k] = v
      return cjson.encode { credential = c }
    end
    local bodies = { "", "not json", "[]", "null", "42", '{"credential":"x"}', '{"credential":null}',
      '{"credentials":[1,2]}', with("access", 7), with("access", ""), with("secret", false),
      with("securitytoken", {}), with("expires_at", 1893456000), with("expires_at", "tomorrow"),
      with("expires_at", "2030-01-01T00:00:00Zjunk"), with("expires_at", "") }
    for i, body in ipairs(bodies) do
      local ok, c, err = pcall(temporary.parse, body, "test")
      assert.is_true(ok, "case " .. i .. " raised: " .. tostring(c))
      assert.is_nil(c, "case " .. i)
      assert.equal("bad_response", err.kind, "case " .. i)
    end
    local c = assert(temporary.parse(with("expires_at", "2030-01-01T08:00:00+08:00"), "test"))
    assert.equal(1893456000, c.expires_at)
  end)

  it("a token file that is a directory, holds several lines or is huge is refused", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local two = tmpfile("line one\nline two\n")
    local huge = tmpfile(("x"):rep(70000))
    for _, path in ipairs { dir, two, huge } do
      local t, err = temporary.read_token_file(path, "id token", "id_token_file")
      assert.is_nil(t, path)
      assert.equal("id_token_file", err.field)
    end
    os.remove(dir)
    os.remove(two)
    os.remove(huge)
  end)
end)

describe("credentials.static and credentials.token", function()
  it("hand out the same keys every time", function()
    local p = credentials.static { ak = "AK1", sk = "SK1", security_token = "ST1" }
    local c = assert(p:credentials())
    assert.same({ "AK1", "SK1", "ST1", "aksk" }, { c.ak, c.sk, c.security_token, c.auth })
    assert.equal(c, p:credentials())
    assert.is_nil(c.expires_at)
    local t = assert(credentials.token("tok"):credentials())
    assert.equal("tok", t.auth_token)
    assert.equal("token", t.auth)
  end)

  it("refuse half a pair, naming the field", function()
    local c, err = credentials.static({ ak = "AK1" }, "options"):credentials()
    assert.is_nil(c)
    assert.equal("config", err.kind)
    assert.equal("credentials", err.field)
    assert.matches("^options: ak and sk must be given together %(got only ak%)", err.message)
  end)

  it("print without the SK or the security token", function()
    local c = credentials.static({ ak = "AK1", sk = "SK-secret", security_token = "ST-secret" }):credentials()
    local text = tostring(c)
    assert.matches("AK1", text)
    assert.is_nil(text:find("secret", 1, true))
  end)
end)

describe("credentials.env", function()
  it("reads HUAWEICLOUD_SDK_AK/_SK/_SECURITY_TOKEN, then CLOUD_SDK_AK/_SK", function()
    local c = assert(credentials.env({ getenv = env { HUAWEICLOUD_SDK_AK = "a", HUAWEICLOUD_SDK_SK = "s",
      HUAWEICLOUD_SDK_SECURITY_TOKEN = "t", CLOUD_SDK_AK = "x", CLOUD_SDK_SK = "y" } }):credentials())
    assert.same({ "a", "s", "t" }, { c.ak, c.sk, c.security_token })
    c = assert(credentials.env({ getenv = env { CLOUD_SDK_AK = "x", CLOUD_SDK_SK = "y" } }):credentials())
    assert.same({ "x", "y" }, { c.ak, c.sk })
  end)

  it("is absent when nothing is set, and an error when half a pair is", function()
    local c, err = credentials.env({ getenv = env {} }):credentials()
    assert.is_nil(c)
    assert.is_true(err.absent)
    c, err = credentials.env({ getenv = env { HUAWEICLOUD_SDK_AK = "a" } }):credentials()
    assert.is_nil(c)
    assert.is_nil(err.absent)
    assert.equal("HUAWEICLOUD_SDK_SK", err.field)
    c, err = credentials.env({ getenv = env { HUAWEICLOUD_SDK_IDP_ID = "idp" } }):credentials()
    assert.is_nil(c)
    assert.equal("HUAWEICLOUD_SDK_ID_TOKEN_FILE", err.field)
  end)

  it("prefers HUAWEICLOUD_SDK_IDP_ID + _ID_TOKEN_FILE (OIDC) to an AK/SK, at the region's IAM", function()
    local file = tmpfile("jwt-from-env\n")
    local c = clock()
    local t = fake.new(oidc_iam(c, 3600))
    local p = credentials.env { transport = t, clock = c.fn, region = "cn-north-4", getenv = env {
      HUAWEICLOUD_SDK_IDP_ID = "my-idp", HUAWEICLOUD_SDK_ID_TOKEN_FILE = file,
      HUAWEICLOUD_SDK_AK = "a", HUAWEICLOUD_SDK_SK = "s" } }
    local creds = assert(p:credentials())
    os.remove(file)
    assert.equal("TMPAK1", creds.ak)
    assert.equal("oidc", creds.auth)
    assert.equal("idp:my-idp", creds.identity)
    assert.equal("https://iam.cn-north-4.myhuaweicloud.com/v3.0/OS-AUTH/id-token/tokens", t.requests[1].url)
  end)

  it("takes the IAM endpoint from HUAWEICLOUD_SDK_IAM_ENDPOINT", function()
    local file = tmpfile("jwt")
    local t = fake.new(oidc_iam(clock(), 3600))
    assert(credentials.env({ transport = t, region = "cn-north-4", getenv = env {
      HUAWEICLOUD_SDK_IDP_ID = "i", HUAWEICLOUD_SDK_ID_TOKEN_FILE = file,
      HUAWEICLOUD_SDK_IAM_ENDPOINT = "http://127.0.0.1:9/" } }):credentials())
    os.remove(file)
    assert.equal("http://127.0.0.1:9/v3.0/OS-AUTH/id-token/tokens", t.requests[1].url)
  end)

  it("refuses an IAM endpoint libcurl could not parse (a port over 65535), sending nothing", function()
    local file = tmpfile("jwt")
    local t = fake.new(oidc_iam(clock(), 3600))
    local creds, err = credentials.env({ transport = t, region = "cn-north-4", getenv = env {
      HUAWEICLOUD_SDK_IDP_ID = "i", HUAWEICLOUD_SDK_ID_TOKEN_FILE = file,
      HUAWEICLOUD_SDK_IAM_ENDPOINT = "http://127.0.0.1:99999" } }):credentials()
    os.remove(file)
    assert.is_nil(creds)
    assert.same({ "config", "iam_endpoint" }, { err.kind, err.field })
    assert.equal(0, #t.requests)
  end)
end)

describe("credentials.profile", function()
  it("reads [basic] ak, sk and security_token from HUAWEICLOUD_SDK_CREDENTIALS_FILE", function()
    local path = tmpfile("[global]\nak = g\nsk = g\n[basic]\nak = pak\nsk = psk\nsecurity_token = pst\n")
    local c = assert(credentials.profile({ getenv = env { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path } }):credentials())
    os.remove(path)
    assert.same({ "pak", "psk", "pst" }, { c.ak, c.sk, c.security_token })
  end)

  it("federates with idp_id and id_token_file at the profile's iam_endpoint", function()
    local jwt = tmpfile("jwt-from-profile")
    local path = tmpfile("[basic]\nidp_id = prof-idp\nid_token_file = " .. jwt
      .. "\niam_endpoint = https://iam.example.test\nak = ignored\nsk = ignored\n")
    local t = fake.new(oidc_iam(clock(), 3600))
    local c = assert(credentials.profile({ transport = t, region = "cn-north-4",
      getenv = env { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path } }):credentials())
    os.remove(path)
    os.remove(jwt)
    assert.equal("TMPAK1", c.ak)
    assert.equal("https://iam.example.test/v3.0/OS-AUTH/id-token/tokens", t.requests[1].url)
    assert.equal("prof-idp", t.requests[1].headers["X-Idp-Id"])
    assert.equal("jwt-from-profile", cjson.decode(t.requests[1].body).auth.id_token.id)
  end)

  it("is absent without a file, an error when the named file cannot be read", function()
    local _, err = credentials.profile({ getenv = env { HOME = "/nonexistent" } }):credentials()
    assert.is_true(err.absent)
    _, err = credentials.profile({ getenv = env { HUAWEICLOUD_SDK_CREDENTIALS_FILE = "/nonexistent/c" } }):credentials()
    assert.is_nil(err.absent)
    assert.equal("HUAWEICLOUD_SDK_CREDENTIALS_FILE", err.field)
  end)
end)

describe("credentials.oidc", function()
  local file
  before_each(function() file = tmpfile("first-jwt\n") end)
  after_each(function() os.remove(file) end)

  it("exchanges the id token as the Python and Go SDKs do: unsigned, then X-Auth-Token", function()
    local c = clock()
    local t = fake.new(oidc_iam(c, 3600))
    local p = credentials.oidc { idp_id = "idp-1", id_token_file = file, iam_endpoint = "https://iam.test",
      transport = t, clock = c.fn }
    local creds = assert(p:credentials())
    assert.same({ "TMPAK1", "tmp-secret-1", "tmp-security-token-1", c.now + 3600 },
      { creds.ak, creds.sk, creds.security_token, creds.expires_at })
    local r1, r2 = t.requests[1], t.requests[2]
    assert.equal("POST", r1.method)
    assert.equal("https://iam.test/v3.0/OS-AUTH/id-token/tokens", r1.url)
    assert.equal("idp-1", r1.headers["X-Idp-Id"])
    assert.equal("application/json;charset=UTF-8", r1.headers["Content-Type"])
    assert.is_nil(r1.headers.Authorization)
    assert.same({ auth = { id_token = { id = "first-jwt" } } }, cjson.decode(r1.body))
    assert.equal("https://iam.test/v3.0/OS-CREDENTIAL/securitytokens", r2.url)
    assert.equal("unscoped-token-1", r2.headers["X-Auth-Token"])
    assert.is_nil(r2.headers.Authorization)
    assert.same({ auth = { identity = { methods = { "token" },
      token = { id = "unscoped-token-1", duration_seconds = 21600 } } } }, cjson.decode(r2.body))
    assert.equal(creds, p:credentials())
    assert.equal(2, #t.requests)
  end)

  it("reads the token file again at each refresh", function()
    local c = clock()
    local t = fake.new(oidc_iam(c, 3600))
    local p = credentials.oidc { idp_id = "i", id_token_file = file, iam_endpoint = "https://iam.test",
      transport = t, clock = c.fn }
    assert(p:credentials())
    local f = assert(io.open(file, "w"))
    f:write("rotated-jwt")
    f:close()
    c.now = c.now + 3600 - 599 -- inside the 10-minute margin
    local creds = assert(p:credentials())
    assert.equal("TMPAK2", creds.ak)
    assert.equal(4, #t.requests)
    assert.equal("rotated-jwt", cjson.decode(t.requests[3].body).auth.id_token.id)
  end)

  it("fails clearly on an unreadable or an empty token file, asking nothing", function()
    local t = fake.new(oidc_iam(clock(), 3600))
    local p = credentials.oidc { idp_id = "i", id_token_file = "/nonexistent/token", iam_endpoint = "https://iam.test",
      transport = t }
    local c, err = p:credentials()
    assert.is_nil(c)
    assert.equal("config", err.kind)
    assert.equal("id_token_file", err.field)
    assert.matches("cannot read the id token file /nonexistent/token", err.message)
    local empty = tmpfile("  \n")
    p = credentials.oidc { idp_id = "i", id_token_file = empty, iam_endpoint = "https://iam.test", transport = t }
    c, err = p:credentials()
    os.remove(empty)
    assert.is_nil(c)
    assert.equal("id_token_file", err.field)
    assert.matches("is empty", err.message)
    assert.equal(0, #t.requests)
  end)

  it("does not retry a 401 and keeps the token out of the error even when IAM echoes it", function()
    local t = fake.new(function(req)
      return fake.json(401, { error = { code = 401, message = "bad token " .. req.body } })
    end)
    local p = credentials.oidc { idp_id = "i", id_token_file = file, iam_endpoint = "https://iam.test", transport = t }
    local c, err = p:credentials()
    assert.is_nil(c)
    assert.equal(1, #t.requests)
    assert.equal("http", err.kind)
    assert.equal(401, err.status)
    assert.is_nil(tostring(err):find("first-jwt", 1, true))
  end)

  it("retries a 503, and fails on an answer without X-Subject-Token", function()
    local t = fake.new(function(_, n)
      if n == 1 then return fake.json(503, {}) end
      return { status = 201, body = "{}" }
    end)
    local p = credentials.oidc { idp_id = "i", id_token_file = file, iam_endpoint = "https://iam.test", transport = t }
    local c, err = p:credentials()
    assert.is_nil(c)
    assert.equal(2, #t.requests)
    assert.equal("bad_response", err.kind)
    assert.matches("X%-Subject%-Token", err.message)
  end)

  it("keeps the unscoped token, temporary SK and security token out of a failed step 2's error", function()
    local t = fake.new(function(req)
      if req.url:find("id-token", 1, true) then
        return { status = 201, headers = { ["x-subject-token"] = "UNSCOPED-SECRET" }, body = "{}" }
      end
      return fake.json(403, { error_msg = "token UNSCOPED-SECRET may not " .. req.body })
    end)
    local p = credentials.oidc { idp_id = "i", id_token_file = file, iam_endpoint = "https://iam.test", transport = t }
    local _, err = p:credentials()
    assert.equal(403, err.status)
    assert.is_nil(tostring(err):find("UNSCOPED-SECRET", 1, true))
  end)
end)

describe("credentials.container", function()
  it("posts {} with the token file's contents as Authorization", function()
    local token = tmpfile("container-token\n")
    local c = clock()
    local t = fake.new(function()
      return fake.json(200, { credentials = { accessKeyId = "CAK", secretAccessKey = "csk",
        securityToken = "cst", expiration = iso(c.now + 900) } })
    end)
    local p = credentials.container { uri = "http://169.254.170.2/v1/credentials", token_file = token,
      transport = t, clock = c.fn }
    local creds = assert(p:credentials())
    os.remove(token)
    assert.same({ "CAK", "csk", "cst", c.now + 900, "container" },
      { creds.ak, creds.sk, creds.security_token, creds.expires_at, creds.auth })
    local r = t.requests[1]
    assert.same({ "POST", "http://169.254.170.2/v1/credentials", "{}", "container-token" },
      { r.method, r.url, r.body, r.headers.Authorization })
  end)

  it("will not send the token in clear to another machine", function()
    local t = fake.new(function() error("nothing may be sent") end)
    local _, err = credentials.container({ uri = "http://agent.example.com/creds", token_file = "/x",
      transport = t }):credentials()
    assert.equal("config", err.kind)
    assert.equal("HC_CONTAINER_CREDENTIALS_FULL_URI", err.field)
    assert.equal(0, #t.requests)
  end)

  it("fails on an answer without keys", function()
    local token = tmpfile("tok")
    local t = fake.new(function() return fake.json(200, { credentials = { accessKeyId = "x" } }) end)
    local _, err = credentials.container({ uri = "https://agent.test/c", token_file = token,
      transport = t }):credentials()
    os.remove(token)
    assert.equal("bad_response", err.kind)
  end)
end)

describe("credentials.metadata", function()
  it("fetches a session token, the security key and, when asked, the server's project id", function()
    local c = clock()
    local t = fake.new(function(req)
      if req.method == "PUT" then return { status = 200, body = "session\n" } end
      assert.equal("session", req.headers["X-Metadata-Token"])
      if req.url:find("securitykey", 1, true) then return sts_answer(1, c.now + 3600, 200) end
      return fake.json(200, { project_id = "server-project" })
    end)
    local p = credentials.metadata { endpoint = "http://md.test/", want_project_id = true, transport = t,
      clock = c.fn }
    local creds = assert(p:credentials())
    assert.same({ "TMPAK1", "server-project", "ecs-metadata" }, { creds.ak, creds.project_id, creds.auth })
    assert.same({ "http://md.test/meta-data/latest/api/token", "http://md.test/openstack/latest/securitykey",
      "http://md.test/openstack/latest/meta_data.json" }, { t.requests[1].url, t.requests[2].url, t.requests[3].url })
    c.now = c.now + 3000
    creds = assert(p:credentials())
    assert.equal(5, #t.requests, "a refresh asks for the key again, not for the project id")
    assert.equal("server-project", creds.project_id)
  end)
end)

describe("the default chain", function()
  local jwt, profile_path, container_token
  setup(function()
    jwt = tmpfile("jwt")
    profile_path = tmpfile("[basic]\nak = profile-ak\nsk = profile-sk\n")
    container_token = tmpfile("ct")
  end)
  teardown(function()
    os.remove(jwt)
    os.remove(profile_path)
    os.remove(container_token)
  end)

  -- Every source configured; `without` lists the ones taken away.
  local function chain(without)
    local vars = {
      HUAWEICLOUD_SDK_AK = "env-ak", HUAWEICLOUD_SDK_SK = "env-sk",
      HUAWEICLOUD_SDK_CREDENTIALS_FILE = profile_path,
      HC_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1:9/c",
      HC_CONTAINER_AUTHORIZATION_TOKEN_FILE = container_token,
      HUAWEICLOUD_SDK_ECS_METADATA = "on",
    }
    for _, k in ipairs(without) do
      if k == "env" then vars.HUAWEICLOUD_SDK_AK, vars.HUAWEICLOUD_SDK_SK = nil, nil end
      if k == "profile" then vars.HUAWEICLOUD_SDK_CREDENTIALS_FILE, vars.HOME = nil, nil end
      if k == "container" then vars.HC_CONTAINER_CREDENTIALS_FULL_URI = nil end
      if k == "container" then vars.HC_CONTAINER_AUTHORIZATION_TOKEN_FILE = nil end
      if k == "metadata" then vars.HUAWEICLOUD_SDK_ECS_METADATA = "off" end
    end
    local t = fake.new(function(req)
      if req.url:find("127.0.0.1:9/c", 1, true) then
        return fake.json(200, { credentials = { accessKeyId = "container-ak", secretAccessKey = "s",
          securityToken = "t", expiration = iso(os.time() + 3600) } })
      end
      if req.method == "PUT" then return { status = 200, body = "session" } end
      return fake.json(200, { credential = { access = "metadata-ak", secret = "s", securitytoken = "t",
        expires_at = iso(os.time() + 3600) } })
    end)
    return credentials.default { getenv = env(vars), transport = t }, t
  end

  it("takes the environment, then the profile, then container credentials, then ECS metadata", function()
    local order = {}
    for _, without in ipairs { {}, { "env" }, { "env", "profile" }, { "env", "profile", "container" } } do
      local c = assert(chain(without):credentials())
      order[#order + 1] = c.ak
    end
    assert.same({ "env-ak", "profile-ak", "container-ak", "metadata-ak" }, order)
    local c, err = chain({ "env", "profile", "container", "metadata" }):credentials()
    assert.is_nil(c)
    assert.equal("config", err.kind)
    assert.equal("credentials", err.field)
    assert.matches("^no credentials: set HUAWEICLOUD_SDK_AK", err.message)
  end)

  it("stops at a source that is configured but broken", function()
    local p = credentials.default { getenv = env { HUAWEICLOUD_SDK_AK = "a",
      HUAWEICLOUD_SDK_CREDENTIALS_FILE = profile_path } }
    local c, err = p:credentials()
    assert.is_nil(c)
    assert.equal("HUAWEICLOUD_SDK_SK", err.field)
  end)

  it("takes a provider of the caller's own in a chain", function()
    local mine = { name = "mine", credentials = function() return { ak = "mine", sk = "x" } end }
    local p = credentials.chain { credentials.env { getenv = env {} }, mine }
    assert.equal("mine", assert(p:credentials()).ak)
    assert.equal("mine", p.name)
    assert.has_error(function() credentials.chain { {} } end,
      "csms: credentials.chain: entry 1 is not a provider (a table with a credentials method)")
  end)
end)

describe("temporary credentials", function()
  local function provider(c, ttl, t)
    local n = 0
    return credentials.new("test", function()
      n = n + 1
      if t then t:request { method = "GET", url = "http://x/" .. n } end
      return temporary.credentials { ak = "AK" .. n, sk = "s", expires_at = c.now + ttl }
    end, { clock = c.fn, transport = t })
  end

  it("are fetched again before they expire: 10 minutes, or half their life when shorter", function()
    local c = clock()
    local p = provider(c, 3600)
    assert.equal("AK1", p:credentials().ak)
    c.now = c.now + 3000 -- 600 s left: the margin
    assert.equal("AK2", p:credentials().ak)
    local short = provider(c, 60)
    assert.equal("AK1", short:credentials().ak)
    c.now = c.now + 29
    assert.equal("AK1", short:credentials().ak)
    c.now = c.now + 1
    assert.equal("AK2", short:credentials().ak)
  end)

  it("still serve while valid when a refresh fails, and not after", function()
    local c = clock()
    local fail = false
    local p = credentials.new("test", function()
      if fail then return nil, require("csms.errors").new("transport", "down") end
      return temporary.credentials { ak = "AK", sk = "s", expires_at = c.now + 3600 }
    end, { clock = c.fn })
    local first = assert(p:credentials())
    fail = true
    c.now = c.now + 3300
    assert.equal(first, p:credentials())
    c.now = c.now + 300
    local none, err = p:credentials()
    assert.is_nil(none)
    assert.equal("transport", err.kind)
  end)

  it("make one fetch however many light threads wait for it", function()
    local c = clock()
    local t = fake.new(function() return { status = 200 } end, { yield = true })
    local p = provider(c, 3600, t)
    local fns = {}
    for i = 1, 20 do fns[i] = function() return p:credentials() end end
    local results = fake.run(fns)
    assert.equal(1, p.fetches)
    assert.equal(1, #t.requests)
    for i = 1, 20 do assert.equal(results[1][1], results[i][1]) end
    assert.is_true(#t.sleeps >= 19, "the others waited")
    -- a refresh while the keys are still valid: one fetch, and nobody waits for it
    c.now = c.now + 3300
    local sleeps = #t.sleeps
    results = fake.run(fns)
    assert.equal(2, p.fetches)
    assert.equal("AK2", results[1][1].ak)
    for i = 2, 20 do assert.equal("AK1", results[i][1].ak) end
    assert.equal(sleeps, #t.sleeps)
  end)

  it("a broken fetch function is an error, not a stuck refresh", function()
    local p = credentials.new("test", function() error("boom") end)
    local c, err = p:credentials()
    assert.is_nil(c)
    assert.matches("test credentials: .*boom", err.message)
    assert.is_false(p.busy)
  end)
end)

describe("the project id from IAM", function()
  before_each(function() project.clear() end)

  local function iam(projects, status)
    return fake.new(function(req)
      if status then return fake.json(status, { error = { code = status, message = "nope" } }) end
      local region = req.url:match("name=([^&]+)")
      local list = {}
      for i, id in ipairs(projects[region] or {}) do list[i] = { id = id, name = region } end
      return fake.json(200, { projects = list, links = {} })
    end)
  end

  it("signs GET /v3/projects?name=<region> with the credentials, without X-Project-Id", function()
    local t = iam { ["cn-north-4"] = { "p1" } }
    local creds = { ak = "AK1", sk = "SK1", security_token = "ST1" }
    assert.equal("p1", project.lookup(creds, "cn-north-4", { transport = t, iam_endpoint = "https://iam.test" }))
    local r = t.requests[1]
    assert.equal("GET", r.method)
    assert.equal("https://iam.test/v3/projects?name=cn-north-4", r.url)
    assert.matches("^SDK%-HMAC%-SHA256 Access=AK1, SignedHeaders=", r.headers.Authorization)
    assert.equal("ST1", r.headers["X-Security-Token"])
    assert.is_nil(r.headers["X-Project-Id"])
  end)

  it("asks once per AK and region for the life of the process", function()
    local t = iam { ["cn-north-4"] = { "p1" }, ["cn-east-3"] = { "p2" } }
    local o = { transport = t, iam_endpoint = "https://iam.test" }
    assert.equal("p1", project.lookup({ ak = "AK1", sk = "s" }, "cn-north-4", o))
    assert.equal("p1", project.lookup({ ak = "AK1", sk = "s" }, "cn-north-4", o))
    assert.equal(1, #t.requests)
    assert.equal("p2", project.lookup({ ak = "AK1", sk = "s" }, "cn-east-3", o))
    assert.equal("p1", project.lookup({ ak = "AK2", sk = "s" }, "cn-north-4", o))
    assert.equal(3, #t.requests)
    -- temporary keys of one IdP share the answer whatever their AK
    assert.equal("p1", project.lookup({ ak = "T1", sk = "s", identity = "idp:x" }, "cn-north-4", o))
    assert.equal("p1", project.lookup({ ak = "T2", sk = "s", identity = "idp:x" }, "cn-north-4", o))
    assert.equal(4, #t.requests)
  end)

  it("fails with a config error naming the region for zero and for two projects", function()
    local t = iam { ["cn-north-4"] = {}, ["cn-east-3"] = { "a", "b" } }
    local o = { transport = t, iam_endpoint = "https://iam.test" }
    local id, err = project.lookup({ ak = "AK", sk = "s" }, "cn-north-4", o)
    assert.is_nil(id)
    assert.same({ "config", "project_id", "cn-north-4" }, { err.kind, err.field, err.region })
    assert.matches("no project named 'cn%-north%-4'", err.message)
    id, err = project.lookup({ ak = "AK", sk = "s" }, "cn-east-3", o)
    assert.is_nil(id)
    assert.same({ "config", "project_id" }, { err.kind, err.field })
    assert.matches("2 projects named 'cn%-east%-3' %(a, b%)", err.message)
    -- failures are not cached
    assert.is_nil(project.lookup({ ak = "AK", sk = "s" }, "cn-north-4", o))
    assert.equal(3, #t.requests)
  end)

  it("does not retry a 401 (the gateway locks an AK after 5), and retries a 503", function()
    local t = iam({}, 401)
    local id, err = project.lookup({ ak = "AK", sk = "s" }, "cn-north-4",
      { transport = t, iam_endpoint = "https://iam.test" })
    assert.is_nil(id)
    assert.same({ "http", 401, "list_projects", "cn-north-4" }, { err.kind, err.status, err.op, err.region })
    assert.equal(1, #t.requests)
    t = iam({}, 503)
    project.lookup({ ak = "AK", sk = "s" }, "cn-north-4", { transport = t, iam_endpoint = "https://iam.test" })
    assert.equal(3, #t.requests)
  end)

  it("needs a region", function()
    local id, err = project.lookup({ ak = "AK", sk = "s" }, nil, { transport = iam {} })
    assert.is_nil(id)
    assert.equal("project_id", err.field)
  end)
end)
