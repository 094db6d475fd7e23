/* The binding files' openers, which core.c wires into csms.core: each pushes its sub-table
 * (and registers the metatable of its class, if it has one). */
#ifndef CSMS_CORE_H
#define CSMS_CORE_H

#include "compat.h" /* every binding file includes this header: the shims reach them all */

void csms_open_signer(lua_State *L); /* lua_signer.c: core.signer, the signer class */
void csms_open_http(lua_State *L);   /* lua_http.c:   core.http, the http class */
void csms_open_fs(lua_State *L);     /* lua_fs.c:     core.fs, the lock class */
void csms_open_blob(lua_State *L);   /* lua_blob.c:   core.blob */
void csms_open_crypto(lua_State *L); /* lua_crypto.c: core.crypto */
void csms_open_time(lua_State *L);   /* lua_time.c:   core.time */
void csms_open_cli(lua_State *L);    /* lua_cli.c:    core.cli (the command's own) */

#endif
