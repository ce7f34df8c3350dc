-- duel vs PyTorch on full training steps (`make bench-compare`): for every case of
-- bench/steps.lua, R rounds of three runs -- duel, PyTorch with OMP_WAIT_POLICY=PASSIVE, PyTorch
-- as it comes -- in alternating order (forward in odd rounds, backward in even ones) so that a
-- change in the machine's load hits every side alike. Each side's time is the median over the
-- rounds of its per-run median step time; ratio = the faster PyTorch / duel (> 1: duel faster).
-- Environment: BENCH_ROUNDS (3), BENCH_THREADS (2), BENCH_CASES (space-separated subset),
-- BENCH_OUT (bench/compare_latest.md: the table, for bench/README.md), PYTHON (/usr/bin/python3).
-- Without an importable torch, the PyTorch columns print "skipped".
local rounds = tonumber(os.getenv('BENCH_ROUNDS')) or 3
local threads = tonumber(os.getenv('BENCH_THREADS')) or 2
local out_path = os.getenv('BENCH_OUT') or 'bench/compare_latest.md'
local python = os.getenv('PYTHON') or '/usr/bin/python3'
local cases = {}
for c in (os.getenv('BENCH_CASES') or 'toy2d toy2d_b64 wgangp_toy2d dcgan28 infogan28 dcgan64 '
          .. 'wgangp64 cyclegan128 pix2pix128 pix2pix128b16'):gmatch('%S+') do
  cases[#cases + 1] = c
end

local function sh(cmd)
  local p = io.popen(cmd)
  local s = p:read('*a')
  p:close()
  return s
end

local has_torch = sh(python .. " -c 'import torch; print(1)' 2>/dev/null"):match('1') ~= nil
local sides = {
  {name = 'duel', cmd = 'luajit bench/steps.lua'},
  {name = 'torch_passive', cmd = 'OMP_WAIT_POLICY=PASSIVE ' .. python .. ' bench/steps_torch.py'},
  {name = 'torch_default', cmd = python .. ' bench/steps_torch.py'},
}

-- one run: the JSON line's fields, or nil and the output when the run failed
local function run(side, case)
  local s = sh(('%s --case %s --threads %d 2>&1'):format(side.cmd, case, threads))
  local line = s:match('({"case".-})')
  if not line then return nil, s end
  return {ms = tonumber(line:match('"ms_median": ([%d%.]+)')),
          rss = tonumber(line:match('"peak_rss_mb": ([%d%.]+)'))}
end

local function median(t)
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

local function loadavg()
  local f = io.open('/proc/loadavg')
  local s = f and f:read('*l') or '?'
  if f then f:close() end
  return s:match('^(%S+ %S+ %S+)') or s
end

local cpu = sh("grep -m1 'model name' /proc/cpuinfo"):match(':%s*(.-)%s*$') or '?'
-- both sides' OpenBLAS read OPENBLAS_CORETYPE (PyTorch's Linear layers run on it; its convs on
-- oneDNN, which picks its own kernels): the header names it, since it moves sgemm 1.8x here
local head = ('%s, %s cores (%s), %d threads, %d rounds; load average at start %s; torch %s; '
              .. 'OPENBLAS_CORETYPE=%s')
  :format(os.date('!%Y-%m-%d %H:%M UTC'), sh('nproc'):match('%d+'), cpu, threads, rounds,
          loadavg(), has_torch and sh(python .. " -c 'import torch; print(torch.__version__)'")
          :match('%S+') or 'not importable', os.getenv('OPENBLAS_CORETYPE') or '(unset)')
print(head)

local function f(x, fmt) return x and (fmt or '%.2f'):format(x) or 'skipped' end
local t0 = os.time()
local rows = {}
for _, case in ipairs(cases) do
  local res = {}
  for _, s in ipairs(sides) do res[s.name] = {ms = {}, rss = 0} end
  for r = 1, rounds do
    local order = {}
    for k = 1, 3 do order[k] = sides[r % 2 == 1 and k or 4 - k] end
    for _, s in ipairs(order) do
      if s.name == 'duel' or has_torch then
        local v, err = run(s, case)
        if not v then error(('bench-compare: %s %s failed:\n%s'):format(s.name, case, err), 0) end
        local t = res[s.name]
        t.ms[#t.ms + 1] = v.ms
        t.rss = math.max(t.rss, v.rss)
      end
    end
  end
  local d, tp, td = median(res.duel.ms), median(res.torch_passive.ms),
                    median(res.torch_default.ms)
  local row = {case = case, duel = d, tp = tp, td = td, rss_d = res.duel.rss,
               rss_t = math.max(res.torch_passive.rss, res.torch_default.rss)}
  if has_torch then row.ratio = math.min(tp, td) / d end
  rows[#rows + 1] = row
  io.stderr:write(('  %s: duel %s ms, torch %s / %s ms, ratio %s (%d s so far)\n'):format(case,
    f(d), f(tp), f(td), f(row.ratio), os.time() - t0))
end

local lines = {
  '| case | duel ms | torch ms (PASSIVE) | torch ms (default) | ratio | duel RSS MB | torch RSS MB |',
  '|---|---:|---:|---:|---:|---:|---:|'}
for _, r in ipairs(rows) do
  lines[#lines + 1] = ('| %s | %s | %s | %s | %s | %s | %s |'):format(r.case, f(r.duel), f(r.tp),
    f(r.td), f(r.ratio), f(r.rss_d, '%.0f'), has_torch and f(r.rss_t, '%.0f') or 'skipped')
end
local tail = ('ratio = the faster PyTorch median / duel median (> 1: duel is faster); %d s in '
              .. 'all; load average at end %s'):format(os.time() - t0, loadavg())
if not has_torch then print('skipped: torch is not importable by ' .. python) end
local text = head .. '\n\n' .. table.concat(lines, '\n') .. '\n\n' .. tail .. '\n'
io.write('\n', text)
local fh = io.open(out_path, 'w')
if fh then fh:write(text); fh:close(); print('written to ' .. out_path) end
