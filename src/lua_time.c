/* core.time: a monotonic clock for deadlines and backoff, and a blocking sleep. */
#include <errno.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "core.h"

/* core.time.sleep(seconds): blocks the calling thread (not for use inside nginx). */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  if (s <= 0) return 0;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
  return 0;
}

/* core.time.monotonic() -> seconds from an arbitrary origin */
static int l_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

void csms_open_time(lua_State *L) {
  static const luaL_Reg funcs[] = {{"sleep", l_sleep}, {"monotonic", l_monotonic}, {NULL, NULL}};
  luaL_newlib(L, funcs);
}
