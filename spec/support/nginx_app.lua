-- The application the nginx spec runs inside nginx (LuaJIT): handlers that use csms exactly as
-- an OpenResty user would. Settings come from spec/support/nginx_app_settings.lua, which the
-- spec writes into the nginx prefix.
local csms = require "csms"
local batch = require "csms.batch"
local settings = require "nginx_app_settings"

local M = {}
local clients = {}

-- One client per target (or endpoint: ?endpoint= takes plain's credentials to another
-- server) per worker, made on first use (no I/O at module load).
local function client(target)
  target = target or "plain"
  if not clients[target] then
    local s = settings[target] or setmetatable({ endpoint = target }, { __index = settings.plain })
    clients[target] = assert(csms.new { ak = s.ak, sk = s.sk, project_id = s.project_id,
      endpoint = s.endpoint, timeout = 30, retries = 1, backoff_base = 0.01 })
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
  local res, err = client(ngx.var.arg_target or ngx.var.arg_endpoint):backup(ngx.var.arg_name or "s")
  answer(res, err, res and ("ok " .. #res.secret_blob))
end

function M.backup_all()
  local report, err = batch.backup(client(ngx.var.arg_endpoint), { dir = ngx.var.arg_dir, concurrency = 8 })
  answer(report, err, report and ("ok=%d failed=%d"):format(report.ok, report.failed))
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

-- GET /call?url=&op=&opts=&method=&path=: one call with a new client made for it (opts: JSON
-- of csms.new options added to the endpoint's), answered as JSON: { ok, raised, kind, message,
-- text = tostring(err), status, error_code, error_msg, request_id, attempts }. For
-- spec/hostile_server_spec.lua: the same cases as through libcurl, through cosockets.
function M.call()
  local cjson = require "cjson"
  local args = ngx.req.get_uri_args()
  local opts = cjson.decode(args.opts or "{}")
  opts.endpoint = args.url
  local out = {}
  local ok, raised = pcall(function()
    local c, err = csms.new(opts)
    local res
    if c then
      if args.op == "request" then
        res, err = c:request(args.method or "GET", args.path)
      elseif args.op == "restore" then -- a blob of blob_kb KiB: a request body sent in pieces
        local pad = ("c"):rep(1024 * (tonumber(args.blob_kb) or 1))
        res, err = c:restore(")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b." .. pad)
      elseif args.op == "list" then
        res, err = c:list_secrets()
      else
        res, err = c:backup(args.name or "db-password")
      end
      c:close()
    end
    out.ok = res ~= nil
    if err then
      out.kind, out.message, out.text = err.kind, err.message, tostring(err)
      out.status, out.error_code, out.error_msg = err.status, err.error_code, err.error_msg
      out.request_id, out.attempts = err.request_id, err.attempts
    end
  end)
  if not ok then out.raised = tostring(raised) end
  ngx.say(cjson.encode(out))
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
