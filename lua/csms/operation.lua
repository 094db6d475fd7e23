-- csms.operation: one API call and its retry state, without I/O. csms.scheduler drives it:
--   local req = op:request()            -- the next attempt, signed now
--   local what, v = op:outcome(res, terr)
--   -- "done", result | "retry", seconds to wait | "failed", err
-- It tells the client's limiter and retry budget (csms.ratelimit) what each answer says.
--
-- The rules: 2xx is done. 429 (throttled: the gateway did not carry the request out, so even a
-- restore may go again) waits its turn and goes again without spending a retry, until the
-- item's throttle_deadline, then fails with kind "throttled". 500/502/503/504 and connection
-- failures and timeouts are retried up to `retries` times, each paid from the retry budget,
-- after a full-jitter backoff or the Retry-After asked for. 401/403 and other 4xx are final;
-- one 401 for an expired signature from a far-off clock is retried once with the clock
-- corrected. A restore (once) that may have been applied and then meets "already exists"
-- fails as conflict_after_retry.
local core = require "csms.core"
local cjson = require "cjson.safe"
local config = require "csms.config"
local errors = require "csms.errors"
local identity = require "csms.identity"

local M = {}

-- Statuses after which the service may have carried out a (non-idempotent) restore.
local MAYBE_APPLIED_STATUS = { [500] = true, [502] = true, [503] = true, [504] = true }
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local SKEW_TOLERANCE = 300 -- seconds the signing clock may be off before it is corrected

M.clock = core.time.monotonic

-- Converts cjson's nulls to nil and whole floats to integers (times are milliseconds).
local function tidy(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if x == cjson.null then v[k] = nil else v[k] = tidy(x) end
    end
  elseif type(v) == "number" and math.tointeger then
    return math.tointeger(v) or v
  end
  return v
end

-- Seconds since the epoch of an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"), or nil.
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
local last_date, last_seconds -- every answer has a Date, the same for a second: parsed once
local function http_date(v)
  if v == last_date then return last_seconds end
  local d, mon, y, hh, mm, ss = (v or ""):match("(%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT")
  local t = d and MONTHS[mon] and
    config.epoch(tonumber(y), MONTHS[mon], tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss))
  last_date, last_seconds = v, t or nil
  return last_seconds
end

-- Seconds from a Retry-After value: delta-seconds or an HTTP date.
local function retry_after_seconds(v, now)
  if not v then return nil end
  local n = tonumber(v:match("^%s*(%d+)%s*$"))
  if n then return n end
  local t = http_date(v)
  return t and math.max(0, t - now)
end

-- The server's clock, from an answer: the time an expired-signature 401 quotes
-- ("current ts:<ms>"), else the Date header. Returns its offset from ours, in seconds.
local function server_clock_offset(res, error_msg)
  local ms = error_msg and tonumber(error_msg:match("current ts:%s*(%d+)"))
  local t = ms and ms / 1000 or http_date(res.headers.date)
  if t then return math.floor(t - os.time() + 0.5) end
end

-- Full jitter: a random wait up to min(backoff_max, backoff_base * 2^(n-1)).
local function backoff(client, n)
  local cap = math.min(client.backoff_max, client.backoff_base * 2 ^ (n - 1))
  return core.crypto.random() * cap
end

local RETRY_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

