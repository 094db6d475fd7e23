-- The emulator's IAM stand-in: KeystoneListProjects checks signatures and answers the projects
-- configured per region; the OIDC exchange accepts the configured IdP and id token only; the
-- temporary keys it issues open the CSMS routes only with their security token and only until
-- they expire. Then the library's providers against it, over libcurl.
local emulator = require "spec.support.emulator"
local credentials = require "csms.credentials"
local project = require "csms.credentials.project"
local transport = require "csms.transport"
local core = require "csms.core"

describe("the emulator's IAM stand-in", function()
  local e
  setup(function() e = emulator.start {} end)
  teardown(function() if e then e:stop() end end)
  before_each(function() e:reset() end)

  local function iam_config(doc)
    local status, body = e:admin("POST", "/__emulator/iam", doc)
    assert.equal(200, status)
    return body
  end

  local function list(region, opts)
    opts = opts or {}
    return e:request { method = "GET", path = "/v3/projects", query = { { "name", region } },
      sign = opts.sign == nil and "node" or opts.sign, sk = opts.sk }
  end

  local function exchange(idp, jwt)
    local status, headers = e:request { method = "POST", path = "/v3.0/OS-AUTH/id-token/tokens",
      headers = { ["X-Idp-Id"] = idp, ["Content-Type"] = "application/json;charset=UTF-8" },
      body = { auth = { id_token = { id = jwt } } } }
    if status ~= 201 then return nil, status end
    local token = headers["x-subject-token"]
    local st, _, _, doc = e:request { method = "POST", path = "/v3.0/OS-CREDENTIAL/securitytokens",
      headers = { ["X-Auth-Token"] = token, ["Content-Type"] = "application/json;charset=UTF-8" },
      body = { auth = { identity = { methods = { "token" }, token = { id = token, duration_seconds = 3600 } } } } }
    assert.equal(201, st)
    return doc.credential
  end

  it("answers KeystoneListProjects signed with the emulator's keys, and 401 otherwise", function()
    local status, _, _, doc = list("cn-north-4")
    assert.equal(200, status)
    assert.equal(1, #doc.projects)
    assert.same({ e.project_id, "cn-north-4" }, { doc.projects[1].id, doc.projects[1].name })
    assert.equal(401, (list("cn-north-4", { sign = false })))
    assert.equal(401, (list("cn-north-4", { sk = "not-the-sk" })))
    assert.equal(3, iam_config({}).stats.list_projects)
    assert.equal(2, iam_config({}).stats.auth_failures)
  end)

  it("answers the projects configured per region", function()
    iam_config { projects = { ["cn-north-4"] = {}, ["cn-east-3"] = { "p1", "p2" } } }
    local _, _, _, doc = list("cn-north-4")
    assert.equal(0, #doc.projects)
    _, _, _, doc = list("cn-east-3")
    assert.same({ "p1", "p2" }, { doc.projects[1].id, doc.projects[2].id })
    _, _, _, doc = list("ap-southeast-1")
    assert.equal(e.project_id, doc.projects[1].id)
  end)

  it("exchanges only the configured IdP's accepted id token", function()
    iam_config { idp_id = "kube-idp", id_token = "the-jwt" }
    assert.same({ nil, 404 }, { exchange("other-idp", "the-jwt") })
    assert.same({ nil, 401 }, { exchange("kube-idp", "another-jwt") })
    local c = assert(exchange("kube-idp", "the-jwt"))
    assert.matches("^EMUTMP", c.access)
    assert.matches("^emulator%-security%-token%-", c.securitytoken)
  end)

  it("lets temporary keys call CSMS only with their security token, until they expire", function()
    e:create_secret("s", { "v" })
    iam_config { security_token_ttl_s = 2 }
    local c = assert(exchange("emulator-idp", "emulator-id-token"))
    local function backup(token)
      return (e:request { method = "POST", path = e:api("/secrets/s/backup"), sign = "node", ak = c.access,
        sk = c.secret, headers = { ["X-Security-Token"] = token } })
    end
    assert.equal(200, backup(c.securitytoken))
    assert.equal(401, backup(nil))
    assert.equal(401, backup("emulator-security-token-forged"))
    core.time.sleep(2.2)
    assert.equal(401, backup(c.securitytoken))
  end)
end)

describe("the providers against the emulator", function()
  local e, t, file
  setup(function()
    e = emulator.start {}
    t = transport.curl { timeout = 5 }
  end)
  teardown(function()
    if e then e:stop() end
    t:close()
  end)
  before_each(function()
    e:reset()
    project.clear()
    file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write("emulator-id-token\n")
    f:close()
  end)
  after_each(function() os.remove(file) end)

  it("OIDC keys, then the project id with them, then CSMS", function()
    e:create_secret("s", { "v" })
    local p = credentials.oidc { idp_id = "emulator-idp", id_token_file = file, iam_endpoint = e.endpoint,
      transport = t }
    local c = assert(p:credentials())
    assert.equal("oidc", c.auth)
    local id = assert(project.lookup(c, "cn-north-4", { transport = t, iam_endpoint = e.endpoint }))
    assert.equal(e.project_id, id)
    local status = e:admin("GET", "/__emulator/iam")
    assert.equal(200, status)
  end)

  it("refreshes short-lived keys from a rotated token file", function()
    local _, doc = e:admin("POST", "/__emulator/iam", { security_token_ttl_s = 2, id_token = "second-jwt" })
    assert.equal(2, doc.security_token_ttl_s)
    local f = assert(io.open(file, "w"))
    f:write("second-jwt")
    f:close()
    local p = credentials.oidc { idp_id = "emulator-idp", id_token_file = file, iam_endpoint = e.endpoint,
      transport = t }
    local first = assert(p:credentials())
    core.time.sleep(1.1) -- half their life
    local second = assert(p:credentials())
    assert.are_not.equal(first.ak, second.ak)
    assert.equal(2, p.fetches)
  end)
end)
