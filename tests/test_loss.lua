-- Losses: bce_with_logits, mse, l1, cross_entropy. Each is the mean over all elements (over the
-- N rows for cross_entropy) and returns a 0-dim tensor.
local T = require 'tests.harness'
local duel = require 'duel'
local F = duel.F
local C = duel._core
local exp, log = math.exp, math.log

local function sig(z) return 1 / (1 + exp(-z)) end
local function grads(y, xs, opts) return duel.autograd.grad({y}, xs, opts) end

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

-- ---- bce_with_logits ---------------------------------------------------------------------------

T.case('bce_with_logits: closed form, mean over elements, 0-dim', function()
  local x, t = duel.tensor{0, 1, -2}, duel.tensor{0.5, 1, 0}
  local want = (log(2) + (1 - 1 + log(1 + exp(-1))) + log(1 + exp(-2))) / 3
  local y = F.bce_with_logits(x, t)
  T.eq(y:size(), {})
  T.close(y, want)
  -- 2-D: the mean over all 4 elements, not a per-row value
  local x2, t2 = duel.tensor{{0, 0}, {3, -3}}, duel.tensor{{1, 0}, {1, 1}}
  local terms = log(2) + log(2) + log(1 + exp(-3)) + (3 + log(1 + exp(-3)))
  T.close(F.bce_with_logits(x2, t2), terms / 4)
end)

T.case('bce_with_logits: exact and finite at logits +-100', function()
  T.eq(F.bce_with_logits(duel.tensor{100}, duel.tensor{0}):item(), 100)
  T.eq(F.bce_with_logits(duel.tensor{-100}, duel.tensor{1}):item(), 100)
  T.eq(F.bce_with_logits(duel.tensor{100, -100, 100, -100}, duel.tensor{0, 1, 1, 0}):item(), 50)
  local v = F.bce_with_logits(duel.tensor{100, -100}, duel.tensor{1, 0}):item()
  T.ok(v >= 0 and v < 1e-30, ('expected about 0, got %g'):format(v))
  -- the gradient there is finite too: (sigmoid(x) - t) / n
  local x = duel.tensor{100, -100}:requires_grad_()
  T.close(grads(F.bce_with_logits(x, duel.tensor{0, 0}), {x})[1], {0.5, 0})
end)

T.case('bce_with_logits: gradients w.r.t. logits and target; second derivative', function()
  local x = duel.tensor{0, 1, -2}:requires_grad_()
  local t = duel.tensor{0.5, 1, 0}:requires_grad_()
  local gx, gt = unpack(grads(F.bce_with_logits(x, t), {x, t}, {create_graph = true}))
  T.close(gx, {0, (sig(1) - 1) / 3, sig(-2) / 3})
  T.close(gt, {0, -1 / 3, 2 / 3})
  -- d/dx sum(gx) = sigmoid'(x) / 3
  T.close(grads(gx:sum(), {x})[1], {0.25 / 3, sig(1) * (1 - sig(1)) / 3, sig(-2) * (1 - sig(-2)) / 3})
end)

-- ---- mse / l1 --------------------------------------------------------------------------------

T.case('mse: closed form and gradients', function()
  local a = duel.tensor{1, 2, 3}:requires_grad_()
  local b = duel.tensor{1, 0, -1}:requires_grad_()
  local y = F.mse(a, b)
  T.eq(y:size(), {})
  T.close(y, 20 / 3)
  local ga, gb = unpack(grads(y, {a, b}, {create_graph = true}))
  T.close(ga, {0, 4 / 3, 8 / 3})
  T.close(gb, {0, -4 / 3, -8 / 3})
  T.close(grads(ga:sum(), {a})[1], {2 / 3, 2 / 3, 2 / 3})
  T.close(F.mse(duel.tensor{{1, 2}, {3, 4}}, duel.zeros(2, 2)), 30 / 4)
  T.close(F.mse(duel.tensor{{1, 2}, {3, 4}}:t(), duel.tensor{{1, 3}, {2, 4}}), 0)
end)

T.case('l1: closed form and gradients', function()
  local a = duel.tensor{1, 2, 3}:requires_grad_()
  local b = duel.tensor{1.5, 0, -1}:requires_grad_()
  T.close(F.l1(a, b), 6.5 / 3)
  local ga, gb = unpack(grads(F.l1(a, b), {a, b}))
  T.close(ga, {-1 / 3, 1 / 3, 1 / 3})
  T.close(gb, {1 / 3, -1 / 3, -1 / 3})
  T.close(F.l1(duel.tensor{{-1, 1}}, duel.tensor{{1, -1}}), 2)
end)

T.case('mse / l1 / bce: shapes must match exactly', function()
  T.raises_exact('mse: input and target shapes must match, got {2,3} and {3}',
    function() F.mse(duel.zeros(2, 3), duel.zeros(3)) end)
  T.raises_exact('l1: input and target shapes must match, got {4,1} and {4}',
    function() F.l1(duel.zeros(4, 1), duel.zeros(4)) end)
  T.raises_exact('bce_with_logits: input and target shapes must match, got {2} and {}',
    function() F.bce_with_logits(duel.zeros(2), duel.tensor(1)) end)
  T.raises_exact('mse: argument 2 must be a duel.Tensor, got number', function() F.mse(duel.zeros(2), 0) end)
end)

-- ---- cross_entropy ---------------------------------------------------------------------------

