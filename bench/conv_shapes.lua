-- 3x3 stride-1 convolutions (padding 1) at several widths, map sizes and batches: microseconds
-- per conv2d forward + backward, one thread. Where Winograd (csrc/ops/winograd.c) pays off
-- against im2col + sgemm: run it on the default build and on one with Winograd off, e.g.
--   make all BUILD=build/nowino MODULE=build/nowino/duel/core.so \
--     OPTFLAGS="-O3 -march=native -fno-trapping-math -fno-math-errno -DDUEL_WINO_MIN_CH=1000000"
--   luajit bench/conv_shapes.lua; DUEL_CPATH='build/nowino/?.so' luajit bench/conv_shapes.lua
-- Usage: luajit bench/conv_shapes.lua [threads]   (each shape repeated for ~0.3 s; median of 3)
local duel = require 'duel'
local F = duel.F
duel.set_num_threads(tonumber(arg[1] or 1))
print(('conv_shapes: %d thread(s); N x C -> C at SxS, 3x3 kernel, padding 1'):format(
  duel.get_num_threads()))
for _, c in ipairs{{1, 64, 8}, {1, 256, 8}, {16, 64, 8}, {1, 32, 16}, {1, 64, 16}, {1, 64, 32},
                   {1, 256, 32}} do
  local N, C, S = unpack(c)
  local x = duel.randn(N, C, S, S):requires_grad_()
  local w = (duel.randn(C, C, 3, 3) * 0.02):requires_grad_()
  local function once()
    local y = F.conv2d(x, w, nil, {padding = 1})
    y:sum():backward()
  end
  once()
  local times = {}
  for r = 1, 3 do
    local n, t0 = 0, duel.clock()
    repeat once(); n = n + 1 until duel.clock() - t0 > 0.3
    times[r] = (duel.clock() - t0) / n
  end
  table.sort(times)
  print(('N %2d  C %3d  S %2d  %9.1f us per forward + backward'):format(N, C, S, times[2] * 1e6))
end
