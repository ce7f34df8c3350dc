-- The image-to-image scripts (experiments/cyclegan.lua, pix2pix.lua) and their builders
-- (experiments/models.lua): each script runs with --quick on tiny folders made here and writes its
-- samples, test translations, metrics.jsonl, loss curve and a checkpoint that holds the trained
-- nets; --stop_at then --resume logs the same losses, bit for bit, as an uninterrupted run; the
-- paper architectures have the parameter counts of the PyTorch port; gan.ImagePool's state_dict.
local T = require 'tests.harness'
local duel = require 'duel'
local models = require 'experiments.models'
local i2i = require 'experiments.i2i'
local mkdir = require('duel.core')._data.mkdir

local tmp, unaligned, aligned -- a fresh temporary tree per case, removed after it
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- runs a script (from the checkout root, with this process's DUEL_CPATH); returns output, rc, dir
local function run(script, args)
  local p = io.popen(('luajit experiments/%s.lua --out %s %s 2>&1; echo "rc=$?"'):format(
    script, q(tmp .. '/runs'), args))
  local out = p:read('*a')
  p:close()
  return out, tonumber(out:match('rc=(%d+)%s*$')), out:match('^' .. script .. ': (%S+)')
end

local exists = require('tests.experiment_runs')().exists -- a file that exists and is not empty

-- the training lines without the wall-clock field, and the final {"eval":"final"} line
local function metric_lines(dir)
  local lines, final = {}, nil
  for line in io.lines(dir .. '/metrics.jsonl') do
    if line:find('"eval":"final"', 1, true) then final = line
    else lines[#lines + 1] = line:gsub(',?"time":[^,}]+', '') end
  end
  return lines, final
end

-- 32x32 gray stripes: horizontal in domain A, vertical in B, the phase shifted per image
local function stripes(horizontal, phase)
  local rows = {}
  for y = 1, 32 do
    rows[y] = {}
    for x = 1, 32 do rows[y][x] = ((horizontal and y or x) + phase) % 8 < 4 and 1 or 0 end
  end
  return duel.tensor({rows})
end

-- the tiny data sets: unaligned stripes (CycleGAN) and aligned A|B pairs (pix2pix)
local function make_data()
  tmp = os.tmpname()
  os.remove(tmp)
  mkdir(tmp)
  unaligned = tmp .. '/stripes'
  mkdir(unaligned)
  for _, d in ipairs{'trainA', 'trainB', 'testA', 'testB'} do
    mkdir(unaligned .. '/' .. d)
    for i = 1, d:find('train') and 4 or 3 do
      duel.image.save(('%s/%s/%d.png'):format(unaligned, d, i), stripes(d:sub(-1) == 'A', i))
    end
  end
  aligned = tmp .. '/pairs' -- A|B: stripes on the left, their negative on the right
  mkdir(aligned)
  for _, d in ipairs{'train', 'test'} do
    mkdir(aligned .. '/' .. d)
    for i = 1, d == 'train' and 4 or 3 do
      local a = stripes(i % 2 == 0, i)
      duel.image.save(('%s/%s/%d.png'):format(aligned, d, i), duel.cat({a, 1 - a}, 3))
    end
  end
end

-- a case with the data made before it and the whole temporary tree removed after it
local function case(name, fn)
  T.case(name, function()
    make_data()
    local ok, err = pcall(fn)
    os.execute('rm -rf ' .. q(tmp))
    if not ok then error(err, 0) end
  end)
end

case('cyclegan --quick: samples, test translations, metrics, a checkpoint of the nets', function()
  local out, rc, dir = run('cyclegan', '--quick --data ' .. q(unaligned))
  T.eq(rc, 0, out)
  for _, f in ipairs{'options.txt', 'metrics.jsonl', 'loss.png', 'samples_000002.png',
                     'samples_final.png', 'test_A2B_01.png', 'test_B2A_01.png', 'test.json'} do
    T.ok(exists(dir .. '/' .. f), 'no ' .. f .. '\n' .. out)
  end
  local lines, final = metric_lines(dir)
  T.eq(#lines, 6)
  T.ok(lines[6]:find('"cyc_A":', 1, true) and lines[6]:find('"step":6', 1, true), lines[6])
  T.ok(final and final:find('"cycle_l1_A":', 1, true) and final:find('"step":6', 1, true),
    tostring(final))
  -- 3 fixed test images a domain, a row each: real A | fake B | rec A | real B | fake A | rec B
  T.eq(duel.image.load(dir .. '/samples_final.png'):size(), {1, 3 * 34 + 2, 6 * 34 + 2})
  T.eq(duel.image.load(dir .. '/test_A2B_01.png'):size(), {1, 1 * 34 + 2, 9 * 34 + 2})
  local ck = duel.load(dir .. '/checkpoint.safetensors')
  T.eq(ck.step, 6)
  T.eq(ck.pool_A.images:size(), {6, 1, 32, 32}) -- batch 1, 6 steps: the pool holds every fake
  T.eq(ck.sched_G_A.t, 6)
  T.ok(ck.opt_D_B.state and ck.rng.seed, 'optimizer and RNG state')
  -- the checkpointed G_A and G_B give the saved test translations
  local t = duel.load(dir .. '/test.safetensors')
  T.eq(t.A:size(), {3, 1, 32, 32})
  local G_A = models.resnet_generator{in_c = 1, out_c = 1, ngf = 4, n_blocks = 1}
  local G_B = models.resnet_generator{in_c = 1, out_c = 1, ngf = 4, n_blocks = 1}
  G_A:load_state_dict(ck.G_A); G_B:load_state_dict(ck.G_B)
  duel.no_grad(function()
    T.close(G_A(t.A), t.fake_B, 1e-5)
    T.close(G_B(t.fake_B), t.rec_A, 1e-5)
  end)
  local res = io.open(dir .. '/test.json'):read('*a')
  local l1 = tonumber(res:match('"cycle_l1_A":([%d%.e%-]+)'))
  T.ok(math.abs(l1 - (t.rec_A - t.A):abs():mean():item()) < 1e-6, res)
  T.ok(res:find('"n_B":3', 1, true), res)
end)

case('pix2pix --quick: samples, test sheets with L1 and PSNR, a checkpoint of G and D', function()
  local out, rc, dir = run('pix2pix', '--quick --data ' .. q(aligned))
  T.eq(rc, 0, out)
  for _, f in ipairs{'options.txt', 'metrics.jsonl', 'loss.png', 'samples_000004.png',
                     'samples_final.png', 'test_01.png', 'test.json'} do
    T.ok(exists(dir .. '/' .. f), 'no ' .. f .. '\n' .. out)
  end
  local lines = metric_lines(dir)
  T.eq(#lines, 6)
  T.ok(lines[6]:find('"G_l1":', 1, true), lines[6])
  T.eq(duel.image.load(dir .. '/samples_final.png'):size(), {1, 1 * 34 + 2, 9 * 34 + 2})
  local ck = duel.load(dir .. '/checkpoint.safetensors')
  T.eq(ck.step, 6)
  T.ok(type(ck.G) == 'table' and type(ck.D) == 'table' and ck.opt_G.state, 'G, D, Adam')
  local t = duel.load(dir .. '/test.safetensors')
  T.eq(t.output:size(), {3, 1, 32, 32})
  local mse = ((t.output - t.target) * 0.5):pow(2):view(3, -1):mean(2):totable()
  local psnr = 0
  for i = 1, 3 do psnr = psnr + -10 * math.log10(mse[i]) / 3 end
  local res = io.open(dir .. '/test.json'):read('*a')
  T.ok(math.abs(tonumber(res:match('"psnr":([%d%.e%-]+)')) - psnr) < 1e-4, res .. ' ' .. psnr)
  T.ok(math.abs(tonumber(res:match('"l1":([%d%.e%-]+)'))
       - (t.output - t.target):abs():mean():item()) < 1e-6, res)
end)

-- c: script, data, then a weight and a piece of state that must match bit for bit
for _, c in ipairs{
  {'cyclegan', 'unaligned', function(ck) return ck.G_A['2.weight'], ck.pool_B.images end},
  {'pix2pix', 'aligned', function(ck) return ck.G['down.weight'], ck.opt_D.state[1].exp_avg_sq end},
} do
  case(c[1] .. ': --stop_at 3, --resume: the same losses as an uninterrupted run', function()
    local args = '--quick --data ' .. q(c[2] == 'aligned' and aligned or unaligned)
    local out1, rc1, dir = run(c[1], args .. ' --stop_at 3')
    T.eq(rc1, 0, out1)
    T.eq(#metric_lines(dir), 3)
    T.ok(not exists(dir .. '/samples_final.png'), 'an interrupted run writes no final sheet')
    local out2, rc2 = run(c[1], '--resume ' .. q(dir))
    T.eq(rc2, 0, out2)
    T.ok(out2:find('resumed at step 3', 1, true), out2)
    local _, rc3, ref = run(c[1], args)
    T.eq(rc3, 0)
    local a, b = metric_lines(dir), metric_lines(ref)
    T.eq(#a, 6)
    for i = 1, 6 do T.eq(a[i], b[i], 'metrics line ' .. i) end
    local wa, sa = c[3](duel.load(dir .. '/checkpoint.safetensors'))
    local wb, sb = c[3](duel.load(ref .. '/checkpoint.safetensors'))
    T.close(wa, wb, 0)
    T.close(sa, sb, 0)
  end)
end

case('--preset paper (sizes overridden small); pix2pix with instance norm, eval mode', function()
  local out, rc = run('cyclegan', '--quick --preset paper --data ' .. q(unaligned)
    .. ' --load_size 36 --crop_size 32 --steps 2')
  T.eq(rc, 0, out)
  T.ok(out:find('channels = 3', 1, true) and out:find('n_blocks = 9', 1, true), out)
  out, rc = run('pix2pix', '--quick --preset paper --data ' .. q(aligned)
    .. ' --load_size 36 --crop_size 32 --n_down 5 --steps 2')
  T.eq(rc, 0, out)
  T.ok(out:find('channels = 3', 1, true) and out:find('batch = 1\n', 1, true), out)
  local dir
  out, rc, dir = run('pix2pix', '--quick --data ' .. q(aligned)
    .. ' --norm instance --test_dropout false')
  T.eq(rc, 0, out)
  local bn = 0 -- BatchNorm keeps running statistics; InstanceNorm (affine=false) has no state
  for name in pairs(duel.load(dir .. '/checkpoint.safetensors').G) do
    if name:find('running_mean', 1, true) then bn = bn + 1 end
  end
  T.eq(bn, 0)
  out, rc = run('cyclegan', '--preset big')
  T.ok(rc ~= 0 and out:find('options: --preset must be small or paper, got big', 1, true), out)
end)

T.case('models: the paper nets have the PyTorch port\'s parameter counts; shapes', function()
  duel.manual_seed(1)
  T.eq(models.resnet_generator{}:num_parameters(), 11378179)       -- resnet_9blocks, instance norm
  T.eq(models.patchgan{}:num_parameters(), 2764737)                -- basic D, instance norm
  T.eq(models.patchgan{in_c = 6, norm = 'batch'}:num_parameters(), 2768705) -- pix2pix's D
  T.eq(models.unet{}:num_parameters(), 54413955)                   -- unet_256, batch norm
  local G = models.resnet_generator{in_c = 1, out_c = 2, ngf = 4, n_blocks = 2}
  local y = G(duel.randn(2, 1, 32, 32))
  T.eq(y:size(), {2, 2, 32, 32})
  T.ok(y:abs():max():item() < 1, 'Tanh output')
  T.eq(models.patchgan{in_c = 1, ndf = 4}(duel.randn(2, 1, 64, 64)):size(), {2, 1, 6, 6})
  local U = models.unet{in_c = 2, out_c = 1, ngf = 4, n_down = 5}
  T.eq(U(duel.randn(3, 2, 32, 32)):size(), {3, 1, 32, 32})
  -- init: N(0, 0.02) convolution weights, zero biases
  local w = G['2'].weight
  T.ok(math.abs(w:std():item() - 0.02) < 0.006 and G['2'].bias:abs():max():item() == 0, 'init')
  -- dropout in the three decoder blocks from the bottleneck: active in training, off in eval
  local drops = 0
  U:apply(function(m) if m.__name == 'Dropout' then drops = drops + 1 end end)
  T.eq(drops, 3)
end)

T.case('i2i.batches: resuming after k batches continues the uninterrupted stream', function()
  local data = duel.arange(1, 10):view(10, 1)
  local L1 = duel.data.DataLoader(data, {batch = 3, seed = 4})
  local L2 = duel.data.DataLoader(data, {batch = 3, seed = 4})
  local full, rest = i2i.batches(L1, 0), nil
  local seq = {}
  for i = 1, 8 do seq[i] = full():view(-1):totable() end
  rest = i2i.batches(L2, 4) -- 3 batches an epoch: starts at epoch 2, batch 2
  for i = 5, 8 do T.eq(rest():view(-1):totable(), seq[i], 'batch ' .. i) end
  T.ok(T.show(seq[1]) ~= T.show(seq[4]), 'epochs are shuffled differently')
end)

case('gan.ImagePool: state_dict and load_state_dict continue the same history', function()
  local gan = duel.gan
  duel.manual_seed(3)
  local a, b = gan.ImagePool(3), gan.ImagePool(3)
  T.eq(a:state_dict().images, nil)
  local batches = {}
  for i = 1, 6 do batches[i] = duel.randn(2, 1, 2, 2) end
  for i = 1, 3 do a:query(batches[i]) end
  local s = a:state_dict()
  T.eq(s.size, 3)
  T.eq(s.images:size(), {3, 1, 2, 2})
  b:load_state_dict(duel.load((function()
    local p = tmp .. '/pool.safetensors'
    duel.save(p, s)
    return p
  end)()))
  local rng = duel.get_rng_state()
  local outs = {}
  for i = 4, 6 do outs[i] = a:query(batches[i]) end
  duel.set_rng_state(rng)
  for i = 4, 6 do T.close(b:query(batches[i]), outs[i], 0) end
  T.raises_exact('ImagePool:load_state_dict: the state must be of a pool of size 2, got size 3 '
    .. 'with 3 images', function() gan.ImagePool(2):load_state_dict(s) end)
end)

