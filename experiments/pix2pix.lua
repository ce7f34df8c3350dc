-- pix2pix (Isola et al. 2017): paired image-to-image translation. A U-Net generator (skips,
-- dropout 0.5 as its noise) and a 70x70 PatchGAN on cat(input, output), trained with BCE on logits
-- (gan 'nonsaturating') + 100 * L1, Adam 2e-4 (0.5, 0.999), N(0, 0.02) init; the D loss halved
-- and D stepped before G, as the originals (GAN_REFERENCE.md 1.3, 1.4); lr decayed linearly over
-- the second half as the PyTorch port. Samples and test outputs are taken in training mode
-- (dropout on, batch statistics), as both originals' test scripts do (--test_dropout false:
-- eval mode).
--   luajit experiments/pix2pix.lua             small preset: Fashion-MNIST edges -> garment
--   luajit experiments/pix2pix.lua --preset paper --data datasets/facades
-- small (default): 32x32 gray pairs from duel.data.make_fashion_edges (written once under
--   <out>/data), U-Net of 5 levels with ngf 16, ndf 16, BatchNorm, batch 16, 8000 steps, one
--   thread. 2-core timing: README.md.
--   BatchNorm over 16 pairs normalises with batch statistics as the original's BN did; with
--   batch 1 BN is instance normalisation, which --norm instance gives at any batch size.
-- paper: 286-pixel loads cropped to 256 RGB, unet_256 (8 levels, ngf 64), ndf 64, batch 1,
--   200 epochs.
-- Run folder: options.txt, metrics.jsonl, loss.png, samples_<step>.png and samples_final.png
-- (fixed test pairs: input | output | target), at the end test_<k>.png (every test pair),
-- test.safetensors (input, output, target), test.json (L1 and PSNR against the targets and, on
-- the Fashion task, classifier accuracy on outputs and targets; also a final metrics.jsonl line), and
-- checkpoint.safetensors (G, D, both Adam states, schedulers, RNG state, step).
local duel = require 'duel'
local common = require 'experiments.common'
local models = require 'experiments.models'
local i2i = require 'experiments.i2i'
local F, gan, D = duel.F, duel.gan, duel.data

local o, run = i2i.setup('pix2pix', {preset = 'small', data = '', out = 'runs', steps = 8000,
  batch = 16, load_size = 32, crop_size = 32, channels = 1, ngf = 16, ndf = 16, n_down = 5,
  n_layers_d = 3, norm = 'batch', lr = 2e-4, beta1 = 0.5, lambda_l1 = 100, direction = 'AtoB',
  test_dropout = true, threads = 1, sample_every = 250, ckpt_every = 500, log_every = 10,
  stop_at = 0, seed = 1},
  {small = {}, paper = {load_size = 286, crop_size = 256, channels = 3, ngf = 64, ndf = 64,
  n_down = 8, batch = 1, steps = 0, threads = 2, sample_every = 1000, ckpt_every = 5000},
  quick = {batch = 2, ngf = 4, ndf = 4, sample_every = 2, ckpt_every = 3, log_every = 1}},
  {preset = 'small | paper (256 px RGB, unet_256, ndf 64, batch 1, 200 epochs)',
   data = 'folder of A|B images in train/ and test/ (default: Fashion-MNIST edges)',
   steps = 'iterations (0: 200 epochs); lr decays over the second half',
   stop_at = 'stop after this step (an interruption; --resume continues)',
   norm = 'batch | instance', direction = 'AtoB | BtoA', out = 'where run folders go',
   threads = 'CPU threads (one is faster than two for the small preset nets)',
   test_dropout = 'samples in training mode (false: eval mode, running BN statistics)'})

local root = i2i.task(o, 'fashion-edges', function(dir)
  D.make_fashion_edges(dir, {overwrite = true})
end)
local c = o.channels
local function dataset(phase)
  return D.Aligned(root, {phase = phase, load_size = phase == 'train' and o.load_size or nil,
    crop_size = o.crop_size, channels = c, direction = o.direction})
end
local loader = D.DataLoader(dataset('train'), {batch = o.batch, seed = o.seed})
if o.steps == 0 then o.steps = 200 * #loader end
local function test_set()
  return D.DataLoader(dataset('test'), {batch = 64, shuffle = false, drop_last = false})
