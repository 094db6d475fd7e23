/* core.fs: files for backups, created with their final mode from the first byte, written under
 * a temporary name, flushed to disk and renamed, so a crash never leaves a half file under the
 * real name nor a moment when a blob is readable by others; reads and appends that never
 * follow a symbolic link or block on a FIFO (the writer class); a directory listing, lstat; and
 * the lock class, which keeps two backups out of one directory. */
#define _GNU_SOURCE /* syncfs */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "core.h"
#include "lua_aux.h"

/* Opens path without following a symbolic link or blocking on a FIFO, and makes sure it is a
 * regular file with one name (a planted hard link would make us write another file). Returns
 * the descriptor (O_NONBLOCK cleared) or -1 with the Lua failure pushed (*nret values). */
static int open_regular(lua_State *L, const char *path, int flags, mode_t mode, int *nret) {
  int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP) *nret = csms_failf(L, "symlink", "%s is a symbolic link (never followed)", path);
    else if (e == ENXIO) *nret = csms_failf(L, "not_regular", "%s is not a regular file", path); /* a FIFO */
    else *nret = csms_fail_errno(L, "cannot open", path, e);
    errno = e;
    return -1;
  }
  struct stat st;
  const char *why = NULL;
  if (fstat(fd, &st)) {
    int e = errno;
    close(fd);
    *nret = csms_fail_errno(L, "cannot stat", path, e);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) why = "is not a regular file";
  else if (st.st_nlink > 1 && (flags & O_ACCMODE) != O_RDONLY) why = "has other hard links";
  if (why) {
    close(fd);
    *nret = csms_failf(L, "not_regular", "%s %s", path, why);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
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

/* Gives the new file fd exactly mode (open() applies the umask: the mode asked for is the mode
 * we want, no more, no less), writes data, [flushes it to disk,] and closes fd whatever
 * happens. Returns 0 or an errno. */
static int fill(int fd, mode_t mode, const char *data, size_t n, int sync) {
  int e = fchmod(fd, mode) || write_all(fd, data, n) || (sync && fsync(fd)) ? errno : 0;
  if (close(fd) && !e) e = errno;
  return e;
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

/* core.fs.write_atomic(path, data [, mode = 0600]) -> true | nil, message */
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
    return csms_fail_errno(L, "cannot create a temporary file beside", path, e);
  }
  int e = fill(fd, mode, data, n, 1);
  if (e || rename(tmp, path)) {
    const char *what = e ? "cannot write" : "cannot move into place";
    if (!e) e = errno;
    unlink(tmp);
    free(tmp);
    return csms_fail_errno(L, what, path, e);
  }
  free(tmp);
  fsync_parent(path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.write_new(path, data [, mode = 0600]) -> true | nil, message
 * Creates path (it must not exist) with exactly that mode and writes data, without syncing:
 * for callers that make a whole group durable at once with core.fs.syncfs before renaming. */
static int l_write_new(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return csms_fail_errno(L, "cannot create", path, errno);
  int e = fill(fd, mode, data, n, 0);
  if (e) {
    unlink(path);
    return csms_fail_errno(L, "cannot write", path, e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.syncfs(dir) -> true | nil, message: everything written to dir's filesystem, data and
 * names, reaches the disk (one journal commit for a whole group of files). */
static int l_syncfs(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return csms_fail_errno(L, "cannot open", path, errno);
  if (syncfs(fd)) {
    int e = errno;
    close(fd);
    return csms_fail_errno(L, "cannot sync the filesystem of", path, e);
  }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.mkdir(path [, mode = 0700]) -> true, created | nil, message. An existing directory is
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
      return csms_fail_errno(L, "cannot create directory", path, e);
    }
    *s = c;
    if (!c) break;
  }
  free(p);
  struct stat st;
  if (stat(path, &st) || !S_ISDIR(st.st_mode)) return csms_fail_errno(L, "not a directory:", path, ENOTDIR);
  lua_pushboolean(L, 1);
  lua_pushboolean(L, created);
  return 2;
}

/* core.fs.list_dir(path) -> { name, ... } (without "." and "..") | nil, message */
static int l_list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return csms_fail_errno(L, "cannot list", path, errno);
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
  if (err) return csms_fail_errno(L, "cannot list", path, err);
  return 1;
}

static int too_large(lua_State *L, const char *path, lua_Integer max) {
  return csms_failf(L, "too_large", "%s is larger than %d bytes", path,
                    (int)(max > INT32_MAX ? INT32_MAX : max));
}

/* core.fs.read_file(path, max) -> data | nil, message, code
 * The whole of a regular file of at most max bytes. Never follows a symbolic link ("symlink"),
 * never blocks on a FIFO or reads a device ("not_regular"), reads no more than max + 1 bytes
 * ("too_large", without saying how large), "missing" when there is none. */
static int l_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max >= 0, 2, "must be >= 0");
  int nret, fd = open_regular(L, path, O_RDONLY, 0, &nret);
  if (fd < 0) return nret;
  struct stat st;
  if (fstat(fd, &st) == 0 && (lua_Integer)st.st_size > max) {
    close(fd);
    return too_large(L, path, max);
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t total = 0;
  for (;;) {
    char chunk[8192];
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return csms_fail_errno(L, "cannot read", path, e);
    }
    if (r == 0) break;
    total += (size_t)r;
    if (total > (size_t)max) { /* it grew since fstat */
      close(fd);
      return too_large(L, path, max);
    }
    luaL_addlstring(&b, chunk, (size_t)r);
  }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

/* core.fs.lstat(path [, follow]) -> { type, mode, uid, size, nlink } | nil, message, code
 * type: "file", "dir", "link", "fifo", "socket", "char", "block"; a link itself unless follow. */
static int l_lstat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if ((lua_toboolean(L, 2) ? stat(path, &st) : lstat(path, &st)))
    return csms_fail_errno(L, "cannot stat", path, errno);
  const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                   : S_ISLNK(st.st_mode) ? "link" : S_ISFIFO(st.st_mode) ? "fifo"
                   : S_ISSOCK(st.st_mode) ? "socket" : S_ISCHR(st.st_mode) ? "char" : "block";
  lua_createtable(L, 0, 5);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, st.st_mode & 07777);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_nlink);
  lua_setfield(L, -2, "nlink");
  return 1;
}

