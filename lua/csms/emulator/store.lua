-- The emulator's secrets: module-level tables in the single nginx worker, optionally persisted to
-- a state directory (state.json, written to a temporary file then renamed, after every mutation).
local json = require "csms.json"
local crypto = require "csms.emulator.crypto"
local files = require "csms.emulator.files"
local limits = require "csms.emulator.limits"

local array, null = json.array, json.null
local format = string.format

local M = {}

M.DEFAULT_KMS_KEY_ID = "7f3c6a52-2c4e-4e0b-9d1f-0e5a6b7c8d9e"

local secrets = {}        -- name -> record
local state_file          -- path or nil
local now_ms = function() return math.floor(os.time() * 1000) end

function M.uuid()
  local b = { crypto.random(16):byte(1, 16) }
  b[7] = b[7] % 16 + 0x40
  b[9] = b[9] % 64 + 0x80
  return format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
    b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
    b[15], b[16])
end

-- Records -----------------------------------------------------------------------------------

local META_FIELDS = {
  "id", "name", "state", "kms_key_id", "description", "create_time", "update_time",
  "scheduled_delete_time", "secret_type", "auto_rotation", "rotation_period", "rotation_config",
  "rotation_time", "next_rotation_time", "event_subscriptions", "enterprise_project_id",
  "rotation_func_urn",
}
M.META_FIELDS = META_FIELDS

local function orv(v, default)
  if v == nil then return default end
  return v
end

--- Brings a decoded record (from a blob, the state file or a seed) to the in-memory shape:
--- arrays marked, absent fields filled. Returns the record or nil and a reason.
function M.normalise(r)
  if type(r) ~= "table" or not limits.valid_name(r.name) then return nil, "bad secret record" end
  if type(r.versions) ~= "table" or #r.versions == 0 then return nil, "secret has no versions" end
  local out = {
    id = orv(r.id, M.uuid()), name = r.name, state = orv(r.state, "ENABLED"),
    kms_key_id = orv(r.kms_key_id, M.DEFAULT_KMS_KEY_ID), description = orv(r.description, ""),
    create_time = orv(r.create_time, now_ms()), scheduled_delete_time = orv(r.scheduled_delete_time, null),
    secret_type = orv(r.secret_type, "COMMON"), auto_rotation = orv(r.auto_rotation, false),
    rotation_period = orv(r.rotation_period, null), rotation_config = orv(r.rotation_config, null),
    rotation_time = orv(r.rotation_time, null), next_rotation_time = orv(r.next_rotation_time, null),
    event_subscriptions = array({}), enterprise_project_id = orv(r.enterprise_project_id, "0"),
    rotation_func_urn = orv(r.rotation_func_urn, null), versions = array({}),
  }
  out.update_time = orv(r.update_time, out.create_time)
  if type(r.event_subscriptions) == "table" then
    for i, v in ipairs(r.event_subscriptions) do out.event_subscriptions[i] = v end
  end
  for i, v in ipairs(r.versions) do
    if type(v) ~= "table" or type(v.secret_string) ~= "string" then
      return nil, "bad version record"
    end
    local stages = array({})
    if type(v.version_stages) == "table" then
      for j, s in ipairs(v.version_stages) do stages[j] = s end
    end
    out.versions[i] = {
      id = orv(v.id, "v" .. i), secret_string = v.secret_string, version_stages = stages,
      create_time = orv(v.create_time, out.create_time), kms_key_id = orv(v.kms_key_id, out.kms_key_id),
      expire_time = orv(v.expire_time, null),
    }
  end
  return out
end

--- A deep copy that keeps the array marks.
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end
M.copy = copy

function M.metadata(r)
  local out = {}
  for _, f in ipairs(META_FIELDS) do out[f] = copy(r[f]) end
  return out
end

function M.version_metadata(r, v)
  return {
    id = v.id, create_time = v.create_time, kms_key_id = v.kms_key_id, expire_time = v.expire_time,
    secret_name = r.name, version_stages = copy(v.version_stages),
  }
end

-- Persistence -------------------------------------------------------------------------------

