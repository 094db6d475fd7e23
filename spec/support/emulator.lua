-- Test support: starts bin/csms-emulator on a free port and talks to it.
-- Plain Lua (5.4 and LuaJIT); LuaSocket for HTTP, luasec when the emulator serves TLS.
--
--   local emulator = require "spec.support.emulator"
--   local e = emulator.start{ latency_ms = 0, tls = nil, args = { "--throttle", "5" } }
--   e.endpoint, e.port, e.project_id, e.ak, e.sk, e.token, e.prefix, e.pid
--   e:config{...}; e:reset(); e:fail_next{ {kind=..., op=...} }; e:stats(); e:stop()
--   e:create_secret(name, { "v1 value", "v2 value" }, { description = ... })
--   e:request{ method=, path=, query={{k,v},...}, raw_query=, headers={}, body=string|table,
--              sign = "node" | "token" | false, ak=, sk=, date= }  -> status, headers, body, json
--   e:requests{ req, req, ... }  -- the same, signed in one node process; -> list of
--                                   { status=, headers=, body=, json=, err= }
--   emulator.node_sign{ {method=, url=, headers=, query=, body_json=, ak=, sk=, date=}, ... }
local socket = require "socket"
local json = require "csms.emulator.json"

local M = {}

local function script_dir()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) == "@" then
    return (src:sub(2):match("^(.*)/[^/]*$")) or "."
  end
  return "."
end

M.root = (function()
  local dir = script_dir() -- <root>/spec/support
  local p = io.popen("cd '" .. dir .. "/../..' && pwd")
  local root = p:read("*l")
  p:close()
  return root
end)()
M.launcher = M.root .. "/bin/csms-emulator"
M.node_dir = M.root .. "/spec/support/node"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

-- Runs a shell command; true when it exits 0.
local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end
M.sh = sh

-- Runs a shell command; whether it exited 0, and its stdout and stderr together.
function M.run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("exit=(%d+)%s*$") == "0", out
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_all = read_all

local function tmpname()
  local p = io.popen("mktemp")
  local name = p:read("*l")
  p:close()
  return name
end
M.tmpname = tmpname

-- A new empty directory.
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end

