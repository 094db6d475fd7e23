-- The library: the C module csms.core and the Lua modules, for Lua 5.1-5.4 and LuaJIT.
-- The command line (csms-backup) and the emulator (csms-emulator) are rocks of their own.
-- A release's rockspec comes from this one: see "Cutting a release" in CHANGELOG.md.
rockspec_format = "3.0"
package = "lua-csms"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-csms/lua-csms.git",
}
description = {
  summary = "Back up and restore Huawei Cloud CSMS secrets from Lua and OpenResty",
  detailed = [[
    A C core (libcurl, OpenSSL) that signs requests with Huawei Cloud's SDK-HMAC-SHA256 scheme and
    calls CSMS DownloadSecretBlob / UploadSecretBlob, a Lua client with retries and clear errors,
    csms.batch for whole projects, and a transport over nginx cosockets for OpenResty.
  ]],
  homepage = "https://github.com/lua-csms/lua-csms",
  license = "Apache-2.0",
  labels = { "huaweicloud", "csms", "secrets", "backup", "openresty" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1",
}
external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  -- Debian keeps curl.h under /usr/include/<multiarch>/, which the compiler searches but
  -- LuaRocks does not: probe the library only.
  CURL = { library = "curl" },
}
build = {
  -- CMakeLists.txt builds csms/core.so for the tree's Lua headers and installs only the library
  -- (the builtin type would also copy every file under lua/, the emulator's included).
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CSMS_CMOD_DIR = "$(LIBDIR)",
    CSMS_LMOD_DIR = "$(LUADIR)",
  },
  copy_directories = { "docs", "types" }, -- types/: LuaLS definitions (docs/reference.md)
}
test = {
  type = "command",
  command = "bash .ci/test",
}
