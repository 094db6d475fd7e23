rockspec_format = "3.0"
package = "lua-csms"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/lua-csms/lua-csms.git",
  tag = "v0.1.0",
}
description = {
  summary = "Back up and restore Huawei Cloud CSMS secrets from Lua and OpenResty",
  detailed = [[
    A C core (libcurl, OpenSSL) that signs requests with Huawei Cloud's SDK-HMAC-SHA256 scheme and
    calls CSMS DownloadSecretBlob / UploadSecretBlob, a Lua client with retries and clear errors,
    and a local CSMS emulator (nginx + lua-nginx-module) for tests and demos.
  ]],
  license = "Apache-2.0",
  labels = { "huaweicloud", "csms", "secrets", "backup", "openresty" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson >= 2.1",
  "argparse >= 0.7", -- csms-backup's command line only
}
external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  -- Debian keeps curl.h under /usr/include/<multiarch>/, which the compiler searches but
  -- LuaRocks does not: probe the library only.
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["csms.core"] = {
      sources = { "src/core.c", "src/sign.c", "src/blob.c", "src/http.c", "src/buf.c", "src/fs.c" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(CURL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(CURL_LIBDIR)" },
      libraries = { "crypto", "curl" },
    },
    ["csms"] = "lua/csms/init.lua",
    ["csms.config"] = "lua/csms/config.lua",
    ["csms.errors"] = "lua/csms/errors.lua",
    ["csms.metadata"] = "lua/csms/metadata.lua",
    ["csms.transport"] = "lua/csms/transport.lua",
    ["csms.batch"] = "lua/csms/batch.lua",
    ["csms.cosocket"] = "lua/csms/cosocket.lua",
    ["csms.emulator.admin"] = "lua/csms/emulator/admin.lua",
    ["csms.emulator.auth"] = "lua/csms/emulator/auth.lua",
    ["csms.emulator.blob"] = "lua/csms/emulator/blob.lua",
    ["csms.emulator.config"] = "lua/csms/emulator/config.lua",
    ["csms.emulator.crypto"] = "lua/csms/emulator/crypto.lua",
    ["csms.emulator.defaults"] = "lua/csms/emulator/defaults.lua",
    ["csms.emulator.faults"] = "lua/csms/emulator/faults.lua",
    ["csms.emulator.files"] = "lua/csms/emulator/files.lua",
    ["csms.emulator.gateway"] = "lua/csms/emulator/gateway.lua",
    ["csms.emulator.http"] = "lua/csms/emulator/http.lua",
    ["csms.emulator.json"] = "lua/csms/emulator/json.lua",
    ["csms.emulator.limits"] = "lua/csms/emulator/limits.lua",
    ["csms.emulator.metadata"] = "lua/csms/emulator/metadata.lua",
    ["csms.emulator.operations"] = "lua/csms/emulator/operations.lua",
    ["csms.emulator.server"] = "lua/csms/emulator/server.lua",
    ["csms.emulator.signature"] = "lua/csms/emulator/signature.lua",
    ["csms.emulator.startup"] = "lua/csms/emulator/startup.lua",
    ["csms.emulator.state"] = "lua/csms/emulator/state.lua",
    ["csms.emulator.stats"] = "lua/csms/emulator/stats.lua",
    ["csms.emulator.store"] = "lua/csms/emulator/store.lua",
    ["csms.emulator.throttle"] = "lua/csms/emulator/throttle.lua",
  },
  install = {
    bin = { ["csms-emulator"] = "bin/csms-emulator", ["csms-backup"] = "bin/csms-backup" },
  },
}
test = {
  type = "command",
  command = "bash .ci/test",
}
