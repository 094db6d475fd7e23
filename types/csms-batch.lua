---@meta csms.batch
-- LuaLS definitions of the public API of `csms.batch` (docs/reference.md). Not loaded at run
-- time. spec/reference_spec.lua checks it against the code.

---`more`: a backup's listing goes on (`total`, the items selected so far, may still grow).
---@alias csms.batch.Progress fun(done: integer, total: integer, item: csms.batch.Item, more: boolean)

---@class csms.batch.BackupOptions
---@field dir string the set's directory (created 0700)
---@field names? string[] default: every secret of the project
---@field match? string a glob on names (* and ?)
---@field concurrency? integer requests in flight (default 8)
---@field resume? boolean skip recorded items whose file still verifies
---@field incremental? boolean skip secrets whose update_time is unchanged
---@field on_progress? csms.batch.Progress

---@class csms.batch.RestoreOptions
---@field dir string
---@field names? string[] default: every item of the set
---@field match? string
---@field concurrency? integer default 8
---@field on_conflict? "fail"|"skip"
---@field dry_run? boolean send no restore
---@field on_progress? csms.batch.Progress

---@class csms.batch.Item
---@field name string
---@field ok boolean
---@field skipped? boolean
---@field reason? "resume"|"unchanged"|"exists"
---@field err? csms.Error
---@field file? string
---@field bytes? integer
---@field dry_run? boolean

---@class csms.batch.Report
---@field ok integer
---@field failed integer
---@field skipped integer
---@field dir string
---@field items csms.batch.Item[]
---@field warnings? string[] backup
---@field complete? boolean restore, verify
---@field journal_only? boolean restore, verify
---@field manifest? table verify: { project_id, endpoint, created_at, complete, tool }

---@class csms.batch.Entry
---@field name string
---@field file string
---@field sha256 string
---@field bytes integer
---@field backed_up_at? string
---@field update_time? integer

---@class csms.batch.Manifest
---@field format string
---@field tool? string
---@field project_id? string
---@field endpoint? string
---@field region? string
---@field created_at? string
---@field updated_at? string
---@field complete? boolean
---@field journal_only? boolean
---@field items table<string, csms.batch.Entry>

---@class csms.batch
---@field FORMAT string "lua-csms-backup/1"
local batch = {}

---@param client csms.Client
---@param opts csms.batch.BackupOptions
---@return csms.batch.Report? report
---@return csms.Error? err
function batch.backup(client, opts) end

---@param client csms.Client
---@param opts csms.batch.RestoreOptions
---@return csms.batch.Report? report
---@return csms.Error? err
function batch.restore(client, opts) end

---@param dir string
---@return csms.batch.Report? report
---@return csms.Error? err
function batch.verify(dir) end

---@param client csms.Client
---@return table[]? secrets
---@return csms.Error? err
function batch.list(client) end

---@param dir string
---@return csms.batch.Manifest? manifest
---@return csms.Error? err
function batch.read_manifest(dir) end

---@param pattern? string
---@return fun(name: string): boolean
function batch.glob(pattern) end

return batch
