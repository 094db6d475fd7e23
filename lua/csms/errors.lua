-- Error values: every runtime failure of the module is `nil, err` with err one of these.
-- Fields: kind, op, message, status, error_code, error_msg, request_id, retryable, attempts,
-- conflict. tostring(err) gives one log-friendly line.
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
  return head .. body
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

-- Short, single-line text from a body that is not JSON (an HTML 502 page from a load balancer).
local function readable_text(body)
  local title = body:match("<[Tt][Ii][Tt][Ll][Ee][^>]*>(.-)</[Tt][Ii][Tt][Ll][Ee]>")
  local text = title or body:gsub("<[^>]*>", " ")
  text = text:gsub("[%c%s]+", " "):gsub("^ ", ""):gsub(" $", "")
  if #text > 200 then text = text:sub(1, 197) .. "..." end
  if text == "" then return nil end
  return text
end

local function str(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return (math.type and math.type(v) == "float" and v == math.floor(v))
    and ("%d"):format(v) or tostring(v) end
  return nil
end

-- Extracts error_code, error_msg and a request id from an error body, whatever its shape:
-- flat {"error_code","error_msg"}, nested {"error":{"code","message"}} (IAM's code may be a
-- number), or not JSON at all.
function M.parse_body(body)
  local out = {}
  if type(body) ~= "string" or body == "" then return out end
  local doc = cjson.decode(body)
  if type(doc) ~= "table" then
    out.error_msg = readable_text(body)
    return out
  end
  local nested = type(doc.error) == "table" and doc.error or {}
  out.error_code = str(doc.error_code) or str(nested.code) or str(doc.code)
  out.error_msg = str(doc.error_msg) or str(nested.message) or str(doc.message)
    or str(nested.title) or (type(doc.error) == "string" and doc.error or nil)
  out.request_id = str(doc.request_id) or str(nested.request_id)
  out.encoded_authorization_message = str(doc.encoded_authorization_message)
  if out.error_msg and #out.error_msg > 2048 then out.error_msg = out.error_msg:sub(1, 2045) .. "..." end
  return out
end

-- Removes secrets a server may echo back (the gateway puts its canonical request, security
-- token included, in 401 messages).
function M.redact(text, secrets)
  if type(text) ~= "string" then return text end
  text = text:gsub("([Xx]%-[Ss]ecurity%-[Tt]oken:)[^\n,;]*", "%1[redacted]")
  for _, s in ipairs(secrets) do
    if type(s) == "string" and #s >= 4 then
      local i = 1
      while true do
        local a, b = text:find(s, i, true)
        if not a then break end
        text = text:sub(1, a - 1) .. "[redacted]" .. text:sub(b + 1)
        i = a + 10
      end
    end
  end
  return text
end

-- The service has no documented code for "already exists"; it is recognised by its words.
function M.is_conflict(status, error_msg)
  return (status == 400 or status == 409) and type(error_msg) == "string"
    and error_msg:lower():find("already exist", 1, true) ~= nil
end

return M
