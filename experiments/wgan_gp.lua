-- WGAN-GP (Gulrajani et al. 2017) as igul222/improved_wgan_training's gan_mnist.py / gan_cifar.py
-- train it (GAN_REFERENCE.md 1.7): critic loss mean D(G(z)) - mean D(x) + lambda * mean
-- (||grad D(x_hat)|| - 1)^2 on random interpolates x_hat (lambda 10), G loss -mean D(G(z)),
-- 5 critic steps per G step, Adam 1e-4 with betas (0.5, 0.9), no BatchNorm in the critic (the
-- penalty is per sample), BatchNorm in G as gan_cifar.py. The penalty is differentiated through
-- the critic (double backward). Fashion-MNIST at 32x32 with DCGAN-like nets scaled down to fit.
--   luajit experiments/wgan_gp.lua
--   luajit experiments/wgan_gp.lua --beta1 0 --n_critic 5     the ResNet recipe's betas (0, 0.9)
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 900, ngf = 32, ndf = 16, lr = 1e-4, beta1 = 0.5, beta2 = 0.9, lambda = 10, n_critic = 5,
  sample_every = 100, ckpt_every = 100,
}, {
  lr = 'Adam learning rate (G and critic)', beta1 = 'Adam beta1', beta2 = 'Adam beta2',
  lambda = 'gradient penalty weight', n_critic = 'critic steps per G step',
})
local o, run = common.setup('wgan_gp', defaults, help)

local G = zoo.G32(o.nz, o.ngf)
local D = zoo.D32(o.ndf, {norm = 'none'})   -- the critic: no normalisation, a linear output
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, o.beta2}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, o.beta2}})

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, G = G, nz = o.nz,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  local ld, gp, norms
  for _ = 1, o.n_critic do
    local real = tr:batch()
    local fake = duel.no_grad(function() return G(tr:noise()) end)
    oD:zero_grad()
    ld = gan.d_loss('wgan', D(real), D(fake))
    gp, norms = gan.gradient_penalty(D, real, fake, {lambda = o.lambda})
    ;(ld + gp):backward()
    oD:step()
  end
  oG:zero_grad()
  local lg = gan.g_loss('wgan', D(G(tr:noise())))
  lg:backward()
  oG:step()
  tr:log(step, {w_estimate = -ld:item(), gp = gp:item(), grad_norm = norms:mean():item(),
                g_loss = lg:item()})
end
tr:finish()
