-- Time of duel.matmul on the small products of the toy2d MLPs at batch 64 (issue 9's toy2d_b64
-- case: forward x W^T, input gradient g W, weight gradient g^T x), with the OpenBLAS kernels in
-- use named, so that OPENBLAS_CORETYPE settings and the sgemm backends can be compared:
--   luajit bench/gemm_shapes.lua [threads (1)] [calls (20000)] [onednn|openblas]
--   env -u OPENBLAS_CORETYPE luajit bench/gemm_shapes.lua     OpenBLAS's own choice
--   OPENBLAS_CORETYPE=Haswell luajit bench/gemm_shapes.lua    its AVX2 kernels
-- Each line: M x K x N, the operands' storage (N: as is, T: a transposed view), microseconds
-- per call (median of 5 batches of `calls`), GFLOP/s (2 M N K per call).
local duel = require 'duel'
local ffi = require 'ffi'

local threads = tonumber(arg[1]) or 1
local calls = tonumber(arg[2]) or 20000
duel.set_num_threads(threads)
if arg[3] then duel.set_sgemm_backend(arg[3]) end

-- the library the core linked is already loaded: dlopen of its soname returns that one
ffi.cdef('char *openblas_get_corename(void);')
local ok, core = pcall(function()
  return ffi.string(ffi.load('libopenblas.so.0').openblas_get_corename())
end)
if not ok then core = '?' end
print(('duel bench/gemm_shapes.lua: %d thread(s), sgemm by %s; OpenBLAS core %s '
  .. '(OPENBLAS_CORETYPE=%s)'):format(threads, duel.sgemm_backend(), core,
  os.getenv('OPENBLAS_CORETYPE') or 'unset'))

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local function time(M, K, N, ta, tb)
  local A = ta and duel.randn(K, M):t() or duel.randn(M, K)
  local B = tb and duel.randn(N, K):t() or duel.randn(K, N)
  for _ = 1, 200 do duel.matmul(A, B) end
  local per = {}
  for r = 1, 5 do
    local t0 = duel.clock()
    for _ = 1, calls / 5 do duel.matmul(A, B) end
    per[r] = (duel.clock() - t0) / (calls / 5) * 1e6
  end
  local us = median(per)
  print(('%4dx%4dx%4d %s%s %8.2f us %7.1f GFLOP/s'):format(M, K, N, ta and 'T' or 'N',
    tb and 'T' or 'N', us, 2 * M * N * K / us / 1e3))
end

print('forward, x {64,in} W^T')
time(64, 256, 128, false, true); time(64, 128, 128, false, true); time(64, 128, 2, false, true)
time(64, 2, 128, false, true); time(64, 128, 1, false, true)
print('input gradient, g {64,out} W')
time(64, 128, 256); time(64, 128, 128); time(64, 2, 128); time(64, 1, 128)
print('weight gradient, g^T x')
time(128, 64, 256, true); time(128, 64, 128, true); time(2, 64, 128, true)
time(128, 64, 2, true); time(1, 64, 128, true)
