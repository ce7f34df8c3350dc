-- Normalisation: batch_norm (training, running statistics, eval), instance_norm, layer_norm and
-- adain against hand-computed values and an independent Lua computation; the fused backward
-- (no create_graph) against the differentiable one; gradcheck/gradgradcheck; error messages.
local T = require 'tests.harness'
local duel = require 'duel'
local F = duel.F
local C = duel._core

local EPS = 1e-5

-- flat Lua copy of a tensor's values (row-major)
local function flat(t)
  local v = {}
  for i = 1, t:numel() do v[i] = C.flat_get(t, i) end
  return v
end

-- a leaf with N(0,1) values and requires_grad
local function leaf(...)
  return duel.randn(...):requires_grad_()
end

-- Reference batch norm on a flat row-major {N,C,S} array, in Lua doubles: returns the output,
-- the batch means and the biased and unbiased variances per channel.
local function ref_batch_norm(v, N, Cc, S, w, b, mean, var)
  local bm, bvar, uvar = {}, {}, {}
  for c = 1, Cc do
    local s, n = 0, N * S
    for p = 0, N - 1 do for r = 1, S do s = s + v[(p * Cc + c - 1) * S + r] end end
    local m = s / n
    local q = 0
    for p = 0, N - 1 do for r = 1, S do q = q + (v[(p * Cc + c - 1) * S + r] - m) ^ 2 end end
    bm[c], bvar[c], uvar[c] = m, q / n, q / (n - 1)
  end
  mean, var = mean or bm, var or bvar
  local out = {}
  for p = 0, N - 1 do
    for c = 1, Cc do
      for r = 1, S do
        local i = (p * Cc + c - 1) * S + r
        out[i] = (v[i] - mean[c]) / math.sqrt(var[c] + EPS) * (w and w[c] or 1) + (b and b[c] or 0)
      end
    end
  end
  return out, bm, bvar, uvar
end

-- ---- batch_norm ---------------------------------------------------------------------------------

T.case('batch_norm: {N,C} by hand, with weight and bias', function()
  local x = duel.tensor{{1, 10}, {3, 20}}
  -- channel 1: mean 2, var 1; channel 2: mean 15, var 25
  local a, b = 1 / math.sqrt(1 + EPS), 5 / math.sqrt(25 + EPS)
  T.close(F.batch_norm(x), {{-a, -b}, {a, b}}, 1e-6)
  local y = F.batch_norm(x, nil, nil, duel.tensor{2, 0.5}, duel.tensor{1, -1})
  T.close(y, {{1 - 2 * a, -1 - 0.5 * b}, {1 + 2 * a, -1 + 0.5 * b}}, 1e-6)
end)

T.case('batch_norm: two training steps update running stats as PyTorch, then eval', function()
  local N, Cc, S = 3, 2, 4
  local rm, rv = duel.zeros(Cc), duel.ones(Cc)
  local w, b = duel.tensor{1.5, -0.5}, duel.tensor{0.25, 2}
  local lm, lv = {0, 0}, {1, 1}
  for step = 1, 2 do
    local x = duel.randn(N, Cc, 2, 2) * step + step
    local y = F.batch_norm(x, rm, rv, w, b, {momentum = 0.3})
    local want, bm, _, uvar = ref_batch_norm(flat(x), N, Cc, S, {1.5, -0.5}, {0.25, 2})
    T.close(flat(y), want, 1e-5)
    for c = 1, Cc do
      lm[c] = 0.7 * lm[c] + 0.3 * bm[c]
      lv[c] = 0.7 * lv[c] + 0.3 * uvar[c] -- the unbiased variance goes into running_var
    end
    T.close(rm, lm, 1e-6)
    T.close(rv, lv, 1e-6)
  end
  -- eval: the running statistics, not the batch's; running buffers untouched
  local x = duel.randn(2, Cc, 2, 2)
  local y = F.batch_norm(x, rm, rv, w, b, {training = false, momentum = 0.3})
  local want = ref_batch_norm(flat(x), 2, Cc, S, {1.5, -0.5}, {0.25, 2}, lm, lv)
  T.close(flat(y), want, 1e-5)
  T.close(rm, lm, 1e-6)
  T.close(rv, lv, 1e-6)
end)

