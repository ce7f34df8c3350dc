-- Activations (leaky_relu, elu, softplus, softmax, log_softmax), dropout, and the Lua
-- composites embedding, one_hot, flatten: closed forms, gradients, errors.
local T = require 'tests.harness'
local duel = require 'duel'
local F = duel.F
local C = duel._core
local exp, log = math.exp, math.log

local function grad1(y, x, opts) return duel.autograd.grad({y}, {x}, opts)[1] end

-- a leaf with distinct values kept at least 0.2 away from 0 (the kinks)
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

-- ---- leaky_relu -------------------------------------------------------------------------------

T.case('leaky_relu: values, default slope, method, gradient', function()
  local x = duel.tensor{{-1.5, -0.3, 0.4, 2.0}}:requires_grad_()
  T.close(F.leaky_relu(x, 0.2), {{-0.3, -0.06, 0.4, 2.0}})
  T.close(F.leaky_relu(x), {{-0.015, -0.003, 0.4, 2.0}})
  T.close(x:leaky_relu(0.5), {{-0.75, -0.15, 0.4, 2.0}})
  T.close(grad1(F.leaky_relu(x, 0.2):sum(), x), {{0.2, 0.2, 1, 1}})
  -- second derivative of leaky_relu(x) * x is 2 * mask
  local g = grad1((F.leaky_relu(x, 0.2) * x):sum(), x, {create_graph = true})
  T.close(g, {{-0.6, -0.12, 0.8, 4.0}})
  T.close(grad1(g:sum(), x), {{0.4, 0.4, 2, 2}})
  T.close(F.leaky_relu(duel.tensor{0}, 0.2), {0})
end)

T.case('strided inputs: values and gradients through views', function()
  local x = duel.tensor{{-1, 2}, {3, -4}}:t()
  T.close(F.leaky_relu(x, 0.1), {{-0.1, 3}, {2, -0.4}})
  duel.manual_seed(20)
  local w = leaf(3, 2)
  local fns = {
    function(a) return F.softmax(a:t(), 2) end,
    function(a) return F.log_softmax(a:t(), 1) end,
    function(a) return F.elu(a:t()) * a:t() end,
    function(a) return F.softplus(a:t(), 3) end,
    function(a) return F.leaky_relu(a:t(), 0.3) * a:t() end,
  }
  for _, fn in ipairs(fns) do
    T.ok(duel.autograd.gradcheck(fn, {w}))
    T.ok(duel.autograd.gradgradcheck(fn, {w}))
  end
end)

T.case('leaky_relu: errors', function()
  local x = duel.zeros(2)
  T.raises_exact('leaky_relu: argument 1 must be a duel.Tensor, got nil', function() F.leaky_relu(nil, 0.2) end)
  T.raises_exact('leaky_relu: negative_slope must be a number, got string', function() F.leaky_relu(x, 'a') end)
  T.raises_exact('leaky_relu: negative_slope must be finite, got inf', function() F.leaky_relu(x, math.huge) end)
end)

-- ---- elu -------------------------------------------------------------------------------------

T.case('elu: values on both sides, alpha', function()
  local x = duel.tensor{-1, -0.5, 0, 2}
  T.close(F.elu(x), {exp(-1) - 1, exp(-0.5) - 1, 0, 2})
  T.close(F.elu(x, 2), {2 * (exp(-1) - 1), 2 * (exp(-0.5) - 1), 0, 2})
  T.close(F.elu(duel.tensor{-30}, 1.5), {-1.5})
end)

T.case('elu: first and second derivative (negative side depends on x)', function()
  local x = duel.tensor{-1, -0.5, 2}:requires_grad_()
  local a = 1.5
  local g = grad1(F.elu(x, a):sum(), x, {create_graph = true})
  T.close(g, {a * exp(-1), a * exp(-0.5), 1})
  T.close(grad1(g:sum(), x), {a * exp(-1), a * exp(-0.5), 0})
end)

T.case('elu: errors', function()
  T.raises('elu: alpha must be finite, got ', function() F.elu(duel.zeros(1), 0 / 0) end)
  T.raises_exact('elu: alpha must be a number, got table', function() F.elu(duel.zeros(1), {}) end)
end)

-- ---- softplus --------------------------------------------------------------------------------

