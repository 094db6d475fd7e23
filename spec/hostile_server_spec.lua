-- Hostile servers against both transports: libcurl (this process) and cosockets (a test nginx
-- running the same call; spec/support/nginx_app.lua's /call). One table of cases, each a
-- spec/support/rawserver.lua scenario and what the call must end in: header injection refused
-- before anything is sent, framing a parser must refuse (hex Content-Length, bad chunk lines),
-- numbers in error bodies that no format may choke on, servers that stretch a call past its
-- timeout a byte at a time, tokens echoed where errors would show them. Nothing may raise.
local cjson = require "cjson"
local csms = require "csms"
local emulator = require "spec.support.emulator"
local rawserver = require "spec.support.rawserver"
local test_nginx = require "spec.support.test_nginx"

local PROJECT = "0123456789abcdef0123456789abcdef"
local BLOB = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
local OK_BODY = '{"secret_blob":"' .. BLOB .. '"}'

-- An IAM token is kilobytes: a long one, no 16 characters of which repeat by chance.
local TOKEN = (function()
  local parts, x = { "AUTHTOK-" }, 12345
  for i = 1, 300 do
    x = (x * 1103515245 + 12345) % 2147483648
    parts[i + 1] = ("%08x"):format(x)
  end
  return table.concat(parts)
end)()

local function chunk(s) return ("%x\r\n%s\r\n"):format(#s, s) end

-- Each case: name; scenario; env (the server's); op ("backup" default, "request" with path);
-- opts (csms.new's, added to the common ones); expect = kind ("ok" for success), or per
-- transport { curl = ..., cosocket = ... }; pattern in the message; unsent = the server must
-- get no connection; secret = a string no part of which may show in the error.
local CASES = {
  -- header injection: libcurl refuses CR/LF/NUL in headers and request lines, cosockets too
  { "an auth_token with CR LF (header injection)", "ok", opts = { auth_token = "tok\r\nX-Evil: 1" },
    expect = "invalid_argument", pattern = "CR, LF", unsent = true },
  { "an auth_token with a bare LF", "ok", opts = { auth_token = "tok\nX-Evil: 1" },
    expect = "invalid_argument", pattern = "CR, LF", unsent = true },
  { "an auth_token with NUL", "ok", opts = { auth_token = "tok\0X" },
    expect = "invalid_argument", pattern = "CR, LF", unsent = true },
  { "client:request path smuggling a second request (token auth)", "ok", op = "request",
    path = "/v1/x HTTP/1.1\r\nHost: h\r\n\r\nGET /smuggled", opts = { auth_token = "tok" },
    expect = "invalid_argument", pattern = "CR, LF", unsent = true },
  { "client:request path with LF (token auth)", "ok", op = "request", path = "/v1/x\nX-Evil: 1",
    opts = { auth_token = "tok" }, expect = "invalid_argument", pattern = "CR, LF", unsent = true },
  -- Content-Length: decimal digits only. libcurl reads leading decimal digits (strtoll): "0x4f"
  -- is 0, "79.0" and "+79" are 79; it never reads a length the text does not say in decimal.
  { "a hex Content-Length (0x4f)", "answer", env = { RAWSERVER_BODY = OK_BODY, RAWSERVER_LENGTH = "0x%x" },
    expect = "bad_response" },
  { "a Content-Length with a fraction (79.0)", "answer", env = { RAWSERVER_BODY = OK_BODY, RAWSERVER_LENGTH = "%d.0" },
    expect = { cosocket = "bad_response", curl = "ok" } },
  { "a Content-Length with a sign (+79)", "answer", env = { RAWSERVER_BODY = OK_BODY, RAWSERVER_LENGTH = "+%d" },
    expect = { cosocket = "bad_response", curl = "ok" } },
  { "two different Content-Lengths", "answer", env = { RAWSERVER_BODY = OK_BODY,
    RAWSERVER_HEADERS = "Content-Length: 3\r\n" }, expect = "bad_response" },
  { "a proper Content-Length is read", "answer", env = { RAWSERVER_BODY = OK_BODY }, expect = "ok" },
  { "a 1 MiB restore body is sent whole (in pieces)", "answer", op = "restore", blob_kb = 1024,
    env = { RAWSERVER_BODY = '{"secret":{"name":"db-password"}}' }, expect = "ok" },
  -- numbers in error bodies (lua-cjson reads 1e400 as inf, and NaN, Infinity)
  { "error_code 1e20 and request_id 1e400 on a 400", "answer", env = { RAWSERVER_STATUS = "400 Bad Request",
    RAWSERVER_BODY = '{"error_code":1e20,"error_msg":"bad","request_id":1e400}' },
    expect = "http", pattern = "1e%+20" },
  { "a nested code of 1e400", "answer", env = { RAWSERVER_STATUS = "401 Unauthorized",
    RAWSERVER_BODY = '{"error":{"code":1e400,"message":"m"}}' }, expect = "http", pattern = "HTTP 401 inf" },
  { "error_code NaN, request_id -Infinity", "answer", env = { RAWSERVER_STATUS = "500 Internal Server Error",
    RAWSERVER_BODY = '{"error_code":NaN,"error_msg":"m","request_id":-Infinity}' }, expect = "http" },
  { "error_code -1e20, request_id 2^64", "answer", env = { RAWSERVER_STATUS = "403 Forbidden",
    RAWSERVER_BODY = '{"error_code":-1e20,"error_msg":"m","request_id":18446744073709551616}' },
    expect = "http", pattern = "%-1e%+20" },
  { "a whole error_code stays an integer", "answer", env = { RAWSERVER_STATUS = "401 Unauthorized",
    RAWSERVER_BODY = '{"error":{"code":401.0,"message":"m"}}' }, expect = "http", pattern = "HTTP 401 401: m" },
  -- chunked framing
  { "a chunk-size line that is not hex", "chunked_raw", env = { RAWSERVER_BODY = "zz\r\n" .. OK_BODY },
    expect = { cosocket = "bad_response", curl = "transport" } },
  { "an empty chunk-size line", "chunked_raw", env = { RAWSERVER_BODY = "\r\n" .. OK_BODY },
    expect = { cosocket = "bad_response", curl = "transport" } },
  { "a negative chunk size", "chunked_raw", env = { RAWSERVER_BODY = "-5\r\nhello\r\n0\r\n\r\n" },
    expect = { cosocket = "bad_response", curl = "transport" } },
  { "a chunk size of 20 hex digits", "chunked_raw", env = { RAWSERVER_BODY = ("f"):rep(20) .. "\r\nx" },
    expect = { cosocket = "response_too_large", curl = "transport" } },
  { "a chunk not followed by CRLF", "chunked_raw",
    env = { RAWSERVER_BODY = ("%x\r\n%sXX0\r\n\r\n"):format(#OK_BODY, OK_BODY) },
    expect = { cosocket = "bad_response", curl = "transport" } },
  { "chunks with an extension and a trailer are read", "chunked_raw",
    env = { RAWSERVER_BODY = ("%x;name=v\r\n%s\r\n"):format(10, OK_BODY:sub(1, 10)) .. chunk(OK_BODY:sub(11))
      .. "0\r\nX-Trailer: 1\r\n\r\n" }, expect = "ok" },
  -- a timeout bounds the whole call (timeout = 2), not each read
  { "a body sent a byte every 0.3 s", "trickle_body", expect = "timeout" },
  { "headers sent a byte every 0.3 s", "trickle_head", expect = "timeout" },
  { "100 Continue every 0.3 s, for ever", "continue_slow", expect = "timeout" },
  { "100 Continue as fast as it goes, for ever", "continue_flood",
    expect = { cosocket = "timeout", curl = "transport" } }, -- libcurl: 300 KiB of headers in all
  -- a token echoed back is redacted wherever it lands, long as it is
  { "the token echoed in X-Request-Id", "answer", opts = { auth_token = TOKEN },
    env = { RAWSERVER_STATUS = "401 Unauthorized", RAWSERVER_BODY = '{"error_code":"APIGW.0301","error_msg":"m"}',
      RAWSERVER_HEADERS = "X-Request-Id: " .. TOKEN .. "\r\n" }, expect = "http", secret = TOKEN },
  { "the token echoed as error_code", "answer", opts = { auth_token = TOKEN },
    env = { RAWSERVER_STATUS = "401 Unauthorized",
      RAWSERVER_BODY = '{"error_code":"' .. TOKEN .. '","error_msg":"m"}' },
    expect = "http", secret = TOKEN },
  { "the token at the end of a 2,000-character error_msg", "answer", opts = { auth_token = TOKEN },
    env = { RAWSERVER_STATUS = "401 Unauthorized",
      RAWSERVER_BODY = '{"error_code":"APIGW.0301","error_msg":"' .. ("x"):rep(2000) .. " x-auth-token:"
        .. TOKEN .. '"}' },
    expect = "http", secret = TOKEN },
  { "the token in an HTML page's text, 150 characters in", "answer", opts = { auth_token = TOKEN },
    env = { RAWSERVER_STATUS = "401 Unauthorized",
      RAWSERVER_BODY = "<html><body>" .. ("y"):rep(150) .. " " .. TOKEN .. "</body></html>" },
    expect = "http", secret = TOKEN },
  { "a server that echoes the token cut short (its first 1,000 characters)", "answer", opts = { auth_token = TOKEN },
    env = { RAWSERVER_STATUS = "401 Unauthorized",
      RAWSERVER_BODY = '{"error_code":"APIGW.0301","error_msg":"token ' .. TOKEN:sub(1, 1000) .. '"}' },
    expect = "http", secret = TOKEN },
}

local function base_opts(url, extra)
  local opts = { ak = "AK-HOSTILE", sk = "SK-HOSTILE", project_id = PROJECT, endpoint = url,
    retries = 0, timeout = 2, connect_timeout = 2 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return opts
end

-- The error as both transports report it: a plain table of the fields the checks look at.
local function through_curl(case, url)
  local out = {}
  local ok, raised = pcall(function()
    local c = assert(csms.new(base_opts(url, case.opts)))
    local res, err
    if case.op == "request" then
      res, err = c:request("GET", case.path)
    elseif case.op == "restore" then
      res, err = c:restore(BLOB .. ("c"):rep(1024 * case.blob_kb))
    else
      res, err = c:backup("db-password")
    end
    c:close()
    out.ok = res ~= nil
    if err then
      out.kind, out.message, out.text = err.kind, err.message, tostring(err)
      out.error_code, out.error_msg, out.request_id = err.error_code, err.error_msg, err.request_id
      out.attempts = err.attempts
    end
  end)
  if not ok then out.raised = tostring(raised) end
  return out
end

local app
local function through_cosocket(case, url)
  local opts = base_opts(nil, case.opts)
  local query = "url=" .. emulator.encode(url) .. "&opts=" .. emulator.encode(cjson.encode(opts))
    .. "&op=" .. (case.op or "backup") .. (case.path and "&path=" .. emulator.encode(case.path) or "")
    .. (case.blob_kb and "&blob_kb=" .. case.blob_kb or "")
  local code, body = app:get("/call?" .. query, 30)
  assert(code == 200, ("/call answered %s: %s\n%s"):format(tostring(code), tostring(body), app:log():sub(-2000)))
  local out = cjson.decode(body)
  for k, v in pairs(out) do if v == cjson.null then out[k] = nil end end
  return out
end

-- Every 16 characters of secret, looked for in every string of the error.
local function assert_redacted(out, secret)
  for k, v in pairs(out) do
    if type(v) == "string" then
      for i = 1, #secret - 15, 8 do
        assert.is_nil(v:find(secret:sub(i, i + 15), 1, true),
          ("err.%s holds part of the token: %s"):format(k, v:sub(1, 300)))
      end
    end
  end
end

local function check(case, transport, out, server)
  assert.is_nil(out.raised, "raised: " .. tostring(out.raised))
  local want = type(case.expect) == "table" and case.expect[transport] or case.expect
  if want == "ok" then
    assert.is_true(out.ok, tostring(out.text))
  else
    assert.is_false(out.ok)
    assert.equal(want, out.kind, tostring(out.text))
    assert.matches("^csms %a+: ", out.text)
    assert.is_nil(out.text:find("%c"), "one line: " .. out.text)
    assert.is_true(#out.text < 2300, "short: " .. #out.text)
  end
  if case.pattern then assert.matches(case.pattern, tostring(out.message) .. " | " .. tostring(out.text)) end
  if case.unsent then assert.equal(0, server.connections(), "the server got a connection") end
  if case.secret then assert_redacted(out, case.secret) end
end

local function run(case, transport)
  local s = rawserver.start(case[2], { env = case.env })
  local ok, out = pcall(transport == "curl" and through_curl or through_cosocket, case, s.url)
  if not ok then
    s.stop()
    error(out, 0)
  end
  local checked, err = pcall(check, case, transport, out, s)
  s.stop()
  if not checked then error(err, 0) end
end

describe("a hostile server, through libcurl", function()
  for _, case in ipairs(CASES) do
    it(case[1], function() run(case, "curl") end)
  end
end)

describe("a hostile server, through cosockets inside nginx", function()
  setup(function()
    app = test_nginx.start { server = [[
    location = /call { content_by_lua_block { require("nginx_app").call() } }
]] }
  end)
  teardown(function() if app then app:stop() end end)

  for _, case in ipairs(CASES) do
    it(case[1], function() run(case, "cosocket") end)
  end

  it("nginx without a resolver: kind config, not retried as if the network were down", function()
    local out = through_cosocket({ opts = { retries = 3 } }, "http://csms-no-such-host.invalid:1")
    assert.is_nil(out.raised)
    assert.equal("config", out.kind, out.text)
    assert.matches("no resolver defined", out.text)
    assert.matches("resolver directive", out.text)
    assert.equal(1, out.attempts)
  end)

  it("verify_tls = false is warned about once in nginx's error log, without secrets", function()
    local before = select(2, app:log():gsub("verify_tls = false", ""))
    for _ = 1, 2 do
      local out = through_cosocket({ opts = { verify_tls = false, auth_token = TOKEN } }, "https://127.0.0.1:1")
      assert.is_nil(out.raised)
      assert.equal("transport", out.kind)
    end
    local log = app:log()
    assert.equal(1, select(2, log:gsub("verify_tls = false", "")) - before, log:sub(-2000))
    -- the warning itself (nginx adds the request line, which here carries the test's options)
    local line = log:match("[^\n]*verify_tls = false[^\n]*"):gsub(", client: .*", "")
    assert.matches("TLS certificate of 'https://127%.0%.0%.1:1' is not verified", line)
    assert.is_nil(line:find(TOKEN:sub(1, 16), 1, true), line)
    assert.is_nil(line:find("HOSTILE", 1, true), line)
  end)
end)
