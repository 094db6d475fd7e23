-- csms: back up and restore Huawei Cloud CSMS secrets (DownloadSecretBlob / UploadSecretBlob).
-- Signing and HTTP are in C (csms.core); validation, retries and errors are here.
local core = require "csms.core"
local cjson = require "cjson.safe"
local config = require "csms.config"
local errors = require "csms.errors"
local metadata = require "csms.metadata"
local operation = require "csms.operation"
local ratelimit = require "csms.ratelimit"
local scheduler = require "csms.scheduler"
local transport = require "csms.transport"

local M = {
  _VERSION = "0.1.0",
  errors = errors,
  assert = errors.assert, -- csms.assert(client:backup(name)): raises err as a string
}
M.USER_AGENT = "lua-csms/" .. M._VERSION

local CONTENT_TYPE = "application/json;charset=UTF-8"
local RETRY_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

-- ---------------------------------------------------------------- argument checks (raise)

-- Misuse raises a string at the caller's line (errors.raise), however deep the check is.
local function check(cond, fmt, ...)
  if not cond then errors.raise(("csms: " .. fmt):format(...)) end
end

local function check_type(v, want, name, optional)
  if v == nil and optional then return end
  check(type(v) == want, "%s must be a %s%s, got %s", name, want, optional and " or nil" or "", type(v))
end

local OPTION_TYPES = {
  ak = "string", sk = "string", security_token = "string", auth_token = "string",
  project_id = "string", region = "string", endpoint = "string",
  timeout = "number", connect_timeout = "number", retries = "number", backoff_base = "number",
  backoff_max = "number", retry_after_max = "number", max_response = "number",
  verify_tls = "boolean", cafile = "string", proxy = "string",
  rate_limit = "number", adaptive = "boolean", throttle_deadline = "number", shared_dict = "string",
}

local function check_options(opts)
  check_type(opts, "table", "options", true)
  opts = opts or {}
  for k, v in pairs(opts) do
    if k == "transport" then
      check(type(v) == "function" or type(v) == "table",
        "transport must be a function or a transport table, got %s", type(v))
    elseif k == "metadata" then
      check(type(v) == "boolean" or type(v) == "string",
        "metadata must be a boolean or a URL, got %s", type(v))
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
  check(opts.rate_limit == nil or (opts.rate_limit >= ratelimit.MIN_RATE and opts.rate_limit < math.huge),
    "rate_limit must be a number of requests per second >= %s", ratelimit.MIN_RATE)
  return opts
end

-- ---------------------------------------------------------------- input validation (nil, err)

local function invalid(op, msg)
  return nil, errors.new("invalid_argument", msg, { op = op })
end

local function name_problem(name)
  if #name < 1 or #name > 64 then return "secret name must be 1 to 64 characters long" end
  if name:find("[^A-Za-z0-9_%-]") then
    return "secret name may only hold letters, digits, '_' and '-' (^[a-zA-Z0-9_-]{1,64}$)"
  end
end

-- The documented shape (at most 5,242,880 characters): prefix, domain, then a compact JWE
-- whose header names alg and enc. The C side checks all but the header's JSON.
local function blob_problem(blob)
  local header, err = core.blob.header(blob)
  if not header then return err end
  local h = cjson.decode(header)
  if type(h) ~= "table" then return "secret_blob's JWE header is not a JSON object" end
  if type(h.alg) ~= "string" or type(h.enc) ~= "string" then
    return "secret_blob's JWE header does not name alg and enc"
  end
end

function M.validate_name(name)
  check_type(name, "string", "secret name")
  local p = name_problem(name)
  if p then return invalid(nil, p) end
  return true
end

function M.validate_blob(blob)
  check_type(blob, "string", "secret_blob")
  local p = blob_problem(blob)
  if p then return invalid(nil, p) end
  return true
end

-- ---------------------------------------------------------------- signing

local function unsigned_set(opts)
  check_type(opts, "table", "options", true)
  if not opts or not opts.unsigned_headers then return nil end
  check_type(opts.unsigned_headers, "table", "unsigned_headers")
  local set = {}
  for _, n in ipairs(opts.unsigned_headers) do set[n:lower()] = true end
  return set
end

