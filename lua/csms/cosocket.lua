-- The transport inside nginx (lua-nginx-module / OpenResty): requests go through nginx's own
-- event loop on cosockets (ngx.socket.tcp), so a call waits without blocking the worker.
-- TLS through sslhandshake, verified against lua_ssl_trusted_certificate; connections kept in
-- nginx's keepalive pool. A small HTTP/1.1 client: no Debian package offers one for nginx.
local M = {}

local MAX_HEADER_BYTES = 64 * 1024

local Cosocket = {}
Cosocket.__index = Cosocket

-- Phases where cosockets exist; "init" may block (nginx is not serving yet); others may not.
M.COSOCKET_PHASES = { rewrite = true, server_rewrite = true, access = true, content = true,
  timer = true, ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true }

function M.new(opts)
  return setmetatable({
    connect_ms = math.floor((opts.connect_timeout or 10) * 1000),
    timeout_ms = math.floor((opts.timeout or 30) * 1000),
    verify = opts.verify_tls ~= false,
    max_body = opts.max_response or 16 * 1024 * 1024,
    idle_ms = 10000, -- well under servers' keepalive timeouts, so pooled connections are live
    pool_size = 32,
  }, Cosocket)
end

local function parse_url(url)
  local scheme, authority, target = url:match("^(https?)://([^/?#]+)([^#]*)")
  if not scheme then return nil end
  local host, port = authority:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return { scheme = scheme, host = host, port = port, target = target ~= "" and target or "/" }
end

local function fail(kind, message, sent)
  return nil, { kind = kind, message = message, sent = sent }
end

-- What nginx says when its configuration, not the network, is the problem: retrying cannot help.
local CONFIG_ERRORS = {
  { "no resolver defined", "add a resolver directive to nginx.conf (e.g. `resolver 127.0.0.53;`, "
    .. "or your DNS server), or use an IP address in the endpoint" },
}

local function connect_error(u, err)
  local msg = ("connect to %s:%d: %s"):format(u.host, u.port, err)
  for _, c in ipairs(CONFIG_ERRORS) do
    if err:find(c[1], 1, true) then return "config", msg .. ": " .. c[2] end
  end
  return err == "timeout" and "timeout" or "transport", msg
end

-- The request line and headers as libcurl checks them: a CR, LF or NUL would end a header or
-- the request early and let the rest pass as headers or a second request of the caller's text.
local function bad_bytes(s) return s:find("[\r\n]") or s:find("\0", 1, true) end

local function request_problem(req, u)
  if bad_bytes(req.method) or bad_bytes(u.target) then return "url or method contains CR, LF or NUL" end
  if not req.method:match("^[%w!#$%%&'*+.^_`|~-]+$") or u.target:find("[%s%c]") then
    return "url or method contains a space or a control character"
  end
  for name, value in pairs(req.headers) do
    if type(name) ~= "string" or type(value) ~= "string" then
      return "headers: names and values must be strings"
    end
    if name == "" or name:find("[:%s%c]") or bad_bytes(value) then
      return "a header name or value contains ':' in the name, CR, LF or NUL"
    end
  end
end

-- One attempt's connection: every read and write shares the attempt's deadline, as libcurl's
-- CURLOPT_TIMEOUT bounds a whole transfer. nginx restarts a cosocket's timer whenever data
-- arrives, so one receive(n) or "*l" read can be stretched for ever by a server sending a
-- byte now and then (or 100 Continue after 100 Continue): reads here are receiveany calls,
-- each bounded by the time left, into a buffer this code parses.
local Conn = {}
Conn.__index = Conn

local SEND_PIECE = 65536

function Conn:left()
  ngx.update_time()
  local ms = math.floor((self.deadline - ngx.now()) * 1000)
  if ms <= 0 then return nil end
  self.sock:settimeout(ms)
  return ms
end

-- Whatever arrives next (at most max bytes), within the deadline.
function Conn:some(max)
  if self.buf ~= "" then
    local data = self.buf:sub(1, max)
    self.buf = self.buf:sub(max + 1)
    return data
  end
  if not self:left() then return nil, "timeout" end
  return self.sock:receiveany(max)
end

