-- experiments/evaluate.lua: score a finished run from its folder (options.txt and the final
-- checkpoint), with no training. What `make results` uses, and a tool of its own:
--   luajit experiments/evaluate.lua runs/cyclegan-20260101-120000    prints JSON and appends an
--                                        {"eval":"final",...} line to the run's metrics.jsonl
--   luajit experiments/evaluate.lua --floor     the real-vs-real Frechet floor (train vs test)
-- As a module: ev.run(dir) -> metrics table; ev.floor() -> the floor table.
--   toy2d    toy_modes of 2,500 samples from the generator's moving average (noise: seed 1)
--   dcgan, wgan, wgan_gp, lsgan, sngan, fgan, r3gan (the 32x32 Fashion-MNIST G)
--            Frechet / precision / recall / classifier score / class coverage of 10,000 samples
--            against the 10,000 test images, on the reference classifier's features
--   cyclegan translation accuracy both ways and cycle L1 on the test domains
--   pix2pix  L1, PSNR, classifier accuracy on outputs and on real targets
local duel = require 'duel'
local common = require 'experiments.common'
local M, D = duel.metrics, duel.data

local ev = {}
ev.N_IMAGE = 10000

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- options.txt -> table (numbers and booleans converted)
function ev.options(dir)
  local f = io.open(dir .. '/options.txt', 'r')
  if not f then fail('evaluate: no options.txt in %s, got nothing', dir) end
  local o = {}
  for line in f:lines() do
    local k, v = line:match('^([%w_]+) = (.*)$')
    if k then
      if v == 'true' then o[k] = true elseif v == 'false' then o[k] = false
      else o[k] = tonumber(v) or v end
    end
  end
  f:close()
  return o
end

function ev.script_of(dir)
  local base = dir:gsub('/+$', ''):match('([^/]+)$')
  return base:match('^([%a%d_]+)%-%d%d%d%d%d%d%d%d%-%d') or fail(
    'evaluate: a run folder is named <script>-<date>-<time>, got %s', base)
end

local function checkpoint(dir)
  local path = dir .. '/checkpoint.safetensors'
  local f = io.open(path, 'rb')
  if not f then fail('evaluate: no checkpoint in %s, got nothing', dir) end
  f:close()
  return duel.load(path)
end

-- the same evaluation noise for every run, without disturbing the caller's RNG stream
local function with_seed(seed, fn)
  local ckm = require 'duel.checkpoint'
  local saved = ckm.get_rng_state()
  duel.manual_seed(seed)
  local ok, r = pcall(fn)
  ckm.set_rng_state(saved)
  if not ok then error(r, 0) end
  return r
end

function ev.toy(dir, o, ck)
  local zoo = require 'experiments.zoo_models'
  local G = zoo.mlp{o.z, 128, 128, 2}
  G:load_state_dict((o.ema or 0) > 0 and ck.G_ema or ck.G)
  local n = 2500
  local x = with_seed(1, function()
    return duel.no_grad(function() return G(duel.randn(n, o.z)) end)
  end)
  local r = M.toy_modes(x, o.data)
  return {modes = r.modes, n_modes = r.n_modes, high_quality = r.high_quality, n = n,
          data = o.data, steps = ck.step}
end

-- test-split features, cached for the process (the driver scores many runs)
local test_cache
local function test_feats()
  if not test_cache then
    local clf = M.classifier()
    local t = D.fashion_mnist{split = 'test', pad_to = 32}
    test_cache = {feats = clf:features(t.images), n = t.images:size(1)}
  end
  return test_cache
end

-- Frechet, precision/recall (k=3), classifier score, coverage of images {N,1,32,32} vs test
function ev.image_scores(images)
  local clf = M.classifier()
  local tf = test_feats()
  local f = clf:features(images)
  local pr = M.precision_recall(tf.feats, f, {k = 3})
  local probs = clf:probs(images)
  local cov = M.class_coverage(probs:argmax(2):view(-1), 10)
  return {frechet = M.frechet(f, tf.feats), precision = pr.precision, recall = pr.recall,
          classifier_score = M.classifier_score(probs), classes_covered = cov.covered,
          class_tv = cov.tv_uniform, n = images:size(1), n_test = tf.n}
end