T.case('batch_norm: default momentum 0.1 and eps 1e-5; any trailing dims', function()
  local x = duel.randn(4, 3, 2, 3, 2)
  local rm, rv = duel.zeros(3), duel.ones(3)
  local y = F.batch_norm(x, rm, rv)
  local want, bm, _, uvar = ref_batch_norm(flat(x), 4, 3, 12)
  T.close(flat(y), want, 1e-5)
  for c = 1, 3 do bm[c] = 0.1 * bm[c]; uvar[c] = 0.9 + 0.1 * uvar[c] end
  T.close(rm, bm, 1e-6)
  T.close(rv, uvar, 1e-6)
end)

T.case('batch_norm: the running-stat write is unrecorded but bumps the version', function()
  local rm, rv = duel.zeros(2), duel.ones(2)
  local x = leaf(4, 2)
  -- an eval graph made before a training step keeps the statistics it was made with
  local ye = F.batch_norm(x, rm, rv, nil, nil, {training = false})
  local yt = F.batch_norm(x * 2, rm, rv)
  T.ok(not rm.requires_grad and not rv.requires_grad, 'running buffers joined the graph')
  ye:sum():backward()
  local r = 1 / math.sqrt(1 + EPS)
  T.close(x.grad, {{r, r}, {r, r}, {r, r}, {r, r}}, 1e-6)
  yt:sum():backward() -- the training graph does not depend on the running buffers either
  -- a graph that saved the buffer itself does see the in-place write
  local p = leaf(2)
  local z = p * rm
  F.batch_norm(duel.randn(4, 2), rm, rv)
  T.raises('mul: an input needed for its gradient was modified in place (by batch_norm)',
           function() z:sum():backward() end)
  -- a buffer that requires grad is refused, as any in-place write
  local bad = duel.zeros(2):requires_grad_()
  T.raises('batch_norm: cannot modify a tensor that requires grad in place',
           function() F.batch_norm(duel.randn(4, 2), bad, rv) end)
  duel.no_grad(function() F.batch_norm(duel.randn(4, 2), bad, rv) end)
end)

T.case('batch_norm: eval mode is the affine map of the running statistics', function()
  local x = leaf(3, 2, 2)
  local rm, rv = duel.tensor{0.5, -1}, duel.tensor{4, 0.25}
  local w, b = duel.tensor{2, 3}:requires_grad_(), duel.tensor{1, 0}:requires_grad_()
  local y = F.batch_norm(x, rm, rv, w, b, {training = false})
  local s = {2 / math.sqrt(4 + EPS), 3 / math.sqrt(0.25 + EPS)}
  local v = flat(x)
  local want = {}
  for i = 1, #v do
    local c = math.floor((i - 1) / 2) % 2 + 1
    want[i] = (v[i] - rm:get(c)) * s[c] + b:get(c)
  end
  T.close(flat(y), want, 1e-5)
  local g = duel.autograd.grad({y:sum()}, {x, w, b})
  local row = {{s[1], s[1]}, {s[2], s[2]}}
  T.close(g[1], {row, row, row}, 1e-5)
  T.close(g[3], {6, 6}, 1e-6)
end)

T.case('batch_norm: non-contiguous input gives the same result', function()
  local x = duel.randn(3, 5, 4)
  local xt = x:transpose(1, 3):contiguous():transpose(1, 3) -- same values, permuted strides
  T.close(flat(F.batch_norm(xt)), flat(F.batch_norm(x)), 1e-6)
end)

-- ---- instance_norm, layer_norm, adain ---------------------------------------------------------

T.case('instance_norm: per sample and channel, by hand', function()
  local x = duel.tensor{{{{1, 2}, {3, 4}}, {{2, 2}, {2, 6}}}}
  -- channel 1: mean 2.5, var 1.25; channel 2: mean 3, var 3
  local a = 1 / math.sqrt(1.25 + EPS)
  local c = 1 / math.sqrt(3 + EPS)
  T.close(F.instance_norm(x), {{{{-1.5 * a, -0.5 * a}, {0.5 * a, 1.5 * a}},
                                {{-c, -c}, {-c, 3 * c}}}}, 1e-6)
  local y = F.instance_norm(x, duel.tensor{2, -1}, duel.tensor{0, 10})
  T.close(y, {{{{-3 * a, -a}, {a, 3 * a}}, {{10 + c, 10 + c}, {10 + c, 10 - 3 * c}}}}, 1e-6)
  -- a second sample has its own statistics
  local x2 = duel.cat({x, x * 10 + 7}, 1)
  local y2 = F.instance_norm(x2)
  T.close(flat(y2:narrow(1, 2, 1)), flat(y2:narrow(1, 1, 1)), 1e-5)
end)

