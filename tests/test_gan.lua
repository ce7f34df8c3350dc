-- duel.gan: every loss kind against its formula (hand-computed values, magnitudes of 100+), the
-- fused kernels against the same losses composed from basic ops (value, gradient, gradient of
-- gradient), gradcheck/gradgradcheck, f-GAN (the table's rows, Fenchel's inequality), InfoGAN
-- terms and latent sampling, feature matching, ImagePool, ema_, interpolate, and a small
-- discriminator with nn.MinibatchStdDev trained with d_loss. Penalties: tests/test_gan_penalty.lua.
local T = require 'tests.harness'
local duel = require 'duel'
local F, nn, optim, gan = duel.F, duel.nn, duel.optim, duel.gan
local C = duel._core
local grad = duel.autograd.grad

-- ---- reference formulas in Lua doubles -----------------------------------------------------------

local function log1p(e) if e < 1e-5 then return e - e * e / 2 + e * e * e / 3 end return math.log(1 + e) end
local function sp(x) return math.max(x, 0) + log1p(math.exp(-math.abs(x))) end
local function relu(x) return x > 0 and x or 0 end
local function sigmoid(x) return x >= 0 and 1 / (1 + math.exp(-x)) or math.exp(x) / (1 + math.exp(x)) end

local function flat(t)
  local v = {}
  for i = 1, t:numel() do v[i] = C.flat_get(t, i) end
  return v
end
local function mean_of(v, fn)
  local s = 0
  for i = 1, #v do s = s + fn(v[i]) end
  return s / #v
end
local function pair_mean(a, b, fn)
  local s = 0
  for i = 1, #a do s = s + fn(a[i], b[i]) end
  return s / #a
end

local D_REF = {
  minimax = function(r, f) return mean_of(r, function(x) return sp(-x) end) + mean_of(f, sp) end,
  nonsaturating = function(r, f) return mean_of(r, function(x) return sp(-x) end) + mean_of(f, sp) end,
  lsgan = function(r, f) return mean_of(r, function(x) return (x - 1) ^ 2 end) + mean_of(f, function(x) return x * x end) end,
  hinge = function(r, f) return mean_of(r, function(x) return relu(1 - x) end) + mean_of(f, function(x) return relu(1 + x) end) end,
  wgan = function(r, f) return mean_of(f, function(x) return x end) - mean_of(r, function(x) return x end) end,
  relativistic = function(r, f) return pair_mean(r, f, function(a, b) return sp(-(a - b)) end) end,
}
local G_REF = {
  minimax = function(f) return mean_of(f, function(x) return math.log(1 - sigmoid(x) + 0) end) end,
  nonsaturating = function(f) return mean_of(f, function(x) return sp(-x) end) end,
  lsgan = function(f) return mean_of(f, function(x) return (x - 1) ^ 2 end) end,
  hinge = function(f) return -mean_of(f, function(x) return x end) end,
  wgan = function(f) return -mean_of(f, function(x) return x end) end,
  relativistic = function(f, r) return pair_mean(f, r, function(a, b) return sp(-(a - b)) end) end,
}
-- log(1 - sigmoid(x)) loses everything for large x in doubles too; -sp(x) is the same function
local function g_ref(kind, f, r)
  if kind == 'minimax' then return -mean_of(f, sp) end
  return G_REF[kind](f, r)
end

-- the same losses composed from basic differentiable ops (softplus from relu, abs, exp, log)
local function sp_t(x) return x:relu() + ((-x:abs()):exp() + 1):log() end
local D_OPS = {
  minimax = function(r, f) return sp_t(-r):mean() + sp_t(f):mean() end,
  nonsaturating = function(r, f) return sp_t(-r):mean() + sp_t(f):mean() end,
  lsgan = function(r, f) return ((r - 1) * (r - 1)):mean() + (f * f):mean() end,
  hinge = function(r, f) return (1 - r):relu():mean() + (f + 1):relu():mean() end,
  wgan = function(r, f) return f:mean() - r:mean() end,
  relativistic = function(r, f) return sp_t(f - r):mean() end,
}
local G_OPS = {
  minimax = function(f) return -sp_t(f):mean() end,
  nonsaturating = function(f) return sp_t(-f):mean() end,
  lsgan = function(f) return ((f - 1) * (f - 1)):mean() end,
  hinge = function(f) return -f:mean() end,
  wgan = function(f) return -f:mean() end,
  relativistic = function(f, r) return sp_t(r - f):mean() end,
}

