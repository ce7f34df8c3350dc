-- experiments/zoo_models3.lua: what vaegan, stargan, srgan and unrolled share (not public API).
--   zoo3.sample_plus(extra)          a Trainer sample hook: the default grids, then extra(tr, tag)
--   zoo3.Encoder(nz, ndf)            VAE encoder: 1x32x32 -> mu, logvar ({N,nz} each)
--   zoo3.kl_normal(mu, logvar)       KL(N(mu, diag exp(logvar)) || N(0, I)), closed form
--   zoo3.label_maps(x, c, n)         x with n one-hot label planes appended (StarGAN's input)
--   zoo3.StarG(n, ngf, n_blocks)     StarGAN's G for 1-channel images and n label planes
--   zoo3.StarD(n, ndf)               StarGAN's D: a patch of real/fake scores and n domain logits
--   zoo3.SRG(nf, n_blocks), SRD(ndf) SRGAN's nets scaled down to 7x7 -> 28x28 gray images
--   zoo3.unroll(D, opt, loss_fn, k)  D as a function of its parameters after k differentiable
--                                    optimizer steps (the Unrolled GAN's surrogate)
local duel = require 'duel'
local zoo = require 'experiments.zoo_models'
local nn, F = duel.nn, duel.F

local zoo3 = {}

-- Trainer's spec.sample replaces its default grids; this keeps them and adds a script's own
function zoo3.sample_plus(extra)
  return function(tr, tag)
    local hook = tr.spec.sample
    tr.spec.sample = nil
    local ok, err = pcall(tr.save, tr, tag)
    tr.spec.sample = hook
    if not ok then error(err, 0) end
    extra(tr, tag)
  end
end

-- ---- VAE ----------------------------------------------------------------------------------------

-- the DCGAN discriminator's body (32 -> 16 -> 8 -> 4) and one Linear giving [mu, logvar]
local Encoder = nn.Module:extend('Encoder')
function Encoder:__init(nz, ndf)
  rawset(self, 'nz', nz)
  self.body = zoo.D32(ndf).body
  self.head = nn.Sequential{nn.Flatten(), nn.Linear(ndf * 4 * 16, 2 * nz)}
end
function Encoder:forward(x)
  local h = self.head(self.body(x))
  return h:narrow(2, 1, self.nz), h:narrow(2, self.nz + 1, self.nz)
end
function zoo3.Encoder(nz, ndf) return Encoder(nz, ndf) end

-- 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2): summed over latent dims (the exact KL of
-- one sample's posterior), then averaged over the batch
function zoo3.kl_normal(mu, logvar)
  return ((mu * mu + logvar:exp() - 1 - logvar) * 0.5):sum(2):mean()
end

-- ---- StarGAN ------------------------------------------------------------------------------------

-- c: {N} domain numbers 1..n -> x {N,C,H,W} with n constant planes, plane c_i all ones
function zoo3.label_maps(x, c, n)
  local s = x:size()
  local maps = F.one_hot(c, n):view(s[1], n, 1, 1):expand(s[1], n, s[3], s[4])
  return duel.cat({x, maps}, 2)
end

-- the paper's G: 7x7 conv, two 4x4 stride-2 downsamplings, residual blocks, two 4x4 stride-2
-- transposed convolutions, 7x7 conv, tanh; zero padding, InstanceNorm (affine) and ReLU. One
-- change: no InstanceNorm after the first convolution. The label planes are constant, so away
-- from the borders they add a per-channel constant to that convolution's output, which an
-- InstanceNorm subtracts again; with zero padding only the border pixels would carry the label.
-- A ReLU first turns the offset into a different pattern of active units, which survives.
local function inorm(c) return nn.InstanceNorm2d(c, {affine = true}) end
local StarBlock = nn.Module:extend('StarBlock')
function StarBlock:__init(c)
  self.body = nn.Sequential{nn.Conv2d(c, c, 3, {padding = 1, bias = false}), inorm(c), nn.ReLU(),
                            nn.Conv2d(c, c, 3, {padding = 1, bias = false}), inorm(c)}
end
function StarBlock:forward(x) return x + self.body(x) end
function zoo3.StarG(n, ngf, n_blocks)
  local L = {nn.Conv2d(1 + n, ngf, 7, {padding = 3}), nn.ReLU()}
  local c = ngf
  for _ = 1, 2 do
    for _, m in ipairs{nn.Conv2d(c, 2 * c, 4, {stride = 2, padding = 1, bias = false}),
                       inorm(2 * c), nn.ReLU()} do L[#L + 1] = m end
    c = 2 * c
  end
  for _ = 1, n_blocks do L[#L + 1] = StarBlock(c) end
  for _ = 1, 2 do
    for _, m in ipairs{nn.ConvTranspose2d(c, c / 2, 4, {stride = 2, padding = 1, bias = false}),
                       inorm(c / 2), nn.ReLU()} do L[#L + 1] = m end
    c = c / 2
  end
  L[#L + 1] = nn.Conv2d(c, 1, 7, {padding = 3, bias = false})
  L[#L + 1] = nn.Tanh()
  return nn.Sequential(L)
end

-- the paper's D: 4x4 stride-2 convolutions with LeakyReLU(0.01) and no normalisation, then a 3x3
-- convolution to one score per patch (D_src) and a whole-image convolution to n logits (D_cls)
local StarD = nn.Module:extend('StarD')
function StarD:__init(n, ndf)
  local L, c = {}, 1
  for i = 1, 3 do -- 32 -> 16 -> 8 -> 4
    L[#L + 1] = nn.Conv2d(c, ndf * 2 ^ (i - 1), 4, {stride = 2, padding = 1})
    L[#L + 1] = nn.LeakyReLU(0.01)
    c = ndf * 2 ^ (i - 1)
  end
  self.body = nn.Sequential(L)
  self.src = nn.Conv2d(c, 1, 3, {padding = 1, bias = false})
  self.cls = nn.Sequential{nn.Conv2d(c, n, 4, {bias = false}), nn.Flatten()}
end
function StarD:forward(x)
  local h = self.body(x)
  return self.src(h), self.cls(h)
end
function zoo3.StarD(n, ndf) return StarD(n, ndf) end

-- ---- SRGAN --------------------------------------------------------------------------------------

-- SRGAN's residual block: conv-BN-act-conv-BN plus the input (ReLU where the paper has PReLU)
local SRBlock = nn.Module:extend('SRBlock')
function SRBlock:__init(c)
  self.body = nn.Sequential{nn.Conv2d(c, c, 3, {padding = 1}), nn.BatchNorm2d(c), nn.ReLU(),
                            nn.Conv2d(c, c, 3, {padding = 1}), nn.BatchNorm2d(c)}
end
function SRBlock:forward(x) return x + self.body(x) end

-- 9x9 conv, B blocks, conv-BN plus the long skip, two x2 upsamplings (nearest + 3x3 conv in place
-- of the paper's sub-pixel convolution), 9x9 conv to one channel, tanh
local SRG = nn.Module:extend('SRG')
function SRG:__init(nf, n_blocks)
  self.head = nn.Sequential{nn.Conv2d(1, nf, 9, {padding = 4}), nn.ReLU()}
  local B = {}
  for i = 1, n_blocks do B[i] = SRBlock(nf) end
  B[#B + 1] = nn.Conv2d(nf, nf, 3, {padding = 1})
  B[#B + 1] = nn.BatchNorm2d(nf)
  self.blocks = nn.Sequential(B)
  local U = {}
  for _ = 1, 2 do
    U[#U + 1] = nn.Upsample{scale = 2, mode = 'nearest'}
    U[#U + 1] = nn.Conv2d(nf, nf, 3, {padding = 1})
    U[#U + 1] = nn.ReLU()
  end
  U[#U + 1] = nn.Conv2d(nf, 1, 9, {padding = 4})
  U[#U + 1] = nn.Tanh()
  self.up = nn.Sequential(U)
end
function SRG:forward(x)
  local h = self.head(x)
  return self.up(h + self.blocks(h))
end
function zoo3.SRG(nf, n_blocks) return SRG(nf, n_blocks) end

-- SRGAN's D scaled down: conv3 pairs (stride 1, then 2) with BN and LeakyReLU(0.2),
-- 28 -> 14 -> 7, then Linear 128, LeakyReLU, Linear 1
function zoo3.SRD(ndf)
  local L, c = {}, 1
  for i, o in ipairs{ndf, ndf, 2 * ndf, 2 * ndf} do
    L[#L + 1] = nn.Conv2d(c, o, 3, {stride = i % 2 == 0 and 2 or 1, padding = 1})
    if i > 1 then L[#L + 1] = nn.BatchNorm2d(o) end
    L[#L + 1] = nn.LeakyReLU(0.2)
    c = o
  end
  for _, m in ipairs{nn.Flatten(), nn.Linear(c * 49, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1)} do
    L[#L + 1] = m
  end
  return nn.Sequential(L)
end

-- ---- Unrolled GAN -------------------------------------------------------------------------------

-- unroll(D, opt, loss_fn, k, {create_graph=true, inner='adam'|'sgd'}) -> Dk, a function x -> D(x)
-- with D's parameters after k steps on loss_fn(Df) (Df: the D of the step), taken as tensor ops
-- so that whatever loss_fn depends on (G's samples) gets gradients through every step. 'adam'
-- continues opt's moments and step counts (poolio/unrolled_gan unrolls Adam the same way) and
-- uses sqrt(v_hat + eps^2) for sqrt(v_hat) + eps: where v_hat = 0 (a dead ReLU) the derivative of
-- sqrt would be infinite; the two differ by less than eps. 'sgd' takes p - lr * g.
-- create_graph=false cuts the dependence on the steps (the gradient G would get from D_k alone).
function zoo3.unroll(D, opt, loss_fn, k, opts)
  opts = opts or {}
  local named, names, p = D:named_parameters(), {}, {}
  for i, e in ipairs(named) do names[i], p[i] = e[1], e[2] end
  local function as_fn(ps)
    local t = {}
    for i, n in ipairs(names) do t[n] = ps[i] end
    return function(x) return nn.functional_call(D, t, x) end
  end
  local sd = opt:state_dict()
  local o = sd.options
  local m, v = {}, {}
  for i = 1, #p do
    local st = sd.state[i] or {}
    m[i] = st.exp_avg and st.exp_avg:clone() or duel.zeros(p[i]:size())
    v[i] = st.exp_avg_sq and st.exp_avg_sq:clone() or duel.zeros(p[i]:size())
  end
  for s = 1, k do
    local g = duel.autograd.grad({loss_fn(as_fn(p))}, p, {create_graph = opts.create_graph ~= false})
    local q = {}
    for i = 1, #p do
      local gi = opts.create_graph == false and g[i]:detach() or g[i]
      if opts.inner == 'sgd' then
        q[i] = p[i] - gi * o.lr
      else
        local t = (sd.step[i] or 0) + s
        m[i] = m[i] * o.beta1 + gi * (1 - o.beta1)
        v[i] = v[i] * o.beta2 + gi * gi * (1 - o.beta2)
        local vh = v[i] / (1 - o.beta2 ^ t) + o.eps * o.eps
        q[i] = p[i] - m[i] * (o.lr / (1 - o.beta1 ^ t)) / vh:sqrt()
      end
    end
    p = q
  end
  return as_fn(p)
end

return zoo3
