-- csms.manifest: the record format of a backup set, manifest.json and manifest.journal: what an
-- entry is, how both are written and read, and how a reader resolves a journal line against what
-- its file holds. No I/O: the set's directory is csms.setdir.
--
-- manifest.json holds the name, file, sha256, bytes, time of each item and the project,
-- endpoint and tool. While a run goes on, manifest.journal records the run's project in its
-- first line and then, for every file about to be renamed into place, its new entry and the
-- entry it replaces ("was"). What a reader takes as an item's record is resolved by the file's
-- content: the new entry if the file holds it, the old one if the rename never happened.
local core = require "csms.core"
local cjson = require "cjson.safe"
local csms = require "csms"
local json = require "csms.json"

local M = {}

M.FORMAT = "lua-csms-backup/1"
M.MANIFEST, M.JOURNAL = "manifest.json", "manifest.journal"
local MAX_BLOB = 5242880 -- the service's documented limit of a secret_blob

local function whole(v, max)
  return type(v) == "number" and v >= 0 and v <= max and v == math.floor(v)
end

-- A time in milliseconds as the service gives it (update_time): a whole number.
function M.valid_time(v) return whole(v, 2 ^ 53) end

local function short_string(v) return type(v) == "string" and #v <= 256 end

local function valid_entry(it)
  return type(it) == "table" and type(it.name) == "string" and csms.validate_name(it.name) == true
    and it.file == it.name .. ".blob"
    and type(it.sha256) == "string" and it.sha256:find("^%x+$") ~= nil and #it.sha256 == 64
    and whole(it.bytes, MAX_BLOB) and it.bytes > 0
    and (it.update_time == nil or M.valid_time(it.update_time))
    and (it.backed_up_at == nil or short_string(it.backed_up_at))
end

-- The entry as the manifest stores it (fields of a journal line's own left out).
local function entry_of(it)
  return { name = it.name, file = it.file, sha256 = it.sha256, bytes = it.bytes,
           backed_up_at = it.backed_up_at, update_time = it.update_time }
end

-- The entry of a file just made from data.
function M.entry(name, data, update_time, backed_up_at)
  return { name = name, file = name .. ".blob", sha256 = core.crypto.sha256_hex(data), bytes = #data,
    backed_up_at = backed_up_at, update_time = update_time }
end

-- The head fields and their checks; anything else in a manifest is ignored.
local HEAD = {
  { "format", function(v) return v == M.FORMAT end },
  { "tool", short_string }, { "project_id", short_string }, { "endpoint", short_string },
  { "region", short_string }, { "created_at", short_string }, { "updated_at", short_string },
  { "complete", function(v) return type(v) == "boolean" end },
}

-- manifest.json's text. Sorted, one item per line: stable to diff and to read. nil, message if
-- a value cannot be written (every value was checked when read or made, so this is a bug
-- guard, not a raise).
function M.encode(m)
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

-- The journal's first line: the run's project (torn: the journal's last line was torn by a
-- killed run and is ended first).
function M.journal_header(m, torn)
  return (torn and "\n" or "") .. cjson.encode { journal = M.FORMAT, project_id = m.project_id,
    endpoint = m.endpoint, region = m.region, created_at = m.created_at } .. "\n"
end

-- The journal's line for a file about to be renamed into place: its entry and the one it
-- replaces.
function M.journal_line(entry, was)
  local line = entry_of(entry)
  line.was = was
  return cjson.encode(line) .. "\n"
end

-- The record a journal line leaves for its item, resolved by what the file holds (read(file,
-- max) gives data, or nil when there is none, or nil, err): the line's entry if the rename
-- happened, the entry it replaced ("was") if not, no item if there was none and there is no
-- file. A file matching neither keeps the new entry (verify calls it corrupt, which it is).
local function resolve(it, read)
  local was = valid_entry(it.was) and it.was.name == it.name and it.was or nil
  local data, err = read(it.file, math.max(it.bytes, was and was.bytes or 0))
  if data and #data == it.bytes and core.crypto.sha256_hex(data) == it.sha256 then return entry_of(it) end
  if data and was and #data == was.bytes and core.crypto.sha256_hex(data) == was.sha256 then return entry_of(was) end
  if not data and not err and not was then return nil end
  return entry_of(it)
end

-- The set from manifest.json's text and manifest.journal's (either may be nil; not both
-- empty), each journal line resolved through read (above). Returns
-- { project_id, endpoint, ..., complete, journal_only, items = { [name] = entry } } and the
-- journal's facts { header = its project or nil, torn }, or nil, what is wrong (the set is
-- corrupt).
function M.decode(text, journal, read)
  local lines = {}
  for line in (journal or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  -- The last line of a killed run may be torn: it does not parse and is ignored.
  local jinfo = { header = nil, torn = journal ~= nil and journal ~= "" and journal:sub(-1) ~= "\n" }
  local m = { items = {} }
  if text then
    local doc = cjson.decode(text)
    if type(doc) ~= "table" or doc.format ~= M.FORMAT then
      return nil, M.MANIFEST .. " is not a " .. M.FORMAT .. " manifest"
    end
    for _, h in ipairs(HEAD) do
      local v = doc[h[1]]
      if v ~= nil and v ~= cjson.null then
        if not h[2](v) then return nil, M.MANIFEST .. " has a malformed " .. h[1] end
        m[h[1]] = v
      end
    end
    if not json.is_list(doc.items) then return nil, M.MANIFEST .. "'s items is not a list" end
    for _, it in ipairs(doc.items) do
      if not valid_entry(it) then return nil, M.MANIFEST .. " has a malformed item" end
      m.items[it.name] = entry_of(it)
    end
  end
  local entries = {}
  for _, line in ipairs(lines) do
    local it = cjson.decode(line)
    if type(it) == "table" and it.journal == M.FORMAT then
      if not short_string(it.project_id) or (jinfo.header and jinfo.header ~= it.project_id) then
        return nil, M.JOURNAL .. " has a malformed project_id"
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
      return nil, M.JOURNAL .. " names no project (damaged, or from an older version); move it away"
    end
    if jinfo.header and m.project_id and jinfo.header ~= m.project_id then
      return nil, M.JOURNAL .. " is of project " .. jinfo.header .. ", " .. M.MANIFEST .. " of " .. m.project_id
    end
  end
  -- Only an item's last line counts: it is the latest write of its file.
  local last = {}
  for _, it in ipairs(entries) do last[it.name] = it end
  for name, it in pairs(last) do m.items[name] = resolve(it, read) end
  if not text then m.format, m.complete, m.journal_only = M.FORMAT, false, true end
  return m, jinfo
end

return M
