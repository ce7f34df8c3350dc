-- Misuse: every error is a Lua error with an exact message of the form
-- "<op>: <what is wrong>, got <shape/value>" (cjson/LPeg-style exact-string tests), and nothing a
-- script can do crashes the process.
--
-- Each misuse ends in a tail call (`return f(...)`): an error raised with a position (Lua's
-- error(msg, 2), or lauxlib's luaL_error) is prefixed with "file:line:" of the calling Lua
-- function, and a tail call leaves no such frame, so the message is the library's own text either
-- way. Operator forms (a + b, t[i], t.grad = g) go through the metamethod called directly; a
-- separate case checks the operator syntax too, ignoring any position prefix.
local T = require 'tests.harness'
local duel = require 'duel'

local mt = duel._core.metatable

local misuses = {} -- {name, message, fn}
local function E(name, msg, fn) misuses[#misuses + 1] = {name = name, msg = msg, fn = fn} end

local function A() return duel.zeros(2, 3) end
local function B() return duel.zeros(3, 2) end
local function leaf(n) return duel.randn(n or 3):requires_grad_() end

-- ---- shape mismatches ----------------------------------------------------------------------
E('add with shapes that do not broadcast',
  'add: shapes cannot be broadcast together, got {2,3} and {3,2}',
  function() return duel.add(A(), B()) end)
E('mul with shapes that do not broadcast',
  'mul: shapes cannot be broadcast together, got {2,3} and {3,2}',
  function() return duel.mul(A(), B()) end)
E('sub with shapes that do not broadcast (metamethod)',
  'sub: shapes cannot be broadcast together, got {2,3} and {4}',
  function() return mt.__sub(A(), duel.zeros(4)) end)
E('div with shapes that do not broadcast (method)',
  'div: shapes cannot be broadcast together, got {2,3} and {4}',
  function() return A():div(duel.zeros(4)) end)
E('gt with shapes that do not broadcast',
  'gt: shapes cannot be broadcast together, got {2,3} and {3,2}',
  function() return A():gt(B()) end)
E('matmul with mismatched inner sizes',
  'matmul: inner sizes must match, got {2,3} and {2,3}',
  function() return A():matmul(A()) end)
E('matmul of a 1-D operand',
  'matmul: operands must be 2-D or 3-D (batched), got {3} and {2,3}',
  function() return duel.matmul(duel.zeros(3), A()) end)
E('batched matmul with different batch sizes',
  'matmul: batch sizes must match, got {2,2,3} and {3,3,2}',
  function() return duel.matmul(duel.zeros(2, 2, 3), duel.zeros(3, 3, 2)) end)
E('cat of tensors that differ outside the cat dimension',
  'cat: tensor 2 must match tensor 1 except in dimension 1, got {3,2} and {2,3}',
  function() return duel.cat({A(), B()}, 1) end)
E('cat of tensors of different rank (default dim)',
  'cat: tensor 2 must match tensor 1 except in dimension 1, got {3} and {2,3}',
  function() return duel.cat({A(), duel.zeros(3)}) end)
E('stack of tensors of different shapes',
  'stack: every tensor must have the same shape, got {2,3} and {3,2}',
  function() return duel.stack({A(), B()}) end)
E('where with a mask that does not broadcast',
  'where: shapes cannot be broadcast together, got {4} and {2,3}',
  function() return duel.where(duel.zeros(4), A(), A()) end)
E('where with branches that do not broadcast',
  'where: shapes cannot be broadcast together, got {2,3} and {3,2}',
  function() return duel.where(A(), A(), B()) end)
E('copy_ from a shape that does not broadcast',
  'copy_: shapes cannot be broadcast together, got {2,3} and {3,2}',
  function() return A():copy_(B()) end)
E('copy_ from a larger source',
  "copy_: source must broadcast to the destination's shape {3}, got {2,3}",
  function() return duel.zeros(3):copy_(A()) end)
E('expand to an incompatible size',
  'expand: size 2 of dimension 1 cannot become 3, got shape {2,3} to {3,3}',
  function() return A():expand(3, 3) end)
E('expand to fewer dimensions',
  'expand: cannot expand shape {2,3} to fewer dimensions, got {3}',
  function() return A():expand(3) end)

-- ---- wrong argument types --------------------------------------------------------------------
E('exp of nil', 'exp: argument 1 must be a duel.Tensor, got nil',
  function() return duel.exp(nil) end)
E('exp of a string', 'exp: argument 1 must be a duel.Tensor, got string',
  function() return duel.exp('x') end)
E('exp of a table', 'exp: argument 1 must be a duel.Tensor, got table',
  function() return duel.exp({1, 2}) end)
E('a method called on a table', 'sum: argument 1 must be a duel.Tensor, got table',
  function() local a = A(); return a.sum({}) end)
E('add of a table', 'add: argument 2 must be a duel.Tensor, got table',
  function() return duel.add(A(), {}) end)
E('add of nil (metamethod)', 'add: argument 2 must be a duel.Tensor, got nil',
  function() return mt.__add(A(), nil) end)
E('mul of a string (metamethod)', 'mul: argument 1 must be a duel.Tensor, got string',
  function() return mt.__mul('x', A()) end)
E('matmul with nil', 'matmul: argument 2 must be a duel.Tensor, got nil',
  function() return A():matmul(nil) end)
E('matmul with a number', 'matmul: argument 2 must be a duel.Tensor, got number',
  function() return A():matmul(3) end)
E('copy_ from a string', 'copy_: argument 2 must be a duel.Tensor, got string',
  function() return A():copy_('s') end)
E('where with a nil mask', 'where: argument 1 must be a duel.Tensor, got nil',
  function() return duel.where(nil, A(), A()) end)
E('where with a string branch', 'where: argument 2 must be a duel.Tensor or a number, got string',
  function() return duel.where(A(), 'a', A()) end)
E('index_select with a nil index', 'index_select: argument 3 must be a duel.Tensor, got nil',
  function() return A():index_select(2, nil) end)
E('cat of a tensor instead of a table', 'cat: expected a table of tensors, got duel.Tensor',
  function() return duel.cat(A()) end)
E('cat of a table holding a number', 'cat: element 2 must be a duel.Tensor, got number',
  function() return duel.cat({A(), 5}) end)
E('cat of an empty table', 'cat: need at least one tensor, got an empty table',
  function() return duel.cat({}) end)
E('sum over a string dimension', 'sum: dimension must be a number, got string',
  function() return A():sum('x') end)
E('sum with a non-boolean keepdim', 'sum: keepdim must be a boolean, got number',
  function() return A():sum(1, 1) end)
E('fill_ with a string', 'fill_: value must be a number, got string',
  function() return A():fill_('a') end)
E('set_ with a string value', 'set_: value must be a number, got string',
  function() return A():set_('x', 1, 1) end)
E('zeros with a string size', 'zeros: size 1 must be a number, got string',
  function() return duel.zeros('a') end)
E('backward with a number', 'backward: expected a gradient tensor or an options table, got number',
  function() return (leaf() * leaf()):sum():backward(5) end)
E('backward with a non-boolean option', "backward: option 'retain_graph' must be a boolean, got number",
  function() return (leaf() * leaf()):sum():backward({retain_graph = 1}) end)
E('autograd.grad of a string', 'grad: outputs must be a tensor or a table of tensors, got string',
  function() return duel.autograd.grad('s', {leaf()}) end)
E('autograd.grad with no inputs', 'grad: inputs must not be empty, got an empty table',
  function() return duel.autograd.grad({leaf():sum()}, {}) end)
E('autograd.grad with a number for options', 'grad: options must be a table, got number',
  function() local x = leaf(); return duel.autograd.grad({x:sum()}, {x}, 5) end)
E('autograd.grad with too many grad_outputs', 'grad: need one grad_output per output (1), got 2',
  function()
    local x = leaf()
    return duel.autograd.grad({x:sum()}, {x}, {grad_outputs = {duel.ones(), duel.ones()}})
  end)
E('a released tensor', 'exp: argument 1 is a released tensor, got an empty slot',
  function() local t = duel.zeros(1); mt.__gc(t); return t:exp() end)
E('indexing by a boolean', 'index: tensors are indexed by method names or numbers, got boolean',
  function() return mt.__index(A(), true) end)
E('setting an unknown field', "newindex: only 'grad' and 'requires_grad' can be set on a tensor, got 'foo'",
  function() return mt.__newindex(A(), 'foo', 1) end)

-- ---- out-of-range dimensions (1-based; negative counts from the end) --------------------------
E('sum over dim 3 of a 2-D tensor', 'sum: dimension out of range (expected 1 to 2), got 3',
  function() return A():sum(3) end)
E('sum over dim 0', 'sum: dimension out of range (expected 1 to 2), got 0',
  function() return A():sum(0) end)
E('mean over dim -3 of a 2-D tensor', 'mean: dimension out of range (expected 1 to 2), got -3',
  function() return A():mean(-3) end)
E('sum over a huge dimension', 'sum: dimension out of range (expected 1 to 2), got 1099511627776',
  function() return A():sum(2 ^ 40) end)
E('sum over a fractional dimension', 'sum: dimension must be a whole number, got 1.5',
  function() return A():sum(1.5) end)
E('max over dim 3', 'max: dimension out of range (expected 1 to 2), got 3',
  function() return A():max(3) end)
E('size of dim 3', 'size: dimension out of range (expected 1 to 2), got 3',
  function() return A():size(3) end)
E('transpose with dim 3', 'transpose: dimension out of range (expected 1 to 2), got 3',
  function() return A():transpose(1, 3) end)
E('narrow along dim 3', 'narrow: dimension out of range (expected 1 to 2), got 3',
  function() return A():narrow(3, 1, 1) end)
E('select along dim 3', 'select: dimension out of range (expected 1 to 2), got 3',
  function() return A():select(3, 1) end)
E('unsqueeze at dim 4 of a 2-D tensor', 'unsqueeze: dimension out of range (expected 1 to 3), got 4',
  function() return A():unsqueeze(4) end)
E('squeeze dim 3', 'squeeze: dimension out of range (expected 1 to 2), got 3',
  function() return A():squeeze(3) end)
E('cat along dim 3', 'cat: dimension out of range (expected 1 to 2), got 3',
  function() return duel.cat({A(), A()}, 3) end)
E('stack along dim 4', 'stack: dimension out of range (expected 1 to 3), got 4',
  function() return duel.stack({A(), A()}, 4) end)
E('argmax along dim 3', 'argmax: dimension out of range (expected 1 to 2), got 3',
  function() return A():argmax(3) end)

-- ---- bad indices (1-based) ---------------------------------------------------------------------
E('get with row out of range', 'get: index 1 out of range for shape {2,3}, got 3',
  function() return A():get(3, 1) end)
E('get with column out of range', 'get: index 2 out of range for shape {2,3}, got 4',
  function() return A():get(1, 4) end)
E('get with index 0', 'get: index 1 out of range for shape {2,3}, got 0',
  function() return A():get(0, 1) end)
E('get with too few indices', 'get: expected 2 indices, got 1',
  function() return A():get(1) end)
E('get with a fractional index', 'get: index must be a whole number, got 1.5',
  function() return A():get(1.5, 1) end)
E('get with a huge index', 'get: index is too large, got 1e+300',
  function() return A():get(1e300, 1) end)
E('set_ with row out of range', 'set_: index 1 out of range for shape {2,3}, got 3',
  function() return A():set_(1, 3, 1) end)
E('set_ with too many indices', 'set_: expected 2 indices, got 3',
  function() return A():set_(1, 1, 1, 1) end)
E('t[i] out of range', 'index: index out of range for dimension 1 of size 2, got 3',
  function() return mt.__index(A(), 3) end)
E('t[0]', 'index: index out of range for dimension 1 of size 2, got 0',
  function() return mt.__index(A(), 0) end)
E('indexing a 0-dim tensor', 'index: cannot index a 0-dim tensor, got 1',
  function() return mt.__index(duel.tensor(5), 1) end)
E('index_select out of range', 'index_select: indices must be whole numbers from 1 to 3 (dimension 2), got 4',
  function() return A():index_select(2, duel.tensor{1, 4}) end)
E('index_select with index 0', 'index_select: indices must be whole numbers from 1 to 3 (dimension 2), got 0',
  function() return A():index_select(2, duel.tensor{0}) end)
E('index_select with a non-whole index', 'index_select: indices must be whole numbers from 1 to 3 (dimension 2), got 1.5',
  function() return A():index_select(2, duel.tensor{2, 1.5}) end)
E('index_select with a 2-D index', 'index_select: index must be 1-D, got {1,1}',
  function() return A():index_select(2, duel.ones(1, 1)) end)
E('narrow past the end',
  'narrow: range [3, 4] out of bounds for dimension 2 of shape {2,3}, got start 3 length 2',
  function() return A():narrow(2, 3, 2) end)
E('select past the end', 'select: index out of range for dimension 1 of shape {2,3}, got 3',
  function() return A():select(1, 3) end)
E('select with a negative index past the start', 'select: index out of range for dimension 1 of shape {2,3}, got -5',
  function() return A():select(1, -5) end)

-- ---- autograd --------------------------------------------------------------------------------
E('backward of a non-scalar without a gradient',
  'backward: grad can be implicitly created only for a one-element output (pass grad_outputs), got {3}',
  function() return (leaf() * 2):backward() end)
E('backward with a wrongly shaped gradient',
  "backward: grad_outputs[1] must have its output's shape {3}, got {2}",
  function() return (leaf() * 2):backward(duel.ones(2)) end)
E('backward twice through a released graph',
  'backward: the graph through sum was freed by an earlier backward (pass retain_graph=true to keep it), got a released sum node',
  function()
    local x = leaf()
    local y = (x * x):sum()
    y:backward()
    return y:backward()
  end)
E('backward on a tensor that does not require grad',
  'backward: output 1 does not require grad and has no grad history, got a tensor of shape {}',
  function() return duel.ones(3):sum():backward() end)
E('autograd.grad with an unreachable input',
  'grad: input 1 is not reachable from the outputs (pass allow_unused=true), got a tensor of shape {4}',
  function() local x, z = leaf(), leaf(4); return duel.autograd.grad({(x * x):sum()}, {z}) end)
E('autograd.grad with an input that does not require grad',
  'grad: input 1 does not require grad, got a tensor of shape {3}',
  function() local x = leaf(); return duel.autograd.grad({(x * x):sum()}, {duel.ones(3)}) end)
E('backward after an input saved for backward was modified in place',
  'sin: an input needed for its gradient was modified in place (by fill_), got version 1, expected 0',
  function()
    local x = leaf()
    local y = x:sin()
    duel.no_grad(function() x:fill_(1) end)
    return y:sum():backward()
  end)
E('backward after an input saved for backward was modified by copy_',
  'mul: an input needed for its gradient was modified in place (by copy_), got version 1, expected 0',
  function()
    local x, w = leaf(), leaf()
    local y = x * w
    duel.no_grad(function() w:copy_(duel.zeros(3)) end)
    return y:sum():backward()
  end)
E('backward after an output saved for backward was modified in place',
  'exp: its output, needed for its gradient, was modified in place (by fill_), got version 1, expected 0',
  function()
    local x = leaf()
    local y = x:exp()
    duel.no_grad(function() y:fill_(1) end)
    return y:sum():backward()
  end)
E('fill_ on a tensor that requires grad',
  'fill_: cannot modify a tensor that requires grad in place (use duel.no_grad or detach()), got a tensor of shape {3}',
  function() return leaf():fill_(1) end)
E('zero_ on a tensor that requires grad',
  'zero_: cannot modify a tensor that requires grad in place (use duel.no_grad or detach()), got a tensor of shape {3}',
  function() return leaf():zero_() end)
E('set_ on a tensor that requires grad',
  'set_: cannot modify a tensor that requires grad in place (use duel.no_grad or detach()), got a tensor of shape {3}',
  function() return leaf():set_(1, 1) end)
E('copy_ into a non-leaf',
  'copy_: cannot modify a tensor that requires grad in place (use duel.no_grad or detach()), got a tensor of shape {3}',
  function() return (leaf() * 2):copy_(duel.ones(3)) end)
E('requires_grad_(false) on a non-leaf',
  'requires_grad_: only leaf tensors can stop requiring grad (use detach()), got a tensor computed by mul_scalar',
  function() return (leaf() * 2):requires_grad_(false) end)
E('requires_grad = false on a non-leaf',
  'requires_grad_: only leaf tensors can stop requiring grad (use detach()), got a tensor computed by exp',
  function() return mt.__newindex(leaf():exp(), 'requires_grad', false) end)
E('requires_grad_ with a number', 'requires_grad_: flag must be a boolean, got number',
  function() return leaf():requires_grad_(1) end)
E('grad field set to a wrongly shaped tensor', "grad: must have the tensor's shape {3}, got {2}",
  function() return mt.__newindex(leaf(), 'grad', duel.zeros(2)) end)
E('grad field set to a string', 'grad: must be a duel.Tensor or nil, got string',
  function() return mt.__newindex(leaf(), 'grad', 'x') end)

-- ---- creation and sizes ------------------------------------------------------------------------
E('manual_seed(NaN)', 'manual_seed: seed must be a finite whole number, got nan',
  function() return duel.manual_seed(0 / 0) end)
E('manual_seed(inf)', 'manual_seed: seed must be a finite whole number, got inf',
  function() return duel.manual_seed(math.huge) end)
E('manual_seed(1.5)', 'manual_seed: seed must be a finite whole number, got 1.5',
  function() return duel.manual_seed(1.5) end)
E('manual_seed of a string', 'manual_seed: seed must be a number, got string',
  function() return duel.manual_seed('x') end)
E('zeros with a negative size', 'zeros: sizes must be non-negative, got -1',
  function() return duel.zeros(2, -1) end)
E('ones with a negative size', 'ones: sizes must be non-negative, got -2',
  function() return duel.ones(-2) end)
E('rand with a negative size in a table', 'rand: sizes must be non-negative, got -2',
  function() return duel.rand({3, -2}) end)
E('randn with a negative size', 'randn: sizes must be non-negative, got -1',
  function() return duel.randn(-1) end)
E('zeros with a non-whole size', 'zeros: sizes must be whole numbers, got 2.5',
  function() return duel.zeros(2.5) end)
E('ones with a non-whole size in a table', 'ones: sizes must be whole numbers, got 1.5',
  function() return duel.ones({2, 1.5}) end)
E('rand with a non-whole size', 'rand: sizes must be whole numbers, got 0.5',
  function() return duel.rand(0.5) end)
E('randn with a non-whole size', 'randn: sizes must be whole numbers, got 2.5',
  function() return duel.randn(1, 2.5) end)
E('zeros with a NaN size', 'zeros: sizes must be whole numbers, got nan',
  function() return duel.zeros(0 / 0) end)
E('view with a negative size', 'view: sizes must be non-negative or -1, got -2',
  function() return A():view(-2, 3) end)
E('view with a non-whole size', 'view: sizes must be whole numbers, got 1.5',
  function() return A():view(1.5, 4) end)
E('zeros with 9 dims', 'zeros: at most 8 dimensions, got 9',
  function() return duel.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end)
E('view with 9 dims', 'view: at most 8 dimensions, got 9',
  function() return A():view(1, 1, 1, 1, 1, 1, 1, 2, 3) end)
E('tensor from a table nested 9 deep', 'tensor: at most 8 dimensions, got more',
  function() return duel.tensor{{{{{{{{{1}}}}}}}}} end)
E('unsqueeze of an 8-D tensor', 'unsqueeze: at most 8 dimensions, got {1,1,1,1,1,1,1,1}',
  function() return duel.zeros(1, 1, 1, 1, 1, 1, 1, 1):unsqueeze(1) end)
E('stack of 8-D tensors', 'stack: at most 8 dimensions, got {1,1,1,1,1,1,1,1}',
  function() return duel.stack({duel.zeros(1, 1, 1, 1, 1, 1, 1, 1)}) end)
E('zeros whose byte count overflows',
  'zeros: tensor too large (over 1099511627776 bytes), got {1099511627776,1099511627776}',
  function() return duel.zeros(2 ^ 40, 2 ^ 40) end)
E('ones whose byte count overflows',
  'ones: tensor too large (over 1099511627776 bytes), got {2147483648,2147483648,2147483648}',
  function() return duel.ones(2 ^ 31, 2 ^ 31, 2 ^ 31) end)
E('full whose byte count is over the limit',
  'full: tensor too large (over 1099511627776 bytes), got {1048576,1048576}',
  function() return duel.full({2 ^ 20, 2 ^ 20}, 1) end)
E('view whose size product overflows',
  'view: tensor too large (over 1099511627776 bytes), got {2305843009213693952,8}',
  function() return duel.zeros(0):view(2 ^ 61, 8) end)
E('expand whose element count overflows',
  'expand: tensor too large (over 1099511627776 bytes), got {2305843009213693952,8}',
  function() return duel.zeros(1, 1):expand(2 ^ 61, 8) end)
E('tensor from a ragged table', 'tensor: ragged nested table, expected 2 elements at depth 2, got 1',
  function() return duel.tensor{{1, 2}, {3}} end)
E('tensor from a ragged table with an empty row', 'tensor: ragged nested table, expected 0 elements at depth 2, got 1',
  function() return duel.tensor{{}, {1}} end)
E('tensor from a table holding a string', 'tensor: elements must be numbers, got string',
  function() return duel.tensor{{1, 'a'}} end)

-- ---- views -----------------------------------------------------------------------------------
E('view of a non-contiguous tensor',
  'view: the tensor is not contiguous (use reshape or contiguous()), got shape {3,2}',
  function() return A():t():view(6) end)
-- NB: this message (and reshape's) has no ", got" part; tests/test_tensor.lua asserts it too
E('view with an incompatible element count',
  'view: the new shape must hold the 6 elements of {2,3}, got {4,2}',
  function() return A():view(4, 2) end)
E('view with two -1 sizes', 'view: only one size may be -1, got {-1,-1}',
  function() return A():view(-1, -1) end)
E('t() on a 3-D tensor', 't: expects a 2-D tensor (use transpose or permute), got {2,3,4}',
  function() return duel.zeros(2, 3, 4):t() end)
E('permute with a repeated dim', 'permute: entries must be a permutation of 1..3, got 1 at position 2',
  function() return duel.zeros(2, 3, 4):permute(1, 1, 2) end)
E('permute with a dim out of range', 'permute: entries must be a permutation of 1..3, got 4 at position 3',
  function() return duel.zeros(2, 3, 4):permute(1, 2, 4) end)
E('permute with a negative entry', 'permute: entries must be a permutation of 1..3, got -1 at position 1',
  function() return duel.zeros(2, 3, 4):permute{-1, 2, 3} end)
E('permute with too few entries', 'permute: need one entry per dimension of {2,3,4}, got 2 entries',
  function() return duel.zeros(2, 3, 4):permute(1, 2) end)

-- ---- values and reductions ---------------------------------------------------------------------
E('item() on a multi-element tensor',
  'item: only one-element tensors can be converted to a number, got {2,3}',
  function() return A():item() end)
E('item() on an empty tensor',
  'item: only one-element tensors can be converted to a number, got {0}',
  function() return duel.zeros(0):item() end)
E('clamp with lo > hi', 'clamp: lower bound must not exceed upper bound, got (1, 0)',
  function() return A():clamp(1, 0) end)
E('clamp with a NaN bound', 'clamp: bounds must not be NaN (use nil for none), got nan',
  function() return A():clamp(0 / 0, 1) end)
E('arange with step 0', 'arange: step must be non-zero and finite, got 0',
  function() return duel.arange(1, 5, 0) end)
E('arange with an infinite end', 'arange: bounds must be finite, got (1, inf, 1)',
  function() return duel.arange(1, math.huge) end)
E('set_num_threads(0)', 'set_num_threads: need a thread count in [1, 1024], got 0',
  function() return duel.set_num_threads(0) end)
E('set_num_threads(2^32)', 'set_num_threads: need a thread count in [1, 1024], got 4294967296',
  function() return duel.set_num_threads(2 ^ 32) end)
E('max of an empty tensor', 'max: cannot reduce an empty tensor, got shape {0}',
  function() return duel.zeros(0):max() end)
E('min of an empty tensor', 'min: cannot reduce an empty tensor, got shape {0,3}',
  function() return duel.zeros(0, 3):min() end)
E('max over an empty dimension', 'max: cannot reduce an empty dimension, got shape {0,3}',
  function() return duel.zeros(0, 3):max(1) end)
E('argmax of an empty tensor', 'argmax: cannot reduce an empty tensor, got shape {0}',
  function() return duel.zeros(0):argmax() end)
E('pow with an infinite exponent', 'pow: exponent must be finite, got inf',
  function() return A():pow(math.huge) end)
E('norm with p <= 0', 'norm: p must be a positive finite number, got -1',
  function() return A():norm(-1) end)
E('var of one element', 'var: need more than 1 element(s) to reduce, got shape {1}',
  function() return duel.zeros(1):var() end)
E('split with piece size 0', 'split: piece size must be a positive whole number, got 0',
  function() return A():split(0) end)

for _, m in ipairs(misuses) do
  T.case(m.name, function() T.raises_exact(m.msg, m.fn) end)
end

T.case('at least 50 distinct misuses, each with a message of the form "<op>: ..., got ..."', function()
  T.ok(#misuses >= 50, ('only %d misuses'):format(#misuses))
  local seen = {}
  for _, m in ipairs(misuses) do
    T.ok(not seen[m.name], 'duplicate case ' .. m.name)
    seen[m.name] = true
    T.ok(m.msg:match('^[%w_.]+: '), 'no op prefix: ' .. m.msg)
    T.ok(m.msg:find(', got ', 1, true), 'no ", got": ' .. m.msg)
  end
end)

-- Operator syntax gives the same text; Lua prefixes the caller's position, as for any error raised
-- by a C function called from a Lua line.
T.case('operators and field syntax raise the same messages (after the position prefix)', function()
  local function msg_of(fn)
    local ok, err = pcall(fn)
    T.ok(not ok, 'expected an error')
    return (tostring(err):gsub('^[^:]*:%d+: ', ''))
  end
  local a, b = A(), B()
  T.eq(msg_of(function() local c = a + b; return c end),
    'add: shapes cannot be broadcast together, got {2,3} and {3,2}')
  T.eq(msg_of(function() local c = a * 'x'; return c end),
    'mul: argument 2 must be a duel.Tensor, got string')
  T.eq(msg_of(function() local c = a[3]; return c end),
    'index: index out of range for dimension 1 of size 2, got 3')
  local x = leaf()
  T.eq(msg_of(function() x.grad = duel.zeros(2) end), "grad: must have the tensor's shape {3}, got {2}")
  T.eq(msg_of(function() local y = x * 2; y.requires_grad = false end),
    'requires_grad_: only leaf tensors can stop requiring grad (use detach()), got a tensor computed by mul_scalar')
end)

T.case('too-large sizes fail before allocating anything', function()
  local before = duel._core.live_bytes()
  T.raises('tensor too large', function() return duel.zeros(2 ^ 40, 2 ^ 40) end)
  T.raises('tensor too large', function() return duel.randn(2 ^ 20, 2 ^ 20) end)
  T.raises('tensor too large', function() return duel.empty(2 ^ 39) end)
  T.eq(duel._core.live_bytes(), before)
end)

-- y = x:exp() saves only its output, so writing x afterwards does not change the gradient that
-- backward computes (PyTorch agrees): this is not an error, and the gradient is exp(old x).
T.case('writing an input that exp does not save is allowed and the gradient is unchanged', function()
  local x = duel.tensor{0, 1, 2}:requires_grad_()
  local y = x:exp()
  duel.no_grad(function() x:fill_(5) end)
  y:sum():backward()
  T.close(x.grad, {1, math.exp(1), math.exp(2)}, 1e-5)
end)

T.case('an error leaves grad mode and the library usable', function()
  T.ok(duel.is_grad_enabled())
  T.raises('boom', function() duel.no_grad(function() error('boom') end) end)
  T.ok(duel.is_grad_enabled())
  T.raises('backward: output 1 does not require grad', function()
    duel.no_grad(function()
      local y = leaf():sin()
      return y:sum():backward() -- records nothing under no_grad: y does not require grad
    end)
  end)
  T.ok(duel.is_grad_enabled())
  local x = duel.tensor{1, 2}:requires_grad_()
  ;(x * x):sum():backward()
  T.close(x.grad, {2, 4})
end)

-- No misuse may crash or corrupt state: each one 100 times under pcall, always the same message,
-- and afterwards (once the garbage is collected) no tensor memory is left behind.
T.case('every misuse 100 times under pcall: same message, no crash, no leak', function()
  collectgarbage()
  collectgarbage()
  local before = duel._core.live_bytes()
  for _, m in ipairs(misuses) do
    for i = 1, 100 do
      local ok, err = pcall(m.fn)
      if ok or err ~= m.msg then
        error(('%s, iteration %d: got %s'):format(m.name, i, ok and 'no error' or tostring(err)))
      end
    end
  end
  collectgarbage()
  collectgarbage()
  -- a leak shows as growth; garbage from earlier cases may still be freed here, so less is fine
  local after = duel._core.live_bytes()
  T.ok(after <= before, ('live bytes grew over the misuse loop: %d -> %d'):format(before, after))
  T.ok(duel.is_grad_enabled(), 'grad mode restored')
  T.close(duel.ones(2, 2):matmul(duel.ones(2, 2)), {{2, 2}, {2, 2}})
end)
