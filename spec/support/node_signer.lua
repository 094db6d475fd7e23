-- Test support: signs requests with the official Huawei Cloud Node.js signer
-- (spec/support/node/sign.js over @huaweicloud/huaweicloud-sdk-core), the independent oracle of
-- the signing and gateway specs. Part of the spec support files listed in spec/support/shell.lua.
--
--   sign{ {method=, url=, headers = {name = value}, query = {{k, v}, ...}, body_json=, ak=, sk=,
--          date = "YYYYMMDDTHHMMSSZ" or nil}, ... }
--   -> one { headers = {name = value}, body = string or nil, url =, query_string = } per request,
--      from one node process: send exactly those headers and body bytes to that URL.
local json = require "csms.json"
local shell = require "spec.support.shell"

local M = {}

M.dir = shell.root .. "/spec/support/node"

function M.sign(list)
  local f = io.open(M.dir .. "/node_modules/@huaweicloud/huaweicloud-sdk-core/package.json")
  if not f then
    error("the Node.js signer is not installed: run npm install --prefix spec/support/node")
  end
  f:close()
  local input = {}
  for i, r in ipairs(list) do
    input[i] = {
      method = r.method, url = r.url, headers = r.headers or {}, ak = r.ak, sk = r.sk,
      query = json.array(r.query or {}), body_json = r.body_json, date = r.date,
    }
  end
  local inpath, outpath, errpath = shell.tmpname(), shell.tmpname(), shell.tmpname()
  local fh = assert(io.open(inpath, "wb"))
  fh:write(json.encode(json.array(input)))
  fh:close()
  local q = shell.shell_quote
  local ok = shell.sh("node " .. q(M.dir .. "/sign.js") .. " < " .. q(inpath) .. " > " ..
    q(outpath) .. " 2> " .. q(errpath))
  local out, err = shell.read_all(outpath), shell.read_all(errpath)
  os.remove(inpath)
  os.remove(outpath)
  os.remove(errpath)
  if not ok then error("node sign.js failed: " .. (err or ""):sub(1, 1000)) end
  local signed = assert(json.decode(out), "sign.js printed no JSON")
  for _, s in ipairs(signed) do
    if s.body == json.null then s.body = nil end
  end
  return signed
end

return M
