-- csms: back up and restore Huawei Cloud CSMS secrets (DownloadSecretBlob / UploadSecretBlob).
-- The client: its options and the API calls. Credentials and the project id: csms.identity
-- (over csms.credentials); signing: csms.sign (C, csms.core); checks: csms.validate.
local api = require "csms.api"
local config = require "csms.config"
local credentials = require "csms.credentials"
local errors = require "csms.errors"
local identity = require "csms.identity"
local iam = require "csms.credentials.iam"
local operation = require "csms.operation"
local ratelimit = require "csms.ratelimit"
local sign = require "csms.sign"
local transport = require "csms.transport"
local validate = require "csms.validate"

local check_type = validate.check_type

local M = {
  _VERSION = "0.1.0",
  errors = errors,
  assert = errors.assert, -- csms.assert(client:backup(name)): raises err as a string
  credentials = credentials,
  sign = sign.sign,
  canonical_request = sign.canonical_request,
  validate_name = validate.name,
  validate_blob = validate.blob,
}
M.USER_AGENT = "lua-csms/" .. M._VERSION

-- ---------------------------------------------------------------- client

local Client = {}
Client.__index = Client

-- The provider of a client's credentials: the caller's own, the keys or token given, else the
-- official SDKs' chain (environment, profile file, container, ECS metadata).
local function provider_for(opts, s)
  if opts.credentials then return opts.credentials end
  if opts.auth_token then return credentials.token(opts.auth_token) end
  if opts.ak or opts.sk then
    return credentials.static({ ak = opts.ak, sk = opts.sk, security_token = opts.security_token }, "csms.new")
  end
  return credentials.default {
    region = opts.region, iam_endpoint = opts.iam_endpoint, metadata = opts.metadata,
    want_project_id = s.project_id == nil, profile = s.profile, profile_path = s.profile_path,
    user_agent = M.USER_AGENT,
    transport_options = { verify_tls = opts.verify_tls, cafile = opts.cafile, proxy = opts.proxy },
  }
end

-- The IAM endpoint for the project id lookup: the option, HUAWEICLOUD_SDK_IAM_ENDPOINT, the
-- profile's iam_endpoint, else the region's.
local function iam_endpoint(opts, s)
  if opts.iam_endpoint then
    local ep = config.endpoint(opts.iam_endpoint)
    if not ep then
      return nil, errors.new("config", "iam_endpoint must be http(s)://host[:port] with no path",
        { field = "iam_endpoint" })
    end
    return ep
  end
  return iam.endpoint(opts.region, os.getenv, s.profile.iam_endpoint)
end

local AUTH_LABEL = { static = "aksk", env = "aksk", profile = "aksk" }

function M.new(opts)
  opts = validate.options(opts)
  local s, err = config.resolve(opts)
  if not s then return nil, err end
  local provider = provider_for(opts, s)
  -- Settings that cannot work fail here, before anything is sent (no I/O: temporary keys and
  -- the project id from IAM are fetched at the first call).
  if provider.check then
    local ok
    ok, err = provider:check()
    if not ok then return nil, err end
  end
  local source = provider.source or provider
  local iam_url
  if not s.project_id and source.name ~= "ecs-metadata" then
    if not opts.region then
      return nil, errors.new("config", "no project_id: pass project_id (or set HUAWEICLOUD_SDK_PROJECT_ID), "
        .. "or region to look it up in IAM", { field = "project_id" })
    end
    iam_url, err = iam_endpoint(opts, s)
    if not iam_url then return nil, err end
  end
  local self = setmetatable({
    endpoint = s.endpoint,
    project_id = s.project_id,
    region = opts.region,
    auth = AUTH_LABEL[source.name] or source.name or "custom",
    retries = opts.retries or 3,
    backoff_base = opts.backoff_base or 0.2,
    backoff_max = opts.backoff_max or 10,
    retry_after_max = opts.retry_after_max or 30,
    throttle_deadline = opts.throttle_deadline or 300,
    clock_skew = 0, -- seconds added to the local clock when signing
    budget = ratelimit.budget(),
  }, Client)
  self.host = self.endpoint:match("^https?://([^/]+)")
  local dict
  if opts.shared_dict then
    dict = ngx and ngx.shared and ngx.shared[opts.shared_dict]
    if not dict then
      return nil, errors.new("config", "shared_dict: no lua_shared_dict named " .. opts.shared_dict
        .. " (declare it in nginx's http block: lua_shared_dict " .. opts.shared_dict .. " 1m;)")
    end
  end
  -- Shared per endpoint and project; before the project id is known (IAM), per region.
  self.limiter = ratelimit.new { clock = operation.clock, rate_limit = opts.rate_limit,
    adaptive = opts.adaptive, dict = dict,
    key = "csms:rate:" .. self.endpoint .. ":" .. (s.project_id or ("region:" .. tostring(opts.region))) }
  if type(opts.transport) == "function" then
    self.transport = transport.from_function(opts.transport)
  else
    self.transport = opts.transport
    if not self.transport then
      self.transport, err = transport.default(opts)
      if not self.transport then return nil, err end
    end
  end
  transport.mode(self.transport) -- raises on a transport that declares a mode it cannot keep
  identity.attach(self, { provider = provider, region = opts.region, iam_endpoint = iam_url,
    iam_transport = self.transport })
  return self
end

function Client:__tostring()
  return ("csms.client(%s, project %s, %s auth)"):format(self.endpoint,
    self.project_id or "not yet known", self.auth)
end

-- Fetches the credentials and finds the project id now (what the first call does otherwise):
-- the project id, or nil, err.
function Client:resolve()
  return identity.resolve(self)
end

function Client:close()
  if not identity.close(self) then return end
  self.transport:close()
end
Client.__close = Client.close
Client.__gc = Client.close -- Lua 5.2+; on LuaJIT the userdata inside free themselves

local function run(op, err)
  if not op then return nil, err end
  return api.run(op)
end

-- DownloadSecretBlob: res.secret_blob (every version, encrypted), res.request_id.
function Client:backup(name)
  return run(api.backup(self, name))
end

-- UploadSecretBlob: res.secret (metadata, never the value), res.request_id.
function Client:restore(blob)
  return run(api.restore(self, blob))
end

-- ListSecrets: res.secrets, res.page_info ({ next_marker, previous_marker, current_count }).
function Client:list_secrets(opts)
  return run(api.list(self, opts))
end

-- Any other CSMS call (create, delete, versions...), signed and retried like the ones above:
-- path is the whole path, "{project_id}" standing for the project's ("/v1/{project_id}/secrets"),
-- body a string or a table (sent as JSON). Returns the decoded answer (true when it is empty)
-- and the request id.
function Client:request(method, path, body)
  local op, err = api.request(self, method, path, body)
  if not op then return nil, err end
  local doc
  doc, err = api.run(op)
  if doc == nil then return nil, err end
  return doc, op.request_id
end

-- ---------------------------------------------------------------- one-shots

local function one_shot(method, arg, opts)
  local client, err = M.new(opts)
  if not client then return nil, err end
  local res, e = Client[method](client, arg)
  client:close()
  return res, e
end

function M.backup(name, opts)
  check_type(name, "string", "secret name")
  return one_shot("backup", name, opts)
end

function M.restore(blob, opts)
  check_type(blob, "string", "secret_blob")
  return one_shot("restore", blob, opts)
end

M.Client = Client
return M
