-- Writes the seed corpora fuzz/corpus/<target>/ (run from the repository root:
-- lua5.4 fuzz/seeds.lua). The seeds are real inputs: the official signing vectors, the URLs
-- and headers of the specs, the documented blob and its near misses, and response headers as
-- the CSMS gateway, nginx and load balancers send them. fuzz/corpus/blob/emulator-* are real
-- blobs from the emulator's DownloadSecretBlob (1 to 3 versions), written once, not by this.
local HOST = "https://service.endpoint.myhuaweicloud.com"
local DOC_BLOB = dofile("spec/support/documented_blob.lua") -- the API page's secret_blob
local PREFIX = ")CloudSecretManagementBackupV1."
local HDR = "eyJhbGciOiJ4IiwiZW5jIjoieSJ9" -- {"alg":"x","enc":"y"}

local urls = {
  HOST .. "/resources?size=1", HOST .. "/path?limit=1", HOST .. "/path?key=value",
  HOST .. "/?limit=1&enable=true&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    .. "&path=%2Ftmp%2F123&multi=3&multi=1&multi=2",
  HOST .. "/a", HOST .. "/a/", HOST, HOST .. "/a%20b/c", HOST .. "/100%25", HOST .. "/%E4%B8%80",
  HOST .. "/一", HOST .. "/%zz", HOST .. "/?b=2&a=&c&a=z&a=b&=x&~t=1", HOST .. "/?k=a+b&s=-_.~",
  HOST .. "/p?x=1#frag", "http://127.0.0.1:8080/x", "https://h.example:443/x",
  "http://[::1]:9000/x", "https://user:pw@h/", "ftp://h/", "/relative", HOST .. "/a\r\nb",
  "https://kms.cn-north-4.myhuaweicloud.com/v1/0123456789abcdef0123456789abcdef/secrets/db-password/backup",
  "https://kms.cn-north-4.myhuaweicloud.com/v1/0123456789abcdef0123456789abcdef/secrets/restore",
  "https://kms.cn-north-4.myhuaweicloud.com/v1/0123456789abcdef0123456789abcdef/secrets?limit=200&marker=s-1",
  "HTTPS://Kms.Example.COM:8443//double//slash/?a=%2&b=%&c=%%41", "http://h?only=query",
  "http://h#only-fragment", "http://h/p?&&&=&a==b=c&", "https://h/%2F%2f/%41%zz%4",
  "https://h/" .. ("a/"):rep(40) .. "?" .. ("k=v&"):rep(40), "http://h/\0nul", "http:/h/x",
  "http://h:99999999999/x", "https://[fe80::1%25eth0]:443/p", "http://h/p?q=1?2=3#f?g",
}

local sign_reqs = {
  { "GET", HOST .. "/resources?size=1", { "X-Sdk-Date:20200608T023900Z", "TEST_UNDERSCORE:value",
    "host:service.endpoint.myhuaweicloud.com" }, "" },
  { "POST", HOST .. "/resources?size=1", { "X-Sdk-Date:20200608T023900Z", "TEST_UNDERSCORE:value",
    "host:service.endpoint.myhuaweicloud.com" }, '{"name":"test","id":1}' },
  { "GET", HOST .. "/path?limit=1", { "X-Sdk-Date:20060102T150405Z" }, "" },
  { "POST", HOST .. "/path?key=value", { "X-Sdk-Date:20060102T150405Z" }, '{"Name":"test","Id":1}\n' },
  { "POST", "https://kms.cn-north-4.myhuaweicloud.com/v1/p/secrets/restore",
    { "Content-Type:application/json;charset=UTF-8", "User-Agent:lua-csms/0.1.0",
      "Host:kms.cn-north-4.myhuaweicloud.com", "X-Project-Id:p", "X-Sdk-Date:20261123T101010Z",
      "X-Security-Token:tok" }, '{"secret_blob":"' .. DOC_BLOB .. '"}' },
  { "POST", HOST, { "X-Sdk-Date:20260101T000000Z", "X-Sdk-Content-Sha256:UNSIGNED-PAYLOAD" }, "x" },
  { "GET", HOST, { "X-Sdk-Date:20260101T000000Z", "A:b\r", "a:dup" }, "" },
  { "GET", HOST, { "X-Sdk-Date:20260101T000000Z", "A B:x" }, "" },
  { "GET", HOST, { "X-Sdk-Date:  20260101T000000Z  ", "Authorization:old", "x:\t v \t" }, "" },
  { "get", HOST, { "X-Sdk-Date:20260101T000000Z" }, "" },
  { "DELETE", HOST .. "/v1/p/secrets/s", { "X-Sdk-Date:" .. ("9"):rep(80) }, "" },
  { "PUT", HOST .. "/a?x=1", { ":empty-name", "X-Sdk-Date:20260101T000000Z" }, "a\0b" },
}

