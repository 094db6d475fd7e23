-- csms.batch against hostile directories, manifests, journals and listings, table-driven: one
-- row per case, each checked against an outcome a broken implementation gets wrong (issue 13).
-- A scripted transport stands in for the service: nothing here needs the emulator.
local csms = require "csms"
local batch = require "csms.batch"
local core = require "csms.core"
local cjson = require "cjson"

local PROJECT = "0123456789abcdef0123456789abcdef"
local BLOB = require "spec.support.documented_blob"

-- A different valid blob per name and per download (each download is a new encryption).
local downloads = 0
local function blob_for(name)
  downloads = downloads + 1
  return BLOB .. name:gsub("[^%w]", "") .. ("x"):rep(downloads % 7)
end

-- A client whose transport serves `pages` (a list of listing bodies, or a function(marker)
-- returning a body, or a status number for a refusal) and answers backups and restores;
-- calls are counted in the returned table, and calls.order lists them ("list <marker>",
-- "backup <name>"). multi = true: a "multi" transport (every poll answers what was submitted
-- before it, oldest first), on which backups and the listing's pages overlap.
local function fake(pages, project, multi)
  local calls = { list = 0, backup = 0, restore = 0, markers = {}, order = {}, backed = {} }
  local function answer(doc) return { status = 200, headers = {}, body = cjson.encode(doc) } end
  local function serve(req)
    local marker = req.url:match("[?&]marker=([^&]+)")
    if req.url:find("/secrets%?") or req.url:find("/secrets$") then
      calls.list = calls.list + 1
      calls.markers[#calls.markers + 1] = marker or ""
      calls.order[#calls.order + 1] = "list " .. (marker or "")
      if calls.list > 50 then error("the listing was asked for more than 50 pages") end
      local body = type(pages) == "function" and pages(marker) or pages[calls.list] or pages[#pages]
      if type(body) == "number" then return { status = body, headers = {}, body = "{}" } end
      return { status = 200, headers = {}, body = body }
    end
    local name = req.url:match("/secrets/([^/]+)/backup$")
    if name then
      calls.backup = calls.backup + 1
      calls.backed[name] = true
      calls.order[#calls.order + 1] = "backup " .. name
      return answer { secret_blob = blob_for(name) }
    end
    calls.restore = calls.restore + 1
    return answer { secret = { name = "restored" } }
  end
  local transport = serve
  if multi then
    local queue, ids = {}, 0
    transport = {
      mode = function() return "multi" end,
      submit = function(_, req)
        ids = ids + 1
        queue[#queue + 1] = { id = ids, req = req }
        return ids
      end,
      poll = function()
        local out = {}
        for i, q in ipairs(queue) do out[i] = { id = q.id, res = serve(q.req) } end
        queue = {}
        return out
      end,
      request = function(_, req) return serve(req) end,
      sleep = function() end,
      close = function() end,
    }
  end
  local c = assert(csms.new { ak = "AK", sk = "SK", project_id = project or PROJECT,
    endpoint = "http://127.0.0.1:9", retries = 0, transport = transport })
  return c, calls
end

local function page(names, next_marker, extra)
  local s = {}
  for i, n in ipairs(names) do s[i] = '{"name":"' .. n .. '"' .. (extra or "") .. "}" end
  return '{"secrets":[' .. table.concat(s, ",") .. '],"page_info":{"next_marker":'
    .. (next_marker or "null") .. "}}"
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(core.fs.mkdir(d .. "-set"))
  return d .. "-set"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function sh(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- A complete set of three items (a, b, c) made by a real backup.
local function make_set()
  local dir = tmpdir()
  local c = fake { page { "a", "b", "c" } }
  assert.equal(3, assert(batch.backup(c, { dir = dir })).ok)
  return dir
end

local function entry(dir, name)
  return assert(batch.read_manifest(dir)).items[name]
end

-- ---------------------------------------------------------------- files and directories

local FILE_CASES = {
  { "a blob that is a symlink to /dev/zero fails verify, read no further than its size",
    function(dir) os.remove(dir .. "/a.blob"); sh("ln -s /dev/zero " .. dir .. "/a.blob") end,
    "verify", { failed = 1, ok = 2, message = "a.blob: is a symbolic link" } },
  { "a blob that is a FIFO fails verify without blocking",
    function(dir) os.remove(dir .. "/b.blob"); sh("mkfifo " .. dir .. "/b.blob") end,
    "verify", { failed = 1, ok = 2, message = "b.blob: is not a regular file" } },
  { "a blob that is a symlink to a large file does not reveal its size",
    function(dir)
      os.remove(dir .. "/a.blob")
      write(dir .. "/big", ("z"):rep(123457))
      sh("ln -s " .. dir .. "/big " .. dir .. "/a.blob")
    end, "verify", { failed = 1, ok = 2, message = "a.blob: is a symbolic link", hidden = "123457" } },
  { "a blob larger than its entry is cut off at the entry's size",
    function(dir) write(dir .. "/c.blob", ("z"):rep(999999)) end,
    "verify", { failed = 1, ok = 2, message = "c.blob: larger than the manifest's", hidden = "999999" } },
  { "a blob that is a symlink to /dev/zero is never restored",
    function(dir) os.remove(dir .. "/a.blob"); sh("ln -s /dev/zero " .. dir .. "/a.blob") end,
    "restore", { failed = 1, ok = 2, restores = 2, message = "a.blob: is a symbolic link" } },
  { "manifest.journal planted as a symlink: backup refuses, the target is untouched",
    function(dir) write(dir .. "/victim", "keep"); sh("ln -s " .. dir .. "/victim " .. dir .. "/manifest.journal") end,
    "backup", { kind = "corrupt", message = "manifest.journal is a symbolic link", victim = "keep" } },
  { ".csms.lock planted as a symlink: backup refuses, creates nothing",
    function(dir) os.remove(dir .. "/.csms.lock"); sh("ln -s " .. dir .. "/victim " .. dir .. "/.csms.lock") end,
    "backup", { kind = "io", message = ".csms.lock is a symbolic link", victim = false } },
  { "manifest.journal planted as a hard link: backup refuses to append to it",
    function(dir) write(dir .. "/victim", ""); sh("ln " .. dir .. "/victim " .. dir .. "/manifest.journal") end,
    "backup", { kind = "io", message = "has other hard links", victim = "" } },
  { "manifest.json planted as a symlink: verify calls the set corrupt",
    function(dir)
      os.rename(dir .. "/manifest.json", dir .. "/real")
      sh("ln -s " .. dir .. "/real " .. dir .. "/manifest.json")
    end, "verify", { kind = "corrupt", message = "manifest.json is a symbolic link" } },
  { "a directory others can write to is refused",
    function(dir) sh("chmod 0777 " .. dir) end, "backup", { kind = "io", message = "writable by other users" } },
  { "a directory its group can write to is refused",
    function(dir) sh("chmod 0770 " .. dir) end, "backup", { kind = "io", message = "writable by other users" } },
  { "verify while a backup holds the lock is busy, not a false corrupt",
    function(dir) return assert(core.fs.lock(dir .. "/.csms.lock")) end, "verify", { kind = "busy" } },
  { "restore while a backup holds the lock is busy, and sends nothing",
    function(dir) return assert(core.fs.lock(dir .. "/.csms.lock")) end, "restore", { kind = "busy", restores = 0 } },
  { "backup while a verify holds the shared lock is busy",
    function(dir) return assert(core.fs.lock(dir .. "/.csms.lock", true)) end, "backup", { kind = "busy" } },
}

describe("a backup set's files and directory", function()
  for _, case in ipairs(FILE_CASES) do
    local what, plant, op, want = case[1], case[2], case[3], case[4]
    it(what, function()
      local dir = make_set()
      local held = plant(dir)
      local c, calls = fake { page { "a", "b", "c" } }
      local report, err
      if op == "verify" then report, err = batch.verify(dir)
      elseif op == "restore" then report, err = batch.restore(c, { dir = dir })
      else report, err = batch.backup(c, { dir = dir }) end
      if held then held:unlock() end
      if want.kind then
        assert.is_nil(report)
        assert.equal(want.kind, err.kind, tostring(err))
        if want.message then assert.matches(want.message, tostring(err), 1, true) end
      else
        assert.equal(want.ok, report.ok)
        assert.equal(want.failed, report.failed)
        local msg
        for _, it in ipairs(report.items) do if not it.ok then msg = tostring(it.err) end end
        assert.matches(want.message, msg, 1, true)
        assert.equal("corrupt", (function()
          for _, it in ipairs(report.items) do if not it.ok then return it.err.kind end end
        end)())
        if want.hidden then assert.is_nil(msg:find(want.hidden, 1, true), "reveals the size") end
      end
      if want.restores then assert.equal(want.restores, calls.restore) end
      if want.victim ~= nil then assert.equal(want.victim or nil, read(dir .. "/victim")) end
      if op == "backup" then assert.equal(0, calls.backup, "a refused run downloads nothing") end
      sh("chmod 0700 " .. dir .. "; rm -rf " .. dir)
    end)
  end

  it("the journal is created 0600, and an existing one made 0600", function()
    local dir = tmpdir()
    write(dir .. "/manifest.journal", cjson.encode { journal = batch.FORMAT, project_id = PROJECT } .. "\n")
    sh("chmod 0644 " .. dir .. "/manifest.journal")
    local modes = {}
    local c = fake { page { "a", "b" } }
    assert(batch.backup(c, { dir = dir, on_progress = function()
      modes[#modes + 1] = core.fs.lstat(dir .. "/manifest.journal", true).mode
    end }))
    assert.same({ 384, 384 }, modes)
    sh("rm -rf " .. dir)
  end)
end)

-- ---------------------------------------------------------------- manifest and journal

local function manifest_text(head, items)
  local doc = { format = batch.FORMAT, project_id = PROJECT, complete = true }
  for k, v in pairs(head or {}) do doc[k] = v end
  return (cjson.encode(doc):gsub("}$", ',"items":' .. (items or "[]") .. "}"))
end

local GOOD_ITEM = '{"name":"a","file":"a.blob","sha256":"' .. ("0"):rep(64) .. '","bytes":%s}'

local MANIFEST_CASES = {
  { "items a JSON object", manifest_text(nil, '{"a":{}}'), "corrupt" },
  { "bytes 1499.5", manifest_text(nil, "[" .. GOOD_ITEM:format("1499.5") .. "]"), "corrupt" },
  { "bytes 1e400", manifest_text(nil, "[" .. GOOD_ITEM:format("1e400") .. "]"), "corrupt" },
  { "bytes NaN", manifest_text(nil, "[" .. GOOD_ITEM:format("NaN") .. "]"), "corrupt" },
  { "bytes -5", manifest_text(nil, "[" .. GOOD_ITEM:format("-5") .. "]"), "corrupt" },
  { "bytes a string", manifest_text(nil, "[" .. GOOD_ITEM:format('"12"') .. "]"), "corrupt" },
  { "bytes over the blob limit", manifest_text(nil, "[" .. GOOD_ITEM:format("1e15") .. "]"), "corrupt" },
  { "sha256 not hex", manifest_text(nil, '[{"name":"a","file":"a.blob","sha256":"'
      .. ("z"):rep(64) .. '","bytes":3}]'), "corrupt" },
  { "update_time NaN", manifest_text(nil, '[{"name":"a","file":"a.blob","sha256":"'
      .. ("0"):rep(64) .. '","bytes":3,"update_time":NaN}]'), "corrupt" },
  { "project_id true", manifest_text { project_id = true }, "corrupt" },
  { "project_id a table", manifest_text { project_id = { 1 } }, "corrupt" },
  { "complete a string", manifest_text { complete = "yes" }, "corrupt" },
  { "a JSON array", "[1,2]", "corrupt" },
  { "not JSON", "{ not json", "corrupt" },
}

describe("a manifest of the wrong shape", function()
  for _, case in ipairs(MANIFEST_CASES) do
    it(case[1] .. ": verify, restore and backup all say " .. case[3] .. ", none raises", function()
      local dir = tmpdir()
      write(dir .. "/manifest.json", case[2])
      local report, err = batch.verify(dir)
      assert.is_nil(report)
      assert.equal(case[3], err.kind)
      local c, calls = fake { page { "a" } }
      report, err = batch.restore(c, { dir = dir })
      assert.is_nil(report)
      assert.equal(case[3], err.kind)
      report, err = batch.backup(c, { dir = dir })
      assert.is_nil(report)
      assert.equal(case[3], err.kind)
      assert.equal(case[2], read(dir .. "/manifest.json"), "never overwritten")
      assert.equal(0, calls.backup + calls.restore)
      sh("rm -rf " .. dir)
    end)
  end
end)

describe("a set that is not whole", function()
  it("a directory holding only an empty journal is no set at all", function()
    local dir = tmpdir()
    write(dir .. "/manifest.journal", "")
    local report, err = batch.verify(dir)
    assert.is_nil(report)
    assert.equal("io", err.kind)
    sh("rm -rf " .. dir)
  end)

  it("a journal naming no project, without a manifest, is corrupt (not an empty intact set)", function()
    local dir = tmpdir()
    write(dir .. "/manifest.journal", "garbage\n")
    local report, err = batch.verify(dir)
    assert.is_nil(report)
    assert.equal("corrupt", err.kind)
    sh("rm -rf " .. dir)
  end)

  it("complete: false and a journal-only set say so in verify's report", function()
    local dir = make_set()
    local m = read(dir .. "/manifest.json"):gsub('"complete": true', '"complete": false')
    write(dir .. "/manifest.json", m)
    local v = assert(batch.verify(dir))
    assert.equal(3, v.ok)
    assert.is_false(v.complete)
    assert.is_false(v.journal_only)
    -- the same set as a killed run leaves it: the journal only
    local lines = { cjson.encode { journal = batch.FORMAT, project_id = PROJECT } }
    for _, name in ipairs { "a", "b", "c" } do lines[#lines + 1] = cjson.encode(entry(dir, name)) end
    os.remove(dir .. "/manifest.json")
    write(dir .. "/manifest.journal", table.concat(lines, "\n") .. "\n")
    v = assert(batch.verify(dir))
    assert.equal(3, v.ok)
    assert.is_false(v.complete)
    assert.is_true(v.journal_only)
    sh("rm -rf " .. dir)
  end)

  it("a journal-only set of project A is refused to a backup of project B (item 2)", function()
    local dir = make_set()
    os.remove(dir .. "/manifest.json")
    write(dir .. "/manifest.journal", cjson.encode { journal = batch.FORMAT, project_id = PROJECT } .. "\n"
      .. cjson.encode(entry(make_set(), "a")) .. "\n")
    local c, calls = fake({ page { "a", "z" } }, ("f"):rep(32))
    local report, err = batch.backup(c, { dir = dir, resume = true })
    assert.is_nil(report)
    assert.equal("config", err.kind)
    assert.matches("holds a backup of project " .. PROJECT, err.message, 1, true)
    assert.equal(0, calls.backup)
    sh("rm -rf " .. dir)
  end)

  it("a journal whose project differs from the manifest's is corrupt", function()
    local dir = make_set()
    write(dir .. "/manifest.journal", cjson.encode { journal = batch.FORMAT, project_id = ("f"):rep(32) } .. "\n")
    local report, err = batch.verify(dir)
    assert.is_nil(report)
    assert.equal("corrupt", err.kind)
    sh("rm -rf " .. dir)
  end)
end)

-- What a reader takes as the record of a file a killed re-run was replacing (item 1): every
-- state of the file between the journal line and the rename.
describe("a journal line resolved by the file's content", function()
  local function killed_rerun(state)
    local dir = make_set()
    local old = entry(dir, "a")
    local new_blob = blob_for("a")
    local new = { name = "a", file = "a.blob", sha256 = core.crypto.sha256_hex(new_blob), bytes = #new_blob, was = old }
    write(dir .. "/manifest.journal", cjson.encode { journal = batch.FORMAT, project_id = PROJECT } .. "\n"
      .. cjson.encode(new) .. "\n" .. '{"name":"b","file":"b.bl') -- and a torn last line
    if state == "renamed" then write(dir .. "/a.blob", new_blob) end
    return dir, old, new
  end

  for _, state in ipairs { "not renamed", "renamed" } do
    it("the file " .. state .. ": verify, resume and restore all take it as intact", function()
      local dir, old, new = killed_rerun(state)
      local want = state == "renamed" and new.sha256 or old.sha256
      assert.equal(want, entry(dir, "a").sha256)
      local v = assert(batch.verify(dir))
      assert.equal(3, v.ok)
      assert.equal(0, v.failed)
      local c, calls = fake { page { "a", "b", "c" } }
      local r = assert(batch.restore(c, { dir = dir }))
      assert.equal(3, r.ok)
      assert.equal(3, calls.restore)
      r = assert(batch.backup(c, { dir = dir, resume = true }))
      assert.equal(3, r.skipped)
      assert.equal(3, assert(batch.verify(dir)).ok)
      sh("rm -rf " .. dir)
    end)
  end

  it("a line for a new item whose file never landed is no item", function()
    local dir = make_set()
    write(dir .. "/manifest.journal", cjson.encode { journal = batch.FORMAT, project_id = PROJECT } .. "\n"
      .. cjson.encode { name = "d", file = "d.blob", sha256 = ("1"):rep(64), bytes = 900 } .. "\n")
    local v = assert(batch.verify(dir))
    assert.equal(3, v.ok)
    assert.equal(0, v.failed)
    sh("rm -rf " .. dir)
  end)
end)

-- ---------------------------------------------------------------- listings

local LISTING_CASES = {
  { "next_marker a number", { page({ "a" }, "5") }, "bad_response", "not a secret name" },
  { "next_marker a path", { page({ "a" }, '"a/b"') }, "bad_response", "not a secret name" },
  { "markers alternating m0, m1", function(marker)
      return page({ "a" }, marker == "m0" and '"m1"' or '"m0"') end, "bad_response", "loop" },
  { "next_marker the marker asked for ends the listing", function(marker)
      return marker and page({ "b" }, '"m0"') or page({ "a" }, '"m0"') end, nil, 2 },
  { "update_time 1e400", { page({ "a", "b" }, nil, ',"update_time":1e400') }, nil, 2 },
  { "update_time NaN", { page({ "a", "b" }, nil, ',"update_time":NaN') }, nil, 2 },
  { "update_time -Infinity", { page({ "a" }, nil, ',"update_time":-Infinity') }, nil, 1 },
  { "update_time a string", { page({ "a" }, nil, ',"update_time":"x"') }, nil, 1 },
  { "update_time a fraction", { page({ "a" }, nil, ',"update_time":0.5') }, nil, 1 },
  { "page_info a string", { '{"secrets":[{"name":"a"}],"page_info":"x"}' }, nil, 1 },
}

describe("a hostile listing", function()
  for _, case in ipairs(LISTING_CASES) do
    it(case[1] .. (case[3] and " is " .. case[3] or " is handled"), function()
      local dir = tmpdir()
      local c, calls = fake(case[2])
      local report, err = batch.backup(c, { dir = dir })
      if case[3] then
        assert.is_nil(report)
        assert.equal(case[3], err.kind)
        assert.matches(case[4], err.message, 1, true)
        assert.is_true(calls.list <= 3, "stopped early")
        assert.equal(0, calls.backup)
        -- nothing backed up, nothing written: the directory is as it was
        assert.is_nil(read(dir .. "/manifest.json"))
        assert.is_nil(read(dir .. "/manifest.journal"))
      else
        assert.equal(case[4], report.ok)
        local m = assert(batch.read_manifest(dir))
        assert.is_true(m.complete)
        for _, it in pairs(m.items) do assert.is_nil(it.update_time) end
        assert.equal(case[4], assert(batch.verify(dir)).ok)
      end
      sh("rm -rf " .. dir)
    end)
  end
end)

-- ---------------------------------------------------------------- a listing that goes bad mid-run

-- Three pages of five (a1..a5, b1..b5, c1..c5, markers m1 and m2); the third gives `last`
-- (a next_marker, or a status number for a refusal), nil: a good last page.
local function three_pages(last)
  local function names(p) local t = {} for i = 1, 5 do t[i] = p .. i end return t end
  return function(marker)
    if marker == nil then return page(names("a"), '"m1"') end
    if marker == "m1" then return page(names("b"), '"m2"') end
    if type(last) == "number" then return last end
    return page(names("c"), last)
  end
end

-- The set in dir holds exactly the names backed up (calls.backed), each verified.
local function holds_exactly(dir, backed)
  local m = assert(batch.read_manifest(dir))
  local n = 0
  for name in pairs(m.items) do
    assert.is_true(backed[name] == true, name .. " is in the set but was never backed up")
    n = n + 1
  end
  for name in pairs(backed) do assert.truthy(m.items[name], name .. " was backed up but is not in the set") end
  local v = assert(batch.verify(dir))
  assert.equal(n, v.ok)
  assert.equal(0, v.failed)
  return m, n
end

local MIDRUN_CASES = {
  { "a third page that loops back to m1", '"m1"', "bad_response", "goes round in a loop" },
  { "a third page whose next_marker is not a name", '"a/b"', "bad_response", "not a secret name" },
  { "a third page refused with 403", 403, "http", "403" },
}

describe("a listing that goes bad after its first pages were backed up (multi transport)", function()
  for _, case in ipairs(MIDRUN_CASES) do
    it(case[1] .. ": nil, err; what was done is in a consistent set marked incomplete; resume completes it", function()
      local dir = tmpdir()
      local c, calls = fake(three_pages(case[2]), nil, true)
      local report, err = batch.backup(c, { dir = dir, concurrency = 4 })
      assert.is_nil(report)
      assert.equal(case[3], err.kind)
      assert.matches(case[4], tostring(err), 1, true)
      -- the first pages' backups overlapped the listing: some were made before it went bad
      assert.is_true(calls.backup > 0, "nothing was backed up while the listing went on")
      for i = 1, 5 do assert.is_nil(calls.backed["c" .. i], "an item of the bad page was backed up") end
      assert.matches(("the %d secret(s) backed up"):format(calls.backup), tostring(err), 1, true)
      assert.matches("marked incomplete", tostring(err), 1, true)
      local m, n = holds_exactly(dir, calls.backed)
      assert.equal(calls.backup, n, "every backup made is recorded")
      assert.is_false(m.complete)
      assert.is_nil(read(dir .. "/manifest.journal"), "folded into manifest.json")
      -- once the listing is good again, resume backs up the rest and nothing twice
      local good, again = fake(three_pages(nil), nil, true)
      report = assert(batch.backup(good, { dir = dir, concurrency = 4, resume = true }))
      assert.equal(n, report.skipped)
      assert.equal(15 - n, report.ok)
      assert.equal(15 - n, again.backup)
      for name in pairs(calls.backed) do assert.is_nil(again.backed[name], name .. " backed up twice") end
      assert.is_true(assert(batch.read_manifest(dir)).complete)
      assert.equal(15, assert(batch.verify(dir)).ok)
      sh("rm -rf " .. dir)
    end)
  end

  it("with names given, a listing gone bad only ends the help it gives: every name is backed up", function()
    local dir = tmpdir()
    local c, calls = fake(three_pages('"m1"'), nil, true)
    local names = { "a1", "b2", "c3", "zz" }
    local report = assert(batch.backup(c, { dir = dir, concurrency = 4, names = names }))
    assert.equal(4, report.ok)
    assert.equal(4, calls.backup)
    assert.is_true(holds_exactly(dir, calls.backed).complete)
    sh("rm -rf " .. dir)
  end)

  it("a match applied page by page: what it selects across pages, and none of a listing is an error "
    .. "naming the count listed, with nothing sent or written", function()
    local dir = tmpdir()
    local c, calls = fake(three_pages(nil), nil, true)
    local report = assert(batch.backup(c, { dir = dir, concurrency = 4, match = "?3" }))
    assert.equal(3, report.ok)
    assert.same({ a3 = true, b3 = true, c3 = true }, calls.backed)
    local empty = tmpdir()
    local none, nc = fake(three_pages(nil), nil, true)
    local r, err = batch.backup(none, { dir = empty, concurrency = 4, match = "zz*" })
    assert.is_nil(r)
    assert.equal("invalid_argument", err.kind)
    assert.matches("match 'zz*' selects none of the 15 secrets listed", err.message, 1, true)
    assert.equal(3, nc.list)
    assert.equal(0, nc.backup)
    assert.is_nil(read(empty .. "/manifest.json"))
    assert.is_nil(read(empty .. "/manifest.journal"))
    sh("rm -rf " .. dir .. " " .. empty)
  end)

  it("progress while the listing goes on: total grows, more = true until the listing has ended", function()
    local dir = tmpdir()
    local c = fake(three_pages(nil), nil, true)
    assert(batch.backup(c, { dir = dir, concurrency = 4, names = { "a1", "a2", "b1" } }))
    -- resume: the skipped items are counted as their pages come, while the listing goes on
    c = fake(three_pages(nil), nil, true)
    local calls = {}
    local report = assert(batch.backup(c, { dir = dir, concurrency = 4, resume = true,
      on_progress = function(done, total, item, more)
        calls[#calls + 1] = { done = done, total = total, more = more, skipped = item.skipped }
      end }))
    assert.equal(15, #calls)
    assert.equal(3, report.skipped)
    local saw_more, last_total = false, 0
    for i, p in ipairs(calls) do
      assert.equal(i, p.done)
      assert.is_true(p.done <= p.total, "done above total")
      assert.is_true(p.total >= last_total, "total went down")
      assert.equal("boolean", type(p.more))
      if p.more then
        saw_more = true
        assert.is_true(p.total < 15)
      else
        assert.equal(15, p.total)
      end
      last_total = p.total
    end
    assert.is_true(saw_more, "no progress was reported while the listing went on")
    assert.is_false(calls[#calls].more)
    sh("rm -rf " .. dir)
  end)
end)

-- ---------------------------------------------------------------- misuse and selection

describe("misuse and selection", function()
  it("batch.backup from on_progress on the same client raises a clear error (item 10)", function()
    local dir, dir2 = tmpdir(), tmpdir()
    local c = fake { page { "a" } }
    local ok, msg = pcall(batch.backup, c, { dir = dir, on_progress = function()
      batch.backup(c, { dir = dir2 })
    end })
    assert.is_false(ok)
    assert.matches("csms.batch: this client is already running a batch operation", msg, 1, true)
    -- released by the raise: the client and the directory work again
    assert.equal(1, assert(batch.backup(c, { dir = dir })).ok)
    sh("rm -rf " .. dir .. " " .. dir2)
  end)

  it("restore with a name given twice uploads it once (item 19)", function()
    local dir = make_set()
    local c, calls = fake { page {} }
    local r = assert(batch.restore(c, { dir = dir, names = { "a", "a", "b", "a" } }))
    assert.equal(2, r.ok)
    assert.equal(2, calls.restore)
    r = assert(batch.backup(c, { dir = dir, names = { "c", "c" } }))
    assert.equal(1, r.ok)
    assert.equal(1, calls.backup)
    sh("rm -rf " .. dir)
  end)

  it("a match selecting nothing is an error, and writes nothing", function()
    local dir = tmpdir()
    local c = fake { page { "a" } }
    local r, err = batch.backup(c, { dir = dir, match = "zz*" })
    assert.is_nil(r)
    assert.equal("invalid_argument", err.kind)
    assert.is_nil(read(dir .. "/manifest.json"))
    local set = make_set()
    r, err = batch.restore(c, { dir = set, match = "zz*" })
    assert.is_nil(r)
    assert.equal("invalid_argument", err.kind)
    sh("rm -rf " .. dir .. " " .. set)
  end)
end)

-- ---------------------------------------------------------------- glob

-- Reference: a memoised recursive matcher (obviously right, polynomial).
local function reference(glob, name)
  local memo = {}
  local function m(i, j)
    local k = i * 1000 + j
    if memo[k] ~= nil then return memo[k] end
    local r
    if j > #glob then r = i > #name
    elseif glob:sub(j, j) == "*" then r = m(i, j + 1) or (i <= #name and m(i + 1, j))
    else r = i <= #name and (glob:sub(j, j) == "?" or glob:sub(j, j) == name:sub(i, i)) and m(i + 1, j + 1) end
    memo[k] = r or false
    return memo[k]
  end
  return m(1, 1)
end

describe("batch.glob (item 15)", function()
  it("agrees with a reference matcher on 3000 random globs and names", function()
    math.randomseed(13)
    local alphabet = { "a", "b", "*", "?", "." , "%" }
    for _ = 1, 3000 do
      local g, n = {}, {}
      for i = 1, math.random(0, 8) do g[i] = alphabet[math.random(#alphabet)] end
      for i = 1, math.random(0, 10) do n[i] = alphabet[math.random(1, 2)] end
      local glob, name = table.concat(g), table.concat(n)
      assert.equal(reference(glob, name), batch.glob(glob)(name), ("glob %q name %q"):format(glob, name))
    end
  end)

  it("matches a pathological glob in at most #name * #glob steps (counted, not timed)", function()
    -- '*a' sixteen times then 'b' against 64 'a's: exponential for a backtracking matcher.
    local glob, name = ("*a"):rep(16) .. "b", ("a"):rep(64)
    local match = batch.glob(glob)
    local steps = 0
    debug.sethook(function() steps = steps + 1 end, "", 1)
    local r = match(name)
    debug.sethook()
    assert.is_false(r)
    assert.is_true(steps < 40 * #name * #glob, "took " .. steps .. " VM instructions")
    -- and the whole check through a process of its own, which an exponential matcher (the
    -- Lua pattern '^.*a.*a...b$' runs inside one C call the hook cannot see) never ends.
    local interp = require("spec.support.interpreter").command
    local script = ('package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path; '
      .. 'local b = require "csms.batch"; for _ = 1, 100 do assert(not b.glob(%q)(%q)) end; print("done")')
      :format(glob, name)
    local cpath = package.cpath:match("[^;]*build/[^;]*") or "./build/lua54/?.so"
    local p = io.popen(("LUA_CPATH=%q timeout 60 %s -e %q 2>&1"):format(cpath .. ";;", interp, script))
    local out = p:read("*a")
    p:close()
    assert.equal("done\n", out)
  end)
end)