T.case('softplus: values, threshold region, options', function()
  local x = duel.tensor{-2, 0, 1, 25}
  T.close(F.softplus(x), {log(1 + exp(-2)), log(2), log(1 + exp(1)), 25})
  -- beta = 2, threshold = 3: linear where 2x > 3 (x = 2), log1p(exp(2x))/2 elsewhere
  local y = duel.tensor{1, 1.5, 2}
  local want = {log(1 + exp(2)) / 2, log(1 + exp(3)) / 2, 2}
  T.close(F.softplus(y, {beta = 2, threshold = 3}), want)
  T.close(F.softplus(y, 2, 3), want)
  T.close(F.softplus(y, 2), {log(1 + exp(2)) / 2, log(1 + exp(3)) / 2, log(1 + exp(4)) / 2})
  -- the switch is strict (beta x > threshold), as PyTorch's
  T.close(F.softplus(y, {threshold = 1.5}), {log(1 + exp(1)), log(1 + exp(1.5)), 2})
  -- a huge threshold: the log term must not overflow
  T.close(F.softplus(duel.tensor{100, -100}, {threshold = 1e30}), {100, 0})
end)

T.case('softplus: derivative sigmoid(beta x), 1 in the linear region; second derivative', function()
  local x = duel.tensor{-1, 1, 2}:requires_grad_()
  local s = function(z) return 1 / (1 + exp(-z)) end
  local g = grad1(F.softplus(x, {beta = 2, threshold = 3}):sum(), x, {create_graph = true})
  T.close(g, {s(-2), s(2), 1})
  T.close(grad1(g:sum(), x), {2 * s(-2) * (1 - s(-2)), 2 * s(2) * (1 - s(2)), 0})
end)

T.case('softplus: errors', function()
  local x = duel.zeros(2)
  T.raises_exact('softplus: beta must be positive and finite, got 0', function() F.softplus(x, 0) end)
  T.raises_exact('softplus: beta must be positive and finite, got -1', function() F.softplus(x, {beta = -1}) end)
  T.raises_exact("softplus: unknown option (expected beta, threshold), got 'betta'",
    function() F.softplus(x, {betta = 2}) end)
  T.raises_exact("softplus: option 'threshold' must be a number, got string",
    function() F.softplus(x, {threshold = 'x'}) end)
  T.raises_exact('softplus: options must be a table or a number (beta), got string',
    function() F.softplus(x, 'b') end)
  T.raises('softplus: threshold must not be NaN, got ', function() F.softplus(x, 1, 0 / 0) end)
end)

-- ---- softmax / log_softmax -------------------------------------------------------------------

-- slow reference along dim d of a 3-D tensor, in Lua doubles
local function ref_softmax(x, d, take_log)
  local s = x:size()
  local out = duel.zeros(s)
  local idx = {1, 1, 1}
  for i = 1, s[1] do for j = 1, s[2] do for k = 1, s[3] do
    local p = {i, j, k}
    local m, sum = -math.huge, 0
    for r = 1, s[d] do idx = {i, j, k}; idx[d] = r; m = math.max(m, x:get(unpack(idx))) end
    for r = 1, s[d] do idx = {i, j, k}; idx[d] = r; sum = sum + exp(x:get(unpack(idx)) - m) end
    local v = x:get(unpack(p)) - m
    out:set_(take_log and v - log(sum) or exp(v) / sum, unpack(p))
  end end end
  return out
end

T.case('softmax: closed form, rows sum to 1, every dim, method, default last dim', function()
  local x = duel.tensor{{1, 2, 3}, {0, 0, 0}}
  local z = 1 + exp(1) + exp(2)
  T.close(F.softmax(x, 2), {{1 / z, exp(1) / z, exp(2) / z}, {1 / 3, 1 / 3, 1 / 3}})
  T.close(F.softmax(x), F.softmax(x, 2))
  T.close(x:softmax(-1), F.softmax(x, 2))
  T.close(F.softmax(x, 1), {{1 / (1 + exp(-1)), 1 / (1 + exp(-2)), 1 / (1 + exp(-3))},
                            {1 / (1 + exp(1)), 1 / (1 + exp(2)), 1 / (1 + exp(3))}})
  duel.manual_seed(3)
  local r = duel.randn(3, 4, 5) * 4
  for d = 1, 3 do
    T.close(F.softmax(r, d), ref_softmax(r, d, false), 1e-5)
    T.ok((F.softmax(r, d):sum(d) - 1):abs():max():item() < 1e-6, 'softmax rows must sum to 1')
    T.close(F.log_softmax(r, d), ref_softmax(r, d, true), 1e-5)
  end
  T.close(F.softmax(r:transpose(1, 3), 2), ref_softmax(r:transpose(1, 3):contiguous(), 2, false))
end)

