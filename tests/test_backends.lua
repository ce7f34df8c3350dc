-- The oneDNN backends against the im2col + OpenBLAS ones on the same inputs: convolutions
-- (csrc/ops/conv_dnnl.c) over many geometries, both thread counts, the primitive cache's
-- eviction and the shapes oneDNN declines; sgemm (csrc/parallel.c) under matmul and linear;
-- the switches' errors.
local T = require 'tests.harness'
local duel = require 'duel'
local F = duel.F

local function has_header()
  local f = io.open('/usr/include/oneapi/dnnl/dnnl.h', 'r')
  if f then f:close() end
  return f ~= nil
end
local have = pcall(duel.set_conv_backend, 'onednn')
pcall(duel.set_sgemm_backend, 'onednn')

local function with(backend, fn, ...)
  local was = duel.conv_backend()
  duel.set_conv_backend(backend)
  local r = {pcall(fn, ...)}
  duel.set_conv_backend(was)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2)
end

-- y, dx, dW and db of conv2d, and conv_transpose2d's output and its grads, for one geometry
local function products(c)
  duel.manual_seed(c.seed)
  local x = duel.randn(c.N, c.C, c.H, c.W):requires_grad_()
  local w = duel.randn(c.O, c.C, c.kh, c.kw):requires_grad_()
  local b = duel.randn(c.O):requires_grad_()
  local y = F.conv2d(x, w, b, c.o)
  local u = duel.randn(y:size())
  local g = duel.autograd.grad({y}, {x, w, b}, {grad_outputs = {u}})
  -- the transposed direction: from a map shaped like y back to x's channels, with a bias
  local z = duel.randn(y:size()):requires_grad_()
  local bt = duel.randn(c.C):requires_grad_()
  local wt = w:detach():requires_grad_()
  local t = F.conv_transpose2d(z, wt, bt, c.o)
  local v = duel.randn(t:size())
  local gt = duel.autograd.grad({t}, {z, wt, bt}, {grad_outputs = {v}})
  return {y, g[1], g[2], g[3], t, gt[1], gt[2], gt[3]}
end
local NAMES = {'y', 'dx', 'dW', 'db', 'transpose', 'transpose dz', 'transpose dW', 'transpose db'}

local function compare(a, b, label)
  for i = 1, #a do
    local scale = a[i]:abs():max():item() + 1
    T.close(a[i], b[i], 2e-5 * scale, label .. ' ' .. NAMES[i])
  end
end

-- geometries drawn at random: kernels 1-5, strides 1-3, paddings, dilations, odd sizes
local function geometries(n)
  duel.manual_seed(41)
  local r = duel.rand(n, 12)
  local out = {}
  local function pick(i, j, lo, hi)
    return lo + math.floor(duel._core.flat_get(r, (i - 1) * 12 + j) * (hi - lo + 1))
  end
  for i = 1, n do
    local kh, kw = pick(i, 1, 1, 5), pick(i, 2, 1, 5)
    local dh, dw = pick(i, 3, 1, 2), pick(i, 4, 1, 2)
    local ph, pw = pick(i, 5, 0, 2), pick(i, 6, 0, 2)
    local c = {seed = i, N = pick(i, 7, 1, 3), C = pick(i, 8, 1, 20), O = pick(i, 9, 1, 20),
               kh = kh, kw = kw,
               o = {stride = {pick(i, 10, 1, 3), pick(i, 11, 1, 3)}, padding = {ph, pw},
                    dilation = {dh, dw}}}
    -- a map at least as large as the dilated kernel, odd or even
    c.H = (kh - 1) * dh + 1 + pick(i, 12, 0, 9)
    c.W = (kw - 1) * dw + 1 + pick(i, 12, 0, 7)
    out[i] = c
  end
  return out
end

T.case('conv backends: the build has oneDNN where its header is installed', function()
  T.eq(have, has_header())
  T.eq(duel.conv_backend(), have and 'onednn' or 'gemm')
end)

T.case('conv backends: oneDNN equals im2col + sgemm on 40 random geometries', function()
  if not have then return end
  local taken0, declined0 = duel._core.conv_dnnl_counts()
  for i, c in ipairs(geometries(40)) do
    local label = ('case %d: %dx%dx%dx%d -> %d, k %dx%d, %s'):format(i, c.N, c.C, c.H, c.W, c.O,
      c.kh, c.kw, T.show(c.o))
    compare(with('onednn', products, c), with('gemm', products, c), label)
  end
  -- most calls ran on oneDNN; the few whose last rows go unused fell back to the GEMM path
  local taken, declined = duel._core.conv_dnnl_counts()
  taken, declined = taken - taken0, declined - declined0
  T.ok(taken > 3 * declined and declined > 0, ('taken %d, declined %d'):format(taken, declined))
end)