-- a leaf with values kept 0.15 away from the hinge kinks at +-1 and from 0 (abs in sp_t)
local function leaf(...)
  local x = duel.randn(...) * 1.5
  duel.no_grad(function()
    for i = 1, x:numel() do
      local v = C.flat_get(x, i)
      for _, k in ipairs({-1, 0, 1}) do
        if math.abs(v - k) < 0.15 then v = k + (v >= k and 0.15 or -0.15) end
      end
      C.flat_set(x, i, v)
    end
  end)
  return x:requires_grad_()
end

-- ---- d_loss / g_loss ------------------------------------------------------------------------------

T.case('d_loss/g_loss: hand-computed values for every kind', function()
  local z = duel.tensor{0}
  T.close(gan.d_loss('minimax', z, z), 2 * math.log(2), 1e-6)
  T.close(gan.g_loss('minimax', z), -math.log(2), 1e-6)   -- log(1 - 1/2)
  T.close(gan.g_loss('nonsaturating', z), math.log(2), 1e-6) -- -log(1/2)
  T.close(gan.d_loss('lsgan', duel.tensor{1, 3}, duel.tensor{0, -2}), 2 + 2, 1e-6) -- (0+4)/2 + (0+4)/2
  T.close(gan.g_loss('lsgan', duel.tensor{0, 1}), 0.5, 1e-6)
  -- hinge: real {2, 0} -> relu(1-r) {0, 1}; fake {-2, 0.5} -> relu(1+f) {0, 1.5}
  T.close(gan.d_loss('hinge', duel.tensor{2, 0}, duel.tensor{-2, 0.5}), 0.5 + 0.75, 1e-6)
  T.close(gan.g_loss('hinge', duel.tensor{-2, 0.5}), 0.75, 1e-6)
  T.close(gan.d_loss('wgan', duel.tensor{1, 3}, duel.tensor{0.5}), 0.5 - 2, 1e-6)
  T.close(gan.g_loss('wgan', duel.tensor{0.5, 1.5}), -1, 1e-6)
  -- relativistic: pairs (1,1) and (2,0): sp(0) = log 2, sp(-2) = 0.126928011
  local r, f = duel.tensor{1, 2}, duel.tensor{1, 0}
  T.close(gan.d_loss('relativistic', r, f), (math.log(2) + 0.126928011) / 2, 1e-6)
  T.close(gan.g_loss('relativistic', f, r), (math.log(2) + 2.126928011) / 2, 1e-6)
end)

T.case('d_loss/g_loss: any shape (PatchGAN maps), each term a mean, against the formulas', function()
  duel.manual_seed(1)
  local r = duel.randn(2, 1, 3, 3) * 2 -- a 3x3 PatchGAN map per sample
  local f = duel.randn(5, 1) * 2       -- a different shape and batch: the means are separate
  local f2 = duel.randn(2, 1, 3, 3) * 2
  for _, k in ipairs(gan.kinds) do
    local ff = k == 'relativistic' and f2 or f
    local d, g = gan.d_loss(k, r, ff), gan.g_loss(k, ff, r)
    T.eq(d:dim(), 0, k)
    T.close(d, D_REF[k](flat(r), flat(ff)), 1e-6, 'd_loss ' .. k)
    T.close(g, g_ref(k, flat(ff), flat(r)), 1e-6, 'g_loss ' .. k)
  end
  -- strided views (a transpose) read the same values
  local m, m2 = duel.randn(3, 4), duel.randn(4, 3)
  for _, k in ipairs(gan.kinds) do
    T.close(gan.d_loss(k, m:t(), m2), gan.d_loss(k, m:t():contiguous(), m2):item(), 1e-6, k)
  end
  -- the non-relativistic G losses ignore real_out
  T.close(gan.g_loss('hinge', f), gan.g_loss('hinge', f, r))
end)

