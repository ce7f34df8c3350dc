-- Convolution throughput: achieved GFLOP/s of every conv layer of DCGAN-64 (batch 64) and of a
-- CycleGAN-128 ResNet generator (batch 1), forward and forward+backward, beside sgemm (duel.matmul)
-- measured in the same run. Usage: luajit bench/conv.lua [runs [threads [conv [sgemm]]]]
-- (median of runs: 5; conv 'onednn' or 'gemm', sgemm 'onednn' or 'openblas': the backends,
-- duel.set_conv_backend / set_sgemm_backend, default the build's)
-- The machine may be shared: sgemm 1024^3 is re-measured beside every layer, in runs interleaved
-- with the layer's, and each layer's fraction is of that rate (the ref column).
-- FLOPs are the GEMM work: 2 * N * O * Ho*Wo * C/groups * kh*kw, on the conv2d side of the
-- relation (for a transposed conv, its input is that side). Forward+backward counts 3x (dx, dW).
-- On the gemm backend, wide 3x3 stride-1 layers (CycleGAN's ResNet blocks) run by Winograd's
-- F(2x2,3x3), 2.25x fewer multiplies than these FLOPs count, so they can pass 100% of sgemm.
local duel = require 'duel'
local F = duel.F
local now = duel.clock -- monotonic wall time: threads run in parallel

local RUNS = tonumber(arg and arg[1]) or 5
if arg and arg[2] then duel.set_num_threads(tonumber(arg[2])) end
if arg and arg[3] then duel.set_conv_backend(arg[3]) end
if arg and arg[4] then duel.set_sgemm_backend(arg[4]) end

-- seconds per call of fn, one run: fn repeated for at least `span` seconds
local function run(fn, span)
  local n, t0 = 0, now()
  repeat
    fn()
    n = n + 1
  until now() - t0 >= span
  return (now() - t0) / n
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

-- median seconds per call of each fn in fns; runs are interleaved (fn1, fn2, ..., fn1, ...) so
-- that a change in the machine's load hits all of them alike
local function time(fns)
  local t = {}
  for k, fn in ipairs(fns) do
    fn()
    t[k] = {}
  end
  for r = 1, RUNS do
    for k, fn in ipairs(fns) do t[k][r] = run(fn, 0.1) end
  end
  local m = {}
  for k = 1, #fns do m[k] = median(t[k]) end
  return unpack(m)
end

local function matmul_fn(M, N, K)
  local a, b = duel.randn(M, K), duel.randn(K, N)
  return function() return duel.matmul(a, b) end, 2 * M * N * K
end

-- layer: {name, N, Cin, H, W (input), Cout, k, stride, padding, [output_padding], transposed}
local layers = {
  {'DCGAN G convT 100->512 1->4', 64, 100, 1, 1, 512, 4, 1, 0, 0, true},
  {'DCGAN G convT 512->256 4->8', 64, 512, 4, 4, 256, 4, 2, 1, 0, true},
  {'DCGAN G convT 256->128 8->16', 64, 256, 8, 8, 128, 4, 2, 1, 0, true},
  {'DCGAN G convT 128->64 16->32', 64, 128, 16, 16, 64, 4, 2, 1, 0, true},
  {'DCGAN G convT 64->3 32->64', 64, 64, 32, 32, 3, 4, 2, 1, 0, true},
  {'DCGAN D conv 3->64 64->32', 64, 3, 64, 64, 64, 4, 2, 1},
  {'DCGAN D conv 64->128 32->16', 64, 64, 32, 32, 128, 4, 2, 1},
  {'DCGAN D conv 128->256 16->8', 64, 128, 16, 16, 256, 4, 2, 1},
  {'DCGAN D conv 256->512 8->4', 64, 256, 8, 8, 512, 4, 2, 1},
  {'DCGAN D conv 512->1 4->1', 64, 512, 4, 4, 1, 4, 1, 0},
  {'Cycle c7s1-64 (pad 3) 128', 1, 3, 134, 134, 64, 7, 1, 0},
  {'Cycle d128 k3 s2 128->64', 1, 64, 128, 128, 128, 3, 2, 1},
  {'Cycle d256 k3 s2 64->32', 1, 128, 64, 64, 256, 3, 2, 1},
  {'Cycle res 256->256 32 (x12)', 1, 256, 34, 34, 256, 3, 1, 0},
  {'Cycle u128 convT 32->64', 1, 256, 32, 32, 128, 3, 2, 1, 1, true},
  {'Cycle u64 convT 64->128', 1, 128, 64, 64, 64, 3, 2, 1, 1, true},
  {'Cycle c7s1-3 (pad 3) 128', 1, 64, 134, 134, 3, 7, 1, 0},
}

-- GEMM shape {M = O/g, N = batch columns, K = C/g*kh*kw} of the layer's forward
local function gemm_shape(l)
  local _, N, Cin, H, W, Cout, k, s, p, _, tr = unpack(l)
  if tr then return Cin, N * H * W, Cout * k * k end -- conv2d side: O = Cin, maps H x W
  local Ho, Wo = math.floor((H + 2 * p - k) / s) + 1, math.floor((W + 2 * p - k) / s) + 1
  return Cout, N * Ho * Wo, Cin * k * k
end

-- OpenMP threads that spin after an im2col region slow the sgemm that follows (OpenBLAS has its
-- own threads): the wait settings matter, so they are printed
print(('duel conv bench: %d threads, median of %d runs, OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s, '
  .. 'convolutions by %s, sgemm by %s'):format(duel.get_num_threads(), RUNS,
    os.getenv('OMP_WAIT_POLICY') or '(unset)', os.getenv('GOMP_SPINCOUNT') or '(unset)',
    duel.conv_backend(), duel.sgemm_backend()))
local ref_fn, ref_flops = matmul_fn(1024, 1024, 1024)
local big, bigflops = nil, 0
for _, l in ipairs(layers) do
  local M, N, K = gemm_shape(l)
  if M * N * K > bigflops then big, bigflops = {M, N, K}, M * N * K end
end
local big_fn, big_flops = matmul_fn(big[1], big[2], big[3])
local t_ref, t_big = time{ref_fn, big_fn}
local ref, ref2 = ref_flops / t_ref * 1e-9, big_flops / t_big * 1e-9
print(('sgemm 1024x1024x1024: %.1f GFLOP/s;  shaped like the largest conv (%dx%dx%d): '
  .. '%.1f GFLOP/s'):format(ref, big[1], big[2], big[3], ref2))
print(('%-30s %7s %6s %8s %7s %6s %8s %7s %6s'):format('layer', 'GFLOP', 'ref', 'fwd ms',
  'GFLOP/s', '%gemm', 'f+b ms', 'GFLOP/s', '%gemm'))

local sum_f, sum_fb, n64 = 0, 0, 0
for _, l in ipairs(layers) do
  local name, N, Cin, H, W, Cout, k, s, p, op, tr = unpack(l)
  duel.manual_seed(1)
  local x = duel.randn(N, Cin, H, W)
  local w = tr and duel.randn(Cin, Cout, k, k) or duel.randn(Cout, Cin, k, k)
  local b = duel.randn(Cout)
  local conv = tr and F.conv_transpose2d or F.conv2d
  local opts = tr and {stride = s, padding = p, output_padding = op} or {stride = s, padding = p}
  local M, NN, K = gemm_shape(l)
  local flops = 2 * M * NN * K
  local xg, wg = x:detach():requires_grad_(), w:detach():requires_grad_()
  local bg = b:detach():requires_grad_()
  local u = duel.randn(conv(x, w, b, opts):size())
  local t_ref, tf, tfb = time{ref_fn,
    function() return duel.no_grad(conv, x, w, b, opts) end,
    function()
      xg.grad, wg.grad, bg.grad = nil, nil, nil
      conv(xg, wg, bg, opts):backward(u)
    end}
  local rf, rfb = flops / tf * 1e-9, 3 * flops / tfb * 1e-9
  local ref = ref_flops / t_ref * 1e-9
  print(('%-30s %7.3f %6.1f %8.2f %7.1f %5.0f%% %8.2f %7.1f %5.0f%%'):format(name, flops * 1e-9,
    ref, tf * 1e3, rf, 100 * rf / ref, tfb * 1e3, rfb, 100 * rfb / ref))
  if math.min(Cin, Cout) >= 64 then
    sum_f, sum_fb, n64 = sum_f + rf / ref, sum_fb + rfb / ref, n64 + 1
  end
end
print(('layers with >= 64 channels in and out: mean %.0f%% of sgemm forward, %.0f%% '
  .. 'forward+backward'):format(100 * sum_f / n64, 100 * sum_fb / n64))
