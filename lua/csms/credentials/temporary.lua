-- Temporary credentials: a provider that fetches keys with an expiry (OIDC federation, container
-- credentials, the ECS metadata service) and fetches them again before they expire, one fetch
-- at a time however many requests (or nginx light threads) ask meanwhile. Also what the fetchers
-- share: reading a token file, reading an STS answer, ISO 8601 times.
local cjson = require "cjson.safe"
local config = require "csms.config"
local errors = require "csms.errors"

local M = {}

M.REFRESH_MARGIN = 600 -- seconds before expiry when credentials are fetched again (at most)
M.WAIT_STEP = 0.005    -- seconds between looks while another caller's fetch is in progress
M.RETRY_AFTER = 10     -- seconds before a failed early fetch is tried again (keys still valid)

-- Credentials are plain tables (ak, sk, security_token, expires_at...), printed without secrets.
local Credentials = {}
Credentials.__index = Credentials
function Credentials:__tostring()
  return ("csms.credentials(%s, %s%s)"):format(self.auth or "aksk", self.ak and ("AK " .. self.ak) or "token",
    self.expires_at and (", expires " .. os.date("!%Y-%m-%dT%H:%M:%SZ", self.expires_at)) or "")
end
function M.credentials(t) return setmetatable(t, Credentials) end

-- "2026-11-23T20:00:00.000000Z" (also with an offset, +08:00) -> seconds since the epoch, or nil.
function M.iso_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local shift = 0
  local sign, oh, om = rest:match("([+-])(%d%d):?(%d%d)$")
  if sign then
    shift = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and -1 or 1)
  elseif not rest:match("^%.?%d*Z?$") then
    return nil
  end
  return config.epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
    + shift
end

-- The contents of a token file, trimmed; read at every fetch (its issuer rotates it).
-- field: the setting that names the file, for the error.
function M.read_token_file(path, what, field)
  local f, oerr = io.open(path, "rb")
  if not f then
    return nil, errors.new("config", ("cannot read the %s file %s: %s"):format(what, path,
      (oerr or ""):gsub("^[^:]*: ", "")), { field = field })
  end
  local text = f:read(65536 + 1)
  f:close()
  text = (text or ""):gsub("^%s+", ""):gsub("%s+$", "")
  if text == "" then
    return nil, errors.new("config", ("the %s file %s is empty"):format(what, path), { field = field })
  end
  if #text > 65536 or text:find("[%c]") then
    return nil, errors.new("config", ("the %s file %s does not hold one token"):format(what, path),
      { field = field })
  end
  return text
end

-- Credentials from an STS-style answer: {"credential":{"access","secret","securitytoken",
-- "expires_at"}} (IAM, ECS metadata) or {"credentials":{"accessKeyId","secretAccessKey",
-- "securityToken","expiration"}} (container credentials). what: the source, for the error.
function M.parse(body, what)
  local doc = cjson.decode(body or "")
  local c = type(doc) == "table" and (doc.credential or doc.credentials)
  if type(c) ~= "table" then c = {} end
  local ak = c.access or c.accessKeyId or c.access_key_id
  local sk = c.secret or c.secretAccessKey or c.secret_access_key
  local token = c.securitytoken or c.securityToken or c.security_token
  local expires_at = M.iso_time(c.expires_at or c.expiration)
  if type(ak) ~= "string" or ak == "" or type(sk) ~= "string" or sk == "" or type(token) ~= "string"
    or token == "" or not expires_at then
    return nil, errors.new("bad_response", what .. ": the answer lacks the access key, secret, "
      .. "security token or expiry")
  end
  return M.credentials { ak = ak, sk = sk, security_token = token, expires_at = expires_at }
end

-- The error for an HTTP answer that is not the credentials (the body may echo a token: its
-- fields come redacted of the given secrets).
function M.http_error(what, res, secrets)
  local e = errors.answer_fields(res, secrets or {})
  return errors.new("http", nil, { op = what, status = res.status, error_code = e.error_code,
    error_msg = e.error_msg,
    request_id = e.request_id or errors.redact(res.headers and res.headers["x-iam-trace-id"], secrets or {}) })
end

function M.transport_error(what, terr)
  return errors.new(terr.kind or "transport", what .. ": " .. tostring(terr.message), { op = what })