T.case('layer_norm: over the trailing dims, elementwise weight and bias', function()
  local x = duel.tensor{{1, 2, 3}, {2, 4, 9}}
  local a = 1 / math.sqrt(2 / 3 + EPS)
  -- row 2: mean 5, var (9 + 1 + 16) / 3 = 26/3
  local c = 1 / math.sqrt(26 / 3 + EPS)
  T.close(F.layer_norm(x, {3}), {{-a, 0, a}, {-3 * c, -c, 4 * c}}, 1e-6)
  T.close(F.layer_norm(x, 3, duel.tensor{1, 2, 3}, duel.tensor{0, 1, 0}),
          {{-a, 1, 3 * a}, {-3 * c, 1 - 2 * c, 12 * c}}, 1e-6)
  -- two normalised dims: the statistics cover the whole {2,3} slab
  local x3 = duel.randn(2, 2, 3)
  local y3 = F.layer_norm(x3, {2, 3})
  local v, want = flat(x3), {}
  for s = 0, 1 do
    local m, q = 0, 0
    for i = 1, 6 do m = m + v[s * 6 + i] / 6 end
    for i = 1, 6 do q = q + (v[s * 6 + i] - m) ^ 2 / 6 end
    for i = 1, 6 do want[s * 6 + i] = (v[s * 6 + i] - m) / math.sqrt(q + EPS) end
  end
  T.close(flat(y3), want, 1e-5)
end)

T.case('adain: scale * instance_norm(x) + bias, scale used as given (not 1 + scale)', function()
  local x = duel.tensor{{{{1, 2}, {3, 4}}, {{2, 2}, {2, 6}}}}
  local a = 1 / math.sqrt(1.25 + EPS)
  local c = 1 / math.sqrt(3 + EPS)
  local y = F.adain(x, duel.tensor{{2, 0}}, duel.tensor{{1, -3}})
  T.close(y, {{{{1 - 3 * a, 1 - a}, {1 + a, 1 + 3 * a}}, {{-3, -3}, {-3, -3}}}}, 1e-6)
  -- per sample: equals instance_norm with that sample's scale and bias
  local xs = duel.randn(3, 4, 3, 3)
  local s, b = duel.randn(3, 4), duel.randn(3, 4)
  local ya = F.adain(xs, s, b)
  local yi = F.instance_norm(xs) * s:view(3, 4, 1, 1) + b:view(3, 4, 1, 1)
  T.close(flat(ya), flat(yi), 1e-5)
  T.close(flat(F.adain(xs, s:view(3, 4, 1, 1), b:view(3, 4, 1, 1))), flat(ya), 0)
end)

-- ---- the two backward paths agree; big tensors take the parallel kernels -------------------

-- grads of <fn(inputs), u> without create_graph (fused kernels) and with it (duel ops)
local function both_paths(fn, inputs)
  local y = fn(unpack(inputs))
  local u = duel.randn(y:size())
  local fused = duel.autograd.grad({(fn(unpack(inputs)) * u):sum()}, inputs)
  local ops = duel.autograd.grad({(fn(unpack(inputs)) * u):sum()}, inputs, {create_graph = true})
  for i = 1, #inputs do
    T.ok(not fused[i].requires_grad, 'fused path built a graph')
    -- every gradient but the bias's depends on x, so create_graph gives it a graph
    if i == 1 then T.ok(ops[i].requires_grad, 'create_graph path built no graph') end
    T.close(flat(fused[i]), flat(ops[i]), 2e-5, 'input ' .. i)
  end
end

T.case('fused backward equals the differentiable backward (all ops, both sizes)', function()
  duel.manual_seed(3)
  for _, big in ipairs{false, true} do
    local n = big and 8 or 2 -- big: 8*16*17*17 = 36992 elements, over DUEL_PAR_MIN
    local x = (duel.randn(n, 16, 17, 17) * 3 + 1):requires_grad_()
    local w, b = leaf(16), leaf(16)
    both_paths(function(a, p, q) return F.batch_norm(a, nil, nil, p, q) end, {x, w, b})
    local rm, rv = duel.randn(16), duel.rand(16) + 0.5
    both_paths(function(a, p, q)
      return F.batch_norm(a, rm, rv, p, q, {training = false})
    end, {x, w, b})
    both_paths(function(a, p, q) return F.instance_norm(a, p, q) end, {x, w, b})
    both_paths(function(a) return F.instance_norm(a) end, {x})
    local lw, lb = leaf(17, 17), leaf(17, 17)
    both_paths(function(a, p, q) return F.layer_norm(a, {17, 17}, p, q) end, {x, lw, lb})
    local s, sb = leaf(n, 16), leaf(n, 16)
    both_paths(function(a, p, q) return F.adain(a, p, q) end, {x, s, sb})
  end
end)

