-- The emulator's IAM stand-in, on the same port as CSMS (docs/emulator.md):
--   GET  /v3/projects?name=R                 KeystoneListProjects, signed (SDK-HMAC-SHA256)
--   POST /v3.0/OS-AUTH/id-token/tokens       an id token (X-Idp-Id) for an unscoped token
--   POST /v3.0/OS-CREDENTIAL/securitytokens  that token for temporary AK/SK + security token
--   GET|POST /__emulator/iam                 its settings and counters (admin, loopback)
-- Temporary keys are then accepted by the CSMS routes with their security token only, and only
-- until they expire: secret_for(ak, token) is what the gateway's authentication asks.
-- Mounted by the router (csms.emulator.server's ROUTES); reset with the emulator.
local json = require "csms.json"
local crypto = require "csms.emulator.crypto"
local http = require "csms.emulator.http"
local limits = require "csms.emulator.limits"
local signature = require "csms.emulator.signature"
local state = require "csms.emulator.state"

local array, null = json.array, json.null
local floor = math.floor

local M = {}

local UNSCOPED_TTL = 24 * 3600

local function clock() return state.now() end
local config, stats
local unscoped = {}      -- unscoped token -> expiry
local temporary = {}     -- temporary AK -> { sk, token, expires_at }

local function defaults()
  return {
    projects = {},                      -- region -> list of ids; a region not listed: the emulator's
    idp_id = "emulator-idp",
    id_token = "emulator-id-token",     -- the one id token the IdP accepts
    security_token_ttl_s = null,        -- cap on the keys' life (null: as asked, 900..86400 s)
  }
end

function M.reset()
  config = defaults()
  stats = { list_projects = 0, id_token = 0, security_tokens = 0, auth_failures = 0 }
  unscoped, temporary = {}, {}
end

M.reset()

-- The SK of a temporary AK presented with its security token, or nil, reason.
function M.secret_for(ak, security_token)
  local t = temporary[ak]
  if not t then return nil, "the access key " .. ak .. " does not exist." end
  if security_token == nil then return nil, "the security token is missing for the temporary access key." end
  if not crypto.equal(security_token, t.token) then return nil, "the security token is invalid." end
  if clock() >= t.expires_at then return nil, "the security token has expired." end
  return t.sk
end

local function keystone_error(status, title, message, headers)
  return status, "json", { error = { code = status, title = title, message = message } }, headers
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", floor(t)) .. ".000000Z"
end

local function header(ctx, name)
  local v = ctx.headers[name]
  if type(v) == "table" then v = v[1] end
  return v
end

-- The SDK-HMAC-SHA256 check of an IAM request: the emulator's AK/SK, or temporary keys with
-- their security token. Returns true or the 401 answer.
local function authenticate(ctx)
  local function fail(reason)
    stats.auth_failures = stats.auth_failures + 1
    return nil, { keystone_error(401, "Unauthorized", "The request you have made requires authentication: "
      .. reason) }
  end
  local auth, perr = signature.parse_authorization(header(ctx, "authorization"))
  if not auth then return fail(perr .. ".") end
  local settings = state.settings
  local sk = auth.access == settings.ak and settings.sk
  if not sk then
    local why
    sk, why = M.secret_for(auth.access, header(ctx, "x-security-token"))
    if not sk then return fail(why) end
  end
  local signed = {}
  for _, n in ipairs(auth.signed_headers) do signed[n] = true end
  if not (signed.host and signed["x-sdk-date"]) then return fail("host and x-sdk-date must be signed.") end
  local date = header(ctx, "x-sdk-date")
  local ts = signature.parse_date(date and signature.trim(date))
  if not ts or math.abs(clock() - ts) > limits.DATE_WINDOW then return fail("x-sdk-date is missing or expired.") end
  local canonical = signature.canonical_request({
    method = ctx.method, raw_path = ctx.raw_path, raw_query = ctx.raw_query,
    signed_names = auth.signed_headers, body = ctx.body or "",
    get_header = function(name) return ctx.headers[name] end,
  })
  if not crypto.equal(signature.sign(sk, signature.trim(date), canonical), auth.signature) then
    return fail("verify aksk signature fail.")
  end
  return true
end

local function query_arg(raw_query, name)
  for part in ((raw_query or "") .. "&"):gmatch("([^&]*)&") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    if signature.decode(k) == name then return signature.decode(v) end
  end
end

local function list_projects(ctx)
  stats.list_projects = stats.list_projects + 1
  local ok, answer = authenticate(ctx)
  if not ok then return unpack(answer) end
  local region = query_arg(ctx.raw_query, "name")
  local projects = array({})
  if region then
    local ids = config.projects[region] or { state.settings.project_id }
    for i, id in ipairs(ids) do
      projects[i] = { id = id, name = region, domain_id = "emulatordomain0000000000000000001",
        enabled = true, is_domain = false, parent_id = "emulatordomain0000000000000000001",
        description = "", links = { self = "/v3/projects/" .. id } }
    end
  end
  return 200, "json", { projects = projects, links = { self = "/v3/projects", previous = null, next = null } }
end

local function body_json(ctx)
  local doc = json.decode(ctx.body or "")
  if type(doc) ~= "table" then return nil end
  return doc
end

local function id_token(ctx)
  stats.id_token = stats.id_token + 1
  local doc = body_json(ctx)
  local jwt = doc and type(doc.auth) == "table" and type(doc.auth.id_token) == "table" and doc.auth.id_token.id
  if header(ctx, "x-idp-id") ~= config.idp_id then
    stats.auth_failures = stats.auth_failures + 1
    return keystone_error(404, "Not Found", "The identity provider could not be found.")
  end
  if type(jwt) ~= "string" or not crypto.equal(jwt, config.id_token) then
    stats.auth_failures = stats.auth_failures + 1
    return keystone_error(401, "Unauthorized", "The id token is invalid.")
  end
  local token = "emulator-unscoped-" .. crypto.hex(crypto.random(24))
  local expires = clock() + UNSCOPED_TTL
  unscoped[token] = expires
  return 201, "json", { token = { expires_at = iso(expires), issued_at = iso(clock()), methods = array({ "mapped" }),
    user = { name = "emulator-federated-user", ["OS-FEDERATION"] = { identity_provider = { id = config.idp_id },
      protocol = { id = "oidc" } } } } }, { ["X-Subject-Token"] = token }
end

local function security_tokens(ctx)
  stats.security_tokens = stats.security_tokens + 1
  local doc = body_json(ctx)
  local identity = doc and type(doc.auth) == "table" and doc.auth.identity
  local tok = type(identity) == "table" and type(identity.token) == "table" and identity.token or {}
  local header_token = header(ctx, "x-auth-token")
  local expiry = header_token and unscoped[header_token]
  if not expiry or expiry <= clock() or tok.id ~= header_token then
    stats.auth_failures = stats.auth_failures + 1
    return keystone_error(401, "Unauthorized", "The token is invalid or has expired.")
  end
  local duration = tok.duration_seconds == nil and 900 or tonumber(tok.duration_seconds)
  if not duration or duration < 900 or duration > 86400 or duration ~= floor(duration) then
    return keystone_error(400, "Bad Request", "duration_seconds must be a whole number from 900 to 86400.")
  end
  if config.security_token_ttl_s ~= null then duration = math.min(duration, config.security_token_ttl_s) end
  local ak = "EMUTMP" .. crypto.hex(crypto.random(7)):upper()
  local t = { sk = crypto.hex(crypto.random(20)), expires_at = clock() + duration,
    token = "emulator-security-token-" .. crypto.hex(crypto.random(32)) }
  temporary[ak] = t
  return 201, "json", { credential = { access = ak, secret = t.sk, securitytoken = t.token,
    expires_at = iso(t.expires_at) } }
end

-- Admin: GET shows the settings and counters; POST changes settings (projects, idp_id, id_token,
-- security_token_ttl_s).
local function admin(ctx)
  local addr = ngx and ngx.var.remote_addr
  if addr and not (addr:match("^127%.") or addr == "::1" or addr == "unix:") then
    return 403, "json", { error_msg = "the admin API answers loopback clients only" }
  end
  if ctx.method == "POST" then
    local doc = body_json(ctx)
    if not doc then return 400, "json", { error_msg = "the body must be a JSON object" } end
    for k, v in pairs(doc) do
      local want = ({ projects = "table", idp_id = "string", id_token = "string",
        security_token_ttl_s = "number" })[k]
      if not want then return 400, "json", { error_msg = "unknown IAM setting " .. tostring(k) } end
      if type(v) ~= want and not (k == "security_token_ttl_s" and v == null) then
        return 400, "json", { error_msg = k .. " must be a " .. want }
      end
      if k == "projects" then
        for region, ids in pairs(v) do
          if type(ids) ~= "table" then
            return 400, "json", { error_msg = "projects." .. region .. " must be a list" }
          end
          for _, id in ipairs(ids) do
            if type(id) ~= "string" then return 400, "json", { error_msg = "project ids must be strings" } end
          end
        end
      end
    end
    for k, v in pairs(doc) do config[k] = v end
  elseif ctx.method ~= "GET" then
    return 405, "json", { error_msg = "GET or POST" }
  end
  local projects = {}
  for r, ids in pairs(config.projects) do projects[r] = array({ unpack(ids) }) end
  local live = 0
  for _, t in pairs(temporary) do if t.expires_at > clock() then live = live + 1 end end
  return 200, "json", { projects = projects,
    idp_id = config.idp_id, id_token = config.id_token, security_token_ttl_s = config.security_token_ttl_s,
    stats = stats, temporary_keys = live }
end

local function answer(ctx)
  local p, m = ctx.raw_path, ctx.method
  if p == "/__emulator/iam" then return admin(ctx) end
  if p == "/v3/projects" and m == "GET" then return list_projects(ctx) end
  if p == "/v3.0/OS-AUTH/id-token/tokens" and m == "POST" then return id_token(ctx) end
  if p == "/v3.0/OS-CREDENTIAL/securitytokens" and m == "POST" then return security_tokens(ctx) end
  return keystone_error(404, "Not Found", "The IAM API " .. m .. " " .. p .. " is not emulated.")
end

-- ctx: the router's (request_id, method, raw_path, raw_query).
function M.handle(ctx)
  local body = http.read_body()
  if not body then return http.send(keystone_error(413, "Request Entity Too Large", "The body is too large.")) end
  ctx.body, ctx.headers = body, ngx.req.get_headers(500)
  return http.send(answer(ctx))
end

return M
