-- The conditional / structured-latent zoo scripts (experiments/cgan, infogan, stylegan, sagan):
-- each runs with --quick into a temporary folder and writes its grids, metrics.jsonl with finite
-- losses, loss curve and a checkpoint; infogan also scores its categorical code (cluster accuracy
-- in [0,1]); infogan stopped with --stop_at and resumed logs the same losses, bit for bit, as an
-- uninterrupted run.
local T = require 'tests.harness'
local duel = require 'duel'

local R = require('tests.experiment_runs')()
local tmp, q, run, exists = R.tmp, R.q, R.run, R.exists

-- evaluate.lua's image scores of a quick run: finite, in range, on the images asked for
local function check_scores(dir)
  local r = R.scores(dir)
  T.eq(r.n, 100)
  T.eq(r.n_test, 200)
  T.ok(r.frechet >= 0 and r.frechet < 1e6, 'frechet ' .. tostring(r.frechet))
  T.ok(r.precision >= 0 and r.precision <= 1 and r.recall >= 0 and r.recall <= 1, 'precision/recall')
  T.ok(r.classifier_score >= 1 - 1e-4 and r.classifier_score <= 10 + 1e-4, 'classifier score')
  T.eq(r.steps, 4)
  return r
end

-- metrics lines without the eval lines (and without the time, which differs between runs)
local function metric_lines(dir)
  local lines = {}
  for line in io.lines(dir .. '/metrics.jsonl') do
    if not line:find('"eval":', 1, true) then
      lines[#lines + 1] = line:gsub(',?"time":[^,}]+', '')
    end
  end
  return lines
end

local function check_run(script, args, steps, files, keys)
  local out, rc, dir = run(script, args)
  T.eq(rc, 0, out)
  T.ok(dir, out)
  for _, f in ipairs{'options.txt', 'metrics.jsonl', 'loss.png', 'samples_final.png',
                     'checkpoint.safetensors', unpack(files)} do
    T.ok(exists(dir .. '/' .. f), script .. ': no ' .. f .. '\n' .. out)
  end
  local lines = metric_lines(dir)
  T.eq(#lines, steps, script .. ' metrics lines')
  for _, line in ipairs(lines) do
    for _, k in ipairs(keys) do -- every logged loss is there and finite (json null otherwise)
      local v = tonumber(line:match('"' .. k .. '":([^,}]+)'))
      T.ok(v and v == v and math.abs(v) < 1e30, script .. ': ' .. k .. ' in ' .. line)
    end
  end
  local ck = duel.load(dir .. '/checkpoint.safetensors')
  T.eq(ck.step, steps)
  T.ok(type(ck.G) == 'table' and type(ck.D) == 'table' and type(ck.oG) == 'table', script)
  return out, dir, duel.image.load(dir .. '/samples_final.png'), ck
end

T.case('cgan --quick: one row per class, interpolation strip, checkpoint', function()
  local _, dir, img = check_run('cgan', '--quick', 4, {'samples_000002.png', 'interpolation.png'},
                                {'d_loss', 'g_loss'})
  T.eq(img:size(), {1, 10 * 34 + 2, 10 * 34 + 2}) -- 10 classes x 10 latents of 32x32
  local r = check_scores(dir)
  -- hits out of 100 samples, 10 of each class
  T.ok(r.cond_accuracy >= 0 and r.cond_accuracy <= 1 and math.abs(r.cond_accuracy * 100
       - math.floor(r.cond_accuracy * 100 + 0.5)) < 1e-9, 'cond_accuracy ' .. r.cond_accuracy)
end)

T.case('sagan --quick: attention, conditional BN, projection D with spectral norm', function()
  local out, dir, img, ck = check_run('sagan', '--quick', 4, {'interpolation.png'},
                                      {'d_loss', 'g_loss', 'gamma_g'})
  local r = check_scores(dir)
  T.ok(r.cond_accuracy >= 0 and r.cond_accuracy <= 1, 'cond_accuracy')
  T.eq(img:size(), {1, 10 * 34 + 2, 10 * 34 + 2})
  T.ok(out:find('(attn): SelfAttention2d', 1, true), out)
  T.ok(out:find('ConditionalBatchNorm2d', 1, true), out)
  T.ok(ck.G['attn.gamma'] and ck.D['embed.weight'] and ck.D['psi.weight_u'], 'checkpoint keys')
end)

T.case('stylegan --quick: mapping, AdaIN, noise inputs, style-mixing grid, R1', function()
  local out, dir, img, ck = check_run('stylegan', '--quick', 4,
    {'styles_mixed.png', 'interpolation.png'}, {'d_loss', 'g_loss', 'r1'})
  T.eq(img:size(), {1, 8 * 34 + 2, 8 * 34 + 2})
  T.ok(out:find('AdaIN(16, 64)', 1, true) and out:find('NoiseInput', 1, true), out)
  T.eq(duel.image.load(dir .. '/styles_mixed.png'):size(), {1, 6 * 34 + 2, 6 * 34 + 2})
  T.ok(type(ck.oM) == 'table' and ck.G['noise5.scale'], 'mapping optimizer and noise scales saved')
  check_scores(dir)
end)

T.case('infogan --quick: code grids, finite information terms, cluster accuracy', function()
  local out, dir, img = check_run('infogan', '--quick', 4,
    {'samples_000002.png', 'cont1_final.png', 'cont2_final.png'},
    {'d_loss', 'g_loss', 'mi_cat', 'nll_cont'})
  T.eq(img:size(), {1, 10 * 34 + 2, 10 * 34 + 2}) -- rows: the 10 categorical values
  local acc = tonumber(out:match('cluster accuracy ([%d%.]+)'))
  T.ok(acc and acc >= 0.1 - 1e-9 and acc <= 1, out) -- a best matching is never below chance
  local evals = 0
  for line in io.lines(dir .. '/metrics.jsonl') do
    if line:find('"eval":"cluster_accuracy"', 1, true) then
      evals = evals + 1
      T.close(tonumber(line:match('"cluster_accuracy":([^,}]+)')), acc, 1e-4)
      T.ok(line:find('"n":200', 1, true), line)
    end
  end
  T.eq(evals, 1)
  local r = check_scores(dir) -- the image scores, and the script's own cluster accuracy
  T.close(r.cluster_accuracy, acc, 1e-4)
end)

T.case('infogan: --stop_at then --resume logs the same losses as an uninterrupted run', function()
  local _, rc1, dir = run('infogan', '--quick --stop_at 3 --eval_n 20')
  T.eq(rc1, 0)
  T.eq(#metric_lines(dir), 3)
  local out2, rc2 = run('infogan', '--resume ' .. q(dir))
  T.eq(rc2, 0, out2)
  T.ok(out2:find('resumed at step 3', 1, true), out2)
  local _, rc3, ref = run('infogan', '--quick --eval_n 20')
  T.eq(rc3, 0)
  local a, b = metric_lines(dir), metric_lines(ref)
  T.eq(#a, 4)
  for i = 1, 4 do T.eq(a[i], b[i], 'metrics line ' .. i) end
  local ca = duel.load(dir .. '/checkpoint.safetensors')
  local cb = duel.load(ref .. '/checkpoint.safetensors')
  T.close(ca.D['q.4.weight'], cb.D['q.4.weight'], 0)
  T.close(ca.oG.state[1].exp_avg_sq, cb.oG.state[1].exp_avg_sq, 0)
end)

T.case('cleanup: the temporary run folders are removed', function()
  os.execute('rm -rf ' .. q(tmp))
  T.ok(not io.open(tmp .. '/options.txt', 'rb'))
end)
