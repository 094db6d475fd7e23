/* What every binding file does the same way: make a class's metatable, make a zeroed userdata
 * of a class, return a runtime failure. (luaossl's prepudata and auxL_pusherror.)
 *
 * Failures: a C function of csms.core that can fail at run time returns nil, message[, code],
 * code a short string for the caller to act on: for a failed system call the errno's
 * ("missing", "symlink", "nospace", "busy", "denied", "io"); "not_regular", "too_large" from
 * core.fs; "misuse" when the caller passed something of the wrong type and should raise,
 * pointing at its own caller. Wrong argument types from csms's own Lua code raise here
 * (luaL_check*). */
#ifndef CSMS_LUA_AUX_H
#define CSMS_LUA_AUX_H

#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

#include "compat.h"

/* Registers metatable name (once): methods (or NULL) as __index, release as __gc and __close,
 * tostring as __tostring; getmetatable() on an object gives "locked". Leaves the stack as is. */
void csms_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                    lua_CFunction release, lua_CFunction tostring);

/* Pushes a new userdata of size bytes, zeroed (so __gc is safe on a half-built object), with
 * the metatable name registered by csms_new_class. */
void *csms_new_object(lua_State *L, size_t size, const char *name);

/* Pushes nil, message[, code]; returns the number of values pushed. code may be NULL. */
int csms_fail(lua_State *L, const char *code, const char *message);
/* The same with a lua_pushfstring format. */
int csms_failf(lua_State *L, const char *code, const char *fmt, ...);
/* nil, "<what> <path>: <strerror(err)>", the errno's code */
int csms_fail_errno(lua_State *L, const char *what, const char *path, int err);

#endif