T.case('large inputs match a composite of duel ops (parallel kernels)', function()
  local x = duel.randn(8, 16, 17, 17) * 2 + 5
  local m = x:mean(1, true):mean(3, true):mean(4, true)
  local v = ((x - m) * (x - m)):mean(1, true):mean(3, true):mean(4, true)
  T.close(flat(F.batch_norm(x)), flat((x - m) / (v + EPS):sqrt()), 1e-4)
  local mi = x:mean(3, true):mean(4, true)
  local vi = ((x - mi) * (x - mi)):mean(3, true):mean(4, true)
  T.close(flat(F.instance_norm(x)), flat((x - mi) / (vi + EPS):sqrt()), 1e-4)
  -- a large mean next to a small spread: the shifted one-pass variance stays accurate
  local y = F.batch_norm(duel.tensor{{1e6 + 1}, {1e6 + 2}, {1e6 + 3}})
  local r = math.sqrt(1.5 / (1 + 1.5 * EPS))
  T.close(y, {{-r}, {0}, {r}}, 1e-5)
end)

-- ---- gradcheck and gradgradcheck -------------------------------------------------------------

T.gradcase('batch_norm', function()
  local x, w, b = leaf(3, 2, 2, 2), leaf(2), leaf(2)
  return function(a, p, q) local y = F.batch_norm(a, nil, nil, p, q); return y * y end, {x, w, b}
end)

T.case('batch_norm eval mode and running stats: gradcheck and gradgradcheck', function()
  duel.manual_seed(5)
  local x, w, b = leaf(3, 2, 2), leaf(2), leaf(2)
  local rm, rv = duel.tensor{0.3, -0.2}, duel.tensor{0.8, 1.7}
  local function ev(a, p, q)
    local y = F.batch_norm(a, rm, rv, p, q, {training = false}); return y * y
  end
  T.ok(duel.autograd.gradcheck(ev, {x, w, b}))
  T.ok(duel.autograd.gradgradcheck(ev, {x, w, b}))
  -- training with running buffers (updated at every call) has the same derivatives as without
  local rm2, rv2 = duel.zeros(2), duel.ones(2)
  local function tr(a) local y = F.batch_norm(a, rm2, rv2); return y * a end
  T.ok(duel.autograd.gradcheck(tr, {x}))
  T.ok(duel.autograd.gradgradcheck(tr, {x}))
end)

T.gradcase('instance_norm', function()
  local x, w, b = leaf(2, 2, 2, 3), leaf(2), leaf(2)
  return function(a, p, q) local y = F.instance_norm(a, p, q); return y * y end, {x, w, b}
end)

T.gradcase('layer_norm', function()
  local x, w, b = leaf(2, 3, 2), leaf(3, 2), leaf(3, 2)
  return function(a, p, q) local y = F.layer_norm(a, {3, 2}, p, q); return y * y end, {x, w, b}
end)

T.gradcase('adain', function()
  local x, s, b = leaf(2, 2, 2, 2), leaf(2, 2), leaf(2, 2)
  return function(a, p, q) local y = F.adain(a, p, q); return y * y end, {x, s, b}
end)

T.case('instance_norm and layer_norm without affine: gradgradcheck w.r.t. x alone', function()
  duel.manual_seed(9)
  local x = leaf(1, 2, 2, 2)
  T.ok(duel.autograd.gradgradcheck(function(a) return F.instance_norm(a) end, {x}))
  T.ok(duel.autograd.gradgradcheck(function(a) return F.layer_norm(a, {2, 2}) end, {x}))
end)

-- ---- errors ------------------------------------------------------------------------------------

