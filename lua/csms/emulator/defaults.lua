-- The emulator's defaults, in one place: read by the server (require) and by bin/csms-emulator,
-- which takes the listen address and the identity from the `  key = value,` lines of the first
-- table with sed (keep each of those on one line, two spaces in, as they are).
-- docs/emulator.md points here.
return {
  -- where it listens (launcher)
  host = "127.0.0.1",
  port = 8080,
  -- who it is: the one project, key pair and IAM token it accepts
  project_id = "7a3f0c1e9b2d4c6a8e0f1a2b3c4d5e6f",
  ak = "EMULATORAK0000000001",
  sk = "emulator-sk-0123456789abcdefghijklmnopqrstuv",
  token = "emulator-iam-token",
  -- the run-time config at start and after /__emulator/reset (docs/emulator.md "Admin API")
  config = {
    latency_ms = 0, latency_jitter_ms = 0,
    fault_rate = 0, faults = { "500", "502html", "503", "504", "429", "drop", "500nested" },
    fault_ops = nil, -- nil: every op
    retry_after = 1, throttle_rps = 0, throttle = {},
    lockout = true, clock_skew_s = 0, metadata_ttl_s = 3600,
  },
  -- how many API arrivals stats.arrivals keeps
  arrivals_kept = 20000,
}
