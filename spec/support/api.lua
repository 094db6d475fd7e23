-- Test support: calls to the emulated CSMS API the way a client makes them, signed by the
-- official Node.js signer (node_signer.lua), with an X-Auth-Token, or not at all; sent with
-- socket.http (http.lua). Part of the spec support files listed in spec/support/shell.lua.
-- M.methods become methods of the emulator object emulator.start returns:
--   e:request{ method=, path=, query = {{k, v}, ...}, raw_query=, headers = {name = value},
--              body = string or table, sign = "node" | "token" | false, token=, ak=, sk=, date=,
--              extra_headers = {name = value} (added after signing), timeout= }
--     -> status, headers, body, decoded JSON; or nil, err when no answer came
--   e:requests{ req, req, ... }  the same, node-signed in one node process
--     -> a list of { status=, headers=, body=, json= } or { err= }
--   e:api("/secrets" [, project_id])  -> "/v1/<project>/secrets"
local json = require "csms.json"
local http = require "spec.support.http"
local node_signer = require "spec.support.node_signer"

local M = { methods = {} }
local E = M.methods

--- RFC 3986 encoding (what the signers use).
function M.encode(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function query_string(query)
  local parts = {}
  for _, kv in ipairs(query or {}) do
    parts[#parts + 1] = M.encode(kv[1]) .. "=" .. M.encode(kv[2])
  end
  return table.concat(parts, "&")
end

-- The wire form of a request that the Node signer does not sign.
local function unsigned(e, r)
  local headers = {}
  for k, v in pairs(r.headers or {}) do headers[k] = v end
  if r.sign == "token" then headers["X-Auth-Token"] = r.token or e.token end
  for k, v in pairs(r.extra_headers or {}) do headers[k] = v end
  local body = r.body
  if type(body) == "table" then body = json.encode(body) end
  local qs = r.raw_query or query_string(r.query)
  return { method = r.method or "GET", target = r.path .. (qs ~= "" and ("?" .. qs) or ""),
           headers = headers, body = body }
end

local function node_input(e, r)
  assert(r.body == nil or type(r.body) == "table",
    "sign = 'node' needs body as a table (the signer hashes JSON.stringify of it)")
  assert(not r.raw_query, "sign = 'node' takes query = {{k, v}, ...}, not raw_query")
  return {
    method = r.method or "GET", url = e.endpoint .. r.path, headers = r.headers or {},
    query = r.query, body_json = r.body, ak = r.ak or e.ak, sk = r.sk or e.sk, date = r.date,
  }
end

local function signed(e, r, s)
  local headers = {}
  for k, v in pairs(s.headers) do headers[k] = v end
  for k, v in pairs(r.extra_headers or {}) do headers[k] = v end -- added after signing
  return { method = r.method or "GET", target = s.url:sub(#e.endpoint + 1), headers = headers,
           body = s.body }
end

local function send(e, w, r)
  local status, headers, body = http.request(e.endpoint, { method = w.method, target = w.target,
    headers = w.headers, body = w.body, timeout = r.timeout })
  if not status then return nil, headers end
  return status, headers, body, json.decode(body)
end

function E.request(e, r)
  local w
  if r.sign == "node" then
    w = signed(e, r, node_signer.sign({ node_input(e, r) })[1])
  else
    w = unsigned(e, r)
  end
  return send(e, w, r)
end

function E.requests(e, list)
  local to_sign, idx = {}, {}
  for i, r in ipairs(list) do
    if r.sign == "node" then
      to_sign[#to_sign + 1] = node_input(e, r)
      idx[#to_sign] = i
    end
  end
  local wires = {}
  if #to_sign > 0 then
    for j, s in ipairs(node_signer.sign(to_sign)) do
      wires[idx[j]] = signed(e, list[idx[j]], s)
    end
  end
  local out = {}
  for i, r in ipairs(list) do
    local status, headers, body, doc = send(e, wires[i] or unsigned(e, r), r)
    if status then
      out[i] = { status = status, headers = headers, body = body, json = doc }
    else
      out[i] = { err = headers }
    end
  end
  return out
end

function E.api(e, path, project_id)
  return "/v1/" .. (project_id or e.project_id) .. path
end

return M
