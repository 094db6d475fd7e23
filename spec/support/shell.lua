-- Test support: the checkout's root, shell commands, temporary files, reading a file.
-- Plain Lua (5.1 to 5.4, LuaJIT). One of the spec support files:
--   spec/support/shell.lua        this file
--   spec/support/http.lua         HTTP to a test server, through LuaSocket's socket.http
--   spec/support/admin.lua        the emulator's admin API (/__emulator/...)
--   spec/support/node_signer.lua  the official Node.js signer (spec/support/node/sign.js)
--   spec/support/api.lua          CSMS API calls signed by that signer, or with a token
--   spec/support/emulator.lua     starts and stops bin/csms-emulator; re-exports all of the above
local M = {}

--- Wraps s in single quotes for sh.
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; true when it exits 0.
function M.sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

--- Runs a shell command; whether it exited 0, and its stdout and stderr together.
function M.run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("exit=(%d+)%s*$") == "0", out
end

--- The first line a command prints.
local function first_line(cmd)
  local p = io.popen(cmd)
  local line = p:read("*l")
  p:close()
  return line
end

--- A file's bytes, or nil when it cannot be read.
function M.read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- A new empty file (mktemp), for the caller to remove.
function M.tmpname() return first_line("mktemp") end

--- A new empty directory (mktemp -d), for the caller to remove.
function M.tmpdir() return first_line("mktemp -d") end

--- The checkout's root, absolute (this file is <root>/spec/support/shell.lua).
M.root = (function()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
  return first_line("cd " .. M.shell_quote(dir .. "/../..") .. " && pwd")
end)()

return M
