-- What csms-backup prints (docs/cli.md, "Output" and "Exit status"): service text made safe,
-- item lines, the progress line on a terminal, summaries, --json documents, and the one-line
-- errors that end a run with their exit status.
local core = require "csms.core"
local json = require "csms.json"

local M = {}

M.PROG = "csms-backup"
M.EXIT_OK, M.EXIT_FAILED, M.EXIT_USAGE, M.EXIT_INTERRUPTED = 0, 1, 2, 130
local PROG = M.PROG

-- Errors also print their JSON document on stdout (the --json error rule): set from --json
-- anywhere on the line, before the line is parsed.
local json_errors = false
function M.json_errors(on) json_errors = on end

local current_reporter -- the one drawing, to clear its bar before an error or an interrupt

local function say(fh, ...)
  fh:write(...)
  fh:flush()
end
M.say = say

-- Text from the service or the disk made safe to print: valid UTF-8 is kept, except control
-- characters (C0, DEL, C1: escape sequences would reach the terminal, a newline would forge
-- a line); those and every byte of an invalid sequence become \xNN.
function M.clean(s)
  s = tostring(s)
  local out, i, n = {}, 1, #s
  local function hex(b) out[#out + 1] = ("\\x%02X"):format(b) end
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xC2 and c <= 0xDF and 2 or c >= 0xE0 and c <= 0xEF and 3
      or c >= 0xF0 and c <= 0xF4 and 4 or 0
    local ok = len > 0 and i + len - 1 <= n
    for k = 1, len - 1 do
      local b = ok and s:byte(i + k)
      if not (b and b >= 0x80 and b <= 0xBF) then ok = false end
    end
    if ok and len == 3 then -- no overlong forms, no surrogates
      local b = s:byte(i + 1)
      ok = not (c == 0xE0 and b < 0xA0) and not (c == 0xED and b > 0x9F)
    elseif ok and len == 4 then
      local b = s:byte(i + 1)
      ok = not (c == 0xF0 and b < 0x90) and not (c == 0xF4 and b > 0x8F)
    end
    if not ok then
      hex(c)
      i = i + 1
    elseif c < 0x20 or c == 0x7F or (c == 0xC2 and s:byte(i + 1) < 0xA0) then -- C0, DEL, C1
      if len == 1 then hex(c) else hex(c); hex(s:byte(i + 1)) end
      i = i + len
    else
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    end
  end
  return table.concat(out)
end
local clean = M.clean

-- lua-cjson reads NaN, Infinity and 1e400 from a service, numbers JSON cannot carry: null
-- (in place: a document is printed once, at the end).
local function finite(v, depth)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return json.null end
  elseif type(v) == "table" and depth < 1000 then
    for k, x in pairs(v) do v[k] = finite(x, depth + 1) end
  end
  return v
end

-- One --json document: valid UTF-8 whatever the service sent (every string, keys too, cleaned).
local function document(v)
  return json.encode(finite(v, 0), clean)
end

local function duration(s)
  if s < 60 then return ("%.1f s"):format(s) end
  return ("%d:%02d"):format(math.floor(s / 60), math.floor(s % 60))
end

-- One line: a gateway's 401 message holds the canonical request, newlines included.
local function one_line(text, sep)
  return clean((tostring(text):gsub("%s*\n%s*", sep)))
end

-- ---------------------------------------------------------------- errors that end the run

--- A usage or configuration problem: one line on stderr, exit 2. kind: --json's error_kind
--- (default "usage").
function M.die(msg, kind)
  local text = one_line(msg, " ")
  if json_errors then
    say(io.stdout, document { error = text, error_kind = kind or "usage", exit = M.EXIT_USAGE }, "\n")
  end
  say(io.stderr, PROG, ": ", text, "\n")
  os.exit(M.EXIT_USAGE)
end

function M.warn(msg)
  say(io.stderr, PROG, ": warning: ", msg, "\n")
end

-- The IAM calls the library makes for credentials and the project id (csms.credentials).
local IAM_OPS = { list_projects = true, id_token_exchange = true, security_token = true }

--- A run that could not start or list: exit 2 for what the user must fix (settings,
--- credentials, the directory), 1 for the service or the network failing.
function M.fail(err)
  if current_reporter then current_reporter.finish() end
  local kind = err.kind
  local hint = ""
  local code = M.EXIT_FAILED
  if kind == "config" or kind == "invalid_argument" or kind == "io" or kind == "corrupt" then
    code = M.EXIT_USAGE
    if kind == "config" and err.field == "project_id" then hint = " (or pass --project-id ID)" end
  elseif kind == "busy" then
    code, hint = M.EXIT_USAGE, " (runs into one directory must not overlap)"
  elseif kind == "tls" then
    code, hint = M.EXIT_USAGE, " (check --endpoint, or pass --cafile F for a private CA)"
  elseif kind == "http" and (err.status == 401 or err.status == 403) then
    code, hint = M.EXIT_USAGE, " (check the AK/SK or token and the project id)"
  elseif kind == "http" and IAM_OPS[err.op] and err.status < 500 and err.status ~= 429 then
    code, hint = M.EXIT_USAGE, " (IAM refused the credentials' settings: check HUAWEICLOUD_SDK_IDP_ID, the id "
      .. "token and the IAM endpoint)"
  elseif kind == "transport" or kind == "timeout" then
    hint = " (check --endpoint / --region and the network)"
  end
  local text = one_line(err, " | ")
  if json_errors then
    say(io.stdout, document { error = text, error_kind = kind, status = err.status,
      error_code = err.error_code, request_id = err.request_id, exit = code }, "\n")
  end
  say(io.stderr, PROG, ": ", text, hint, "\n")
  os.exit(code)
end

--- A Lua error out of a command (xpcall's message): Ctrl-C (the interpreter raises
--- "interrupted!") exits 130 with the bar cleared and the set left as a kill would leave it
--- (resumable); anything else is a bug, printed on one line, never as a traceback.
function M.crash(failure, command)
  if current_reporter then current_reporter.clear() end
  local msg = tostring(failure)
  if msg:find("interrupted!", 1, true) then
    local hint = command == "backup" and ("; what is done is kept: run the same command with "
      .. "--resume to carry on") or ""
    if json_errors then
      say(io.stdout, document { error = "interrupted", error_kind = "interrupted", exit = M.EXIT_INTERRUPTED }, "\n")
    end
    say(io.stderr, PROG, ": interrupted", hint, "\n")
    os.exit(M.EXIT_INTERRUPTED)
  end
  if json_errors then
    say(io.stdout, document { error = clean(msg), error_kind = "internal", exit = M.EXIT_FAILED }, "\n")
  end
  say(io.stderr, PROG, ": internal error: ", one_line(msg, " "), "\n")
  os.exit(M.EXIT_FAILED)
end

-- ---------------------------------------------------------------- items and progress

local function item_line(item)
  local name = clean(item.name)
  if item.ok then
    if item.dry_run then return "ok " .. name .. " (dry run: would restore)" end
    return "ok " .. name .. (item.bytes and (" (%d bytes)"):format(item.bytes) or "")
  elseif item.skipped then
    return "skipped " .. name .. " (" .. (item.reason or "skipped") .. ")"
  end
  return "failed " .. name .. ": " .. clean(tostring(item.err))
end

--- Follows a run item by item (csms.batch's on_progress): on a terminal (stderr), one line
--- redrawn with \r at most ten times a second; otherwise a line per item on stdout.
--- limiter: the client's (csms.ratelimit), whose send rate and 429 count the line shows.
function M.reporter(command, quiet, as_json, limiter)
  local t0 = core.time.monotonic()
  local tty = not quiet and core.cli.isatty(2)
  local last_draw, drawn = -1, false
  local ok, failed, skipped = 0, 0, 0
  local r = {}

  -- While a backup's listing goes on (more), the total is what it has selected so far: "16/200+".
  local function bar(done, total, more)
    local width = 24
    local fill = total > 0 and math.floor(width * done / total) or width
    local line = ("%s [%s%s] %d/%d%s  ok %d  failed %d  skipped %d  %s"):format(command,
      ("#"):rep(fill), ("."):rep(width - fill), done, total, more and "+" or "", ok, failed, skipped,
      duration(core.time.monotonic() - t0))
    if limiter then
      local st = limiter:status()
      line = line .. ("  %.0f req/s  throttled %d"):format(st.send_rate, st.throttled)
    end
    say(io.stderr, "\r", line, "\027[K")
    drawn = true
  end

  local function clear_bar()
    if drawn then say(io.stderr, "\r\027[K") end
  end

  function r.progress(done, total, item, more)
    if item.ok then ok = ok + 1 elseif item.skipped then skipped = skipped + 1 else failed = failed + 1 end
    local last = done == total and not more
    if as_json then
      if tty then
        local now = core.time.monotonic()
        if last or now - last_draw >= 0.1 then last_draw = now; bar(done, total, more) end
      end
      return
    end
    if not item.ok and not item.skipped then
      clear_bar()
      say(io.stdout, item_line(item), "\n")
      drawn = false
    elseif not tty and not quiet then
      say(io.stdout, item_line(item), "\n")
    end
    if tty then
      local now = core.time.monotonic()
      if last or not drawn or now - last_draw >= 0.1 then
        last_draw = now
        bar(done, total, more)
      end
    end
  end

  -- Ends the bar's line; returns the seconds since the reporter began.
  function r.finish()
    if drawn then say(io.stderr, "\n") end
    drawn = false
    current_reporter = nil
    return core.time.monotonic() - t0
  end

  -- Ctrl-C: the bar is wiped, not left half drawn.
  function r.clear()
    clear_bar()
    drawn = false
  end

  -- What the gateway's rate limit did to the run: for the summary.
  function r.throttling()
    if not limiter then return nil end
    local st = limiter:status()
    return { throttled = st.throttled, settled_rate = st.rate and math.floor(st.rate * 10 + 0.5) / 10 }
  end
  current_reporter = r
  return r
end

-- ---------------------------------------------------------------- the end of a run

local function summary_line(s)
  local head = s.command .. (s.dry_run and " (dry run)" or "")
  local line = ("%s: %d ok, %d failed, %d skipped of %d in %s (%s)"):format(head, s.ok, s.failed,
    s.skipped, s.total, duration(s.elapsed_s), s.dir)
  if s.throttled and s.throttled > 0 then
    line = line .. ("; the gateway throttled %d request(s) (429)%s"):format(s.throttled,
      s.settled_rate and (", the run settled at %s requests/s"):format(s.settled_rate) or "")
  end
  return line
end

local function json_items(report)
  local items = json.array {}
  for i, it in ipairs(report.items) do
    local e = it.err
    items[i] = {
      name = it.name, ok = it.ok and true or false, skipped = it.skipped and true or false,
      reason = it.reason, dry_run = it.dry_run, file = it.file, bytes = it.bytes,
      error = e and clean(tostring(e)) or nil, error_kind = e and e.kind or nil,
      status = e and e.status or nil, error_code = e and e.error_code or nil,
      request_id = e and e.request_id or nil,
    }
  end
  return items
end

-- A set that is not whole (its backup had failed items, or was killed before it wrote its
-- manifest) is said so; verify then exits 1, as the set does not hold every secret.
local function incomplete_note(report)
  if report.journal_only then
    return "the set in " .. report.dir .. " is incomplete: its backup was interrupted before it wrote "
      .. "manifest.json; run " .. PROG .. " backup " .. report.dir .. " --resume to complete it"
  elseif report.complete == false then
    return "the set in " .. report.dir .. " is incomplete: its last backup had failed items "
      .. "(manifest.json says complete: false)"
  end
end

--- Prints the end of a run (warnings, the incomplete note, the summary or the --json
--- document) and returns its exit status. opts: json, quiet, summary (fields added to it).
function M.finish_run(command, report, rep, opts)
  local elapsed = rep.finish()
  local s = { command = command, total = #report.items, ok = report.ok, failed = report.failed,
              skipped = report.skipped, elapsed_s = math.floor(elapsed * 1000 + 0.5) / 1000,
              dir = report.dir }
  for k, v in pairs(opts.summary or {}) do s[k] = v end
  local note = incomplete_note(report)
  for _, w in ipairs(report.warnings or {}) do M.warn(clean(w)) end
  if note then say(io.stderr, PROG, ": ", command == "verify" and "" or "warning: ", clean(note), "\n") end
  local code = report.failed > 0 and M.EXIT_FAILED or M.EXIT_OK
  if command == "verify" and note then code = M.EXIT_FAILED end
  for k, v in pairs(rep.throttling() or {}) do s[k] = v end
  if opts.json then
    local doc = { dir = report.dir, ok = report.ok, failed = report.failed, skipped = report.skipped,
                  items = json_items(report), summary = s, manifest = report.manifest,
                  incomplete = note, warnings = report.warnings and #report.warnings > 0
                    and report.warnings or nil }
    say(io.stdout, document(doc), "\n")
  elseif not opts.quiet then
    say(io.stdout, summary_line(s), "\n")
  end
  return code
end

--- list: the names one per line, or (as_json) the secret objects as one JSON array.
function M.secrets(all, as_json)
  if as_json then
    for _, s in ipairs(all) do
      if type(s) == "table" and type(s.event_subscriptions) == "table" then
        json.array(s.event_subscriptions)
      end
    end
    say(io.stdout, document(json.array(all)), "\n")
  else
    local out = {}
    for i, s in ipairs(all) do out[i] = clean(type(s) == "table" and s.name) end
    if #out > 0 then say(io.stdout, table.concat(out, "\n"), "\n") end
  end
end

return M
