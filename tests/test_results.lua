-- `make results` without training: the RESULTS.md renderer on a synthetic summary (targets,
-- floors, published rows, pending commands), JSON round trips, and the summary merge that keeps
-- earlier rows when a subset is rerun (the merge alone, then the real command on one --quick run).
local T = require 'tests.harness'
local R = require 'tools.results_lib'

local machine = {nproc = 2, cpu = 'Test CPU'}
local function toy(modes, hq) return {modes = modes, high_quality = hq, wall_s = 100, machine = machine} end

local function synthetic()
  return {
    floor = {frechet = 0.125, precision = 0.8, recall = 0.75, classifier_score = 9.1,
             n_train = 10000, n_test = 10000, seed = 1},
    runs = {
      ['toy2d-ring8-r1r2'] = {['1'] = toy(8, 0.95), ['2'] = toy(8, 0.93), ['3'] = toy(8, 0.97)},
      ['toy2d-ring8-wgangp'] = {['1'] = toy(7, 0.5)},
      ['dcgan'] = {['1'] = {frechet = 0.625, precision = 0.7, recall = 0.4, classifier_score = 8,
                            classes_covered = 10, wall_s = 300, machine = machine}},
      ['cgan'] = {['1'] = {frechet = 0.5, precision = 0.8, recall = 0.6, classifier_score = 7,
                           classes_covered = 10, cond_accuracy = 0.85, wall_s = 200,
                           machine = machine}},
      ['srgan'] = {['1'] = {psnr = 16.5, psnr_bilinear = 15.5, wall_s = 90, machine = machine}},
      ['pix2pix'] = {['1'] = {l1 = 0.11, psnr = 19, acc_output = 0.826, acc_target = 0.918,
                              acc_ratio = 0.8998, wall_s = 120, machine = machine}},
      ['cyclegan'] = {['1'] = {acc_A2B = 0.95, acc_B2A = 0.85, acc_real_A = 0.97,
                               acc_real_B = 0.96, cycle_l1_A = 0.08, cycle_l1_B = 0.1,
                               wall_s = 250, machine = machine}},
    },
  }
end

-- a fresh folder (with runs/ in it when asked) for one command's results
local function tmpdir(with_runs)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute('mkdir -p ' .. dir .. (with_runs and '/runs' or ''))
  return dir
end

local function has(md, s) T.ok(md:find(s, 1, true), 'RESULTS.md lacks: ' .. s) end

T.case('RESULTS.md from a synthetic summary: means, targets, floors, pending rows', function()
  local md = R.render(synthetic(), {seeds = {1, 2, 3}})
  -- mean ± sample std over 3 seeds: HQ 95, 93, 97 -> 95.0 ± 2.0
  has(md, '| toy2d-ring8-r1r2 | 1,2,3 | 8.00 ± 0.00 / 8 | 95.0 ± 2.0 | 100 s ± 0 | met (8/8, HQ >= 90%) |')
  has(md, '| toy2d-ring8-wgangp | 1 | 7.00 / 8 | 50.0 | 100 s | 1.00 modes short, HQ 40.0 points short')
  has(md, '| toy2d-ring8-vanilla | pending |')
  -- the floor and DCGAN's distance from it: 0.625 / 0.125 = 5x, recall 0.1 short
  has(md, 'Fréchet **0.1250**')
  has(md, '| dcgan | 1 | 0.625 | 5.0x | 0.700 | 0.400 | 8.00 | 10.0 | – | 300 s | Fréchet 5.0x floor (target <= 3x), recall 0.10 short |')
  has(md, '| cgan | 1 | 0.500 | 4.0x | 0.800 | 0.600 | 7.00 | 10.0 | conditional accuracy 0.850 | 200 s | no target |')
  has(md, '| srgan | 1 | PSNR 16.50 dB (bilinear 15.50 dB) | 90 s |')
  has(md, '| stargan | pending | – | – |')
  has(md, 'B->A 5.0 points short')
  has(md, '| pix2pix | 1 | L1 0.1100, PSNR 19.00 dB; accuracy on outputs 0.826, on targets 0.918, ratio 0.900 | 120 s | ratio 0.8998: 0.0002 short of 0.9 |')
  -- published rows with their setup
  has(md, '| PacGAN Table 1: PacGAN4 | 7.8±0.1 | 95.9±1.4 | 24.8±0.2 | 93.6±0.6 |')
  has(md, '| VEEGAN Table 1: VEEGAN | 8 | 52.9 | 24.6 | 40 |')
  has(md, 'GAN_REFERENCE.md 3.3')
  -- machine and pending commands
  has(md, '2 cores, Test CPU')
  has(md, '`RESULTS_ONLY=toy2d-ring8-wgangp RESULTS_SEEDS=2,3 make results`')
  has(md, '`RESULTS_ONLY=toy2d-grid25-r1r2 RESULTS_SEEDS=1,2,3 make results`')
  T.ok(not md:find('RESULTS_ONLY=toy2d-ring8-r1r2 ', 1, true), 'complete rows are not pending')
  -- without a floor the ratio is not invented
  local s = synthetic()
  s.floor = nil
  md = R.render(s, {seeds = {1, 2, 3}})
  has(md, 'Floor: pending')
  has(md, '| dcgan | 1 | 0.625 | – |')
  T.ok(not md:find('fgan runs its default', 1, true), 'no fgan row: no note on it')
end)

