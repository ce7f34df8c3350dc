-- Padding and upsampling: hand-written values for every mode, adjointness of each op and its
-- registered backward (<A x, u> = <x, A^T u>, and A^T's own backward is A again),
-- gradcheck/gradgradcheck for the four registered ops, and error messages.
local T = require 'tests.harness'
local duel = require 'duel'
local F = duel.F
local C = duel._core

local function flat(t)
  local v = {}
  for i = 1, t:numel() do v[i] = C.flat_get(t, i) end
  return v
end

-- <a, b> in Lua doubles
local function dot(a, b)
  local s = 0
  for i = 1, a:numel() do s = s + C.flat_get(a, i) * C.flat_get(b, i) end
  return s
end

local ramp = function() return duel.tensor{{{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}} end

-- A^T u through autograd: the gradient of <A(x), u> w.r.t. x
local function adjoint(A, x, u, create_graph)
  local xl = x:detach():requires_grad_()
  return duel.autograd.grad({(A(xl) * u):sum()}, {xl}, {create_graph = create_graph})[1]
end

-- <A x, u> = <x, A^T u> for random x and u
local function check_adjoint(A, xshape)
  local x = duel.randn(xshape)
  local y = A(x)
  local u = duel.randn(y:size())
  local lhs, rhs = dot(y, u), dot(x, adjoint(A, x, u))
  T.ok(math.abs(lhs - rhs) <= 1e-4 * (1 + math.abs(lhs)),
       ('adjointness: <Ax,u> = %.7g but <x,A^T u> = %.7g'):format(lhs, rhs))
end

-- ---- pad ---------------------------------------------------------------------------------------

T.case('pad: zero, reflect and replicate on a 3x3 ramp, by hand', function()
  local x = ramp()
  T.close(F.pad(x, {1, 2, 0, 1}), {{{
    {0, 1, 2, 3, 0, 0},
    {0, 4, 5, 6, 0, 0},
    {0, 7, 8, 9, 0, 0},
    {0, 0, 0, 0, 0, 0}}}}, 0)
  T.close(F.pad(x, {2, 1, 1, 2}, {mode = 'reflect'}), {{{
    {6, 5, 4, 5, 6, 5},
    {3, 2, 1, 2, 3, 2},
    {6, 5, 4, 5, 6, 5},
    {9, 8, 7, 8, 9, 8},
    {6, 5, 4, 5, 6, 5},
    {3, 2, 1, 2, 3, 2}}}}, 0)
  T.close(F.pad(x, {2, 1, 1, 0}, {mode = 'replicate'}), {{{
    {1, 1, 1, 2, 3, 3},
    {1, 1, 1, 2, 3, 3},
    {4, 4, 4, 5, 6, 6},
    {7, 7, 7, 8, 9, 9}}}}, 0)
  -- a single number pads all four sides; zero is the default mode
  T.close(flat(F.pad(x, 1, {mode = 'zero'})), flat(F.pad(x, {1, 1, 1, 1})), 0)
  T.close(F.pad(duel.tensor{{1, 2}}, 1), {{0, 0, 0, 0}, {0, 1, 2, 0}, {0, 0, 0, 0}}, 0)
end)

T.case('pad: backward folds the border back (reflect, replicate) or crops (zero)', function()
  local x = ramp():requires_grad_()
  -- with all-ones upstream gradient, each input receives the number of outputs that read it
  local g = duel.autograd.grad({F.pad(x, 1, {mode = 'reflect'}):sum()}, {x})[1]
  T.close(g, {{{{1, 3, 1}, {3, 9, 3}, {1, 3, 1}}}}, 0)
  g = duel.autograd.grad({F.pad(x, 1, {mode = 'replicate'}):sum()}, {x})[1]
  T.close(g, {{{{4, 2, 4}, {2, 1, 2}, {4, 2, 4}}}}, 0)
  g = duel.autograd.grad({F.pad(x, {2, 0, 1, 3}):sum()}, {x})[1]
  T.close(g, {{{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}}, 0)
  -- a position-dependent upstream gradient: the fold adds exactly the mirrored entries
  local u = duel.arange(15):view(1, 1, 3, 5) -- pad {1,1,0,0} reflect: cols {2,1,2,3,2}
  g = adjoint(function(a) return F.pad(a, {1, 1, 0, 0}, {mode = 'reflect'}) end, x, u)
  T.close(g, {{{{2, 1 + 3 + 5, 4}, {7, 6 + 8 + 10, 9}, {12, 11 + 13 + 15, 14}}}}, 0)
end)

T.case('pad: adjointness for every mode, any rank >= 2, and the parallel path', function()
  duel.manual_seed(4)
  for _, mode in ipairs{'zero', 'reflect', 'replicate'} do
    for _, shape in ipairs{{4, 5}, {2, 3, 4, 5}, {2, 1, 2, 3, 4}, {4, 8, 64, 64}} do
      check_adjoint(function(a) return F.pad(a, {3, 1, 0, 2}, {mode = mode}) end, shape)
    end
    check_adjoint(function(a) return F.pad(a, {1, 0, 2, 2}, {mode = mode}) end, {3, 3, 3})
  end
  -- pad2d_backward's backward is pad2d: d<pad^T(u), v>/du = pad(v)
  local x, v = duel.randn(2, 3, 4), duel.randn(2, 3, 4)
  local P = function(a) return F.pad(a, {2, 1, 1, 2}, {mode = 'reflect'}) end
  local u = duel.randn(2, 6, 7):requires_grad_()
  local pu = adjoint(P, x, u, true)
  local gu = duel.autograd.grad({(pu * v):sum()}, {u})[1]
  T.close(flat(gu), flat(P(v)), 1e-6)
end)

T.gradcase('pad2d', function()
  local x = duel.randn(2, 3, 4):requires_grad_()
  return function(a)
    local r = F.pad(a, {1, 2, 2, 1}, {mode = 'reflect'})
    local p = F.pad(a, {1, 2, 2, 1}, {mode = 'replicate'})
    return r * p + F.pad(a, {1, 2, 2, 1}) * r
  end, {x}
end)

T.gradcase('pad2d_backward', function()
  local x0 = duel.randn(2, 3, 3)
  local u = duel.randn(2, 5, 6):requires_grad_()
  return function(g)
    local function P(mode) return function(t) return F.pad(t, {2, 1, 0, 2}, {mode = mode}) end end
    local a = adjoint(P('reflect'), x0, g, true)
    local b = adjoint(P('replicate'), x0, g, true)
    local c = adjoint(P('zero'), x0, g, true)
    return a * b + c * a
  end, {u}
end)

T.case('pad: error messages', function()
  local x = ramp()
  T.raises_exact('pad: reflect padding must be smaller than the padded dimension (size 3), got 3',
                 function() F.pad(x, {0, 3, 0, 0}, {mode = 'reflect'}) end)
  T.raises_exact('pad: reflect padding must be smaller than the padded dimension (size 2), got 2',
                 function() F.pad(duel.randn(2, 5), {1, 1, 2, 0}, {mode = 'reflect'}) end)
  T.raises_exact("pad: unknown mode 'circular', expected 'zero', 'reflect' or 'replicate'",
                 function() F.pad(x, 1, {mode = 'circular'}) end)
  T.raises_exact('pad: padding must have 4 entries {left,right,top,bottom}, got 2',
                 function() F.pad(x, {1, 1}) end)
  T.raises_exact('pad: padding must be a number or a table {left,right,top,bottom}, got string',
                 function() F.pad(x, 'same') end)
  T.raises_exact('pad: padding must be a whole number, got 1.5',
                 function() F.pad(x, {1, 1.5, 0, 0}) end)
  T.raises_exact('pad: padding {left,right,top,bottom} must be non-negative, got {1,-1,0,0}',
                 function() F.pad(x, {1, -1, 0, 0}) end)
  T.raises_exact('pad: input must be at least 2-D, got {3}',
                 function() F.pad(duel.randn(3), 1) end)
  T.raises_exact('pad: replicate padding needs a non-empty dimension, got size 0',
                 function() F.pad(duel.zeros(2, 0), {1, 0, 0, 0}, {mode = 'replicate'}) end)
  T.raises_exact("pad: option 'mode' must be a string, got number",
                 function() F.pad(x, 1, {mode = 1}) end)
  T.raises_exact("pad: unknown option (expected mode), got 'value'",
                 function() F.pad(x, 1, {value = 0}) end)
end)

-- ---- upsample --------------------------------------------------------------------------------

T.case('upsample: nearest and bilinear x2 of [[1,2],[3,4]], as PyTorch', function()
  local x = duel.tensor{{{{1, 2}, {3, 4}}}}
  T.close(F.upsample(x, {scale = 2}), {{{
    {1, 1, 2, 2}, {1, 1, 2, 2}, {3, 3, 4, 4}, {3, 3, 4, 4}}}}, 0)
  -- align_corners=false: source coordinate (i + 0.5)/2 - 0.5, clamped at 0
  T.close(F.upsample(x, {scale = 2, mode = 'bilinear'}), {{{
    {1.00, 1.25, 1.75, 2.00},
    {1.50, 1.75, 2.25, 2.50},
    {2.50, 2.75, 3.25, 3.50},
    {3.00, 3.25, 3.75, 4.00}}}}, 1e-6)
  -- x3 along w only: sources -1/3 -> 0, 0, 1/3, 2/3, 1, 4/3 -> 1 (the last input)
  T.close(F.upsample(x, {scale = {1, 3}, mode = 'bilinear'}), {{{
    {1, 1, 4 / 3, 5 / 3, 2, 2}, {3, 3, 10 / 3, 11 / 3, 4, 4}}}}, 1e-6)
  T.close(F.upsample(x, {scale = {2, 1}}), {{{{1, 2}, {1, 2}, {3, 4}, {3, 4}}}}, 0)
  T.close(flat(F.upsample(x, 3)), flat(F.upsample(x, {scale = 3, mode = 'nearest'})), 0)
  T.close(flat(F.upsample(x)), flat(F.upsample(x, {scale = 2})), 0) -- default scale 2, nearest
end)

T.case('upsample: backward by hand (nearest sums blocks, bilinear spreads weights)', function()
  local x = duel.tensor{{{{1, 2}, {3, 4}}}}:requires_grad_()
  local u = duel.arange(16):view(1, 1, 4, 4)
  local g = adjoint(function(a) return F.upsample(a, 2) end, x, u)
  T.close(g, {{{{1 + 2 + 5 + 6, 3 + 4 + 7 + 8}, {9 + 10 + 13 + 14, 11 + 12 + 15 + 16}}}}, 0)
  -- output (2,2) (1-based) = 0.75^2 x11 + 0.75*0.25 (x12 + x21) + 0.25^2 x22
  local e = duel.zeros(1, 1, 4, 4)
  e:set_(1, 1, 1, 2, 2)
  g = adjoint(function(a) return F.upsample(a, {scale = 2, mode = 'bilinear'}) end, x, e)
  T.close(g, {{{{0.5625, 0.1875}, {0.1875, 0.0625}}}}, 1e-7)
end)

T.case('upsample: adjointness (both modes, uneven scales, the parallel path)', function()
  duel.manual_seed(6)
  for _, mode in ipairs{'nearest', 'bilinear'} do
    for _, c in ipairs{{{2, 3, 5, 4}, {2, 3}}, {{1, 2, 1, 7}, {3, 1}}, {{1, 1, 4, 4}, {1, 1}},
                       {{2, 4, 48, 48}, {2, 2}}, {{1, 2, 3, 3}, {4, 5}}} do
      check_adjoint(function(a) return F.upsample(a, {scale = c[2], mode = mode}) end, c[1])
    end
  end
  -- upsample_backward's backward is upsample
  local x, v = duel.randn(1, 2, 3, 4), duel.randn(1, 2, 3, 4)
  local U = function(a) return F.upsample(a, {scale = {2, 3}, mode = 'bilinear'}) end
  local u = duel.randn(1, 2, 6, 12):requires_grad_()
  local gu = duel.autograd.grad({(adjoint(U, x, u, true) * v):sum()}, {u})[1]
  T.close(flat(gu), flat(U(v)), 1e-6)
end)

T.gradcase('upsample', function()
  local x = duel.randn(1, 2, 3, 2):requires_grad_()
  return function(a)
    local b = F.upsample(a, {scale = {2, 3}, mode = 'bilinear'})
    return b * F.upsample(a, {scale = {2, 3}})
  end, {x}
end)

T.gradcase('upsample_backward', function()
  local x0 = duel.randn(1, 2, 2, 3)
  local u = duel.randn(1, 2, 4, 3):requires_grad_()
  return function(g)
    local function U(mode)
      return function(t) return F.upsample(t, {scale = {2, 1}, mode = mode}) end
    end
    local a = adjoint(U('bilinear'), x0, g, true)
    local b = adjoint(U('nearest'), x0, g, true)
    return a * b
  end, {u}
end)

T.case('upsample: error messages', function()
  local x = duel.randn(1, 1, 2, 2)
  T.raises_exact("upsample: unknown mode 'cubic', expected 'nearest' or 'bilinear'",
                 function() F.upsample(x, {mode = 'cubic'}) end)
  T.raises_exact('upsample: scale must be a positive whole number, got 1.5',
                 function() F.upsample(x, {scale = 1.5}) end)
  T.raises_exact('upsample: scale must be a positive whole number, got 0',
                 function() F.upsample(x, 0) end)
  T.raises_exact('upsample: scale must be a positive whole number, got string',
                 function() F.upsample(x, {scale = {2, 'x'}}) end)
  T.raises_exact('upsample: scale table must have 2 entries {sh,sw}, got 3',
                 function() F.upsample(x, {scale = {2, 2, 2}}) end)
  T.raises_exact('upsample: input must be 4-D {N,C,H,W}, got {1,2,2}',
                 function() F.upsample(duel.randn(1, 2, 2), 2) end)
  T.raises_exact("upsample: unknown option (expected scale or mode), got 'size'",
                 function() F.upsample(x, {size = 4}) end)
  T.raises_exact('upsample: options must be a table, got string',
                 function() F.upsample(x, 'bilinear') end)
end)
