-- Credentials that never change: an AK/SK pair (with a security token for temporary keys a
-- caller refreshes itself), or an IAM token (X-Auth-Token).
local errors = require "csms.errors"
local temporary = require "csms.credentials.temporary"

local M = {}

local Static = {}
Static.__index = Static

function Static:credentials()
  if self.err then return nil, self.err end
  return self.current
end

-- keys = { ak, sk, security_token? }; source: where they were found, for errors ("options",
-- "environment", "profile file ...").
function M.keys(keys, source)
  local ak, sk = keys.ak, keys.sk
  local self = setmetatable({ name = "static" }, Static)
  if (ak == nil or ak == "") ~= (sk == nil or sk == "") then
    self.err = errors.new("config", ("%s: the AK and SK must be given together (got only the %s)")
      :format(source or "credentials", (ak == nil or ak == "") and "SK" or "AK"), { field = "credentials" })
  elseif ak == nil or ak == "" then
    self.err = errors.new("config", (source or "credentials") .. ": no AK/SK", { field = "credentials" })
  else
    self.current = temporary.credentials { ak = ak, sk = sk, auth = "aksk",
      security_token = keys.security_token ~= "" and keys.security_token or nil }
  end
  return self
end

function M.token(auth_token)
  return setmetatable({ name = "token",
    current = temporary.credentials { auth_token = auth_token, auth = "token" } }, Static)
end

return M
