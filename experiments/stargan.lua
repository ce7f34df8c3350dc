-- StarGAN (Choi et al. 2018): one generator G(x, c) translates an image into any of n domains,
-- the target label c given as n constant one-hot planes concatenated to the input channels. D has
-- two heads on one body: D_src (real/fake per patch) and D_cls (domain logits). Nets: zoo3.StarG
-- (the paper's G, with no InstanceNorm after its first conv so that the label survives) and StarD.
--   D: L_adv + lambda_cls * CE(D_cls(x), c_org)                      [+ lambda_gp * GP]
--   G: L_adv(G(x, c_trg)) + lambda_cls * CE(D_cls(G(x, c_trg)), c_trg)
--      + lambda_rec * ||x - G(G(x, c_trg), c_org)||_1               (the cycle back)
-- Paper: WGAN-GP (lambda_gp 10), 5 D steps per G step, Adam 1e-4 (0.5, 0.999), lambda_cls 1,
-- lambda_rec 10, batch 16, ResNet G with InstanceNorm. Default here, to fit 10 CPU minutes: the
-- LSGAN loss with one D step per G step (no double backward); --adv wgan_gp --n_critic 5 is the
-- paper's. c_trg is a random domain per image. Domains: Fashion-MNIST classes, 32x32.
-- Writes samples_<step>.png (each row: a test input, then its translation into every domain),
-- test_translations.png at the end, and a translation accuracy line in metrics.jsonl: the share
-- of test translations the reference classifier (duel.metrics.classifier) puts in the target
-- class, with the share of real test images it classifies right for comparison.
--   luajit experiments/stargan.lua
--   luajit experiments/stargan.lua --domains 'Sandal,Sneaker,Ankle boot'
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo3 = require 'experiments.zoo_models3'
local optim, gan, F = duel.optim, duel.gan, duel.F

local defaults, help = zoo.options({
  domains = 'T-shirt/top,Trouser,Pullover,Dress', adv = 'lsgan', n_critic = 1, lambda_gp = 10,
  lambda_cls = 1, lambda_rec = 10, steps = 1500, batch = 16, ngf = 16, ndf = 32, n_blocks = 3,
  lr = 1e-4, beta1 = 0.5, sample_every = 250, ckpt_every = 250, n_test = 400,
}, {
  domains = 'comma-separated Fashion-MNIST classes (names or 1..10), one domain each',
  adv = "'lsgan' (default, cheap) or 'wgan_gp' (the paper's)", n_critic = 'D steps per G step',
  lambda_gp = 'gradient penalty weight (wgan_gp)', lambda_cls = 'domain classification weight',
  lambda_rec = 'reconstruction (cycle) weight', n_blocks = 'residual blocks in G',
  lr = 'Adam learning rate (G and D)', beta1 = 'Adam beta1',
  n_test = 'test images per domain translated for the accuracy',
})
defaults._quick.n_test = 8
local o, run = common.setup('stargan', defaults, help)
if o.adv ~= 'lsgan' and o.adv ~= 'wgan_gp' then
  error(("stargan: --adv must be 'lsgan' or 'wgan_gp', got '%s'"):format(o.adv), 0)
end
local classes = {}
for c in o.domains:gmatch('[^,]+') do classes[#classes + 1] = tonumber(c) or c end
local n = #classes
if n < 2 then error(('stargan: --domains needs at least 2 classes, got %d'):format(n), 0) end
local function load(split, limit)
  return duel.data.fashion_mnist{split = split, pad_to = 32, classes = classes, relabel = true,
                                 limit = limit}
end
local train, test = load(o.quick and 'test' or 'train', o.quick and 256 or nil), load('test')
local fixed = {}  -- two test images of every domain for the sample sheets
for d = 1, n do
  local k = 0
  for i = 1, test.labels:size(1) do
    if k < 2 and test.labels:get(i) == d then fixed[#fixed + 1] = test.images:narrow(1, i, 1); k = k + 1 end
  end
end
fixed = duel.cat(fixed, 1)

local G = zoo3.StarG(n, o.ngf, o.n_blocks)
local D = zoo3.StarD(n, o.ndf)
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, 0.999}})
local function translate(x, c) return G(zoo3.label_maps(x, c, n)) end
local function random_domains(m) -- uniform in 1..n, from duel's RNG (so --resume repeats them)
  local u = duel.rand(m):totable()
  for i = 1, m do u[i] = math.floor(u[i] * n) + 1 end
  return duel.tensor(u)
