/* File helpers the batch layer needs and plain Lua lacks (modes, fsync, atomic rename, reads
 * and appends that never follow a symbolic link or block on a FIFO, a
 * directory listing, locks). */
#ifndef CSMS_FS_H
#define CSMS_FS_H

#include <lua.h>

void csms_open_fs(lua_State *L); /* adds the functions to the table on top of the stack */

#endif
