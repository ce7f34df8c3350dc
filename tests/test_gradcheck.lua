-- gradcheck AND gradgradcheck for every differentiable op in the registry; the coverage case
-- fails when an op registered in C has no entry here.
local T = require 'tests.harness'
local duel = require 'duel'
local C = duel._core
local gradcheck, gradgradcheck = duel.autograd.gradcheck, duel.autograd.gradgradcheck

-- a leaf with values spread away from 0 (kinks of relu/abs/clamp/sign) and without ties
local function leaf(...)
  local x = duel.randn(...)
  duel.no_grad(function()
    for i = 1, x:numel() do
      local v = C.flat_get(x, i)
      C.flat_set(x, i, v + (v >= 0 and 0.2 or -0.2) + 0.013 * i)
    end
  end)
  return x:requires_grad_()
end

local function positive(...)
  local shape = {...}
  return duel.no_grad(function() return duel.rand(shape) + 0.5 end):requires_grad_()
end

local function idx(t) return duel.tensor(t) end

-- op name -> function returning (fn, inputs); fn's second derivative must not vanish
-- identically where possible (multiply by an input to make linear ops curve)
local cases = {
  view = function() local x = leaf(2, 3); return function(a) return a:view(3, 2) * a:view(3, 2) end, {x} end,
  permute = function() local x = leaf(2, 3, 2); return function(a) local p = a:permute(3, 1, 2); return p * p end, {x} end,
  narrow = function() local x = leaf(4, 3); return function(a) local n = a:narrow(1, 2, 2); return n * n end, {x} end,
  embed = function() local x = leaf(2, 3); return function(a) local e = C.embed(a, 1, 2, 5); return e * e end, {x} end,
  expand = function() local x = leaf(3, 1); return function(a) local e = a:expand(3, 4); return e * e:t():t() end, {x} end,
  sum = function() local x = leaf(3, 4); return function(a) local s = (a * a):sum(2); return s * s end, {x} end,
  contiguous = function() local x = leaf(3, 2); return function(a) local c = a:t():contiguous(); return c * c end, {x} end,
  clone = function() local x = leaf(5); return function(a) return a:clone() * a end, {x} end,
  add = function() local a, b = leaf(2, 3), leaf(3); return function(p, q) local s = p + q; return s * s end, {a, b} end,
  sub = function() local a, b = leaf(2, 1), leaf(3); return function(p, q) local s = p - q; return s * s end, {a, b} end,
  mul = function() local a, b = leaf(2, 3), leaf(2, 1); return function(p, q) return p * q * p end, {a, b} end,
  div = function() local a, b = leaf(2, 3), positive(3); return function(p, q) return p / q end, {a, b} end,
  neg = function() local x = leaf(4); return function(a) return -a * a end, {x} end,
  exp = function() local x = leaf(4); return function(a) return a:exp() end, {x} end,
  log = function() local x = positive(4); return function(a) return a:log() end, {x} end,
  sqrt = function() local x = positive(4); return function(a) return a:sqrt() end, {x} end,
  abs = function() local x = leaf(5); return function(a) return a:abs() * a end, {x} end,
  tanh = function() local x = leaf(5); return function(a) return a:tanh() end, {x} end,
  sigmoid = function() local x = leaf(5); return function(a) return a:sigmoid() end, {x} end,
  relu = function() local x = leaf(6); return function(a) return a:relu() * a end, {x} end,
  sign = function() local x = leaf(4); return function(a) return a:sign() * a * a end, {x} end,
  sin = function() local x = leaf(4); return function(a) return a:sin() end, {x} end,
  cos = function() local x = leaf(4); return function(a) return a:cos() end, {x} end,
  pow = function() local x = positive(4); return function(a) return a:pow(2.5) + a ^ 3 end, {x} end,
  clamp = function() local x = leaf(8); return function(a) return a:clamp(-0.9, 0.9) * a end, {x} end,
  add_scalar = function() local x = leaf(4); return function(a) local s = a + 2; return s * s end, {x} end,
  mul_scalar = function() local x = leaf(4); return function(a) local s = a * 3; return s * s end, {x} end,
  where = function()
    local a, b = leaf(2, 3), leaf(2, 3)
    local m = duel.tensor{{1, 0, 1}, {0, 0, 1}}
    return function(p, q) return duel.where(m, p * p, q * p) end, {a, b}
  end,
  max = function() local x = leaf(3, 4); return function(a) local v = a:max(2); return v * v + a:max() end, {x} end,
  min = function() local x = leaf(3, 4); return function(a) local v = a:min(1); return v * v + a:min() end, {x} end,
  cat = function()
    local a, b, c = leaf(2, 2), leaf(1, 2), leaf(3, 2)
    return function(p, q, r) local y = duel.cat({p, q, r, p, q}, 1); return y * y end, {a, b, c}
  end,
  index_select = function()
    local x = leaf(4, 3)
    return function(a) local y = a:index_select(1, idx{3, 1, 3}); return y * y end, {x}
  end,
  index_add = function()
    local x = leaf(3, 2)
    return function(a) local y = C.index_add(a, 1, idx{2, 4, 2}, 5); return y * y end, {x}
  end,
  matmul = function()
    local a, b = leaf(2, 3, 4), leaf(4, 2)
    return function(p, q) local y = duel.matmul(p, q); return y * y end, {a, b}
  end,
}

