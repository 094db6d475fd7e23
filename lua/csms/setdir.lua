-- csms.setdir: a backup set's directory on disk: its lock, safe reads of its files, the
-- journal, group-synced writes and renames, leftover cleanup, the directory's owner and mode.
-- What the files say is csms.manifest's; what to back up or restore is csms.batch's.
--
-- Nothing is ever read or written through a symbolic link planted in the directory, nor from a
-- FIFO or device. A backup holds an exclusive lock on .csms.lock; restore and verify a shared
-- one (a backup and a reader never overlap).
local core = require "csms.core"
local csms = require "csms"
local errors = require "csms.errors"
local manifest = require "csms.manifest"

local M = {}

local MANIFEST, JOURNAL, LOCK = manifest.MANIFEST, manifest.JOURNAL, ".csms.lock"
local MAX_MANIFEST = 256 * 1048576 -- manifest.json and manifest.journal (about a million items)
local FILE_MODE = 384              -- 0600

-- A file of the set, or nil when there is none; nil, err (kind "corrupt") when it is a
-- symbolic link, a FIFO or device, or larger than max; kind "io" when it cannot be read.
local function read_file(path, max)
  local data, err, code = core.fs.read_file(path, max)
  if data then return data end
  if code == "missing" then return nil end
  return nil, errors.new((code == "io" or code == "denied") and "io" or "corrupt", err), code
end

-- Locks dir (shared: restore and verify; exclusive: backup): true and the lock (to :unlock()),
-- or nil, err. A reader of a set it cannot lock because it cannot create the lock file (a
-- read-only copy) goes on without one (true, nil): no backup can be writing there.
function M.lock(dir, shared, op)
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
  return true, lock
end

-- Reads the set: manifest.json, then the journal a run left (csms.manifest.decode). Returns
-- the set and the journal's facts, or nil, err (kind "io" when there is no set, "corrupt" when
-- it cannot be read).
function M.read(dir)
  local text, terr = read_file(dir .. "/" .. MANIFEST, MAX_MANIFEST)
  if terr then return nil, terr end
  local journal, jerr = read_file(dir .. "/" .. JOURNAL, MAX_MANIFEST)
  if jerr then return nil, jerr end
  if not text and not (journal or ""):find("[^\n]") then
    return nil, errors.new("io", "no " .. MANIFEST .. " in " .. dir)
  end
  local m, jinfo = manifest.decode(text, journal, function(file, max)
    return read_file(dir .. "/" .. file, max)
  end)
  if not m then return nil, errors.new("corrupt", dir .. "/" .. jinfo) end
  return m, nil, jinfo
end

-- Checks a file against its manifest entry; returns its bytes or nil, err (kind "corrupt").
-- Reads at most the entry's size: never through a symbolic link, never a FIFO or a device.
function M.verified(dir, it)
  local function corrupt(msg)
    return nil, errors.new("corrupt", it.file .. ": " .. msg, { op = "verify" })
  end
  local data, rerr, code = read_file(dir .. "/" .. it.file, it.bytes)
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

-- Makes dir (0700) for a backup. A directory others can write to lets them plant files and
-- links among the blobs: refused. One owned by another user (root backing up into a user's
-- directory) is used, with a warning. Returns the warnings, or nil, err (kind "io").
function M.prepare(dir)
  local ok, err = core.fs.mkdir(dir, 448) -- 0700
  if not ok then return nil, errors.new("io", err, { op = "backup" }) end
  local st
  st, err = core.fs.lstat(dir, true)
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

-- Under the lock no other run is writing, so temporary files are leftovers of a run that died
-- between writing a file and renaming it (core.fs.write_new's and core.fs.write_atomic's names).
function M.remove_leftovers(dir)
  for _, name in ipairs(core.fs.list_dir(dir) or {}) do
    if name:match("^%.[%w_%-]+%.blob%.tmp%.%d+$") or name:match("^manifest%.json%.tmp%.%d+%.%d+$") then
      os.remove(dir .. "/" .. name)
    end
  end
