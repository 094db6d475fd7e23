---@meta csms
-- LuaLS definitions of the public API of `csms` (docs/reference.md). Not loaded at run time:
-- add this folder to LuaLS's workspace.library. spec/reference_spec.lua checks it against the code.

---@alias csms.ErrorKind
---| "invalid_argument" # bad input; nothing was sent
---| "config"           # missing or unusable settings
---| "http"             # the service answered with an error status
---| "transport"        # connection refused or reset, DNS failure
---| "timeout"          # no complete answer in time
---| "tls"              # certificate verification or handshake failure
---| "response_too_large" # the answer passed max_response
---| "bad_response"     # a 2xx whose body is not what the API documents
---| "conflict_after_retry" # a retried restore met its own secret
---| "throttled"        # still answered 429 at the end of throttle_deadline
---| "phase"            # inside nginx, a phase without cosockets
---| "io"               # csms.batch: local files
---| "corrupt"          # csms.batch: a file does not match its manifest
---| "busy"             # csms.batch: another backup is writing the directory

---A runtime failure: the `err` of `nil, err`. `tostring(err)` gives one log line.
---@class csms.Error
---@field kind csms.ErrorKind
---@field message? string what happened, for a human
---@field op? string the call: "backup", "restore", "list", "sign", "verify", ...
---@field status? integer the HTTP status
---@field error_code? string the service's error code
---@field error_msg? string the service's error message
---@field request_id? string X-Request-Id, else the body's
---@field encoded_authorization_message? string IAM's encoded reason of a 403
---@field retryable? boolean the failure was transient
---@field attempts? integer attempts made
---@field conflict? boolean a restore met an existing secret
---@field budget_spent? boolean not retried: the retry budget was empty
---@field not_sent? boolean batch: not sent, the service failed everything since the budget ran out
---@field unsafe? boolean batch: the directory is writable by others
---@field field? string config: the setting at fault
---@field absent? boolean config: nothing configured in that source
---@field region? string config: the region of a failed project id lookup
---@field code? string batch: the class of a failed journal open or write
---@field note? string batch: what a backup whose listing failed midway did about it

