-- csms.listing: every secret of a project, all pages of ListSecrets, checked for a listing that
-- never ends (csms.batch.list).
local csms = require "csms"
local errors = require "csms.errors"

local M = {}

local MAX_PAGES = 100000 -- 20 million secrets: a listing that never ends is the server's fault

local function bad_listing(msg)
  return nil, errors.new("bad_response", "the listing " .. msg, { op = "list" })
end

-- Every secret object of the project, all pages (200 a page), or nil, err. A marker that is
-- not a name, a marker given twice (m0, m1, m0, ...) or endless pages are kind
-- "bad_response"; a page repeating the marker it was asked for ends the listing.
function M.all(client)
  local out, marker, seen = {}, nil, {}
  for _ = 1, MAX_PAGES do
    local res, err = client:list_secrets { limit = 200, marker = marker }
    if not res then return nil, err end
    for _, s in ipairs(res.secrets) do out[#out + 1] = s end
    local next_marker = type(res.page_info) == "table" and res.page_info.next_marker or nil
    if next_marker == nil or next_marker == marker or #res.secrets == 0 then return out end
    if type(next_marker) ~= "string" or csms.validate_name(next_marker) ~= true then
      return bad_listing("gives a next_marker that is not a secret name")
    end
    if seen[next_marker] then return bad_listing("goes round in a loop (next_marker " .. next_marker
      .. " was given before)") end
    seen[next_marker], marker = true, next_marker
  end
  return bad_listing(("has more than %d pages"):format(MAX_PAGES))
end

return M
