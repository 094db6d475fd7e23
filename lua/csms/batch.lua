-- csms.batch: back up a whole project to a directory, restore from it, verify it offline.
--
-- A backup set is a directory holding one <name>.blob per secret (mode 0600, written to a
-- temporary file, flushed and renamed) and manifest.json (name, file, sha256, bytes, time of
-- each item; the project, endpoint and tool). While a run goes on, every verified file is also
-- recorded in manifest.journal, one line each, so a run that is killed loses nothing: a rerun
-- with resume = true skips what is recorded and still verifies. A backup holds a lock on
-- .csms.lock in the directory while it runs: a second one into the same directory is refused.
local core = require "csms.core"
local cjson = require "cjson.safe"
local csms = require "csms"
local cosocket = require "csms.cosocket"
local errors = require "csms.errors"

local M = {}

M.FORMAT = "lua-csms-backup/1"
local MANIFEST, JOURNAL = "manifest.json", "manifest.journal"

-- ---------------------------------------------------------------- helpers

local function check(cond, fmt, ...)
  if not cond then error(("csms.batch: " .. fmt):format(...), 3) end
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

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function iso_now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

-- A shell-style glob (* and ?) as a predicate on names.
function M.glob(glob)
  if not glob then return function() return true end end
  local pat = glob:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  pat = "^" .. pat .. "$"
  return function(name) return name:find(pat) ~= nil end
end

local function blob_path(dir, file) return dir .. "/" .. file end

-- ---------------------------------------------------------------- manifest

