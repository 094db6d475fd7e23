-- A client's identity in use: the credentials its provider hands out (fetched again when they
-- change), the project id (configured, from the credentials' source, or from IAM), and the
-- signing of each attempt. Internal to csms: state lives here, keyed by client, so that
-- nothing secret is a field of the client table.
local core = require "csms.core"
local errors = require "csms.errors"
local project = require "csms.credentials.project"

local M = {}

local CONTENT_TYPE = "application/json;charset=UTF-8"
local KEEP_SECRETS = 4 -- tokens of earlier credentials still redacted (answers to older attempts)

-- client -> { provider, creds, signer, headers, secrets, region, iam_endpoint, iam_transport }
local state = setmetatable({}, { __mode = "k" })

-- opts: provider, region, iam_endpoint (a URL, or a function returning one or nil, err),
-- iam_transport.
function M.attach(client, opts)
  state[client] = { provider = opts.provider, region = opts.region, iam_endpoint = opts.iam_endpoint,
    iam_transport = opts.iam_transport, secrets = {} }
end

function M.attached(client)
  return state[client] ~= nil
end

-- Remembers a token to take out of error messages (a server may echo what it was sent).
local function keep_secret(s, token)
  if not token then return end
  for _, t in ipairs(s.secrets) do if t == token then return end end
  table.insert(s.secrets, 1, token)
  s.secrets[KEEP_SECRETS + 1] = nil
end

function M.secrets(client)
  local s = state[client]
  return s and s.secrets or {}
end

-- The provider's current credentials, with a signer made for them when they are new.
local function current(client, s)
  local creds, err = s.provider:credentials()
  if not creds then return nil, err end
  if creds ~= s.creds then
    if creds.auth_token then
      if s.signer then core.signer.wipe(s.signer) end
      s.signer = nil
    else
      local signer
      signer, err = core.signer.new(creds.ak, creds.sk, creds.security_token)
      if not signer then return nil, errors.new("config", err, { field = "credentials" }) end
      if s.signer then core.signer.wipe(s.signer) end
      s.signer = signer
    end
    s.creds = creds
    keep_secret(s, creds.security_token or creds.auth_token)
    client.auth = creds.auth or client.auth
  end
  return creds
end

-- Fetches what the client needs before it can send: credentials and, when none is configured,
-- the project id (the credentials' source's, else IAM's). Returns the project id or nil, err.
function M.resolve(client)
  local s = state[client]
  if not s then errors.raise("csms: client used after close") end
  local creds, err = current(client, s)
  if not creds then return nil, err end
  if client.project_id then return client.project_id end
  local id = creds.project_id
  if not id then
    local iam = s.iam_endpoint
    if type(iam) == "function" then
      iam, err = iam()
      if not iam then return nil, err end
    end
    id, err = project.lookup(creds, s.region, { iam_endpoint = iam, transport = s.iam_transport,
      user_agent = require("csms").USER_AGENT, clock = function() return os.time() + client.clock_skew end })
    if not id then return nil, err end
  end
  client.project_id = id
  return id
end

-- Builds and signs the request for one attempt (every attempt is signed afresh, with the
-- credentials of the moment).
function M.prepare(client, method, path, body)
  local s = state[client]
  if not s then errors.raise("csms: client used after close") end
  local creds, err = current(client, s)
  if not creds then return nil, err end
  local ua = require("csms").USER_AGENT
  local url = client.endpoint .. path
  if creds.auth_token then
    return { method = method, url = url, body = body, headers = {
      ["Content-Type"] = CONTENT_TYPE, ["User-Agent"] = ua, Host = client.host,
      ["X-Auth-Token"] = creds.auth_token,
    } }
  end
  -- The same header table every time: the signer's cache of canonical headers then hits, and
  -- core.signer.sign returns a new table with X-Sdk-Date and Authorization added.
  local headers = s.headers
  if not headers or headers["User-Agent"] ~= ua or headers["X-Project-Id"] ~= client.project_id then
    headers = { ["Content-Type"] = CONTENT_TYPE, ["User-Agent"] = ua, Host = client.host,
      ["X-Project-Id"] = client.project_id }
    s.headers = headers
  end
  local signed
  signed, err = core.signer.sign(s.signer, method, url, headers, body, os.time() + client.clock_skew)
  if not signed then return nil, errors.new("invalid_argument", err) end
  return { method = method, url = url, headers = signed, body = body }
end

function M.close(client)
  local s = state[client]
  if not s then return false end
  if s.signer then core.signer.wipe(s.signer) end
  state[client] = nil
  return true
end

return M
