-- The ECS metadata stand-in: what a cloud server's metadata service answers, for the client's
-- credential provider: a session token (PUT), then temporary credentials that expire after
-- config.metadata_ttl_s, and the instance's project id. The temporary AK/SK are the emulator's
-- own.
local crypto = require "csms.emulator.crypto"
local http = require "csms.emulator.http"
local state = require "csms.emulator.state"
local stats = require "csms.emulator.stats"

local send = http.send

local M = {}

local sessions = {} -- session token -> expiry (seconds, the emulator's clock)

local function iso_time(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. ".000000Z"
end

function M.handle(ctx)
  stats.add("metadata")
  local now = state.now()
  if ctx.method == "PUT" and ctx.raw_path == "/meta-data/latest/api/token" then
    local ttl = tonumber(ngx.var.http_x_metadata_token_ttl_seconds)
    if not ttl or ttl < 1 or ttl > 21600 then
      return send(400, "html", "<html><title>400 Bad Request</title></html>")
    end
    local token = crypto.hex(crypto.random(16))
    sessions[token] = now + ttl
    return send(200, "text", token)
  end
  local token = ngx.var.http_x_metadata_token
  if ctx.method ~= "GET" or not token or (sessions[token] or 0) < now then
    return send(401, "html", "<html><title>401 Unauthorized</title></html>")
  end
  local settings = state.settings
  if ctx.raw_path == "/openstack/latest/securitykey" then
    return send(200, "json", { credential = {
      access = settings.ak, secret = settings.sk,
      securitytoken = "emulator-security-token-" .. crypto.hex(crypto.random(12)),
      expires_at = iso_time(now + state.config.metadata_ttl_s),
    } })
  elseif ctx.raw_path == "/openstack/latest/meta_data.json" then
    return send(200, "json", { uuid = "00000000-0000-4000-8000-000000000001",
      name = "csms-emulator", project_id = settings.project_id })
  end
  return send(404, "html", "<html><title>404 Not Found</title></html>")
end

return M
