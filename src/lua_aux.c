#include "lua_aux.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

void csms_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
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

void *csms_new_object(lua_State *L, size_t size, const char *name) {
  void *p = lua_newuserdata(L, size);
  memset(p, 0, size);
  luaL_setmetatable(L, name);
  return p;
}

static int push_code(lua_State *L, const char *code) {
  if (!code) return 2;
  lua_pushstring(L, code);
  return 3;
}

int csms_fail(lua_State *L, const char *code, const char *message) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  return push_code(L, code);
}

int csms_failf(lua_State *L, const char *code, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return push_code(L, code);
}

/* The short code of an errno for callers to switch on. */
static const char *errno_code(int err) {
  switch (err) {
  case ENOENT: return "missing";
  case ELOOP: return "symlink"; /* O_NOFOLLOW met a symbolic link */
  case ENOSPC: case EDQUOT: case EFBIG: return "nospace";
  case EWOULDBLOCK: return "busy";
  case EACCES: case EPERM: case EROFS: return "denied";
  default: return "io";
  }
}

int csms_fail_errno(lua_State *L, const char *what, const char *path, int err) {
  return csms_failf(L, errno_code(err), "%s %s: %s", what, path, strerror(err));
}
