-- JSON for the emulator and csms-backup's --json: cjson decodes; a small encoder of our own
-- writes, because Debian's lua-cjson 2.1.0 cannot tell an empty array from an empty object and
-- escapes "/" (docs/cli.md shows "/backups/prod", not "\/backups\/prod").
--
-- Arrays: a table carrying json.array_mt (see json.array) is always an array, even when empty;
-- so is a table with a [1] (as cjson decodes a list), written up to its largest whole key with
-- null for a nil (a null made nil). Any other table is an object, whose keys are written sorted
-- so that the output is deterministic (number keys as their decimal text). json.null
-- (cjson.null) is null. Numbers are written in the fewest digits that read back the same value.
-- Plain Lua (5.1 / LuaJIT / 5.4): the emulator (under nginx), the command and the spec helpers.
local cjson = require "cjson"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local getmetatable, setmetatable = getmetatable, setmetatable
local concat, sort = table.concat, table.sort
local format, byte, find, gsub = string.format, string.byte, string.find, string.gsub
local floor, huge = math.floor, math.huge

local M = {}

M.null = cjson.null
M.array_mt = { __name = "json.array" }

--- A JSON array as cjson decodes it: a table with keys 1..n and nothing else ([] decodes to {}
--- too). The library's checks of decoded answers and manifests use it.
function M.is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

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
  -- most strings (a blob, a name) need no escape: find is cheaper than a gsub that copies
  if not find(s, '[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local function encode_number(x)
  if x ~= x or x == huge or x == -huge then
    error("json: cannot encode " .. tostring(x))
  end
  if x == floor(x) and x > -2^53 and x < 2^53 then
    return format("%d", x)
  end
  for digits = 14, 16 do
    local s = format("%." .. digits .. "g", x)
    if tonumber(s) == x then return s end
  end
  return format("%.17g", x)
end

-- The largest whole key: # is any border of a list with holes ({1, nil, 3} may say 1).
-- A list far sparser than any decoded one is refused rather than written as a sea of nulls.
local function list_length(t)
  local n, count = 0, 0
  for k in pairs(t) do
    if type(k) == "number" and k >= 1 and k == floor(k) then
      count = count + 1
      if k > n then n = k end
    end
  end
  if n > 2 * count + 16 then error("json: a list too sparse to write") end
  return n
end

-- '"key":' for an object key: the same few field names come again and again (the emulator's
-- records, a manifest's items), so the first KEYS_KEPT are kept written.
local KEYS_KEPT, keys_kept, written_keys = 512, 0, {}
local function key_text(s)
  local w = written_keys[s]
  if w then return w end
  w = encode_string(s) .. ":"
  if keys_kept < KEYS_KEPT then written_keys[s], keys_kept = w, keys_kept + 1 end
  return w
end

-- Deep enough for anything cjson decodes (its limit is 1000), and a stop for a cycle.
local MAX_DEPTH = 1000

local function encode_value(v, out, depth, text)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = encode_string(text and text(v) or v)
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == nil or v == M.null then
    out[#out + 1] = "null"
  elseif tv == "table" then
    if depth > MAX_DEPTH then error("json: nesting too deep") end
    if getmetatable(v) == M.array_mt or v[1] ~= nil then
      out[#out + 1] = "["
      for i = 1, list_length(v) do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, depth + 1, text)
      end
      out[#out + 1] = "]"
    else
      local keys, key_of = {}, nil -- key_of: the number keys, by their text
      for k in pairs(v) do
        local tk = type(k)
        if tk == "number" then
          local s = encode_number(k)
          key_of = key_of or {}
          keys[#keys + 1], key_of[s] = s, k
        elseif tk == "string" then
          keys[#keys + 1] = k
        else
          error("json: object keys must be strings, got " .. tk)
        end
      end
      sort(keys)
      out[#out + 1] = "{"
      for i, s in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        if text then
          out[#out + 1] = encode_string(text(s)) .. ":"
        else
          out[#out + 1] = key_text(s)
        end
        encode_value(v[key_of and key_of[s] or s], out, depth + 1, text)
      end
      out[#out + 1] = "}"
    end
  else
    error("json: cannot encode a " .. tv)
  end
end

--- Encodes v as compact JSON. text, when given, maps every string (keys too) before it is
--- written: csms-backup makes service text safe to print with it.
function M.encode(v, text)
  local out = {}
  encode_value(v, out, 0, text)
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
