-- Error values: every runtime failure of the module is `nil, err` with err one of these.
-- Fields: kind, op, message, status, error_code, error_msg, request_id, retryable, attempts,
-- conflict, note (what a batch run did about the failure, shown last). tostring(err) gives one
-- log-friendly line, and so does concatenation ("failed: " .. err). What a host prints for a
-- raised error is another matter: nginx's lua-nginx-module and HAProxy only print strings (a
-- table, even with __tostring, becomes "unknown reason" / "unknown runtime error"), so
-- whatever this module raises is a string, and M.assert raises a failed call's err as its
-- string.
local cjson = require "cjson.safe"

local M = {}

local Error = {}
Error.__index = Error

-- The kinds callers can switch on.
M.kinds = {
  invalid_argument = true,     -- bad input; nothing was sent
  config = true,               -- missing or unusable settings (credentials, endpoint)
  http = true,                 -- the service answered with an error status
  transport = true,            -- connection refused, reset, DNS failure...
  timeout = true,              -- no complete answer in time
  tls = true,                  -- certificate verification or handshake failure
  response_too_large = true,   -- the body passed the client's cap
  bad_response = true,         -- a 2xx whose body is not what the API documents
  conflict_after_retry = true, -- a retried restore met its own secret (see README)
  throttled = true,            -- still answered 429 at the end of throttle_deadline
  phase = true,                -- inside nginx, called from a phase without cosockets
  io = true,                   -- local files (csms.batch)
  corrupt = true,              -- a backup file does not match its manifest (csms.batch)
  busy = true,                 -- another backup is writing the directory (csms.batch)
}

