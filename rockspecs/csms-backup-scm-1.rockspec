-- The csms-backup command (docs/cli.md) over the lua-csms library.
rockspec_format = "3.0"
package = "csms-backup"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-csms/lua-csms.git",
}
description = {
  summary = "csms-backup: back up, restore and verify a Huawei Cloud CSMS project from the shell",
  homepage = "https://github.com/lua-csms/lua-csms",
  license = "Apache-2.0",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-csms",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",
}
build = {
  type = "none",
  install = {
    lua = {
      ["csms.cli.commands"] = "lua/csms/cli/commands.lua",
      ["csms.cli.output"] = "lua/csms/cli/output.lua",
    },
    bin = { ["csms-backup"] = "bin/csms-backup" },
  },
}
