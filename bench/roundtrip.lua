-- Round trips against the bundled emulator (not a test: nothing here passes or fails).
--
--   lua5.4 bench/roundtrip.lua [--iters N] [--runs R] [--curl N] [--parts ours,node,curl]
--
-- DownloadSecretBlob of one secret, one request at a time, emulator latency 0, on loopback:
--   ours   client:backup(name) in a loop on one client (libcurl keeps the connection alive);
--          under the interpreter running this file (lua5.4 or luajit)
--   node   the official Node.js SDK core's HcClient doing the same calls (bench/node/roundtrip.js,
--          run with HOME set to a temporary directory: the SDK writes ~/.huaweicloud/application_id)
--   curl   a loop of curl processes, each a new process and a new connection; curl cannot sign,
--          so every request is signed beforehand with csms.sign (its own X-Sdk-Date) and curl
--          only sends it
-- ours and node: one discarded warm-up, then R runs of N requests, the median; curl: R runs of
-- N/10 (at least 50) requests. For each part it also reads the emulator's nginx worker CPU time
-- (/proc) over the part, to tell whether the emulator is what limits the rate.
-- It also reads the client's own CPU time over the timed runs (ours: /proc/self/stat; node:
-- process.cpuUsage()). curl-startup: the same number of bare `curl -V` processes, i.e. what
-- starting curl costs on this machine without any request.
-- Prints one line per part: "roundtrip <part> <median requests/s> <new connections> <emulator CPU
-- us per request> <requests in the emulator CPU window> <client CPU us per request, -1 unknown>".
local JIT = rawget(_G, "jit")
local common = dofile("bench/common.lua")

local csms = require "csms"
local core = require "csms.core"
local emulator = require "spec.support.emulator"

local iters, runs, curl_n, parts = 2000, 5, nil, { ours = true, node = true, curl = true }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--iters" then iters = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--runs" then runs = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--curl" then curl_n = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--parts" then
      parts = {}
      for p in arg[i + 1]:gmatch("[^,]+") do parts[p] = true end
      i = i + 1
    else
      io.stderr:write("usage: lua5.4 bench/roundtrip.lua [--iters N] [--runs R] [--curl N] "
        .. "[--parts ours,node,curl]\n")
      os.exit(2)
    end
    i = i + 1
  end
end
curl_n = curl_n or math.max(50, math.floor(iters / 10))

local shell_quote, read_cmd, median = emulator.shell_quote, common.read_cmd, common.median

local CLK_TCK = tonumber(read_cmd("getconf CLK_TCK 2>/dev/null"):match("%d+")) or 100

-- CPU seconds (user + system) of the emulator's nginx worker(s).
local function proc_cpu(pid)
  local sf = io.open("/proc/" .. pid .. "/stat")
  if not sf then return nil end
  local s = sf:read("*a")
  sf:close()
  local fields = {}
  for x in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  -- utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) "
  return (tonumber(fields[12]) + tonumber(fields[13])) / CLK_TCK
end

local function emulator_cpu(e)
  local f = io.open(e.prefix .. "/logs/nginx.pid")
  local master = f and f:read("*l")
  if f then f:close() end
  if not master then return nil end
  local total = 0
  for pid in read_cmd("pgrep -P " .. master .. " 2>/dev/null"):gmatch("%d+") do
    total = total + (proc_cpu(pid) or 0)
  end
  return total
end

