-- The gateway's authentication of an API request: an SDK-HMAC-SHA256 signature checked from the
-- raw request (csms.emulator.signature), or the IAM token as X-Auth-Token; and the AK lock-out
-- after repeated failures.
local crypto = require "csms.emulator.crypto"
local signature = require "csms.emulator.signature"
local http = require "csms.emulator.http"
local iam = require "csms.emulator.iam"
local limits = require "csms.emulator.limits"
local state = require "csms.emulator.state"
local stats = require "csms.emulator.stats"

local floor = math.floor
local header_value = http.header_value

local M = {}

local PREFIX = "Incorrect IAM authentication information: "

local lockouts = {} -- ak -> { fails = n, locked_until = seconds (real clock) }

function M.reset()
  lockouts = {}
end

local function fail(ctx, ak, reason)
  stats.add("auth_failures")
  if ak == state.settings.ak and state.config.lockout then
    local l = lockouts[ak] or { fails = 0, locked_until = 0 }
    lockouts[ak] = l
    if l.locked_until <= ngx.now() then
      l.fails = l.fails + 1
      if l.fails >= limits.LOCK_AFTER then
        l.locked_until = ngx.now() + limits.LOCK_SECONDS
        l.fails = 0
      end
    end
  end
  return false, { http.apig_error(ctx, 401, "APIG.0301", PREFIX .. reason) }
end

--- Authenticates ctx (method, raw_path, raw_query, headers, body). Returns true, or false and
--- the 401 answer (a list to unpack).
function M.authenticate(ctx)
  local settings, headers = state.settings, ctx.headers
  local authz = headers["authorization"]
  if authz == nil then
    local token = header_value(headers["x-auth-token"])
    if token == nil then
      return fail(ctx, nil, "Authorization not found (send an SDK-HMAC-SHA256 " ..
        "Authorization header or an X-Auth-Token).")
    end
    if token ~= settings.token then
      return fail(ctx, nil, "decrypt token fail (the X-Auth-Token is not the emulator's token).")
    end
    return true
  end
  local auth, perr = signature.parse_authorization(header_value(authz))
  if not auth then return fail(ctx, nil, perr .. ".") end
  local ak = auth.access
  local sk = settings.sk
  if ak ~= settings.ak then -- temporary keys from the IAM stand-in, with their security token
    local why
    sk, why = iam.secret_for(ak, header_value(headers["x-security-token"]))
    if not sk then return fail(ctx, nil, why) end
  end
  local lock = lockouts[ak]
  if state.config.lockout and lock and lock.locked_until > ngx.now() then
    stats.add("auth_failures")
    return false, { http.apig_error(ctx, 401, "APIG.0301", PREFIX .. "the access key " .. ak ..
      " is locked for " .. limits.LOCK_SECONDS .. " seconds after " .. limits.LOCK_AFTER ..
      " consecutive authentication failures (" .. floor(lock.locked_until - ngx.now() + 0.5) ..
      " s left).") }
  end
  local has = {}
  for _, n in ipairs(auth.signed_headers) do has[n] = true end
  if not has["host"] then
    return fail(ctx, ak, "host is not in SignedHeaders.")
  end
  if not has["x-sdk-date"] then
    return fail(ctx, ak, "x-sdk-date is not in SignedHeaders.")
  end
  local date = header_value(headers["x-sdk-date"])
  local ts = signature.parse_date(date and signature.trim(date))
  if not ts then
    return fail(ctx, ak, "x-sdk-date is missing or not in the form YYYYMMDDTHHMMSSZ.")
  end
  local current = state.now()
  if math.abs(current - ts) > limits.DATE_WINDOW then
    return fail(ctx, ak, string.format("x-sdk-date expired, current ts:%d, request ts:%d",
      floor(current * 1000), ts * 1000))
  end
  local canonical = signature.canonical_request({
    method = ctx.method, raw_path = ctx.raw_path, raw_query = ctx.raw_query,
    signed_names = auth.signed_headers, body = ctx.body,
    get_header = function(name) return headers[name] end,
    body_hash = has["x-sdk-content-sha256"] and header_value(headers["x-sdk-content-sha256"])
      or nil,
  })
  local expected = signature.sign(sk, signature.trim(date), canonical)
  if not crypto.equal(expected, auth.signature) then
    return fail(ctx, ak, "verify aksk signature fail, canonicalRequest: " .. canonical)
  end
  lockouts[ak] = nil
  return true
end

return M