T.case('every registered op has a gradcheck case', function()
  local missing = {}
  for _, name in ipairs(C.op_names()) do
    if not T.gradcases[name] then missing[#missing + 1] = name end
  end
  T.ok(#missing == 0, 'ops without a gradcheck case: ' .. table.concat(missing, ', '))
  T.ok(#C.op_names() >= 30, 'registry looks too small')
end)

local names = {}
for name in pairs(cases) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do T.gradcase(name, cases[name]) end

-- composites are differentiable through their parts; check them too
local composites = {
  mean = function() local x = leaf(3, 4); return function(a) return (a * a):mean(1) end, {x} end,
  var = function() local x = leaf(3, 4); return function(a) return a:var(2) end, {x} end,
  std = function() local x = leaf(3, 4); return function(a) return a:std() end, {x} end,
  logsumexp = function() local x = leaf(3, 4); return function(a) return a:logsumexp(2) end, {x} end,
  norm = function() local x = leaf(3, 4); return function(a) return a:norm(2, 2) end, {x} end,
  norm3 = function() local x = leaf(5); return function(a) return a:norm(3) end, {x} end,
  stack = function() local a, b = leaf(2), leaf(2); return function(p, q) local s = duel.stack({p, q}, 2); return s * s end, {a, b} end,
  select = function() local x = leaf(3, 2); return function(a) local s = a:select(1, -1); return s * s end, {x} end,
  split = function() local x = leaf(5, 2); return function(a) local p = a:split(2); return p[3] * p[1]:narrow(1, 1, 1) end, {x} end,
  squeeze_unsqueeze = function() local x = leaf(3, 1); return function(a) local s = a:squeeze():unsqueeze(1); return s * s end, {x} end,
  pow_tensor = function() local a, b = positive(3), leaf(3); return function(p, q) return p ^ q end, {a, b} end,
  number_pow = function() local x = leaf(3); return function(a) return 2 ^ a end, {x} end,
  sum_to = function() local x = leaf(2, 3, 2); return function(a) local s = C.sum_to(a, {3, 1}); return s * s end, {x} end,
}
for name, mk in pairs(composites) do
  T.case('composite ' .. name .. ': gradcheck and gradgradcheck', function()
    duel.manual_seed(11)
    local fn, inputs = mk()
    T.ok(gradcheck(fn, inputs))
    T.ok(gradgradcheck(fn, inputs))
  end)
end

T.case('gradcheck detects a wrong gradient', function()
  -- abs near 0 with a huge eps: the finite difference straddles the kink and disagrees
  local x = duel.tensor{0.001, -0.002}:requires_grad_()
  local ok, msg = gradcheck(function(a) return a:abs() end, {x}, {eps = 0.1, raise = false})
  T.ok(not ok, 'gradcheck accepted a kinked function at a large step')
  T.ok(msg:find('Jacobian mismatch', 1, true), msg)
end)
