/* HTTP transport on libcurl's multi interface: one connection pool per client, any number of
 * requests in flight, completions collected without threads. */
#ifndef CSMS_HTTP_H
#define CSMS_HTTP_H

#include <lua.h>

int csms_open_http(lua_State *L); /* pushes the constructor function */

#endif
