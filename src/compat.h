/* The few Lua C API differences between Lua 5.2-5.4, LuaJIT 2.1 and PUC Lua 5.1 that we meet,
 * shimmed under our own names where a function is missing. Every binding file includes this
 * (through core.h and lua_aux.h). */
#ifndef CSMS_COMPAT_H
#define CSMS_COMPAT_H

/* A function used without a declaration (a 5.2 API name under 5.1 headers) compiles to a call
 * of an undefined symbol that fails only at require time: make it a build error whatever the
 * build system (CMake adds the same flag; LuaRocks' builtin build has no per-rock flags). */
#pragma GCC diagnostic error "-Wimplicit-function-declaration"

#include <lauxlib.h>
#include <lua.h>

/* PUC Lua 5.1 lacks what LuaJIT 2.1 (also LUA_VERSION_NUM 501) already has from 5.2:
 * luaL_setfuncs, luaL_setmetatable, luaL_newlib. LuaJIT's lauxlib.h defines luaL_newlib as a
 * macro, which tells the two apart without luajit.h. */
#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
static inline void csms_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name; l++) { /* each function gets its own copy of the nup upvalues */
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
static inline void csms_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
#define luaL_setfuncs(L, l, nup) csms_setfuncs(L, l, nup)
#define luaL_setmetatable(L, tname) csms_setmetatable(L, tname)
#define luaL_newlib(L, l) \
  (lua_createtable(L, 0, (int)(sizeof(l) / sizeof((l)[0])) - 1), luaL_setfuncs(L, l, 0))
#endif

#endif
