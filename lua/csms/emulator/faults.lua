-- Fault injection: a deterministic queue (faults/next) consulted first, then a random rate.
local M = {}

M.KINDS = {
  ["500"] = true, ["500nested"] = true, ["502html"] = true, ["503"] = true, ["504"] = true,
  ["429"] = true, drop = true,
  drop_after_apply = true, ["504_after_apply"] = true, ["500_after_apply"] = true,
}

local queue = {}

function M.reset()
  queue = {}
end

--- entries: list of { kind =, op = optional }; validated by the caller.
function M.push(entries)
  for _, e in ipairs(entries) do queue[#queue + 1] = { kind = e.kind, op = e.op } end
end

function M.pending()
  return #queue
end

--- The fault for a request of operation op, or nil. config: fault_rate, faults, fault_ops.
function M.pick(op, config)
  for i, e in ipairs(queue) do
    if e.op == nil or e.op == op then
      table.remove(queue, i)
      return e.kind
    end
  end
  local rate = config.fault_rate or 0
  if rate <= 0 or #config.faults == 0 then return nil end
  if config.fault_ops then
    local ok = false
    for _, o in ipairs(config.fault_ops) do
      if o == op then ok = true break end
    end
    if not ok then return nil end
  end
  if math.random() < rate then
    return config.faults[math.random(#config.faults)]
  end
  return nil
end

function M.after_apply(kind)
  return kind:find("_after_apply$") ~= nil
end

--- The response a fault kind sends: status, content type, body, extra headers; or "drop".
function M.response(kind, config, request_id)
  local base = kind:gsub("_after_apply$", "")
  if base == "drop" then return "drop" end
  if base == "500" then
    return 500, "json", { error_code = "CSMS.0500", error_msg = "Internal server error." }
  elseif base == "500nested" then
    return 500, "json", { error = { code = "CSMS.0500", message = "Internal server error." } }
  elseif base == "502html" then
    return 502, "html", "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" ..
      "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
  elseif base == "503" then
    return 503, "json", { error_code = "APIG.0202",
      error_msg = "Service unavailable: the backend is unavailable.", request_id = request_id }
  elseif base == "504" then
    return 504, "json", { error_code = "APIG.0203", error_msg = "Backend timeout.",
      request_id = request_id }
  elseif base == "429" then
    return 429, "json", { error_code = "APIG.0308",
      error_msg = "The request is throttled (injected fault).", request_id = request_id },
      { ["Retry-After"] = tostring(config.retry_after or 1) }
  end
  error("unknown fault kind " .. tostring(kind))
end

return M
