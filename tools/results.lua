-- tools/results.lua: `make results`. Runs every default experiment (tools/results_lib.lua's list)
-- for each seed (one run at a time, or RESULTS_JOBS side by side), scores it with
-- experiments/evaluate.lua, stores the row in results/runs/<experiment>-s<seed>.json, merges it
-- into results/summary.json and rewrites RESULTS.md after every run (so an interrupted command
-- keeps what finished). A run cut short (the command killed, the machine restarted) is continued
-- from its last checkpoint by the next command for the same row, seed and options, through the
-- scripts' --resume.
--   RESULTS_ONLY=toy2d-ring8-r1r2,dcgan   only these experiments ('floor': the real-vs-real
--                                         Frechet floor alone); default: all, floor included
--   RESULTS_SEEDS=1,2                     seeds (default 1,2,3)
--   RESULTS_NICE=5                        children run under `nice -n` this (default 5)
--   RESULTS_JOBS=3                        runs side by side (default 1; the scripts' own
--                                         --threads still apply: the dcgan row uses 1)
--   RESULTS_EXTRA='--quick'               more options for every run (smoke tests only)
--   RESULTS_DIR=results RESULTS_MD=RESULTS.md   where the summary and the page go
--   luajit tools/results.lua --render     rewrite RESULTS.md from results/summary.json only
-- Runs go to results/runs/ (gitignored); results/summary.json and RESULTS.md are committed.
local duel = require 'duel'
local R = require 'tools.results_lib'
io.stdout:setvbuf('line') -- progress shows through a pipe (tee) as it happens

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

-- <name>-s<seed>.pending, while a run is under way: its command, its folder, the wall time its
-- commands have spent so far (rewritten every 30 s) and the process id of the results command
-- following it. The next command with the same command line continues that folder; one without
-- a checkpoint yet starts afresh; a run whose results command is still alive is left to it.
local ffi = require 'ffi'
pcall(ffi.cdef, 'int getpid(void);')
local PID = ffi.C.getpid()

local function results_process(pid) -- a live tools/results.lua other than this one
  local f = pid and pid ~= PID and io.open(('/proc/%d/cmdline'):format(pid), 'rb')
  if not f then return false end
  local c = f:read('*a')
  f:close()
  return c:find('results.lua', 1, true) ~= nil
end

local function pending_read(path, cmd)
  local f = io.open(path, 'r')
  if not f then return nil end
  local was, dir, spent, pid = f:read('*l'), f:read('*l'), tonumber(f:read('*l')), f:read('*n')
  f:close()
  if results_process(pid) then return nil, nil, pid end
  local ck = dir and io.open(dir .. '/checkpoint.safetensors', 'r')
  if ck then ck:close() end
  if was == cmd and ck and spent then return dir, spent end
end

local function pending_write(path, cmd, dir, spent)
  local f = assert(io.open(path .. '.tmp', 'w'))
  f:write(cmd, '\n', dir, '\n', ('%.1f'):format(spent), '\n', PID, '\n')
  f:close()
  assert(os.rename(path .. '.tmp', path))
end

local jobs = tonumber(os.getenv('RESULTS_JOBS') or '1')
if not jobs or jobs < 1 or jobs % 1 ~= 0 then
  error(('results: RESULTS_JOBS must be a whole number >= 1, got %s'):format(
    os.getenv('RESULTS_JOBS')), 0)
end

-- seed-major: every experiment's seed 1 before any seed 2, so a cut-short command still covers
-- every row once
local queue = {}
for _, seed in ipairs(seeds) do
  for _, e in ipairs(chosen) do queue[#queue + 1] = {e = e, seed = seed} end
end

-- each run goes to the background with its output in runs/<name>-s<seed>.log and its exit
-- status in .rc; this process follows the logs, keeps the .pending markers and scores each
-- run when it ends, so only this process writes the summary
local function start(job)
  local e, seed = job.e, job.seed
  local base = ('%s/runs/%s-s%d'):format(OUT, e.name, seed)
  job.cmd = R.command(e, seed, {nice = nice, out = OUT, extra = os.getenv('RESULTS_EXTRA')})
  job.marker, job.log, job.rc = base .. '.pending', base .. '.log', base .. '.rc'
  local owner
  job.dir, job.spent, owner = pending_read(job.marker, job.cmd)
  if owner then
    print(('results: %s seed %d is under way in results process %d (%s); not run twice'):format(
      e.name, seed, owner, job.marker))
    return false
  end
  job.resumed, job.spent = job.dir ~= nil, job.spent or 0
  job.tag = jobs > 1 and ('[%s s%d] '):format(e.name, seed) or ''
  print(('results: %s seed %d: %s%s'):format(e.name, seed, job.cmd,
    job.dir and (' (continuing %s, %.0f s spent)'):format(job.dir, job.spent) or ''))
  os.remove(job.rc)
  local run = job.dir and ("%s --resume '%s'"):format(job.cmd, job.dir) or job.cmd
  os.execute(("( (%s) > '%s'; echo $? > '%s' ) &"):format(run, job.log, job.rc))
  job.t0, job.saved, job.pos, job.last = duel.clock(), duel.clock(), 0, {}
  return true
end

-- the log's new complete lines: the run folder, progress for the screen, the last 20 kept
local function follow(job)
  local f = io.open(job.log, 'r')
  if not f then return end
  f:seek('set', job.pos)
  local s = f:read('*a') or ''
  f:close()
  local upto = s:match('^.*()\n')
  if not upto then return end
  job.pos = job.pos + upto
  for line in s:sub(1, upto):gmatch('([^\n]*)\n') do
    if not job.dir then
      job.dir = line:match('^' .. job.e.script .. ': (%S+)$')
      if job.dir then pending_write(job.marker, job.cmd, job.dir, job.spent) end
    end
    job.last[#job.last + 1] = line
    if #job.last > 20 then table.remove(job.last, 1) end
    if line:match('^step %d+: ') or line:match('^done') or line:match('^resumed') then
      print('  ' .. job.tag .. line)
    end
  end
  if job.dir and duel.clock() - job.saved > 30 then
    job.saved = duel.clock()
    pending_write(job.marker, job.cmd, job.dir, job.spent + job.saved - job.t0)
  end
end

local function finish(job, status)
  local e, seed, dir = job.e, job.seed, job.dir
  local wall = job.spent + duel.clock() - job.t0
  if not dir or status ~= 0 then
    print(('results: %s seed %d failed (exit status %s); its last lines:\n%s'):format(e.name,
      seed, tostring(status), table.concat(job.last, '\n')))
    return
  end
  local r = ev.run(dir)
  ev.append(dir, r)
  r.wall_s, r.seed, r.machine, r.run_dir, r.args = wall, seed, machine, dir, e.args
  r.resumed = job.resumed or nil
  r.date = os.date('!%Y-%m-%d %H:%M UTC')
  R.write_json(('%s/runs/%s-s%d.json'):format(OUT, e.name, seed), r)
  record({runs = {[e.name] = {[tostring(seed)] = r}}})
  os.remove(job.marker)
  print(('results: %s seed %d done in %.0f s: %s'):format(e.name, seed, wall,
    R.json_encode(r)))
end

local function schedule()
  local running, nxt = {}, 1
  while nxt <= #queue or #running > 0 do
    while #running < jobs and nxt <= #queue do
      if start(queue[nxt]) then running[#running + 1] = queue[nxt] end
      nxt = nxt + 1
    end
    if #running == 0 then break end
    local slept = os.execute('sleep 0.5') -- (system() holds Ctrl-C back: sleep takes it)
    if slept ~= 0 and slept ~= true then error('interrupted!', 0) end
    for i = #running, 1, -1 do
      local job = running[i]
      local f = io.open(job.rc, 'r')
      local status = f and f:read('*n')
      if f then f:close() end
      follow(job)
      if status then
        table.remove(running, i)
        os.remove(job.rc)
        finish(job, status)
      end
    end
  end
end

-- Ctrl-C reaches the runs too (one process group): they stop, their markers stay
local ok, err = pcall(schedule)
if not ok and tostring(err):match('interrupted!$') then
  print('results: interrupted; the same command continues the unfinished runs')
  os.exit(130)
elseif not ok then
  error(err, 0)
end
print('wrote ' .. SUMMARY .. ' and ' .. MD)
