-- csms-backup's commands over csms.batch: each takes the parsed arguments and a function that
-- makes the client from them (bin/csms-backup's), prints through csms.cli.output and returns
-- the exit status. A run that fails as a whole ends in output.fail (exit 1 or 2).
local csms = require "csms"
local batch = require "csms.batch"
local output = require "csms.cli.output"

local M = {}

-- --names: comma-separated, each once, each a valid secret name.
local function checked_names(args)
  if not args.names then return nil end
  local names, seen = {}, {}
  for n in args.names:gmatch("[^,]+") do
    n = n:gsub("^%s+", ""):gsub("%s+$", "")
    if n ~= "" and not seen[n] then names[#names + 1], seen[n] = n, true end
  end
  if #names == 0 then output.die("--names needs at least one name") end
  for _, n in ipairs(names) do
    local ok, err = csms.validate_name(n)
    if not ok then output.die(("--names: '%s': %s"):format(n, err.message)) end
  end
  return names
end

local function not_a_set(err)
  err.message = err.message .. " (is it a set made by " .. output.PROG .. " backup?)"
  return err
end

function M.backup(args, new_client)
  local names = checked_names(args)
  local client = new_client()
  local rep = output.reporter("backup", args.quiet, args.json, client.limiter)
  local report, err = batch.backup(client, {
    dir = args.dir, names = names, match = args.match, concurrency = args.concurrency,
    resume = args.resume or nil, incremental = args.incremental or nil, on_progress = rep.progress,
  })
  client:close()
  if not report then output.fail(err) end
  return output.finish_run("backup", report, rep, { json = args.json, quiet = args.quiet })
end

function M.restore(args, new_client)
  local names = checked_names(args)
  -- The set is checked before any credential is needed: an unreadable set is a usage error.
  local manifest, merr = batch.read_manifest(args.dir)
  if not manifest then output.fail(not_a_set(merr)) end
  local client = new_client()
  local rep = output.reporter("restore", args.quiet, args.json, client.limiter)
  local report, err = batch.restore(client, {
    dir = args.dir, names = names, match = args.match, concurrency = args.concurrency,
    on_conflict = args.on_conflict, dry_run = args.dry_run or nil, on_progress = rep.progress,
  })
  client:close()
  if not report then output.fail(err) end
  for _, it in ipairs(report.items) do
    it.bytes = it.bytes or (manifest.items[it.name] and manifest.items[it.name].bytes)
  end
  return output.finish_run("restore", report, rep,
    { json = args.json, quiet = args.quiet, summary = { dry_run = args.dry_run or nil } })
end

function M.verify(args)
  local rep = output.reporter("verify", args.quiet, args.json)
  local report, err = batch.verify(args.dir)
  if not report then output.fail(err.kind == "busy" and err or not_a_set(err)) end
  for i, item in ipairs(report.items) do rep.progress(i, #report.items, item) end
  return output.finish_run("verify", report, rep, { json = args.json, quiet = args.quiet,
    summary = { project_id = report.manifest and report.manifest.project_id } })
end

function M.list(args, new_client)
  local client = new_client()
  local all, err = batch.list(client)
  client:close()
  if not all then output.fail(err) end
  output.secrets(all, args.json)
  return output.EXIT_OK
end

return M
