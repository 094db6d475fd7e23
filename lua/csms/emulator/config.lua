-- The run-time config (POST/GET /__emulator/config): its start values, checking and applying a
-- change, its public form, and the throttle limiter built from it.
local json = require "csms.json"
local state = require "csms.emulator.state"
local faults = require "csms.emulator.faults"
local throttle = require "csms.emulator.throttle"
local operations = require "csms.emulator.operations"

local array, null = json.array, json.null

local M = {}

local TYPES = {
  latency_ms = "number", latency_jitter_ms = "number", fault_rate = "number", faults = "table",
  fault_ops = "table", retry_after = "number", throttle_rps = "number", lockout = "boolean",
  clock_skew_s = "number", metadata_ttl_s = "number", throttle = "table",
}
local NULLABLE = { fault_ops = true, throttle = true }

--- The limiter for the current config: throttle_rps as a fixed-window rule (Retry-After:
--- retry_after), then the throttle rules; every rule starts with fresh state.
M.limiter = throttle.new({})

local function new_limiter()
  local config, rules = state.config, {}
  if (config.throttle_rps or 0) > 0 then
    rules[1] = { model = "fixed", rate = config.throttle_rps, retry_after = config.retry_after }
  end
  for _, r in ipairs(config.throttle or {}) do rules[#rules + 1] = r end
  M.limiter = throttle.new(rules)
end

--- Back to the start values (state.settings.config), with a fresh limiter.
function M.reset()
  local c = {}
  for k, v in pairs(state.settings.config) do c[k] = v end
  state.config = c
  new_limiter()
end

--- Checks a change (a decoded JSON object) and applies it; nil and a reason when refused, with
--- nothing changed.
function M.apply(doc)
  local change = {}
  for k, v in pairs(doc) do
    local t = TYPES[k]
    if not t then return nil, "unknown setting " .. tostring(k) end
    if v == null then
      if not NULLABLE[k] then return nil, k .. " cannot be null" end
    elseif type(v) ~= t then
      return nil, k .. " must be a " .. t
    elseif k == "faults" then
      for _, kind in ipairs(v) do
        if not faults.KINDS[kind] then return nil, "unknown fault kind " .. tostring(kind) end
      end
    elseif k == "fault_ops" then
      for _, o in ipairs(v) do
        if not operations.KNOWN[o] then return nil, "unknown op " .. tostring(o) end
      end
    elseif k == "throttle" then
      local rules, err = throttle.check(v, operations.KNOWN)
      if not rules then return nil, err end
      v = rules
    elseif t == "number" and v < 0 and k ~= "clock_skew_s" then
      return nil, k .. " must not be negative"
    end
    change[k] = v
  end
  if doc.fault_rate and doc.fault_rate > 1 then return nil, "fault_rate must be within 0..1" end
  for k, v in pairs(change) do
    if v == null then state.config[k] = nil else state.config[k] = v end
  end
  if doc.throttle ~= nil or doc.throttle_rps or doc.retry_after then new_limiter() end
  return true
end

--- The config as GET /__emulator/config answers it.
function M.public()
  local config, c = state.config, {}
  for k in pairs(TYPES) do c[k] = config[k] end
  c.faults = array({ unpack(config.faults or {}) })
  c.fault_ops = config.fault_ops and array({ unpack(config.fault_ops) }) or null
  c.throttle = array({ unpack(config.throttle or {}) })
  c.pending_faults = faults.pending()
  return c
end

return M
