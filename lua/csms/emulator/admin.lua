-- The admin API under /__emulator/ (loopback clients only, no authentication, never counted as
-- API requests): health, reset, config, queued faults, stats, seeding and dumping secrets.
local json = require "csms.json"
local http = require "csms.emulator.http"
local auth = require "csms.emulator.auth"
local config = require "csms.emulator.config"
local faults = require "csms.emulator.faults"
local iam = require "csms.emulator.iam"
local limits = require "csms.emulator.limits"
local operations = require "csms.emulator.operations"
local state = require "csms.emulator.state"
local stats = require "csms.emulator.stats"
local store = require "csms.emulator.store"

local send = http.send

local M = {}

local function fail(status, msg)
  return send(status, "json", { error_code = "EMULATOR.0400", error_msg = msg })
end

local function json_body()
  ngx.req.read_body()
  local doc, err = json.decode(ngx.req.get_body_data() or "")
  if type(doc) ~= "table" then return nil, "the body must be JSON: " .. tostring(err) end
  return doc
end

local function is_loopback(addr)
  return addr == nil or addr:match("^127%.") ~= nil or addr == "::1" or addr == "unix:"
end

-- Each route: handler(ctx) for "METHOD path-after-/__emulator/".
local routes = {}

routes["GET health"] = function()
  return send(200, "json", { ok = true, project_id = state.settings.project_id,
    endpoint_time_ms = state.now_ms(), secrets = store.count(), instance = state.settings.instance })
end

routes["POST reset"] = function()
  store.clear()
  faults.reset()
  config.reset()
  auth.reset()
  iam.reset()
  stats.reset()
  return send(200, "json", { ok = true })
end

routes["POST config"] = function()
  local doc, err = json_body()
  if not doc then return fail(400, err) end
  local ok, cerr = config.apply(doc)
  if not ok then return fail(400, cerr) end
  return send(200, "json", config.public())
end

routes["GET config"] = function()
  return send(200, "json", config.public())
end

routes["POST faults/next"] = function()
  local doc, err = json_body()
  if not doc then return fail(400, err) end
  if doc.kind then doc = { doc } end
  for i, e in ipairs(doc) do
    if type(e) ~= "table" or not faults.KINDS[e.kind] then
      return fail(400, "entry " .. i .. ": unknown fault kind " .. tostring(e.kind))
    end
    if e.op ~= nil and not operations.KNOWN[e.op] then
      return fail(400, "entry " .. i .. ": unknown op " .. tostring(e.op))
    end
  end
  faults.push(doc)
  return send(200, "json", { ok = true, pending = faults.pending() })
end

routes["GET stats"] = function()
  return send(200, "json", stats.public())
end

routes["POST stats/reset"] = function()
  stats.reset()
  return send(200, "json", { ok = true })
end

routes["POST seed"] = function()
  local doc, err = json_body()
  if not doc then return fail(400, err) end
  local list = doc.secrets or { doc }
  local created = json.array({})
  for i, s in ipairs(list) do
    local serr = limits.seed_entry_error(s)
    if serr then return fail(400, "entry " .. i .. " " .. serr) end
    if store.exists(s.name) then
      return send(http.invalid("The secret " .. s.name .. " already exists."))
    end
    created[#created + 1] = store.metadata(store.create(s.name, s.versions, s))
  end
  return send(200, "json", { secrets = created })
end

routes["GET secrets"] = function()
  return send(200, "json", { secrets = store.list() })
end

function M.handle(ctx)
  stats.add("admin")
  if not is_loopback(ngx.var.remote_addr) then
    return fail(403, "the admin API answers loopback clients only")
  end
  local what = ctx.raw_path:gsub("/+$", ""):sub(#"/__emulator/" + 1)
  local handler = routes[ctx.method .. " " .. what]
  if not handler then
    return fail(404, "no such admin route: " .. ctx.method .. " " .. ctx.raw_path)
  end
  return handler(ctx)
end

return M
