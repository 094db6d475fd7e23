-- csms.glob: a shell-style glob (* and ?) as a predicate on names.
-- Matched byte by byte, going back only to the last '*': at most #name * #glob steps, whatever
-- the glob (a Lua pattern of '.*' pieces backtracks exponentially).
local STAR, ANY = 42, 63

return function(glob)
  local g = { glob:byte(1, -1) }
  return function(name)
    local i, j, star, resume = 1, 1, nil, 0
    local n = #name
    while i <= n do
      local c = g[j]
      if c == STAR then
        star, resume, j = j, i, j + 1
      elseif c and (c == ANY or c == name:byte(i)) then
        i, j = i + 1, j + 1
      elseif star then
        resume = resume + 1
        i, j = resume, star + 1
      else
        return false
      end
    end
    while g[j] == STAR do j = j + 1 end
    return j > #g
  end
end