local SECRET = "bench-secret"
local e = emulator.start {}
local ok, err = pcall(function()
  e:create_secret(SECRET, { "s3cr3t-value-0123456789" })
  local function cpu_line(name, rate, conns, cpu0, requests, client_us)
    local cpu1 = emulator_cpu(e)
    local us = (cpu0 and cpu1) and (cpu1 - cpu0) / requests * 1e6 or -1
    io.write(("roundtrip %s %.1f %d %.1f %d %.1f\n"):format(name, rate, conns, us, requests,
      client_us or -1))
    io.flush()
  end

  if parts.ours then
    local client = assert(csms.new { endpoint = e.endpoint, ak = e.ak, sk = e.sk,
      project_id = e.project_id, retries = 0 })
    local connects = 0
    local t = client.transport
    local request = t.request
    t.request = function(self, req)
      local res, terr = request(self, req)
      if res then connects = connects + (res.connects or 0) end
      return res, terr
    end
    local function run(n)
      for _ = 1, n do
        local res, berr = client:backup(SECRET)
        if not res then error("backup failed: " .. tostring(berr)) end
      end
    end
    run(math.min(iters, 200))
    connects = 0
    local cpu0, self0 = emulator_cpu(e), proc_cpu("self")
    local rates = {}
    for r = 1, runs do
      local t0 = core.time.monotonic()
      run(iters)
      rates[r] = iters / (core.time.monotonic() - t0)
    end
    local self_us = self0 and (proc_cpu("self") - self0) / (iters * runs) * 1e6
    cpu_line(JIT and "ours-luajit" or "ours", median(rates), connects, cpu0, iters * runs, self_us)
    client:close()
  end

  if parts.node then
    local home = read_cmd("mktemp -d"):gsub("%s+$", "")
    local cpu0 = emulator_cpu(e)
    local out = read_cmd(("cd %s && HOME=%s BENCH_ENDPOINT=%s BENCH_AK=%s BENCH_SK=%s "
      .. "BENCH_PROJECT_ID=%s BENCH_SECRET=%s node bench/node/roundtrip.js %d %d 2>&1"):format(
      shell_quote(emulator.root), shell_quote(home), shell_quote(e.endpoint), shell_quote(e.ak),
      shell_quote(e.sk), shell_quote(e.project_id), SECRET, iters, runs))
    os.execute("rm -rf " .. shell_quote(home))
    local rate, conns, node_us = out:match("roundtrip node ([%d.]+) (%d+) ([%d.]+)")
    if not rate then error("bench/node/roundtrip.js failed:\n" .. out) end
    cpu_line("node", tonumber(rate), tonumber(conns), cpu0, math.min(iters, 200) + iters * runs,
      tonumber(node_us))
  end

  if parts.curl then
    local creds = { ak = e.ak, sk = e.sk }
    local url = e.endpoint .. "/v1/" .. e.project_id .. "/secrets/" .. SECRET .. "/backup"
    local host = e.endpoint:match("^https?://([^/]+)")
    local function script(n)
      local lines = { "set -e" }
      for _ = 1, n do
        local signed = assert(csms.sign({ method = "POST", url = url, headers = {
          ["Content-Type"] = "application/json;charset=UTF-8", ["User-Agent"] = csms.USER_AGENT,
          Host = host, ["X-Project-Id"] = e.project_id } }, creds))
        local cmd = { "curl -sS -o /dev/null -w '%{http_code}\\n' -X POST" }
        local names = {}
        for k in pairs(signed) do names[#names + 1] = k end
        table.sort(names)
        for _, k in ipairs(names) do cmd[#cmd + 1] = "-H " .. shell_quote(k .. ": " .. signed[k]) end
        cmd[#cmd + 1] = shell_quote(url)
        lines[#lines + 1] = table.concat(cmd, " ")
      end
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(table.concat(lines, "\n"), "\n")
      f:close()
      return path
    end
    local function run(path, n)
      local outp = os.tmpname()
      local t0 = core.time.monotonic()
      local okx = os.execute("sh " .. shell_quote(path) .. " > " .. shell_quote(outp))
      local wall = core.time.monotonic() - t0
      local f = io.open(outp)
      local codes = f and f:read("*a") or ""
      if f then f:close() end
      os.remove(outp)
      local _, good = codes:gsub("200\n", "")
      if not (okx == true or okx == 0) or good ~= n then
        error(("curl loop: %d of %d answered 200:\n%s"):format(good, n, codes:sub(1, 500)))
      end
      return n / wall
    end
    local warm = script(10)
    run(warm, 10)
    os.remove(warm)
    local paths = {}
    for r = 1, runs do paths[r] = script(curl_n) end -- signed before any is timed
    local cpu0 = emulator_cpu(e)
    local rates = {}
    for r = 1, runs do
      rates[r] = run(paths[r], curl_n)
      os.remove(paths[r])
    end
    cpu_line("curl", median(rates), curl_n * runs, cpu0, curl_n * runs)

    -- What starting a curl process costs here, without a request.
    local lines = {}
    for _ = 1, curl_n do lines[#lines + 1] = "curl -V > /dev/null" end
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    rates = {}
    for r = 1, runs do
      local t0 = core.time.monotonic()
      os.execute("sh " .. shell_quote(path))
      rates[r] = curl_n / (core.time.monotonic() - t0)
    end
    os.remove(path)
    io.write(("roundtrip curl-startup %.1f 0 -1 0 -1\n"):format(median(rates)))
  end
end)
e:stop()
if not ok then
  io.stderr:write("bench/roundtrip.lua: ", tostring(err), "\n")
  os.exit(1)
end
