-- csms.scheduler: drives operations (csms.operation) to their end on a client's transport,
-- many at once with bounded concurrency, every send paced by the client's limiter and every
-- error retry paid from its retry budget (csms.ratelimit). client:backup() and friends are a
-- run of one operation; csms.batch hands it whole sets.
--
-- How operations overlap is the transport's to say (transport:mode(), lua/csms/transport.lua):
--   "multi"   submit/poll: one loop keeps up to `concurrency` requests in flight (libcurl's multi
--             interface, or a user transport's own event loop);
--   "threads" request() yields to an event loop (nginx cosockets): `concurrency` light threads
--             (ngx.thread) each drive one operation at a time;
--   "serial"  request() blocks: one operation at a time.
local errors = require "csms.errors"
local operation = require "csms.operation"
local transport = require "csms.transport"

local M = {}

local TICK = 0.1 -- the longest wait between tick() calls while work remains

local function clock() return operation.clock() end

local SLOW_START_WAIT = 0.005 -- a light thread's sleep while slow start holds it back
local SEND_NOW = 0.0001       -- a poll that only lets the transport send what was submitted
local NOTHING_RUNNING = "csms.scheduler: the items source says more will come, but no operation "
  .. "is under way to bring it"

-- Drives one operation to its end with blocking waits: request, then transport:sleep for the
-- limiter's turn and between attempts. Used for single calls, "serial" and "threads" (whose
-- light threads share limiter.inflight, the requests of the client in flight).
local function drive(client, op)
  local t, limiter = client.transport, client.limiter
  while true do
    while limiter.inflight >= limiter:max_inflight(clock()) do t:sleep(SLOW_START_WAIT) end
    repeat -- the limiter's turn; again if a Retry-After paused the client meanwhile
      local asked = clock()
      local wait = limiter:acquire(asked)
      if wait > 0 then t:sleep(wait) end
    until wait == 0 or limiter.reset_at <= asked
    local req, err = op:request()
    if not req then return nil, err end
    limiter.inflight = limiter.inflight + 1
    local res, terr = t:request(req)
    limiter.inflight = limiter.inflight - 1
    local what, v = op:outcome(res, terr)
    if what == "done" then return v end
    if what == "failed" then return nil, v end
    if v > 0 then t:sleep(v) end
  end
end

-- Runs one operation to its end: what client:backup() and friends return.
function M.run_one(client, op)
  return drive(client, op)
end

-- The item's error when the client's retry budget is spent by failures alone (the service is
-- down): the rest of a run fails at once, unsent, instead of waiting out every item's retries.
local function not_sent(client, item_op)
  local last = client.budget.last_err
  return errors.new(last and last.kind or "transport", "not sent: the service failed every "
    .. "request since the client's retry budget ran out (last: " .. tostring(last) .. ")",
    { op = item_op, status = last and last.status, retryable = false, not_sent = true })
end

-- ---------------------------------------------------------------- one at a time, or threads

local function run_blocking(client, next_item, concurrency, make_op, finish, tick)
  local failed_dead, busy = false, 0
  local function worker()
    while true do
      local item, later = next_item()
      if item == nil then
        if not later then return end
        -- More will come from an operation another light thread is driving: wait for it.
        if busy == 0 then error(NOTHING_RUNNING, 0) end
        client.transport:sleep(SLOW_START_WAIT)
      else
        busy = busy + 1
        local op, err = make_op(item)
        if op and failed_dead and client.budget:dead() then
          finish(item, nil, not_sent(client, op.op))
        elseif op then
          local res
          res, err = drive(client, op)
          if not res and err.retryable and client.budget:dead() then failed_dead = true end
          finish(item, res, err)
        else
          finish(item, nil, err)
        end
        busy = busy - 1
        tick()
      end
    end
  end
  if concurrency <= 1 then return worker() end
  local threads = {}
  for i = 1, concurrency do threads[i] = ngx.thread.spawn(worker) end
  for _, th in ipairs(threads) do
    local ok, err = ngx.thread.wait(th)
    if not ok then error(err, 0) end
  end
end

-- ---------------------------------------------------------------- submit/poll

