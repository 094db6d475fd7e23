-- The client's rate limiting on virtual time: not a test, a tuning tool for csms.ratelimit.
--
--   lua5.4 bench/throttle_sim.lua [--n N] [--seeds S] [--seed FIRST] [--models ...]
--     [--limits ...] [--concurrency ...] [--latency MS] [--jitter MS] [--out FILE] [--trace]
--   RL_FILE=old_ratelimit.lua RL_SET="SETTLE=0.9,GROWTH1=4" lua5.4 bench/throttle_sim.lua ...
--     (another csms.ratelimit file, or other values of its tunables, to compare)
--
-- The real client (csms.scheduler, csms.operation, csms.ratelimit) runs against a transport
-- that plays the gateway on a virtual clock, with the emulator's own throttle models
-- (lua/csms/emulator/throttle.lua): a request admitted is answered after the latency, a
-- throttled one at once (with the emulator's computed Retry-After for `fixed+ra`). Nothing
-- waits for real time and no machine load moves the numbers, so variants of the limiter can
-- be compared over many seeds in seconds (each seed: another phase of the gateway's window
-- against the client's start; --jitter adds up to that much to each latency, as a loaded
-- server does). The listing comes first, a page of 200 at a time, as in a batch backup.
-- bench/throttle.lua measures the same cells end to end (real emulator, sockets, files); this
-- one the client's pacing alone.
local common = dofile("bench/common.lua")
if os.getenv("RL_FILE") then -- another csms.ratelimit to compare (a file)
  package.preload["csms.ratelimit"] = assert(loadfile(os.getenv("RL_FILE")))
end
local operation = require "csms.operation"
-- RL_SET="NAME=v,GROWTH1=v": csms.ratelimit's tunables changed for this run
for k, v in (os.getenv("RL_SET") or ""):gmatch("([%w_]+)=([%d.]+)") do
  local rl = require "csms.ratelimit"
  local name, idx = k:match("^(%u+)(%d)$")
  if name and type(rl[name]) == "table" then rl[name][tonumber(idx)] = tonumber(v) else rl[k] = tonumber(v) end
end
local gateway = require "csms.emulator.throttle"

local vnow = 1000 -- virtual seconds
operation.clock = function() return vnow end

local csms = require "csms"
local api = require "csms.api"
local scheduler = require "csms.scheduler"
local blob = dofile("spec/support/documented_blob.lua")
local BODY = '{"secret_blob":"' .. blob .. '"}'

-- A "multi" transport on the virtual clock: the gateway decides at submit time.
local JITTER = 0 -- seconds: each answer's latency gets up to this much more (a loaded server)

local function sim_transport(rule, latency, phase)
  local lim = gateway.new((assert(gateway.check(rule, { backup = true }))))
  local t = { pending = {}, next_id = 0, total = 0, throttled = 0 }
  function t.mode() return "multi" end
  function t.submit(_, _req)
    t.next_id = t.next_id + 1
    t.total = t.total + 1
    -- the gateway counts by arrival: up to a quarter of the jitter after the send, in order
    t.last_ms = math.max(t.last_ms or 0, math.floor((vnow + phase + JITTER / 4 * math.random()) * 1000))
    local ms = t.last_ms
    local refused, wait = lim:admit("backup", ms)
    local res
    if refused then
      t.throttled = t.throttled + 1
      local ra = gateway.retry_after(refused, wait)
      res = { status = 429, headers = { ["content-type"] = "application/json", ["retry-after"] = ra },
        body = '{"error_code":"APIG.0308","error_msg":"' .. gateway.message(refused) .. '"}' }
      t.pending[#t.pending + 1] = { id = t.next_id, at = vnow + 0.001, res = res }
    else
      res = { status = 200, headers = { ["content-type"] = "application/json" }, body = BODY }
      t.pending[#t.pending + 1] = { id = t.next_id, at = vnow + latency + JITTER * math.random(), res = res }
    end
    return t.next_id
  end
  function t.poll(_, timeout)
    local soonest = vnow + timeout
    for _, p in ipairs(t.pending) do soonest = math.min(soonest, p.at) end
    vnow = math.max(vnow, soonest)
    local out, keep = {}, {}
    for _, p in ipairs(t.pending) do
      if p.at <= vnow then out[#out + 1] = { id = p.id, res = p.res } else keep[#keep + 1] = p end
    end
    t.pending = keep
    return out
  end
  function t.sleep(_, s) vnow = vnow + s end
  function t.request(self, req) -- one at a time (the listing)
    local id = self:submit(req)
    while true do
      for _, c in ipairs(self:poll(1)) do if c.id == id then return c.res end end
    end
  end
  function t.close() end
  return t
end

local function cell(model, rps, conc, n, latency, seed, trace)
  local rule = { model = model:match("^%a+"), rate = rps, retry_after = model:find("+ra", 1, true) ~= nil,
    burst = model == "bucket" and math.max(1, math.ceil(rps / 4)) or nil }
  math.randomseed(seed)
  vnow = 1000 + math.random()
  local tr = sim_transport(rule, latency, math.random())
  local c = assert(csms.new { endpoint = "https://csms.example.com", ak = "AK", sk = "SK",
    project_id = "p", transport = tr })
  if trace then
    local t0 = vnow
    common.trace_limiter(c.limiter, function() return vnow - t0 end,
      function() return ("; 429s so far %d of %d"):format(tr.throttled, tr.total) end)
  end
  local items = {}
  for i = 1, n do items[i] = ("s-%05d"):format(i) end
  local failed, t0 = 0, vnow
  -- The listing first: a page of 200 at a time, one after the other (they count at the gateway).
  local pages = {}
  for p = 1, math.ceil(n / 200) do pages[p] = "page-" .. p end
  scheduler.run(c, pages, 1, function(name) return api.backup(c, name) end, function() end)
  scheduler.run(c, items, conc, function(name) return api.backup(c, name) end,
    function(_, res) if not res then failed = failed + 1 end end)
  return (vnow - t0) / (n / rps), 100 * tr.throttled / tr.total, failed, c.limiter.rate
end

local N, SEEDS, LATENCY, TRACE, SEED0, OUT = 1000, 10, 0.02, false, nil, nil
local MODELS, LIMITS, CONC = { "fixed", "fixed+ra", "sliding", "bucket" }, { 10, 40, 100 }, { 4, 16, 64 }
local function list(s, num)
  local t = {}
  for v in s:gmatch("[^,]+") do t[#t + 1] = num and tonumber(v) or v end
  return t
end
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--n" then N = tonumber(v)
  elseif a == "--seeds" then SEEDS = tonumber(v)
  elseif a == "--seed" then SEED0 = tonumber(v)
  elseif a == "--latency" then LATENCY = tonumber(v) / 1000
  elseif a == "--jitter" then JITTER = tonumber(v) / 1000
  elseif a == "--models" then MODELS = list(v)
  elseif a == "--limits" then LIMITS = list(v, true)
  elseif a == "--concurrency" then CONC = list(v, true)
  elseif a == "--out" then OUT = v
  elseif a == "--trace" then TRACE = true; i = i - 1
  else io.stderr:write("bad argument " .. a .. "\n") os.exit(2) end
  i = i + 2
end

local out = {}
local function emit(line) print(line) out[#out + 1] = line end
emit(("## The limiter alone, on virtual time: %d items, %d ms latency + up to %d ms more, %d seeds a cell")
  :format(N, LATENCY * 1000, JITTER * 1000, SEEDS))
emit("")
emit("Each seed is another phase of the gateway's window against the client's start. Targets as in "
  .. "`bench/throttle.lua`: wall time within 1.15x of N/R, at most 5% of requests answered 429, 0 failed.")
emit("")
emit("| model | limit | concurrency | wall/ideal mean | worst | 429 % mean | worst | failed | seeds meeting all |")
emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
local all_met, all = 0, 0
for _, model in ipairs(MODELS) do
  for _, rps in ipairs(LIMITS) do
    for _, conc in ipairs(CONC) do
      local sr, ws, sh, wsh, fl, met = 0, 0, 0, 0, 0, 0
      for seed = SEED0 or 1, (SEED0 or 1) + SEEDS - 1 do
        local r, sp, f = cell(model, rps, conc, N, LATENCY, seed, TRACE)
        sr, sh, fl = sr + r, sh + sp, fl + f
        ws, wsh = math.max(ws, r), math.max(wsh, sp)
        if r <= 1.15 and sp <= 5 and f == 0 then met = met + 1 end
      end
      all_met, all = all_met + met, all + SEEDS
      emit(("| %s | %d | %d | %.3f | %.3f | %.1f | %.1f | %d | %d of %d |"):format(model, rps, conc,
        sr / SEEDS, ws, sh / SEEDS, wsh, fl, met, SEEDS))
    end
  end
end
emit("")
emit(("Runs meeting every target: %d of %d."):format(all_met, all))
emit("")
emit("Command: `lua5.4 bench/throttle_sim.lua" .. (#arg > 0 and " " .. table.concat(arg, " ") or "") .. "`")
if OUT then
  local f = assert(io.open(OUT, "w"))
  f:write(table.concat(out, "\n"), "\n")
  f:close()
end
