-- docs/reference.md and the LuaLS definitions in types/ against the code, so that neither can
-- drift from it and nothing becomes public unnoticed:
--   * every name a public module exports, every method and field of a client, is documented
--     in the reference (as public, or in its internal list) and every documented one exists;
--   * the options csms.new, batch.backup and batch.restore accept (asked of the code itself: an
--     unknown name raises "unknown option") are the reference's option tables and the meta
--     classes' fields, both ways;
--   * the error kinds the code produces (read from its sources: errors.new, kind =, transports'
--     failures, the C core's) are errors.kinds, the reference's kind table and the meta alias;
--     the error fields it sets are the reference's field table and csms.Error's fields;
--   * the fields of batch reports and their items, from real runs over a fake transport, are
--     the reference's tables and the meta classes';
--   * every module file under lua/csms is listed as public or internal.
local csms = require "csms"
local batch = require "csms.batch"
local shell = require "spec.support.shell"
local errors = require "csms.errors"
local core = require "csms.core"
local cjson = require "cjson.safe"

local function read(path) return assert(shell.read_all(path), path) end

local function sorted(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Names in a but not in b, sorted (what an assertion shows).
local function minus(a, b)
  local out = {}
  for k in pairs(a) do if not b[k] then out[#out + 1] = k end end
  table.sort(out)
  return out
end

-- ---------------------------------------------------------------- the reference

local REF = read("docs/reference.md")

-- The first cells of the table after <!-- ref:name -->: backticked names, e.g. `csms.new`.
local function ref_table(name)
  local start = REF:find("<!-- ref:" .. name .. " -->", 1, true)
  assert(start, "docs/reference.md has no table marked <!-- ref:" .. name .. " -->")
  local out, rows = {}, 0
  local after = REF:sub(start):match("^[^\n]*\n(.*)$")
  for line in after:gmatch("([^\n]*)\n") do
    if not line:find("^|") then
      if rows > 0 then break end
    else
      rows = rows + 1
      local cell = line:match("^|%s*([^|]*)|")
      local n = cell:match("^`([^`]+)`")
      if n then out[n:gsub("%(.*$", "")] = line end
    end
  end
  assert(next(out), "the table marked ref:" .. name .. " lists no names")
  return out
end

-- Names in level-3 headings: ### `csms.new(opts)`, `csms.backup(name, opts)` -> csms.new, ...
local function ref_headings()
  local out = {}
  for line in REF:gmatch("[^\n]+") do
    if line:find("^### ") then
      for n in line:gmatch("`([^`]+)`") do out[(n:gsub("%(.*$", ""))] = true end
    end
  end
  return out
end

local HEADINGS = ref_headings()
local INTERNAL = ref_table("internal")
local MODULES = ref_table("modules")

-- Everything the reference names: headings and the first cells of its tables.
local DOCUMENTED = {}
for n in pairs(HEADINGS) do DOCUMENTED[n] = true end
for name in REF:gmatch("<!%-%- ref:([%w_.]+) %-%->") do
  if name ~= "modules" then
    for n in pairs(ref_table(name)) do DOCUMENTED[n] = true end
  end
end

-- The short name a module's members are documented under: csms.new, batch.backup, errors.kinds.
local function prefix_of(module)
  return module == "csms" and "csms" or module:match("([%w_]+)$")
end

-- The public modules by that short name: { csms = require "csms", batch = ..., errors = ... }.
local PUBLIC = {}
for m, row in pairs(MODULES) do
  if row:find("| public") then PUBLIC[prefix_of(m)] = require(m) end
end

-- ---------------------------------------------------------------- the LuaLS definitions

local META_FILES = {}
do
  local p = assert(io.popen("ls types/*.lua"))
  for path in p:lines() do META_FILES[#META_FILES + 1] = path end
  p:close()
end
local META = {}
for i, path in ipairs(META_FILES) do META[i] = read(path) end

-- function csms.new( / function Client:backup( -> "csms.new", "Client:backup"
local function meta_functions()
  local out = {}
  for _, text in ipairs(META) do
    for owner, sep, name in text:gmatch("\nfunction ([%w_]+)([.:])([%w_]+)%(") do
      out[owner .. sep .. name] = true
    end
  end
  return out
end

-- The ---@field names of ---@class name.
local function meta_class(name)
  for _, text in ipairs(META) do
    local pos = text:find("---@class " .. name .. "\n", 1, true)
    if pos then
      local out = {}
      local rest = text:sub(pos):match("^[^\n]*\n(.*)$")
      for line in rest:gmatch("([^\n]*)\n") do
        local f = line:match("^%-%-%-@field ([%w_]+)")
        if not f then break end
        out[f] = true
      end
      return out
    end
  end
  error("types/ has no ---@class " .. name)
end

local function meta_alias(name)
  for _, text in ipairs(META) do
    local pos = text:find("---@alias " .. name .. "\n", 1, true)
    if pos then
      local out = {}
      local rest = text:sub(pos):match("^[^\n]*\n(.*)$")
      for line in rest:gmatch("([^\n]*)\n") do
        local v = line:match('^%-%-%-| "([%w_]+)"')
        if not v then break end
        out[v] = true
      end
      return out
    end
  end
  error("types/ has no ---@alias " .. name)
end

local META_FUNCTIONS = meta_functions()

-- ---------------------------------------------------------------- the code

local function sources()
  local out = {}
  local p = assert(io.popen("find lua/csms -name '*.lua' -not -path '*/emulator/*' | sort"))
  for path in p:lines() do out[#out + 1] = path end
  p:close()
  assert(#out > 5, "no sources found under lua/csms")
  return out
end

local SOURCES = sources()
local TEXT = {}
for _, path in ipairs(SOURCES) do TEXT[path] = read(path) end

local function module_name(path)
  local m = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return m
end

-- A client that sends nothing: explicit settings, a transport that never answers.
local function offline_client(extra)
  local opts = { ak = "AK", sk = "SK", project_id = "p0", endpoint = "http://127.0.0.1:9", region = "cn-north-4",
    transport = function() return nil, { kind = "transport", message = "off", sent = false } end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(csms.new(opts))
end

-- Every identifier in the sources, the reference and types/: the candidates for option names.
local function words()
  local out = {}
  local texts = { REF }
  for _, t in ipairs(META) do texts[#texts + 1] = t end
  for _, path in ipairs(SOURCES) do texts[#texts + 1] = TEXT[path] end
  for _, t in ipairs(texts) do
    for w in t:gmatch("[%a_][%w_]*") do out[w] = true end
  end
  return out
end

local THREAD = coroutine.create(function() end) -- a value no option accepts

-- The names fn({ [name] = THREAD }) does not reject as unknown: the options the code accepts.
local function accepted(fn)
  local out = {}
  for w in pairs(words()) do
    local ok, err = pcall(fn, w)
    assert(not ok, "a thread as option " .. w .. " was accepted")
    if not tostring(err):find("unknown option", 1, true) then out[w] = true end
  end
  return out
end

-- The first argument of each call name( in text, e.g. errors.new((a) and "io" or "corrupt", ...).
local function first_args(text, call)
  local out = {}
  local init = 1
  while true do
    local s, e = text:find(call, init, true)
    if not s then break end
    local depth, i, arg = 0, e + 1, nil
    while i <= #text do
      local c = text:sub(i, i)
      if c == "(" or c == "{" then depth = depth + 1
      elseif c == ")" or c == "}" then
        if depth == 0 then arg = text:sub(e + 1, i - 1) break end
        depth = depth - 1
      elseif c == "," and depth == 0 then arg = text:sub(e + 1, i - 1) break end
      i = i + 1
    end
    out[#out + 1] = arg or ""
    init = e + 1
  end
  return out
end

-- The whole argument list of each call name( (balanced).
local function call_args(text, call)
  local out = {}
  local init = 1
  while true do
    local s, e = text:find(call, init, true)
    if not s then break end
    local depth, i = 1, e + 1
    while i <= #text and depth > 0 do
      local c = text:sub(i, i)
      if c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1 end
      i = i + 1
    end
    out[#out + 1] = text:sub(e + 1, i - 2)
    init = e + 1
  end
  return out
end

-- Quoted identifiers of an expression that are values, not what a value is compared with.
local function literals(expr, into)
  expr = expr:gsub('[=~]=%s*"[^"]*"', "")
  for w in expr:gmatch('"([%a_][%w_]*)"') do into[w] = true end
end

-- The kinds the code can give: errors.new's first argument, kind = ..., a transport's
-- fail(kind, ...) and `return nil, kind, message` / `return kind, message` of its helpers, and
-- the C core's error_kind().
local function produced_kinds()
  local out = {}
  for _, path in ipairs(SOURCES) do
    local text = TEXT[path]
    for _, a in ipairs(first_args(text, "errors.new(")) do literals(a, out) end
    for _, a in ipairs(first_args(text, "fail(")) do literals(a, out) end
    for expr in text:gmatch("[^%w_]kind%s*=%s*([^\n,}]+)") do literals(expr, out) end
    for expr in text:gmatch("return nil, ([^\n]-), [^\n]+") do literals(expr, out) end
    for expr in text:gmatch("return ([^\n(]-), msg") do literals(expr, out) end
  end
  local found = false
  local p = assert(io.popen("ls src/*.c"))
  for path in p:lines() do
    local body = read(path):match("error_kind%([^)]*%)%s*(%b{})")
    if body then
      found = true
      for w in body:gmatch('return "([%w_]+)"') do out[w] = true end
    end
  end
  p:close()
  assert(found, "no error_kind() in src/*.c (the C core's transport error kinds)")
  return out
end

-- Fields the code puts on errors: errors.new's third argument's keys, err.x = assignments.
local function produced_error_fields()
  local out = { kind = true, message = true }
  for _, path in ipairs(SOURCES) do
    local text = TEXT[path]
    for _, args in ipairs(call_args(text, "errors.new(")) do
      local t = args:match("(%b{})%s*$")
      if t then
        local inner = t:sub(2, -2):gsub("%b{}", ""):gsub("%b()", "")
        for k in inner:gmatch("([%a_][%w_]*)%s*=[^=]") do out[k] = true end
      end
    end
    for line in text:gmatch("[^\n]+") do
      local lhs = line:match("^%s*([%w_.,%s]-)%s*=[^=]")
      if lhs then
        -- err, perr, ...; not terr: a transport's error (its own fields, see Transports)
        for v, k in lhs:gmatch("([%w_]*err)%.([%w_]+)") do
          if v ~= "terr" then out[k] = true end
        end
      end
    end
  end
  return out
end

-- ---------------------------------------------------------------- specs

describe("the reference (docs/reference.md, types/)", function()
  it("lists every module under lua/csms, public or internal, and only existing ones", function()
    local files, unlisted = {}, {}
    for _, path in ipairs(SOURCES) do
      local m = module_name(path)
      files[m] = true
      -- listed by name, or by its family: csms.cli.* lists csms.cli.output
      if not MODULES[m] and not MODULES[m:gsub("%.[%w_]+$", ".*")] then unlisted[#unlisted + 1] = m end
    end
    table.sort(unlisted)
    assert.same({}, unlisted)
    for m, row in pairs(MODULES) do
      assert.truthy(row:find("| public") or row:find("| internal"), m .. ": status public or internal")
      if m:find("%*") then
        local family = m:sub(1, -2)
        local any = m == "csms.emulator.*" -- not among SOURCES
        for f in pairs(files) do any = any or f:sub(1, #family) == family end
        assert.truthy(any, m .. " is documented but no module is of it")
      else
        assert.truthy(files[m] or m == "csms.core" and core, m .. " is documented but does not exist")
      end
    end
  end)

  it("documents every export of each public module, and each documented one exists", function()
    local checked = 0
    for m, row in pairs(MODULES) do
      if row:find("| public") then
        local mod = require(m)
        local prefix = prefix_of(m)
        for k in pairs(mod) do
          local n = prefix .. "." .. k
          assert(DOCUMENTED[n] or INTERNAL[n], m .. " exports " .. k .. ": document " .. n
            .. " in docs/reference.md, or list it as internal")
          checked = checked + 1
        end
        for n in pairs(DOCUMENTED) do
          local k = n:match("^" .. prefix:gsub("%p", "%%%0") .. "%.([%w_]+)$")
          if k then assert(mod[k] ~= nil, n .. " is documented but " .. m .. " has no " .. k) end
        end
      end
    end
    assert.truthy(checked >= 15)
  end)

  it("documents every client method and field; the internal ones are listed as such", function()
    local client = offline_client()
    local seen = 0
    for k, v in pairs(csms.Client) do
      if type(v) == "function" and not k:find("^__") then
        assert(DOCUMENTED["client:" .. k] or INTERNAL["client:" .. k], "client:" .. k
          .. " is public: document it, or make it internal and list it")
        seen = seen + 1
      end
    end
    for k in pairs(client) do
      assert(DOCUMENTED["client." .. k] or INTERNAL["client." .. k], "client." .. k
        .. " is a field of every client: document it, or list it as internal")
      seen = seen + 1
    end
    assert.truthy(seen >= 10)
    for n in pairs(DOCUMENTED) do
      local k = n:match("^client:([%w_]+)$")
      if k then assert.equal("function", type(csms.Client[k]), n .. " is documented") end
      k = n:match("^client%.([%w_]+)$")
      if k then assert.is_not_nil(rawget(client, k), n .. " is documented") end
      k = n:match("^limiter:([%w_]+)$")
      if k then assert.equal("function", type(client.limiter[k]), n .. " is documented") end
    end
    for n in pairs(INTERNAL) do
      local k = n:match("^client:([%w_]+)$")
      if k then assert.equal("function", type(csms.Client[k]), n .. " is listed as internal but is gone") end
      k = n:match("^client%.([%w_]+)$")
      if k then assert.is_not_nil(rawget(client, k), n .. " is listed as internal but is gone") end
      local m, f = n:match("^([%w_]+)%.([%w_]+)$")
      if m and m ~= "client" then
        assert.is_not_nil(PUBLIC[m], n .. ": which public module?")
        assert.is_not_nil(PUBLIC[m][f], n .. " is listed as internal but is gone")
      end
    end
    client:close()
  end)

  it("names the metamethods of clients and errors", function()
    local n = 0
    for _, mt in ipairs { csms.Client, getmetatable(errors.new("io", "x")) } do
      for k in pairs(mt) do
        if k:find("^__") and k ~= "__index" then
          assert(REF:find("`" .. k .. "`", 1, true), k .. " is not in docs/reference.md")
          n = n + 1
        end
      end
    end
    assert.truthy(n >= 4)
  end)

  it("has every public function in types/, and nothing there that the reference has not", function()
    local want = {}
    for n in pairs(DOCUMENTED) do
      local owner, sep, k = n:match("^([%w_]+)([.:])([%w_]+)$")
      if owner and not INTERNAL[n] then
        local fn
        if PUBLIC[owner] and sep == "." then fn = type(PUBLIC[owner][k]) == "function" and n
        elseif owner == "client" and sep == ":" then fn = "Client:" .. k
        elseif owner == "limiter" then fn = "Limiter:" .. k
        elseif owner == "transport" then fn = "Transport:" .. k
        elseif owner == "provider" and sep == ":" then fn = "Provider:" .. k
        end
        if fn then want[fn] = true end
      end
    end
    assert.same({}, minus(want, META_FUNCTIONS))
    assert.same({}, minus(META_FUNCTIONS, want))
  end)

  it("has csms.new's options: those the code accepts, in the table and in csms.Options", function()
    local code = accepted(function(w) return csms.new { [w] = THREAD } end)
    assert.truthy(code.ak and code.endpoint and code.transport)
    local ref = ref_table("options")
    assert.same({}, minus(code, ref))
    assert.same({}, minus(ref, code))
    local meta = meta_class("csms.Options")
    assert.same(sorted(code), sorted(meta))
    -- the table says each one's type and default columns
    for n, row in pairs(ref) do
      local cells = 0
      for _ in row:gsub("\\|", ""):gmatch("|") do cells = cells + 1 end
      assert.equal(5, cells, "options row " .. n .. " has option | type | default | meaning")
    end
  end)

  it("has batch.backup's and batch.restore's options: those the code accepts", function()
    local client = offline_client()
    for _, f in ipairs { "backup", "restore" } do
      local code = accepted(function(w)
        local opts = { dir = "/nonexistent/reference_spec" }
        opts[w] = THREAD
        return batch[f](client, opts)
      end)
      assert.truthy(code.dir and code.concurrency)
      local ref = ref_table("batch." .. f .. ".options")
      assert.same({}, minus(code, ref))
      assert.same({}, minus(ref, code))
      local meta = meta_class(f == "backup" and "csms.batch.BackupOptions" or "csms.batch.RestoreOptions")
      assert.same(sorted(code), sorted(meta))
    end
    client:close()
  end)

  it("has every error kind the code gives: errors.kinds, the kind table, csms.ErrorKind", function()
    local code = produced_kinds()
    assert.truthy(code.http and code.tls and code.phase and code.conflict_after_retry and code.throttled)
    assert.same({}, minus(code, errors.kinds)) -- no kind outside the catalogue
    assert.same({}, minus(errors.kinds, code)) -- no kind the code never gives
    local ref = ref_table("error.kinds")
    assert.same(sorted(errors.kinds), sorted(ref))
    assert.same(sorted(errors.kinds), sorted(meta_alias("csms.ErrorKind")))
  end)

  it("has every error field the code sets, in the field table and in csms.Error", function()
    local code = produced_error_fields()
    assert.truthy(code.status and code.request_id and code.budget_spent and code.attempts)
    local ref = {}
    for n in pairs(ref_table("error.fields")) do ref[assert(n:match("^err%.([%w_]+)$"), n)] = true end
    assert.same({}, minus(code, ref))
    assert.same({}, minus(ref, code))
    assert.same(sorted(ref), sorted(meta_class("csms.Error")))
  end)

  it("has the fields of batch reports and items as runs give them", function()
    -- A project of two secrets over a fake transport: "a" backs up, "b" answers 500.
    local blob = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
    local restored = {}
    local function answer(status, doc)
      return { status = status, headers = { ["x-request-id"] = "r1" }, body = cjson.encode(doc) }
    end
    local function fake(req)
      local path = req.url:match("^https?://[^/]+(/[^?]*)")
      if req.method == "GET" and path:find("/secrets$") then
        return answer(200, { secrets = { { name = "a", update_time = 1 }, { name = "b", update_time = 2 } },
          page_info = {} })
      elseif path:find("/secrets/a/backup$") then
        return answer(200, { secret_blob = blob })
      elseif path:find("/backup$") then
        return answer(500, { error_code = "X", error_msg = "down" })
      elseif path:find("/secrets/restore$") then
        if restored.a then
          return answer(400, { error_code = "CSMS.0002", error_msg = "The secret already exists." })
        end
        restored.a = true
        return answer(200, { secret = { name = "a" } })
      end
      return answer(404, {})
    end
    local client = offline_client { transport = fake, retries = 0 }
    local dir = os.tmpname()
    os.remove(dir)
    local reports, items = {}, {}
    local function add(r, err)
      assert(r, tostring(err))
      reports[#reports + 1] = r
      for _, it in ipairs(r.items) do items[#items + 1] = it end
    end
    add(batch.backup(client, { dir = dir }))                  -- ok a, failed b
    add(batch.backup(client, { dir = dir, resume = true }))   -- skipped a (resume)
    add(batch.restore(client, { dir = dir }))                 -- restores a
    add(batch.restore(client, { dir = dir, on_conflict = "skip" })) -- skipped a (exists)
    add(batch.restore(client, { dir = dir, dry_run = true })) -- a: already exists (it is listed)
    restored.a = nil
    add(batch.verify(dir))
    client:close()
    os.execute("rm -rf '" .. dir .. "'")

    -- a dry run with nothing there, on a project without "a"
    local empty = offline_client { transport = function(req)
      if req.method == "GET" then return answer(200, { secrets = {}, page_info = {} }) end
      return answer(500, {})
    end }
    local dir2 = os.tmpname()
    os.remove(dir2)
    local c2 = offline_client { transport = fake }
    assert(batch.backup(c2, { dir = dir2, names = { "a" } }))
    c2:close()
    add(batch.restore(empty, { dir = dir2, dry_run = true }))
    empty:close()
    os.execute("rm -rf '" .. dir2 .. "'")

    local rkeys, ikeys = {}, {}
    for _, r in ipairs(reports) do for k in pairs(r) do rkeys[k] = true end end
    for _, it in ipairs(items) do for k in pairs(it) do ikeys[k] = true end end
    local function short(t, p)
      local out = {}
      for n in pairs(t) do out[assert(n:match("^" .. p .. "%.([%w_]+)$"), n)] = true end
      return out
    end
    local rref, iref = short(ref_table("report.fields"), "report"), short(ref_table("item.fields"), "item")
    assert.same(sorted(rref), sorted(rkeys))
    assert.same(sorted(iref), sorted(ikeys))
    assert.same(sorted(rref), sorted(meta_class("csms.batch.Report")))
    assert.same(sorted(iref), sorted(meta_class("csms.batch.Item")))
  end)

  it("has the transport interface the built-in transports implement", function()
    local methods = {}
    for n in pairs(ref_table("transport.methods")) do
      methods[#methods + 1] = assert(n:match("^transport:([%w_]+)$"), n)
    end
    table.sort(methods)
    assert.same({ "close", "mode", "poll", "request", "sleep", "submit" }, methods)
    local client = assert(csms.new { ak = "AK", sk = "SK", project_id = "p0", endpoint = "http://127.0.0.1:9" })
    local t = client.transport -- the default one: libcurl, "multi"
    assert.equal("multi", t:mode())
    for _, m in ipairs(methods) do assert.equal("function", type(t[m]), "libcurl's transport:" .. m) end
    client:close()
  end)

  it("has types/ files that are valid Lua, LuaLS meta files named for their modules", function()
    assert.truthy(#META_FILES >= 2)
    for i, path in ipairs(META_FILES) do
      -- types/csms-batch.lua is "---@meta csms.batch", and so on
      local module = path:match("^types/(.-)%.lua$"):gsub("%-", ".")
      assert.equal("---@meta " .. module, META[i]:match("^[^\n]+"))
      assert.truthy(MODULES[module] and MODULES[module]:find("| public"), module .. " is a public module")
      assert.truthy(loadfile(path))
    end
  end)
end)
