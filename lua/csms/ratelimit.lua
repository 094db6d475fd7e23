-- csms.ratelimit: what every request of one client shares about the service's limits.
--
-- Limiter. Before the first throttling answer (429) nothing is paced, but the requests in flight
-- start at a few and grow by one per answer (doubling per round trip, as TCP's slow start), so
-- a run of 64 in flight does not send 64 blind requests at a limit it does not know yet. From
-- the first 429 (or from the start, when rate_limit fixes a rate) every send takes a turn from a
-- token bucket whose rate adapts (the AWS SDKs' adaptive mode is the prior art), in the way a
-- gateway's limit calls for: it is fixed per account and counted per second, so
--   * a throttle measures the ceiling: what the gateway let through in the second before the
--     throttled request was sent (the sends of that second less their 429s, by send time and
--     to the exact instant; taken REMEASURE_AFTER after the 429, once the 429s of requests
--     sent before it, which may still be on their way, are in). Once the client has sent for a
--     second, every such measure is at least the limit (a fixed or sliding window that refuses
--     is full; a bucket that refuses is empty, so it let through its rate plus what it held a
--     second before), and the least of them is the ceiling: a fixed window's boundary inside
--     the measured second makes one high, the refusals after it in the same window measure
--     less of the window before. The rate goes straight to just under it (0.95), not to 0.7 of
--     the send rate as in CUBIC: a cut relative to an overshoot that can be 10x the limit takes
--     many seconds of 429s to come down;
--   * the rate stays there, and only after a while probes above it, geometrically: soon and
--     fast after a measure from the client's first second (a bucket's burst spent in a fraction
--     of it measures low; a window's boundary inside it, high: the next measure replaces it),
--     later and slowly otherwise; with a Retry-After the first second's measure is kept as any
--     other (a probe costs a pause).
--     Each probe that meets the same ceiling doubles the wait before the next (2 s up to 64 s):
--     every probe costs a few 429s, and a Retry-After's whole pause each (so with one, at least
--     20 pauses' worth between probes). Two seconds of sends above the ceiling without a 429
--     raise it;
--   * one throttle event per second: the throttles of requests sent before the last cut, or
--     within a second of it, do not cut again (a spent fixed window refuses everything until the
--     next second, whatever the rate), though their measures may lower the ceiling; 429s to
--     requests sent before the last 429 came back are one volley (one hold, not one each);
--   * a Retry-After pauses every send of the client, and only that: the pause is the gateway's
--     clock, not a measure of the ceiling.
-- Never above rate_limit; never below 0.5/s; no growth above twice the measured send rate (a
-- client held back by its concurrency does not earn a rate it never uses).
--
-- Budget: the AWS SDKs' standard-mode retry quota: 500 tokens, an error retry costs 5 (a timeout
-- 10), every success gives 1 back; a retry that finds too few is not made. Throttles cost nothing.
--
-- Times are seconds from clock() (core.monotonic: the same clock in every process of a machine,
-- so nginx workers can share a limiter's state through a lua_shared_dict).
local M = {}

M.MIN_RATE = 0.5
M.SETTLE = 0.95          -- the rate settles at this share of the measured ceiling
M.INITIAL_WINDOW = 4     -- requests in flight before the first answer (slow start)
M.SLOW_START_STEP = 0.1 -- ... doubling at least this often (seconds)
M.PROBE_SOON = 0.5      -- seconds at the settled rate before probing a first second's ceiling
M.PROBE_AFTER = 2        -- ... a ceiling measured once; doubling each time it is met again,
M.PROBE_AFTER_MAX = 64   -- up to this
M.PROBE_AFTER_RA = 20    -- ... at least this many times a Retry-After pause (a probe's cost)
M.GROWTH = { 3, 1.25 }   -- the probe's growth per second: from a first second's ceiling, others
M.SAME = 0.1             -- a ceiling within 10% of the last is the same ceiling
M.REMEASURE_AFTER = 0.05 -- seconds after a 429 to measure (the 429s still on their way in)
M.NOISE = 0.03           -- a measure lower than the ceiling by no more (or one request) is noise
local KEEP = 3 -- seconds of sends and throttles kept (the measures look one second back)
local SHARE_EVERY = 0.5       -- seconds between reads of a shared dict

local Limiter = {}
Limiter.__index = Limiter

-- The times of events (sends, or throttled sends by send time) of the last KEEP seconds, in
-- order: exact, since a measure whose edge cut a burst of sends made at one instant would be
-- off by the whole burst (10 ms slots were: a measure of 24 for a gateway that let 40 through).
local function counter() return { head = 1, tail = 0 } end

local function count(c, t)
  local i = c.tail + 1
  while i > c.head and c[i - 1] > t do -- throttles come back out of order: insert in place
    c[i] = c[i - 1]
    i = i - 1
  end
  c[i], c.tail = t, c.tail + 1
  while c.head <= c.tail and c[c.head] < t - KEEP do
    c[c.head], c.head = nil, c.head + 1
  end
end

-- The number of events at or before t (from the head, by bisection).
local function upto(c, t)
  local lo, hi = c.head, c.tail + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if c[mid] <= t then lo = mid + 1 else hi = mid end
  end
  return lo - c.head
end

-- The events of the second ending at t: in (t - 1, t].
local function second_to(c, t)
  return upto(c, t) - upto(c, t - 1)
end

-- opts: clock (function), rate_limit (req/s or nil), adaptive (default true),
-- dict (an ngx.shared dict or nil), key (the dict key).
--
-- The bucket is kept as a virtual schedule (GCRA) without burst: tat is the time the next send
-- is due at the current rate. acquire() hands out turns in order, so every caller knows at once
-- how long it waits (csms.scheduler keeps them in a queue). Sends one interval apart put at
-- most ceil(rate) in any second, whatever a window's alignment: a burst would not.
function M.new(opts)
  local self = setmetatable({
    clock = opts.clock, fixed = opts.rate_limit, adaptive = opts.adaptive ~= false,
    dict = opts.dict, key = opts.key,
    enabled = false, rate = nil, tat = -math.huge, inflight = 0,
    paused_until = -math.huge, held_until = -math.huge, reset_at = -math.huge,
    ceiling = nil, confirmed = 0, changed_at = -math.huge,
    last_cut = -math.huge, probe_at = math.huge, ra_seen = 0, pending = {},
    throttled = 0, in_a_row = 0, throttle_seen = -math.huge, sends = 0,
    sent_c = counter(), throttled_c = counter(), synced_at = -math.huge,
  }, Limiter)
  if self.fixed then
    self.enabled = true
    self:set_rate(self.fixed)
  elseif self.adaptive then
    self.window = M.INITIAL_WINDOW
  end
  return self
end

function Limiter:set_rate(r)
  r = math.max(M.MIN_RATE, r)
  if self.fixed then r = math.min(r, self.fixed) end
  self.rate = r
end

-- Sends the caller has already been given a turn for are forgotten: the queue starts again
-- from now at the new rate (they ask again: reset_at is later than their turn).
function Limiter:reset(now)
  self.reset_at, self.reset_rate = now, self.rate
  self.tat = math.max(now, self.paused_until, self.held_until)
end

-- The sends of the last second: the "current send rate" (per second).
function Limiter:send_rate(now)
  return second_to(self.sent_c, now or self.clock())
end

-- Requests the scheduler may have in flight now (slow start until the first throttle): the
-- window grows by one per answer, and doubles every SLOW_START_STEP seconds since the first
-- send whatever the answers, so a slow server (or one that holds requests until enough have
-- come) does not keep a run at a few in flight.
function Limiter:max_inflight(now)
  if not self.window then return math.huge end
  if not self.first_send then return self.window end
  now = now or self.clock()
  return math.max(self.window, M.INITIAL_WINDOW * 2 ^ math.floor((now - self.first_send) / M.SLOW_START_STEP))
end

-- ---------------------------------------------------------------- sharing across nginx workers
-- The dict holds "enabled rate ceiling confirmed last_cut paused_until changed_at" under key; a
-- worker adopts a state newer than its own (a later change of the ceiling: a cut, a measure
-- taken again that lowered it, a raise; a later pause) and writes its own after each change.

local function num(v) return v == -math.huge and -1 or v == math.huge and -1 or v end

function Limiter:share(now)
  if not self.dict then return end
  self.dict:set(self.key, ("%d %.6f %.6f %d %.6f %.6f %.6f"):format(self.enabled and 1 or 0,
    self.rate or 0, self.ceiling or 0, self.confirmed, num(self.last_cut), num(self.paused_until),
    num(self.changed_at)))
  self.synced_at = now
end

function Limiter:sync(now)
  if not self.dict or now - self.synced_at < SHARE_EVERY then return end
  self.synced_at = now
  local v = self.dict:get(self.key)
  if type(v) ~= "string" then return end
  local en, rate, ceiling, confirmed, cut, pause, changed =
    v:match("^(%d) (%S+) (%S+) (%d+) (%S+) (%S+) (%S+)$")
  if not en then return end
  rate, ceiling, cut, pause, changed = tonumber(rate), tonumber(ceiling), tonumber(cut),
    tonumber(pause), tonumber(changed)
  local newer = false
  if pause and pause > self.paused_until then self.paused_until, newer = pause, true end
  if en == "1" and self.adaptive and changed and changed > self.changed_at and cut and ceiling
    and ceiling > 0 then
    self.enabled, self.window, self.ceiling, self.confirmed = true, nil, ceiling, tonumber(confirmed)
    self.changed_at = changed
    if cut > self.last_cut then
      self.last_cut, self.above_at = cut, nil
      self.probe_at = cut + self:probe_wait()
      self.probe_t = self.probe_at
    end
    self:set_rate(rate)
    newer = true
  end
  if newer then self:reset(now) end
end

-- ---------------------------------------------------------------- the events

-- Before a send: the caller's turn. Returns the seconds to wait before sending (0: now). A
-- caller that waits sends when its turn comes, unless reset_at passes the time it asked (a
-- cut or a Retry-After since): then it asks again.
function Limiter:acquire(now)
  now = now or self.clock()
  self:sync(now)
  self:settle(now)
  local at = math.max(now, self.paused_until)
  if self.enabled then
    at = math.max(at, self.tat)
    self.tat = at + 1 / self.rate
  end
  return at - now
end

-- A request going out now: counted in the measured send rate.
function Limiter:sent(now)
  now = now or self.clock()
  count(self.sent_c, now)
  self.first_send = self.first_send or now
  self.sends = self.sends + 1
end

-- Seconds at the settled rate before probing above it.
function Limiter:probe_wait()
  local wait = self.provisional and M.PROBE_SOON or M.PROBE_AFTER * 2 ^ self.confirmed
  return math.max(math.min(wait, M.PROBE_AFTER_MAX), M.PROBE_AFTER_RA * self.ra_seen)
end

-- What the gateway let through in the second before sent_at: the sends of that second less
-- their 429s (by send time).
function Limiter:measure(sent_at)
  return math.max(M.MIN_RATE, second_to(self.sent_c, sent_at) - second_to(self.throttled_c, sent_at))
end

-- Whether a measure other than a cut's own lowers the ceiling c: by more than a request and
-- NOISE. The client counts by send time, the gateway by arrival, and the least of many measures
-- would follow the difference down (a cut's, one a second at most, lowers it as it is).
local function lower(c, seen)
  return seen < c - math.max(1, M.NOISE * c)
end

-- The ceiling and rate a throttle event sets: seen is its measure.
function Limiter:set_ceiling(seen, sent_at, ra)
  local c = self.ceiling
  self.confirmed = c and not self.provisional and seen >= (1 - M.SAME) * c and self.confirmed + 1 or 0
  if c and not self.provisional then seen = math.min(seen, c) end
  self.provisional = sent_at - self.first_send < 1 and not ra
  self.ceiling = seen
  self:set_rate(M.SETTLE * seen)
end

-- A throttling answer to a request sent at sent_at; retry_after: the seconds the gateway asked
-- for, or nil.
function Limiter:throttle(sent_at, retry_after, now)
  now = now or self.clock()
  self:settle(now)
  self.throttled = self.throttled + 1
  count(self.throttled_c, sent_at)
  self.window = nil -- slow start is over: the limit is found
  local ra = retry_after and retry_after > 0 and retry_after or nil
  local changed = false
  if ra then
    self.ra_seen = math.max(self.ra_seen, ra)
    if now + ra > self.paused_until then
      self.paused_until = now + ra
      changed = true
    end
  end
  local probing = now >= self.probe_at
  if self.adaptive and sent_at >= self.last_cut and (probing or now - self.last_cut >= 1) then
    self:set_ceiling(self:measure(sent_at), sent_at, ra)
    self.last_cut, self.changed_at, self.enabled, self.above_at = now, now, true, nil
    self.probe_at = now + self:probe_wait()
    self.probe_t = self.probe_at
    self.cut_sent_at = sent_at
    changed = true
  end
  -- Measured (again) once the 429s of requests sent before it are in (settle).
  if self.adaptive and #self.pending < 64 then
    self.pending[#self.pending + 1] = { at = now + M.REMEASURE_AFTER, sent_at = sent_at }
  end
  if changed then
    self:reset(now)
    self:share(now)
  end
  -- Throttles in a row without a Retry-After: each holds the next turn back twice as long as
  -- the last (from one interval up to a second), so a spent window is not asked again and again.
  if sent_at >= self.throttle_seen then self.in_a_row = self.in_a_row + 1 end
  self.throttle_seen = now
  if self.enabled and not ra then
    local hold = math.min(1, 2 ^ (self.in_a_row - 1) / self.rate)
    if now + hold > self.tat then
      self.held_until = now + hold -- kept by the resets of the measures taken again meanwhile
      self:reset(now)
    end
  end
end

-- The measures of throttles answered REMEASURE_AFTER ago: a lower one lowers the ceiling and
-- the rate. Measures from the client's first second, which may be low (a bucket's burst), only
-- correct the cut they made; a first second's ceiling is replaced, not lowered, by the next.
function Limiter:settle(now)
  -- pending is in the order of `at` (each is its 429's time plus the same delay): called on
  -- every send and answer, it returns at once until the first is due
  local first = self.pending[1]
  if not first or now < first.at then return end
  local lowered, keep = false, {}
  for _, p in ipairs(self.pending) do
    if now < p.at then
      keep[#keep + 1] = p
    elseif self.ceiling and (p.sent_at == self.cut_sent_at
      or not self.provisional and p.sent_at - self.first_send >= 1) then
      local seen = self:measure(p.sent_at)
      if p.sent_at == self.cut_sent_at and seen < self.ceiling or lower(self.ceiling, seen) then
        self.ceiling, lowered = seen, true
        self:set_rate(M.SETTLE * seen)
      end
    end
  end
  self.pending = keep
  if lowered then
    self.changed_at = now
    self:reset(now)
    self:share(now)
  end
end

-- An answer that was not a throttle (any status: the gateway let it through).
function Limiter:success(now)
  now = now or self.clock()
  self:settle(now)
  self.in_a_row = 0
  if self.window then self.window = self.window + 1 end
  if not (self.enabled and self.adaptive and self.ceiling) or now < self.probe_at then return end
  -- Probing: above the settled rate, geometrically; no faster than twice what the client
  -- really sends (it may be held back by its concurrency, not the rate): never a cut, which
  -- only a throttle makes.
  local g = M.GROWTH[self.provisional and 1 or 2]
  local sending = self:send_rate(now)
  self:set_rate(math.min(self.rate * g ^ (now - math.max(self.probe_t, self.probe_at)),
    math.max(self.rate, 2 * sending)))
  self.probe_t = now
  -- Two seconds of sends above the ceiling and no throttle: it is higher (a window would
  -- have refused some: every window of a second lies within two).
  if sending > (1 + M.SAME) * self.ceiling then
    self.above_at = self.above_at or now
    if now - self.above_at >= 2 then
      self.ceiling, self.confirmed, self.above_at, self.changed_at = sending, 0, nil, now
      self:share(now)
    end
  else
    self.above_at = nil
  end
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
