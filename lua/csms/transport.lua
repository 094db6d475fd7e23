-- Transports: how a signed request reaches the service. A transport is a table with
--   request(self, req) -> res | nil, terr
--       req  = { method, url, headers = { Name = value }, body = string|nil,
--                once = true for requests that must not be sent twice (restore): a transport
--                must never re-send such a request by itself (libcurl: a fresh connection) }
--       res  = { status = n, headers = { lowercase-name = value }, body = string,
--                connects = new connections opened (optional) }
--       terr = { kind = "transport"|"timeout"|"tls"|"response_too_large"|"bad_response"|
--                "invalid_argument", message = string, sent = boolean }
--   sleep(self, seconds), close(self)
--   mode(self) -> how csms.scheduler may overlap requests on it (optional: "serial" if absent):
--       "serial"  request() blocks until the answer: one request at a time;
--       "threads" request() yields to an event loop (nginx cosockets): light threads overlap;
--       "multi"   the transport also has
--                   submit(self, req) -> id | nil, message   (starts a request, does not wait)
--                   poll(self, timeout) -> { { id = id, res = res, terr = terr }, ... }
--                 (waits up to timeout seconds for completions, returns those that ended,
--                 possibly none); one loop keeps many requests in flight. csms.scheduler
--                 polls with a timeout under a millisecond right after submitting, so that
--                 a transport that only sends when polled (libcurl) sends them at once.
-- The default one is libcurl (csms.core.http, "multi"); inside nginx csms.cosocket ("threads"
-- where cosockets exist). csms.new{ transport = fn } wraps a function fn(req) -> res | nil, terr
-- as a "serial" transport, so other event loops can plug theirs in; a table declaring "multi"
-- runs concurrently on the user's own loop.
local core = require "csms.core"
local errors = require "csms.errors"

local M = {}

local Curl = {}
Curl.__index = Curl

function M.curl(opts)
  local http = core.http.new {
    timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    verify_tls = opts.verify_tls, cafile = opts.cafile, proxy = opts.proxy,
    max_response = opts.max_response,
  }
  return setmetatable({ http = http, finished = {} }, Curl)
end

local function to_result(r)
  if r.error then
    return nil, { kind = r.error, message = r.message, sent = r.sent, curl_code = r.curl_code }
  end
  return { status = r.status, headers = r.headers, body = r.body, connects = r.connects }
end

-- Blocking request. Results of other requests in flight on the same handle (csms.batch's)
-- that complete meanwhile are kept for whoever waits for them.
function Curl:request(req)
  local id, err = self:submit(req)
  if not id then return nil, { kind = "invalid_argument", message = err, sent = false } end
  return self:await(id)
end

function Curl:submit(req)
  return self.http:submit(req.method, req.url, req.headers, req.body, req.once)
end

function Curl:await(id)
  while true do
    local r = self.finished[id]
    if r then
      self.finished[id] = nil
      return to_result(r)
    end
    for _, done in ipairs(self.http:wait(1)) do self.finished[done.id] = done end
  end
end

-- Waits up to timeout seconds for any completion: returns a list of { id, res, terr }.
function Curl:poll(timeout)
  local done = {}
  for id, r in pairs(self.finished) do
    self.finished[id] = nil
    done[#done + 1] = r
  end
  if #done == 0 then done = self.http:wait(timeout) end
  local out = {}
  for i, r in ipairs(done) do
    local res, terr = to_result(r)
    out[i] = { id = r.id, res = res, terr = terr }
  end
  return out
end

function Curl.sleep(_, seconds) core.time.sleep(seconds) end

function Curl.mode() return "multi" end

function Curl:close() self.http:close() end

-- The transport to use unless given one: libcurl, or inside nginx cosockets (never a blocking
-- call on a serving worker: csms.cosocket). opts: the client's timeouts and TLS settings.
function M.default(opts)
  if ngx and type(ngx.get_phase) == "function" then
    if opts.cafile or opts.proxy then
      return nil, errors.new("config", "cafile and proxy are not available inside nginx: set "
        .. "lua_ssl_trusted_certificate, and reach the endpoint directly")
    end
    return require("csms.cosocket").auto(opts, M.curl)
  end
  return M.curl(opts)
end

-- A user function as a transport.
function M.from_function(fn)
  return {
    request = function(_, req) return fn(req) end,
    sleep = function(_, seconds) core.time.sleep(seconds) end,
    close = function() end,
    mode = function() return "serial" end,
  }
end

local MODES = { serial = true, threads = true, multi = true }

-- The transport's mode (see above), checked: misuse raises.
function M.mode(t)
  if t.mode == nil then return "serial" end
  local mode = t:mode()
  if not MODES[mode] then
    error("csms: transport:mode() must return \"serial\", \"threads\" or \"multi\", got " .. tostring(mode), 0)
  end
  if mode == "threads" and not (ngx and ngx.thread) then
    error("csms: a transport whose mode() is \"threads\" needs ngx.thread (nginx's Lua module)", 0)
  end
  if mode == "multi" and not (type(t.submit) == "function" and type(t.poll) == "function") then
    error("csms: a transport whose mode() is \"multi\" must have submit and poll methods", 0)
  end
  return mode
end

return M
