/* The few Lua C API differences between Lua 5.4 and LuaJIT 2.1 (Lua 5.1 API) that we meet. */
#ifndef CSMS_COMPAT_H
#define CSMS_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
#define csms_rawlen(L, i) lua_objlen(L, i)
#else
#define csms_rawlen(L, i) lua_rawlen(L, i)
#endif

#endif
