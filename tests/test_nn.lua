-- duel.nn: the module interface shared by C layers and Lua modules, containers, state, errors,
-- functional_call, the GAN blocks, and double backward through layers.
local T = require 'tests.harness'
local duel = require 'duel'
local nn, F = duel.nn, duel.F

local function sizes(t) return table.concat(t:size(), 'x') end

T.case('Linear computes x W^T + b with PyTorch default init bounds', function()
  duel.manual_seed(1)
  local m = nn.Linear(4, 3)
  T.eq(m.weight:size(), {3, 4})
  T.eq(m.bias:size(), {3})
  T.ok(m.weight:abs():max():item() <= 0.5 and m.bias:abs():max():item() <= 0.5, 'U(-1/sqrt(4), +) bound')
  local x = duel.randn(5, 4)
  T.close(m(x), duel.matmul(x, m.weight:t()) + m.bias, 1e-5)
  T.eq(m.in_features, 4)
  T.eq(m.out_features, 3)
  T.eq(tostring(nn.Linear(2, 5, {bias = false})), 'Linear(2->5, no bias)\nparameters: 10')
end)

T.case('conv layers: shapes, fields and one-line descriptions', function()
  local c = nn.Conv2d(3, 8, 4, {stride = 2, padding = 1})
  T.eq(c.weight:size(), {8, 3, 4, 4})
  T.eq(c.kernel_size, {4, 4})
  T.eq(c.stride, {2, 2})
  T.eq(c:__tostring_line(), 'Conv2d(3->8, k4, s2, p1)')
  T.eq(c(duel.randn(2, 3, 16, 16)):size(), {2, 8, 8, 8})
  local t = nn.ConvTranspose2d(8, 4, 3, {stride = 2, padding = 1, output_padding = 1, bias = false})
  T.eq(t.weight:size(), {8, 4, 3, 3})
  T.eq(t:__tostring_line(), 'ConvTranspose2d(8->4, k3, s2, p1, op1, no bias)')
  T.eq(t(duel.randn(1, 8, 5, 5)):size(), {1, 4, 10, 10})
  T.eq(nn.Conv2d(4, 4, {3, 1}, {groups = 2, dilation = 2}):__tostring_line(), 'Conv2d(4->4, k{3,1}, d2, groups 2)')
end)

