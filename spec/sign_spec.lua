-- csms.sign: the official vectors of docs/signing.md, then the gateway's rules
-- one by one (each case here is one a plausible bug gets wrong).
local csms = require "csms"

local CREDS = { ak = "AccessKey", sk = "SecretKey" }
local HOST = "https://service.endpoint.myhuaweicloud.com"

local function sig(headers) return headers.Authorization:match("Signature=(%x+)$") end
local function signed(headers) return headers.Authorization:match("SignedHeaders=([^,]+),") end

local function canonical(req, opts)
  return assert(csms.canonical_request(req, opts))
end

describe("csms.sign official vectors", function()
  it("Python SDK GET, underscore header left unsigned", function()
    local h = assert(csms.sign({ method = "GET", url = HOST .. "/resources?size=1",
      headers = { ["X-Sdk-Date"] = "20200608T023900Z", TEST_UNDERSCORE = "value" } }, CREDS))
    assert.equal("host;x-sdk-date", signed(h))
    assert.equal("cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842", sig(h))
    assert.equal("SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature="
      .. "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842", h.Authorization)
    assert.equal("value", h.TEST_UNDERSCORE) -- still sent
  end)

  it("Python SDK POST with a JSON body", function()
    local h = assert(csms.sign({ method = "POST", url = HOST .. "/resources?size=1",
      headers = { ["X-Sdk-Date"] = "20200608T023900Z", TEST_UNDERSCORE = "value" },
      body = '{"name":"test","id":1}' }, CREDS))
    assert.equal("436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f", sig(h))
  end)

  it("Go SDK GET without host", function()
    local h = assert(csms.sign({ method = "GET", url = HOST .. "/path?limit=1",
      headers = { ["X-Sdk-Date"] = "20060102T150405Z" } }, CREDS, { unsigned_headers = { "Host" } }))
    assert.equal("x-sdk-date", signed(h))
    assert.equal("5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624", sig(h))
  end)

  it("Go SDK POST with a body ending in a newline", function()
    local h = assert(csms.sign({ method = "POST", url = HOST .. "/path?key=value",
      headers = { ["X-Sdk-Date"] = "20060102T150405Z" }, body = '{"Name":"test","Id":1}\n' },
      CREDS, { unsigned_headers = { "host" } }))
    assert.equal("cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59", sig(h))
  end)

  it("canonical query of the shared query vector", function()
    local c = canonical { method = "GET", headers = { ["X-Sdk-Date"] = "20200608T023900Z" },
      url = HOST .. "/?limit=1&enable=true&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        .. "&path=%2Ftmp%2F123&multi=3&multi=1&multi=2" }
    local query = select(3, c:find("^[^\n]*\n[^\n]*\n([^\n]*)\n"))
    assert.equal("enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123"
      .. "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29", query)
  end)
end)

describe("csms.sign gateway rules", function()
  local DATE = { ["X-Sdk-Date"] = "20260101T000000Z" }
  local function lines(req, opts)
    local out = {}
    for l in (canonical(req, opts) .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = l end
    return out
  end
  local function with_date(extra)
    local h = { ["X-Sdk-Date"] = DATE["X-Sdk-Date"] }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  it("decodes the path once, then encodes each segment, and ends it with '/'", function()
    assert.equal("/a/", lines { method = "GET", url = HOST .. "/a", headers = DATE }[2])
    assert.equal("/a/", lines { method = "GET", url = HOST .. "/a/", headers = DATE }[2])
    assert.equal("/", lines { method = "GET", url = HOST, headers = DATE }[2])
    assert.equal("/a%20b/c/", lines { method = "GET", url = HOST .. "/a%20b/c", headers = DATE }[2])
    -- an encoded '%' stays one '%', not %2525
    assert.equal("/100%25/", lines { method = "GET", url = HOST .. "/100%25", headers = DATE }[2])
    -- raw UTF-8 and its encoded form sign alike
    assert.equal(lines { method = "GET", url = HOST .. "/%E4%B8%80", headers = DATE }[2],
      lines { method = "GET", url = HOST .. "/一", headers = DATE }[2])
    -- an invalid escape is kept as written, then encoded
    assert.equal("/%25zz/", lines { method = "GET", url = HOST .. "/%zz", headers = DATE }[2])
  end)

  it("sorts the query by key then value, keeps empty values and drops empty keys", function()
    local q = lines { method = "GET", url = HOST .. "/?b=2&a=&c&a=z&a=b&=x&~t=1", headers = DATE }[3]
    assert.equal("a=&a=b&a=z&b=2&c=&~t=1", q)
    -- '+' is a literal plus, not a space; unreserved characters are not encoded
    q = lines { method = "GET", url = HOST .. "/?k=a+b&s=-_.~", headers = DATE }[3]
    assert.equal("k=a%2Bb&s=-_.~", q)
    -- a fragment is never part of the signature
    q = lines { method = "GET", url = HOST .. "/p?x=1#frag", headers = DATE }[3]
    assert.equal("x=1", q)
  end)

  it("signs host with the port the URL has", function()
    local l = lines { method = "GET", url = "http://127.0.0.1:8080/x", headers = DATE }
    assert.equal("host:127.0.0.1:8080", l[4])
    l = lines { method = "GET", url = "https://h.example:443/x", headers = DATE }
    assert.equal("host:h.example:443", l[4])
    l = lines { method = "GET", url = "http://[::1]:9000/x", headers = DATE }
    assert.equal("host:[::1]:9000", l[4])
    -- an explicit Host header wins over the URL
    l = lines { method = "GET", url = "http://127.0.0.1:8080/x", headers = with_date { Host = "api.test" } }
    assert.equal("host:api.test", l[4])
  end)

  it("trims header values, lower-cases and sorts names, leaves '_' names out", function()
    local c = canonical { method = "POST", url = HOST .. "/x",
      headers = with_date { ["Content-Type"] = "  application/json \t", ["X-Project-Id"] = "p1",
        ["User-Agent"] = "lua-csms/0.1.0", my_header = "no" } }
    assert.truthy(c:find("\ncontent-type:application/json\nhost:service.endpoint.myhuaweicloud.com\n"
      .. "user-agent:lua-csms/0.1.0\nx-project-id:p1\nx-sdk-date:20260101T000000Z\n\n"
      .. "content-type;host;user-agent;x-project-id;x-sdk-date\n", 1, true))
    assert.falsy(c:find("my_header", 1, true))
  end)

  it("hashes the exact body bytes, or uses X-Sdk-Content-Sha256 when given", function()
    local empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert.equal(empty, lines { method = "POST", url = HOST, headers = DATE }[8])
    local a = lines { method = "POST", url = HOST, headers = DATE, body = '{"a":1}' }[8]
    local b = lines { method = "POST", url = HOST, headers = DATE, body = '{"a": 1}' }[8]
    assert.are_not.equal(a, b)
    assert.equal("015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862", a)
    local body_nul = lines { method = "POST", url = HOST, headers = DATE, body = "a\0b" }[8]
    assert.equal(require("csms.core").crypto.sha256_hex("a\0b"), body_nul)
    assert.equal("UNSIGNED-PAYLOAD", lines { method = "POST", url = HOST, body = "x",
      headers = with_date { ["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD" } }[9])
  end)

  it("adds X-Sdk-Date (UTC, basic format) and X-Security-Token, and signs them", function()
    local before = os.time()
    local h = assert(csms.sign({ method = "GET", url = HOST .. "/x", headers = {} },
      { ak = "AK", sk = "SK", security_token = "tok-123" }))
    assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", h["X-Sdk-Date"])
    local y, mo, d, hh, mi, ss = h["X-Sdk-Date"]:match("(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)")
    local t = os.time { year = y, month = mo, day = d, hour = hh, min = mi, sec = ss, isdst = false }
    local utc_offset = os.time(os.date("*t", before)) - os.time(os.date("!*t", before))
    assert.is_true(math.abs(t + utc_offset - before) <= 2)
    assert.equal("tok-123", h["X-Security-Token"])
    assert.equal("host;x-sdk-date;x-security-token", signed(h))
  end)

  it("returns a new table and leaves the request's headers alone", function()
    local headers = { ["Content-Type"] = "application/json", Authorization = "old" }
    local h = assert(csms.sign({ method = "POST", url = HOST, headers = headers, body = "{}" }, CREDS))
    assert.are_not.equal(headers, h)
    assert.same({ ["Content-Type"] = "application/json", Authorization = "old" }, headers)
    assert.equal("application/json", h["Content-Type"])
    assert.matches("^SDK%-HMAC%-SHA256 Access=AccessKey, ", h.Authorization)
  end)

  it("gives a different signature for a different SK, method, path or query", function()
    local base = { method = "GET", url = HOST .. "/a?x=1", headers = DATE }
    local s0 = sig(assert(csms.sign(base, CREDS)))
    assert.equal(s0, sig(assert(csms.sign(base, CREDS))))
    assert.are_not.equal(s0, sig(assert(csms.sign(base, { ak = "AccessKey", sk = "SecretKey2" }))))
    for _, r in ipairs {
      { method = "POST", url = HOST .. "/a?x=1" }, { method = "GET", url = HOST .. "/b?x=1" },
      { method = "GET", url = HOST .. "/a?x=2" },
    } do
      r.headers = DATE
      assert.are_not.equal(s0, sig(assert(csms.sign(r, CREDS))))
    end
  end)

  it("refuses header injection and malformed requests with nil, err", function()
    local cases = {
      { { method = "GET", url = HOST, headers = { A = "b\r\nEvil: 1" } }, "CR, LF or NUL" },
      { { method = "GET", url = HOST, headers = { A = "b\0" } }, "CR, LF or NUL" },
      { { method = "GET", url = HOST, headers = { ["A B"] = "x" } }, "token" },
      { { method = "GET", url = HOST, headers = { A = "1", a = "2" } }, "twice" },
      { { method = "GET", url = HOST .. "/a\r\nb" }, "control" },
      { { method = "GET", url = "ftp://h/" }, "http or https" },
      { { method = "GET", url = "/relative" }, "absolute" },
      { { method = "GET", url = "https://user:pw@h/" }, "user information" },
      { { method = "get", url = HOST }, "upper%-case" },
    }
    for _, c in ipairs(cases) do
      local h, err = csms.sign(c[1], CREDS)
      assert.is_nil(h)
      assert.equal("invalid_argument", err.kind)
      assert.matches(c[2], err.message)
      assert.matches("^csms sign: invalid_argument: ", tostring(err))
    end
    local h, err = csms.sign({ method = "GET", url = HOST }, { ak = "AK", sk = "" })
    assert.is_nil(h)
    assert.matches("sk is empty", err.message)
  end)

  it("raises on wrong types", function()
    assert.has_error(function() csms.sign(nil, CREDS) end, "csms: request must be a table, got nil")
    assert.has_error(function() csms.sign({ method = 1, url = HOST }, CREDS) end,
      "csms: request.method must be a string, got number")
    assert.has_error(function() csms.sign({ method = "GET", url = HOST, body = {} }, CREDS) end,
      "csms: request.body must be a string or nil, got table")
    assert.has_error(function() csms.sign({ method = "GET", url = HOST, headers = "x" }, CREDS) end,
      "csms: request.headers must be a table or nil, got string")
    assert.has_error(function() csms.sign({ method = "GET", url = HOST }, { ak = "a" }) end)
    assert.has_error(function() csms.sign({ method = "GET", url = HOST, headers = { [1] = "x" } }, CREDS) end)
    assert.has_error(function() csms.sign({ method = "GET", url = HOST, headers = { A = {} } }, CREDS) end)
  end)
end)

-- Signing caches the HMAC key schedule per credentials table and the canonical headers per
-- signer: neither may ever change a signature.
describe("csms.sign caches", function()
  local function fresh(req, creds) -- a new credentials table: no cached signer
    local c = {}
    for k, v in pairs(creds) do c[k] = v end
    return assert(csms.sign(req, c))
  end

  it("give the signature of a fresh signer through a mix of repeated and changed headers", function()
    local creds = { ak = "AK", sk = "SK" }
    local variants = {
      function(h) return h end,
      function(h) h["X-Project-Id"] = "p2"; return h end, -- one value changed
      function(h) h["x-project-id"], h["X-Project-Id"] = h["X-Project-Id"], nil; return h end,
      function(h) h.Extra = "1"; return h end,
      function(h) h["Content-Type"] = nil; return h end,
      function(h) h["X-Sdk-Date"] = "20261123T120001Z"; return h end, -- only the date
      function(h) h["x-sdk-date"], h["X-Sdk-Date"] = h["X-Sdk-Date"], nil; return h end,
      function(h) h["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"; return h end,
      function(h) h["X-Project-Id"] = "p" .. ("x"):rep(40); return h end, -- same count, longer
    }
    local seed = 12345
    for i = 1, 300 do
      seed = (seed * 1103515245 + 12345) % 2147483648
      local h = variants[seed % #variants + 1] {
        ["Content-Type"] = "application/json", Host = "h", ["X-Project-Id"] = "p1",
        ["X-Sdk-Date"] = "20261123T120000Z",
      }
      local req = { method = "POST", url = HOST .. "/v1/p/secrets/s" .. (i % 3) .. "/backup",
        headers = h, body = i % 2 == 0 and "{}" or nil }
      assert.equal(fresh(req, creds).Authorization, assert(csms.sign(req, creds)).Authorization)
    end
  end)

  it("notice a changed SK or security token in the same credentials table", function()
    local req = { method = "GET", url = HOST .. "/x", headers = { ["X-Sdk-Date"] = "20260101T000000Z" } }
    local creds = { ak = "AK", sk = "SK1" }
    local a = assert(csms.sign(req, creds)).Authorization
    creds.sk = "SK2"
    local b = assert(csms.sign(req, creds))
    assert.are_not.equal(a, b.Authorization)
    assert.equal(fresh(req, creds).Authorization, b.Authorization)
    creds.security_token = "tok-1"
    assert.equal("tok-1", assert(csms.sign(req, creds))["X-Security-Token"])
    creds.security_token = "tok-2"
    local c = assert(csms.sign(req, creds))
    assert.equal("tok-2", c["X-Security-Token"])
    assert.equal(fresh(req, creds).Authorization, c.Authorization)
    creds.ak = "AK2"
    assert.matches("Access=AK2,", assert(csms.sign(req, creds)).Authorization)
  end)

  it("a refused header list leaves no stale cache behind", function()
    local creds = { ak = "AK", sk = "SK" }
    local good = { method = "GET", url = HOST .. "/x", headers = { ["X-Sdk-Date"] = "20261123T120000Z", A = "1" } }
    local want = assert(csms.sign(good, creds)).Authorization
    local h, err = csms.sign({ method = "GET", url = HOST .. "/x",
      headers = { ["X-Sdk-Date"] = "20261123T120000Z", A = "1\r\n" } }, creds)
    assert.is_nil(h)
    assert.matches("CR, LF or NUL", err.message)
    h, err = csms.sign({ method = "GET", url = HOST .. "/x",
      headers = { ["X-Sdk-Date"] = "20261123T120000\nZ", A = "1" } }, creds)
    assert.is_nil(h)
    assert.matches("CR, LF or NUL", err.message)
    assert.equal(want, assert(csms.sign(good, creds)).Authorization)
  end)
end)
