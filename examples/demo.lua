-- The whole workflow against a CSMS endpoint (the bundled emulator in `bash .ci/demo`):
-- create secrets with several versions, back them all up to a directory, delete them,
-- restore them from the directory, and check that every version came back identical.
--
-- From the checkout, after `bash .ci/build`, with CSMS_ENDPOINT, HUAWEICLOUD_SDK_AK, _SK and
-- _PROJECT_ID in the environment (bin/csms-emulator prints them):
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/lua54/?.so;;' lua5.4 examples/demo.lua DIR
-- (Another Lua: its build directory and interpreter, e.g. build/luajit and luajit; with the rock
-- installed, no LUA_PATH or LUA_CPATH.)
local csms = require "csms"
local batch = require "csms.batch"

local dir = assert(arg[1], "usage: demo.lua BACKUP_DIR")
local client = assert(csms.new { endpoint = assert(os.getenv("CSMS_ENDPOINT"), "set CSMS_ENDPOINT") })
local secrets_path = "/v1/" .. client.project_id .. "/secrets"

local function say(fmt, ...) io.write((fmt):format(...), "\n") end
local function must(res, err)
  if res == nil then
    io.stderr:write("demo: ", tostring(err), "\n")
    os.exit(1)
  end
  return res
end

local wanted = {
  ["db-password"] = { "hunter2", "correct horse battery staple", "Tr0ub4dor&3" },
  ["api-token"] = { "tok_live_4eC39HqLyjWDarjtT1zdp7dc", "tok_live_9ZBx1rTLm0aVnQ2e" },
  ["tls-private-key"] = { "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq...\n-----END PRIVATE KEY-----" },
}
local names = {}
for name in pairs(wanted) do names[#names + 1] = name end
table.sort(names)

say("1. creating secrets through %s", tostring(client))
for _, name in ipairs(names) do
  local versions = wanted[name]
  must(client:request("POST", secrets_path, { name = name, secret_string = versions[1] }))
  for i = 2, #versions do
    must(client:request("POST", secrets_path .. "/" .. name .. "/versions", { secret_string = versions[i] }))
  end
  say("   created %-16s with %d version(s)", name, #versions)
end

say("2. backing up every secret of the project to %s", dir)
local report = must(batch.backup(client, { dir = dir, concurrency = 4 }))
for _, item in ipairs(report.items) do
  say("   %-7s %-16s %s", item.ok and "ok" or "FAILED", item.name,
    item.ok and ("%d bytes, encrypted (%s.blob)"):format(item.bytes, item.name) or tostring(item.err))
end
local check = must(batch.verify(dir))
say("   verify: %d file(s) match manifest.json, %d do not", check.ok, check.failed)

say("3. deleting them")
for _, name in ipairs(names) do must(client:request("DELETE", secrets_path .. "/" .. name)) end
say("   the project now has %d secret(s)", #must(client:list_secrets()).secrets)

say("4. restoring from %s", dir)
report = must(batch.restore(client, { dir = dir }))
for _, item in ipairs(report.items) do
  say("   %-7s %s", item.ok and "ok" or "FAILED", item.name .. (item.ok and "" or ": " .. tostring(item.err)))
end

say("5. checking every version")
local identical = 0
for _, name in ipairs(names) do
  local listing = must(client:request("GET", secrets_path .. "/" .. name .. "/versions"))
  local values = {}
  for _, meta in ipairs(listing.version_metadatas) do
    local v = must(client:request("GET", secrets_path .. "/" .. name .. "/versions/" .. meta.id))
    values[#values + 1] = v.version.secret_string
  end
  table.sort(values)
  local expect = {}
  for i, v in ipairs(wanted[name]) do expect[i] = v end
  table.sort(expect)
  local same = #values == #expect
  for i = 1, #expect do same = same and values[i] == expect[i] end
  if same then identical = identical + 1 end
  say("   %-16s %d version(s) %s", name, #values, same and "identical" or "DIFFERENT")
end

client:close()
say("done: %d of %d secrets backed up, deleted and restored identical", identical, #names)
os.exit(identical == #names and 0 or 1)
