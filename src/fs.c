/* Files for backups: created with their final mode from the first byte, written under a
 * temporary name, flushed to disk and renamed, so a crash never leaves a half file under the
 * real name nor a moment when a blob is readable by others. Plus a directory listing and the
 * lock that keeps two backups out of one directory. */
#define _GNU_SOURCE /* syncfs */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "fs.h"
#include "lua_class.h"

static int fail(lua_State *L, const char *what, const char *path, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
  return 2;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Makes the rename itself durable. */
static void fsync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
  if (!dir) return;
  int fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(dir);
}

/* core.write_atomic(path, data [, mode = 0600]) -> true | nil, message */
static int l_write_atomic(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) return luaL_error(L, "out of memory");
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; i++) {
    snprintf(tmp, plen + 32, "%s.tmp.%ld.%d", path, (long)getpid(), i);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return fail(L, "cannot create a temporary file beside", path, e);
  }
  /* open() applies the umask; the mode asked for is the mode we want, no more, no less. */
  if (fchmod(fd, mode) || write_all(fd, data, n) || fsync(fd)) {
    int e = errno;
    close(fd);
    unlink(tmp);
    free(tmp);
    return fail(L, "cannot write", path, e);
  }
  if (close(fd) || rename(tmp, path)) {
    int e = errno;
    unlink(tmp);
    free(tmp);
    return fail(L, "cannot move into place", path, e);
  }
  free(tmp);
  fsync_parent(path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.write_new(path, data [, mode = 0600]) -> true | nil, message
 * Creates path (it must not exist) with exactly that mode and writes data, without syncing:
 * for callers that make a whole group durable at once with core.syncfs before renaming. */
static int l_write_new(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail(L, "cannot create", path, errno);
  if (fchmod(fd, mode) || write_all(fd, data, n) || close(fd)) {
    int e = errno;
    unlink(path);
    return fail(L, "cannot write", path, e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.syncfs(dir) -> true | nil, message: everything written to dir's filesystem, data and
 * names, reaches the disk (one journal commit for a whole group of files). */
static int l_syncfs(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(L, "cannot open", path, errno);
  if (syncfs(fd)) {
    int e = errno;
    close(fd);
    return fail(L, "cannot sync the filesystem of", path, e);
  }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.mkdir(path [, mode = 0700]) -> true, created | nil, message. An existing directory is
 * fine (created = false); each missing parent is made too. */
static int l_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
  char *p = strdup(path);
  if (!p) return luaL_error(L, "out of memory");
  int created = 0;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != 0) continue;
    char c = *s;
    *s = 0;
    if (mkdir(p, mode) == 0) {
      created = 1;
    } else if (errno != EEXIST) {
      int e = errno;
      free(p);
      return fail(L, "cannot create directory", path, e);
    }
    *s = c;
    if (!c) break;
  }
  free(p);
  struct stat st;
  if (stat(path, &st) || !S_ISDIR(st.st_mode)) return fail(L, "not a directory:", path, ENOTDIR);
  lua_pushboolean(L, 1);
  lua_pushboolean(L, created);
  return 2;
}

/* core.file_mode(path) -> permission bits | nil, message */
static int l_file_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st)) return fail(L, "cannot stat", path, errno);
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* core.isatty(fd) -> boolean (1 for stdout, 2 for stderr) */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.list_dir(path) -> { name, ... } (without "." and "..") | nil, message */
static int l_list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return fail(L, "cannot list", path, errno);
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      lua_pushstring(L, e->d_name);
      lua_rawseti(L, -2, ++n);
    }
    errno = 0;
  }
  int err = errno;
  closedir(d);
  if (err) return fail(L, "cannot list", path, err);
  return 1;
}

/* ---------------------------------------------------------------- locks */

#define LOCK_MT "csms.lock"

/* lock:unlock(): releases it (again is a no-op); also the lock's __gc and __close. */
static int lock_release(lua_State *L) {
  int *fd = luaL_checkudata(L, 1, LOCK_MT);
  if (*fd >= 0) close(*fd); /* closing the only descriptor releases the flock */
  *fd = -1;
  return 0;
}

/* core.lock(path) -> lock | nil, message, busy
 * An exclusive flock(2) on path (created 0600 if missing), taken without waiting. busy is true
 * when another open file description holds it: another process, or another core.lock of the
 * same file in this one. The kernel drops it when the process ends, even by kill -9. */
static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int *fd = lua_newuserdata(L, sizeof *fd);
  *fd = -1;
  luaL_setmetatable(L, LOCK_MT);
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (*fd < 0) return fail(L, "cannot open", path, errno);
  int rc;
  while ((rc = flock(*fd, LOCK_EX | LOCK_NB)) && errno == EINTR) {
  }
  if (rc) {
    int e = errno;
    close(*fd);
    *fd = -1;
    fail(L, "cannot lock", path, e);
    lua_pushboolean(L, e == EWOULDBLOCK);
    return 3;
  }
  return 1;
}

static int lock_tostring(lua_State *L) {
  int *fd = luaL_checkudata(L, 1, LOCK_MT);
  lua_pushstring(L, *fd >= 0 ? "csms.lock (held)" : "csms.lock (released)");
  return 1;
}

void csms_open_fs(lua_State *L) {
  static const luaL_Reg lock_methods[] = {{"unlock", lock_release}, {NULL, NULL}};
  csms_new_class(L, LOCK_MT, lock_methods, lock_release, lock_tostring);
  static const luaL_Reg funcs[] = {{"write_atomic", l_write_atomic},
                                   {"write_new", l_write_new},
                                   {"syncfs", l_syncfs},
                                   {"mkdir", l_mkdir},
                                   {"file_mode", l_file_mode},
                                   {"isatty", l_isatty},
                                   {"list_dir", l_list_dir},
                                   {"lock", l_lock},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
