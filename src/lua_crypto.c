/* core.crypto: SHA-256 of a string (manifest checksums) and random numbers from OpenSSL. */
#include <lauxlib.h>
#include <lua.h>
#include <openssl/rand.h>

#include "core.h"
#include "sign.h"

/* core.crypto.sha256_hex(s) -> 64 lower-case hex digits */
static int l_sha256_hex(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char hex[65];
  csms_sha256_hex(s, n, hex);
  lua_pushlstring(L, hex, 64);
  return 1;
}

/* core.crypto.random() -> uniform float in [0, 1), from OpenSSL's CSPRNG (LuaJIT's math.random
 * starts from the same seed in every process, which would line up every client's jitter). */
static int l_random(lua_State *L) {
  unsigned long long r = 0;
  if (RAND_bytes((unsigned char *)&r, sizeof r) != 1) return luaL_error(L, "RAND_bytes failed");
  lua_pushnumber(L, (double)(r >> 11) / 9007199254740992.0);
  return 1;
}

void csms_open_crypto(lua_State *L) {
  static const luaL_Reg funcs[] = {{"sha256_hex", l_sha256_hex}, {"random", l_random},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
}
