-- Closed-form values for broadcasting arithmetic, unary maps, comparisons, reductions, joining,
-- indexing, matmul and the multi-threaded paths of large tensors.
local T = require 'tests.harness'
local duel = require 'duel'

local function shape(x) return T.show(x:size()) end

-- a plain Lua matrix product of nested tables, the reference for matmul
local function mm(a, b)
  local out = {}
  for i = 1, #a do
    out[i] = {}
    for j = 1, #b[1] do
      local s = 0
      for k = 1, #b do s = s + a[i][k] * b[k][j] end
      out[i][j] = s
    end
  end
  return out
end

-- run fn with n threads, restoring the previous count even on error
local function with_threads(n, fn)
  local prev = duel.get_num_threads()
  duel.set_num_threads(n)
  local res = {pcall(fn)}
  duel.set_num_threads(prev)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- ---- broadcasting binary ops -----------------------------------------------------------------

T.case('add/sub/mul/div: same shape, and method and duel.* forms', function()
  local a = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  local b = duel.tensor{{6, 5, 4}, {3, 2, 1}}
  T.close(a + b, {{7, 7, 7}, {7, 7, 7}}, 0)
  T.close(a - b, {{-5, -3, -1}, {1, 3, 5}}, 0)
  T.close(a * b, {{6, 10, 12}, {12, 10, 6}}, 0)
  T.close(a / b, {{1 / 6, 0.4, 0.75}, {4 / 3, 2.5, 6}})
  T.close(a:add(b), (a + b):totable(), 0)
  T.close(duel.sub(a, b), (a - b):totable(), 0)
  T.close(a:mul(2), {{2, 4, 6}, {8, 10, 12}}, 0)
  T.close(duel.div(a, b), (a / b):totable(), 0)
  T.close(a:neg(), {{-1, -2, -3}, {-4, -5, -6}}, 0)
  T.close(-a, {{-1, -2, -3}, {-4, -5, -6}}, 0)
  T.close(duel.neg(b), (-b):totable(), 0)
end)

T.case('broadcast: {2,3} op {3} and {3} op {2,3}', function()
  local a = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  local r = duel.tensor{10, 20, 30}
  T.close(a + r, {{11, 22, 33}, {14, 25, 36}}, 0)
  T.close(r + a, {{11, 22, 33}, {14, 25, 36}}, 0)
  T.close(a - r, {{-9, -18, -27}, {-6, -15, -24}}, 0)
  T.close(r - a, {{9, 18, 27}, {6, 15, 24}}, 0)
  T.close(r / a, {{10, 10, 10}, {2.5, 4, 5}})
  T.close(a * r, {{10, 40, 90}, {40, 100, 180}}, 0)
end)

T.case('broadcast: {2,1} * {1,3} outer product, {2,1} / {3}', function()
  local c = duel.tensor{{1}, {2}}
  local r = duel.tensor{{3, 4, 5}}
  local p = c * r
  T.eq(shape(p), '{2,3}')
  T.close(p, {{3, 4, 5}, {6, 8, 10}}, 0)
  T.close(r * c, {{3, 4, 5}, {6, 8, 10}}, 0)
  T.close(c / duel.tensor{1, 2, 4}, {{1, 0.5, 0.25}, {2, 1, 0.5}}, 0)
  T.close(c - r, {{-2, -3, -4}, {-1, -2, -3}}, 0)
end)

T.case('broadcast: {4,1,3} - {2,3} gives {4,2,3}', function()
  local a = duel.arange(12):view(4, 1, 3)
  local b = duel.tensor{{1, 1, 1}, {10, 20, 30}}
  local d = a - b
  T.eq(shape(d), '{4,2,3}')
  for i = 1, 4 do
    for j = 1, 2 do
      for k = 1, 3 do
        T.eq(d:get(i, j, k), a:get(i, 1, k) - b:get(j, k))
      end
    end
  end
  T.close(b - a, (-d):totable(), 0)
  T.eq(shape(duel.zeros(3, 1) + duel.zeros(1, 1, 4)), '{1,3,4}')
  T.eq(shape(duel.zeros(2, 1, 5) * duel.zeros(3, 1)), '{2,3,5}')
end)

T.case('broadcast: 0-dim tensors on either side', function()
  local a = duel.tensor{{1, 2}, {3, 4}}
  local s = duel.tensor(2)
  T.close(a * s, {{2, 4}, {6, 8}}, 0)
  T.close(s - a, {{1, 0}, {-1, -2}}, 0)
  T.close(s / a, {{2, 1}, {2 / 3, 0.5}})
  T.close(a / s, {{0.5, 1}, {1.5, 2}}, 0)
  local ss = s + duel.tensor(3)
  T.eq(ss:dim(), 0)
  T.eq(ss:item(), 5)
end)

T.case('numbers on either side: x+2, 2-x, 2*x, 2/x, x/2, x^2, 2^x', function()
  local x = duel.tensor{1, 2, 4}
  T.close(x + 2, {3, 4, 6}, 0)
  T.close(2 + x, {3, 4, 6}, 0)
  T.close(x - 2, {-1, 0, 2}, 0)
  T.close(2 - x, {1, 0, -2}, 0)
  T.close(2 * x, {2, 4, 8}, 0)
  T.close(x * -1, {-1, -2, -4}, 0)
  T.close(2 / x, {2, 1, 0.5}, 0)
  T.close(x / 2, {0.5, 1, 2}, 0)
  T.close(x ^ 2, {1, 4, 16}, 0)
  T.close(2 ^ x, {2, 4, 16}, 1e-6)
  T.close(0.5 ^ x, {0.5, 0.25, 0.0625}, 1e-6)
  T.close(x / 0, {math.huge, math.huge, math.huge}, 0)
  T.raises('pow: a number raised to a tensor power must be positive, got -2',
           function() return (-2) ^ x end)
  T.raises('add: argument 1 must be a duel.Tensor', function() return duel.add('a', x) end)
end)

