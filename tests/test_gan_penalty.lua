-- duel.gan penalties: the fused grad_norm_penalty op (values, zero rows, composed-op match,
-- gradcheck/gradgradcheck), gradient_penalty against an explicit autograd.grad reference, its
-- gradient w.r.t. D's weights by finite differences through Conv2d + LeakyReLU + InstanceNorm2d /
-- LayerNorm + Linear, R1/R2 closed forms for a linear D, and WGAN weight clipping.
local T = require 'tests.harness'
local duel = require 'duel'
local nn, optim, gan = duel.nn, duel.optim, duel.gan
local C = duel._core
local grad = duel.autograd.grad
local gnp = require('duel.core')._gan.grad_norm_penalty -- (g, center, weight, one_sided)

local function finite(t)
  for i = 1, t:numel() do
    local v = C.flat_get(t, i)
    if v ~= v or math.abs(v) == math.huge then return false end
  end
  return true
end

-- the penalty composed from basic ops: w * mean_i (||g_i|| - c)^2
local function composed(g, c, w)
  local n = (g * g):reshape(g:size(1), -1):sum(2):sqrt()
  local d = n - c
  return (d * d):mean() * w
end

-- a gradient-like leaf {3,2,2} whose per-sample norms sit well away from 0, 1 and 2
local function gleaf()
  local g = duel.tensor{{{0.9, -0.4}, {0.3, 0.2}}, {{-1.6, 1.1}, {0.7, -0.9}}, {{0.2, 0.1}, {-0.3, 0.25}}}
  return g:requires_grad_()
end

T.gradcase('grad_norm_penalty', function()
  return function(g)
    return {gnp(g, 1, 2.5), gnp(g, 0, 1.5), gnp(g, 2, 1, true), (gnp(g, 0.5, 1, true))}
  end, {gleaf()}
end)

T.case('grad_norm_penalty: hand values, the norms, one-sided and zero-centred forms', function()
  local g = duel.tensor{{3, 4}, {0, 0}, {1, 0}} -- norms 5, 0, 1
  local p, n = gnp(g, 1, 10)
  T.close(p, 10 * (16 + 1 + 0) / 3, 1e-6)
  T.close(n, {5, 0, 1})
  T.ok(not n.requires_grad)
  T.close(gnp(g, 1, 10, true), 10 * 16 / 3, 1e-6)       -- max(0, ||g|| - 1)^2
  T.close(gnp(g, 0, 5), 5 * (25 + 0 + 1) / 3, 1e-6)      -- R1 form: w mean ||g||^2
  -- any shape: the norm runs over every non-batch element
  local g4 = duel.tensor{{{{1, 2}, {2, 0}}}, {{{0, 0}, {0, 0.5}}}} -- {2,1,2,2}: norms 3, 0.5
  T.close(select(2, gnp(g4, 1, 1)), {3, 0.5})
  T.close(gan.grad_norm_penalty(g4, {center = 1, weight = 2}), 2 * (4 + 0.25) / 2, 1e-6)
  T.raises_exact('grad_norm_penalty: unknown option (expected center, one_sided, weight), got lambda',
                 function() gan.grad_norm_penalty(g4, {lambda = 1}) end)
  T.raises_exact('grad_norm_penalty: the gradient must have a batch dimension {N,...}, got {}', function()
    gnp(duel.tensor(1), 1, 1)
  end)
end)

T.case('grad_norm_penalty: a zero gradient row gives finite first and second derivatives', function()
  local g = duel.tensor{{0, 0, 0}, {1, 2, 2}}:requires_grad_()
  for _, c in ipairs({1, 0}) do
    local p = gnp(g, c, 10)
    local d1 = grad({p}, {g}, {create_graph = true})[1]
    T.ok(finite(d1), 'first derivative finite')
    -- row 1 (norm 0) gets 0; row 2: 2 w / N (1 - c/3) g
    T.close(d1, {{0, 0, 0}, {10 * (1 - c / 3), 20 * (1 - c / 3), 20 * (1 - c / 3)}}, 1e-5)
    local d2 = grad({(d1 * d1):sum()}, {g})[1]
    T.ok(finite(d2), 'second derivative finite')
  end
end)

T.case('grad_norm_penalty: the fused op matches the composed ops in value, gradient and 2nd order', function()
  duel.manual_seed(1)
  for _, c in ipairs({1, 0, 0.3}) do
    local g = (duel.randn(5, 2, 3, 3) * 0.4):requires_grad_()
    local p1, p2 = gnp(g, c, 7), composed(g, c, 7)
    T.close(p1, p2:item(), 1e-5)
    local d1 = grad({p1}, {g}, {create_graph = true})[1]
    local d2 = grad({p2}, {g}, {create_graph = true})[1]
    T.close(d1, d2, 1e-5)
    T.close(grad({(d1 * d1):sum()}, {g})[1], grad({(d2 * d2):sum()}, {g})[1], 1e-4)
  end
end)

