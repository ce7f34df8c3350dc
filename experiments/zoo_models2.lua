-- experiments/zoo_models2.lua: the nets of the conditional / structured-latent zoo scripts
-- (cgan, infogan, stylegan, sagan); not public API. 1x32x32 images in [-1,1].
--   zoo2.fashion_labelled(o)        Fashion-MNIST at 32x32 with labels {images=, labels=}
--   zoo2.CondG(nz, ngf, k, opt)     DCGAN-shaped G with ConditionalBatchNorm2d; opt.attn adds
--                                   nn.SelfAttention2d at 8x8, opt.sn spectral norm (SAGAN)
--   zoo2.ProjD(ndf, k, opt)         projection discriminator (Miyato & Koyama 2018), SN, attention
--   zoo2.ConcatD(ndf, k)            D seeing the image and k one-hot label maps as channels (cGAN)
--   zoo2.InfoD(ndf, hidden, q_out)  InfoGAN's D with a Q head sharing its body
--   zoo2.StyleG(nz, w_dim, ngf, n_map)   a small style-based generator (mapping MLP, AdaIN
--                                   per layer, per-layer noise with learned scales)
--   zoo2.random_labels(n, k)        uniform labels 1..k {n}
--   zoo2.label_maps(y, k, h, w)     one-hot labels {N} -> {N,k,h,w}
--   zoo2.class_sampler(run, gen, nz, k)   a Trainer `sample` function for class-conditional G:
--                                   grids with one row per class, and a per-class slerp strip
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local nn, F, init = duel.nn, duel.F, duel.init

local zoo2 = {}

function zoo2.fashion_labelled(o)
  local ds = duel.data.fashion_mnist{split = o.quick and 'test' or 'train', pad_to = 32,
                                    limit = o.quick and 256 or nil}
  return {images = ds.images, labels = ds.labels}
end

