-- csms.haproxy: a transport (lua/csms/transport.lua) for HAProxy's Lua, over core.httpclient()
-- (HAProxy 2.5+; Debian's 2.6 embeds Lua 5.3). HAProxy's event loop keeps running while a
-- request waits, and the transport is "multi": every submit() starts the request in a task of
-- its own (core.register_task), poll() sleeps (core.msleep, which yields) until some end, so
-- csms.batch keeps `concurrency` requests in flight. See docs/haproxy.md.
--
--   local client = csms.assert(csms.new { ..., transport = require("csms.haproxy").new() })
--
-- Call it at runtime (a task, an action or a service), not at load (body or init context):
-- HAProxy starts the tasks only once its scheduler runs.
-- luacheck: read globals core

local M = {}

local POLL_MS = 5 -- the longest a completion waits to be noticed

-- The verbs HAProxy 2.6's httpclient has (it has no generic request method).
local VERBS = { GET = "get", HEAD = "head", PUT = "put", POST = "post", DELETE = "delete" }

-- HAProxy answers with its own error pages when it could not reach the server, or the server
-- did not answer in time; the service's errors are JSON. status -> { page text, kind, sent }.
local OWN_PAGES = {
  [503] = { "No server is available to handle this request.", "transport", false },
  [504] = { "The server didn't respond in time.", "timeout", true },
  [502] = { "The server returned an invalid or incomplete response.", "transport", true },
}

local Transport = {}
Transport.__index = Transport

-- opts: timeout (seconds per request, default 30), max_response (bytes, default 16 MiB).
function M.new(opts)
  opts = opts or {}
  if type(core) ~= "table" or type(core.httpclient) ~= "function" then
    error("csms.haproxy: needs HAProxy's Lua (core.httpclient: HAProxy 2.5 or later)", 2)
  end
  for _, k in ipairs { "timeout", "max_response" } do
    if opts[k] ~= nil and not (type(opts[k]) == "number" and opts[k] > 0) then
      error("csms.haproxy: " .. k .. " must be a positive number", 2)
    end
  end
  return setmetatable({
    timeout_ms = math.floor((opts.timeout or 30) * 1000 + 0.5),
    max_response = opts.max_response or 16 * 1024 * 1024,
    next_id = 0,
    inflight = 0,  -- requests started and not yet ended (read it for monitoring)
    finished = {}, -- { id, res, terr } not yet handed out
    awaited = {},  -- ids request() waits for itself: poll() leaves them alone
  }, Transport)
end

-- httpclient's header values are lists (HAProxy 2.6 numbers them from 0).
local function header_value(v)
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  if v[0] ~= nil then parts[1] = tostring(v[0]) end
  for _, x in ipairs(v) do parts[#parts + 1] = tostring(x) end
  return table.concat(parts, ", ")
end

local function failure(kind, message, sent)
  return nil, { kind = kind, message = message, sent = sent }
end

-- One request, in the calling task (httpclient yields while it waits): res | nil, terr.
local function perform(self, req)
  local verb = VERBS[req.method]
  if not verb then
    return failure("invalid_argument", "HAProxy's httpclient cannot send " .. tostring(req.method), false)
  end
  local headers = {}
  for name, value in pairs(req.headers or {}) do headers[name] = { value } end
  local hc = core.httpclient()
  local ok, r = pcall(hc[verb], hc, { url = req.url, headers = headers, body = req.body,
    timeout = self.timeout_ms })
  if not ok then return failure("transport", "httpclient: " .. tostring(r), false) end
  if type(r) ~= "table" or type(r.status) ~= "number" or r.status == 0 then
    return failure("transport", "httpclient: no answer", true)
  end
  local body = type(r.body) == "string" and r.body or ""
  local own = OWN_PAGES[r.status]
  if own and body:find(own[1], 1, true) then
    return failure(own[2], ("HAProxy: %d %s"):format(r.status, own[1]), own[3])
  end
  if r.status == 503 and body == "" then -- what HAProxy 2.6 answers when a name does not resolve
    return failure("transport", "HAProxy: 503 without a body (the server's name did not resolve?)", true)
  end
  if #body > self.max_response then
    return failure("response_too_large", ("the answer is over %d bytes"):format(self.max_response), true)
  end
  local h = {}
  for name, v in pairs(r.headers or {}) do h[name:lower()] = header_value(v) end
  return { status = r.status, headers = h, body = body }
end

-- Starts req in a task of its own; poll() hands out its end.
function Transport:submit(req)
  self.next_id = self.next_id + 1
  local id = self.next_id
  self.inflight = self.inflight + 1
  core.register_task(function()
    local ok, res, terr = pcall(perform, self, req)
    if not ok then res, terr = nil, { kind = "transport", message = tostring(res), sent = true } end
    self.inflight = self.inflight - 1
    self.finished[#self.finished + 1] = { id = id, res = res, terr = terr }
  end)
  return id
end

local function now()
  local t = core.now()
  return t.sec + t.usec / 1e6
end

-- Hands out the ended requests poll() may have (not those request() waits for).
local function take(self)
  local out, keep = {}, {}
  for _, c in ipairs(self.finished) do
    if self.awaited[c.id] then keep[#keep + 1] = c else out[#out + 1] = c end
  end
  self.finished = keep
  return out
end

-- The requests that ended, waiting up to timeout seconds for one (HAProxy runs meanwhile).
function Transport:poll(timeout)
  local deadline = now() + (timeout or 0)
  local done = take(self)
  while #done == 0 and self.inflight > 0 and now() < deadline do
    core.msleep(math.max(1, math.min(POLL_MS, math.floor((deadline - now()) * 1000))))
    done = take(self)
  end
  return done
end

-- One request, waited for (single calls: client:backup() and friends).
function Transport:request(req)
  local id = self:submit(req)
  self.awaited[id] = true
  while true do
    for i, c in ipairs(self.finished) do
      if c.id == id then
        table.remove(self.finished, i)
        self.awaited[id] = nil
        return c.res, c.terr
      end
    end
    core.msleep(POLL_MS)
  end
end

function Transport.sleep(_, seconds)
  local ms = math.floor(seconds * 1000 + 0.5)
  if ms > 0 then core.msleep(ms) end
end

function Transport.mode() return "multi" end

function Transport.close() end

M.Transport = Transport
return M
