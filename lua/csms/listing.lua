-- csms.listing: the secrets of a project, page by page of ListSecrets, checked for a listing that
-- never ends. Whoever drives the requests walks it: csms.batch.backup hands each page to
-- csms.scheduler among the backups of the pages before it; M.all lists everything in a row.
local api = require "csms.api"
local csms = require "csms"
local errors = require "csms.errors"

local M = {}

local MAX_PAGES = 100000 -- 20 million secrets: a listing that never ends is the server's fault
local PAGE = 200

local function bad_listing(msg)
  return nil, errors.new("bad_response", "the listing " .. msg, { op = "list" })
end

local Pages = {}
Pages.__index = Pages

-- A walk through the listing: pages:op() is the next page's operation (csms.operation), nil
-- once the listing has ended; pages:take(res) checks that page's answer and gives its secrets,
-- or nil, err. pages.ended is true after the last page, or after a page that was refused: a
-- marker that is not a name, a marker given twice (m0, m1, m0, ...), endless pages (kind
-- "bad_response"). A page repeating the marker it was asked for, or empty, ends the listing.
function M.pages(client)
  return setmetatable({ client = client, seen = {}, count = 0, ended = false }, Pages)
end

function Pages:op()
  if self.ended then return nil end
  return api.list(self.client, { limit = PAGE, marker = self.marker })
end

function Pages:take(res)
  self.count = self.count + 1
  local secrets = res.secrets
  local next_marker = type(res.page_info) == "table" and res.page_info.next_marker or nil
  if next_marker == nil or next_marker == self.marker or #secrets == 0 then
    self.ended = true
    return secrets
  end
  self.ended = true -- until the marker is known to be good
  if type(next_marker) ~= "string" or csms.validate_name(next_marker) ~= true then
    return bad_listing("gives a next_marker that is not a secret name")
  end
  if self.seen[next_marker] then
    return bad_listing("goes round in a loop (next_marker " .. next_marker .. " was given before)")
  end
  if self.count >= MAX_PAGES then return bad_listing(("has more than %d pages"):format(MAX_PAGES)) end
  self.seen[next_marker], self.marker, self.ended = true, next_marker, false
  return secrets
end

-- Every secret object of the project, all pages, one after the other (csms.batch.list), or
-- nil, err.
function M.all(client)
  local pages, out = M.pages(client), {}
  while not pages.ended do
    local op, err = pages:op()
    local res
    if op then res, err = api.run(op) end
    if not res then return nil, err end
    local secrets
    secrets, err = pages:take(res)
    if not secrets then return nil, err end
    for _, s in ipairs(secrets) do out[#out + 1] = s end
  end
  return out
end

return M
