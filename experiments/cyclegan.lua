-- CycleGAN (Zhu et al. 2017): unpaired image-to-image translation. Two ResNet generators, two
-- 70x70 PatchGANs, the LSGAN loss, cycle loss (lambda 10) and identity loss (0.5), a pool of 50
-- past fakes, Adam 2e-4 (0.5, 0.999), lr decayed linearly to 0 over the second half, N(0, 0.02)
-- init. As the PyTorch port (GAN_REFERENCE.md 1.3): G_A maps A to B and D_A tells its outputs from
-- real B (G_B, D_B the other way); the D losses are halved; G_A and G_B step on the summed G loss.
--   luajit experiments/cyclegan.lua            small preset: Sneaker <-> Ankle boot, 32x32 gray
--   luajit experiments/cyclegan.lua --preset paper --data datasets/horse2zebra
-- small (default): 32x32 gray images from duel.data.make_fashion_domains (written once under
--   <out>/data), ngf 16, ndf 16, 3 residual blocks, batch 1, 8000 steps, one thread, no flips
--   (every Fashion-MNIST shoe points the same way). 2-core timing: README.md.
-- paper: 286-pixel loads cropped to 256 RGB with flips, ngf 64, ndf 64, 9 blocks, batch 1,
--   200 epochs.
-- Run folder: options.txt, metrics.jsonl, loss.png, samples_<step>.png and samples_final.png
-- (fixed test images, a row each: real A | fake B | rec A | real B | fake A | rec B), at the end
-- test_A2B_<k>.png and test_B2A_<k>.png (every test image: input | output | reconstruction),
-- test.safetensors (those tensors), test.json (cycle L1 on the test sets and, on the Fashion
-- task, translation accuracy by duel.metrics.classifier; also a final metrics.jsonl line), and
-- checkpoint.safetensors (nets, four Adam states, schedulers, both image pools, RNG state, step).
local duel = require 'duel'
local common = require 'experiments.common'
local models = require 'experiments.models'
local i2i = require 'experiments.i2i'
local F, gan, D = duel.F, duel.gan, duel.data

local o, run = i2i.setup('cyclegan', {preset = 'small', data = '', out = 'runs', steps = 8000,
  batch = 1, load_size = 32, crop_size = 32, flip = false, channels = 1, ngf = 16, ndf = 16,
  n_blocks = 3, n_layers_d = 3, lr = 2e-4, beta1 = 0.5, lambda_cycle = 10, lambda_identity = 0.5,
  pool = 50, threads = 1, sample_every = 250, ckpt_every = 500, log_every = 10, stop_at = 0,
  seed = 1, domain_a = 'Sneaker', domain_b = 'Ankle boot'},
  {small = {}, paper = {load_size = 286, crop_size = 256, flip = true, channels = 3, ngf = 64,
    ndf = 64, n_blocks = 9, steps = 0, threads = 2, sample_every = 1000, ckpt_every = 5000},
   quick = {ngf = 4, ndf = 4, n_blocks = 1, sample_every = 2, ckpt_every = 3, log_every = 1}},
  {preset = 'small | paper (256 px RGB, ngf/ndf 64, 9 blocks, 200 epochs)',
   data = 'trainA/ trainB/ testA/ testB/ folder (default: the Fashion-MNIST domains)',
   steps = 'iterations (0: 200 epochs); lr decays over the second half',
   stop_at = 'stop after this step (an interruption; --resume continues)',
   domain_a = 'Fashion-MNIST class of domain A (without --data)', domain_b = 'and of domain B',
   flip = 'random left-right flips of training images', pool = 'fakes kept for D (0: none)',
   threads = 'CPU threads (one is faster than two for the small preset nets)',
   out = 'where run folders go'})

local root = i2i.task(o, ('fashion-%s2%s'):format(o.domain_a, o.domain_b), function(dir)
  D.make_fashion_domains(dir, o.domain_a, o.domain_b, {overwrite = true})
end)
local c = o.channels
local loader = D.DataLoader(D.Unaligned(root, {load_size = o.load_size, crop_size = o.crop_size,
  flip = o.flip, channels = c}), {batch = o.batch, seed = o.seed})
if o.steps == 0 then o.steps = 200 * #loader end
local function test_set(d)
  return D.DataLoader(D.ImageFolder(root .. '/test' .. d, {size = o.crop_size, channels = c,
    labels = false}), {batch = 64, shuffle = false, drop_last = false})
end
local fixA, fixB = test_set('A'):iter()().image, test_set('B'):iter()().image
local k = math.min(8, fixA:size(1), fixB:size(1))
fixA, fixB = fixA:narrow(1, 1, k), fixB:narrow(1, 1, k)

local net, opt, sched = {}, {}, {}
for _, n in ipairs{'A', 'B'} do
  net['G_' .. n] = models.resnet_generator{in_c = c, out_c = c, ngf = o.ngf, n_blocks = o.n_blocks}
  net['D_' .. n] = models.patchgan{in_c = c, ndf = o.ndf, n_layers = o.n_layers_d}
