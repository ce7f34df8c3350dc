-- DCGAN (Radford, Metz & Chintala 2015) with soumith/dcgan.torch's recipe (GAN_REFERENCE.md 1.1):
-- transposed-convolution G with BatchNorm and ReLU, strided-convolution D with LeakyReLU(0.2) and
-- BatchNorm (not on its first layer), no biases, N(0, 0.02) init, Adam 2e-4 (0.5, 0.999), BCE
-- with the non-saturating G loss, real and fake in separate D batches.
--   luajit experiments/dcgan.lua                           Fashion-MNIST 32x32, small nets
--   luajit experiments/dcgan.lua --feature_matching        G matches D's mean features (Salimans)
--   luajit experiments/dcgan.lua --minibatch_stddev        D sees the batch's std (Karras 2018)
--   luajit experiments/dcgan.lua --ema 0.999               samples from a moving average of G
--   luajit experiments/dcgan.lua --decay 0.5               learning rates fall to 0 in the 2nd half
--   luajit experiments/dcgan.lua --preset paper --data celeba/    the original 64x64 RGB nets
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan = duel.optim, duel.gan

local defaults, help = zoo.options({
  preset = 'fashion', data = '', load_size = 96, steps = 2000, lr = 2e-4, beta1 = 0.5,
  feature_matching = false, minibatch_stddev = false, ema = 0, decay = 1,
}, {
  preset = "'fashion' (1x32x32 Fashion-MNIST) or 'paper' (3x64x64, ngf = ndf = 64, --data)",
  data = 'paper preset: an image folder (duel.data.ImageFolder)',
  load_size = 'paper preset: resize to this, then a random 64x64 crop and a flip',
  lr = 'Adam learning rate', beta1 = 'Adam beta1',
  feature_matching = "G minimises the squared gap between D's mean features on real and fake",
  minibatch_stddev = "append the batch's feature std as a channel before D's last layer",
  ema = 'sample grids (and evaluate.lua) use a moving average of G with this decay (0: G itself)',
  decay = 'from this fraction of the run on, the learning rates fall linearly to 0 (1: never)',
})
local o, run = common.setup('dcgan', defaults, help)

local new_G, G, D, images
if o.preset == 'paper' then
  if o.data == '' then error('dcgan: --preset paper needs --data <image folder>, got none', 0) end
  if o.ngf == defaults.ngf then o.ngf, o.ndf = 64, 64 end
  new_G = zoo.G64
  G = new_G(o.nz, o.ngf)
  D = zoo.D64(o.ndf, {stddev = o.minibatch_stddev})
  images = duel.data.ImageFolder(o.data, {size = o.load_size, crop = 64, flip = true,
                                           labels = false})
elseif o.preset == 'fashion' then
  new_G = zoo.G32
  G = new_G(o.nz, o.ngf)
  D = zoo.D32(o.ndf, {stddev = o.minibatch_stddev})
  images = zoo.fashion(o)
else
  error(("dcgan: --preset must be 'fashion' or 'paper', got '%s'"):format(o.preset), 0)
end
print(G); print(D)
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, 0.999}})

if not (o.ema >= 0 and o.ema < 1) then
  error(('dcgan: --ema must be in [0, 1), got %g'):format(o.ema), 0)
end
if not (o.decay >= 0 and o.decay <= 1) then
  error(('dcgan: --decay must be in [0, 1], got %g'):format(o.decay), 0)
end
local state = {G = G, D = D, oG = oG, oD = oD}
if o.ema > 0 then -- not an original DCGAN part (Karras 2018, Yazici 2019): off by default
  state.G_ema = new_G(o.nz, o.ngf)
  state.G_ema:load_state_dict(G:state_dict())
end
local tr = zoo.Trainer(run, o, {state = state, G = state.G_ema or G, nz = o.nz, data = images})
for step in tr:steps() do
  if o.decay < 1 then
    oD.lr = zoo.decayed_lr(o, step)
    oG.lr = oD.lr
  end
  local real = tr:batch()
  local fake = G(tr:noise())
  -- D: BCE(D(x), 1) + BCE(D(G(z)), 0), each batch through D on its own (its own BN statistics)
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', D(real), D(fake:detach()))
  ld:backward()
  oD:step()
  -- G: BCE(D(G(z)), 1), or feature matching on D's last hidden layer
  oG:zero_grad()
  local lg
  if o.feature_matching then
    local f_real = duel.no_grad(function() return D.body(real) end)
    lg = gan.feature_matching(f_real, D.body(fake))
  else
    lg = gan.g_loss('nonsaturating', D(fake))
  end
  lg:backward()
  oG:step()
  if state.G_ema then gan.ema_(state.G_ema, G, o.ema) end
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item(), lr = o.decay < 1 and oG.lr or nil})
end
tr:finish()
