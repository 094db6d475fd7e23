---@meta csms.credentials
-- LuaLS definitions of `csms.credentials` (docs/reference.md). Not loaded at run time.
-- spec/reference_spec.lua checks it against the code.

---Keys a provider hands out (the same table until they change).
---@class csms.credentials.Keys
---@field ak? string
---@field sk? string
---@field security_token? string temporary keys
---@field expires_at? number seconds since the epoch (temporary keys)
---@field project_id? string when the source knows it
---@field auth_token? string an IAM token instead of keys

---Where a client's keys come from: any table with a credentials method.
---@class csms.credentials.Provider
---@field name? string what client.auth shows
local Provider = {}

---@return csms.credentials.Keys? creds
---@return csms.Error? err
function Provider:credentials() end

---Settings only, no I/O.
---@return true? ok
---@return csms.Error? err
function Provider:check() end

---@class csms.credentials.SourceOptions
---@field region? string
---@field iam_endpoint? string

---@class csms.credentials.OidcOptions
---@field idp_id string
---@field id_token_file string
---@field iam_endpoint? string
---@field region? string
---@field duration? integer seconds (default 21600)
---@field transport? csms.Transport
---@field refresh_margin? number seconds (default 600)

---@class csms.credentials.ContainerOptions
---@field uri string
---@field token_file string
---@field transport? csms.Transport
---@field refresh_margin? number

---@class csms.credentials.MetadataOptions
---@field endpoint? string default "http://169.254.169.254"
---@field want_project_id? boolean
---@field transport? csms.Transport
---@field refresh_margin? number

---@class csms.credentials.NewOptions
---@field refresh_margin? number seconds (default 600)
---@field transport? csms.Transport

---@class csms.credentials
local credentials = {}

---@param keys { ak: string, sk: string, security_token?: string }
---@return csms.credentials.Provider
function credentials.static(keys) end

---@param auth_token string
---@return csms.credentials.Provider
function credentials.token(auth_token) end

---@param opts? csms.credentials.SourceOptions
---@return csms.credentials.Provider
function credentials.env(opts) end

---@param opts? csms.credentials.SourceOptions
---@return csms.credentials.Provider
function credentials.profile(opts) end

---@param opts csms.credentials.OidcOptions
---@return csms.credentials.Provider
function credentials.oidc(opts) end

---@param opts csms.credentials.ContainerOptions
---@return csms.credentials.Provider
function credentials.container(opts) end

---@param opts? csms.credentials.MetadataOptions
---@return csms.credentials.Provider
function credentials.metadata(opts) end

---@param providers csms.credentials.Provider[]
---@param none_message? string
---@return csms.credentials.Provider
function credentials.chain(providers, none_message) end

---@param opts? table
---@return csms.credentials.Provider
function credentials.default(opts) end

---@param name string
---@param fetch fun(provider: csms.credentials.Provider): csms.credentials.Keys?, csms.Error?
---@param opts? csms.credentials.NewOptions
---@return csms.credentials.Provider
function credentials.new(name, fetch, opts) end

function credentials.forget() end

return credentials
