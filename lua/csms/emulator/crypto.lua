-- OpenSSL's libcrypto through LuaJIT's FFI: SHA-256, HMAC-SHA256, AES-256-GCM, RAND_bytes.
-- Independent of the client's C module on purpose: the emulator is a second implementation.
local ffi = require "ffi"

local C = ffi.C
local ffi_new, ffi_str, ffi_gc = ffi.new, ffi.string, ffi.gc
local format, byte, gsub, char = string.format, string.byte, string.gsub, string.char

ffi.cdef [[
typedef struct evp_md_st CSMSEMU_EVP_MD;
typedef struct evp_cipher_st CSMSEMU_EVP_CIPHER;
typedef struct evp_cipher_ctx_st CSMSEMU_EVP_CIPHER_CTX;
const CSMSEMU_EVP_MD *EVP_sha256(void);
int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const CSMSEMU_EVP_MD *type, void *impl);
unsigned char *HMAC(const CSMSEMU_EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
int RAND_bytes(unsigned char *buf, int num);
const CSMSEMU_EVP_CIPHER *EVP_aes_256_gcm(void);
CSMSEMU_EVP_CIPHER_CTX *EVP_CIPHER_CTX_new(void);
void EVP_CIPHER_CTX_free(CSMSEMU_EVP_CIPHER_CTX *c);
int EVP_CIPHER_CTX_ctrl(CSMSEMU_EVP_CIPHER_CTX *ctx, int type, int arg, void *ptr);
int EVP_EncryptInit_ex(CSMSEMU_EVP_CIPHER_CTX *ctx, const CSMSEMU_EVP_CIPHER *type, void *impl,
                       const unsigned char *key, const unsigned char *iv);
int EVP_EncryptUpdate(CSMSEMU_EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                      const unsigned char *in, int inl);
int EVP_EncryptFinal_ex(CSMSEMU_EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl);
int EVP_DecryptInit_ex(CSMSEMU_EVP_CIPHER_CTX *ctx, const CSMSEMU_EVP_CIPHER *type, void *impl,
                       const unsigned char *key, const unsigned char *iv);
int EVP_DecryptUpdate(CSMSEMU_EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                      const unsigned char *in, int inl);
int EVP_DecryptFinal_ex(CSMSEMU_EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl);
int chmod(const char *path, unsigned int mode);
]]

local lib = ffi.load("crypto")

local EVP_CTRL_GCM_GET_TAG = 0x10
local EVP_CTRL_GCM_SET_TAG = 0x11

local M = {}

local md_buf = ffi_new("unsigned char[64]")
local md_len = ffi_new("unsigned int[1]")

function M.sha256(s)
  if lib.EVP_Digest(s, #s, md_buf, md_len, lib.EVP_sha256(), nil) ~= 1 then
    error("EVP_Digest failed")
  end
  return ffi_str(md_buf, md_len[0])
end

function M.hmac_sha256(key, s)
  if lib.HMAC(lib.EVP_sha256(), key, #key, s, #s, md_buf, md_len) == nil then
    error("HMAC failed")
  end
  return ffi_str(md_buf, md_len[0])
end

function M.random(n)
  local buf = ffi_new("unsigned char[?]", n)
  if lib.RAND_bytes(buf, n) ~= 1 then error("RAND_bytes failed") end
  return ffi_str(buf, n)
end

local HEX = {}
for i = 0, 255 do HEX[char(i)] = format("%02x", i) end

function M.hex(s)
  return (gsub(s, ".", HEX))
end

function M.unhex(h)
  if #h % 2 ~= 0 or h:find("[^%x]") then return nil end
  return (gsub(h, "%x%x", function(x) return char(tonumber(x, 16)) end))
end

--- Constant-time comparison of two strings.
function M.equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    if byte(a, i) ~= byte(b, i) then diff = diff + 1 end
  end
  return diff == 0
end

local function new_ctx()
  local ctx = lib.EVP_CIPHER_CTX_new()
  if ctx == nil then error("EVP_CIPHER_CTX_new failed") end
  return ffi_gc(ctx, lib.EVP_CIPHER_CTX_free)
end

--- AES-256-GCM with a 12-byte IV; returns ciphertext, 16-byte tag.
function M.aes_gcm_encrypt(key, iv, plaintext, aad)
  assert(#key == 32 and #iv == 12, "aes_gcm_encrypt: bad key or iv length")
  local ctx = new_ctx()
  local outl = ffi_new("int[1]")
  if lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_256_gcm(), nil, key, iv) ~= 1 then
    error("EVP_EncryptInit_ex failed")
  end
  if aad and #aad > 0 and lib.EVP_EncryptUpdate(ctx, nil, outl, aad, #aad) ~= 1 then
    error("EVP_EncryptUpdate (aad) failed")
  end
  local out = ffi_new("unsigned char[?]", #plaintext + 16)
  if lib.EVP_EncryptUpdate(ctx, out, outl, plaintext, #plaintext) ~= 1 then
    error("EVP_EncryptUpdate failed")
  end
  local n = outl[0]
  if lib.EVP_EncryptFinal_ex(ctx, out + n, outl) ~= 1 then error("EVP_EncryptFinal_ex failed") end
  n = n + outl[0]
  local tag = ffi_new("unsigned char[16]")
  if lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) ~= 1 then
    error("EVP_CTRL_GCM_GET_TAG failed")
  end
  return ffi_str(out, n), ffi_str(tag, 16)
end

--- Returns the plaintext, or nil when the tag does not authenticate the input.
function M.aes_gcm_decrypt(key, iv, ciphertext, tag, aad)
  if #key ~= 32 or #iv ~= 12 or #tag ~= 16 then return nil end
  local ctx = new_ctx()
  local outl = ffi_new("int[1]")
  if lib.EVP_DecryptInit_ex(ctx, lib.EVP_aes_256_gcm(), nil, key, iv) ~= 1 then
    error("EVP_DecryptInit_ex failed")
  end
  if aad and #aad > 0 and lib.EVP_DecryptUpdate(ctx, nil, outl, aad, #aad) ~= 1 then
    return nil
  end
  local out = ffi_new("unsigned char[?]", #ciphertext + 16)
  if lib.EVP_DecryptUpdate(ctx, out, outl, ciphertext, #ciphertext) ~= 1 then return nil end
  local n = outl[0]
  local tagbuf = ffi_new("unsigned char[16]")
  ffi.copy(tagbuf, tag, 16)
  if lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tagbuf) ~= 1 then return nil end
  if lib.EVP_DecryptFinal_ex(ctx, out + n, outl) ~= 1 then return nil end
  n = n + outl[0]
  return ffi_str(out, n)
end

--- chmod(2); returns true on success.
function M.chmod(path, mode)
  return C.chmod(path, mode) == 0
end

return M
