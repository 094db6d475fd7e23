-- The workload that bench/run measures with valgrind --tool=callgrind: N calls of one kind.
--
--   valgrind --tool=callgrind lua5.4 bench/callgrind.lua sign|kept|backup N
--
--   sign      csms.sign(req, creds) on bench/sign.lua's download request, the same creds table
--             every call (its key schedule cached, as for any caller that keeps its credentials)
--   kept      core.signer.sign(signer, ...) with a kept core.signer, same request
--   backup    client:backup(name) against the emulator in BENCH_ENDPOINT, BENCH_AK, BENCH_SK,
--             BENCH_PROJECT_ID, BENCH_SECRET (the emulator runs outside valgrind)
-- bench/run runs it with N and with 2N calls and reports (I(2N) - I(N)) / N: everything done
-- once (interpreter start, require, OpenSSL and libcurl set-up, the first connection) cancels out.
-- One call of each kind is made before the N, so lazy set-up is not in the difference either.
--
--   lua5.4 bench/callgrind.lua --diff OUT_N OUT_2N N [TOP [BASE_N BASE_2N]]
-- prints the instructions per call, "per_call=<n>", then the TOP (default 12) functions by
-- marginal self cost per call, (self(2N) - self(N)) / N, from callgrind_annotate of both files.
-- With BASE_N and BASE_2N (another workload, same N) it prints what this one costs more than
-- that one, per call and per function.
dofile("bench/common.lua")

local csms = require "csms"
local core = require "csms.core"

if arg[1] == "--diff" then
  local a, b, n, top = arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5] or 12)
  local function totals(file)
    local f = assert(io.open(file))
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("\nsummary:%s*(%d+)") or s:match("\ntotals:%s*(%d+)"))
  end
  local function self_costs(file)
    local p = io.popen("callgrind_annotate --auto=no --threshold=100 " .. file .. " 2>/dev/null")
    local t = {}
    for line in p:lines() do
      local cost, fn = line:match("^%s*([%d,]+)%s+%(%s*[%d.]+%%%)%s+(.-)%s*$")
      if cost and fn ~= "PROGRAM TOTALS" then
        -- "file:function [object]": keep the function and the object's base name
        local name, obj = fn:match("^.-:([^:%[]+)%s*%[(.-)%]$")
        if not name then name, obj = fn:match("^.-:([^:%[]+)$"), "" end
        local key = (name or fn) .. (obj ~= "" and (" (" .. obj:match("[^/]+$") .. ")") or "")
        t[key] = (t[key] or 0) + tonumber((cost:gsub(",", "")))
      end
    end
    p:close()
    return t
  end
  local base_a, base_b = arg[6], arg[7]
  local per = (totals(b) - totals(a)) / n
  if base_a then per = per - (totals(base_b) - totals(base_a)) / n end
  print(("per_call=%.0f"):format(per))
  local marginal = {}
  for k, v in pairs(self_costs(b)) do marginal[k] = v / n end
  for k, v in pairs(self_costs(a)) do marginal[k] = (marginal[k] or 0) - v / n end
  if base_a then
    for k, v in pairs(self_costs(base_b)) do marginal[k] = (marginal[k] or 0) - v / n end
    for k, v in pairs(self_costs(base_a)) do marginal[k] = (marginal[k] or 0) + v / n end
  end
  local rows = {}
  for k, v in pairs(marginal) do rows[#rows + 1] = { k, v } end
  table.sort(rows, function(x, y) return x[2] > y[2] end)
  for i = 1, math.min(top, #rows) do print(("fn %.0f %s"):format(rows[i][2], rows[i][1])) end
  os.exit(0)
end

local kind, n = arg[1], tonumber(arg[2])
if not (kind and n) then
  io.stderr:write("usage: lua5.4 bench/callgrind.lua sign|kept|backup N\n")
  os.exit(2)
end

local AK, SK = "EMULATORAK0000000001", "emulator-sk-0123456789abcdefghijklmnopqrstuv"
local PROJECT = "7a3f0c1e9b2d4c6a8e0f1a2b3c4d5e6f"
local URL = "https://kms.cn-north-4.myhuaweicloud.com/v1/" .. PROJECT .. "/secrets/bench-secret/backup"
local HEADERS = {
  ["Content-Type"] = "application/json;charset=UTF-8",
  ["User-Agent"] = csms.USER_AGENT,
  Host = "kms.cn-north-4.myhuaweicloud.com",
  ["X-Project-Id"] = PROJECT,
}

local call
if kind == "sign" then
  local req, creds = { method = "POST", url = URL, headers = HEADERS }, { ak = AK, sk = SK }
  call = function() assert(csms.sign(req, creds).Authorization) end
elseif kind == "kept" then
  local signer = assert(core.signer.new(AK, SK))
  call = function() assert(core.signer.sign(signer, "POST", URL, HEADERS, nil, os.time()).Authorization) end
elseif kind == "backup" then
  local env = os.getenv
  local client = assert(csms.new { endpoint = env("BENCH_ENDPOINT"), ak = env("BENCH_AK"),
    sk = env("BENCH_SK"), project_id = env("BENCH_PROJECT_ID"), retries = 0, timeout = 120 })
  local name = env("BENCH_SECRET")
  call = function()
    local res, err = client:backup(name)
    if not res then error("backup failed: " .. tostring(err)) end
  end
else
  io.stderr:write("bench/callgrind.lua: unknown kind " .. kind .. "\n")
  os.exit(2)
end

call()
for _ = 1, n do call() end
