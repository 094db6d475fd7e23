-- What the bench scripts share. Each runs from the repository root and starts with
--   local common = dofile("bench/common.lua")
-- which also puts the checkout's lua/ and the C module built for the running interpreter
-- (build/lua54/ or build/luajit/) first on the module paths.
local JIT = rawget(_G, "jit")
package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "./build/" .. (JIT and "luajit" or "lua54") .. "/?.so;" .. package.cpath

local M = {}

-- The median of a list of numbers (the list is left as it is), or nil for none.
function M.median(t)
  if not t or #t == 0 then return nil end
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  return n % 2 == 1 and c[(n + 1) / 2] or (c[n / 2] + c[n / 2 + 1]) / 2
end

-- A shell command's whole standard output.
function M.read_cmd(cmd)
  local p = io.popen(cmd)
  local s = p:read("*a")
  p:close()
  return s
end

-- Prints a limiter's changes on stderr as they happen (bench/throttle.lua, bench/throttle_sim.lua
-- with their trace on): each cut, each measure taken again that lowers the ceiling, each raise
-- by a probe. elapsed() gives the seconds to print; extra(), if given, a string to add to a cut.
function M.trace_limiter(l, elapsed, extra)
  local function say(fmt, ...) io.stderr:write(("%7.3f " .. fmt .. "\n"):format(elapsed(), ...)) end
  local throttle, settle, success = l.throttle, l.settle, l.success
  l.throttle = function(self, sent_at, ra, now)
    local before = self.last_cut
    throttle(self, sent_at, ra, now)
    if self.last_cut ~= before then
      say("cut: ceiling %.1f (confirmed %d) rate %.1f, probe in %.1f s%s%s", self.ceiling, self.confirmed,
        self.rate, self.probe_at - self.last_cut, ra and ", Retry-After " .. ra or "", extra and extra() or "")
    end
  end
  l.settle = function(self, now)
    local before = self.ceiling
    settle(self, now)
    if self.ceiling ~= before then say("measured again: ceiling %.1f rate %.1f", self.ceiling, self.rate) end
  end
  l.success = function(self, now)
    self:settle(now) -- first, so that a change it makes is told as its own
    local before = self.ceiling
    success(self, now)
    if self.ceiling ~= before then
      say("raised by a probe: ceiling %.1f rate %.1f (sending %d/s)", self.ceiling, self.rate, self:send_rate())
    end
  end
end

return M
