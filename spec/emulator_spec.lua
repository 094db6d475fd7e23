-- The CSMS emulator against real nginx: API, gateway authentication, the official Node.js signer,
-- backup blobs, pagination. (Faults, latency, throttling, persistence, the launcher:
-- spec/emulator_ops_spec.lua.)
local emulator = require "spec.support.emulator"
local json = require "csms.json"
local defaults = require "csms.emulator.defaults"

local JSON_CT = "application/json;charset=UTF-8"
local CT = { ["Content-Type"] = JSON_CT }

local function b64url_decode(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local val = {}
  for i = 1, #alphabet do val[alphabet:sub(i, i)] = i - 1 end
  local out, acc, bits = {}, 0, 0
  for c in s:gmatch(".") do
    local v = assert(val[c], "not base64url: " .. c)
    acc, bits = acc * 64 + v, bits + 6
    if bits >= 8 then
      bits = bits - 8
      local byte = math.floor(acc / 2 ^ bits)
      out[#out + 1] = string.char(byte)
      acc = acc - byte * 2 ^ bits
    end
  end
  return table.concat(out)
end

local function utc_date(offset_s)
  return os.date("!%Y%m%dT%H%M%SZ", os.time() + (offset_s or 0))
end

local function split_blob(b)
  local head = ")CloudSecretManagementBackupV1.huaweicloud.com"
  assert.are.equal(head, b:sub(1, #head))
  local parts = {}
  for p in (b:sub(#head + 1) .. "."):gmatch("([^.]*)%.") do parts[#parts + 1] = p end
  return head, parts
end

local function join_blob(head, parts)
  return head .. table.concat(parts, ".")
end

-- A different base64url character at position i of s.
local function flip(s, i)
  local c = s:sub(i, i)
  local repl = (c == "A") and "B" or "A"
  return s:sub(1, i - 1) .. repl .. s:sub(i + 1)
end

describe("csms emulator", function()
  local e

  setup(function()
    e = emulator.start{}
  end)

  teardown(function()
    if e then e:stop() end
  end)

  before_each(function()
    e:reset()
  end)

  local function api(path) return e:api(path) end

  local function call(method, path, body, extra)
    local r = { method = method, path = api(path), sign = "node", body = body,
                headers = body and CT or nil }
    for k, v in pairs(extra or {}) do r[k] = v end
    return e:request(r)
  end

  describe("responses", function()
    it("carry a 32-hex X-Request-Id and the JSON content type, on success and on errors", function()
      e:create_secret("s1", { "v" })
      for _, path in ipairs({ "/secrets/s1", "/secrets/missing", "/nothing/here" }) do
        local status, headers = call("GET", path)
        assert.is_number(status)
        assert.matches("^%x+$", headers["x-request-id"])
        assert.are.equal(32, #headers["x-request-id"])
        assert.are.equal(JSON_CT, headers["content-type"])
      end
      local _, h1 = call("GET", "/secrets/s1")
      local _, h2 = call("GET", "/secrets/s1")
      assert.are_not.equal(h1["x-request-id"], h2["x-request-id"])
    end)

    it("answers /__emulator/health with the project id", function()
      local h = e:health()
      assert.is_true(h.ok)
      assert.are.equal(defaults.project_id, h.project_id)
      assert.are.equal(e.project_id, h.project_id)
    end)

    it("returns 404 APIG.0101 for unknown routes and methods", function()
      for _, rq in ipairs({ { "GET", "/nothing" }, { "PUT", "/secrets/x" },
                            { "GET", "/secrets/x/backup" }, { "POST", "/secrets/x/versions/v1" } }) do
        local status, _, _, doc = call(rq[1], rq[2])
        assert.are.equal(404, status)
        assert.are.equal("APIG.0101", doc.error_code)
      end
      local status, _, _, doc = e:request{ method = "GET", path = "/v2/whatever", sign = "token" }
      assert.are.equal(404, status)
      assert.are.equal("APIG.0101", doc.error_code)
    end)

    it("refuses bodies over 8 MiB with 413 APIG.0201", function()
      local big = '{"name":"big","secret_string":"' .. string.rep("x", 8 * 1024 * 1024) .. '"}'
      local status, _, _, doc = e:request{ method = "POST", path = api("/secrets"), sign = "token",
        headers = CT, body = big }
      assert.are.equal(413, status)
      assert.are.equal("APIG.0201", doc.error_code)
      assert.are.equal(0, #e:dump())
    end)

    it("refuses a body that is not a JSON object with 400 CSMS.0004", function()
      local status, _, _, doc = e:request{ method = "POST", path = api("/secrets"), sign = "token",
        headers = CT, body = "{not json" }
      assert.are.equal(400, status)
      assert.are.equal("CSMS.0004", doc.error_code)
    end)
  end)

  describe("secrets", function()
    it("creates a secret with the documented fields, v1 SYSCURRENT", function()
      local status, _, body, doc = call("POST", "/secrets",
        { name = "db-pass_1", secret_string = "s3cr3t", description = "the db" })
      assert.are.equal(200, status)
      local s = doc.secret
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", s.id)
      assert.are.equal("db-pass_1", s.name)
      assert.are.equal("ENABLED", s.state)
      assert.are.equal("the db", s.description)
      assert.are.equal("COMMON", s.secret_type)
      assert.are.equal("0", s.enterprise_project_id)
      assert.is_false(s.auto_rotation)
      assert.are.equal(json.null, s.scheduled_delete_time)
      assert.is_string(s.kms_key_id)
      assert.is_true(s.create_time > 1.7e12 and s.create_time == math.floor(s.create_time))
      assert.are.equal(s.create_time, s.update_time)
      assert.matches('"event_subscriptions":%[%]', body) -- an array, not {}
      for _, f in ipairs({ "rotation_period", "rotation_config", "rotation_time",
                           "next_rotation_time", "rotation_func_urn" }) do
        assert.are_not.equal(nil, s[f], f)
      end
      assert.is_nil(s.secret_string)
      assert.is_nil(body:find("s3cr3t", 1, true))

      local st2, _, _, got = call("GET", "/secrets/db-pass_1")
      assert.are.equal(200, st2)
      assert.are.same(s, got.secret)
      local st3, _, _, v = call("GET", "/secrets/db-pass_1/versions/v1")
      assert.are.equal(200, st3)
      assert.are.equal("s3cr3t", v.version.secret_string)
      assert.are.same({ "SYSCURRENT" }, v.version.version_metadata.version_stages)
    end)

    it("refuses an existing name, invalid names and a missing value with 400", function()
      e:create_secret("taken", { "x" })
      local status, _, _, doc = call("POST", "/secrets", { name = "taken", secret_string = "y" })
      assert.are.equal(400, status)
      assert.are.equal("CSMS.0002", doc.error_code)
      assert.are.equal("The secret taken already exists.", doc.error_msg)
      for _, bad in ipairs({ "", "has space", "dot.name", string.rep("a", 65), "ünï" }) do
        local st, _, _, d = call("POST", "/secrets", { name = bad, secret_string = "y" })
        assert.are.equal(400, st, bad)
        assert.are.equal("CSMS.0002", d.error_code)
      end
      local ok64 = call("POST", "/secrets", { name = string.rep("a", 64), secret_string = "y" })
      assert.are.equal(200, ok64)
      local st, _, _, d = call("POST", "/secrets", { name = "novalue" })
      assert.are.equal(400, st)
      assert.are.equal("CSMS.0002", d.error_code)
      local st4, _, _, d4 = call("GET", "/secrets/bad.name")
      assert.are.equal(400, st4)
      assert.are.equal("CSMS.0002", d4.error_code)
    end)

    it("answers 404 CSMS.0005 for a missing secret on every route", function()
      for _, rq in ipairs({ { "GET", "/secrets/ghost" }, { "DELETE", "/secrets/ghost" },
                            { "POST", "/secrets/ghost/backup" }, { "GET", "/secrets/ghost/versions" },
                            { "GET", "/secrets/ghost/versions/v1" } }) do
        local status, _, _, doc = call(rq[1], rq[2])
        assert.are.equal(404, status, rq[2])
        assert.are.same({ error_code = "CSMS.0005", error_msg = "The resource does not exist." }, doc)
      end
      local status, _, _, doc = call("POST", "/secrets/ghost/versions", { secret_string = "x" })
      assert.are.equal(404, status)
      assert.are.equal("CSMS.0005", doc.error_code)
    end)

    it("adds versions: the new one SYSCURRENT, the previous SYSPREVIOUS, update_time moves", function()
      local created = e:create_secret("rot", { "one" })
      os.execute("sleep 0.02")
      local status, _, _, doc = call("POST", "/secrets/rot/versions", { secret_string = "two" })
      assert.are.equal(200, status)
      local md = doc.version.version_metadata
      assert.are.equal("v2", md.id)
      assert.are.equal("rot", md.secret_name)
      assert.are.same({ "SYSCURRENT" }, md.version_stages)
      call("POST", "/secrets/rot/versions", { secret_string = "three" })

      local _, _, _, list = call("GET", "/secrets/rot/versions")
      local stages = {}
      for _, v in ipairs(list.version_metadatas) do stages[v.id] = v.version_stages end
      assert.are.same({ v1 = {}, v2 = { "SYSPREVIOUS" }, v3 = { "SYSCURRENT" } }, stages)

      local _, _, _, latest = call("GET", "/secrets/rot/versions/latest")
      assert.are.equal("three", latest.version.secret_string)
      assert.are.equal("v3", latest.version.version_metadata.id)
      local _, _, _, v1 = call("GET", "/secrets/rot/versions/v1")
      assert.are.equal("one", v1.version.secret_string)
      local st, _, _, none = call("GET", "/secrets/rot/versions/v9")
      assert.are.equal(404, st)
      assert.are.equal("CSMS.0005", none.error_code)

      local _, _, _, meta = call("GET", "/secrets/rot")
      assert.is_true(meta.secret.update_time > created.update_time)
      assert.are.equal(created.create_time, meta.secret.create_time)
    end)

    it("deletes a secret at once (204)", function()
      e:create_secret("gone", { "x" })
      local status, headers, body = call("DELETE", "/secrets/gone")
      assert.are.equal(204, status)
      assert.are.equal("", body)
      assert.are.equal(32, #headers["x-request-id"])
      assert.are.equal(404, (call("GET", "/secrets/gone")))
      assert.are.equal(200, (call("POST", "/secrets", { name = "gone", secret_string = "again" })))
    end)

    it("lists 25 secrets by name in pages, with next_marker until the last page", function()
      local names = {}
      for i = 25, 1, -1 do
        local name = string.format("sec-%02d", i)
        e:create_secret(name, { "v" .. i })
        table.insert(names, 1, name)
      end
      -- default limit 10
      local _, _, _, first = call("GET", "/secrets")
      assert.are.equal(10, #first.secrets)
      assert.are.equal(10, first.page_info.current_count)
      assert.are.equal("sec-10", first.page_info.next_marker)

      local seen, marker, pages = {}, nil, 0
      repeat
        local query = { { "limit", "7" } }
        if marker then query[#query + 1] = { "marker", marker } end
        local status, _, _, doc = call("GET", "/secrets", nil, { query = query })
        assert.are.equal(200, status)
        pages = pages + 1
        for _, s in ipairs(doc.secrets) do
          seen[#seen + 1] = s.name
          assert.is_nil(s.secret_string)
        end
        marker = doc.page_info.next_marker
        if marker == json.null then marker = nil end
        if marker then assert.are.equal(doc.secrets[#doc.secrets].name, marker) end
      until not marker
      assert.are.equal(4, pages)
      assert.are.same(names, seen)

      local _, _, _, all = call("GET", "/secrets", nil, { query = { { "limit", "200" } } })
      assert.are.equal(25, #all.secrets)
      assert.are.equal(json.null, all.page_info.next_marker)

      for _, bad in ipairs({ "0", "201", "abc", "-1", "1.5" }) do
        local status, _, _, doc = call("GET", "/secrets", nil, { query = { { "limit", bad } } })
        assert.are.equal(400, status, bad)
        assert.are.equal("CSMS.0002", doc.error_code)
      end
    end)

    it("lists no secrets as an empty array", function()
      local status, _, body, doc = call("GET", "/secrets")
      assert.are.equal(200, status)
      assert.matches('"secrets":%[%]', body)
      assert.are.equal(0, doc.page_info.current_count)
    end)
  end)

  describe("authentication", function()
    local function secrets_get(extra)
      local r = { method = "GET", path = api("/secrets"), sign = "node" }
      for k, v in pairs(extra or {}) do r[k] = v end
      return e:request(r)
    end

    local function assert_401(status, doc, pattern)
      assert.are.equal(401, status)
      assert.are.equal("APIG.0301", doc.error_code)
      assert.matches("^Incorrect IAM authentication information: ", doc.error_msg)
      if pattern then assert.matches(pattern, doc.error_msg, 1, true) end
      assert.are.equal(32, #doc.request_id)
    end

    -- node-signed wire form, to be changed before sending
    local function signed_wire(r)
      local s = emulator.node_sign({ {
        method = r.method or "GET", url = e.endpoint .. (r.path or api("/secrets")),
        headers = r.headers or {}, query = r.query, body_json = r.body, ak = e.ak, sk = e.sk,
        date = r.date,
      } })[1]
      return s
    end

    local function send_wire(s, method, headers)
      local status, h, body = e:http({ method = method or "GET",
        target = s.url:sub(#e.endpoint + 1), headers = headers or s.headers, body = s.body })
      return status, h, body, json.decode(body or "")
    end

    it("accepts a request signed by the official Node.js signer", function()
      local status = secrets_get()
      assert.are.equal(200, status)
    end)

    it("refuses an unknown AK", function()
      local status, _, _, doc = secrets_get({ ak = "NOSUCHAK000000000000" })
      assert_401(status, doc, "NOSUCHAK000000000000 does not exist")
    end)

    it("refuses a wrong signature and shows the canonical request it computed", function()
      local status, _, _, doc = secrets_get({ sk = "not-the-sk",
        query = { { "limit", "5" }, { "marker", "a b" } } })
      assert_401(status, doc, "verify aksk signature fail, canonicalRequest: GET\n/v1/" ..
        e.project_id .. "/secrets/\nlimit=5&marker=a%20b\nhost:127.0.0.1:" .. e.port ..
        "\nx-sdk-date:")
      local tail = "\nhost;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
      assert.are.equal(tail, doc.error_msg:sub(-#tail))
    end)

    it("refuses a body changed after signing", function()
      local s = signed_wire({ method = "POST", headers = CT,
        body = { name = "x1", secret_string = "a" } })
      s.body = s.body:gsub('"a"', '"b"')
      local status, _, _, doc = send_wire(s, "POST")
      assert_401(status, doc, "verify aksk signature fail")
      assert.are.equal(0, #e:dump())
    end)

    it("refuses a signature whose SignedHeaders leave out host, or x-sdk-date", function()
      local s = signed_wire({})
      local h = {}
      for k, v in pairs(s.headers) do h[k] = v end
      h.Authorization = s.headers.Authorization:gsub("SignedHeaders=host;", "SignedHeaders=")
      local status, _, _, doc = send_wire(s, "GET", h)
      assert_401(status, doc, "host is not in SignedHeaders")
      h.Authorization = s.headers.Authorization:gsub("host;x%-sdk%-date", "host")
      status, _, _, doc = send_wire(s, "GET", h)
      assert_401(status, doc, "x-sdk-date is not in SignedHeaders")
    end)

    it("refuses a request without the X-Sdk-Date header", function()
      local s = signed_wire({})
      local h = {}
      for k, v in pairs(s.headers) do if k ~= "X-Sdk-Date" then h[k] = v end end
      local status, _, _, doc = send_wire(s, "GET", h)
      assert_401(status, doc, "x-sdk-date is missing")
    end)

    it("refuses a malformed Authorization header", function()
      for _, bad in ipairs({ "SDK-HMAC-SHA256", "Bearer abc",
                             "SDK-HMAC-SHA256 Access=" .. e.ak .. ", SignedHeaders=host;x-sdk-date",
                             "SDK-HMAC-SHA256 Access=" .. e.ak ..
                               ", SignedHeaders=host;x-sdk-date, Signature=xyz" }) do
        local status, _, _, doc = e:request{ method = "GET", path = api("/secrets"), sign = false,
          headers = { Authorization = bad, ["X-Sdk-Date"] = utc_date() } }
        assert_401(status, doc)
      end
    end)

    it("accepts X-Sdk-Date within 15 minutes and refuses it beyond, with the server time", function()
      assert.are.equal(200, (secrets_get({ date = utc_date(-10 * 60) })))
      assert.are.equal(200, (secrets_get({ date = utc_date(10 * 60) })))
      local before = os.time()
      local status, _, _, doc = secrets_get({ date = utc_date(-20 * 60) })
      assert_401(status, doc, "x-sdk-date expired, current ts:")
      local cur, req = doc.error_msg:match("current ts:(%d+), request ts:(%d+)")
      assert.is_truthy(cur)
      assert.is_true(math.abs(tonumber(cur) / 1000 - before) < 5)
      assert.is_true(math.abs((tonumber(cur) - tonumber(req)) / 1000 - 1200) < 5)
      local st2, _, _, doc2 = secrets_get({ date = utc_date(20 * 60) })
      assert_401(st2, doc2, "x-sdk-date expired")
    end)

    it("judges X-Sdk-Date by the skewed clock and sends the skewed Date", function()
      e:config({ clock_skew_s = -1800 })
      local status, headers, _, doc = secrets_get()
      assert_401(status, doc, "x-sdk-date expired")
      assert.are.equal(200, (secrets_get({ date = utc_date(-1800) })))
      local _, h = secrets_get({ date = utc_date(-1800) })
      assert.is_truthy(h.date)
      assert.are_not.equal(headers.date, os.date("!%a, %d %b %Y %H:%M:%S GMT"))
      assert.are.equal(os.date("!%d %b %Y %H", os.time() - 1800), h.date:match("^%a+, (.-):"))
    end)

    it("accepts the configured X-Auth-Token and refuses another one, or none", function()
      local status = e:request{ method = "GET", path = api("/secrets"), sign = "token" }
      assert.are.equal(200, status)
      local st2, _, _, doc = e:request{ method = "GET", path = api("/secrets"), sign = "token",
        token = "not-the-token" }
      assert_401(st2, doc, "decrypt token fail")
      local st3, _, _, doc3 = e:request{ method = "GET", path = api("/secrets"), sign = false }
      assert_401(st3, doc3, "Authorization not found")
    end)

    it("locks the AK after 5 consecutive failures, until reset", function()
      for _ = 1, 5 do
        local status = secrets_get({ sk = "wrong" })
        assert.are.equal(401, status)
      end
      local status, _, _, doc = secrets_get()
      assert_401(status, doc, "locked")
      assert.matches("5 consecutive", doc.error_msg)
      assert.is_true(e:stats().auth_failures >= 6)
      e:reset()
      assert.are.equal(200, (secrets_get()))
    end)

    it("counts only consecutive failures, and can have lock-out turned off", function()
      for _ = 1, 4 do assert.are.equal(401, (secrets_get({ sk = "wrong" }))) end
      assert.are.equal(200, (secrets_get()))
      for _ = 1, 4 do assert.are.equal(401, (secrets_get({ sk = "wrong" }))) end
      assert.are.equal(200, (secrets_get()))
      e:config({ lockout = false })
      for _ = 1, 7 do assert.are.equal(401, (secrets_get({ sk = "wrong" }))) end
      assert.are.equal(200, (secrets_get()))
    end)

    it("leaves headers with '_' out of the signature", function()
      -- sent but not signed: accepted
      local status = secrets_get({ extra_headers = { ["X_Custom_Header"] = "anything" } })
      assert.are.equal(200, status)
      -- signed by a signer that includes it: the gateway leaves it out, so the signature fails
      local st2, _, _, doc = secrets_get({ headers = { ["Test_Underscore"] = "v" } })
      assert_401(st2, doc, "verify aksk signature fail")
      assert.is_nil(doc.error_msg:find("test_underscore", 1, true))
    end)

    it("trims received header values before checking the signature", function()
      local s = signed_wire({ headers = { ["X-Custom"] = "value" } })
      local h = {}
      for k, v in pairs(s.headers) do h[k] = v end
      h["X-Custom"] = "   value  "
      assert.are.equal(200, (send_wire(s, "GET", h)))
      h["X-Custom"] = "value2"
      assert.are.equal(401, (send_wire(s, "GET", h)))
    end)

    it("refuses another project's path with 403 CSMS.0003, after authentication", function()
      local other = "00000000000000000000000000000000"
      local status, _, _, doc = e:request{ method = "GET", path = e:api("/secrets", other),
        sign = "node" }
      assert.are.equal(403, status)
      assert.are.equal("CSMS.0003", doc.error_code)
      assert.matches(other, doc.error_msg, 1, true)
      local st2 = e:request{ method = "GET", path = e:api("/secrets", other), sign = "node",
        sk = "wrong" }
      assert.are.equal(401, st2)
    end)
  end)

  describe("the official Node.js signer", function()
    it("signs three dozen varied requests that the emulator accepts", function()
      e:create_secret("alpha", { "a1", "a2" })
      e:create_secret("beta_2", { "b1" })
      local reqs = {}
      local function add(r, expect)
        r.sign = "node"
        r.expect = expect or 200
        reqs[#reqs + 1] = r
      end
      local queries = {
        { { "limit", "1" } },
        { { "limit", "2" }, { "marker", "alpha" } },
        { { "marker", "" }, { "limit", "3" } },
        { { "z", "1" }, { "a", "2" }, { "z", "0" }, { "limit", "10" } },
        { { "multi", "3" }, { "multi", "1" }, { "multi", "2" } },
        { { "test", "一 (&=?!#%.*)" }, { "path", "/tmp/123" } },
        { { "emoji", "🔑 key" }, { "ünïcode", "välue" } },
        { { "plus", "a+b" }, { "tilde", "~x-y_z." } },
        { { "empty", "" }, { "empty", "" } },
        { { "sp ace", "x y" }, { "eq", "a=b=c" } },
        { { "limit", "200" }, { "Limit", "5" } },
        { { "amp", "a&b" }, { "hash", "#frag" } },
      }
      for _, q in ipairs(queries) do
        add({ method = "GET", path = api("/secrets"), query = q })
      end
      local values = { "plain", "ünïcödé ✓", "quotes \" and \\ backslash", "line\nbreak\ttab",
                       string.rep("long-", 500), "{\"json\":[1,2]}", "slash/and?query=1&x" }
      for i, v in ipairs(values) do
        add({ method = "POST", path = api("/secrets"), headers = CT,
              body = { name = "node-" .. i, secret_string = v, description = "d" .. i } })
        add({ method = "POST", path = api("/secrets/node-" .. i .. "/versions"), headers = CT,
              body = { secret_string = v .. "-2" } })
      end
      add({ method = "GET", path = api("/secrets/alpha") })
      add({ method = "GET", path = api("/secrets/beta_2/versions") })
      add({ method = "GET", path = api("/secrets/alpha/versions/latest") })
      add({ method = "GET", path = api("/secrets/alpha/versions/v1"),
            headers = { ["User-Agent"] = "huaweicloud-usdk-nodejs/3.0", ["X-Project-Id"] = e.project_id } })
      add({ method = "POST", path = api("/secrets/alpha/backup") })
      add({ method = "GET", path = api("/secrets/beta_2"), headers = { ["Content-Type"] = JSON_CT } })
      add({ method = "DELETE", path = api("/secrets/beta_2") }, 204)
      add({ method = "GET", path = api("/secrets/beta_2") }, 404)
      add({ method = "GET", path = api("/secrets/alpha/"), query = { { "x", "1" } } })
      add({ method = "POST", path = api("/secrets"), headers = CT,
            body = { name = "bad name", secret_string = "x" } }, 400)
      assert.is_true(#reqs >= 36)
      local results = e:requests(reqs)
      for i, res in ipairs(results) do
        assert.are.equal(reqs[i].expect, res.status, i .. ": " .. tostring(res.body))
      end
      -- values went through byte for byte
      for i, v in ipairs(values) do
        local _, _, _, doc = call("GET", "/secrets/node-" .. i .. "/versions/v1")
        assert.are.equal(v, doc.version.secret_string)
      end
      assert.are.equal(0, e:stats().auth_failures)
    end)
  end)

  describe("backup blobs", function()
    local function backup(name)
      local status, _, _, doc = call("POST", "/secrets/" .. name .. "/backup")
      assert.are.equal(200, status)
      return doc.secret_blob
    end

    local function restore(b, target)
      return (target or e):request{ method = "POST", path = (target or e):api("/secrets/restore"),
        sign = "node", headers = CT, body = { secret_blob = b } }
    end

    it("have the documented shape: prefix, domain, a five-part JWE (A256GCMKW / A256GCM)", function()
      e:create_secret("shape", { "value-1" })
      local b = backup("shape")
      local _, parts = split_blob(b)
      assert.are.equal(5, #parts)
      for _, p in ipairs(parts) do assert.matches("^[%w_%-]+$", p) end
      local header = json.decode(b64url_decode(parts[1]))
      assert.are.equal("A256GCM", header.enc)
      assert.are.equal("A256GCMKW", header.alg)
      assert.is_string(header.kid)
      assert.are.equal(12, #b64url_decode(header.iv))
      assert.are.equal(16, #b64url_decode(header.tag))
      assert.are.equal(32, #b64url_decode(parts[2]))
      assert.are.equal(12, #b64url_decode(parts[3]))
      assert.are.equal(16, #b64url_decode(parts[5]))
      assert.is_nil(b:find("value-1", 1, true))
      assert.are_not.equal(b, backup("shape")) -- fresh CEK and IVs each time
    end)

    it("restore a deleted secret identically: id, metadata, versions, values, stages", function()
      e:create_secret("keep", { "one", "two", "three" }, { description = "kept" })
      call("POST", "/secrets/keep/versions", { secret_string = "four" })
      local before = e:dump()
      local b = backup("keep")
      assert.are.equal(204, (call("DELETE", "/secrets/keep")))
      local status, _, body, doc = restore(b)
      assert.are.equal(200, status)
      assert.is_nil(body:find("four", 1, true))
      assert.is_nil(doc.secret.versions)
      assert.are.equal(before[1].id, doc.secret.id)
      assert.are.same(before, e:dump())
      local _, _, _, v = call("GET", "/secrets/keep/versions/latest")
      assert.are.equal("four", v.version.secret_string)
    end)

    it("refuse to restore over an existing name with 400 'already exists'", function()
      e:create_secret("dup", { "x" })
      local b = backup("dup")
      local status, _, _, doc = restore(b)
      assert.are.equal(400, status)
      assert.are.same({ error_code = "CSMS.0002", error_msg = "The secret dup already exists." }, doc)
    end)

    it("refuse a blob with any JWE part or the prefix changed", function()
      e:create_secret("tamper", { "x", "y" })
      local b = backup("tamper")
      call("DELETE", "/secrets/tamper")
      local head, parts = split_blob(b)
      local variants = {}
      for i = 1, 5 do
        local p = parts[i]
        for _, pos in ipairs({ math.floor(#p / 2) + 1, #p }) do
          local copy = { (table.unpack or unpack)(parts) }
          copy[i] = flip(p, pos)
          variants[#variants + 1] = join_blob(head, copy)
        end
      end
      variants[#variants + 1] = flip(head, 5) .. table.concat(parts, ".")
      variants[#variants + 1] = join_blob(head, { parts[1], parts[2], parts[3], parts[4] })
      variants[#variants + 1] = b .. "A"
      variants[#variants + 1] = "not a blob"
      for n, v in ipairs(variants) do
        assert.are_not.equal(b, v)
        local status, _, _, doc = restore(v)
        assert.are.equal(400, status, "variant " .. n)
        assert.are.equal("CSMS.0002", doc.error_code)
        assert.matches("^The secret_blob is invalid", doc.error_msg)
      end
      assert.are.equal(0, #e:dump())
      assert.are.equal(200, (restore(b)))
    end)

    it("refuse a blob from another emulator (another key)", function()
      local e2 = emulator.start{}
      local ok, err = pcall(function()
        e2:create_secret("foreign", { "x" })
        local st, _, _, doc = e2:request{ method = "POST", path = e2:api("/secrets/foreign/backup"),
          sign = "node" }
        assert.are.equal(200, st)
        local status, _, _, d = restore(doc.secret_blob)
        assert.are.equal(400, status)
        assert.are.equal("CSMS.0002", d.error_code)
        assert.matches("^The secret_blob is invalid: encrypted with another key", d.error_msg)
        -- the blob itself is sound: its own emulator gets as far as the name check
        local st2, _, _, d2 = restore(doc.secret_blob, e2)
        assert.are.equal(400, st2)
        assert.are.equal("The secret foreign already exists.", d2.error_msg)
      end)
      e2:stop()
      assert(ok, err)
      assert.are.equal(404, (call("GET", "/secrets/foreign")))
    end)

    it("refuse a missing or non-string secret_blob", function()
      local status, _, _, doc = call("POST", "/secrets/restore", { other = 1 })
      assert.are.equal(400, status)
      assert.are.equal("CSMS.0002", doc.error_code)
    end)
  end)
end)