T.case('broadcast errors name the op and both shapes', function()
  local a, b = duel.zeros(2, 3), duel.zeros(3, 2)
  T.raises('add: shapes cannot be broadcast together, got {2,3} and {3,2}',
           function() return a + b end)
  T.raises('mul: shapes cannot be broadcast together, got {2,3} and {2}',
           function() return a * duel.zeros(2) end)
  T.raises('sub: shapes cannot be broadcast together',
           function() return a - duel.zeros(4, 1, 2) end)
  T.raises('div: shapes cannot be broadcast together', function() return b / a end)
end)

T.case('binary ops on non-contiguous and expanded operands', function()
  local a = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  local at = a:t()
  T.close(at + at, {{2, 8}, {4, 10}, {6, 12}}, 0)
  T.close(at * duel.tensor{{1, 2, 3}, {4, 5, 6}}:t(), {{1, 16}, {4, 25}, {9, 36}}, 0)
  T.close(a:narrow(2, 2, 2) - a:narrow(2, 1, 2), {{1, 1}, {1, 1}}, 0)
  local e = duel.tensor{1, 2}:view(2, 1):expand(2, 3)
  T.close(a * e, {{1, 2, 3}, {8, 10, 12}}, 0)
  T.close(a:select(2, 3) + a:select(1, 2):narrow(1, 1, 2), {7, 11}, 0)
end)

T.case('pow: numeric exponents, x:pow, tensor exponents incl. a negative base', function()
  local x = duel.tensor{1, 2, 3}
  T.close(x:pow(3), {1, 8, 27}, 1e-6)
  T.close(x ^ 0.5, {1, math.sqrt(2), math.sqrt(3)}, 1e-6)
  T.close(x ^ -1, {1, 0.5, 1 / 3}, 1e-6)
  T.close(x ^ 0, {1, 1, 1}, 0)
  T.close((-x) ^ 3, {-1, -8, -27}, 1e-6)
  T.close((-x) ^ 2, {1, 4, 9}, 0)
  T.close(duel.pow(x, 2), {1, 4, 9}, 0)
  local p = x:pow(duel.tensor{2, 3, 0.5})
  T.close(p, {1, 8, math.sqrt(3)}, 1e-6)
  T.close(x ^ duel.tensor{{1}, {2}}, {{1, 2, 3}, {1, 4, 9}}, 1e-6)
  -- a negative base with a whole exponent is defined; with a fractional one it is NaN
  local n = duel.tensor{-2, -2, -3, -4} ^ duel.tensor{2, 3, 1, 0.5}
  T.close(n, {4, -8, -3, 0 / 0}, 1e-6)
  T.raises('pow: exponent must be finite', function() return x:pow(math.huge) end)
end)

-- ---- unary maps --------------------------------------------------------------------------------

T.case('exp/log/sqrt/abs on known values', function()
  local x = duel.tensor{0, 1, 2, -1}
  T.close(x:exp(), {1, math.exp(1), math.exp(2), math.exp(-1)}, 1e-6)
  T.close(duel.tensor{1, math.exp(1), 0.25}:log(), {0, 1, math.log(0.25)}, 1e-6)
  T.close(duel.tensor{0, -1}:log(), {-math.huge, 0 / 0}, 0)
  T.close(duel.tensor{0, 4, 2.25, 1e-4}:sqrt(), {0, 2, 1.5, 0.01}, 1e-6)
  T.ok(duel.tensor{-1}:sqrt():item() ~= duel.tensor{-1}:sqrt():item(), 'sqrt(-1) is NaN')
  T.close(duel.tensor{-3.5, 0, 2}:abs(), {3.5, 0, 2}, 0)
  T.close(duel.exp(duel.tensor{-200, 100}), {0, math.huge}, 0) -- underflow / overflow
  T.close(duel.tensor{{1, 2}, {3, 4}}:t():exp(), {{math.exp(1), math.exp(3)},
                                                  {math.exp(2), math.exp(4)}}, 1e-6)
end)

