-- Start-up, in nginx's init_by_lua (the master process, before the fork): the launcher's
-- settings over the defaults, the run-time config they start, the store, the master key, the
-- seed.
local json = require "csms.json"
local crypto = require "csms.emulator.crypto"
local defaults = require "csms.emulator.defaults"
local files = require "csms.emulator.files"
local limits = require "csms.emulator.limits"
local faults = require "csms.emulator.faults"
local throttle = require "csms.emulator.throttle"
local config = require "csms.emulator.config"
local operations = require "csms.emulator.operations"
local state = require "csms.emulator.state"
local stats = require "csms.emulator.stats"
local store = require "csms.emulator.store"

local null = json.null

local M = {}

-- Settings the launcher may give (null or "": the default) that start the run-time config.
local CONFIG_SETTINGS = { "latency_ms", "fault_rate", "faults", "throttle_rps" }

--- The launcher's settings file over the defaults: identity, paths, start config.
local function read_settings(path)
  local data = assert(files.read(path), "cannot read " .. tostring(path))
  local s = assert(json.decode(data), "bad settings file " .. path)
  for k, v in pairs(s) do
    if v == null or v == "" then s[k] = nil end
  end
  for _, k in ipairs({ "project_id", "ak", "sk", "token" }) do s[k] = s[k] or defaults[k] end
  local c = {}
  for k, v in pairs(defaults.config) do c[k] = v end
  for _, k in ipairs(CONFIG_SETTINGS) do
    if s[k] ~= nil then c[k], s[k] = s[k], nil end
  end
  for _, kind in ipairs(c.faults) do
    if not faults.KINDS[kind] then error("unknown fault kind " .. tostring(kind)) end
  end
  local rules = {}
  for i, text in ipairs(s.throttle_rules or {}) do
    local doc, jerr = json.decode(text)
    local list, terr = throttle.check(doc or text, operations.KNOWN)
    if not list then
      error("--throttle-rule " .. i .. ": " .. (doc and terr or ("not JSON: " .. tostring(jerr))))
    end
    for _, r in ipairs(list) do rules[#rules + 1] = r end
  end
  c.throttle, s.throttle_rules = rules, nil
  s.config = c
  return s
end

--- The master key from state_dir/master-key.json, else a new one (saved there when a state
--- dir is set).
local function load_master_key(dir)
  local path = dir and (dir .. "/master-key.json") or nil
  local data = path and files.read(path)
  if data then
    local doc = json.decode(data)
    local key = doc and type(doc.key) == "string" and crypto.unhex(doc.key)
    if not key or #key ~= 32 or type(doc.kid) ~= "string" then
      error("master key file " .. path .. " is not valid")
    end
    return { key = key, kid = doc.kid }
  end
  local master = { key = crypto.random(32), kid = store.uuid() }
  if path then
    local ok, err = files.write_atomic(path,
      json.encode({ kid = master.kid, key = crypto.hex(master.key) }) .. "\n", 384)
    if not ok then error("cannot write " .. path .. ": " .. tostring(err)) end
  end
  return master
end

local function load_seed(path)
  local data = files.read(path)
  if not data then error("cannot read seed file " .. path) end
  local doc, err = json.decode(data)
  if type(doc) ~= "table" or type(doc.secrets) ~= "table" then
    error("seed file " .. path .. " must hold {\"secrets\":[...]}: " .. tostring(err))
  end
  for i, s in ipairs(doc.secrets) do
    local serr = limits.seed_entry_error(s)
    if serr then error("seed file " .. path .. ": entry " .. i .. " " .. serr) end
    if not store.exists(s.name) then store.create(s.name, s.versions, s) end
  end
end

--- init_by_lua: settings_path is the launcher's conf/emulator.json.
function M.init(settings_path)
  state.settings = read_settings(settings_path)
  config.reset()
  stats.reset()
  store.init({ state_dir = state.settings.state_dir, now_ms = state.now_ms })
  state.master = load_master_key(state.settings.state_dir)
  if state.settings.seed then load_seed(state.settings.seed) end
end

--- init_worker_by_lua: seeds math.random (latency jitter, fault draws) per worker.
function M.init_worker()
  local seed = 0
  for _, b in ipairs({ crypto.random(4):byte(1, 4) }) do seed = seed * 256 + b end
  math.randomseed(seed)
end

return M
