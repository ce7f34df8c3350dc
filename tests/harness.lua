-- The test harness: cases register with T.case; tests/run.lua runs them under xpcall.
local duel = require 'duel'

local T = {cases = {}}

function T.case(name, fn)
  T.cases[#T.cases + 1] = {name = name, fn = fn, file = T.current_file}
end

-- T.gradcase(op, make): make() returns (fn, inputs); the case runs gradcheck and gradgradcheck.
-- tests/test_gradcheck.lua fails if any op in the C registry has no gradcase in any test file.
T.gradcases = {}
function T.gradcase(op, make, opts)
  T.gradcases[op] = make
  T.case(op .. ': gradcheck and gradgradcheck', function()
    duel.manual_seed(7)
    local fn, inputs = make()
    T.ok(duel.autograd.gradcheck(fn, inputs, opts))
    T.ok(duel.autograd.gradgradcheck(fn, inputs, opts))
  end)
end

local function fail(msg, level) error(msg, (level or 1) + 2) end

function T.ok(v, msg)
  if not v then fail(msg or 'expected a true value', 1) end
  return v
end

local function show(v)
  if type(v) == 'table' then
    local parts = {}
    for i = 1, #v do parts[i] = show(v[i]) end
    return '{' .. table.concat(parts, ',') .. '}'
  end
  return tostring(v)
end
T.show = show

function T.eq(got, want, msg)
  if type(got) == 'table' and type(want) == 'table' then
    if show(got) ~= show(want) then
      fail(('%sexpected %s, got %s'):format(msg and msg .. ': ' or '', show(want), show(got)), 1)
    end
  elseif got ~= want then
    fail(('%sexpected %s, got %s'):format(msg and msg .. ': ' or '', show(want), show(got)), 1)
  end
end

-- flatten a number, nested table or tensor into a list of numbers plus a shape string
local function values(x)
  if duel.is_tensor(x) then
    local v = {}
    for i = 1, x:numel() do v[i] = duel._core.flat_get(x, i) end
    return v, show(x:size())
  end
  if type(x) == 'number' then return {x}, '{}' end
  local v, shape = {}, {}
  local t = x
  while type(t) == 'table' do shape[#shape + 1] = #t; t = t[1] end
  local function walk(y)
    if type(y) == 'table' then for i = 1, #y do walk(y[i]) end else v[#v + 1] = y end
  end
  walk(x)
  return v, show(shape)
end

-- T.close(got, want, tol): shapes must agree (a nested table gives its shape; a plain number
-- matches any one-element tensor) and values within tol (absolute + relative).
function T.close(got, want, tol, msg)
  tol = tol or 1e-5
  local gv, gs = values(got)
  local wv, ws = values(want)
  if type(want) ~= 'number' and gs ~= ws and not (#wv == #gv and type(want) == 'table' and #want == #gv and type(want[1]) == 'number' and gs:find(',') == nil) then
    fail(('%sshape: expected %s, got %s'):format(msg and msg .. ': ' or '', ws, gs), 1)
  end
  if #gv ~= #wv then fail(('%sexpected %d values, got %d'):format(msg and msg .. ': ' or '', #wv, #gv), 1) end
  for i = 1, #wv do
    local a, b = gv[i], wv[i]
    local same = (a == b) or (a ~= a and b ~= b) or math.abs(a - b) <= tol * (1 + math.abs(b))
    if not same then
      fail(('%svalue %d: expected %.7g, got %.7g'):format(msg and msg .. ': ' or '', i, b, a), 1)
    end
  end
end

local function message_of(fn)
  local ok, err = pcall(fn)
  if ok then return nil end
  return tostring(err)
end

-- T.raises(msg, fn): fn must raise an error whose text contains msg (plain substring)
function T.raises(msg, fn)
  local err = message_of(fn)
  if not err then fail(('expected an error containing %q, got none'):format(msg), 1) end
  if not err:find(msg, 1, true) then
    fail(('expected an error containing %q, got %q'):format(msg, err), 1)
  end
end

-- T.raises_exact(msg, fn): the error text must be exactly msg
function T.raises_exact(msg, fn)
  local err = message_of(fn)
  if not err then fail(('expected the error %q, got none'):format(msg), 1) end
  if err ~= msg then fail(('expected the error %q, got %q'):format(msg, err), 1) end
end

return T
