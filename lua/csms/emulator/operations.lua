-- CSMS's secret operations behind the gateway (create, list, get, delete, versions, and the
-- backup blobs: DownloadSecretBlob / UploadSecretBlob), each ops.<name>(ctx) -> status, kind,
-- body, headers for http.send. ctx: body, raw_query, name, version_id (from the path).
local json = require "csms.json"
local blob = require "csms.emulator.blob"
local store = require "csms.emulator.store"
local http = require "csms.emulator.http"
local limits = require "csms.emulator.limits"
local state = require "csms.emulator.state"

local array, null = json.array, json.null
local invalid, not_found = http.invalid, http.not_found

local M = {}

-- The op names (stats, fault_ops, faults/next, throttle rules), in the order stats lists them.
M.NAMES = { "backup", "restore", "create", "list", "get", "delete", "create_version",
            "list_versions", "get_version" }
M.KNOWN = {}
for _, op in ipairs(M.NAMES) do M.KNOWN[op] = true end

local function require_secret(name)
  if not limits.valid_name(name) then
    return nil, { invalid("Invalid parameter: the secret name must match " .. limits.NAME_RULE ..
      ".") }
  end
  local r = store.get(name)
  if not r then return nil, { not_found() } end
  return r
end

local function check_value(v)
  if type(v) ~= "string" or v == "" then
    return "Invalid parameter: secret_string is missing or not a non-empty string."
  end
  if #v > limits.MAX_VALUE then
    return "Invalid parameter: secret_string is longer than " .. limits.MAX_VALUE .. " bytes."
  end
end

local ops = {}
M.ops = ops

function ops.create(ctx)
  local doc, err = http.json_object(ctx)
  if not doc then return unpack(err) end
  if not limits.valid_name(doc.name) then
    return invalid("Invalid parameter: name must match " .. limits.NAME_RULE .. ".")
  end
  local verr = check_value(doc.secret_string)
  if verr then return invalid(verr) end
  for _, f in ipairs({ "description", "kms_key_id", "secret_type" }) do
    if doc[f] ~= nil and type(doc[f]) ~= "string" then
      return invalid("Invalid parameter: " .. f .. " must be a string.")
    end
  end
  if doc.description and #doc.description > limits.MAX_DESCRIPTION then
    return invalid("Invalid parameter: description is longer than " .. limits.MAX_DESCRIPTION ..
      " characters.")
  end
  if store.exists(doc.name) then
    return invalid("The secret " .. doc.name .. " already exists.")
  end
  local r = store.create(doc.name, { doc.secret_string }, doc)
  return 200, "json", { secret = store.metadata(r) }
end

function ops.list(ctx)
  local args = http.query_args(ctx.raw_query)
  local limit = 10
  if args.limit ~= nil then
    limit = tonumber(args.limit)
    if not args.limit:match("^%d+$") or not limit or limit < 1 or limit > 200 then
      return invalid("Invalid parameter: limit must be an integer from 1 to 200.")
    end
  end
  local marker = args.marker
  if marker == "" then marker = nil end
  local all = store.list()
  local page = array({})
  local more = false
  for _, r in ipairs(all) do
    if marker == nil or r.name > marker then
      if #page < limit then
        page[#page + 1] = store.metadata(r)
      else
        more = true
        break
      end
    end
  end
  return 200, "json", {
    secrets = page,
    page_info = {
      next_marker = (more and page[#page].name) or null,
      previous_marker = marker or null,
      current_count = #page,
    },
  }
end

function ops.get(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  return 200, "json", { secret = store.metadata(r) }
end

function ops.delete(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  store.delete(r.name)
  return 204
end

function ops.create_version(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local doc, perr = http.json_object(ctx)
  if not doc then return unpack(perr) end
  local verr = check_value(doc.secret_string)
  if verr then return invalid(verr) end
  local v = store.add_version(r.name, doc.secret_string)
  return 200, "json", { version = { version_metadata = store.version_metadata(r, v) } }
end

function ops.list_versions(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local list = array({})
  for i, v in ipairs(r.versions) do list[i] = store.version_metadata(r, v) end
  return 200, "json", { version_metadatas = list,
    page_info = { next_marker = null, previous_marker = null, current_count = #list } }
end

function ops.get_version(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local v = store.find_version(r, ctx.version_id)
  if not v then return not_found() end
  return 200, "json", { version = { version_metadata = store.version_metadata(r, v),
    secret_string = v.secret_string } }
end

function ops.backup(ctx)
  local r, err = require_secret(ctx.name)
  if not r then return unpack(err) end
  local plaintext = json.encode({ format = "csms-emulator-backup-1",
    project_id = state.settings.project_id, secret = r })
  return 200, "json", { secret_blob = blob.seal(state.master.key, state.master.kid, plaintext) }
end

local function invalid_blob(reason)
  return invalid("The secret_blob is invalid: " .. reason .. ".")
end

function ops.restore(ctx)
  local doc, perr = http.json_object(ctx)
  if not doc then return unpack(perr) end
  local b = doc.secret_blob
  if type(b) ~= "string" or b == "" then
    return invalid("Invalid parameter: secret_blob is missing or not a string.")
  end
  if #b > limits.MAX_BLOB then
    return invalid("Invalid parameter: secret_blob is longer than " .. limits.MAX_BLOB .. " characters.")
  end
  local plaintext, reason = blob.open(state.master.key, state.master.kid, b)
  if not plaintext then return invalid_blob(reason) end
  local content = json.decode(plaintext)
  if type(content) ~= "table" or type(content.secret) ~= "table" then
    return invalid_blob("unreadable content")
  end
  if content.project_id ~= state.settings.project_id then
    return invalid_blob("it was created in another project")
  end
  local r, nerr = store.normalise(content.secret)
  if not r then return invalid_blob(nerr) end
  if store.exists(r.name) then
    return invalid("The secret " .. r.name .. " already exists.")
  end
  store.insert(r)
  return 200, "json", { secret = store.metadata(r) }
end


return M