/* core.fs.euid() -> the effective user id of this process */
static int l_euid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

/* ---------------------------------------------------------------- append-only writers */

#define WRITER_MT "csms.writer"

typedef struct {
  int fd;
} writer_t;

static writer_t *open_writer(lua_State *L) {
  writer_t *w = luaL_checkudata(L, 1, WRITER_MT);
  if (w->fd < 0) luaL_error(L, "csms: the file is closed");
  return w;
}

/* core.fs.open_append(path [, mode = 0600]) -> writer | nil, message, code
 * Opens path to append to it, creating it with exactly that mode; never through a symbolic
 * link ("symlink"), never a FIFO, device or a file with other hard links ("not_regular"). */
static int l_open_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0600);
  writer_t *w = csms_new_object(L, sizeof *w, WRITER_MT);
  w->fd = -1;
  int nret, fd = open_regular(L, path, O_WRONLY | O_APPEND | O_CREAT, mode, &nret);
  if (fd < 0) return nret;
  if (fchmod(fd, mode)) {
    int e = errno;
    close(fd);
    return csms_fail_errno(L, "cannot set the mode of", path, e);
  }
  w->fd = fd;
  return 1; /* the writer, on top */
}

/* writer:write(data) -> true | nil, message, code ("nospace" on a full disk or a file-size limit) */
static int writer_write(lua_State *L) {
  writer_t *w = open_writer(L);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  if (write_all(w->fd, data, n)) return csms_fail_errno(L, "cannot write", "the journal", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* writer:sync() -> true | nil, message, code: what was written is on the disk. */
static int writer_sync(lua_State *L) {
  writer_t *w = open_writer(L);
  if (fsync(w->fd)) return csms_fail_errno(L, "cannot sync", "the journal", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* writer:close() -> true | nil, message, code (again is a no-op); also __gc and __close. */
static int writer_close(lua_State *L) {
  writer_t *w = luaL_checkudata(L, 1, WRITER_MT);
  int fd = w->fd;
  w->fd = -1;
  if (fd >= 0 && close(fd)) return csms_fail_errno(L, "cannot close", "the journal", errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int writer_tostring(lua_State *L) {
  writer_t *w = luaL_checkudata(L, 1, WRITER_MT);
  lua_pushstring(L, w->fd >= 0 ? "csms.writer (open)" : "csms.writer (closed)");
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

/* core.fs.lock(path [, shared]) -> lock | nil, message, code
 * An exclusive (or shared) flock(2) on path, taken without waiting; the file is created 0600
 * if missing, never through a symbolic link, and must be a regular file. code "busy": another
 * open file description holds it in a conflicting mode (another process, or another core.fs.lock
 * of the same file in this one). A shared lock of a file this process cannot create or write
 * (a read-only set) uses an existing one read-only. The kernel drops it when the process
 * ends, even by kill -9. */
static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int shared = lua_toboolean(L, 2);
  int *fd = csms_new_object(L, sizeof *fd, LOCK_MT);
  *fd = -1;
  int nret;
  *fd = open_regular(L, path, O_RDWR | O_CREAT, 0600, &nret);
  if (*fd < 0 && shared && nret == 3 && strcmp(lua_tostring(L, -1), "denied") == 0) {
    lua_pop(L, nret);
    *fd = open_regular(L, path, O_RDONLY, 0, &nret);
  }
  if (*fd < 0) return nret;
  int rc;
  while ((rc = flock(*fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB)) && errno == EINTR) {
  }
  if (rc) {
    int e = errno;
    close(*fd);
    *fd = -1;
    return csms_fail_errno(L, "cannot lock", path, e);
  }
  return 1; /* the lock, on top */
}

static int lock_tostring(lua_State *L) {
  int *fd = luaL_checkudata(L, 1, LOCK_MT);
  lua_pushstring(L, *fd >= 0 ? "csms.lock (held)" : "csms.lock (released)");
  return 1;
}

void csms_open_fs(lua_State *L) {
  static const luaL_Reg lock_methods[] = {{"unlock", lock_release}, {NULL, NULL}};
  static const luaL_Reg writer_methods[] = {
      {"write", writer_write}, {"sync", writer_sync}, {"close", writer_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"write_atomic", l_write_atomic}, {"write_new", l_write_new}, {"syncfs", l_syncfs},
      {"mkdir", l_mkdir},               {"list_dir", l_list_dir},   {"lstat", l_lstat},
      {"euid", l_euid},                 {"read_file", l_read_file}, {"open_append", l_open_append},
      {"lock", l_lock},                 {NULL, NULL}};
  csms_new_class(L, LOCK_MT, lock_methods, lock_release, lock_tostring);
  csms_new_class(L, WRITER_MT, writer_methods, writer_close, writer_tostring);
  luaL_newlib(L, funcs);
}