end

-- A provider that only fails with err (a setting that cannot work; err.absent: nothing set).
function M.failing(name, err)
  local function fail() return nil, err end
  return { name = name, credentials = fail, check = fail }
end

-- ---------------------------------------------------------------- the refreshing provider

local Temporary = {}
Temporary.__index = Temporary

-- fetch(self) -> credentials (with expires_at) | nil, err. opts: refresh_margin (seconds),
-- clock (function -> seconds, default os.time), sleep (function(seconds): how a caller waits
-- for another's fetch; default the transport's sleep).
function M.new(name, fetch, opts)
  opts = opts or {}
  return setmetatable({
    name = name, fetch = fetch, transport = opts.transport,
    margin = opts.refresh_margin or M.REFRESH_MARGIN,
    clock = opts.clock or os.time, sleep = opts.sleep,
    fetches = 0,
  }, Temporary)
end

-- Credentials that expire are fetched again `margin` seconds before, or half-way through their
-- life when that is shorter (short-lived keys are not fetched at every request).
local function due(self, c, now)
  if not c.expires_at then return false end
  local margin = math.min(self.margin, (c.expires_at - self.fetched_at) / 2)
  return now + margin >= c.expires_at
end

-- PUC Lua 5.1's pcall cannot yield (a fetch on a transport that yields would fail in it).
local PCALL_YIELDS = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

local function in_coroutine()
  if coroutine.isyieldable then return coroutine.isyieldable() end
  local co, main = coroutine.running()
  return co ~= nil and not main
end

local function valid(c, t)
  return c ~= nil and (c.expires_at == nil or t < c.expires_at)
end

local function wait(self, seconds)
  if self.sleep then return self.sleep(seconds) end
  if self.transport then return self.transport:sleep(seconds) end
  require("csms.core").sleep(seconds)
end

-- Settings only, no I/O: true, or nil, err for settings that cannot work.
function Temporary:check()
  if self.err then return nil, self.err end
  return true
end

function Temporary:credentials()
  if self.err then return nil, self.err end
  local now = self.clock()
  local c = self.current
  local usable = valid(c, now)
  if c and (not due(self, c, now) or (usable and now < (self.retry_at or 0))) then return c end
  if self.busy then
    -- Another caller is fetching: keys still valid serve meanwhile; else wait for its result.
    if usable then return c end
    while self.busy do wait(self, M.WAIT_STEP) end
    c = self.current
    if valid(c, self.clock()) then return c end
    return nil, self.last_error
  end
  self.busy = true
  self.fetches = self.fetches + 1
  local ok, new, err
  if PCALL_YIELDS or not in_coroutine() then
    ok, new, err = pcall(self.fetch, self)
  else -- PUC 5.1 inside a coroutine: its pcall cannot yield, so the fetch runs unprotected
    ok, new, err = true, self.fetch(self)
  end
  self.busy = false
  if not ok then
    new, err = nil, errors.new("config", self.name .. " credentials: " .. tostring(new))
  end
  if new then
    self.current, self.fetched_at, self.last_error = new, now, nil
    return new
  end
  self.last_error = err
  -- Keys that are still valid serve until the service answers again.
  if usable and valid(c, self.clock()) then
    self.retry_at = now + M.RETRY_AFTER
    return c
  end
  return nil, err
end

-- The transport a fetcher uses unless given one: short timeouts, the client's TLS settings
-- (verify_tls, cafile, proxy). An error (cafile inside nginx) surfaces at the first fetch.
function M.default_transport(timeouts, tls)
  local o = {}
  for k, v in pairs(timeouts) do o[k] = v end
  for k, v in pairs(tls or {}) do o[k] = v end
  local t, err = require("csms.transport").default(o)
  if t then return t end
  return { request = function() return nil, { kind = "config", message = err.message } end,
    sleep = function(_, s) require("csms.core").sleep(s) end, close = function() end }
end

-- Providers with default transports are kept per process, keyed by their settings: clients
-- made one after another (one per nginx request, say) share their keys and their refreshes.
local shared = {}
function M.forget() shared = {} end

function M.shared(key, opts, make)
  if opts.transport or opts.clock or opts.sleep then return make() end
  local p = shared[key]
  if not p then
    p = make()
    shared[key] = p
  end
  return p
end

return M
