-- WGAN with weight clipping (Arjovsky, Chintala & Bottou 2017) as martinarjovsky/WassersteinGAN
-- trains it (GAN_REFERENCE.md 1.6): RMSprop 5e-5 for both nets, the critic's weights clamped to
-- [-0.01, 0.01] before each critic step, 5 critic steps per G step, and 100 while G has made
-- fewer than 25 steps and at every 500th G step (the rule the paper left out; see the README of
-- that repository). The critic is DCGAN's D with BatchNorm and no sigmoid; the losses are
-- gan 'wgan' (critic: mean D(G(z)) - mean D(x), G: -mean D(G(z))). Fashion-MNIST at 32x32.
--   luajit experiments/wgan.lua
--   luajit experiments/wgan.lua --d_iters 5 --warmup_iters 5       without the warm-up rule
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  steps = 500, ngf = 32, ndf = 16, lr = 5e-5, clip = 0.01, d_iters = 5, warmup_iters = 100,
  warmup_steps = 25, warmup_every = 500, sample_every = 100, ckpt_every = 100,
}, {
  lr = 'RMSprop learning rate (G and critic)', clip = 'critic weights clamped to [-clip, clip]',
  d_iters = 'critic steps per G step', warmup_iters = 'critic steps per G step during warm-up',
  warmup_steps = 'G steps of warm-up at the start',
  warmup_every = 'every this many G steps, one step with warmup_iters critic steps',
})
defaults._quick.warmup_iters = 3
local o, run = common.setup('wgan', defaults, help)

local G = zoo.G32(o.nz, o.ngf)
local D = zoo.D32(o.ndf)                  -- the critic: BatchNorm, a linear output
local oG = optim.RMSprop(G, {lr = o.lr})
local oD = optim.RMSprop(D, {lr = o.lr})

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, G = G, nz = o.nz,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  -- step - 1 G updates have been made (WassersteinGAN's gen_iterations)
  local warm = step - 1 < o.warmup_steps or (step - 1) % o.warmup_every == 0
  local ld, w_dist
  for _ = 1, warm and o.warmup_iters or o.d_iters do
    optim.clip_weights_(D, o.clip)        -- clamp first, as the original loop does
    local real = tr:batch()
    local fake = duel.no_grad(function() return G(tr:noise()) end)
    oD:zero_grad()
    ld = gan.d_loss('wgan', D(real), D(fake))
    ld:backward()
    oD:step()
  end
  w_dist = -ld:item()                     -- the critic's estimate of W(P_r, P_g), up to a constant
  oG:zero_grad()
  local lg = gan.g_loss('wgan', D(G(tr:noise())))
  lg:backward()
  oG:step()
  tr:log(step, {w_estimate = w_dist, g_loss = lg:item()})
end
tr:finish()
