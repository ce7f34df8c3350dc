-- The GAN zoo scripts (experiments/toy2d, dcgan, wgan, wgan_gp, lsgan, sngan, fgan, r3gan): each
-- runs with --quick into a temporary folder and writes its samples, metrics.jsonl, loss curve and
-- a checkpoint holding G, D and the step; toy2d stopped with --stop_at and resumed logs the same
-- losses, bit for bit, as an uninterrupted run. Also the dcgan_averages.lua probe.
local T = require 'tests.harness'
local duel = require 'duel'

local R = require('tests.experiment_runs')()
local tmp, q, run, exists = R.tmp, R.q, R.run, R.exists

local function metric_lines(dir, with_time)
  local lines = {}
  for line in io.lines(dir .. '/metrics.jsonl') do
    if not line:find('"eval":', 1, true) then
      lines[#lines + 1] = with_time and line or line:gsub(',?"time":[^,}]+', '')
    end
  end
  return lines
end

-- a quick run: exit 0, the files, a checkpoint at the last step that loads into the nets
local function check_run(script, args, steps, extra_files)
  local out, rc, dir = run(script, args)
  T.eq(rc, 0, out)
  T.ok(dir, out)
  for _, f in ipairs{'options.txt', 'metrics.jsonl', 'loss.png', 'samples_final.png',
                     'checkpoint.safetensors'} do
    T.ok(exists(dir .. '/' .. f), script .. ': no ' .. f .. '\n' .. out)
  end
  for _, f in ipairs(extra_files or {}) do T.ok(exists(dir .. '/' .. f), script .. ': no ' .. f) end
  local lines = metric_lines(dir)
  T.eq(#lines, steps, script .. ' metrics lines')
  T.ok(lines[#lines]:find('"step":' .. steps, 1, true), lines[#lines])
  local ck = duel.load(dir .. '/checkpoint.safetensors')
  T.eq(ck.step, steps)
  T.ok(type(ck.G) == 'table' and type(ck.D) == 'table' and type(ck.oG) == 'table', script)
  local img = duel.image.load(dir .. '/samples_final.png')
  return out, dir, img, ck
end

T.case('toy2d --quick: scatter plots, mode counts, checkpoint; f-GAN, WGAN-GP variants', function()
  local out, dir, img = check_run('toy2d', '--quick', 6, {'samples_000003.png'})
  T.eq(img:size(), {3, 512, 512})
  T.ok(out:find('toy2d ring8 relativistic/r1r2: %d of 8 modes'), out)
  local evals = 0
  for line in io.lines(dir .. '/metrics.jsonl') do
    if line:find('"eval":"toy_modes"', 1, true) then evals = evals + 1 end
  end
  T.eq(evals, 2) -- step 3 and the final count
  out = check_run('toy2d', '--quick --data grid25 --loss fgan:pearson --penalty none', 6)
  T.ok(out:find('of 25 modes', 1, true), out)
  check_run('toy2d', '--quick --loss wgan --penalty gp --n_critic 2 --steps 3', 3)
end)

T.case('runs started in the same second get folders of their own', function()
  local out = tmp .. '/same'
  local p = io.popen(('for s in 1 2 3 4; do luajit experiments/toy2d.lua --quick --seed $s '
    .. '--out %s > /dev/null 2>&1 & done; wait; grep -h "^seed = " %s/*/options.txt | sort')
    :format(q(out), q(out)))
  local seeds = p:read('*a')
  p:close()
  T.eq(seeds, 'seed = 1\nseed = 2\nseed = 3\nseed = 4\n')
  local f = io.open(out .. '/not-a-folder', 'w')
  f:close()
  local o, rc = run('toy2d', '--quick --out ' .. q(out .. '/not-a-folder'))
  T.ok(rc ~= 0 and o:find('setup: cannot create a run folder in ' .. out .. '/not-a-folder, got ',
                          1, true), o)
end)

T.case('toy2d: --stop_at then --resume logs the same losses as an uninterrupted run', function()
  local _, rc1, dir = run('toy2d', '--quick --loss nonsaturating --penalty r1 --stop_at 3')
  T.eq(rc1, 0)
  T.eq(#metric_lines(dir), 3)
  local out2, rc2 = run('toy2d', '--resume ' .. q(dir))
  T.eq(rc2, 0, out2)
  T.ok(out2:find('resumed at step 3', 1, true), out2)
  local _, rc3, ref = run('toy2d', '--quick --loss nonsaturating --penalty r1')
  T.eq(rc3, 0)
  local a, b = metric_lines(dir), metric_lines(ref)
  T.eq(#a, 6)
  for i = 1, 6 do T.eq(a[i], b[i], 'metrics line ' .. i) end
  local ca = duel.load(dir .. '/checkpoint.safetensors')
  local cb = duel.load(ref .. '/checkpoint.safetensors')
  T.eq(ca.step, 6)
  T.close(ca.G['5.weight'], cb.G['5.weight'], 0)
  T.close(ca.oD.state[1].exp_avg_sq, cb.oD.state[1].exp_avg_sq, 0)
end)

T.case('toy2d --width/--depth/--scale: the nets; evaluate.lua scores G_ema(z) * scale', function()
  local _, dir, _, ck = check_run('toy2d', '--quick --data grid25 --loss wgan --penalty gp '
    .. '--n_critic 2 --width 16 --depth 3 --scale 0.05', 6)
  -- Linear, ReLU x 3 then the output Linear: modules 1, 3, 5, 7
  T.eq(ck.G_ema['1.weight']:size(), {16, 256})
  T.eq(ck.G_ema['5.weight']:size(), {16, 16})
  T.eq(ck.G_ema['7.weight']:size(), {2, 16})
  T.eq(ck.D['1.weight']:size(), {16, 2})
  T.eq(ck.D['7.weight']:size(), {1, 16})
  local r = R.scores(dir)
  -- the same count by hand: seed-1 noise through the moving average, back in data units
  local zoo = require 'experiments.zoo_models'
  local G = zoo.mlp{256, 16, 16, 16, 2}
  G:load_state_dict(ck.G_ema)
  local ckm = require 'duel.checkpoint'
  local seed_state = ckm.get_rng_state()
  duel.manual_seed(1)
  local x = duel.no_grad(function() return G(duel.randn(2500, 256)) end)
  ckm.set_rng_state(seed_state)
  local want = duel.metrics.toy_modes(x * 0.05, 'grid25')
  -- a scale this small puts G's samples (about 0.2 from the origin) in the centre mode
  T.ok(want.high_quality > 0.5, 'high quality ' .. want.high_quality)
  T.eq(r.n, 2500)
  T.eq(r.modes, want.modes)
  T.eq(r.high_quality, want.high_quality)
  local out, rc = run('toy2d', '--quick --scale 0')
  T.ok(rc ~= 0 and out:find('toy2d: --scale, --width and --depth must be positive, got 0, 128, 2',
                             1, true), out)
end)

T.case('dcgan --ema: G_ema is the moving average across a resume; evaluate.lua scores it',
       function()
  local _, rc1, dir = run('dcgan', '--quick --ema 0.5 --stop_at 3')
  T.eq(rc1, 0)
  local c3 = duel.load(dir .. '/checkpoint.safetensors')
  local out2, rc2 = run('dcgan', '--resume ' .. q(dir))
  T.eq(rc2, 0, out2)
  local c4 = duel.load(dir .. '/checkpoint.safetensors')
  T.eq(c4.step, 4)
  for _, k in ipairs{'2.weight', '3.weight', '11.weight'} do -- step 4: E4 = 0.5 E3 + 0.5 G4
    T.close(c4.G_ema[k], c3.G_ema[k] * 0.5 + c4.G[k] * 0.5, 1e-6)
    T.ok((c4.G_ema[k] - c4.G[k]):abs():max():item() > 1e-6, k .. ': G_ema is not G')
  end
  T.close(c4.G_ema['3.running_mean'], c4.G['3.running_mean'], 0) -- buffers copied
  local with_ema = R.scores(dir)
  -- the same run scored from G (options.txt without ema) gives other scores
  local f = assert(io.open(dir .. '/options.txt', 'r'))
  local text = f:read('*a'):gsub('ema = 0.5', 'ema = 0')
  f:close()
  f = assert(io.open(dir .. '/options.txt', 'w'))
  f:write(text)
  f:close()
  T.ok(with_ema.frechet ~= R.scores(dir).frechet, 'evaluate.lua scored G_ema')
  local out, rc = run('dcgan', '--quick --ema 1')
  T.ok(rc ~= 0 and out:find('dcgan: --ema must be in [0, 1), got 1', 1, true), out)
end)

T.case('dcgan_averages: G and each weight average scored every --every steps', function()
  local function probe(args)
    local p = io.popen('luajit experiments/dcgan_averages.lua --steps 4 --every 2 --batch 16 '
                       .. '--samples 500 ' .. args .. ' 2>&1; echo "rc=$?"')
    local out = p:read('*a')
    p:close()
    local s = {}
    for step, net, fd in out:gmatch('\n(%d+) (%S+) ([%d.]+) [%d.]+ [%d.]+') do
      s[net .. '@' .. step] = tonumber(fd)
    end
    return out, tonumber(out:match('rc=(%d+)%s*$')), s
  end
  -- 1e-9 follows G; 0.999999 stays near the initial weights unless its time constant is held
  -- to step / 1e6 (decay about 1e-6 here), when it follows G again (a large rate moves G far)
  local out, rc, s = probe('--lr 0.05 --averages 1e-9,0.999999,0.999999/1000000')
  T.eq(rc, 0, out)
  for _, step in ipairs{2, 4} do
    local g = s['G@' .. step]
    T.ok(g and g > 0, out)
    T.close(s['1e-9@' .. step], g, 1e-3, out)
    T.close(s['0.999999/1000000@' .. step], g, 1e-3, out)
    T.ok(math.abs(s['0.999999@' .. step] - g) > 0.1, out)
  end
  out, rc = probe('--averages 0.999,1.5')
  T.ok(rc ~= 0 and out:find('dcgan_averages: --averages entries are decay[/c] with 0 < decay < 1,'
                            .. ' got 1.5', 1, true), out)
  out, rc = probe('--samples 700')
  T.ok(rc ~= 0 and out:find('--samples must be a multiple of 500, got 700', 1, true), out)
end)

T.case('dcgan --decay: the learning rates fall linearly to 0 over the run\'s last part', function()
  -- 4 steps, decay from step 2: factors min(1, (4 - step + 1) / 2) = 1, 1, 1, 0.5
  local _, dir = check_run('dcgan', '--quick --decay 0.5', 4)
  local want = {2e-4, 2e-4, 2e-4, 1e-4}
  local lines = metric_lines(dir)
  for i = 1, 4 do
    local lr = tonumber(lines[i]:match('"lr":([^,}]+)'))
    T.ok(lr and math.abs(lr - want[i]) < 1e-12, lines[i])
  end
  local _, plain = check_run('dcgan', '--quick --steps 1', 1) -- no decay: no lr column
  T.ok(not metric_lines(plain)[1]:find('"lr"', 1, true), metric_lines(plain)[1])
  local out, rc = run('dcgan', '--quick --decay 1.5')
  T.ok(rc ~= 0 and out:find('dcgan: --decay must be in [0, 1], got 1.5', 1, true), out)
end)

T.case('dcgan --quick: grids, interpolation strip; feature matching + minibatch stddev', function()
  local _, _, img = check_run('dcgan', '--quick', 4, {'samples_000002.png', 'interpolation.png'})
  T.eq(img:size(), {1, 8 * 34 + 2, 8 * 34 + 2}) -- 64 samples of 32x32, 8 a row, padding 2
  local _, dir = check_run('dcgan', '--quick --feature_matching --minibatch_stddev --steps 2', 2)
  T.eq(duel.image.load(dir .. '/interpolation.png'):size(), {1, 8 * 34 + 2, 10 * 34 + 2})
end)

T.case('dcgan: a resume in the middle of an epoch draws the same batches and losses', function()
  -- 256 images in batches of 100: 2 batches an epoch, so step 4 is in epoch 2, stop after 3
  local _, rc1, dir = run('dcgan', '--quick --batch 100 --stop_at 3')
  T.eq(rc1, 0)
  local out2, rc2 = run('dcgan', '--resume ' .. q(dir))
  T.eq(rc2, 0, out2)
  local _, rc3, ref = run('dcgan', '--quick --batch 100')
  T.eq(rc3, 0)
  local a, b = metric_lines(dir), metric_lines(ref)
  T.eq(#a, 4)
  for i = 1, 4 do T.eq(a[i], b[i], 'metrics line ' .. i) end
  T.close(duel.load(dir .. '/checkpoint.safetensors').G['2.weight'],
          duel.load(ref .. '/checkpoint.safetensors').G['2.weight'], 0)
end)

T.case('dcgan: a resume that lengthens the run and adds a later decay equals that run from scratch',
       function()
  -- the dcgan results row was continued like this: steps before the decay starts are the same
  local _, rc1, dir = run('dcgan', '--quick --stop_at 2') -- 4 steps at a constant rate
  T.eq(rc1, 0)
  local out2, rc2 = run('dcgan', '--resume ' .. q(dir) .. ' --steps 6 --decay 0.5')
  T.eq(rc2, 0, out2)
  local _, rc3, ref = run('dcgan', '--quick --steps 6 --decay 0.5')
  T.eq(rc3, 0)
  local a, b = metric_lines(dir), metric_lines(ref)
  T.eq(#a, 6)
  for i = 1, 6 do -- the first two steps ran without --decay, so they log no lr
    local x, y = a[i]:gsub(',?"lr":[^,}]+', ''), b[i]:gsub(',?"lr":[^,}]+', '')
    T.eq(x, y, 'metrics line ' .. i)
  end
  T.ok(a[6]:find('"lr":', 1, true) and a[6] == b[6], a[6])
  T.close(duel.load(dir .. '/checkpoint.safetensors').G['2.weight'],
          duel.load(ref .. '/checkpoint.safetensors').G['2.weight'], 0)
  -- options.txt holds the options the run ended with and what the resume changed
  local text = assert(io.open(dir .. '/options.txt')):read('*a')
  T.ok(text:find('\nsteps = 6\n', 1, true) and text:find('\ndecay = 0.5\n', 1, true), text)
  T.ok(text:find('# resumed on [^\n]* with decay 1 %-> 0.5, steps 4 %-> 6\n$'), text)
  T.ok(not text:find('resume =', 1, true), text)
  local out4, rc4 = run('dcgan', '--resume ' .. q(dir) .. ' --steps 7')
  T.eq(rc4, 0, out4)
  text = assert(io.open(dir .. '/options.txt')):read('*a')
  T.ok(text:find('steps 4 %-> 6\n# resumed on [^\n]* with steps 6 %-> 7\n$'), text)
  T.ok(text:find('\ndecay = 0.5\n', 1, true), text) -- kept from the first resume
end)

T.case('dcgan --preset paper: the 64x64 RGB nets on an image folder', function()
  local folder = tmp .. '/faces'
  local mkdir = require('duel.core')._data.mkdir
  mkdir(tmp)
  mkdir(folder)
  duel.manual_seed(5)
  for i = 1, 6 do duel.image.save(('%s/%d.png'):format(folder, i), duel.rand(3, 40, 48)) end
  local out = check_run('dcgan', '--quick --preset paper --data ' .. q(folder)
    .. ' --ngf 4 --ndf 4 --batch 2 --steps 2 --load_size 72', 2)
  T.ok(out:find('ConvTranspose2d(32->16, k4, s2, p1, no bias)', 1, true), out) -- 8*ngf first
end)

for _, c in ipairs{
  {'wgan', '--quick', 4}, {'wgan_gp', '--quick', 4}, {'lsgan', '--quick', 4},
  {'sngan', '--quick', 4}, {'r3gan', '--quick', 4},
  {'fgan', '--quick --divergence kl --steps 3', 3},
} do
  T.case(c[1] .. ' --quick: samples, metrics, checkpoint', function()
    check_run(c[1], c[2], c[3], {'interpolation.png'})
  end)
end

-- with the JS row and the alternative G update, the f-GAN losses are the BCE losses minus
-- constants (docs/gan.md), so fgan.lua trains exactly what dcgan.lua trains
T.case('fgan --divergence js is dcgan bit for bit (same seed, same gradients)', function()
  local _, dir_f = check_run('fgan', '--quick --divergence js', 4)
  local _, dir_d = check_run('dcgan', '--quick', 4)
  local f = duel.load(dir_f .. '/checkpoint.safetensors')
  local d = duel.load(dir_d .. '/checkpoint.safetensors')
  T.close(f.G['11.weight'], d.G['11.weight'], 0)
  T.close(f.D['body.1.weight'], d.D['body.1.weight'], 0)
  local a, b = metric_lines(dir_f)[4], metric_lines(dir_d)[4]
  -- D: -F = BCE - 2 log 2; G: -g_f = non-saturating - log 2
  local fd, fg = tonumber(a:match('"d_loss":([^,}]+)')), tonumber(a:match('"g_loss":([^,}]+)'))
  local dd, dg = tonumber(b:match('"d_loss":([^,}]+)')), tonumber(b:match('"g_loss":([^,}]+)'))
  T.ok(math.abs(fd - (dd - 2 * math.log(2))) < 1e-5, a .. ' vs ' .. b)
  T.ok(math.abs(fg - (dg - math.log(2))) < 1e-5, a .. ' vs ' .. b)
end)

T.case('scripts: --help lists the options; a bad option value is an error naming it', function()
  local out, rc = run('wgan_gp', '--help')
  T.eq(rc, 0)
  T.ok(out:find('--lambda', 1, true) and out:find('--n_critic', 1, true), out)
  out, rc = run('toy2d', '--loss nope')
  T.ok(rc ~= 0)
  T.ok(out:find('toy2d: unknown --loss (see --help), got nope', 1, true), out)
  out, rc = run('fgan', '--divergence tv')
  T.ok(rc ~= 0 and out:find('fgan: --divergence must be', 1, true), out)
end)

-- a library fix the SN-GAN script needs: two training-mode forwards of a spectral-normalised
-- layer (D(real), D(fake)) before one backward must not invalidate the first forward's graph
T.case('spectral_norm: two forwards in one graph backpropagate', function()
  duel.manual_seed(2)
  local m = duel.nn.spectral_norm(duel.nn.Linear(3, 2))
  local w, x = m.module.weight, duel.randn(4, 3)
  local u0, v0 = m.weight_u:clone(), m.weight_v:clone()
  local g = duel.autograd.grad(m(x):pow(2):sum() + m(x):pow(2):sum(), w)[1]
  -- the same gradient taken one forward at a time from the same u, v
  m.weight_u:copy_(u0); m.weight_v:copy_(v0)
  local g1 = duel.autograd.grad(m(x):pow(2):sum(), w)[1]
  local g2 = duel.autograd.grad(m(x):pow(2):sum(), w)[1]
  T.ok(g:abs():sum():item() > 0)
  T.close(g, g1 + g2, 1e-5)
end)

T.case('cleanup: the temporary run folders are removed', function()
  os.execute('rm -rf ' .. q(tmp))
  T.ok(not io.open(tmp .. '/faces/1.png', 'rb'))
end)
