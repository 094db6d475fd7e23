-- Rate limiting inside a real nginx: csms.batch's light threads share one client's limiter, and
-- clients share the learned rate through a lua_shared_dict (counts from the emulator's stats).
local emulator = require "spec.support.emulator"
local test_nginx = require "spec.support.test_nginx"

local q, sh = emulator.shell_quote, emulator.run
local e, app, dir

local function get(path)
  local code, body = app:get(path, 60)
  assert(code == 200, tostring(body) .. "\n" .. app:log():sub(-2000))
  return body
end

setup(function()
  dir = emulator.tmpdir()
  assert(sh("mkdir -p " .. q(dir) .. "/sets && chmod 0777 " .. q(dir) .. " " .. q(dir) .. "/sets"))
  e = emulator.start {}
  app = test_nginx.start {
    settings = ("return { ak = %q, sk = %q, project_id = %q, endpoint = %q }")
      :format(e.ak, e.sk, e.project_id, e.endpoint),
    http = "lua_shared_dict csms_rate 1m;",
    server = [[
      location = /batch { content_by_lua_block { require("nginx_throttle_app").batch() } }
      location = /fresh { content_by_lua_block { require("nginx_throttle_app").fresh() } }
    ]],
  }
end)

teardown(function()
  if app then app:stop() end
  if e then e:stop() end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

describe("rate limiting inside nginx", function()
  it("light threads share the client's limiter: a throttled batch loses nothing, and the rate is shared", function()
    -- before any throttle, a new client has no rate, with or without the dict
    assert.equal("off", get("/fresh?dict=1"):match("rate=(%S+)"))
    for i = 1, 30 do e:create_secret(("n-%02d"):format(i), { "v" .. i }) end
    e:config { throttle_rps = 10, retry_after = 0, latency_ms = 10 }
    local out = get("/batch?dir=" .. dir .. "/sets/a")
    local ok, failed, throttled, rate = out:match("ok=(%d+) failed=(%d+) throttled=(%d+) rate=(%S+)")
    assert.equal("30", ok, out)
    assert.equal("0", failed)
    assert.is_true(tonumber(throttled) > 0)
    assert.equal(e:stats().throttled, tonumber(throttled), "one limiter saw every thread's 429s")
    assert.is_truthy(tonumber(rate), "the limiter turned on: " .. rate)
    -- a new client (another request) starts at the rate learned, through lua_shared_dict
    local shared = get("/fresh?dict=1"):match("rate=(%S+)")
    assert.is_truthy(tonumber(shared), shared)
    assert.equal("off", get("/fresh?dict=0"):match("rate=(%S+)"))
  end)

  it("holds every light thread back for a Retry-After and resends only the throttled item", function()
    e:reset()
    for i = 1, 12 do e:create_secret(("r-%02d"):format(i), { "v" .. i }) end
    e:config { throttle_rps = 0, retry_after = 1, latency_ms = 50 }
    e:fail_next { { kind = "429", op = "backup" } }
    local out = get("/batch?dir=" .. dir .. "/sets/b")
    assert.matches("^ok=12 failed=0 throttled=1 ", out)
    local st = e:stats()
    assert.equal(13, st.requests.backup)
    -- no light thread sent anything from 100 ms to 900 ms after the 429'd request arrived
    local backups = {}
    for _, a in ipairs(st.arrivals) do if a.op == "backup" then backups[#backups + 1] = a.t end end
    for _, t in ipairs(backups) do
      assert.is_false(t > backups[1] + 100 and t < backups[1] + 900, "arrived during the pause")
    end
    assert.is_true(backups[#backups] >= backups[1] + 900)
  end)
end)
