-- nn.Sequential{m1, m2, ...}: children named 1, 2, ...; an error inside names the position and
-- the layer: "Sequential[3] Conv2d(64->128, k4, s2): <what went wrong>".
local Module = require 'duel.nn.Module'

local Sequential = Module:extend('Sequential')

function Sequential:__init(list)
  if list ~= nil and type(list) ~= 'table' then
    error(('Sequential: expected a table of modules, got %s'):format(type(list)), 0)
  end
  for i, m in ipairs(list or {}) do
    if not Module.is_module(m) then
      error(('Sequential: element %d must be a module, got %s'):format(i, type(m)), 0)
    end
    self[tostring(i)] = m
  end
end

function Sequential:add(m)
  if not Module.is_module(m) then
    error(('Sequential.add: expected a module, got %s'):format(type(m)), 0)
  end
  self[tostring(#self:named_children() + 1)] = m
  return self
end

local function label(m)
  if #m:named_children() > 0 then return nil end -- containers add their own prefix
  return m:__tostring_line()
end

function Sequential:forward(x, ...)
  local mods = rawget(self, '_modules')
  for i, name in ipairs(rawget(self, '_module_order')) do
    local m = mods[name]
    local ok, y = pcall(m, x, ...)
    if not ok then
      local l = label(m)
      local msg = tostring(y)
      -- built-in layers already name themselves; Lua modules may not
      if l and msg:sub(1, #l + 2) ~= l .. ': ' then msg = l .. ': ' .. msg end
      error(('Sequential[%d] %s'):format(i, msg), 0)
    end
    x = y
  end
  return x
end

return Sequential
