-- Per-op wall time of the core tensor ops, small and large, plus one MLP training step and the
-- binding overhead of a 1-element op. Usage (from the checkout root):
--   luajit bench/ops.lua [runs [threads]]       (runs: samples per op, median reported; default 7)
-- Each sample repeats the op for at least 50 ms and divides; the table shows the median sample.
-- Times are wall clock (CLOCK_MONOTONIC through the LuaJIT FFI), since kernels run on threads.
local duel = require 'duel'
local ffi = require 'ffi'

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new('bench_timespec')
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local RUNS = tonumber(arg and arg[1]) or 7
if arg and arg[2] then duel.set_num_threads(tonumber(arg[2])) end
local SPAN = 0.05

-- seconds per call: median over RUNS samples, each sample fn() repeated for >= SPAN seconds
local function time(fn)
  fn() -- warm-up (first-touch allocation, JIT trace)
  local samples = {}
  for r = 1, RUNS do
    local n, t0 = 0, now()
    repeat
      fn()
      n = n + 1
    until now() - t0 >= SPAN
    samples[r] = (now() - t0) / n
  end
  table.sort(samples)
  return samples[math.floor((#samples + 1) / 2)]
end

duel.manual_seed(1)
local rows = {}
local function add(op, shape, fn, rate)
  local t = time(fn)
  local extra = ''
  if rate then extra = rate(t) end
  rows[#rows + 1] = {op, shape, ('%.2f'):format(t * 1e6), extra}
end
-- memory traffic in GB/s for n floats read and m floats written
local function gbs(nread, nwrite)
  return function(t) return ('%.1f GB/s'):format((nread + nwrite) * 4 / t / 1e9) end
end
local function gflops(flop)
  return function(t) return ('%.1f GFLOP/s'):format(flop / t / 1e9) end
end

local tiny = duel.tensor{1}
add('add (1 element: binding overhead)', '{1}', function() return tiny + tiny end)

for _, n in ipairs({8, 1024}) do
  local shape = ('{%d,%d}'):format(n, n)
  local N = n * n
  local a, b, row = duel.randn(n, n), duel.randn(n, n), duel.randn(1, n)
  add('add', shape, function() return a + b end, gbs(2 * N, N))
  add('mul (broadcast row {1,n})', shape, function() return a * row end, gbs(N + n, N))
  add('exp', shape, function() return a:exp() end, gbs(N, N))
  add('tanh', shape, function() return a:tanh() end, gbs(N, N))
  add('sum (all)', shape, function() return a:sum() end, gbs(N, 1))
  add('sum over dim 1', shape, function() return a:sum(1) end, gbs(N, n))
  add('transpose + contiguous', shape, function() return a:t():contiguous() end, gbs(N, N))
end

for _, n in ipairs({64, 512}) do
  local a, b = duel.randn(n, n), duel.randn(n, n)
  add('matmul', ('{%d,%d} x {%d,%d}'):format(n, n, n, n), function() return duel.matmul(a, b) end,
    gflops(2 * n * n * n))
end

-- one SGD step of a 2-layer MLP (64 x 32 -> 64 tanh -> 1, mean squared error): forward, backward,
-- parameter update under no_grad
do
  local B, I, H = 64, 32, 64
  local x, y = duel.randn(B, I), duel.randn(B, 1)
  local W1 = (duel.randn(I, H) * 0.1):requires_grad_()
  local b1 = duel.zeros(1, H):requires_grad_()
  local W2 = (duel.randn(H, 1) * 0.1):requires_grad_()
  local params = {W1, b1, W2}
  local function step()
    local h = (x:matmul(W1) + b1):tanh()
    local loss = ((h:matmul(W2) - y) ^ 2):mean()
    local g = duel.autograd.grad({loss}, params)
    duel.no_grad(function()
      for i, p in ipairs(params) do p:copy_(p - g[i] * 0.01) end
    end)
  end
  local flop = 3 * 2 * B * (I * H + H) -- forward GEMMs, backward counted as twice the forward
  add('MLP step (fwd+bwd+SGD)', '{64,32}->64->1', step, gflops(flop))
end

local head = {'op', 'shape', 'median us', 'rate'}
local w = {}
for c = 1, 4 do
  w[c] = #head[c]
  for _, r in ipairs(rows) do w[c] = math.max(w[c], #r[c]) end
end
local function line(r)
  return ('%-' .. w[1] .. 's  %-' .. w[2] .. 's  %' .. w[3] .. 's  %s'):format(r[1], r[2], r[3], r[4])
end
print(('duel bench/ops.lua: %d threads, median of %d runs (each >= %d ms), %s'):format(
  duel.get_num_threads(), RUNS, SPAN * 1000, jit.version))
print(line(head))
print(line({('-'):rep(w[1]), ('-'):rep(w[2]), ('-'):rep(w[3]), ('-'):rep(w[4])}))
for _, r in ipairs(rows) do print(line(r)) end
