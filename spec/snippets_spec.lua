-- Every fenced block of README.md and docs/*.md, as a reader copies it. Each block has a
-- language: `lua`, `sh` and `nginx` are code; `text` (output, grammar, layout), `ini` and `json`
-- (file contents with `...` in them) are shown, not run.
-- A code block is run, unless the line just above its fence says why not, visibly:
--   <!-- snippet: fragment -->            not runnable alone (a signature, a list of options)
--   <!-- snippet: not run: <reason> -->    runnable, but not here (the reason says what covers it)
-- A `lua` block runs as written, under the interpreter running busted, in an empty directory,
-- with what a reader has: the library on LUA_PATH/LUA_CPATH, credentials in HUAWEICLOUD_SDK_AK /
-- _SK / _PROJECT_ID, and HUAWEICLOUD_SDK_REGION_CSMS_<REGION> (the official SDKs' endpoint
-- override, lua/csms/config.lua) pointing every region at the bundled emulator, which holds the
-- secrets the docs name. It must exit 0 with nothing on stderr and reach the emulator (unless
-- EXPECT says `offline`); a block that prints must have its output described in EXPECT below.
-- sh and nginx blocks must be marked: each needs a machine of its own (installs, a fixed port,
-- /backups), and spec/examples_spec.lua runs the documented nginx example. Every sh block still
-- passes `sh -n`, and a lua block marked "not run" still compiles.
local emulator = require "spec.support.emulator"
local config = require "csms.config"

local ROOT = emulator.root
local q = emulator.shell_quote
local interpreter = require "spec.support.interpreter"
local LUA = interpreter.command
local BUILD = ROOT .. "/build/" .. interpreter.build

local CODE = { lua = true, sh = true, nginx = true }
local SHOWN = { text = true, ini = true, json = true }

-- What a runnable block prints, keyed by a string the block contains (one entry per block):
-- a list of Lua patterns, one per line of output, in order; `offline = true` for a block that
-- sends nothing. SEED: the secrets the emulator holds when each block starts.
local EXPECT = {
  {
    file = "README.md", contains = 'client:backup("db-password")',
    stdout = {
      "^csms restore: HTTP 400 CSMS%.%S+: .*exist.*%(request_id %x+%)$", -- the secret is still there
      "^1\t0\t0$",                                                      -- batch: 1 ok, 0 failed, 0 skipped
    },
  },
}
local SEED = { ["db-password"] = { "hunter2", "correct horse battery staple" } }

local function read(path) return assert(emulator.read_all(path), "cannot read " .. path) end

-- The markdown files, README.md first.
local function documents()
  local files = { "README.md" }
  local p = io.popen("cd " .. q(ROOT) .. " && ls docs/*.md")
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

-- Fenced blocks of one markdown text: { file, line, lang, text, marker }.
local function blocks_of(file, text)
  local out, lines = {}, {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local i = 1
  while i <= #lines do
    local indent, fence, info = lines[i]:match("^(%s*)(```+)%s*(.-)%s*$")
    if fence then
      local b = { file = file, line = i, lang = info:match("^%S*"), marker = nil }
      local prev = (lines[i - 1] or ""):match("^%s*(.-)%s*$")
      b.marker = prev:match("^<!%-%- snippet: (.-) %-%->$")
      local body, j = {}, i + 1
      while j <= #lines and not lines[j]:match("^%s*" .. fence .. "%s*$") do
        body[#body + 1] = lines[j]:sub(1, #indent) == indent and lines[j]:sub(#indent + 1) or lines[j]
        j = j + 1
      end
      assert(j <= #lines, file .. ":" .. i .. ": a fence that is never closed")
      b.text = table.concat(body, "\n") .. "\n"
      out[#out + 1] = b
      i = j + 1
    else
      i = i + 1
    end
  end
  return out
end

local function all_blocks()
  local all = {}
  for _, file in ipairs(documents()) do
    for _, b in ipairs(blocks_of(file, read(ROOT .. "/" .. file))) do all[#all + 1] = b end
  end
  return all
end

-- "run", "fragment", "not run", "text", or nil and why the block is not acceptable.
local function classify(b)
  if b.lang == "" then return nil, "a fence without a language (text for shown text)" end
  if SHOWN[b.lang] then
    if b.marker then return nil, "a marker above a text block" end
    return "text"
  end
  if not CODE[b.lang] then return nil, "unknown language '" .. b.lang .. "'" end
  if b.marker == "fragment" then return "fragment" end
  if b.marker then
    local reason = b.marker:match("^not run: (%S.*)$")
    if reason then return "not run" end
    return nil, "unknown marker '" .. b.marker .. "'"
  end
  if b.lang ~= "lua" then return nil, "a " .. b.lang .. " block is neither run here nor marked" end
  return "run"
end

local function expectation(b)
  local found
  for _, x in ipairs(EXPECT) do
    if x.file == b.file and b.text:find(x.contains, 1, true) then
      assert(not found, b.file .. ":" .. b.line .. ": two EXPECT entries match this block")
      found = x
    end
  end
  return found
end

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

describe("documentation snippets", function()
  local blocks = all_blocks()

  it("every fenced block has a language and is run, or marked fragment / not run with a reason", function()
    local counts, bad = { run = 0, fragment = 0, ["not run"] = 0, text = 0 }, {}
    for _, b in ipairs(blocks) do
      local kind, why = classify(b)
      if kind then counts[kind] = counts[kind] + 1 else bad[#bad + 1] = b.file .. ":" .. b.line .. ": " .. why end
    end
    assert.are.same({}, bad)
    -- the counts, for the report (busted prints nothing for a passing test)
    io.stderr:write(("[snippets] %d blocks: %d run, %d fragment, %d not run, %d text\n"):format(
      #blocks, counts.run, counts.fragment, counts["not run"], counts.text))
    assert.is_true(counts.run >= 1)
  end)

  it("every sh block passes sh -n, every lua block marked not run compiles", function()
    local bad = {}
    for _, b in ipairs(blocks) do
      local kind = classify(b)
      local where = b.file .. ":" .. b.line
      if b.lang == "sh" then
        local path = emulator.tmpname()
        write(path, b.text)
        local ok, out = emulator.run("sh -n " .. q(path))
        os.remove(path)
        if not ok then bad[#bad + 1] = where .. ": " .. out end
      elseif b.lang == "lua" and kind == "not run" then
        local f, err = (rawget(_G, "loadstring") or load)(b.text, "=" .. where)
        if not f then bad[#bad + 1] = err end
      end
    end
    assert.are.same({}, bad)
  end)

  it("every EXPECT entry matches a block that is run", function()
    for _, x in ipairs(EXPECT) do
      local hit
      for _, b in ipairs(blocks) do
        if b.file == x.file and b.text:find(x.contains, 1, true) and classify(b) == "run" then hit = true end
      end
      assert(hit, "no runnable block of " .. x.file .. " contains " .. x.contains)
    end
  end)

  it("reads markers: a wrong one, an unmarked sh block, a missing language fail", function()
    local doc = table.concat({
      "<!-- snippet: fragment -->", "```lua", "f(a, b)", "```",
      "<!-- snippet: not run: needs a cloud -->", "  ```sh", "  rm -rf /", "  ```",
      "```sh", "ls", "```", "<!-- snippet: skip -->", "```lua", "x()", "```",
      "```", "plain", "```", "```text", "shown", "```", "```lua", "print(1)", "```",
    }, "\n")
    local got = {}
    for _, b in ipairs(blocks_of("t.md", doc)) do got[#got + 1] = classify(b) or "bad" end
    assert.are.same({ "fragment", "not run", "bad", "bad", "bad", "text", "run" }, got)
    assert.are.equal("rm -rf /\n", blocks_of("t.md", doc)[2].text)
  end)

  describe("run as written against the emulator", function()
    local e, work
    setup(function()
      e = emulator.start {}
      work = emulator.tmpdir()
    end)
    teardown(function()
      if e then e:stop() end
      if work then emulator.sh("rm -rf " .. q(work)) end
    end)

    -- The reader's environment: nothing inherited but PATH, so that no endpoint, profile or
    -- credential of the machine running the suite leaks in.
    local function reader_env(home)
      local env = {
        PATH = os.getenv("PATH"), HOME = home,
        LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
        LUA_CPATH = BUILD .. "/?.so;;",
        HUAWEICLOUD_SDK_AK = e.ak, HUAWEICLOUD_SDK_SK = e.sk,
        HUAWEICLOUD_SDK_IAM_ENDPOINT = e.endpoint, -- the project id from the emulator's IAM stand-in
        HUAWEICLOUD_SDK_ECS_METADATA = "off",
      }
      for region in pairs(config.regions) do
        env["HUAWEICLOUD_SDK_REGION_CSMS_" .. region:upper():gsub("-", "_")] = e.endpoint
      end
      local parts = { "env -i" }
      for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
      return table.concat(parts, " ")
    end

    for n, b in ipairs(blocks) do
      if classify(b) == "run" then
        it(("%s:%d runs and prints what it should"):format(b.file, b.line), function()
          e:reset()
          for name, versions in pairs(SEED) do e:create_secret(name, versions) end
          local dir = work .. "/" .. n
          assert(emulator.sh("mkdir -p " .. q(dir .. "/home")))
          write(dir .. "/snippet.lua", b.text)
          local cmd = ("cd %s && %s %s snippet.lua > out 2> err; echo $?"):format(
            q(dir), reader_env(dir .. "/home"), LUA)
          local p = io.popen(cmd)
          local status = p:read("*l")
          p:close()
          local out, err = read(dir .. "/out"), read(dir .. "/err")
          assert.are.equal("0", status, "exit status; stderr:\n" .. err)
          assert.are.equal("", err)
          local x = expectation(b)
          if out ~= "" then assert(x, "the block prints, and EXPECT does not say what:\n" .. out) end
          local lines = {}
          for line in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
          local want = x and x.stdout or {}
          assert.are.equal(#want, #lines, "lines printed:\n" .. out)
          for i, pattern in ipairs(want) do assert.matches(pattern, lines[i]) end
          -- it reached the emulator (the region's override), not the internet
          if not (x and x.offline) then assert.is_true(e:stats().total > 0) end
        end)
      end
    end
  end)
end)