function Error:__tostring()
  local parts = { "csms" }
  if self.op then parts[#parts + 1] = self.op end
  local head = table.concat(parts, " ") .. ": "
  local body
  if self.status and (self.kind == "http" or self.kind == "conflict_after_retry") then
    body = ("HTTP %d"):format(self.status)
    if self.error_code then body = body .. " " .. self.error_code end
    if self.error_msg then body = body .. ": " .. self.error_msg end
    if self.kind == "conflict_after_retry" then
      body = body .. " (after a retry: the first attempt probably restored it)"
    end
  else
    body = (self.kind or "error") .. ": " .. (self.message or self.error_msg or "unknown error")
    if self.status then body = body .. (" (HTTP %d)"):format(self.status) end
  end
  if self.request_id then body = body .. " (request_id " .. self.request_id .. ")" end
  if self.attempts and self.attempts > 1 then body = body .. (" after %d attempts"):format(self.attempts) end
  if self.budget_spent then body = body .. " (not retried: the client's retry budget is spent)" end
  if self.note then body = body .. "; " .. self.note end
  return head .. body
end

-- "failed: " .. err and err .. "!" give strings, as with a string error (LuaSocket's,
-- lua-resty-*'s).
function Error.__concat(a, b)
  return tostring(a) .. tostring(b)
end

function M.new(kind, message, fields)
  local e = fields or {}
  e.kind = kind
  e.message = e.message or message
  return setmetatable(e, Error)
end

function M.is_error(v)
  return getmetatable(v) == Error
end

-- Misuse raises at the caller's line: the first stack frame that is neither this library's
-- (a file csms/<module>.lua, wherever it is installed) nor C (pcall, a host's glue). A fixed
-- error level cannot say it: checks run at different depths (csms.new, client methods, batch).
local function library_file(source)
  return source:find("[/\\]csms[/\\][%w_]+%.lua$") or source:find("[/\\]csms[/\\]emulator[/\\]")
end

local function caller_position()
  if not (debug and debug.getinfo) then return "" end
  for level = 3, 100 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.what ~= "C" and info.what ~= "tail" and (info.currentline or 0) > 0
      and not library_file(info.source) then
      return info.short_src .. ":" .. info.currentline .. ": "
    end
  end
  return ""
end

-- Raises message (a string) as "file:line: message" at the caller's line.
function M.raise(message)
  error(caller_position() .. message, 0)
end

-- assert for csms calls: returns all its arguments when v is true; else raises err as a
-- string (tostring(err), at the caller's line), which nginx and HAProxy print in their logs.
--   local client = csms.assert(csms.new { region = "cn-north-4" })
function M.assert(v, err, ...)
  if v then return v, err, ... end
  if err == nil then err = "assertion failed!" end
  error(caller_position() .. tostring(err), 0)
end

-- Removes secrets a server may echo back (the gateway puts its canonical request, security
-- token included, in 401 messages). Runs on whole strings, before anything is cut short: a
-- token cut in two by a length cap would no longer be found.
local TOKEN_HEADERS = { "[Xx]%-[Ss][Ee][Cc][Uu][Rr][Ii][Tt][Yy]%-[Tt][Oo][Kk][Ee][Nn]",
  "[Xx]%-[Aa][Uu][Tt][Hh]%-[Tt][Oo][Kk][Ee][Nn]" }
local PREFIX = 24 -- a secret's first characters that are enough to recognise a piece of it

local function cut(text, a, b)
  return text:sub(1, a - 1) .. "[redacted]" .. text:sub(b + 1)
end

function M.redact(text, secrets)
  if type(text) ~= "string" then return text end
  for _, h in ipairs(TOKEN_HEADERS) do
    text = text:gsub("(" .. h .. "[\"']?%s*[:=]%s*[\"']?)[^\n,;\"']*", "%1[redacted]")
  end
  for _, s in ipairs(secrets or {}) do
    if type(s) == "string" and #s >= 4 then
      -- The whole secret, or (long ones: IAM tokens are kilobytes) a piece of it that a server
      -- cut short itself: its first PREFIX characters and as many more as match.
      local head = #s > PREFIX and s:sub(1, PREFIX) or s
      local i = 1
      while true do
        local a = text:find(head, i, true)
        if not a then break end
        local n = #head
        while n < #s and text:byte(a + n) == s:byte(n + 1) do n = n + 1 end
        text = cut(text, a, a + n - 1)
        i = a + 10
      end
    end
  end
  return text
end

-- Short, single-line text from a body that is not JSON (an HTML 502 page from a load balancer).
local function readable_text(body, secrets)
  local title = body:match("<[Tt][Ii][Tt][Ll][Ee][^>]*>(.-)</[Tt][Ii][Tt][Ll][Ee]>")
  local text = title or body:gsub("<[^>]*>", " ")
  text = M.redact(text, secrets):gsub("[%c%s]+", " "):gsub("^ ", ""):gsub(" $", "")
  if #text > 200 then text = text:sub(1, 197) .. "..." end
  if text == "" then return nil end
  return text
end

-- A JSON string or number as text. Numbers may be anything JSON (or lua-cjson: NaN, Infinity,
-- hex) can spell: 401, 1e20, 1e400; whole ones up to 2^53 print as integers.
local function str(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%.0f"):format(v) end
    return tostring(v)
  end
  return nil
end

-- An identifier (error code, request id) for a one-line message: secrets removed, control
-- characters shown as \xNN, at most 128 characters.
local function ident(v, secrets)
  v = str(v)
  if not v then return nil end
  v = M.redact(v, secrets):gsub("%c", function(c) return ("\\x%02X"):format(c:byte()) end)
  if #v > 128 then v = v:sub(1, 125) .. "..." end
  return v
end

-- Extracts error_code, error_msg and a request id from an error body, whatever its shape:
-- flat {"error_code","error_msg"}, nested {"error":{"code","message"}} (IAM's code may be a
-- number), or not JSON at all. secrets: strings to redact, before any length cap.
function M.parse_body(body, secrets)
  local out = {}
  if type(body) ~= "string" or body == "" then return out end
  local doc = cjson.decode(body)
  if type(doc) ~= "table" then
    out.error_msg = readable_text(body, secrets)
    return out
  end
  local nested = type(doc.error) == "table" and doc.error or {}
  out.error_code = ident(doc.error_code, secrets) or ident(nested.code, secrets) or ident(doc.code, secrets)
  local msg = str(doc.error_msg) or str(nested.message) or str(doc.message)
    or str(nested.title) or (type(doc.error) == "string" and doc.error or nil)
  msg = M.redact(msg, secrets)
  if msg and #msg > 2048 then msg = msg:sub(1, 2045) .. "..." end
  out.error_msg = msg
  out.request_id = ident(doc.request_id, secrets) or ident(nested.request_id, secrets)
  out.encoded_authorization_message = M.redact(str(doc.encoded_authorization_message), secrets)
  return out
end

-- The fields of an error answer (status >= 300): parse_body's, the X-Request-Id header taking
-- precedence over the body's request_id; every one redacted.
function M.answer_fields(res, secrets)
  local out = M.parse_body(res.body, secrets)
  out.request_id = ident(res.headers and res.headers["x-request-id"], secrets) or out.request_id
  return out
end

-- The service has no documented code for "already exists"; it is recognised by its words.
function M.is_conflict(status, error_msg)
  return (status == 400 or status == 409) and type(error_msg) == "string"
    and error_msg:lower():find("already exist", 1, true) ~= nil
end

return M