T.case('d_loss/g_loss: logits of magnitude 100+ give finite, exact values and gradients', function()
  local rv, fv = {100, -100, 150, 0.5}, {-100, 100, -150, 0.25}
  for _, k in ipairs(gan.kinds) do
    local r, f = duel.tensor(rv):requires_grad_(), duel.tensor(fv):requires_grad_()
    local d, g = gan.d_loss(k, r, f), gan.g_loss(k, f, r)
    T.ok(d:item() == d:item() and math.abs(d:item()) < math.huge, k .. ' d_loss is finite')
    T.ok(g:item() == g:item() and math.abs(g:item()) < math.huge, k .. ' g_loss is finite')
    T.close(d, D_REF[k](rv, fv), 1e-6, 'd_loss ' .. k)
    T.close(g, g_ref(k, fv, rv), 1e-6, 'g_loss ' .. k)
    local gr, gf = unpack(grad({d}, {r, f}))
    for _, t in ipairs({gr, gf}) do
      for i = 1, 4 do local v = C.flat_get(t, i); T.ok(v == v and math.abs(v) < math.huge, k) end
    end
  end
  -- exact gradients at +-100: d/dr mean sp(-r) = -sigmoid(-r)/n
  local r = duel.tensor{100, -100}:requires_grad_()
  local gr = grad({gan.d_loss('minimax', r, duel.tensor{0})}, {r})[1]
  T.close(gr, {-sigmoid(-100) / 2, -0.5}, 1e-7)
  local f = duel.tensor{100, -100}:requires_grad_()
  T.close(grad({gan.g_loss('nonsaturating', f)}, {f})[1], {0, -0.5}, 1e-7)
  T.close(grad({gan.g_loss('minimax', f)}, {f})[1], {-0.5, -sigmoid(-100) / 2}, 1e-7)
end)

T.case('fused d_loss/g_loss match the composed-op versions in value, gradient and 2nd order', function()
  duel.manual_seed(2)
  for _, k in ipairs(gan.kinds) do
    local r, f = leaf(3, 4), leaf(3, 4)
    local pairs_ = {
      {gan.d_loss(k, r, f), D_OPS[k](r, f)},
      {gan.g_loss(k, f, r), G_OPS[k](f, r)},
    }
    for j, p in ipairs(pairs_) do
      local what = (j == 1 and 'd_loss ' or 'g_loss ') .. k
      T.close(p[1], p[2]:item(), 1e-5, what .. ' value')
      local ins = {r, f}
      local g1 = grad({p[1]}, ins, {create_graph = true, allow_unused = true})
      local g2 = grad({p[2]}, ins, {create_graph = true, allow_unused = true})
      for i = 1, 2 do
        if g2[i] then
          T.close(g1[i], g2[i], 1e-5, what .. ' gradient ' .. i)
          -- second order: the gradient of sum(grad^2) w.r.t. both inputs
          if g1[i].requires_grad and g2[i].requires_grad then
            local h1 = grad({(g1[i] * g1[i]):sum()}, ins, {allow_unused = true})
            local h2 = grad({(g2[i] * g2[i]):sum()}, ins, {allow_unused = true})
            for m = 1, 2 do
              if h2[m] then T.close(h1[m] or duel.zeros(3, 4), h2[m], 1e-5, what .. ' 2nd order') end
            end
          end
        else
          T.ok(g1[i] == nil or g1[i]:abs():max():item() == 0, what .. ' unused input')
        end
      end
    end
  end
end)

for _, k in ipairs(gan.kinds) do
  T.case('d_loss/g_loss ' .. k .. ': gradcheck and gradgradcheck', function()
    duel.manual_seed(3)
    local r, f = leaf(2, 3), leaf(2, 3)
    local fn = function(a, b) return {gan.d_loss(k, a, b), gan.g_loss(k, b, a)} end
    T.ok(duel.autograd.gradcheck(fn, {r, f}))
    T.ok(duel.autograd.gradgradcheck(fn, {r, f}))
  end)
end

-- the registered ops: every kind at once, each as its own output
T.gradcase('d_loss', function()
  local r, f = leaf(2, 3), leaf(2, 3)
  return function(a, b)
    local out = {}
    for i, k in ipairs(gan.kinds) do out[i] = gan.d_loss(k, a, b) end
    return out
  end, {r, f}
end)
T.gradcase('g_loss', function()
  local f, r = leaf(2, 3), leaf(2, 3)
  return function(a, b)
    local out = {}
    for i, k in ipairs(gan.kinds) do out[i] = gan.g_loss(k, a, b) end
    return out
  end, {f, r}
end)

