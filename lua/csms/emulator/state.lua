-- The emulator's shared state, in its one nginx worker (worker_processes 1: every request sees
-- these tables): the launcher's settings, the run-time config, the master key; and its clock.
local floor = math.floor

local M = {
  settings = {}, -- project_id, ak, sk, token, state_dir, seed, instance, config (start values)
  config = {},   -- the run-time config (csms.emulator.config)
  master = {},   -- { key = 32 bytes, kid = string }
}

--- The emulator's clock (seconds, with ms), shifted by config.clock_skew_s.
function M.now()
  return ngx.now() + (M.config.clock_skew_s or 0)
end

function M.now_ms()
  return floor(M.now() * 1000)
end

return M
