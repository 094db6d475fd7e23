-- Errors that read well wherever they surface (plain Lua; nginx and HAProxy in
-- spec/error_surface_hosts_spec.lua): an err concatenates like a string, csms.assert raises it
-- as its string, and misuse raises at the caller's line however deep the check is.
local csms = require "csms"
local batch = require "csms.batch"

local ME = debug.getinfo(1, "S").short_src

-- A client that sends nothing: every call below fails before any I/O.
local function offline_client()
  return assert(csms.new { ak = "AK", sk = "SK", project_id = "p", endpoint = "http://127.0.0.1:1",
    retries = 0 })
end

-- The message a call raises, and the line of this file it should point at (the line of the
-- call, given as a function returning its own line).
local function raised(f)
  local ok, msg = pcall(f)
  assert.is_false(ok, "did not raise")
  assert.equal("string", type(msg), "raised a " .. type(msg))
  return msg
end

local function here() return debug.getinfo(2, "l").currentline end

describe("an err", function()
  local client, err
  before_each(function()
    client = offline_client()
    local res
    res, err = client:backup("not a name!")
    assert.is_nil(res)
  end)
  after_each(function() client:close() end)

  it("keeps its fields", function()
    assert.equal("invalid_argument", err.kind)
    assert.equal("backup", err.op)
  end)

  it("concatenates on either side, and with another err or a number", function()
    local text = tostring(err)
    assert.matches("^csms backup: invalid_argument: secret name may only hold", text)
    assert.equal("failed: " .. text, "failed: " .. err)
    assert.equal(text .. " (retry later)", err .. " (retry later)")
    assert.equal(text .. text, err .. err)
    assert.equal("1 " .. text, 1 .. " " .. err)
    assert.equal("string", type("x" .. err))
  end)

  it("prints through string.format's %s on 5.2+ and LuaJIT (5.1's %s wants tostring(err))", function()
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
      assert.has_error(function() return ("e: %s"):format(err) end)
    else
      assert.equal("e: " .. tostring(err), ("e: %s"):format(err))
    end
  end)
end)

describe("csms.assert", function()
  it("returns all its arguments when the first is true", function()
    local a, b, c = csms.assert(1, 2, 3)
    assert.same({ 1, 2, 3 }, { a, b, c })
  end)

  it("raises a failed call's err as its string, at the caller's line", function()
    local client = offline_client()
    finally(function() client:close() end)
    local _, err = client:backup("not a name!")
    local line
    local msg = raised(function() line = here(); csms.assert(client:backup("not a name!")) end)
    assert.equal(ME .. ":" .. line .. ": " .. tostring(err), msg)
  end)

  it("raises a string message as is, and no message as assert does", function()
    local line
    local msg = raised(function() line = here(); csms.assert(nil, "plain text") end)
    assert.equal(ME .. ":" .. line .. ": plain text", msg)
    msg = raised(function() line = here(); csms.assert(false) end)
    assert.equal(ME .. ":" .. line .. ": assertion failed!", msg)
  end)
end)

describe("misuse raises at the caller's line", function()
  -- Each raises from a check at a different depth inside the library.
  local client
  before_each(function() client = offline_client() end)
  after_each(function() if client then client:close() end end)

  local cases = {
    { "an option of the wrong type", function() csms.new { timeout = "30" } end,
      "csms: timeout must be a number" },
    { "an unknown option", function() csms.new { timeuot = 30 } end,
      "csms: unknown option 'timeuot'" },
    { "a bad option value", function() csms.new { retries = 1.5 } end,
      "csms: retries must be a whole number" },
    { "options not a table", function() csms.new("cn-north-4") end,
      "csms: options must be a table or nil, got string" },
    { "a one-shot's argument", function() csms.backup(42) end,
      "csms: secret name must be a string" },
    { "a client method's argument", function() client:backup(42) end,
      "csms: secret name must be a string" },
    { "a nested option", function() client:list_secrets { limit = "5" } end,
      "csms: limit must be a number or nil" },
    { "csms.sign's credentials", function() csms.sign({ method = "GET", url = "http://h/" }, {}) end,
      "csms: credentials.ak must be a string" },
    { "a client used after close", function() client:close(); client:backup("s") end,
      "csms: client used after close" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local msg = raised(case[2])
      local line = debug.getinfo(case[2], "S").linedefined -- each case is one line
      assert.equal(ME .. ":" .. line .. ": " .. case[3], msg:sub(1, #ME + #tostring(line) + 3 + #case[3]))
    end)
  end

  it("through pcall: the line that called pcall", function()
    local ok, msg = pcall(csms.new, { timeout = "30" }); local line = here()
    assert.is_false(ok)
    assert.equal(ME .. ":" .. line .. ": csms: timeout must be a number, got string", msg)
  end)

  it("through csms.batch: the line that called batch", function()
    local line
    local msg = raised(function() line = here(); batch.backup(client, { dir = "/nonexistent", concurrency = "8" }) end)
    assert.matches("^" .. ME:gsub("%p", "%%%0") .. ":" .. line .. ": ", msg)
  end)
end)