end

-- Writes manifest.json in one atomic step, then drops the journal it now holds.
function M.write_manifest(dir, m)
  local text, eerr = manifest.encode(m)
  if not text then return nil, errors.new("io", "cannot encode the manifest: " .. eerr, { op = "backup" }) end
  local ok, err = core.fs.write_atomic(dir .. "/" .. MANIFEST, text, FILE_MODE)
  if not ok then return nil, errors.new("io", err, { op = "backup" }) end
  os.remove(dir .. "/" .. JOURNAL)
  return true
end

-- ------------------------------------------------------------ the journal and the group commit

local Journal = {}
Journal.__index = Journal

-- manifest.journal opened for appending (0600): j:write(text, sync), j.failed (the first
-- write error: nothing is renamed into place after it), j:close(). nil, err (kind "io").
function M.open_journal(dir)
  local file, err, code = core.fs.open_append(dir .. "/" .. JOURNAL, FILE_MODE)
  if not file then return nil, errors.new("io", err, { op = "backup", code = code }) end
  return setmetatable({ file = file }, Journal)
end

function Journal:write(text, sync)
  if self.failed then return nil end
  local wrote, werr, code = self.file:write(text)
  if wrote and sync then wrote, werr, code = self.file:sync() end
  if not wrote then
    self.failed = errors.new("io", "cannot write " .. JOURNAL .. ": " .. tostring(werr)
      .. "; the set is left as it was and can be resumed", { op = "backup", code = code })
  end
  return wrote
end

function Journal:close() self.file:close() end

-- Removes the journal when it is empty (a run that opened it and backed nothing up).
function M.drop_empty_journal(dir)
  local st = core.fs.lstat(dir .. "/" .. JOURNAL)
  if st and st.type == "file" and st.size == 0 then os.remove(dir .. "/" .. JOURNAL) end
end

-- Writes a blob under a temporary name, without syncing (commit makes it durable): the name,
-- or nil, err (kind "io").
function M.write_temp(dir, file, data)
  local tmp = ("%s/.%s.tmp.%d"):format(dir, file, math.floor(core.crypto.random() * 1e9))
  local wrote, werr = core.fs.write_new(tmp, data, FILE_MODE)
  if not wrote then return nil, errors.new("io", werr, { op = "backup" }) end
  return tmp
end

-- Puts a group of written files { tmp, entry } into place: one syncfs makes the group's data
-- durable; then one journal line per file, its new entry with the one it replaces (items[name]),
-- is written and synced; only then is each file renamed into place, read back and checked. A
-- reader resolves each line by the file's content (csms.manifest), so a kill at any point
-- leaves every file described by its record. Returns, per file, true (and items[name] is its
-- entry) or err; a file not put into place is removed.
function M.commit(dir, journal, group, items)
  local synced, serr = core.fs.syncfs(dir)
  if synced then
    local lines = {}
    for i, p in ipairs(group) do lines[i] = manifest.journal_line(p.entry, items[p.entry.name]) end
    synced = journal:write(table.concat(lines), true)
    serr = journal.failed
  end
  local results = {}
  for i, p in ipairs(group) do
    local werr, placed = serr, false
    if synced then
      local final = dir .. "/" .. p.entry.file
      local moved, rerr = os.rename(p.tmp, final)
      werr = rerr
      -- Only what is on disk and reads back identical is recorded.
      local back = moved and core.fs.read_file(final, p.entry.bytes)
      if back and core.crypto.sha256_hex(back) == p.entry.sha256 then
        items[p.entry.name], placed = p.entry, true
      end
    end
    if placed then
      results[i] = true
    else
      os.remove(p.tmp)
      results[i] = errors.is_error(werr) and werr
        or errors.new("io", werr or ("cannot read back " .. p.entry.file), { op = "backup" })
    end
  end
  return results
end

return M