T.case('softmax / log_softmax: stable at +-100 and +-1000', function()
  local x = duel.tensor{{100, -100, 0}, {1000, -1000, 999}}
  T.close(F.softmax(x, 2), {{1, 0, exp(-100)}, {1 / (1 + exp(-1)), 0, exp(-1) / (1 + exp(-1))}}, 1e-6)
  local ls = F.log_softmax(x, 2)
  T.close(ls, {{0, -200, -100}, {-log(1 + exp(-1)), -2000 - log(1 + exp(-1)), -1 - log(1 + exp(-1))}}, 1e-6)
  for i = 1, ls:numel() do
    local v = C.flat_get(ls, i)
    T.ok(v == v and v > -math.huge, 'log_softmax gave a non-finite value')
  end
  T.close(F.log_softmax(duel.tensor{-100, 100}), {-200, 0})
end)

T.case('softmax / log_softmax: gradients by hand', function()
  local x = duel.tensor{{1, 2, 3}}:requires_grad_()
  local w = duel.tensor{{0.5, -1, 2}}
  local z = 1 + exp(1) + exp(2)
  local y = {1 / z, exp(1) / z, exp(2) / z}
  local wy = 0.5 * y[1] - y[2] + 2 * y[3]
  T.close(grad1((F.softmax(x, 2) * w):sum(), x),
    {{y[1] * (0.5 - wy), y[2] * (-1 - wy), y[3] * (2 - wy)}})
  -- d/dx sum(w * log_softmax) = w - softmax * sum(w)
  T.close(grad1((F.log_softmax(x, 2) * w):sum(), x),
    {{0.5 - 1.5 * y[1], -1 - 1.5 * y[2], 2 - 1.5 * y[3]}})
end)

T.case('softmax: output modified in place is detected by backward', function()
  local x = duel.tensor{1, 2}:requires_grad_()
  local y = F.softmax(x)
  duel.no_grad(function() y:fill_(0) end)
  T.raises('softmax: its output, needed for its gradient, was modified in place',
    function() y:sum():backward() end)
end)

T.case('softmax / log_softmax: errors', function()
  local x = duel.zeros(2, 3)
  T.raises_exact('softmax: dimension out of range (expected 1 to 2), got 3', function() F.softmax(x, 3) end)
  T.raises_exact('log_softmax: dimension out of range (expected 1 to 2), got -3', function() x:log_softmax(-3) end)
  T.raises_exact('softmax: input must have at least 1 dimension, got {}', function() F.softmax(duel.tensor(1)) end)
  T.raises_exact('log_softmax: dimension must be a number, got string', function() F.log_softmax(x, 'a') end)
end)

-- ---- dropout ---------------------------------------------------------------------------------

local function zeros_fraction(y)
  local z = 0
  for i = 1, y:numel() do if C.flat_get(y, i) == 0 then z = z + 1 end end
  return z / y:numel()
end

T.case('dropout: mask fraction ~ p over 100k, kept values scaled by 1/(1-p)', function()
  duel.manual_seed(1)
  local n, p = 100000, 0.3
  local y = F.dropout(duel.ones(n), p, true)
  local frac = zeros_fraction(y)
  T.ok(math.abs(frac - p) < 0.01, ('zero fraction %g, expected about %g'):format(frac, p))
  local scale = 1 / (1 - p)
  for i = 1, n do
    local v = C.flat_get(y, i)
    if v ~= 0 and math.abs(v - scale) > 1e-6 then T.ok(false, ('kept value %g, expected %g'):format(v, scale)) end
  end
  T.ok(math.abs(zeros_fraction(F.dropout(duel.ones(n))) - 0.5) < 0.01, 'default p is 0.5')
  -- values of x carried through: y = x * mask / (1-p)
  local x = duel.arange(10)
  local d = F.dropout(x, 0.5)
  for i = 1, 10 do
    local v = C.flat_get(d, i)
    T.ok(v == 0 or math.abs(v - 2 * i) < 1e-5, 'kept value not x / (1 - p)')
  end
end)