-- n labels drawn uniformly from 1..k, as a float tensor {n} (from duel's RNG)
function zoo2.random_labels(n, k)
  local u, y = duel.rand(n):totable(), {}
  for i = 1, n do y[i] = math.min(math.floor(u[i] * k) + 1, k) end
  return duel.tensor(y)
end

function zoo2.label_maps(y, k, h, w)
  return F.one_hot(y, k):view(-1, k, 1, 1):expand(y:size(1), k, h, w)
end

local function sn_if(on, m) return on and nn.spectral_norm(m) or m end
local function conv(...) -- N(0, 0.02) weights, zero biases (DCGAN init)
  local m = nn.Conv2d(...)
  init.normal_(m.weight, 0, 0.02)
  if m.bias then init.zeros_(m.bias) end
  return m
end

-- G(z, y): [z | one-hot(y)] {N,nz+k} -> ConvT to 4x4 -> 8 -> 16 -> 32, each followed by a
-- class-conditional BN (a per-class scale and shift, BigGAN's conditioning) and ReLU; tanh
-- output. The class also enters with z (BigGAN-deep concatenates its class embedding to z):
-- with CBN alone the per-class scales had moved by only 0.02 after 300 steps and every row of
-- the class grid was the same.
local CondG = nn.Module:extend('CondG')
function CondG:__init(nz, ngf, k, opt)
  opt = opt or {}
  local function ct(...) return sn_if(opt.sn, zoo.dcgan_init(nn.ConvTranspose2d(...))) end
  rawset(self, 'nz', nz); rawset(self, 'k', k)
  self.up1 = ct(nz + k, 4 * ngf, 4, {bias = false})
  self.bn1 = nn.ConditionalBatchNorm2d(4 * ngf, k)
  self.up2 = ct(4 * ngf, 2 * ngf, 4, {stride = 2, padding = 1, bias = false})
  self.bn2 = nn.ConditionalBatchNorm2d(2 * ngf, k)
  if opt.attn then self.attn = nn.SelfAttention2d(2 * ngf) end
  self.up3 = ct(2 * ngf, ngf, 4, {stride = 2, padding = 1, bias = false})
  self.bn3 = nn.ConditionalBatchNorm2d(ngf, k)
  self.out = ct(ngf, 1, 4, {stride = 2, padding = 1})
end
function CondG:forward(z, y)
  local h = self.up1(duel.cat({z, F.one_hot(y, self.k)}, 2):view(-1, self.nz + self.k, 1, 1))
  h = F.relu(self.bn1(h, y))
  h = F.relu(self.bn2(self.up2(h), y))
  if self.attn then h = self.attn(h) end
  h = F.relu(self.bn3(self.up3(h), y))
  return F.tanh(self.out(h))
end
zoo2.CondG = CondG

-- D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: phi = strided convs to 4x4, summed over space
-- (SN-GAN / BigGAN's global sum pooling); the inner product with a class embedding is the
-- projection term. Spectral norm on every layer but the embedding (opt.sn), attention at 8x8
-- (opt.attn; at 16x16 it made a step 3x slower on the CPU).
local ProjD = nn.Module:extend('ProjD')
function ProjD:__init(ndf, k, opt)
  opt = opt or {}
  local L = {sn_if(opt.sn, conv(1, ndf, 4, {stride = 2, padding = 1})), nn.LeakyReLU(0.1),
             sn_if(opt.sn, conv(ndf, 2 * ndf, 4, {stride = 2, padding = 1})), nn.LeakyReLU(0.1)}
  if opt.attn then
    local a = nn.SelfAttention2d(2 * ndf)
    if opt.sn then -- the attention's 1x1 convs too, as SAGAN
      a.f, a.g, a.h = nn.spectral_norm(a.f), nn.spectral_norm(a.g), nn.spectral_norm(a.h)
    end
    L[#L + 1] = a
  end
  L[#L + 1] = sn_if(opt.sn, conv(2 * ndf, 4 * ndf, 4, {stride = 2, padding = 1}))
  L[#L + 1] = nn.LeakyReLU(0.1)
  self.body = nn.Sequential(L)
  self.psi = sn_if(opt.sn, nn.Linear(4 * ndf, 1))
  self.embed = nn.Embedding(k, 4 * ndf) -- N(0, 1): the projection term counts from the start
end
function ProjD:forward(x, y)
  local h = self.body(x):sum(4):sum(3)                       -- {N, 4 ndf}
  return self.psi(h) + (self.embed(y) * h):sum(2, true)      -- {N, 1}
end
zoo2.ProjD = ProjD

-- cGAN's D (Mirza & Osindero 2014 with DCGAN layers): the label as k constant one-hot channels
-- concatenated to the image; BatchNorm after all convs but the first
function zoo2.ConcatD(ndf, k)
  return zoo.dcgan_init(nn.Sequential{
    conv(1 + k, ndf, 4, {stride = 2, padding = 1}), nn.LeakyReLU(0.2),
    conv(ndf, 2 * ndf, 4, {stride = 2, padding = 1, bias = false}), nn.BatchNorm2d(2 * ndf),
    nn.LeakyReLU(0.2),
    conv(2 * ndf, 4 * ndf, 4, {stride = 2, padding = 1, bias = false}), nn.BatchNorm2d(4 * ndf),
    nn.LeakyReLU(0.2),
    conv(4 * ndf, 1, 4), nn.Flatten()})
end

-- InfoGAN's D/Q (openai/InfoGAN regularized_gan.py, scaled down): shared body conv-lrelu,
-- conv-BN-lrelu (x2), FC-lrelu; D head FC 1; Q head FC 128-BN-lrelu-FC q_out. The paper's FC
-- layer has BatchNorm; here real and fake go through D as separate batches, and a BatchNorm
-- right before D's linear head normalised away what tells them apart (G fell into a texture
-- in a 500-step run), so it is left out. Leaky slope 0.1 as in the paper's text.
-- forward(x) -> D logits {N,1}, Q outputs {N,q_out}.
local InfoD = nn.Module:extend('InfoD')
function InfoD:__init(ndf, hidden, q_out)
  self.body = zoo.dcgan_init(nn.Sequential{
    conv(1, ndf, 4, {stride = 2, padding = 1}), nn.LeakyReLU(0.1),
    conv(ndf, 2 * ndf, 4, {stride = 2, padding = 1, bias = false}), nn.BatchNorm2d(2 * ndf),
    nn.LeakyReLU(0.1),
    conv(2 * ndf, 4 * ndf, 4, {stride = 2, padding = 1, bias = false}), nn.BatchNorm2d(4 * ndf),
    nn.LeakyReLU(0.1),
    nn.Flatten(), nn.Linear(64 * ndf, hidden), nn.LeakyReLU(0.1)})
  self.d = zoo.dcgan_init(nn.Linear(hidden, 1))
  self.q = zoo.dcgan_init(nn.Sequential{nn.Linear(hidden, 128, {bias = false}),
                                        nn.BatchNorm1d(128), nn.LeakyReLU(0.1),
                                        nn.Linear(128, q_out)})
end
function InfoD:forward(x)
  local h = self.body(x)
  return self.d(h), self.q(h)
end
zoo2.InfoD = InfoD

-- StyleGAN's per-layer noise input: x + scale * N(0,1) {N,1,H,W}, a learned scale per channel
-- starting at 0 (Karras et al. 2019, section 2)
local Noise = nn.Module:extend('NoiseInput')
function Noise:__init(c) self.scale = duel.zeros(1, c, 1, 1):requires_grad_() end
function Noise:forward(x)
  local s = x:size()
  return x + duel.randn(s[1], 1, s[3], s[4]) * self.scale
end

-- StyleG: mapping MLP z -> w (n_map Linear-LReLU(0.2) layers, z normalised to the unit
-- sphere times sqrt(nz) first, as StyleGAN's pixel norm); a learned constant 4x4 input; then
-- one style layer at 4x4 and one upsample-conv3x3 layer per resolution 8, 16, 32, each followed
-- by a noise input, LReLU(0.2) and AdaIN(w_i); a 1x1 conv to the image. G.n_styles = 5.
-- G:synthesis(ws) takes one w {N,w_dim} per layer (style mixing feeds different ones);
-- G(z) = G:synthesis of mapping(z) at every layer.
local StyleG = nn.Module:extend('StyleG')
function StyleG:__init(nz, w_dim, ngf, n_map)
  local m = {}
  for i = 1, n_map do
    m[#m + 1] = nn.Linear(i == 1 and nz or w_dim, w_dim)
    m[#m + 1] = nn.LeakyReLU(0.2)
  end
  self.mapping = nn.Sequential(m)
  local ch = {4 * ngf, 4 * ngf, 2 * ngf, ngf, ngf}
  rawset(self, 'n_styles', #ch)
  self.const = duel.ones(1, ch[1], 4, 4):requires_grad_()
  for i = 1, #ch do
    if i > 1 then self['conv' .. i] = nn.Conv2d(ch[i - 1], ch[i], 3, {padding = 1}) end
    self['noise' .. i] = Noise(ch[i])
    self['adain' .. i] = nn.AdaIN(ch[i], w_dim)
  end
  self.to_img = nn.Conv2d(ch[#ch], 1, 1)
end
function StyleG:map(z)
  return self.mapping(z * (z:size(2) / ((z * z):sum(2, true) + 1e-8)):sqrt())
end
function StyleG:synthesis(ws)
  local n = ws[1]:size(1)
  local h = self.const:expand(n, self.const:size(2), 4, 4)
  for i = 1, self.n_styles do
    if i > 2 then h = F.upsample(h, {scale = 2}) end
    if i > 1 then h = self['conv' .. i](h) end
    h = self['adain' .. i](F.leaky_relu(self['noise' .. i](h), 0.2), ws[i])
  end
  return self.to_img(h)
end
function StyleG:forward(z)
  local w, ws = self:map(z), {}
  for i = 1, self.n_styles do ws[i] = w end
  return self:synthesis(ws)
end
zoo2.StyleG = StyleG

-- gen(z, y) -> images. Fixed latents are drawn here, before a resume resets the RNG.
function zoo2.class_sampler(run, gen, nz, k)
  local cols = 10
  local noise, ends = duel.randn(cols, nz), duel.randn(2, nz)
  local y = {}
  for c = 1, k do for _ = 1, cols do y[#y + 1] = c end end
  y = duel.tensor(y)
  return function(_, tag)
    duel.no_grad(function()
      local z = noise:view(1, cols, nz):expand(k, cols, nz):reshape(k * cols, nz)
      common.save_grid(('%s/samples_%s.png'):format(run.dir, tag), gen(z, y), cols)
      if tag == 'final' then -- each row: one class, a slerp walk between the same two latents
        local walk = duel.gan.interpolate(ends[1], ends[2], cols, {mode = 'slerp'})
        z = walk:view(1, cols, nz):expand(k, cols, nz):reshape(k * cols, nz)
        common.save_grid(run.dir .. '/interpolation.png', gen(z, y), cols)
      end
    end)
  end
end

return zoo2
