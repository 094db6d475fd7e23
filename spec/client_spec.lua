-- The client end to end against the bundled emulator (real nginx, real HTTP, real signatures
-- checked by an independent verifier): backup, restore, list, and every error path.
local csms = require "csms"
local emulator = require "spec.support.emulator"

local e

local function new_client(extra)
  local opts = { ak = e.ak, sk = e.sk, project_id = e.project_id, endpoint = e.endpoint,
                 backoff_base = 0.01, timeout = 5 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

local function by_name(name)
  for _, s in ipairs(e:dump()) do
    if s.name == name then return s end
  end
end

setup(function() e = emulator.start {} end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("client:backup and client:restore", function()
  it("round-trip a secret with all its versions", function()
    e:create_secret("db-password", { "v1-secret", "v2-secret", "v3-secret" }, { description = "prod db" })
    local before = by_name("db-password")
    local c = new_client()
    local res, err = c:backup("db-password")
    assert.is_nil(err)
    assert.is_true(csms.validate_blob(res.secret_blob))
    assert.matches("^%)CloudSecretManagementBackupV1%.", res.secret_blob)
    assert.falsy(res.secret_blob:find("v1-secret", 1, true), "the blob must not be readable")
    assert.matches("^%x+$", res.request_id)

    assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/db-password"))
    assert.is_nil(by_name("db-password"))

    local restored = assert(c:restore(res.secret_blob))
    assert.equal("db-password", restored.secret.name)
    assert.equal("prod db", restored.secret.description)
    assert.equal(before.id, restored.secret.id)
    assert.equal("ENABLED", restored.secret.state)
    assert.is_nil(restored.secret.secret_string, "restore answers metadata, never the value")
    assert.same(before, by_name("db-password"))
    c:close()
  end)

  it("report an existing secret as a conflict, distinctly after a retried restore", function()
    e:create_secret("api-key", { "k1" })
    local c = new_client()
    local blob = assert(c:backup("api-key")).secret_blob
    local res, err = c:restore(blob)
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(400, err.status)
    assert.is_true(err.conflict)
    assert.matches("already exist", err.error_msg)

    assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/api-key"))
    e:fail_next { { kind = "drop_after_apply", op = "restore" } }
    res, err = c:restore(blob)
    assert.is_nil(res)
    assert.equal("conflict_after_retry", err.kind)
    assert.equal(2, err.attempts)
    assert.truthy(by_name("api-key"), "the first attempt did restore it")
  end)

  it("refuse a tampered blob with the service's error", function()
    e:create_secret("s1", { "x" })
    local c = new_client()
    local blob = assert(c:backup("s1")).secret_blob
    assert(c:request("DELETE", "/v1/" .. e.project_id .. "/secrets/s1"))
    local i = #blob - 10
    local flipped = blob:sub(1, i - 1) .. (blob:sub(i, i) == "A" and "B" or "A") .. blob:sub(i + 1)
    local res, err = c:restore(flipped)
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(400, err.status)
    assert.is_nil(err.conflict)
    assert.is_nil(by_name("s1"))
    assert.falsy(tostring(err):find(blob:sub(40, 80), 1, true), "the blob must not appear in the error")
  end)

  it("answer 404 for a missing secret without retrying", function()
    local c = new_client()
    local res, err = c:backup("no-such-secret")
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("CSMS.0005", err.error_code)
    assert.equal(1, err.attempts)
    assert.equal(1, e:stats().requests.backup)
    assert.matches("^csms backup: HTTP 404 CSMS%.0005: .+ %(request_id %x+%)$", tostring(err))
  end)

  it("work with the one-shot functions and with an IAM token", function()
    e:create_secret("one", { "1" })
    local opts = { ak = e.ak, sk = e.sk, project_id = e.project_id, endpoint = e.endpoint }
    local res = assert(csms.backup("one", opts))
    local token_client = assert(csms.new { auth_token = e.token, project_id = e.project_id, endpoint = e.endpoint })
    assert(token_client:request("DELETE", "/v1/" .. e.project_id .. "/secrets/one"))
    assert.equal("one", assert(csms.restore(res.secret_blob, opts)).secret.name)
    local bad = assert(csms.new { auth_token = "wrong-token", project_id = e.project_id, endpoint = e.endpoint })
    local _, err = bad:backup("one")
    assert.equal(401, err.status)
    assert.falsy(tostring(err):find("wrong-token", 1, true))
  end)
end)

describe("authentication failures", function()
  it("are 401 APIG.0301, never retried, and never show the SK", function()
    e:create_secret("s", { "x" })
    local c = new_client { sk = "not-the-right-secret-key" }
    local res, err = c:backup("s")
    assert.is_nil(res)
    assert.equal(401, err.status)
    assert.equal("APIG.0301", err.error_code)
    assert.equal(1, err.attempts)
    assert.equal(1, e:stats().requests.backup)
    assert.falsy(tostring(err):find("not-the-right", 1, true))
    c = new_client { ak = "UNKNOWNAK00000000000" }
    res, err = c:backup("s")
    assert.is_nil(res)
    assert.equal(401, err.status)
  end)

  it("sign temporary credentials with X-Security-Token and keep the token out of errors", function()
    e:create_secret("s", { "x" })
    local c = new_client { security_token = "TEMP-TOKEN-0123456789" }
    assert(c:backup("s"))
    c = new_client { security_token = "TEMP-TOKEN-0123456789", sk = "wrong-sk-wrong-sk" }
    local _, err = c:backup("s")
    assert.equal(401, err.status)
    for _, v in pairs(err) do
      assert.falsy(tostring(v):find("TEMP-TOKEN-0123456789", 1, true))
      assert.falsy(tostring(v):find("wrong-sk-wrong-sk", 1, true))
    end
  end)

  it("refuse a project id that is not the caller's", function()
    e:create_secret("s", { "x" })
    local c = new_client { project_id = "ffffffffffffffffffffffffffffffff" }
    local res, err = c:backup("s")
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.is_true(err.status == 401 or err.status == 403)
  end)
end)

describe("client:list_secrets", function()
  it("pages through every secret with limit and marker", function()
    for i = 1, 23 do e:create_secret(("secret-%02d"):format(i), { "v" }) end
    local c = new_client()
    local names, marker, pages = {}, nil, 0
    repeat
      local res = assert(c:list_secrets { limit = 10, marker = marker })
      pages = pages + 1
      for _, s in ipairs(res.secrets) do names[#names + 1] = s.name end
      marker = res.page_info and res.page_info.next_marker
    until not marker
    assert.equal(3, pages)
    assert.equal(23, #names)
    assert.equal("secret-01", names[1])
    assert.equal("secret-23", names[23])
  end)
end)

describe("transient failures", function()
  for _, kind in ipairs { "500", "500nested", "502html", "503", "504", "429", "drop" } do
    it("retries after " .. kind .. " and succeeds", function()
      e:create_secret("s", { "x" })
      e:fail_next { { kind = kind, op = "backup" } }
      local res, err = new_client():backup("s")
      assert.is_nil(err)
      assert.truthy(res.secret_blob)
      assert.equal(2, e:stats().requests.backup)
    end)
  end

  it("reports each fault readably when retries are off", function()
    e:create_secret("s", { "x" })
    local c = new_client { retries = 0 }
    local expect = {
      ["500"] = { 500, "^csms backup: HTTP 500 " },
      ["500nested"] = { 500, "^csms backup: HTTP 500 CSMS%.0500: " },
      ["502html"] = { 502, "^csms backup: HTTP 502: 502 Bad Gateway %(request_id %x+%)$" },
      ["504"] = { 504, "^csms backup: HTTP 504 APIG%.0203" },
    } -- a 429 is not a failure: it waits its turn (spec/throttle_spec.lua)
    for kind, want in pairs(expect) do
      e:fail_next { { kind = kind, op = "backup" } }
      local res, err = c:backup("s")
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(want[1], err.status)
      assert.matches(want[2], tostring(err))
      assert.is_true(err.retryable)
    end
    -- On a kept-alive connection libcurl re-sends an idempotent request once by itself when the
    -- connection dies unanswered, so the drop shows only on a new connection.
    e:fail_next { { kind = "drop", op = "backup" } }
    local res, err = new_client { retries = 0 }:backup("s")
    assert.is_nil(res)
    assert.equal("transport", err.kind)
    assert.matches("^csms backup: transport: ", tostring(err))
  end)

  it("times out with kind timeout", function()
    e:create_secret("s", { "x" })
    e:config { latency_ms = 1500 }
    -- The answer would come after 1.5 s: kind timeout on both attempts is the proof that the
    -- 0.3 s timeout ended each one (no wall-clock bound, which a loaded machine could break).
    local res, err = new_client { timeout = 0.3, retries = 1 }:backup("s")
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.equal(2, err.attempts)
  end)

  it("fails fast with kind transport when nothing listens", function()
    local c = new_client { endpoint = "http://127.0.0.1:" .. emulator.closed_port(), retries = 2 }
    local res, err = c:backup("s")
    assert.is_nil(res)
    assert.equal("transport", err.kind)
    assert.equal(3, err.attempts)
  end)

  it("refuses an answer larger than max_response", function()
    e:create_secret("s", { ("x"):rep(4000) })
    local res, err = new_client { max_response = 256 }:backup("s")
    assert.is_nil(res)
    assert.equal("response_too_large", err.kind)
    assert.equal(1, err.attempts)
  end)
end)

describe("connections", function()
  it("are kept alive across calls on one client", function()
    e:create_secret("s", { "x" })
    local c = new_client()
    local real = c.transport.request
    local opened = 0
    c.transport.request = function(self, req)
      local res, terr = real(self, req)
      opened = opened + (res and res.connects or 0)
      return res, terr
    end
    for _ = 1, 20 do assert(c:backup("s")) end
    assert.equal(1, opened)
  end)
end)

describe("clock skew", function()
  it("is corrected from an expired-signature 401 and the call retried once", function()
    e:create_secret("s", { "x" })
    e:config { clock_skew_s = 3600 } -- the emulator's clock runs an hour ahead of ours
    local c = new_client { retries = 0 }
    local res, err = c:backup("s")
    assert.is_nil(err)
    assert.truthy(res.secret_blob)
    assert.is_true(math.abs(c.clock_skew - 3600) <= 2, "clock_skew " .. c.clock_skew)
    assert.equal(1, e:stats().auth_failures)
    assert(c:backup("s")) -- later calls sign with the corrected clock at once
    assert.equal(1, e:stats().auth_failures)
  end)

  it("is corrected from the Date header when it is more than 5 minutes off", function()
    e:create_secret("s", { "x" })
    e:config { clock_skew_s = -600 } -- within the gateway's 15 minutes: accepted, but noticed
    local c = new_client()
    assert(c:backup("s"))
    assert.is_true(math.abs(c.clock_skew + 600) <= 2, "clock_skew " .. c.clock_skew)
    assert.equal(0, e:stats().auth_failures)
    e:config { clock_skew_s = 60 } -- a minute is left alone
    c = new_client()
    assert(c:backup("s"))
    assert.equal(0, c.clock_skew)
  end)

  it("does not turn other 401s into retries", function()
    e:create_secret("s", { "x" })
    e:config { clock_skew_s = 3600 }
    local _, err = new_client { sk = "wrong-secret-key-value" }:backup("s")
    assert.equal(401, err.status)
    assert.equal(2, err.attempts) -- the expired one, corrected, then the wrong SK: no third
    assert.equal(2, e:stats().auth_failures)
  end)
end)