function ev.image(dir, o, ck)
  if (o.preset or 'fashion') ~= 'fashion' then
    fail('evaluate: only the Fashion-MNIST preset is scored, got preset %s', tostring(o.preset))
  end
  local zoo = require 'experiments.zoo_models'
  local G = zoo.G32(o.nz, o.ngf)
  G:load_state_dict(ck.G)
  -- training mode, batches of 500: the batch statistics the scripts' sample grids use
  local imgs = with_seed(1, function()
    return duel.no_grad(function()
      local parts = {}
      for i = 1, ev.N_IMAGE / 500 do parts[i] = G(duel.randn(500, o.nz)) end
      return duel.cat(parts, 1)
    end)
  end)
  local r = ev.image_scores(imgs)
  r.steps = ck.step
  return r
end

-- real-vs-real: n training images (a seeded sample) against the whole test split
function ev.floor(n, seed)
  n, seed = n or ev.N_IMAGE, seed or 1
  local t0 = duel.clock()
  local train = D.fashion_mnist{split = 'train', pad_to = 32}
  -- a seeded random subset: the n smallest of N uniform draws
  local u = with_seed(seed, function() return duel.rand(train.images:size(1)):totable() end)
  local order = {}
  for i = 1, #u do order[i] = i end
  table.sort(order, function(a, b) return u[a] < u[b] end)
  local idx = {}
  for i = 1, n do idx[i] = order[i] end
  local pick = train.images:index_select(1, duel.tensor(idx))
  local r = ev.image_scores(pick)
  return {frechet = r.frechet, precision = r.precision, recall = r.recall,
          classifier_score = r.classifier_score, n_train = n, n_test = r.n_test, seed = seed,
          wall_s = duel.clock() - t0}
end

function ev.cyclegan(dir, o, ck)
  local models = require 'experiments.models'
  local task = require 'experiments.i2i_eval'
  local G = {}
  for _, n in ipairs{'A', 'B'} do
    G[n] = models.resnet_generator{in_c = o.channels, out_c = o.channels, ngf = o.ngf,
                                   n_blocks = o.n_blocks}
    G[n]:load_state_dict(ck['G_' .. n])
  end
  local r = task.cyclegan_scores(G.A, G.B, task.cyclegan_root(o), o)
  r.steps = ck.step
  return r
end

function ev.pix2pix(dir, o, ck)
  local models = require 'experiments.models'
  local task = require 'experiments.i2i_eval'
  local G = models.unet{in_c = o.channels, out_c = o.channels, ngf = o.ngf, n_down = o.n_down,
                        norm = o.norm}
  G:load_state_dict(ck.G)
  local r = with_seed(1, function() return task.pix2pix_scores(G, task.pix2pix_root(o), o) end)
  r.steps = ck.step
  return r
end

local KIND = {toy2d = 'toy', dcgan = 'image', wgan = 'image', wgan_gp = 'image', lsgan = 'image',
              sngan = 'image', fgan = 'image', r3gan = 'image', cyclegan = 'cyclegan',
              pix2pix = 'pix2pix'}

function ev.run(dir)
  local script = ev.script_of(dir)
  local kind = KIND[script] or fail('evaluate: no evaluation for %s runs, got %s', script, dir)
  local o = ev.options(dir)
  local ck = checkpoint(dir)
  local t0 = duel.clock()
  local r = ev[kind](dir, o, ck)
  r.eval_s = duel.clock() - t0
  r.script = script
  return r
end

-- the run's metrics.jsonl gets one flat line: {"eval":"final","step":...,<metrics>}
function ev.append(dir, r)
  local line = {eval = 'final', step = r.steps}
  for k, v in pairs(r) do if type(v) == 'number' or type(v) == 'boolean' then line[k] = v end end
  line.step = r.steps
  local f = io.open(dir .. '/metrics.jsonl', 'a')
  if f then f:write(common.json(line), '\n'); f:close() end
end

if arg and arg[0] and arg[0]:match('evaluate%.lua$') then
  if arg[1] == nil or arg[1] == '--help' then
    print('usage: luajit experiments/evaluate.lua <run folder> | --floor')
    os.exit(arg[1] and 0 or 1)
  end
  local R = require 'tools.results_lib'
  local r
  if arg[1] == '--floor' then r = ev.floor() else
    r = ev.run(arg[1])
    ev.append(arg[1], r)
  end
  print(R.json_encode(r, true))
end

return ev
