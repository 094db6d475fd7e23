-- The application spec/nginx_throttle_spec.lua runs inside nginx: csms.batch in light threads
-- against a throttling emulator, with the learned rate shared through lua_shared_dict csms_rate.
local csms = require "csms"
local batch = require "csms.batch"
local s = require "nginx_app_settings"

local M = {}

local function client(dict)
  return assert(csms.new { ak = s.ak, sk = s.sk, project_id = s.project_id, endpoint = s.endpoint,
    timeout = 5, shared_dict = dict and "csms_rate" or nil })
end

local function rate(c)
  local st = c.limiter:status()
  return st.rate and ("%.3f"):format(st.rate) or "off"
end

-- A whole-project backup with 8 light threads; a new client each time (per request).
function M.batch()
  local c = client(true)
  local report, err = batch.backup(c, { dir = ngx.var.arg_dir, concurrency = 8 })
  if not report then
    ngx.status = 502
    return ngx.say(tostring(err))
  end
  ngx.say(("ok=%d failed=%d throttled=%d rate=%s"):format(report.ok, report.failed,
    c.limiter:status().throttled, rate(c)))
end

-- A new client: does it start with the rate another request learned?
function M.fresh()
  local c = client(ngx.var.arg_dict == "1")
  c.limiter:acquire() -- reads the shared dict
  ngx.say("rate=", rate(c))
end

return M
