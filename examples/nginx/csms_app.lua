-- Handlers for examples/nginx/nginx.conf.
local csms = require "csms"
local batch = require "csms.batch"

-- init_by_lua requires this file in the master, before it forks: the modules csms loads only
-- when a call needs them are loaded now too, since the workers (nobody, when nginx starts as
-- root) may not read a private checkout. spec/examples_spec.lua checks this list is complete.
for _, m in ipairs { "csms.cosocket", "csms.credentials.env", "csms.credentials.profile",
  "csms.credentials.oidc", "csms.credentials.container", "csms.credentials.metadata" } do
  require(m)
end

local M = {}
local client

-- One client per worker, made on first use: nothing happens at require time. A configuration
-- problem (no credentials, no endpoint) is nil, err, said in the answer and the log.
local function get_client()
  if not client then
    local err
    client, err = csms.new {
      endpoint = os.getenv("CSMS_ENDPOINT"), region = os.getenv("CSMS_REGION"),
      timeout = 10,
    }
    if not client then return nil, err end
  end
  return client
end

-- content_by_lua: the request waits on a cosocket, the worker keeps serving others.
function M.backup()
  local name = ngx.var.arg_name
  if not name then
    ngx.status = 400
    return ngx.say("usage: /backup?name=<secret name>")
  end
  local c, err = get_client()
  if not c then
    ngx.log(ngx.ERR, tostring(err))
    ngx.status = 500
    return ngx.say(tostring(err))
  end
  local res
  res, err = c:backup(name)
  if not res then
    ngx.log(ngx.ERR, tostring(err)) -- never holds a credential or a blob
    ngx.status = err.kind == "invalid_argument" and 400 or 502
    return ngx.say(tostring(err))
  end
  ngx.say("backed up ", name, ": ", #res.secret_blob, " bytes (request ", res.request_id or "?", ")")
end

local function backup_project(premature)
  if premature then return end
  local dir = (os.getenv("BACKUP_ROOT") or "/var/backups/csms") .. "/" .. os.date("!%Y-%m-%dT%H%M%SZ")
  local c, err = get_client()
  local report
  if c then report, err = batch.backup(c, { dir = dir, concurrency = 8 }) end
  if not report then
    ngx.log(ngx.ERR, "project backup failed: ", tostring(err))
  else
    ngx.log(ngx.NOTICE, ("project backup to %s: %d ok, %d failed"):format(dir, report.ok, report.failed))
  end
end

-- init_worker_by_lua has no cosockets: the work itself runs in timers, which do.
function M.start_timer()
  local minutes = tonumber(os.getenv("BACKUP_MINUTES") or "")
  if not minutes or ngx.worker.id() ~= 0 then return end
  assert(ngx.timer.every(minutes * 60, backup_project))
end

return M
