-- A raw TCP (or TLS) server that misbehaves on purpose, for spec/hostile_spec.lua and
-- spec/hygiene_spec.lua. Two halves in one file:
--   * as a module (any interpreter): rawserver.start(scenario, opts) runs the server as a lua5.4
--     subprocess and returns { port, url, connections(), requests(), stop() };
--   * as a script (lua5.4 + LuaSocket [+ LuaSec]): `lua5.4 spec/support/rawserver.lua serve
--     <scenario> <dir> [certfile keyfile]` accepts connections one after another, reads each
--     request, answers it as the scenario says, and logs every accept and request line in <dir>.
-- The server exits by itself after 120 seconds, so a crashed spec leaves nothing behind.

local LIFETIME = 120
local serve_gate

-- ---------------------------------------------------------------- the server (lua5.4)

-- The "gate" scenario: many connections at once (the others take one after another). It
-- answers a listing (GET .../secrets) of RAWSERVER_NAMES secrets bulk-1.. at once, and holds
-- every other request until RAWSERVER_GATE of them are waiting together (and, when
-- RAWSERVER_GATE_FLAG names a file, that file exists); then it answers them all, and every
-- later one at once. It logs "held N" as they arrive and "released N": proof of overlap that
-- needs no clock. Every answer closes its connection.
serve_gate = function(srv, note, alive, send, json_answer)
  local socket = require "socket"
  local gate = tonumber(os.getenv("RAWSERVER_GATE")) or 1
  local flag = os.getenv("RAWSERVER_GATE_FLAG")
  local names = tonumber(os.getenv("RAWSERVER_NAMES")) or 0
  local BLOB = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
  local conns, held, nheld, open = {}, {}, 0, false
  srv:settimeout(0)
  local function answer(c, body)
    c:settimeout(5)
    send(c, json_answer(body, "200 OK", "Connection: close\r\n"))
    c:close()
    conns[c], held[c] = nil, nil
  end
  local function listing()
    local items = {}
    for i = 1, names do
      items[i] = ('{"name":"bulk-%d","update_time":1700000000000}'):format(i)
    end
    return ('{"secrets":[%s],"page_info":{"current_count":%d}}'):format(table.concat(items, ","), names)
  end
  local function flag_up()
    if not flag then return true end
    local f = io.open(flag)
    if f then f:close() end
    return f ~= nil
  end
  while alive() do
    local list = { srv }
    for c in pairs(conns) do list[#list + 1] = c end
    local readable = socket.select(list, nil, 0.05)
    for _, c in ipairs(readable) do
      if c == srv then
        local nc = srv:accept()
        if nc then
          nc:settimeout(0)
          conns[nc] = ""
        end
      elseif held[c] then -- a waiting client that gave up
        local _, err = c:receive(1)
        if err == "closed" then
          c:close()
          conns[c], held[c], nheld = nil, nil, nheld - 1
        end
      elseif conns[c] then
        local data, err, partial = c:receive(8192)
        conns[c] = conns[c] .. (data or partial or "")
        local head = conns[c]:match("^(.-\r\n)\r\n")
        if head then
          local line = head:match("^[^\r]*")
          note("request " .. line)
          if line:find("^GET [^ ]*/secrets[ ?]") then
            answer(c, listing())
          elseif open then
            answer(c, '{"secret_blob":"' .. BLOB .. '"}')
          else
            held[c], nheld = true, nheld + 1
            note("held " .. nheld)
          end
        elseif err == "closed" then
          c:close()
          conns[c] = nil
        end
      end
    end
    if not open and nheld >= gate and flag_up() then
      open = true
      note("released " .. nheld)
      for c in pairs(held) do answer(c, '{"secret_blob":"' .. BLOB .. '"}') end
    end
  end
end

local function serve(scenario, dir, certfile, keyfile)
  local socket = require "socket"
  local started = socket.gettime()
  local function alive() return socket.gettime() - started < LIFETIME end
  local log = assert(io.open(dir .. "/log", "a"))
  local function note(s)
    log:write(s, "\n")
    log:flush()
  end

  local srv = assert(socket.bind("127.0.0.1", 0))
  srv:settimeout(1)
  local _, port = srv:getsockname()
  local pf = assert(io.open(dir .. "/port.tmp", "w"))
  pf:write(port, "\n")
  pf:close()
  assert(os.rename(dir .. "/port.tmp", dir .. "/port"))

  local tls_ctx
  if certfile then
    local ssl = require "ssl"
    tls_ctx = assert(ssl.newcontext { mode = "server", protocol = "any", key = keyfile,
      certificate = certfile, options = { "all" } })
  end

  local function head(c)
    local lines = {}
    while true do
      local l, err = c:receive("*l")
      if not l then return nil, err end
      if l == "" then return lines end
      lines[#lines + 1] = l
    end
  end

  -- Sends s in pieces until done or the peer is gone; false when the peer is gone.
  local function send(c, s)
    local i = 1
    while i <= #s do
      local last, err, partial = c:send(s, i)
      if not last then
        if err ~= "timeout" then return false end
        i = partial + 1
      else
        i = last + 1
      end
    end
    return true
  end

  local function json_answer(body, status, extra)
    return ("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
      .. "X-Request-Id: raw-%s\r\n%s\r\n%s"):format(status or "200 OK", #body, scenario,
      extra or "", body)
  end

  local BLOB = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
  local ECHO = os.getenv("RAWSERVER_ECHO") or ""

  local handlers = {
    ok = function(c) send(c, json_answer('{"secret_blob":"' .. BLOB .. '"}')) end,
    truncated = function(c)
      send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        .. '{"secret_blob":")CloudSecretMan')
    end,
    short_length = function(c) -- Content-Length smaller than the body sent
      send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"
        .. '{"secret_blob":"' .. BLOB .. '"}')
    end,
    endless_headers = function(c)
      if not send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n") then return end
      local i = 0
      while alive() do
        i = i + 1
        if not send(c, ("X-Filler-%d: %s\r\n"):format(i, ("f"):rep(100))) then return end
      end
    end,
    gigantic = function(c) -- announces 200 MB and starts sending them
      if not send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n")
      then return end
      local chunk = ("x"):rep(65536)
      for _ = 1, 3200 do
        if not alive() or not send(c, chunk) then return end
      end
    end,
    gigantic_unannounced = function(c) -- no length: close-delimited, larger than the cap
      if not send(c, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n") then return end
      local chunk = ("x"):rep(65536)
      for _ = 1, 3200 do
        if not alive() or not send(c, chunk) then return end
      end
    end,
    endless_chunked = function(c)
      if not send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n") then return end
      while alive() do
        if not send(c, "1\r\n \r\n") then return end
        socket.sleep(0.05)
      end
    end,
    invalid_json = function(c) send(c, json_answer('{"secret_blob": "abc", oops')) end,
    html_200 = function(c)
      local b = "<html><body>Maintenance</body></html>"
      send(c, ("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"):format(#b, b))
    end,
    blob_number = function(c) send(c, json_answer('{"secret_blob": 12345}')) end,
    secret_string = function(c) send(c, json_answer('{"secret": "db-password"}')) end,
    secrets_object = function(c)
      send(c, json_answer('{"secrets": {"a": {"name": "a"}}, "page_info": {"current_count": 1}}'))
    end,
    top_array = function(c) send(c, json_answer('[1, 2, 3]')) end,
    silent = function() -- accepts, reads the request, never answers
      while alive() do socket.sleep(0.2) end
    end,
    silent_accept = function() -- never even reads
      while alive() do socket.sleep(0.2) end
    end,
    http10 = function(c) -- close-delimited body, no Content-Length
      send(c, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
        .. '{"secret_blob":"' .. BLOB .. '"}')
    end,
    -- A gateway that echoes the request it got (credentials included) in its 401 message, as
    -- the real one puts its canonical request there; RAWSERVER_ECHO is appended.
    echo_401 = function(c, lines)
      local cjson = require "cjson"
      local msg = "verify aksk signature fail, canonicalRequest: " .. table.concat(lines, "\n") .. ECHO
      send(c, json_answer(cjson.encode { error_code = "APIGW.0301", error_msg = msg }, "401 Unauthorized"))
    end,
    echo_401_text = function(c, lines) -- the same as plain text (not JSON)
      local b = "Unauthorized: " .. table.concat(lines, "\n") .. ECHO
      send(c, ("HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"):format(#b, b))
    end,
    garbage = function(c) send(c, "this is not HTTP at all\r\n\r\n") end,
    -- Any answer: RAWSERVER_STATUS ("400 Bad Request"), RAWSERVER_BODY, RAWSERVER_HEADERS
    -- (whole "Name: value\r\n" lines); Content-Length from the body unless RAWSERVER_LENGTH
    -- gives its text as a format of the body's length ("0x%x", "%d.0").
    answer = function(c)
      local body = os.getenv("RAWSERVER_BODY") or ""
      local length = (os.getenv("RAWSERVER_LENGTH") or "%d"):format(#body)
      send(c, ("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\n%s\r\n%s")
        :format(os.getenv("RAWSERVER_STATUS") or "200 OK", length, os.getenv("RAWSERVER_HEADERS") or "", body))
    end,
    -- A chunked answer whose body is RAWSERVER_BODY as is (chunk lines included).
    chunked_raw = function(c)
      send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. (os.getenv("RAWSERVER_BODY") or ""))
    end,
    -- A proper answer sent a byte at a time, one every 0.3 s: each read gets data long before
    -- a 2 s timeout, the whole takes about 30 s. A timeout must bound the whole call.
    trickle_body = function(c)
      local body = '{"secret_blob":"' .. BLOB .. '","pad":"' .. ("p"):rep(20) .. '"}'
      if not send(c, ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n")
        :format(#body)) then return end
      for i = 1, #body do
        if not alive() or not send(c, body:sub(i, i)) then return end
        socket.sleep(0.3)
      end
    end,
    trickle_head = function(c)
      local answer = json_answer('{"secret_blob":"' .. BLOB .. '"}', "200 OK",
        "X-Filler: " .. ("f"):rep(100) .. "\r\n")
      for i = 1, #answer do
        if not alive() or not send(c, answer:sub(i, i)) then return end
        socket.sleep(0.3)
      end
    end,
    -- Interim answers for ever: slowly (every 0.3 s), or as fast as they go.
    continue_slow = function(c)
      while alive() and send(c, "HTTP/1.1 100 Continue\r\n\r\n") do socket.sleep(0.3) end
    end,
    continue_flood = function(c)
      local burst = ("HTTP/1.1 100 Continue\r\n\r\n"):rep(100)
      while alive() and send(c, burst) do socket.sleep(0.001) end
    end,
  }
  for code in ("301 302 307 308"):gmatch("%d+") do
    handlers["redirect_" .. code] = function(c)
      local to = os.getenv("RAWSERVER_LOCATION") or "http://127.0.0.1:1/"
      send(c, ("HTTP/1.1 %s Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n"):format(code, to))
    end
  end
  if scenario == "gate" then return serve_gate(srv, note, alive, send, json_answer) end
  local handler = assert(handlers[scenario], "unknown scenario " .. tostring(scenario))

  local n = 0
  while alive() do
    local c = srv:accept()
    if c then
      n = n + 1
      note("accept " .. n)
      c:settimeout(5)
      local ok = true
      if tls_ctx then
        local ssl = require "ssl"
        c = ssl.wrap(c, tls_ctx)
        c:settimeout(5)
        local hs, err = c:dohandshake()
        if not hs then
          note("handshake failed: " .. tostring(err))
          ok = false
        end
      end
      if ok and scenario ~= "silent_accept" then
        local lines = head(c)
        if lines then
          note("request " .. (lines[1] or ""))
          local len = 0
          for _, l in ipairs(lines) do
            local v = l:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
            if v then len = tonumber(v) end
          end
          if len > 0 then c:receive(len) end
          handler(c, lines)
        end
      elseif ok then
        handler(c)
      end
      c:close()
    end
  end
end

if select(1, ...) == "serve" then
  serve(select(2, ...))
  return
end

-- ---------------------------------------------------------------- the spec side (any Lua)

local core = require "csms.core"
local support = require "spec.support.emulator"

local M = {}

local function script_path()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src
end

local quote, read, tmpdir = support.shell_quote, support.read_all, support.tmpdir
M.tmpdir = tmpdir

-- Starts a server playing scenario. opts: tls = { cert = path, key = path },
-- env = { NAME = value } (RAWSERVER_LOCATION for redirects, RAWSERVER_ECHO for echo_401).
function M.start(scenario, opts)
  opts = opts or {}
  local dir = tmpdir()
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. quote(v) .. " " end
  local cmd = ("%s lua5.4 %s serve %s %s %s >%s/out 2>&1 & echo $!"):format(env,
    quote(script_path()), quote(scenario), quote(dir),
    opts.tls and (quote(opts.tls.cert) .. " " .. quote(opts.tls.key)) or "", quote(dir))
  local p = io.popen(cmd)
  local pid = tonumber(p:read("*l"))
  p:close()
  local port
  local deadline = core.time.monotonic() + 10
  while core.time.monotonic() < deadline do
    port = tonumber(read(dir .. "/port") or "")
    if port then break end
    core.time.sleep(0.02)
  end
  if not port then
    os.execute("kill " .. pid .. " 2>/dev/null")
    error("rawserver " .. scenario .. " did not start: " .. (read(dir .. "/out") or ""))
  end
  local s = { pid = pid, port = port, dir = dir, scenario = scenario }
  s.url = (opts.tls and "https" or "http") .. "://127.0.0.1:" .. port
  function s.log() return read(dir .. "/log") or "" end
  function s.connections()
    local n = 0
    for _ in s.log():gmatch("accept %d+") do n = n + 1 end
    return n
  end
  function s.requests()
    local out = {}
    for l in s.log():gmatch("request ([^\n]*)") do out[#out + 1] = l end
    return out
  end
  function s.stop()
    os.execute("kill " .. pid .. " 2>/dev/null; rm -rf " .. quote(dir))
  end
  return s
end

-- A test CA and certificates made with the openssl CLI in a temp dir:
--   ca.pem; good.pem/good.key (127.0.0.1 and localhost, signed by the CA);
--   wrong.pem/wrong.key (wrong.example only, signed by the CA); self.pem/self.key (self-signed
--   for 127.0.0.1). Returns the directory.
function M.make_certs()
  local dir = tmpdir()
  local script = [[
set -e
cd DIR
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=csms test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
mk() { # name, subjectAltName
  openssl req -newkey rsa:2048 -nodes -keyout $1.key -out $1.csr -subj "/CN=$1"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$2" > $1.ext
  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext
}
mk good "IP:127.0.0.1,DNS:localhost"
mk wrong "DNS:wrong.example"
openssl req -x509 -newkey rsa:2048 -nodes -keyout self.key -out self.pem -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost"
]]
  local f = assert(io.open(dir .. "/make.sh", "w"))
  f:write((script:gsub("DIR", dir)))
  f:close()
  if not support.sh("sh " .. quote(dir .. "/make.sh") .. " >" .. quote(dir .. "/make.log") .. " 2>&1") then
    error("making certificates failed: " .. (read(dir .. "/make.log") or ""))
  end
  return dir
end

return M
