/* A minimal lua5.4 interpreter for .ci/sanitize: `asan_lua [-e CHUNK]... [SCRIPT [ARGS...]]`
 * runs the chunks, then SCRIPT with the standard libraries and the usual `arg` table, and turns
 * SIGINT into an "interrupted!" error as lua.c does. Built with -fsanitize=address,undefined,
 * it carries the ASan runtime itself, so csms/core.so (built with CSMS_SANITIZE) loads into an
 * ASan process without LD_PRELOAD -- which every subprocess the specs start (nginx, node,
 * openssl, lua5.4 helpers) would inherit. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Ctrl-C as lua.c handles it: SIGINT during a chunk sets a hook that raises "interrupted!" in
 * Lua code (csms-backup catches that to clear its bar and exit 130); a second one kills. */
static lua_State *running;

static void stop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
  signal(sig, SIG_DFL);
  lua_sethook(running, stop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

static int run(lua_State *L, int nargs) { /* the chunk is below its nargs arguments */
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  running = L;
  signal(SIGINT, on_sigint);
  int rc = lua_pcall(L, nargs, 0, base);
  signal(SIGINT, SIG_DFL);
  if (rc != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_settop(L, base - 1);
  return rc;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (!L) return 1;
  luaL_openlibs(L);
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-e") == 0 && i + 1 < argc) {
      if (luaL_loadstring(L, argv[++i]) != LUA_OK || run(L, 0) != LUA_OK) {
        if (lua_gettop(L)) fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
      }
    } else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else {
      fprintf(stderr, "asan_lua: unsupported option %s\n", argv[i]);
      lua_close(L);
      return 2;
    }
  }
  if (i >= argc) {
    lua_close(L);
    return 0;
  }
  int script = i;
  lua_createtable(L, argc, script);
  for (int j = 0; j < argc; j++) {
    lua_pushstring(L, argv[j]);
    lua_rawseti(L, -2, j - script); /* arg[0] = script, negative indices before it */
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, argv[script]) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  for (int j = script + 1; j < argc; j++) lua_pushstring(L, argv[j]);
  int rc = run(L, argc - script - 1);
  lua_close(L);
  return rc == LUA_OK ? 0 : 1;
}
