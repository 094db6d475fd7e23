/* luaopen_csms_core: opens csms.core, the C half of csms, as one table of parts, each a
 * sub-table made by its binding file (core.h):
 *   core.signer  new, wipe, sign, sign_request   request signing (lua_signer.c over sign.c)
 *   core.http    new -> :submit, :wait, :close   the libcurl transport (lua_http.c, response.c)
 *   core.fs      write_atomic, write_new, syncfs, mkdir, list_dir, lstat, euid, read_file,
 *                open_append -> :write, :sync, :close, lock -> :unlock   files (lua_fs.c)
 *   core.blob    header                          the secret blob's shape (lua_blob.c over blob.c)
 *   core.crypto  sha256_hex, random              (lua_crypto.c)
 *   core.time    monotonic, sleep                (lua_time.c)
 *   core.cli     isatty, file_mode               for csms-backup and the specs only (lua_cli.c)
 * Everything else is Lua (lua/csms/). Runtime failures come back as nil, message[, code]
 * (lua_aux.h); wrong argument types raise. */
#include <lauxlib.h>
#include <lua.h>

#include "core.h"

/* ---------------------------------------------------------------- transition aliases
 * The flat names of before the split (docs/core-rename.txt), while callers are renamed;
 * core.signer(...) and core.http{...} still work through __call. Removed with the rename. */
static const char *const ALIASES[][3] = {
    {"sign", "signer", "sign"},          {"sign_request", "signer", "sign_request"},
    {"wipe", "signer", "wipe"},          {"blob_header", "blob", "header"},
    {"sha256_hex", "crypto", "sha256_hex"}, {"random", "crypto", "random"},
    {"sleep", "time", "sleep"},          {"monotonic", "time", "monotonic"},
    {"write_atomic", "fs", "write_atomic"}, {"write_new", "fs", "write_new"},
    {"syncfs", "fs", "syncfs"},          {"mkdir", "fs", "mkdir"},
    {"list_dir", "fs", "list_dir"},      {"lock", "fs", "lock"},
    {"read_file", "fs", "read_file"},    {"lstat", "fs", "lstat"},
    {"euid", "fs", "euid"},              {"open_append", "fs", "open_append"},
    {"file_mode", "cli", "file_mode"},   {"isatty", "cli", "isatty"}};

static int call_new(lua_State *L) { /* part(...) -> part.new(...) */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_replace(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static void add_aliases(lua_State *L) {
  for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++) {
    lua_getfield(L, -1, ALIASES[i][1]);
    lua_getfield(L, -1, ALIASES[i][2]);
    lua_setfield(L, -3, ALIASES[i][0]);
    lua_pop(L, 1);
  }
  const char *callable[] = {"signer", "http"};
  for (int i = 0; i < 2; i++) {
    lua_getfield(L, -1, callable[i]);
    lua_createtable(L, 0, 1);
    lua_getfield(L, -2, "new");
    lua_pushcclosure(L, call_new, 1);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
}

/* ---------------------------------------------------------------- opener */

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
  add_aliases(L);
  return 1;
}