T.case('cross_entropy: 2x3 by hand, gradient (softmax - onehot) / N', function()
  local x = duel.tensor{{1, 2, 3}, {1, 1, 1}}:requires_grad_()
  local labels = duel.tensor{3, 1}
  local z = 1 + exp(1) + exp(2)
  local want = (log(z) - 2 + log(3)) / 2 -- row 1: logsumexp - x[3] = log(z) + 1 - 3
  local y = F.cross_entropy(x, labels)
  T.eq(y:size(), {})
  T.close(y, want)
  T.close(y, 0.7531091, 1e-6)
  local g = grads(y, {x}, {create_graph = true})[1]
  T.close(g, {{1 / z / 2, exp(1) / z / 2, (exp(2) / z - 1) / 2}, {(1 / 3 - 1) / 2, 1 / 6, 1 / 6}})
  -- second order goes through softmax: d/dx sum(g * w) is finite and matches gradcheck below
  T.ok(grads((g * g):sum(), {x})[1]:abs():sum():item() > 0, 'second derivative vanished')
end)

T.case('cross_entropy: stable at +-100; agrees with -log_softmax', function()
  local x = duel.tensor{{100, -100}, {-100, 100}}
  T.eq(F.cross_entropy(x, duel.tensor{1, 1}):item(), 100)
  T.eq(F.cross_entropy(x, duel.tensor{1, 2}):item(), 0)
  duel.manual_seed(4)
  local r = duel.randn(5, 7) * 3
  local lab = duel.tensor{7, 1, 3, 3, 5}
  local ls = F.log_softmax(r, 2)
  local s = 0
  for i = 1, 5 do s = s - ls:get(i, lab:get(i)) end
  T.close(F.cross_entropy(r, lab), s / 5, 1e-5)
  T.close(F.cross_entropy(r:t():contiguous():t(), lab), s / 5, 1e-5)
end)

T.case('cross_entropy: errors', function()
  local x = duel.zeros(2, 10)
  T.raises_exact('cross_entropy: label out of range 1..10, got 11',
    function() F.cross_entropy(x, duel.tensor{1, 11}) end)
  T.raises_exact('cross_entropy: label out of range 1..10, got 0',
    function() F.cross_entropy(x, duel.tensor{0, 1}) end)
  T.raises_exact('cross_entropy: labels must be whole numbers, got 1.5',
    function() F.cross_entropy(x, duel.tensor{1.5, 1}) end)
  T.raises_exact('cross_entropy: logits must be 2-D {N,C}, got {10}',
    function() F.cross_entropy(duel.zeros(10), duel.tensor{1}) end)
  T.raises_exact('cross_entropy: labels must be 1-D {2} to match logits {2,10}, got {3}',
    function() F.cross_entropy(x, duel.tensor{1, 2, 3}) end)
  T.raises_exact('cross_entropy: labels must be 1-D {2} to match logits {2,10}, got {2,1}',
    function() F.cross_entropy(x, duel.tensor{{1}, {2}}) end)
  T.raises_exact('cross_entropy: argument 2 must be a duel.Tensor, got table',
    function() F.cross_entropy(x, {1, 2}) end)
end)

T.case('losses: strided inputs, gradients through views', function()
  duel.manual_seed(21)
  local a, b = leaf(3, 2), leaf(2, 3)
  local fns = {
    function(p, q) return F.mse(p:t(), q) end,
    function(p, q) local y = F.l1(p:t(), q); return y * y end,
    function(p, q) return F.bce_with_logits(p:t(), q) end,
    function(p) return F.cross_entropy(p:t(), duel.tensor{3, 1}) end,
  }
  for _, fn in ipairs(fns) do
    T.ok(duel.autograd.gradcheck(fn, {a, b}))
    T.ok(duel.autograd.gradgradcheck(fn, {a, b}))
  end
end)

-- ---- determinism ---------------------------------------------------------------------------------

T.case('losses: the same value under 1 and 3 threads', function()
  duel.manual_seed(12)
  local a, b = duel.randn(300001), duel.rand(300001)
  local prev = duel.get_num_threads()
  local vals = {}
  for k, n in ipairs{1, 3} do
    duel.set_num_threads(n)
    vals[k] = {F.mse(a, b):item(), F.l1(a, b):item(), F.bce_with_logits(a, b):item()}
  end
  duel.set_num_threads(prev)
  T.eq(vals[2], vals[1])
end)

-- ---- gradcheck + gradgradcheck for every registered op of this family ---------------------------

T.gradcase('bce_with_logits', function()
  local t = duel.no_grad(function() return duel.rand(3, 4) end):requires_grad_()
  return function(x, tt) return F.bce_with_logits(x, tt) end, {leaf(3, 4), t}
end)
T.gradcase('mse', function()
  return function(a, b) local y = F.mse(a, b); return y * y end, {leaf(2, 3), leaf(2, 3)}
end)
T.gradcase('l1', function()
  -- a - b kept away from 0 (the kink): b = a shifted by +-0.5
  local a = leaf(2, 3)
  local b = duel.no_grad(function() return a:detach() + duel.tensor{{0.5, -0.5, 0.5}, {-0.5, 0.5, -0.5}} end)
  b:requires_grad_()
  return function(p, q) local y = F.l1(p, q); return y * y end, {a, b}
end)
T.gradcase('cross_entropy', function()
  local labels = duel.tensor{2, 4, 1}
  return function(x) return F.cross_entropy(x, labels) end, {leaf(3, 4)}
end)
