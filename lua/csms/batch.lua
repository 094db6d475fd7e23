-- csms.batch: back up a whole project to a directory, restore from it, verify it offline: the
-- public entry points, their option checks, the selection of items and the runs' reports.
--
-- A backup set is a directory holding one <name>.blob per secret (mode 0600) and manifest.json;
-- while a run goes on, manifest.journal records each file before it is renamed into place, so
-- whatever kills a run, every file under its final name is described by its record and a
-- complete set stays restorable (the format: csms.manifest; the directory, its lock and its
-- crash-safe writes: csms.setdir). A rerun with resume = true skips what is recorded and intact.
local api = require "csms.api"
local core = require "csms.core"
local csms = require "csms"
local errors = require "csms.errors"
local glob = require "csms.glob"
local listing = require "csms.listing"
local manifest = require "csms.manifest"
local scheduler = require "csms.scheduler"
local setdir = require "csms.setdir"

local M = {}

M.FORMAT = manifest.FORMAT

-- ---------------------------------------------------------------- helpers

local function check(cond, fmt, ...)
  if not cond then errors.raise(("csms.batch: " .. fmt):format(...)) end -- at the caller's line
end

local function check_options(opts, allowed)
  check(type(opts) == "table", "options must be a table, got %s", type(opts))
  for k, v in pairs(opts) do
    local want = allowed[k]
    check(want ~= nil, "unknown option '%s'", tostring(k))
    check(want:find(type(v), 1, true), "%s must be a %s, got %s", k, want, type(v))
  end
  check(type(opts.dir) == "string" and opts.dir ~= "", "dir must be a non-empty string")
  if opts.concurrency then
    check(opts.concurrency >= 1 and opts.concurrency == math.floor(opts.concurrency),
      "concurrency must be a whole number >= 1")
  end
  if opts.names then
    for i, n in ipairs(opts.names) do check(type(n) == "string", "names[%d] must be a string", i) end
  end
end

-- One batch operation per client at a time: its transport runs one loop (a call from an
-- on_progress callback would re-enter it).
local running = setmetatable({}, { __mode = "k" })

local function not_running(client)
  return not running[client], "this client is already running a batch operation (called from "
    .. "on_progress?); use another client for a second one"
end