T.case('batch_norm: error messages', function()
  local x = duel.randn(4, 64, 2, 2)
  T.raises_exact('batch_norm: running_mean must have 64 elements (one per channel), got {32}',
                 function() F.batch_norm(x, duel.zeros(32), duel.ones(64)) end)
  T.raises_exact('batch_norm: weight must have 64 elements (one per channel), got {2,3}',
                 function() F.batch_norm(x, nil, nil, duel.ones(2, 3)) end)
  T.raises_exact('batch_norm: input must be at least 2-D {N,C,...}, got {5}',
                 function() F.batch_norm(duel.randn(5)) end)
  T.raises_exact('batch_norm: expected more than 1 value per channel when training, ' ..
                 'got input of shape {1,3}',
                 function() F.batch_norm(duel.randn(1, 3)) end)
  T.raises_exact('batch_norm: running_mean and running_var are needed when not training, got nil',
                 function() F.batch_norm(x, nil, nil, nil, nil, {training = false}) end)
  T.raises_exact('batch_norm: running_mean and running_var must be given together, ' ..
                 'got only running_mean',
                 function() F.batch_norm(x, duel.zeros(64)) end)
  T.raises_exact("batch_norm: option 'momentum' must be a number, got string",
                 function() F.batch_norm(x, nil, nil, nil, nil, {momentum = 'fast'}) end)
  T.raises_exact("batch_norm: option 'training' must be a boolean, got number",
                 function() F.batch_norm(x, nil, nil, nil, nil, {training = 1}) end)
  T.raises_exact("batch_norm: unknown option (expected training, momentum or eps), got 'mometum'",
                 function() F.batch_norm(x, nil, nil, nil, nil, {mometum = 0.1}) end)
  T.raises_exact('batch_norm: eps must be a non-negative number, got -1',
                 function() F.batch_norm(x, nil, nil, nil, nil, {eps = -1}) end)
  T.raises_exact('batch_norm: argument 4 must be a duel.Tensor, got number',
                 function() F.batch_norm(x, nil, nil, 3) end)
  T.raises_exact('batch_norm: options must be a table, got string',
                 function() F.batch_norm(x, nil, nil, nil, nil, 'train') end)
end)

T.case('instance_norm, layer_norm, adain: error messages', function()
  T.raises_exact('instance_norm: input must be at least 3-D {N,C,H,W}, got {2,3}',
                 function() F.instance_norm(duel.randn(2, 3)) end)
  T.raises_exact('instance_norm: weight must have 3 elements (one per channel), got {4}',
                 function() F.instance_norm(duel.randn(2, 3, 4, 4), duel.ones(4)) end)
  T.raises_exact('instance_norm: expected more than 1 spatial element per channel, ' ..
                 'got input of shape {2,3,1,1}',
                 function() F.instance_norm(duel.randn(2, 3, 1, 1)) end)
  T.raises_exact("instance_norm: unknown option (expected eps), got 'momentum'",
                 function() F.instance_norm(duel.randn(2, 3, 4, 4), nil, nil, {momentum = 0.1}) end)
  local x = duel.randn(2, 3, 4)
  T.raises_exact('layer_norm: shape must equal the input\'s trailing dimensions ' ..
                 '(input {2,3,4}), got {3,5}',
                 function() F.layer_norm(x, {3, 5}) end)
  T.raises_exact('layer_norm: shape must equal the input\'s trailing dimensions ' ..
                 '(input {2,3,4}), got {1,2,3,4}',
                 function() F.layer_norm(x, {1, 2, 3, 4}) end)
  T.raises_exact('layer_norm: shape must be a table of sizes or a number, got nil',
                 function() F.layer_norm(x) end)
  T.raises_exact('layer_norm: shape must name at least one dimension, got {}',
                 function() F.layer_norm(x, {}) end)
  T.raises_exact('layer_norm: weight must have the normalised shape {3,4}, got {12}',
                 function() F.layer_norm(x, {3, 4}, duel.ones(12)) end)
  T.raises_exact('layer_norm: bias must have the normalised shape {4}, got {3}',
                 function() F.layer_norm(x, 4, nil, duel.ones(3)) end)
  T.raises_exact('adain: scale must have shape {2,3} (one value per sample and channel), got {3,2}',
                 function() F.adain(duel.randn(2, 3, 4, 4), duel.ones(3, 2), duel.ones(2, 3)) end)
  T.raises_exact('adain: bias must have shape {2,3} (one value per sample and ' ..
                 'channel), got {2,3,2}',
                 function()
                   F.adain(duel.randn(2, 3, 4, 4), duel.ones(2, 3), duel.ones(2, 3, 2))
                 end)
  T.raises_exact('adain: input must be at least 3-D {N,C,H,W}, got {2,3}',
                 function() F.adain(duel.randn(2, 3), duel.ones(2, 3), duel.ones(2, 3)) end)
end)
