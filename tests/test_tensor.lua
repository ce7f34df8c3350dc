-- Closed-form values for tensor creation, inspection, element access, views, RNG and printing.
local T = require 'tests.harness'
local duel = require 'duel'

local function shape(x) return T.show(x:size()) end

-- ---- creation --------------------------------------------------------------------------------

T.case('tensor{}: 0-dim from a number', function()
  local x = duel.tensor(3.5)
  T.eq(x:dim(), 0)
  T.eq(shape(x), '{}')
  T.eq(x:numel(), 1)
  T.eq(x:item(), 3.5)
  T.eq(x:totable(), 3.5)
  T.eq(x:get(), 3.5)
end)

T.case('tensor{}: 1-D, 2-D and 3-D nested tables', function()
  local v = duel.tensor{1, -2.5, 3}
  T.eq(shape(v), '{3}')
  T.close(v, {1, -2.5, 3}, 0)
  local m = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  T.eq(shape(m), '{2,3}')
  T.eq(m:get(2, 1), 4)
  T.eq(m:get(1, 3), 3)
  local c = duel.tensor{{{1, 2}, {3, 4}, {5, 6}}, {{7, 8}, {9, 10}, {11, 12}}}
  T.eq(shape(c), '{2,3,2}')
  T.eq(c:get(2, 3, 1), 11)
  T.eq(c:get(1, 2, 2), 4)
  T.close(c, {{{1, 2}, {3, 4}, {5, 6}}, {{7, 8}, {9, 10}, {11, 12}}}, 0)
end)

T.case('tensor{}: float32 rounding, empty table, copy of a tensor', function()
  T.eq(duel.tensor{0.1}:get(1), 0.10000000149011612) -- float32 nearest to 0.1
  local e = duel.tensor{}
  T.eq(shape(e), '{0}')
  T.eq(e:numel(), 0)
  local a = duel.tensor{1, 2}
  local b = duel.tensor(a)
  b:set_(9, 1)
  T.close(a, {1, 2}, 0)
  T.close(b, {9, 2}, 0)
end)

T.case('tensor{}: ragged and non-numeric tables are errors', function()
  T.raises_exact('tensor: ragged nested table, expected 2 elements at depth 2, got 1',
                 function() return duel.tensor{{1, 2}, {3}} end)
  T.raises('tensor: elements must be numbers, got string', function() duel.tensor{1, 'x'} end)
  T.raises('tensor: expected a table at depth 2, got number', function() duel.tensor{{1}, 2} end)
end)

T.case('zeros/ones/full/empty: shapes and values', function()
  local z = duel.zeros(2, 3)
  T.eq(shape(z), '{2,3}')
  T.close(z, {{0, 0, 0}, {0, 0, 0}}, 0)
  T.close(duel.ones(3), {1, 1, 1}, 0)
  T.close(duel.ones({2, 1}), {{1}, {1}}, 0)
  T.close(duel.full({2, 2}, 7), {{7, 7}, {7, 7}}, 0)
  T.close(duel.full({}, -1.5), -1.5, 0)
  T.eq(duel.full({}, 2):dim(), 0)
  local e = duel.empty(4, 5)
  T.eq(shape(e), '{4,5}')
  T.eq(e:numel(), 20)
  T.eq(duel.zeros(3, 0):numel(), 0)
  T.eq(duel.zeros():dim(), 0)
end)

