-- Credentials from the environment, as the official SDKs read it: HUAWEICLOUD_SDK_IDP_ID with
-- HUAWEICLOUD_SDK_ID_TOKEN_FILE (OIDC federation) first, else HUAWEICLOUD_SDK_AK/_SK (with
-- _SECURITY_TOKEN), else the older CLOUD_SDK_AK/_SK.
local errors = require "csms.errors"
local oidc = require "csms.credentials.oidc"
local static = require "csms.credentials.static"
local temporary = require "csms.credentials.temporary"
local deferred = require "csms.credentials.deferred"

local M = {}

local function nonempty(v) if v ~= nil and v ~= "" then return v end end

local function absent(msg)
  return temporary.failing("env", errors.new("config", msg, { field = "credentials", absent = true }))
end

local function fail(msg, field)
  return temporary.failing("env", errors.new("config", msg, { field = field }))
end

-- The provider the variables describe. opts: getenv, region, transport, clock, user_agent,
-- refresh_margin (for OIDC).
local function resolve(opts)
  local getenv = opts.getenv or os.getenv
  local idp, file = nonempty(getenv("HUAWEICLOUD_SDK_IDP_ID")), nonempty(getenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE"))
  if idp and file then
    local iam, err = opts.iam_endpoint, nil
    if not iam then iam, err = require("csms.credentials.iam").endpoint(opts.region, getenv) end
    if not iam then return fail(err.message, err.field) end
    return oidc.shared(idp, file, iam, opts)
  elseif idp or file then
    return fail("HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE must be set together",
      idp and "HUAWEICLOUD_SDK_ID_TOKEN_FILE" or "HUAWEICLOUD_SDK_IDP_ID")
  end
  for _, prefix in ipairs { "HUAWEICLOUD_SDK_", "CLOUD_SDK_" } do
    local ak, sk = nonempty(getenv(prefix .. "AK")), nonempty(getenv(prefix .. "SK"))
    if ak and sk then
      return static.keys({ ak = ak, sk = sk, security_token = nonempty(getenv(prefix .. "SECURITY_TOKEN")) })
    elseif ak or sk then
      return fail(prefix .. "AK and " .. prefix .. "SK must be set together", prefix .. (ak and "SK" or "AK"))
    end
  end
  return absent("the environment has no HUAWEICLOUD_SDK_AK/_SK nor HUAWEICLOUD_SDK_IDP_ID/_ID_TOKEN_FILE")
end

function M.new(opts)
  return deferred("env", resolve, opts)
end

return M
