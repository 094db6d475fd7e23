-- The interpreter running the specs, for the child processes they start: its command
-- ("lua5.1" ... "lua5.4", "luajit") and its build directory under build/ (lua51 ... luajit).
local jit = rawget(_G, "jit")
local version = _VERSION:match("%d+%.%d+")
return {
  command = jit and "luajit" or "lua" .. version,
  build = jit and "luajit" or "lua" .. version:gsub("%.", ""),
  version = version, -- LuaRocks' --lua-version: 5.1 for LuaJIT
}
