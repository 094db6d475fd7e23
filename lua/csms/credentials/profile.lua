-- Credentials from the profile file the official SDKs read: HUAWEICLOUD_SDK_CREDENTIALS_FILE,
-- else ~/.huaweicloud/credentials; its [basic] section: idp_id with id_token_file (OIDC
-- federation, at iam_endpoint when given) first, else ak/sk (with security_token).
local config = require "csms.config"
local errors = require "csms.errors"
local oidc = require "csms.credentials.oidc"
local static = require "csms.credentials.static"
local temporary = require "csms.credentials.temporary"
local deferred = require "csms.credentials.deferred"

local M = {}

local function nonempty(v) if v ~= nil and v ~= "" then return v end end

-- The profile's path and its [basic] keys ({} when there is no file), or nil, err when the file
-- HUAWEICLOUD_SDK_CREDENTIALS_FILE names cannot be read.
function M.read(getenv)
  getenv = getenv or os.getenv
  local path = nonempty(getenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE"))
  if path then
    local f, why = io.open(path, "r")
    if not f then
      return nil, errors.new("config", "cannot read HUAWEICLOUD_SDK_CREDENTIALS_FILE: " .. tostring(why),
        { field = "HUAWEICLOUD_SDK_CREDENTIALS_FILE" })
    end
    f:close()
  else
    local home = nonempty(getenv("HOME"))
    path = home and (home .. "/.huaweicloud/credentials")
  end
  return path and config.read_profile(path) or {}, path
end

local fixed = temporary.failing

local function resolve(opts)
  local getenv = opts.getenv or os.getenv
  local p, path = opts.profile, opts.profile_path
  if not p then
    p, path = M.read(getenv)
    if not p then return fixed("profile", path) end
  end
  local where = "the profile file " .. tostring(path)
  local idp, file = nonempty(p.idp_id), nonempty(p.id_token_file)
  if idp and file then
    local iam, err = opts.iam_endpoint, nil
    if not iam then iam, err = require("csms.credentials.iam").endpoint(opts.region, getenv, p.iam_endpoint) end
    if not iam then return fixed("profile", err) end
    return oidc.shared(idp, file, iam, opts)
  elseif idp or file then
    return fixed("profile", errors.new("config", where .. ": idp_id and id_token_file must be given together",
      { field = idp and "id_token_file" or "idp_id" }))
  end
  if nonempty(p.ak) or nonempty(p.sk) then
    return static.keys({ ak = nonempty(p.ak), sk = nonempty(p.sk), security_token = nonempty(p.security_token) },
      where)
  end
  return fixed("profile", errors.new("config", where .. " has no [basic] ak/sk nor idp_id/id_token_file",
    { field = "credentials", absent = true }))
end

-- opts: getenv, region, transport, clock, user_agent; profile (already read keys) with
-- profile_path, to read the file once for the credentials and the other settings.
function M.new(opts)
  return deferred("profile", resolve, opts)
end

return M
