-- f-GAN (Nowozin, Cseke & Tomioka 2016): D estimates a variational lower bound of an
-- f-divergence, F = E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))] (GAN_REFERENCE.md 1.12 and 2), and G
-- lowers it. `--divergence` picks the row of the paper's table: kl, reverse_kl, pearson,
-- hellinger, js or gan. G takes the paper's alternative update (3.2), -mean g_f(V(G(z)));
-- --trick false gives the saddle-point G, mean f*(g_f(V(G(z)))) to maximise. LynnHo's
-- f-GAN-Tensorflow recipe: Adam 2e-4, beta1 0.5, batch 64, z 100; DCGAN-like nets, 32x32.
--   luajit experiments/fgan.lua --divergence pearson
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 2000, divergence = 'js', trick = true, lr = 2e-4, beta1 = 0.5,
}, {
  divergence = 'kl | reverse_kl | pearson | hellinger | js | gan',
  trick = "G minimises -mean g_f(V(G(z))) (the paper's 3.2); false: the saddle-point G",
  lr = 'Adam learning rate', beta1 = 'Adam beta1',
})
local o, run = common.setup('fgan', defaults, help)
if not gan.fgan_divergences[o.divergence] then
  error(('fgan: --divergence must be kl, reverse_kl, pearson, hellinger, js or gan, got %s')
        :format(o.divergence), 0)
end

local G = zoo.G32(o.nz, o.ngf)
local D = zoo.D32(o.ndf)                -- V(x): the raw output, before g_f
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, 0.999}})
local conj = gan.fgan_divergences[o.divergence].conj_activation

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, G = G, nz = o.nz,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  local real = tr:batch()
  local fake = G(tr:noise())
  oD:zero_grad()
  local v_real, v_fake = D(real), D(fake:detach())
  local ld = gan.fgan_d_loss(o.divergence, v_real, v_fake)   -- -F, the bound to maximise
  ld:backward()
  oD:step()
  oG:zero_grad()
  local lg = gan.fgan_g_loss(o.divergence, D(fake), {trick = o.trick})
  lg:backward()
  oG:step()
  -- F on this batch is D's divergence estimate
  local bound = -ld:item()
  tr:log(step, {divergence = bound, d_loss = ld:item(), g_loss = lg:item(),
                fake_term = conj(v_fake:detach()):mean():item()})
end
tr:finish()