-- a small critic: Conv2d + LeakyReLU + InstanceNorm2d(affine) + Linear
local function critic()
  return nn.Sequential{nn.Conv2d(2, 3, 3, {padding = 1}), nn.LeakyReLU(0.2),
                       nn.InstanceNorm2d(3, {affine = true}), nn.Flatten(), nn.Linear(3 * 4 * 4, 1)}
end

T.case('gradient_penalty equals the reference by explicit autograd.grad(create_graph=true)', function()
  duel.manual_seed(2)
  local D = critic()
  local real, fake = duel.randn(4, 2, 4, 4), duel.randn(4, 2, 4, 4)
  duel.manual_seed(3)
  local gp, norms = gan.gradient_penalty(D, real, fake) -- lambda 10, center 1
  gp:backward()
  local got = {}
  for i, p in ipairs(D:parameters()) do got[i] = p.grad and p.grad:clone() or false; p.grad = nil end
  -- the reference, step by step
  duel.manual_seed(3)
  local alpha = duel.rand(4):view(4, 1, 1, 1)
  local x_hat = (real + alpha * (fake - real)):requires_grad_()
  local g = grad({D(x_hat):sum()}, {x_hat}, {create_graph = true})[1]
  local n = (g * g):reshape(4, -1):sum(2):sqrt()
  local ref = ((n - 1) * (n - 1)):mean() * 10
  T.close(gp, ref:item(), 1e-5)
  T.close(norms, n:view(4), 1e-5)
  ref:backward()
  local names = {}
  for i, e in ipairs(D:named_parameters()) do names[i] = e[1] end
  for i, p in ipairs(D:parameters()) do
    if p.grad then T.close(got[i], p.grad, 1e-4, names[i]) else T.ok(not got[i], names[i]) end
  end
  -- every parameter gets a gradient (second order through each layer) except the norm's and the
  -- last Linear's biases: they only shift D's output, so its input gradient does not see them
  for i, name in ipairs(names) do
    local shift = name == '3.bias' or name == '5.bias'
    T.ok(shift ~= (got[i] and got[i]:abs():max():item() > 0), name)
  end
  -- options
  duel.manual_seed(3)
  local gp0 = gan.gradient_penalty(D, real, fake, {lambda = 2, center = 0})
  T.close(gp0, 2 * (n * n):mean():item(), 1e-5)
end)

-- GP(w) with alpha fixed by reseeding, D's weights substituted through functional_call
local function gp_of(D, names, real, fake)
  return function(...)
    local ws = {...}
    local params = {}
    for i, name in ipairs(names) do params[name] = ws[i] end
    duel.manual_seed(4)
    local Dw = function(x) return nn.functional_call(D, params, x) end
    return gan.gradient_penalty(Dw, real, fake)
  end
end

T.case("gradient_penalty: its gradient w.r.t. D's weights passes gradcheck (InstanceNorm2d critic)", function()
  duel.manual_seed(5)
  local D = critic()
  local real, fake = duel.randn(2, 2, 4, 4), duel.randn(2, 2, 4, 4)
  local w1 = D['1'].weight:detach():clone():requires_grad_()
  local w3 = D['3'].weight:detach():clone():requires_grad_()
  local w5 = D['5'].weight:detach():clone():requires_grad_()
  T.ok(duel.autograd.gradcheck(gp_of(D, {'1.weight', '3.weight', '5.weight'}, real, fake), {w1, w3, w5},
                               {atol = 2e-2, rtol = 2e-2}))
end)

T.case("gradient_penalty: its gradient w.r.t. D's weights passes gradcheck (LayerNorm critic)", function()
  duel.manual_seed(6)
  local D = nn.Sequential{nn.Conv2d(1, 2, 3, {stride = 2, padding = 1}), nn.LeakyReLU(0.2),
                          nn.LayerNorm({2, 2, 2}), nn.Flatten(), nn.Linear(8, 1)}
  local real, fake = duel.randn(3, 1, 4, 4), duel.randn(3, 1, 4, 4)
  local w1 = D['1'].weight:detach():clone():requires_grad_()
  local b3 = D['3'].bias:detach():clone():requires_grad_()
  T.ok(duel.autograd.gradcheck(gp_of(D, {'1.weight', '3.bias'}, real, fake), {w1, b3},
                               {atol = 2e-2, rtol = 2e-2}))
end)

