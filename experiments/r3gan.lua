-- The relativistic pairing GAN with zero-centred R1 and R2 (Huang et al. 2024, "R3GAN";
-- GAN_REFERENCE.md 1.11): D loss mean_i softplus(-(D(x_i) - D(G(z_i)))) + gamma/2 (R1 + R2),
-- with R1 = mean ||grad_x D(x)||^2 on reals and R2 the same on fakes, G loss
-- mean_i softplus(-(D(G(z_i)) - D(x_i))) against detached reals, real i paired with fake i.
-- Adam with beta1 = 0, as brownvc/R3GAN sets it every step. The penalties are differentiated
-- through D (double backward). D has no normalisation (R3GAN's nets have none); G keeps DCGAN's
-- BatchNorm here, a small convolutional stand-in for R3GAN's ResNeXt. Fashion-MNIST at 32x32.
--   luajit experiments/r3gan.lua
--   luajit experiments/r3gan.lua --gamma 0.1
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({steps = 1500, gamma = 1, lr = 2e-4, beta1 = 0, beta2 = 0.99}, {
  gamma = 'R1 and R2 weight: gamma/2 * mean ||grad D||^2 each',
  lr = 'Adam learning rate', beta1 = 'Adam beta1', beta2 = 'Adam beta2',
})
local o, run = common.setup('r3gan', defaults, help)

local G = zoo.G32(o.nz, o.ngf)
local D = zoo.D32(o.ndf, {norm = 'none'})
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, o.beta2}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, o.beta2}})

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, G = G, nz = o.nz,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  local real = tr:batch()
  local fake = G(tr:noise())
  oD:zero_grad()
  local ld = gan.d_loss('relativistic', D(real), D(fake:detach()))
  local r1 = gan.r1_penalty(D, real, {gamma = o.gamma})
  local r2 = gan.r2_penalty(D, fake:detach(), {gamma = o.gamma})
  ;(ld + r1 + r2):backward()
  oD:step()
  oG:zero_grad()
  local lg = gan.g_loss('relativistic', D(fake), D(real):detach())
  lg:backward()
  oG:step()
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item(), r1 = r1:item(), r2 = r2:item()})
end
tr:finish()