-- Exactly n bytes.
function Conn:receive(n)
  local parts, have = {}, 0
  while have < n do
    local data, err = self:some(math.min(n - have, 65536))
    if not data then return nil, err end
    parts[#parts + 1] = data
    have = have + #data
  end
  return table.concat(parts)
end

-- A line ending in LF (a CR before it dropped), at most max bytes.
function Conn:line(max)
  while true do
    local i = self.buf:find("\n", 1, true)
    if i then
      if i - 1 > max then return nil, "too long" end
      local line = self.buf:sub(1, i - 1):gsub("\r$", "")
      self.buf = self.buf:sub(i + 1)
      return line
    end
    if #self.buf > max then return nil, "too long" end
    if not self:left() then return nil, "timeout" end
    local data, err = self.sock:receiveany(4096)
    if not data then return nil, err end
    self.buf = self.buf .. data
  end
end

function Conn:send(data)
  for i = 1, #data, SEND_PIECE do
    if not self:left() then return nil, "timeout" end
    local ok, err = self.sock:send(data:sub(i, i + SEND_PIECE - 1))
    if not ok then return nil, err end
  end
  return true
end

local function read_error(what, err)
  if err == "too long" then return nil, "bad_response", what .. " longer than 64 KiB" end
  return nil, err == "timeout" and "timeout" or "transport", what .. ": " .. err
end

-- Reads the status line and headers. Returns status, headers (lower-case names), minor version
-- or nil, kind, message.
local function read_head(c)
  while true do
    local line, err = c:line(MAX_HEADER_BYTES)
    if not line then return read_error("reading the answer", err) end
    local minor, code = line:match("^HTTP/1%.([01]) (%d%d%d)")
    local status = tonumber(code)
    if not status then return nil, "transport", "not an HTTP response" end
    local headers, bytes = {}, 0
    while true do
      line, err = c:line(MAX_HEADER_BYTES - bytes)
      if not line then
        if err == "too long" then return nil, "bad_response", "response headers larger than 64 KiB" end
        return read_error("reading the answer", err)
      end
      if line == "" then break end
      bytes = bytes + #line + 2
      if bytes > MAX_HEADER_BYTES then return nil, "bad_response", "response headers larger than 64 KiB" end
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
      end
    end
    if status >= 200 then return status, headers, minor end
    -- 1xx: an interim answer; the real one follows (within the same deadline)
  end
end

-- A chunk-size line: hex digits, then nothing or ";extensions". Returns the size or nil.
local function chunk_size(line)
  local hex, rest = line:match("^(%x+)(.*)$")
  if not hex or not (rest == "" or rest:match("^[ \t]*;")) then return nil end
  hex = hex:gsub("^0+", "")
  if #hex > 12 then return math.huge end -- over 2^48 bytes: above any cap
  return hex == "" and 0 or tonumber(hex, 16)
end

-- Reads the body as the headers frame it. Returns body, keepalive_ok or nil, kind, message.
function Cosocket:read_body(c, method, status, headers)
  local max = self.max_body
  local function too_large()
    return nil, "response_too_large", ("response body larger than the %d-byte cap"):format(max)
  end
  if method == "HEAD" or status == 204 or status == 304 then return "", true end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      local line, err = c:line(1024)
      if not line then return read_error("chunked body", err) end
      local size = chunk_size(line)
      if not size then return nil, "bad_response", "bad chunk size line" end
      if size == 0 then
        local bytes = 0
        repeat
          line, err = c:line(MAX_HEADER_BYTES)
          bytes = bytes + #(line or "")
        until not line or line == "" or bytes > MAX_HEADER_BYTES
        if not line then return read_error("chunked body trailer", err) end
        if line ~= "" then return nil, "bad_response", "chunked body trailer larger than 64 KiB" end
        return table.concat(parts), true
      end
      total = total + size
      if total > max then return too_large() end
      local data
      data, err = c:receive(size)
      if not data then return read_error("chunked body", err) end
      parts[#parts + 1] = data
      data, err = c:receive(2)
      if not data then return read_error("chunked body", err) end
      if data ~= "\r\n" then return nil, "bad_response", "a chunk is not followed by CRLF" end
    end
  end
  local length = headers["content-length"]
  if length then
    -- Decimal digits only: tonumber would also take "0x1f", "1e3", " 5" or "5.0".
    if not length:match("^%d+$") or #length > 15 then return nil, "bad_response", "bad Content-Length" end
    local n = tonumber(length)
    if n > max then return too_large() end
    local data, err = c:receive(n)
    if not data then return read_error("body ended early", err) end
    return data, true
  end
  -- No framing: the body runs until the server closes the connection.
  local parts, total = {}, 0
  while true do
    local data, err = c:some(65536)
    if not data then
      if err == "closed" then return table.concat(parts), false end
      return read_error("body", err)
    end
    total = total + #data
    if total > max then return too_large() end
    parts[#parts + 1] = data
  end
end

local function build_request(req, u)
  local lines = { req.method .. " " .. u.target .. " HTTP/1.1" }
  local has_host = false
  for name, value in pairs(req.headers) do
    if name:lower() == "host" then has_host = true end
    lines[#lines + 1] = name .. ": " .. value
  end
  if not has_host then lines[#lines + 1] = "Host: " .. u.host .. ":" .. u.port end
  local body = req.body
  if body or req.method == "POST" or req.method == "PUT" or req.method == "PATCH" then
    lines[#lines + 1] = "Content-Length: " .. #(body or "")
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body or ""
  return table.concat(lines, "\r\n")
end

-- One attempt on one connection, within timeout_ms from its start. fresh: refuse a pooled
-- connection.
function Cosocket:attempt(req, u, fresh)
  local sock = ngx.socket.tcp()
  ngx.update_time()
  local c = setmetatable({ sock = sock, buf = "", deadline = ngx.now() + self.timeout_ms / 1000 }, Conn)
  sock:settimeouts(math.min(self.connect_ms, self.timeout_ms), self.timeout_ms, self.timeout_ms)
  local pool = ("csms:%s:%s:%d:%s"):format(u.scheme, u.host, u.port, self.verify and "v" or "nv")
  if fresh then pool = pool .. ":" .. tostring(ngx.now()) .. tostring(math.random()) end
  local ok, err = sock:connect(u.host, u.port, { pool = pool, pool_size = self.pool_size })
  if not ok then
    local kind, msg = connect_error(u, err)
    return fail(kind, msg, false)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if u.scheme == "https" and not reused then
    -- lua-resty-core 0.1.25 (Debian) raises an assertion instead of returning nil, err when a
    -- handshake that completed at once fails verification: a raise here is a failed handshake.
    local called, session, herr
    if c:left() then
      called, session, herr = pcall(sock.sslhandshake, sock, nil, u.host, self.verify)
    else
      called, herr = true, "timeout"
    end
    ok, err = called and session, called and herr
      or "failed, most likely certificate verification (the reason is in nginx's error log)"
    if not ok then
      sock:close()
      if err == "timeout" then
        return fail("timeout", ("TLS handshake with %s:%d: timeout"):format(u.host, u.port), false)
      end
      local hint = self.verify and " (is lua_ssl_trusted_certificate set to the CA bundle?)" or ""
      return fail("tls", ("TLS handshake with %s:%d: %s%s"):format(u.host, u.port, err, hint), false)
    end
  end
  ok, err = c:send(build_request(req, u))
  if not ok then
    sock:close()
    return nil, { kind = err == "timeout" and "timeout" or "transport", message = "send: " .. err,
                  sent = true, stale = reused }
  end
  local status, headers, minor = read_head(c)
  if not status then
    sock:close()
    -- headers, minor: the kind and the message
    return nil, { kind = headers, message = minor, sent = true, stale = reused and headers == "transport" }
  end
  local body, keep, msg = self:read_body(c, req.method, status, headers)
  if not body then
    sock:close()
    return fail(keep, msg, true)
  end
  -- A connection made for one request (fresh) is not pooled: its pool name is unique; nor is
  -- one that sent more than the answer.
  local close = (headers.connection or ""):lower():find("close", 1, true)
  if keep and not fresh and c.buf == "" and minor == "1" and not close then
    sock:setkeepalive(self.idle_ms, self.pool_size)
  else
    sock:close()
  end
  return { status = status, headers = headers, body = body, connects = reused and 0 or 1 }
end

function Cosocket:request(req)
  local u = parse_url(req.url)
  if not u then return fail("invalid_argument", "cannot parse url " .. req.url, false) end
  local problem = request_problem(req, u)
  if problem then return fail("invalid_argument", problem, false) end
  local res, terr = self:attempt(req, u, false)
  -- A pooled connection the server had already closed: like libcurl, try once more on a new
  -- one, unless the request must not be sent twice (then the client decides, knowing that).
  if not res and terr.stale and not req.once then res, terr = self:attempt(req, u, true) end
  if terr then terr.stale = nil end
  return res, terr
end

function Cosocket.sleep(_, seconds) ngx.sleep(seconds) end

function Cosocket.close() end

-- Inside nginx: cosockets where the phase has them, libcurl in init (nothing is served yet, so
-- blocking harms no one), and a clear error elsewhere.
local Auto = {}
Auto.__index = Auto

function M.auto(opts, curl_factory)
  return setmetatable({ opts = opts, curl_factory = curl_factory }, Auto)
end

function Auto:pick()
  local phase = ngx.get_phase()
  if M.COSOCKET_PHASES[phase] then
    self.cosocket = self.cosocket or M.new(self.opts)
    return self.cosocket
  elseif phase == "init" then
    self.curl = self.curl or self.curl_factory(self.opts)
    return self.curl
  end
  return nil, phase
end

function Auto:request(req)
  local t, phase = self:pick()
  if not t then
    return fail("phase", ("cannot send from nginx's %s phase: cosockets are not available there and a "
      .. "blocking call would stall the worker; call from rewrite, access or content, or from "
      .. "ngx.timer.at(0, fn)"):format(phase), false)
  end
  return t:request(req)
end

function Auto:sleep(seconds)
  local t = self:pick()
  if t then t:sleep(seconds) end
end

-- csms.scheduler overlaps requests in light threads where cosockets exist (transport.lua).
function Auto.mode() return M.available() and "threads" or "serial" end

function Auto:close()
  if self.curl then self.curl:close() end
end

-- Whether the running code may use cosockets (and so light threads) now.
function M.available()
  return ngx ~= nil and type(ngx.get_phase) == "function" and M.COSOCKET_PHASES[ngx.get_phase()] == true
end

return M
