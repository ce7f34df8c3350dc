-- Shared argument checks for duel.gan: every error reads
-- '<function>: <what is wrong>, got <value>'.
local core = require 'duel.core'

local U = {}

local tensor_mt = core._core.metatable
function U.is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == tensor_mt end

function U.shape_str(t) return '{' .. table.concat(t:size(), ',') .. '}' end

function U.fail(op, fmt, ...) error(op .. ': ' .. fmt:format(...), 0) end

local function describe(v)
  if U.is_tensor(v) then return 'a tensor ' .. U.shape_str(v) end
  return type(v)
end
U.describe = describe

function U.tensor(op, v, what)
  if not U.is_tensor(v) then U.fail(op, '%s must be a duel.Tensor, got %s', what, describe(v)) end
  return v
end

-- options table with known keys only, so that a misspelt option is not silently ignored
function U.opts(op, o, known)
  if o == nil then return {} end
  if type(o) ~= 'table' then U.fail(op, 'options must be a table, got %s', type(o)) end
  for k in pairs(o) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      U.fail(op, 'unknown option (expected %s), got %s', table.concat(names, ', '), tostring(k))
    end
  end
  return o
end

function U.number(op, v, dflt, what, lo, hi)
  if v == nil then v = dflt end
  if type(v) ~= 'number' or v ~= v or v == math.huge or v == -math.huge then
    U.fail(op, '%s must be a finite number, got %s', what, tostring(v))
  end
  if (lo and v < lo) or (hi and v > hi) then
    U.fail(op, '%s must be in [%s, %s], got %s', what, lo and tostring(lo) or '-inf',
           hi and tostring(hi) or 'inf', tostring(v))
  end
  return v
end

function U.whole(op, v, dflt, what, lo)
  if v == nil then v = dflt end
  if type(v) ~= 'number' or v ~= math.floor(v) or v < (lo or 0) or v == math.huge then
    U.fail(op, '%s must be a whole number >= %d, got %s', what, lo or 0, tostring(v))
  end
  return v
end

function U.boolean(op, v, dflt, what)
  if v == nil then return dflt end
  if type(v) ~= 'boolean' then U.fail(op, '%s must be a boolean, got %s', what, type(v)) end
  return v
end

function U.choice(op, v, dflt, what, list)
  if v == nil then v = dflt end
  for _, c in ipairs(list) do if v == c then return v end end
  U.fail(op, "%s must be '%s', got %s", what, table.concat(list, "' or '"),
         type(v) == 'string' and ("'" .. v .. "'") or tostring(v))
end

-- a module, a function, or anything with __call
function U.callable(op, D)
  if type(D) == 'function' then return D end
  local mt = getmetatable(D)
  if mt and (type(mt) == 'table') and mt.__call then return D end
  if type(D) == 'userdata' and not U.is_tensor(D) then
    local ok, f = pcall(function() return D.forward end)
    if ok and f then return D end
  end
  U.fail(op, 'D must be a module or a function, got %s', describe(D))
end

function U.no_grad(fn, ...)
  local prev = core._core.set_grad_enabled(false)
  local res = {pcall(fn, ...)}
  core._core.set_grad_enabled(prev)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

function U.enable_grad(fn, ...)
  local prev = core._core.set_grad_enabled(true)
  local res = {pcall(fn, ...)}
  core._core.set_grad_enabled(prev)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

return U
