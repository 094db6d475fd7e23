-- A hostile or broken server: every answer a real network can produce that is not a proper
-- CSMS answer must end in a clear `nil, err` (right kind, readable tostring), in bounded time,
-- without a crash. The servers are spec/support/rawserver.lua scenarios (lua5.4 + LuaSocket,
-- LuaSec for TLS) run as subprocesses; the TLS certificates come from the openssl CLI.
local csms = require "csms"
local core = require "csms.core"
local rawserver = require "spec.support.rawserver"

local PROJECT = "0123456789abcdef0123456789abcdef"
local BLOB = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
-- No wall-time bound: a scenario that never answers or never ends runs for 120 s and then
-- closes, which the client would report as `transport`; `timeout` is only what the client's
-- own timeout (2 s) gives, so the kind proves the bound.

local function client(url, extra)
  local opts = { ak = "AK-HOSTILE", sk = "SK-HOSTILE", project_id = PROJECT, endpoint = url,
    retries = 0, timeout = 2, connect_timeout = 2 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

local calls = {
  backup = function(c) return c:backup("db-password") end,
  restore = function(c) return c:restore(BLOB) end,
  list = function(c) return c:list_secrets() end,
}

-- Runs one call against a fresh server; returns res, err.
local function against(scenario, op, extra, server_opts)
  local s = rawserver.start(scenario, server_opts)
  local c = client(s.url, extra)
  local res, err = calls[op or "backup"](c)
  c:close()
  s.stop()
  return res, err
end

-- The common checks of a failure (pattern: what err.message or tostring(err) must hold, or
-- nil): nil, an error of the kind, a tostring that reads well.
local function fails_with(kind, pattern, res, err)
  assert.is_nil(res)
  assert.is_table(err, "an error value")
  assert.equal(kind, err.kind, tostring(err))
  assert.is_true(csms.errors.is_error(err))
  local text = tostring(err)
  assert.matches("^csms %a+: ", text)
  assert.is_nil(text:find("[%c]"), "one line: " .. text)
  assert.is_true(#text < 400, "short: " .. text)
  if pattern then assert.matches(pattern, tostring(err.message) .. " | " .. text) end
  return text
end

describe("a hostile server", function()
  it("truncated body: Content-Length larger than what is sent, then close", function()
    fails_with("transport", nil, against("truncated"))
  end)

  it("wrong Content-Length: shorter than the body (what is read is not JSON)", function()
    fails_with("bad_response", "not a JSON object", against("short_length"))
  end)

  it("endless headers: stops at 64 KiB of headers", function()
    fails_with("bad_response", "headers larger than 64 KiB", against("endless_headers"))
  end)

  it("a gigantic announced body (200 MB, Content-Length) over max_response", function()
    fails_with("response_too_large", "1048576%-byte cap",
      against("gigantic", "backup", { max_response = 1048576 }))
  end)

  it("a gigantic close-delimited body over max_response", function()
    fails_with("response_too_large", "1048576%-byte cap",
      against("gigantic_unannounced", "backup", { max_response = 1048576 }))
  end)

  it("a chunked body that never ends: timeout", function()
    fails_with("timeout", nil, against("endless_chunked"))
  end)

  it("invalid JSON on 200", function()
    fails_with("bad_response", "not a JSON object", against("invalid_json"))
  end)

  it("tostring of a bad_response on 200 says what is wrong, not just \"HTTP 200\"", function()
    local res, err = against("invalid_json")
    local text = fails_with("bad_response", nil, res, err)
    assert.matches("not a JSON object", text)
  end)

  it("an HTML page on 200", function()
    fails_with("bad_response", "not a JSON object", against("html_200"))
  end)

  it("a JSON array on 200", function()
    fails_with("bad_response", "no secret_blob", against("top_array"))
  end)

  it("JSON of the wrong type: secret_blob a number", function()
    fails_with("bad_response", "no secret_blob string", against("blob_number", "backup"))
  end)

  it("JSON of the wrong type: secret a string", function()
    fails_with("bad_response", "no secret object", against("secret_string", "restore"))
  end)

  it("JSON of the wrong type: secrets an object, not a list", function()
    fails_with("bad_response", "secrets", against("secrets_object", "list"))
  end)

  it("accepts, reads the request and never answers: timeout", function()
    local text = fails_with("timeout", nil, against("silent"))
    assert.matches("timeout", text)
  end)

  it("accepts and never reads: timeout", function()
    fails_with("timeout", nil, against("silent_accept"))
  end)

  it("not HTTP at all", function()
    fails_with("transport", nil, against("garbage"))
  end)

  it("a closed port", function()
    local s = rawserver.start("ok")
    s.stop() -- the port is free again: nothing listens there
    core.time.sleep(0.2)
    local c = client(s.url)
    local res, err = c:backup("db-password")
    fails_with("transport", nil, res, err)
    c:close()
  end)

  for _, code in ipairs { 301, 302, 307, 308 } do
    it(("a %d redirect to another port is never followed"):format(code), function()
      local other = rawserver.start("ok")
      local res, err = against("redirect_" .. code, "backup", nil,
        { env = { RAWSERVER_LOCATION = other.url .. "/v1/" .. PROJECT .. "/secrets/db-password/backup" } })
      local text = fails_with("http", "HTTP " .. code, res, err)
      assert.equal(code, err.status)
      assert.equal(0, other.connections(), "the Location's server got a connection: " .. text)
      other.stop()
    end)
  end

  it("HTTP/1.0 with a close-delimited body is read whole", function()
    local res, err = against("http10")
    assert.is_nil(err)
    assert.equal(BLOB, res.secret_blob)
  end)

  it("the server sees exactly one request per call (retries = 0, nothing re-sent)", function()
    local s = rawserver.start("truncated")
    local c = client(s.url)
    assert.is_nil((c:restore(BLOB)))
    c:close()
    assert.same({ "POST /v1/" .. PROJECT .. "/secrets/restore HTTP/1.1" }, s.requests())
    s.stop()
  end)
end)

describe("TLS", function()
  local certs
  setup(function() certs = rawserver.make_certs() end)
  teardown(function() if certs then os.execute("rm -rf '" .. certs .. "'") end end)

  local function tls(name, extra)
    return against("ok", "backup", extra,
      { tls = { cert = certs .. "/" .. name .. ".pem", key = certs .. "/" .. name .. ".key" } })
  end

  it("a self-signed certificate is refused by default (kind tls)", function()
    fails_with("tls", nil, tls("self"))
  end)

  it("a certificate from an unknown CA is refused by default", function()
    fails_with("tls", nil, tls("good"))
  end)

  it("a certificate for another host is refused even with the right CA", function()
    fails_with("tls", nil, tls("wrong", { cafile = certs .. "/ca.pem" }))
  end)

  it("the right CA (cafile) and the right host are accepted", function()
    local res, err = tls("good", { cafile = certs .. "/ca.pem" })
    assert.is_nil(err)
    assert.equal(BLOB, res.secret_blob)
  end)

  it("verify_tls = false accepts the self-signed one", function()
    local res, err = tls("self", { verify_tls = false })
    assert.is_nil(err)
    assert.equal(BLOB, res.secret_blob)
  end)
end)
