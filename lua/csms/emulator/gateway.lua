-- The API gateway in front of CSMS: per API request, in order: route (404), count, throttle
-- (429), latency, body size (413), authentication (401), project (403), fault, operation.
local http = require "csms.emulator.http"
local auth = require "csms.emulator.auth"
local config = require "csms.emulator.config"
local faults = require "csms.emulator.faults"
local limits = require "csms.emulator.limits"
local operations = require "csms.emulator.operations"
local state = require "csms.emulator.state"
local stats = require "csms.emulator.stats"
local throttle = require "csms.emulator.throttle"

local floor = math.floor
local send = http.send

local M = {}

--- The op and its parameters for a method and decoded path segments, or nil (unknown API).
local function route(method, segs)
  if segs[1] ~= "v1" or not segs[2] or segs[3] ~= "secrets" then return nil end
  local n = #segs
  local p = { project_id = segs[2], name = segs[4], version_id = segs[6] }
  if n == 3 then
    if method == "GET" then return "list", p end
    if method == "POST" then return "create", p end
  elseif n == 4 then
    if segs[4] == "restore" and method == "POST" then return "restore", p end
    if method == "GET" then return "get", p end
    if method == "DELETE" then return "delete", p end
  elseif n == 5 then
    if segs[5] == "backup" and method == "POST" then return "backup", p end
    if segs[5] == "versions" and method == "GET" then return "list_versions", p end
    if segs[5] == "versions" and method == "POST" then return "create_version", p end
  elseif n == 6 then
    if segs[5] == "versions" and method == "GET" then return "get_version", p end
  end
  return nil
end

--- Throttles an API request of op: nil when admitted, else the 429 answer.
local function throttled(ctx, op)
  ngx.update_time()
  local t = floor(ngx.now() * 1000)
  local rule, wait = config.limiter:admit(op, t)
  stats.arrival(t, op, rule ~= nil)
  if not rule then return nil end
  local ra = throttle.retry_after(rule, wait)
  return http.apig_error(ctx, 429, "APIG.0308", throttle.message(rule),
    ra and { ["Retry-After"] = ra } or nil)
end

--- Sends a fault's answer, or drops the connection.
local function send_fault(kind, ctx)
  local status, fkind, body, headers = faults.response(kind, state.config, ctx.request_id)
  if status == "drop" then return ngx.exit(444) end
  return send(status, fkind, body, headers)
end

function M.handle(ctx)
  local op, params = route(ctx.method, http.split_path(ctx.raw_path))
  if not op then
    stats.request("unknown")
    return send(http.apig_error(ctx, 404, "APIG.0101",
      "The API does not exist or has not been published in the environment."))
  end
  stats.request(op)
  local status, kind, body, headers = throttled(ctx, op)
  if status then return send(status, kind, body, headers) end
  local c = state.config
  local delay = (c.latency_ms or 0) + (c.latency_jitter_ms or 0) * math.random()
  if delay > 0 then ngx.sleep(delay / 1000) end

  local raw = http.read_body()
  if not raw then
    return send(http.apig_error(ctx, 413, "APIG.0201", "Request entity too large: the body " ..
      "exceeds " .. limits.MAX_BODY .. " bytes."))
  end
  ctx.body = raw
  ctx.headers = ngx.req.get_headers(500)
  local ok, err = auth.authenticate(ctx)
  if not ok then return send(unpack(err)) end
  if params.project_id ~= state.settings.project_id then
    return send(http.csms_error(403, "CSMS.0003", "Invalid request: the project ID " ..
      params.project_id .. " in the URL does not match the credentials' project."))
  end

  local fault = faults.pick(op, state.config)
  if fault then stats.add("faults") end
  if fault and not faults.after_apply(fault) then return send_fault(fault, ctx) end
  ctx.name, ctx.version_id = params.name, params.version_id
  status, kind, body, headers = operations.ops[op](ctx)
  if fault then return send_fault(fault, ctx) end
  return send(status, kind, body, headers)
end

return M
