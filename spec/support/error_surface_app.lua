-- Failures raised inside a host (nginx, HAProxy) as a user would write them, for
-- spec/error_surface_hosts_spec.lua. The spec finds each case's line by its [case] marker.
local csms = require "csms"

local M = {}

-- A client that sends nothing: the calls below fail before any I/O.
local function offline_client()
  return csms.assert(csms.new { ak = "AK", sk = "SK", project_id = "p",
    endpoint = "http://127.0.0.1:1" })
end

M.cases = {
  -- a failed call's err, raised by csms.assert
  assert = function()
    local client = offline_client()
    csms.assert(client:backup("not a name!")) -- [assert]
  end,
  -- a failed call's err, concatenated into a message raised with error()
  concat = function()
    local client = offline_client()
    local res, err = client:backup("not a name!")
    if not res then error("backup failed: " .. err) end -- [concat]
  end,
  -- misuse: the library raises at this line
  misuse = function()
    csms.new { timeout = "30" } -- [misuse]
  end,
}

function M.run(case)
  return M.cases[case]()
end

return M
