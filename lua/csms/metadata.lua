-- Temporary credentials from the ECS metadata service of a Huawei Cloud server: a session token
-- (PUT /meta-data/latest/api/token), then the server's agency credentials
-- (GET /openstack/latest/securitykey) and, when no project id is configured, the server's own
-- (GET /openstack/latest/meta_data.json). Short timeouts: off-cloud it must cost nothing.
local cjson = require "cjson.safe"
local config = require "csms.config"
local errors = require "csms.errors"

local M = {}

M.TIMEOUTS = { timeout = 2, connect_timeout = 0.5 }
M.REFRESH_MARGIN = 600 -- seconds before expiry when credentials are fetched again

local function fail(base, what, res, terr)
  local why = terr and terr.message or (res and ("HTTP " .. res.status)) or "no answer"
  return nil, errors.new("config", ("ECS metadata at %s: %s (%s)"):format(base, what, why))
end

-- "2026-11-23T20:00:00.000000Z" -> seconds since the epoch
local function iso_time(s)
  local y, mo, d, h, mi, sec = tostring(s):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
  if not y then return nil end
  return config.epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
end

-- Returns { ak, sk, security_token, expires_at, project_id? } or nil, err (kind "config").
function M.fetch(transport, base, want_project)
  local res, terr = transport:request { method = "PUT", url = base .. "/meta-data/latest/api/token",
    headers = { ["X-Metadata-Token-Ttl-Seconds"] = "21600" } }
  if not res or res.status ~= 200 or res.body == "" then
    return fail(base, "no session token", res, terr)
  end
  local session = { ["X-Metadata-Token"] = res.body:gsub("%s+$", "") }
  res, terr = transport:request { method = "GET", url = base .. "/openstack/latest/securitykey", headers = session }
  if not res or res.status ~= 200 then return fail(base, "no security key", res, terr) end
  local doc = cjson.decode(res.body)
  local c = type(doc) == "table" and doc.credential
  if type(c) ~= "table" or type(c.access) ~= "string" or type(c.secret) ~= "string"
    or type(c.securitytoken) ~= "string" or not iso_time(c.expires_at) then
    return nil, errors.new("config", ("ECS metadata at %s: the security key answer lacks "
      .. "access, secret, securitytoken or expires_at"):format(base))
  end
  local out = { ak = c.access, sk = c.secret, security_token = c.securitytoken,
                expires_at = iso_time(c.expires_at) }
  if want_project then
    res, terr = transport:request { method = "GET", url = base .. "/openstack/latest/meta_data.json",
      headers = session }
    doc = res and res.status == 200 and cjson.decode(res.body)
    if type(doc) ~= "table" or type(doc.project_id) ~= "string" then
      return fail(base, "no project id in meta_data.json", res, terr)
    end
    out.project_id = doc.project_id
  end
  return out
end

return M
