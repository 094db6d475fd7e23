-- The emulator's own verifier (lua/csms/emulator/signature.lua, crypto through LuaJIT's FFI) on
-- the official SDK test vectors (docs/signing.md). It needs LuaJIT's FFI,
-- so the vectors run in a `luajit` child process whichever interpreter runs busted.
local emulator = require "spec.support.emulator"

local function run_luajit(body)
  local script = emulator.tmpname()
  local f = assert(io.open(script, "w"))
  f:write('package.path = ' .. string.format("%q", emulator.root .. "/lua/?.lua;") ..
    ' .. package.path\n', body)
  f:close()
  local p = io.popen("luajit " .. emulator.shell_quote(script) .. " 2>&1")
  local out = p:read("*a")
  p:close()
  os.remove(script)
  return out
end

describe("emulator signature verifier", function()
  it("reproduces the official Python and Go SDK vectors", function()
    local out = run_luajit([[
      local s = require "csms.emulator.signature"
      local function sig(method, path, query, hdrs, body, names)
        local cr = s.canonical_request{ method = method, raw_path = path, raw_query = query,
          signed_names = names, get_header = function(n) return hdrs[n] end, body = body }
        return s.sign("SecretKey", hdrs["x-sdk-date"], cr)
      end
      local h = { host = "service.endpoint.myhuaweicloud.com", ["x-sdk-date"] = "20200608T023900Z",
                  test_underscore = "ignored" }
      print(sig("GET", "/resources", "size=1", h, "", { "host", "x-sdk-date", "test_underscore" }))
      print(sig("POST", "/resources", "size=1", h, '{"name":"test","id":1}', { "host", "x-sdk-date" }))
      print(sig("GET", "/path", "limit=1", { ["x-sdk-date"] = "20060102T150405Z" }, "", { "x-sdk-date" }))
      print(sig("POST", "/path", "key=value", { ["x-sdk-date"] = "20060102T150405Z" },
        '{"Name":"test","Id":1}\n', { "x-sdk-date" }))
      print(s.canonical_query("test=" .. s.encode("一 (&=?!#%.*)") ..
        "&path=%2Ftmp%2F123&multi=3&multi=1&multi=2&enable=true&limit=1"))
      print(s.canonical_uri("/a%20b/c"), s.canonical_uri("/a"), s.canonical_uri("/a/"))
      print(s.parse_date("20200608T023900Z"), s.parse_date("2020-06-08T02:39:00Z"))
    ]])
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842", lines[1], out)
    assert.are.equal("436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f", lines[2])
    assert.are.equal("5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624", lines[3])
    assert.are.equal("cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59", lines[4])
    assert.are.equal("enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=" ..
      "%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29", lines[5])
    assert.are.equal("/a%20b/c/\t/a/\t/a/", lines[6])
    assert.are.equal("1591583940\tnil", lines[7])
  end)

  it("parses Authorization headers strictly", function()
    local out = run_luajit([[
      local s = require "csms.emulator.signature"
      local sig = string.rep("a", 64)
      local function show(v)
        local a, err = s.parse_authorization(v)
        print(a and (a.access .. "|" .. table.concat(a.signed_headers, ",") .. "|" .. a.signature)
          or ("nil:" .. err))
      end
      show("SDK-HMAC-SHA256 Access=AK, SignedHeaders=Host;X-Sdk-Date, Signature=" .. sig)
      show("SDK-HMAC-SHA256 Access=AK,SignedHeaders=host;x-sdk-date,Signature=" .. sig:upper())
      show("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date")
      show("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;;x, Signature=" .. sig)
      show("AWS4-HMAC-SHA256 Credential=x")
      show("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=abc")
    ]])
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local sig = string.rep("a", 64)
    assert.are.equal("AK|host,x-sdk-date|" .. sig, lines[1], out)
    assert.are.equal("AK|host,x-sdk-date|" .. sig, lines[2])
    assert.matches("^nil:Signature is missing", lines[3])
    assert.matches("^nil:SignedHeaders is malformed", lines[4])
    assert.matches("^nil:unsupported signing algorithm AWS4%-HMAC%-SHA256", lines[5])
    assert.matches("^nil:Signature is missing or malformed", lines[6])
  end)
end)
