-- The emulator's entry points in nginx + lua-nginx-module (one worker), and its router:
--   init_by_lua_block        { require("csms.emulator.server").init(CONFIG_JSON_PATH) }
--   init_worker_by_lua_block { require("csms.emulator.server").init_worker() }
--   content_by_lua_block     { require("csms.emulator.server").handle() }
-- Behaviour and admin API: docs/emulator.md and docs/emulator-contract.md.
--
-- A stand-in for another service on the same port is a module with handle(ctx) (ctx: request_id,
-- method, raw_path, raw_query; see csms.emulator.http) plus a line in ROUTES. It can answer
-- with csms.emulator.http, check signatures with csms.emulator.auth and count in
-- csms.emulator.stats.
local http = require "csms.emulator.http"
local state = require "csms.emulator.state"
local startup = require "csms.emulator.startup"

local M = {}

-- Path pattern -> module; the first match answers, the CSMS API gateway takes the rest.
local ROUTES = {
  { "^/__emulator/iam$", "csms.emulator.iam" },
  { "^/__emulator$", "csms.emulator.admin" },
  { "^/__emulator/", "csms.emulator.admin" },
  { "^/meta%-data/", "csms.emulator.metadata" },
  { "^/openstack/", "csms.emulator.metadata" },
  { "^/v3/projects$", "csms.emulator.iam" },
  { "^/v3%.0/OS%-", "csms.emulator.iam" },
}
local DEFAULT = "csms.emulator.gateway"

M.init = startup.init
M.init_worker = startup.init_worker

function M.handle()
  local ctx = http.context()
  ngx.header["X-Request-Id"] = ctx.request_id
  ngx.header["Server"] = "api-gateway"
  if (state.config.clock_skew_s or 0) ~= 0 then
    ngx.header["Date"] = ngx.http_time(math.floor(state.now()))
  end
  local module = DEFAULT
  for _, r in ipairs(ROUTES) do
    if ctx.raw_path:find(r[1]) then
      module = r[2]
      break
    end
  end
  return require(module).handle(ctx)
end

return M