-- Sorted, one item per line: stable to diff and to read.
local function encode_manifest(m)
  local names = {}
  for name in pairs(m.items) do names[#names + 1] = name end
  table.sort(names)
  local lines = {}
  for i, name in ipairs(names) do
    local it = m.items[name]
    lines[i] = "    " .. cjson.encode { name = it.name, file = it.file, sha256 = it.sha256,
      bytes = it.bytes, backed_up_at = it.backed_up_at, update_time = it.update_time }
  end
  local head = {}
  for _, k in ipairs { "format", "tool", "project_id", "endpoint", "region", "created_at",
                       "updated_at", "complete" } do
    if m[k] ~= nil then head[#head + 1] = ("  %s: %s,\n"):format(cjson.encode(k), cjson.encode(m[k])) end
  end
  return "{\n" .. table.concat(head) .. '  "items": [\n' .. table.concat(lines, ",\n")
    .. (#lines > 0 and "\n" or "") .. "  ]\n}\n"
end

local function valid_entry(it)
  return type(it) == "table" and type(it.name) == "string" and csms.validate_name(it.name)
    and type(it.file) == "string" and it.file == it.name .. ".blob"
    and type(it.sha256) == "string" and #it.sha256 == 64 and type(it.bytes) == "number"
end

-- Reads manifest.json and any journal lines after it. Returns the manifest with items keyed
-- by name, or nil, err (kind "io" when there is none, "corrupt" when it cannot be read).
function M.read_manifest(dir)
  local text = read_file(dir .. "/" .. MANIFEST)
  local journal = read_file(dir .. "/" .. JOURNAL)
  if not text and not journal then
    return nil, errors.new("io", "no " .. MANIFEST .. " in " .. dir)
  end
  local m = { items = {} }
  if text then
    local doc = cjson.decode(text)
    if type(doc) ~= "table" or doc.format ~= M.FORMAT or type(doc.items) ~= "table" then
      return nil, errors.new("corrupt", dir .. "/" .. MANIFEST .. " is not a " .. M.FORMAT .. " manifest")
    end
    for k, v in pairs(doc) do if k ~= "items" then m[k] = v end end
    for _, it in ipairs(doc.items) do
      if not valid_entry(it) then
        return nil, errors.new("corrupt", dir .. "/" .. MANIFEST .. " has a malformed item")
      end
      m.items[it.name] = it
    end
  end
  -- A line torn by a crash does not parse and is ignored: its item is simply done again.
  for line in (journal or ""):gmatch("[^\n]+") do
    local it = cjson.decode(line)
    if valid_entry(it) then m.items[it.name] = it end
  end
  return m
end

local function write_manifest(dir, m)
  m.updated_at = iso_now()
  local ok, err = core.write_atomic(dir .. "/" .. MANIFEST, encode_manifest(m), 384) -- 0600
  if not ok then return nil, errors.new("io", err) end
  os.remove(dir .. "/" .. JOURNAL)
  return true
end

-- Checks a file against its manifest entry; returns its bytes or nil, err (kind "corrupt").
local function verified_blob(dir, it)
  local data = read_file(blob_path(dir, it.file))
  local function corrupt(msg)
    return nil, errors.new("corrupt", it.file .. ": " .. msg, { op = "verify" })
  end
  if not data then return corrupt("missing") end
  if #data ~= it.bytes then return corrupt(("%d bytes, the manifest says %d"):format(#data, it.bytes)) end
  if core.sha256_hex(data) ~= it.sha256 then return corrupt("SHA-256 differs from the manifest") end
  local ok, err = csms.validate_blob(data)
  if not ok then return corrupt(err.message) end
  return data
end

-- ---------------------------------------------------------------- running operations

-- One item to its end on the client's own loop (client:run sleeps between attempts).
local function run_one(client, item, make_op, finish)
  local op, err = make_op(item)
  if op then finish(item, client:run(op)) else finish(item, nil, err) end
end

-- Inside nginx: `concurrency` light threads (ngx.thread) take items in turn; each waits on
-- its cosocket without blocking the worker.
local function run_threads(client, items, concurrency, make_op, finish, tick)
  local next_item = 1
  local function worker()
    while next_item <= #items do
      local item = items[next_item]
      next_item = next_item + 1
      run_one(client, item, make_op, finish)
      tick()
    end
  end
  local threads = {}
  for i = 1, math.min(concurrency, #items) do threads[i] = ngx.thread.spawn(worker) end
  for _, th in ipairs(threads) do
    local ok, err = ngx.thread.wait(th)
    if not ok then error(err, 0) end
  end
end

-- Runs make_op(item) for every item with up to `concurrency` requests in flight on the
-- client's transport (libcurl's multi interface: no thread or process per request) and calls
-- finish(item, result, err) as each ends, and tick() at least every 0.1 s while it waits.
-- A transport without submit/poll (a user function) runs them one at a time.
local TICK = 0.1
local function run_all(client, items, concurrency, make_op, finish, tick)
  tick = tick or function() end
  local t = client.transport
  if concurrency > 1 and cosocket.available() then
    return run_threads(client, items, concurrency, make_op, finish, tick)
  end
  if concurrency <= 1 or not (t.submit and t.poll) then
    for _, item in ipairs(items) do
      run_one(client, item, make_op, finish)
      tick()
    end
    return
  end
  local inflight, count, waiting, next_item = {}, 0, {}, 1

  local function launch(op, item)
    local req, err = op:request()
    local id
    if req then
      id, err = t:submit(req)
      if not id then err = errors.new("invalid_argument", err, { op = op.op }) end
    end
    if not id then return finish(item, nil, err) end
    inflight[id] = { op = op, item = item }
    count = count + 1
  end

  local function due_retry(now)
    for i, w in ipairs(waiting) do
      if w.at <= now then return table.remove(waiting, i) end
    end
  end

  while true do
    local now = core.monotonic()
    while count < concurrency do
      local w = due_retry(now)
      if w then
        launch(w.op, w.item)
      elseif next_item <= #items then
        local item = items[next_item]
        next_item = next_item + 1
        local op, err = make_op(item)
        if op then launch(op, item) else finish(item, nil, err) end
      else
        break
      end
    end
    if count == 0 and #waiting == 0 and next_item > #items then return end
    local wake = math.huge
    for _, w in ipairs(waiting) do wake = math.min(wake, w.at) end
    if count == 0 then
      t:sleep(math.min(TICK, math.max(0, wake - core.monotonic())))
    else
      -- With every slot busy only a completion can let anything start.
      local timeout = count >= concurrency and TICK or math.min(TICK, math.max(0.001, wake - core.monotonic()))
      for _, c in ipairs(t:poll(timeout)) do
        local e = inflight[c.id]
        inflight[c.id] = nil
        count = count - 1
        local what, v = e.op:outcome(c.res, c.terr)
        if what == "done" then
          finish(e.item, v)
        elseif what == "failed" then
          finish(e.item, nil, v)
        else
          waiting[#waiting + 1] = { at = core.monotonic() + v, op = e.op, item = e.item }
        end
      end
    end
    tick()
  end
end

-- Every secret of the project, all pages: a list of { name, update_time }.
local function list_all(client)
  local out, marker = {}, nil
  repeat
    local res, err = client:list_secrets { limit = 200, marker = marker }
    if not res then return nil, err end
    for _, s in ipairs(res.secrets) do
      if type(s.name) == "string" then out[#out + 1] = { name = s.name, update_time = s.update_time } end
    end
    local next_marker = res.page_info and res.page_info.next_marker
    if next_marker == marker or #res.secrets == 0 then break end
    marker = next_marker
  until not marker
  return out
end

local function new_report(dir)
  return { ok = 0, failed = 0, skipped = 0, items = {}, dir = dir }
end

local function record(report, item, total, on_progress)
  report.items[#report.items + 1] = item
  if item.ok then
    report.ok = report.ok + 1
  elseif item.skipped then
    report.skipped = report.skipped + 1
  else
    report.failed = report.failed + 1
  end
  if on_progress then on_progress(#report.items, total, item) end
end

-- ---------------------------------------------------------------- backup

local BACKUP_OPTIONS = { dir = "string", names = "table", match = "string", concurrency = "number",
  resume = "boolean", incremental = "boolean", on_progress = "function" }

-- Two backups writing one directory would leave a manifest that does not match the files (each
-- download is a new encryption of the secret): one run at a time, under an exclusive lock on
-- LOCK in the directory, held until the run returns (the kernel drops it if the process dies).
local LOCK = ".csms.lock"

-- Under the lock no other run is writing, so temporary files are leftovers of a run that died
-- between writing a file and renaming it (core.write_new's and core.write_atomic's names).
local function remove_leftovers(dir)
  for _, name in ipairs(core.list_dir(dir) or {}) do
    if name:match("^%.[%w_%-]+%.blob%.tmp%.%d+$") or name:match("^manifest%.json%.tmp%.%d+%.%d+$") then
      os.remove(dir .. "/" .. name)
    end
  end
end

local backup_locked

-- Backs up secrets into opts.dir (created 0700 if missing). Returns the report
-- { ok, failed, skipped, items = { { name, ok, skipped, reason, err, file, bytes } }, dir },
-- or nil, err when the run cannot start (the directory, the listing, another project's set,
-- kind "busy": another backup is writing the directory).
function M.backup(client, opts)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  check_options(opts, BACKUP_OPTIONS)
  local dir = opts.dir
  local ok, err = core.mkdir(dir, 448) -- 0700
  if not ok then return nil, errors.new("io", err, { op = "backup" }) end
  local lock, lerr, busy = core.lock(dir .. "/" .. LOCK)
  if not lock then
    return nil, errors.new(busy and "busy" or "io", busy and (dir .. " is being written by another backup"
      .. " (it holds " .. LOCK .. "); run again when that one has ended") or lerr, { op = "backup" })
  end
  remove_leftovers(dir)
  -- pcall: an error raised inside (an on_progress callback's) must not leave the lock held.
  local done, report
  done, report, err = pcall(backup_locked, client, opts, dir)
  lock:unlock()
  if not done then error(report, 0) end
  return report, err
end

function backup_locked(client, opts, dir)
  local ok, err
  local prev, perr = M.read_manifest(dir)
  -- An unreadable manifest is never overwritten: it is the record of every earlier item.
  if not prev and perr.kind == "corrupt" then
    perr.message = perr.message .. "; move it away to start a new set in this directory"
    perr.op = "backup"
    return nil, perr
  end
  if prev and prev.project_id and prev.project_id ~= client.project_id then
    return nil, errors.new("config", dir .. " holds a backup of project " .. prev.project_id
      .. ", not " .. client.project_id, { op = "backup" })
  end
  prev = prev or { items = {} }

  -- The listing gives every name and each update_time (for later incremental runs). With
  -- names given it is only a help: a caller allowed to back up but not to list goes on.
  local targets
  targets, err = list_all(client)
  if not targets and not opts.names then return nil, err end
  if not targets then
    targets = {}
    for i, n in ipairs(opts.names) do targets[i] = { name = n } end
  elseif opts.names then
    local wanted, kept = {}, {}
    for _, n in ipairs(opts.names) do wanted[n] = true end
    for _, t in ipairs(targets) do if wanted[t.name] then kept[#kept + 1] = t; wanted[t.name] = nil end end
    for _, n in ipairs(opts.names) do if wanted[n] then kept[#kept + 1] = { name = n } end end
    targets = kept
  end
  local match = M.glob(opts.match)

  local manifest = {
    format = M.FORMAT, tool = csms.USER_AGENT, project_id = client.project_id,
    endpoint = client.endpoint, region = client.region,
    created_at = prev.created_at or iso_now(), complete = false, items = prev.items,
  }
  local report = new_report(dir)
  local journal, jerr = io.open(dir .. "/" .. JOURNAL, "a")
  if not journal then return nil, errors.new("io", jerr, { op = "backup" }) end
  local todo, total = {}, 0
  for _, t in ipairs(targets) do
    if match(t.name) then
      total = total + 1
      local old = prev.items[t.name]
      local reason = old and (opts.resume and "resume"
        or opts.incremental and t.update_time ~= nil and old.update_time == t.update_time and "unchanged")
      if reason and verified_blob(dir, old) then
        record(report, { name = t.name, skipped = true, reason = reason, file = old.file, bytes = old.bytes },
          total, nil)
      else
        todo[#todo + 1] = t
      end
    end
  end
  -- Progress counts the skipped ones first, then each item as it ends.
  if opts.on_progress then
    for i, item in ipairs(report.items) do opts.on_progress(i, total, item) end
  end

  -- Blobs are written under a temporary name without syncing; every GROUP files (or
  -- GROUP_SECONDS) one syncfs makes the whole group durable, then each file is renamed into
  -- place, read back, checked and journalled. A file under its real name is always complete
  -- and on disk, at one sync per group instead of two per file.
  local GROUP, GROUP_SECONDS = 64, 0.1
  local pending, pending_since = {}, 0
  local function commit()
    if #pending == 0 then return end
    local synced, serr = core.syncfs(dir)
    for _, p in ipairs(pending) do
      local final, item, werr = blob_path(dir, p.file), p.item, serr
      if synced then
        local moved, rerr = os.rename(p.tmp, final)
        werr = rerr
        -- The report claims only what is on disk and reads back identical.
        if moved and core.sha256_hex(read_file(final) or "") == p.entry.sha256 then
          manifest.items[item.name] = p.entry
          journal:write(cjson.encode(p.entry), "\n")
          item.ok, item.file, item.bytes = true, p.file, p.entry.bytes
        end
      end
      if not item.ok then
        os.remove(p.tmp)
        item.err = errors.new("io", werr or ("cannot read back " .. p.file), { op = "backup" })
      end
      record(report, item, total, opts.on_progress)
    end
    journal:flush()
    pending = {}
  end

  local function finish(t, res, e)
    local item = { name = t.name, ok = false, err = e }
    if res then
      local file, data = t.name .. ".blob", res.secret_blob
      local tmp = ("%s/.%s.tmp.%d"):format(dir, file, math.floor(core.random() * 1e9))
      local wrote, werr = core.write_new(tmp, data, 384) -- 0600
      if wrote then
        if #pending == 0 then pending_since = core.monotonic() end
        pending[#pending + 1] = { item = item, tmp = tmp, file = file, entry = {
          name = t.name, file = file, sha256 = core.sha256_hex(data), bytes = #data,
          backed_up_at = iso_now(), update_time = t.update_time } }
        if #pending >= GROUP or core.monotonic() - pending_since >= GROUP_SECONDS then commit() end
        return
      end
      item.err = errors.new("io", werr, { op = "backup" })
    end
    record(report, item, total, opts.on_progress)
  end

  run_all(client, todo, opts.concurrency or 8,
    function(t) return client:backup_operation(t.name) end, finish,
    function() if #pending > 0 and core.monotonic() - pending_since >= GROUP_SECONDS then commit() end end)
  commit()
  journal:close()
  manifest.complete = report.failed == 0
  ok, err = write_manifest(dir, manifest)
  if not ok then return nil, err end
  return report
end

-- ---------------------------------------------------------------- restore

local RESTORE_OPTIONS = { dir = "string", names = "table", match = "string", concurrency = "number",
  on_conflict = "string", dry_run = "boolean", on_progress = "function" }

-- Restores the set in opts.dir. Each file is checked against the manifest before it is sent:
-- a corrupt or missing one is a failed item (kind "corrupt"), never uploaded.
-- on_conflict = "fail" (default) | "skip"; dry_run = true sends no restore (it lists the
-- project to tell what would be skipped).
function M.restore(client, opts)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  check_options(opts, RESTORE_OPTIONS)
  local on_conflict = opts.on_conflict or "fail"
  check(on_conflict == "fail" or on_conflict == "skip", "on_conflict must be \"fail\" or \"skip\"")
  local manifest, err = M.read_manifest(opts.dir)
  if not manifest then return nil, err end

  local match, selected = M.glob(opts.match), {}
  if opts.names then
    for _, n in ipairs(opts.names) do
      selected[#selected + 1] = manifest.items[n] or { name = n, missing = true }
    end
  else
    for _, it in pairs(manifest.items) do selected[#selected + 1] = it end
    table.sort(selected, function(a, b) return a.name < b.name end)
  end
  local items = {}
  for _, it in ipairs(selected) do if match(it.name) then items[#items + 1] = it end end

  local report, total = new_report(opts.dir), #items
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
    local blob, verr = verified_blob(opts.dir, it)
    if not blob then return nil, verr end
    return client:restore_operation(blob)
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
  run_all(client, items, opts.concurrency or 8, make_op, finish)
  return report
end

-- ---------------------------------------------------------------- verify

-- Offline: the manifest is readable and every file matches it (bytes, SHA-256, blob shape).
function M.verify(dir)
  check(type(dir) == "string" and dir ~= "", "dir must be a non-empty string")
  local manifest, err = M.read_manifest(dir)
  if not manifest then return nil, err end
  local names = {}
  for name in pairs(manifest.items) do names[#names + 1] = name end
  table.sort(names)
  local report = new_report(dir)
  report.manifest = { project_id = manifest.project_id, endpoint = manifest.endpoint,
    created_at = manifest.created_at, complete = manifest.complete, tool = manifest.tool }
  for _, name in ipairs(names) do
    local it = manifest.items[name]
    local data, e = verified_blob(dir, it)
    record(report, { name = name, ok = data ~= nil, err = e, file = it.file, bytes = it.bytes }, #names)
  end
  return report
end

return M