end
local fixed = test_set():iter()()
local k = math.min(16, fixed.A:size(1))
local fixA, fixB = fixed.A:narrow(1, 1, k), fixed.B:narrow(1, 1, k)

local G = models.unet{in_c = c, out_c = c, ngf = o.ngf, n_down = o.n_down, norm = o.norm}
local Dnet = models.patchgan{in_c = 2 * c, ndf = o.ndf, n_layers = o.n_layers_d, norm = o.norm}
local adam = {lr = o.lr, betas = {o.beta1, 0.999}}
local opt = {G = duel.optim.Adam(G, adam), D = duel.optim.Adam(Dnet, adam)}
local sched = {}
for name, op in pairs(opt) do
  sched[name] = duel.optim.LinearDecay(op, {start = math.floor(o.steps / 2), stop = o.steps})
end
print(('G: %d parameters, D: %d parameters, %d batches per epoch'):format(G:num_parameters(),
  Dnet:num_parameters(), #loader))
local start = 0
if o.resume then
  local ck = common.load_checkpoint(run)
  G:load_state_dict(ck.G); Dnet:load_state_dict(ck.D)
  for name in pairs(opt) do
    opt[name]:load_state_dict(ck['opt_' .. name]); sched[name]:load_state_dict(ck['sched_' .. name])
  end
  start = ck.step
  print(('resumed at step %d'):format(start))
end

local function train_step(b)
  local A, B = b.A, b.B
  local fake = G(A)
  local l = {D = gan.d_loss('nonsaturating', Dnet(duel.cat({A, B}, 2)),
                            Dnet(duel.cat({A, fake:detach()}, 2))) * 0.5}
  opt.D:zero_grad(); l.D:backward(); opt.D:step()
  i2i.requires_grad(Dnet, false)
  l.G_gan = gan.g_loss('nonsaturating', Dnet(duel.cat({A, fake}, 2)))
  l.G_l1 = F.l1(fake, B) * o.lambda_l1
  opt.G:zero_grad(); (l.G_gan + l.G_l1):backward(); opt.G:step()
  i2i.requires_grad(Dnet, true)
  sched.G:step(); sched.D:step()
  return {D = l.D:item(), G_gan = l.G_gan:item(), G_l1 = l.G_l1:item()}
end

local t0 = common.now()
local stopped = i2i.train(run, o, start, loader, {step = train_step,
  sample = function(path)
    if not o.test_dropout then G:eval() end
    duel.no_grad(function() common.save_grid(path, i2i.rows({fixA, G(fixA), fixB}, k), 12) end)
    G:train()
  end,
  state = function()
    return {G = G, D = Dnet, opt_G = opt.G, opt_D = opt.D, sched_G = sched.G:state_dict(),
      sched_D = sched.D:state_dict()}
  end})
if stopped then return end

-- every test pair translated
local x, y, t = {}, {}, {}
if not o.test_dropout then G:eval() end
duel.no_grad(function()
  for b in test_set():iter() do x[#x + 1], y[#y + 1], t[#t + 1] = b.A, G(b.A), b.B end
end)
x, y, t = duel.cat(x, 1), duel.cat(y, 1), duel.cat(t, 1)
i2i.test_sheets(run.dir, 'test', {x, y, t})
-- L1, PSNR per image on the [0,1] scale, averaged, and on the Fashion task the classifier's
-- accuracy on outputs and on targets (experiments/i2i_eval.lua)
local result = require('experiments.i2i_eval').pix2pix_metrics(x, y, t, o)
result.steps = o.steps
duel.save(run.dir .. '/test.safetensors', {input = x, output = y, target = t})
i2i.write_results(run, result, o.steps)
print(('done: steps %d..%d in %.1f s; test L1 %.4f, PSNR %.2f dB; outputs in %s'):format(
  start + 1, o.steps, common.now() - t0, result.l1, result.psnr, run.dir))
if result.acc_output then
  print(('classifier accuracy on outputs %.3f, on targets %.3f (ratio %.3f)'):format(
    result.acc_output, result.acc_target, result.acc_ratio))
end
