/* core.blob: the shape check of a CSMS secret blob (blob.c), for validating before a restore. */
#include <lauxlib.h>
#include <lua.h>

#include "blob.h"
#include "buf.h"
#include "core.h"
#include "lua_aux.h"

/* core.blob.header(blob) -> decoded JWE header (JSON text) | nil, message */
static int l_header(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  buf_t hdr = BUF_INIT;
  const char *err;
  if (csms_blob_check(s, n, &hdr, &err)) {
    buf_free(&hdr);
    return csms_fail(L, NULL, err);
  }
  lua_pushlstring(L, hdr.p ? hdr.p : "", hdr.n);
  buf_free(&hdr);
  return 1;
}

void csms_open_blob(lua_State *L) {
  static const luaL_Reg funcs[] = {{"header", l_header}, {NULL, NULL}};
  luaL_newlib(L, funcs);
}
