-- Packaging. The rocks build offline with Debian's packages (luarocks make --deps-mode=none) for
-- the interpreter running this spec, from a copy of the checkout in a temporary directory (the
-- checkout gets no build artefacts); each rock installs what it should and only that; CMake
-- installs for the Lua its headers are; the installed emulator works whatever LUA_PATH and
-- LUA_CPATH hold; the release files agree with each other.
local support = require "spec.support.emulator"
local interp = require "spec.support.interpreter"

local run, q, read, root = support.run, support.shell_quote, support.read_all, support.root
local V = interp.version -- the tree's Lua version: 5.1 for LuaJIT
local JIT = rawget(_G, "jit") ~= nil
-- luarocks for the running interpreter (for LuaJIT: OpenResty's headers, .ci/luarocks-luajit.lua)
local LUAROCKS = (JIT and "LUAROCKS_CONFIG=" .. q(root .. "/.ci/luarocks-luajit.lua") .. " " or "")
  .. "luarocks --lua-version=" .. V
local INCDIR = JIT and "/usr/include/luajit-2.1" or "/usr/include/lua" .. V
local ROCKS = { "lua-csms", "csms-backup", "csms-emulator" }

-- A rockspec's fields (a rockspec is Lua assignments; 5.1 has no load with an environment).
local function rockspec(name)
  local env = {}
  local chunk = assert(loadfile(root .. "/rockspecs/" .. name .. "-scm-1.rockspec"))
  if rawget(_G, "setfenv") then
    setfenv(chunk, env)
  else
    chunk = assert(load(read(root .. "/rockspecs/" .. name .. "-scm-1.rockspec"), "=rockspec", "t", env))
  end
  chunk()
  return env
end

local function dep_names(spec)
  local names = {}
  for _, d in ipairs(spec.dependencies or {}) do names[#names + 1] = d:match("^[%w_%-]+") end
  table.sort(names)
  return names
end

local function lines(cmd)
  local ok, out = run(cmd)
  assert(ok, out)
  local t = {}
  for l in out:gmatch("[^\n]+") do
    if not l:match("^exit=") then t[#t + 1] = l end
  end
  return t
end

local function find(dir, pattern) -- files below dir whose path matches pattern, sorted
  local t = {}
  for _, f in ipairs(lines("cd " .. q(dir) .. " && find . -type f | sort")) do
    f = f:sub(3)
    if f:match(pattern) then t[#t + 1] = f end
  end
  return t
end

-- A copy of what the rocks build from (tracked and new files alike, no build/ and no artefacts).
local function source_copy()
  local dir = support.tmpdir()
  assert(run(("cd %s && tar cf - --exclude='*.o' --exclude='*.so' CMakeLists.txt src lua bin docs types rockspecs "
    .. "README.md LICENSE CHANGELOG.md | tar xf - -C %s"):format(q(root), q(dir))))
  return dir
end

-- What the checkout holds besides committed files (untracked and ignored ones included).
local function checkout_extras()
  local _, out = run("cd " .. q(root) .. " && git status --porcelain --ignored --untracked-files=all")
  return out
end

-- Runs a Lua script with the modules of tree (and nothing of the checkout) on the paths.
local function in_tree(tree, lua, script, env)
  return run(("cd /tmp && %s LUA_PATH=%s LUA_CPATH=%s %s -e %s"):format(env or "",
    q(("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, V, tree, V)),
    q(("%s/lib/lua/%s/?.so;;"):format(tree, V)), lua, q(script)))
end

-- Where a module comes from (package.searchpath is 5.2+).
local WHERE = [[
  local function where(name, path)
    for t in path:gmatch("[^;]+") do
      local f = t:gsub("%?", (name:gsub("%.", "/")))
      local h = io.open(f)
      if h then h:close() return f end
    end
  end
]]

describe("the rockspecs", function()
  it("pass luarocks lint, and the scm-1 ones name no tag (a release's are made from them)", function()
    for _, name in ipairs(ROCKS) do
      local ok, out = run("luarocks lint " .. q(root .. "/rockspecs/" .. name .. "-scm-1.rockspec"))
      assert(ok, name .. ": " .. out)
      local spec = rockspec(name)
      assert.equal(name, spec.package)
      assert.equal("scm-1", spec.version)
      assert.is_nil(spec.source.tag)
      assert.matches("^git%+https://", spec.source.url)
      assert.equal("Apache-2.0", spec.description.license)
    end
  end)

  it("give the library only what it needs, the command argparse, the emulator a Lua 5.1 tree", function()
    assert.same({ "lua", "lua-cjson" }, dep_names(rockspec("lua-csms")))
    assert.same({ "argparse", "lua", "lua-cjson", "lua-csms" }, dep_names(rockspec("csms-backup")))
    local emulator = rockspec("csms-emulator")
    assert.same({ "lua", "lua-cjson" }, dep_names(emulator))
    assert.equal("lua ~> 5.1", emulator.dependencies[1])
    assert.same({ ["csms-backup"] = "bin/csms-backup" }, rockspec("csms-backup").build.install.bin)
    assert.same({ ["csms-emulator"] = "bin/csms-emulator" }, emulator.build.install.bin)
    -- every emulator module, and only those (with csms.json, its JSON writer), in the emulator's rock
    local listed = {}
    for mod, file in pairs(emulator.build.install.lua) do
      assert.equal("lua/" .. mod:gsub("%.", "/") .. ".lua", file)
      listed[#listed + 1] = file
    end
    table.sort(listed)
    local present = { "lua/csms/json.lua" }
    for _, f in ipairs(find(root .. "/lua/csms/emulator", "%.lua$")) do
      present[#present + 1] = "lua/csms/emulator/" .. f
    end
    table.sort(present)
    assert.same(present, listed)
  end)

  it("make a release that CHANGELOG.md, csms._VERSION and CMakeLists.txt agree on", function()
    local version = require("csms")._VERSION
    local changelog = assert(read(root .. "/CHANGELOG.md"))
    assert.equal(version, changelog:match("\n## (%d+%.%d+%.%d+)"), "the newest CHANGELOG heading")
    assert.matches("project%(lua%-csms VERSION " .. version:gsub("%.", "%%.") .. "[ )]",
      read(root .. "/CMakeLists.txt"))
    -- the procedure CHANGELOG.md gives: luarocks new_version from the scm-1 rockspec, --tag
    local dir = support.tmpdir()
    for _, name in ipairs(ROCKS) do
      local ok, out = run(("cd %s && luarocks new_version %s %s --tag=v%s --dir=%s"):format(q(dir),
        q(root .. "/rockspecs/" .. name .. "-scm-1.rockspec"), version, version, q(dir)))
      assert(ok, out)
      local made = ("%s/%s-%s-1.rockspec"):format(dir, name, version)
      ok, out = run("luarocks lint " .. q(made))
      assert(ok, out)
      assert.matches('tag = "v' .. version:gsub("%.", "%%.") .. '"', read(made))
    end
    assert.matches("luarocks new_version rockspecs/NAME%-scm%-1%.rockspec X%.Y%.Z %-%-tag=vX%.Y%.Z", changelog)
    run("rm -rf " .. q(dir))
  end)

  it("ship the Apache-2.0 LICENSE the rockspecs name", function()
    local license = assert(read(root .. "/LICENSE"))
    assert.matches("Apache License%s+Version 2%.0, January 2004", license)
    assert.matches("END OF TERMS AND CONDITIONS", license)
  end)
end)

describe("luarocks make, for Lua " .. V .. (JIT and " (LuaJIT)" or ""), function()
  local src, tree, before

  setup(function()
    before = checkout_extras()
    src, tree = source_copy(), support.tmpdir()
  end)
  teardown(function()
    run("rm -rf " .. q(src) .. " " .. q(tree))
  end)

  it("builds the library without a warning and installs the library only, with its docs and types", function()
    local ok, out = run(("cd %s && %s make --deps-mode=none --tree %s rockspecs/lua-csms-scm-1.rockspec")
      :format(q(src), LUAROCKS, q(tree)))
    assert(ok, out)
    assert.matches("Lua " .. V:gsub("%.", "%%.") .. " headers: " .. INCDIR:gsub("%p", "%%%0"), out)
    assert.not_matches("[Ww]arning:", out) -- e.g. an implicit declaration under 5.1's headers
    assert.same({ "csms/core.so" }, find(tree .. "/lib/lua/" .. V, "."))
    local modules = find(tree .. "/share/lua/" .. V, ".")
    local expected = {}
    for _, f in ipairs(find(root .. "/lua", "^csms/.+%.lua$")) do
      if not f:find("^csms/emulator/") and not f:find("^csms/cli/") then expected[#expected + 1] = f end
    end
    assert.same(expected, modules) -- every library module (csms/credentials/ too); no csms/emulator/, csms/cli/
    local docs = find(("%s/lib/luarocks/rocks-%s/lua-csms/scm-1/docs"):format(tree, V), ".")
    assert.same(find(root .. "/docs", "%.md$"), docs)
    local types = find(("%s/lib/luarocks/rocks-%s/lua-csms/scm-1/types"):format(tree, V), ".")
    assert.same(find(root .. "/types", "%.lua$"), types) -- the LuaLS definitions, for workspace.library
  end)

  it("installs modules that work from the tree", function()
    local script = (WHERE .. [[
      local csms = require "csms"
      assert(where("csms.core", package.cpath):find(TREE, 1, true) == 1, "core.so from the tree")
      assert(where("csms.batch", package.path):find(TREE, 1, true) == 1, "batch from the tree")
      require "csms.batch"
      local h = csms.sign({ method = "GET", url = "https://h/x?b=2&a=1",
        headers = { ["X-Sdk-Date"] = "20200608T023900Z" } }, { ak = "AccessKey", sk = "SecretKey" })
      print(h.Authorization)
    ]]):gsub("TREE", function() return ("%q"):format(tree) end)
    local ok, out = in_tree(tree, interp.command, script)
    assert(ok, out)
    assert.matches("SDK%-HMAC%-SHA256 Access=AccessKey, SignedHeaders=host;x%-sdk%-date, Signature=%x+", out)
  end)

  it("installs csms-backup, which runs from the tree", function()
    local ok, out = run(("cd %s && %s make --deps-mode=none --tree %s rockspecs/csms-backup-scm-1.rockspec")
      :format(q(src), LUAROCKS, q(tree)))
    assert(ok, out)
    -- bin/ holds LuaRocks' wrapper, which starts this interpreter on the rock's script
    ok, out = run(("cd /tmp && LUA_PATH=%s LUA_CPATH=%s %s/bin/csms-backup --version"):format(
      q(("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, V, tree, V)),
      q(("%s/lib/lua/%s/?.so;;"):format(tree, V)), q(tree)))
    assert(ok, out)
    assert.matches("^csms%-backup %d+%.%d+%.%d+", out)
    assert.is_nil(io.open(tree .. "/bin/csms-emulator"), "no emulator with the command")
    -- its own modules in the tree, and an error printed through them (csms.cli.output, csms.json)
    assert.same({ "csms/cli/commands.lua", "csms/cli/output.lua" }, find(tree .. "/share/lua/" .. V, "^csms/cli/"))
    ok, out = run(("cd /tmp && LUA_PATH=%s LUA_CPATH=%s %s/bin/csms-backup verify /nonexistent/set --json 2>/dev/null")
      :format(q(("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, V, tree, V)),
        q(("%s/lib/lua/%s/?.so;;"):format(tree, V)), q(tree)))
    assert.is_false(ok)
    assert.matches('^{"error":"csms verify: io: no manifest.json in /nonexistent/set .-","error_kind":"io","exit":2}\n',
      out)
  end)

  it("packs a source rock of the repository's HEAD (luarocks pack) that builds and installs", function()
    local dir = support.tmpdir()
    -- the rockspec as it is, but fetching from this repository instead of GitHub
    local text = read(root .. "/rockspecs/lua-csms-scm-1.rockspec")
    local local_url = text:gsub('url = "git%+https://[^"]+"', function() return 'url = "git+file://' .. root .. '"' end)
    local f = assert(io.open(dir .. "/lua-csms-scm-1.rockspec", "w"))
    f:write(local_url)
    f:close()
    local ok, out = run(("cd %s && luarocks pack lua-csms-scm-1.rockspec && %s build --deps-mode=none --tree %s/t "
      .. "lua-csms-scm-1.src.rock"):format(q(dir), LUAROCKS, q(dir)))
    assert(ok, out)
    assert.same({ "csms/core.so" }, find(dir .. "/t/lib/lua/" .. V, "."))
    assert.is_true(#find(dir .. "/t/share/lua/" .. V, "^csms/init%.lua$") == 1)
    run("rm -rf " .. q(dir))
  end)

  it("leaves nothing in the checkout", function()
    assert.equal(before, checkout_extras())
  end)
end)

describe("CMake, with Lua " .. V .. "'s headers", function()
  it("builds without a warning and installs into lib/lua/" .. V .. " and share/lua/" .. V, function()
    local dir = support.tmpdir()
    local ok, out = run(("cmake -S %s -B %s/b -DLUA_INCDIR=%s -DCMAKE_INSTALL_PREFIX=%s/p && "
      .. "cmake --build %s/b && cmake --install %s/b"):format(q(root), q(dir), INCDIR, q(dir), q(dir), q(dir)))
    assert(ok, out)
    assert.not_matches("[Ww]arning:", out)
    local installed = find(dir .. "/p", ".")
    assert.same({ "lib/lua/" .. V .. "/csms/core.so" }, find(dir .. "/p", "^lib/"))
    for _, f in ipairs(installed) do
      if not f:match("^lib/") then
        assert.matches("^share/lua/" .. V:gsub("%.", "%%.") .. "/csms/[%w_]+%.lua$", (f:gsub("/credentials/", "/")))
      end
    end
    ok, out = in_tree(dir .. "/p", interp.command, "print(require('csms.core') ~= nil)")
    assert(ok, out)
    run("rm -rf " .. q(dir))
  end)

  it("refuses a LUA_VERSION its headers contradict", function()
    local dir = support.tmpdir()
    local other = V == "5.4" and "5.3" or "5.4"
    local ok, out = run(("cmake -S %s -B %s -DLUA_INCDIR=%s -DLUA_VERSION=%s"):format(q(root), q(dir), INCDIR, other))
    assert.is_false(ok)
    assert.matches("LUA_VERSION=" .. other .. " but .* is Lua " .. V, out)
    run("rm -rf " .. q(dir))
  end)
end)

describe("the csms-emulator rock", function()
  local src, jit_tree, lib_tree, pidfile

  setup(function()
    src, jit_tree, lib_tree = source_copy(), support.tmpdir(), support.tmpdir()
    pidfile = support.tmpname()
  end)
  teardown(function()
    local pid = read(pidfile)
    if pid and pid:match("%d") then run("kill " .. pid:match("%d+")) end
    run("rm -rf " .. q(src) .. " " .. q(jit_tree) .. " " .. q(lib_tree) .. " " .. q(pidfile))
  end)

  it("will not install into a Lua 5.4 tree", function()
    local tree = support.tmpdir()
    local ok, out = run(("cd %s && luarocks --lua-version=5.4 make --tree %s rockspecs/csms-emulator-scm-1.rockspec")
      :format(q(src), q(tree)))
    assert.is_false(ok)
    assert.matches("lua ~> 5%.1", out)
    assert.same({}, find(tree, "emulator"))
    run("rm -rf " .. q(tree))
  end)

  it("installed into a LuaJIT tree, serves whatever LUA_PATH and LUA_CPATH hold", function()
    local ok, out = run(("cd %s && LUAROCKS_CONFIG=%s luarocks --lua-version=5.1 make --deps-mode=none --tree %s "
      .. "rockspecs/csms-emulator-scm-1.rockspec"):format(q(src), q(root .. "/.ci/luarocks-luajit.lua"), q(jit_tree)))
    assert(ok, out)
    assert.same({ "csms-emulator" }, find(jit_tree .. "/bin", "."))
    -- the library for this interpreter, in its own tree: the paths a user of it has set
    ok, out = run(("cd %s && %s make --deps-mode=none --tree %s rockspecs/lua-csms-scm-1.rockspec")
      :format(q(src), LUAROCKS, q(lib_tree)))
    assert(ok, out)
    -- A Lua 5.4 user's paths, 5.4's C modules first (their cjson.so cannot load in nginx's
    -- LuaJIT) and no emulator on them; started from elsewhere than the checkout.
    local port = support.free_port()
    ok, out = run(("cd /tmp && LUA_PATH=%s LUA_CPATH=%s %s/bin/csms-emulator --port %d --background --pid-file %s")
      :format(q("/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;;"),
        q("/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;;"), q(jit_tree), port, q(pidfile)))
    assert(ok, out)
    assert.matches("endpoint=http://127%.0%.0%.1:" .. port, out)
    -- a signed request from the installed library: the emulator checks the signature, answers in JSON
    ok, out = in_tree(lib_tree, interp.command, ([[
      local csms = require "csms"
      local c = assert(csms.new { endpoint = "http://127.0.0.1:%d", project_id = "7a3f0c1e9b2d4c6a8e0f1a2b3c4d5e6f",
        ak = "EMULATORAK0000000001", sk = "emulator-sk-0123456789abcdefghijklmnopqrstuv", retries = 0 })
      local blob, err = c:backup("no-such-secret")
      print(blob, err.status, err.error_code)
    ]]):format(port))
    assert(ok, out)
    assert.matches("nil\t404\tCSMS%.0005", out)
  end)
end)

describe(".ci/setup", function()
  -- The packages .ci/setup MODE would install on a machine with none of them, and whether it
  -- would run npm: run from a copy of .ci/ (no node_modules there) with dpkg-query saying
  -- "not installed" and apt-get, npm and id stubbed to log.
  local function would_install(mode)
    local dir = support.tmpdir()
    local stubs = {
      ["dpkg-query"] = "exit 1",
      ["apt-get"] = 'echo "apt-get $*" >>"$STUB_LOG"',
      npm = 'echo "npm $*" >>"$STUB_LOG"',
      id = "echo 0",
    }
    assert(run(("mkdir -p %s/.ci %s/stubs && cp %s/.ci/setup %s/.ci/"):format(q(dir), q(dir), q(root), q(dir))))
    for name, body in pairs(stubs) do
      local f = assert(io.open(dir .. "/stubs/" .. name, "w"))
      f:write("#!/bin/sh\n", body, "\n")
      f:close()
    end
    local ok, out = run(("chmod +x %s/stubs/* && STUB_LOG=%s/log PATH=%s/stubs:$PATH bash %s/.ci/setup %s")
      :format(q(dir), q(dir), q(dir), q(dir), mode))
    assert(ok, out)
    local log = read(dir .. "/log") or ""
    run("rm -rf " .. q(dir))
    local pkgs = {}
    for p in (log:match("apt%-get [^\n]*install [^\n]*") or ""):gmatch("%S+") do pkgs[p] = true end
    return pkgs, log:match("npm install") ~= nil
  end

  it("demo installs the Lua 5.4 build and the emulator, not clang, valgrind, node or other Luas", function()
    local pkgs, npm = would_install("demo")
    for _, p in ipairs { "cmake", "lua5.4", "liblua5.4-dev", "libcurl4-openssl-dev", "libssl-dev", "lua-cjson",
      "lua-socket", "nginx", "libnginx-mod-http-lua", "curl" } do
      assert.is_true(pkgs[p], p)
    end
    for _, p in ipairs { "clang", "libclang-rt-14-dev", "valgrind", "nodejs", "npm", "lua5.1", "lua5.2", "lua5.3",
      "luajit2", "lua-busted", "lua-check", "luarocks" } do
      assert.is_nil(pkgs[p], p)
    end
    assert.is_false(npm, "npm install")
    local demo = read(root .. "/.ci/demo")
    assert.matches("\nbash %.ci/setup demo\n", demo)
    assert.matches("\nCSMS_ABIS=lua54 bash %.ci/build\n", demo)
  end)

  it("test (the default) installs every interpreter, the test tools and the Node.js signer", function()
    local pkgs, npm = would_install("")
    for _, p in ipairs { "lua5.1", "liblua5.1-0-dev", "lua5.2", "liblua5.2-dev", "lua5.3", "liblua5.3-dev",
      "lua5.4", "luajit2", "libluajit2-5.1-dev", "lua-busted", "lua-check", "luarocks", "lua-argparse", "lua-sec",
      "clang", "valgrind", "nginx", "libnginx-mod-http-lua" } do
      assert.is_true(pkgs[p], p)
    end
    assert.is_true(npm, "npm install")
  end)
end)
