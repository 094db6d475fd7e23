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

-- Reads the status line and headers. Returns status, headers (lower-case names) or nil, err.
local function read_head(sock)
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    local minor, code = line:match("^HTTP/1%.([01]) (%d%d%d)")
    local status = tonumber(code)
    if not status then return nil, "not an HTTP response" end
    local headers, bytes = {}, 0
    while true do
      line, err = sock:receive("*l")
      if not line then return nil, err end
      if line == "" then break end
      bytes = bytes + #line
      if bytes > MAX_HEADER_BYTES then return nil, "response headers larger than 64 KiB" end
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
      end
    end
    if status >= 200 then return status, headers, minor end
    -- 1xx: an interim answer; the real one follows
  end
end

-- Reads the body as the headers frame it. Returns body, keepalive_ok or nil, kind, message.
function Cosocket:read_body(sock, method, status, headers)
  local max = self.max_body
  local function too_large()
    return nil, "response_too_large", ("response body larger than the %d-byte cap"):format(max)
  end
  if method == "HEAD" or status == 204 or status == 304 then return "", true end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, "transport", "chunked body: " .. err end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then return nil, "bad_response", "bad chunk size line" end
      if size == 0 then
        repeat line, err = sock:receive("*l") until not line or line == ""
        if not line then return nil, "transport", "chunked body trailer: " .. err end
        return table.concat(parts), true
      end
      total = total + size
      if total > max then return too_large() end
      local data
      data, err = sock:receive(size)
      if not data then return nil, "transport", "chunked body: " .. err end
      parts[#parts + 1] = data
      sock:receive(2) -- CRLF after the chunk
    end
  end
  local length = headers["content-length"]
  if length then
    local n = tonumber(length)
    if not n or n < 0 or n ~= math.floor(n) then return nil, "bad_response", "bad Content-Length" end
    if n > max then return too_large() end
    local data, err = sock:receive(n)
    if not data then return nil, "transport", ("body ended early (%s)"):format(err) end
    return data, true
  end
  -- No framing: the body runs until the server closes the connection.
  local parts, total = {}, 0
  while true do
    local data, err = sock:receiveany(65536)
    if not data then
      if err == "closed" then return table.concat(parts), false end
      return nil, "transport", "body: " .. err
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

-- One attempt on one connection. fresh: refuse a pooled connection.
function Cosocket:attempt(req, u, fresh)
  local sock = ngx.socket.tcp()
  sock:settimeouts(self.connect_ms, self.timeout_ms, self.timeout_ms)
  local pool = ("csms:%s:%s:%d:%s"):format(u.scheme, u.host, u.port, self.verify and "v" or "nv")
  if fresh then pool = pool .. ":" .. tostring(ngx.now()) .. tostring(math.random()) end
  local ok, err = sock:connect(u.host, u.port, { pool = pool, pool_size = self.pool_size })
  if not ok then
    return fail(err == "timeout" and "timeout" or "transport",
      ("connect to %s:%d: %s"):format(u.host, u.port, err), false)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if u.scheme == "https" and not reused then
    -- lua-resty-core 0.1.25 (Debian) raises an assertion instead of returning nil, err when a
    -- handshake that completed at once fails verification: a raise here is a failed handshake.
    local called, session, herr = pcall(sock.sslhandshake, sock, nil, u.host, self.verify)
    ok, err = called and session, called and herr
      or "failed, most likely certificate verification (the reason is in nginx's error log)"
    if not ok then
      sock:close()
      local hint = self.verify and " (is lua_ssl_trusted_certificate set to the CA bundle?)" or ""
      return fail("tls", ("TLS handshake with %s:%d: %s%s"):format(u.host, u.port, err, hint), false)
    end
  end
  ok, err = sock:send(build_request(req, u))
  if not ok then
    sock:close()
    return nil, { kind = err == "timeout" and "timeout" or "transport", message = "send: " .. err,
                  sent = true, stale = reused }
  end
  local status, headers, minor = read_head(sock)
  if not status then
    sock:close()
    if headers == "not an HTTP response" or headers:find("64 KiB", 1, true) then
      return fail("bad_response", headers, true)
    end
    return nil, { kind = headers == "timeout" and "timeout" or "transport",
                  message = "reading the answer: " .. headers, sent = true, stale = reused }
  end
  local body, keep, msg = self:read_body(sock, req.method, status, headers)
  if not body then
    sock:close()
    return fail(keep, msg, true)
  end
  -- A connection made for one request (fresh) is not pooled: its pool name is unique.
  if keep and not fresh and minor == "1" and not (headers.connection or ""):lower():find("close", 1, true) then
    sock:setkeepalive(self.idle_ms, self.pool_size)
  else
    sock:close()
  end
  return { status = status, headers = headers, body = body, connects = reused and 0 or 1 }
end

function Cosocket:request(req)
  local u = parse_url(req.url)
  if not u then return fail("invalid_argument", "cannot parse url " .. req.url, false) end
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

function Auto:close()
  if self.curl then self.curl:close() end
end

-- Whether the running code may use cosockets (and so light threads) now.
function M.available()
  return ngx ~= nil and type(ngx.get_phase) == "function" and M.COSOCKET_PHASES[ngx.get_phase()] == true
end

return M
