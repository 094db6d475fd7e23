-- csms-backup with nothing but environment variables and --region, as the official samples are
-- configured: AK/SK or an OIDC id-token file, no project id anywhere (IAM finds it), the
-- emulator standing in for the region's CSMS and IAM endpoints. No temporary key, security
-- token, unscoped token or id token in any output or file of the set.
local cjson = require "cjson"
local emulator = require "spec.support.emulator"

local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"
local CLI = emulator.root .. "/bin/csms-backup"
local q = emulator.shell_quote
local read = emulator.read_all

local ID_TOKEN = "ID-TOKEN-CANARY-5c2e9a"
-- What the emulator's IAM hands out starts with these; none may be printed or written.
local SECRET_PATTERNS = { "emulator%-security%-token%-", "emulator%-unscoped%-", (ID_TOKEN:gsub("%-", "%%-")) }

describe("csms-backup configured by the environment alone", function()
  local e, home, token_file
  setup(function()
    e = emulator.start {}
    home = emulator.tmpdir() -- no ~/.huaweicloud/credentials
    token_file = home .. "/id-token"
    local f = assert(io.open(token_file, "w"))
    f:write(ID_TOKEN .. "\n")
    f:close()
  end)
  teardown(function()
    if e then e:stop() end
    os.execute("rm -rf " .. q(home))
  end)
  before_each(function()
    e:reset()
    assert.equal(200, (e:admin("POST", "/__emulator/iam", { id_token = ID_TOKEN })))
    for i = 1, 3 do e:create_secret("app-" .. i, { "value " .. i }) end
  end)

  -- The region's endpoints pointed at the emulator, as an operator would for a private endpoint.
  local function run(args, env)
    local vars = { PATH = os.getenv("PATH"), HOME = home, LANG = "C",
      HUAWEICLOUD_SDK_REGION_CSMS_CN_NORTH_4 = e.endpoint, HUAWEICLOUD_SDK_IAM_ENDPOINT = e.endpoint }
    for k, v in pairs(env) do vars[k] = v end
    local envs = {}
    for k, v in pairs(vars) do envs[#envs + 1] = q(k .. "=" .. v) end
    local argv = { LUA, q(CLI) }
    for _, a in ipairs(args) do argv[#argv + 1] = q(a) end
    local out, err = os.tmpname(), os.tmpname()
    local p = io.popen("cd " .. q(emulator.root) .. " && env -i " .. table.concat(envs, " ") .. " "
      .. table.concat(argv, " ") .. " >" .. q(out) .. " 2>" .. q(err) .. " </dev/null; echo $?")
    local code = tonumber(p:read("*l"))
    p:close()
    local r = { code = code, out = read(out) or "", err = read(err) or "" }
    os.remove(out)
    os.remove(err)
    return r
  end

  local function assert_clean(text, what)
    for _, pat in ipairs(SECRET_PATTERNS) do
      assert.is_nil(text:find(pat), what .. " shows a secret (" .. pat .. ")")
    end
  end

  local function backup_with(env)
    local dir = emulator.tmpdir() .. "/set"
    local r = run({ "backup", dir, "--region", "cn-north-4" }, env)
    assert.equal(0, r.code, r.err)
    assert_clean(r.out .. r.err, "the output")
    local manifest = cjson.decode(read(dir .. "/manifest.json"))
    assert.equal(e.project_id, manifest.project_id)
    local n = 0
    for _ in pairs(manifest.items) do n = n + 1 end
    assert.equal(3, n)
    local p = io.popen("cat " .. q(dir) .. "/* " .. q(dir) .. "/.[!.]* 2>/dev/null")
    assert_clean(p:read("*a"), "the backup set")
    p:close()
    os.execute("rm -rf " .. q(dir:gsub("/set$", "")))
    return r
  end

  it("backs up with AK/SK in the environment and the project id from IAM", function()
    backup_with { HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk }
    local _, iam = e:admin("GET", "/__emulator/iam")
    assert.equal(1, iam.stats.list_projects)
    assert.equal(3, e:stats().requests.backup)
  end)

  it("backs up with an OIDC id-token file (HUAWEICLOUD_SDK_IDP_ID + HUAWEICLOUD_SDK_ID_TOKEN_FILE)", function()
    backup_with { HUAWEICLOUD_SDK_IDP_ID = "emulator-idp", HUAWEICLOUD_SDK_ID_TOKEN_FILE = token_file }
    local _, iam = e:admin("GET", "/__emulator/iam")
    assert.same({ 1, 1, 1 }, { iam.stats.id_token, iam.stats.security_tokens, iam.stats.list_projects })
    assert.equal(3, e:stats().requests.backup)
  end)

  it("says which setting is wrong, with exit 2 and nothing sent to CSMS", function()
    local cases = {
      { { HUAWEICLOUD_SDK_IDP_ID = "emulator-idp", HUAWEICLOUD_SDK_ID_TOKEN_FILE = home .. "/missing" },
        "cannot read the id token file" },
      { { HUAWEICLOUD_SDK_IDP_ID = "emulator-idp" }, "HUAWEICLOUD_SDK_ID_TOKEN_FILE" },
      { { HUAWEICLOUD_SDK_IDP_ID = "other-idp", HUAWEICLOUD_SDK_ID_TOKEN_FILE = token_file }, "HTTP 404" },
      { {}, "no credentials: set HUAWEICLOUD_SDK_AK" },
    }
    for _, c in ipairs(cases) do
      local r = run({ "list", "--region", "cn-north-4" }, c[1])
      assert.equal(2, r.code, r.err)
      assert.truthy(r.err:find(c[2], 1, true), r.err)
      assert_clean(r.out .. r.err, "the output")
    end
    assert.equal(200, (e:admin("POST", "/__emulator/iam", { projects = { ["cn-north-4"] = {} } })))
    local r = run({ "list", "--region", "cn-north-4" }, { HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk })
    assert.equal(2, r.code, r.err)
    assert.truthy(r.err:find("no project named 'cn-north-4'", 1, true), r.err)
    assert.truthy(r.err:find("--project-id", 1, true), r.err)
    assert.equal(0, e:stats().total)
  end)
end)
