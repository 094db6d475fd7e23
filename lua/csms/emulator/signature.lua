-- SDK-HMAC-SHA256 verification, written from the algorithm (docs/signing.md),
-- independently of the client's signer. Pure functions over the raw request; the caller supplies
-- the hash / HMAC primitives (csms.emulator.crypto).
local crypto = require "csms.emulator.crypto"

local format, byte, char, gsub, find, sub, lower =
  string.format, string.byte, string.char, string.gsub, string.find, string.sub, string.lower
local concat, sort = table.concat, table.sort

local M = {}

M.ALGORITHM = "SDK-HMAC-SHA256"
M.EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

local function pct(c)
  return format("%%%02X", byte(c))
end

--- Percent-encodes every byte outside A-Z a-z 0-9 - _ . ~
function M.encode(s)
  return (gsub(s, "[^%w%-_%.~]", pct))
end

--- Decodes %XX sequences once ("+" stays "+").
function M.decode(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

--- The canonical URI of a raw (as sent) path: decode once, split on "/", encode each segment,
--- join with "/", end with "/".
function M.canonical_uri(raw_path)
  local path = M.decode(raw_path)
  local out = gsub(path, "[^%w%-_%.~/]", pct)
  if sub(out, -1) ~= "/" then out = out .. "/" end
  return out
end

--- The canonical query of a raw query string (without "?"): split on "&", split each pair at the
--- first "=", decode both sides, sort by key then value, re-encode.
function M.canonical_query(raw_query)
  if not raw_query or raw_query == "" then return "" end
  local pairs_ = {}
  for part in (raw_query .. "&"):gmatch("([^&]*)&") do
    if part ~= "" then
      local eq = find(part, "=", 1, true)
      local k, v
      if eq then
        k, v = sub(part, 1, eq - 1), sub(part, eq + 1)
      else
        k, v = part, ""
      end
      pairs_[#pairs_ + 1] = { M.decode(k), M.decode(v) }
    end
  end
  sort(pairs_, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local out = {}
  for i, p in ipairs(pairs_) do
    out[i] = M.encode(p[1]) .. "=" .. M.encode(p[2])
  end
  return concat(out, "&")
end

local function trim(s)
  return (gsub(s, "^%s+", ""):gsub("%s+$", ""))
end
M.trim = trim

--- Parses an Authorization header. Returns { access=, signed_headers = {names...},
--- signed_headers_raw=, signature= } or nil and a reason.
function M.parse_authorization(value)
  if type(value) ~= "string" then return nil, "Authorization header is missing" end
  local alg, rest = value:match("^%s*(%S+)%s+(.-)%s*$")
  if not alg then return nil, "Authorization header is malformed" end
  if alg ~= M.ALGORITHM then
    return nil, "unsupported signing algorithm " .. alg
  end
  local fields = {}
  for item in (rest .. ","):gmatch("([^,]*),") do
    local k, v = item:match("^%s*([%a]+)=(.-)%s*$")
    if not k then return nil, "Authorization header is malformed" end
    fields[k] = v
  end
  local access, signed, signature = fields.Access, fields.SignedHeaders, fields.Signature
  if not access or access == "" then return nil, "Access is missing in Authorization" end
  if not signed or signed == "" then return nil, "SignedHeaders is missing in Authorization" end
  if not signature or not signature:match("^%x+$") or #signature ~= 64 then
    return nil, "Signature is missing or malformed in Authorization"
  end
  local names = {}
  for name in (signed .. ";"):gmatch("([^;]*);") do
    if name == "" then return nil, "SignedHeaders is malformed" end
    names[#names + 1] = lower(name)
  end
  return { access = access, signed_headers = names, signed_headers_raw = signed,
           signature = lower(signature) }
end

--- Canonical headers and the signed-headers line. get_header(name) returns the received value
--- (string, a list of strings for a repeated header, or nil). Names containing "_" are left out:
--- the gateway never signs them.
function M.canonical_headers(names, get_header)
  local list = {}
  for _, name in ipairs(names) do
    if not find(name, "_", 1, true) then list[#list + 1] = lower(name) end
  end
  sort(list)
  local lines = {}
  for i, name in ipairs(list) do
    local v = get_header(name)
    if type(v) == "table" then
      local vs = {}
      for j, item in ipairs(v) do vs[j] = trim(item) end
      v = concat(vs, ",")
    end
    lines[i] = name .. ":" .. trim(v or "") .. "\n"
  end
  return concat(lines), concat(list, ";")
end

--- The canonical request. req = { method=, raw_path=, raw_query=, signed_names={...},
--- get_header=function, body=string, body_hash=optional }
function M.canonical_request(req)
  local headers, signed = M.canonical_headers(req.signed_names, req.get_header)
  local body_hash = req.body_hash or crypto.hex(crypto.sha256(req.body or ""))
  return concat({
    req.method, M.canonical_uri(req.raw_path), M.canonical_query(req.raw_query),
    headers, signed, body_hash,
  }, "\n")
end

function M.string_to_sign(date, canonical_request)
  return M.ALGORITHM .. "\n" .. date .. "\n" .. crypto.hex(crypto.sha256(canonical_request))
end

function M.sign(sk, date, canonical_request)
  return crypto.hex(crypto.hmac_sha256(sk, M.string_to_sign(date, canonical_request)))
end

--- Parses YYYYMMDDTHHMMSSZ into seconds since the epoch (UTC), or nil.
function M.parse_date(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  if not y then return nil end
  y, mo, d, h, mi, se = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi),
    tonumber(se)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or se > 60 then return nil end
  -- days from civil (Howard Hinnant), valid for the proleptic Gregorian calendar
  local yy = mo <= 2 and y - 1 or y
  local era = math.floor(yy / 400)
  local yoe = yy - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + se
end

return M
