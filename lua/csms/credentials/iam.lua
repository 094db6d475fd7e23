-- The IAM calls identity needs: KeystoneListProjects (signed like any API call), and the OIDC
-- exchange (an id token for an unscoped token, that token for temporary keys: both unsigned).
-- Each returns nil, err on failure; secrets sent never appear in the errors.
local cjson = require "cjson.safe"
local core = require "csms.core"
local config = require "csms.config"
local errors = require "csms.errors"
local temporary = require "csms.credentials.temporary"

local M = {}

M.DEFAULT_ENDPOINT = "https://iam.myhuaweicloud.com"
M.RETRIES = 2 -- more attempts after a transport error, a 429 or a 5xx (never after another 4xx)
local JSON = "application/json;charset=UTF-8"

local function nonempty(v) if v ~= nil and v ~= "" then return v end end

-- The IAM endpoint: HUAWEICLOUD_SDK_IAM_ENDPOINT, then the profile's iam_endpoint, then the
-- region's, then the global one. Returns url or nil, err (kind config, field iam_endpoint).
function M.endpoint(region, getenv, profile_endpoint)
  local ep = nonempty((getenv or os.getenv)("HUAWEICLOUD_SDK_IAM_ENDPOINT")) or nonempty(profile_endpoint)
  if ep then
    local clean = config.endpoint(ep)
    if not clean then
      return nil, errors.new("config", "the IAM endpoint must be http(s)://host[:port] with no path",
        { field = "iam_endpoint" })
    end
    return clean
  end
  if region and config.regions[region] then return "https://iam." .. region .. ".myhuaweicloud.com" end
  return M.DEFAULT_ENDPOINT
end

local function encode(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- One call with its retries. what names it in errors; secrets are taken out of error messages.
local function call(transport, req, what, secrets, sleep)
  local res, terr
  for attempt = 1, M.RETRIES + 1 do
    res, terr = transport:request(req)
    local again = (not res and (terr.kind == "transport" or terr.kind == "timeout"))
      or (res and (res.status == 429 or res.status >= 500))
    if not again or attempt > M.RETRIES then break end
    if sleep then sleep(0.2 * attempt) else transport:sleep(0.2 * attempt) end
  end
  if not res then return nil, temporary.transport_error(what, terr) end
  if res.status < 200 or res.status >= 300 then return nil, temporary.http_error(what, res, secrets) end
  return res
end

-- The request KeystoneListProjects sends for a region, signed with creds at time `now`
-- (credentials with an auth_token send it instead). opts.user_agent.
function M.list_projects_request(iam, creds, region, now, user_agent)
  local url = iam .. "/v3/projects?name=" .. encode(region)
  local headers = { Host = iam:match("^https?://([^/]+)"), ["User-Agent"] = user_agent or "lua-csms" }
  if creds.auth_token then
    headers["X-Auth-Token"] = creds.auth_token
    return { method = "GET", url = url, headers = headers }
  end
  local signer, err = core.signer.new(creds.ak, creds.sk, creds.security_token)
  if not signer then return nil, errors.new("config", err, { field = "credentials" }) end
  local signed
  signed, err = core.signer.sign(signer, "GET", url, headers, nil, now)
  core.signer.wipe(signer)
  if not signed then return nil, errors.new("invalid_argument", err) end
  return { method = "GET", url = url, headers = signed }
end

-- The ids of the projects named `region` that creds can see: a list (maybe empty) or nil, err.
function M.list_projects(transport, iam, creds, region, opts)
  opts = opts or {}
  local req, err = M.list_projects_request(iam, creds, region, (opts.clock or os.time)(), opts.user_agent)
  if not req then return nil, err end
  local res
  res, err = call(transport, req, "list_projects", { creds.security_token, creds.auth_token }, opts.sleep)
  if not res then return nil, err end
  local doc = cjson.decode(res.body)
  local list = type(doc) == "table" and doc.projects
  if type(list) ~= "table" then
    return nil, errors.new("bad_response", "IAM's project list has no projects array",
      { op = "list_projects", status = res.status })
  end
  local ids = {}
  for _, p in ipairs(list) do
    if type(p) == "table" and type(p.id) == "string" and (p.name == nil or p.name == region) then
      ids[#ids + 1] = p.id
    end
  end
  return ids
end

-- OIDC step 1: the id token (a JWT) for an unscoped token (X-Subject-Token).
function M.unscoped_token(transport, iam, idp_id, id_token, opts)
  opts = opts or {}
  local res, err = call(transport, {
    method = "POST", url = iam .. "/v3.0/OS-AUTH/id-token/tokens",
    headers = { ["Content-Type"] = JSON, ["X-Idp-Id"] = idp_id, ["User-Agent"] = opts.user_agent or "lua-csms" },
    body = cjson.encode { auth = { id_token = { id = id_token } } },
  }, "id_token_exchange", { id_token }, opts.sleep)
  if not res then return nil, err end
  local token = res.headers["x-subject-token"]
  if type(token) ~= "string" or token == "" then
    return nil, errors.new("bad_response", "IAM answered the id token without an X-Subject-Token",
      { op = "id_token_exchange", status = res.status })
  end
  return token
end

-- OIDC step 2: the unscoped token for temporary keys lasting `duration` seconds.
function M.security_token(transport, iam, token, duration, opts)
  opts = opts or {}
  local res, err = call(transport, {
    method = "POST", url = iam .. "/v3.0/OS-CREDENTIAL/securitytokens",
    headers = { ["Content-Type"] = JSON, ["X-Auth-Token"] = token, ["User-Agent"] = opts.user_agent or "lua-csms" },
    body = cjson.encode { auth = { identity = { methods = { "token" },
      token = { id = token, duration_seconds = duration } } } },
  }, "security_token", { token }, opts.sleep)
  if not res then return nil, err end
  return temporary.parse(res.body, "IAM securitytokens")
end

return M
