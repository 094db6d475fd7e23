-- Test support: the emulator's admin API (/__emulator/..., docs/emulator.md), unsigned JSON over
-- socket.http (http.lua). Part of the spec support files listed in spec/support/shell.lua.
-- M.methods become methods of the emulator object emulator.start returns:
--   e:admin(method, path, body)  -> status, decoded body (the raw body when not JSON); nil, err
--   e:config{...}  e:reset()  e:stats()  e:reset_stats()  e:health()  e:dump() (the secrets)
--   e:fail_next{...}
--   e:create_secret(name, { "v1 value", "v2 value" }, { description = ... })
-- All but e:admin raise (at the caller's line) unless the emulator answers 200.
local json = require "csms.json"
local http = require "spec.support.http"

local M = { methods = {} }
local E = M.methods

--- e: anything with an endpoint ("http(s)://127.0.0.1:<port>").
function E.admin(e, method, path, body)
  local text
  if body ~= nil then text = type(body) == "string" and body or json.encode(body) end
  local status, _, rbody = http.request(e.endpoint, { method = method, target = path, body = text,
    headers = text and { ["Content-Type"] = "application/json" } or nil, timeout = 10 })
  if not status then return nil, _ end
  local doc = json.decode(rbody)
  if doc == nil then doc = rbody end
  return status, doc
end

local function admin_ok(e, method, path, body)
  local status, doc = E.admin(e, method, path, body)
  if status ~= 200 then
    error(method .. " " .. path .. " failed: " .. tostring(status) .. " " ..
      (type(doc) == "table" and json.encode(doc) or tostring(doc)), 3)
  end
  return doc
end

function E.config(e, settings) return admin_ok(e, "POST", "/__emulator/config", settings) end
function E.reset(e) return admin_ok(e, "POST", "/__emulator/reset", {}) end
function E.stats(e) return admin_ok(e, "GET", "/__emulator/stats") end
function E.reset_stats(e) return admin_ok(e, "POST", "/__emulator/stats/reset", {}) end
function E.health(e) return admin_ok(e, "GET", "/__emulator/health") end
function E.dump(e) return admin_ok(e, "GET", "/__emulator/secrets").secrets end

function E.fail_next(e, entries)
  return admin_ok(e, "POST", "/__emulator/faults/next", json.array(entries))
end

--- Creates a secret through the admin seed route (no signing, not counted as an API call).
function E.create_secret(e, name, versions, opts)
  local entry = { name = name, versions = json.array(versions or { "value" }) }
  for k, v in pairs(opts or {}) do entry[k] = v end
  return admin_ok(e, "POST", "/__emulator/seed", { secrets = json.array({ entry }) }).secrets[1]
end

return M