T.case('arange: Lua-style inclusive ranges', function()
  T.close(duel.arange(5), {1, 2, 3, 4, 5}, 0)
  T.close(duel.arange(3, 6), {3, 4, 5, 6}, 0)
  T.close(duel.arange(1, 10, 3), {1, 4, 7, 10}, 0)
  T.close(duel.arange(1, 9, 3), {1, 4, 7}, 0)
  T.close(duel.arange(5, 1, -2), {5, 3, 1}, 0)
  T.close(duel.arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75, 1}, 0)
  T.eq(duel.arange(0, 1, 0.1):numel(), 11) -- 0.1 steps do not lose the end to rounding
  T.close(duel.arange(0, 1, 0.1):get(11), 1, 1e-7)
  T.eq(duel.arange(0):numel(), 0)
  T.eq(duel.arange(3, 1):numel(), 0)
  T.close(duel.arange(4, 4), {4}, 0)
  -- the inclusive end survives large magnitudes (a 1e-9 step tolerance vanishes past 2^24)
  T.eq(duel.arange(1e8, 1e8 + 2):numel(), 3)
  T.eq(duel.arange(2 ^ 30, 2 ^ 30 + 256, 128):numel(), 3)
  T.raises('arange: step must be non-zero', function() duel.arange(1, 5, 0) end)
  T.raises('arange: bounds must be finite', function() duel.arange(1, math.huge) end)
end)

T.case('rand: values in [0,1), mean about 1/2', function()
  duel.manual_seed(1)
  local r = duel.rand(100000)
  T.eq(shape(r), '{100000}')
  T.ok(r:min():item() >= 0, 'rand below 0')
  T.ok(r:max():item() < 1, 'rand reached 1')
  T.ok(math.abs(r:mean():item() - 0.5) < 0.01, 'rand mean ' .. r:mean():item())
  T.ok(math.abs(r:var():item() - 1 / 12) < 0.003, 'rand var ' .. r:var():item())
  -- no bias to one half of the interval
  local below = r:lt(0.25):sum():item() / 100000
  T.ok(math.abs(below - 0.25) < 0.01, 'rand P(<0.25) = ' .. below)
end)

T.case('randn: mean 0, std 1 over 100k samples', function()
  duel.manual_seed(2)
  local r = duel.randn(100, 1000)
  T.eq(shape(r), '{100,1000}')
  T.ok(math.abs(r:mean():item()) < 0.02, 'randn mean ' .. r:mean():item())
  T.ok(math.abs(r:std():item() - 1) < 0.02, 'randn std ' .. r:std():item())
  -- about 68.3% within one sigma
  local inside = r:abs():lt(1):sum():item() / 100000
  T.ok(math.abs(inside - 0.6827) < 0.01, 'randn P(|x|<1) = ' .. inside)
end)

T.case('manual_seed: same seed, same numbers; new seed, new numbers', function()
  duel.manual_seed(42)
  local a, a2 = duel.randn(50), duel.rand(7)
  duel.manual_seed(42)
  local b, b2 = duel.randn(50), duel.rand(7)
  T.close(a, b:totable(), 0)
  T.close(a2, b2:totable(), 0)
  duel.manual_seed(43)
  local c = duel.randn(50)
  T.ok((a - c):abs():max():item() > 0.1, 'a different seed gave the same numbers')
  -- consecutive draws differ
  duel.manual_seed(42)
  duel.randn(50)
  local d = duel.randn(50)
  T.ok((a - d):abs():max():item() > 0.1, 'the second draw repeated the first')
end)

T.case('manual_seed: identical numbers with 1 and 2 threads', function()
  local prev = duel.get_num_threads()
  local ok, err = pcall(function()
    duel.set_num_threads(1)
    T.eq(duel.get_num_threads(), 1)
    duel.manual_seed(7)
    local n1, u1 = duel.randn(200000), duel.rand(200000)
    duel.set_num_threads(2)
    T.eq(duel.get_num_threads(), 2)
    duel.manual_seed(7)
    local n2, u2 = duel.randn(200000), duel.rand(200000)
    T.eq((n1 - n2):abs():max():item(), 0, 'randn differs across thread counts')
    T.eq((u1 - u2):abs():max():item(), 0, 'rand differs across thread counts')
    -- and a big draw is the same as small draws one after another (counter-based)
    duel.manual_seed(7)
    local first = duel.randn(100000)
    local second = duel.randn(100000)
    T.eq((n1:narrow(1, 1, 100000) - first):abs():max():item(), 0)
    T.eq((n1:narrow(1, 100001, 100000) - second):abs():max():item(), 0)
  end)
  duel.set_num_threads(prev)
  if not ok then error(err, 0) end
end)

