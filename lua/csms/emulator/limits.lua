-- CSMS's and its gateway's rules as the emulator enforces them: secret names, value and blob
-- sizes, the request body limit, the X-Sdk-Date window and the AK lock-out.
local M = {}

M.NAME_RULE = "^[a-zA-Z0-9_-]{1,64}$" -- for messages
M.MAX_BODY = 8 * 1024 * 1024           -- bytes of a request body (gateway, 413)
M.MAX_VALUE = 65536                     -- bytes of a secret_string
M.MAX_DESCRIPTION = 2048                -- characters of a description
M.MAX_BLOB = 5242880                    -- characters of a secret_blob
M.DATE_WINDOW = 15 * 60                 -- seconds an X-Sdk-Date may be off the clock
M.LOCK_AFTER = 5                        -- consecutive authentication failures of an AK ...
M.LOCK_SECONDS = 300                    -- ... lock it for this long

--- Valid secret name?
function M.valid_name(name)
  return type(name) == "string" and #name >= 1 and #name <= 64
    and name:find("^[a-zA-Z0-9_-]+$") ~= nil
end

--- A seed entry ({name, versions = {"v1 value", ...}, description?, ...}) from a seed file or
--- /__emulator/seed: nil when valid, else the reason.
function M.seed_entry_error(s)
  if type(s) ~= "table" or not M.valid_name(s.name) or type(s.versions) ~= "table"
      or #s.versions == 0 then
    return "needs a valid name and a list of versions"
  end
  for _, v in ipairs(s.versions) do
    if type(v) ~= "string" then return "needs versions that are strings" end
  end
end

return M