-- credentials table -> { signer = core.signer, ak, sk, token }: the HMAC key schedule made for
-- a table is kept while the table lives (weak keys), so signing again with the same table does
-- not redo it. The entry holds the same strings the table does, to notice when they change.
local signers = setmetatable({}, { __mode = "k" })

local function new_signer(creds)
  check_type(creds, "table", "credentials")
  check_type(creds.ak, "string", "credentials.ak")
  check_type(creds.sk, "string", "credentials.sk")
  check_type(creds.security_token, "string", "credentials.security_token", true)
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
    if not signer then return invalid("sign", err) end
  end
  local headers, code
  headers, err, code = core.signer.sign_request(signer, req, opts ~= nil and unsigned_set(opts) or nil)
  if headers then return headers end
  if code == "misuse" then errors.raise("csms: " .. err) end
  return invalid("sign", err)
end

-- The canonical request csms.sign would hash: to compare with the one a gateway sends back
-- in a 401 message.
function M.canonical_request(req, opts)
  local signer = core.signer.new("AK", "SK")
  local headers, canonical, code = core.signer.sign_request(signer, req, unsigned_set(opts), true)
  core.signer.wipe(signer)
  if code == "misuse" then errors.raise("csms: " .. canonical) end -- canonical holds the message
  if not headers then return invalid("sign", canonical) end
  return canonical
end

-- ---------------------------------------------------------------- client

local Client = {}
Client.__index = Client
-- client -> { signer | auth_token, secrets (to redact), metadata, metadata_transport, expires_at }
local private = setmetatable({}, { __mode = "k" })

-- The transport a client uses unless given one: libcurl, or inside nginx cosockets (never a
-- blocking call on a serving worker: csms.cosocket).
local function default_transport(opts)
  if ngx and type(ngx.get_phase) == "function" then
    if opts.cafile or opts.proxy then
      return nil, errors.new("config", "cafile and proxy are not available inside nginx: set "
        .. "lua_ssl_trusted_certificate, and reach the endpoint directly")
    end
    return require("csms.cosocket").auto(opts, transport.curl)
  end
  return transport.curl(opts)
end

-- Temporary credentials from the ECS metadata service, now and again before they expire.
local function load_metadata_credentials(self, p)
  local creds, err = metadata.fetch(p.metadata_transport, p.metadata, self.project_id == nil)
  if not creds then return nil, err end
  local signer
  signer, err = core.signer.new(creds.ak, creds.sk, creds.security_token)
  if not signer then return nil, errors.new("config", "ECS metadata: " .. err) end
  if p.signer then core.signer.wipe(p.signer) end
  p.signer, p.expires_at = signer, creds.expires_at
  p.secrets = { creds.security_token }
  self.project_id = self.project_id or creds.project_id
  return true
end

function M.new(opts)
  opts = check_options(opts)
  local s, err = config.resolve(opts)
  if not s then return nil, err end
  local self = setmetatable({
    endpoint = s.endpoint,
    project_id = s.project_id,
    region = opts.region,
    auth = s.auth_token and "token" or s.metadata and "ecs-metadata" or "aksk",
    retries = opts.retries or 3,
    backoff_base = opts.backoff_base or 0.2,
    backoff_max = opts.backoff_max or 10,
    retry_after_max = opts.retry_after_max or 30,
    throttle_deadline = opts.throttle_deadline or 300,
    clock_skew = 0, -- seconds added to the local clock when signing
    budget = ratelimit.budget(),
  }, Client)
  self.host = self.endpoint:match("^https?://([^/]+)")
  local dict
  if opts.shared_dict then
    dict = ngx and ngx.shared and ngx.shared[opts.shared_dict]
    if not dict then
      return nil, errors.new("config", "shared_dict: no lua_shared_dict named " .. opts.shared_dict
        .. " (declare it in nginx's http block: lua_shared_dict " .. opts.shared_dict .. " 1m;)")
    end
  end
  self.limiter = ratelimit.new { clock = operation.clock, rate_limit = opts.rate_limit,
    adaptive = opts.adaptive, dict = dict,
    key = "csms:rate:" .. self.endpoint .. ":" .. tostring(self.project_id) }
  if type(opts.transport) == "function" then
    self.transport = transport.from_function(opts.transport)
  else
    self.transport = opts.transport
    if not self.transport then
      self.transport, err = default_transport(opts)
      if not self.transport then return nil, err end
    end
  end
  transport.mode(self.transport) -- raises on a transport that declares a mode it cannot keep
  -- Tokens travel in headers, so a server may echo them: errors redact them. The SK never
  -- leaves the C signer (a server cannot echo it) and is not kept here.
  local p = { secrets = { s.security_token or s.auth_token } } -- at most one of the two
  if s.auth_token then
    p.auth_token = s.auth_token
  elseif s.metadata then
    p.metadata = s.metadata
    p.metadata_transport = default_transport(metadata.TIMEOUTS)
    local ok
    ok, err = load_metadata_credentials(self, p)
    if not ok then return nil, err end
  else
    p.signer, err = core.signer.new(s.ak, s.sk, s.security_token)
    if not p.signer then return nil, errors.new("config", err) end
  end
  private[self] = p
  return self
