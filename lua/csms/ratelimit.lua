-- csms.ratelimit: what every request of one client shares about the service's limits.
--
-- Limiter: a token bucket every send takes a token from. It is off until the first throttling
-- answer (429), unless rate_limit fixes a rate from the start. Its fill rate then follows the
-- AWS SDKs' adaptive mode (CUBIC): on a throttle remember the rate as w_max and cut it to 0.7 of
-- it; on success grow along 0.4 * (t - K)^3 + w_max, K = cbrt(0.3 * w_max / 0.4); never above
-- twice the measured send rate, never below 0.5/s, never above rate_limit. Unlike botocore, the
-- throttles of requests sent before the last cut do not cut again: the burst that met the limit
-- is one event, not twenty, and a cut waits a second after the last (gateways count per second).
-- A Retry-After pauses every send of the client.
--
-- Budget: the AWS SDKs' standard-mode retry quota: 500 tokens, an error retry costs 5 (a timeout
-- 10), every success gives 1 back; a retry that finds too few is not made. Throttles cost nothing.
--
-- Times are seconds from clock() (core.monotonic: the same clock in every process of a machine,
-- so nginx workers can share a limiter's state through a lua_shared_dict).
local M = {}

M.MIN_RATE = 0.5
local BETA, SCALE = 0.7, 0.4
local SLOT, SLOTS = 0.1, 10  -- the send rate is measured over the last second in 0.1 s slots
local SHARE_EVERY = 0.5      -- seconds between reads of a shared dict

local Limiter = {}
Limiter.__index = Limiter

-- opts: clock (function), rate_limit (req/s or nil), adaptive (default true),
-- dict (an ngx.shared dict or nil), key (the dict key).
--
-- The bucket is kept as a virtual schedule (GCRA): tat is the time the next send is due at the
-- current rate; a send may go up to `burst` seconds early. acquire() hands out turns in order,
-- so every caller knows at once how long it waits (csms.scheduler keeps them in a queue).
function M.new(opts)
  local self = setmetatable({
    clock = opts.clock, fixed = opts.rate_limit, adaptive = opts.adaptive ~= false,
    dict = opts.dict, key = opts.key,
    enabled = false, rate = nil, burst = 0, tat = -math.huge,
    paused_until = -math.huge, reset_at = -math.huge, w_max = 0, k = 0, last_cut = -math.huge,
    throttled = 0, in_a_row = 0, sends = 0, slots = {}, slot_of = {}, synced_at = -math.huge,
  }, Limiter)
  if self.fixed then
    self.enabled = true
    self:set_rate(self.fixed)
  end
  return self
end

function Limiter:set_rate(r)
  r = math.max(M.MIN_RATE, r)
  if self.fixed then r = math.min(r, self.fixed) end
  self.rate = r
  -- A burst of a quarter second's worth (at least one send): a sliding-window gateway then sees
  -- at most 1.25 s worth of sends in any second.
  self.burst = (math.max(1, r / 4) - 1) / r
end

-- Sends the caller has already been given a turn for are forgotten: the queue starts again
-- from now at the new rate (they ask again: reset_at is later than their turn).
function Limiter:reset(now)
  self.reset_at, self.reset_rate = now, self.rate
  self.tat = math.max(now, self.paused_until)
end

local function record(self, now)
  local slot = math.floor(now / SLOT)
  local s, i = self.slot_of, slot % SLOTS
  if s[i] ~= slot then s[i], self.slots[i] = slot, 0 end
  self.slots[i] = self.slots[i] + 1
  self.sends = self.sends + 1
  self.first_send = self.first_send or now
end

-- The sends of the last second (0.1 s slots), per second: the "current send rate". In the
-- client's first second, over the time since its first send (at least a quarter second), so
-- the burst that meets a limit first is measured at its real rate.
function Limiter:send_rate(now)
  now = now or self.clock()
  local slot = math.floor(now / SLOT)
  local s, sum = self.slot_of, 0
  for i = 0, SLOTS - 1 do
    if s[i] and s[i] > slot - SLOTS then sum = sum + self.slots[i] end
  end
  local span = SLOT * SLOTS
  if self.first_send then span = math.min(span, math.max(0.25, now - self.first_send)) end
  return sum / span
end

-- ---------------------------------------------------------------- sharing across nginx workers
-- The dict holds "enabled rate w_max k last_cut paused_until" under key; a worker adopts a state
-- newer than its own (a later cut, a later pause) and writes its own after each change.

function Limiter:share(now)
  if not self.dict then return end
  self.dict:set(self.key, ("%d %.6f %.6f %.6f %.6f %.6f"):format(self.enabled and 1 or 0,
    self.rate or 0, self.w_max, self.k, self.last_cut == -math.huge and -1 or self.last_cut,
    self.paused_until == -math.huge and -1 or self.paused_until))
  self.synced_at = now
end

function Limiter:sync(now)
  if not self.dict or now - self.synced_at < SHARE_EVERY then return end
  self.synced_at = now
  local v = self.dict:get(self.key)
  if type(v) ~= "string" then return end
  local en, rate, w_max, k, cut, pause = v:match("^(%d) (%S+) (%S+) (%S+) (%S+) (%S+)$")
  if not en then return end
  rate, w_max, k, cut, pause = tonumber(rate), tonumber(w_max), tonumber(k), tonumber(cut), tonumber(pause)
  local newer = false
  if pause and pause > self.paused_until then self.paused_until, newer = pause, true end
  if en == "1" and self.adaptive and cut and cut > self.last_cut then
    self.enabled, self.w_max, self.k, self.last_cut = true, w_max, k, cut
    self:set_rate(rate)
    newer = true
  end
  if newer then self:reset(now) end
end

-- ---------------------------------------------------------------- the three events

-- Before a send: the caller's turn. Returns the seconds to wait before sending (0: now). A
-- caller that waits sends when its turn comes, unless reset_at passes the time it asked (a
-- cut or a Retry-After since): then it asks again.
function Limiter:acquire(now)
  now = now or self.clock()
  self:sync(now)
  local at = math.max(now, self.paused_until)
  if self.enabled then
    at = math.max(at, self.tat - self.burst)
    self.tat = math.max(self.tat, at) + 1 / self.rate
  end
  return at - now
end

-- A request going out now: counted in the measured send rate.
function Limiter:sent(now)
  record(self, now or self.clock())
end

-- A throttling answer to a request sent at sent_at; retry_after: the seconds the gateway asked
-- for, or nil.
function Limiter:throttle(sent_at, retry_after, now)
  now = now or self.clock()
  self.throttled = self.throttled + 1
  local changed = false
  if retry_after and retry_after > 0 and now + retry_after > self.paused_until then
    self.paused_until = now + retry_after
    changed = true
  end
  -- One cut per event: not for requests sent before the last cut, and not twice within a second
  -- (a fixed window, once spent, refuses everything until the next second, whatever the rate).
  if self.adaptive and sent_at >= self.last_cut and now - self.last_cut >= 1 then
    local measured = self:send_rate(now)
    local r = self.enabled and math.min(measured, self.rate) or measured
    r = math.max(r, M.MIN_RATE)
    self.w_max = r
    self.k = (r * (1 - BETA) / SCALE) ^ (1 / 3)
    self.last_cut = now
    self.enabled = true
    self:set_rate(r * BETA)
    changed = true
  end
  if changed then
    self:reset(now)
    self:share(now)
  end
  -- Throttles in a row without a Retry-After: each holds the next turn back twice as long as
  -- the last (from one interval up to a second), so a spent window is not asked again and again.
  self.in_a_row = self.in_a_row + 1
  if self.enabled and not (retry_after and retry_after > 0) then
    local hold = math.min(1, 2 ^ (self.in_a_row - 1) / self.rate)
    if now + hold > self.tat then
      self:reset(now)
      self.tat = now + hold
    end
  end
end

-- An answer that was not a throttle (any status: the gateway let it through).
function Limiter:success(now)
  self.in_a_row = 0
  if not (self.enabled and self.adaptive and self.last_cut > -math.huge) then return end
  now = now or self.clock()
  local r = SCALE * (now - self.last_cut - self.k) ^ 3 + self.w_max
  -- Growth stops at twice what the client really sends (it may be held back by its
  -- concurrency, not the rate): never a cut, which only a throttle makes.
  self:set_rate(math.min(r, math.max(self.rate, 2 * self:send_rate(now))))
  -- Turns handed out at a much lower rate are handed out again at this one.
  if self.rate > 1.25 * (self.reset_rate or 0) then self:reset(now) end
end

-- What a report shows: { rate = current fill rate or nil (off), send_rate, throttled, sends }.
function Limiter:status(now)
  now = now or self.clock()
  return { rate = self.enabled and self.rate or nil, send_rate = self:send_rate(now),
           throttled = self.throttled, sends = self.sends }
end

M.Limiter = Limiter

-- ---------------------------------------------------------------- retry budget

local Budget = {}
Budget.__index = Budget

M.BUDGET, M.RETRY_COST, M.TIMEOUT_COST = 500, 5, 10

function M.budget(max)
  max = max or M.BUDGET
  return setmetatable({ max = max, tokens = max, streak = 0 }, Budget)
end

-- Takes the cost of one error retry; false when the budget cannot pay for it.
function Budget:take(timeout)
  local cost = timeout and M.TIMEOUT_COST or M.RETRY_COST
  if self.tokens < cost then return false end
  self.tokens = self.tokens - cost
  return true
end

-- A retryable failure (before any retry is paid for): counted towards dead().
function Budget:failure(err)
  self.streak = self.streak + 1
  self.last_err = err
end

function Budget:success()
  self.tokens = math.min(self.max, self.tokens + 1)
  self.streak = 0
end

-- Spent by failures alone: at least a whole budget's worth of failed attempts and no success
-- since. The service is down; a batch stops starting new items.
function Budget:dead()
  return self.tokens < M.RETRY_COST and self.streak >= self.max / M.TIMEOUT_COST
end

M.Budget = Budget
return M
