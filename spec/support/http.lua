-- Test support: one HTTP request to a test server, on a fresh connection, through LuaSocket's
-- socket.http (luasec's ssl.https for TLS, without verification: the test certificates are
-- self-signed). Part of the spec support files listed in spec/support/shell.lua.
--
--   request(endpoint, { method=, target=, headers = {name = value}, body=, timeout= })
--     what admin.lua and api.lua send with: socket.http.request, which adds Host, User-Agent,
--     TE and Connection when absent.
--   raw{ port=, host=, tls=, method=, target=, headers = {{name, value}, ...} or {name = value},
--        body=, timeout= }
--     the request bytes exactly as given: headers in the order of the list (repeats allowed),
--     nothing added but Host, Content-Length and Connection: close when absent. For specs that
--     put on the wire what socket.http.request would normalise (header order, repeated or
--     missing headers). It writes the request itself and reads the answer with socket.http's
--     own connection object (socket.http.open, LuaSocket's low-level HTTP API).
-- Both return status, headers (lower-case names, repeated ones joined with ", "), body; or nil
-- and LuaSocket's message ("closed", "connection refused", "timeout"...).
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local M = {}

local DEFAULT_TIMEOUT = 30

-- socket.http and ssl.https read their timeout from a module field when they connect: set it
-- for this one call (specs run one request at a time).
local function with_timeout(seconds, f, ...)
  local https = package.loaded["ssl.https"]
  local old, old_tls = http.TIMEOUT, https and https.TIMEOUT
  http.TIMEOUT = seconds or DEFAULT_TIMEOUT
  if https then https.TIMEOUT = http.TIMEOUT end
  local ok, a, b, c, d = pcall(f, ...)
  http.TIMEOUT = old
  if https then https.TIMEOUT = old_tls end
  if not ok then error(a, 0) end
  return a, b, c, d
end

--- endpoint: "http(s)://host:port". headers: a map.
function M.request(endpoint, opts)
  -- socket.http would load it on connecting: loaded first, with_timeout sets its timeout too
  if endpoint:match("^https:") then require "ssl.https" end
  local headers = {} -- lower-case names, as socket.http sends them
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local body = opts.body
  if body and not headers["content-length"] then headers["content-length"] = #body end
  local parts = {}
  local ok, status, rheaders = with_timeout(opts.timeout, http.request, {
    url = endpoint, uri = opts.target, method = opts.method or "GET", headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(parts),
    redirect = false,
  })
  if not ok then return nil, status end
  return status, rheaders, table.concat(parts)
end

local function header_list(headers)
  if not headers or #headers > 0 then return headers or {} end
  local names, list = {}, {}
  for k in pairs(headers) do names[#names + 1] = k end
  table.sort(names)
  for i, k in ipairs(names) do list[i] = { k, headers[k] } end
  return list
end

local raw = socket.protect(function(opts)
  local create = socket.tcp
  if opts.tls then create = require("ssl.https").tcp({}) end
  local host = opts.host or "127.0.0.1"
  local h = http.open(host, opts.port, create)
  local lines = { (opts.method or "GET") .. " " .. opts.target .. " HTTP/1.1" }
  local have = {}
  for _, kv in ipairs(header_list(opts.headers)) do
    lines[#lines + 1] = kv[1] .. ": " .. kv[2]
    have[kv[1]:lower()] = true
  end
  local body = opts.body
  if not have["host"] then lines[#lines + 1] = "Host: " .. host .. ":" .. opts.port end
  if body and not have["content-length"] then lines[#lines + 1] = "Content-Length: " .. #body end
  if not have["connection"] then lines[#lines + 1] = "Connection: close" end
  h.try(h.c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
  local status, line = h:receivestatusline()
  if not status then h:close(); return nil, "not an HTTP status line: " .. tostring(line) end
  local headers = h:receiveheaders()
  local parts = {}
  if opts.method ~= "HEAD" and status >= 200 and status ~= 204 and status ~= 304 then
    h:receivebody(headers, (ltn12.sink.table(parts)))
  end
  h:close()
  return status, headers, table.concat(parts)
end)

function M.raw(opts)
  local status, headers, body = with_timeout(opts.timeout, raw, opts)
  return status, headers, body
end

return M
