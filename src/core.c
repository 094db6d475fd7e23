/* luaopen_csms_core: opens csms.core, the C half of csms, as one table of parts, each a
 * sub-table made by its binding file (core.h):
 *   core.signer  new, wipe, sign, sign_request   request signing (lua_signer.c over sign.c)
 *   core.http    new -> :submit, :wait, :close   the libcurl transport (lua_http.c, response.c)
 *   core.fs      write_atomic, write_new, syncfs, mkdir, list_dir, lstat, euid, read_file,
 *                open_append -> :write, :sync, :close, lock -> :unlock   files (lua_fs.c)
 *   core.blob    header                          the secret blob's shape (lua_blob.c over blob.c)
 *   core.crypto  sha256_hex, random              (lua_crypto.c)
 *   core.time    monotonic, sleep                (lua_time.c)
 *   core.cli     isatty                          for csms-backup only (lua_cli.c)
 * Everything else is Lua (lua/csms/). Runtime failures come back as nil, message[, code]
 * (lua_aux.h); wrong argument types raise. */
#include <lauxlib.h>
#include <lua.h>

#include "core.h"

int luaopen_csms_core(lua_State *L) {
  static const struct {
    const char *name;
    void (*open)(lua_State *L);
  } parts[] = {{"signer", csms_open_signer}, {"http", csms_open_http}, {"fs", csms_open_fs},
               {"blob", csms_open_blob},     {"crypto", csms_open_crypto},
               {"time", csms_open_time},     {"cli", csms_open_cli}};
  lua_createtable(L, 0, (int)(sizeof parts / sizeof parts[0]));
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    parts[i].open(L);
    lua_setfield(L, -2, parts[i].name);
  }
  return 1;
}