-- ---- inspection and element access -------------------------------------------------------------

T.case('size/dim/numel/stride, size(d) with negative d', function()
  local x = duel.zeros(2, 3, 4)
  T.eq(x:size(), {2, 3, 4})
  T.eq(x:size(1), 2)
  T.eq(x:size(3), 4)
  T.eq(x:size(-1), 4)
  T.eq(x:size(-3), 2)
  T.eq(x:dim(), 3)
  T.eq(x:numel(), 24)
  T.eq(x:stride(), {12, 4, 1})
  T.eq(#x, 2)
  T.raises_exact('size: dimension out of range (expected 1 to 3), got 4',
                 function() return x:size(4) end)
  T.raises('size: dimension out of range', function() x:size(0) end)
end)

T.case('item: one-element tensors only', function()
  T.eq(duel.tensor{{-4}}:item(), -4)
  T.eq(duel.tensor{2.5}:item(), 2.5)
  T.raises_exact('item: only one-element tensors can be converted to a number, got {2}',
                 function() return duel.tensor{1, 2}:item() end)
  T.raises_exact('item: only one-element tensors can be converted to a number, got {0}',
                 function() return duel.tensor{}:item() end)
end)

T.case('totable: nested tables, also of non-contiguous views', function()
  local x = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  local t = x:totable()
  T.eq(t, {{1, 2, 3}, {4, 5, 6}})
  T.eq(x:t():totable(), {{1, 4}, {2, 5}, {3, 6}})
  T.eq(x:select(2, 2):totable(), {2, 5})
  T.eq(duel.zeros(2, 0):totable(), {{}, {}})
end)

T.case('get/set_: 1-based indices, set_ returns self, range errors', function()
  local x = duel.zeros(2, 3)
  local r = x:set_(5, 2, 3)
  T.ok(r == x, 'set_ must return self')
  T.eq(x:get(2, 3), 5)
  x:set_(-1, 1, 1)
  T.close(x, {{-1, 0, 0}, {0, 0, 5}}, 0)
  T.raises_exact('get: index 1 out of range for shape {2,3}, got 3',
                 function() return x:get(3, 1) end)
  T.raises_exact('get: index 2 out of range for shape {2,3}, got 0',
                 function() return x:get(1, 0) end)
  T.raises('get: expected 2 indices, got 1', function() x:get(1) end)
  T.raises('set_: index 2 out of range', function() x:set_(1, 1, 4) end)
end)

T.case('fill_/zero_: in place on whole tensors and on views', function()
  local x = duel.ones(2, 3)
  T.ok(x:fill_(4) == x, 'fill_ must return self')
  T.close(x, {{4, 4, 4}, {4, 4, 4}}, 0)
  x:t():select(1, 2):fill_(9) -- column 2 through a transposed view
  T.close(x, {{4, 9, 4}, {4, 9, 4}}, 0)
  x:narrow(1, 2, 1):zero_()
  T.close(x, {{4, 9, 4}, {0, 0, 0}}, 0)
  T.ok(x:zero_() == x, 'zero_ must return self')
  T.close(x, {{0, 0, 0}, {0, 0, 0}}, 0)
end)

T.case('copy_: same shape, broadcast rows and columns, into a transposed view', function()
  local x = duel.zeros(2, 3)
  T.ok(x:copy_(duel.tensor{{1, 2, 3}, {4, 5, 6}}) == x, 'copy_ must return self')
  T.close(x, {{1, 2, 3}, {4, 5, 6}}, 0)
  x:copy_(duel.tensor{7, 8, 9})
  T.close(x, {{7, 8, 9}, {7, 8, 9}}, 0)
  x:copy_(duel.tensor{{1}, {2}})
  T.close(x, {{1, 1, 1}, {2, 2, 2}}, 0)
  x:copy_(duel.tensor(0.5))
  T.close(x, {{0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}}, 0)
  local base = duel.zeros(3, 2)
  base:t():copy_(duel.tensor{{1, 2, 3}, {4, 5, 6}})
  T.close(base, {{1, 4}, {2, 5}, {3, 6}}, 0)
  -- overlapping source and destination: the source is read before anything is written
  local v = duel.tensor{1, 2, 3, 4}
  v:narrow(1, 2, 3):copy_(v:narrow(1, 1, 3))
  T.close(v, {1, 1, 2, 3}, 0)
  T.raises('copy_: source must broadcast', function() duel.zeros(3):copy_(duel.zeros(2, 3)) end)
  T.raises('copy_: shapes cannot be broadcast together', function() x:copy_(duel.zeros(2)) end)
end)

T.case('clone: same values, separate storage', function()
  local x = duel.tensor{{1, 2}, {3, 4}}
  local c = x:clone()
  T.close(c, {{1, 2}, {3, 4}}, 0)
  c:set_(0, 1, 1)
  T.eq(x:get(1, 1), 1)
  local ct = x:t():clone()
  T.ok(ct:is_contiguous(), 'clone of a transposed view should be contiguous')
  T.close(ct, {{1, 3}, {2, 4}}, 0)
end)

T.case('contiguous/is_contiguous: copies only when needed', function()
  local x = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  T.ok(x:is_contiguous())
  T.ok(not x:t():is_contiguous())
  T.ok(x:narrow(1, 2, 1):is_contiguous(), 'a row slice is contiguous')
  T.ok(not x:narrow(2, 1, 2):is_contiguous(), 'a column slice is not')
  local same = x:contiguous()
  same:set_(10, 1, 1) -- already contiguous: shares storage
  T.eq(x:get(1, 1), 10)
  local c = x:t():contiguous()
  T.ok(c:is_contiguous())
  T.eq(c:stride(), {2, 1})
  T.close(c, {{10, 4}, {2, 5}, {3, 6}}, 0)
  c:set_(0, 1, 1) -- a copy: x keeps its value
  T.eq(x:get(1, 1), 10)
end)

T.case('x[i]: numbers for 1-D, sub-tensor views for n-D', function()
  local v = duel.tensor{5, 6, 7}
  T.eq(v[1], 5)
  T.eq(v[3], 7)
  local m = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  T.eq(shape(m[2]), '{3}')
  T.close(m[2], {4, 5, 6}, 0)
  T.eq(m[2][3], 6)
  m[1]:fill_(0) -- a view into m
  T.close(m, {{0, 0, 0}, {4, 5, 6}}, 0)
  T.eq(m:t()[3][2], 6)
  T.raises('index: index out of range for dimension 1 of size 2, got 3', function() return m[3] end)
  T.raises('index: index out of range for dimension 1 of size 3, got 0', function() return v[0] end)
  T.raises('index: cannot index a 0-dim tensor', function() return duel.tensor(1)[1] end)
end)

-- ---- views -------------------------------------------------------------------------------------

T.case('view/reshape: -1 inference and shared storage', function()
  local x = duel.arange(12)
  local v = x:view(3, -1)
  T.eq(shape(v), '{3,4}')
  T.eq(v:get(2, 1), 5)
  T.eq(shape(x:view(-1, 6)), '{2,6}')
  T.eq(shape(x:view{2, 2, 3}), '{2,2,3}')
  T.eq(shape(x:reshape(2, -1, 2)), '{2,3,2}')
  v:set_(100, 3, 4)
  T.eq(x:get(12), 100)
  x:reshape(4, 3):set_(-7, 1, 2) -- reshape of a contiguous tensor is a view too
  T.eq(x:get(2), -7)
  T.eq(shape(duel.tensor(5):view(1)), '{1}')
  T.eq(duel.tensor{5}:view():dim(), 0)
  T.raises_exact('view: the new shape must hold the 12 elements of {12}, got {5,-1}',
                 function() return x:view(5, -1) end)
  T.raises('view: only one size may be -1', function() x:view(-1, -1) end)
end)

T.case('view of a non-contiguous tensor errors; reshape copies', function()
  local x = duel.tensor{{1, 2, 3}, {4, 5, 6}}
  local xt = x:t()
  T.raises_exact('view: the tensor is not contiguous (use reshape or contiguous()), '
                 .. 'got shape {3,2}',
                 function() return xt:view(6) end)
  local r = xt:reshape(6)
  T.close(r, {1, 4, 2, 5, 3, 6}, 0)
  r:set_(0, 1) -- a copy: x unchanged
  T.eq(x:get(1, 1), 1)
  T.close(xt:contiguous():view(2, 3), {{1, 4, 2}, {5, 3, 6}}, 0)
end)

T.case('transpose/t: swapped strides, shared storage', function()
  local x = duel.arange(6):view(2, 3)
  local t = x:t()
  T.eq(shape(t), '{3,2}')
  T.eq(t:stride(), {1, 3})
  T.close(t, {{1, 4}, {2, 5}, {3, 6}}, 0)
  t:set_(50, 3, 2)
  T.eq(x:get(2, 3), 50)
  local y = duel.arange(24):view(2, 3, 4)
  local yt = y:transpose(1, 3)
  T.eq(shape(yt), '{4,3,2}')
  T.eq(yt:get(4, 2, 1), y:get(1, 2, 4))
  T.eq(yt:get(2, 3, 2), y:get(2, 3, 2))
  T.eq(shape(y:transpose(-1, 1)), '{4,3,2}')
  T.raises_exact('t: expects a 2-D tensor (use transpose or permute), got {2,3,4}',
                 function() return y:t() end)
end)

T.case('permute: element (i,j,k) moves to its permuted place', function()
  local x = duel.arange(24):view(2, 3, 4)
  local p = x:permute(3, 1, 2)
  T.eq(shape(p), '{4,2,3}')
  T.eq(p:stride(), {1, 12, 4})
  for i = 1, 2 do
    for j = 1, 3 do
      for k = 1, 4 do T.eq(p:get(k, i, j), x:get(i, j, k)) end
    end
  end
  T.eq(shape(x:permute{2, 3, 1}), '{3,4,2}')
  T.raises('permute: entries must be a permutation of 1..3', function() x:permute(1, 1, 2) end)
  T.raises('permute: need one entry per dimension', function() x:permute(2, 1) end)
end)

T.case('narrow: slices along any dim, writes reach the base', function()
  local x = duel.arange(12):view(3, 4)
  local n = x:narrow(2, 2, 2)
  T.close(n, {{2, 3}, {6, 7}, {10, 11}}, 0)
  T.close(x:narrow(1, 3, 1), {{9, 10, 11, 12}}, 0)
  T.eq(x:narrow(1, 2, 0):numel(), 0)
  n:fill_(0)
  T.close(x, {{1, 0, 0, 4}, {5, 0, 0, 8}, {9, 0, 0, 12}}, 0)
  T.close(x:narrow(-1, 4, 1), {{4}, {8}, {12}}, 0)
  T.raises('narrow: range [3, 5] out of bounds for dimension 2 of shape {3,4}', function()
    x:narrow(2, 3, 3)
  end)
end)

T.case('select: drops the dim, negative index counts from the end', function()
  local x = duel.arange(24):view(2, 3, 4)
  local s = x:select(2, 3)
  T.eq(shape(s), '{2,4}')
  T.close(s, {{9, 10, 11, 12}, {21, 22, 23, 24}}, 0)
  T.close(x:select(3, -1), {{4, 8, 12}, {16, 20, 24}}, 0)
  T.close(x:select(1, -2), x:select(1, 1):totable(), 0)
  T.close(x:select(-1, 1), {{1, 5, 9}, {13, 17, 21}}, 0)
  local v = duel.tensor{1, 2, 3}:select(1, 2)
  T.eq(v:dim(), 0)
  T.eq(v:item(), 2)
  s:set_(0, 2, 4)
  T.eq(x:get(2, 3, 4), 0)
  T.raises_exact('select: index out of range for dimension 2 of shape {2,3,4}, got 4',
                 function() return x:select(2, 4) end)
  T.raises('select: index out of range for dimension 1 of shape {2,3,4}',
           function() x:select(1, -3) end)
end)

T.case('expand: stride-0 broadcast view, -1 keeps a size', function()
  local r = duel.tensor{1, 2, 3}
  local e = r:expand(2, 3)
  T.eq(e:stride(), {0, 1})
  T.close(e, {{1, 2, 3}, {1, 2, 3}}, 0)
  local c = duel.tensor{{1}, {2}}:expand(-1, 4)
  T.close(c, {{1, 1, 1, 1}, {2, 2, 2, 2}}, 0)
  T.eq(shape(duel.tensor(5):expand(2, 2)), '{2,2}')
  T.eq(shape(r:expand(duel.zeros(4, 3))), '{4,3}')
  T.eq(shape(r:expand_as(duel.zeros(2, 2, 3))), '{2,2,3}')
  -- shares storage: a write to the base shows in every expanded row
  r:set_(10, 2)
  T.close(e, {{1, 10, 3}, {1, 10, 3}}, 0)
  T.close(e + 0, {{1, 10, 3}, {1, 10, 3}}, 0) -- ops read expanded views correctly
  T.close(e:contiguous(), {{1, 10, 3}, {1, 10, 3}}, 0)
  T.raises('expand: size 3 of dimension 2 cannot become 4', function() r:expand(2, 4) end)
end)

T.case('unsqueeze/squeeze: 1-based positions, negative dims, views', function()
  local x = duel.tensor{1, 2, 3}
  T.eq(shape(x:unsqueeze(1)), '{1,3}')
  T.eq(shape(x:unsqueeze(2)), '{3,1}')
  T.eq(shape(x:unsqueeze(-1)), '{3,1}')
  T.eq(shape(duel.zeros(2, 3):unsqueeze(2)), '{2,1,3}')
  T.eq(shape(duel.tensor(4):unsqueeze(1)), '{1}')
  local z = duel.zeros(1, 3, 1, 2)
  T.eq(shape(z:squeeze()), '{3,2}')
  T.eq(shape(z:squeeze(1)), '{3,1,2}')
  T.eq(shape(z:squeeze(3)), '{1,3,2}')
  T.eq(shape(z:squeeze(2)), '{1,3,1,2}') -- not size 1: unchanged
  T.eq(shape(z:squeeze(-2)), '{1,3,2}')
  T.eq(duel.ones(1, 1):squeeze():dim(), 0)
  local u = x:unsqueeze(1)
  u:set_(9, 1, 3)
  T.eq(x:get(3), 9)
  x:unsqueeze(2):squeeze(2):set_(8, 1)
  T.eq(x:get(1), 8)
end)

T.case('views of views: narrow of transpose of view keeps offsets right', function()
  local x = duel.arange(20):view(4, 5)
  local v = x:t():narrow(1, 2, 3):narrow(2, 2, 2) -- rows 2..4 of x^T, cols 2..3
  T.close(v, {{7, 12}, {8, 13}, {9, 14}}, 0)
  T.close(v:contiguous(), {{7, 12}, {8, 13}, {9, 14}}, 0)
  T.close(v:reshape(6), {7, 12, 8, 13, 9, 14}, 0)
  duel.no_grad(function() v:fill_(0) end)
  T.close(x:narrow(1, 2, 2), {{6, 0, 0, 0, 10}, {11, 0, 0, 0, 15}}, 0)
  T.eq(x:sum():item(), 210 - (7 + 8 + 9 + 12 + 13 + 14))
end)

T.case('writes through views of a requires_grad leaf: refused, allowed under no_grad', function()
  local w = duel.zeros(2, 2)
  w.requires_grad = true
  T.raises('fill_: cannot modify a tensor that requires grad in place', function() w:fill_(1) end)
  duel.no_grad(function()
    w:select(1, 2):fill_(3)
    w:set_(5, 1, 1)
  end)
  T.close(w, {{5, 0}, {3, 3}}, 0)
end)

-- ---- tostring ---------------------------------------------------------------------------------

T.case('tostring: values and the shape footer', function()
  local s = tostring(duel.tensor{{1, 2, 3}, {4, 5, 6}})
  T.eq(s, ' 1 2 3\n 4 5 6\n[duel.Tensor of shape {2,3}]')
  local f = tostring(duel.tensor{0.5, -1.25})
  T.ok(f:find('0.5000', 1, true) and f:find('-1.2500', 1, true), f)
  T.ok(f:find('[duel.Tensor of shape {2}]', 1, true), f)
  local z = tostring(duel.tensor(3.5))
  T.eq(z, '3.5000\n[duel.Tensor of shape {}]')
  local c = tostring(duel.arange(8):view(2, 2, 2))
  T.ok(c:find('(1,.,.) =', 1, true) and c:find('(2,.,.) =', 1, true), c)
  T.ok(c:find(' 7 8', 1, true), c)
  T.ok(tostring(duel.zeros(0, 3)):find('{0,3}', 1, true))
  T.eq('x=' .. duel.tensor{1}, 'x= 1\n[duel.Tensor of shape {1}]')
end)

T.case('tostring: requires_grad and grad_fn in the footer', function()
  local x = duel.ones(2, 2)
  x.requires_grad = true
  T.ok(tostring(x):find('[duel.Tensor of shape {2,2}, requires_grad]', 1, true), tostring(x))
  local y = x * 2
  T.ok(tostring(y):find(', grad_fn=mul_scalar]', 1, true), tostring(y))
  T.ok(tostring(x + x):find('grad_fn=add', 1, true))
  T.ok(not tostring(duel.ones(2)):find('requires_grad', 1, true))
end)

T.case('tostring: a {100,100} tensor is summarised', function()
  local s = tostring(duel.arange(10000):view(100, 100))
  T.ok(s:find('...', 1, true), 'no ... in a 10000-element print')
  T.ok(#s < 1000, 'summary is ' .. #s .. ' characters')
  T.ok(s:find('[duel.Tensor of shape {100,100}]', 1, true))
  T.ok(s:find('10000', 1, true), 'the last element is shown')
  T.ok(s:find(' 1 ', 1, true) or s:find('^%s*1 '), 'the first element is shown')
  T.ok(not s:find('5050', 1, true), 'a middle element is shown')
end)

-- ---- misuse -------------------------------------------------------------------------------------

T.case('shape and argument checks on creation and views', function()
  T.raises('zeros: sizes must be non-negative, got -2', function() duel.zeros(2, -2) end)
  T.raises('zeros: sizes must be whole numbers, got 1.5', function() duel.zeros(1.5) end)
  T.raises('full: the shape must be a table', function() duel.full(2, 3) end)
  T.raises('full: fill value must be a number', function() duel.full({2}, 'a') end)
  T.raises('reshape: the new shape must hold the 6 elements of {2,3}, got {4}',
           function() duel.zeros(2, 3):reshape(4) end)
  T.raises_exact('transpose: dimension out of range (expected 1 to 2), got 3',
                 function() return duel.zeros(2, 3):transpose(1, 3) end)
  T.raises('unsqueeze: dimension out of range (expected 1 to 3), got 4',
           function() duel.zeros(2, 3):unsqueeze(4) end)
  T.raises('newindex: only', function() local x = duel.zeros(1); x.foo = 1 end)
end)
