-- The emulator's throttle models (fixed window, sliding window, token bucket with burst), with
-- and without Retry-After, per op, set through the admin config or at start. Every decision is
-- checked against a replay of the model written here from the emulator's own arrival times
-- (stats.arrivals, integer ms), so nothing depends on how fast this machine sends.
local emulator = require "spec.support.emulator"
local socket = require "socket"

local ceil, floor, min = math.ceil, math.floor, math.min

-- Replays rules over arrivals: for each arrival { t, op }, whether it is throttled and, if so, the
-- ms until every refusing rule has room. Written apart from lua/csms/emulator/throttle.lua; the
-- bucket's arithmetic is the same expression so that the floats agree to the bit.
local function replay(rules, arrivals)
  local admitted = {} -- per rule: list of admitted times
  local bucket = {}   -- per rule: { tokens, last }
  for i, r in ipairs(rules) do
    admitted[i] = {}
    if r.model == "bucket" then
      local burst = r.burst or math.max(1, ceil(r.rate))
      bucket[i] = { tokens = burst, burst = burst }
    end
  end
  local out = {}
  for k, a in ipairs(arrivals) do
    local wait, first
    for i, r in ipairs(rules) do
      if r.op == nil or r.op == a.op then
        local room, ms = true, nil
        if r.model == "fixed" then
          local n = 0
          for _, t in ipairs(admitted[i]) do
            if floor(t / 1000) == floor(a.t / 1000) then n = n + 1 end
          end
          if n >= r.rate then room, ms = false, (floor(a.t / 1000) + 1) * 1000 - a.t end
        elseif r.model == "sliding" then
          local inside = {}
          for _, t in ipairs(admitted[i]) do
            if t > a.t - 1000 then inside[#inside + 1] = t end
          end
          if #inside >= r.rate then room, ms = false, inside[1] + 1000 - a.t end
        else
          local b = bucket[i]
          if b.last then b.tokens = min(b.burst, b.tokens + (a.t - b.last) * r.rate / 1000) end
          b.last = a.t
          if b.tokens < 1 then room, ms = false, (1 - b.tokens) * 1000 / r.rate end
        end
        if not room then wait, first = math.max(wait or 0, ms), first or r end
      end
    end
    out[k] = { throttled = wait ~= nil, wait = wait, rule = first }
    if not wait then
      for i, r in ipairs(rules) do
        if r.op == nil or r.op == a.op then
          admitted[i][#admitted[i] + 1] = a.t
          if r.model == "bucket" then bucket[i].tokens = bucket[i].tokens - 1 end
        end
      end
    end
  end
  return out
end

-- Sends requests (send() -> status, headers, body, doc) every pause seconds until stop(n)
-- says so; returns the answers in order.
local function drive(send, pause, stop)
  local answers = {}
  repeat
    local st, h, _, doc = send(#answers + 1)
    answers[#answers + 1] = { status = st, headers = h, doc = doc }
    if pause > 0 then socket.sleep(pause) end
  until stop(#answers)
  return answers
end

-- drive's stop for "after this many seconds" (of sending: pacing only, nothing is asserted on it)
local function for_seconds(seconds)
  local first
  return function()
    first = first or socket.gettime()
    return socket.gettime() - first > seconds
  end
end

-- Checks every answer and every arrival against the replay; returns the arrivals and replay.
local function check_against_replay(e, rules, answers)
  local arrivals = e:stats().arrivals
  assert.are.equal(#answers, #arrivals)
  local expect = replay(rules, arrivals)
  for k, a in ipairs(answers) do
    local x = expect[k]
    assert.are.equal(x.throttled, arrivals[k].throttled, "arrival " .. k)
    assert.are.equal(x.throttled and 429 or 200, a.status, "answer " .. k)
    if x.throttled then
      assert.are.equal("APIG.0308", a.doc.error_code)
      local r = x.rule
      assert.are.equal("The throttling threshold has been reached: policy user over ratelimit,"
        .. "limit:" .. string.format("%g", r.rate) .. ",time:1 second", a.doc.error_msg)
      assert.matches("^%x+$", a.doc.request_id)
      x.retry_after = a.headers["retry-after"]
    end
  end
  return arrivals, expect
end

local function admitted_per_second(arrivals)
  local per = {}
  for _, a in ipairs(arrivals) do
    local s = floor(a.t / 1000)
    per[s] = per[s] or { admitted = 0, all = 0 }
    per[s].all = per[s].all + 1
    if not a.throttled then per[s].admitted = per[s].admitted + 1 end
  end
  return per
end

describe("csms emulator throttling", function()
  local e

  setup(function() e = emulator.start{} end)
  teardown(function() if e then e:stop() end end)
  before_each(function() e:reset() end)

  local function list()
    return e:request{ method = "GET", path = e:api("/secrets"), sign = "token" }
  end
  local function backup(name)
    return e:request{ method = "POST", path = e:api("/secrets/" .. name .. "/backup"), sign = "token" }
  end

  -- waits until the clock is past the middle of a second (the emulator's clock is this one)
  local function mid_second()
    while socket.gettime() % 1 < 0.5 or socket.gettime() % 1 > 0.6 do socket.sleep(0.01) end
  end

  it("fixed window: the first `rate` requests of each wall-clock second, no Retry-After", function()
    local rules = { { model = "fixed", rate = 4 } }
    e:config{ throttle = rules[1] }
    local answers = drive(list, 0.01, for_seconds(2.2))
    local arrivals = check_against_replay(e, rules, answers)
    local seconds = 0
    for _, p in pairs(admitted_per_second(arrivals)) do
      assert.are.equal(min(4, p.all), p.admitted)
      seconds = seconds + 1
    end
    assert.is_true(seconds >= 2)
    for _, a in ipairs(answers) do
      if a.status == 429 then assert.is_nil(a.headers["retry-after"]) end
    end
    local s = e:stats()
    assert.is_true(s.throttled > 0)
    assert.are.equal(s.throttled, s.throttled_by_op.list)
  end)

  it("sliding window: at most `rate` in any 1000 ms, which a fixed window would not give", function()
    local rules = { { model = "sliding", rate = 5 } }
    e:config{ throttle = { rules[1] } }
    mid_second()
    local answers = drive(list, 0.02, for_seconds(2.2))
    local arrivals = check_against_replay(e, rules, answers)
    for i, a in ipairs(arrivals) do
      if not a.throttled then
        local n = 0
        for j = 1, i do
          if not arrivals[j].throttled and arrivals[j].t > a.t - 1000 then n = n + 1 end
        end
        assert.is_true(n <= 5)
      end
    end
    -- started mid-second: a fixed window would admit again at the next second, this one not
    local fixed = replay({ { model = "fixed", rate = 5 } }, arrivals)
    local differ = false
    for k, x in ipairs(fixed) do differ = differ or x.throttled ~= arrivals[k].throttled end
    assert.is_true(differ)
  end)

  it("token bucket: a burst above the rate, then the rate; Retry-After computed", function()
    local rules = { { model = "bucket", rate = 5, burst = 10, retry_after = true } }
    e:config{ throttle = rules }
    local enough = for_seconds(1.5)
    local answers = drive(list, 0, function(n)
      local stop = enough()
      if n < 14 then return false end
      socket.sleep(0.02)
      return stop
    end)
    local _, expect = check_against_replay(e, rules, answers)
    for k = 1, 10 do assert.are.equal(200, answers[k].status, "burst request " .. k) end
    local n429 = 0
    for _, x in ipairs(expect) do
      if x.throttled then
        n429 = n429 + 1
        assert.are.equal(tostring(math.max(1, ceil(x.wait / 1000))), x.retry_after)
      end
    end
    assert.is_true(n429 > 0)
  end)

  it("token bucket: Retry-After is the whole seconds until a token, at least 1", function()
    local rules = { { model = "bucket", rate = 0.5, retry_after = true } }
    e:config{ throttle = rules }
    local answers = drive(list, 0, function(n) return n == 4 end)
    local _, expect = check_against_replay(e, rules, answers)
    assert.are.equal(200, answers[1].status)
    for k = 2, 4 do
      assert.is_true(expect[k].throttled)
      assert.are.equal(tostring(math.max(1, ceil(expect[k].wait / 1000))), answers[k].headers["retry-after"])
    end
    assert.are.same({ { burst = 1, model = "bucket", rate = 0.5, retry_after = true } },
      e:config{}.throttle)
  end)

  it("sends a fixed Retry-After when retry_after is a number, and none when false", function()
    for _, case in ipairs({ { 7, "7" }, { 0, "0" }, { false, nil } }) do
      e:reset()
      e:config{ throttle = { model = "fixed", rate = 1, retry_after = case[1] } }
      local answers = drive(list, 0, function(n) return n == 3 end)
      local _, expect = check_against_replay(e, { { model = "fixed", rate = 1 } }, answers)
      local seen = 0
      for k, a in ipairs(answers) do
        if expect[k].throttled then
          seen = seen + 1
          assert.are.equal(case[2], a.headers["retry-after"])
        end
      end
      assert.is_true(seen >= 1)
    end
  end)

  it("limits one op with an op rule and leaves the others alone", function()
    e:create_secret("t1", { "x" })
    local rules = { { model = "fixed", rate = 2, op = "backup" }, { model = "sliding", rate = 1000 } }
    e:config{ throttle = rules }
    local answers = drive(function(i)
      if i % 2 == 1 then return backup("t1") end
      return list()
    end, 0, function(n) return n == 16 end)
    local arrivals = check_against_replay(e, rules, answers)
    local s = e:stats()
    assert.are.equal(0, s.throttled_by_op.list)
    assert.is_true(s.throttled_by_op.backup >= 1)
    assert.are.equal(s.throttled, s.throttled_by_op.backup)
    for k, a in ipairs(arrivals) do
      assert.are.equal(k % 2 == 1 and "backup" or "list", a.op)
      if a.op == "list" then assert.is_false(a.throttled) end
    end
    assert.are.same({ backup = 8, restore = 0, create = 0, list = 8, get = 0, delete = 0,
      create_version = 0, list_versions = 0, get_version = 0, unknown = 0 }, s.requests)
  end)

  it("adds throttle_rps as a fixed window under the rules, with Retry-After: retry_after", function()
    local rules = { { model = "fixed", rate = 2 }, { model = "bucket", rate = 3, burst = 3 } }
    e:config{ throttle_rps = 2, retry_after = 3, throttle = { rules[2] } }
    local answers = drive(list, 0, function(n) return n == 8 end)
    local _, expect = check_against_replay(e, rules, answers)
    local n429 = 0
    for k, x in ipairs(expect) do
      if x.throttled then
        -- the first refusing rule says the Retry-After: throttle_rps's fixed window when it refuses
        n429 = n429 + 1
        assert.are.equal(x.rule == rules[1] and "3" or nil, answers[k].headers["retry-after"])
      end
    end
    assert.is_true(n429 > 0)
  end)

  it("refuses bad rules with a 400 and keeps the current ones", function()
    e:config{ throttle = { model = "fixed", rate = 3 } }
    local bad = {
      { { model = "leaky", rate = 1 }, "fixed, sliding or bucket" },
      { { model = "fixed" }, "positive number" },
      { { model = "fixed", rate = 0 }, "positive number" },
      { { model = "sliding", rate = 1.5 }, "whole number" },
      { { model = "fixed", rate = 1, burst = 2 }, "bucket model only" },
      { { model = "bucket", rate = 1, burst = 0.5 }, "at least 1" },
      { { model = "fixed", rate = 1, retry_after = "1" }, "retry_after" },
      { { model = "fixed", rate = 1, retry_after = -1 }, "retry_after" },
      { { model = "fixed", rate = 1, op = "frobnicate" }, "unknown op" },
      { { model = "fixed", rate = 1, per = "ip" }, "unknown throttle rule key" },
      { { { model = "fixed", rate = 1 }, "x" }, "rule 2" },
      { "fixed", "must be a" },
    }
    for _, case in ipairs(bad) do
      local st, doc = e:admin("POST", "/__emulator/config", { throttle = case[1] })
      assert.are.equal(400, st)
      assert.are.equal("EMULATOR.0400", doc.error_code)
      assert.matches(case[2], doc.error_msg, 1, true)
    end
    assert.are.same({ { model = "fixed", rate = 3, retry_after = false } }, e:config{}.throttle)
    assert.are.same({}, e:config{ throttle = {} }.throttle)
    e:config{ throttle = { model = "fixed", rate = 3 } }
    local st = e:admin("POST", "/__emulator/config", '{"throttle":null}')
    assert.are.equal(200, st)
    assert.are.same({}, e:config{}.throttle)
  end)

  it("records arrivals; stats/reset and reset clear them, and reset restores the rules", function()
    e:create_secret("keep", { "x" })
    e:config{ throttle = { model = "fixed", rate = 1000 } }
    list(); list(); backup("keep")
    local s = e:stats()
    assert.are.equal(3, #s.arrivals)
    local ops = {}
    for i, a in ipairs(s.arrivals) do
      ops[i] = a.op
      assert.is_false(a.throttled)
      assert.are.equal(floor(a.t), a.t)
      if i > 1 then assert.is_true(a.t >= s.arrivals[i - 1].t) end
    end
    assert.are.same({ "list", "list", "backup" }, ops)
    assert.is_true(e:reset_stats().ok)
    s = e:stats()
    assert.are.same({}, s.arrivals)
    assert.are.equal(0, s.total)
    assert.are.equal(1, #e:dump())
    assert.are.equal(1, #e:config{}.throttle)
    e:reset()
    assert.are.same({}, e:config{}.throttle)
  end)
end)

describe("csms emulator --throttle-rule", function()
  it("sets rules at start, which reset returns to", function()
    local e = emulator.start{ args = { "--throttle-rule", '{"model":"bucket","rate":1,"burst":2}',
      "--throttle-rule", '[{"model":"sliding","rate":50,"op":"restore","retry_after":true}]' } }
    local ok, err = pcall(function()
      local want = { { model = "bucket", rate = 1, burst = 2, retry_after = false },
        { model = "sliding", rate = 50, op = "restore", retry_after = true } }
      assert.are.same(want, e:config{}.throttle)
      e:config{ throttle = {} }
      e:reset()
      assert.are.same(want, e:config{}.throttle)
      local answers = drive(function()
        return e:request{ method = "GET", path = e:api("/secrets"), sign = "token" }
      end, 0, function(n) return n == 4 end)
      local _, expect = check_against_replay(e, { want[1] }, answers)
      assert.are.same({ false, false }, { expect[1].throttled, expect[2].throttled })
    end)
    e:stop()
    assert(ok, err)
  end)

  it("refuses to start with a bad rule, saying why", function()
    local ok, err = pcall(emulator.start, { args = { "--throttle-rule", '{"model":"fixed","rate":-1}' } })
    assert.is_false(ok)
    assert.matches("positive number", tostring(err), 1, true)
    ok, err = pcall(emulator.start, { args = { "--throttle-rule", "{nope" } })
    assert.is_false(ok)
    assert.matches("not JSON", tostring(err), 1, true)
  end)
end)

describe("csms.emulator.throttle on a made-up clock", function()
  local throttle = require "csms.emulator.throttle"
  local KNOWN = { list = true, backup = true }

  local function limiter(v)
    return throttle.new(assert(throttle.check(v, KNOWN)))
  end

  -- admits(l, op, times) -> list of true (admitted) / wait ms (refused)
  local function run(l, op, times)
    local out = {}
    for i, t in ipairs(times) do
      local rule, wait = l:admit(op, t)
      out[i] = rule == nil or wait
    end
    return out
  end

  it("fixed: the window is the wall-clock second, its edge exact", function()
    local l = limiter({ model = "fixed", rate = 2 })
    assert.are.same({ true, true, 1, true, true, 1000 }, run(l, "list", { 1999, 1999, 1999, 2000, 2000, 2000 }))
  end)

  it("sliding: room again exactly 1000 ms after the oldest admitted", function()
    local l = limiter({ model = "sliding", rate = 2 })
    assert.are.same({ true, true, 500, 1, true, 400, true },
      run(l, "list", { 1500, 1900, 2000, 2499, 2500, 2500, 2900 }))
  end)

  it("bucket: burst first, then one per 1000/rate ms; refusals cost nothing", function()
    local l = limiter({ model = "bucket", rate = 4, burst = 3 })
    assert.are.same({ true, true, true, 250, 125, true, 250 },
      run(l, "list", { 0, 0, 0, 0, 125, 250, 250 }))
    assert.are.same({ true, true, true, 250 }, run(l, "list", { 10000, 10000, 10000, 10000 }))
  end)

  it("per op: a rule with an op neither counts nor limits the others", function()
    local l = limiter({ { model = "fixed", rate = 1, op = "backup" }, { model = "fixed", rate = 3 } })
    assert.are.same({ true, true, true, 1000 }, run(l, "list", { 0, 0, 0, 0 }))
    assert.are.same({ 1000 }, run(l, "backup", { 0 })) -- the global window is full
    l = limiter({ { model = "fixed", rate = 1, op = "backup" }, { model = "fixed", rate = 3 } })
    assert.are.same({ true, 1000 }, run(l, "backup", { 0, 0 }))
    assert.are.same({ true, true, 1000 }, run(l, "list", { 0, 0, 0 }))
  end)

  it("waits for every refusing rule; Retry-After rounds that up, at least 1", function()
    local l = limiter({ { model = "fixed", rate = 1, retry_after = true },
                        { model = "bucket", rate = 0.25, retry_after = 9 } })
    assert.is_nil((l:admit("list", 0)))
    local rule, wait = l:admit("list", 500) -- the window has 500 ms to go, the bucket 3500
    assert.are.equal("fixed", rule.model)
    assert.are.equal(3500, wait)
    assert.are.equal("4", throttle.retry_after(rule, wait))
    rule, wait = l:admit("list", 1000)      -- a new second: only the bucket refuses
    assert.are.equal("bucket", rule.model)
    assert.are.equal(3000, wait)
    assert.are.equal("9", throttle.retry_after(rule, wait))
    assert.are.equal("1", throttle.retry_after({ retry_after = true }, 1))
    assert.are.equal("9", throttle.retry_after({ retry_after = 9 }, 1))
    assert.is_nil(throttle.retry_after({ retry_after = false }, 1))
    assert.are.equal("The throttling threshold has been reached: policy user over ratelimit,"
      .. "limit:0.25,time:1 second", throttle.message({ rate = 0.25 }))
  end)
end)
