-- A client's identity end to end against the emulator: the project id from IAM when none is
-- configured (asked once per AK and region, none sent to CSMS before it is known), OIDC
-- federation as the client's credentials, and short-lived keys refreshed under csms.batch's
-- concurrent requests (libcurl multi) with one fetch per refresh.
local csms = require "csms"
local batch = require "csms.batch"
local credentials = require "csms.credentials"
local emulator = require "spec.support.emulator"

describe("a client's identity", function()
  local e, file
  setup(function() e = emulator.start {} end)
  teardown(function() if e then e:stop() end end)
  before_each(function()
    e:reset()
    credentials.forget()
    file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write("emulator-id-token\n")
    f:close()
  end)
  after_each(function() os.remove(file) end)

  local function iam(doc)
    local status, body = e:admin(doc and "POST" or "GET", "/__emulator/iam", doc)
    assert.equal(200, status)
    return body
  end

  local function client(opts)
    opts.endpoint, opts.iam_endpoint, opts.region = e.endpoint, e.endpoint, opts.region or "cn-north-4"
    if not opts.credentials then opts.ak, opts.sk = e.ak, e.sk end
    return assert(csms.new(opts))
  end

  it("finds the project id in IAM at the first call, once for two clients of one AK and region", function()
    e:create_secret("s", { "v" })
    local a, b = client {}, client {}
    assert.is_nil(a.project_id)
    assert.matches("project not yet known", tostring(a))
    assert(a:backup("s"))
    assert.equal(e.project_id, a.project_id)
    assert.matches("project " .. e.project_id, tostring(a))
    assert(b:backup("s"))
    assert.equal(e.project_id, b.project_id)
    assert.equal(1, iam().stats.list_projects)
    local other = client { region = "cn-east-3" }
    assert(other:resolve())
    assert.equal(2, iam().stats.list_projects)
    a:close(); b:close(); other:close()
  end)

  it("sends nothing to CSMS when IAM has no project, or two, of the region", function()
    iam { projects = { ["cn-north-4"] = {}, ["cn-east-3"] = { "p1", "p2" } } }
    for _, region in ipairs { "cn-north-4", "cn-east-3" } do
      local c = client { region = region }
      local res, err = c:backup("s")
      assert.is_nil(res)
      assert.same({ "config", "project_id", region, "backup" }, { err.kind, err.field, err.region, err.op })
      assert.truthy(tostring(err):find("'" .. region .. "'", 1, true))
      assert.is_nil(c.project_id)
      c:close()
    end
    assert.equal(0, e:stats().total)
  end)

  it("does not retry IAM's 401", function()
    local c = assert(csms.new { ak = e.ak, sk = "wrong-sk", endpoint = e.endpoint, iam_endpoint = e.endpoint,
      region = "cn-north-4" })
    local res, err = c:list_secrets()
    assert.is_nil(res)
    assert.same({ "http", 401, "list_projects" }, { err.kind, err.status, err.op })
    assert.equal(1, iam().stats.list_projects)
    assert.equal(0, e:stats().total)
  end)

  it("signs with OIDC keys, which CSMS accepts with their security token", function()
    e:create_secret("s", { "v" })
    local p = credentials.oidc { idp_id = "emulator-idp", id_token_file = file, iam_endpoint = e.endpoint }
    local c = client { credentials = p }
    assert.equal("oidc", c.auth)
    assert(c:backup("s"))
    assert.equal(e.project_id, c.project_id)
    assert.matches("oidc auth%)$", tostring(c))
    local stats = iam().stats
    assert.same({ 1, 1, 1 }, { stats.id_token, stats.security_tokens, stats.list_projects })
    c:close()
  end)

  it("refreshes short-lived keys once per refresh while csms.batch has many requests in flight", function()
    for i = 1, 36 do e:create_secret("s" .. i, { "v" .. i }) end
    e:config { latency_ms = 200 } -- 36 x 200 ms over 6 connections: past the keys' half-life (1 s)
    iam { security_token_ttl_s = 2 }
    local p = credentials.oidc { idp_id = "emulator-idp", id_token_file = file, iam_endpoint = e.endpoint }
    local c = client { credentials = p, project_id = e.project_id }
    local dir = emulator.tmpdir()
    local report = assert(batch.backup(c, { dir = dir, concurrency = 6 }))
    os.execute("rm -rf " .. emulator.shell_quote(dir))
    assert.equal(36, report.ok)
    assert.equal(0, report.failed)
    assert.is_true(p.fetches >= 2, "the keys were refreshed during the run")
    assert.equal(p.fetches, iam().stats.security_tokens, "one exchange per refresh")
    c:close()
  end)

  it("keeps internals off the client: its methods are the documented ones", function()
    local names = {}
    for k in pairs(csms.Client) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ "__close", "__gc", "__index", "__tostring", "backup", "close", "list_secrets", "request",
      "resolve", "restore" }, names)
  end)
end)
