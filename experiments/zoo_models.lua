-- experiments/zoo_models.lua: what the small unconditional GAN scripts share (not public API).
--   zoo.mlp(sizes)                  Linear/ReLU stacks (the 2-D toy nets: zoo.toy_mlp)
--   zoo.G32, zoo.D32                DCGAN-style nets for 1x32x32 (Fashion-MNIST padded to 32)
--   zoo.G64, zoo.D64                the original DCGAN nets (3x64x64; GAN_REFERENCE.md 1.1)
--   zoo.dcgan_init(net)             N(0, 0.02) weights, N(1, 0.02) BatchNorm scales, zero biases
--   zoo.options(own, own_help)      the options every image script shares, plus its own
--   zoo.decayed_lr(o, step)         --lr, falling linearly to 0 from --decay on (toy2d, dcgan)
--   zoo.fashion(o)                  the Fashion-MNIST training images at 32x32 in [-1,1]
--   zoo.Trainer(run, o, {...})      the loop around a script's training step: real batches that
--                                   resume exactly, fixed-noise sample grids, checkpoints,
--                                   --stop_at, metrics, the interpolation strip and loss curve
local duel = require 'duel'
local common = require 'experiments.common'
local nn, init, gan = duel.nn, duel.init, duel.gan

local zoo = {}

