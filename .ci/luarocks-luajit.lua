-- LuaRocks config for building the rock against LuaJIT (OpenResty's, Debian libluajit2-5.1-dev):
--   LUAROCKS_CONFIG=.ci/luarocks-luajit.lua luarocks --lua-version=5.1 make --deps-mode=none
lua_interpreter = "luajit"
variables = { LUA_INCDIR = "/usr/include/luajit-2.1", LUA_BINDIR = "/usr/bin" }