local function run_multi(client, next_item, concurrency, make_op, finish, tick)
  local t, limiter, budget = client.transport, client.limiter, client.budget
  local inflight, count = {}, 0
  local waiting = {} -- { at, op, item }: retries not yet due
  local ready = {}   -- { op, item }: to send as soon as the limiter allows, oldest first
  local early = {}   -- answers a send's poll brought: handled with the next poll's
  local failed_dead, later, unlaunched = false, true

  local function launch(r)
    local req, err = r.op:request()
    local id
    if req then
      id, err = t:submit(req)
      if not id then err = errors.new("invalid_argument", err, { op = r.op.op }) end
    end
    if not id then
      unlaunched = true
      return finish(r.item, nil, err)
    end
    inflight[id] = r
    count = count + 1
  end

  -- Due retries first, then new items, never more than `concurrency` in hand; then each takes
  -- its turn from the limiter (it waits in `waiting` until then; one whose wait a cut or a
  -- Retry-After began during asks again) and is sent. Slow start may allow fewer in flight.
  -- Returns the cap on requests in flight.
  local function top_up(now)
    local i = 1
    while i <= #waiting do
      if waiting[i].at <= now then
        ready[#ready + 1] = table.remove(waiting, i)
      else
        i = i + 1
      end
    end
    while count + #ready + #waiting < concurrency do
      local item
      item, later = next_item()
      if item == nil then break end
      local op, err = make_op(item)
      if op and failed_dead and budget:dead() then
        finish(item, nil, not_sent(client, op.op))
      elseif op then
        ready[#ready + 1] = { op = op, item = item }
      else
        finish(item, nil, err)
      end
    end
    local cap = math.min(concurrency, limiter:max_inflight(now))
    while count < cap and #ready > 0 do
      local r = table.remove(ready, 1)
      local wait = 0
      if not r.asked or limiter.reset_at > r.asked then
        r.asked = now
        wait = limiter:acquire(now)
      end
      if wait > 0 then
        r.at = now + wait
        waiting[#waiting + 1] = r
      else
        r.asked = nil
        launch(r)
      end
    end
    return cap
  end

  -- Answers that came back together. The limiter hears the successes first, so that a 429
  -- among them is measured against everything the gateway let through before it. The slots
  -- they free are filled and the new requests sent at once (a poll that does not wait:
  -- libcurl sends what was submitted when it is polled); the ended items' own work (finish:
  -- writing files, progress) is done after, while those requests are on their way.
  local function answered(got)
    local answers, throttles, ended = {}, {}, {}
    for _, c in ipairs(got) do
      local list = c.res and c.res.status == 429 and throttles or answers
      list[#list + 1] = c
    end
    for _, c in ipairs(throttles) do answers[#answers + 1] = c end
    for _, c in ipairs(answers) do
      local r = inflight[c.id]
      inflight[c.id] = nil
      count = count - 1
      local what, v = r.op:outcome(c.res, c.terr)
      if what == "done" then
        ended[#ended + 1] = { r.item, v }
      elseif what == "failed" then
        if v.retryable and budget:dead() then failed_dead = true end
        ended[#ended + 1] = { r.item, nil, v }
      else
        r.at = clock() + v
        waiting[#waiting + 1] = r
      end
    end
    local before = count
    top_up(clock())
    if count > before then
      for _, c in ipairs(t:poll(SEND_NOW)) do early[#early + 1] = c end
    end
    for _, e in ipairs(ended) do finish(e[1], e[2], e[3]) end
  end

  while true do
    unlaunched = false
    local cap = top_up(clock())
    local wake = math.huge
    for _, w in ipairs(waiting) do wake = math.min(wake, w.at) end
    local timeout = math.min(TICK, math.max(0, wake - clock()))
    if count == 0 and #ready == 0 and #waiting == 0 then
      -- Nothing in hand: the source is done, or an item that failed to launch since it was
      -- asked may have given it more (then round again).
      if not later then return end
      if not unlaunched then error(NOTHING_RUNNING, 0) end
    elseif #early > 0 then
      local got = early
      early = {}
      answered(got)
    elseif count == 0 then
      if timeout > 0 then t:sleep(timeout) end
    else
      if count >= cap then timeout = TICK end -- only a completion frees a slot
      answered(t:poll(math.max(0.001, timeout)))
    end
    tick()
  end
end

-- Runs make_op(item) for every item, up to `concurrency` at once, and calls
-- finish(item, result, err) as each ends (err: make_op's own, or the operation's), and tick()
-- after each completion and, while requests are in flight, at least every 0.1 s.
-- make_op(item) returns an operation, or nil, err for an item that cannot be sent.
--
-- items is an array, or a source of items that arrive while the run goes on: a function
-- returning the next item; or nil, true when there is none yet but the end of an operation
-- under way may bring more (its finish); or nil when there will be none. A source whose items
-- come from operations of its own (the pages of a listing) hands those out as items too, with
-- the make_op and finish that go with them: they share the slots, the limiter and the retry
-- budget with the rest, and new items start as soon as a slot frees, not once all have come.
function M.run(client, items, concurrency, make_op, finish, tick)
  tick = tick or function() end
  local next_item, threads = items, concurrency
  if type(items) == "table" then
    local i = 0
    next_item = function()
      i = i + 1
      return items[i]
    end
    threads = math.max(1, math.min(concurrency, #items)) -- no light thread without an item
  end
  local mode = transport.mode(client.transport)
  if mode == "multi" and concurrency > 1 then
    return run_multi(client, next_item, concurrency, make_op, finish, tick)
  end
  return run_blocking(client, next_item, mode == "threads" and threads or 1, make_op, finish, tick)
end

return M