-- tanh is duel's own vectorisable kernel (csrc/ops/elementwise.c): within 2 ulp of tanh in double
-- over both branches, the switch at 0.55, tiny and saturated inputs; -0 and NaN kept
T.case('tanh: within 2 ulp of math.tanh from 1e-30 to 20, -0 and NaN', function()
  local xs = {1e-30, 1e-8, 1e-4, 0.5499999, 0.55, 0.5500001, 9.0, 9.02, 10, 20}
  for i = 0, 4000 do xs[#xs + 1] = i * 0.005 end
  local n = #xs
  for i = 1, n do xs[#xs + 1] = -xs[i] end
  local xt = duel.tensor(xs)
  local y = xt:tanh()
  for i = 1, #xs do
    local x = xt:get(i) -- the float input
    local want, got = math.tanh(x), y:get(i)
    T.ok(math.abs(got - want) <= 2 * 2 ^ -24 * math.abs(want) + 1e-45,
         ('tanh(%.9g): got %.9g, want %.9g'):format(x, got, want))
  end
  T.eq(1 / duel.tensor{-0.0}:tanh():get(1), -math.huge)
  local nan = duel.tensor{0 / 0}:tanh():get(1)
  T.ok(nan ~= nan, 'tanh(NaN) must be NaN')
end)

T.case('tanh/sigmoid, sigmoid stable at +-100 and +-1000', function()
  T.close(duel.tensor{0, 0.5, -2, 20}:tanh(), {0, 0.46211715726, -0.96402758008, 1}, 1e-6)
  T.close(duel.tensor{-100, 100}:tanh(), {-1, 1}, 0)
  local s = duel.tensor{0, 2, -2, 10}:sigmoid()
  T.close(s, {0.5, 0.88079707798, 0.11920292202, 0.99995460213}, 1e-6)
  local big = duel.tensor{-1000, -100, 100, 1000}:sigmoid()
  for i = 1, 4 do
    local v = big:get(i)
    T.ok(v == v and v >= 0 and v <= 1, 'sigmoid not in [0,1] at ' .. i .. ': ' .. tostring(v))
  end
  T.eq(big:get(3), 1)
  T.eq(big:get(4), 1)
  T.eq(big:get(1), 0)
  T.ok(big:get(2) < 1e-40, 'sigmoid(-100) = ' .. big:get(2))
  T.close(duel.sigmoid(duel.tensor{-3}) + duel.sigmoid(duel.tensor{3}), {1}, 1e-6)
end)

T.case('relu/sign/sin/cos on known values', function()
  T.close(duel.tensor{-2, -0, 0, 0.5, 3}:relu(), {0, 0, 0, 0.5, 3}, 0)
  T.close(duel.tensor{-3, 0, 2e-30, 7}:sign(), {-1, 0, 1, 1}, 0)
  local pi = math.pi
  T.close(duel.tensor{0, pi / 6, pi / 2, -pi / 2}:sin(), {0, 0.5, 1, -1}, 1e-6)
  T.close(duel.tensor{0, pi / 3, pi}:cos(), {1, 0.5, -1}, 1e-6)
  T.close(duel.relu(duel.tensor{{-1, 2}, {3, -4}}:t()), {{0, 3}, {2, 0}}, 0)
end)

T.case('clamp: both bounds, one-sided with nil, bad bounds', function()
  local x = duel.tensor{-2, -0.5, 0.5, 2}
  T.close(x:clamp(-1, 1), {-1, -0.5, 0.5, 1}, 0)
  T.close(x:clamp(0), {0, 0, 0.5, 2}, 0)
  T.close(x:clamp(0, nil), {0, 0, 0.5, 2}, 0)
  T.close(x:clamp(nil, 0), {-2, -0.5, 0, 0}, 0)
  T.close(x:clamp(), {-2, -0.5, 0.5, 2}, 0)
  T.close(x:clamp(1, 1), {1, 1, 1, 1}, 0)
  T.close(duel.clamp(x:view(2, 2):t(), -0.6, 0.6), {{-0.6, 0.5}, {-0.5, 0.6}}, 1e-7)
  T.raises('clamp: lower bound must not exceed upper bound, got (1, -1)',
           function() return x:clamp(1, -1) end)
  T.raises('clamp: bounds must not be NaN', function() return x:clamp(0 / 0) end)
end)

-- ---- comparisons and where ---------------------------------------------------------------------

T.case('gt/lt/ge/le/eq with tensors', function()
  local a, b = duel.tensor{1, 2, 3}, duel.tensor{3, 2, 1}
  T.close(a:gt(b), {0, 0, 1}, 0)
  T.close(a:lt(b), {1, 0, 0}, 0)
  T.close(a:ge(b), {0, 1, 1}, 0)
  T.close(a:le(b), {1, 1, 0}, 0)
  T.close(a:eq(b), {0, 1, 0}, 0)
  T.close(duel.gt(b, a), {1, 0, 0}, 0)
  -- broadcasting: {3,1} against {2}
  T.close(a:view(3, 1):lt(duel.tensor{2, 3}), {{1, 1}, {0, 1}, {0, 0}}, 0)
  local nan = duel.tensor{0 / 0}
  T.close(nan:eq(nan), {0}, 0)
  T.ok(not a:gt(b).requires_grad, 'comparisons carry no gradient')
end)

T.case('gt/lt/ge/le/eq with numbers on either side', function()
  local a = duel.tensor{{1, 2}, {3, 4}}
  T.close(a:gt(2), {{0, 0}, {1, 1}}, 0)
  T.close(a:ge(2), {{0, 1}, {1, 1}}, 0)
  T.close(a:lt(2), {{1, 0}, {0, 0}}, 0)
  T.close(a:le(2), {{1, 1}, {0, 0}}, 0)
  T.close(a:eq(3), {{0, 0}, {1, 0}}, 0)
  T.close(duel.gt(2, a), {{1, 0}, {0, 0}}, 0)
  T.close(duel.le(3, a), {{0, 0}, {1, 1}}, 0)
  T.raises('gt: argument 2 must be a duel.Tensor or a number, got string',
           function() return a:gt('x') end)
end)

T.case('where: tensors and numbers, broadcast mask', function()
  local a = duel.tensor{1, -2, 3}
  T.close(duel.where(a:gt(0), a, -a), {1, 2, 3}, 0)
  T.close(duel.where(a:gt(0), a, 0), {1, 0, 3}, 0)
  T.close(duel.where(a:lt(0), 10, 20), {20, 10, 20}, 0)
  local m = duel.tensor{1, 0}
  T.close(duel.where(m, 5, duel.tensor{{1, 2}, {3, 4}}), {{5, 2}, {5, 4}}, 0)
  T.close(duel.where(duel.tensor{{1}, {0}}, duel.tensor{1, 2, 3}, -1),
          {{1, 2, 3}, {-1, -1, -1}}, 0)
  T.close(duel.where(duel.tensor{0.5, 0, -1}, 1, 0), {1, 0, 1}, 0) -- any non-zero selects a
  T.raises('where: shapes cannot be broadcast together', function()
    return duel.where(duel.ones(2), duel.ones(3), 0)
  end)
end)

-- ---- reductions --------------------------------------------------------------------------------

T.case('sum/mean: all elements give 0-dim tensors', function()
  local x = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  local s = x:sum()
  T.eq(s:dim(), 0)
  T.eq(s:item(), 21)
  T.eq(x:mean():item(), 3.5)
  T.eq(duel.sum(x:t()):item(), 21)
  T.eq(duel.tensor(4):sum():item(), 4)
  T.eq(duel.zeros(0, 3):sum():item(), 0)
  T.close(duel.zeros(0, 3):sum(1), {0, 0, 0}, 0)
end)

T.case('sum/mean: per dim, keepdim, negative dim (3-D)', function()
  local x = duel.arange(24):view(2, 3, 4)
  T.close(x:sum(1), {{14, 16, 18, 20}, {22, 24, 26, 28}, {30, 32, 34, 36}}, 0)
  T.close(x:sum(2), {{15, 18, 21, 24}, {51, 54, 57, 60}}, 0)
  T.close(x:sum(3), {{10, 26, 42}, {58, 74, 90}}, 0)
  T.close(x:sum(-1), {{10, 26, 42}, {58, 74, 90}}, 0)
  T.close(x:sum(-3), x:sum(1):totable(), 0)
  local k = x:sum(2, true)
  T.eq(shape(k), '{2,1,4}')
  T.close(k, {{{15, 18, 21, 24}}, {{51, 54, 57, 60}}}, 0)
  T.close(x:mean(3), {{2.5, 6.5, 10.5}, {14.5, 18.5, 22.5}}, 0)
  T.close(x:mean(1, true), {{{7, 8, 9, 10}, {11, 12, 13, 14}, {15, 16, 17, 18}}}, 0)
  T.close(x:mean(-2), {{5, 6, 7, 8}, {17, 18, 19, 20}}, 0)
  T.eq(x:sum():item(), 300)
  T.eq(x:mean():item(), 12.5)
  -- on a permuted view
  T.close(x:permute(3, 1, 2):sum(3), {{15, 51}, {18, 54}, {21, 57}, {24, 60}}, 0)
  T.raises('sum: dimension out of range (expected 1 to 3), got 4', function() return x:sum(4) end)
end)

T.case('sum: accumulates accurately (10^6 x 0.1, dims too)', function()
  -- a float accumulator drifts to 100958 here
  T.close(duel.full({1000000}, 0.1):sum(), 100000, 1e-6)
  T.close(duel.full({1000000}, 0.1):mean(), 0.1, 1e-6)
  T.close(duel.full({500000, 2}, 0.1):sum(1), {50000, 50000}, 1e-6)
  T.close(duel.full({2, 500000}, 0.1):sum(2), {50000, 50000}, 1e-6)
  T.close(duel.full({1000, 2, 1000}, 0.1):sum(3):sum(1), {100000, 100000}, 1e-6)
end)

T.case('max/min: all elements give 0-dim values', function()
  local x = duel.tensor{{1, 5, 2}, {7, 0, 7}}
  local m = x:max()
  T.eq(m:dim(), 0)
  T.eq(m:item(), 7)
  T.eq(x:min():item(), 0)
  T.eq(duel.max(x:t()):item(), 7)
  T.eq(duel.tensor{-3, -1, -2}:max():item(), -1)
  T.eq(duel.tensor(2):min():item(), 2)
  T.raises('max: cannot reduce an empty tensor, got shape {0}',
           function() return duel.tensor{}:max() end)
end)

T.case('max/min per dim: values and 1-based indices, first on ties', function()
  local x = duel.tensor{{1, 5, 2}, {7, 0, 7}}
  local v, i = x:max(1)
  T.close(v, {7, 5, 7}, 0)
  T.close(i, {2, 1, 2}, 0)
  v, i = x:max(2)
  T.close(v, {5, 7}, 0)
  T.close(i, {2, 1}, 0) -- 7 appears at 1 and 3: the first wins
  v, i = x:min(2)
  T.close(v, {1, 0}, 0)
  T.close(i, {1, 2}, 0)
  v, i = x:min(1)
  T.close(v, {1, 0, 2}, 0)
  T.close(i, {1, 2, 1}, 0)
  v, i = x:max(-1, true)
  T.eq(shape(v), '{2,1}')
  T.eq(shape(i), '{2,1}')
  T.close(v, {{5}, {7}}, 0)
  T.close(i, {{2}, {1}}, 0)
  v, i = x:t():max(2) -- non-contiguous input
  T.close(v, {7, 5, 7}, 0)
  T.close(i, {2, 1, 2}, 0)
  local y = duel.arange(24):view(2, 3, 4)
  v, i = y:max(2)
  T.close(v, {{9, 10, 11, 12}, {21, 22, 23, 24}}, 0)
  T.close(i, {{3, 3, 3, 3}, {3, 3, 3, 3}}, 0)
  v, i = duel.tensor{4, 9, 1}:max(1)
  T.eq(v:dim(), 0)
  T.eq(v:item(), 9)
  T.eq(i:item(), 2)
end)

T.case('argmax: flat 1-based index, per dim, keepdim', function()
  local x = duel.tensor{{1, 5, 2}, {7, 0, 7}}
  local a = x:argmax()
  T.eq(a:dim(), 0)
  T.eq(a:item(), 4)
  T.close(x:argmax(1), {2, 1, 2}, 0)
  T.close(x:argmax(2), {2, 1}, 0)
  T.close(x:argmax(2, true), {{2}, {1}}, 0)
  T.close(x:argmax(-2), {2, 1, 2}, 0)
  T.eq(x:t():argmax():item(), 2) -- flat order of the view {{1,7},{5,0},{2,7}}
  T.eq(duel.tensor{3, 1, 3}:argmax():item(), 1)
  T.raises('argmax: cannot reduce an empty tensor', function() return duel.zeros(0):argmax() end)
end)

T.case('var/std: unbiased by default, biased on request, per dim', function()
  local v = duel.tensor{1, 2, 3, 4}
  T.close(v:var(), 5 / 3)
  T.close(v:var(1, false, false), 1.25)
  T.close(v:std(), math.sqrt(5 / 3))
  T.close(v:std(nil, false, false), math.sqrt(1.25))
  local x = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  T.close(x:var(), 3.5)
  T.close(x:var(nil, false, false), 17.5 / 6)
  T.close(x:var(1), {4.5, 4.5, 4.5})
  T.close(x:var(1, false, false), {2.25, 2.25, 2.25})
  T.close(x:var(2), {1, 1})
  T.close(x:var(-1, true, false), {{2 / 3}, {2 / 3}})
  T.close(x:std(2), {1, 1})
  T.close(x:std(1, true), {{math.sqrt(4.5), math.sqrt(4.5), math.sqrt(4.5)}})
  T.close(duel.tensor{5, 5, 5}:std(), 0, 0)
  -- shifting by a large constant keeps the variance (two-pass, not E[x^2]-E[x]^2)
  T.close((v + 10000):var(), 5 / 3, 1e-4)
  T.raises('var: need more than 1 element(s) to reduce', function() return duel.tensor{1}:var() end)
  T.raises('std: need more than 1 element(s) to reduce', function() return duel.tensor{1}:std() end)
end)

T.case('logsumexp: exact values, stable for +-1000', function()
  local l2 = math.log(2)
  T.close(duel.tensor{0, math.log(3)}:logsumexp(), math.log(4), 1e-6)
  T.close(duel.tensor{1000, 1000}:logsumexp(), 1000 + l2, 1e-6)
  T.close(duel.tensor{-1000, -1000}:logsumexp(), -1000 + l2, 1e-6)
  T.close(duel.tensor{1000, -1000}:logsumexp(), 1000, 1e-6)
  local x = duel.tensor{{1000, 1000}, {-1000, -1000}, {0, 0}}
  local r = x:logsumexp(2)
  T.eq(shape(r), '{3}')
  T.close(r, {1000 + l2, -1000 + l2, l2}, 1e-6)
  T.close(x:logsumexp(-1, true), {{1000 + l2}, {-1000 + l2}, {l2}}, 1e-6)
  T.close(x:logsumexp(1), {1000, 1000}, 1e-6)
  T.eq(x:logsumexp():dim(), 0)
  T.close(x:logsumexp(), 1000 + l2, 1e-6)
  T.close(duel.tensor{-math.huge, -math.huge}:logsumexp(), -math.huge, 0)
  T.close(duel.tensor{-math.huge, 0}:logsumexp(), 0, 0)
end)

T.case('norm: p=2, p=1, p=3, per dim, keepdim', function()
  local x = duel.tensor{{3, 4}, {-6, 8}}
  T.close(x:norm(), math.sqrt(125), 1e-6)
  T.close(x:norm(2), math.sqrt(125), 1e-6)
  T.close(x:norm(1), 21, 1e-6)
  T.close(x:norm(3), 819 ^ (1 / 3), 1e-6)
  T.close(x:norm(2, 2), {5, 10}, 1e-6)
  T.close(x:norm(1, 1), {9, 12}, 1e-6)
  T.close(x:norm(3, 2), {91 ^ (1 / 3), 728 ^ (1 / 3)}, 1e-6)
  T.close(x:norm(2, -2, true), {{math.sqrt(45), math.sqrt(80)}}, 1e-6)
  T.eq(x:norm():dim(), 0)
  T.raises('norm: p must be a positive finite number, got 0', function() return x:norm(0) end)
end)

-- ---- joining and indexing ----------------------------------------------------------------------

T.case('cat: dims 1 and 2, default dim, non-contiguous inputs', function()
  local a = duel.tensor{{1, 2}, {3, 4}}
  local b = duel.tensor{{5, 6}}
  T.close(duel.cat({a, b}, 1), {{1, 2}, {3, 4}, {5, 6}}, 0)
  T.close(duel.cat({a, b}), {{1, 2}, {3, 4}, {5, 6}}, 0)
  T.close(duel.cat({a, a:t()}, 2), {{1, 2, 1, 3}, {3, 4, 2, 4}}, 0)
  T.close(duel.cat({a, duel.tensor{{9}, {8}}}, -1), {{1, 2, 9}, {3, 4, 8}}, 0)
  T.close(duel.cat({a}, 1), {{1, 2}, {3, 4}}, 0)
  T.close(duel.cat({duel.tensor{1, 2}, duel.tensor{}, duel.tensor{3}}), {1, 2, 3}, 0)
  local y = duel.arange(8):view(2, 2, 2)
  T.close(duel.cat({y, y}, 3), {{{1, 2, 1, 2}, {3, 4, 3, 4}}, {{5, 6, 5, 6}, {7, 8, 7, 8}}}, 0)
  T.raises('cat: tensor 2 must match tensor 1 except in dimension 1, got {2,3} and {2,2}',
           function() return duel.cat({a, duel.zeros(2, 3)}, 1) end)
  T.raises('cat: element 2 must be a duel.Tensor', function() return duel.cat({a, 1}) end)
end)

T.case('cat: more than 4 tensors along dims 1 and 2', function()
  local rows, cols, flat = {}, {}, {}
  for i = 1, 9 do
    rows[i] = duel.full({1, 2}, i)
    cols[i] = duel.full({2, 1}, i)
    flat[i] = duel.tensor{i, -i}
  end
  local r = duel.cat(rows, 1)
  T.eq(shape(r), '{9,2}')
  for i = 1, 9 do T.close(r:select(1, i), {i, i}, 0) end
  local c = duel.cat(cols, 2)
  T.eq(shape(c), '{2,9}')
  T.close(c, {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 5, 6, 7, 8, 9}}, 0)
  local six = {}
  for i = 1, 6 do six[i] = flat[i] end
  T.close(duel.cat(six), {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6}, 0)
  local many = {}
  for i = 1, 20 do many[i] = duel.tensor{i} end
  T.close(duel.cat(many), duel.arange(20):totable(), 0)
end)

T.case('stack: new dim at 1, 2 and the end', function()
  local a, b, c = duel.tensor{1, 2}, duel.tensor{3, 4}, duel.tensor{5, 6}
  T.close(duel.stack({a, b, c}), {{1, 2}, {3, 4}, {5, 6}}, 0)
  T.close(duel.stack({a, b, c}, 1), {{1, 2}, {3, 4}, {5, 6}}, 0)
  T.close(duel.stack({a, b, c}, 2), {{1, 3, 5}, {2, 4, 6}}, 0)
  T.close(duel.stack({a, b, c}, -1), {{1, 3, 5}, {2, 4, 6}}, 0)
  local m = duel.tensor{{1, 2}, {3, 4}}
  local s = duel.stack({m, m * 10}, 3)
  T.eq(shape(s), '{2,2,2}')
  T.close(s, {{{1, 10}, {2, 20}}, {{3, 30}, {4, 40}}}, 0)
  local ss = {}
  for i = 1, 6 do ss[i] = duel.tensor(i) end
  T.close(duel.stack(ss), {1, 2, 3, 4, 5, 6}, 0)
  T.raises('stack: every tensor must have the same shape, got {2} and {3}',
           function() return duel.stack({a, duel.zeros(3)}) end)
end)

T.case('split: pieces along a dim, last smaller, views of the input', function()
  local x = duel.arange(7)
  local p = x:split(3)
  T.eq(#p, 3)
  T.close(p[1], {1, 2, 3}, 0)
  T.close(p[2], {4, 5, 6}, 0)
  T.close(p[3], {7}, 0)
  T.eq(#x:split(7), 1)
  T.eq(#x:split(10), 1)
  local m = duel.arange(10):view(2, 5)
  local q = duel.split(m, 2, 2)
  T.eq(#q, 3)
  T.eq(shape(q[1]), '{2,2}')
  T.eq(shape(q[3]), '{2,1}')
  T.close(q[2], {{3, 4}, {8, 9}}, 0)
  T.close(q[3], {{5}, {10}}, 0)
  q[3]:fill_(0)
  T.close(m:select(2, 5), {0, 0}, 0)
  T.raises('split: piece size must be a positive whole number, got 0',
           function() return x:split(0) end)
end)

T.case('index_select: 1-based, repeated indices, any dim', function()
  local x = duel.tensor{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
  T.close(x:index_select(1, duel.tensor{3, 1, 3}), {{7, 8, 9}, {1, 2, 3}, {7, 8, 9}}, 0)
  T.close(x:index_select(2, duel.tensor{2, 2}), {{2, 2}, {5, 5}, {8, 8}}, 0)
  T.close(x:index_select(-1, duel.tensor{3}), {{3}, {6}, {9}}, 0)
  T.close(x:t():index_select(1, duel.tensor{1, 3}), {{1, 4, 7}, {3, 6, 9}}, 0)
  T.eq(shape(x:index_select(1, duel.tensor{})), '{0,3}')
  T.close(duel.index_select(duel.tensor{10, 20, 30}, 1, duel.tensor{2, 2, 2, 1}),
          {20, 20, 20, 10}, 0)
  local y = duel.arange(24):view(2, 3, 4)
  T.close(y:index_select(2, duel.tensor{3, 1}), {{{9, 10, 11, 12}, {1, 2, 3, 4}},
                                                {{21, 22, 23, 24}, {13, 14, 15, 16}}}, 0)
  local function bad(d, idx, got)
    local ok, err = pcall(x.index_select, x, d, duel.tensor(idx))
    T.ok(not ok and err:find('index_select:', 1, true) and err:find('got ' .. got, 1, true),
         'index_select accepted or misreported ' .. got .. ': ' .. tostring(err))
  end
  bad(1, {1, 4}, '4')
  bad(2, {0}, '0')
  bad(1, {1.5}, '1.5')
  T.raises('index_select: index must be 1-D, got {1,1}',
           function() return x:index_select(1, duel.tensor{{1}}) end)
end)

-- ---- matmul -----------------------------------------------------------------------------------

T.case('matmul: 2-D values and the method form', function()
  local a = {{1, 2, 3}, {4, 5, 6}}
  local b = {{1, -1, 0, 2}, {0, 1, 1, 1}, {2, 0, -1, 3}}
  local A, B = duel.tensor(a), duel.tensor(b)
  local c = duel.matmul(A, B)
  T.eq(shape(c), '{2,4}')
  T.close(c, mm(a, b), 1e-6)
  T.close(A:matmul(B), mm(a, b), 1e-6)
  T.close(duel.matmul(duel.tensor{{2}}, duel.tensor{{3, 4}}), {{6, 8}}, 0)
  T.close(duel.matmul(duel.tensor{{1, 2, 3}}, duel.tensor{{4}, {5}, {6}}), {{32}}, 0)
end)

T.case('matmul: transposed and sliced views as operands', function()
  local a = {{1, 2, 3}, {4, 5, 6}}
  local A = duel.tensor(a)
  local at = {{1, 4}, {2, 5}, {3, 6}}
  T.close(duel.matmul(A, A:t()), mm(a, at), 1e-6)
  T.close(duel.matmul(A:t(), A), mm(at, a), 1e-6)
  T.close(duel.matmul(A:t(), A:t():t()), mm(at, a), 1e-6)
  local big = duel.arange(20):view(4, 5)
  local sub = big:narrow(1, 2, 2):narrow(2, 2, 3) -- {{7,8,9},{12,13,14}}, leading stride 5
  T.close(duel.matmul(sub, A:t()), mm({{7, 8, 9}, {12, 13, 14}}, at), 1e-6)
  T.close(duel.matmul(A, sub:t()), mm(a, {{7, 12}, {8, 13}, {9, 14}}), 1e-6)
  local col = big:narrow(2, 3, 1) -- {4,1} column with row stride 5
  T.close(duel.matmul(duel.ones(2, 4), col), {{3 + 8 + 13 + 18}, {42}}, 1e-6)
  local e = duel.tensor{1, 2, 3}:view(1, 3):expand(2, 3) -- stride 0 rows
  T.close(duel.matmul(e, A:t()), {{14, 32}, {14, 32}}, 1e-6)
end)

T.case('matmul: batched 3-D x 3-D, 3-D x 2-D, 2-D x 3-D', function()
  local a1, a2 = {{1, 2}, {3, 4}, {5, 6}}, {{-1, 0}, {2, 1}, {0, 3}}
  local b1, b2 = {{1, 0, 2, 1}, {0, 1, 1, -1}}, {{2, 2, 0, 1}, {1, 0, 3, 0}}
  local A = duel.tensor{a1, a2}
  local B = duel.tensor{b1, b2}
  local c = duel.matmul(A, B)
  T.eq(shape(c), '{2,3,4}')
  T.close(c, {mm(a1, b1), mm(a2, b2)}, 1e-6)
  local c2 = duel.matmul(A, duel.tensor(b1))
  T.eq(shape(c2), '{2,3,4}')
  T.close(c2, {mm(a1, b1), mm(a2, b1)}, 1e-6)
  local c3 = duel.matmul(duel.tensor(a2), B)
  T.eq(shape(c3), '{2,3,4}')
  T.close(c3, {mm(a2, b1), mm(a2, b2)}, 1e-6)
  -- batched with transposed inner views and a permuted batch
  local At = A:transpose(2, 3) -- {2,2,3}
  local g = duel.matmul(At, A)
  local a1t, a2t = {{1, 3, 5}, {2, 4, 6}}, {{-1, 2, 0}, {0, 1, 3}}
  T.close(g, {mm(a1t, a1), mm(a2t, a2)}, 1e-6)
  local P = duel.tensor{a1t, a2t}:permute(3, 1, 2) -- {3,2,2}: batch stride 1
  local Q = duel.tensor{{{1, 0}, {0, 1}}, {{2, 0}, {0, 2}}, {{0, 1}, {1, 0}}}
  local r = duel.matmul(P, Q)
  for i = 1, 3 do
    local pi = P:select(1, i):totable()
    T.close(r:select(1, i), mm(pi, Q:select(1, i):totable()), 1e-6)
  end
  -- a batch-expanded operand (stride 0 over the batch)
  local E = duel.tensor(a1):unsqueeze(1):expand(2, 3, 2)
  T.close(duel.matmul(E, B), {mm(a1, b1), mm(a1, b2)}, 1e-6)
end)

-- products of M*N*K above 2^19 with uneven M and N, under 2 threads, through duel_sgemm
-- (csrc/parallel.c) in every transpose combination, and linear's bias-first accumulation
-- (beta = 1), against the Lua product
T.case('matmul: mid-sized products, every transpose combination', function()
  local function rnd(r, c)
    local t = {}
    for i = 1, r do
      t[i] = {}
      for j = 1, c do t[i][j] = ((i * 7 + j * 13) % 29) / 29 - 0.5 end
    end
    return t
  end
  local function tr(t)
    local o = {}
    for j = 1, #t[1] do
      o[j] = {}
      for i = 1, #t do o[j][i] = t[i][j] end
    end
    return o
  end
  with_threads(2, function()
    for _, mnk in ipairs{{100, 75, 71}, {75, 100, 71}, {33, 130, 130}} do
      local M, N, K = mnk[1], mnk[2], mnk[3]
      local a, b = rnd(M, K), rnd(K, N)
      local want = mm(a, b)
      local A, B = duel.tensor(a), duel.tensor(b)
      local At, Bt = duel.tensor(tr(a)):t(), duel.tensor(tr(b)):t()
      T.close(duel.matmul(A, B), want, 1e-5)
      T.close(duel.matmul(At, B), want, 1e-5)
      T.close(duel.matmul(A, Bt), want, 1e-5)
      T.close(duel.matmul(At, Bt), want, 1e-5)
      local bias = {}
      for j = 1, N do bias[j] = j / N end
      local lin = duel.F.linear(A, duel.tensor(tr(b)), duel.tensor(bias))
      for i = 1, M do
        for j = 1, N do want[i][j] = want[i][j] + bias[j] end
      end
      T.close(lin, want, 1e-5)
    end
  end)
end)

T.case('matmul: K=0 gives zeros, empty M or N gives empty results', function()
  local z = duel.matmul(duel.zeros(2, 0), duel.zeros(0, 3))
  T.eq(shape(z), '{2,3}')
  T.close(z, {{0, 0, 0}, {0, 0, 0}}, 0)
  local zb = duel.matmul(duel.ones(2, 2, 0), duel.ones(2, 0, 3))
  T.eq(shape(zb), '{2,2,3}')
  T.eq(zb:abs():sum():item(), 0)
  T.eq(shape(duel.matmul(duel.zeros(0, 3), duel.zeros(3, 2))), '{0,2}')
  T.eq(shape(duel.matmul(duel.zeros(2, 3), duel.zeros(3, 0))), '{2,0}')
  T.eq(shape(duel.matmul(duel.zeros(0, 2, 3), duel.zeros(3, 4))), '{0,2,4}')
end)

T.case('matmul: shape errors', function()
  T.raises_exact('matmul: inner sizes must match, got {2,3} and {2,3}',
                 function() return duel.matmul(duel.zeros(2, 3), duel.zeros(2, 3)) end)
  T.raises_exact('matmul: batch sizes must match, got {2,2,3} and {3,3,2}',
                 function() return duel.matmul(duel.zeros(2, 2, 3), duel.zeros(3, 3, 2)) end)
  T.raises('matmul: operands must be 2-D or 3-D (batched), got {3} and {3,2}',
           function() return duel.matmul(duel.zeros(3), duel.zeros(3, 2)) end)
  T.raises('matmul: argument 2 must be a duel.Tensor',
           function() return duel.matmul(duel.zeros(2, 2), 2) end)
end)

-- ---- large tensors: the OpenMP paths ------------------------------------------------------------

T.case('large add/mul/sub/div (100k elements) match element-wise Lua', function()
  local n = 100000
  local a = duel.arange(n)
  local b = a * 0.5 + 1
  local c = a + b
  local d = a * b
  local q = b / a
  local s = a - b
  for _, i in ipairs{1, 2, 16384, 16385, 32768, 32769, 54321, n - 1, n} do
    local bi = i * 0.5 + 1
    T.close(c:get(i), i + bi, 1e-7)
    T.close(d:get(i), i * bi, 1e-6)
    T.close(q:get(i), bi / i, 1e-6)
    T.close(s:get(i), i - bi, 1e-7)
  end
  T.close((a + 1):sum(), n * (n + 1) / 2 + n, 1e-6)
end)

T.case('large broadcast and non-contiguous binary ops', function()
  local R, C = 300, 200
  local m = duel.arange(R * C):view(R, C)
  local row = duel.arange(C)
  local col = duel.arange(R):view(R, 1)
  local a = m + row
  local b = m * col
  local t = m:t() - m:t() * 2 -- {C,R} transposed views, 60000 elements
  for _, ij in ipairs{{1, 1}, {1, C}, {150, 77}, {R, 1}, {R, C}} do
    local i, j = ij[1], ij[2]
    local v = (i - 1) * C + j
    T.eq(a:get(i, j), v + j)
    T.eq(b:get(i, j), v * i)
    T.eq(t:get(j, i), -v)
  end
  T.eq(shape(t), '{200,300}')
  local e = duel.tensor{1, 2}:view(2, 1, 1):expand(2, 200, 300) + duel.ones(200, 300)
  T.eq(e:sum():item(), 2 * 60000 + 3 * 60000)
end)

T.case('large exp/sqrt/sigmoid (80k elements) match math.*', function()
  local n = 80000
  local x = (duel.arange(n) - 40000) * 1e-4
  local e, r, s = x:exp(), x:abs():sqrt(), x:sigmoid()
  for _, i in ipairs{1, 100, 32768, 32769, 40000, 65537, n} do
    local v = x:get(i)
    T.close(e:get(i), math.exp(v), 1e-6)
    T.close(r:get(i), math.sqrt(math.abs(v)), 1e-6)
    T.close(s:get(i), 1 / (1 + math.exp(-v)), 1e-6)
  end
  -- non-contiguous input takes the copy path
  local xt = x:view(400, 200):t():exp()
  T.close(xt:get(7, 300), math.exp(x:get(299 * 200 + 7)), 1e-6)
end)

T.case('large sums: all, per dim (both kernels), max and argmax', function()
  local n = 120000
  local x = duel.arange(n)
  T.close(x:sum(), n * (n + 1) / 2, 1e-7)
  T.close(duel.ones(n):sum(), n, 0)
  T.close(x:mean(), (n + 1) / 2, 1e-7)
  T.eq(x:max():item(), n)
  T.eq(x:argmax():item(), n)
  local m = x:view(400, 300) -- m[i][j] = 300(i-1) + j
  local s1, s2 = m:sum(1), m:sum(2)
  for _, j in ipairs{1, 150, 300} do T.close(s1:get(j), 23940000 + 400 * j, 1e-7) end
  for _, i in ipairs{1, 200, 400} do T.close(s2:get(i), 90000 * (i - 1) + 45150, 1e-7) end
  local s3 = m:view(40, 10, 300):sum(2) -- a middle dim: the generic kernel
  T.close(s3:get(1, 1), 10 * 1 + 300 * 45, 1e-7)
  T.close(s3:get(40, 300), 10 * 300 + 300 * (390 * 10 + 45), 1e-7)
  local v, i = m:max(2)
  T.close(v:get(400), n, 0)
  T.close(i, duel.full({400}, 300):totable(), 0)
  T.close(m:t():sum(2):get(5), 23940000 + 400 * 5, 1e-7)
end)

T.case('large ops give identical results with 1 and 2 threads', function()
  duel.manual_seed(11)
  local x = duel.randn(256, 512)
  local y = duel.randn(512)
  local function run()
    return {(x + y):exp(), x:sum(1), x:sum(2), x:sum(), x:t():contiguous(), x:max(1), x * x}
  end
  local one = with_threads(1, run)
  local two = with_threads(2, run)
  for k = 1, #one do
    T.eq((one[k] - two[k]):abs():max():item(), 0, 'result ' .. k .. ' differs')
  end
end)
