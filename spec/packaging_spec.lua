-- The rock builds offline from the checkout with Debian's packages (luarocks make
-- --deps-mode=none), for the interpreter running this spec, and the installed modules work.
-- It builds in a copy of the checkout: luarocks make leaves its objects (src/*.o, csms/core.so)
-- where it builds.
local shell = require "spec.support.shell"
local sh, q = shell.run, shell.shell_quote

describe("the rockspec", function()
  it("builds with luarocks make --deps-mode=none and installs working modules", function()
    local tree, copy = shell.tmpdir(), shell.tmpdir()
    finally(function() os.execute("rm -rf " .. q(tree) .. " " .. q(copy)) end)
    local jit_build = jit ~= nil
    local ver = jit_build and "5.1" or "5.4"
    local env = jit_build and "LUAROCKS_CONFIG=.ci/luarocks-luajit.lua " or ""
    local ok, out = sh(("tar -C %s --exclude=./.git --exclude=./build --exclude=node_modules "
      .. "--exclude='*.o' --exclude='*.so' -cf - . "
      .. "| tar -C %s -xf -"):format(q(shell.root), q(copy)))
    assert(ok, out)
    ok, out = sh(("cd %s && %sluarocks --lua-version=%s make --deps-mode=none --tree %s "
      .. "lua-csms-0.1.0-1.rockspec"):format(q(copy), env, ver, q(tree)))
    assert(ok, out)
    local lua = jit_build and "luajit" or "lua5.4"
    local probe = [[
      local csms = require "csms"
      assert(package.searchpath("csms.core", package.cpath):find(TREE, 1, true), "core.so from the tree")
      assert(package.searchpath("csms.batch", package.path):find(TREE, 1, true), "batch from the tree")
      local h = csms.sign({ method = "GET", url = "https://h/x?b=2&a=1",
        headers = { ["X-Sdk-Date"] = "20200608T023900Z" } }, { ak = "AccessKey", sk = "SecretKey" })
      print(h.Authorization)
    ]]
    ok, out = sh(("cd /tmp && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' "
      .. "LUA_CPATH='%s/lib/lua/%s/?.so;;' %s -e 'TREE=%q' -e %q")
      :format(tree, ver, tree, ver, tree, ver, lua, tree, probe))
    assert(ok, out)
    assert.matches("SDK%-HMAC%-SHA256 Access=AccessKey, SignedHeaders=host;x%-sdk%-date, Signature=%x+", out)
    assert.truthy(io.open(tree .. "/bin/csms-emulator"), "the emulator launcher is installed")
    -- a tree outside LuaRocks' configured ones is on the paths the way `luarocks path` puts it
    ok, out = sh(("cd /tmp && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' "
      .. "LUA_CPATH='%s/lib/lua/%s/?.so;;' %s/bin/csms-backup --version"):format(tree, ver, tree, ver, tree, ver, tree))
    assert(ok, out)
    assert.matches("^csms%-backup %d+%.%d+%.%d+", out)
  end)
end)
