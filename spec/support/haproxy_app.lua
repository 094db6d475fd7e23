-- The application spec/haproxy_spec.lua runs inside HAProxy (Lua 5.3): services that use csms
-- over csms.haproxy as docs/haproxy.md shows. Settings come from haproxy_app_settings.lua,
-- which the spec writes into the test HAProxy's directory.
-- luacheck: read globals core
local csms = require "csms"
local batch = require "csms.batch"
local csms_haproxy = require "csms.haproxy"
local settings = require "haproxy_app_settings"

local clients, transports = {}, {}

-- One client per endpoint and timeout, made on first use (no I/O at load).
local function client(endpoint, timeout)
  endpoint = endpoint or settings.endpoint
  timeout = tonumber(timeout) or 60
  local key = endpoint .. " " .. timeout
  if not clients[key] then
    local t = csms_haproxy.new { timeout = timeout }
    transports[#transports + 1] = t
    clients[key] = csms.assert(csms.new { ak = settings.ak, sk = settings.sk,
      project_id = settings.project_id, endpoint = endpoint, retries = 1, backoff_base = 0.01,
      transport = t })
  end
  return clients[key]
end

local function args(applet)
  local out = {}
  for k, v in (applet.qs or ""):gmatch("([^&=]+)=([^&]*)") do
    out[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return out
end

local function answer(applet, status, body)
  applet:set_status(status)
  applet:add_header("content-type", "text/plain")
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end

local function inflight()
  local n = 0
  for _, t in ipairs(transports) do n = n + t.inflight end
  return n
end

-- Answers at once, with the number of csms requests in flight at that moment.
core.register_service("csms_ping", "http", function(applet)
  answer(applet, 200, ("pong inflight=%d\n"):format(inflight()))
end)

local blobs = {}

core.register_service("csms_backup", "http", function(applet)
  local a = args(applet)
  local res, err = client(a.endpoint, a.timeout):backup(a.name or "s")
  if not res then return answer(applet, 502, err.kind .. " " .. err .. "\n") end
  blobs[a.name or "s"] = res.secret_blob
  answer(applet, 200, ("ok %d\n"):format(#res.secret_blob))
end)

-- Restores the blob the last /backup of that name got.
core.register_service("csms_restore", "http", function(applet)
  local a = args(applet)
  local res, err = client(a.endpoint):restore(blobs[a.name or "s"] or "none")
  if not res then return answer(applet, 502, err.kind .. " " .. err .. "\n") end
  answer(applet, 200, "ok " .. tostring(res.secret.name) .. "\n")
end)

core.register_service("csms_backup_all", "http", function(applet)
  local a = args(applet)
  local report, err = batch.backup(client(a.endpoint), { dir = a.dir,
    concurrency = tonumber(a.concurrency) or 8 })
  if not report then return answer(applet, 502, err.kind .. " " .. err .. "\n") end
  answer(applet, 200, ("ok=%d failed=%d\n"):format(report.ok, report.failed))
end)

-- Raises as spec/support/error_surface_app.lua's case says: HAProxy logs what reaches it.
core.register_service("csms_error", "http", function(applet)
  require("error_surface_app").run(args(applet).case)
  answer(applet, 200, "not raised\n")
end)