T.case('dropout: eval and p = 0 are the identity; p = 1 gives zeros', function()
  local x = duel.randn(3, 4):requires_grad_()
  T.close(F.dropout(x, 0.5, false), x)
  T.close(F.dropout(x, 0, true), x)
  local z = F.dropout(x, 1)
  T.close(z, duel.zeros(3, 4))
  T.close(grad1(z:sum(), x), duel.zeros(3, 4))
end)

T.case('dropout: same seed gives the same mask; the RNG advances', function()
  duel.manual_seed(42)
  local a = F.dropout(duel.ones(1000), 0.5)
  local b = F.dropout(duel.ones(1000), 0.5)
  duel.manual_seed(42)
  local c = F.dropout(duel.ones(1000), 0.5)
  T.close(c, a, 0)
  T.ok((a - b):abs():sum():item() > 0, 'consecutive masks are identical')
end)

T.case('dropout: the same mask under 1 and 2 threads', function()
  local prev = duel.get_num_threads()
  local n = 200000 -- above DUEL_PAR_MIN, so the kernel splits across threads
  duel.set_num_threads(1)
  duel.manual_seed(9)
  local a = F.dropout(duel.ones(n), 0.4)
  duel.set_num_threads(2)
  duel.manual_seed(9)
  local b = F.dropout(duel.ones(n), 0.4)
  duel.set_num_threads(prev)
  T.eq((a - b):abs():sum():item(), 0)
end)

T.case('dropout: gradient is mask / (1 - p)', function()
  duel.manual_seed(5)
  local x = duel.ones(50):requires_grad_()
  local y = F.dropout(x, 0.2)
  y:sum():backward()
  T.close(x.grad, y:detach()) -- x = 1, so y = mask / (1 - p) itself
  -- second order: d/dx of (dropout(x) * x) summed twice is 2 * mask / (1 - p)
  local x2 = duel.tensor{1, 2, 3, 4, 5, 6}:requires_grad_()
  duel.manual_seed(6)
  local y2 = F.dropout(x2, 0.5)
  local g = grad1((y2 * x2):sum(), x2, {create_graph = true})
  local m = (y2 / x2):detach()
  T.close(grad1(g:sum(), x2), m * 2)
end)

T.case('dropout: errors', function()
  local x = duel.zeros(3)
  T.raises_exact('dropout: probability must be in [0, 1], got 1.5', function() F.dropout(x, 1.5) end)
  T.raises_exact('dropout: probability must be in [0, 1], got -0.1', function() F.dropout(x, -0.1) end)
  T.raises_exact('dropout: probability must be a number, got string', function() F.dropout(x, '0.5') end)
  T.raises_exact('dropout: training must be a boolean, got number', function() F.dropout(x, 0.5, 1) end)
end)

-- ---- Lua composites: embedding, one_hot, flatten ----------------------------------------------

T.case('embedding: rows by 1-based index, any index shape, gradient to W', function()
  local W = duel.tensor{{1, 2}, {3, 4}, {5, 6}}:requires_grad_()
  local idx = duel.tensor{{1, 3}, {3, 3}}
  local e = F.embedding(idx, W)
  T.close(e, {{{1, 2}, {5, 6}}, {{5, 6}, {5, 6}}})
  T.close(F.embedding(duel.tensor{2}, W), {{3, 4}})
  T.eq(F.embedding(duel.tensor(2), W):size(), {2})
  e:sum():backward()
  T.close(W.grad, {{1, 1}, {0, 0}, {3, 3}})
  T.ok(duel.autograd.gradcheck(function(w) local y = F.embedding(idx, w); return y * y end, {leaf(3, 2)}))
  T.ok(duel.autograd.gradgradcheck(function(w) local y = F.embedding(idx, w); return y * y end, {leaf(3, 2)}))
end)

T.case('embedding: errors', function()
  local W = duel.zeros(3, 2)
  T.raises('embedding: index out of range 1..3, got 4', function() F.embedding(duel.tensor{1, 4}, W) end)
  T.raises('embedding: index out of range 1..3, got 0', function() F.embedding(duel.tensor{0}, W) end)
  T.raises('embedding: indices must be whole numbers, got 1.5', function() F.embedding(duel.tensor{1.5}, W) end)
  T.raises('embedding: weight must be 2-D {V,D}, got {3}', function() F.embedding(duel.tensor{1}, duel.zeros(3)) end)
  T.raises('embedding: indices must be a duel.Tensor, got table', function() F.embedding({1}, W) end)
end)

