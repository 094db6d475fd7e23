-- The emulator's statistics (GET /__emulator/stats): request counts per op, failures, faults,
-- throttling per op, and the arrivals of the last API requests (a ring).
local json = require "csms.json"
local defaults = require "csms.emulator.defaults"
local operations = require "csms.emulator.operations"

local KEPT = defaults.arrivals_kept

local M = {}

local counts, arrivals, arrived

function M.reset()
  local requests, throttled_by_op = {}, {}
  for _, op in ipairs(operations.NAMES) do requests[op], throttled_by_op[op] = 0, 0 end
  requests.unknown = 0
  counts = { requests = requests, total = 0, auth_failures = 0, faults = 0, throttled = 0,
             throttled_by_op = throttled_by_op, admin = 0, metadata = 0 }
  arrivals, arrived = {}, 0
end
M.reset()

--- Adds one to a counter: "total", "auth_failures", "faults", "admin", "metadata".
function M.add(name)
  counts[name] = counts[name] + 1
end

--- An API request routed to op (or "unknown").
function M.request(op)
  counts.total = counts.total + 1
  counts.requests[op] = counts.requests[op] + 1
end

--- An API request of op seen by the throttle at t (integer ms), throttled or not.
function M.arrival(t, op, throttled)
  arrivals[arrived % KEPT + 1] = { t = t, op = op, throttled = throttled }
  arrived = arrived + 1
  if throttled then
    counts.throttled = counts.throttled + 1
    counts.throttled_by_op[op] = counts.throttled_by_op[op] + 1
  end
end

--- The stats as JSON: the counters, and the arrivals oldest first.
function M.public()
  local out = {}
  for k, v in pairs(counts) do out[k] = v end
  local list = json.array({})
  local n = math.min(arrived, KEPT)
  for i = 1, n do list[i] = arrivals[(arrived - n + i - 1) % KEPT + 1] end
  out.arrivals = list
  return out
end

return M
