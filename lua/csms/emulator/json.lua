-- JSON for the emulator: cjson decodes; a small encoder of our own writes, because Debian's
-- lua-cjson 2.1.0 cannot tell an empty array from an empty object and escapes "/".
--
-- Arrays: a table carrying json.array_mt (see json.array) is always an array, even when empty;
-- a table whose keys are exactly 1..n (n > 0) is an array; any other table is an object, whose keys
-- are written sorted so that the output is deterministic. json.null (cjson.null) is null.
-- Plain Lua (5.1 / LuaJIT / 5.4): the spec helper uses it too.
local cjson = require "cjson"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local concat, sort = table.concat, table.sort
local format, byte, gsub = string.format, string.byte, string.gsub
local floor, huge = math.floor, math.huge

local M = {}

M.null = cjson.null
M.array_mt = { __name = "json.array" }

--- Marks t (default: a new table) as an array, so that it is written as [] even when empty.
function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

local function encode_string(s)
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

local function encode_number(x)
  if x ~= x or x == huge or x == -huge then
    error("json: cannot encode " .. tostring(x))
  end
  if x == floor(x) and x > -2^53 and x < 2^53 then
    return format("%d", x)
  end
  return format("%.17g", x)
end

function encode_value(v, out, depth)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == nil or v == M.null then
    out[#out + 1] = "null"
  elseif tv == "table" then
    if depth > 100 then error("json: nesting too deep") end
    if getmetatable(v) == M.array_mt or is_sequence(v) then
      out[#out + 1] = "["
      for i, item in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        encode_value(item, out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then
          error("json: object keys must be strings, got " .. type(k))
        end
        keys[#keys + 1] = k
      end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode_value(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("json: cannot encode a " .. tv)
  end
end

--- Encodes v as compact JSON.
function M.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return concat(out)
end

--- Decodes s; returns the value, or nil and a message.
function M.decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local ok, v = pcall(cjson.decode, s)
  if not ok then return nil, tostring(v) end
  return v
end

return M
