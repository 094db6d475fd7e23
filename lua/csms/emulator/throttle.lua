-- The API gateway's rate limiting: rules of three models, checked per API request.
--   fixed    at most `rate` admitted requests per wall-clock second
--   sliding  at most `rate` admitted requests in any 1000 ms ending now
--   bucket   a token bucket of `burst` tokens (default: `rate` rounded up, at least 1), refilled
--            at `rate` per second; full when the rule is set
-- A rule with an `op` counts and limits that op only; without one, all API ops together. A
-- request is admitted when every rule that applies has room, and only admitted requests use
-- room (a throttled request costs nothing). Times are integer milliseconds, so that a spec can
-- replay the decisions exactly from the arrivals in the stats. Plain Lua: no ngx here.
local ceil, floor, max = math.ceil, math.floor, math.max

local M = {}

M.MODELS = { fixed = true, sliding = true, bucket = true }

local RULE_KEYS = { model = true, rate = true, burst = true, retry_after = true, op = true }

--- Checks one rule from JSON; returns a fresh normalised rule, or nil and a reason.
--- known_op: set of op names.
local function check_rule(r, known_op)
  if type(r) ~= "table" then return nil, "a throttle rule must be an object" end
  for k in pairs(r) do
    if not RULE_KEYS[k] then return nil, "unknown throttle rule key " .. tostring(k) end
  end
  local model = r.model or "fixed"
  if not M.MODELS[model] then
    return nil, "throttle model must be fixed, sliding or bucket, not " .. tostring(model)
  end
  local rate = r.rate
  if type(rate) ~= "number" or rate ~= rate or rate <= 0 or rate == math.huge then
    return nil, "throttle rate must be a positive number (requests per second)"
  end
  if model ~= "bucket" and rate ~= floor(rate) then
    return nil, "a " .. model .. " window's rate must be a whole number"
  end
  local burst = r.burst
  if burst ~= nil then
    if model ~= "bucket" then return nil, "burst applies to the bucket model only" end
    if type(burst) ~= "number" or burst < 1 or burst ~= floor(burst) then
      return nil, "throttle burst must be a whole number of at least 1"
    end
  end
  local ra = r.retry_after
  if ra == nil then ra = false end
  if type(ra) ~= "boolean" and (type(ra) ~= "number" or ra < 0 or ra ~= floor(ra)) then
    return nil, "throttle retry_after must be false, true or a whole number of seconds"
  end
  if r.op ~= nil and not known_op[r.op] then
    return nil, "unknown op " .. tostring(r.op) .. " in a throttle rule"
  end
  if model == "bucket" and burst == nil then burst = max(1, ceil(rate)) end
  return { model = model, rate = rate, burst = burst,
           retry_after = ra, op = r.op }
end

--- A rule or a list of rules (JSON) -> a list of normalised rules, or nil and a reason.
function M.check(v, known_op)
  if type(v) ~= "table" then return nil, "throttle must be a rule or a list of rules" end
  local list = v[1] ~= nil and v or (next(v) == nil and {} or { v })
  local out = {}
  for i, r in ipairs(list) do
    local rule, err = check_rule(r, known_op)
    if not rule then return nil, "throttle rule " .. i .. ": " .. err end
    out[i] = rule
  end
  return out
end

--- The fresh state of a rule (what it holds when set, or after a reset).
local function new_state(rule)
  if rule.model == "fixed" then return { second = -1, count = 0 } end
  if rule.model == "sliding" then return { head = 1, tail = 0 } end -- admitted times, a queue
  return { tokens = rule.burst, last = nil }
end

-- Each model: room(rule, s, now) -> true, or false and the ms until a slot frees; and
-- take(rule, s, now) to use a slot.
local models = {}

models.fixed = {
  room = function(rule, s, now)
    local sec = floor(now / 1000)
    if s.second ~= sec then s.second, s.count = sec, 0 end
    if s.count < rule.rate then return true end
    return false, (sec + 1) * 1000 - now
  end,
  take = function(_, s) s.count = s.count + 1 end,
}

models.sliding = {
  room = function(rule, s, now)
    while s.head <= s.tail and s[s.head] <= now - 1000 do
      s[s.head] = nil
      s.head = s.head + 1
    end
    if s.tail - s.head + 1 < rule.rate then return true end
    return false, s[s.head] + 1000 - now
  end,
  take = function(_, s, now)
    s.tail = s.tail + 1
    s[s.tail] = now
  end,
}

models.bucket = {
  room = function(rule, s, now)
    if s.last then
      s.tokens = math.min(rule.burst, s.tokens + (now - s.last) * rule.rate / 1000)
    end
    s.last = now
    if s.tokens >= 1 then return true end
    return false, (1 - s.tokens) * 1000 / rule.rate
  end,
  take = function(_, s) s.tokens = s.tokens - 1 end,
}

local Limiter = {}
Limiter.__index = Limiter

--- A limiter over a list of normalised rules, each with fresh state.
function M.new(rules)
  local states = {}
  for i, rule in ipairs(rules) do states[i] = new_state(rule) end
  return setmetatable({ rules = rules, states = states }, Limiter)
end

--- Decides one request of op at now (integer ms). Returns nil when admitted (its slot taken in
--- every rule that applies); else the first refusing rule and the ms until every refusing rule
--- has a slot again.
function Limiter:admit(op, now)
  local refused, wait
  for i, rule in ipairs(self.rules) do
    if rule.op == nil or rule.op == op then
      local ok, ms = models[rule.model].room(rule, self.states[i], now)
      if not ok then
        refused = refused or rule
        wait = max(wait or 0, ms)
      end
    end
  end
  if refused then return refused, wait end
  for i, rule in ipairs(self.rules) do
    if rule.op == nil or rule.op == op then models[rule.model].take(rule, self.states[i], now) end
  end
  return nil
end

--- The Retry-After value for a refusal by rule with wait ms to go, or nil for no header.
function M.retry_after(rule, wait_ms)
  local ra = rule.retry_after
  if ra == true then return tostring(max(1, ceil(wait_ms / 1000))) end
  if ra == false then return nil end
  return tostring(ra)
end

--- The gateway's message for a refusal by rule (the real APIG.0308 wording).
function M.message(rule)
  local limit = rule.rate == floor(rule.rate) and string.format("%d", rule.rate)
    or string.format("%g", rule.rate)
  return "The throttling threshold has been reached: policy user over ratelimit,limit:" ..
    limit .. ",time:1 second"
end

return M
