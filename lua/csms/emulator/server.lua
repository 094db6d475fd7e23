-- The CSMS emulator's request handling, run by nginx + lua-nginx-module in one worker:
--   init_by_lua_block        { require("csms.emulator.server").init(CONFIG_JSON_PATH) }
--   init_worker_by_lua_block { require("csms.emulator.server").init_worker() }
--   content_by_lua_block     { require("csms.emulator.server").handle() }
-- Behaviour and admin API: docs/emulator.md and docs/emulator-contract.md.
local json = require "csms.emulator.json"
local crypto = require "csms.emulator.crypto"
local signature = require "csms.emulator.signature"
local store = require "csms.emulator.store"
local blob = require "csms.emulator.blob"
local faults = require "csms.emulator.faults"
local throttle = require "csms.emulator.throttle"

local array, null = json.array, json.null
local floor = math.floor

local M = {}

local MAX_BODY = 8 * 1024 * 1024
local MAX_BLOB = 5242880
local MAX_VALUE = 65536
local DATE_WINDOW = 15 * 60
local LOCK_AFTER = 5
local LOCK_SECONDS = 300

M.OPS = { "backup", "restore", "create", "list", "get", "delete", "create_version",
          "list_versions", "get_version" }
local KNOWN_OP = {}
for _, op in ipairs(M.OPS) do KNOWN_OP[op] = true end

-- Module state (one worker) ------------------------------------------------------------------

local settings = {}   -- from the launcher: project_id, ak, sk, token, state_dir, seed, ...
local config = {}     -- runtime configuration (POST /__emulator/config)
local master = {}     -- { key = 32 bytes, kid = string }
local stats
local lockouts = {}   -- ak -> { fails = n, locked_until = seconds }
local limiter         -- throttle.new(...) over config.throttle_rps and config.throttle
local MAX_ARRIVALS = 20000

local function default_config()
  return {
    latency_ms = settings.latency_ms or 0, latency_jitter_ms = 0,
    fault_rate = settings.fault_rate or 0,
    faults = settings.faults or faults.DEFAULT_KINDS, fault_ops = nil,
    retry_after = 1, throttle_rps = settings.throttle_rps or 0, lockout = true,
    clock_skew_s = 0, metadata_ttl_s = 3600, throttle = settings.throttle or {},
  }
end