T.case('r1_penalty / r2_penalty: gamma/2 ||w||^2 for a linear D, and its gradient gamma w', function()
  duel.manual_seed(7)
  local D = nn.Linear(5, 1)
  local real, fake = duel.randn(8, 5), duel.randn(6, 5)
  local w = D.weight
  local sq = (w * w):sum():item()
  local r1, norms = gan.r1_penalty(D, real)
  T.close(r1, 10 / 2 * sq, 1e-5)
  T.close(norms, duel.full({8}, math.sqrt(sq)), 1e-5)
  T.close(gan.r2_penalty(D, fake, {gamma = 0.05}), 0.05 / 2 * sq, 1e-5)
  r1:backward()
  T.close(w.grad, w * 10, 1e-5)                     -- d/dw gamma/2 ||w||^2
  T.ok(D.bias.grad == nil or D.bias.grad:abs():max():item() == 0)
  -- images through Flatten + Linear: the same closed form
  local Dimg = nn.Sequential{nn.Flatten(), nn.Linear(12, 1)}
  local wi = Dimg['2'].weight
  T.close(gan.r1_penalty(Dimg, duel.randn(3, 3, 2, 2), {gamma = 4}), 2 * (wi * wi):sum():item(), 1e-5)
  -- gradient_penalty for a linear D: lambda (||w|| - 1)^2 whatever the interpolates
  T.close(gan.gradient_penalty(D, real, duel.randn(8, 5)), 10 * (math.sqrt(sq) - 1) ^ 2, 1e-5)
  -- D may be a plain function: D(x) = sum x^2 has gradient 2x, R1 = gamma/2 mean 4 ||x||^2
  local x = duel.randn(4, 3)
  T.close(gan.r1_penalty(function(t) return (t * t):sum(2) end, x, {gamma = 3}),
          1.5 * 4 * (x * x):sum():item() / 4, 1e-5)
  -- D(x) = sum_j x_j: the input gradient is an expanded (stride-0) tensor of ones
  local r1s, ns = gan.r1_penalty(function(t) return t:sum(2) end, x, {gamma = 3})
  T.close(r1s, 1.5 * 3, 1e-6)
  T.close(ns, duel.full({4}, math.sqrt(3)), 1e-6)
  T.close(gan.gradient_penalty(function(t) return t:sum(2) end, x, x * 2), 10 * (math.sqrt(3) - 1) ^ 2, 1e-5)
end)

T.case('penalties: the inputs are not modified and need no grad; work under no_grad too', function()
  duel.manual_seed(8)
  local D = critic()
  local real = duel.randn(2, 2, 4, 4):requires_grad_()
  local before = real:clone()
  local r1 = gan.r1_penalty(D, real)
  T.ok(real.grad == nil)
  T.close(real, before)
  local v = duel.no_grad(function() return gan.r1_penalty(D, real):item() end)
  T.close(duel.tensor{v}, {r1:item()}, 1e-6)
end)

T.case('penalties: misuse gives exact errors', function()
  local x = duel.randn(2, 3)
  T.raises_exact('gradient_penalty: D must be a module or a function, got number', function()
    gan.gradient_penalty(3, x, x)
  end)
  T.raises_exact('gradient_penalty: real and fake must have the same shape, got {2,3} and {3,3}', function()
    gan.gradient_penalty(nn.Linear(3, 1), x, duel.randn(3, 3))
  end)
  T.raises_exact('r1_penalty: D(x) must depend on its input, got an output {2} without a graph', function()
    gan.r1_penalty(function(t) return duel.ones(t:size(1)) end, x)
  end)
  T.raises_exact('r2_penalty: D must return a tensor, got table', function()
    gan.r2_penalty(function(t) return {t} end, x)
  end)
  T.raises_exact('r1_penalty: unknown option (expected gamma), got lambda', function()
    gan.r1_penalty(nn.Linear(3, 1), x, {lambda = 1})
  end)
  T.raises_exact('gradient_penalty: lambda must be a finite number, got nan', function()
    gan.gradient_penalty(nn.Linear(3, 1), x, x, {lambda = 0 / 0})
  end)
end)

T.case('WGAN: critic steps with wgan d_loss, RMSprop and clip_weights_ keep every weight in [-c, c]', function()
  duel.manual_seed(9)
  local Dc = nn.Sequential{nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)}
  local opt = optim.RMSprop(Dc:parameters(), {lr = 5e-3})
  local c = 0.01
  local losses = {}
  for step = 1, 20 do
    optim.clip_weights_(Dc, c) -- WassersteinGAN clamps before each critic step
    for _, p in ipairs(Dc:parameters()) do T.ok(p:abs():max():item() <= c + 1e-9, 'clamped') end
    opt:zero_grad()
    local real, fake = duel.randn(32, 2) + 2, duel.randn(32, 2) - 2
    local r, f = Dc(real), Dc(fake)
    local loss = gan.d_loss('wgan', r, f)
    T.close(loss, f:mean():item() - r:mean():item(), 1e-6)
    loss:backward()
    opt:step()
    losses[step] = loss:item()
  end
  -- the step is large next to c, so the clamp pins weights on the box boundary, and the critic
  -- still learns to separate the two clouds
  optim.clip_weights_(Dc, c)
  local pinned = 0
  for _, p in ipairs(Dc:parameters()) do
    for _, v in ipairs(p:view(-1):totable()) do if math.abs(math.abs(v) - c) < 1e-7 then pinned = pinned + 1 end end
  end
  T.ok(pinned > 10, 'weights pinned at +-c: ' .. pinned)
  T.ok(losses[20] < losses[1], ('critic loss %g -> %g'):format(losses[1], losses[20]))
end)