end
for name, m in pairs(net) do
  opt[name] = duel.optim.Adam(m, {lr = o.lr, betas = {o.beta1, 0.999}})
  sched[name] = duel.optim.LinearDecay(opt[name], {start = math.floor(o.steps / 2), stop = o.steps})
end
local pool = {A = gan.ImagePool(o.pool), B = gan.ImagePool(o.pool)}
print(('G_A: %d parameters, D_A: %d parameters, %d batches per epoch'):format(
  net.G_A:num_parameters(), net.D_A:num_parameters(), #loader))
local start = 0
if o.resume then
  local ck = common.load_checkpoint(run)
  for name in pairs(net) do
    net[name]:load_state_dict(ck[name]); opt[name]:load_state_dict(ck['opt_' .. name])
    sched[name]:load_state_dict(ck['sched_' .. name])
  end
  pool.A:load_state_dict(ck.pool_A); pool.B:load_state_dict(ck.pool_B)
  start = ck.step
  print(('resumed at step %d'):format(start))
end

local G_A, G_B, D_A, D_B = net.G_A, net.G_B, net.D_A, net.D_B
local G_TERMS = {'G_A', 'G_B', 'cyc_A', 'cyc_B', 'idt_A', 'idt_B'}
local function train_step(b)
  local A, B = b.A, b.B
  i2i.requires_grad(D_A, false); i2i.requires_grad(D_B, false)
  local fake_B, fake_A = G_A(A), G_B(B)
  local l = {G_A = gan.g_loss('lsgan', D_A(fake_B)), G_B = gan.g_loss('lsgan', D_B(fake_A)),
    cyc_A = F.l1(G_B(fake_B), A) * o.lambda_cycle, cyc_B = F.l1(G_A(fake_A), B) * o.lambda_cycle,
    idt_A = F.l1(G_A(B), B) * (o.lambda_cycle * o.lambda_identity),
    idt_B = F.l1(G_B(A), A) * (o.lambda_cycle * o.lambda_identity)}
  local g = l.G_A
  for i = 2, #G_TERMS do g = g + l[G_TERMS[i]] end
  opt.G_A:zero_grad(); opt.G_B:zero_grad(); g:backward(); opt.G_A:step(); opt.G_B:step()
  i2i.requires_grad(D_A, true); i2i.requires_grad(D_B, true)
  l.D_A = gan.d_loss('lsgan', D_A(B), D_A(pool.B:query(fake_B))) * 0.5
  l.D_B = gan.d_loss('lsgan', D_B(A), D_B(pool.A:query(fake_A))) * 0.5
  opt.D_A:zero_grad(); opt.D_B:zero_grad(); (l.D_A + l.D_B):backward()
  opt.D_A:step(); opt.D_B:step()
  for _, s in pairs(sched) do s:step() end
  local v = {}
  for name, t in pairs(l) do v[name] = t:item() end
  return v
end

local t0 = common.now()
local stopped = i2i.train(run, o, start, loader, {step = train_step,
  sample = function(path)
    duel.no_grad(function()
      local fB, fA = G_A(fixA), G_B(fixB)
      common.save_grid(path, i2i.rows({fixA, fB, G_B(fB), fixB, fA, G_A(fA)}, k), 6)
    end)
  end,
  state = function()
    local s = {pool_A = pool.A:state_dict(), pool_B = pool.B:state_dict()}
    for name in pairs(net) do
      s[name], s['opt_' .. name] = net[name], opt[name]
      s['sched_' .. name] = sched[name]:state_dict()
    end
    return s
  end})
if stopped then return end

-- every test image translated and reconstructed
local out, result = {}, {steps = o.steps}
duel.no_grad(function()
  for _, d in ipairs{{'A', 'B', G_A, G_B}, {'B', 'A', G_B, G_A}} do
    local x, y, r = {}, {}, {}
    for b in test_set(d[1]):iter() do
      x[#x + 1], y[#y + 1] = b.image, d[3](b.image)
      r[#r + 1] = d[4](y[#y])
    end
    x, y, r = duel.cat(x, 1), duel.cat(y, 1), duel.cat(r, 1)
    out[d[1]], out['fake_' .. d[2]], out['rec_' .. d[1]] = x, y, r
    result['cycle_l1_' .. d[1]], result['n_' .. d[1]] = F.l1(r, x):item(), x:size(1)
    i2i.test_sheets(run.dir, ('test_%s2%s'):format(d[1], d[2]), {x, y, r})
  end
end)
duel.save(run.dir .. '/test.safetensors', out)
-- the task metrics (translation accuracy by the reference classifier): test.json and a final
-- {"eval":"final"} line of metrics.jsonl
for key, v in pairs(require('experiments.i2i_eval').cyclegan_metrics(out, o)) do result[key] = v end
i2i.write_results(run, result, o.steps)
print(('done: steps %d..%d in %.1f s; test cycle L1 A %.4f, B %.4f; outputs in %s'):format(
  start + 1, o.steps, common.now() - t0, result.cycle_l1_A, result.cycle_l1_B, run.dir))
if result.acc_A2B then
  print(('translation accuracy A->B %.3f, B->A %.3f (classifier on the real test images: %.3f, %.3f)')
    :format(result.acc_A2B, result.acc_B2A, result.acc_real_A, result.acc_real_B))
end
