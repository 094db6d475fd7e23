-- Signing without I/O (csms.sign, csms.canonical_request): SDK-HMAC-SHA256 in C (csms.core),
-- with the key schedule made for a credentials table kept while that table lives.
local core = require "csms.core"
local errors = require "csms.errors"
local validate = require "csms.validate"

local M = {}

local function invalid(msg)
  return nil, errors.new("invalid_argument", msg, { op = "sign" })
end

local function unsigned_set(opts)
  validate.check_type(opts, "table", "options", true)
  if not opts or not opts.unsigned_headers then return nil end
  validate.check_type(opts.unsigned_headers, "table", "unsigned_headers")
  local set = {}
  for _, n in ipairs(opts.unsigned_headers) do set[n:lower()] = true end
  return set
end

-- credentials table -> { signer = core.signer, ak, sk, token }: the HMAC key schedule made for
-- a table is kept while the table lives (weak keys), so signing again with the same table does
-- not redo it. The entry holds the same strings the table does, to notice when they change.
local signers = setmetatable({}, { __mode = "k" })

local function new_signer(creds)
  validate.check_type(creds, "table", "credentials")
  validate.check_type(creds.ak, "string", "credentials.ak")
  validate.check_type(creds.sk, "string", "credentials.sk")
  validate.check_type(creds.security_token, "string", "credentials.security_token", true)
  local signer, err = core.signer.new(creds.ak, creds.sk, creds.security_token)
  if not signer then return nil, err end
  local old = signers[creds]
  if old then core.signer.wipe(old.signer) end
  signers[creds] = { signer = signer, ak = creds.ak, sk = creds.sk, token = creds.security_token }
  return signer
end

-- Pure signing, no I/O: returns a new table of headers to send (the request's headers plus
-- X-Sdk-Date when absent, X-Security-Token when given, and Authorization).
-- opts.unsigned_headers: names to send but leave out of the signature (e.g. { "host" }).
-- The common case (a creds table signed with before, no opts) checks req in C, in one call.
function M.sign(req, creds, opts)
  local e, err = signers[creds]
  local signer = e and e.ak == creds.ak and e.sk == creds.sk and e.token == creds.security_token
    and e.signer
  if not signer then
    signer, err = new_signer(creds)
    if not signer then return invalid(err) end
  end
  local headers, code
  headers, err, code = core.signer.sign_request(signer, req, opts ~= nil and unsigned_set(opts) or nil)
  if headers then return headers end
  if code == "misuse" then errors.raise("csms: " .. err) end
  return invalid(err)
end

-- The canonical request csms.sign would hash: to compare with the one a gateway sends back
-- in a 401 message.
function M.canonical_request(req, opts)
  local signer = core.signer.new("AK", "SK")
  local headers, canonical, code = core.signer.sign_request(signer, req, unsigned_set(opts), true)
  core.signer.wipe(signer)
  if code == "misuse" then errors.raise("csms: " .. canonical) end -- canonical holds the message
  if not headers then return invalid(canonical) end
  return canonical
end

return M
