-- Error bodies in every documented shape, the log line they make, retries and their limits,
-- all through a scripted transport (the emulator specs cover the same against a real server).
local csms = require "csms"
local errors = require "csms.errors"

describe("errors.parse_body", function()
  it("reads the flat CSMS shape", function()
    assert.same({ error_code = "CSMS.0005", error_msg = "The resource does not exist.", request_id = "r1" },
      errors.parse_body('{"error_code":"CSMS.0005","error_msg":"The resource does not exist.","request_id":"r1"}'))
  end)

  it("reads the nested shape, with IAM's numeric codes", function()
    assert.same({ error_code = "401", error_msg = "The request you have made requires authentication." },
      errors.parse_body('{"error":{"code":401,"message":"The request you have made requires authentication."}}'))
    assert.same({ error_code = "CSMS.0500", error_msg = "boom" },
      errors.parse_body('{"error":{"code":"CSMS.0500","message":"boom"}}'))
  end)

  it("keeps encoded_authorization_message", function()
    local e = errors.parse_body('{"error_code":"CSMS.0109","error_msg":"denied","encoded_authorization_message":"enc"}')
    assert.equal("enc", e.encoded_authorization_message)
  end)

  it("turns an HTML page into a short readable message", function()
    local e = errors.parse_body("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>"
      .. ("<p>x</p>"):rep(500) .. "</body></html>")
    assert.equal("502 Bad Gateway", e.error_msg)
    e = errors.parse_body("<html><body><h1>Service\n  Unavailable</h1>" .. ("z"):rep(400) .. "</body></html>")
    assert.equal(200, #e.error_msg)
    assert.matches("^Service Unavailable z", e.error_msg)
    assert.same({}, errors.parse_body(""))
    assert.same({}, errors.parse_body("   "))
  end)
end)

describe("errors.parse_body and answer_fields on hostile bodies", function()
  local TOKEN = ("MIIZ" .. ("0123456789abcdefghij"):rep(150)) -- 3,004 characters, as IAM tokens are
  local function leaks(fields)
    for _, v in pairs(fields) do
      if type(v) == "string" and v:find(TOKEN:sub(1, 16), 1, true) then return v end
    end
  end

  -- { body, header request id, want error_code, want request_id }
  local NUMBERS = {
    { '{"error_code":1e20,"error_msg":"m","request_id":1e400}', nil, "1e+20", "inf" },
    { '{"error":{"code":401,"message":"m"}}', nil, "401" },
    { '{"error":{"code":401.0,"message":"m"}}', nil, "401" },
    { '{"error_code":-1e400,"error_msg":"m","request_id":-1e20}', nil, "-inf", "-1e+20" },
    { '{"error_code":9007199254740993,"error_msg":"m"}', nil, "9.007199254741e+15" },
    { '{"error_code":"a\\nb","request_id":"r\\u001b[31m"}', nil, "a\\x0Ab", "r\\x1B[31m" },
  }
  for i, c in ipairs(NUMBERS) do
    it(("numbers and control characters in codes and ids read as one line (%d)"):format(i), function()
      local e = errors.answer_fields({ body = c[1], headers = { ["x-request-id"] = c[2] } }, {})
      assert.equal(c[3], e.error_code)
      assert.equal(c[4], e.request_id)
      local text = tostring(errors.new("http", nil, { status = 400, error_code = e.error_code,
        request_id = e.request_id, error_msg = e.error_msg }))
      assert.is_nil(text:find("%c"), text)
    end)
  end

  it("NaN codes do not raise", function()
    local e = errors.parse_body('{"error_code":NaN,"request_id":NaN}')
    assert.matches("nan", e.error_code)
  end)

  -- { where the token goes: body, x-request-id }
  local ECHOES = {
    { '{"error_code":"E","error_msg":"' .. ("x"):rep(2040) .. TOKEN .. '"}' },
    { '{"error_code":"E","error_msg":"' .. ("x"):rep(100) .. TOKEN .. ("y"):rep(3000) .. '"}' },
    { '{"error_code":"' .. TOKEN .. '","error_msg":"m"}' },
    { '{"error_code":"E","request_id":"' .. TOKEN .. '"}' },
    { '{"error_code":"E","error_msg":"m"}', TOKEN },
    { '{"error_code":"E","error_msg":"token ' .. TOKEN:sub(1, 900) .. '"}' },
    { "<html><body>" .. ("z"):rep(190) .. TOKEN .. "</body></html>" },
    { "<html><title>" .. ("t"):rep(150) .. " " .. TOKEN .. "</title></html>" },
    { '{"error_code":"E","encoded_authorization_message":"' .. TOKEN .. '"}' },
  }
  for i, c in ipairs(ECHOES) do
    it(("a long token echoed anywhere is redacted before anything is cut short (%d)"):format(i), function()
      local e = errors.answer_fields({ body = c[1], headers = { ["x-request-id"] = c[2] } }, { TOKEN })
      assert.is_nil(leaks(e))
    end)
  end

  it("token headers are redacted by name, quoted or not", function()
    for _, text in ipairs { 'X-Auth-Token: abc', '"x-auth-token":"abc"', "x-security-token=abc",
                            "X-Security-Token:abc" } do
      assert.is_nil(errors.redact(text, {}):find("abc", 1, true), text)
    end
  end)
end)

describe("error values", function()
  it("read well in a log line", function()
    local e = errors.new("http", nil, { op = "backup", status = 404, error_code = "CSMS.0005",
      error_msg = "The resource does not exist.", request_id = "abc123" })
    assert.equal("csms backup: HTTP 404 CSMS.0005: The resource does not exist. (request_id abc123)", tostring(e))
    e = errors.new("timeout", "Operation timed out after 1000 milliseconds", { op = "restore", attempts = 4 })
    assert.equal("csms restore: timeout: Operation timed out after 1000 milliseconds after 4 attempts", tostring(e))
  end)

  it("redact tokens a gateway echoes back", function()
    local msg = "Incorrect IAM authentication information: verify aksk signature fail, canonicalRequest: "
      .. "POST\n/v1/\n\nhost:h\nx-security-token:TOKEN123456\n\nhost;x-security-token"
    local r = errors.redact(msg, { "SECRETSK", "TOKEN123456" })
    assert.falsy(r:find("TOKEN123456", 1, true))
    assert.truthy(r:find("x-security-token:[redacted]", 1, true))
    assert.equal("a [redacted] b [redacted]", errors.redact("a SECRETSK b SECRETSK", { "SECRETSK" }))
  end)
end)

-- A transport that plays back a script of answers and records what was sent.
local function scripted(script)
  local sent, sleeps = {}, {}
  local t = {
    request = function(_, req)
      sent[#sent + 1] = req
      local step = table.remove(script, 1)
      assert(step, "the client sent more requests than the script has")
      if step.kind then return nil, step end
      step.headers = step.headers or {}
      step.body = step.body or ""
      return step
    end,
    sleep = function(_, s) sleeps[#sleeps + 1] = s end,
    close = function() end,
  }
  return t, sent, sleeps
end

local function client(t, extra)
  local opts = { ak = "AK", sk = "SECRET-SK", security_token = "SECRET-TOKEN", project_id = "p1",
    endpoint = "http://127.0.0.1:1", transport = t, backoff_base = 0.01 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

local BLOB_OK = '{"secret_blob":"blob"}'

describe("retries", function()
  it("retry 429/500/502/503/504 and connection failures, signing every attempt afresh", function()
    local t, sent, sleeps = scripted {
      { status = 500, body = '{"error_code":"CSMS.0500","error_msg":"x"}' },
      { kind = "transport", message = "Connection reset", sent = true },
      { status = 503, body = "" },
      { status = 200, body = BLOB_OK, headers = { ["x-request-id"] = "rid" } },
    }
    local res = assert(client(t):backup("s"))
    assert.equal("blob", res.secret_blob)
    assert.equal("rid", res.request_id)
    assert.equal(4, #sent)
    assert.equal(3, #sleeps)
    for i, s in ipairs(sleeps) do assert.is_true(s >= 0 and s <= 0.01 * 2 ^ (i - 1)) end
    for _, r in ipairs(sent) do
      assert.matches("^SDK%-HMAC%-SHA256 Access=AK, SignedHeaders=content%-type;host;user%-agent;"
        .. "x%-project%-id;x%-sdk%-date;x%-security%-token, Signature=%x+$", r.headers.Authorization)
      assert.equal("SECRET-TOKEN", r.headers["X-Security-Token"])
      assert.equal("lua-csms/" .. csms._VERSION, r.headers["User-Agent"])
      assert.equal("127.0.0.1:1", r.headers.Host)
    end
  end)

  it("sign each attempt at the time it is sent", function()
    local c
    local t, sent = scripted { { status = 503 }, { status = 200, body = BLOB_OK } }
    local real = t.request
    t.request = function(self, req)
      local res, terr = real(self, req)
      c.clock_skew = c.clock_skew + 3600 -- an hour passes before the retry
      return res, terr
    end
    c = client(t)
    assert(c:backup("s"))
    assert.are_not.equal(sent[1].headers["X-Sdk-Date"], sent[2].headers["X-Sdk-Date"])
    assert.are_not.equal(sent[1].headers.Authorization, sent[2].headers.Authorization)
  end)

  it("never retry 400, 401, 403 or 404", function()
    for _, status in ipairs { 400, 401, 403, 404 } do
      local t, sent = scripted { { status = status, body = '{"error_code":"APIG.0301","error_msg":"no"}' } }
      local res, err = client(t):backup("s")
      assert.is_nil(res)
      assert.equal(1, #sent)
      assert.equal("http", err.kind)
      assert.equal(status, err.status)
      assert.is_false(err.retryable)
    end
  end)

  it("give up after `retries` extra attempts with the last error", function()
    local t, sent = scripted {
      { status = 502, body = "<html><title>502 Bad Gateway</title></html>" },
      { status = 502, body = "<html><title>502 Bad Gateway</title></html>" },
      { status = 504, body = '{"error_code":"APIG.0203","error_msg":"Backend timeout"}',
        headers = { ["x-request-id"] = "last" } },
    }
    local res, err = client(t, { retries = 2 }):backup("s")
    assert.is_nil(res)
    assert.equal(3, #sent)
    assert.equal(3, err.attempts)
    assert.equal("csms backup: HTTP 504 APIG.0203: Backend timeout (request_id last) after 3 attempts", tostring(err))
  end)

  it("honour Retry-After in seconds or as an HTTP date, and stop when it is too long", function()
    local t, _, sleeps = scripted {
      { status = 429, headers = { ["retry-after"] = "2" }, body = '{"error_code":"APIG.0308"}' },
      { status = 429, headers = { ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 5) } },
      { status = 200, body = BLOB_OK },
    }
    assert(client(t):backup("s"))
    -- a Retry-After pauses the client's limiter: the wait is what is left of it when asked
    assert.is_true(sleeps[1] > 1.9 and sleeps[1] <= 2, tostring(sleeps[1]))
    assert.is_true(sleeps[2] >= 3 and sleeps[2] <= 6, tostring(sleeps[2]))
    t, _, sleeps = scripted { { status = 429, headers = { ["retry-after"] = "3600" } } }
    local res, err = client(t):backup("s")
    assert.is_nil(res)
    assert.equal(429, err.status)
    assert.equal(0, #sleeps)
  end)

  it("do not retry TLS failures or oversized answers", function()
    for _, kind in ipairs { "tls", "response_too_large" } do
      local t, sent = scripted { { kind = kind, message = "nope", sent = false } }
      local res, err = client(t):backup("s")
      assert.is_nil(res)
      assert.equal(kind, err.kind)
      assert.equal(1, #sent)
    end
  end)

  it("report a restore that met its own secret after a retry distinctly", function()
    local blob = ")CloudSecretManagementBackupV1.huaweicloud.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
    local exists = '{"error_code":"CSMS.0002","error_msg":"The secret s1 already exists."}'
    local t = scripted { { kind = "timeout", message = "Operation timed out", sent = true },
                         { status = 400, body = exists } }
    local res, err = client(t):restore(blob)
    assert.is_nil(res)
    assert.equal("conflict_after_retry", err.kind)
    assert.is_true(err.conflict)
    assert.matches("after a retry", tostring(err))
    -- the same answer on the first attempt is a plain conflict
    t = scripted { { status = 400, body = exists } }
    res, err = client(t):restore(blob)
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.is_true(err.conflict)
    -- a 429 from the gateway never reached the service: still a plain conflict afterwards
    t = scripted { { status = 429, body = "" }, { status = 400, body = exists } }
    res, err = client(t):restore(blob)
    assert.is_nil(res)
    assert.equal("http", err.kind)
    -- a connection that was refused never sent anything either
    t = scripted { { kind = "transport", message = "refused", sent = false }, { status = 400, body = exists } }
    res, err = client(t):restore(blob)
    assert.is_nil(res)
    assert.equal("http", err.kind)
  end)
end)

describe("responses", function()
  it("refuse 2xx bodies that are not what the API documents", function()
    for _, body in ipairs { "not json", "[]", '{"secret_blob":5}', '{"secret_blob":""}', '{}' } do
      local t = scripted { { status = 200, body = body } }
      local res, err = client(t):backup("s")
      assert.is_nil(res)
      assert.equal("bad_response", err.kind)
    end
    local t = scripted { { status = 200, body = '{"secret":"a string"}' } }
    local res, err = client(t):restore(")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c")
    assert.is_nil(res)
    assert.equal("bad_response", err.kind)
  end)

  it("give Lua values: nil for null, integers for times", function()
    local t = scripted { { status = 200, body = '{"secret":{"name":"s","create_time":1581507580000,'
      .. '"scheduled_delete_time":null,"event_subscriptions":[]}}' } }
    local res = assert(client(t):restore(")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"))
    assert.equal("s", res.secret.name)
    assert.equal(1581507580000, res.secret.create_time)
    assert.equal("1581507580000", tostring(res.secret.create_time))
    assert.is_nil(res.secret.scheduled_delete_time)
  end)

  it("keep the security token out of errors even when the server echoes it", function()
    local t = scripted { { status = 401, body = '{"error_code":"APIG.0301","error_msg":"canonicalRequest: '
      .. 'x-security-token:SECRET-TOKEN\\nand again SECRET-TOKEN"}' } }
    local _, err = client(t):backup("s")
    local text = tostring(err)
    assert.falsy(text:find("SECRET", 1, true))
    for _, v in pairs(err) do assert.falsy(tostring(v):find("SECRET", 1, true)) end
  end)
end)
