-- Checks: arguments a caller got wrong raise (pointing at the caller); input the service would
-- refuse (secret names, blobs) gives nil, err of kind invalid_argument before anything is sent.
local core = require "csms.core"
local cjson = require "cjson.safe"
local errors = require "csms.errors"

local M = {}

-- ---------------------------------------------------------------- argument checks (raise)

-- Misuse raises a string at the caller's line (errors.raise), however deep the check is.
local function check(cond, fmt, ...)
  if not cond then errors.raise(("csms: " .. fmt):format(...)) end
end
M.check = check

local function check_type(v, want, name, optional)
  if v == nil and optional then return end
  check(type(v) == want, "%s must be a %s%s, got %s", name, want, optional and " or nil" or "", type(v))
end
M.check_type = check_type

local OPTION_TYPES = {
  ak = "string", sk = "string", security_token = "string", auth_token = "string",
  project_id = "string", region = "string", endpoint = "string", iam_endpoint = "string",
  timeout = "number", connect_timeout = "number", retries = "number", backoff_base = "number",
  backoff_max = "number", retry_after_max = "number", max_response = "number",
  verify_tls = "boolean", cafile = "string", proxy = "string",
  rate_limit = "number", adaptive = "boolean", throttle_deadline = "number", shared_dict = "string",
}

-- csms.new's options: unknown names and wrong types raise.
function M.options(opts)
  check_type(opts, "table", "options", true)
  opts = opts or {}
  for k, v in pairs(opts) do
    if k == "transport" then
      check(type(v) == "function" or type(v) == "table",
        "transport must be a function or a transport table, got %s", type(v))
    elseif k == "metadata" then
      check(type(v) == "boolean" or type(v) == "string",
        "metadata must be a boolean or a URL, got %s", type(v))
    elseif k == "credentials" then
      check(type(v) == "table" and type(v.credentials) == "function",
        "credentials must be a provider (a table with a credentials method), got %s", type(v))
    else
      check(OPTION_TYPES[k] ~= nil, "unknown option '%s'", tostring(k))
      check_type(v, OPTION_TYPES[k], k)
    end
  end
  check(opts.retries == nil or (opts.retries >= 0 and opts.retries <= 100
    and opts.retries == math.floor(opts.retries)), "retries must be a whole number from 0 to 100")
  -- 0, negative or NaN would reach libcurl as "no timeout" or "no cap" (NaN fails every test);
  -- so would a timeout under 1 ms (0 once in milliseconds), and one over what a C int of
  -- milliseconds holds has no defined conversion.
  for _, k in ipairs { "timeout", "connect_timeout" } do
    local v = opts[k]
    check(v == nil or (v >= 0.001 and v <= 2147483), "%s must be a positive number of seconds, "
      .. "from 0.001 to 2147483 (about 24 days)", k)
  end
  check(opts.max_response == nil or (opts.max_response > 0 and opts.max_response < math.huge),
    "max_response must be a positive number")
  for _, k in ipairs { "backoff_base", "backoff_max", "retry_after_max", "throttle_deadline" } do
    local v = opts[k]
    check(v == nil or (v >= 0 and v < math.huge), "%s must be a number >= 0", k)
  end
  local min_rate = require("csms.ratelimit").MIN_RATE
  check(opts.rate_limit == nil or (opts.rate_limit >= min_rate and opts.rate_limit < math.huge),
    "rate_limit must be a number of requests per second >= %s", min_rate)
  return opts
end

-- ---------------------------------------------------------------- input validation (nil, err)

function M.invalid(op, msg)
  return nil, errors.new("invalid_argument", msg, { op = op })
end

function M.name_problem(name)
  if #name < 1 or #name > 64 then return "secret name must be 1 to 64 characters long" end
  if name:find("[^A-Za-z0-9_%-]") then
    return "secret name may only hold letters, digits, '_' and '-' (^[a-zA-Z0-9_-]{1,64}$)"
  end
end

-- The documented shape (at most 5,242,880 characters): prefix, domain, then a compact JWE
-- whose header names alg and enc. The C side checks all but the header's JSON.
function M.blob_problem(blob)
  local header, err = core.blob.header(blob)
  if not header then return err end
  local h = cjson.decode(header)
  if type(h) ~= "table" then return "secret_blob's JWE header is not a JSON object" end
  if type(h.alg) ~= "string" or type(h.enc) ~= "string" then
    return "secret_blob's JWE header does not name alg and enc"
  end
end

function M.name(name)
  check_type(name, "string", "secret name")
  local p = M.name_problem(name)
  if p then return M.invalid(nil, p) end
  return true
end

function M.blob(blob)
  check_type(blob, "string", "secret_blob")
  local p = M.blob_problem(blob)
  if p then return M.invalid(nil, p) end
  return true
end

return M
