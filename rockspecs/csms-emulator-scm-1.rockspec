-- The local CSMS emulator (docs/emulator.md): nginx + lua-nginx-module run its modules in
-- nginx's LuaJIT, so they install into a Lua 5.1 (LuaJIT) tree only:
--   luarocks --lua-version=5.1 make rockspecs/csms-emulator-scm-1.rockspec
-- bin/csms-emulator finds them (and that tree's C modules) from where it is installed.
rockspec_format = "3.0"
package = "csms-emulator"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-csms/lua-csms.git",
}
description = {
  summary = "A local Huawei Cloud CSMS emulator on nginx + lua-nginx-module, for tests and demos",
  homepage = "https://github.com/lua-csms/lua-csms",
  license = "Apache-2.0",
}
dependencies = {
  "lua ~> 5.1",
  "lua-cjson >= 2.1",
}
build = {
  type = "none",
  install = {
    lua = {
      -- the JSON writer it shares with csms-backup (pure Lua; lua-csms installs it too)
      ["csms.json"] = "lua/csms/json.lua",
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
      ["csms.emulator.iam"] = "lua/csms/emulator/iam.lua",
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
    bin = { ["csms-emulator"] = "bin/csms-emulator" },
  },
}
