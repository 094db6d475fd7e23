-- Signing throughput of csms (not a test: nothing here passes or fails).
--
--   lua5.4 bench/sign.lua [--iters N] [--runs R]      (from the repository root; luajit works too)
--   lua5.4 bench/sign.lua --spec                      the requests, as JSON (for bench/node/sign.js)
--   lua5.4 bench/sign.lua --check DATE                each request's Authorization at X-Sdk-Date DATE
--   lua5.4 bench/sign.lua --sizes                     "<request> <canonical request bytes> <body bytes>"
--
-- Two requests, with the headers a client sends (csms.identity.prepare):
--   upload:   POST /v1/{project}/secrets/restore {"secret_blob":"<1,306-character blob>"}
--             (UploadSecretBlob; the blob has the shape and size of an emulator backup)
--   download: POST /v1/{project}/secrets/{name}/backup, empty body (DownloadSecretBlob)
-- Four ways of signing them:
--   sign      csms.sign(req, creds) with the same creds table every call: the HMAC key schedule
--             is made once for that table and kept while it lives
--   fresh     csms.sign(req, { ak = AK, sk = SK }): a new creds table every call, so a key
--             schedule every call (the worst case)
--   kept      core.signer.sign(signer, method, url, headers, body, now) with a kept core.signer:
--             what a client does for every request (client:backup, csms.batch)
--   prepare   csms.identity.prepare(client, method, path, body): what a client does per attempt
--             (its provider's keys, the kept signer, the header table)
--             and URL, i.e. everything a client does before handing a request to libcurl
-- Each is warmed up (one discarded run), then timed over R runs of N signatures; prints one line
-- per pair: "sign <way> <request> <median signatures/s> <canonical request bytes> <body bytes>".
local common = dofile("bench/common.lua")

local csms = require "csms"
local core = require "csms.core"

local AK, SK = "EMULATORAK0000000001", "emulator-sk-0123456789abcdefghijklmnopqrstuv"
local PROJECT = "7a3f0c1e9b2d4c6a8e0f1a2b3c4d5e6f"
local ENDPOINT = "https://kms.cn-north-4.myhuaweicloud.com"
local HOST = ENDPOINT:match("^https://(.*)$")

-- A blob of the documented shape and of an emulator backup's size: prefix, domain, then a
-- compact JWE (5 base64url parts).
local function blob()
  local header = "eyJhbGciOiJBMjU2R0NNS1ciLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiZW11bGF0b3ItbWFzdGVyLWtleSJ9"
  local function b64(n, seed)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    local t, x = {}, seed
    for i = 1, n do
      x = (x * 1103515245 + 12345) % 2147483648
      t[i] = alphabet:sub(x % 64 + 1, x % 64 + 1)
    end
    return table.concat(t)
  end
  local s = ")CloudSecretManagementBackupV1.huaweicloud.com" .. header .. "." .. b64(54, 1) .. "."
    .. b64(16, 2) .. "." .. b64(1085, 3) .. "." .. b64(22, 4)
  return s
end

local function headers()
  return {
    ["Content-Type"] = "application/json;charset=UTF-8",
    ["User-Agent"] = csms.USER_AGENT,
    Host = HOST,
    ["X-Project-Id"] = PROJECT,
  }
end

local REQUESTS = {
  { name = "upload", method = "POST", path = "/v1/" .. PROJECT .. "/secrets/restore",
    body = '{"secret_blob":"' .. blob() .. '"}' },
  { name = "download", method = "POST", path = "/v1/" .. PROJECT .. "/secrets/bench-secret/backup" },
}
for _, r in ipairs(REQUESTS) do r.url = ENDPOINT .. r.path end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ({ ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n" })[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- ---------------------------------------------------------------- arguments

local iters, runs, mode, date = 20000, 5, "bench", nil
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--iters" then iters = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--runs" then runs = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--spec" then mode = "spec"
    elseif a == "--sizes" then mode = "sizes"
    elseif a == "--check" then mode, date = "check", arg[i + 1]; i = i + 1
    else
      io.stderr:write("usage: lua5.4 bench/sign.lua [--iters N] [--runs R] | --spec | --sizes | --check DATE\n")
      os.exit(2)
    end
    i = i + 1
  end
end

if mode == "spec" then
  local out = {}
  for _, r in ipairs(REQUESTS) do
    local h = {}
    for k, v in pairs(headers()) do h[#h + 1] = json_string(k) .. ":" .. json_string(v) end
    table.sort(h)
    out[#out + 1] = ('{"name":%s,"method":%s,"url":%s,"headers":{%s},"body":%s}'):format(
      json_string(r.name), json_string(r.method), json_string(r.url), table.concat(h, ","),
      r.body and json_string(r.body) or "null")
  end
  io.write('{"ak":', json_string(AK), ',"sk":', json_string(SK), ',"requests":[',
    table.concat(out, ","), "]}\n")
  os.exit(0)
end

if mode == "check" then
  for _, r in ipairs(REQUESTS) do
    local h = headers()
    h["X-Sdk-Date"] = date
    local signed = assert(csms.sign({ method = r.method, url = r.url, headers = h, body = r.body },
      { ak = AK, sk = SK }))
    print(r.name .. " " .. signed.Authorization)
  end
  os.exit(0)
end

-- The canonical request at a fixed X-Sdk-Date (as long as any).
local function canonical_of(r)
  local h = headers()
  h["X-Sdk-Date"] = "20261123T120000Z"
  return assert(csms.canonical_request({ method = r.method, url = r.url, headers = h, body = r.body }))
end

if mode == "sizes" then
  for _, r in ipairs(REQUESTS) do print(r.name, #canonical_of(r), #(r.body or "")) end
  os.exit(0)
end

-- ---------------------------------------------------------------- timing


-- fn(n) signs n times; returns the median signatures/s of `runs` timed runs after a warm-up.
local function measure(fn)
  fn(iters)
  local rates = {}
  for r = 1, runs do
    collectgarbage()
    local t0 = core.time.monotonic()
    fn(iters)
    rates[r] = iters / (core.time.monotonic() - t0)
  end
  return common.median(rates)
end

local creds = { ak = AK, sk = SK }
local signer = assert(core.signer.new(AK, SK))
local client = assert(csms.new { endpoint = ENDPOINT, ak = AK, sk = SK, project_id = PROJECT,
  transport = function() error("bench/sign.lua sends nothing") end })

for _, r in ipairs(REQUESTS) do
  local req = { method = r.method, url = r.url, headers = headers(), body = r.body }
  local canonical = canonical_of(r)
  local method, url, hdrs, body, path = r.method, r.url, req.headers, r.body, r.path
  local ways = {
    { "sign", function(n)
      local sign = csms.sign
      for _ = 1, n do
        if not sign(req, creds).Authorization then error("no signature") end
      end
    end },
    { "fresh", function(n)
      local sign = csms.sign
      for _ = 1, n do
        if not sign(req, { ak = AK, sk = SK }).Authorization then error("no signature") end
      end
    end },
    { "kept", function(n)
      local sign, time = core.signer.sign, os.time
      for _ = 1, n do
        if not sign(signer, method, url, hdrs, body, time()).Authorization then error("no signature") end
      end
    end },
    { "prepare", function(n)
      local prepare = require("csms.identity").prepare
      for _ = 1, n do
        if not prepare(client, method, path, body).headers.Authorization then error("no signature") end
      end
    end },
  }
  for _, w in ipairs(ways) do
    io.write(("sign %s %s %.1f %d %d\n"):format(w[1], r.name, measure(w[2]), #canonical, #(body or "")))
    io.flush()
  end
end
core.signer.wipe(signer)
client:close()
