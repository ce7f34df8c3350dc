-- SRGAN (Ledig et al. 2017): 4x super-resolution with an adversarial loss and a perceptual loss.
-- Fashion-MNIST 28x28 targets, 7x7 inputs (4x4 average pooling). The perceptual ("content") loss
-- is the squared distance between the reference classifier's penultimate features
-- (duel.metrics.classifier, frozen, eval mode) of the output and of the target, in place of the
-- paper's VGG features; the paper's G loss is content + 1e-3 * adversarial. --pixel adds pixel
-- MSE (the paper's SRResNet-MSE pretraining target); it keeps the grey levels right early on.
--   G: 9x9 conv, residual blocks (conv-BN-ReLU-conv-BN), long skip, two x2 upsamplings, 9x9 conv,
--      tanh (zoo_models3.SRG: nearest upsampling + conv for sub-pixel convolution, ReLU for PReLU)
--   D: conv3 pairs with BN and LeakyReLU(0.2), Linear 128, Linear 1; BCE, Adam 1e-4 (0.9, 0.999)
-- Writes samples_<step>.png (rows of 8 test triples: input upsampled (nearest) | output | target),
-- test_sr.png (128 test images), and a PSNR line in metrics.jsonl over --n_test test images: the
-- output's and bilinear upsampling's (images in [0, 1]).
--   luajit experiments/srgan.lua
--   luajit experiments/srgan.lua --pixel 0 --adv 1e-3       the paper's content + 1e-3 * adv
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo3 = require 'experiments.zoo_models3'
local i2i = require 'experiments.i2i'
local optim, gan, F = duel.optim, duel.gan, duel.F

local defaults, help = zoo.options({
  steps = 2000, batch = 32, nf = 32, n_blocks = 4, ndf = 16, lr = 1e-4, content = 1, adv = 1e-2,
  pixel = 1, sample_every = 250, ckpt_every = 250, n_test = 1000,
}, {
  nf = 'G width', n_blocks = 'residual blocks in G', lr = 'Adam learning rate (G and D)',
  content = 'weight of the classifier-feature (perceptual) loss', adv = 'weight of the GAN loss',
  pixel = 'weight of pixel MSE (0: none)', n_test = 'test images scored for PSNR',
})
defaults._quick.n_test = 16
defaults.nz, defaults.ngf = nil, nil  -- no latent, no DCGAN G here
local o, run = common.setup('srgan', defaults, help)

local function load(split, limit) return duel.data.fashion_mnist{split = split, limit = limit}.images end
local train = load(o.quick and 'test' or 'train', o.quick and 256 or nil)
local test = load('test', math.max(o.n_test, 128))
local function down(x) return F.avg_pool2d(x, 4) end
local fixed = test:narrow(1, 1, 16)

local clf = duel.metrics.classifier()
for _, p in ipairs(clf.body:parameters()) do p:requires_grad_(false) end
local function features(x) return clf.body(x) end  -- eval mode: BatchNorm's running statistics

local G, D = zoo3.SRG(o.nf, o.n_blocks), zoo3.SRD(o.ndf)
local oG = optim.Adam(G, {lr = o.lr, betas = {0.9, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {0.9, 0.999}})

local function super(x) -- G in eval mode (BatchNorm running statistics) for every picture
  G:eval()
  local y = duel.no_grad(function() return G(down(x)) end)
  G:train()
  return y
end
local function triples(x)
  local lr = down(x)
  return {F.upsample(lr, {scale = 4, mode = 'nearest'}), super(x), x}
end
local function sample(tr, tag)
  local t = triples(fixed)
  common.save_grid(('%s/samples_%s.png'):format(run.dir, tag), i2i.rows(t, fixed:size(1)), 12)
end

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, data = train,
                                sample = sample})
for step in tr:steps() do
  local hr = tr:batch()
  local sr = G(down(hr))
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', D(hr), D(sr:detach()))
  ld:backward()
  oD:step()
  oG:zero_grad()
  local content = F.mse(features(sr), duel.no_grad(function() return features(hr) end))
  local adv = gan.g_loss('nonsaturating', D(sr))
  local pix = F.mse(sr, hr)
  ;(content * o.content + adv * o.adv + pix * o.pixel):backward()
  oG:step()
  tr:log(step, {d_loss = ld:item(), content = content:item(), adv = adv:item(), pixel = pix:item()})
end
tr:finish()

-- PSNR = 10 log10(1 / MSE) per image in [0, 1], averaged over the test images
local x = test:narrow(1, 1, o.n_test)
local function psnr(y)
  local mse = (((y - x) * 0.5) ^ 2):view(o.n_test, -1):mean(2):totable()
  local s = 0
  for i = 1, o.n_test do s = s + 10 * math.log10(1 / math.max(mse[i], 1e-10)) end
  return s / o.n_test
end
local out = super(x)
local bil = F.upsample(down(x), {scale = 4, mode = 'bilinear'}):clamp(-1, 1)
i2i.test_sheets(run.dir, 'test_sr', triples(test:narrow(1, 1, 128)))
local rec = {step = tr.step, eval = 'psnr', psnr = psnr(out), psnr_bilinear = psnr(bil),
             n = o.n_test}
local f = assert(io.open(run.dir .. '/metrics.jsonl', 'a'))
f:write(common.json(rec), '\n'); f:close()
print(('srgan: PSNR %.2f dB on %d test images (bilinear upsampling: %.2f dB)'):format(
  rec.psnr, o.n_test, rec.psnr_bilinear))
