/* core.cli: what only the csms-backup command needs, kept apart from the library's surface
 * (lua/csms/ never calls it): whether a descriptor is a terminal. */
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "core.h"

/* core.cli.isatty(fd) -> boolean (1 for stdout, 2 for stderr) */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

void csms_open_cli(lua_State *L) {
  static const luaL_Reg funcs[] = {{"isatty", l_isatty}, {NULL, NULL}};
  luaL_newlib(L, funcs);
}
