-- csms.scheduler on user transports: each mode overlaps requests as it declares, and the
-- transport's mode is checked when the client is made.
local api = require "csms.api"
local csms = require "csms"
local ratelimit = require "csms.ratelimit"
local scheduler = require "csms.scheduler"

local BLOB = '{"secret_blob":"blob"}'

local function client(transport, extra)
  local opts = { ak = "AK", sk = "SK", project_id = "p1", endpoint = "http://127.0.0.1:1",
    transport = transport, backoff_base = 0.001 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

-- A "multi" transport on a made-up event loop: every poll completes what was submitted before
-- it, answering with script(n) for the n-th request (default 200).
local function multi(script)
  local t = { inflight = {}, max = 0, n = 0, ids = 0, sleeps = 0 }
  function t.mode() return "multi" end
  function t.submit(self, req)
    self.ids = self.ids + 1
    self.n = self.n + 1
    self.inflight[self.ids] = { n = self.n, req = req }
    local c = 0
    for _ in pairs(self.inflight) do c = c + 1 end
    self.max = math.max(self.max, c)
    return self.ids
  end
  function t.poll(self)
    local out = {}
    for id, r in pairs(self.inflight) do
      local status = script and script(r.n) or 200
      out[#out + 1] = { id = id, res = { status = status, headers = {}, body = status == 200 and BLOB or "" } }
      self.inflight[id] = nil
    end
    return out
  end
  function t.request() error("a multi transport is driven through submit/poll") end
  function t.sleep(self) self.sleeps = self.sleeps + 1 end
  function t.close() end
  return t
end

local function run(c, n, concurrency)
  local items, done = {}, {}
  for i = 1, n do items[i] = ("s-%02d"):format(i) end
  scheduler.run(c, items, concurrency, function(name) return api.backup(c, name) end,
    function(name, res, err) done[#done + 1] = { name = name, res = res, err = err } end)
  return done
end

describe("csms.scheduler", function()
  it("keeps `concurrency` requests in flight on a \"multi\" transport", function()
    local t = multi()
    local done = run(client(t), 20, 5)
    assert.equal(20, #done)
    for _, d in ipairs(done) do assert.equal("blob", d.res.secret_blob) end
    assert.equal(5, t.max)
  end)

  it("slow start on a \"multi\" transport: 4 in flight, then twice as many each round trip", function()
    local t = multi()
    local rounds = {}
    local poll = t.poll
    function t.poll(self, timeout)
      local n = 0
      for _ in pairs(self.inflight) do n = n + 1 end
      rounds[#rounds + 1] = n
      return poll(self, timeout)
    end
    local step = ratelimit.SLOW_START_STEP
    ratelimit.SLOW_START_STEP = math.huge -- by answers alone (the window also doubles by time)
    finally(function() ratelimit.SLOW_START_STEP = step end)
    assert.equal(40, #run(client(t), 40, 64))
    assert.same({ 4, 8, 16, 12 }, rounds) -- 4 + 8 + 16 + the 12 left
  end)

  it("runs a function transport one request at a time", function()
    local active, max = 0, 0
    local c = client(function()
      active = active + 1
      max = math.max(max, active)
      active = active - 1
      return { status = 200, headers = {}, body = BLOB }
    end)
    assert.equal("serial", require("csms.transport").mode(c.transport))
    assert.equal(10, #run(c, 10, 8))
    assert.equal(1, max)
  end)

  it("retries 5xx of one item without holding up the others, and gives each its result", function()
    -- requests 1 and 3 fail with 503 once; everything else succeeds
    local t = multi(function(n) return (n == 1 or n == 3) and 503 or 200 end)
    local done = run(client(t), 6, 3)
    assert.equal(6, #done)
    for _, d in ipairs(done) do assert.truthy(d.res, tostring(d.err)) end
    assert.equal(8, t.n)
  end)

  it("paces a batch on a \"multi\" transport with the client's limiter after a 429", function()
    local t = multi(function(n) return n == 2 and 429 or 200 end)
    local c = client(t, { retries = 0 })
    local done = run(c, 6, 3)
    assert.equal(6, #done)
    for _, d in ipairs(done) do assert.truthy(d.res, tostring(d.err)) end
    assert.equal(7, t.n) -- the throttled one once more, nothing else
    assert.equal(1, c.limiter:status().throttled)
    assert.truthy(c.limiter:status().rate, "the limiter turned on")
  end)

  -- A source of items that come while the run goes on: "g1" brings x1, x2 and "g2" when it
  -- ends, "g2" brings x3 (as a listing's pages bring secrets and the next page).
  local function growing()
    local queue, head, running = { "g1" }, 1, 0
    local brings = { g1 = { "g2", "x1", "x2" }, g2 = { "x3" } }
    local function source()
      local item = queue[head]
      if item then
        head = head + 1
        return item
      end
      return nil, running > 0
    end
    local function finished(name)
      if name:sub(1, 1) == "g" then running = running - 1 end
      for _, n in ipairs(brings[name] or {}) do
        queue[#queue + 1] = n
        if n:sub(1, 1) == "g" then running = running + 1 end
      end
    end
    running = 1
    return source, finished
  end

  for _, mode in ipairs { "multi", "serial" } do
    it("takes items from a source as they come (" .. mode .. ")", function()
      local t = mode == "multi" and multi() or function(req)
        return { status = 200, headers = {}, body = BLOB, url = req.url }
      end
      local c = client(t)
      local sent = {}
      local source, finished = growing()
      local done = {}
      scheduler.run(c, source, 4, function(name)
        sent[#sent + 1] = name
        return api.backup(c, name)
      end, function(name, res, err)
        assert.truthy(res, tostring(err))
        done[#done + 1] = name
        finished(name)
      end)
      table.sort(done)
      assert.same({ "g1", "g2", "x1", "x2", "x3" }, done)
      -- in the order the source gives them, g2 (brought by g1) before g1's other items
      assert.same({ "g1", "g2", "x1", "x2", "x3" }, sent)
    end)
  end

  it("raises when a source says more will come but nothing is running to bring it", function()
    for _, t in ipairs { multi(), function() return { status = 200, headers = {}, body = BLOB } end } do
      local c = client(t)
      local ok, err = pcall(scheduler.run, c, function() return nil, true end, 4,
        function(name) return api.backup(c, name) end, function() end)
      assert.is_false(ok)
      assert.matches("the items source says more will come, but no operation is under way", err, 1, true)
    end
  end)

  it("refuses a transport that declares a mode it cannot keep", function()
    local bad = { request = function() end, sleep = function() end, close = function() end,
      mode = function() return "multi" end }
    assert.has_error(function() client(bad) end,
      "csms: a transport whose mode() is \"multi\" must have submit and poll methods")
    bad.mode = function() return "parallel" end
    assert.has_error(function() client(bad) end)
  end)
end)
