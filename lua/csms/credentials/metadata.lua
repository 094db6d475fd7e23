-- Temporary credentials from the ECS metadata service of a Huawei Cloud server: a session token
-- (PUT /meta-data/latest/api/token), then the server's agency credentials
-- (GET /openstack/latest/securitykey) and, when asked, the server's own project id
-- (GET /openstack/latest/meta_data.json, on the first fetch). Short timeouts: off-cloud it must
-- cost nothing (and the default chain asks only on a cloud server: config.metadata_endpoint).
local cjson = require "cjson.safe"
local errors = require "csms.errors"
local temporary = require "csms.credentials.temporary"

local M = {}

M.TIMEOUTS = { timeout = 2, connect_timeout = 0.5 }

local function fail(base, what, res, terr)
  local why = terr and terr.message or (res and ("HTTP " .. res.status)) or "no answer"
  return nil, errors.new("config", ("ECS metadata at %s: %s (%s)"):format(base, what, why),
    { field = "metadata" })
end

local function fetch(self)
  local base, t = self.endpoint, self.transport
  local res, terr = t:request { method = "PUT", url = base .. "/meta-data/latest/api/token",
    headers = { ["X-Metadata-Token-Ttl-Seconds"] = "21600" } }
  if not res or res.status ~= 200 or res.body == "" then
    return fail(base, "no session token", res, terr)
  end
  local session = { ["X-Metadata-Token"] = res.body:gsub("%s+$", "") }
  res, terr = t:request { method = "GET", url = base .. "/openstack/latest/securitykey", headers = session }
  if not res or res.status ~= 200 then return fail(base, "no security key", res, terr) end
  local creds = temporary.parse(res.body, "ECS metadata")
  if not creds then
    return nil, errors.new("config", ("ECS metadata at %s: the security key answer lacks "
      .. "access, secret, securitytoken or expires_at"):format(base), { field = "metadata" })
  end
  creds.auth, creds.identity = "ecs-metadata", self.identity
  if self.want_project_id and not self.project_id then
    res, terr = t:request { method = "GET", url = base .. "/openstack/latest/meta_data.json",
      headers = session }
    local doc = res and res.status == 200 and cjson.decode(res.body)
    if type(doc) ~= "table" or type(doc.project_id) ~= "string" then
      return fail(base, "no project id in meta_data.json", res, terr)
    end
    self.project_id = doc.project_id
  end
  creds.project_id = self.project_id
  return creds
end

-- opts: endpoint (base URL), want_project_id, transport, refresh_margin, clock.
function M.new(opts)
  local p = temporary.new("ecs-metadata", fetch, opts)
  p.endpoint = (opts.endpoint or "http://169.254.169.254"):gsub("/+$", "")
  p.want_project_id, p.identity = opts.want_project_id, "ecs-metadata:" .. p.endpoint
  p.transport = opts.transport or temporary.default_transport(M.TIMEOUTS, opts.transport_options)
  return p
end

return M