T.case('d_loss/g_loss: the same value under 1 and 3 threads', function()
  duel.manual_seed(4)
  local a, b = duel.randn(300001) * 3, duel.randn(300001) * 3
  local prev = duel.get_num_threads()
  local vals = {}
  for j, n in ipairs({1, 3}) do
    duel.set_num_threads(n)
    vals[j] = {}
    for _, k in ipairs(gan.kinds) do
      vals[j][#vals[j] + 1] = gan.d_loss(k, a, b):item()
      vals[j][#vals[j] + 1] = gan.g_loss(k, b, a):item()
    end
  end
  duel.set_num_threads(prev)
  T.eq(vals[2], vals[1])
end)

T.case('d_loss/g_loss: misuse gives exact errors', function()
  local a, b = duel.zeros(4), duel.zeros(3)
  T.raises_exact("d_loss: kind must be 'minimax', 'nonsaturating', 'lsgan', 'hinge', 'wgan' or 'relativistic', got 'vanilla'",
                 function() gan.d_loss('vanilla', a, a) end)
  T.raises_exact("g_loss: kind must be 'minimax', 'nonsaturating', 'lsgan', 'hinge', 'wgan' or 'relativistic', got nil",
                 function() gan.g_loss(nil, a) end)
  T.raises_exact("d_loss: 'relativistic' pairs real_out and fake_out by index, so their shapes must match, got {4} and {3}",
                 function() gan.d_loss('relativistic', a, b) end)
  T.raises_exact("g_loss: 'relativistic' pairs fake_out and real_out by index, so their shapes must match, got {3} and {4}",
                 function() gan.g_loss('relativistic', b, a) end)
  T.raises_exact("g_loss: kind 'relativistic' needs real_out, got none", function() gan.g_loss('relativistic', a) end)
  T.raises_exact('d_loss: argument 3 must be a duel.Tensor, got no value', function() gan.d_loss('hinge', a) end)
  T.raises_exact('d_loss: real_out must have at least one element, got {0}', function()
    gan.d_loss('wgan', duel.zeros(0), a)
  end)
end)

-- ---- f-GAN ----------------------------------------------------------------------------------------

-- the table's rows in doubles, written literally (f, g_f, f*)
local LOG2 = math.log(2)
local function xlogx(u) return u > 0 and u * math.log(u) or 0 end
local FG = {
  kl = {f = function(u) return xlogx(u) end, g = function(v) return v end,
        fs = function(t) return math.exp(t - 1) end},
  reverse_kl = {f = function(u) return -math.log(u) end, g = function(v) return -math.exp(-v) end,
                fs = function(t) return -1 - math.log(-t) end},
  pearson = {f = function(u) return (u - 1) ^ 2 end, g = function(v) return v end,
             fs = function(t) return t * t / 4 + t end},
  hellinger = {f = function(u) return (math.sqrt(u) - 1) ^ 2 end, g = function(v) return 1 - math.exp(-v) end,
               fs = function(t) return t / (1 - t) end},
  js = {f = function(u) return -(u + 1) * math.log((1 + u) / 2) + xlogx(u) end,
        g = function(v) return LOG2 - math.log(1 + math.exp(-v)) end,
        fs = function(t) return -math.log(2 - math.exp(t)) end},
  gan = {f = function(u) return xlogx(u) - (u + 1) * math.log(u + 1) end,
         g = function(v) return -math.log(1 + math.exp(-v)) end,
         fs = function(t) return -math.log(1 - math.exp(t)) end},
}

T.case("f-GAN: the 'gan' row equals the minimax d_loss, its G losses the minimax and non-saturating ones", function()
  duel.manual_seed(5)
  for _, scale in ipairs({1, 3, 60}) do
    local r, f = duel.randn(6, 2) * scale, duel.randn(4, 2) * scale
    T.close(gan.fgan_d_loss('gan', r, f), gan.d_loss('minimax', r, f):item(), 1e-6)
    T.close(gan.fgan_g_loss('gan', f, {trick = true}), gan.g_loss('nonsaturating', f):item(), 1e-6)
    T.close(gan.fgan_g_loss('gan', f), gan.g_loss('minimax', f):item(), 1e-6)
  end
  local big = duel.tensor{100, -100, 120}
  T.close(gan.fgan_d_loss('gan', big, big), gan.d_loss('minimax', big, big):item(), 1e-6)
end)

T.case('f-GAN: every divergence against the table on hand values, and its gradients', function()
  local rv, fv = {-1.2, 0.3, 0.9}, {0.4, -0.7}
  for _, name in ipairs(gan.fgan_names) do
    local row = FG[name]
    local want_d = -mean_of(rv, row.g) + mean_of(fv, function(v) return row.fs(row.g(v)) end)
    local want_g = -mean_of(fv, function(v) return row.fs(row.g(v)) end)
    local want_t = -mean_of(fv, row.g)
    local r, f = duel.tensor(rv):requires_grad_(), duel.tensor(fv):requires_grad_()
    T.close(gan.fgan_d_loss(name, r, f), want_d, 1e-6, name .. ' D')
    T.close(gan.fgan_g_loss(name, f), want_g, 1e-6, name .. ' G')
    T.close(gan.fgan_g_loss(name, f, {trick = true}), want_t, 1e-6, name .. ' G trick')
    T.ok(duel.autograd.gradcheck(function(a, b) return gan.fgan_d_loss(name, a, b) end, {r, f}), name)
    T.ok(duel.autograd.gradgradcheck(function(a, b) return gan.fgan_d_loss(name, a, b) end, {r, f}), name)
    T.ok(duel.autograd.gradcheck(function(b) return gan.fgan_g_loss(name, b) end, {f}), name)
  end
  T.raises_exact("fgan_d_loss: divergence must be 'kl', 'reverse_kl', 'pearson', 'hellinger', 'js' or 'gan', got 'tv'",
                 function() gan.fgan_d_loss('tv', duel.zeros(1), duel.zeros(1)) end)
  T.raises_exact('fgan_g_loss: unknown option (expected trick), got tricky', function()
    gan.fgan_g_loss('kl', duel.zeros(1), {tricky = true})
  end)
end)

-- sup over u of u t - f(u): a dense grid (log-spaced on u > 0; Pearson's f lives on all of R),
-- then golden-section refinement around the best point (u t - f(u) is concave)
local function sup(row, t, pearson)
  local best_u, best = nil, -math.huge
  local lo, hi, n = pearson and -20 or -14, pearson and 20 or 14, 4000
  for i = 0, n do
    local s = lo + (hi - lo) * i / n
    local u = pearson and s or math.exp(s)
    local v = u * t - row.f(u)
    T.ok(v ~= v or v <= row.fs(t) + 1e-9 * (1 + math.abs(v)), 'Fenchel inequality at u = ' .. u)
    if v > best then best, best_u = v, u end
  end
  local step = pearson and (hi - lo) / n or best_u * (math.exp((hi - lo) / n) - 1)
  local a, b = math.max(best_u - step, pearson and -math.huge or 1e-300), best_u + step
  local phi = (math.sqrt(5) - 1) / 2
  for _ = 1, 100 do
    local c, d = b - phi * (b - a), a + phi * (b - a)
    if c * t - row.f(c) > d * t - row.f(d) then b = d else a = c end
  end
  local u = (a + b) / 2
  return math.max(best, u * t - row.f(u))
end

T.case("f-GAN: each conjugate satisfies Fenchel's inequality, with equality at u = f*'(t)", function()
  for _, name in ipairs(gan.fgan_names) do
    local row, lib = FG[name], gan.fgan_divergences[name]
    -- the library's f agrees with the table's
    local us = {0.25, 1, 2.5}
    T.close(lib.f(duel.tensor(us)), {row.f(0.25), row.f(1), row.f(2.5)}, 1e-6, name .. ' f')
    for _, v in ipairs({-2, -0.5, 0, 0.7, 2}) do
      local vt = duel.tensor{v}
      local t = lib.activation(vt)
      T.close(t, row.g(v), 1e-6, name .. ' g_f')
      local tt = t:detach():requires_grad_()
      local fs = lib.conjugate(tt)
      -- the stable form f*(g_f(v)) equals f* composed with g_f
      T.close(lib.conj_activation(vt), fs:item(), 1e-5, name .. ' f*(g_f(v))')
      -- the supremum of u t - f(u) over u is f*(t) (the grid also checks u t - f(u) <= f*(t))
      local tv = t:item()
      T.close(duel.tensor{sup(row, tv, name == 'pearson')}, fs:item(), 1e-5, name .. ' sup')
      -- attained at u = f*'(t), the derivative taken by autograd of the library's conjugate
      local u = grad({fs}, {tt})[1]:item()
      T.close(duel.tensor{u * tv - row.f(u)}, fs:item(), 1e-5, name .. ' equality')
    end
    -- at the critical level t = f'(1): f*(f'(1)) = f'(1) - f(1) (so the estimate is f(1): 0 for
    -- every row but 'gan', whose f(1) = -log 4)
    local t1 = lib.f_prime_1
    T.close(lib.conjugate(duel.tensor{t1}), t1 - row.f(1), 1e-6, name .. " f*(f'(1))")
  end
end)

-- ---- InfoGAN --------------------------------------------------------------------------------------

T.case('info_categorical: cross-entropy of Q against the code (hand values), 1-based codes', function()
  local logits = duel.tensor{{1, 2, 3}, {0, 0, 0}}:requires_grad_()
  local l = gan.info_categorical(logits, duel.tensor{3, 1})
  local want = ((math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 3) + math.log(3)) / 2
  T.close(l, want, 1e-6)
  -- gradient: (softmax - onehot) / N
  local g = grad({l}, {logits})[1]
  local e = {math.exp(1), math.exp(2), math.exp(3)}
  local s = e[1] + e[2] + e[3]
  T.close(g, {{e[1] / s / 2, e[2] / s / 2, (e[3] / s - 1) / 2}, {1 / 6 - 0.5, 1 / 6, 1 / 6}}, 1e-6)
  -- a perfect Q reaches the bound: L_I = H(c) - NLL -> ln K
  local sure = duel.tensor{{50, 0, 0}, {0, 0, 50}}
  T.close(gan.info_categorical(sure, duel.tensor{1, 3}), 0, 1e-6)
  T.raises_exact('info_categorical: codes must be 1-D {2} (1-based classes) to match logits {2,3}, got {3}',
                 function() gan.info_categorical(sure, duel.tensor{1, 2, 3}) end)
  T.raises_exact('info_categorical: label out of range 1..3, got 0', function()
    gan.info_categorical(sure, duel.tensor{0, 1})
  end)
end)

T.case('info_gaussian: factored Gaussian NLL with 0.5 log(2 pi), mean over samples, sum over dims', function()
  local c = 0.5 * math.log(2 * math.pi)
  local mean = duel.tensor{{0, 1}, {2, -1}}:requires_grad_()
  local log_std = duel.tensor{{0, math.log(2)}, {0.5, -0.5}}:requires_grad_()
  local codes = duel.tensor{{1, 3}, {2, 0}}
  local function nll(m, ls, x) return c + ls + 0.5 * ((x - m) / math.exp(ls)) ^ 2 end
  local want = (nll(0, 0, 1) + nll(1, math.log(2), 3) + nll(2, 0.5, 2) + nll(-1, -0.5, 0)) / 2
  T.close(gan.info_gaussian(mean, log_std, codes), want, 1e-6)
  -- std fixed at 1 (log_std nil), as the original code
  T.close(gan.info_gaussian(mean, nil, codes), (4 * c + 0.5 * (1 + 4 + 0 + 1)) / 2, 1e-6)
  -- it is -log N(codes; mean, std) averaged: the gradient in the mean is -(c - m)/std^2 / N
  local gm = grad({gan.info_gaussian(mean, log_std, codes)}, {mean})[1]
  T.close(gm, {{-1 / 2, -(2 / 4) / 2}, {0, -(1 * math.exp(1)) / 2}}, 1e-5)
  T.ok(duel.autograd.gradcheck(function(m, ls) return gan.info_gaussian(m, ls, codes) end, {mean, log_std}))
  T.ok(duel.autograd.gradgradcheck(function(m, ls) return gan.info_gaussian(m, ls, codes) end, {mean, log_std}))
  T.raises_exact('info_gaussian: log_std must be nil or have the shape of mean {2,2}, got {2}', function()
    gan.info_gaussian(mean, duel.zeros(2), codes)
  end)
  T.raises_exact('info_gaussian: codes must have the shape of mean {2,2}, got {2,3}', function()
    gan.info_gaussian(mean, nil, duel.zeros(2, 3))
  end)
end)

T.case('sample_latent: InfoGAN MNIST layout, code statistics, one-hot placement, reproducibility', function()
  duel.manual_seed(6)
  local z, codes = gan.sample_latent{n = 2000}
  T.eq(z:size(), {2000, 74}) -- 62 noise + 10 one-hot + 2 continuous
  local noise = z:narrow(2, 1, 62)
  T.ok(noise:min():item() >= -1 and noise:max():item() < 1, 'noise in [-1, 1)')
  T.close(duel.tensor{noise:mean():item()}, {0}, 0.01)
  T.close(duel.tensor{noise:var():item()}, {1 / 3}, 0.01) -- U(-1,1)
  T.eq(#codes.cat, 1)
  T.eq(codes.cat[1]:size(), {2000})
  T.close(z:narrow(2, 63, 10), F.one_hot(codes.cat[1], 10))
  T.close(z:narrow(2, 73, 2), codes.cont)
  T.eq(codes.cont:size(), {2000, 2})
  local counts = {}
  for _, v in ipairs(codes.cat[1]:totable()) do
    T.ok(v >= 1 and v <= 10 and v == math.floor(v))
    counts[v] = (counts[v] or 0) + 1
  end
  for k = 1, 10 do T.ok(math.abs(counts[k] / 2000 - 0.1) < 0.03, 'category ' .. k .. ' frequency') end
  duel.manual_seed(6)
  local z2 = gan.sample_latent{n = 2000}
  T.eq(z2:totable(), z:totable())
  -- two categorical codes, normal noise, no continuous code
  local z3, c3 = gan.sample_latent{n = 500, noise = 8, noise_dist = 'normal', categorical = {3, 4}, continuous = 0}
  T.eq(z3:size(), {500, 15})
  T.ok(c3.cont == nil)
  T.close(z3:narrow(2, 9, 3), F.one_hot(c3.cat[1], 3))
  T.close(z3:narrow(2, 12, 4), F.one_hot(c3.cat[2], 4))
  T.close(duel.tensor{z3:narrow(2, 1, 8):std():item()}, {1}, 0.1)
  T.raises_exact('sample_latent: n must be a whole number >= 1, got nil', function() gan.sample_latent{} end)
  T.raises_exact("sample_latent: noise_dist must be 'uniform' or 'normal', got 'gauss'", function()
    gan.sample_latent{n = 2, noise_dist = 'gauss'}
  end)
end)

-- ---- helpers --------------------------------------------------------------------------------------

T.case('feature_matching: mean over features of squared batch-mean differences', function()
  local fr = duel.tensor{{1, 2}, {3, 4}}
  local ff = duel.tensor{{0, 0}, {2, 2}, {1, 1}}:requires_grad_()
  local l = gan.feature_matching(fr, ff) -- means {2,3} and {1,1}: ((1)^2 + (2)^2) / 2
  T.close(l, 2.5, 1e-6)
  -- d/dff[j][k] = -2 (mr - mf)_k / (K M)
  T.close(grad({l}, {ff})[1], {{-1 / 3, -2 / 3}, {-1 / 3, -2 / 3}, {-1 / 3, -2 / 3}}, 1e-6)
  local a, b = duel.randn(4, 3, 2, 2), duel.randn(6, 3, 2, 2)
  local d = a:mean(1) - b:mean(1)
  T.close(gan.feature_matching(a, b), (d * d):sum():item() / 12, 1e-5)
  T.raises_exact('feature_matching: f_real and f_fake must be {N,...} with the same feature shape, got {2,2} and {3,3}',
                 function() gan.feature_matching(fr, duel.zeros(3, 3)) end)
end)

-- images tagged by value: image i is a {1,1,1} tensor holding i
local function tagged(from, n)
  local t = {}
  for i = 1, n do t[i] = {{{from + i - 1}}} end
  return duel.tensor(t)
end

T.case('ImagePool: stores until full, then returns an old image half of the time', function()
  duel.manual_seed(7)
  local pool = gan.ImagePool(4)
  local out = pool:query(tagged(1, 3))
  T.eq(out:view(-1):totable(), {1, 2, 3}) -- not full: stored and returned
  local seen, old, total = {[1] = true, [2] = true, [3] = true}, 0, 0
  local next_id = 4
  for _ = 1, 500 do
    local batch = tagged(next_id, 4)
    local o = pool:query(batch):view(-1):totable()
    for i = 1, 4 do
      local id = next_id + i - 1
      if o[i] ~= id then
        T.ok(seen[o[i]] and o[i] < id, 'an old image is one seen before')
        if id > 4 then old = old + 1 end
      end
      if id > 4 then total = total + 1 end -- the pool was full from image 5 on
      seen[id] = true
    end
    next_id = next_id + 4
  end
  T.eq(#pool.images, 4)
  local frac = old / total
  T.ok(math.abs(frac - 0.5) < 0.04, 'fraction of old images ' .. frac)
  -- the same seed gives the same sequence
  local function run()
    duel.manual_seed(8)
    local p, res = gan.ImagePool(3), {}
    for s = 0, 9 do
      for _, v in ipairs(p:query(tagged(10 * s, 2)):view(-1):totable()) do res[#res + 1] = v end
    end
    return res
  end
  T.eq(run(), run())
end)

T.case('ImagePool: returns detached copies; size 0 passes the batch through', function()
  duel.manual_seed(9)
  local x = duel.randn(2, 3, 4, 4):requires_grad_()
  local y = x * 2
  local p0 = gan.ImagePool(0)
  local o0 = p0:query(y)
  T.ok(not o0.requires_grad)
  T.close(o0, y)
  local pool = gan.ImagePool(2)
  local o = pool:query(y)
  T.ok(not o.requires_grad)
  T.close(o, y)
  -- stored images are copies: changing the batch afterwards leaves the pool alone
  local z = duel.ones(2, 3, 4, 4)
  pool:query(z)
  z:fill_(5)
  for _, img in ipairs(pool.images) do T.ok(img:max():item() < 5) end
  T.raises_exact('ImagePool: size must be a whole number >= 0, got -1', function() gan.ImagePool(-1) end)
end)

T.case('ema_: closed form over steps, buffers copied, structure checked', function()
  duel.manual_seed(10)
  local G, E = nn.Sequential{nn.Linear(3, 2), nn.BatchNorm1d(2)}, nn.Sequential{nn.Linear(3, 2), nn.BatchNorm1d(2)}
  G(duel.randn(5, 3)) -- moves G's running statistics
  local w0, wg = E['1'].weight:clone(), G['1'].weight:clone()
  for _ = 1, 3 do T.ok(gan.ema_(E, G, 0.9) == E) end
  -- p_k = g + 0.9^k (p_0 - g) for a fixed G
  T.close(E['1'].weight, wg + (w0 - wg) * 0.9 ^ 3, 1e-6)
  T.close(E['2'].running_mean, G['2'].running_mean)
  T.close(E['2'].running_var, G['2'].running_var)
  -- still leaves: an optimizer accepts them
  T.ok(E['1'].weight.requires_grad)
  optim.SGD(E:parameters(), {lr = 0.1})
  gan.ema_(E, G, 0)
  T.close(E['1'].weight, wg)
  T.raises_exact('ema_: G_ema and G must have the same structure, got parameter 1.weight {4,3} and 1.weight {2,3}',
                 function() gan.ema_(nn.Sequential{nn.Linear(3, 4), nn.BatchNorm1d(4)}, G, 0.9) end)
  T.raises_exact('ema_: decay must be in [0, 1], got 1.5', function() gan.ema_(E, G, 1.5) end)
end)

T.case('interpolate: lerp and slerp endpoints, slerp keeps the norm, (anti)parallel falls back', function()
  local z1, z2 = duel.tensor{3, 0, 4}, duel.tensor{0, 5, 0}
  local l = gan.interpolate(z1, z2, 5)
  T.eq(l:size(), {5, 3})
  T.eq(l:select(1, 1):totable(), z1:totable())
  T.eq(l:select(1, 5):totable(), z2:totable())
  T.close(l:select(1, 3), {1.5, 2.5, 2})
  local s = gan.interpolate(z1, z2, 7, {mode = 'slerp'})
  T.eq(s:select(1, 1):totable(), z1:totable())
  T.eq(s:select(1, 7):totable(), z2:totable())
  for i = 1, 7 do T.close(duel.tensor{s:select(1, i):norm():item()}, {5}, 1e-6) end
  -- orthogonal: the midpoint is (z1 + z2) / sqrt 2
  T.close(s:select(1, 4), (z1 + z2) / math.sqrt(2), 1e-6)
  duel.manual_seed(11)
  local a = duel.randn(1, 16)
  T.close(gan.interpolate(a, a * 2, 4, {mode = 'slerp'}), gan.interpolate(a, a * 2, 4), 1e-6)
  T.close(gan.interpolate(a, -a, 3, {mode = 'slerp'}):select(1, 2), duel.zeros(16), 1e-6)
  T.raises_exact('interpolate: n must be a whole number >= 2, got 1', function() gan.interpolate(z1, z2, 1) end)
  T.raises_exact("interpolate: mode must be 'lerp' or 'slerp', got 'cubic'", function()
    gan.interpolate(z1, z2, 3, {mode = 'cubic'})
  end)
end)

T.case('a discriminator with nn.MinibatchStdDev trained with d_loss: its loss decreases', function()
  duel.manual_seed(12)
  local D = nn.Sequential{
    nn.Conv2d(1, 4, 3, {padding = 1}), nn.LeakyReLU(0.2), nn.MinibatchStdDev(),
    nn.Conv2d(5, 4, 3, {stride = 2, padding = 1}), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 4 * 4, 1)}
  local opt = optim.Adam(D:parameters(), {lr = 2e-3, betas = {0.5, 0.999}})
  -- reals: smooth bright blobs; fakes: low-contrast noise (the batch statistic separates them)
  local function real() return duel.rand(8, 1, 8, 8) * 0.2 + 0.6 end
  local function fake() return duel.randn(8, 1, 8, 8) * 0.05 end
  local first, last
  for step = 1, 40 do
    opt:zero_grad()
    local loss = gan.d_loss('nonsaturating', D(real()), D(fake()))
    loss:backward()
    opt:step()
    if step == 1 then first = loss:item() end
    last = loss:item()
  end
  T.ok(first > 1.2 and last < 0.3 * first, ('loss %g -> %g'):format(first, last))
end)