local blobs = {
  DOC_BLOB,
  PREFIX .. "huaweicloud.com" .. HDR .. ".a.b.c",
  PREFIX .. "com" .. HDR .. ".a.b.c",
  PREFIX .. "com" .. HDR .. ".a.b.c.d",
  PREFIX .. "com" .. HDR .. ".a.b.",
  PREFIX .. "com" .. HDR .. ".a.b",
  PREFIX .. "com" .. HDR .. "==.a.b.c",
  PREFIX .. "com" .. HDR:sub(1, -2) .. ".a.b.c",
  PREFIX .. "com" .. "eyJ" .. ".a.b.c",
  PREFIX .. "com" .. "eyJh" .. ".a.b.c",
  PREFIX .. "com" .. "eyJhb" .. ".a.b.c",
  PREFIX .. HDR .. ".a.b.c",
  PREFIX .. ".com" .. HDR .. ".a.b.c",
  PREFIX .. "-com" .. HDR .. ".a.b.c",
  PREFIX .. "com." .. HDR .. ".a.b.c",
  PREFIX .. "Com" .. HDR .. ".a.b.c",
  PREFIX .. "com" .. HDR .. ".a+b.c.d",
  PREFIX, PREFIX .. "com", PREFIX .. "comeyJ", "",
  "(CloudSecretManagementBackupV1.com" .. HDR .. ".a.b.c",
  DOC_BLOB:sub(1, 200), DOC_BLOB .. "\n", DOC_BLOB:gsub("%.", "..", 1),
}

-- Response heads as libcurl hands them to the header callback.
local heads = {
  "HTTP/1.1 200 OK\r\nServer: api-gateway\r\nDate: Mon, 23 Nov 2026 10:00:00 GMT\r\n"
    .. "Content-Type: application/json\r\nContent-Length: 120\r\nConnection: keep-alive\r\n"
    .. "X-Request-Id: 0123456789abcdef0123456789abcdef\r\nStrict-Transport-Security: max-age=31536000\r\n\r\n"
    .. '{"secret_blob":")CloudSecretManagementBackupV1.com' .. HDR .. '.a.b.c"}',
  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n{}",
  "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX-Request-Id: r\r\nContent-Length: 2\r\n\r\n{}",
  "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n\r\n"
    .. "<html><title>503</title></html>",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. ("x"):rep(300),
  "HTTP/1.0 200 OK\nServer: x\n\nbody-until-close",
  "HTTP/2 200\r\ncontent-type: application/json\r\nx-request-id: h2\r\n\r\n{\"secrets\":[]}",
  "HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/x\r\n\r\n",
  "HTTP/1.1 200 OK\r\nX-Folded: a\r\n  continued\r\n\tmore\r\n\r\n",
  "HTTP/1.1 200 OK\r\n:empty-name\r\nNoColon\r\nA:\r\nB:   \t \r\nC\t: v\r\n\r\n",
  "HTTP/1.1 200 OK\r\nX-Many: 1\r\nx-many: 2\r\nX-MANY: 3\r\n\r\n",
  "HTTP/1.1 401 Unauthorized\r\nX-Request-Id: 1\r\nContent-Type: application/json\r\n\r\n"
    .. '{"error_msg":"Incorrect IAM authentication information: verify aksk signature fail",'
    .. '"error_code":"APIGW.0301","request_id":"1"}',
  "HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nHeader-With-NUL: a\0b\r\n\r\n",
  "HTTP/1.1 200 OK\r\n" .. ("X-Long: " .. ("v"):rep(1000) .. "\r\n"):rep(3) .. "\r\n",
}

local function write(dir, i, data)
  os.execute("mkdir -p fuzz/corpus/" .. dir)
  local f = assert(io.open(("fuzz/corpus/%s/seed-%03d"):format(dir, i), "wb"))
  f:write(data)
  f:close()
end

for i, u in ipairs(urls) do write("url", i, u) end
for i, r in ipairs(sign_reqs) do
  write("sign", i, r[1] .. "\n" .. r[2] .. "\n" .. table.concat(r[3], "\n") .. "\n\n" .. r[4])
end
for i, u in ipairs(urls) do -- every URL as a GET with a date
  write("sign", #sign_reqs + i, "GET\n" .. u .. "\nX-Sdk-Date:20260101T000000Z\n\n")
end
for i, b in ipairs(blobs) do write("blob", i, b) end
-- http: flags, cap (x64 bytes), chunk size, then the head and body.
local n = 0
for _, h in ipairs(heads) do
  for _, pre in ipairs { "\0\0\16", "\0\2\7", "\1\0\255", "\4\0\64", "\10\1\1" } do
    n = n + 1
    write("http", n, pre .. h)
  end
end
