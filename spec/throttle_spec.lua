-- Rate limiting: csms.ratelimit on a fake clock (the limiter's arithmetic, deterministic), and
-- csms.batch and single calls against the emulator's throttling gateway (counts from the
-- emulator's own statistics; no wall-clock assertion).
local csms = require "csms"
local batch = require "csms.batch"
local ratelimit = require "csms.ratelimit"
local emulator = require "spec.support.emulator"
local ejson = require "csms.json"

local function fake_clock()
  local t = { now = 1000 }
  return t, function() return t.now end
end

-- A client on the fake clock against a gateway: sends as soon as the limiter lets it (at most
-- `demand` per second), each answered at once; admit(now) says whether the gateway lets a send
-- through. Returns the throttles and the times of the limiter's cuts.
local function simulate(l, t, admit, items, demand)
  local throttles, cuts, done, last_cut = 0, {}, 0, l.last_cut
  while done < items do
    t.now = t.now + math.max(l:acquire(), 1 / demand)
    l:sent()
    if admit(t.now) then
      l:success()
      done = done + 1
    else
      l:throttle(t.now, nil)
      throttles = throttles + 1
    end
    if l.last_cut ~= last_cut then last_cut = l.last_cut; cuts[#cuts + 1] = t.now end
  end
  return throttles, cuts
end

local function fixed_window(limit)
  local second, n = nil, 0
  return function(now)
    local s = math.floor(now)
    if s ~= second then second, n = s, 0 end
    if n >= limit then return false end
    n = n + 1
    return true
  end
end

describe("csms.ratelimit", function()
  it("is off until the first throttle, then paces every send just under what got through", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    for _ = 1, 50 do assert.equal(0, l:acquire()); l:sent() end -- 50 sends at once: no limit yet
    assert.is_nil(l:status().rate)
    -- 10 of them throttled
    for _ = 1, 10 do l:throttle(t.now, nil) end
    local r = l:status().rate
    assert.near(ratelimit.SETTLE * 49, r, 1e-9) -- measured at the first 429: the rest count as let through
    -- every later send waits its turn, one interval apart, no burst: at most ceil(rate) in any
    -- second, whatever a window's alignment
    local waits = {}
    for i = 1, 40 do waits[i] = l:acquire() end
    for i = 2, 40 do assert.near(1 / r, waits[i] - waits[i - 1], 1e-9) end
    assert.is_true(waits[1] > 0, "the throttle holds the next turn back")
  end)

  it("slow start: a few requests in flight at first, one more per answer, no cap once throttled", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    assert.equal(ratelimit.INITIAL_WINDOW, l:max_inflight())
    -- a round trip answers all in flight: the window doubles
    for round = 1, 3 do
      local w = l:max_inflight()
      for _ = 1, w do l:sent(); l:success() end
      assert.equal(ratelimit.INITIAL_WINDOW * 2 ^ round, l:max_inflight())
    end
    -- and doubles every SLOW_START_STEP since the first send, answers or not
    local w = l:max_inflight()
    t.now = t.now + 5 * ratelimit.SLOW_START_STEP
    assert.equal(ratelimit.INITIAL_WINDOW * 32, l:max_inflight())
    assert.is_true(l:max_inflight() > w)
    l:throttle(t.now, nil)
    assert.equal(math.huge, l:max_inflight())
    assert.equal(math.huge, ratelimit.new { clock = clock, rate_limit = 5 }:max_inflight(),
      "a fixed rate_limit paces from the start: no slow start")
    assert.equal(math.huge, ratelimit.new { clock = clock, adaptive = false }:max_inflight())
  end)

  it("settles under a fixed window's limit, and its probes above it thin out", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    local start = t.now
    local throttles, cuts = simulate(l, t, fixed_window(20), 4000, 1000)
    -- 4,000 items at 20/s: 200 s at best
    assert.is_true(t.now - start < 200 / 0.9, ("%.1f s for 200 s of work"):format(t.now - start))
    assert.is_true(throttles < 0.02 * 4000, throttles .. " throttles")
    assert.is_true(l.rate <= 20 and l.rate >= 0.9 * 20, tostring(l.rate))
    assert.equal(20, l.ceiling)
    -- each probe that meets the same ceiling waits twice as long as the last before the next
    assert.is_true(#cuts >= 8, #cuts .. " cuts")
    for i = #cuts - 4, #cuts do
      local gap, before = cuts[i] - cuts[i - 1], cuts[i - 1] - cuts[i - 2]
      assert.is_true(gap >= 1.5 * before or gap >= ratelimit.PROBE_AFTER_MAX,
        ("probes at %.1f, %.1f, %.1f s"):format(cuts[i - 2] - start, cuts[i - 1] - start, cuts[i] - start))
    end
  end)

  it("one cut per congestion event; a first second's ceiling is probed soon and found higher", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    for _ = 1, 20 do l:acquire(); l:sent() end
    local sent = t.now
    t.now = t.now + 0.01
    l:throttle(sent, nil)
    local r1 = l.rate
    assert.near(ratelimit.SETTLE * 19, r1, 1e-9)
    -- twenty answers to requests sent before the cut: one event
    for _ = 1, 20 do l:throttle(sent, nil) end
    assert.equal(r1, l.rate)
    assert.equal(21, l:status().throttled)
    -- a gateway that lets 60/s through: the probe (soon after a first second's measure, fast)
    -- climbs to it and settles under it
    local throttles = simulate(l, t, fixed_window(60), 1200, 1000)
    assert.is_true(l.rate > 0.9 * 60 and l.rate <= 60, tostring(l.rate))
    assert.is_true(throttles < 60, throttles .. " throttles")
    -- and never under 0.5/s
    for _ = 1, 30 do t.now = t.now + 1; l:sent(); l:throttle(t.now, nil) end
    assert.equal(ratelimit.MIN_RATE, l.rate)
  end)

  it("a Retry-After makes probes rare: each costs the whole client a pause", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    for _ = 1, 30 do t.now = t.now + 0.04; l:sent(); l:success() end
    t.now = t.now + 0.6
    for _ = 1, 5 do l:sent(); l:throttle(t.now, 1) end
    assert.is_true(l.probe_at - t.now >= ratelimit.PROBE_AFTER_RA, tostring(l.probe_at - t.now))
    assert.near(1, l:acquire(), 1e-9)
  end)

  it("holds every send back for a Retry-After", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock, adaptive = false }
    l:throttle(t.now, 3)
    for _ = 1, 5 do assert.near(3, l:acquire(), 1e-9) end
    t.now = t.now + 3
    assert.equal(0, l:acquire())
    assert.is_nil(l:status().rate, "adaptive = false: no learned rate")
  end)

  it("never lets a fixed rate_limit through faster, even when adaptation would grow", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock, rate_limit = 5 }
    local sends = {}
    for _ = 1, 200 do
      local w = l:acquire()
      t.now = t.now + w
      sends[#sends + 1] = t.now
      l:sent()
      l:success()
    end
    -- in any window of one second: at most 5 plus the bucket's burst of 1.25
    for i = 1, #sends do
      local n = 0
      for j = i, #sends do if sends[j] - sends[i] < 1 then n = n + 1 end end
      assert.is_true(n <= 6, n)
    end
  end)

  -- The measures, case by case: each names what a broken limiter gets wrong.
  local function burst(l, t, n, at) for _ = 1, n do l:sent(at or t.now) end end
  local measures = {
    { "counts a burst sent at one instant at the very edge of the measured second",
      -- 16 sends at one instant 9.3 ms inside the second before the throttled send: counting in
      -- 10 ms slots lost the whole burst (the measure was 24 for a gateway that let 40 through)
      function(l, t)
        burst(l, t, 16, t.now + 0.0073)
        for i = 1, 24 do l:sent(t.now + 0.02 + i * 0.04) end
        l:sent(t.now + 1.0)
        t.now = t.now + 1.001
        l:throttle(t.now - 0.001, nil)
      end, 40 },
    { "measures again once the 429s still on their way are in",
      -- 50 sent together, 10 refused: the first 429 alone says 49 got through; 50 ms later the
      -- ceiling is what really did (40)
      function(l, t)
        burst(l, t, 50)
        local at = t.now
        t.now = t.now + 0.001
        l:throttle(at, nil)
        for _ = 1, 9 do l:throttle(at, nil) end
        t.now = t.now + ratelimit.REMEASURE_AFTER
        l:acquire()
      end, 40 },
    { "keeps the least measure of every throttle after the first second, not only of the cuts",
      -- a fixed window of 20 a second from 1003.0: 10 sent in the half second before it, 20 at
      -- its start, then refusals. The cut's second spans the boundary (30); the refusals later
      -- in the window measure less of the window before, the last none of it
      function(l, t)
        l:sent(1000)
        for i = 0, 9 do l:sent(1002.5 + i * 0.05) end
        for i = 0, 19 do l:sent(1003 + i * 0.02) end
        for _, at in ipairs { 1003.4, 1003.6, 1003.8, 1003.97 } do
          t.now = at
          l:sent()
          l:throttle(at, nil)
          if at == 1003.4 then assert.equal(30, l.ceiling) end
        end
        t.now = t.now + ratelimit.REMEASURE_AFTER
        l:acquire()
      end, 20 },
    { "takes a measure one request under the ceiling for noise (sent, not arrived, is counted)",
      function(l, t)
        l:sent(1000)
        for i = 1, 41 do l:sent(1001 + i / 64) end
        t.now = 1002 -- the 41st refused, its answer late: a cut, 40 through in the second before
        l:throttle(1001 + 41 / 64, nil)
        assert.equal(40, l.ceiling)
        for i = 1, 39 do l:sent(1001.75 + i / 64) end
        t.now = 1002.7
        l:sent()
        l:throttle(t.now, nil) -- within a second of the cut (no cut): 39 through in the second before
        t.now = t.now + ratelimit.REMEASURE_AFTER
        l:acquire()
      end, 40 },
    { "with a Retry-After, a first second's measure is an upper bound (a probe costs a pause)",
      function(l, t)
        burst(l, t, 11)
        t.now = t.now + 0.2
        l:throttle(t.now - 0.2, 1) -- 10 of 11 through in the first second, Retry-After: 1
        for i = 1, 30 do l:sent(t.now + i * 0.03) end
        t.now = t.now + 1
        l:throttle(t.now, 1) -- 30 in the second before: a window boundary inside it
        t.now = t.now + ratelimit.REMEASURE_AFTER
        l:acquire()
      end, 10 },
  }
  for _, case in ipairs(measures) do
    it("measure: " .. case[1], function()
      local t, clock = fake_clock()
      local l = ratelimit.new { clock = clock }
      case[2](l, t)
      assert.equal(case[3], l.ceiling)
      assert.near(ratelimit.SETTLE * case[3], l.rate, 1e-9)
    end)
  end

  it("a volley of 429s to requests sent together holds the next send back one interval, not a second", function()
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    burst(l, t, 64)
    t.now = t.now + 0.001
    for _ = 1, 30 do l:throttle(t.now - 0.001, nil) end -- all sent before the first 429 came back
    assert.near(1 / l.rate, l:acquire(), 1e-9)
    -- a send after it, throttled again: that one is in a row
    t.now = t.now + 1 / l.rate
    l:sent()
    l:throttle(t.now, nil)
    assert.near(2 / l.rate, l:acquire(), 1e-9)
  end)

  it("keeps the hold of throttles in a row when a measure taken again lowers the rate", function()
    -- seen in bench/throttle.lua (fixed window, 100/s, 64 in flight): each measure taken again
    -- restarted the turns at once, so the client went on sending into a spent window (30 429s)
    local t, clock = fake_clock()
    local l = ratelimit.new { clock = clock }
    l:sent(1000)
    burst(l, t, 50, 1001.5)
    t.now = 1001.501
    for _ = 1, 10 do l:throttle(1001.5, nil) end -- the cut: 49 through, as far as it knows yet
    assert.equal(49, l.ceiling)
    for _, at in ipairs { 1001.53, 1001.54 } do -- two more in a row: the hold is 4 intervals
      t.now = at
      l:sent()
      l:throttle(at, nil)
    end
    t.now = 1001.56
    local wait = l:acquire() -- the cut's measure taken again: 40
    assert.equal(40, l.ceiling)
    assert.near(1001.54 + 4 / (ratelimit.SETTLE * 49) - t.now, wait, 1e-9)
  end)

  it("shares a ceiling a measure taken again lowered, not only a cut's, through a shared dict", function()
    -- two nginx workers' limiters on one dict (get/set as ngx.shared's): before, the other
    -- worker kept the cut's ceiling until a cut of its own
    local t, clock = fake_clock()
    local store = {}
    local dict = { get = function(_, k) return store[k] end, set = function(_, k, v) store[k] = v end }
    local a = ratelimit.new { clock = clock, dict = dict, key = "k" }
    local b = ratelimit.new { clock = clock, dict = dict, key = "k" }
    a:sent(1000)
    burst(a, t, 50, 1001.5)
    t.now = 1001.501
    for _ = 1, 10 do a:throttle(1001.5, nil) end
    assert.equal(49, a.ceiling)
    b:acquire()
    assert.equal(49, b.ceiling) -- the cut, adopted
    t.now = 1001.56
    a:acquire() -- measured again: 40
    assert.equal(40, a.ceiling)
    t.now = 1002.1 -- b reads the dict again (at most every half second)
    b:acquire()
    assert.equal(40, b.ceiling)
    assert.near(ratelimit.SETTLE * 40, b.rate, 1e-9)
  end)

  it("budget: retries cost 5 (timeouts 10), successes give 1 back; spent by failures alone it is dead", function()
    local b = ratelimit.budget()
    for _ = 1, 50 do b:failure(); assert.is_true(b:take(true)) end
    assert.is_false(b:take(false))
    assert.is_true(b:dead())
    b:success()
    assert.is_false(b:dead())
    assert.equal(1, b.tokens)
  end)
end)

-- ---------------------------------------------------------------- against the emulator

local e

local function client(extra)
  local opts = { ak = e.ak, sk = e.sk, project_id = e.project_id, endpoint = e.endpoint,
                 timeout = 10, backoff_base = 0.01 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

local function seed(n)
  local list = {}
  for i = 1, n do list[i] = { name = ("t-%03d"):format(i), versions = ejson.array { "value-" .. i } } end
  assert.equal(200, (e:admin("POST", "/__emulator/seed", { secrets = ejson.array(list) })))
end

local function tmpdir() return emulator.tmpdir() end

setup(function() e = emulator.start {} end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("a throttling gateway", function()
  it("costs no item of a backup and a restore, and the client learns a rate under the limit", function()
    seed(40)
    e:config { throttle_rps = 10, retry_after = 0, latency_ms = 5 }
    local dir = tmpdir()
    local c = client { retries = 0 } -- no error retries at all: throttling must not need them
    local report = assert(batch.backup(c, { dir = dir, concurrency = 16 }))
    assert.equal(40, report.ok)
    assert.equal(0, report.failed)
    local st = e:stats()
    assert.is_true(st.throttled > 0, "the gateway throttled")
    local status = c.limiter:status()
    assert.is_truthy(status.rate, "the limiter turned on")
    assert.is_true(status.throttled == st.throttled)
    -- restore, same gateway: a 429 was not carried out, so the restore goes again
    e:reset()
    e:config { throttle_rps = 10, retry_after = 0, latency_ms = 5 }
    report = assert(batch.restore(client { retries = 0 }, { dir = dir, concurrency = 16 }))
    assert.equal(40, report.ok)
    assert.equal(0, report.failed)
    assert.equal(40, #e:dump())
    assert.is_true(e:stats().throttled > 0)
    os.execute("rm -rf " .. dir)
  end)

  it("adapts: far fewer 429s than with adaptation off", function()
    seed(60)
    e:config { throttle_rps = 20, retry_after = 0 }
    local on = assert(batch.backup(client(), { dir = tmpdir(), concurrency = 16 }))
    local with = e:stats().throttled
    e:reset(); seed(60)
    e:config { throttle_rps = 20, retry_after = 0 }
    local c = client { adaptive = false, backoff_base = 0.01, backoff_max = 0.02 }
    local off = assert(batch.backup(c, { dir = tmpdir(), concurrency = 16 }))
    local without = e:stats().throttled
    assert.equal(60, on.ok)
    assert.equal(60, off.ok)
    assert.is_nil(c.limiter:status().rate, "adaptive = false learns no rate")
    assert.is_true(without > 2 * with, ("429s: %d adaptive, %d not"):format(with, without))
  end)

  it("never exceeds a fixed rate_limit: counted per second at the emulator", function()
    seed(24)
    local c = client { rate_limit = 4 }
    local report = assert(batch.backup(c, { dir = tmpdir(), concurrency = 16 }))
    assert.equal(24, report.ok)
    -- 4/s, one request every 250 ms (no burst at this rate): at most 5 in any 1,000 ms
    local arrivals = e:stats().arrivals
    assert.equal(25, #arrivals) -- the listing and 24 backups
    for i = 1, #arrivals do
      local n = 0
      for j = i, #arrivals do if arrivals[j].t - arrivals[i].t <= 1000 then n = n + 1 end end
      assert.is_true(n <= 5, ("%d requests within 1,000 ms from arrival %d"):format(n, i))
    end
  end)

  -- Each of the emulator's throttle models: every item backed up, no error retry needed, and
  -- fewer 429s than two per item (without the limiter, each item meets hundreds: see above).
  for _, rule in ipairs {
    { model = "fixed", rate = 10 },
    { model = "fixed", rate = 10, retry_after = true },
    { model = "sliding", rate = 10 },
    { model = "bucket", rate = 10, burst = 5 },
    { model = "sliding", rate = 10, op = "backup" },
  } do
    local label = ("%s %d/s%s%s"):format(rule.model, rule.rate, rule.retry_after and ", Retry-After" or "",
      rule.op and ", backups only" or "")
    it("converges under the " .. label .. " model", function()
      seed(30)
      e:config { throttle = rule, latency_ms = 5 }
      local c = client { retries = 0 }
      local report = assert(batch.backup(c, { dir = tmpdir(), concurrency = 8 }))
      assert.equal(30, report.ok)
      assert.equal(0, report.failed)
      local st = e:stats()
      assert.is_true(st.throttled > 0, "the gateway throttled")
      assert.is_true(st.throttled < 60, st.throttled .. " answers 429 for 30 items")
      assert.equal(st.throttled, c.limiter:status().throttled)
    end)
  end

  it("holds every request back for a Retry-After", function()
    seed(12)
    -- one 429 with Retry-After: 1 on the first backup; the gateway lets everything else through
    e:config { retry_after = 1, latency_ms = 50 }
    e:fail_next { { kind = "429", op = "backup" } }
    local c = client()
    local report = assert(batch.backup(c, { dir = tmpdir(), concurrency = 4 }))
    assert.equal(12, report.ok)
    -- only the 429'd item was retried, and nothing else was resent
    local st = e:stats()
    assert.equal(13, st.requests.backup)
    assert.equal(1, c.limiter:status().throttled)
    -- by the emulator's clock: the first backup (the 429, answered after its 50 ms) came with
    -- three others; the answers that came back with it let nothing new start until the pause
    -- ended, though four threads had work: no arrival from 100 ms to 900 ms after it
    local backups = {}
    for _, a in ipairs(st.arrivals) do if a.op == "backup" then backups[#backups + 1] = a.t end end
    local t0 = backups[1]
    for _, t in ipairs(backups) do
      assert.is_false(t > t0 + 100 and t < t0 + 900, ("a backup arrived %d ms after the 429'd one"):format(t - t0))
    end
    assert.is_true(backups[#backups] >= t0 + 900, "the rest came after the pause")
  end)

  it("fails an item still throttled at its deadline with kind throttled, keeping the rest", function()
    seed(6)
    e:config { throttle_rps = 1, retry_after = 0 }
    local dir = tmpdir()
    local c = client { throttle_deadline = 0 }
    local report = assert(batch.backup(c, { dir = dir, concurrency = 6 }))
    assert.is_true(report.failed > 0)
    assert.equal(6, report.ok + report.failed)
    for _, it in ipairs(report.items) do
      if not it.ok then
        assert.equal("throttled", it.err.kind)
        assert.equal(429, it.err.status)
        assert.matches("throttle_deadline", it.err.message)
        assert.matches("^csms backup: throttled: ", tostring(it.err))
      end
    end
    -- nothing lost: what succeeded is in the manifest, and a resume finishes the set
    local m = assert(batch.read_manifest(dir))
    local n = 0
    for _ in pairs(m.items) do n = n + 1 end
    assert.equal(report.ok, n)
    assert.is_false(m.complete)
    e:config { throttle_rps = 0 }
    report = assert(batch.backup(client(), { dir = dir, resume = true }))
    assert.equal(0, report.failed)
    assert.equal(6, report.ok + report.skipped)
    os.execute("rm -rf " .. dir)
  end)

  it("waits out a 429 on a single call even with retries = 0", function()
    e:create_secret("s", { "x" })
    e:config { retry_after = 0 }
    e:fail_next { { kind = "429", op = "backup" }, { kind = "429", op = "backup" } }
    local c = client { retries = 0 }
    assert(c:backup("s"))
    assert.equal(3, e:stats().requests.backup)
  end)
end)

describe("a dead endpoint", function()
  it("ends a batch quickly with one clear error: the retry budget stops the retries", function()
    local names = {}
    for i = 1, 200 do names[i] = ("n-%03d"):format(i) end
    local sent = 0
    local real = csms.new { ak = "AK", sk = "SK", project_id = "p", endpoint = "http://127.0.0.1:"
      .. emulator.closed_port(), timeout = 2 }
    local c = assert(csms.new { ak = "AK", sk = "SK", project_id = "p", endpoint = real.endpoint,
      backoff_base = 0.001, backoff_max = 0.001,
      transport = function(req) sent = sent + 1; return real.transport:request(req) end })
    local report = assert(batch.backup(c, { dir = tmpdir(), names = names, concurrency = 8 }))
    assert.equal(200, report.failed)
    -- without a budget: 200 items x 4 attempts = 800 sends; with it, about 500 / 5 retries
    assert.is_true(sent < 200, "sends: " .. sent)
    local not_sent = 0
    for _, it in ipairs(report.items) do
      assert.equal("transport", it.err.kind)
      if it.err.not_sent then
        not_sent = not_sent + 1
        assert.matches("not sent: the service failed every request", it.err.message)
      end
    end
    assert.is_true(not_sent > 100, "unsent: " .. not_sent)
  end)
end)

describe("csms-backup under a throttling gateway", function()
  local q = emulator.shell_quote
  local function cli(args)
    local lua = require("spec.support.interpreter").command
    local p = io.popen(("cd %s && env -i PATH=%s HOME=/nonexistent HUAWEICLOUD_SDK_AK=%s HUAWEICLOUD_SDK_SK=%s "
      .. "HUAWEICLOUD_SDK_PROJECT_ID=%s %s bin/csms-backup %s 2>/dev/null </dev/null")
      :format(q(emulator.root), q(os.getenv("PATH")), q(e.ak), q(e.sk), q(e.project_id), lua, args))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("reports the throttling and the rate the run settled at, in text and in --json", function()
    seed(20)
    e:config { throttle = { model = "fixed", rate = 10 } }
    local out = cli("backup " .. q(tmpdir() .. "/a") .. " --endpoint " .. q(e.endpoint) .. " --json")
    local doc = assert(require("cjson").decode(out), out)
    assert.equal(20, doc.ok)
    assert.is_true(doc.summary.throttled > 0)
    assert.equal(e:stats().throttled, doc.summary.throttled)
    assert.is_true(doc.summary.settled_rate >= 0.5)
    e:config { throttle = { model = "fixed", rate = 10 } } -- fresh window state
    out = cli("backup " .. q(tmpdir() .. "/b") .. " --endpoint " .. q(e.endpoint))
    assert.matches("backup: 20 ok, 0 failed, 0 skipped of 20 in [^;]+; the gateway throttled %d+ "
      .. "request%(s%) %(429%), the run settled at [%d.]+ requests/s", out)
  end)
end)
