-- A provider that settles what it is on first use: the environment and the profile become static
-- keys, OIDC or "nothing here" from settings read when first asked, so making one does no I/O.
local Deferred = {}
Deferred.__index = Deferred

local function inner(self)
  if not self.inner then
    self.inner = self.resolve(self.opts)
    self.name = self.inner.name == "static" and self.name or self.inner.name
  end
  return self.inner
end

function Deferred:credentials() return inner(self):credentials() end

function Deferred:check()
  local p = inner(self)
  if p.check then return p:check() end
  return true
end

-- name: the provider's own ("env", "profile") while it serves static keys; resolve(opts) -> provider.
return function(name, resolve, opts)
  return setmetatable({ name = name, resolve = resolve, opts = opts or {} }, Deferred)
end
