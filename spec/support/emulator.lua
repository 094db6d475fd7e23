-- Test support: starts bin/csms-emulator on a free port and stops it. Plain Lua (5.4 and
-- LuaJIT); LuaSocket, and luasec when the emulator serves TLS. The spec support files:
--   spec/support/emulator.lua     this file: the launcher, and the one module specs require
--   spec/support/shell.lua        root, shell_quote, sh, run, read_all, tmpname, tmpdir
--   spec/support/http.lua         HTTP through socket.http (request), exact bytes (raw)
--   spec/support/admin.lua        e:admin, e:config, e:reset, e:stats, e:health, e:dump,
--                                 e:fail_next, e:create_secret (the /__emulator/ admin API)
--   spec/support/node_signer.lua  the official Node.js signer (spec/support/node/sign.js)
--   spec/support/api.lua          e:request, e:requests, e:api (CSMS API calls, signed or not)
-- This module re-exports what the others export, under the names specs use:
--
--   local emulator = require "spec.support.emulator"
--   local e = emulator.start{ latency_ms = 0, tls = nil, args = { "--throttle", "5" } }
--   e.endpoint, e.port, e.project_id, e.ak, e.sk, e.token, e.prefix, e.pid
--   e:config{...}; e:reset(); e:fail_next{ {kind=..., op=...} }; e:stats(); e:reset_stats()
--   e:stop()
--   e:create_secret(name, { "v1 value", "v2 value" }, { description = ... })
--   e:request{ method=, path=, query={{k,v},...}, raw_query=, headers={}, body=string|table,
--              sign = "node" | "token" | false, ak=, sk=, date= }  -> status, headers, body, json
--   e:requests{ req, req, ... }  -- the same, signed in one node process; -> list of
--                                   { status=, headers=, body=, json=, err= }
--   e:http{ method=, target=, headers=, body= }  -- exact bytes (http.raw) -> status, headers, body
--   emulator.node_sign{ {method=, url=, headers=, query=, body_json=, ak=, sk=, date=}, ... }
--   emulator.http{ port=, target=, ... }, emulator.encode, emulator.free_port, emulator.closed_port,
--   emulator.launcher,
--   emulator.root, .shell_quote, .sh, .run, .read_all, .tmpname, .tmpdir, .node_dir
local socket = require "socket"
local shell = require "spec.support.shell"
local http = require "spec.support.http"
local admin = require "spec.support.admin"
local api = require "spec.support.api"
local node_signer = require "spec.support.node_signer"

local M = {
  root = shell.root, shell_quote = shell.shell_quote, sh = shell.sh, run = shell.run,
  read_all = shell.read_all, tmpname = shell.tmpname, tmpdir = shell.tmpdir,
  http = http.raw, encode = api.encode, node_sign = node_signer.sign, node_dir = node_signer.dir,
}
M.launcher = M.root .. "/bin/csms-emulator"

local q, sh = shell.shell_quote, shell.sh

--- A port nobody listens on right now (for a server to listen on: another process may take it
--- first, so a server started on it retries on another when the port is in use).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- A port nobody listens on while this process runs (a dead endpoint): bound here without
--- listen(), so a connection to it is refused and no other process (another suite beside this
--- one) can listen on it meanwhile.
local held = {}
function M.closed_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  held[#held + 1] = s
  local _, port = s:getsockname()
  return tonumber(port)
end

-- The emulator object: its fields, the methods below, and those of admin.lua and api.lua.
local Emulator = {}
Emulator.__index = Emulator
for _, methods in ipairs({ admin.methods, api.methods }) do
  for name, f in pairs(methods) do Emulator[name] = f end
end

-- A self-signed certificate for 127.0.0.1, in a new directory.
local function make_certificate()
  local dir = shell.tmpdir()
  assert(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
    "-keyout " .. q(dir .. "/key.pem") .. " -out " .. q(dir .. "/cert.pem") ..
    " -days 2 -subj /CN=127.0.0.1 >/dev/null 2>&1"), "openssl could not make a certificate")
  return { cert = dir .. "/cert.pem", key = dir .. "/key.pem", dir = dir }
end

-- Writes the secrets in opts (sk, token) to 0600 temporary files and adds --sk-file /
-- --token-file to args (never the secrets themselves: ps shows a command line to every user).
-- Returns the files, to remove once the launcher has read them.
local function secret_files(opts, args)
  local files = {}
  for _, k in ipairs({ "sk", "token" }) do
    if opts[k] then
      local path = shell.tmpname() -- mktemp: 0600
      local f = assert(io.open(path, "wb"))
      f:write(opts[k], "\n")
      f:close()
      files[#files + 1] = path
      args[#args + 1] = "--" .. k .. "-file"; args[#args + 1] = path
    end
  end
  return files
end

--- Where a whole-project backup's listing and backups fell in the emulator's arrivals (its
--- stats().arrivals, in order): the index of the first backup, of the last listing page, and
--- the number of pages.
function M.listing_order(arrivals)
  local first_backup, last_list, lists = nil, nil, 0
  for i, a in ipairs(arrivals) do
    if a.op == "backup" then first_backup = first_backup or i end
    if a.op == "list" then last_list, lists = i, lists + 1 end
  end
  return first_backup, last_list, lists
end

--- opts: latency_ms, tls (true: a self-signed certificate made here, or {cert=, key=}),
--- args (extra CLI flags), port, state_dir, seed, sk and token (see secret_files), watch
--- (default true: the emulator stops when this Lua process exits, even without e:stop()).
function M.start(opts)
  opts = opts or {}
  local args = {}
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local secrets = secret_files(opts, args)
  local function forget_secrets() for _, path in ipairs(secrets) do os.remove(path) end end
  if opts.latency_ms then
    args[#args + 1] = "--latency"; args[#args + 1] = tostring(opts.latency_ms)
  end
  if opts.state_dir then
    args[#args + 1] = "--state-dir"; args[#args + 1] = opts.state_dir
  end
  if opts.seed then
    args[#args + 1] = "--seed"; args[#args + 1] = opts.seed
  end
  local tls = opts.tls == true and make_certificate() or opts.tls
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
    local cmd = { q(M.launcher), "--background", "--port", tostring(port) }
    for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
    local p = io.popen(table.concat(cmd, " ") .. " 2>&1")
    local output = p:read("*a")
    p:close()
    last_output = output
    local info = {}
    for k, v in output:gmatch("([%w_]+)=([^\n]*)") do info[k] = v end
    if info.pid and info.endpoint then
      forget_secrets()
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
          local log = shell.read_all(e.prefix .. "/logs/error.log") or ""
          e:stop()
          error("the emulator did not answer /__emulator/health within 10 s; error log:\n" ..
            log:sub(-3000))
        end
        socket.sleep(0.05)
      end
    end
    if opts.port or not output:find("Address already in use", 1, true) then break end
  end
  forget_secrets()
  if tls and tls.dir then sh("rm -rf " .. q(tls.dir)) end
  error("could not start the emulator:\n" .. tostring(last_output))
end

--- Exact request bytes to this emulator (http.raw): status, headers, body; or nil, err.
function Emulator:http(opts)
  opts.port = self.port
  opts.tls = self.tls and true or false
  return M.http(opts)
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
  if self.tls and self.tls.dir then sh("rm -rf " .. q(self.tls.dir)) end
end

return M
