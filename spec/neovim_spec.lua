-- The recipe of docs/neovim.md, as written, in a real headless Neovim (Debian's, LuaJIT):
-- csms.batch keeps 8 requests in flight and Neovim's event loop runs while they wait. Proofs
-- by order, not time: the server (rawserver's gate) holds every request until 8 wait at once
-- AND a flag file exists, and only a Neovim timer writes that file, when it sees 8 in flight.
-- Were the waits blocking, the timer could not run, and the batch would never end. The timer
-- also makes a single call on the batch's client while the batch runs: each gets its own answers.
local emulator = require "spec.support.emulator"
local rawserver = require "spec.support.rawserver"

local ROOT = emulator.root
local q, sh = emulator.shell_quote, emulator.run

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function recipe()
  local doc = emulator.read_all(ROOT .. "/docs/neovim.md")
  for block in doc:gmatch("```lua\n(.-)```") do
    if block:find("^%-%- csms_nvim%.lua") then return block end
  end
  error("no csms_nvim.lua block in docs/neovim.md")
end

local TEST = [[
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. DIR .. "/lua/?.lua;" .. package.path
package.cpath = ROOT .. "/build/luajit/?.so;" .. package.cpath
local csms = require "csms"
local csms_nvim = require "csms_nvim"
local out = assert(io.open(DIR .. "/out", "w"))
local transport, client, meanwhile_done
-- Neovim's own timer: it opens the gate when it sees 8 requests in flight, and makes a single
-- call on the same client while the batch runs.
local timer = vim.loop.new_timer()
timer:start(10, 10, vim.schedule_wrap(function()
  if transport and transport.inflight >= 8 and not io.open(FLAG) then
    out:write("flag written with ", transport.inflight, " in flight\n")
    io.open(FLAG, "w"):close()
    csms_nvim.run(function()
      local res, err = client:backup("bulk-2")
      out:write(res and "meanwhile ok\n" or ("meanwhile failed " .. err .. "\n"))
      meanwhile_done = true
    end)
  end
end))
csms_nvim.run(function()
  transport = csms_nvim.transport { timeout = 60 }
  client = csms.assert(csms.new { ak = "AK", sk = "SK", project_id = "p", endpoint = ENDPOINT,
    retries = 0, transport = transport })
  local report, err = require("csms.batch").backup(client, { dir = DIR .. "/set", concurrency = 8 })
  local single, serr = client:backup("bulk-1")
  out:write(report and ("ok=%d failed=%d\n"):format(report.ok, report.failed) or ("failed " .. err .. "\n"))
  out:write(single and "single ok\n" or ("single failed " .. serr .. "\n"))
  while not meanwhile_done do transport:sleep(0.01) end
  out:close()
  timer:close()
  vim.cmd("qall!")
end)
]]

describe("csms inside Neovim (docs/neovim.md)", function()
  it("keeps 8 backups in flight while Neovim's loop runs", function()
    local dir = emulator.tmpdir()
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local flag = dir .. "/open-the-gate"
    local gate = rawserver.start("gate", { env = { RAWSERVER_GATE = "8", RAWSERVER_NAMES = "11",
      RAWSERVER_GATE_FLAG = flag } })
    finally(gate.stop)
    assert(sh("mkdir -p " .. q(dir .. "/lua")))
    write(dir .. "/lua/csms_nvim.lua", recipe())
    write(dir .. "/test.lua", ("local ROOT, DIR, FLAG, ENDPOINT = %q, %q, %q, %q\n"):format(ROOT, dir, flag, gate.url)
      .. TEST)
    local ok, log = sh(("cd %s && timeout 120 nvim --headless -u NONE -i NONE -n -c %s"):format(
      q(dir), q("luafile " .. dir .. "/test.lua")))
    local out = emulator.read_all(dir .. "/out") or ""
    assert.truthy(ok, log .. out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "flag written with 8 in flight", "meanwhile ok", "ok=11 failed=0", "single ok" }, lines)
    local glog = gate.log()
    assert.matches("held 8\nreleased 8", glog)
    assert.is_nil(glog:find("held 9", 1, true), glog)
  end)
end)