function zoo.mlp(sizes)
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 then layers[#layers + 1] = nn.ReLU() end
  end
  return nn.Sequential(layers)
end

-- toy2d.lua's nets: `depth` hidden layers of `width` units between n_in and n_out
function zoo.toy_mlp(n_in, n_out, width, depth)
  local sizes = {n_in}
  for i = 1, depth do sizes[i + 1] = width end
  sizes[#sizes + 1] = n_out
  return zoo.mlp(sizes)
end

function zoo.dcgan_init(net)
  net:apply(function(m)
    if m.__name == 'Conv2d' or m.__name == 'ConvTranspose2d' or m.__name == 'Linear' then
      init.normal_(m.weight, 0, 0.02)
      if m.bias then init.zeros_(m.bias) end
    elseif m.__name == 'BatchNorm2d' then
      init.normal_(m.weight, 1, 0.02)
      init.zeros_(m.bias)
    end
  end)
  return net
end

-- G: z {N,nz} -> 4x4 -> 8x8 -> 16x16 -> C x 32 x 32 (or 64x64 with one more layer), tanh;
-- BatchNorm and ReLU after every transposed convolution but the last, no biases (DCGAN's noBias)
local function generator(nz, ngf, levels, out_ch)
  local c = ngf * 2 ^ (levels - 2)
  local L = {nn.View(nz, 1, 1), nn.ConvTranspose2d(nz, c, 4, {bias = false})}
  for i = 1, levels - 1 do
    L[#L + 1] = nn.BatchNorm2d(c)
    L[#L + 1] = nn.ReLU()
    local o = i == levels - 1 and out_ch or c / 2
    L[#L + 1] = nn.ConvTranspose2d(c, o, 4, {stride = 2, padding = 1, bias = false})
    c = o
  end
  L[#L + 1] = nn.Tanh()
  return zoo.dcgan_init(nn.Sequential(L))
end
function zoo.G32(nz, ngf) return generator(nz, ngf, 4, 1) end
function zoo.G64(nz, ngf) return generator(nz, ngf, 5, 3) end

-- D: C x 32 x 32 -> 16 -> 8 -> 4 -> {N,1}; norm 'bn' (not on the first layer, as DCGAN), 'none'
-- (WGAN-GP's critic) or 'sn' (spectral norm on every layer, SN-GAN); stddev appends
-- nn.MinibatchStdDev's channel before the last layer. D.body gives the features that
-- feature matching compares.
local Disc = nn.Module:extend('Disc')
function Disc:__init(in_ch, ndf, levels, opt)
  local norm, L, c = opt.norm or 'bn', {}, in_ch
  local function conv(...)
    local m = nn.Conv2d(...)
    init.normal_(m.weight, 0, 0.02)
    if m.bias then init.zeros_(m.bias) end
    return norm == 'sn' and nn.spectral_norm(m) or m
  end
  for i = 1, levels do
    local o = ndf * 2 ^ (i - 1)
    L[#L + 1] = conv(c, o, 4, {stride = 2, padding = 1, bias = norm ~= 'bn'})
    if norm == 'bn' and i > 1 then L[#L + 1] = zoo.dcgan_init(nn.BatchNorm2d(o)) end
    L[#L + 1] = nn.LeakyReLU(0.2)
    c = o
  end
  if opt.stddev then L[#L + 1] = nn.MinibatchStdDev(); c = c + 1 end
  self.body = nn.Sequential(L)
  self.head = nn.Sequential{conv(c, 1, 4, {bias = norm ~= 'bn'}), nn.Flatten()}
end
function Disc:forward(x) return self.head(self.body(x)) end
function zoo.D32(ndf, opt) return Disc(1, ndf, 3, opt or {}) end
function zoo.D64(ndf, opt) return Disc(3, ndf, 4, opt or {}) end

-- the learning rate of step `step`: o.lr until the fraction o.decay of o.steps, then falling
-- linearly to 0 at the last step (o.decay = 1: never). From the step alone, so a resumed run
-- continues the same schedule.
function zoo.decayed_lr(o, step)
  local from = math.floor(o.decay * o.steps)
  return o.lr * math.min(1, (o.steps - step + 1) / math.max(1, o.steps - from))
end

-- the options every image script has, merged with the script's own (which win)
function zoo.options(own, own_help)
  local d = {steps = 1000, batch = 64, nz = 100, ngf = 32, ndf = 32, seed = 1, threads = 2,
             log_every = 10, sample_every = 250, ckpt_every = 500, stop_at = 0, out = 'runs',
             _quick = {steps = 4, batch = 16, log_every = 1, sample_every = 2, ckpt_every = 2}}
  local h = {steps = 'G steps', batch = 'images per batch', nz = 'latent size, N(0, I)',
             ngf = 'G width', ndf = 'D width', seed = 'RNG seed',
             threads = 'CPU threads (split among ranks on one host under --dist)',
             log_every = 'steps per metrics line', sample_every = 'steps per sample grid',
             ckpt_every = 'steps per checkpoint', out = 'folder for run folders',
             stop_at = 'stop after this step (0: never), to test --resume'}
  for k, v in pairs(own) do d[k] = v end
  for k, v in pairs(own_help) do h[k] = v end
  return d, h
end

function zoo.fashion(o)
  -- --quick: 256 test images (the test file decompresses in a fraction of the training set's time)
  local ds = duel.data.fashion_mnist{split = o.quick and 'test' or 'train', pad_to = 32,
                                    limit = o.quick and 256 or nil}
  return ds.images
end

-- ---- the loop ----------------------------------------------------------------------------------

local Trainer = {}
Trainer.__index = Trainer

-- spec: state = {name = module or optimizer, ...} (checkpointed), G = the generator to sample,
-- data = an image tensor or a dataset for DataLoader, nz = latent size, sample = function(tr, tag)
-- that replaces the default grid (the 2-D scripts draw scatter plots instead)
function zoo.Trainer(run, o, spec)
  local tr = setmetatable({run = run, o = o, spec = spec, step = 0, start = 0, batches = 0},
                          Trainer)
  if spec.nz then -- fixed noise: drawn before a resume sets the RNG, so the same in both runs
    tr.fixed = duel.randn(64, spec.nz)
    tr.ends = duel.randn(16, spec.nz)
  end
  if spec.data then
    tr.loader = duel.data.DataLoader(spec.data, {batch = o.batch, seed = o.seed, workers = 1})
  end
  if o.dist then -- every rank starts from rank 0's modules, copies no optimizer holds included
    local names = {}
    for k, v in pairs(spec.state) do if duel.nn.Module.is_module(v) then names[#names + 1] = k end end
    table.sort(names)
    for _, k in ipairs(names) do require('duel.dist').broadcast_module_(spec.state[k]) end
  end
  if o.resume then
    local ck = common.load_checkpoint(run)
    for name, obj in pairs(spec.state) do obj:load_state_dict(ck[name]) end
    tr.step, tr.batches = ck.step, ck.batches
    tr.start = ck.step
    print(('resumed at step %d'):format(tr.step))
  end
  tr.t0 = common.now()
  return tr
end

-- the next real batch; after a resume it is the batch the uninterrupted run would have used
function Trainer:batch()
  local nb = #self.loader
  if not self.next_batch or self.batches % nb == 0 then
    self.loader:set_epoch(math.floor(self.batches / nb) + 1)
    self.next_batch = self.loader:iter()
    for _ = 1, self.batches % nb do self.next_batch() end
  end
  self.batches = self.batches + 1
  local b = self.next_batch()
  return type(b) == 'table' and b.image or b
end

function Trainer:noise(n) return duel.randn(n or self.o.batch, self.spec.nz) end

function Trainer:save(tag)
  local dir = self.run.dir
  if self.spec.sample then return self.spec.sample(self, tag) end
  local G = self.spec.G
  duel.no_grad(function()
    common.save_grid(('%s/samples_%s.png'):format(dir, tag), G(self.fixed), 8)
    if tag == 'final' then -- slerp walks between fixed pairs of latents, one row each
      local rows = {}
      for i = 1, 8 do
        rows[i] = gan.interpolate(self.ends[2 * i - 1], self.ends[2 * i], 10, {mode = 'slerp'})
      end
      common.save_grid(dir .. '/interpolation.png', G(duel.cat(rows, 1)), 10)
    end
  end)
end

function Trainer:checkpoint()
  local state = {batches = self.batches}
  for k, v in pairs(self.spec.state) do state[k] = v end
  common.save_checkpoint(self.run, state, self.step)
end

-- for step in tr:steps() do ... end; samples, checkpoints and --stop_at happen between steps
function Trainer:steps()
  local o = self.o
  return function()
    local s = self.step
    if s > self.start then -- not again for the step a resume starts from
      if s % o.sample_every == 0 and s < o.steps then self:save(('%06d'):format(s)) end
      if s % o.ckpt_every == 0 or s == o.steps or s == o.stop_at then self:checkpoint() end
      if s == o.stop_at then print(('stopped after step %d (--stop_at)'):format(s)); return nil end
    end
    if s >= o.steps then return nil end
    self.step = s + 1
    return self.step
  end
end

-- values: losses as numbers; every log_every steps a metrics.jsonl line and the progress line
function Trainer:log(step, values)
  common.check_finite(step, values)
  local o = self.o
  if step % o.log_every == 0 or step == o.steps then
    local every = o.log_every * math.max(1, math.floor(o.steps / 20 / o.log_every))
    common.log(self.run, step, o.steps, values, every)
  end
end

-- final grid, interpolation strip, loss curve; returns the wall time of this process's steps
function Trainer:finish()
  self:save('final')
  common.loss_curve(self.run, self.run.dir .. '/loss.png')
  local wall = common.now() - self.t0
  print(('done: step %d in %.1f s; outputs in %s'):format(self.step, wall, self.run.dir))
  return wall
end

return zoo
