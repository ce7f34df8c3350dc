-- Least squares GAN (Mao et al. 2017): D regresses real to 1 and fake to 0 with a linear output,
-- G pulls D(G(z)) to 1 (the paper's a=0, b=1, c=1 coding). gan 'lsgan' is CycleGAN's convention,
-- mean squared error with no 1/2 (GAN_REFERENCE.md 1.8, docs/gan.md): half the paper's value,
-- the same gradients up to a factor 2. DCGAN-like nets with BatchNorm, Adam (lr 2e-4, beta1 0.5;
-- the LSUN code used 1e-3 with far larger nets). Fashion-MNIST at 32x32.
--   luajit experiments/lsgan.lua
--   luajit experiments/lsgan.lua --lr 1e-3
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({steps = 2000, lr = 2e-4, beta1 = 0.5},
                                   {lr = 'Adam learning rate', beta1 = 'Adam beta1'})
local o, run = common.setup('lsgan', defaults, help)

local G = zoo.G32(o.nz, o.ngf)
local D = zoo.D32(o.ndf)
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, 0.999}})

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, G = G, nz = o.nz,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  local real = tr:batch()
  local fake = G(tr:noise())
  oD:zero_grad()
  local ld = gan.d_loss('lsgan', D(real), D(fake:detach()))  -- mean (D(x)-1)^2 + mean D(G(z))^2
  ld:backward()
  oD:step()
  oG:zero_grad()
  local lg = gan.g_loss('lsgan', D(fake))                     -- mean (D(G(z))-1)^2
  lg:backward()
  oG:step()
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item()})
end
tr:finish()