end

function Client:__tostring()
  return ("csms.client(%s, project %s, %s auth)"):format(self.endpoint, self.project_id, self.auth)
end

function Client:close()
  local p = private[self]
  if not p then return end
  if p.signer then core.signer.wipe(p.signer) end
  if p.metadata_transport then p.metadata_transport:close() end
  private[self] = nil
  self.transport:close()
end
Client.__close = Client.close
Client.__gc = Client.close -- Lua 5.2+; on LuaJIT the userdata inside free themselves

-- Builds and signs the request for one attempt (every attempt is signed afresh).
function Client:prepare(method, path, body)
  local p = private[self]
  if not p then errors.raise("csms: client used after close") end
  local url = self.endpoint .. path
  if p.auth_token then
    return { method = method, url = url, body = body, headers = {
      ["Content-Type"] = CONTENT_TYPE, ["User-Agent"] = M.USER_AGENT, Host = self.host,
      ["X-Auth-Token"] = p.auth_token,
    } }
  end
  if p.expires_at and os.time() + metadata.REFRESH_MARGIN >= p.expires_at then
    local ok, err = load_metadata_credentials(self, p)
    -- Credentials that are still valid serve until the service answers again.
    if not ok and os.time() >= p.expires_at then return nil, err end
  end
  -- The same header table every time: the signer's cache of canonical headers then hits, and
  -- core.signer.sign returns a new table with X-Sdk-Date and Authorization added.
  local headers = p.headers
  if not headers or headers["User-Agent"] ~= M.USER_AGENT then
    headers = { ["Content-Type"] = CONTENT_TYPE, ["User-Agent"] = M.USER_AGENT, Host = self.host,
      ["X-Project-Id"] = self.project_id }
    p.headers = headers
  end
  local signed, err = core.signer.sign(p.signer, method, url, headers, body, os.time() + self.clock_skew)
  if not signed then return nil, errors.new("invalid_argument", err) end
  return { method = method, url = url, headers = signed, body = body }
end

-- The error for a non-2xx answer.
function Client:http_error(op, res)
  local e = errors.answer_fields(res, private[self] and private[self].secrets or {})
  return errors.new("http", nil, {
    op = op,
    status = res.status,
    error_code = e.error_code,
    error_msg = e.error_msg,
    request_id = e.request_id,
    encoded_authorization_message = e.encoded_authorization_message,
    retryable = RETRY_STATUS[res.status] or false,
    conflict = errors.is_conflict(res.status, e.error_msg) or nil,
  })
end

-- The operation for one API call (csms.operation); finish(doc, request_id) turns a decoded
-- 2xx answer into the result, or nil, err.
function Client:operation(op, method, path, body, finish)
  return operation.new(self, op, method, path, body, finish)
end

