-- duel.F: the functional ops. The core's elementwise activations are here from the start;
-- layers (conv, norms, losses) join as their C kernels land.
local core = require 'duel.core'

local F = {}
F.relu = core.relu
F.tanh = core.tanh
F.sigmoid = core.sigmoid
for k, v in pairs(core._F) do F[k] = v end

-- ---- composites over core ops (embedding, one_hot, flatten) ------------------------------------
local C = core._core

local function shape_str(x) return '{' .. table.concat(x:size(), ',') .. '}' end

local function check_tensor(op, x, what)
  if not (type(x) == 'userdata' and getmetatable(x) == C.metatable) then
    error(('%s: %s must be a duel.Tensor, got %s'):format(op, what, type(x)), 0)
  end
end

-- every element of idx a whole number in 1..n (one pass of flat reads; index tensors are small)
local function check_indices(op, idx, n)
  for i = 1, idx:numel() do
    local v = C.flat_get(idx, i)
    if v ~= math.floor(v) then
      error(('%s: indices must be whole numbers, got %s'):format(op, tostring(v)), 0)
    end
    if v < 1 or v > n then
      error(('%s: index out of range 1..%s, got %s'):format(op, tostring(n), tostring(v)), 0)
    end
  end
end

-- F.embedding(idx, W): rows of W {V,D} picked by idx (any shape, 1-based) -> idx.shape .. {D};
-- differentiable w.r.t. W (index_select's gradient scatters back with index_add)
function F.embedding(idx, W)
  check_tensor('embedding', idx, 'indices')
  check_tensor('embedding', W, 'weight')
  if W:dim() ~= 2 then
    error(('embedding: weight must be 2-D {V,D}, got %s'):format(shape_str(W)), 0)
  end
  check_indices('embedding', idx, W:size(1))
  local shape = idx:size()
  shape[#shape + 1] = W:size(2)
  return W:index_select(1, idx:reshape(idx:numel())):reshape(shape)
end

-- F.one_hot(idx, n): {..., n} of 0/1 with a 1 at each 1-based index; n defaults to idx's max.
-- A constant: no gradient flows to idx.
function F.one_hot(idx, n)
  check_tensor('one_hot', idx, 'indices')
  if n == nil then
    if idx:numel() == 0 then
      error('one_hot: cannot infer the number of classes from an empty tensor, got {0}', 0)
    end
    check_indices('one_hot', idx, math.huge)
    n = idx:max():item()
  end
  if type(n) ~= 'number' or n < 1 or n ~= math.floor(n) then
    error(('one_hot: number of classes must be a positive whole number, got %s'):format(tostring(n)), 0)
  end
  check_indices('one_hot', idx, n)
  return core.eq(idx:unsqueeze(-1), core.arange(n)) -- a comparison: never recorded
end

-- F.flatten(x, start_dim=2, end_dim=-1): dims start_dim..end_dim merged into one (nn.Flatten's
-- default keeps the batch dim); dims are 1-based, negative from the end
function F.flatten(x, start_dim, end_dim)
  check_tensor('flatten', x, 'input')
  local nd = x:dim()
  if nd == 0 then return x:reshape(1) end
  local function norm(d, what)
    if type(d) ~= 'number' or d ~= math.floor(d) then
      error(('flatten: %s must be a whole number, got %s'):format(what, tostring(d)), 0)
    end
    local r = d < 0 and d + nd + 1 or d
    if r < 1 or r > nd then
      error(('flatten: dimension out of range (expected 1 to %d), got %s'):format(nd, tostring(d)), 0)
    end
    return r
  end
  local s, e = norm(start_dim or 2, 'start_dim'), norm(end_dim or -1, 'end_dim')
  if s > e then
    error(('flatten: start_dim must not come after end_dim, got %d and %d'):format(s, e), 0)
  end
  local size, shape, m = x:size(), {}, 1
  for i = 1, s - 1 do shape[#shape + 1] = size[i] end
  for i = s, e do m = m * size[i] end
  shape[#shape + 1] = m
  for i = e + 1, nd do shape[#shape + 1] = size[i] end
  return x:reshape(shape)
end

return F