-- Runs fn(...) with the client marked running and dir locked (csms.setdir.lock); both are
-- released even when fn raises (an on_progress callback's error, an interrupt).
local function locked(client, dir, shared, op, fn, ...)
  local ok, lock = setdir.lock(dir, shared, op)
  if not ok then return nil, lock end
  if client then running[client] = true end
  local res = { pcall(fn, ...) }
  if lock then lock:unlock() end
  if client then running[client] = nil end
  if not res[1] then error(res[2], 0) end
  return res[2], res[3]
end

-- Names without repeats, in their first order.
local function unique(names)
  local seen, out = {}, {}
  for _, n in ipairs(names) do
    if not seen[n] then seen[n], out[#out + 1] = true, n end
  end
  return out
end

local function iso_now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

-- A shell-style glob (* and ?) as a predicate on names (csms.glob); no glob matches all.
function M.glob(g)
  if not g then return function() return true end end
  check(type(g) == "string", "match must be a string, got %s", type(g))
  return glob(g)
end

-- The set in dir, as csms.setdir.read gives it, without the journal facts.
function M.read_manifest(dir)
  check(type(dir) == "string" and dir ~= "", "dir must be a non-empty string")
  local m, err = setdir.read(dir)
  return m, err
end

-- ---------------------------------------------------------------- listing

-- Every secret object of the project, all pages (csms.listing), or nil, err.
function M.list(client)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  return listing.all(client)
end

-- A listed secret as { name, update_time }, or nil when it has no name; an update_time that is
-- not a whole number of milliseconds (1e400, NaN, a string) is left out, as if the server had
-- not sent one.
local function target(s)
  if type(s) == "table" and type(s.name) == "string" then
    return { name = s.name, update_time = manifest.valid_time(s.update_time) and s.update_time or nil }
  end
end

-- target() of every secret.
local function list_all(client)
  local all, err = listing.all(client)
  if not all then return nil, err end
  local out = {}
  for _, s in ipairs(all) do out[#out + 1] = target(s) end
  return out
end

-- ---------------------------------------------------------------- reports

local function new_report(dir)
  return { ok = 0, failed = 0, skipped = 0, items = {}, dir = dir }
end

-- on_progress(done, total, item, more): more is true while a backup's listing goes on (total,
-- the items selected so far, may still grow).
local function record(report, item, total, on_progress, more)
  report.items[#report.items + 1] = item
  if item.ok then
    report.ok = report.ok + 1
  elseif item.skipped then
    report.skipped = report.skipped + 1
  else
    report.failed = report.failed + 1
  end
  if on_progress then on_progress(#report.items, total, item, more or false) end
end

-- ---------------------------------------------------------------- backup

local BACKUP_OPTIONS = { dir = "string", names = "table", match = "string", concurrency = "number",
  resume = "boolean", incremental = "boolean", on_progress = "function" }

local backup_locked

-- Backs up secrets into opts.dir (created 0700 if missing). Returns the report
-- { ok, failed, skipped, items = { { name, ok, skipped, reason, err, file, bytes } }, dir,
-- warnings }, or nil, err when the run cannot start or could not record its work: the
-- directory (kind "io", also when others can write to it), the listing (when it fails after
-- some secrets were backed up, they stay in a set marked incomplete: err.note), another
-- project's set ("config"), an unreadable set ("corrupt"), another backup writing the
-- directory ("busy"), a selection that selects nothing ("invalid_argument"), a journal write
-- that failed (a full disk: "io"; the set stays as it was, resumable).
function M.backup(client, opts)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  check_options(opts, BACKUP_OPTIONS)
  check(not_running(client))
  local dir = opts.dir
  local warnings, err = setdir.prepare(dir)
  if not warnings then return nil, err end
  local report
  report, err = locked(client, dir, false, "backup", backup_locked, client, opts, dir)
  if report then report.warnings = warnings end
  return report, err
end

function backup_locked(client, opts, dir)
  setdir.remove_leftovers(dir)
  -- The project id (from IAM when none is configured) before the set is compared to it.
  local ok, err = client:resolve()
  if not ok then
    err.op = err.op or "backup"
    return nil, err
  end
  local prev, perr, jinfo = setdir.read(dir)
  -- An unreadable set is never overwritten: it is the record of every earlier item.
  if not prev and perr.kind ~= "io" then
    perr.message = perr.message .. "; move it away to start a new set in this directory"
    perr.op = "backup"
    return nil, perr
  end
  if prev and prev.project_id and prev.project_id ~= client.project_id then
    return nil, errors.new("config", dir .. " holds a backup of project " .. tostring(prev.project_id)
      .. ", not " .. client.project_id, { op = "backup" })
  end
  prev = prev or { items = {} }
  jinfo = jinfo or {}

  local set = {
    format = M.FORMAT, tool = csms.USER_AGENT, project_id = client.project_id,
    endpoint = client.endpoint, region = client.region,
    created_at = prev.created_at or iso_now(), complete = false, items = prev.items,
  }
  local report = new_report(dir)
  -- The journal's first line names the project: a set killed before its manifest is written
  -- is still checked against the next run's project. It is written (a torn last line ended
  -- first) with the first group of files: a run that backs nothing up leaves no journal.
  local journal
  journal, err = setdir.open_journal(dir)
  if not journal then return nil, err end
  local started = false
  local function start_journal()
    started = true
    if not jinfo.header then
      journal:write(manifest.journal_header(set, jinfo.torn), true)
    elseif jinfo.torn then
      journal:write("\n", true)
    end
  end

  -- The selection, made as the listing's pages come (csms.listing): each page is an item of
  -- the run like the backups (the next one handed out first), and the secrets a page selects
  -- are backed up while the later pages are listed. With names given the listing is only a
  -- help (each name's update_time, for later incremental runs): a caller allowed to back up
  -- but not to list goes on, and the names it never showed are backed up once it has ended.
  local names = opts.names and unique(opts.names)
  local wanted = {}
  for _, n in ipairs(names or {}) do wanted[n] = true end
  local match = M.glob(opts.match)
  local pages = listing.pages(client)
  local PAGE = {}
  local queue, head, tail, queued = {}, 1, 0, {} -- selected, not yet handed out: queue[head..tail]
  local listed, total = 0, 0 -- secrets listed; items selected so far (the progress total)
  local listing_on, page_due = true, true
  local listing_err -- the listing's error, which ends the run (without names)

  local function select_item(t)
    if queued[t.name] or names and not wanted[t.name] or not match(t.name) then return end
    queued[t.name], wanted[t.name] = true, nil
    total, tail = total + 1, tail + 1
    queue[tail] = t
  end

  local function end_listing(lerr)
    listing_on = false
    if lerr and not names then listing_err = lerr return end
    for _, n in ipairs(names or {}) do
      if wanted[n] then select_item { name = n } end
    end
  end

  local function take_page(res, lerr)
    local secrets
    if res then secrets, lerr = pages:take(res) end
    if not secrets then return end_listing(lerr) end
    for _, s in ipairs(secrets) do
      local t = target(s)
      if t then
        listed = listed + 1
        select_item(t)
      end
    end
    if pages.ended then return end_listing() end
    page_due = true
  end

  -- The next item to start: the next page once the last has come, else the next selected
  -- secret that is not skipped (resume: recorded and intact; incremental: also unchanged
  -- since); nil, true while the listing may select more. Nothing new starts after the
  -- listing failed or the journal could not be written.
  local function next_item()
    if listing_err or journal.failed then return nil end
    if page_due then
      page_due = false
      return PAGE
    end
    while head <= tail do
      local t = queue[head]
      queue[head], head = nil, head + 1
      local old = prev.items[t.name]
      local reason = old and (opts.resume and "resume"
        or opts.incremental and t.update_time ~= nil and old.update_time == t.update_time and "unchanged")
      if not (reason and setdir.verified(dir, old)) then return t end
      record(report, { name = t.name, skipped = true, reason = reason, file = old.file, bytes = old.bytes },
        total, opts.on_progress, listing_on)
    end
    return nil, listing_on
  end

  -- Blobs are written under a temporary name without syncing; every GROUP files (or
  -- GROUP_SECONDS) csms.setdir.commit makes the group durable, journals it and renames it
  -- into place.
  local GROUP, GROUP_SECONDS = 64, 0.1
  local pending, pending_since = {}, 0
  local function commit()
    if #pending == 0 then return end
    local group = pending
    pending = {}
    if not started then start_journal() end
    local results = setdir.commit(dir, journal, group, set.items)
    for i, p in ipairs(group) do
      local item = p.item
      if results[i] == true then
        item.ok, item.file, item.bytes = true, p.entry.file, p.entry.bytes
      else
        item.err = results[i]
      end
      record(report, item, total, opts.on_progress, listing_on)
    end
  end

  local function finish(t, res, e)
    if t == PAGE then return take_page(res, e) end
    local item = { name = t.name, ok = false, err = e }
    if res and journal.failed then
      item.err = journal.failed
    elseif res then
      local data = res.secret_blob
      local entry = manifest.entry(t.name, data, t.update_time, iso_now())
      local tmp, werr = setdir.write_temp(dir, entry.file, data)
      if tmp then
        if #pending == 0 then pending_since = core.time.monotonic() end
        pending[#pending + 1] = { item = item, tmp = tmp, entry = entry }
        if #pending >= GROUP or core.time.monotonic() - pending_since >= GROUP_SECONDS then commit() end
        return
      end
      item.err = werr
    end
    record(report, item, total, opts.on_progress, listing_on)
  end

  local function make_op(t)
    if t == PAGE then return pages:op() end
    return api.backup(client, t.name)
  end

  scheduler.run(client, next_item, opts.concurrency or 8, make_op, finish,
    function() if #pending > 0 and core.time.monotonic() - pending_since >= GROUP_SECONDS then commit() end end)
  commit()
  journal:close()
  if not started then setdir.drop_empty_journal(dir) end
  -- A journal that could not be written: the set on disk is consistent but the run's work is
  -- not all recorded; writing the manifest could only fail the same way or record less.
  if journal.failed then return nil, journal.failed end
  if listing_err then
    -- The listing failed after some of its pages were backed up: the set keeps what was done
    -- and says it is incomplete; the run is still a failure (nothing after the bad page is).
    if started then
      set.complete, set.updated_at = false, iso_now()
      ok, err = setdir.write_manifest(dir, set)
      if not ok then return nil, err end
      listing_err.note = ("the backup stopped there: the %d secret(s) backed up from the pages before are "
        .. "in the set, which is marked incomplete (run again to complete it; resume skips them)")
        :format(report.ok)
    end
    return nil, listing_err
  end
  if opts.match and total == 0 then
    return nil, errors.new("invalid_argument", ("match '%s' selects none of the %d secrets listed")
      :format(opts.match, names and #names or listed), { op = "backup" })
  end
  set.complete = report.failed == 0
  set.updated_at = iso_now()
  ok, err = setdir.write_manifest(dir, set)
  if not ok then return nil, err end
  return report
end

-- ---------------------------------------------------------------- restore

local RESTORE_OPTIONS = { dir = "string", names = "table", match = "string", concurrency = "number",
  on_conflict = "string", dry_run = "boolean", on_progress = "function" }

local restore_locked

-- Restores the set in opts.dir. Each file is checked against the manifest before it is sent:
-- a corrupt or missing one is a failed item (kind "corrupt"), never uploaded. Each name is
-- restored once however often it is given.
-- on_conflict = "fail" (default) | "skip"; dry_run = true sends no restore (it lists the
-- project to tell what would be skipped). nil, err when the set cannot be read, a backup is
-- writing it ("busy"), or nothing is selected ("invalid_argument").
function M.restore(client, opts)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  check_options(opts, RESTORE_OPTIONS)
  local on_conflict = opts.on_conflict or "fail"
  check(on_conflict == "fail" or on_conflict == "skip", "on_conflict must be \"fail\" or \"skip\"")
  check(not_running(client))
  return locked(client, opts.dir, true, "restore", restore_locked, client, opts, on_conflict)
end

function restore_locked(client, opts, on_conflict)
  local set, err = setdir.read(opts.dir)
  if not set then return nil, err end

  local match, selected = M.glob(opts.match), {}
  if opts.names then
    for _, n in ipairs(unique(opts.names)) do
      selected[#selected + 1] = set.items[n] or { name = n, missing = true }
    end
  else
    for _, it in pairs(set.items) do selected[#selected + 1] = it end
    table.sort(selected, function(a, b) return a.name < b.name end)
  end
  local items = {}
  for _, it in ipairs(selected) do if match(it.name) then items[#items + 1] = it end end
  if #items == 0 then
    return nil, errors.new("invalid_argument", opts.match and ("match '%s' selects none of the %d items "
      .. "of the set in %s"):format(opts.match, #selected, opts.dir)
      or ("the set in %s holds no items%s"):format(opts.dir, set.complete and ""
        or " (its backup did not complete)"), { op = "restore" })
  end

  local report, total = new_report(opts.dir), #items
  report.complete, report.journal_only = set.complete == true, set.journal_only or false
  local function finish(it, res, e)
    local item = { name = it.name, ok = res ~= nil, err = e }
    if e and e.conflict and on_conflict == "skip" then
      item.err, item.skipped, item.reason = nil, true, "exists"
    end
    record(report, item, total, opts.on_progress)
  end
  local function make_op(it)
    if it.missing then
      return nil, errors.new("invalid_argument", it.name .. " is not in the set's manifest", { op = "restore" })
    end
    local blob, verr = setdir.verified(opts.dir, it)
    if not blob then return nil, verr end
    return api.restore(client, blob)
  end

  if opts.dry_run then
    local existing, lerr = list_all(client)
    if not existing then return nil, lerr end
    local exists = {}
    for _, s in ipairs(existing) do exists[s.name] = true end
    for _, it in ipairs(items) do
      local op, e = make_op(it)
      if not op then
        finish(it, nil, e)
      elseif exists[it.name] then
        finish(it, nil, errors.new("http", "the secret " .. it.name .. " already exists (dry run: "
          .. "seen in the project's listing, nothing sent)", { op = "restore", conflict = true }))
      else
        record(report, { name = it.name, ok = true, dry_run = true }, total, opts.on_progress)
      end
    end
    return report
  end
  scheduler.run(client, items, opts.concurrency or 8, make_op, finish)
  return report
end

-- ---------------------------------------------------------------- verify

local function verify_locked(dir)
  local set, err = setdir.read(dir)
  if not set then return nil, err end
  local names = {}
  for name in pairs(set.items) do names[#names + 1] = name end
  table.sort(names)
  local report = new_report(dir)
  report.complete, report.journal_only = set.complete == true, set.journal_only or false
  report.manifest = { project_id = set.project_id, endpoint = set.endpoint,
    created_at = set.created_at, complete = set.complete, tool = set.tool }
  for _, name in ipairs(names) do
    local it = set.items[name]
    local data, e = setdir.verified(dir, it)
    record(report, { name = name, ok = data ~= nil, err = e, file = it.file, bytes = it.bytes }, #names)
  end
  return report
end

-- Offline: the set is readable and every file matches it (bytes, SHA-256, blob shape).
-- report.complete is false for a set whose backup had failed items or was interrupted
-- (report.journal_only: killed before it wrote manifest.json); nil, err (kind "busy") while a
-- backup writes the directory.
function M.verify(dir)
  check(type(dir) == "string" and dir ~= "", "dir must be a non-empty string")
  return locked(nil, dir, true, "verify", verify_locked, dir)
end

return M