-- Runs an operation to its end (csms.scheduler: the client's limiter and retry budget).
function Client:run(op)
  return scheduler.run_one(self, op)
end

local function bad_response(msg) return nil, errors.new("bad_response", msg) end

local function backup_result(doc, rid)
  if type(doc) ~= "table" or type(doc.secret_blob) ~= "string" or doc.secret_blob == "" then
    return bad_response("the answer has no secret_blob string")
  end
  return { secret_blob = doc.secret_blob, request_id = rid }
end

local function restore_result(doc, rid)
  if type(doc) ~= "table" or type(doc.secret) ~= "table" then
    return bad_response("the answer has no secret object")
  end
  return { secret = doc.secret, request_id = rid }
end

-- A JSON array as cjson decodes it: keys 1..n and nothing else ([] decodes to {} too).
local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function list_result(doc, rid)
  if type(doc) ~= "table" or not is_list(doc.secrets) then
    return bad_response("the answer has no secrets list")
  end
  return { secrets = doc.secrets, page_info = doc.page_info, request_id = rid }
end

local function as_is(doc) return doc end

-- The operation behind client:backup(name), or nil, err for a bad name.
function Client:backup_operation(name)
  check_type(name, "string", "secret name")
  local p = name_problem(name)
  if p then return invalid("backup", p) end
  return self:operation("backup", "POST", "/v1/" .. self.project_id .. "/secrets/" .. name .. "/backup",
    nil, backup_result)
end

-- The operation behind client:restore(blob), or nil, err for a blob of the wrong shape.
function Client:restore_operation(blob)
  check_type(blob, "string", "secret_blob")
  local p = blob_problem(blob)
  if p then return invalid("restore", p) end
  return self:operation("restore", "POST", "/v1/" .. self.project_id .. "/secrets/restore",
    cjson.encode { secret_blob = blob }, restore_result)
end

local function run_or_fail(self, op, err)
  if not op then return nil, err end
  return self:run(op)
end

-- DownloadSecretBlob: res.secret_blob (every version, encrypted), res.request_id.
function Client:backup(name)
  return run_or_fail(self, self:backup_operation(name))
end

-- UploadSecretBlob: res.secret (metadata, never the value), res.request_id.
function Client:restore(blob)
  return run_or_fail(self, self:restore_operation(blob))
end

-- ListSecrets: res.secrets, res.page_info ({ next_marker, previous_marker, current_count }).
function Client:list_secrets(opts)
  check_type(opts, "table", "options", true)
  opts = opts or {}
  check_type(opts.limit, "number", "limit", true)
  check_type(opts.marker, "string", "marker", true)
  local q = {}
  if opts.limit then
    if opts.limit < 1 or opts.limit > 200 or opts.limit ~= math.floor(opts.limit) then
      return invalid("list", "limit must be a whole number from 1 to 200")
    end
    q[#q + 1] = ("limit=%d"):format(opts.limit)
  end
  if opts.marker then
    local p = name_problem(opts.marker)
    if p then return invalid("list", "marker: " .. p) end
    q[#q + 1] = "marker=" .. opts.marker
  end
  local path = "/v1/" .. self.project_id .. "/secrets" .. (#q > 0 and "?" .. table.concat(q, "&") or "")
  return self:run(self:operation("list", "GET", path, nil, list_result))
end

-- Any other CSMS call (create, delete, versions...), signed and retried like the ones above:
-- path is the whole path ("/v1/" .. client.project_id .. "/secrets"), body a string or a table
-- (sent as JSON). Returns the decoded answer (true when it is empty) and the request id.
function Client:request(method, path, body)
  check_type(method, "string", "method")
  check_type(path, "string", "path")
  check(body == nil or type(body) == "string" or type(body) == "table",
    "body must be a string, a table or nil, got %s", type(body))
  if not path:find("^/") then return invalid("request", "path must start with '/'") end
  if type(body) == "table" then
    local encoded, err = cjson.encode(body)
    if not encoded then return invalid("request", "body cannot be sent as JSON: " .. err) end
    body = encoded
  end
  local op = self:operation(method:lower(), method, path, body, as_is)
  local doc, err = self:run(op)
  if doc == nil then return nil, err end
  return doc, op.request_id
end

-- ---------------------------------------------------------------- one-shots

local function one_shot(method, arg, opts)
  local client, err = M.new(opts)
  if not client then return nil, err end
  local res, e = Client[method](client, arg)
  client:close()
  return res, e
end

function M.backup(name, opts)
  check_type(name, "string", "secret name")
  return one_shot("backup", name, opts)
end

function M.restore(blob, opts)
  check_type(blob, "string", "secret_blob")
  return one_shot("restore", blob, opts)
end

M.Client = Client
return M