function M.snapshot()
  local names = {}
  for name in pairs(secrets) do names[#names + 1] = name end
  table.sort(names)
  local list = array({})
  for i, name in ipairs(names) do list[i] = secrets[name] end
  return list
end

function M.save()
  if not state_file then return true end
  local ok, err = files.write_atomic(state_file,
    json.encode({ format = 1, secrets = M.snapshot() }), 384)
  if not ok and ngx then ngx.log(ngx.ERR, "cannot write ", state_file, ": ", err) end
  return ok, err
end

local function load_state()
  local data = files.read(state_file)
  if not data then return end
  local doc, err = json.decode(data)
  if type(doc) ~= "table" or type(doc.secrets) ~= "table" then
    error("state file " .. state_file .. " is not valid: " .. tostring(err))
  end
  for _, r in ipairs(doc.secrets) do
    local rec, rerr = M.normalise(r)
    if not rec then error("state file " .. state_file .. ": " .. rerr) end
    secrets[rec.name] = rec
  end
end

--- opts: { state_dir = optional, now_ms = function }
function M.init(opts)
  secrets = {}
  if opts.now_ms then now_ms = opts.now_ms end
  if opts.state_dir and opts.state_dir ~= "" then
    state_file = opts.state_dir .. "/state.json"
    load_state()
  else
    state_file = nil
  end
end

-- Operations --------------------------------------------------------------------------------

function M.get(name) return secrets[name] end

function M.exists(name) return secrets[name] ~= nil end

function M.count()
  local n = 0
  for _ in pairs(secrets) do n = n + 1 end
  return n
end

--- Sorted list of records.
function M.list() return M.snapshot() end

--- Creates a secret from values (list of strings, oldest first); the last becomes SYSCURRENT
--- and the one before it SYSPREVIOUS. opts: description, kms_key_id, secret_type.
function M.create(name, values, opts)
  opts = opts or {}
  if secrets[name] then return nil, "exists" end
  local t = now_ms()
  local r = {
    id = M.uuid(), name = name, state = "ENABLED",
    kms_key_id = opts.kms_key_id or M.DEFAULT_KMS_KEY_ID, description = opts.description or "",
    create_time = t, update_time = t, scheduled_delete_time = null,
    secret_type = opts.secret_type or "COMMON", auto_rotation = false, rotation_period = null,
    rotation_config = null, rotation_time = null, next_rotation_time = null,
    event_subscriptions = array({}), enterprise_project_id = "0", rotation_func_urn = null,
    versions = array({}),
  }
  secrets[name] = r
  for _, v in ipairs(values) do M.add_version(name, v, true) end
  r.update_time = t
  M.save()
  return r
end

--- Adds a version that becomes SYSCURRENT; the previous SYSCURRENT becomes SYSPREVIOUS.
function M.add_version(name, value, nosave)
  local r = secrets[name]
  if not r then return nil, "missing" end
  local t = now_ms()
  for _, v in ipairs(r.versions) do
    local keep = array({})
    for _, s in ipairs(v.version_stages) do
      if s == "SYSCURRENT" then
        keep[#keep + 1] = "SYSPREVIOUS"
      elseif s ~= "SYSPREVIOUS" then
        keep[#keep + 1] = s
      end
    end
    v.version_stages = keep
  end
  local v = {
    id = "v" .. (#r.versions + 1), secret_string = value, version_stages = array({ "SYSCURRENT" }),
    create_time = t, kms_key_id = r.kms_key_id, expire_time = null,
  }
  r.versions[#r.versions + 1] = v
  r.update_time = t
  if not nosave then M.save() end
  return v, r
end

function M.find_version(r, id)
  for _, v in ipairs(r.versions) do
    if id == "latest" then
      for _, s in ipairs(v.version_stages) do
        if s == "SYSCURRENT" then return v end
      end
    elseif v.id == id then
      return v
    end
  end
  return nil
end

function M.delete(name)
  if not secrets[name] then return nil end
  secrets[name] = nil
  M.save()
  return true
end

--- Inserts a whole (normalised) record, e.g. from a restored blob.
function M.insert(r)
  if secrets[r.name] then return nil, "exists" end
  secrets[r.name] = r
  M.save()
  return r
end

function M.clear()
  secrets = {}
  M.save()
end

return M
