-- Credentials that never change: an AK/SK pair (with a security token for temporary keys a
-- caller refreshes itself), or an IAM token (X-Auth-Token).
local core = require "csms.core"
local errors = require "csms.errors"
local temporary = require "csms.credentials.temporary"

local M = {}

local Static = {}
Static.__index = Static

function Static:credentials()
  if self.err then return nil, self.err end
  return self.current
end
Static.check = Static.credentials

-- keys = { ak, sk, security_token? }; source: where they were found, for errors ("options",
-- "environment", "profile file ...").
-- The keys are checked now (no I/O): the C signer refuses what no gateway would take.
function M.keys(keys, source)
  local ak, sk = keys.ak, keys.sk
  local token = keys.security_token ~= "" and keys.security_token or nil
  local self = setmetatable({ name = "static" }, Static)
  local where = source and (source .. ": ") or ""
  if (ak == nil) ~= (sk == nil) then
    self.err = errors.new("config", ("%sak and sk must be given together (got only %s)")
      :format(where, ak == nil and "sk" or "ak"), { field = "credentials" })
  elseif ak == nil then
    self.err = errors.new("config", where .. "no ak and sk", { field = "credentials" })
  else
    local signer, err = core.signer.new(ak, sk, token)
    if not signer then
      self.err = errors.new("config", where .. err, { field = "credentials" })
    else
      core.signer.wipe(signer)
      self.current = temporary.credentials { ak = ak, sk = sk, security_token = token, auth = "aksk" }
    end
  end
  return self
end

function M.token(auth_token)
  return setmetatable({ name = "token",
    current = temporary.credentials { auth_token = auth_token, auth = "token" } }, Static)
end

return M
