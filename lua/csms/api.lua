-- csms.api: the CSMS calls as operations (csms.operation): what each sends and how its answer
-- becomes a result. Each first makes sure of the client's project id (csms.identity: from IAM
-- when none is configured); nothing is sent to CSMS without one. client:backup() and friends
-- run one; csms.batch runs many.
local cjson = require "cjson.safe"
local errors = require "csms.errors"
local identity = require "csms.identity"
local json = require "csms.json"
local operation = require "csms.operation"
local validate = require "csms.validate"

local check, check_type, invalid = validate.check, validate.check_type, validate.invalid

local M = {}

-- Runs an operation to its end (csms.scheduler: the client's limiter and retry budget).
function M.run(op)
  return require("csms.scheduler").run_one(op.client, op)
end

local function bad_response(msg) return nil, errors.new("bad_response", msg) end

local function backup_result(doc, rid)
  if type(doc) ~= "table" or type(doc.secret_blob) ~= "string" or doc.secret_blob == "" then
    return bad_response("the answer has no secret_blob string")
  end
  return { secret_blob = doc.secret_blob, request_id = rid }
end

local function restore_result(doc, rid)
  if type(doc) ~= "table" or type(doc.secret) ~= "table" then
    return bad_response("the answer has no secret object")
  end
  return { secret = doc.secret, request_id = rid }
end

local function list_result(doc, rid)
  if type(doc) ~= "table" or not json.is_list(doc.secrets) then
    return bad_response("the answer has no secrets list")
  end
  return { secrets = doc.secrets, page_info = doc.page_info, request_id = rid }
end

local function as_is(doc) return doc end

-- The client's project id, fetching credentials and asking IAM when not known yet; nil, err
-- (with err.op) when it cannot be had.
local function project(client, op)
  if client.project_id then return client.project_id end
  local id, err = identity.resolve(client)
  if not id then
    err.op = err.op or op
    return nil, err
  end
  return id
end

-- DownloadSecretBlob of a secret, or nil, err for a bad name.
function M.backup(client, name)
  check_type(name, "string", "secret name")
  local p = validate.name_problem(name)
  if p then return invalid("backup", p) end
  local id, err = project(client, "backup")
  if not id then return nil, err end
  return operation.new(client, "backup", "POST", "/v1/" .. id .. "/secrets/" .. name .. "/backup", nil,
    backup_result)
end

-- UploadSecretBlob of a blob, or nil, err for a blob of the wrong shape.
function M.restore(client, blob)
  check_type(blob, "string", "secret_blob")
  local p = validate.blob_problem(blob)
  if p then return invalid("restore", p) end
  local id, err = project(client, "restore")
  if not id then return nil, err end
  return operation.new(client, "restore", "POST", "/v1/" .. id .. "/secrets/restore",
    cjson.encode { secret_blob = blob }, restore_result)
end

-- ListSecrets (opts: limit, marker).
function M.list(client, opts)
  check_type(opts, "table", "options", true)
  opts = opts or {}
  check_type(opts.limit, "number", "limit", true)
  check_type(opts.marker, "string", "marker", true)
  local q = {}
  if opts.limit then
    if opts.limit < 1 or opts.limit > 200 or opts.limit ~= math.floor(opts.limit) then
      return invalid("list", "limit must be a whole number from 1 to 200")
    end
    q[#q + 1] = ("limit=%d"):format(opts.limit)
  end
  if opts.marker then
    local p = validate.name_problem(opts.marker)
    if p then return invalid("list", "marker: " .. p) end
    q[#q + 1] = "marker=" .. opts.marker
  end
  local id, err = project(client, "list")
  if not id then return nil, err end
  return operation.new(client, "list", "GET", "/v1/" .. id .. "/secrets"
    .. (#q > 0 and "?" .. table.concat(q, "&") or ""), nil, list_result)
end

-- Any other call: path whole, "{project_id}" standing for the project's; body a string or a
-- table (sent as JSON). The result is the decoded answer (true when it is empty).
function M.request(client, method, path, body)
  check_type(method, "string", "method")
  check_type(path, "string", "path")
  check(body == nil or type(body) == "string" or type(body) == "table",
    "body must be a string, a table or nil, got %s", type(body))
  if not path:find("^/") then return invalid("request", "path must start with '/'") end
  local id, err = project(client, method:lower())
  if not id then return nil, err end
  path = path:gsub("{project_id}", id)
  if type(body) == "table" then
    local encoded, eerr = cjson.encode(body)
    if not encoded then return invalid("request", "body cannot be sent as JSON: " .. eerr) end
    body = encoded
  end
  return operation.new(client, method:lower(), method, path, body, as_is)
end

return M