end
local function src(x) return (D(x)) end
local function adv_d(real, fake)
  return gan.d_loss(o.adv == 'lsgan' and 'lsgan' or 'wgan', src(real), src(fake))
end

-- rows: an input, then G(input, c) for c = 1..n
local function sheet(x, path)
  duel.no_grad(function()
    local cols, m = {x}, x:size(1)
    for c = 1, n do cols[#cols + 1] = translate(x, duel.full({m}, c)) end
    local tiles = {}
    for i = 1, m do for _, t in ipairs(cols) do tiles[#tiles + 1] = t:narrow(1, i, 1) end end
    common.save_grid(path, duel.cat(tiles, 1), n + 1)
  end)
end

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, data = train,
  sample = function(tr, tag) sheet(fixed, ('%s/samples_%s.png'):format(run.dir, tag)) end})
for step in tr:steps() do
  local ld, lcls, gp, b
  for _ = 1, o.n_critic do
    b = tr:batch()
    local c_trg = random_domains(o.batch)
    local fake = duel.no_grad(function() return translate(b.images, c_trg) end)
    oD:zero_grad()
    local out_src, out_cls = D(b.images)
    ld = o.adv == 'lsgan' and gan.d_loss('lsgan', out_src, src(fake)) or adv_d(b.images, fake)
    lcls = F.cross_entropy(out_cls, b.labels)
    local loss = ld + lcls * o.lambda_cls
    if o.adv == 'wgan_gp' then
      gp = gan.gradient_penalty(src, b.images, fake, {lambda = o.lambda_gp})
      loss = loss + gp
    end
    loss:backward()
    oD:step()
  end
  local c_trg = random_domains(o.batch)
  oG:zero_grad()
  local fake = translate(b.images, c_trg)
  local out_src, out_cls = D(fake)
  local lg = gan.g_loss(o.adv == 'lsgan' and 'lsgan' or 'wgan', out_src)
  local gcls = F.cross_entropy(out_cls, c_trg)
  local rec = F.l1(translate(fake, b.labels), b.images)
  ;(lg + gcls * o.lambda_cls + rec * o.lambda_rec):backward()
  oG:step()
  tr:log(step, {d_adv = ld:item(), d_cls = lcls:item(), g_adv = lg:item(), g_cls = gcls:item(),
                rec = rec:item(), gp = gp and gp:item() or 0})
end
tr:finish()

-- translation accuracy on n_test test images of every domain, into every other domain
local clf, x, lab = duel.metrics.classifier(), {}, {}
for d = 1, n do
  local k = 0
  for i = 1, test.labels:size(1) do
    if k < o.n_test and test.labels:get(i) == d then
      x[#x + 1], lab[#lab + 1], k = test.images:narrow(1, i, 1), d, k + 1
    end
  end
end
x = duel.cat(x, 1)
sheet(x:narrow(1, 1, math.min(32, x:size(1))), run.dir .. '/test_translations.png')
local hits, total = 0, 0
local fashion = require 'duel.data.fashion'
local cls_of = {}
for d, c in ipairs(classes) do cls_of[d] = fashion.class_index('stargan', c) end
for c = 1, n do
  local y = duel.no_grad(function() return translate(x, duel.full({x:size(1)}, c)) end)
  local pred = clf:predict(y)
  for i = 1, x:size(1) do if pred:get(i) == cls_of[c] then hits = hits + 1 end end
  total = total + x:size(1)
end
local pr, real_hits = clf:predict(x), 0
for i = 1, x:size(1) do if pr:get(i) == cls_of[lab[i]] then real_hits = real_hits + 1 end end
local rec = {step = tr.step, eval = 'translation', accuracy = hits / total,
             real_accuracy = real_hits / x:size(1), n = total}
local f = assert(io.open(run.dir .. '/metrics.jsonl', 'a'))
f:write(common.json(rec), '\n'); f:close()
print(('stargan: translation accuracy %.1f%% over %d translations (real test images: %.1f%%)'):format(
  100 * rec.accuracy, total, 100 * rec.real_accuracy))
