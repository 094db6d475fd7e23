-- examples/ as a new user runs them: from a fresh copy of the checkout (the files git would
-- clone: tracked and not ignored, so no logs/ nor build/ a test run left) inside a 0700
-- directory, like a clone under /root, with build/*/csms/core.so as `bash .ci/build` makes it.
-- Each command line is read from where the example documents it, and run as written.
local emulator = require "spec.support.emulator"
local interpreter = require "spec.support.interpreter"

local ROOT = emulator.root
local q = emulator.shell_quote
local run = emulator.run -- ok, output

local function read(path) return assert(emulator.read_all(path), "cannot read " .. path) end

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local function sleep(s) os.execute("sleep " .. s) end

-- <private 0700 dir>/lua-csms: what a clone holds, plus the built C modules.
local function fresh_copy()
  local private = emulator.tmpdir()
  local dir = private .. "/lua-csms"
  assert(run("chmod 0700 " .. q(private) .. " && mkdir " .. q(dir)))
  assert(run(("cd %s && git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -xf - -C %s")
    :format(q(ROOT), q(dir))))
  assert(emulator.read_all(dir .. "/README.md"), "the copy is empty: is " .. ROOT .. " a git checkout?")
  for _, abi in ipairs { interpreter.build, "luajit" } do -- this spec's, and nginx's
    assert(run(("mkdir -p %s/build/%s/csms && cp %s/build/%s/csms/core.so %s/build/%s/csms/")
      :format(q(dir), abi, q(ROOT), abi, q(dir), abi)))
  end
  return private, dir
end

-- `env NAME=value ...` for a shell command line.
local function env_prefix(env)
  local parts = { "env" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  table.sort(parts, function(a, b) return a == "env" or (b ~= "env" and a < b) end)
  return table.concat(parts, " ")
end

-- The fenced block of a markdown file that contains `needle`, as lines.
local function doc_block(file, needle)
  local text = read(ROOT .. "/" .. file)
  for body in text:gmatch("```%w*\n(.-)```") do
    if body:find(needle, 1, true) then
      local lines = {}
      for line in body:gmatch("([^\n]*)\n") do lines[#lines + 1] = line:match("^%s*(.-)%s*$") end
      return lines
    end
  end
  error(file .. " has no block with " .. needle)
end

describe("examples/", function()
  local e, private, copy
  setup(function()
    e = emulator.start {}
    private, copy = fresh_copy()
  end)
  teardown(function()
    if e then e:stop() end
    if private then run("rm -rf " .. q(private)) end
  end)
  before_each(function() e:reset() end)

  it("a fresh copy lacks what only test runs make (logs/), and others cannot enter it", function()
    assert.is_nil(emulator.read_all(copy .. "/examples/nginx/logs/error.log"))
    assert.is_false((run("test -d " .. q(copy .. "/examples/nginx/logs"))))
    assert.are.equal("700", select(2, run("stat -c %a " .. q(private))):match("^(%d+)"))
  end)

  describe("examples/nginx, started as docs/openresty.md says", function()
    -- docs/openresty.md: `CSMS_REGION=cn-north-4 examples/nginx/run  # or CSMS_ENDPOINT=...`,
    -- `curl 'http://127.0.0.1:8081/backup?name=db-password'`, `examples/nginx/run -s stop`.
    local lines = doc_block("docs/openresty.md", "examples/nginx/run")
    local start, stop, url
    for _, line in ipairs(lines) do
      local cmd = line:gsub("%s*#.*$", ""):gsub("^[%u_]+=%S+%s+", "")
      if cmd:match("^examples/nginx/run") then
        if cmd:find("-s stop", 1, true) then stop = cmd else start = cmd end
        if not cmd:find("-s stop", 1, true) then
          assert(line:find("CSMS_ENDPOINT=", 1, true), "the start line names CSMS_ENDPOINT as the alternative")
        end
      end
      url = url or line:match("^curl '(http://127%.0%.0%.1:8081/backup%?name=[%w_-]+)'$")
    end
    assert(start and stop and url, "docs/openresty.md: start, curl and stop lines")

    local port, sets, master
    local function example_env(extra)
      local env = {
        HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk, HUAWEICLOUD_SDK_PROJECT_ID = e.project_id,
      }
      for k, v in pairs(extra) do env[k] = v end
      return env_prefix(env)
    end
    -- as_user: run the command as that user, with the PATH Debian gives users (no /usr/sbin).
    local function start_example(extra, as_user)
      -- the one change to the copy: a free port instead of 8081, which another run may hold
      local conf = copy .. "/examples/nginx/nginx.conf"
      local text, n = read(conf):gsub("listen 127%.0%.0%.1:%d+;", "listen 127.0.0.1:" .. port .. ";")
      assert.are.equal(1, n)
      write(conf, text)
      local user = as_user and "runuser -u " .. as_user .. " -- " or ""
      if as_user then extra.PATH = "/usr/local/bin:/usr/bin:/bin" end
      local ok, out = run(("cd %s && %s%s %s"):format(q(copy), user, example_env(extra), start))
      assert(ok, out)
      master = tonumber(read(copy .. "/examples/nginx/logs/nginx.pid"):match("%d+"))
    end
    -- body, status
    local function get(u)
      local ok, out = run(("curl -sS -m 60 -w '\n%%{http_code}' %s"):format(q(u:gsub(":8081/", ":" .. port .. "/"))))
      assert(ok, out)
      local body, status = out:match("^(.-)\n(%d+)exit=0\n$")
      return body, tonumber(status)
    end
    before_each(function()
      e:create_secret("db-password", { "hunter2" })
      master = nil
      port = emulator.free_port()
      sets = emulator.tmpdir()
      assert(run("chmod 0777 " .. q(sets)))
    end)
    after_each(function()
      if not master then return run("rm -rf " .. q(sets)) end -- it did not start
      local ok, out = run(("cd %s && %s"):format(q(copy), stop))
      for _ = 1, 50 do
        if not master or not run("kill -0 " .. master) then break end
        sleep(0.1)
      end
      run("rm -rf " .. q(sets))
      assert(ok, out)
      assert.is_false((run("kill -0 " .. master)), "the documented stop command stops nginx")
    end)

    it("serves /backup from workers that cannot read the checkout, and runs the project timer", function()
      start_example { CSMS_ENDPOINT = e.endpoint, BACKUP_MINUTES = "0.02", BACKUP_ROOT = sets }
      local out, status = get(url)
      assert.matches("^backed up db%-password: %d+ bytes %(request %x+%)\n$", out)
      assert.are.equal(200, status)
      -- started as root, the worker is nobody, who cannot enter the 0700 directory
      local user = select(2, run("ps -o user= --ppid " .. master)):match("%S+")
      if select(2, run("id -u")):match("^0") then
        assert.are.equal("nobody", user)
        assert.is_false((run("runuser -u nobody -- test -r " .. q(copy .. "/lua/csms/init.lua"))))
      end
      local written
      for _ = 1, 100 do
        written = run("ls " .. q(sets) .. "/*/manifest.json")
        if written then break end
        sleep(0.1)
      end
      assert.is_true(written, "the timer wrote a backup set")
      assert.is_true(e:stats().requests.list > 0)
      local log = read(copy .. "/examples/nginx/logs/error.log")
      assert.is_nil(log:find("[error]", 1, true), log)
    end)

    it("loads, in the master, every module of the library (workers may not read the checkout)", function()
      -- what init_by_lua's `require "csms_app"` leaves in package.loaded, against lua/csms/ but
      -- the emulator's and csms-backup's modules (with csms.json, which only they use) and
      -- csms.haproxy (a transport over HAProxy's httpclient)
      local p = io.popen(("cd %s && find lua/csms -name '*.lua' ! -path 'lua/csms/emulator/*' "
        .. "! -path 'lua/csms/cli/*' ! -path lua/csms/json.lua ! -path lua/csms/haproxy.lua | sort")
        :format(q(ROOT)))
      local want = {}
      for f in p:lines() do
        want[#want + 1] = f:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      end
      p:close()
      local ok, out = run(("cd %s && MODULES=%s LUA_PATH='lua/?.lua;lua/?/init.lua;examples/nginx/?.lua;;' "
        .. "LUA_CPATH='build/luajit/?.so;;' luajit -e %s"):format(q(copy), q(table.concat(want, " ")), q([[
        require "csms_app"
        for m in os.getenv("MODULES"):gmatch("%S+") do
          if not package.loaded[m] then print("not loaded: " .. m) end
        end]])))
      assert(ok and #want > 5, out)
      assert.are.equal("exit=0\n", out)
    end)

    it("answers a configuration problem with its message (here: no endpoint, no region)", function()
      start_example {}
      local out, status = get(url)
      assert.are.equal(500, status)
      assert.matches("^csms.*no endpoint: pass region", out)
    end)

    it("starts for a user who is not root, whose PATH lacks /usr/sbin, from that user's private copy", function()
      local user = select(2, run("id -un")):match("%S+")
      if user == "root" then -- the same copy, now nobody's: 0700 and theirs
        user = "nobody"
        assert(run(("chown -R nobody %s && chmod 0700 %s"):format(q(private), q(private))))
        finally(function() run(("chown -R 0 %s"):format(q(private))) end)
      end
      start_example({ CSMS_ENDPOINT = e.endpoint }, user)
      local out, status = get(url)
      assert.are.equal(200, status, out)
      assert.matches("^backed up db%-password:", out)
    end)

    it("resolves the endpoint's name with the resolver examples/nginx/run wrote from /etc/resolv.conf", function()
      -- a name that never resolves (RFC 2606): the resolver answers, it is not missing
      start_example { CSMS_ENDPOINT = "http://csms-emulator.invalid:" .. e.port }
      local conf = read(copy .. "/examples/nginx/logs/resolver.conf")
      for ns in ("\n" .. read("/etc/resolv.conf")):gmatch("\nnameserver%s+(%S+)") do
        assert.truthy(conf:find(ns, 1, true), conf)
      end
      local out = get(url)
      assert.is_nil(out:find("no resolver defined", 1, true), out)
      assert.matches("csms%-emulator%.invalid could not be resolved", out)
    end)
  end)

  it("examples/demo.lua, run as its header says, ends with every secret restored identical", function()
    local line
    for l in io.lines(ROOT .. "/examples/demo.lua") do
      line = line or l:match("^%-%-%s+(LUA_PATH=.* examples/demo%.lua DIR)$")
    end
    assert(line, "examples/demo.lua: the command line in its header")
    -- the header's "another Lua": its build directory and its interpreter
    line = line:gsub("build/lua54", "build/" .. interpreter.build):gsub("lua5%.4 ", interpreter.command .. " ")
    local dir = emulator.tmpdir()
    finally(function() run("rm -rf " .. q(dir)) end)
    local ok, out = run(("cd %s && %s %s"):format(q(copy), env_prefix {
      CSMS_ENDPOINT = e.endpoint, HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk,
      HUAWEICLOUD_SDK_PROJECT_ID = e.project_id,
    }, (line:gsub(" DIR$", " " .. q(dir .. "/set")))))
    assert(ok, out)
    -- the README's promise about the demo's last line
    local promised = read(ROOT .. "/README.md"):match("ends with `(done: [^`]+)`")
    assert(promised, "README.md: the demo's last line")
    promised = promised:gsub("%s+", " ")
    assert.matches("\n" .. promised:gsub("%p", "%%%0") .. "\nexit=0", out)
    assert.are.equal(3, #e:dump()) -- the demo's three, restored
  end)
end)
