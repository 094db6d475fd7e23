-- A transport for specs: records every request and answers from a function.
--   local t = fake.new(function(req, n) return { status = 200, headers = {}, body = "" } end)
--   t.requests[i], t.sleeps[i]
-- With { yield = true }, each request yields (coroutine.yield) before it answers, as a
-- cosocket does: specs run "light threads" as coroutines with fake.run.
local M = {}

local function in_coroutine()
  if coroutine.isyieldable then return coroutine.isyieldable() end
  local co, main = coroutine.running() -- 5.1: nil in the main thread; 5.2: main = true
  return co ~= nil and not main
end

local Fake = {}
Fake.__index = Fake

function M.new(handler, opts)
  return setmetatable({ handler = handler, requests = {}, sleeps = {}, yield = opts and opts.yield }, Fake)
end

function Fake:request(req)
  self.requests[#self.requests + 1] = req
  local n = #self.requests
  if self.yield and in_coroutine() then coroutine.yield("request") end
  local res, terr = self.handler(req, n)
  if res then
    res.headers = res.headers or {}
    res.body = res.body or ""
  end
  return res, terr
end

function Fake:sleep(seconds)
  self.sleeps[#self.sleeps + 1] = seconds
  if in_coroutine() then coroutine.yield("sleep") end
end

function Fake.close() end

-- Runs the functions as coroutines, round-robin, until all have returned; returns their
-- results in order. Each yield (a request or a sleep) hands over to the next one.
function M.run(fns)
  local threads, results, left = {}, {}, #fns
  for i, fn in ipairs(fns) do threads[i] = coroutine.create(fn) end
  while left > 0 do
    for i, co in ipairs(threads) do
      if coroutine.status(co) == "suspended" then
        local r = { coroutine.resume(co) }
        if not r[1] then error(r[2], 0) end
        if coroutine.status(co) == "dead" then
          results[i] = { table.unpack and table.unpack(r, 2) or unpack(r, 2) }
          left = left - 1
        end
      end
    end
  end
  return results
end

function M.json(status, doc, headers)
  return { status = status, headers = headers or {}, body = require("cjson").encode(doc) }
end

return M
