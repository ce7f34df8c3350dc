-- SAGAN / BigGAN-style small class-conditional GAN (Zhang et al. 2019; Brock et al. 2019) on
-- Fashion-MNIST 32x32: self-attention (nn.SelfAttention2d, gamma starting at 0) at 8x8 in G
-- and D; class-conditional BatchNorm in G (nn.ConditionalBatchNorm2d: a per-class scale and
-- shift); a projection discriminator D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato &
-- Koyama 2018); spectral norm on every layer of both G and D (nn.spectral_norm, as SAGAN);
-- the hinge loss; Adam with beta1 0, beta2 0.9, one D step per G step and two time-scale
-- learning rates, 4e-4 for D as SAGAN, 2e-4 for G (SAGAN: 1e-4; twice that learnt faster in
-- 300-step runs, which the 10-minute budget needs). The grid has one row per class.
--   luajit experiments/sagan.lua
--   luajit experiments/sagan.lua --attn false      the same model without self-attention
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo2 = require 'experiments.zoo_models2'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 1200, nz = 64, lr_g = 2e-4, lr_d = 4e-4, beta1 = 0, beta2 = 0.9, n_dis = 1, classes = 10,
  attn = true, sample_every = 200, ckpt_every = 200,
}, {
  lr_g = "G's Adam learning rate", lr_d = "D's Adam learning rate", beta1 = 'Adam beta1',
  beta2 = 'Adam beta2', n_dis = 'D steps per G step', classes = 'number of classes',
  attn = 'self-attention at 8x8 in G and D',
})
local o, run = common.setup('sagan', defaults, help)

local G = zoo2.CondG(o.nz, o.ngf, o.classes, {attn = o.attn, sn = true})
local D = zoo2.ProjD(o.ndf, o.classes, {attn = o.attn, sn = true})
print(G); print(D)
local oG = optim.Adam(G, {lr = o.lr_g, betas = {o.beta1, o.beta2}})
local oD = optim.Adam(D, {lr = o.lr_d, betas = {o.beta1, o.beta2}})

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, nz = o.nz,
                                sample = zoo2.class_sampler(run, G, o.nz, o.classes),
                                data = zoo2.fashion_labelled(o)})
for step in tr:steps() do
  local ld
  for _ = 1, o.n_dis do
    local b = tr:batch()
    local y = zoo2.random_labels(o.batch, o.classes)
    local fake = duel.no_grad(function() return G(tr:noise(), y) end)
    oD:zero_grad()
    ld = gan.d_loss('hinge', D(b.images, b.labels), D(fake, y))
    ld:backward()
    oD:step()
  end
  oG:zero_grad()
  local y = zoo2.random_labels(o.batch, o.classes)
  local lg = gan.g_loss('hinge', D(G(tr:noise(), y), y))
  lg:backward()
  oG:step()
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item(),
                gamma_g = o.attn and G.attn.gamma:item() or 0})
end
tr:finish()
