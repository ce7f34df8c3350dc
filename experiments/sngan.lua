-- SN-GAN (Miyato et al. 2018): spectral normalisation on every layer of D (one power iteration
-- per step, nn.spectral_norm; GAN_REFERENCE.md 1.9) and the hinge loss: D minimises
-- mean relu(1 - D(x)) + mean relu(1 + D(G(z))), G minimises -mean D(G(z)). G keeps BatchNorm,
-- D has no other normalisation. Adam 2e-4 (0.5, 0.999) with one D step per G step, the paper's
-- setting for its standard CNN (--n_dis 5 --beta1 0 --beta2 0.9 is the ResNet one).
-- Fashion-MNIST at 32x32.
--   luajit experiments/sngan.lua
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 1800, lr = 2e-4, lr_d = 2e-4, beta1 = 0.5, beta2 = 0.999, n_dis = 1,
}, {
  lr = "G's Adam learning rate", lr_d = "D's Adam learning rate", beta1 = 'Adam beta1', beta2 = 'Adam beta2',
  n_dis = 'D steps per G step',
})
local o, run = common.setup('sngan', defaults, help)

local G = zoo.G32(o.nz, o.ngf)
local D = zoo.D32(o.ndf, {norm = 'sn'})
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, o.beta2}})
local oD = optim.Adam(D, {lr = o.lr_d, betas = {o.beta1, o.beta2}})

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, G = G, nz = o.nz,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  local ld
  for _ = 1, o.n_dis do
    local real = tr:batch()
    local fake = duel.no_grad(function() return G(tr:noise()) end)
    oD:zero_grad()
    ld = gan.d_loss('hinge', D(real), D(fake))
    ld:backward()
    oD:step()
  end
  oG:zero_grad()
  local lg = gan.g_loss('hinge', D(G(tr:noise())))
  lg:backward()
  oG:step()
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item()})
end
tr:finish()
