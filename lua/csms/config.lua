-- Settings resolution, as the official SDKs do it: the table given, then the environment, then
-- the profile file ~/.huaweicloud/credentials. Nothing is read until a client is made.
local errors = require "csms.errors"

local M = {}

-- Regions of the official SDKs' CSMS table; their endpoint is https://kms.<region>.myhuaweicloud.com.
M.regions = {}
for r in ([[cn-north-4 cn-north-1 cn-north-2 cn-north-9 cn-north-11 cn-north-12 cn-east-2 cn-east-3
  cn-east-4 cn-east-5 cn-south-1 cn-south-2 cn-southwest-2 cn-southwest-3 ap-southeast-1
  ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 la-south-2 la-north-2 sa-brazil-1
  na-mexico-1 me-east-1 tr-west-1 ae-ad-1 my-kualalumpur-1 ru-moscow-1 af-north-1
  af-south-1]]):gmatch("%S+") do
  M.regions[r] = true
end

-- Seconds since the epoch of a UTC calendar time (no os.time: it works in local time).
function M.epoch(y, m, d, hh, mm, ss)
  local yy = m <= 2 and y - 1 or y
  local era = math.floor(yy / 400)
  local yoe = yy - era * 400
  local doy = math.floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return (era * 146097 + doe - 719468) * 86400 + hh * 3600 + mm * 60 + ss
end

M.METADATA_ENDPOINT = "http://169.254.169.254"

local function first_line(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local line = f:read("*l")
  f:close()
  return line
end

-- Where to ask the ECS metadata service for credentials, or nil not to. opt: false (never),
-- true (the usual address), a URL (a stand-in), or nil: HUAWEICLOUD_SDK_ECS_METADATA=on|off,
-- else only when the machine's DMI says it is an OpenStack / Huawei Cloud server, so that
-- elsewhere not even a connection is attempted.
function M.metadata_endpoint(opt, getenv, read)
  if opt == false then return nil end
  if type(opt) == "string" then return (opt:gsub("/+$", "")) end
  if opt == true then return M.METADATA_ENDPOINT end
  local env = (getenv("HUAWEICLOUD_SDK_ECS_METADATA") or ""):lower()
  if env == "on" or env == "1" or env == "true" then return M.METADATA_ENDPOINT end
  if env == "off" or env == "0" or env == "false" then return nil end
  read = read or first_line
  for _, f in ipairs { "sys_vendor", "product_name", "chassis_asset_tag" } do
    local v = (read("/sys/class/dmi/id/" .. f) or ""):lower()
    if v:find("openstack", 1, true) or v:find("huawei", 1, true) then return M.METADATA_ENDPOINT end
  end
end

-- A caller's value inside a message: control characters shown, never written.
local function shown(v)
  return "'" .. tostring(v):gsub("%c", function(c) return ("\\x%02X"):format(c:byte()) end) .. "'"
end

local function config_error(msg, field)
  return nil, errors.new("config", msg, { field = field })
end

local function nonempty(v)
  if v == nil or v == "" then return nil end
  return v
end

-- Reads the [basic] section of an INI profile. Missing file: empty table.
function M.read_profile(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local section, out = nil, {}
  for line in f:lines() do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    local s = line:match("^%[(.-)%]$")
    if s then
      section = s:gsub("^%s+", ""):gsub("%s+$", "")
    elseif section == "basic" and line ~= "" and not line:find("^[#;]") then
      local k, v = line:match("^([%w_]+)%s*=%s*(.-)$")
      if k then out[k:lower()] = v end
    end
  end
  f:close()
  return out
end

local function profile_path(getenv)
  local p = nonempty(getenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE"))
  if p then return p end
  local home = nonempty(getenv("HOME"))
  return home and (home .. "/.huaweicloud/credentials") or nil
end

--- An endpoint as csms.new takes one: http(s)://host[:port] with no path (trailing slashes
--- dropped), host a name, an IPv4 address or a [bracketed IPv6] one, port 1-65535. Returns it,
--- or nil. (A port of 99999 or an unclosed "[" reached libcurl as a retried transport error.)
function M.endpoint(s)
  local ep = s:gsub("/+$", "")
  local port = ep:match("^https?://%[[%x:%.]+%](.*)$") or ep:match("^https?://[%w%.%-]+(.*)$")
  if not port then return nil end
  if port ~= "" then
    local n = tonumber(port:match("^:(%d%d?%d?%d?%d?)$"))
    if not n or n < 1 or n > 65535 then return nil end
  end
  return ep
end

local function resolve_endpoint(opts, getenv)
  if opts.endpoint then
    local ep = M.endpoint(opts.endpoint)
    if not ep then
      return config_error("endpoint must be http(s)://host[:port] with no path, got " .. shown(opts.endpoint),
        "endpoint")
    end
    return ep
  end
  local region = opts.region
  if not region then
    return config_error("no endpoint: pass region (e.g. \"cn-north-4\") or endpoint to csms.new", "region")
  end
  local override = nonempty(getenv("HUAWEICLOUD_SDK_REGION_CSMS_" .. region:upper():gsub("-", "_")))
  if override then return resolve_endpoint({ endpoint = override }, getenv) end
  if not M.regions[region] then
    return config_error("unknown region " .. shown(region) .. ": pass endpoint= for a region not in the table",
      "region")
  end
  return "https://kms." .. region .. ".myhuaweicloud.com"
end

-- verify_tls = false is a choice to make knowingly: said once per process (once per nginx
-- worker), in nginx's error log inside nginx, else on stderr. The endpoint only: no secrets.
local warned_insecure = false

function M.warn_insecure(endpoint)
  if warned_insecure then return end
  warned_insecure = true
  local msg = "csms: warning: verify_tls = false: the TLS certificate of " .. shown(endpoint)
    .. " is not verified; anyone on the path can read and change the traffic"
  if ngx and type(ngx.log) == "function" then
    ngx.log(ngx.WARN, msg)
  else
    io.stderr:write(msg, "\n")
  end
end

-- Returns the settings a client needs besides credentials (csms.credentials):
-- { endpoint, project_id (nil: from the credentials' source or IAM), profile (the [basic] keys,
-- {} without a file), profile_path } or nil, err (kind "config", err.field the setting).
function M.resolve(opts, getenv)
  getenv = getenv or os.getenv
  local path = nonempty(getenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE"))
  if path then
    local f, why = io.open(path, "r")
    if not f then
      return config_error("cannot read HUAWEICLOUD_SDK_CREDENTIALS_FILE: " .. tostring(why),
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE")
    end
    f:close()
  else
    path = profile_path(getenv)
  end
  local profile = path and M.read_profile(path) or {}
  local endpoint, err = resolve_endpoint(opts, getenv)
  if not endpoint then return nil, err end
  local project_id = opts.project_id or nonempty(getenv("HUAWEICLOUD_SDK_PROJECT_ID"))
    or nonempty(profile.project_id)
  if project_id and (#project_id > 64 or not project_id:match("^[%w_%-]+$")) then
    return config_error("project_id must be 1-64 letters, digits, '-' or '_' (IAM gives 32 hex digits)",
      "project_id")
  end
  if opts.verify_tls == false and endpoint:find("^https:") then M.warn_insecure(endpoint) end
  return { endpoint = endpoint, project_id = project_id, profile = profile, profile_path = path }
end

return M
