-- luacheck: max line length 140
-- Bad input from the caller: one case per row of docs/bad-input.md (same ids, same outcome,
-- same message), and a check that the two tables have the same rows. Misuse (a wrong type)
-- raises; a bad value of the right type is `nil, err` with a kind; nothing reaches the network
-- (the client's transport records every request, and each case checks it recorded none).
-- `lua5.4 spec/bad_input_spec.lua --markdown` prints the table rows as they come out now.
if not describe then -- run as a script: set up the paths a checkout needs
  package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
  package.cpath = "./build/" .. (rawget(_G, "jit") and "luajit" or "lua54") .. "/?.so;" .. package.cpath
end
local csms = require "csms"
local batch = require "csms.batch"

local PROJECT = "0123456789abcdef0123456789abcdef"
local HOST = "https://kms.cn-north-4.myhuaweicloud.com"
local BLOB = ")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b.c"
local CREDS = { ak = "AK", sk = "SK" }
local DATE = { ["X-Sdk-Date"] = "20261123T000000Z" }
local MB = ("x"):rep(1024 * 1024)

local sent = {}
local function recorder(req)
  sent[#sent + 1] = req
  return nil, { kind = "transport", message = "recorder: not sent", sent = false }
end

local function opts(extra)
  local o = { ak = "AK", sk = "SK", project_id = PROJECT, endpoint = HOST, retries = 0,
    transport = recorder }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Like opts, without a transport: the libcurl one, which refuses bad bytes itself.
local function curl_opts(extra)
  local o = opts(extra)
  o.transport = nil
  o.endpoint = "http://127.0.0.1:9"
  return o
end

local function client(extra) return assert(csms.new(opts(extra))) end

local function req(t)
  t.method = t.method or "GET"
  t.url = t.url or HOST .. "/v1/p/secrets"
  t.headers = t.headers or DATE
  return t
end

-- id, the call as the table shows it, the function, the outcome ("raise", "ok" or an error
-- kind) and the message (a plain substring of the error's message).
local CASES = {
  -- csms.new: options
  { "new-options-string", 'csms.new("ak")', function() return csms.new("ak") end,
    "raise", "options must be a table or nil, got string" },
  { "new-unknown-option", "csms.new{..., tiemout = 5}", function() return csms.new(opts { tiemout = 5 }) end,
    "raise", "unknown option 'tiemout'" },
  { "new-ak-number", "csms.new{ak = 123, ...}", function() return csms.new(opts { ak = 123 }) end,
    "raise", "ak must be a string, got number" },
  { "new-sk-table", "csms.new{sk = {}, ...}", function() return csms.new(opts { sk = {} }) end,
    "raise", "sk must be a string, got table" },
  { "new-timeout-string", 'csms.new{timeout = "5", ...}', function() return csms.new(opts { timeout = "5" }) end,
    "raise", "timeout must be a number, got string" },
  { "new-verify-tls-string", 'csms.new{verify_tls = "no", ...}',
    function() return csms.new(opts { verify_tls = "no" }) end, "raise", "verify_tls must be a boolean, got string" },
  { "new-retries-negative", "csms.new{retries = -1, ...}", function() return csms.new(opts { retries = -1 }) end,
    "raise", "retries must be a whole number from 0 to 100" },
  { "new-retries-fraction", "csms.new{retries = 1.5, ...}", function() return csms.new(opts { retries = 1.5 }) end,
    "raise", "retries must be a whole number from 0 to 100" },
  { "new-transport-string", 'csms.new{transport = "curl", ...}',
    function() return csms.new(opts { transport = "curl" }) end,
    "raise", "transport must be a function or a transport table, got string" },
  { "new-timeout-negative", "csms.new{timeout = -1, ...}", function() return csms.new(curl_opts { timeout = -1 }) end,
    "raise", "timeout must be a positive number" },
  { "new-timeout-nan", "csms.new{timeout = 0/0, ...}", function() return csms.new(curl_opts { timeout = 0 / 0 }) end,
    "raise", "timeout must be a positive number" },
  { "new-connect-timeout-zero", "csms.new{connect_timeout = 0, ...}",
    function() return csms.new(curl_opts { connect_timeout = 0 }) end,
    "raise", "connect_timeout must be a positive number" },
  { "new-max-response-negative", "csms.new{max_response = -1, ...}",
    function() return csms.new(curl_opts { max_response = -1 }) end, "raise", "max_response must be a positive number" },
  { "new-retries-huge", "csms.new{retries = math.huge, ...}", function() return csms.new(opts { retries = math.huge }) end,
    "raise", "retries must be a whole number from 0 to 100" },
  { "new-ak-only", "csms.new{ak = \"AK\", no sk}", function()
      local o = opts(); o.sk = nil; return csms.new(o) end,
    "config", "ak and sk must be given together (got only ak)" },
  { "new-ak-empty", 'csms.new{ak = "", ...}', function() return csms.new(opts { ak = "" }) end,
    "config", "ak is empty or has spaces, commas or control characters" },
  { "new-ak-comma", 'csms.new{ak = "A,B", ...}', function() return csms.new(opts { ak = "A,B" }) end,
    "config", "ak is empty or has spaces, commas or control characters" },
  { "new-ak-crlf", 'csms.new{ak = "AK\\r\\nX-Evil: 1", ...}',
    function() return csms.new(opts { ak = "AK\r\nX-Evil: 1" }) end,
    "config", "ak is empty or has spaces, commas or control characters" },
  { "new-sk-empty", 'csms.new{sk = "", ...}', function() return csms.new(opts { sk = "" }) end,
    "config", "sk is empty" },
  { "new-token-crlf", 'csms.new{security_token = "t\\r\\nX-Evil: 1", ...}',
    function() return csms.new(opts { security_token = "t\r\nX-Evil: 1" }) end,
    "config", "security_token is empty or has control characters" },
  { "new-token-nul", 'csms.new{security_token = "t\\0u", ...}',
    function() return csms.new(opts { security_token = "t\0u" }) end,
    "config", "security_token is empty or has control characters" },
  { "new-auth-token-crlf", 'csms.new{auth_token = "t\\r\\nX-Evil: 1"} then backup (libcurl transport)',
    function()
      local o = curl_opts { auth_token = "t\r\nX-Evil: 1" }
      o.ak, o.sk = nil, nil
      local c = assert(csms.new(o))
      return c:backup("s")
    end, "invalid_argument", "a header name or value contains ':' in the name, CR, LF or NUL" },
  { "new-endpoint-path", 'csms.new{endpoint = "https://h/v1", ...}',
    function() return csms.new(opts { endpoint = "https://h/v1" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-endpoint-crlf", 'csms.new{endpoint = "https://h\\r\\nX-Evil: 1", ...}',
    function() return csms.new(opts { endpoint = "https://h\r\nX-Evil: 1" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-endpoint-nul", 'csms.new{endpoint = "https://h\\0.evil", ...}',
    function() return csms.new(opts { endpoint = "https://h\0.evil" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-endpoint-userinfo", 'csms.new{endpoint = "https://user@h", ...}',
    function() return csms.new(opts { endpoint = "https://user@h" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-endpoint-ftp", 'csms.new{endpoint = "ftp://h", ...}',
    function() return csms.new(opts { endpoint = "ftp://h" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-endpoint-port-range", 'csms.new{endpoint = "https://h:65536", ...}',
    function() return csms.new(opts { endpoint = "https://h:65536" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-endpoint-ipv6-unclosed", 'csms.new{endpoint = "https://[::1", ...}',
    function() return csms.new(opts { endpoint = "https://[::1" }) end,
    "config", "endpoint must be http(s)://host[:port] with no path" },
  { "new-region-unknown", 'csms.new{region = "xx-nowhere-1", no endpoint}',
    function() local o = opts { region = "xx-nowhere-1" }; o.endpoint = nil; return csms.new(o) end,
    "config", "unknown region 'xx-nowhere-1'" },
  { "new-project-crlf", 'csms.new{project_id = "p\\r\\nX-Evil: 1", ...}',
    function() return csms.new(opts { project_id = "p\r\nX-Evil: 1" }) end,
    "config", "project_id must be 1-64 letters, digits, '-' or '_'" },
  { "new-project-slash", 'csms.new{project_id = "../admin", ...}',
    function() return csms.new(opts { project_id = "../admin" }) end,
    "config", "project_id must be 1-64 letters, digits, '-' or '_'" },
  { "new-project-huge", "csms.new{project_id = 65 characters, ...}",
    function() return csms.new(opts { project_id = ("a"):rep(65) }) end,
    "config", "project_id must be 1-64 letters, digits, '-' or '_'" },
  -- secret names
  { "backup-name-number", "client:backup(42)", function() return client():backup(42) end,
    "raise", "secret name must be a string, got number" },
  { "backup-name-nil", "client:backup()", function() return client():backup() end,
    "raise", "secret name must be a string, got nil" },
  { "backup-name-empty", 'client:backup("")', function() return client():backup("") end,
    "invalid_argument", "secret name must be 1 to 64 characters long" },
  { "backup-name-65", "client:backup(65 characters)", function() return client():backup(("a"):rep(65)) end,
    "invalid_argument", "secret name must be 1 to 64 characters long" },
  { "backup-name-huge", "client:backup(1 MiB name)", function() return client():backup(MB) end,
    "invalid_argument", "secret name must be 1 to 64 characters long" },
  { "backup-name-slash", 'client:backup("../x")', function() return client():backup("../x") end,
    "invalid_argument", "secret name may only hold letters, digits, '_' and '-'" },
  { "backup-name-crlf", 'client:backup("a\\r\\nX-Evil: 1")', function() return client():backup("a\r\nX-Evil: 1") end,
    "invalid_argument", "secret name may only hold letters, digits, '_' and '-'" },
  { "backup-name-nul", 'client:backup("a\\0b")', function() return client():backup("a\0b") end,
    "invalid_argument", "secret name may only hold letters, digits, '_' and '-'" },
  { "backup-name-query", 'client:backup("a?b=1")', function() return client():backup("a?b=1") end,
    "invalid_argument", "secret name may only hold letters, digits, '_' and '-'" },
  { "backup-name-unicode", 'client:backup("секрет")', function() return client():backup("секрет") end,
    "invalid_argument", "secret name may only hold letters, digits, '_' and '-'" },
  { "validate-name-table", "csms.validate_name({})", function() return csms.validate_name({}) end,
    "raise", "secret name must be a string, got table" },
  { "validate-name-space", 'csms.validate_name("a b")', function() return csms.validate_name("a b") end,
    "invalid_argument", "secret name may only hold letters, digits, '_' and '-'" },
  { "one-shot-backup-number", "csms.backup(1, opts)", function() return csms.backup(1, opts()) end,
    "raise", "secret name must be a string, got number" },
  -- blobs
  { "restore-blob-number", "client:restore(1)", function() return client():restore(1) end,
    "raise", "secret_blob must be a string, got number" },
  { "restore-blob-empty", 'client:restore("")', function() return client():restore("") end,
    "invalid_argument", "secret_blob is empty" },
  { "restore-blob-prefix", 'client:restore("not a blob")', function() return client():restore("not a blob") end,
    "invalid_argument", "secret_blob does not start with \")CloudSecretManagementBackupV1.\"" },
  { "restore-blob-no-jwe", "client:restore(prefix .. \"com\")",
    function() return client():restore(")CloudSecretManagementBackupV1.com") end,
    "invalid_argument", "secret_blob has no JWE header after the domain" },
  { "restore-blob-crlf", "client:restore(blob with \\r\\n inside the JWE)",
    function() return client():restore(BLOB:gsub("%.a%.", ".a\r\nX-Evil: 1.")) end,
    "invalid_argument", "secret_blob has a character outside base64url in its JWE" },
  { "restore-blob-nul", "client:restore(blob .. \"\\0\")", function() return client():restore(BLOB .. "\0") end,
    "invalid_argument", "secret_blob has a character outside base64url in its JWE" },
  { "restore-blob-quote", "client:restore(blob with '\"' (JSON injection))",
    function() return client():restore(BLOB .. '","x":"') end,
    "invalid_argument", "secret_blob has a character outside base64url in its JWE" },
  { "restore-blob-parts", "client:restore(JWE of 3 parts)",
    function() return client():restore(")CloudSecretManagementBackupV1.comeyJhbGciOiJ4IiwiZW5jIjoieSJ9.a.b") end,
    "invalid_argument", "secret_blob's JWE must have 4 or 5 parts separated by '.'" },
  { "restore-blob-header-not-json", "client:restore(JWE header not JSON)",
    function() return client():restore(")CloudSecretManagementBackupV1.comeyJhYmM.a.b.c") end,
    "invalid_argument", "secret_blob's JWE header is not a JSON object" },
  { "restore-blob-header-no-alg", "client:restore(JWE header without alg/enc)",
    function() return client():restore(")CloudSecretManagementBackupV1.comeyJhIjoxfQ.a.b.c") end,
    "invalid_argument", "secret_blob's JWE header does not name alg and enc" },
  { "restore-blob-huge", "client:restore(blob over 5,242,880 characters)",
    function() return client():restore(BLOB .. ("A"):rep(5242880)) end,
    "invalid_argument", "secret_blob is longer than 5,242,880 characters" },
  { "validate-blob-nil", "csms.validate_blob()", function() return csms.validate_blob() end,
    "raise", "secret_blob must be a string, got nil" },
  { "one-shot-restore-table", "csms.restore({}, opts)", function() return csms.restore({}, opts()) end,
    "raise", "secret_blob must be a string, got table" },
  -- list_secrets
  { "list-options-string", 'client:list_secrets("x")', function() return client():list_secrets("x") end,
    "raise", "options must be a table or nil, got string" },
  { "list-limit-string", 'client:list_secrets{limit = "10"}', function() return client():list_secrets { limit = "10" } end,
    "raise", "limit must be a number or nil, got string" },
  { "list-limit-zero", "client:list_secrets{limit = 0}", function() return client():list_secrets { limit = 0 } end,
    "invalid_argument", "limit must be a whole number from 1 to 200" },
  { "list-limit-201", "client:list_secrets{limit = 201}", function() return client():list_secrets { limit = 201 } end,
    "invalid_argument", "limit must be a whole number from 1 to 200" },
  { "list-limit-fraction", "client:list_secrets{limit = 1.5}",
    function() return client():list_secrets { limit = 1.5 } end,
    "invalid_argument", "limit must be a whole number from 1 to 200" },
  { "list-limit-nan", "client:list_secrets{limit = 0/0}", function() return client():list_secrets { limit = 0 / 0 } end,
    "invalid_argument", "limit must be a whole number from 1 to 200" },
  { "list-marker-number", "client:list_secrets{marker = 5}", function() return client():list_secrets { marker = 5 } end,
    "raise", "marker must be a string or nil, got number" },
  { "list-marker-injection", 'client:list_secrets{marker = "a&limit=999"}',
    function() return client():list_secrets { marker = "a&limit=999" } end,
    "invalid_argument", "marker: secret name may only hold letters, digits, '_' and '-'" },
  { "list-marker-crlf", 'client:list_secrets{marker = "a\\r\\nX-Evil: 1"}',
    function() return client():list_secrets { marker = "a\r\nX-Evil: 1" } end,
    "invalid_argument", "marker: secret name may only hold letters, digits, '_' and '-'" },
  -- client:request
  { "request-method-nil", "client:request(nil, \"/v1\")", function() return client():request(nil, "/v1") end,
    "raise", "method must be a string, got nil" },
  { "request-path-number", 'client:request("GET", 1)', function() return client():request("GET", 1) end,
    "raise", "path must be a string, got number" },
  { "request-body-number", 'client:request("POST", "/v1", 1)', function() return client():request("POST", "/v1", 1) end,
    "raise", "body must be a string, a table or nil, got number" },
  { "request-path-relative", 'client:request("GET", "v1/x")', function() return client():request("GET", "v1/x") end,
    "invalid_argument", "path must start with '/'" },
  { "request-path-crlf", 'client:request("GET", "/v1\\r\\nX-Evil: 1")',
    function() return client():request("GET", "/v1\r\nX-Evil: 1") end,
    "invalid_argument", "url contains a space or a control character (CR, LF, NUL...)" },
  { "request-path-nul", 'client:request("GET", "/v1\\0x")', function() return client():request("GET", "/v1\0x") end,
    "invalid_argument", "url contains a space or a control character (CR, LF, NUL...)" },
  { "request-path-space", 'client:request("GET", "/v1 HTTP/1.1")',
    function() return client():request("GET", "/v1 HTTP/1.1") end,
    "invalid_argument", "url contains a space or a control character (CR, LF, NUL...)" },
  { "request-path-at", 'client:request("GET", "@evil.example/x")',
    function() return client():request("GET", "@evil.example/x") end,
    "invalid_argument", "path must start with '/'" },
  { "request-method-lower", 'client:request("get", "/v1")', function() return client():request("get", "/v1") end,
    "invalid_argument", "method must be upper-case letters (GET, POST...)" },
  { "request-method-crlf", 'client:request("GET /x HTTP/1.1\\r\\n", "/v1")',
    function() return client():request("GET /x HTTP/1.1\r\n", "/v1") end,
    "invalid_argument", "method must be upper-case letters (GET, POST...)" },
  { "request-method-empty", 'client:request("", "/v1")', function() return client():request("", "/v1") end,
    "invalid_argument", "method is empty" },
  { "request-body-cycle", 'client:request("POST", "/v1", t) with t.t = t',
    function() local t = {}; t.t = t; return client():request("POST", "/v1", t) end,
    "invalid_argument", "body" },
  { "request-body-function", 'client:request("POST", "/v1", {f = print})',
    function() return client():request("POST", "/v1", { f = print }) end,
    "invalid_argument", "body" },
  { "request-after-close", "client:close(); client:backup(\"s\")",
    function() local c = client(); c:close(); return c:backup("s") end,
    "raise", "client used after close" },
  -- csms.sign and csms.canonical_request
  { "sign-request-nil", "csms.sign(nil, creds)", function() return csms.sign(nil, CREDS) end,
    "raise", "request must be a table, got nil" },
  { "sign-creds-nil", "csms.sign(req)", function() return csms.sign(req {}) end,
    "raise", "credentials must be a table, got nil" },
  { "sign-sk-number", "csms.sign(req, {ak = \"AK\", sk = 1})", function() return csms.sign(req {}, { ak = "AK", sk = 1 }) end,
    "raise", "credentials.sk must be a string, got number" },
  { "sign-url-number", "csms.sign({method = \"GET\", url = 1}, creds)",
    function() return csms.sign({ method = "GET", url = 1 }, CREDS) end,
    "raise", "request.url must be a string, got number" },
  { "sign-body-table", "csms.sign({..., body = {}}, creds)", function() return csms.sign(req { body = {} }, CREDS) end,
    "raise", "request.body must be a string or nil, got table" },
  { "sign-headers-string", 'csms.sign({..., headers = "A: b"}, creds)',
    function() return csms.sign(req { headers = "A: b" }, CREDS) end,
    "raise", "request.headers must be a table or nil, got string" },
  { "sign-header-name-number", "csms.sign({..., headers = {[1] = \"x\"}}, creds)",
    function() return csms.sign(req { headers = { "x", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "raise", "csms.sign: header names and values must be strings" },
  { "sign-header-value-table", "csms.sign({..., headers = {A = {}}}, creds)",
    function() return csms.sign(req { headers = { A = {}, ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "raise", "csms.sign: header names and values must be strings" },
  { "sign-header-value-crlf", 'csms.sign({..., headers = {A = "b\\r\\nX-Evil: 1"}}, creds)',
    function() return csms.sign(req { headers = { A = "b\r\nX-Evil: 1", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "invalid_argument", "a header value contains CR, LF or NUL" },
  { "sign-header-value-nul", 'csms.sign({..., headers = {A = "b\\0"}}, creds)',
    function() return csms.sign(req { headers = { A = "b\0", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "invalid_argument", "a header value contains CR, LF or NUL" },
  { "sign-header-name-crlf", 'csms.sign({..., headers = {["A\\r\\nX-Evil"] = "1"}}, creds)',
    function() return csms.sign(req { headers = { ["A\r\nX-Evil"] = "1", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "invalid_argument", "a header name has a character outside the HTTP token set" },
  { "sign-header-name-colon", 'csms.sign({..., headers = {["A:B"] = "1"}}, creds)',
    function() return csms.sign(req { headers = { ["A:B"] = "1", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "invalid_argument", "a header name has a character outside the HTTP token set" },
  { "sign-header-name-empty", 'csms.sign({..., headers = {[""] = "1"}}, creds)',
    function() return csms.sign(req { headers = { [""] = "1", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "invalid_argument", "a header name is empty" },
  { "sign-header-twice", 'csms.sign({..., headers = {A = "1", a = "2"}}, creds)',
    function() return csms.sign(req { headers = { A = "1", a = "2", ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "invalid_argument", "a header is given twice (names differ only in case)" },
  { "sign-date-huge", "csms.sign({..., headers = {[\"X-Sdk-Date\"] = 65 characters}}, creds)",
    function() return csms.sign(req { headers = { ["X-Sdk-Date"] = ("9"):rep(65) } }, CREDS) end,
    "invalid_argument", "x-sdk-date header is too long" },
  { "sign-header-value-huge", "csms.sign({..., headers = {A = 1 MiB}}, creds)",
    function() return csms.sign(req { headers = { A = MB, ["X-Sdk-Date"] = "20261123T000000Z" } }, CREDS) end,
    "ok", "" },
  { "sign-url-crlf", 'csms.sign({url = HOST .. "/a\\r\\nX-Evil: 1"}, creds)',
    function() return csms.sign(req { url = HOST .. "/a\r\nX-Evil: 1" }, CREDS) end,
    "invalid_argument", "url contains a space or a control character (CR, LF, NUL...)" },
  { "sign-url-nul", 'csms.sign({url = HOST .. "/a\\0b"}, creds)',
    function() return csms.sign(req { url = HOST .. "/a\0b" }, CREDS) end,
    "invalid_argument", "url contains a space or a control character (CR, LF, NUL...)" },
  { "sign-url-relative", 'csms.sign({url = "/v1/x"}, creds)', function() return csms.sign(req { url = "/v1/x" }, CREDS) end,
    "invalid_argument", "url must be absolute: http(s)://host[:port]/path" },
  { "sign-url-ftp", 'csms.sign({url = "ftp://h/x"}, creds)', function() return csms.sign(req { url = "ftp://h/x" }, CREDS) end,
    "invalid_argument", "url scheme must be http or https" },
  { "sign-url-userinfo", 'csms.sign({url = "https://u:p@h/x"}, creds)',
    function() return csms.sign(req { url = "https://u:p@h/x" }, CREDS) end,
    "invalid_argument", "url must not contain user information (user@host)" },
  { "sign-url-no-host", 'csms.sign({url = "https:///x"}, creds)', function() return csms.sign(req { url = "https:///x" }, CREDS) end,
    "invalid_argument", "url has no host" },
  { "sign-url-huge", "csms.sign({url = HOST .. 1 MiB path}, creds)",
    function() return csms.sign(req { url = HOST .. "/" .. MB }, CREDS) end, "ok", "" },
  { "sign-ak-comma", 'csms.sign(req, {ak = "A,B", sk = "SK"})', function() return csms.sign(req {}, { ak = "A,B", sk = "SK" }) end,
    "invalid_argument", "ak is empty or has spaces, commas or control characters" },
  { "sign-sk-empty", 'csms.sign(req, {ak = "AK", sk = ""})', function() return csms.sign(req {}, { ak = "AK", sk = "" }) end,
    "invalid_argument", "sk is empty" },
  { "sign-token-crlf", 'csms.sign(req, {..., security_token = "t\\r\\n"})',
    function() return csms.sign(req {}, { ak = "AK", sk = "SK", security_token = "t\r\n" }) end,
    "invalid_argument", "security_token is empty or has control characters" },
  { "sign-unsigned-string", 'csms.sign(req, creds, {unsigned_headers = "host"})',
    function() return csms.sign(req {}, CREDS, { unsigned_headers = "host" }) end,
    "raise", "unsigned_headers must be a table, got string" },
  { "canonical-url-crlf", 'csms.canonical_request({url = HOST .. "/a\\r\\nX-Evil: 1"})',
    function() return csms.canonical_request(req { url = HOST .. "/a\r\nX-Evil: 1" }) end,
    "invalid_argument", "url contains a space or a control character (CR, LF, NUL...)" },
  { "canonical-request-string", 'csms.canonical_request("GET /")', function() return csms.canonical_request("GET /") end,
    "raise", "request must be a table, got string" },
  -- a custom transport's answer of the wrong shape
  { "transport-bad-result", "csms.new{transport = function() return \"200\" end}:backup(\"s\")",
    function() return assert(csms.new(opts { transport = function() return "200" end })):backup("s") end,
    "raise", "attempt to compare" },
  -- csms.batch
  { "batch-backup-not-client", "batch.backup({}, {dir = \"d\"})", function() return batch.backup({}, { dir = "d" }) end,
    "raise", "the first argument must be a csms client" },
  { "batch-backup-no-dir", "batch.backup(client, {})", function() return batch.backup(client(), {}) end,
    "raise", "dir must be a non-empty string" },
  { "batch-backup-concurrency", "batch.backup(client, {dir = \"d\", concurrency = 0})",
    function() return batch.backup(client(), { dir = "d", concurrency = 0 }) end,
    "raise", "concurrency must be a whole number >= 1" },
  { "batch-backup-names", "batch.backup(client, {dir = \"d\", names = {1}})",
    function() return batch.backup(client(), { dir = "d", names = { 1 } }) end,
    "raise", "names[1] must be a string" },
  { "batch-restore-on-conflict", 'batch.restore(client, {dir = "d", on_conflict = "merge"})',
    function() return batch.restore(client(), { dir = "d", on_conflict = "merge" }) end,
    "raise", "on_conflict must be \"fail\" or \"skip\"" },
  { "batch-verify-number", "batch.verify(1)", function() return batch.verify(1) end,
    "raise", "dir must be a non-empty string" },
  { "batch-verify-missing", 'batch.verify("/nonexistent")', function() return batch.verify("/nonexistent") end,
    "io", "no manifest.json in /nonexistent" },
}

-- Runs a case: returns the outcome ("raise", "ok" or the error's kind) and the message.
local function run(case)
  sent = {}
  local ok, res, err = pcall(case[3])
  if not ok then
    return "raise", (tostring(res):gsub("^[^:]*:%d+: ", ""))
  end
  if res ~= nil and res ~= false then return "ok", "" end
  if type(err) ~= "table" then return "nil without an error value", tostring(err) end
  return tostring(err.kind), tostring(err.message)
end

local function md_escape(s)
  s = s:gsub("|", "\\|"):gsub("\r", "\\r"):gsub("\n", "\\n"):gsub("%z", "\\0")
  return s
end

local function outcome_text(o)
  return o == "raise" and "raises" or o == "ok" and "accepted" or "nil, err: " .. o
end

if not describe then -- lua5.4 spec/bad_input_spec.lua --markdown
  for i, c in ipairs(CASES) do
    local outcome, msg = run(c)
    local shown = msg
    if outcome ~= c[4] or not msg:find(c[5], 1, true) then -- a bug: the row says what is right
      shown = c[5] .. " (BUG: now " .. outcome_text(outcome) .. (msg ~= "" and ": " .. msg or "") .. ")"
    end
    print(("| %d | %s | `%s` | %s | %s |"):format(i, c[1], md_escape(c[2]), outcome_text(c[4]),
      shown == "" and "" or "`" .. md_escape(shown) .. "`"))
  end
  return
end

-- The rows of docs/bad-input.md's table: id -> { outcome, message }.
local function doc_rows()
  local f = assert(io.open("docs/bad-input.md", "r"))
  local rows, order = {}, {}
  for line in f:lines() do
    local cells = {}
    local l = line:gsub("\\|", "\1")
    if l:match("^|%s*%d+%s*|") then
      for cell in l:gmatch("|([^|]*)") do cells[#cells + 1] = (cell:gsub("\1", "|"):gsub("^%s+", ""):gsub("%s+$", "")) end
      local id, outcome, msg = cells[2], cells[4], (cells[5] or ""):gsub("^`", ""):gsub("`$", "")
      rows[id] = { outcome = outcome, message = msg }
      order[#order + 1] = id
    end
  end
  f:close()
  return rows, order
end

describe("bad input", function()
  for i, c in ipairs(CASES) do
    it(("#%d %s: %s"):format(i, c[1], c[2]), function()
      local outcome, msg = run(c)
      assert.equal(c[4], outcome, msg)
      assert.truthy(msg:find(c[5], 1, true), ("message %q does not hold %q"):format(msg, c[5]))
      assert.equal(0, #sent, "nothing may reach the transport")
    end)
  end

  it("docs/bad-input.md has the same rows, outcomes and messages as this spec", function()
    local rows, order = doc_rows()
    local ids = {}
    for i, c in ipairs(CASES) do
      ids[i] = c[1]
      local r = rows[c[1]]
      assert.is_table(r, "row " .. c[1] .. " is missing from docs/bad-input.md")
      assert.equal(outcome_text(c[4]), r.outcome, c[1])
      assert.truthy(r.message:find(c[5], 1, true), c[1] .. ": the doc's message is " .. r.message)
    end
    assert.same(ids, order, "the same rows in the same order")
  end)
end)
