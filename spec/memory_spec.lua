-- Memory stays flat: thousands of clients made and dropped, thousands of failed requests
-- (a closed port, an emulator answering only faults), signing with throwaway credentials
-- tables. After each round a
-- full collection; the Lua heap and the process RSS after round 10 must be within a small
-- margin of round 2 (round 1 warms up caches: OpenSSL's provider tables, libcurl's DNS/TLS
-- state, the allocator's arenas).
-- Sized so that a real leak fails: 1,000 clients a round; leaking each client's signer
-- (~1 KB of OpenSSL HMAC state) would add ~8 MB over rounds 2..10, a curl multi handle ~40 MB,
-- a client table kept alive ~1 MB of Lua heap. Margins: 4 MB RSS, 256 KB Lua heap.
local csms = require "csms"
local emulator = require "spec.support.emulator"

local ROUNDS, CLIENTS = 10, 1000
local RSS_MARGIN_KB, HEAP_MARGIN_KB = 4096, 256

-- Under ASan (.ci/sanitize) freed memory sits in a quarantine before reuse; the script caps
-- it at 32 MB (quarantine_size_mb), which fills in round 1, so RSS stays a leak signal there.

local function rss_kb()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

local function full_gc()
  for _ = 1, 3 do collectgarbage("collect") end
end

local e
setup(function()
  e = emulator.start {}
end)
teardown(function() if e then e:stop() end end)

describe("memory", function()
  it("is flat over rounds of clients, failed requests and signing", function()
    local closed = emulator.closed_port()
    local dead = "http://127.0.0.1:" .. closed
    e:config { fault_rate = 1, faults = { "500", "502html", "503", "drop", "429" }, retry_after = 0 }
    local heap, rss = {}, {}
    for round = 1, ROUNDS do
      -- Clients against a closed port: every other one closed explicitly, the rest left to GC.
      for i = 1, CLIENTS do
        local c = assert(csms.new { ak = "AK-MEM", sk = "SK-MEM", project_id = "p",
          endpoint = dead, retries = 0, timeout = 2 })
        local res, err = c:backup("s" .. i)
        assert(res == nil and err.kind == "transport", tostring(err))
        if i % 2 == 0 then c:close() end
      end
      -- Failed requests against the emulator's faults, on long-lived and short-lived clients.
      for _ = 1, 10 do
        local c = assert(csms.new { ak = e.ak, sk = e.sk, project_id = e.project_id,
          endpoint = e.endpoint, retries = 0, timeout = 5, throttle_deadline = 0, adaptive = false })
        for _ = 1, 10 do
          local res, err = c:backup("nothing-here")
          assert(res == nil and (err.kind == "http" or err.kind == "transport" or err.kind == "throttled"),
            tostring(err))
        end
        c:close()
      end
      -- Signing with a new creds table per call (a signer made and cached per table: the weak
      -- cache must let each go with its table) and refused inputs.
      for i = 1, 500 do
        assert(csms.sign({ method = "POST", url = dead .. "/v1/p/secrets/s" .. i .. "/backup",
          headers = { ["X-Sdk-Date"] = "20261123T000000Z" }, body = "{}" },
          { ak = "AK-MEM", sk = "SK-MEM", security_token = "TOKEN-MEM" }))
        assert(csms.validate_blob(")CloudSecretManagementBackupV1.comeyJ.a.b") == nil)
      end
      full_gc()
      heap[round], rss[round] = collectgarbage("count"), rss_kb()
    end
    local report = ("Lua heap KB %.0f -> %.0f, RSS KB %d -> %d (rounds 2 -> %d)"):format(
      heap[2], heap[ROUNDS], rss[2], rss[ROUNDS], ROUNDS)
    assert.is_true(heap[ROUNDS] - heap[2] < HEAP_MARGIN_KB, report)
    assert.is_true(rss[ROUNDS] - rss[2] < RSS_MARGIN_KB, report)
    local stats = e:stats()
    assert.is_true(stats.faults >= ROUNDS * 100, "every emulator request was a fault")
  end)
end)
