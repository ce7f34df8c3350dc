-- The autograd engine: accumulation, retain/release, create_graph to any order, grad w.r.t.
-- non-leaves, allow_unused, no_grad, detach, in-place detection, broadcast reduction.
local T = require 'tests.harness'
local duel = require 'duel'

T.case('backward accumulates into leaves and x.grad = nil resets', function()
  local x = duel.tensor{1, 2, 3}:requires_grad_()
  ;(x * x):sum():backward()
  T.close(x.grad, {2, 4, 6})
  ;(x * 3):sum():backward()
  T.close(x.grad, {5, 7, 9})
  x.grad = nil
  T.ok(x.grad == nil)
  x:sum():backward()
  T.close(x.grad, {1, 1, 1})
end)

T.case('a gradient passed to two leaves is not aliased by later accumulation', function()
  local a, b = duel.tensor{1, 2}:requires_grad_(), duel.tensor{3, 4}:requires_grad_()
  ;(a + b):sum():backward()
  ;(a * 5):sum():backward()
  T.close(a.grad, {6, 6})
  T.close(b.grad, {1, 1})
end)

T.case('broadcast gradients are summed back to each input shape', function()
  local a = duel.tensor{{1, 2, 3}, {4, 5, 6}}:requires_grad_()
  local b = duel.tensor{10, 20, 30}:requires_grad_()
  local c = duel.tensor{{2}, {3}}:requires_grad_()
  ;((a + b) * c):sum():backward()
  T.close(a.grad, {{2, 2, 2}, {3, 3, 3}})
  T.close(b.grad, {5, 5, 5})
  T.close(c.grad, {{11 + 22 + 33}, {14 + 25 + 36}})
end)

T.case('retain_graph allows a second backward; without it the graph is freed', function()
  local x = duel.tensor{2}:requires_grad_()
  local y = (x * x * x):sum()
  y:backward({retain_graph = true})
  y:backward()
  T.close(x.grad, {24})
  T.raises('was freed by an earlier backward', function() y:backward() end)
end)

T.case('create_graph gives exact derivatives of any order (x^4 -> 4x^3 -> 12x^2 -> 24x)', function()
  local x = duel.tensor{1.5, -2}:requires_grad_()
  local y = (x ^ 4):sum()
  local g1 = duel.autograd.grad({y}, {x}, {create_graph = true})[1]
  T.close(g1, {4 * 1.5 ^ 3, 4 * (-2) ^ 3}, 1e-5)
  local g2 = duel.autograd.grad({g1:sum()}, {x}, {create_graph = true})[1]
  T.close(g2, {12 * 1.5 ^ 2, 12 * 4}, 1e-5)
  local g3 = duel.autograd.grad({g2:sum()}, {x})[1]
  T.close(g3, {24 * 1.5, 24 * -2}, 1e-5)
  T.ok(not g3.requires_grad, 'without create_graph the gradient carries no graph')
end)

T.case('grad leaves .grad untouched and accepts grad_outputs', function()
  local x = duel.tensor{{1, 2}, {3, 4}}:requires_grad_()
  local y = x * x
  local g = duel.autograd.grad(y, x, {grad_outputs = duel.tensor{{1, 0}, {2, 1}}})[1]
  T.close(g, {{2, 0}, {12, 8}})
  T.ok(x.grad == nil)
end)

T.case('grad w.r.t. an intermediate (non-leaf) tensor', function()
  local x = duel.tensor{1, 2}:requires_grad_()
  local h = x * 3
  local y = (h * h):sum()
  local gh, gx = unpack(duel.autograd.grad(y, {h, x}))
  T.close(gh, {6, 12})
  T.close(gx, {18, 36})
end)

T.case('allow_unused returns nil for inputs the outputs do not depend on', function()
  local x, z = duel.tensor{1}:requires_grad_(), duel.tensor{5}:requires_grad_()
  local g = duel.autograd.grad((x * 2):sum(), {x, z}, {allow_unused = true})
  T.close(g[1], {2})
  T.ok(g[2] == nil)
  local y = (x * 2):sum()
  T.raises('is not reachable from the outputs', function() duel.autograd.grad(y, {x, z}) end)
  -- the failed call ran nothing, so the graph is still there
  T.close(duel.autograd.grad(y, {x})[1], {2})
  -- reachable, but only through a path that carries no gradient: zeros
  local m = duel.tensor{1}:requires_grad_()
  local w = duel.where(m, x, x * 3)
  local gm = duel.autograd.grad(w:sum(), {m, x})
  T.close(gm[1], {0})
end)