T.case('one_hot: values, any shape, inferred n, no gradient', function()
  T.close(F.one_hot(duel.tensor{2, 1, 3}, 4), {{0, 1, 0, 0}, {1, 0, 0, 0}, {0, 0, 1, 0}})
  T.close(F.one_hot(duel.tensor{2, 1, 3}), {{0, 1, 0}, {1, 0, 0}, {0, 0, 1}})
  local o = F.one_hot(duel.tensor{{1, 2}, {2, 2}}, 2)
  T.eq(o:size(), {2, 2, 2})
  T.close(o, {{{1, 0}, {0, 1}}, {{0, 1}, {0, 1}}})
  local idx = duel.tensor{1, 2}:requires_grad_()
  T.ok(not F.one_hot(idx, 2).requires_grad, 'one_hot must carry no gradient')
end)

T.case('one_hot: errors', function()
  T.raises('one_hot: index out of range 1..3, got 4', function() F.one_hot(duel.tensor{4}, 3) end)
  T.raises('one_hot: index out of range 1..3, got 0', function() F.one_hot(duel.tensor{0, 1}, 3) end)
  T.raises('one_hot: indices must be whole numbers, got 2.5', function() F.one_hot(duel.tensor{2.5}, 3) end)
  T.raises('one_hot: number of classes must be a positive whole number, got 0', function() F.one_hot(duel.tensor{1}, 0) end)
  T.raises('one_hot: cannot infer the number of classes from an empty tensor', function() F.one_hot(duel.zeros(0)) end)
end)

T.case('flatten: default keeps dim 1; start/end dims; gradient flows', function()
  local x = duel.arange(24):view(2, 3, 4)
  T.eq(F.flatten(x):size(), {2, 12})
  T.eq(F.flatten(x, 1):size(), {24})
  T.eq(F.flatten(x, 2, 2):size(), {2, 3, 4})
  T.eq(F.flatten(x, 1, -2):size(), {6, 4})
  T.eq(F.flatten(duel.zeros(2, 3, 4, 5), 2, 3):size(), {2, 12, 5})
  T.eq(F.flatten(duel.tensor(3)):size(), {1})
  T.close(F.flatten(x):select(1, 2):narrow(1, 1, 3), {13, 14, 15})
  local w = leaf(2, 3)
  local g = grad1(F.flatten(w * w):sum(), w)
  T.close(g, w:detach() * 2)
end)

T.case('flatten: errors', function()
  local x = duel.zeros(2, 3, 4)
  T.raises('flatten: dimension out of range (expected 1 to 3), got 4', function() F.flatten(x, 4) end)
  T.raises('flatten: start_dim must not come after end_dim, got 3 and 2', function() F.flatten(x, 3, 2) end)
  T.raises('flatten: dimension out of range (expected 1 to 1), got 2', function() F.flatten(duel.zeros(5)) end)
  T.raises('flatten: start_dim must be a whole number, got 1.5', function() F.flatten(x, 1.5) end)
end)

-- ---- gradcheck + gradgradcheck for every registered op of this family --------------------------

T.gradcase('leaky_relu', function()
  return function(a) return F.leaky_relu(a, 0.2) * a end, {leaf(3, 4)}
end)
T.gradcase('elu', function()
  return function(a) return F.elu(a, 1.3) * a end, {leaf(3, 4)}
end)
T.gradcase('softplus', function()
  -- beta 2, threshold 3: values on both sides of the linear switch at x = 1.5, none near it
  local x = duel.tensor{{-2.1, -0.7, 0.3}, {0.9, 1.9, 2.6}}:requires_grad_()
  return function(a) return F.softplus(a, {beta = 2, threshold = 3}) * a end, {x}
end)
T.gradcase('softmax', function()
  return function(a) return {F.softmax(a, 1), F.softmax(a, 2)} end, {leaf(3, 4)}
end)
T.gradcase('log_softmax', function()
  return function(a) return {F.log_softmax(a, 1), a:log_softmax(-1)} end, {leaf(2, 3, 2)}
end)
