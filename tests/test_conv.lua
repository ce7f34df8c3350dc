-- conv2d, conv_transpose2d, conv2d_weight (the closed family), linear, avg/max pooling:
-- naive Lua loops as references, adjoint identities, hand values, gradients, errors.
local T = require 'tests.harness'
local duel = require 'duel'
local F = duel.F
local C = duel._core
local floor = math.floor

local function vals(t)
  local v = {}
  for i = 1, t:numel() do v[i] = C.flat_get(t, i) end
  return v
end
local function pair(v, d)
  if v == nil then return d, d end
  if type(v) == 'table' then return v[1], v[2] end
  return v, v
end
local function dot(a, b)
  local s, av, bv = 0, vals(a), vals(b)
  for i = 1, #av do s = s + av[i] * bv[i] end
  return s
end
local function as_tensor(v, shape) return duel.tensor(v):view(shape) end
local function grads(y, xs, u, create)
  return duel.autograd.grad({y}, xs, {grad_outputs = {u}, create_graph = create})
end

-- distinct values spread 0.05 apart in random order (no near-ties for max_pool's argmax)
local function distinct(...)
  local x = duel.empty(...)
  local n = x:numel()
  local p = {}
  for i = 1, n do p[i] = i end
  for i = n, 2, -1 do
    local j = floor(C.flat_get(duel.rand(1), 1) * i) + 1
    p[i], p[j] = p[j], p[i]
  end
  for i = 1, n do C.flat_set(x, i, (p[i] - n / 2) * 0.05) end
  return x:requires_grad_()
end

-- ---- naive references (0-based loops over flat row-major values) ----------------------------

local function geometry(o)
  local sh, sw = pair(o.stride, 1)
  local ph, pw = pair(o.padding, 0)
  local dh, dw = pair(o.dilation, 1)
  local oph, opw = pair(o.output_padding, 0)
  return sh, sw, ph, pw, dh, dw, o.groups or 1, oph, opw
end

local function naive_conv2d(x, w, b, o)
  local N, Cc, H, W = unpack(x:size())
  local O, Cg, kh, kw = unpack(w:size())
  local sh, sw, ph, pw, dh, dw, g = geometry(o)
  local Ho = floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1
  local Wo = floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1
  local xv, wv, bv = vals(x), vals(w), b and vals(b)
  local out, Og = {}, O / g
  for n = 0, N - 1 do
    for oc = 0, O - 1 do
      local gi = floor(oc / Og)
      for oh = 0, Ho - 1 do
        for ow = 0, Wo - 1 do
          local acc = bv and bv[oc + 1] or 0
          for c = 0, Cg - 1 do
            local ic = gi * Cg + c
            for i = 0, kh - 1 do
              local ih = oh * sh - ph + i * dh
              if ih >= 0 and ih < H then
                for j = 0, kw - 1 do
                  local iw = ow * sw - pw + j * dw
                  if iw >= 0 and iw < W then
                    acc = acc + xv[((n * Cc + ic) * H + ih) * W + iw + 1] *
                      wv[((oc * Cg + c) * kh + i) * kw + j + 1]
                  end
                end
              end
            end
          end
          out[#out + 1] = acc
        end
      end
    end
  end
  return as_tensor(out, {N, O, Ho, Wo})
end

-- PyTorch's definition: every input pixel stamps the weight into the output
local function naive_conv_transpose2d(x, w, b, o)
  local N, Cin, H, W = unpack(x:size())
  local _, Cog, kh, kw = unpack(w:size())
  local sh, sw, ph, pw, dh, dw, g, oph, opw = geometry(o)
  local Ho = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
  local Wo = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
  local Cout, Cig = Cog * g, Cin / g
  local xv, wv, bv = vals(x), vals(w), b and vals(b)
  local out = {}
  for n = 0, N - 1 do
    for oc = 0, Cout - 1 do
      for p = 0, Ho * Wo - 1 do
        out[((n * Cout + oc) * Ho * Wo) + p + 1] = bv and bv[oc + 1] or 0
      end
    end
  end
  for n = 0, N - 1 do
    for ci = 0, Cin - 1 do
      local gi = floor(ci / Cig)
      for ih = 0, H - 1 do
        for iw = 0, W - 1 do
          local xval = xv[((n * Cin + ci) * H + ih) * W + iw + 1]
          for co = 0, Cog - 1 do
            local oc = gi * Cog + co
            for i = 0, kh - 1 do
              local oh = ih * sh - ph + i * dh
              if oh >= 0 and oh < Ho then
                for j = 0, kw - 1 do
                  local ow = iw * sw - pw + j * dw
                  if ow >= 0 and ow < Wo then
                    local k = ((n * Cout + oc) * Ho + oh) * Wo + ow + 1
                    out[k] = out[k] + xval * wv[((ci * Cog + co) * kh + i) * kw + j + 1]
                  end
                end
              end
            end
          end
        end
      end
    end
  end
  return as_tensor(out, {N, Cout, Ho, Wo})
end

-- conv2d's weight gradient for output gradient u
local function naive_weight_grad(x, u, kh, kw, o)
  local N, Cc, H, W = unpack(x:size())
  local _, O, Ho, Wo = unpack(u:size())
  local sh, sw, ph, pw, dh, dw, g = geometry(o)
  local Cg, Og = Cc / g, O / g
  local xv, uv = vals(x), vals(u)
  local out = {}
  for oc = 0, O - 1 do
    local gi = floor(oc / Og)
    for c = 0, Cg - 1 do
      for i = 0, kh - 1 do
        for j = 0, kw - 1 do
          local acc = 0
          for n = 0, N - 1 do
            for oh = 0, Ho - 1 do
              local ih = oh * sh - ph + i * dh
              if ih >= 0 and ih < H then
                for ow = 0, Wo - 1 do
                  local iw = ow * sw - pw + j * dw
                  if iw >= 0 and iw < W then
                    acc = acc + uv[((n * O + oc) * Ho + oh) * Wo + ow + 1] *
                      xv[((n * Cc + gi * Cg + c) * H + ih) * W + iw + 1]
                  end
                end
              end
            end
          end
          out[#out + 1] = acc
        end
      end
    end
  end
  return as_tensor(out, {O, Cg, kh, kw})
end

-- ---- conv2d ---------------------------------------------------------------------------------

T.case('conv2d: hand values of a 3x3 case', function()
  local x = duel.tensor{{{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}}
  local w = duel.ones(1, 1, 3, 3)
  T.close(F.conv2d(x, w, duel.tensor{0.5}, {padding = 1}),
    {{{{12.5, 21.5, 16.5}, {27.5, 45.5, 33.5}, {24.5, 39.5, 28.5}}}})
  T.close(F.conv2d(x, w), {{{{45}}}})
  local d = duel.tensor{{{{1, 0}, {0, -1}}}}
  T.close(F.conv2d(x, d), {{{{-4, -4}, {-4, -4}}}})
  T.close(F.conv2d(x, d, nil, {stride = 2, padding = 1}), {{{{-1, -3}, {-7, -4}}}})
  T.close(F.conv2d(x, w, {padding = {0, 1}}), {{{{27, 45, 33}}}}) -- options in b's place
end)

T.case('conv2d: matches a naive loop over stride, padding, dilation and groups', function()
  duel.manual_seed(1)
  local n = 0
  for _, s in ipairs{1, 2, {2, 1}} do
    for _, p in ipairs{0, 1, {2, 0}} do
      for _, d in ipairs{1, 2} do
        for _, g in ipairs{1, 2} do
          local x = duel.randn(2, 4, 7, 6)
          local w = duel.randn(4, 4 / g, 3, 2)
          local b = duel.randn(4)
          local o = {stride = s, padding = p, dilation = d, groups = g}
          T.close(F.conv2d(x, w, b, o), naive_conv2d(x, w, b, o), 1e-4,
            ('stride %s padding %s dilation %d groups %d'):format(T.show(s), T.show(p), d, g))
          n = n + 1
        end
      end
    end
  end
  T.eq(n, 36)
end)

T.case('conv2d: gradients match naive transpose and weight-gradient loops', function()
  duel.manual_seed(2)
  for _, o in ipairs{{}, {stride = 2, padding = 1, groups = 2}, {dilation = 2, padding = {1, 2}},
                     {stride = {1, 2}, groups = 4}} do
    local x = duel.randn(2, 4, 6, 7):requires_grad_()
    local w = duel.randn(4, 4 / (o.groups or 1), 3, 3):requires_grad_()
    local b = duel.randn(4):requires_grad_()
    local y = F.conv2d(x, w, b, o)
    local u = duel.randn(y:size())
    local g = grads(y, {x, w, b}, u)
    local ot = {stride = o.stride, padding = o.padding, dilation = o.dilation, groups = o.groups}
    local sh, sw = pair(o.stride, 1)
    local ph, pw = pair(o.padding, 0)
    local dh, dw = pair(o.dilation, 1)
    -- the transposed conv's output must be x's size: output_padding recovers the rows lost
    local oph = (6 + 2 * ph - dh * 2 - 1) % sh
    local opw = (7 + 2 * pw - dw * 2 - 1) % sw
    ot.output_padding = {oph, opw}
    T.close(g[1], naive_conv_transpose2d(u, w, nil, ot), 1e-4, 'dx ' .. T.show(o.stride or 1))
    T.close(g[2], naive_weight_grad(x, u, 3, 3, o), 1e-4, 'dW')
    T.close(g[3], u:sum(1):sum(2):sum(2), 1e-4, 'db')
  end
end)

T.case('conv2d: large maps (per-sample GEMMs, row blocks, 1x1 without im2col)', function()
  duel.manual_seed(3)
  local cases = {
    {x = {2, 2, 66, 66}, w = {3, 2, 3, 3}, o = {}},                   -- 64x64: one GEMM per sample
    {x = {2, 64, 88, 88}, w = {5, 64, 3, 3}, o = {}},                 -- col over budget: row blocks
    {x = {2, 4, 64, 64}, w = {6, 2, 1, 1}, o = {groups = 2}},         -- pointwise, direct GEMMs
    {x = {3, 4, 5, 5}, w = {6, 4, 1, 1}, o = {}},                     -- pointwise, small maps
    {x = {3, 4, 3, 2}, w = {6, 2, 3, 2}, o = {groups = 2}},           -- kernel covers the image
    {x = {2, 3, 5, 1}, w = {2, 3, 3, 1}, o = {dilation = 2}},         -- ... dilated: im2col
  }
  for k, c in ipairs(cases) do
    local x = duel.randn(c.x):requires_grad_()
    local w = duel.randn(c.w):requires_grad_()
    local b = duel.randn(c.w[1])
    local y = F.conv2d(x, w, b, c.o)
    T.close(y, naive_conv2d(x, w, b, c.o), 1e-4, 'case ' .. k)
    -- both gradients satisfy <y - b, u> = <dx, x> = <dW, W> (y is linear in x and in W)
    local u = duel.randn(y:size())
    local g = grads(y, {x, w}, u)
    local yu = dot(F.conv2d(x, w, nil, c.o), u)
    T.ok(math.abs(dot(g[1], x) - yu) <= 1e-4 * (1 + math.abs(yu)), 'dx adjoint, case ' .. k)
    T.ok(math.abs(dot(g[2], w) - yu) <= 1e-4 * (1 + math.abs(yu)), 'dW adjoint, case ' .. k)
    if k ~= 2 then T.close(g[2], naive_weight_grad(x, u, c.w[3], c.w[4], c.o), 1e-3) end
  end
end)

T.case('conv_transpose2d: from 1x1 maps (a fully connected layer) and with 1x1 kernels', function()
  duel.manual_seed(10)
  local z, w, b = duel.randn(5, 4, 1, 1):requires_grad_(), duel.randn(4, 3, 4, 4):requires_grad_(),
    duel.randn(6)
  local y = F.conv_transpose2d(z, w, b, {groups = 2})
  T.close(y, naive_conv_transpose2d(z, w, b, {groups = 2}), 1e-4)
  local u = duel.randn(5, 6, 4, 4)
  local g = grads(y, {z, w}, u)
  T.close(g[1], naive_conv2d(u, w, nil, {groups = 2}), 1e-4)
  T.close(g[2], naive_weight_grad(u, z, 4, 4, {groups = 2}), 1e-4)
  -- a 1x1 kernel on a large map: direct GEMMs accumulating onto the bias
  local x, w1, b1 = duel.randn(2, 4, 64, 64), duel.randn(4, 3, 1, 1), duel.randn(3)
  T.close(F.conv_transpose2d(x, w1, b1), naive_conv_transpose2d(x, w1, b1, {}), 1e-4)
end)

T.case('conv2d: 1 to 4 output channels (direct kernels), all three ops vs naive loops', function()
  duel.manual_seed(11)
  for O = 1, 4 do
    for _, o in ipairs{{padding = {1, 2}, dilation = {1, 2}, stride = {2, 1}}, {padding = 3}} do
      local x = duel.randn(2, 3, 11, 21):requires_grad_()
      local w = duel.randn(O, 3, 3, 2):requires_grad_()
      local b = duel.randn(O)
      local y = F.conv2d(x, w, b, o)
      local label = ('O=%d padding %s'):format(O, T.show(o.padding))
      T.close(y, naive_conv2d(x, w, b, o), 1e-4, label)
      local u = duel.randn(y:size())
      local g = grads(y, {x, w}, u)
      local sh, ph, dh = pair(o.stride, 1), pair(o.padding, 0), pair(o.dilation, 1)
      local ot = {stride = o.stride, padding = o.padding, dilation = o.dilation,
                  output_padding = {(11 + 2 * ph - 2 * dh - 1) % sh, 0}}
      T.close(g[1], naive_conv_transpose2d(u, w, nil, ot), 1e-4, label .. ' dx')
      T.close(g[2], naive_weight_grad(x, u, 3, 2, o), 1e-3, label .. ' dW')
    end
  end
  -- a transposed conv from 3 channels runs the adjoint kernel forward
  local u, w, b = duel.randn(2, 3, 10, 20), duel.randn(3, 5, 3, 3), duel.randn(5)
  local o = {stride = {2, 1}, padding = 1, output_padding = {1, 0}}
  T.close(F.conv_transpose2d(u, w, b, o), naive_conv_transpose2d(u, w, b, o), 1e-4)
end)

-- conv2d as 9 shifted matmuls (duel ops, so autograd differentiates it independently)
local function shifted_conv3x3(x, w, ph, pw)
  local N, Cc, H, W = unpack(x:size())
  local O = w:size(1)
  local xp = F.pad(x, {pw, pw, ph, ph})
  local Ho, Wo = H + 2 * ph - 2, W + 2 * pw - 2
  local y
  for i = 1, 3 do
    for j = 1, 3 do
      local cols = xp:narrow(3, i, Ho):narrow(4, j, Wo):permute(2, 1, 3, 4):reshape(Cc, N * Ho * Wo)
      local t = w:select(4, j):select(3, i):matmul(cols):reshape(O, N, Ho, Wo):permute(2, 1, 3, 4)
      y = y and y + t or t
    end
  end
  return y
end

T.case('conv2d: wide 3x3 stride-1 layers (Winograd), all three ops vs naive loops', function()
  duel.manual_seed(12)
  -- (at least 64 output tiles of 2x2 each: smaller maps take im2col)
  for _, c in ipairs{{2, 32, 33, 16, 15, {1, 1}}, {1, 40, 32, 17, 18, {0, 2}}, {6, 32, 32, 9, 3, {2, 1}}} do
    local N, Cc, O, H, W, pad = unpack(c)
    local o = {padding = pad}
    local x = duel.randn(N, Cc, H, W):requires_grad_()
    local w = (duel.randn(O, Cc, 3, 3) * 0.2):requires_grad_()
    local b = duel.randn(O)
    local y = F.conv2d(x, w, b, o)
    local label = ('%d x %d -> %d, %dx%d, padding %s'):format(N, Cc, O, H, W, T.show(pad))
    T.close(y, naive_conv2d(x, w, b, o), 1e-4, label)
    local u = duel.randn(y:size())
    local g = grads(y, {x, w}, u)
    T.close(g[1], naive_conv_transpose2d(u, w, nil, o), 1e-4, label .. ' dx')
    T.close(g[2], naive_weight_grad(x, u, 3, 3, o), 1e-3, label .. ' dW')
    T.close(F.conv_transpose2d(u, w, nil, o), naive_conv_transpose2d(u, w, nil, o), 1e-4,
            label .. ' conv_transpose2d')
  end
  -- 576 tiles of 256 + 256 channels: more than one block of tiles (winograd.c's budget holds
  -- 512), checked against the shifted-matmul form
  do
    local x = duel.randn(1, 256, 48, 48):requires_grad_()
    local w = (duel.randn(256, 256, 3, 3) * 0.03):requires_grad_()
    local y = F.conv2d(x, w, nil, {padding = 1})
    local x2, w2 = x:detach():requires_grad_(), w:detach():requires_grad_()
    local yr = shifted_conv3x3(x2, w2, 1, 1)
    T.close(y, yr, 1e-4, 'blocks: y')
    local u = duel.randn(y:size())
    local g, gr = grads(y, {x, w}, u), grads(yr, {x2, w2}, u)
    T.close(g[1], gr[1], 1e-4, 'blocks: dx')
    T.close(g[2], gr[2], 1e-3, 'blocks: dW')
  end
  -- double backward through the Winograd adjoint: d/dw of ||dL/dx||^2 against the same
  -- derivative of the shifted-matmul form
  local x = duel.randn(2, 32, 16, 16):requires_grad_()
  local w = (duel.randn(32, 32, 3, 3) * 0.1):requires_grad_()
  local u = duel.randn(2, 32, 16, 16)
  local function penalty_grad(conv)
    local gx = grads(conv(x, w), {x}, u, true)[1]
    return grads((gx * gx):sum(), {w}, duel.ones({}))[1]
  end
  T.close(penalty_grad(function(a, k) return F.conv2d(a, k, nil, {padding = 1}) end),
          penalty_grad(function(a, k) return shifted_conv3x3(a, k, 1, 1) end), 1e-3,
          'double backward')
end)

T.case('conv2d: strided (non-contiguous) inputs and weights', function()
  duel.manual_seed(4)
  local x = duel.randn(2, 3, 5, 6):transpose(3, 4)
  local w = duel.randn(4, 3, 2, 3):transpose(3, 4)
  T.close(F.conv2d(x, w, nil, {padding = 1}), naive_conv2d(x, w, nil, {padding = 1}), 1e-4)
end)

-- ---- conv_transpose2d ---------------------------------------------------------------------

T.case('conv_transpose2d: hand values', function()
  local x = duel.tensor{{{{1, 2}, {3, 4}}}}
  local w = duel.ones(1, 1, 2, 2)
  T.close(F.conv_transpose2d(x, w), {{{{1, 3, 2}, {4, 10, 6}, {3, 7, 4}}}})
  T.close(F.conv_transpose2d(x, w, duel.tensor{1}, {stride = 2}),
    {{{{2, 2, 3, 3}, {2, 2, 3, 3}, {4, 4, 5, 5}, {4, 4, 5, 5}}}})
  T.close(F.conv_transpose2d(x, w, nil, {stride = 2, padding = 1, output_padding = 1}),
    {{{{1, 2, 2}, {3, 4, 4}, {3, 4, 4}}}})
end)

T.case('conv_transpose2d: matches a naive loop', function()
  duel.manual_seed(5)
  for _, o in ipairs{{}, {stride = 2, padding = 1, output_padding = 1},
                     {stride = {2, 3}, output_padding = {1, 2}, groups = 2},
                     {dilation = 2, padding = 2, groups = 4},
                     {stride = 1, dilation = 2, output_padding = 1}} do -- output_padding >= stride
    local x = duel.randn(2, 4, 4, 5)
    local w = duel.randn(4, 3, 3, 3) -- {in, out/groups, kh, kw}: 3 * groups outputs
    local b = duel.randn(3 * (o.groups or 1))
    T.close(F.conv_transpose2d(x, w, b, o), naive_conv_transpose2d(x, w, b, o), 1e-4,
      T.show(o.stride or 1))
  end
end)

T.case('conv_transpose2d: adjoint of conv2d, and its gradients', function()
  duel.manual_seed(6)
  for _, o in ipairs{{stride = 2, padding = 1, output_padding = 1, groups = 2},
                     {stride = 1, dilation = 2, output_padding = 1}} do
    local u = duel.randn(2, 4, 5, 4):requires_grad_()
    local w = duel.randn(4, 3, 3, 3):requires_grad_()
    local z = F.conv_transpose2d(u, w, nil, o)
    local x = duel.randn(z:size())
    -- <conv2d(x, W), u> = <x, conv_transpose2d(u, W)>
    local co = {stride = o.stride, padding = o.padding, dilation = o.dilation, groups = o.groups}
    local c = F.conv2d(x, w, nil, co)
    if o.output_padding == 1 and o.stride == 1 then c = c:narrow(3, 1, 5):narrow(4, 1, 4) end
    local lhs, rhs = dot(c, u), dot(x, z)
    T.ok(math.abs(lhs - rhs) <= 1e-4 * (1 + math.abs(lhs)), ('adjoint %g vs %g'):format(lhs, rhs))
    -- d/du = conv2d(g, W) (cropped to u's size); d/dW = conv2d_weight(g, u)
    local g = grads(z, {u, w}, x)
    T.close(g[1], c, 1e-4)
    T.close(g[2], naive_weight_grad(x, u, 3, 3, co), 1e-4)
  end
end)

-- ---- conv2d_weight (reached as conv2d's weight gradient) ---------------------------------------

T.case('conv2d_weight: the bilinear identity and its gradients', function()
  duel.manual_seed(7)
  local o = {stride = 2, padding = 1, groups = 2}
  local x = duel.randn(2, 4, 5, 5):requires_grad_()
  local w = duel.randn(6, 2, 3, 3):requires_grad_()
  local u = duel.randn(2, 6, 3, 3):requires_grad_()
  local dw = grads(F.conv2d(x, w, nil, o), {w}, u, true)[1]
  T.close(dw, naive_weight_grad(x, u, 3, 3, o), 1e-4)
  -- <conv2d_weight(x,u), V> = <conv2d(x,V), u>; d/dx = conv_transpose2d(u, G), d/du = conv2d(x, G)
  local V = duel.randn(6, 2, 3, 3)
  local lhs, rhs = dot(dw, V), dot(F.conv2d(x, V, nil, o), u)
  T.ok(math.abs(lhs - rhs) <= 1e-4 * (1 + math.abs(lhs)))
  local g = grads(dw, {x, u}, V)
  T.close(g[1], F.conv_transpose2d(u, V, nil, {stride = 2, padding = 1, groups = 2}), 1e-4)
  T.close(g[2], F.conv2d(x, V, nil, o), 1e-4)
end)

-- ---- gradcheck and gradgradcheck of every registered op -------------------------------------

T.gradcase('conv2d', function()
  local x, w, b = duel.randn(2, 4, 4, 4):requires_grad_(), duel.randn(4, 2, 3, 3):requires_grad_(),
    duel.randn(4):requires_grad_()
  return function(p, q, r)
    local y = F.conv2d(p, q, r, {stride = 2, padding = 1, groups = 2})
    return y * y
  end, {x, w, b}
end)
T.gradcase('conv2d', function()
  local x, w = duel.randn(1, 2, 5, 4):requires_grad_(), duel.randn(3, 2, 2, 2):requires_grad_()
  return function(p, q)
    local y = F.conv2d(p, q, nil, {dilation = 2, padding = {1, 0}, stride = {1, 2}})
    return y * y
  end, {x, w}
end)
T.gradcase('conv_transpose2d', function()
  local x, w, b = duel.randn(2, 2, 3, 3):requires_grad_(), duel.randn(2, 3, 3, 3):requires_grad_(),
    duel.randn(3):requires_grad_()
  return function(p, q, r)
    local y = F.conv_transpose2d(p, q, r, {stride = 2, padding = 1, output_padding = 1})
    return y * y
  end, {x, w, b}
end)
T.gradcase('conv_transpose2d', function()
  local x, w = duel.randn(1, 4, 3, 2):requires_grad_(), duel.randn(4, 1, 2, 3):requires_grad_()
  return function(p, q)
    local y = F.conv_transpose2d(p, q, nil, {groups = 2, dilation = 2, output_padding = 1})
    return y * y
  end, {x, w}
end)
T.gradcase('conv2d_weight', function()
  local x, u = duel.randn(2, 4, 5, 5):requires_grad_(), duel.randn(2, 4, 3, 3):requires_grad_()
  local w = duel.randn(4, 2, 3, 3):requires_grad_()
  return function(p, q)
    local y = F.conv2d(p, w, nil, {stride = 2, padding = 1, groups = 2})
    local dw = duel.autograd.grad({y}, {w}, {grad_outputs = {q}, create_graph = true})[1]
    return dw * dw
  end, {x, u}
end)

-- ---- linear -------------------------------------------------------------------------------

T.case('linear: values for 1-D, 2-D and 3-D inputs', function()
  local w = duel.tensor{{1, 2, 3}, {0, -1, 1}}
  local b = duel.tensor{0.5, -1}
  T.close(F.linear(duel.tensor{{1, 1, 1}, {1, 0, 2}}, w, b), {{6.5, -1}, {7.5, 1}})
  T.close(F.linear(duel.tensor{1, 0, 2}, w), {7, 2})
  local x3 = duel.tensor{{{1, 1, 1}}, {{1, 0, 2}}}
  T.close(F.linear(x3, w, b), {{{6.5, -1}}, {{7.5, 1}}})
  T.close(F.linear(duel.tensor{{1, 1}, {1, 0}, {1, 2}}:t(), w, b), {{6.5, -1}, {7.5, 1}})
end)

T.case('linear: gradients in closed form; a transposed weight (tied) needs no copy', function()
  duel.manual_seed(8)
  local x, w, b = duel.randn(2, 3, 4):requires_grad_(), duel.randn(5, 4):requires_grad_(),
    duel.randn(5):requires_grad_()
  local u = duel.randn(2, 3, 5)
  local g = grads(F.linear(x, w, b), {x, w, b}, u)
  T.close(g[1], duel.matmul(u, w), 1e-5)
  T.close(g[2], duel.matmul(u:view(6, 5):t(), x:view(6, 4)), 1e-5)
  T.close(g[3], u:sum(1):sum(1), 1e-5)
  -- w given as the transpose of a {in,out} matrix, x as a transposed view
  local wt = duel.randn(4, 5):requires_grad_()
  local x2 = duel.randn(4, 6)
  local y = F.linear(x2:t(), wt:t(), b)
  T.close(y, duel.matmul(x2:t(), wt) + b, 1e-5)
  local u2 = duel.randn(6, 5)
  T.close(grads(F.linear(x2:t(), wt:t(), b), {wt}, u2)[1], duel.matmul(x2, u2), 1e-5)
  T.close(F.linear(duel.zeros(0, 4), w, b), duel.zeros(0, 5))
  T.close(F.linear(duel.zeros(2, 0), duel.zeros(3, 0), duel.tensor{1, 2, 3}),
    {{1, 2, 3}, {1, 2, 3}})
end)

T.gradcase('linear', function()
  local x, w, b = duel.randn(2, 3, 4):requires_grad_(), duel.randn(5, 4):requires_grad_(),
    duel.randn(5):requires_grad_()
  return function(p, q, r) local y = F.linear(p, q, r); return y * y end, {x, w, b}
end)
T.gradcase('linear', function()
  local x, w = duel.randn(4):requires_grad_(), duel.randn(4, 3):requires_grad_()
  return function(p, q) local y = F.linear(p, q:t()); return y * y end, {x, w}
end)

-- ---- pooling ------------------------------------------------------------------------------

local function grid(n, m)
  local t = {}
  for i = 1, n do
    t[i] = {}
    for j = 1, m do t[i][j] = (i - 1) * m + j end
  end
  return duel.tensor{{t}}
end

T.case('avg_pool2d: hand values, padding counted, gradient', function()
  local x = grid(4, 4):requires_grad_()
  T.close(F.avg_pool2d(x, 2), {{{{3.5, 5.5}, {11.5, 13.5}}}})
  T.close(F.avg_pool2d(x, {2, 4}), {{{{4.5}, {12.5}}}})
  T.close(F.avg_pool2d(x, 3, {stride = 1}), {{{{6, 7}, {10, 11}}}})
  local p = F.avg_pool2d(grid(3, 3), 3, {stride = 1, padding = 1})
  T.close(p, {{{{12 / 9, 21 / 9, 16 / 9}, {27 / 9, 45 / 9, 33 / 9}, {24 / 9, 39 / 9, 28 / 9}}}})
  local g = grads(F.avg_pool2d(x, 3, {stride = 1}), {x}, duel.ones(1, 1, 2, 2))[1]
  T.close(g, duel.tensor{{{{1, 2, 2, 1}, {2, 4, 4, 2}, {2, 4, 4, 2}, {1, 2, 2, 1}}}} / 9)
end)

T.case('max_pool2d: hand values, overlapping windows, padding, gradient', function()
  local x = grid(4, 4):requires_grad_()
  T.close(F.max_pool2d(x, 2), {{{{6, 8}, {14, 16}}}})
  T.close(F.max_pool2d(x, 3, {stride = 2, padding = 1}), {{{{6, 8}, {14, 16}}}})
  T.close(F.max_pool2d(-x, {1, 2}, {stride = {2, 2}}), {{{{-1, -3}, {-9, -11}}}})
  local peak = duel.tensor{{{{1, 2, 1}, {2, 9, 2}, {1, 2, 1}}}}:requires_grad_()
  local y = F.max_pool2d(peak, 2, {stride = 1})
  T.close(y, {{{{9, 9}, {9, 9}}}})
  T.close(grads(y, {peak}, duel.ones(1, 1, 2, 2))[1], {{{{0, 0, 0}, {0, 4, 0}, {0, 0, 0}}}})
  local g = grads(F.max_pool2d(x, 2), {x}, duel.tensor{{{{1, 2}, {3, 4}}}})[1]
  T.close(g, {{{{0, 0, 0, 0}, {0, 1, 0, 2}, {0, 0, 0, 0}, {0, 3, 0, 4}}}})
  local nan = F.max_pool2d(duel.tensor{{{{1, 0 / 0}, {3, 4}}}}, 2):item()
  T.ok(nan ~= nan, 'NaN propagates')
end)

T.case('pooling: multi-channel batches and strided input', function()
  duel.manual_seed(9)
  local x = duel.randn(2, 3, 6, 5)
  local xt = x:transpose(3, 4):contiguous():transpose(3, 4) -- same values, other strides
  T.close(F.max_pool2d(xt, 2), F.max_pool2d(x, 2))
  local a = F.avg_pool2d(x, {3, 2}, {stride = {3, 1}})
  T.eq(a:size(), {2, 3, 2, 4})
  T.close(a:narrow(1, 2, 1):narrow(2, 3, 1):narrow(3, 2, 1):narrow(4, 4, 1),
    x:narrow(1, 2, 1):narrow(2, 3, 1):narrow(3, 4, 3):narrow(4, 4, 2):mean():item(), 1e-5)
end)

T.gradcase('avg_pool2d', function()
  local x = duel.randn(2, 2, 5, 5):requires_grad_()
  return function(p) local y = F.avg_pool2d(p, 3, {stride = 2, padding = 1}); return y * y end, {x}
end)
T.gradcase('avg_pool2d_backward', function()
  local x = duel.randn(2, 2, 5, 4):requires_grad_()
  local g = duel.randn(2, 2, 3, 3):requires_grad_()
  return function(q)
    local y = F.avg_pool2d(x, {3, 2}, {stride = {2, 1}, padding = {1, 0}})
    local d = duel.autograd.grad({y}, {x}, {grad_outputs = {q}, create_graph = true})[1]
    return d * d
  end, {g}
end)
T.gradcase('max_pool2d', function()
  local x = distinct(2, 2, 5, 5)
  return function(p) local y = F.max_pool2d(p, 3, {stride = 2, padding = 1}); return y * y end, {x}
end)
T.gradcase('max_pool2d_backward', function()
  local x = distinct(2, 2, 4, 5)
  local g = duel.randn(2, 2, 3, 4):requires_grad_()
  return function(q)
    local y = F.max_pool2d(x, 2, {stride = 1})
    local d = duel.autograd.grad({y}, {x}, {grad_outputs = {q}, create_graph = true})[1]
    return d * d
  end, {g}
end)

-- ---- errors -------------------------------------------------------------------------------

T.case('conv2d: errors', function()
  local x, w = duel.zeros(2, 4, 8, 8), duel.zeros(6, 2, 3, 3)
  T.raises_exact('conv2d: input must be 4-D {N,C,H,W}, got {3,32,32}',
    function() F.conv2d(duel.zeros(3, 32, 32), w) end)
  T.raises_exact('conv2d: weight expects 3 input channels (x groups 1), got input {2,4,8,8}',
    function() F.conv2d(x, duel.zeros(5, 3, 3, 3)) end)
  T.raises_exact('conv2d: weight expects 2 input channels (x groups 1), got input {2,4,8,8}',
    function() F.conv2d(x, w) end)
  T.raises_exact('conv2d: weight must be 4-D {out,in/groups,kh,kw}, got {6,4}',
    function() F.conv2d(x, duel.zeros(6, 4)) end)
  T.raises_exact('conv2d: groups must divide the output channels, got groups 4 and weight ' ..
    '{6,1,3,3}',
    function() F.conv2d(x, duel.zeros(6, 1, 3, 3), nil, {groups = 4}) end)
  T.raises_exact('conv2d: bias must be {6}, got {5}',
    function() F.conv2d(x, w, duel.zeros(5), {groups = 2}) end)
  T.raises_exact('conv2d: stride must be a positive whole number, got 0',
    function() F.conv2d(x, w, nil, {stride = 0, groups = 2}) end)
  T.raises_exact('conv2d: padding must be a non-negative whole number, got -1',
    function() F.conv2d(x, w, nil, {padding = {1, -1}, groups = 2}) end)
  T.raises_exact('conv2d: groups must be a positive whole number, got 1.5',
    function() F.conv2d(x, w, nil, {groups = 1.5}) end)
  T.raises_exact('conv2d: groups must be a positive whole number, got table',
    function() F.conv2d(x, w, nil, {groups = {2, 2}}) end)
  T.raises_exact('conv2d: dilation must be a number or a table {h,w}, got string',
    function() F.conv2d(x, w, nil, {dilation = 'x', groups = 2}) end)
  T.raises_exact('conv2d: stride must be a number or a table {h,w}, got a table of 3 values',
    function() F.conv2d(x, w, nil, {stride = {1, 1, 1}, groups = 2}) end)
  T.raises_exact("conv2d: unknown option (expected stride, padding, dilation, groups), " ..
    "got 'strides'",
    function() F.conv2d(x, w, nil, {strides = 2}) end)
  T.raises_exact('conv2d: options must be a table, got number',
    function() F.conv2d(x, w, nil, 2) end)
  T.raises_exact('conv2d: padded input is smaller than the dilated kernel {3,3} (padding {0,0}, ' ..
    'dilation {2,2}), got input {2,4,4,4}',
    function() F.conv2d(duel.zeros(2, 4, 4, 4), w, nil, {dilation = 2, groups = 2}) end)
  T.raises_exact('conv2d: argument 1 must be a duel.Tensor, got nil',
    function() F.conv2d(nil, w) end)
  T.raises_exact('conv2d: argument 3 must be a duel.Tensor, got string',
    function() F.conv2d(x, w, 'b', {}) end)
end)

T.case('conv_transpose2d: errors', function()
  local x, w = duel.zeros(1, 4, 3, 3), duel.zeros(4, 2, 3, 3)
  T.raises_exact('conv_transpose2d: input must be 4-D {N,C,H,W}, got {4,3,3}',
    function() F.conv_transpose2d(duel.zeros(4, 3, 3), w) end)
  T.raises_exact('conv_transpose2d: weight expects 3 input channels, got input {1,4,3,3}',
    function() F.conv_transpose2d(x, duel.zeros(3, 2, 3, 3)) end)
  T.raises_exact('conv_transpose2d: output_padding must be smaller than stride or dilation, got ' ..
    'output_padding {1,1} with stride {1,1} and dilation {1,1}',
    function() F.conv_transpose2d(x, w, nil, {output_padding = 1}) end)
  T.raises_exact('conv_transpose2d: output_padding must be smaller than stride or dilation, got ' ..
    'output_padding {0,2} with stride {2,2} and dilation {1,1}',
    function() F.conv_transpose2d(x, w, nil, {stride = 2, output_padding = {0, 2}}) end)
  T.raises_exact('conv_transpose2d: groups must divide the input channels, got groups 3 and ' ..
    'input {1,4,3,3}', function() F.conv_transpose2d(x, w, nil, {groups = 3}) end)
  T.raises_exact('conv_transpose2d: bias must be {4}, got {2}',
    function() F.conv_transpose2d(x, w, duel.zeros(2), {groups = 2}) end)
  T.raises_exact('conv_transpose2d: padding {3,3} leaves no output, got output size {-1,-1} ' ..
    'for input {1,4,3,3}', function() F.conv_transpose2d(x, w, nil, {padding = 3}) end)
  T.raises_exact("conv_transpose2d: unknown option (expected stride, padding, output_padding, " ..
    "dilation, groups), got 'bias'", function() F.conv_transpose2d(x, w, nil, {bias = false}) end)
end)

T.case('linear and pooling: errors', function()
  T.raises_exact('linear: weight must be 2-D {out,in}, got {3}',
    function() F.linear(duel.zeros(2, 3), duel.zeros(3)) end)
  T.raises_exact('linear: input\'s last dimension must be 3 (weight {2,3}), got input {2,4}',
    function() F.linear(duel.zeros(2, 4), duel.zeros(2, 3)) end)
  T.raises_exact('linear: bias must be {2}, got {3}',
    function() F.linear(duel.zeros(2, 3), duel.zeros(2, 3), duel.zeros(3)) end)
  local x = duel.zeros(1, 2, 4, 4)
  T.raises_exact('max_pool2d: input must be 4-D {N,C,H,W}, got {2,4,4}',
    function() F.max_pool2d(duel.zeros(2, 4, 4), 2) end)
  T.raises_exact('avg_pool2d: kernel_size must be a number or a table {h,w}, got nil',
    function() F.avg_pool2d(x) end)
  T.raises_exact('avg_pool2d: kernel_size must be a positive whole number, got 0',
    function() F.avg_pool2d(x, {0, 2}) end)
  T.raises_exact('max_pool2d: stride must be a positive whole number, got 0',
    function() F.max_pool2d(x, 2, {stride = 0}) end)
  T.raises_exact('avg_pool2d: padding must be at most half the kernel size, got padding {2,2} ' ..
    'with kernel {3,3}', function() F.avg_pool2d(x, 3, {padding = 2}) end)
  T.raises_exact('max_pool2d: padded input is smaller than the kernel {5,5} (padding {0,0}), ' ..
    'got input {1,2,4,4}', function() F.max_pool2d(x, 5) end)
  T.raises_exact("max_pool2d: unknown option (expected stride, padding), got 'dilation'",
    function() F.max_pool2d(x, 2, {dilation = 2}) end)
end)
