-- csms.batch: back up a whole project to a directory, restore from it, verify it offline.
--
-- A backup set is a directory holding one <name>.blob per secret (mode 0600) and
-- manifest.json (name, file, sha256, bytes, time of each item; the project, endpoint and tool).
-- While a run goes on, manifest.journal (0600) records the run's project in its first line and
-- then, for every file about to be renamed into place, its new entry and the entry it replaces
-- ("was"). What a reader takes as an item's record is resolved by the file's content: the new
-- entry if the file holds it, the old one if the rename never happened. So at every instant,
-- whatever kills a run, every file under its final name is described by its record, and a
-- complete set stays restorable. A rerun with resume = true skips what is recorded and intact.
-- A backup holds an exclusive lock on .csms.lock in the directory; restore and verify hold a
-- shared one (a backup and a reader never overlap). Nothing is ever read or written through a
-- symbolic link planted in the directory, nor from a FIFO or device.
local api = require "csms.api"
local core = require "csms.core"
local cjson = require "cjson.safe"
local csms = require "csms"
local errors = require "csms.errors"
local scheduler = require "csms.scheduler"

local M = {}

M.FORMAT = "lua-csms-backup/1"
local MANIFEST, JOURNAL, LOCK = "manifest.json", "manifest.journal", ".csms.lock"
local MAX_BLOB = 5242880            -- the service's documented limit of a secret_blob
local MAX_MANIFEST = 256 * 1048576  -- manifest.json and manifest.journal (about a million items)

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

-- Runs fn(...) with the client marked running and dir locked (shared: restore and verify;
-- exclusive: backup); both are released even when fn raises (an on_progress callback's error,
-- an interrupt). A reader of a set it cannot lock because it cannot create the lock file (a
-- read-only copy) goes on without one: no backup can be writing there.
local function locked(client, dir, shared, op, fn, ...)
  if shared and not core.fs.lstat(dir .. "/" .. MANIFEST) and not core.fs.lstat(dir .. "/" .. JOURNAL) then
    return nil, errors.new("io", "no " .. MANIFEST .. " in " .. dir, { op = op })
  end
  local lock, lerr, code = core.fs.lock(dir .. "/" .. LOCK, shared)
  if not lock and not (shared and (code == "missing" or code == "denied")) then
    if code ~= "busy" then return nil, errors.new("io", lerr, { op = op }) end
    return nil, errors.new("busy", dir .. (shared and " is being written by a backup" or
      " is being written by another backup, or read by a verify or restore") .. " (it holds " .. LOCK
      .. "); run again when that one has ended", { op = op })
  end
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

-- A shell-style glob (* and ?) as a predicate on names. Matched byte by byte, going back only
-- to the last '*': at most #name * #glob steps, whatever the glob (a Lua pattern of '.*'
-- pieces backtracks exponentially).
function M.glob(glob)
  if not glob then return function() return true end end
  check(type(glob) == "string", "match must be a string, got %s", type(glob))
  local g = { glob:byte(1, -1) }
  local STAR, ANY = 42, 63
  return function(name)
    local i, j, star, resume = 1, 1, nil, 0
    local n = #name
    while i <= n do
      local c = g[j]
      if c == STAR then
        star, resume, j = j, i, j + 1
      elseif c and (c == ANY or c == name:byte(i)) then
        i, j = i + 1, j + 1
      elseif star then
        resume = resume + 1
        i, j = resume, star + 1
      else
        return false
      end
    end
    while g[j] == STAR do j = j + 1 end
    return j > #g
  end
end

local function blob_path(dir, file) return dir .. "/" .. file end

-- A file of the set, or nil when there is none; nil, err (kind "corrupt") when it is a
-- symbolic link, a FIFO or device, or larger than max; kind "io" when it cannot be read.
local function read_set_file(path, max)
  local data, err, code = core.fs.read_file(path, max)
  if data then return data end
  if code == "missing" then return nil end
  return nil, errors.new((code == "io" or code == "denied") and "io" or "corrupt", err), code
end

-- ---------------------------------------------------------------- manifest

local function whole(v, max)
  return type(v) == "number" and v >= 0 and v <= max and v == math.floor(v)
end

