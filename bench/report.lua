-- Formats bench/run's raw lines as one markdown report (used by bench/run only).
--
--   lua5.4 bench/report.lua RAW BATCH_MD COMMAND
local raw_path, batch_path, command, throttle_path, sim_path = arg[1], arg[2], arg[3] or "bench/run", arg[4], arg[5]

local machine, sign, rt, cg, checks, elapsed = {}, {}, {}, {}, {}, nil
for line in io.lines(raw_path) do
  local w = {}
  for x in line:gmatch("%S+") do w[#w + 1] = x end
  if w[1] == "machine" then
    machine[w[2]] = line:match("^machine %S+ (.*)$")
  elseif w[1] == "sign" then
    -- sign <impl> <way> <request> <rate> [canonical bytes] [body bytes]; one line per round
    local k = w[2] .. "/" .. w[3] .. "/" .. w[4]
    sign[k] = sign[k] or { rates = {} }
    local x = sign[k]
    x.rates[#x.rates + 1] = tonumber(w[5])
    x.creq, x.body = tonumber(w[6]), tonumber(w[7])
  elseif w[1] == "roundtrip" then
    -- roundtrip <part> <rate> <new connections> <emulator us> <requests> <client us>; per round
    rt[w[2]] = rt[w[2]] or { rate = {}, conns = {}, emu_us = {}, client_us = {} }
    local x = rt[w[2]]
    x.rate[#x.rate + 1] = tonumber(w[3])
    x.conns[#x.conns + 1] = tonumber(w[4])
    x.emu_us[#x.emu_us + 1] = tonumber(w[5])
    x.client_us[#x.client_us + 1] = tonumber(w[7])
  elseif w[1] == "cg" then
    local c = cg[w[2]] or { n = tonumber(w[3]), fns = {} }
    cg[w[2]] = c
    if w[4]:match("^per_call=") then
      c.per_call = tonumber(w[4]:match("=(%d+)"))
    elseif w[4] == "fn" then
      c.fns[#c.fns + 1] = { cost = tonumber(w[5]), name = line:match("^cg %S+ %S+ fn %S+ (.*)$") }
    end
  elseif w[1] == "check" then
    checks[w[2]] = w[3]
  elseif w[1] == "skipped" then
    checks["skipped_" .. w[2]] = line:match("^skipped %S+ (.*)$")
  elseif w[1] == "elapsed" then
    elapsed = tonumber(w[3])
  end
end

local median = dofile("bench/common.lua").median
local rounds = 0
for _, x in pairs(sign) do
  x.n = #x.rates
  rounds = math.max(rounds, x.n)
  x.rate = median(x.rates)
end
for _, x in pairs(rt) do
  x.n = #x.rate
  for _, f in ipairs { "rate", "conns", "emu_us", "client_us" } do x[f] = median(x[f]) end
end

local out = {}
local function emit(s) out[#out + 1] = s or "" end
local function num(x)
  if not x then return "-" end
  local s = ("%.0f"):format(x)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end
local function ratio(a, b)
  if not (a and b) or b == 0 then return nil end
  return a / b
end
local function rx(r, target)
  if not r then return "-" end
  local s = r >= 10 and ("%.1fx"):format(r) or ("%.2fx"):format(r)
  if target then s = s .. (r >= target and " (met)" or " (missed)") end
  return s
end

emit("# lua-csms benchmarks")
emit()
emit(("Command: `%s` (%s mode), commit %s, %s; %s s in all.")
  :format(command, machine.mode or "?", machine.commit or "?", machine.date or "?", tostring(elapsed or "?")))
emit()
emit("| machine | |")
emit("|---|---|")
for _, k in ipairs { "nproc", "cpu", "memory", "kernel", "lua5.4", "luajit", "node", "openssl",
                     "libcurl", "curl", "nginx", "valgrind", "load" } do
  emit(("| %s | %s |"):format(k, machine[k] or "?"))
end
emit()
emit("Every ratio compares numbers measured in this same run. The emulator is the bundled one "
  .. "(nginx + LuaJIT, one worker) on loopback, sharing the CPUs with the client.")
emit()

-- ---------------------------------------------------------------- summary
local REQS = { "upload", "download" }
local WAYS = { { "sign", "`csms.sign(req, creds)`, the same creds table (key schedule cached)" },
               { "kept", "`core.signer.sign` with a kept `core.signer` (client path)" },
               { "prepare", "a client's prepare (`csms.identity.prepare`: keys, signer, headers)" },
               { "fresh", "`csms.sign(req, creds)`, a new creds table per call (key schedule per call)" } }
local function s(impl, way, req) return sign[impl .. "/" .. way .. "/" .. req] end
local function rate(impl, way, req) local x = s(impl, way, req) return x and x.rate end
local function node_rate(req) return rate("node", "node", req) end
local function floor_rate(req) return rate("floor", "floor", req) end

local function range(impls, way, against, target, reqs)
  local lo, hi
  for _, impl in ipairs(impls) do
    for _, req in ipairs(reqs or REQS) do
      local r = ratio(rate(impl, way, req), against(req))
      if r then lo, hi = math.min(lo or r, r), math.max(hi or r, r) end
    end
  end
  if not lo then return "-", "-" end
  if not target then return ("%s to %s"):format(rx(lo), rx(hi)), "no target" end
  local met = lo >= target and "met" or (hi >= target and "partly (not every row)" or "missed")
  return ("%s to %s"):format(rx(lo), rx(hi)), met
end

emit("## Targets")
emit()
emit("| target | measured (Lua 5.4 and LuaJIT) | |")
emit("|---|---|---|")
-- The targets as restated by issue 12: 10x the official signer on the download request; the
-- upload request reported without one (its Lua call costs about as much as hashing its body);
-- the OpenSSL floor a regression guard at 0.4x on both.
for _, w in ipairs { WAYS[1], WAYS[2] } do
  local m, met = range({ "lua54", "luajit" }, w[1], node_rate, 10, { "download" })
  emit(("| signing, %s, download: at least 10x the official Node.js signer | %s | %s |"):format(w[2], m, met))
  m, met = range({ "lua54", "luajit" }, w[1], node_rate, nil, { "upload" })
  emit(("| signing, %s, upload: against the official Node.js signer (no target) | %s | %s |"):format(w[2], m, met))
end
for _, w in ipairs { WAYS[1], WAYS[2] } do
  local m, met = range({ "lua54", "luajit" }, w[1], floor_rate, 0.4)
  emit(("| signing, %s: at least 0.4x the OpenSSL floor (regression guard, both requests) | %s | %s |")
    :format(w[2], m, met))
end
do
  local node = rt.node and rt.node.rate
  local parts = {}
  local lo
  for _, k in ipairs { "ours", "ours-luajit" } do
    local r = ratio(rt[k] and rt[k].rate, node)
    if r then
      parts[#parts + 1] = ("%s %s"):format(k == "ours" and "Lua 5.4" or "LuaJIT", rx(r))
      lo = math.min(lo or r, r)
    end
  end
  local cpu = {}
  for _, k in ipairs { "ours", "ours-luajit" } do
    local r = ratio(rt.node and rt.node.client_us, rt[k] and rt[k].client_us)
    if r then cpu[#cpu + 1] = ("%s %s"):format(k == "ours" and "Lua 5.4" or "LuaJIT", rx(r)) end
  end
  emit(("| round trips: `client:backup` at least 3x the official SDK's HcClient | requests/s: %s "
    .. "(client CPU per request, official SDK / ours: %s) | %s |")
    :format(table.concat(parts, ", "), table.concat(cpu, ", "), lo and (lo >= 3 and "met" or "missed") or "-"))
end
emit()
-- Whether 10x the official signer is possible at all: a signature must at least hash.
for _, req in ipairs { "download" } do
  local need, floor = node_rate(req) and 10 * node_rate(req), floor_rate(req)
  if need and floor and need > 0.4 * floor then
    emit(("For the %s request, 10x the official signer is %s signatures/s, %s the floor: %s"):format(
      req, num(need), rx(need / floor), need > floor
        and "faster than hashing alone allows, so no correct signer can meet it on this machine."
        or "above the 0.4x-floor guard, so meeting it needs more than that guard asks."))
    emit()
  end
end
emit(("Same requests, same signature: %s (both signers, given the same X-Sdk-Date, produce the "
  .. "same Authorization for both requests)."):format(checks.same_signature or "not checked"))
emit()

-- ---------------------------------------------------------------- signing
emit(("## Signing (signatures/s, median of %d rounds; in each round every signer is timed once after "
  .. "its own warm-up run)"):format(rounds))
emit()
local up, down = s("lua54", "kept", "upload"), s("lua54", "kept", "download")
emit(("- **upload**: UploadSecretBlob, `POST /v1/{project}/secrets/restore`, body "
  .. "`{\"secret_blob\":\"...\"}` of %s bytes, canonical request %s bytes;")
  :format(num(up and up.body), num(up and up.creq)))
emit(("- **download**: DownloadSecretBlob, `POST /v1/{project}/secrets/{name}/backup`, empty body, "
  .. "canonical request %s bytes."):format(num(down and down.creq)))
emit("- Headers as a client sends them: Content-Type, User-Agent, Host, X-Project-Id; the "
  .. "signer adds X-Sdk-Date (now) and Authorization.")
emit()
emit("| request | how | Lua 5.4 | LuaJIT | Lua 5.4 / Node | LuaJIT / Node | Lua 5.4 / floor | LuaJIT / floor |")
emit("|---|---|---:|---:|---:|---:|---:|---:|")
for _, req in ipairs(REQS) do
  for _, w in ipairs(WAYS) do
    local a, b = rate("lua54", w[1], req), rate("luajit", w[1], req)
    emit(("| %s | %s | %s | %s | %s | %s | %s | %s |"):format(req, w[2], num(a), num(b),
      rx(ratio(a, node_rate(req))), rx(ratio(b, node_rate(req))),
      rx(ratio(a, floor_rate(req))), rx(ratio(b, floor_rate(req)))))
  end
  emit(("| %s | official Node.js signer (`AKSKSigner.sign`) | %s | | | | | |"):format(req, num(node_rate(req))))
  emit(("| %s | OpenSSL floor (`bench/floor.c`, cc -O2) | %s | | | | | |"):format(req, num(floor_rate(req))))
end
emit()

-- ---------------------------------------------------------------- round trips
emit(("## Round trips (DownloadSecretBlob against the emulator, latency 0, one request at a time; "
  .. "median of %d rounds, each a fresh emulator and a warm-up)"):format(rt.ours and rt.ours.n or 0))
emit()
emit("| client | requests/s | vs official SDK | new connections | client CPU per request | emulator CPU per request |")
emit("|---|---:|---:|---:|---:|---:|")
local function us(x) return (x and x >= 0) and ("%.0f µs"):format(x) or "-" end
local node = rt.node and rt.node.rate
local RT = {
  { "ours", "`client:backup` loop, Lua 5.4 (one kept-alive connection)" },
  { "ours-luajit", "`client:backup` loop, LuaJIT" },
  { "node", "official Node.js SDK core, `HcClient.sendRequest` (keep-alive agent)" },
  { "curl", "a `curl` process per request (new connection each; pre-signed with `csms.sign`)" },
  { "curl-startup", "`curl -V` processes, no request (the start-up cost alone)" },
}
for _, r in ipairs(RT) do
  local x = rt[r[1]]
  if x then
    emit(("| %s | %s | %s | %s | %s | %s |"):format(r[2], num(x.rate), rx(ratio(x.rate, node)),
      r[1] == "curl-startup" and "-" or num(x.conns), us(x.client_us), us(x.emu_us)))
  end
end
emit()
emit("New connections are counted over one timed run: the emulator's nginx closes a kept-alive "
  .. "connection after 1,000 requests (its `keepalive_requests` default), so a client opens one "
  .. "per 1,000. The curl rows are the median of their own runs, after the rounds. CPU per "
  .. "request: the client's own (/proc/self/stat, Node's process.cpuUsage) and "
  .. "the emulator's nginx worker's (/proc), over the timed runs (for Node the emulator's includes "
  .. "the 200 warm-up requests). One request at a time, a round trip costs about the client's "
  .. "CPU plus the emulator's plus two loopback wake-ups.")
emit()

-- ---------------------------------------------------------------- callgrind
emit("## Cost per call (instructions, valgrind --tool=callgrind, Lua 5.4)")
emit()
if checks.skipped_callgrind then emit("Skipped: " .. checks.skipped_callgrind .. ".") emit() end
emit("(I(2N) - I(N)) / N: start-up, loading and the first connection cancel out. Repeatable on a "
  .. "noisy machine to within a few hundred instructions (Lua 5.4 seeds its string hashes from the "
  .. "clock and addresses, which moves table collisions from run to run); valgrind's CPU model may "
  .. "not use the SHA extensions, so the hashing counts are those of OpenSSL's portable path.")
emit()
emit("| call | N | instructions per call | vs floor |")
emit("|---|---:|---:|---:|")
local CG = {
  { "sign", "`csms.sign(req, creds)` (same creds table), download request" },
  { "kept", "`core.signer.sign` with a kept signer, download request" },
  { "backup", "`client:backup(name)` against the emulator (client side only)" },
  { "floor", "OpenSSL floor, download request (`bench/floor.c`)" },
}
local floor_i = cg.floor and cg.floor.per_call
for _, c in ipairs(CG) do
  local x = cg[c[1]]
  if x then
    emit(("| %s | %s | %s | %s |"):format(c[2], num(x.n * (c[1] == "floor" and 2 or 1)),
      num(x.per_call), c[1] == "backup" and "" or rx(ratio(floor_i, x.per_call))))
  end
end
emit()
for _, c in ipairs { { "kept", "`core.signer.sign` with a kept signer" },
                     { "sign-extra", "`csms.sign` on top of a kept signer's cost" },
                     { "backup", "`client:backup`" } } do
  local x = cg[c[1]]
  if x and #x.fns > 0 then
    emit(("Where %s spends its instructions (%s per call; self cost per call, top %d; `0x...` in "
      .. "libcrypto is the SHA-256 block function, unnamed addresses in lua5.4 are the "
      .. "interpreter):"):format(c[2], num(x.per_call), #x.fns))
    emit()
    emit("| instructions | function (object) |")
    emit("|---:|---|")
    for _, f in ipairs(x.fns) do emit(("| %s | %s |"):format(num(f.cost), f.name)) end
    emit()
  end
end

-- ---------------------------------------------------------------- batch, throttle
local function embed(path, heading)
  local f = path and io.open(path)
  if not f then return end
  local text = f:read("*a")
  f:close()
  emit(heading)
  emit()
  for line in (text .. "\n"):gmatch("(.-)\n") do
    -- its own title is dropped (the section heading above says it); its sections go one level down
    if line:match("^## ") then
      emit("#" .. line)
    elseif not line:match("^# ") then
      emit(line)
    end
  end
end
embed(batch_path, "## Batch (`bench/batch.lua`, embedded as it printed)")
embed(throttle_path, "## Throttling gateway (`bench/throttle.lua`, embedded as it printed)")
embed(sim_path, "## Throttling gateway, the limiter alone (`bench/throttle_sim.lua`, embedded as it printed)")

io.write((table.concat(out, "\n"):gsub("\n\n\n+", "\n\n")), "\n")
