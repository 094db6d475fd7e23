-- The application the nginx spec runs inside nginx (LuaJIT): handlers that use csms exactly as
-- an OpenResty user would. Settings come from spec/support/nginx_app_settings.lua, which the
-- spec writes into the nginx prefix.
local csms = require "csms"
local batch = require "csms.batch"
local settings = require "nginx_app_settings"

local M = {}
local clients = {}

-- One client per target per worker, made on first use (no I/O at module load).
local function client(target)
  target = target or "plain"
  if not clients[target] then
    local s = settings[target]
    clients[target] = assert(csms.new { ak = s.ak, sk = s.sk, project_id = s.project_id,
      endpoint = s.endpoint, timeout = 5, retries = 1, backoff_base = 0.01 })
  end
  return clients[target]
end

local function answer(res, err, ok_text)
  if res then
    ngx.say(ok_text)
  else
    ngx.status = 502
    ngx.say(err.kind, " ", tostring(err))
  end
end

function M.backup()
  local res, err = client(ngx.var.arg_target):backup(ngx.var.arg_name or "s")
  answer(res, err, res and ("ok " .. #res.secret_blob))
end

function M.backup_all()
  local t0 = ngx.now()
  local report, err = batch.backup(client(), { dir = ngx.var.arg_dir, concurrency = 8 })
  ngx.update_time()
  answer(report, err, report and ("ok=%d failed=%d seconds=%.3f"):format(report.ok, report.failed, ngx.now() - t0))
end

-- A phase without cosockets: the call must fail clearly, not block the worker.
function M.header_filter()
  local res, err = client():backup("s")
  ngx.header["X-Csms-Result"] = res and "sent" or (err.kind .. ": " .. err.message)
end

-- A timer has cosockets: the documented way out of such phases.
function M.schedule()
  local name = ngx.var.arg_name or "s"
  assert(ngx.timer.at(0, function()
    local res, err = client():backup(name)
    ngx.shared.results:set("timer", res and ("ok " .. #res.secret_blob) or tostring(err))
  end))
  ngx.say("scheduled")
end

function M.result()
  ngx.say(ngx.shared.results:get(ngx.var.arg_key) or "none")
end

-- init_by_lua: nginx is not serving yet, so libcurl may block here.
function M.init()
  local c = assert(csms.new { ak = settings.plain.ak, sk = settings.plain.sk,
    project_id = settings.plain.project_id, endpoint = settings.plain.endpoint })
  local res, err = c:backup("s")
  ngx.shared.results:set("init", res and ("ok " .. #res.secret_blob) or tostring(err))
  c:close()
end

return M
