/* The metatable of a userdata type, as the C modules set them up. */
#ifndef CSMS_LUA_CLASS_H
#define CSMS_LUA_CLASS_H

#include <lauxlib.h>
#include <lua.h>

#include "compat.h"

/* Registers metatable name (once): methods (or NULL) as __index, release as __gc and __close,
 * tostring as __tostring; getmetatable() on an object gives "locked". Leaves the stack as is. */
static inline void csms_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                                  lua_CFunction release, lua_CFunction tostring) {
  if (luaL_newmetatable(L, name)) {
    if (methods) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    }
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
}

#endif
