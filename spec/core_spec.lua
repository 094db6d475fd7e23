-- csms.core, the C half: one shape of runtime failure from every part (nil, message[, code],
-- code a short string), and misuse that raises.
local core = require "csms.core"

local unpack = table.unpack or unpack -- luacheck: ignore 143
local function pack(...) return { n = select("#", ...), ... } end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(core.fs.mkdir(p))
  return p
end

describe("csms.core fails at run time with nil, message[, code]", function()
  local dir, held, signer
  setup(function()
    dir = tmpdir()
    assert(core.fs.write_new(dir .. "/file", "x"))
    held = assert(core.fs.lock(dir .. "/held"))
    signer = assert(core.signer.new("AK", "SK"))
  end)
  teardown(function()
    held:unlock()
    core.signer.wipe(signer)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  -- { what, call, message pattern, code (nil: none) }
  local cases = {
    { "signer.new with an empty ak", function() return core.signer.new("", "SK") end,
      "ak is empty" },
    { "signer.sign with an ftp URL", function()
      return core.signer.sign(signer, "GET", "ftp://h/x", {}, "", 0) end, "." },
    { "signer.sign_request without a table", function()
      return core.signer.sign_request(signer, "GET /") end,
      "^request must be a table, got string$", "misuse" },
    { "signer.sign_request with a numeric method", function()
      return core.signer.sign_request(signer, { method = 1, url = "https://h/" }) end,
      "^request.method must be a string, got number$", "misuse" },
    { "signer.sign_request with a bad URL", function()
      return core.signer.sign_request(signer, { method = "GET", url = "/relative" }) end, "." },
    { "blob.header of a non-blob", function() return core.blob.header("x") end, "." },
    { "fs.write_new over a file", function() return core.fs.write_new(dir .. "/file", "y") end,
      "^cannot create .*/file: File exists$", "io" },
    { "fs.write_atomic into a missing directory", function()
      return core.fs.write_atomic(dir .. "/no/such", "y") end, "^cannot create a temporary file",
      "missing" },
    { "fs.mkdir over a file", function() return core.fs.mkdir(dir .. "/file/sub") end,
      "^cannot create directory", "io" },
    { "fs.list_dir of a missing directory", function() return core.fs.list_dir(dir .. "/none") end,
      "^cannot list", "missing" },
    { "fs.syncfs of a file", function() return core.fs.syncfs(dir .. "/file") end,
      "^cannot open", "io" },
    { "fs.lock held by another", function() return core.fs.lock(dir .. "/held") end,
      "^cannot lock .*/held: ", "busy" },
    { "fs.lock in a missing directory", function() return core.fs.lock(dir .. "/no/lock") end,
      "^cannot open .*/no/lock: No such file or directory$", "missing" },
    { "fs.read_file of a symbolic link", function()
      os.execute("ln -s file '" .. dir .. "/link'")
      return core.fs.read_file(dir .. "/link", 10) end, "is a symbolic link", "symlink" },
    { "fs.read_file over its cap", function() return core.fs.read_file(dir .. "/file", 0) end,
      "is larger than 0 bytes$", "too_large" },
    { "fs.lstat of a missing file", function() return core.fs.lstat(dir .. "/none") end,
      "^cannot stat", "missing" },
    { "fs.open_append of a FIFO", function()
      os.execute("mkfifo '" .. dir .. "/fifo'")
      return core.fs.open_append(dir .. "/fifo") end, "is not a regular file", "not_regular" },
    { "http:submit with CR in the URL", function()
      local http = core.http.new {}
      local r = pack(http:submit("GET", "http://h/\r\nx", {}))
      http:close()
      return unpack(r, 1, r.n) end, "CR, LF or NUL" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local r = pack(c[2]())
      assert.equal(c[4] and 3 or 2, r.n, "values returned")
      assert.is_nil(r[1])
      assert.is_string(r[2])
      assert.matches(c[3], r[2])
      assert.equal(c[4], r[3])
    end)
  end
end)

describe("csms.core's files", function()
  -- A child whose writes fail (a file size limit of one block, SIGXFSZ ignored: write() gives
  -- EFBIG) tries 50 writes of each kind and prints how many descriptors it holds before and
  -- after (listed in-process: a popen'd ls can catch popen's own pipe half set up).
  it("close the file when a write fails", function()
    local dir = tmpdir()
    local lua = require("spec.support.interpreter").command
    local script = ([[
      package.cpath = %q
      local core = require "csms.core"
      local function fds() return #assert(core.fs.list_dir("/proc/self/fd")) end
      local before, big = fds(), ("x"):rep(8192)
      for i = 1, 50 do
        assert(not core.fs.write_new(%q .. "/new" .. i, big))
        assert(not core.fs.write_atomic(%q .. "/atomic", big))
      end
      print(before, fds())
    ]]):format(package.cpath, dir, dir)
    local f = assert(io.open(dir .. "/child.lua", "w"))
    f:write(script)
    f:close()
    local p = io.popen(("sh -c \"trap '' XFSZ; ulimit -f 1; %s '%s/child.lua'\" 2>&1"):format(lua, dir))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf '" .. dir .. "'")
    local before, after = out:match("^(%d+)%s+(%d+)")
    assert(before, out)
    assert.equal(tonumber(before), tonumber(after), "descriptors leaked")
  end)
end)

describe("csms.core's surface", function()
  it("is its parts, each a table of functions, and nothing else", function()
    local parts = {
      signer = { "new", "wipe", "sign", "sign_request" },
      http = { "new" },
      fs = { "write_atomic", "write_new", "syncfs", "mkdir", "list_dir", "lstat", "euid", "read_file",
        "open_append", "lock" },
      blob = { "header" },
      crypto = { "sha256_hex", "random" },
      time = { "sleep", "monotonic" },
      cli = { "isatty" },
    }
    local seen = {}
    for name, part in pairs(core) do
      assert.is_table(parts[name], "unexpected core." .. tostring(name))
      seen[name] = true
      local want = {}
      for _, f in ipairs(parts[name]) do want[f] = true end
      for f, v in pairs(part) do
        assert.is_true(want[f], "unexpected core." .. name .. "." .. tostring(f))
        assert.is_function(v)
      end
      for f in pairs(want) do assert.is_function(part[f], "core." .. name .. "." .. f) end
    end
    for name in pairs(parts) do assert.is_true(seen[name], "core." .. name .. " missing") end
  end)

  it("leaves core.cli to the command: the library never calls it", function()
    -- lua/csms/cli/ is the command's own (installed by the csms-backup rock), not the library.
    local function walk(dir, out)
      for _, n in ipairs(assert(core.fs.list_dir(dir))) do
        local p = dir .. "/" .. n
        local st = assert(core.fs.lstat(p))
        if st.type == "dir" then
          if p ~= "lua/csms/cli" then walk(p, out) end
        elseif n:match("%.lua$") then
          out[#out + 1] = p
        end
      end
      return out
    end
    local files = walk("lua/csms", {})
    assert.is_true(#files > 5)
    for _, p in ipairs(files) do
      local f = assert(io.open(p))
      local s = f:read("*a")
      f:close()
      assert.is_nil(s:find("core%.cli") or s:find("isatty"), p)
    end
  end)
end)
