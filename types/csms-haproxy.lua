---@meta csms.haproxy
-- LuaLS definitions of `csms.haproxy` (docs/reference.md, docs/haproxy.md). Not loaded at run
-- time. spec/reference_spec.lua checks it against the code.

---@class csms.haproxy.Options
---@field timeout? number seconds per request (default 30)
---@field max_response? number bytes (default 16 MiB)

---A "multi" transport over HAProxy's core.httpclient().
---@class csms.haproxy.Transport: csms.Transport
---@field inflight integer requests in flight

---@class csms.haproxy
local haproxy = {}

---Raises outside HAProxy's Lua (no core.httpclient).
---@param opts? csms.haproxy.Options
---@return csms.haproxy.Transport
function haproxy.new(opts) end

return haproxy
