-- What the bench scripts share. Each runs from the repository root and starts with
--   local common = dofile("bench/common.lua")
-- which also puts the checkout's lua/ and the C module built for the running interpreter
-- (build/lua54/ or build/luajit/) first on the module paths.
local JIT = rawget(_G, "jit")
package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "./build/" .. (JIT and "luajit" or "lua54") .. "/?.so;" .. package.cpath

local M = {}

-- The median of a list of numbers (the list is left as it is), or nil for none.
function M.median(t)
  if not t or #t == 0 then return nil end
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  return n % 2 == 1 and c[(n + 1) / 2] or (c[n / 2] + c[n / 2 + 1]) / 2
end

-- A shell command's whole standard output.
function M.read_cmd(cmd)
  local p = io.popen(cmd)
  local s = p:read("*a")
  p:close()
  return s
end

return M
