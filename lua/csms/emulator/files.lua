-- The emulator's file access: whole-file reads and crash-safe writes (temporary file, then
-- rename).
local crypto = require "csms.emulator.crypto"

local M = {}

--- The content of path, or nil.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

--- Writes content to path through a temporary file and a rename; mode (e.g. 384 = 0600) optional.
function M.write_atomic(path, content, mode)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  if mode then crypto.chmod(tmp, mode) end
  local ok, werr = f:write(content)
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    return nil, werr or cerr
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then return nil, rerr end
  return true
end

return M
