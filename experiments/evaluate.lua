-- experiments/evaluate.lua: score a finished run from its folder (options.txt and the final
-- checkpoint), with no training. What `make results` uses, and a tool of its own:
--   luajit experiments/evaluate.lua runs/cyclegan-20260101-120000    prints JSON and appends an
--                                        {"eval":"final",...} line to the run's metrics.jsonl
--   luajit experiments/evaluate.lua --floor     the real-vs-real Frechet floor (train vs test)
-- As a module: ev.run(dir) -> metrics table; ev.floor() -> the floor table; ev.generate(gen) and
-- ev.image_scores(images) score any generator by the same protocol.
--   toy2d    toy_modes of 2,500 samples from the generator's moving average (noise: seed 1)
--   dcgan, wgan, wgan_gp, lsgan, sngan, fgan, r3gan (the 32x32 Fashion-MNIST G)
--            Frechet / precision / recall / classifier score / class coverage of 10,000 samples
--            against the 10,000 test images, on the reference classifier's features
--   cgan, sagan   the same image scores (1,000 samples a class) and the conditional accuracy:
--            how often the classifier names the class G was asked for
--   stylegan, vaegan (its decoder, a DCGAN G, on prior samples), infogan (random codes): the
--            image scores; infogan adds the cluster accuracy its script measured at the end
--   cyclegan translation accuracy both ways and cycle L1 on the test domains
--   pix2pix  L1, PSNR, classifier accuracy on outputs and on real targets
--   stargan, srgan, unrolled   the scores the script itself wrote at its end (metrics.jsonl's
--            last 'translation', 'psnr' or 'toy_modes' line): they need its data pipeline
local duel = require 'duel'
local common = require 'experiments.common'
local M, D = duel.metrics, duel.data

local ev = {}
ev.N_IMAGE = 10000 -- generated images scored
ev.N_TEST = nil    -- test images they are compared with (nil: all 10,000; tests use fewer)

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
  -- runs from before --width/--depth/--scale had 2 x 128 and scale 1
  local G = zoo.toy_mlp(o.z, 2, o.width or 128, o.depth or 2)
  G:load_state_dict((o.ema or 0) > 0 and ck.G_ema or ck.G)
  local n = 2500
  local x = with_seed(1, function()
    return duel.no_grad(function() return G(duel.randn(n, o.z)) * (o.scale or 1) end)
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
    local t = D.fashion_mnist{split = 'test', pad_to = 32, limit = ev.N_TEST}
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

-- ev.N_IMAGE images from gen(n, i) (batch i of n), noise from seed 1; training mode, batches of
-- 500: the batch statistics the scripts' sample grids use
function ev.generate(gen)
  return with_seed(1, function()
    return duel.no_grad(function()
      local parts, b = {}, math.min(500, ev.N_IMAGE)
      for i = 1, math.ceil(ev.N_IMAGE / b) do parts[i] = gen(b, i) end
      return duel.cat(parts, 1):narrow(1, 1, ev.N_IMAGE)
    end)
  end)
end

local function scored(imgs, ck)
  local r = ev.image_scores(imgs)
  r.steps = ck.step
  return r
end

function ev.image(dir, o, ck)
  if (o.preset or 'fashion') ~= 'fashion' then
    fail('evaluate: only the Fashion-MNIST preset is scored, got preset %s', tostring(o.preset))
  end
  local zoo = require 'experiments.zoo_models'
  local G = zoo.G32(o.nz, o.ngf)
  G:load_state_dict((o.ema or 0) > 0 and ck.G_ema or ck.G)
  return scored(ev.generate(function(n) return G(duel.randn(n, o.nz)) end), ck)
end

-- class-conditional G: classes 1..k in turn, so every class gets the same number of samples
function ev.cond(dir, o, ck, script)
  local zoo, zoo2 = require 'experiments.zoo_models', require 'experiments.zoo_models2'
  local k, F = o.classes, duel.F
  local gen
  if script == 'cgan' then
    local G = zoo.G32(o.nz + k, o.ngf)
    G:load_state_dict(ck.G)
    gen = function(z, y) return G(duel.cat({z, F.one_hot(y, k)}, 2)) end
  else
    local G = zoo2.CondG(o.nz, o.ngf, k, {attn = o.attn, sn = true})
    G:load_state_dict(ck.G)
    gen = function(z, y) return G(z, y) end
  end
  local labels = {}
  local imgs = ev.generate(function(n, i)
    local y = {}
    for j = 1, n do y[j] = ((i - 1) * n + j - 1) % k + 1 end
    for j = 1, n do labels[#labels + 1] = y[j] end
    return gen(duel.randn(n, o.nz), duel.tensor(y))
  end)
  local r = scored(imgs, ck)
  local pred = M.classifier():predict(imgs):totable()
  local hits = 0
  for i = 1, #pred do if pred[i] == labels[i] then hits = hits + 1 end end
  r.cond_accuracy = hits / #pred
  return r
end

function ev.stylegan(dir, o, ck)
  local zoo2 = require 'experiments.zoo_models2'
  local G = zoo2.StyleG(o.nz, o.w_dim, o.ngf, o.n_map)
  G:load_state_dict(ck.G)
  return scored(ev.generate(function(n) return G(duel.randn(n, o.nz)) end), ck)
end

-- the last line of the run's metrics.jsonl whose "eval" is `tag`, as a table
local function own_line(dir, tag)
  local R = require 'tools.results_lib'
  local f = io.open(dir .. '/metrics.jsonl', 'r')
  local found
  if f then
    for line in f:lines() do
      if line:find('"eval":"' .. tag .. '"', 1, true) then found = line end
    end
    f:close()
  end
  if not found then fail('evaluate: no %s line in %s/metrics.jsonl, got none', tag, dir) end
  local t = R.json_decode(found)
  t.eval = nil
  return t
end

function ev.infogan(dir, o, ck)
  local zoo = require 'experiments.zoo_models'
  local G = zoo.G32(o.noise + o.n_cat + o.n_cont, o.ngf)
  G:load_state_dict(ck.G)
  local r = scored(ev.generate(function(n)
    return G((duel.gan.sample_latent{n = n, noise = o.noise, categorical = {o.n_cat},
                                     continuous = o.n_cont}))
  end), ck)
  local own = own_line(dir, 'cluster_accuracy')
  r.cluster_accuracy, r.q_accuracy = own.cluster_accuracy, own.q_accuracy
  return r
end

local OWN = {stargan = 'translation', srgan = 'psnr', unrolled = 'toy_modes'}
function ev.own(dir, o, ck, script)
  local r = own_line(dir, OWN[script])
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
              pix2pix = 'pix2pix', cgan = 'cond', sagan = 'cond', stylegan = 'stylegan',
              vaegan = 'image', infogan = 'infogan', stargan = 'own', srgan = 'own',
              unrolled = 'own'}
ev.KIND = KIND

function ev.run(dir)
  local script = ev.script_of(dir)
  local kind = KIND[script] or fail('evaluate: no evaluation for %s runs, got %s', script, dir)
  local o = ev.options(dir)
  local ck = checkpoint(dir)
  local t0 = duel.clock()
  local r = ev[kind](dir, o, ck, script)
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
