-- tools/results.lua: `make results`. Runs every default experiment (tools/results_lib.lua's list)
-- for each seed, one run at a time, scores it with experiments/evaluate.lua, stores the row in
-- results/runs/<experiment>-s<seed>.json, merges it into results/summary.json and rewrites
-- RESULTS.md after every run (so an interrupted command keeps what finished).
--   RESULTS_ONLY=toy2d-ring8-r1r2,dcgan   only these experiments ('floor': the real-vs-real
--                                         Frechet floor alone); default: all, floor included
--   RESULTS_SEEDS=1,2                     seeds (default 1,2,3)
--   RESULTS_NICE=5                        children run under `nice -n` this (default 5)
--   RESULTS_EXTRA='--quick'               more options for every run (smoke tests only)
--   RESULTS_DIR=results RESULTS_MD=RESULTS.md   where the summary and the page go
--   luajit tools/results.lua --render     rewrite RESULTS.md from results/summary.json only
-- Runs go to results/runs/ (gitignored); results/summary.json and RESULTS.md are committed.
local duel = require 'duel'
local R = require 'tools.results_lib'

local OUT = os.getenv('RESULTS_DIR') or 'results'
local SUMMARY = OUT .. '/summary.json'
local MD = os.getenv('RESULTS_MD') or 'RESULTS.md'

local function list(s)
  local t = {}
  for x in (s or ''):gmatch('[^,%s]+') do t[#t + 1] = x end
  return t
end

local seeds = {}
for _, s in ipairs(list(os.getenv('RESULTS_SEEDS') or '1,2,3')) do
  seeds[#seeds + 1] = tonumber(s) or error(('results: RESULTS_SEEDS must be numbers, got %s'):format(s), 0)
end

local function render()
  local summary = R.read_json(SUMMARY) or {}
  local f = assert(io.open(MD .. '.tmp', 'w'))
  f:write(R.render(summary, {seeds = {1, 2, 3}}))
  f:close()
  assert(os.rename(MD .. '.tmp', MD))
end

if arg[1] == '--render' then render(); print('wrote ' .. MD); return end
if arg[1] then error(('results: the only argument is --render, got %s'):format(arg[1]), 0) end

local function sh(cmd)
  local p = io.popen(cmd)
  local s = p:read('*a')
  p:close()
  return s
end

local machine = {
  nproc = tonumber(sh('nproc'):match('%d+')),
  cpu = (sh("grep -m1 'model name' /proc/cpuinfo"):match(':%s*(.-)%s*$')) or '?',
}

local only = list(os.getenv('RESULTS_ONLY'))
local chosen, want_floor = {}, #only == 0
if #only == 0 then chosen = R.EXPERIMENTS else
  for _, name in ipairs(only) do
    if name == 'floor' then want_floor = true
    else
      chosen[#chosen + 1] = R.BY_NAME[name] or error(('results: unknown experiment %s (one of: %s)')
        :format(name, (function()
          local n = {}
          for _, e in ipairs(R.EXPERIMENTS) do n[#n + 1] = e.name end
          return table.concat(n, ', ') .. ', floor'
        end)()), 0)
    end
  end
end

local ev = require 'experiments.evaluate'
local nice = tonumber(os.getenv('RESULTS_NICE') or '5')
local function record(new)
  -- read again right before writing: another results command may have added rows meanwhile
  local summary = R.merge(R.read_json(SUMMARY) or {}, new)
  R.write_json(SUMMARY, summary)
  render()
end

duel.clock() -- (LuaJIT loads the core before the first run)
os.execute(('mkdir -p %s/runs'):format(OUT))

if want_floor then
  print('results: real-vs-real floor')
  local fl = ev.floor()
  fl.machine = machine
  record({floor = fl})
  print(('floor: Frechet %.4f, precision %.3f, recall %.3f (%.0f s)'):format(fl.frechet,
    fl.precision, fl.recall, fl.wall_s))
end

-- seed-major: every experiment's seed 1 before any seed 2, so a cut-short command still covers
-- every row once
for _, seed in ipairs(seeds) do
  for _, e in ipairs(chosen) do
    local args = {}
    for i, a in ipairs(e.args) do args[i] = ("'%s'"):format(a) end
    local cmd = ('nice -n %d luajit experiments/%s.lua %s --seed %d --out %s/runs %s 2>&1'):format(
      nice, e.script, table.concat(args, ' '), seed, OUT, os.getenv('RESULTS_EXTRA') or '')
    print(('results: %s seed %d: %s'):format(e.name, seed, cmd))
    local t0 = duel.clock()
    local p = io.popen(cmd)
    local dir, last = nil, {}
    for line in p:lines() do
      dir = dir or line:match('^' .. e.script .. ': (%S+)$')
      last[#last + 1] = line
      if #last > 20 then table.remove(last, 1) end
      if line:match('^step %d+: ') or line:match('^done') then print('  ' .. line) end
    end
    local ok = p:close()
    local wall = duel.clock() - t0
    if not dir or (ok ~= true and ok ~= 0) then
      print(('results: %s seed %d failed; its last lines:\n%s'):format(e.name, seed,
        table.concat(last, '\n')))
    else
      local r = ev.run(dir)
      ev.append(dir, r)
      r.wall_s, r.seed, r.machine, r.run_dir, r.args = wall, seed, machine, dir, e.args
      r.date = os.date('!%Y-%m-%d %H:%M UTC')
      R.write_json(('%s/runs/%s-s%d.json'):format(OUT, e.name, seed), r)
      record({runs = {[e.name] = {[tostring(seed)] = r}}})
      print(('results: %s seed %d done in %.0f s: %s'):format(e.name, seed, wall,
        R.json_encode(r)))
    end
  end
end
print('wrote ' .. SUMMARY .. ' and ' .. MD)