-- The error for a non-2xx answer (tokens the server may echo taken out: csms.identity keeps
-- the client's).
local function http_error(client, op, res)
  local e = errors.answer_fields(res, identity.secrets(client))
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

local Operation = {}
Operation.__index = Operation

-- finish(doc, request_id) turns a decoded 2xx answer into the result, or nil, err.
function M.new(client, op, method, path, body, finish)
  return setmetatable({
    client = client, op = op, method = method, path = path, body = body, finish = finish,
    attempt = 0, retried = 0, throttles = 0, maybe_applied = false,
    -- DownloadSecretBlob is a POST that changes nothing; every other POST may.
    once = op ~= "backup" and not IDEMPOTENT[method],
  }, Operation)
end

function Operation:request()
  self.attempt = self.attempt + 1
  local now = M.clock()
  self.sent_at = now
  self.client.limiter:sent(now)
  self.deadline = self.deadline or now + self.client.throttle_deadline
  local req, err = identity.prepare(self.client, self.method, self.path, self.body)
  if not req then
    err.op, err.attempts = self.op, self.attempt
    return nil, err
  end
  req.once = self.once
  return req
end

local function done(self, res)
  local client = self.client
  local offset = server_clock_offset(res)
  if offset and math.abs(offset - client.clock_skew) > SKEW_TOLERANCE then client.clock_skew = offset end
  local rid = res.headers["x-request-id"]
  self.request_id = rid
  local doc = res.body == "" or cjson.decode(res.body)
  if doc ~= true and type(doc) ~= "table" then
    return "failed", errors.new("bad_response", "the answer is not a JSON object", {
      op = self.op, status = res.status, request_id = rid, attempts = self.attempt })
  end
  local result, err = self.finish(tidy(doc), rid)
  if result == nil then
    err.op, err.request_id, err.attempts = self.op, rid, self.attempt
    return "failed", err
  end
  return "done", result
end

-- A 429: the gateway did not carry the request out. Wait for the client's turn (the limiter
-- paces every send once it has seen a throttle) and go again, until the deadline.
local function throttled(self, err, res, now)
  local client = self.client
  local ra = retry_after_seconds(res.headers["retry-after"], os.time())
  err.attempts = self.attempt
  if ra and ra > client.retry_after_max then
    err.retryable = false
    return "failed", err
  end
  self.throttles = self.throttles + 1
  client.limiter:throttle(self.sent_at, ra, now)
  if now >= self.deadline then
    return "failed", errors.new("throttled", ("the API gateway still throttled it after %d s "
      .. "(%d answers 429%s): the account's rate limit for this API is lower than this run's "
      .. "demand; lower the concurrency, set rate_limit under that limit, or raise "
      .. "throttle_deadline, then run again (a batch backup with resume skips what is done)")
      :format(client.throttle_deadline, self.throttles,
        err.error_code and ", " .. err.error_code or ""), {
      op = self.op, status = 429, error_code = err.error_code, error_msg = err.error_msg,
      request_id = err.request_id, attempts = self.attempt, retryable = false })
  end
  -- The limiter holds every send back for a Retry-After, and paces them once it has seen a
  -- throttle; without one to pace it (adaptive = false, no rate_limit), a backoff of its own.
  if ra or client.limiter.enabled then return "retry", 0 end
  return "retry", backoff(client, math.min(self.throttles, 10))
end

function Operation:outcome(res, terr)
  local client = self.client
  local now = M.clock()
  local err
  if res and res.status ~= 429 then client.limiter:success(now) end
  if res and res.status >= 200 and res.status < 300 then
    client.budget:success()
    return done(self, res)
  elseif res then
    err = http_error(client, self.op, res)
    if res.status == 429 then return throttled(self, err, res, now) end
    -- A signature the gateway calls expired, signed by a clock far from the server's: correct
    -- the signing clock and try once more (never more: the gateway locks an AK after 5 401s).
    local offset = server_clock_offset(res, res.status == 401 and err.error_msg or nil)
    if offset and math.abs(offset - client.clock_skew) > SKEW_TOLERANCE then
      client.clock_skew = offset
      if res.status == 401 and not self.skew_retried and (err.error_msg or ""):lower():find("expired", 1, true) then
        self.skew_retried = true
        return "retry", 0
      end
    end
    if err.conflict and self.maybe_applied then
      err.kind = "conflict_after_retry"
      err.message = "an earlier attempt may have restored the secret before failing ("
        .. tostring(self.last_err) .. "); the service now says it exists"
    end
    self.maybe_applied = self.maybe_applied or MAYBE_APPLIED_STATUS[res.status] or false
  else
    err = errors.new(terr.kind, terr.message, {
      op = self.op, retryable = terr.kind == "transport" or terr.kind == "timeout" })
    self.maybe_applied = self.maybe_applied or terr.sent or false
  end
  err.attempts = self.attempt
  if not err.retryable then
    if res then client.budget:success() end -- the service answered: it is up
    return "failed", err
  end
  client.budget:failure(err)
  local ra = res and retry_after_seconds(res.headers["retry-after"], os.time())
  if ra and ra > client.retry_after_max then err.retryable = false end
  if not err.retryable or self.retried >= client.retries then return "failed", err end
  if not client.budget:take(err.kind == "timeout") then
    err.budget_spent = true
    return "failed", err
  end
  self.retried = self.retried + 1
  self.last_err = err
  return "retry", ra or backoff(client, self.retried)
end

M.Operation = Operation
return M