--- A port nobody listens on right now.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- RFC 3986 encoding (what the signers use).
function M.encode(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Raw HTTP/1.1 ---------------------------------------------------------------------------------

--- One request on a fresh connection. headers: list of {name, value} or a map.
--- Returns status, headers (lower-case names; repeated ones joined with ", "), body;
--- or nil, err when the connection fails or is closed without an answer.
function M.http(opts)
  local c = assert(socket.tcp())
  c:settimeout(opts.timeout or 30)
  local ok, err = c:connect(opts.host or "127.0.0.1", opts.port)
  if not ok then return nil, "connect: " .. tostring(err) end
  if opts.tls then
    local ssl = require "ssl"
    c = assert(ssl.wrap(c, { mode = "client", protocol = "any", verify = "none" }))
    c:settimeout(opts.timeout or 30)
    local hok, herr = c:dohandshake()
    if not hok then return nil, "tls: " .. tostring(herr) end
  end
  local lines = { (opts.method or "GET") .. " " .. opts.target .. " HTTP/1.1" }
  local have = {}
  local list = {}
  if opts.headers then
    if #opts.headers > 0 then
      list = opts.headers
    else
      local names = {}
      for k in pairs(opts.headers) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do list[#list + 1] = { k, opts.headers[k] } end
    end
  end
  for _, h in ipairs(list) do
    lines[#lines + 1] = h[1] .. ": " .. h[2]
    have[h[1]:lower()] = true
  end
  local body = opts.body
  if not have["host"] then lines[#lines + 1] = "Host: 127.0.0.1:" .. opts.port end
  if body and not have["content-length"] then lines[#lines + 1] = "Content-Length: " .. #body end
  if not have["connection"] then lines[#lines + 1] = "Connection: close" end
  local req = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
  local sent, serr = c:send(req)
  if not sent then c:close() return nil, "send: " .. tostring(serr) end

  local status_line, rerr = c:receive("*l")
  if not status_line then c:close() return nil, "closed: " .. tostring(rerr) end
  local status = tonumber(status_line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then c:close() return nil, "bad status line " .. status_line end
  local headers = {}
  while true do
    local line, lerr = c:receive("*l")
    if not line then c:close() return nil, "headers: " .. tostring(lerr) end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then
      k = k:lower()
      headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
    end
  end
  local rbody
  if opts.method == "HEAD" or status == 204 or status == 304 then
    rbody = ""
  elseif headers["content-length"] then
    rbody = c:receive(tonumber(headers["content-length"])) or ""
  elseif (headers["transfer-encoding"] or ""):lower():find("chunked") then
    local parts = {}
    while true do
      local size = tonumber((c:receive("*l") or "0"):match("^%x+") or "0", 16)
      if size == 0 then break end
      parts[#parts + 1] = c:receive(size)
      c:receive("*l")
    end
    rbody = table.concat(parts)
  else
    local all, _, partial = c:receive("*a")
    rbody = all or partial or ""
  end
  c:close()
  return status, headers, rbody
end

-- The official Node.js signer ------------------------------------------------------------------

--- Signs a batch with spec/support/node/sign.js (one node process). Returns a list of
--- { headers = {name = value}, body = string|nil, url =, query_string = }.
function M.node_sign(list)
  local f = io.open(M.node_dir .. "/node_modules/@huaweicloud/huaweicloud-sdk-core/package.json")
  if not f then
    error("the Node.js signer is not installed: run npm install --prefix spec/support/node")
  end
  f:close()
  local input = {}
  for i, r in ipairs(list) do
    input[i] = {
      method = r.method, url = r.url, headers = r.headers or {}, ak = r.ak, sk = r.sk,
      query = json.array(r.query or {}), body_json = r.body_json, date = r.date,
    }
  end
  local inpath, outpath = tmpname(), tmpname()
  local fh = assert(io.open(inpath, "wb"))
  fh:write(json.encode(json.array(input)))
  fh:close()
  local ok = sh("node " .. shell_quote(M.node_dir .. "/sign.js") .. " < " .. shell_quote(inpath) ..
    " > " .. shell_quote(outpath))
  local out = read_all(outpath)
  os.remove(inpath)
  os.remove(outpath)
  if not ok then error("node sign.js failed") end
  local signed = assert(json.decode(out), "sign.js printed no JSON")
  for _, s in ipairs(signed) do
    if s.body == json.null then s.body = nil end
  end
  return signed
end

-- Emulator instances ------------------------------------------------------------------------------

local Emulator = {}
Emulator.__index = Emulator

--- opts: latency_ms, tls (true: a self-signed certificate made here, or {cert=, key=}),
--- args (extra CLI flags), port, state_dir, seed, watch (default true: the emulator stops when
--- this Lua process exits, even without e:stop()).
function M.start(opts)
  opts = opts or {}
  local args = {}
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  if opts.latency_ms then
    args[#args + 1] = "--latency"; args[#args + 1] = tostring(opts.latency_ms)
  end
  if opts.state_dir then
    args[#args + 1] = "--state-dir"; args[#args + 1] = opts.state_dir
  end
  if opts.seed then
    args[#args + 1] = "--seed"; args[#args + 1] = opts.seed
  end
  local tls = opts.tls
  if tls == true then
    local dir = tmpname()
    os.remove(dir)
    assert(sh("mkdir -p " .. shell_quote(dir)))
    assert(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
      "-keyout " .. shell_quote(dir .. "/key.pem") .. " -out " .. shell_quote(dir .. "/cert.pem") ..
      " -days 2 -subj /CN=127.0.0.1 >/dev/null 2>&1"), "openssl could not make a certificate")
    tls = { cert = dir .. "/cert.pem", key = dir .. "/key.pem", dir = dir }
  end
  if tls then
    args[#args + 1] = "--tls-cert"; args[#args + 1] = tls.cert
    args[#args + 1] = "--tls-key"; args[#args + 1] = tls.key
  end
  if opts.watch ~= false then
    -- stop the emulator with this Lua process even if the spec run dies without e:stop()
    local p = io.popen("echo $PPID")
    local me = p:read("*l")
    p:close()
    if me and me:match("^%d+$") then
      args[#args + 1] = "--watch-pid"; args[#args + 1] = me
    end
  end
  local last_output
  for _ = 1, 3 do
    local port = opts.port or M.free_port()
    local cmd = { shell_quote(M.launcher), "--background", "--port", tostring(port) }
    for _, a in ipairs(args) do cmd[#cmd + 1] = shell_quote(a) end
    local p = io.popen(table.concat(cmd, " ") .. " 2>&1")
    local output = p:read("*a")
    p:close()
    last_output = output
    local info = {}
    for k, v in output:gmatch("([%w_]+)=([^\n]*)") do info[k] = v end
    if info.pid and info.endpoint then
      local e = setmetatable({
        endpoint = info.endpoint, port = port, project_id = info.project_id, ak = info.ak,
        sk = info.sk, token = info.token, prefix = info.prefix, pid = tonumber(info.pid),
        tls = tls, host = "127.0.0.1", output = output,
      }, Emulator)
      local deadline = socket.gettime() + 10
      while true do
        local st = e:admin("GET", "/__emulator/health")
        if st == 200 then return e end
        if socket.gettime() > deadline then
          local log = read_all(e.prefix .. "/logs/error.log") or ""
          e:stop()
          error("the emulator did not answer /__emulator/health within 10 s; error log:\n" ..
            log:sub(-3000))
        end
        socket.sleep(0.05)
      end
    end
    if opts.port or not output:find("Address already in use", 1, true) then break end
  end
  error("could not start the emulator:\n" .. tostring(last_output))
end

function Emulator:http(opts)
  opts.port = self.port
  opts.tls = self.tls and true or false
  return M.http(opts)
end

--- An admin call; returns status, decoded body (or the raw body when not JSON).
function Emulator:admin(method, path, body)
  local text
  if body ~= nil then text = type(body) == "string" and body or json.encode(body) end
  local status, _, rbody = self:http({ method = method, target = path, body = text,
    headers = text and { { "Content-Type", "application/json" } } or nil, timeout = 10 })
  if not status then return nil, _ end
  local doc = json.decode(rbody)
  if doc == nil then doc = rbody end
  return status, doc
end

local function admin_ok(self, method, path, body)
  local status, doc = self:admin(method, path, body)
  if status ~= 200 then
    error(method .. " " .. path .. " failed: " .. tostring(status) .. " " ..
      (type(doc) == "table" and json.encode(doc) or tostring(doc)), 3)
  end
  return doc
end

function Emulator:config(settings) return admin_ok(self, "POST", "/__emulator/config", settings) end
function Emulator:reset() return admin_ok(self, "POST", "/__emulator/reset", {}) end
function Emulator:stats() return admin_ok(self, "GET", "/__emulator/stats") end
function Emulator:health() return admin_ok(self, "GET", "/__emulator/health") end
function Emulator:dump() return admin_ok(self, "GET", "/__emulator/secrets").secrets end

function Emulator:fail_next(entries)
  return admin_ok(self, "POST", "/__emulator/faults/next", json.array(entries))
end

--- Creates a secret through the admin seed route (no signing, not counted as an API call).
function Emulator:create_secret(name, versions, opts)
  local entry = { name = name, versions = json.array(versions or { "value" }) }
  for k, v in pairs(opts or {}) do entry[k] = v end
  return admin_ok(self, "POST", "/__emulator/seed", { secrets = json.array({ entry }) }).secrets[1]
end

--- Stops the emulator with SIGTERM and waits (up to 10 s) for its supervisor to exit.
function Emulator:stop()
  if not self.pid then return end
  sh("kill -TERM " .. self.pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not sh("kill -0 " .. self.pid .. " 2>/dev/null") then break end
    socket.sleep(0.05)
  end
  self.stopped_pid, self.pid = self.pid, nil
  if self.tls and self.tls.dir then sh("rm -rf " .. shell_quote(self.tls.dir)) end
end

local function query_string(query)
  local parts = {}
  for _, kv in ipairs(query or {}) do
    parts[#parts + 1] = M.encode(kv[1]) .. "=" .. M.encode(kv[2])
  end
  return table.concat(parts, "&")
end

-- Prepares the wire form of a request spec (without node signing).
local function prepare(self, r)
  local headers = {}
  for k, v in pairs(r.headers or {}) do headers[k] = v end
  local body = r.body
  if type(body) == "table" then body = json.encode(body) end
  local qs = r.raw_query or query_string(r.query)
  if r.sign == "token" then headers["X-Auth-Token"] = r.token or self.token end
  return { method = r.method or "GET", target = r.path .. (qs ~= "" and ("?" .. qs) or ""),
           headers = headers, body = body }
end

local function node_input(self, r)
  assert(r.body == nil or type(r.body) == "table",
    "sign = 'node' needs body as a table (the signer hashes JSON.stringify of it)")
  assert(not r.raw_query, "sign = 'node' takes query = {{k, v}, ...}, not raw_query")
  return {
    method = r.method or "GET", url = self.endpoint .. r.path, headers = r.headers or {},
    query = r.query, body_json = r.body, ak = r.ak or self.ak, sk = r.sk or self.sk, date = r.date,
  }
end

local function wire_from_signed(self, r, s)
  local target = s.url:sub(#self.endpoint + 1)
  local headers = {}
  for k, v in pairs(s.headers) do headers[k] = v end
  for k, v in pairs(r.extra_headers or {}) do headers[k] = v end -- added after signing
  return { method = r.method or "GET", target = target, headers = headers, body = s.body }
end

local function send(self, w, r)
  local status, headers, body = self:http({ method = w.method, target = w.target,
    headers = w.headers, body = w.body, timeout = r.timeout })
  if not status then return nil, headers end
  return status, headers, body, json.decode(body)
end

--- One request. sign: "node" (the official signer), "token" (X-Auth-Token) or false.
--- extra_headers are added after signing (unsigned). Returns status, headers, body, decoded
--- JSON (or nil, err when the connection was closed without an answer).
function Emulator:request(r)
  local w
  if r.sign == "node" then
    w = wire_from_signed(self, r, M.node_sign({ node_input(self, r) })[1])
  else
    w = prepare(self, r)
    for k, v in pairs(r.extra_headers or {}) do w.headers[k] = v end
  end
  return send(self, w, r)
end

--- Many requests, node-signed in one batch; returns a list of {status, headers, body, json, err}.
function Emulator:requests(list)
  local to_sign, idx = {}, {}
  for i, r in ipairs(list) do
    if r.sign == "node" then
      to_sign[#to_sign + 1] = node_input(self, r)
      idx[#to_sign] = i
    end
  end
  local wires = {}
  if #to_sign > 0 then
    for j, s in ipairs(M.node_sign(to_sign)) do
      wires[idx[j]] = wire_from_signed(self, list[idx[j]], s)
    end
  end
  local out = {}
  for i, r in ipairs(list) do
    local w = wires[i] or prepare(self, r)
    local status, headers, body, doc = send(self, w, r)
    if status then
      out[i] = { status = status, headers = headers, body = body, json = doc }
    else
      out[i] = { err = headers }
    end
  end
  return out
end

--- The API path for a project-relative path ("/secrets" -> "/v1/<project>/secrets").
function Emulator:api(path, project_id)
  return "/v1/" .. (project_id or self.project_id) .. path
end

return M
