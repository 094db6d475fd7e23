-- Container credentials (the official SDKs' pod identity): POST {} to
-- HC_CONTAINER_CREDENTIALS_FULL_URI with the contents of HC_CONTAINER_AUTHORIZATION_TOKEN_FILE
-- as Authorization; the answer holds temporary keys. The token file is read at every fetch.
local errors = require "csms.errors"
local temporary = require "csms.credentials.temporary"

local M = {}

M.TIMEOUTS = { timeout = 5, connect_timeout = 5 }

-- The token goes in a header: over plain HTTP only to this machine or a link-local agent.
local function local_host(host)
  host = host:lower():gsub("^%[", ""):gsub("%]$", "")
  return host == "localhost" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
    or host:match("^169%.254%.%d+%.%d+$") ~= nil or host == "::1" or host:match("^fe80:") ~= nil
end

local function check_uri(uri)
  local scheme, host = uri:match("^(https?)://(%[[^%]]+%])")
  if not scheme then scheme, host = uri:match("^(https?)://([^/:?#]+)") end
  if not scheme then return "is not an http(s) URL" end
  if scheme == "http" and not local_host(host) then
    return "sends the token in clear to " .. host .. ": use https, or an agent on this machine "
      .. "or a link-local address"
  end
end

local function fetch(self)
  local token, err = temporary.read_token_file(self.token_file, "container authorization token",
    "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  if not token then return nil, err end
  local res, terr = self.transport:request { method = "POST", url = self.uri, body = "{}",
    headers = { ["Content-Type"] = "application/json", Authorization = token } }
  if not res then return nil, temporary.transport_error("container credentials", terr) end
  if res.status ~= 200 then
    return nil, temporary.http_error("container credentials", res, { token })
  end
  local creds
  creds, err = temporary.parse(res.body, "container credentials at " .. self.uri)
  if not creds then return nil, err end
  creds.auth, creds.identity = "container", self.identity
  return creds
end

-- opts: uri, token_file, transport, refresh_margin, clock.
function M.new(opts)
  if type(opts.uri) ~= "string" or type(opts.token_file) ~= "string" then
    error("csms: credentials.container needs uri and token_file", 2)
  end
  local p = temporary.new("container", fetch, opts)
  p.uri, p.token_file, p.identity = opts.uri, opts.token_file, "container:" .. opts.uri
  p.transport = opts.transport or temporary.default_transport(M.TIMEOUTS, opts.transport_options)
  local why = check_uri(opts.uri)
  if why then
    p.err = errors.new("config", "HC_CONTAINER_CREDENTIALS_FULL_URI " .. why,
      { field = "HC_CONTAINER_CREDENTIALS_FULL_URI" })
  end
  return p
end

return M