local function short_string(v) return type(v) == "string" and #v <= 256 end

-- A JSON array as cjson decodes it: keys 1..n and nothing else.
local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function valid_entry(it)
  return type(it) == "table" and type(it.name) == "string" and csms.validate_name(it.name) == true
    and it.file == it.name .. ".blob"
    and type(it.sha256) == "string" and it.sha256:find("^%x+$") ~= nil and #it.sha256 == 64
    and whole(it.bytes, MAX_BLOB) and it.bytes > 0
    and (it.update_time == nil or whole(it.update_time, 2 ^ 53))
    and (it.backed_up_at == nil or short_string(it.backed_up_at))
end

-- The entry as the manifest stores it (fields of a journal line's own left out).
local function entry_of(it)
  return { name = it.name, file = it.file, sha256 = it.sha256, bytes = it.bytes,
           backed_up_at = it.backed_up_at, update_time = it.update_time }
end

-- The head fields and their checks; anything else in a manifest is ignored.
local HEAD = {
  { "format", function(v) return v == M.FORMAT end },
  { "tool", short_string }, { "project_id", short_string }, { "endpoint", short_string },
  { "region", short_string }, { "created_at", short_string }, { "updated_at", short_string },
  { "complete", function(v) return type(v) == "boolean" end },
}

-- Sorted, one item per line: stable to diff and to read. nil, message if a value cannot be
-- written (every value was checked when read or made, so this is a bug guard, not a raise).
local function encode_manifest(m)
  local names = {}
  for name in pairs(m.items) do names[#names + 1] = name end
  table.sort(names)
  local lines = {}
  for i, name in ipairs(names) do
    local line, err = cjson.encode(entry_of(m.items[name]))
    if not line then return nil, err end
    lines[i] = "    " .. line
  end
  local head = {}
  for _, h in ipairs(HEAD) do
    local v = m[h[1]]
    if v ~= nil then head[#head + 1] = ("  %s: %s,\n"):format(cjson.encode(h[1]), cjson.encode(v)) end
  end
  return "{\n" .. table.concat(head) .. '  "items": [\n' .. table.concat(lines, ",\n")
    .. (#lines > 0 and "\n" or "") .. "  ]\n}\n"
end

-- The record a journal line leaves for its item, resolved by what the file holds: the line's
-- entry if the rename happened, the entry it replaced ("was") if not, no item if there was
-- none and there is no file. A file matching neither keeps the new entry (verify calls it
-- corrupt, which it is).
local function resolve(dir, it)
  local was = valid_entry(it.was) and it.was.name == it.name and it.was or nil
  local data, err = read_set_file(blob_path(dir, it.file), math.max(it.bytes, was and was.bytes or 0))
  if data and #data == it.bytes and core.crypto.sha256_hex(data) == it.sha256 then return entry_of(it) end
  if data and was and #data == was.bytes and core.crypto.sha256_hex(data) == was.sha256 then return entry_of(was) end
  if not data and not err and not was then return nil end
  return entry_of(it)
end

local function corrupt_set(dir, what)
  return nil, errors.new("corrupt", dir .. "/" .. what)
end

-- Reads the set: manifest.json, then the journal a run left (resolved as above). Returns
-- { project_id, endpoint, ..., complete, journal_only, items = { [name] = entry } } and
-- private journal facts, or nil, err (kind "io" when there is no set, "corrupt" when it cannot
-- be read).
local function read_set(dir)
  local text, terr = read_set_file(dir .. "/" .. MANIFEST, MAX_MANIFEST)
  if terr then return nil, terr end
  local journal, jerr = read_set_file(dir .. "/" .. JOURNAL, MAX_MANIFEST)
  if jerr then return nil, jerr end
  local lines = {}
  for line in (journal or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  -- The last line of a killed run may be torn: it does not parse and is ignored.
  local jinfo = { header = nil, torn = journal ~= nil and journal ~= "" and journal:sub(-1) ~= "\n" }
  if not text and #lines == 0 then
    return nil, errors.new("io", "no " .. MANIFEST .. " in " .. dir)
  end
  local m = { items = {} }
  if text then
    local doc = cjson.decode(text)
    if type(doc) ~= "table" or doc.format ~= M.FORMAT then
      return corrupt_set(dir, MANIFEST .. " is not a " .. M.FORMAT .. " manifest")
    end
    for _, h in ipairs(HEAD) do
      local v = doc[h[1]]
      if v ~= nil and v ~= cjson.null then
        if not h[2](v) then return corrupt_set(dir, MANIFEST .. " has a malformed " .. h[1]) end
        m[h[1]] = v
      end
    end
    if not is_list(doc.items) then return corrupt_set(dir, MANIFEST .. "'s items is not a list") end
    for _, it in ipairs(doc.items) do
      if not valid_entry(it) then return corrupt_set(dir, MANIFEST .. " has a malformed item") end
      m.items[it.name] = entry_of(it)
    end
  end
  local entries = {}
  for _, line in ipairs(lines) do
    local it = cjson.decode(line)
    if type(it) == "table" and it.journal == M.FORMAT then
      if not short_string(it.project_id) or (jinfo.header and jinfo.header ~= it.project_id) then
        return corrupt_set(dir, JOURNAL .. " has a malformed project_id")
      end
      jinfo.header = it.project_id
      if not text then m.project_id, m.endpoint, m.region, m.created_at = it.project_id,
        short_string(it.endpoint) and it.endpoint or nil, short_string(it.region) and it.region or nil,
        short_string(it.created_at) and it.created_at or nil end
    elseif valid_entry(it) then
      entries[#entries + 1] = it
    end
  end
  if #lines > 0 then
    if not jinfo.header and not text then
      return corrupt_set(dir, JOURNAL .. " names no project (damaged, or from an older version); "
        .. "move it away")
    end
    if jinfo.header and m.project_id and jinfo.header ~= m.project_id then
      return corrupt_set(dir, JOURNAL .. " is of project " .. jinfo.header .. ", "
        .. MANIFEST .. " of " .. m.project_id)
    end
  end
  -- Only an item's last line counts: it is the latest write of its file.
  local last = {}
  for _, it in ipairs(entries) do last[it.name] = it end
  for name, it in pairs(last) do m.items[name] = resolve(dir, it) end
  if not text then m.format, m.complete, m.journal_only = M.FORMAT, false, true end
  return m, nil, jinfo
end

-- The set in dir, as read_set gives it, without the journal facts.
function M.read_manifest(dir)
  check(type(dir) == "string" and dir ~= "", "dir must be a non-empty string")
  local m, err = read_set(dir)
  return m, err
end

local function write_manifest(dir, m)
  m.updated_at = iso_now()
  local text, eerr = encode_manifest(m)
  if not text then return nil, errors.new("io", "cannot encode the manifest: " .. eerr, { op = "backup" }) end
  local ok, err = core.fs.write_atomic(dir .. "/" .. MANIFEST, text, 384) -- 0600
  if not ok then return nil, errors.new("io", err, { op = "backup" }) end
  os.remove(dir .. "/" .. JOURNAL)
  return true
end

-- Checks a file against its manifest entry; returns its bytes or nil, err (kind "corrupt").
-- Reads at most the entry's size: never through a symbolic link, never a FIFO or a device.
local function verified_blob(dir, it)
  local function corrupt(msg)
    return nil, errors.new("corrupt", it.file .. ": " .. msg, { op = "verify" })
  end
  local data, rerr, code = read_set_file(blob_path(dir, it.file), it.bytes)
  if code == "symlink" then return corrupt("is a symbolic link (never followed)") end
  if code == "not_regular" then return corrupt("is not a regular file") end
  if code == "too_large" then return corrupt(("larger than the manifest's %d bytes"):format(it.bytes)) end
  if rerr then return corrupt(rerr.message) end
  if not data then return corrupt("missing") end
  if #data ~= it.bytes then return corrupt(("%d bytes, the manifest says %d"):format(#data, it.bytes)) end
  if core.crypto.sha256_hex(data) ~= it.sha256 then return corrupt("SHA-256 differs from the manifest") end
  local ok, err = csms.validate_blob(data)
  if not ok then return corrupt(err.message) end
  return data
end

-- ---------------------------------------------------------------- listing

local MAX_PAGES = 100000 -- 20 million secrets: a listing that never ends is the server's fault

local function bad_listing(msg)
  return nil, errors.new("bad_response", "the listing " .. msg, { op = "list" })
end

-- Every secret object of the project, all pages (200 a page), or nil, err. A marker that is
-- not a name, a marker given twice (m0, m1, m0, ...) or endless pages are kind
-- "bad_response"; a page repeating the marker it was asked for ends the listing.
function M.list(client)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  local out, marker, seen = {}, nil, {}
  for _ = 1, MAX_PAGES do
    local res, err = client:list_secrets { limit = 200, marker = marker }
    if not res then return nil, err end
    for _, s in ipairs(res.secrets) do out[#out + 1] = s end
    local next_marker = type(res.page_info) == "table" and res.page_info.next_marker or nil
    if next_marker == nil or next_marker == marker or #res.secrets == 0 then return out end
    if type(next_marker) ~= "string" or csms.validate_name(next_marker) ~= true then
      return bad_listing("gives a next_marker that is not a secret name")
    end
    if seen[next_marker] then return bad_listing("goes round in a loop (next_marker " .. next_marker
      .. " was given before)") end
    seen[next_marker], marker = true, next_marker
  end
  return bad_listing(("has more than %d pages"):format(MAX_PAGES))
end

-- { name, update_time } of every secret; an update_time that is not a whole number of
-- milliseconds (1e400, NaN, a string) is left out, as if the server had not sent one.
local function list_all(client)
  local all, err = M.list(client)
  if not all then return nil, err end
  local out = {}
  for _, s in ipairs(all) do
    if type(s) == "table" and type(s.name) == "string" then
      out[#out + 1] = { name = s.name, update_time = whole(s.update_time, 2 ^ 53) and s.update_time or nil }
    end
  end
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

-- Under the lock no other run is writing, so temporary files are leftovers of a run that died
-- between writing a file and renaming it (core.fs.write_new's and core.fs.write_atomic's names).
local function remove_leftovers(dir)
  for _, name in ipairs(core.fs.list_dir(dir) or {}) do
    if name:match("^%.[%w_%-]+%.blob%.tmp%.%d+$") or name:match("^manifest%.json%.tmp%.%d+%.%d+$") then
      os.remove(dir .. "/" .. name)
    end
  end
end

-- A directory others can write to lets them plant files and links among the blobs: refused.
-- One owned by another user (root backing up into a user's directory) is used, with a warning.
local function check_dir(dir)
  local st, err = core.fs.lstat(dir, true)
  if not st then return nil, errors.new("io", err, { op = "backup" }) end
  if st.type ~= "dir" then return nil, errors.new("io", dir .. " is not a directory", { op = "backup" }) end
  if math.floor(st.mode / 16) % 2 == 1 or math.floor(st.mode / 2) % 2 == 1 then -- g+w, o+w
    return nil, errors.new("io", ("%s is writable by other users (mode %04o): chmod go-w it, or back up "
      .. "into a directory of your own"):format(dir, st.mode), { op = "backup", unsafe = true })
  end
  if st.uid ~= core.fs.euid() then
    return { ("%s belongs to another user (uid %d), who can change the set"):format(dir, st.uid) }
  end
  return {}
end

local backup_locked

-- Backs up secrets into opts.dir (created 0700 if missing). Returns the report
-- { ok, failed, skipped, items = { { name, ok, skipped, reason, err, file, bytes } }, dir,
-- warnings }, or nil, err when the run cannot start or could not record its work: the
-- directory (kind "io", also when others can write to it), the listing, another project's
-- set ("config"), an unreadable set ("corrupt"), another backup writing the directory
-- ("busy"), a selection that selects nothing ("invalid_argument"), a journal write that failed
-- (a full disk: "io"; the set stays as it was, resumable).
function M.backup(client, opts)
  check(getmetatable(client) == csms.Client, "the first argument must be a csms client")
  check_options(opts, BACKUP_OPTIONS)
  check(not_running(client))
  local dir = opts.dir
  local ok, err = core.fs.mkdir(dir, 448) -- 0700
  if not ok then return nil, errors.new("io", err, { op = "backup" }) end
  local warnings
  warnings, err = check_dir(dir)
  if not warnings then return nil, err end
  local report
  report, err = locked(client, dir, false, "backup", backup_locked, client, opts, dir)
  if report then report.warnings = warnings end
  return report, err
end

local function journal_error(werr, code)
  return errors.new("io", "cannot write " .. JOURNAL .. ": " .. tostring(werr)
    .. "; the set is left as it was and can be resumed", { op = "backup", code = code })
end

function backup_locked(client, opts, dir)
  remove_leftovers(dir)
  -- The project id (from IAM when none is configured) before the set is compared to it.
  local ok, err = client:resolve()
  if not ok then
    err.op = err.op or "backup"
    return nil, err
  end
  local prev, perr, jinfo = read_set(dir)
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

  -- The listing gives every name and each update_time (for later incremental runs). With
  -- names given it is only a help: a caller allowed to back up but not to list goes on.
  local names = opts.names and unique(opts.names)
  local targets
  targets, err = list_all(client)
  if not targets and not names then return nil, err end
  if not targets then
    targets = {}
    for i, n in ipairs(names) do targets[i] = { name = n } end
  elseif names then
    local wanted, kept = {}, {}
    for _, n in ipairs(names) do wanted[n] = true end
    for _, t in ipairs(targets) do if wanted[t.name] then kept[#kept + 1] = t; wanted[t.name] = nil end end
    for _, n in ipairs(names) do if wanted[n] then kept[#kept + 1] = { name = n } end end
    targets = kept
  end
  local match = M.glob(opts.match)
  local selected = {}
  for _, t in ipairs(targets) do if match(t.name) then selected[#selected + 1] = t end end
  if opts.match and #selected == 0 then
    return nil, errors.new("invalid_argument", ("match '%s' selects none of the %d secrets listed")
      :format(opts.match, #targets), { op = "backup" })
  end

  local manifest = {
    format = M.FORMAT, tool = csms.USER_AGENT, project_id = client.project_id,
    endpoint = client.endpoint, region = client.region,
    created_at = prev.created_at or iso_now(), complete = false, items = prev.items,
  }
  local report = new_report(dir)
  local journal, jerr, jcode = core.fs.open_append(dir .. "/" .. JOURNAL, 384) -- 0600
  if not journal then return nil, errors.new("io", jerr, { op = "backup", code = jcode }) end
  -- The journal's first line names the project: a set killed before its manifest is written
  -- is still checked against the next run's project. A torn last line is ended first.
  local jfail -- the first journal write error: nothing is renamed into place after it
  local function jwrite(text, sync)
    if jfail then return nil end
    local wrote, werr, code = journal:write(text)
    if wrote and sync then wrote, werr, code = journal:sync() end
    if not wrote then jfail = journal_error(werr, code) end
    return wrote
  end
  if not jinfo.header then
    jwrite((jinfo.torn and "\n" or "") .. cjson.encode { journal = M.FORMAT, project_id = client.project_id,
      endpoint = client.endpoint, region = client.region, created_at = manifest.created_at } .. "\n", true)
  elseif jinfo.torn then
    jwrite("\n", true)
  end
  if jfail then
    journal:close()
    return nil, jfail
  end
  local todo, total = {}, #selected
  for _, t in ipairs(selected) do
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
  -- Progress counts the skipped ones first, then each item as it ends.
  if opts.on_progress then
    for i, item in ipairs(report.items) do opts.on_progress(i, total, item) end
  end

  -- Blobs are written under a temporary name without syncing. Every GROUP files (or
  -- GROUP_SECONDS) one syncfs makes the group's data durable; then one journal line per file,
  -- its new entry with the one it replaces, is written and synced; only then is each file
  -- renamed into place, read back and checked. A reader resolves each line by the file's
  -- content (read_set), so a kill at any point leaves every file described by its record.
  local GROUP, GROUP_SECONDS = 64, 0.1
  local pending, pending_since = {}, 0
  local function commit()
    if #pending == 0 then return end
    local group = pending
    pending = {}
    local synced, serr = core.fs.syncfs(dir)
    if synced then
      local lines = {}
      for i, p in ipairs(group) do
        local line = entry_of(p.entry)
        line.was = manifest.items[p.item.name]
        lines[i] = cjson.encode(line) .. "\n"
      end
      synced = jwrite(table.concat(lines), true)
      serr = jfail
    end
    for _, p in ipairs(group) do
      local final, item, werr = blob_path(dir, p.file), p.item, serr
      if synced then
        local moved, rerr = os.rename(p.tmp, final)
        werr = rerr
        -- The report claims only what is on disk and reads back identical.
        local back = moved and core.fs.read_file(final, p.entry.bytes)
        if back and core.crypto.sha256_hex(back) == p.entry.sha256 then
          manifest.items[item.name] = p.entry
          item.ok, item.file, item.bytes = true, p.file, p.entry.bytes
        end
      end
      if not item.ok then
        os.remove(p.tmp)
        item.err = errors.is_error(werr) and werr
          or errors.new("io", werr or ("cannot read back " .. p.file), { op = "backup" })
      end
      record(report, item, total, opts.on_progress)
    end
  end

  local function finish(t, res, e)
    local item = { name = t.name, ok = false, err = e }
    if res and jfail then
      item.err = jfail
    elseif res then
      local file, data = t.name .. ".blob", res.secret_blob
      local tmp = ("%s/.%s.tmp.%d"):format(dir, file, math.floor(core.crypto.random() * 1e9))
      local wrote, werr = core.fs.write_new(tmp, data, 384) -- 0600
      if wrote then
        if #pending == 0 then pending_since = core.time.monotonic() end
        pending[#pending + 1] = { item = item, tmp = tmp, file = file, entry = {
          name = t.name, file = file, sha256 = core.crypto.sha256_hex(data), bytes = #data,
          backed_up_at = iso_now(), update_time = t.update_time } }
        if #pending >= GROUP or core.time.monotonic() - pending_since >= GROUP_SECONDS then commit() end
        return
      end
      item.err = errors.new("io", werr, { op = "backup" })
    end
    record(report, item, total, opts.on_progress)
  end

  scheduler.run(client, todo, opts.concurrency or 8,
    function(t) return api.backup(client, t.name) end, finish,
    function() if #pending > 0 and core.time.monotonic() - pending_since >= GROUP_SECONDS then commit() end end)
  commit()
  journal:close()
  -- A journal that could not be written: the set on disk is consistent but the run's work is
  -- not all recorded; writing the manifest could only fail the same way or record less.
  if jfail then return nil, jfail end
  manifest.complete = report.failed == 0
  ok, err = write_manifest(dir, manifest)
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
  local manifest, err = read_set(opts.dir)
  if not manifest then return nil, err end

  local match, selected = M.glob(opts.match), {}
  if opts.names then
    for _, n in ipairs(unique(opts.names)) do
      selected[#selected + 1] = manifest.items[n] or { name = n, missing = true }
    end
  else
    for _, it in pairs(manifest.items) do selected[#selected + 1] = it end
    table.sort(selected, function(a, b) return a.name < b.name end)
  end
  local items = {}
  for _, it in ipairs(selected) do if match(it.name) then items[#items + 1] = it end end
  if #items == 0 then
    return nil, errors.new("invalid_argument", opts.match and ("match '%s' selects none of the %d items "
      .. "of the set in %s"):format(opts.match, #selected, opts.dir)
      or ("the set in %s holds no items%s"):format(opts.dir, manifest.complete and ""
        or " (its backup did not complete)"), { op = "restore" })
  end

  local report, total = new_report(opts.dir), #items
  report.complete, report.journal_only = manifest.complete == true, manifest.journal_only or false
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
  local manifest, err = read_set(dir)
  if not manifest then return nil, err end
  local names = {}
  for name in pairs(manifest.items) do names[#names + 1] = name end
  table.sort(names)
  local report = new_report(dir)
  report.complete, report.journal_only = manifest.complete == true, manifest.journal_only or false
  report.manifest = { project_id = manifest.project_id, endpoint = manifest.endpoint,
    created_at = manifest.created_at, complete = manifest.complete, tool = manifest.tool }
  for _, name in ipairs(names) do
    local it = manifest.items[name]
    local data, e = verified_blob(dir, it)
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