T.case('Sequential: dotted names, buffers, state_dict and parameter count', function()
  local m = nn.Sequential{nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 6 * 6, 1)}
  local names = {}
  for _, e in ipairs(m:named_parameters()) do names[#names + 1] = e[1] end
  T.eq(names, {'1.weight', '1.bias', '2.weight', '2.bias', '5.weight', '5.bias'})
  local bufs = {}
  for _, e in ipairs(m:named_buffers()) do bufs[#bufs + 1] = e[1] end
  T.eq(bufs, {'2.running_mean', '2.running_var'})
  T.eq(m:num_parameters(), 4 * 9 + 4 + 4 + 4 + 144 + 1)
  local sd = m:state_dict()
  T.ok(sd['2.running_var'] and sd['5.weight'])
  T.eq(m(duel.randn(3, 1, 8, 8)):size(), {3, 1})
  T.eq(#m:children(), 5)
  T.eq(m[3]:__tostring_line(), 'LeakyReLU(0.2)')
  T.ok(tostring(m):find('(4): Flatten(2)', 1, true), tostring(m))
  T.ok(tostring(m):find('parameters: 193', 1, true), tostring(m))
end)

T.case('load_state_dict copies values and checks names and shapes', function()
  duel.manual_seed(2)
  local a, b = nn.Sequential{nn.Linear(3, 2), nn.BatchNorm1d(2)}, nn.Sequential{nn.Linear(3, 2), nn.BatchNorm1d(2)}
  local x = duel.randn(4, 3)
  a(x) -- updates a's running stats
  b:load_state_dict(a:state_dict())
  T.eq(b['1'].weight:totable(), a['1'].weight:totable())
  T.eq(b['2'].running_mean:totable(), a['2'].running_mean:totable())
  T.raises_exact('load_state_dict: 1.weight expects shape {2,3}, got {3,3}', function()
    b:load_state_dict({['1.weight'] = duel.zeros(3, 3)})
  end)
  T.raises('load_state_dict: missing keys {1.bias, 2.bias', function()
    b:load_state_dict({['1.weight'] = duel.zeros(2, 3)})
  end)
  b:load_state_dict({['1.weight'] = duel.zeros(2, 3)}, false)
  T.close(b['1'].weight, duel.zeros(2, 3))
end)

T.case('train/eval: BatchNorm uses running statistics and Dropout is off in eval', function()
  duel.manual_seed(3)
  local bn = nn.BatchNorm1d(2)
  local x = duel.randn(8, 2) * 3 + 5
  local y = bn(x)
  T.close(y:mean(1), {0, 0}, 1e-4)
  T.close(bn.running_mean, x:mean(1) * 0.1, 1e-5)
  bn:eval()
  T.ok(not bn.training)
  T.close(bn(x), (x - bn.running_mean) / (bn.running_var + 1e-5):sqrt(), 1e-4)
  local seq = nn.Sequential{nn.Dropout(0.5)}
  seq:eval()
  local z = duel.ones(100)
  T.close(seq(z), z)
  seq:train()
  T.ok(seq(z):eq(0):sum():item() > 20, 'dropout zeroes entries in training')
end)

T.case('zero_grad, apply and modules', function()
  local m = nn.Sequential{nn.Linear(2, 2), nn.Tanh(), nn.Sequential{nn.Linear(2, 1)}}
  m(duel.randn(3, 2)):sum():backward()
  T.ok(m['1'].weight.grad ~= nil)
  m:zero_grad()
  T.ok(m['1'].weight.grad == nil and m['3']['1'].bias.grad == nil)
  local seen = {}
  m:apply(function(mod) seen[#seen + 1] = mod.__name end)
  T.eq(seen, {'Linear', 'Tanh', 'Linear', 'Sequential', 'Sequential'})
  T.eq(#m:modules(), 5)
end)

-- the README example: a residual block in under 20 lines
local ResBlock = nn.Module:extend('ResBlock')
function ResBlock:__init(c)
  self.body = nn.Sequential{
    nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(),
    nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
  }
end
function ResBlock:forward(x) return x + self.body(x) end

T.case('a Lua module: registration order, names, tostring, forward and backward', function()
  local b = ResBlock(4)
  local names = {}
  for _, e in ipairs(b:named_parameters()) do names[#names + 1] = e[1] end
  T.eq(names, {'body.2.weight', 'body.2.bias', 'body.6.weight', 'body.6.bias'})
  local x = duel.randn(2, 4, 6, 6)
  local y = b(x)
  T.eq(y:size(), {2, 4, 6, 6})
  y:sum():backward()
  T.eq(b.body['2'].weight.grad:size(), {4, 4, 3, 3})
  local s = tostring(b)
  T.ok(s:find('ResBlock {', 1, true) and s:find('(1): ReflectionPad2d(1)', 1, true), s)
  T.ok(s:find('parameters: 296', 1, true), s)
  -- a parameter assigned directly is registered; a plain tensor is not
  local M = nn.Module:extend('M')
  function M:__init() self.w = duel.zeros(2):requires_grad_(); self.c = duel.ones(2) end
  local m = M()
  T.eq(#m:parameters(), 1)
  m:register_buffer('stat', duel.zeros(1))
  T.eq(#m:buffers(), 1)
  T.raises('M: forward is not defined', function() m(duel.zeros(1)) end)
end)

T.case('errors name the layer, and Sequential names the position', function()
  local c = nn.Conv2d(3, 8, 3)
  T.raises_exact('Conv2d(3->8, k3): expected input {N,C,H,W} with 3 channels, got {1,4,8,8}', function()
    c(duel.randn(1, 4, 8, 8))
  end)
  local seq = nn.Sequential{nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(4, 8, 3, {stride = 2})}
  T.raises_exact('Sequential[3] Conv2d(4->8, k3, s2): expected input {N,C,H,W} with 4 channels, got {1,8,6,6}', function()
    seq(duel.randn(1, 3, 8, 8))
  end)
  T.raises_exact('Linear(4->2): expected input {...,4}, got {3,5}', function() nn.Linear(4, 2)(duel.zeros(3, 5)) end)
  T.raises_exact('BatchNorm2d(8): expected input {N,C,H,W} with 8 channels, got {2,8}', function()
    nn.BatchNorm2d(8)(duel.zeros(2, 8))
  end)
  T.raises_exact('Conv2d: groups must divide in_channels and out_channels, got 2 for 3->4', function()
    nn.Conv2d(3, 4, 3, {groups = 2})
  end)
  T.raises_exact('Linear: in_features must be a whole number >= 1, got 0', function() nn.Linear(0, 3) end)
  T.raises_exact('Linear(3->2): weight must keep shape {2,3}, got {3,2}', function()
    local l = nn.Linear(3, 2); l.weight = duel.zeros(3, 2)
  end)
end)

T.case('functional_call runs with substitute parameters and differentiates through them', function()
  duel.manual_seed(4)
  local m = nn.Sequential{nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)}
  local x = duel.randn(5, 3)
  local w = m['1'].weight
  -- an unrolled step: w' = w - lr * dL/dw, kept differentiable
  local loss = m(x):pow(2):mean()
  local g = duel.autograd.grad(loss, w, {create_graph = true})[1]
  local w2 = w - g * 0.1
  local out = nn.functional_call(m, {['1.weight'] = w2}, x)
  T.ok(m['1'].weight == w, 'the original parameter is back after the call')
  T.close(out, F.linear(F.linear(x, w2, m['1'].bias):tanh(), m['3'].weight, m['3'].bias), 1e-5)
  -- second-order gradient reaches w through w2
  local gw = duel.autograd.grad(out:sum(), w)[1]
  T.eq(gw:size(), {4, 3})
  T.raises('functional_call: the module has no parameter or buffer named 9.weight', function()
    nn.functional_call(m, {['9.weight'] = w}, x)
  end)
end)

T.case('double backward through Conv2d + LeakyReLU + InstanceNorm + Linear (a critic)', function()
  duel.manual_seed(5)
  local D = nn.Sequential{nn.Conv2d(2, 3, 3, {padding = 1}), nn.LeakyReLU(0.2), nn.InstanceNorm2d(3, {affine = true}),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 1)}
  local x = duel.randn(2, 2, 4, 4):requires_grad_()
  local params = D:parameters()
  -- gradient-penalty-like: ||d D(x) / dx||^2 as a function of the conv weight
  local function gp(w)
    local out = nn.functional_call(D, {['1.weight'] = w}, x)
    local g = duel.autograd.grad(out:sum(), x, {create_graph = true})[1]
    return (g * g):sum()
  end
  local w = params[1]:detach():clone():requires_grad_()
  T.ok(duel.autograd.gradcheck(gp, {w}, {atol = 2e-2, rtol = 2e-2}))
end)

T.case('ConditionalBatchNorm2d and AdaIN take a second input', function()
  duel.manual_seed(6)
  local cbn = nn.ConditionalBatchNorm2d(2, 3)
  local x = duel.randn(4, 2, 3, 3)
  local y = cbn(x, duel.tensor{1, 2, 3, 1})
  T.close(y, F.batch_norm(x, nil, nil, nil, nil), 1e-4) -- class scales start at 1, shifts at 0
  local ada = nn.AdaIN(2, 5)
  T.eq(ada(x, duel.randn(4, 5)):size(), {4, 2, 3, 3})
  T.raises_exact('ConditionalBatchNorm2d(2, 3): expected labels {4} (one per sample), got {3}', function()
    cbn(x, duel.tensor{1, 2, 3})
  end)
  local emb = nn.Embedding(10, 3)
  T.eq(emb(duel.tensor{{1, 2}, {10, 4}}):size(), {2, 2, 3})
  T.close(emb(duel.tensor{2}):view(3), emb.weight:select(1, 2))
end)

T.case('spectral_norm: the normalised weight has spectral norm 1 and gradients flow', function()
  duel.manual_seed(7)
  local lin = nn.Linear(6, 4)
  local sn = nn.spectral_norm(lin, {iters = 1})
  local x = duel.randn(3, 6)
  for _ = 1, 30 do sn(x) end -- power iteration converges across calls
  local w = lin.weight
  local sigma = sn:sigma(w):item()
  -- the largest singular value by many iterations on W^T W
  local v = duel.randn(6, 1)
  for _ = 1, 200 do v = duel.matmul(w:t(), duel.matmul(w, v)); v = v / v:norm() end
  local top = duel.matmul(w, v):norm():item()
  T.ok(math.abs(sigma - top) < 1e-3 * top, ('sigma %g vs %g'):format(sigma, top))
  local y = sn(x)
  T.close(y, F.linear(x, w / sigma, lin.bias), 1e-4)
  y:sum():backward()
  T.ok(w.grad ~= nil)
  T.eq(#sn:parameters(), 2)
  sn:eval()
  local u0 = sn.weight_u:clone()
  sn(x)
  T.eq(sn.weight_u:totable(), u0:totable())
end)

T.case('MinibatchStdDev, MinibatchDiscrimination and SelfAttention2d', function()
  duel.manual_seed(8)
  local x = duel.tensor{{{{1}}, {{2}}}, {{{3}}, {{6}}}} -- {2,2,1,1}
  local y = nn.MinibatchStdDev()(x)
  -- per feature std over the batch (biased): 1 and 2, mean 1.5
  T.close(y:select(2, 3), {{{1.5}}, {{1.5}}}, 1e-4)
  T.eq(nn.MinibatchDiscrimination(5, 3, 2)(duel.randn(4, 5)):size(), {4, 8})
  local sa = nn.SelfAttention2d(8)
  local z = duel.randn(2, 8, 3, 3)
  T.close(sa(z), z) -- gamma starts at 0
  T.eq(#sa:parameters(), 7)
  local md = nn.MinibatchDiscrimination(3, 2, 2)
  local inp = duel.randn(3, 3):requires_grad_()
  T.ok(duel.autograd.gradcheck(function(a) return md(a) end, {inp}))
  T.ok(duel.autograd.gradgradcheck(function(a) return md(a) end, {inp}))
end)

T.case('the GAN blocks are differentiable twice (gradgradcheck)', function()
  duel.manual_seed(10)
  local sa = nn.SelfAttention2d(4, {reduction = 2})
  duel.no_grad(function() sa.gamma:fill_(0.7) end)
  local x = duel.randn(1, 4, 2, 2):requires_grad_()
  T.ok(duel.autograd.gradgradcheck(function(a) return sa(a) end, {x}))
  local mb = nn.MinibatchStdDev()
  local y = duel.randn(3, 2, 2, 2):requires_grad_()
  T.ok(duel.autograd.gradgradcheck(function(a) return mb(a) end, {y}))
  local sn = nn.spectral_norm(nn.Linear(3, 2))
  local z = duel.randn(2, 3)
  for _ = 1, 10 do sn(z) end -- converge u and v
  sn:eval() -- then frozen: W / sigma(W) is a fixed differentiable map of the weight
  local w = sn.module.weight
  T.ok(duel.autograd.gradgradcheck(function(ww) return sn:forward_with_weight(z, ww) end, {w}))
end)

T.case('duel.init: fans, gains and in-place initialisers', function()
  local init = duel.init
  local w = duel.empty(64, 32, 3, 3):requires_grad_()
  local fi, fo = init.calculate_fans(w)
  T.eq({fi, fo}, {32 * 9, 64 * 9})
  init.kaiming_normal_(w, 0, 'fan_in', 'relu')
  T.close(duel.tensor{w:std():item()}, {math.sqrt(2 / (32 * 9))}, 0.05)
  init.xavier_uniform_(w)
  T.ok(w:abs():max():item() <= math.sqrt(6 / (fi + fo)) + 1e-6)
  init.zeros_(w)
  T.eq(w:abs():sum():item(), 0)
  init.normal_(w, 0, 0.02)
  T.close(duel.tensor{w:std():item()}, {0.02}, 0.05)
  T.close(duel.tensor{init.calculate_gain('leaky_relu', 0.2)}, {math.sqrt(2 / 1.04)})
end)

T.case('a small MLP fits XOR', function()
  duel.manual_seed(9)
  local x = duel.tensor{{0, 0}, {0, 1}, {1, 0}, {1, 1}}
  local y = duel.tensor{{0}, {1}, {1}, {0}}
  local m = nn.Sequential{nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)}
  local opt = duel.optim.Adam(m, {lr = 0.05})
  for _ = 1, 500 do
    opt:zero_grad()
    F.bce_with_logits(m(x), y):backward()
    opt:step()
  end
  local p = m(x):sigmoid()
  T.close(p:gt(0.5), y)
  T.ok(F.bce_with_logits(m(x), y):item() < 0.05)
end)

T.case('a small conv net reaches over 85% test accuracy on Fashion-MNIST (2 epochs)', function()
  duel.manual_seed(1)
  local train = duel.data.fashion_mnist{split = 'train'}
  local test = duel.data.fashion_mnist{split = 'test'}
  local m = nn.Sequential{
    nn.Conv2d(1, 16, 3, {stride = 2, padding = 1}), nn.ReLU(),
    nn.Conv2d(16, 32, 3, {stride = 2, padding = 1}), nn.ReLU(),
    nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
  }
  local opt = duel.optim.Adam(m, {lr = 2e-3})
  local loader = duel.data.DataLoader({train.images, train.labels}, {batch = 64, shuffle = true, seed = 1})
  for epoch = 1, 2 do
    loader:set_epoch(epoch)
    for b in loader:iter() do
      opt:zero_grad()
      F.cross_entropy(m(b[1]), b[2]):backward()
      opt:step()
    end
  end
  m:eval()
  local correct = duel.no_grad(function()
    local c = 0
    for i = 1, 10000, 1000 do
      local logits = m(test.images:narrow(1, i, 1000))
      c = c + logits:argmax(2):eq(test.labels:narrow(1, i, 1000)):sum():item()
    end
    return c
  end)
  T.ok(correct / 10000 > 0.85, ('test accuracy %.4f'):format(correct / 10000))
end)