--- The limiter for the current config: throttle_rps as a fixed-window rule (Retry-After:
--- retry_after), then the throttle rules; every rule starts with fresh state.
local function new_limiter()
  local rules = {}
  if (config.throttle_rps or 0) > 0 then
    rules[1] = { model = "fixed", rate = config.throttle_rps, retry_after = config.retry_after }
  end
  for _, r in ipairs(config.throttle or {}) do rules[#rules + 1] = r end
  limiter = throttle.new(rules)
end

local function reset_stats()
  local requests, throttled_by_op = {}, {}
  for _, op in ipairs(M.OPS) do requests[op], throttled_by_op[op] = 0, 0 end
  requests.unknown = 0
  stats = { requests = requests, total = 0, auth_failures = 0, faults = 0, throttled = 0,
            throttled_by_op = throttled_by_op, admin = 0, metadata = 0,
            arrivals = { count = 0 } }
end

--- Records an API request's arrival (ring of the last MAX_ARRIVALS).
local function record_arrival(t, op, was_throttled)
  local a = stats.arrivals
  a[a.count % MAX_ARRIVALS + 1] = { t = t, op = op, throttled = was_throttled }
  a.count = a.count + 1
end

--- The stats as JSON: arrivals oldest first.
local function public_stats()
  local out = {}
  for k, v in pairs(stats) do out[k] = v end
  local a, list = stats.arrivals, array({})
  local n = math.min(a.count, MAX_ARRIVALS)
  for i = 1, n do list[i] = a[(a.count - n + i - 1) % MAX_ARRIVALS + 1] end
  out.arrivals = list
  return out
end

--- The emulator's clock (seconds, with ms), shifted by clock_skew_s.
local function now()
  return ngx.now() + (config.clock_skew_s or 0)
end

local function now_ms()
  return floor(now() * 1000)
end

-- Start-up ---------------------------------------------------------------------------------

local function load_master_key()
  local dir = settings.state_dir
  local path = dir and dir ~= "" and (dir .. "/master-key.json") or nil
  if path then
    local data = store.read_file(path)
    if data then
      local doc = json.decode(data)
      local key = doc and type(doc.key) == "string" and crypto.unhex(doc.key)
      if not key or #key ~= 32 or type(doc.kid) ~= "string" then
        error("master key file " .. path .. " is not valid")
      end
      master = { key = key, kid = doc.kid }
      return
    end
  end
  master = { key = crypto.random(32), kid = store.uuid() }
  if path then
    local ok, err = store.write_file_atomic(path,
      json.encode({ kid = master.kid, key = crypto.hex(master.key) }) .. "\n", 384)
    if not ok then error("cannot write " .. path .. ": " .. tostring(err)) end
  end
end

local function load_seed(path)
  local data = store.read_file(path)
  if not data then error("cannot read seed file " .. path) end
  local doc, err = json.decode(data)
  if type(doc) ~= "table" or type(doc.secrets) ~= "table" then
    error("seed file " .. path .. " must hold {\"secrets\":[...]}: " .. tostring(err))
  end
  for i, s in ipairs(doc.secrets) do
    if type(s) ~= "table" or not store.valid_name(s.name) or type(s.versions) ~= "table"
        or #s.versions == 0 then
      error("seed file " .. path .. ": entry " .. i .. " needs a valid name and versions")
    end
    if not store.exists(s.name) then
      store.create(s.name, s.versions, s)
    end
  end
end

--- Runs in init_by_lua (master process, before the fork): reads the launcher's settings.
function M.init(settings_path)
  local data = assert(store.read_file(settings_path), "cannot read " .. tostring(settings_path))
  settings = assert(json.decode(data), "bad settings file " .. settings_path)
  for k, v in pairs(settings) do
    if v == null or v == "" then settings[k] = nil end
  end
  for _, kind in ipairs(settings.faults or {}) do
    if not faults.KINDS[kind] then error("unknown fault kind " .. tostring(kind)) end
  end
  settings.project_id = settings.project_id or "7a3f0c1e9b2d4c6a8e0f1a2b3c4d5e6f"
  settings.ak = settings.ak or "EMULATORAK0000000001"
  settings.sk = settings.sk or "emulator-sk-0123456789abcdefghijklmnopqrstuv"
  settings.token = settings.token or "emulator-iam-token"
  local rules = {}
  for i, text in ipairs(settings.throttle_rules or {}) do
    local doc, jerr = json.decode(text)
    local list, terr = throttle.check(doc or text, KNOWN_OP)
    if not list then
      error("--throttle-rule " .. i .. ": " .. (doc and terr or ("not JSON: " .. tostring(jerr))))
    end
    for _, r in ipairs(list) do rules[#rules + 1] = r end
  end
  settings.throttle, settings.throttle_rules = rules, nil
  config = default_config()
  new_limiter()
  reset_stats()
  store.init({ state_dir = settings.state_dir, now_ms = now_ms })
  load_master_key()
  if settings.seed and settings.seed ~= "" then load_seed(settings.seed) end
end

function M.init_worker()
  local seed = 0
  for _, b in ipairs({ crypto.random(4):byte(1, 4) }) do seed = seed * 256 + b end
  math.randomseed(seed)
end

-- Responses ---------------------------------------------------------------------------------

local JSON_TYPE = "application/json;charset=UTF-8"

local function new_request_id()
  return crypto.hex(crypto.random(16))
end

--- Sends a response. kind: "json" (body is a table), "html" (string), or nil for no body.
local function send(status, kind, body, headers)
  ngx.status = status
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  if kind == nil or body == nil then
    ngx.header["Content-Length"] = 0
    return ngx.exit(status)
  end
  local text
  if kind == "json" then
    ngx.header["Content-Type"] = JSON_TYPE
    text = json.encode(body)
  else
    ngx.header["Content-Type"] = "text/html"
    text = body
  end
  ngx.header["Content-Length"] = #text
  ngx.print(text)
  return ngx.exit(ngx.HTTP_OK)
end

local function apig_error(ctx, status, code, msg, headers)
  return status, "json", { error_code = code, error_msg = msg, request_id = ctx.request_id }, headers
end

local function csms_error(status, code, msg)
  return status, "json", { error_code = code, error_msg = msg }
end

local function not_found()
  return csms_error(404, "CSMS.0005", "The resource does not exist.")
end

local function invalid(msg)
  return csms_error(400, "CSMS.0002", msg)
end

-- Request helpers ---------------------------------------------------------------------------

local function split_path(raw_path)
  local segs = {}
  for seg in raw_path:gmatch("[^/]+") do segs[#segs + 1] = signature.decode(seg) end
  return segs
end

local function read_body()
  local len = tonumber(ngx.var.content_length or "")
  if len and len > MAX_BODY then
    ngx.req.discard_body()
    return nil, "too large"
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    body = file and store.read_file(file) or ""
  end
  if #body > MAX_BODY then return nil, "too large" end
  return body
end

local function parse_json_body(ctx)
  local body = ctx.body
  if body == nil or body == "" then
    return nil, { csms_error(400, "CSMS.0004", "The request body is missing.") }
  end
  local doc = json.decode(body)
  if type(doc) ~= "table" or (next(doc) ~= nil and doc[1] ~= nil) then
    return nil, { csms_error(400, "CSMS.0004", "The request body is not a valid JSON object.") }
  end
  return doc
end

local function query_args(raw_query)
  local args = {}
  if not raw_query then return args end
  for part in (raw_query .. "&"):gmatch("([^&]*)&") do
    if part ~= "" then
      local k, v = part:match("^([^=]*)=?(.*)$")
      k, v = signature.decode(k), signature.decode(v)
      if args[k] == nil then args[k] = v end
    end
  end
  return args
end

-- Authentication (API gateway) ----------------------------------------------------------------

local AUTH_PREFIX = "Incorrect IAM authentication information: "

local function auth_fail(ctx, ak, reason)
  stats.auth_failures = stats.auth_failures + 1
  if ak == settings.ak and config.lockout then
    local l = lockouts[ak] or { fails = 0, locked_until = 0 }
    lockouts[ak] = l
    if l.locked_until <= ngx.now() then
      l.fails = l.fails + 1
      if l.fails >= LOCK_AFTER then
        l.locked_until = ngx.now() + LOCK_SECONDS
        l.fails = 0
      end
    end
  end
  return false, { apig_error(ctx, 401, "APIG.0301", AUTH_PREFIX .. reason) }
end

local function header_value(v)
  if type(v) == "table" then return v[1] end
  return v
end

local function authenticate(ctx)
  local headers = ctx.headers
  local authz = headers["authorization"]
  if authz == nil then
    local token = header_value(headers["x-auth-token"])
    if token == nil then
      return auth_fail(ctx, nil, "Authorization not found (send an SDK-HMAC-SHA256 " ..
        "Authorization header or an X-Auth-Token).")
    end
    if token ~= settings.token then
      return auth_fail(ctx, nil, "decrypt token fail (the X-Auth-Token is not the " ..
        "emulator's token).")
    end
    return true
  end
  local auth, perr = signature.parse_authorization(header_value(authz))
  if not auth then return auth_fail(ctx, nil, perr .. ".") end
  local ak = auth.access
  if ak ~= settings.ak then
    return auth_fail(ctx, nil, "the access key " .. ak .. " does not exist.")
  end
  local lock = lockouts[ak]
  if config.lockout and lock and lock.locked_until > ngx.now() then
    stats.auth_failures = stats.auth_failures + 1
    return false, { apig_error(ctx, 401, "APIG.0301", AUTH_PREFIX .. "the access key " .. ak ..
      " is locked for " .. LOCK_SECONDS .. " seconds after " .. LOCK_AFTER ..
      " consecutive authentication failures (" .. floor(lock.locked_until - ngx.now() + 0.5) ..
      " s left).") }
  end
  local has = {}
  for _, n in ipairs(auth.signed_headers) do has[n] = true end
  if not has["host"] then
    return auth_fail(ctx, ak, "host is not in SignedHeaders.")
  end
  if not has["x-sdk-date"] then
    return auth_fail(ctx, ak, "x-sdk-date is not in SignedHeaders.")
  end
  local date = header_value(headers["x-sdk-date"])
  local ts = signature.parse_date(date and signature.trim(date))
  if not ts then
    return auth_fail(ctx, ak, "x-sdk-date is missing or not in the form YYYYMMDDTHHMMSSZ.")
  end
  local current = now()
  if math.abs(current - ts) > DATE_WINDOW then
    return auth_fail(ctx, ak, string.format("x-sdk-date expired, current ts:%d, request ts:%d",
      floor(current * 1000), ts * 1000))
  end
  local canonical = signature.canonical_request({
    method = ctx.method, raw_path = ctx.raw_path, raw_query = ctx.raw_query,
    signed_names = auth.signed_headers, body = ctx.body,
    get_header = function(name) return headers[name] end,
    body_hash = has["x-sdk-content-sha256"] and header_value(headers["x-sdk-content-sha256"])
      or nil,
  })
  local expected = signature.sign(settings.sk, signature.trim(date), canonical)
  if not crypto.equal(expected, auth.signature) then
    return auth_fail(ctx, ak, "verify aksk signature fail, canonicalRequest: " .. canonical)
  end
  lockouts[ak] = nil
  return true
end

-- Operations --------------------------------------------------------------------------------

local function require_secret(name)
  if not store.valid_name(name) then
    return nil, { invalid("Invalid parameter: the secret name must match ^[a-zA-Z0-9_-]{1,64}$.") }
  end
  local r = store.get(name)
  if not r then return nil, { not_found() } end
  return r
end

local function check_value(v)
  if type(v) ~= "string" or v == "" then
    return "Invalid parameter: secret_string is missing or not a non-empty string."
  end
  if #v > MAX_VALUE then
    return "Invalid parameter: secret_string is longer than " .. MAX_VALUE .. " bytes."
  end
end

local ops = {}

function ops.create(ctx)
  local doc, err = parse_json_body(ctx)
  if not doc then return unpack(err) end
  if not store.valid_name(doc.name) then
    return invalid("Invalid parameter: name must match ^[a-zA-Z0-9_-]{1,64}$.")
  end
  local verr = check_value(doc.secret_string)
  if verr then return invalid(verr) end
  for _, f in ipairs({ "description", "kms_key_id", "secret_type" }) do
    if doc[f] ~= nil and type(doc[f]) ~= "string" then
      return invalid("Invalid parameter: " .. f .. " must be a string.")
    end
  end
  if doc.description and #doc.description > 2048 then
    return invalid("Invalid parameter: description is longer than 2048 characters.")
  end
  if store.exists(doc.name) then
    return invalid("The secret " .. doc.name .. " already exists.")
  end
  local r = store.create(doc.name, { doc.secret_string }, doc)
  return 200, "json", { secret = store.metadata(r) }
end

function ops.list(ctx)
  local args = query_args(ctx.raw_query)
  local limit = 10
  if args.limit ~= nil then
    limit = tonumber(args.limit)
    if not args.limit:match("^%d+$") or not limit or limit < 1 or limit > 200 then
      return invalid("Invalid parameter: limit must be an integer from 1 to 200.")
    end
  end
  local marker = args.marker
  if marker == "" then marker = nil end
  local all = store.list()
  local page = array({})
  local more = false
  for _, r in ipairs(all) do
    if marker == nil or r.name > marker then
      if #page < limit then
        page[#page + 1] = store.metadata(r)
      else
        more = true
        break
      end
    end
  end
  return 200, "json", {
    secrets = page,
    page_info = {
      next_marker = (more and page[#page].name) or null,
      previous_marker = marker or null,
      current_count = #page,
    },
  }
end

function ops.get(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  return 200, "json", { secret = store.metadata(r) }
end

function ops.delete(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  store.delete(r.name)
  return 204
end

function ops.create_version(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local doc, perr = parse_json_body(ctx)
  if not doc then return unpack(perr) end
  local verr = check_value(doc.secret_string)
  if verr then return invalid(verr) end
  local v = store.add_version(r.name, doc.secret_string)
  return 200, "json", { version = { version_metadata = store.version_metadata(r, v) } }
end

function ops.list_versions(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local list = array({})
  for i, v in ipairs(r.versions) do list[i] = store.version_metadata(r, v) end
  return 200, "json", { version_metadatas = list,
    page_info = { next_marker = null, previous_marker = null, current_count = #list } }
end

function ops.get_version(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local v = store.find_version(r, ctx.version_id)
  if not v then return not_found() end
  return 200, "json", { version = { version_metadata = store.version_metadata(r, v),
    secret_string = v.secret_string } }
end

function ops.backup(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local plaintext = json.encode({ format = "csms-emulator-backup-1",
    project_id = settings.project_id, secret = r })
  return 200, "json", { secret_blob = blob.seal(master.key, master.kid, plaintext) }
end

local function invalid_blob(reason)
  return invalid("The secret_blob is invalid: " .. reason .. ".")
end

function ops.restore(ctx)
  local doc, perr = parse_json_body(ctx)
  if not doc then return unpack(perr) end
  local b = doc.secret_blob
  if type(b) ~= "string" or b == "" then
    return invalid("Invalid parameter: secret_blob is missing or not a string.")
  end
  if #b > MAX_BLOB then
    return invalid("Invalid parameter: secret_blob is longer than " .. MAX_BLOB .. " characters.")
  end
  local plaintext, reason = blob.open(master.key, master.kid, b)
  if not plaintext then return invalid_blob(reason) end
  local content = json.decode(plaintext)
  if type(content) ~= "table" or type(content.secret) ~= "table" then
    return invalid_blob("unreadable content")
  end
  if content.project_id ~= settings.project_id then
    return invalid_blob("it was created in another project")
  end
  local r, nerr = store.normalise(content.secret)
  if not r then return invalid_blob(nerr) end
  if store.exists(r.name) then
    return invalid("The secret " .. r.name .. " already exists.")
  end
  store.insert(r)
  return 200, "json", { secret = store.metadata(r) }
end

-- Routing ----------------------------------------------------------------------------------

--- Returns op, params or nil for an unknown API.
local function route(method, segs)
  if segs[1] ~= "v1" or not segs[2] or segs[3] ~= "secrets" then return nil end
  local n = #segs
  local p = { project_id = segs[2], name = segs[4], version_id = segs[6] }
  if n == 3 then
    if method == "GET" then return "list", p end
    if method == "POST" then return "create", p end
  elseif n == 4 then
    if segs[4] == "restore" and method == "POST" then return "restore", p end
    if method == "GET" then return "get", p end
    if method == "DELETE" then return "delete", p end
  elseif n == 5 then
    if segs[5] == "backup" and method == "POST" then return "backup", p end
    if segs[5] == "versions" and method == "GET" then return "list_versions", p end
    if segs[5] == "versions" and method == "POST" then return "create_version", p end
  elseif n == 6 then
    if segs[5] == "versions" and method == "GET" then return "get_version", p end
  end
  return nil
end

--- Throttles an API request of op: nil when admitted, else the 429's status, kind, body, headers.
local function throttled(ctx, op)
  ngx.update_time()
  local t = floor(ngx.now() * 1000)
  local rule, wait = limiter:admit(op, t)
  record_arrival(t, op, rule ~= nil)
  if not rule then return nil end
  stats.throttled = stats.throttled + 1
  stats.throttled_by_op[op] = stats.throttled_by_op[op] + 1
  local ra = throttle.retry_after(rule, wait)
  return apig_error(ctx, 429, "APIG.0308", throttle.message(rule),
    ra and { ["Retry-After"] = ra } or nil)
end

local function api(ctx)
  local op, params = route(ctx.method, split_path(ctx.raw_path))
  stats.total = stats.total + 1
  if not op then
    stats.requests.unknown = stats.requests.unknown + 1
    return send(apig_error(ctx, 404, "APIG.0101",
      "The API does not exist or has not been published in the environment."))
  end
  stats.requests[op] = stats.requests[op] + 1
  local tstatus, tkind, tbody, theaders = throttled(ctx, op)
  if tstatus then return send(tstatus, tkind, tbody, theaders) end
  local delay = (config.latency_ms or 0) + (config.latency_jitter_ms or 0) * math.random()
  if delay > 0 then ngx.sleep(delay / 1000) end

  local body = read_body()
  if not body then
    return send(apig_error(ctx, 413, "APIG.0201", "Request entity too large: the body exceeds " ..
      MAX_BODY .. " bytes."))
  end
  ctx.body = body
  ctx.headers = ngx.req.get_headers(500)
  local ok, err = authenticate(ctx)
  if not ok then return send(unpack(err)) end
  if params.project_id ~= settings.project_id then
    return send(csms_error(403, "CSMS.0003", "Invalid request: the project ID " ..
      params.project_id .. " in the URL does not match the credentials' project."))
  end

  local fault = faults.pick(op, config)
  if fault then stats.faults = stats.faults + 1 end
  if fault and not faults.after_apply(fault) then
    local status, kind, fbody, headers = faults.response(fault, config, ctx.request_id)
    if status == "drop" then return ngx.exit(444) end
    return send(status, kind, fbody, headers)
  end
  ctx.name, ctx.version_id = params.name, params.version_id
  local status, kind, rbody, headers = ops[op](ctx)
  if fault then
    local fstatus, fkind, fbody, fheaders = faults.response(fault, config, ctx.request_id)
    if fstatus == "drop" then return ngx.exit(444) end
    return send(fstatus, fkind, fbody, fheaders)
  end
  return send(status, kind, rbody, headers)
end

-- Admin API ---------------------------------------------------------------------------------

local CONFIG_TYPES = {
  latency_ms = "number", latency_jitter_ms = "number", fault_rate = "number", faults = "table",
  fault_ops = "table", retry_after = "number", throttle_rps = "number", lockout = "boolean",
  clock_skew_s = "number", metadata_ttl_s = "number", throttle = "table",
}

local function apply_config(doc)
  for k, v in pairs(doc) do
    local t = CONFIG_TYPES[k]
    if not t then return nil, "unknown setting " .. tostring(k) end
    if v ~= null and type(v) ~= t then return nil, k .. " must be a " .. t end
    if v == null then
      if k ~= "fault_ops" and k ~= "throttle" then return nil, k .. " cannot be null" end
    elseif k == "throttle" then
      local rules, terr = throttle.check(v, KNOWN_OP)
      if not rules then return nil, terr end
      doc.throttle = rules
    elseif k == "faults" then
      for _, kind in ipairs(v) do
        if not faults.KINDS[kind] then return nil, "unknown fault kind " .. tostring(kind) end
      end
    elseif k == "fault_ops" then
      for _, o in ipairs(v) do
        if not KNOWN_OP[o] then return nil, "unknown op " .. tostring(o) end
      end
    elseif t == "number" and (v < 0 and k ~= "clock_skew_s") then
      return nil, k .. " must not be negative"
    end
  end
  if doc.fault_rate and doc.fault_rate > 1 then return nil, "fault_rate must be within 0..1" end
  for k, v in pairs(doc) do
    if v == null then config[k] = nil else config[k] = v end
  end
  if doc.throttle ~= nil or doc.throttle_rps or doc.retry_after then new_limiter() end
  return true
end

local function public_config()
  local c = {}
  for k in pairs(CONFIG_TYPES) do c[k] = config[k] end
  c.faults = array({ unpack(config.faults or {}) })
  c.fault_ops = config.fault_ops and array({ unpack(config.fault_ops) }) or null
  c.throttle = array({ unpack(config.throttle or {}) })
  c.pending_faults = faults.pending()
  return c
end

local function admin_error(status, msg)
  return send(status, "json", { error_code = "EMULATOR.0400", error_msg = msg })
end

local function admin_json_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or ""
  local doc, err = json.decode(body)
  if type(doc) ~= "table" then return nil, "the body must be JSON: " .. tostring(err) end
  return doc
end

local function is_loopback(addr)
  return addr == nil or addr:match("^127%.") ~= nil or addr == "::1" or addr == "unix:"
end

local function admin(ctx)
  stats.admin = stats.admin + 1
  if not is_loopback(ngx.var.remote_addr) then
    return admin_error(403, "the admin API answers loopback clients only")
  end
  local what, method = ctx.raw_path:gsub("/+$", ""):sub(#"/__emulator/" + 1), ctx.method
  if what == "health" and method == "GET" then
    return send(200, "json", { ok = true, project_id = settings.project_id,
      endpoint_time_ms = now_ms(), secrets = store.count(), instance = settings.instance })
  elseif what == "reset" and method == "POST" then
    store.clear()
    faults.reset()
    config = default_config()
    lockouts = {}
    new_limiter()
    reset_stats()
    return send(200, "json", { ok = true })
  elseif what == "config" and method == "POST" then
    local doc, err = admin_json_body()
    if not doc then return admin_error(400, err) end
    local ok, cerr = apply_config(doc)
    if not ok then return admin_error(400, cerr) end
    return send(200, "json", public_config())
  elseif what == "config" and method == "GET" then
    return send(200, "json", public_config())
  elseif what == "faults/next" and method == "POST" then
    local doc, err = admin_json_body()
    if not doc then return admin_error(400, err) end
    if doc.kind then doc = { doc } end
    for i, e in ipairs(doc) do
      if type(e) ~= "table" or not faults.KINDS[e.kind] then
        return admin_error(400, "entry " .. i .. ": unknown fault kind " .. tostring(e.kind))
      end
      if e.op ~= nil and not KNOWN_OP[e.op] then
        return admin_error(400, "entry " .. i .. ": unknown op " .. tostring(e.op))
      end
    end
    faults.push(doc)
    return send(200, "json", { ok = true, pending = faults.pending() })
  elseif what == "stats" and method == "GET" then
    return send(200, "json", public_stats())
  elseif what == "stats/reset" and method == "POST" then
    reset_stats()
    return send(200, "json", { ok = true })
  elseif what == "seed" and method == "POST" then
    local doc, err = admin_json_body()
    if not doc then return admin_error(400, err) end
    local list = doc.secrets or { doc }
    local created = array({})
    for i, s in ipairs(list) do
      if type(s) ~= "table" or not store.valid_name(s.name) or type(s.versions) ~= "table"
          or #s.versions == 0 then
        return admin_error(400, "entry " .. i .. " needs a valid name and a list of versions")
      end
      if store.exists(s.name) then
        return send(400, "json", { error_code = "CSMS.0002",
          error_msg = "The secret " .. s.name .. " already exists." })
      end
      for _, v in ipairs(s.versions) do
        if type(v) ~= "string" then return admin_error(400, "versions must be strings") end
      end
      local r = store.create(s.name, s.versions, s)
      created[#created + 1] = store.metadata(r)
    end
    return send(200, "json", { secrets = created })
  elseif what == "secrets" and method == "GET" then
    return send(200, "json", { secrets = store.list() })
  end
  return admin_error(404, "no such admin route: " .. method .. " " .. ctx.raw_path)
end

-- ECS metadata stand-in ---------------------------------------------------------------------
-- What a cloud server's metadata service answers, for the client's credential provider: a
-- session token (PUT), then temporary credentials that expire after metadata_ttl_s, and the
-- instance's project id. The temporary AK/SK are the emulator's own.

local metadata_sessions = {} -- session token -> expiry (seconds)

local function iso_time(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", floor(t)) .. ".000000Z"
end

local function metadata(ctx)
  stats.metadata = stats.metadata + 1
  if ctx.method == "PUT" and ctx.raw_path == "/meta-data/latest/api/token" then
    local ttl = tonumber(ngx.var.http_x_metadata_token_ttl_seconds)
    if not ttl or ttl < 1 or ttl > 21600 then
      return send(400, "html", "<html><title>400 Bad Request</title></html>")
    end
    local token = crypto.hex(crypto.random(16))
    metadata_sessions[token] = now() + ttl
    ngx.header["Content-Type"] = "text/plain"
    ngx.print(token)
    return ngx.exit(ngx.HTTP_OK)
  end
  local token = ngx.var.http_x_metadata_token
  if ctx.method ~= "GET" or not token or (metadata_sessions[token] or 0) < now() then
    return send(401, "html", "<html><title>401 Unauthorized</title></html>")
  end
  if ctx.raw_path == "/openstack/latest/securitykey" then
    return send(200, "json", { credential = {
      access = settings.ak, secret = settings.sk,
      securitytoken = "emulator-security-token-" .. crypto.hex(crypto.random(12)),
      expires_at = iso_time(now() + config.metadata_ttl_s),
    } })
  elseif ctx.raw_path == "/openstack/latest/meta_data.json" then
    return send(200, "json", { uuid = "00000000-0000-4000-8000-000000000001",
      name = "csms-emulator", project_id = settings.project_id })
  end
  return send(404, "html", "<html><title>404 Not Found</title></html>")
end

-- Entry points ------------------------------------------------------------------------------

function M.handle()
  local ctx = { request_id = new_request_id(), method = ngx.req.get_method() }
  ngx.header["X-Request-Id"] = ctx.request_id
  ngx.header["Server"] = "api-gateway"
  if (config.clock_skew_s or 0) ~= 0 then
    ngx.header["Date"] = ngx.http_time(floor(now()))
  end
  local uri = ngx.var.request_uri
  local q = uri:find("?", 1, true)
  if q then
    ctx.raw_path, ctx.raw_query = uri:sub(1, q - 1), uri:sub(q + 1)
  else
    ctx.raw_path = uri
  end
  if ctx.raw_path == "/__emulator" or ctx.raw_path:sub(1, 12) == "/__emulator/" then
    return admin(ctx)
  end
  if ctx.raw_path:find("^/meta%-data/") or ctx.raw_path:find("^/openstack/") then
    return metadata(ctx)
  end
  return api(ctx)
end

return M
