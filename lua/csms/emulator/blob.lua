-- Secret backup blobs: ")CloudSecretManagementBackupV1." .. "huaweicloud.com" .. a compact JWE
-- (RFC 7516) of five base64url parts. Key management A256GCMKW (RFC 7518 4.7): a random 256-bit
-- CEK wrapped by AES-256-GCM under the emulator's master key, the wrap IV and tag carried in the
-- protected header; content encryption A256GCM with AAD = ASCII of the encoded header.
local crypto = require "csms.emulator.crypto"
local json = require "csms.json"

local M = {}

M.PREFIX = ")CloudSecretManagementBackupV1."
M.DOMAIN = "huaweicloud.com"

-- lua-resty-core's base64url when nginx has it (lua-nginx-module loads it): one C call, where
-- the fallback's gsub copies every blob a second time.
local has_b64, b64 = pcall(require, "ngx.base64")
local b64url_encode = has_b64 and b64.encode_base64url or function(s)
  local e = ngx.encode_base64(s, true)
  return (e:gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

-- Strict base64url: the alphabet only, no padding, and the canonical encoding of its bytes (so
-- that changing the unused low bits of the last character is caught too).
local function b64url_decode(s)
  if type(s) ~= "string" or s:find("[^%w%-_]") or #s % 4 == 1 then return nil end
  local std = s:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  std = std .. string.rep("=", (4 - #std % 4) % 4)
  local raw = ngx.decode_base64(std)
  if not raw or b64url_encode(raw) ~= s then return nil end
  return raw
end
M.b64url_encode, M.b64url_decode = b64url_encode, b64url_decode

--- Encrypts plaintext into a blob. key: 32 bytes, kid: string.
function M.seal(key, kid, plaintext)
  local cek = crypto.random(32)
  local kw_iv = crypto.random(12)
  local wrapped, kw_tag = crypto.aes_gcm_encrypt(key, kw_iv, cek, nil)
  local header = json.encode({
    kid = kid, enc = "A256GCM", alg = "A256GCMKW",
    iv = b64url_encode(kw_iv), tag = b64url_encode(kw_tag),
  })
  local eh = b64url_encode(header)
  local iv = crypto.random(12)
  local ct, tag = crypto.aes_gcm_encrypt(cek, iv, plaintext, eh)
  return M.PREFIX .. M.DOMAIN .. table.concat({
    eh, b64url_encode(wrapped), b64url_encode(iv), b64url_encode(ct), b64url_encode(tag),
  }, ".")
end

--- Decrypts a blob. Returns the plaintext, or nil and a reason (for the error message).
function M.open(key, kid, blob)
  if type(blob) ~= "string" then return nil, "not a string" end
  local head = M.PREFIX .. M.DOMAIN
  if blob:sub(1, #head) ~= head then return nil, "unknown format" end
  local parts = {}
  for part in (blob:sub(#head + 1) .. "."):gmatch("([^.]*)%.") do parts[#parts + 1] = part end
  if #parts ~= 5 then return nil, "malformed JWE" end
  local raw = {}
  for i = 1, 5 do
    raw[i] = b64url_decode(parts[i])
    if not raw[i] then return nil, "malformed JWE" end
  end
  local header = json.decode(raw[1])
  if type(header) ~= "table" or header.enc ~= "A256GCM" or header.alg ~= "A256GCMKW" then
    return nil, "malformed JWE header"
  end
  if header.kid ~= kid then
    return nil, "encrypted with another key"
  end
  local kw_iv, kw_tag = b64url_decode(header.iv), b64url_decode(header.tag)
  if not kw_iv or not kw_tag then return nil, "malformed JWE header" end
  local cek = crypto.aes_gcm_decrypt(key, kw_iv, raw[2], kw_tag, nil)
  if not cek or #cek ~= 32 then return nil, "integrity check failed" end
  local plaintext = crypto.aes_gcm_decrypt(cek, raw[3], raw[4], raw[5], parts[1])
  if not plaintext then return nil, "integrity check failed" end
  return plaintext
end

return M
