-- OIDC federation, as the official Python and Go SDKs do it: the id token (a JWT, e.g. a
-- Kubernetes service account token) read from its file, exchanged at IAM for an unscoped token,
-- exchanged for temporary keys with a security token; again before they expire, the file read
-- again each time (its issuer rotates it).
local iam = require "csms.credentials.iam"
local temporary = require "csms.credentials.temporary"

local M = {}

M.DURATION = 6 * 3600 -- seconds the temporary keys are asked for (the SDKs' default)
M.TIMEOUTS = { timeout = 10, connect_timeout = 5 }

local function fetch(self)
  local id_token, err = temporary.read_token_file(self.id_token_file, "id token", "id_token_file")
  if not id_token then return nil, err end
  local o = { user_agent = self.user_agent, sleep = self.sleep }
  local token
  token, err = iam.unscoped_token(self.transport, self.iam_endpoint, self.idp_id, id_token, o)
  if not token then return nil, err end
  local creds
  creds, err = iam.security_token(self.transport, self.iam_endpoint, token, self.duration, o)
  if not creds then return nil, err end
  creds.auth, creds.identity = "oidc", "idp:" .. self.idp_id
  return creds
end

-- opts: idp_id, id_token_file, iam_endpoint (or region: the IAM endpoint resolved as the SDKs
-- do), transport, duration, refresh_margin, clock, user_agent.
function M.new(opts)
  if type(opts.idp_id) ~= "string" or opts.idp_id == "" then
    error("csms: credentials.oidc needs idp_id", 2)
  end
  if type(opts.id_token_file) ~= "string" or opts.id_token_file == "" then
    error("csms: credentials.oidc needs id_token_file", 2)
  end
  local p = temporary.new("oidc", fetch, opts)
  p.transport = opts.transport or temporary.default_transport(M.TIMEOUTS, opts.transport_options)
  p.idp_id, p.id_token_file, p.duration = opts.idp_id, opts.id_token_file, opts.duration or M.DURATION
  p.user_agent, p.identity = opts.user_agent, "idp:" .. opts.idp_id
  local err
  p.iam_endpoint = opts.iam_endpoint
  if not p.iam_endpoint then
    p.iam_endpoint, err = iam.endpoint(opts.region, opts.getenv)
    if not p.iam_endpoint then p.err = err end
  end
  return p
end

-- The provider for these settings with default transports, one per process (see
-- temporary.shared). opts: the default chain's (transport, clock, sleep, user_agent,
-- refresh_margin, transport_options).
function M.shared(idp, file, iam_endpoint, opts)
  local o = opts.transport_options or {}
  local key = table.concat({ "oidc", idp, file, iam_endpoint, tostring(o.verify_tls), o.cafile or "",
    o.proxy or "" }, "\0")
  return temporary.shared(key, opts, function()
    return M.new { idp_id = idp, id_token_file = file, iam_endpoint = iam_endpoint, transport = opts.transport,
      clock = opts.clock, sleep = opts.sleep, user_agent = opts.user_agent, refresh_margin = opts.refresh_margin,
      transport_options = opts.transport_options }
  end)
end

return M
