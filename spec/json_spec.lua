-- csms.json: the one JSON writer of the emulator and csms-backup --json. Each row is a value
-- and the exact text it must be written as.
local json = require "csms.json"

local NAN, INF = 0 / 0, math.huge

describe("csms.json.encode", function()
  local rows = {
    { "empty marked array", json.array(), "[]" },
    { "empty table is an object", {}, "{}" },
    { "a list", { 1, "a", true }, '[1,"a",true]' },
    { "a list with holes (nulls cjson decoded, made nil)", { 1, nil, 3, nil, 5 }, "[1,null,3,null,5]" },
    { "keys sorted", { b = 1, a = 2, c = { z = 1, y = json.null } }, '{"a":2,"b":1,"c":{"y":null,"z":1}}' },
    { "number keys as text", { [2] = "x", [10] = "y" }, '{"10":"y","2":"x"}' },
    { "keys escaped like strings", { ['a"b'] = 1, ["\n"] = 2 }, '{"\\n":2,"a\\"b":1}' },
    { "slash not escaped", { dir = "/backups/prod" }, '{"dir":"/backups/prod"}' },
    { "controls escaped", "a\"b\\c\n\t\0\127", '"a\\"b\\\\c\\n\\t\\u0000\\u007f"' },
    { "UTF-8 kept", "ünï ✓", '"ünï ✓"' },
    { "whole numbers without a point", { 0, -7, 2 ^ 52, 1e15 }, "[0,-7,4503599627370496,1000000000000000]" },
    { "fewest digits that read back", { 0.41, 38.5, 0.1 + 0.2, 1 / 3 },
      "[0.41,38.5,0.30000000000000004,0.3333333333333333]" },
    { "beyond 2^53", 2 ^ 60, "1.152921504606847e+18" },
  }
  for _, row in ipairs(rows) do
    it(row[1], function()
      assert.equal(row[3], json.encode(row[2]))
    end)
  end

  it("maps every string, keys too, through text when given", function()
    local upper = function(s) return s:upper() end
    assert.equal('{"K":["V",1]}', json.encode({ k = { "v", 1 } }, upper))
  end)

  it("writes every key of objects with more keys than it keeps written", function()
    local t = {}
    for i = 1, 1500 do t["k" .. i] = i end
    assert.same(t, json.decode(json.encode(t)))
    assert.same(t, json.decode(json.encode(t))) -- the second time with the keys it kept
  end)

  it("round-trips through cjson", function()
    local v = { a = { 1.5, -0.25, 1e-300, 123456789.125 }, b = "x/y\1" }
    assert.same(v, json.decode(json.encode(v)))
  end)

  it("refuses what JSON cannot hold", function()
    for _, bad in ipairs { NAN, INF, -INF, { [true] = 1 }, print, { 1, [1e9] = 2 } } do
      assert.has_error(function() json.encode(bad) end)
    end
    local cycle = {}
    cycle.self = cycle
    assert.has_error(function() json.encode(cycle) end, "json: nesting too deep")
  end)
end)
