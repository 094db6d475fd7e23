-- csms.sign against the official Huawei Cloud Node.js signer (npm @huaweicloud/huaweicloud-sdk-core,
-- AKSKSigner.sign) on generated requests: methods, hosts with and without ports, paths with
-- unicode and sub-delimiters, queries with repeated and unicode keys, JSON bodies, extra headers,
-- security tokens and dates. Only requests where the SDKs agree are generated (see docs/signing.md):
-- no surrounding spaces in header values, no pre-encoded paths, no '_' in header names.
local csms = require "csms"
local cjson = require "cjson"

local node_sign = require("spec.support.node_signer").sign

local N = 1000

-- Park-Miller, exact in doubles: the same sequence under Lua 5.4 and LuaJIT.
local seed = 20261123
local function rand(n)
  seed = seed * 16807 % 2147483647
  return seed % n + 1
end
local function pick(t) return t[rand(#t)] end

local PATH_CHARS = { "a", "Z", "0", "9", "-", "_", ".", "~", "!", "$", "&", "(", ")", "*", "+", ",",
                     ";", "=", ":", "@", "é", "一", "ü", "ß" }
local QUERY_CHARS = { "a", "b", "k", "Z", "0", "7", "-", "_", ".", "~", " ", "/", "?", "&", "=", "%",
                      "+", "#", "é", "一", "ß", "!", "*", "'" }
local HEADER_NAMES = { "content-type", "x-project-id", "user-agent", "x-custom", "x-a1", "accept",
                       "x-trace-id", "x-b-c" }
local VALUE_CHARS = { "a", "B", "3", " ", "/", ";", "=", ",", "(", ")", "é", "一", ":", "\"" }

local function str(chars, lo, hi)
  local t = {}
  for i = 1, lo + rand(hi - lo + 1) - 1 do t[i] = pick(chars) end
  return table.concat(t)
end

local function generate(i)
  local method = pick { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD" }
  local host = pick { "kms.cn-north-4.myhuaweicloud.com", "127.0.0.1", "csms.example.com", "[::1]" }
  local port = pick { "", "", ":8080", ":443", ":80", ":9" }
  local segs = {}
  for s = 1, rand(5) - 1 do segs[s] = str(PATH_CHARS, 1, 8) end
  local path = "/" .. table.concat(segs, "/") .. (rand(4) == 1 and "/" or "")
  local query
  if rand(3) > 1 then
    query = {}
    local keys = {}
    for q = 1, rand(6) do
      local k = (q > 1 and rand(3) == 1) and keys[rand(#keys)] or str(QUERY_CHARS, 1, 6) -- repeats
      keys[#keys + 1] = k
      query[#query + 1] = { k, rand(5) == 1 and "" or str(QUERY_CHARS, 0, 8) }
    end
  end
  local headers = {}
  for _ = 1, rand(4) - 1 do
    local v = str(VALUE_CHARS, 1, 12):gsub("^ +", "x"):gsub(" +$", "y")
    headers[pick(HEADER_NAMES)] = v
  end
  local body_json
  if method ~= "GET" and method ~= "HEAD" and rand(4) > 1 then
    body_json = { name = str(VALUE_CHARS, 0, 10), n = rand(1000), list = { str(QUERY_CHARS, 1, 3), true } }
  end
  local token = rand(3) == 1 and ("token-" .. i .. str(VALUE_CHARS, 5, 30):gsub("[^%w]", "x")) or nil
  if token then headers["X-Security-Token"] = token end
  local date = ("%04d%02d%02dT%02d%02d%02dZ"):format(1999 + rand(30), rand(12), rand(28), rand(24) - 1,
    rand(60) - 1, rand(60) - 1)
  return {
    method = method, url = (rand(2) == 1 and "https://" or "http://") .. host .. port .. path,
    query = query, headers = headers, body_json = body_json, date = date,
    -- SKs past 64 bytes too: HMAC hashes those first
    ak = "AK" .. str({ "A", "B", "C", "7" }, 8, 20), sk = str(VALUE_CHARS, 10, 100),
    token = token,
  }
end

describe("csms.sign conformance with the official Node.js signer", function()
  it(("agrees on %d generated requests"):format(N), function()
    local cases = {}
    for i = 1, N do cases[i] = generate(i) end
    local signed = node_sign(cases)
    assert.equal(N, #signed)
    local agree, with_query, with_body, with_token, with_port = 0, 0, 0, 0, 0
    for i, c in ipairs(cases) do
      local theirs = signed[i]
      local headers = {}
      for k, v in pairs(c.headers) do headers[k] = v end
      headers["X-Security-Token"] = nil
      headers["X-Sdk-Date"] = c.date
      local body = theirs.body ~= cjson.null and theirs.body or nil
      local ours, err = csms.sign({ method = c.method, url = theirs.url, headers = headers, body = body },
        { ak = c.ak, sk = c.sk, security_token = c.token })
      assert(ours, err)
      if ours.Authorization ~= theirs.headers.Authorization then
        error(("case %d differs:\n%s\nours:   %s\ntheirs: %s\ncanonical (ours):\n%s"):format(i,
          cjson.encode(c), ours.Authorization, theirs.headers.Authorization,
          csms.canonical_request { method = c.method, url = theirs.url, body = body,
            headers = (function() headers["X-Security-Token"] = c.token; return headers end)() }))
      end
      agree = agree + 1
      if c.query then with_query = with_query + 1 end
      if body then with_body = with_body + 1 end
      if c.token then with_token = with_token + 1 end
      if c.url:find("%]?:%d+/") then with_port = with_port + 1 end
    end
    assert.equal(N, agree)
    -- the generator really covered what it claims
    assert.is_true(with_query > N / 2 and with_body > N / 4 and with_token > N / 5 and with_port > N / 3)
  end)

  it("signs IAM's KeystoneListProjects request as the official signer does", function()
    local iam = require "csms.credentials.iam"
    local cases, ours = {}, {}
    for i, region in ipairs { "cn-north-4", "ap-southeast-1", "la-south-2", "af-south-1", "x y/é" } do
      local t = 1700000000 + i * 86461
      local creds = { ak = "AK" .. str({ "A", "B", "7" }, 8, 20), sk = str(VALUE_CHARS, 10, 100),
        security_token = i % 2 == 0 and ("st-" .. i .. str({ "a", "Z", "9" }, 20, 40)) or nil }
      local base = pick { "https://iam." .. region:gsub("[^%w%-]", "") .. ".myhuaweicloud.com",
        "http://127.0.0.1:8080" }
      local req = assert(iam.list_projects_request(base, creds, region, t, "lua-csms/test"))
      ours[i] = req
      cases[i] = { method = "GET", url = base .. "/v3/projects", query = { { "name", region } },
        headers = { ["User-Agent"] = "lua-csms/test", ["X-Security-Token"] = creds.security_token },
        date = os.date("!%Y%m%dT%H%M%SZ", t), ak = creds.ak, sk = creds.sk }
    end
    local signed = node_sign(cases)
    for i, req in ipairs(ours) do
      assert.equal(signed[i].url, req.url)
      assert.equal(signed[i].headers.Authorization, req.headers.Authorization)
      assert.equal(cases[i].date, req.headers["X-Sdk-Date"])
      assert.is_nil(req.headers["X-Project-Id"])
    end
  end)
end)
