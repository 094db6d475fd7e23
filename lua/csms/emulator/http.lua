-- Requests and responses inside nginx, for every part of the emulator: the request's context,
-- its body and query, and sending an answer (JSON, HTML or none) the way the gateway does.
local json = require "csms.json"
local crypto = require "csms.emulator.crypto"
local files = require "csms.emulator.files"
local limits = require "csms.emulator.limits"
local signature = require "csms.emulator.signature"

local M = {}

local JSON_TYPE = "application/json;charset=UTF-8"

--- The context of the current request: request_id (fresh, 32 hex), method, raw_path and
--- raw_query exactly as sent.
function M.context()
  local ctx = { request_id = crypto.hex(crypto.random(16)), method = ngx.req.get_method() }
  local uri = ngx.var.request_uri
  local q = uri:find("?", 1, true)
  if q then
    ctx.raw_path, ctx.raw_query = uri:sub(1, q - 1), uri:sub(q + 1)
  else
    ctx.raw_path = uri
  end
  return ctx
end

--- Sends a response. kind: "json" (body is a table), "html" or "text" (a string), or nil for no
--- body.
function M.send(status, kind, body, headers)
  ngx.status = status
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  if kind == nil or body == nil then
    ngx.header["Content-Length"] = 0
    return ngx.exit(status)
  end
  local text
  if kind == "json" then
    ngx.header["Content-Type"] = JSON_TYPE
    text = json.encode(body)
  else
    ngx.header["Content-Type"] = kind == "text" and "text/plain" or "text/html"
    text = body
  end
  ngx.header["Content-Length"] = #text
  ngx.print(text)
  return ngx.exit(ngx.HTTP_OK)
end

--- The gateway's error answer (status, kind, body, headers), with the request id.
function M.apig_error(ctx, status, code, msg, headers)
  return status, "json", { error_code = code, error_msg = msg, request_id = ctx.request_id }, headers
end

--- CSMS's error answer: a flat {error_code, error_msg}.
function M.csms_error(status, code, msg)
  return status, "json", { error_code = code, error_msg = msg }
end

function M.not_found()
  return M.csms_error(404, "CSMS.0005", "The resource does not exist.")
end

function M.invalid(msg)
  return M.csms_error(400, "CSMS.0002", msg)
end

--- The path's segments, each percent-decoded once.
function M.split_path(raw_path)
  local segs = {}
  for seg in raw_path:gmatch("[^/]+") do segs[#segs + 1] = signature.decode(seg) end
  return segs
end

--- The query's arguments (first value of each name), decoded once.
function M.query_args(raw_query)
  local args = {}
  if not raw_query then return args end
  for part in (raw_query .. "&"):gmatch("([^&]*)&") do
    if part ~= "" then
      local k, v = part:match("^([^=]*)=?(.*)$")
      k, v = signature.decode(k), signature.decode(v)
      if args[k] == nil then args[k] = v end
    end
  end
  return args
end

--- The raw body (nginx may have spooled it to a file), or nil and "too large" past MAX_BODY.
function M.read_body()
  local len = tonumber(ngx.var.content_length or "")
  if len and len > limits.MAX_BODY then
    ngx.req.discard_body()
    return nil, "too large"
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    body = file and files.read(file) or ""
  end
  if #body > limits.MAX_BODY then return nil, "too large" end
  return body
end

--- ctx.body as a JSON object, or nil and CSMS's 400 answer (a list to unpack).
function M.json_object(ctx)
  local body = ctx.body
  if body == nil or body == "" then
    return nil, { M.csms_error(400, "CSMS.0004", "The request body is missing.") }
  end
  local doc = json.decode(body)
  if type(doc) ~= "table" or (next(doc) ~= nil and doc[1] ~= nil) then
    return nil, { M.csms_error(400, "CSMS.0004", "The request body is not a valid JSON object.") }
  end
  return doc
end

--- A header's value (the first when repeated).
function M.header_value(v)
  if type(v) == "table" then return v[1] end
  return v
end

return M
