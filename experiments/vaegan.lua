-- VAE-GAN, "adversary as a loss" (Larsen, Sonderby, Larochelle & Winther 2016): a VAE whose
-- decoder is also a GAN generator, and whose reconstruction error is measured in the feature
-- space of the discriminator (D's last hidden layer) instead of pixels.
--   Enc: q(z|x) = N(mu, diag exp(logvar)), z = mu + exp(logvar/2) * eps (reparameterisation)
--   L_prior = KL(q(z|x) || N(0, I)), closed form, summed over the nz latent dims, batch mean
--   L_llike = 1/2 ||D_l(x) - D_l(Dec(z))||^2 summed over D's features, batch mean (a unit-
--             variance Gaussian in feature space, so L_prior + L_llike is an ELBO in D's space)
--   L_GAN   = BCE: D tells x from Dec(z) (reconstructions) and Dec(z_p), z_p ~ N(0, I), the
--             two kinds of fakes in one batch
--   Enc minimises L_prior + L_llike; Dec minimises gamma * L_llike + the non-saturating GAN loss
--   on both kinds of fakes; D minimises L_GAN only (the paper's "limit error signals").
-- --pixel adds w * 1/2 ||x - Dec(z)||^2 (summed over pixels) to both, which steadies the start.
-- Fashion-MNIST 32x32; DCGAN nets (zoo_models) for Dec and D, D's body as the encoder's.
-- Writes samples_<step>.png (prior samples), recon_<step>.png (8 pairs a row: test input |
-- reconstruction), interpolation.png, metrics.jsonl, loss.png, checkpoint.safetensors.
--   luajit experiments/vaegan.lua
--   luajit experiments/vaegan.lua --gamma 0 --pixel 1      a plain VAE plus a GAN on its samples
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo3 = require 'experiments.zoo_models3'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 1200, nz = 32, gamma = 0.01, pixel = 0.05, lr = 3e-4, beta1 = 0.5, ndf = 32,
  sample_every = 250, ckpt_every = 250,
}, {
  gamma = "the decoder's weight on L_llike against its GAN loss (the paper's gamma)",
  pixel = 'weight of a pixel-space reconstruction term for Enc and Dec (0: none)',
  lr = 'Adam learning rate (Enc, Dec, D)', beta1 = 'Adam beta1',
})
local o, run = common.setup('vaegan', defaults, help)

local E, G, D = zoo3.Encoder(o.nz, o.ndf), zoo.G32(o.nz, o.ngf), zoo.D32(o.ndf)
local oE = optim.Adam(E, {lr = o.lr, betas = {o.beta1, 0.999}})
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, 0.999}})
local test = duel.data.fashion_mnist{split = 'test', pad_to = 32, limit = 32}.images

local function encode(x)
  local mu, logvar = E(x)
  return mu + (logvar * 0.5):exp() * duel.randn(mu:size()), mu, logvar
end
local function half_sq(a, b) return ((a - b) ^ 2 * 0.5):sum() / a:size(1) end

-- reconstructions of 32 fixed test images, from the posterior means
local function recon_grid(tr, tag)
  duel.no_grad(function()
    local mu = E(test)
    local pairs_ = {}
    for i = 1, test:size(1) do
      pairs_[#pairs_ + 1] = test:narrow(1, i, 1)
      pairs_[#pairs_ + 1] = G(mu):narrow(1, i, 1)
    end
    common.save_grid(('%s/recon_%s.png'):format(run.dir, tag), duel.cat(pairs_, 1), 8)
  end)
end

local tr = zoo.Trainer(run, o, {state = {E = E, G = G, D = D, oE = oE, oG = oG, oD = oD}, G = G,
                                nz = o.nz, data = zoo.fashion(o), sample = zoo3.sample_plus(recon_grid)})
for step in tr:steps() do
  local x = tr:batch()
  local z, mu, logvar = encode(x)
  local x_rec, x_p = G(z), G(tr:noise())
  -- D: real against both kinds of fakes, one batch of each (BCE; own BatchNorm statistics)
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', D(x), D(duel.cat({x_rec, x_p}, 1):detach()))
  ld:backward()
  oD:step()
  -- Enc and Dec: L_llike compares D's features of x and of its reconstruction
  oE:zero_grad(); oG:zero_grad()
  local f_real = duel.no_grad(function() return D.body(x) end)
  local f_rec = D.body(x_rec)
  local llike = half_sq(f_rec, f_real)
  local kl = zoo3.kl_normal(mu, logvar)
  local pix = o.pixel > 0 and half_sq(x_rec, x) * o.pixel or nil
  local adv = gan.g_loss('nonsaturating', D.head(f_rec)) + gan.g_loss('nonsaturating', D(x_p))
  -- the encoder's and the decoder's losses weigh L_llike and L_GAN differently: the decoder's
  -- gradient is taken on its own, then replaces what the encoder's backward left in G
  local enc_loss = kl + llike + (pix or 0)
  local dec_grads = duel.autograd.grad({adv + llike * o.gamma + (pix or 0)}, G:parameters(),
                                       {retain_graph = true})
  enc_loss:backward()
  for i, p in ipairs(G:parameters()) do p.grad = dec_grads[i] end
  oE:step(); oG:step()
  tr:log(step, {d_loss = ld:item(), kl = kl:item(), llike = llike:item(), gan = adv:item(),
                pixel = pix and pix:item() or 0})
end
tr:finish()
