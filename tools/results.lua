-- tools/results.lua: `make results`. Runs every default experiment (tools/results_lib.lua's list)
-- for each seed, one run at a time, scores it with experiments/evaluate.lua, stores the row in
-- results/runs/<experiment>-s<seed>.json, merges it into results/summary.json and rewrites
-- RESULTS.md after every run (so an interrupted command keeps what finished). A run cut short
-- (the command killed, the machine restarted) is continued from its last checkpoint by the next
-- command for the same row, seed and options, through the scripts' --resume.
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

-- <name>-s<seed>.pending, while a run is under way: its command, its folder and the wall time its
-- commands have spent so far (rewritten every 30 s). The next command with the same command line
-- continues that folder; one without a checkpoint yet starts afresh.
local function pending_read(path, cmd)
  local f = io.open(path, 'r')
  if not f then return nil end
  local was, dir, spent = f:read('*l'), f:read('*l'), tonumber(f:read('*l'))
  f:close()
  local ck = dir and io.open(dir .. '/checkpoint.safetensors', 'r')
  if ck then ck:close() end
  if was == cmd and ck and spent then return dir, spent end
end

local function pending_write(path, cmd, dir, spent)
  local f = assert(io.open(path .. '.tmp', 'w'))
  f:write(cmd, '\n', dir, '\n', ('%.1f'):format(spent), '\n')
  f:close()
  assert(os.rename(path .. '.tmp', path))
end

-- seed-major: every experiment's seed 1 before any seed 2, so a cut-short command still covers
-- every row once
for _, seed in ipairs(seeds) do
  for _, e in ipairs(chosen) do
    local cmd = R.command(e, seed, {nice = nice, out = OUT, extra = os.getenv('RESULTS_EXTRA')})
    local marker = ('%s/runs/%s-s%d.pending'):format(OUT, e.name, seed)
    local dir, spent = pending_read(marker, cmd)
    print(('results: %s seed %d: %s%s'):format(e.name, seed, cmd,
      dir and (' (continuing %s, %.0f s spent)'):format(dir, spent) or ''))
    local t0, saved = duel.clock(), duel.clock()
    local p = io.popen(dir and ("%s --resume '%s'"):format(cmd, dir) or cmd)
    local resumed, last = dir ~= nil, {}
    spent = spent or 0
    for line in p:lines() do
      if not dir then
        dir = line:match('^' .. e.script .. ': (%S+)$')
        if dir then pending_write(marker, cmd, dir, spent) end
      elseif duel.clock() - saved > 30 then
        saved = duel.clock()
        pending_write(marker, cmd, dir, spent + saved - t0)
      end
      last[#last + 1] = line
      if #last > 20 then table.remove(last, 1) end
      if line:match('^step %d+: ') or line:match('^done') or line:match('^resumed') then
        print('  ' .. line)
      end
    end
    local ok = p:close()
    local wall = spent + duel.clock() - t0
    if not dir or (ok ~= true and ok ~= 0) then
      print(('results: %s seed %d failed; its last lines:\n%s'):format(e.name, seed,
        table.concat(last, '\n')))
    else
      local r = ev.run(dir)
      ev.append(dir, r)
      r.wall_s, r.seed, r.machine, r.run_dir, r.args = wall, seed, machine, dir, e.args
      r.resumed = resumed or nil
      r.date = os.date('!%Y-%m-%d %H:%M UTC')
      R.write_json(('%s/runs/%s-s%d.json'):format(OUT, e.name, seed), r)
      record({runs = {[e.name] = {[tostring(seed)] = r}}})
      os.remove(marker)
      print(('results: %s seed %d done in %.0f s: %s'):format(e.name, seed, wall,
        R.json_encode(r)))
    end
  end
end
print('wrote ' .. SUMMARY .. ' and ' .. MD)