---Options of csms.new (and of the one-shots).
---@class csms.Options
---@field credentials? csms.credentials.Provider where the keys come from (default: the SDKs' chain)
---@field ak? string access key (with sk)
---@field sk? string secret key
---@field security_token? string temporary keys' token
---@field auth_token? string an IAM token instead of AK/SK signing
---@field metadata? boolean|string false never, true always, or a URL of the ECS metadata service
---@field project_id? string 1-64 of [A-Za-z0-9_-]; else looked up in IAM for region
---@field iam_endpoint? string IAM endpoint for the project id lookup and OIDC
---@field region? string e.g. "cn-north-4"
---@field endpoint? string http(s)://host[:port], wins over region
---@field timeout? number seconds per attempt (default 30)
---@field connect_timeout? number seconds (default 10)
---@field retries? integer extra attempts, 0-100 (default 3)
---@field backoff_base? number seconds (default 0.2)
---@field backoff_max? number seconds (default 10)
---@field retry_after_max? number seconds (default 30)
---@field rate_limit? number requests per second, >= 0.5
---@field adaptive? boolean learn the gateway's limit from 429s (default true)
---@field throttle_deadline? number seconds of 429s before kind "throttled" (default 300)
---@field shared_dict? string nginx: a lua_shared_dict name
---@field verify_tls? boolean default true
---@field cafile? string CA bundle (libcurl)
---@field proxy? string proxy URL (libcurl)
---@field max_response? number bytes (default 16 MiB)
---@field transport? csms.Transport|fun(req: csms.Request): csms.Response?, csms.TransportError?

---@class csms.Request
---@field method string
---@field url string
---@field headers table<string, string>
---@field body? string
---@field once? boolean must not be re-sent by the transport itself

---@class csms.Response
---@field status integer
---@field headers table<string, string> lower-case names
---@field body string
---@field connects? integer new connections opened

---@class csms.TransportError
---@field kind csms.ErrorKind
---@field message string
---@field sent boolean the request may have reached the service

---@class csms.Completion
---@field id any
---@field res? csms.Response
---@field terr? csms.TransportError

---How requests reach the service (docs/reference.md, Transports).
---@class csms.Transport
local Transport = {}

---@param req csms.Request
---@return csms.Response? res
---@return csms.TransportError? terr
function Transport:request(req) end

---@param seconds number
function Transport:sleep(seconds) end

function Transport:close() end

---@return "serial"|"threads"|"multi"
function Transport:mode() end

---"multi" transports: starts a request.
---@param req csms.Request
---@return any? id
---@return string? message
function Transport:submit(req) end

---"multi" transports: waits up to timeout seconds for completions.
---@param timeout number
---@return csms.Completion[]
function Transport:poll(timeout) end

---@class csms.LimiterStatus
---@field rate? number nil while the limiter is off
---@field send_rate number
---@field throttled integer 429s met
---@field sends integer

---@class csms.Limiter
local Limiter = {}

---@return csms.LimiterStatus
function Limiter:status() end

---@class csms.BackupResult
---@field secret_blob string
---@field request_id string

---@class csms.RestoreResult
---@field secret table the secret's metadata, never its value
---@field request_id string

---@class csms.PageInfo
---@field next_marker? string
---@field previous_marker? string
---@field current_count? integer

---@class csms.ListResult
---@field secrets table[]
---@field page_info? csms.PageInfo
---@field request_id string

---@class csms.ListOptions
---@field limit? integer 1-200
---@field marker? string a secret name

---A CSMS client (csms.new).
---@class csms.Client
---@field endpoint string
---@field project_id? string nil until resolved when it comes from IAM or ECS metadata
---@field region? string
---@field auth string "aksk", "token", "oidc", "container", "ecs-metadata", a provider's name or "custom"
---@field retries integer
---@field backoff_base number
---@field backoff_max number
---@field retry_after_max number
---@field throttle_deadline number
---@field clock_skew number seconds added to the local clock when signing
---@field limiter csms.Limiter
local Client = {}

---DownloadSecretBlob: every version of the secret, encrypted.
---@param name string
---@return csms.BackupResult? res
---@return csms.Error? err
function Client:backup(name) end

---UploadSecretBlob: the secret recreated from a blob.
---@param blob string
---@return csms.RestoreResult? res
---@return csms.Error? err
function Client:restore(blob) end

---ListSecrets, one page.
---@param opts? csms.ListOptions
---@return csms.ListResult? res
---@return csms.Error? err
function Client:list_secrets(opts) end

---Any other CSMS call; path is the whole path ("/v1/" .. client.project_id .. "/secrets").
---@param method string
---@param path string
---@param body? string|table
---@return table|true|nil doc the decoded answer (true when empty)
---@return string|csms.Error|nil request_id_or_err
function Client:request(method, path, body) end

---Fetches the credentials and finds the project id now.
---@return string? project_id
---@return csms.Error? err
function Client:resolve() end

---Frees connections, wipes the signer; idempotent.
function Client:close() end

---@class csms.Credentials
---@field ak string
---@field sk string
---@field security_token? string

---@class csms.SignOptions
---@field unsigned_headers? string[]

---@class csms.errors
---@field kinds table<csms.ErrorKind, true>
local errors = {}

---@param v any
---@return boolean
function errors.is_error(v) end

---The same function as csms.assert.
---@generic T
---@param v? T
---@param err? any
---@param ... any
---@return T
---@return any ...
function errors.assert(v, err, ...) end

---@class csms
---@field _VERSION string
---@field USER_AGENT string
---@field errors csms.errors
---@field credentials csms.credentials
---@field Client csms.Client the clients' metatable
local csms = {}

---@param opts? csms.Options
---@return csms.Client? client
---@return csms.Error? err
function csms.new(opts) end

---@param name string
---@param opts? csms.Options
---@return csms.BackupResult? res
---@return csms.Error? err
function csms.backup(name, opts) end

---@param blob string
---@param opts? csms.Options
---@return csms.RestoreResult? res
---@return csms.Error? err
function csms.restore(blob, opts) end

---@param req csms.Request
---@param creds csms.Credentials
---@param opts? csms.SignOptions
---@return table<string, string>? headers
---@return csms.Error? err
function csms.sign(req, creds, opts) end

---@param req csms.Request
---@param opts? csms.SignOptions
---@return string? canonical
---@return csms.Error? err
function csms.canonical_request(req, opts) end

---assert for csms calls: returns its arguments when v is true, else raises tostring(err)
---(a string, at the caller's line).
---@generic T
---@param v? T
---@param err? any
---@param ... any
---@return T
---@return any ...
function csms.assert(v, err, ...) end

---@param name string
---@return true? ok
---@return csms.Error? err
function csms.validate_name(name) end

---@param blob string
---@return true? ok
---@return csms.Error? err
function csms.validate_blob(blob) end

return csms
