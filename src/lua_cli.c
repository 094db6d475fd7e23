/* core.cli: what only the csms-backup command and the specs need, kept apart from the library's
 * surface (lua/csms/ never calls these): whether a descriptor is a terminal, a file's mode. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "core.h"
#include "lua_aux.h"

/* core.cli.file_mode(path) -> permission bits | nil, message */
static int l_file_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st)) return csms_fail_errno(L, "cannot stat", path, errno);
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* core.cli.isatty(fd) -> boolean (1 for stdout, 2 for stderr) */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

void csms_open_cli(lua_State *L) {
  static const luaL_Reg funcs[] = {{"file_mode", l_file_mode}, {"isatty", l_isatty}, {NULL, NULL}};
  luaL_newlib(L, funcs);
}
