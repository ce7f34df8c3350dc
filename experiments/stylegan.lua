-- A small style-based generator (StyleGAN, Karras et al. 2019) on Fashion-MNIST 32x32:
-- a mapping MLP z -> w, a learned constant input, AdaIN(w) after every layer, a noise input with a
-- learned per-channel scale before each AdaIN, and style mixing regularisation (with probability
-- --mixing two latents, the layers after a random crossover point take the second one's w).
-- Loss as StyleGAN: non-saturating logistic loss plus R1 (gamma/2 E||grad D(x)||^2 on reals,
-- gan.r1_penalty) every step; Adam betas (0, 0.99), the mapping network at 0.01x the learning
-- rate (StyleGAN's mapping lr multiplier; no equalised learning rate here). D is the DCGAN-style
-- D without normalisation (R1 is per sample). Writes styles_mixed.png: the top row and left
-- column are generated from latents A_j and B_i; cell (i, j) takes the coarse styles (4x4 and
-- 8x8 layers) from B_i and the fine ones (16x16, 32x32) from A_j.
--   luajit experiments/stylegan.lua
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo2 = require 'experiments.zoo_models2'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 1200, nz = 64, w_dim = 64, n_map = 4, ngf = 16, ndf = 32, lr = 1e-3, lr_d = 4e-4,
  map_lr_mult = 0.01, beta2 = 0.99, gamma = 1, mixing = 0.9, sample_every = 200, ckpt_every = 200,
}, {
  w_dim = 'style (w) size', n_map = 'mapping network layers', lr = "G's Adam learning rate",
  lr_d = "D's Adam learning rate", map_lr_mult = "mapping network's learning-rate multiplier",
  beta2 = 'Adam beta2 (beta1 is 0)', gamma = 'R1 weight (gamma/2 E||grad D(x)||^2)',
  mixing = 'probability of style mixing in a G batch',
})
local o, run = common.setup('stylegan', defaults, help)

local G = zoo2.StyleG(o.nz, o.w_dim, o.ngf, o.n_map)
local D = zoo.D32(o.ndf, {norm = 'none'})
print(G)
local L = G.n_styles
-- the synthesis network's parameters and the mapping network's, in two optimizers
local synth = {}
for _, e in ipairs(G:named_parameters()) do
  if not e[1]:match('^mapping%.') then synth[#synth + 1] = e[2] end
end
local oG = optim.Adam(synth, {lr = o.lr, betas = {0, o.beta2}})
local oM = optim.Adam(G.mapping, {lr = o.lr * o.map_lr_mult, betas = {0, o.beta2}})
local oD = optim.Adam(D, {lr = o.lr_d, betas = {0, o.beta2}})

-- G with style mixing: w1 for layers before a crossover point drawn uniformly in 2..L, w2 after
local function mixed_fake(n)
  local w1 = G:map(duel.randn(n, o.nz))
  local ws = {}
  for i = 1, L do ws[i] = w1 end
  if duel.rand(1):item() < o.mixing then
    local w2 = G:map(duel.randn(n, o.nz))
    local cut = math.min(math.floor(duel.rand(1):item() * (L - 1)) + 2, L)
    for i = cut, L do ws[i] = w2 end
  end
  return G:synthesis(ws)
end

local src = duel.randn(10, o.nz) -- A_1..5 and B_1..5 of styles_mixed.png (before any resume)
local function save_mixed()
  duel.no_grad(function()
    local a, b = G:map(src:narrow(1, 1, 5)), G:map(src:narrow(1, 6, 5))
    local ws = {}
    local by_row = b:view(5, 1, -1):expand(5, 5, o.w_dim):reshape(25, o.w_dim)
    local by_col = a:view(1, 5, -1):expand(5, 5, o.w_dim):reshape(25, o.w_dim)
    for i = 1, L do ws[i] = i <= 3 and by_row or by_col end -- cell (i, j): B_i coarse, A_j fine
    local cells, top, left = G:synthesis(ws), G(src:narrow(1, 1, 5)), G(src:narrow(1, 6, 5))
    local rows = {duel.cat({duel.full({1, 1, 32, 32}, -1), top}, 1)}
    for i = 1, 5 do
      rows[i + 1] = duel.cat({left:narrow(1, i, 1), cells:narrow(1, 5 * i - 4, 5)}, 1)
    end
    common.save_grid(run.dir .. '/styles_mixed.png', duel.cat(rows, 1), 6)
  end)
end

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oM = oM, oD = oD}, G = G,
                                nz = o.nz, data = zoo.fashion(o)})
for step in tr:steps() do
  local real = tr:batch()
  -- D: logistic loss on real and (mixed-style) fake, plus R1 on the reals
  local fake = duel.no_grad(function() return mixed_fake(o.batch) end)
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', D(real), D(fake))
  local r1 = gan.r1_penalty(D, real, {gamma = o.gamma})
  ;(ld + r1):backward()
  oD:step()
  oG:zero_grad(); oM:zero_grad()
  local lg = gan.g_loss('nonsaturating', D(mixed_fake(o.batch)))
  lg:backward()
  oG:step(); oM:step()
  tr:log(step, {d_loss = ld:item(), r1 = r1:item(), g_loss = lg:item()})
end
tr:finish()
save_mixed()
