-- csms.credentials: where a client's keys come from. A provider is any table with
--
--   provider:credentials() -> creds | nil, err
--
-- creds = { ak =, sk =, security_token = (temporary keys), expires_at = (seconds since the
-- epoch, temporary keys), auth = "aksk"|"token"|"oidc"|"container"|"ecs-metadata" (for
-- tostring), identity = (a stable name of the principal, for caches: default the AK),
-- project_id = (when the source knows it) } or { auth_token = } for an IAM token.
-- A provider hands out the same table until the keys change: a new table means new keys. It
-- fetches temporary keys again before they expire, one fetch at a time however many callers
-- (requests, nginx light threads) ask meanwhile. err.absent marks a source with nothing
-- configured (a chain then tries the next one); config errors name their err.field.
--
-- Providers: credentials.static{ ak, sk, security_token }, credentials.token(t),
-- credentials.env(opts), credentials.profile(opts), credentials.oidc{ idp_id, id_token_file,
-- iam_endpoint | region }, credentials.container{ uri, token_file },
-- credentials.metadata{ endpoint }, credentials.chain{ p1, p2, ... } and
-- credentials.default(opts): environment, profile file, container, ECS metadata.
-- Network I/O goes through opts.transport (csms.transport's interface), default libcurl, or
-- cosockets inside nginx.
local config = require "csms.config"
local errors = require "csms.errors"
local static = require "csms.credentials.static"
local temporary = require "csms.credentials.temporary"

local M = {}

M.static = static.keys
M.token = static.token
function M.env(opts) return require("csms.credentials.env").new(opts) end
function M.profile(opts) return require("csms.credentials.profile").new(opts) end
function M.oidc(opts) return require("csms.credentials.oidc").new(opts) end
function M.container(opts) return require("csms.credentials.container").new(opts) end
function M.metadata(opts) return require("csms.credentials.metadata").new(opts) end
M.new = temporary.new -- a refreshing provider around your own fetch function

-- Forgets the keys and project ids kept for the process (default chains' temporary keys, IAM's
-- answers): the next clients fetch them again.
function M.forget()
  temporary.forget()
  require("csms.credentials.project").clear()
end

-- ---------------------------------------------------------------- chain

local Chain = {}
Chain.__index = Chain

-- The first provider with something configured serves from then on (its refreshes included);
-- a provider that is configured but fails stops the search: its error is the answer.
-- search: the first provider that answers ask(p) (a value, or nil, err) becomes the source.
local function search(self, ask)
  local tried = {}
  for _, p in ipairs(self.providers) do
    local v, err = ask(p)
    if v then
      self.source, self.name = p, p.name
      return v
    end
    if not (errors.is_error(err) and err.absent) then return nil, err end
    tried[#tried + 1] = err.message
  end
  return nil, errors.new("config", self.none or ("no credentials (" .. table.concat(tried, "; ") .. ")"),
    { field = "credentials", absent = true })
end

-- Settings only, no I/O (the providers' own check where they have one): picks the source the
-- chain will use, or says why none can serve.
function Chain:check()
  if self.source then return self.source.check and self.source:check() or true end
  return search(self, function(p)
    if p.check then return p:check() end
    return true
  end)
end

function Chain:credentials()
  if self.source then
    local c, err = self.source:credentials()
    if c then self.name = self.source.name end
    return c, err
  end
  return search(self, function(p) return p:credentials() end)
end

function M.chain(providers, none_message)
  for i, p in ipairs(providers) do
    if type(p) ~= "table" or type(p.credentials) ~= "function" then
      error(("csms: credentials.chain: entry %d is not a provider (a table with a credentials method)"):format(i), 2)
    end
  end
  return setmetatable({ name = "chain", providers = providers, none = none_message }, Chain)
end

-- ---------------------------------------------------------------- the default chain

local function nonempty(v) if v ~= nil and v ~= "" then return v end end

M.NO_CREDENTIALS = "no credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or "
  .. "HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE), write them in the [basic] section "
  .. "of ~/.huaweicloud/credentials, pass ak/sk (or auth_token, or credentials = a provider) to "
  .. "csms.new, or on a cloud server set HUAWEICLOUD_SDK_ECS_METADATA=on"

-- The official SDKs' order: environment, profile file, container credentials, ECS metadata
-- (asked only on a cloud server, or when opts.metadata says so: config.metadata_endpoint).
-- opts: region, iam_endpoint, getenv, metadata, want_project_id, profile + profile_path
-- (already read), transport (else each source's own, with transport_options: verify_tls,
-- cafile, proxy), clock, sleep, user_agent, refresh_margin.
function M.default(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local list = { M.env(opts), M.profile(opts) }
  local uri = nonempty(getenv("HC_CONTAINER_CREDENTIALS_FULL_URI"))
  local file = nonempty(getenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
  local tls = opts.transport_options or {}
  local tls_key = table.concat({ tostring(tls.verify_tls), tls.cafile or "", tls.proxy or "" }, "\0")
  if uri and file then
    list[#list + 1] = temporary.shared(table.concat({ "container", uri, file, tls_key }, "\0"), opts, function()
      return M.container { uri = uri, token_file = file, transport = opts.transport, clock = opts.clock,
        sleep = opts.sleep, refresh_margin = opts.refresh_margin, transport_options = opts.transport_options }
    end)
  elseif uri or file then
    list[#list + 1] = temporary.failing("container", errors.new("config", "HC_CONTAINER_CREDENTIALS_FULL_URI and "
      .. "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE must be set together",
      { field = uri and "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE" or "HC_CONTAINER_CREDENTIALS_FULL_URI" }))
  end
  local endpoint = config.metadata_endpoint(opts.metadata, getenv, opts.read_dmi)
  if endpoint then
    local key = table.concat({ "ecs-metadata", endpoint, tostring(opts.want_project_id), tls_key }, "\0")
    list[#list + 1] = temporary.shared(key, opts, function()
      return M.metadata { endpoint = endpoint, want_project_id = opts.want_project_id,
        transport = opts.transport, clock = opts.clock, sleep = opts.sleep, refresh_margin = opts.refresh_margin,
        transport_options = opts.transport_options }
    end)
  end
  return M.chain(list, M.NO_CREDENTIALS)
end

return M