T.case('RESULTS.md notes fgan rows equal to dcgan\'s, and only those seeds', function()
  local s = synthetic()
  local d1 = s.runs.dcgan['1']
  s.runs.dcgan['2'] = {frechet = 0.7, precision = 0.7, recall = 0.3, classifier_score = 8,
                       classes_covered = 10, wall_s = 300, machine = machine}
  s.runs.fgan = {['1'] = {frechet = d1.frechet, precision = d1.precision, recall = d1.recall,
                          classifier_score = 8, classes_covered = 10, wall_s = 310,
                          machine = machine},
                 ['2'] = {frechet = 0.71, precision = 0.7, recall = 0.3, classifier_score = 8,
                          classes_covered = 10, wall_s = 310, machine = machine}}
  local md = R.render(s, {seeds = {1, 2, 3}})
  has(md, 'so for seed(s) 1 its scores equal dcgan\'s exactly')
  s.runs.fgan['1'].frechet = 0.626
  md = R.render(s, {seeds = {1, 2, 3}})
  T.ok(not md:find('fgan runs its default', 1, true), 'differing rows: no note')
end)

T.case('RESULTS.md leaves out runs recorded with other options than the list\'s', function()
  local s = synthetic()
  local d = s.runs.dcgan['1']
  local function copy(args)
    local r = {}
    for k, v in pairs(d) do r[k] = v end
    r.args = args
    return r
  end
  local now = R.BY_NAME.dcgan.args
  T.ok(#now > 0, 'dcgan runs with options')
  s.runs.dcgan = {['1'] = copy({'--steps', '1'}), ['2'] = copy(now), ['3'] = copy(nil)}
  local md = R.render(s, {seeds = {1, 2, 3}})
  has(md, '| dcgan | 2,3 | 0.625 ± 0.000 |') -- seed 3: recorded before args were
  has(md, '`RESULTS_ONLY=dcgan RESULTS_SEEDS=1 make results`')
  has(md, ('Options beyond the scripts\' defaults: dcgan `%s`'):format(table.concat(now, ' ')))
  s.runs.dcgan['2'] = copy({})
  has(R.render(s, {seeds = {1, 2, 3}}), '| dcgan | 3 | 0.625 |')
end)

T.case('JSON round trip and summary merge keep earlier rows', function()
  local s = synthetic()
  local back = R.json_decode(R.json_encode(s, true))
  T.eq(back.runs['toy2d-ring8-r1r2']['2'].high_quality, 0.93)
  T.eq(back.floor.frechet, 0.125)
  T.eq(back.runs.dcgan['1'].machine.cpu, 'Test CPU')
  T.eq(R.json_decode('{"a":[1,2,{"b":"x\\"y"}],"c":-1.5e-3,"d":true}').a[3].b, 'x"y')
  T.raises('json:', function() R.json_decode('{"a":1,}') end)
  -- rerun seed 1 of wgangp only: it replaces that row; every other row and the floor stay
  local merged = R.merge(back, {runs = {['toy2d-ring8-wgangp'] = {['1'] = toy(8, 0.91)},
                                        ['toy2d-grid25-r1r2'] = {['2'] = toy(25, 0.92)}}})
  T.eq(merged.runs['toy2d-ring8-wgangp']['1'].modes, 8)
  T.eq(merged.runs['toy2d-ring8-r1r2']['3'].high_quality, 0.97)
  T.eq(merged.runs['toy2d-grid25-r1r2']['2'].modes, 25)
  T.eq(merged.runs.dcgan['1'].frechet, 0.625)
  T.eq(merged.floor.frechet, 0.125)
  T.eq(R.merge(merged, {floor = {frechet = 0.2}}).floor.frechet, 0.2)
end)

T.case('tools/results.lua reruns a subset into an existing summary', function()
  local dir = tmpdir()
  R.write_json(dir .. '/summary.json', synthetic())
  local p = io.popen(('RESULTS_DIR=%s RESULTS_MD=%s/RESULTS.md RESULTS_ONLY=toy2d-ring8-vanilla '
    .. "RESULTS_SEEDS=2 RESULTS_EXTRA='--quick --n_eval 100' RESULTS_NICE=0 luajit tools/results.lua 2>&1; echo rc=$?")
    :format(dir, dir))
  local out = p:read('*a')
  p:close()
  T.ok(out:find('rc=0', 1, true), out)
  local s = R.read_json(dir .. '/summary.json')
  local row = s.runs['toy2d-ring8-vanilla']['2']
  T.ok(row and row.n == 2500 and row.n_modes == 8 and row.seed == 2, out)
  T.ok(row.wall_s > 0 and row.machine.nproc >= 1, 'wall time and machine recorded')
  T.eq(table.concat(row.args, ' '), '--data ring8 --loss nonsaturating --penalty none')
  T.eq(s.runs['toy2d-ring8-r1r2']['1'].high_quality, 0.95) -- earlier rows kept
  T.eq(s.floor.frechet, 0.125)
  local md = io.open(dir .. '/RESULTS.md'):read('*a')
  has(md, '| toy2d-ring8-vanilla | 2 |')
  has(md, '| toy2d-ring8-r1r2 | 1,2,3 |')
  T.ok(io.open(dir .. '/runs/toy2d-ring8-vanilla-s2.json'), 'per-run JSON')
  local ev = io.open(row.run_dir .. '/metrics.jsonl'):read('*a')
  T.ok(ev:find('"eval":"final"', 1, true), 'the final eval line in the run folder')
  os.execute('rm -rf ' .. dir)
end)

T.case('tools/results.lua continues a run cut short, from its .pending marker', function()
  local dir = tmpdir(true)
  local extra = '--quick --n_eval 100'
  local cmd = R.command(R.BY_NAME['toy2d-ring8-vanilla'], 2, {nice = 0, out = dir, extra = extra})
  -- the first command's run, stopped after step 2 of the quick run's 6
  local p = io.popen((cmd:gsub(' 2>&1$', ' --stop_at 2 2>&1')))
  local first = p:read('*a')
  p:close()
  local run_dir = first:match('toy2d: (%S+)\n')
  T.ok(run_dir and first:find('stopped after step 2', 1, true), first)
  local f = io.open(dir .. '/runs/toy2d-ring8-vanilla-s2.pending', 'w')
  f:write(cmd, '\n', run_dir, '\n', '40.0\n')
  f:close()
  p = io.popen(('RESULTS_DIR=%s RESULTS_MD=%s/RESULTS.md RESULTS_ONLY=toy2d-ring8-vanilla '
    .. "RESULTS_SEEDS=2 RESULTS_EXTRA='%s' RESULTS_NICE=0 luajit tools/results.lua 2>&1; echo rc=$?")
    :format(dir, dir, extra))
  local out = p:read('*a')
  p:close()
  T.ok(out:find('rc=0', 1, true) and out:find('resumed at step 2', 1, true), out)
  local row = R.read_json(dir .. '/summary.json').runs['toy2d-ring8-vanilla']['2']
  T.eq(row.run_dir, run_dir)
  T.ok(row.resumed == true and row.wall_s >= 40, 'resumed, with the earlier wall time added')
  T.ok(not io.open(dir .. '/runs/toy2d-ring8-vanilla-s2.pending'), 'the marker goes once scored')
  -- a marker from another command line is not continued: a fresh folder
  f = io.open(dir .. '/runs/toy2d-ring8-vanilla-s2.pending', 'w')
  f:write(cmd:gsub('%-%-seed 2', '--seed 3'), '\n', run_dir, '\n', '1.0\n')
  f:close()
  p = io.popen(('RESULTS_DIR=%s RESULTS_MD=%s/RESULTS.md RESULTS_ONLY=toy2d-ring8-vanilla '
    .. "RESULTS_SEEDS=2 RESULTS_EXTRA='%s' RESULTS_NICE=0 luajit tools/results.lua 2>&1; echo rc=$?")
    :format(dir, dir, extra))
  out = p:read('*a')
  p:close()
  row = R.read_json(dir .. '/summary.json').runs['toy2d-ring8-vanilla']['2']
  T.ok(out:find('rc=0', 1, true) and not out:find('resumed', 1, true), out)
  T.ok(row.run_dir ~= run_dir and not row.resumed, 'a fresh run')
  os.execute('rm -rf ' .. dir)
end)

T.case('tools/results.lua runs RESULTS_JOBS side by side and records every one', function()
  local dir = tmpdir()
  local env = ('RESULTS_DIR=%s RESULTS_MD=%s/RESULTS.md RESULTS_ONLY=toy2d-ring8-vanilla,'
    .. "toy2d-grid25-vanilla RESULTS_SEEDS=1,2 RESULTS_EXTRA='--quick --n_eval 100' "
    .. 'RESULTS_NICE=0'):format(dir, dir)
  local p = io.popen(env .. ' RESULTS_JOBS=3 luajit tools/results.lua 2>&1; echo rc=$?')
  local out = p:read('*a')
  p:close()
  T.ok(out:find('rc=0', 1, true), out)
  local runs = R.read_json(dir .. '/summary.json').runs
  for _, name in ipairs({'toy2d-ring8-vanilla', 'toy2d-grid25-vanilla'}) do
    for seed = 1, 2 do
      local r = runs[name][tostring(seed)]
      T.ok(r and r.seed == seed and r.n_modes == (name:find('ring8') and 8 or 25), name .. ' ' .. seed .. ':\n' .. out)
      T.ok(io.open(('%s/runs/%s-s%d.log'):format(dir, name, seed)), 'its log kept')
    end
  end
  T.ok(out:find('[toy2d-grid25-vanilla s2] done', 1, true), 'progress lines name their run')
  p = io.popen(env .. ' RESULTS_JOBS=0 luajit tools/results.lua 2>&1; echo rc=$?')
  out = p:read('*a')
  p:close()
  T.ok(out:find('RESULTS_JOBS must be a whole number >= 1, got 0', 1, true)
       and not out:find('rc=0', 1, true), out)
  os.execute('rm -rf ' .. dir)
end)

T.case('tools/results.lua: Ctrl-C stops the command and its runs, whose markers stay', function()
  local dir = tmpdir()
  -- its own process group, as a terminal gives a command; the signal goes to the whole group
  os.execute(("setsid sh -c 'echo $$ > %s/pgid; exec env RESULTS_DIR=%s RESULTS_MD=%s/R.md "
    .. 'RESULTS_ONLY=toy2d-ring8-vanilla RESULTS_SEEDS=1,2,3 RESULTS_JOBS=2 RESULTS_NICE=0 '
    .. "RESULTS_EXTRA=\"--steps 100000\" luajit tools/results.lua > %s/out 2>&1' "
    .. '> /dev/null 2>&1 &'):format(dir, dir, dir, dir))
  local marked = false
  for _ = 1, 100 do -- both runs under way: their folders named in the markers
    os.execute('sleep 0.1')
    local a = io.open(dir .. '/runs/toy2d-ring8-vanilla-s1.pending')
    local b = io.open(dir .. '/runs/toy2d-ring8-vanilla-s2.pending')
    if a then a:close() end
    if b then b:close() end
    marked = a and b
    if marked then break end
  end
  local pgid = io.open(dir .. '/pgid'):read('*n')
  local ffi = require 'ffi'
  pcall(ffi.cdef, 'int kill(int pid, int sig);')
  ffi.C.kill(-pgid, 2)
  local gone = false
  for _ = 1, 100 do -- every process of the group ends
    os.execute('sleep 0.1')
    gone = ffi.C.kill(-pgid, 0) ~= 0
    if gone then break end
  end
  if not gone then ffi.C.kill(-pgid, 9) end -- the test fails, and leaves nothing running
  local out = io.open(dir .. '/out'):read('*a')
  T.ok(marked, 'markers written while the runs were under way:\n' .. out)
  T.ok(gone, 'no run outlives the command:\n' .. out)
  T.ok(out:find('results: interrupted; the same command continues the unfinished runs\n', 1,
                true), out)
  -- (before the core held signals back around oneDNN calls, a run now and then aborted here
  -- with "corrupted size vs. prev_size", which its shell reported: docs/performance.md)
  T.ok(not out:find('Aborted', 1, true), out)
  T.ok(not out:find('seed 3', 1, true), 'no run starts after the interrupt')
  T.ok(io.open(dir .. '/runs/toy2d-ring8-vanilla-s1.pending'), 'the markers stay')
  os.execute('rm -rf ' .. dir)
end)

T.case('tools/results.lua leaves a run to the results command still following it', function()
  local dir = tmpdir(true)
  -- a live process that reads as a results command (its arguments name results.lua)
  local p = io.popen("sh -c 'sleep 20; true' results.lua > /dev/null 2>&1 & echo $!")
  local pid = p:read('*n')
  p:close()
  local extra = '--quick --n_eval 100'
  local cmd = R.command(R.BY_NAME['toy2d-ring8-vanilla'], 1, {nice = 0, out = dir, extra = extra})
  local f = io.open(dir .. '/runs/toy2d-ring8-vanilla-s1.pending', 'w')
  f:write(cmd, '\n', dir .. '/runs/toy2d-x', '\n', '5.0\n', pid, '\n')
  f:close()
  local env = ('RESULTS_DIR=%s RESULTS_MD=%s/RESULTS.md RESULTS_ONLY=toy2d-ring8-vanilla '
    .. "RESULTS_EXTRA='%s' RESULTS_NICE=0 "):format(dir, dir, extra)
  p = io.popen(env .. 'RESULTS_SEEDS=1,2 luajit tools/results.lua 2>&1; echo rc=$?')
  local out = p:read('*a')
  p:close()
  os.execute('kill ' .. pid)
  T.ok(out:find(('results: toy2d-ring8-vanilla seed 1 is under way in results process %d'
    .. ' (%s/runs/toy2d-ring8-vanilla-s1.pending); not run twice'):format(pid, dir), 1, true), out)
  T.ok(out:find('rc=0', 1, true) and out:find('toy2d-ring8-vanilla seed 2 done', 1, true), out)
  local runs = R.read_json(dir .. '/summary.json').runs['toy2d-ring8-vanilla']
  T.ok(runs['1'] == nil and runs['2'], 'seed 1 left alone, seed 2 run')
  T.ok(io.open(dir .. '/runs/toy2d-ring8-vanilla-s1.pending'), "the other command's marker stays")
  os.execute('rm -rf ' .. dir)
end)