T.case('conv backends: GAN layer shapes (4x4 stride 2, 3x3, 7x7 reflection-free)', function()
  if not have then return end
  local cases = {
    {N = 4, C = 16, H = 16, W = 16, O = 32, kh = 4, kw = 4, o = {stride = 2, padding = 1}},
    {N = 2, C = 32, H = 8, W = 8, O = 32, kh = 3, kw = 3, o = {padding = 1}},
    {N = 1, C = 8, H = 22, W = 22, O = 16, kh = 7, kw = 7, o = {}},
    {N = 2, C = 3, H = 17, W = 15, O = 24, kh = 3, kw = 3, o = {stride = 2, padding = 1}},
  }
  for i, c in ipairs(cases) do
    c.seed = 100 + i
    compare(with('onednn', products, c), with('gemm', products, c), 'layer ' .. i)
  end
end)

T.case('conv backends: oneDNN results do not depend on the thread count or the cache', function()
  if not have then return end
  local c = {seed = 7, N = 3, C = 12, H = 11, W = 9, O = 10, kh = 3, kw = 4,
             o = {stride = {2, 1}, padding = {1, 2}}}
  local first = with('onednn', products, c)
  local threads = duel.get_num_threads()
  duel.set_num_threads(1)
  local one = with('onednn', products, c)
  duel.set_num_threads(threads)
  compare(first, one, 'one thread')
  -- more shapes than the cache holds (128 primitives: 30 geometries x 6 calls), then the first one again
  for _, g in ipairs(geometries(30)) do with('onednn', products, g) end
  compare(first, with('onednn', products, c), 'after eviction')
end)

T.case('conv backends: double backward through oneDNN convolutions', function()
  if not have then return end
  duel.manual_seed(3)
  local x = duel.randn(2, 3, 7, 6):requires_grad_()
  local w = (duel.randn(5, 3, 3, 3) * 0.5):requires_grad_()
  local function f(a, k) return F.conv2d(a, k, nil, {stride = 2, padding = 1}):tanh() end
  T.ok(duel.autograd.gradgradcheck(f, {x, w}))
  local function ft(a, k) return F.conv_transpose2d(a, k, nil, {stride = 2, padding = 1}) end
  T.ok(duel.autograd.gradgradcheck(ft, {duel.randn(2, 5, 4, 3):requires_grad_(), w}))
end)

T.case('conv backends: set_conv_backend rejects unknown names', function()
  T.raises_exact("set_conv_backend: backend must be 'onednn' or 'gemm', got 'cuda'",
    function() duel.set_conv_backend('cuda') end)
  T.raises_exact("set_conv_backend: backend must be 'onednn' or 'gemm', got number",
    function() duel.set_conv_backend(3) end)
  if not have then
    T.raises_exact("set_conv_backend: this build has no oneDNN (libdnnl-dev), got 'onednn'",
      function() duel.set_conv_backend('onednn') end)
  end
end)

T.case('sgemm backends: matmul and linear with their gradients agree across backends', function()
  if not have then return end
  local function run(backend)
    local was = duel.sgemm_backend()
    duel.set_sgemm_backend(backend)
    duel.manual_seed(5)
    local out = {}
    for _, s in ipairs{{64, 256, 128}, {64, 128, 2}, {512, 2, 128}, {7, 300, 33}} do
      local x = duel.randn(s[1], s[2]):requires_grad_()
      local w = duel.randn(s[3], s[2]):requires_grad_()
      local b = duel.randn(s[3]):requires_grad_()
      local y = duel.F.linear(x, w, b)
      local g = duel.autograd.grad({(y * y):sum()}, {x, w, b})
      local a3 = duel.randn(3, s[1], s[2])
      for _, t in ipairs{y, g[1], g[2], g[3], duel.matmul(a3, x:t():detach())} do
        out[#out + 1] = t
      end
    end
    duel.set_sgemm_backend(was)
    return out
  end
  local a, b = run('onednn'), run('openblas')
  for i = 1, #a do T.close(a[i], b[i], 1e-4 * (a[i]:abs():max():item() + 1), 'product ' .. i) end
end)

T.case('sgemm backends: set_sgemm_backend rejects unknown names', function()
  T.eq(duel.sgemm_backend(), have and 'onednn' or 'openblas')
  T.raises_exact("set_sgemm_backend: backend must be 'onednn' or 'openblas', got 'mkl'",
    function() duel.set_sgemm_backend('mkl') end)
  T.raises_exact("set_sgemm_backend: backend must be 'onednn' or 'openblas', got nil",
    function() duel.set_sgemm_backend(nil) end)
  if not have then
    T.raises_exact("set_sgemm_backend: this build has no oneDNN (libdnnl-dev), got 'onednn'",
      function() duel.set_sgemm_backend('onednn') end)
  end
end)