T.case('grad does not compute gradients for leaves that were not asked for', function()
  -- a penalty-style call: d(out)/d(input) only, weights untouched and not computed
  local w = duel.randn(3, 2):requires_grad_()
  local x = duel.randn(4, 3):requires_grad_()
  local out = duel.matmul(x, w):tanh():sum()
  local gx = duel.autograd.grad(out, x)[1]
  T.eq(gx:size(), {4, 3})
  T.ok(w.grad == nil)
end)

T.case('no_grad records nothing and restores the mode even after an error', function()
  local x = duel.tensor{1}:requires_grad_()
  local y = duel.no_grad(function() return x * 2 end)
  T.ok(not y.requires_grad)
  T.ok(y.grad_fn == nil)
  T.ok(not pcall(duel.no_grad, function() error('boom') end))
  T.ok(duel.is_grad_enabled(), 'grad mode must come back on')
  T.ok((x * 2).requires_grad)
end)

T.case('detach shares storage and cuts the history', function()
  local x = duel.tensor{1, 2}:requires_grad_()
  local y = x * 2
  local d = y:detach()
  T.ok(not d.requires_grad and d.is_leaf)
  duel.no_grad(function() d:fill_(7) end)
  T.close(y, {7, 7})
end)

T.case('in-place change of a saved input is detected at backward', function()
  local x = duel.tensor{1, 2}:requires_grad_()
  local w = duel.tensor{3, 4}
  local y = (x * w):sum()
  w:fill_(0)
  T.raises('mul: an input needed for its gradient was modified in place (by fill_)', function()
    y:backward()
  end)
  -- ops whose backward needs no saved values are unaffected
  local v = duel.tensor{1, 2}
  local z = (x + v):sum()
  v:fill_(5)
  z:backward()
  T.close(x.grad, {1, 1})
end)

T.case('in-place writes to tensors that require grad are refused outside no_grad', function()
  local x = duel.tensor{1, 2}:requires_grad_()
  T.raises('fill_: cannot modify a tensor that requires grad in place', function() x:fill_(0) end)
  duel.no_grad(function() x:fill_(3) end)
  T.close(x, {3, 3})
end)

T.case('leaf and node fields: is_leaf, grad_fn, requires_grad', function()
  local x = duel.tensor{1}:requires_grad_()
  local y = x:exp()
  T.ok(x.is_leaf and not y.is_leaf)
  T.eq(y.grad_fn, 'exp')
  T.ok(y.requires_grad)
  local c = duel.tensor{1}
  T.ok(not (c * 2).requires_grad, 'no node without an input that requires grad')
  x.requires_grad = false
  T.ok(not x.requires_grad)
end)

T.case('a long chain (20,000 ops) backpropagates and frees without recursion', function()
  local x = duel.tensor{1}:requires_grad_()
  local y = x
  for _ = 1, 20000 do y = y * 1.0001 end
  y:sum():backward()
  T.close(x.grad, {1.0001 ^ 20000}, 1e-3)
end)

T.case('gradient penalty through an MLP: double backward matches finite differences', function()
  duel.manual_seed(3)
  local W1, W2 = duel.randn(2, 5):requires_grad_(), duel.randn(5, 1):requires_grad_()
  local x = duel.randn(4, 2):requires_grad_()
  local function penalty(w1, w2, xx)
    local out = duel.matmul(duel.matmul(xx, w1):tanh(), w2):sum()
    local g = duel.autograd.grad(out, xx, {create_graph = true})[1]
    local norms = (g * g):sum(2):sqrt()
    return ((norms - 1) ^ 2):mean()
  end
  T.ok(duel.autograd.gradcheck(penalty, {W1, W2, x}))
  local p = penalty(W1, W2, x)
  p:backward()
  T.eq(W1.grad:size(), {2, 5})
  T.ok(W1.grad:abs():sum():item() > 0)
end)

T.case('backward needs a gradient for non-scalar outputs', function()
  local x = duel.tensor{1, 2}:requires_grad_()
  local y = x * 2
  T.raises('grad can be implicitly created only for a one-element output', function() y:backward() end)
  y:backward(duel.tensor{1, 10})
  T.close(x.grad, {2, 20})
end)
