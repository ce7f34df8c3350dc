-- The zoo scripts vaegan, stargan, srgan and unrolled: each runs with --quick into a temporary
-- folder and writes its sheets, metrics.jsonl (finite values, the script's evaluation line) and a
-- checkpoint; the Unrolled GAN's generator gradient really flows through the unrolled D steps
-- (it differs from K = 0 and from D_K held fixed, and matches a finite difference); unrolled and
-- stargan stopped with --stop_at and resumed log the same losses, bit for bit, as uninterrupted
-- runs.
local T = require 'tests.harness'
local duel = require 'duel'

local R = require('tests.experiment_runs')()
local tmp, q, run, exists = R.tmp, R.q, R.run, R.exists

-- metrics.jsonl: the training lines (without time) and the evaluation lines
local function metrics(dir)
  local lines, evals = {}, {}
  for line in io.lines(dir .. '/metrics.jsonl') do
    T.ok(not line:find('null', 1, true), 'a non-finite value: ' .. line)
    if line:find('"eval":', 1, true) then evals[#evals + 1] = line
    else lines[#lines + 1] = line:gsub(',?"time":[^,}]+', '') end
  end
  return lines, evals
end
-- the plain --quick runs' folders: the uninterrupted references of the resume cases
local quick_dir = {}
local function reference(script)
  if quick_dir[script] then return quick_dir[script] end
  local _, rc, dir = run(script, '--quick')
  T.eq(rc, 0)
  return dir
end
local function num(line, key) return tonumber(line:match('"' .. key .. '":([^,}]+)')) end

local function check_run(script, args, steps, files)
  local out, rc, dir = run(script, args)
  T.eq(rc, 0, out)
  T.ok(dir, out)
  for _, f in ipairs{'options.txt', 'metrics.jsonl', 'loss.png', 'samples_final.png',
                     'checkpoint.safetensors', unpack(files or {})} do
    T.ok(exists(dir .. '/' .. f), script .. ': no ' .. f .. '\n' .. out)
  end
  local lines, evals = metrics(dir)
  T.eq(#lines, steps, script .. ' metrics lines')
  local ck = duel.load(dir .. '/checkpoint.safetensors')
  T.eq(ck.step, steps)
  T.ok(type(ck.G) == 'table' and type(ck.D) == 'table' and type(ck.oG) == 'table', script)
  return out, dir, lines, evals, ck
end

T.case('vaegan --quick: prior samples, reconstruction pairs, KL and feature loss', function()
  local _, dir, lines, _, ck = check_run('vaegan', '--quick', 4,
    {'recon_final.png', 'recon_000002.png', 'interpolation.png', 'samples_000002.png'})
  T.ok(type(ck.E) == 'table' and type(ck.oE) == 'table')
  for _, l in ipairs(lines) do T.ok(num(l, 'kl') > 0 and num(l, 'llike') > 0, l) end
  -- 32 test images and their reconstructions, 8 tiles a row
  T.eq(duel.image.load(dir .. '/recon_final.png'):size(), {1, 8 * 34 + 2, 8 * 34 + 2})
  local r = R.scores(dir) -- the decoder on prior samples, scored as the image GANs
  T.ok(r.n == 100 and r.frechet >= 0 and r.recall >= 0 and r.recall <= 1 and r.steps == 4)
end)

T.case('stargan --quick: translation sheet, domain losses, translation accuracy', function()
  local out, dir, lines, evals = check_run('stargan', '--quick', 4,
    {'samples_000002.png', 'test_translations.png'})
  quick_dir.stargan = dir
  -- 2 test images of each of the 4 domains a row each: the input, then 4 translations
  T.eq(duel.image.load(dir .. '/samples_final.png'):size(), {1, 8 * 34 + 2, 5 * 34 + 2})
  T.ok(num(lines[1], 'd_cls') > 0 and num(lines[1], 'rec') > 0, lines[1])
  T.eq(#evals, 1)
  local acc, real = num(evals[1], 'accuracy'), num(evals[1], 'real_accuracy')
  T.ok(acc >= 0 and acc <= 1 and real > 0.5, evals[1]) -- the classifier knows the real images
  T.eq(num(evals[1], 'n'), 4 * 4 * 8)
  T.ok(out:find('stargan: translation accuracy', 1, true), out)
  local r = R.scores(dir) -- evaluate.lua takes the script's own line
  T.close(r.accuracy, acc, 1e-6)
  T.eq(r.steps, 4)
  local _, _, l2 = check_run('stargan', '--quick --adv wgan_gp --n_critic 2 --steps 2', 2)
  T.ok(num(l2[2], 'gp') > 0, l2[2])
end)

T.case('srgan --quick: (input | output | target) sheets and PSNR', function()
  local _, dir, _, evals = check_run('srgan', '--quick', 4, {'test_sr_01.png'})
  -- 16 triples of 28x28 images, 4 a row
  T.eq(duel.image.load(dir .. '/samples_final.png'):size(), {1, 4 * 30 + 2, 12 * 30 + 2})
  T.eq(#evals, 1)
  local p, b = num(evals[1], 'psnr'), num(evals[1], 'psnr_bilinear')
  T.ok(p > 0 and p < 60 and b > 5 and b < 60, evals[1])
  local r = R.scores(dir)
  T.close(r.psnr, p, 1e-6)
  T.close(r.psnr_bilinear, b, 1e-6)
end)

T.case('unrolled --quick: scatter plots, mode counts, K in the summary', function()
  local out, dir, _, evals = check_run('unrolled', '--quick', 4, {'samples_000002.png'})
  quick_dir.unrolled = dir
  T.eq(#evals, 2)
  T.eq(num(evals[2], 'n_modes'), 8)
  T.ok(out:find('unrolled ring8 K=2 %(adam, minimax%): %d of 8 modes'), out)
  local r = R.scores(dir) -- the last mode count
  T.eq(r.modes, num(evals[2], 'modes'))
  T.close(r.high_quality, num(evals[2], 'high_quality'), 1e-6)
end)

-- G's gradient of f(G, D_K): with K = 2 it differs from K = 0 and from the gradient with D_K's
-- dependence on G cut (create_graph = false), and it is the true derivative: a central finite
-- difference of the unrolled loss along it matches its norm
T.case('zoo3.unroll: the generator gradient flows through the unrolled D steps', function()
  local zoo3 = require 'experiments.zoo_models3'
  local gan = duel.gan
  duel.manual_seed(7)
  local nn = duel.nn -- tanh nets: smooth, so that a finite difference is accurate
  local G = nn.Sequential{nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)}
  local D = nn.Sequential{nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1)}
  local real, z = duel.data.toy2d('ring8', 64), duel.randn(64, 4)
  for _, inner in ipairs{'sgd', 'adam'} do
    local oD = duel.optim.Adam(D, {lr = inner == 'sgd' and 0.5 or 0.05, betas = {0.5, 0.999}})
    for _ = 1, 3 do -- some Adam history, so that the unrolled Adam step depends on the gradient
      oD:zero_grad()
      gan.d_loss('nonsaturating', D(real), D(G(z):detach())):backward()
      oD:step()
    end
    local function loss(k, cg)
      local fake = G(z)
      local Dk = zoo3.unroll(D, oD, function(Df) return gan.d_loss('nonsaturating', Df(real), Df(fake)) end,
                             k, {inner = inner, create_graph = cg})
      return -gan.d_loss('nonsaturating', Dk(real), Dk(fake))
    end
    local function grads(k, cg)
      local g = duel.autograd.grad({loss(k, cg)}, G:parameters())
      local flat = {}
      for i, t in ipairs(g) do flat[i] = t:view(-1) end
      return duel.cat(flat, 1)
    end
    local g0, g2, cut = grads(0), grads(2), grads(2, false)
    local gn = g2:norm():item()
    T.ok(gn > 0, inner)
    T.ok((g2 - g0):norm():item() > 0.1 * gn, inner .. ': K=2 equals K=0')
    T.ok((g2 - cut):norm():item() > 0.02 * gn, inner .. ': nothing flows through the D steps')
    -- d/dh loss(theta + h u) at 0, u = g2 / |g2|, should be |g2|
    local ps, u, off = G:parameters(), {}, 0
    for i, p in ipairs(ps) do u[i] = g2:narrow(1, off + 1, p:numel()):view(p:size()) / gn; off = off + p:numel() end
    local function shifted(h)
      duel.no_grad(function() for i, p in ipairs(ps) do p:copy_(p + u[i] * h) end end)
      local v = loss(2):item()
      duel.no_grad(function() for i, p in ipairs(ps) do p:copy_(p - u[i] * h) end end)
      return v
    end
    local h = 1e-2
    local fd = (shifted(h) - shifted(-h)) / (2 * h)
    T.ok(math.abs(fd - gn) < 0.005 * gn, ('%s: finite difference %g, gradient norm %g'):format(inner, fd, gn))
  end
end)

T.case('unrolled: --stop_at then --resume logs the same losses as an uninterrupted run', function()
  local _, rc1, dir = run('unrolled', '--quick --stop_at 2')
  T.eq(rc1, 0)
  local out2, rc2 = run('unrolled', '--resume ' .. q(dir))
  T.eq(rc2, 0, out2)
  T.ok(out2:find('resumed at step 2', 1, true), out2)
  local ref = reference('unrolled')
  local a, b = metrics(dir), metrics(ref)
  T.eq(#a, 4)
  for i = 1, 4 do T.eq(a[i], b[i], 'metrics line ' .. i) end
  local ca, cb = duel.load(dir .. '/checkpoint.safetensors'), duel.load(ref .. '/checkpoint.safetensors')
  T.close(ca.G['5.weight'], cb.G['5.weight'], 0)
  T.close(ca.oD.state[1].exp_avg_sq, cb.oD.state[1].exp_avg_sq, 0)
end)

-- StarGAN draws its target domains from duel's RNG and batches images with labels
T.case('stargan: a resumed run draws the same domains and batches', function()
  local _, rc1, dir = run('stargan', '--quick --stop_at 3')
  T.eq(rc1, 0)
  local out2, rc2 = run('stargan', '--resume ' .. q(dir))
  T.eq(rc2, 0, out2)
  local ref = reference('stargan')
  local a, b = metrics(dir), metrics(ref)
  T.eq(#a, 4)
  for i = 1, 4 do T.eq(a[i], b[i], 'metrics line ' .. i) end
end)

T.case('scripts: a bad option value is an error naming it', function()
  local out, rc = run('stargan', '--adv hinge')
  T.ok(rc ~= 0 and out:find("stargan: --adv must be 'lsgan' or 'wgan_gp', got 'hinge'", 1, true), out)
  out, rc = run('unrolled', '--inner rmsprop')
  T.ok(rc ~= 0 and out:find("unrolled: --inner must be 'adam' or 'sgd', got 'rmsprop'", 1, true), out)
  out, rc = run('unrolled', '--unroll 1.5')
  T.ok(rc ~= 0 and out:find('unrolled: --unroll must be a whole number >= 0, got 1.5', 1, true), out)
end)

T.case('cleanup: the temporary run folders are removed', function()
  os.execute('rm -rf ' .. q(tmp))
  T.ok(not io.open(tmp, 'rb'))
end)
