-- The project id of a region, from IAM, when none is configured (as all four official SDKs do):
-- KeystoneListProjects (GET {iam}/v3/projects?name=<region>) signed with the client's own
-- credentials. The answer is kept for the life of the process (in nginx: of the worker) per
-- principal (AK, IdP...) and region, and one lookup runs at a time for each.
local core = require "csms.core"
local errors = require "csms.errors"
local iam = require "csms.credentials.iam"

local M = {}

M.WAIT_STEP = 0.005
local cache = {}    -- principal .. "\0" .. region -> project id
local pending = {}  -- the same keys, while their lookup runs

local function config_error(msg, region)
  return nil, errors.new("config", msg, { field = "project_id", region = region })
end

local function principal(creds)
  if creds.identity then return creds.identity end
  if creds.ak then return "ak:" .. creds.ak end
  return "token:" .. core.crypto.sha256_hex(creds.auth_token or "")
end

local function sleep(opts, seconds)
  if opts.sleep then return opts.sleep(seconds) end
  return opts.transport:sleep(seconds)
end

-- creds: what the client's provider gave. opts: iam_endpoint, transport, clock, sleep,
-- user_agent. Returns the project id or nil, err (kind config with field "project_id" when IAM
-- has no project, or several, by that name; IAM's own errors as they are: a 401 is not retried).
function M.lookup(creds, region, opts)
  if type(region) ~= "string" or region == "" then
    return config_error("no project_id: pass project_id (or set HUAWEICLOUD_SDK_PROJECT_ID), or a region "
      .. "to look it up in IAM")
  end
  local key = principal(creds) .. "\0" .. region
  while pending[key] do sleep(opts, M.WAIT_STEP) end
  if cache[key] then return cache[key] end
  pending[key] = true
  local ids, err = iam.list_projects(opts.transport, opts.iam_endpoint, creds, region, opts)
  pending[key] = nil
  if not ids then
    err.region = region
    return nil, err
  end
  if #ids == 0 then
    return config_error(("IAM at %s has no project named '%s' these credentials can see: pass "
      .. "project_id, or check the region"):format(opts.iam_endpoint, region), region)
  elseif #ids > 1 then
    return config_error(("IAM at %s has %d projects named '%s' (%s): pass project_id to pick one")
      :format(opts.iam_endpoint, #ids, region, table.concat(ids, ", ")), region)
  end
  local id = ids[1]
  if #id > 64 or not id:match("^[%w_%-]+$") then
    return nil, errors.new("bad_response", "IAM's project id is not 1-64 letters, digits, '-' or '_'",
      { op = "list_projects", region = region })
  end
  cache[key] = id
  return id
end

-- Forgets every answer (specs).
function M.clear()
  cache, pending = {}, {}
end

return M
