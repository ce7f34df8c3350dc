-- experiments/dcgan_averages.lua: which moving average of G's weights scores best, and when.
-- Trains dcgan.lua's Fashion-MNIST recipe (zoo.G32 / zoo.D32, Adam (0.5, 0.999), BCE with the
-- non-saturating G loss, real and fake in separate D batches) and keeps several averages of G
-- side by side; every --every steps it scores G and each average as evaluate.lua scores a run
-- (10,000 samples from noise seed 1, batches of 500 in training mode, against the 10,000 test
-- images). Nothing is saved: it prints one line per net and evaluation.
--   luajit experiments/dcgan_averages.lua --steps 60000
--   luajit experiments/dcgan_averages.lua --lr 1e-4 --lr_d 4e-4      TTUR (Heusel 2017)
-- --averages lists decay[/c] entries: decay d, and with /c the time constant is held to at most
-- step / c (decay min(d, 1 - c / (step + c))), so a long average does not carry the initial
-- weights for its first tens of thousands of steps.
package.path = './?.lua;./lua/?.lua;' .. package.path
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local ev = require 'experiments.evaluate'
local optim, gan = duel.optim, duel.gan

local defaults = {ngf = 32, ndf = 32, steps = 60000, every = 5000, seed = 1, lr = 2e-4,
                  lr_d = 0, batch = 64, threads = 1, samples = 10000,
                  averages = '0.999,0.9995/4,0.9998/4,0.9999/4'}
local help = {ngf = 'G width', ndf = 'D width', steps = 'G steps',
              every = 'score every this many steps', samples = 'images scored (a multiple of 500)',
              seed = 'RNG seed', lr = "G's Adam rate (and D's unless --lr_d)",
              lr_d = "D's Adam rate (0: --lr)", batch = 'images per batch',
              threads = 'threads', averages = 'decay[/c],... (see the header)'}
local o = common.parse('dcgan_averages', defaults, help, arg)
local function fail(fmt, ...) error(('dcgan_averages: ' .. fmt):format(...), 0) end
for _, k in ipairs{'ngf', 'ndf', 'steps', 'every', 'batch', 'threads', 'samples'} do
  if o[k] < 1 or o[k] % 1 ~= 0 then fail('--%s must be a positive integer, got %g', k, o[k]) end
end
if o.samples % 500 ~= 0 then fail('--samples must be a multiple of 500, got %d', o.samples) end
if not (o.lr > 0) then fail('--lr must be positive, got %g', o.lr) end
if not (o.lr_d >= 0) then fail('--lr_d must be 0 or positive, got %g', o.lr_d) end
local avgs = {}
for item in o.averages:gmatch('[^,]+') do
  local d, c = item:match('^([%d.eE%-]+)/?(%d*)$')
  d, c = tonumber(d), tonumber(c ~= '' and c or '0')
  if not (d and c and d > 0 and d < 1) then
    fail('--averages entries are decay[/c] with 0 < decay < 1, got %s', item)
  end
  avgs[#avgs + 1] = {name = item, decay = d, cap = c}
end

duel.set_num_threads(o.threads)
duel.manual_seed(o.seed)
local G, D = zoo.G32(100, o.ngf), zoo.D32(o.ndf)
local oG = optim.Adam(G, {lr = o.lr, betas = {0.5, 0.999}})
local oD = optim.Adam(D, {lr = o.lr_d > 0 and o.lr_d or o.lr, betas = {0.5, 0.999}})
for _, v in ipairs(avgs) do v.net = zoo.G32(100, o.ngf); v.net:load_state_dict(G:state_dict()) end
local images = duel.data.fashion_mnist{split = 'train', pad_to = 32}.images
local loader = duel.data.DataLoader(images, {batch = o.batch, seed = o.seed, workers = 1})

-- evaluate.lua's protocol (noise seed 1, batches of 500), on --samples images
ev.N_IMAGE = o.samples
local function score(net)
  return ev.image_scores(ev.generate(function(n) return net(duel.randn(n, 100)) end))
end

print('step net frechet precision recall')
local epoch, it, t0 = 1, nil, os.time()
for step = 1, o.steps do
  local real = it and it()
  if not real then loader:set_epoch(epoch); epoch = epoch + 1; it = loader:iter(); real = it() end
  local fake = G(duel.randn(o.batch, 100))
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', D(real), D(fake:detach()))
  ld:backward(); oD:step()
  oG:zero_grad()
  local lg = gan.g_loss('nonsaturating', D(fake))
  lg:backward(); oG:step()
  for _, v in ipairs(avgs) do
    local d = v.decay
    if v.cap > 0 then d = math.min(d, 1 - v.cap / (step + v.cap)) end
    gan.ema_(v.net, G, d)
  end
  if step % o.every == 0 then
    local r = score(G)
    print(('%d G %.4f %.3f %.3f (%d s)'):format(step, r.frechet, r.precision, r.recall,
                                              os.time() - t0))
    for _, v in ipairs(avgs) do
      r = score(v.net)
      print(('%d %s %.4f %.3f %.3f'):format(step, v.name, r.frechet, r.precision, r.recall))
    end
    io.stdout:flush()
  end
end
