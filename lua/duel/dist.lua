-- duel.dist: data-parallel training over MPI (docs/distributed.md).
--
--   dist.init()                  -> rank, size   (MPI only when launched by mpirun/srun)
--   dist.rank() dist.size() dist.backend()       ('mpi' or 'single')
--   dist.allreduce_(tensors, op) in place over ranks; op 'sum' (default, as PyTorch), 'mean',
--                                'max', 'min'; a list goes as one fused buffer, one collective
--   dist.broadcast_(tensors, root)   root's values everywhere (root 0 by default)
--   dist.barrier()
--   dist.allreduce(x)            the sum over ranks as a new tensor that autograd differentiates
--                                (its gradient is the sum of the ranks' gradients)
--   dist.broadcast_module_(m)    parameters and buffers of a module (or list) from rank 0
--   dist.average_grads(params)   the mean over ranks of every .grad (module, optimizer or list)
--   dist.sync_batchnorm(m|true)  BatchNorm1d/2d layers of m (or all) use the statistics of the
--                                whole global batch in training mode
--   dist.data_parallel(opts)     what `--dist` turns on for the experiments: every optimizer
--                                broadcasts its parameters at construction and averages the
--                                gradients before each step, shuffled DataLoaders read only
--                                this rank's shard; opts.sync_bn = true synchronises BatchNorm
--
-- Without the duel.mpi module, or when the process was not started by an MPI launcher, this is
-- one process of size 1 with the same API: the collectives then leave their arguments as they are.
local duel = require 'duel'

local dist = {}
local mpi, rank, size = nil, 0, 1
local initialised = false

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- started by mpirun / srun / a PMI launcher (a plain `luajit` run stays out of MPI: an MPI
-- singleton would start a daemon for nothing)
local function launched()
  for _, v in ipairs{'OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK', 'MPI_LOCALNRANKS'} do
    if os.getenv(v) then return true end
  end
  return false
end

-- duel.mpi must sit beside the loaded duel.core: it links the core from its own folder, and a
-- second copy of the core would keep its own grad mode and allocator
local function load_mpi()
  local path = package.searchpath('duel.mpi', package.cpath)
  local core = package.searchpath('duel.core', package.cpath)
  if not path then return nil, 'duel.mpi is not built (MPI headers were missing at build time)' end
  if core and path:match('^(.*)/') ~= core:match('^(.*)/') then
    return nil, ('duel.mpi (%s) is not beside duel.core (%s)'):format(path, core)
  end
  local ok, m = pcall(require, 'duel.mpi')
  if not ok then return nil, tostring(m) end
  return m
end

function dist.init()
  if initialised then return rank, size end
  initialised = true
  if launched() then
    local m, why = load_mpi()
    if not m then
      fail('dist.init: launched by an MPI launcher but the MPI backend cannot load, got %s', why)
    end
    mpi = m
    rank, size = mpi.init()
  end
  return rank, size
end

function dist.rank() return rank end
function dist.size() return size end
function dist.is_initialized() return initialised end
function dist.backend() return mpi and 'mpi' or 'single' end

-- ---- collectives ------------------------------------------------------------------------------

local function as_list(t, op)
  if duel.is_tensor(t) then return {t} end
  if type(t) ~= 'table' then fail('%s: expected a tensor or a table of tensors, got %s', op, type(t)) end
  for i = 1, #t do
    if not duel.is_tensor(t[i]) then
      fail('%s: element %d must be a duel.Tensor, got %s', op, i, type(t[i]))
    end
  end
  return t
end

local OPS = {sum = true, mean = true, max = true, min = true}

function dist.allreduce_(tensors, op)
  op = op or 'sum'
  if not OPS[op] then fail("allreduce_: op must be 'sum', 'mean', 'max' or 'min', got '%s'", tostring(op)) end
  local list = as_list(tensors, 'allreduce_')
  if mpi then duel.no_grad(mpi.allreduce_, list, op) end -- in place, never recorded in a graph
  return tensors
end

function dist.broadcast_(tensors, root)
  root = root or 0
  if type(root) ~= 'number' or root ~= math.floor(root) or root < 0 or root >= size then
    fail('broadcast_: root must be a rank in [0, %d], got %s', size - 1, tostring(root))
  end
  local list = as_list(tensors, 'broadcast_')
  if mpi then duel.no_grad(mpi.broadcast_, list, root) end -- parameters too, as Horovod's
  return tensors
end

function dist.barrier() if mpi then mpi.barrier() end end

function dist.allreduce(x)
  if not duel.is_tensor(x) then fail('allreduce: expected a duel.Tensor, got %s', type(x)) end
  if mpi then return mpi.allreduce(x) end
  return x
end

-- a Lua array of numbers reduced in double precision (op as allreduce_)
function dist.allreduce_numbers(t, op)
  if mpi then return mpi.allreduce_numbers(t, op or 'sum') end
  local c = {}
  for i = 1, #t do c[i] = t[i] end
  return c
end

function dist.broadcast_string(s, root)
  if mpi then return mpi.broadcast_string(s, root or 0) end
  return s
end

-- seconds spent inside collectives, their count and bytes (for the communication share)
function dist.stats()
  if mpi then return mpi.stats() end
  return {seconds = 0, calls = 0, bytes = 0}
end
function dist.reset_stats() if mpi then mpi.reset_stats() end end

-- ---- modules and gradients --------------------------------------------------------------------

local function is_module(v)
  return (type(v) == 'table' or type(v) == 'userdata') and not duel.is_tensor(v)
    and type(v.parameters) == 'function'
end

-- parameters then buffers of a module, a list of modules, or a list of tensors
local function state_tensors(m, op)
  if duel.is_tensor(m) then return {m} end
  if is_module(m) then
    local list = m:parameters()
    if type(m.buffers) == 'function' then for _, b in ipairs(m:buffers()) do list[#list + 1] = b end end
    return list
  end
  if type(m) ~= 'table' then fail('%s: expected a module or a table of modules/tensors, got %s', op, type(m)) end
  local list = {}
  for i = 1, #m do
    for _, t in ipairs(state_tensors(m[i], op)) do list[#list + 1] = t end
  end
  return list
end

function dist.broadcast_module_(m, root)
  local list = state_tensors(m, 'broadcast_module_')
  if mpi then duel.no_grad(function() mpi.broadcast_(list, root or 0) end) end
  return m
end

-- the parameters of a module, an optimizer (opt:params()) or a list
local function param_list(p)
  if type(p) == 'userdata' and not duel.is_tensor(p) and type(p.params) == 'function'
     and type(p.step) == 'function' then
    return p:params()
  end
  return duel.optim.param_list(p, 'average_grads')
end

-- Mean of the gradients over ranks, in one fused collective. A parameter without a gradient on
-- some rank counts as zero there (a per-parameter presence count travels in the same buffer);
-- it gets a gradient when any rank has one. Gradients from double backward (penalties) are
-- ordinary .grad tensors and are averaged the same way.
function dist.average_grads(params)
  local ps = param_list(params)
  if not mpi or size == 1 then return params end
  duel.no_grad(function()
    local list, made = {}, {}
    local present = duel.zeros(#ps)
    for i, p in ipairs(ps) do
      local g = p.grad
      if g then present:set_(1, i) else g = duel.zeros(p:size()); made[i] = g end
      list[i] = g
    end
    list[#ps + 1] = present
    mpi.allreduce_(list, 'sum')
    local inv = 1 / size
    for i, p in ipairs(ps) do
      local g = list[i]
      if made[i] then
        if present:get(i) > 0 then p.grad = g * inv end
      else
        g:copy_(g * inv)
      end
    end
  end)
  return params
end

-- ---- synchronised BatchNorm ---------------------------------------------------------------------

local sync_all, synced = false, setmetatable({}, {__mode = 'k'})
local layer_mt = require('duel.core')._nn.metatable
local layer_call, layer_forward = layer_mt.__call, layer_mt.methods.forward
local BN = {BatchNorm1d = true, BatchNorm2d = true}

-- sum over every dim but the channel dim 2, kept as {1,C,1,...} for broadcasting
local function channel_sum(x)
  local s = x:sum(1, true)
  for d = 3, x:dim() do s = s:sum(d, true) end
  return s
end

-- y = (x - mean) / sqrt(var + eps) * w + b with mean and (biased) var over the global batch:
-- two differentiable sums over ranks, so every rank's gradient includes the other ranks' terms
-- through the shared statistics (sum of the ranks' gradients, as the single big batch has)
local function sync_bn_forward(m, x)
  local C = x:size(2)
  local shape = {1, C}
  for _ = 3, x:dim() do shape[#shape + 1] = 1 end
  local local_n = x:numel() / C
  local s = dist.allreduce(duel.cat({channel_sum(x):view(C), duel.full({1}, local_n)}, 1))
  local n = s:get(C + 1)
  local mean = s:narrow(1, 1, C):view(shape) / n
  local d = x - mean
  local var = dist.allreduce(channel_sum(d * d):view(C)):view(shape) / n
  local y = d / (var + m.eps):sqrt()
  local w, b = m.weight, m.bias
  if w then y = y * w:view(shape) end
  if b then y = y + b:view(shape) end
  local rm, rv = m.running_mean, m.running_var
  if rm and rv then -- PyTorch's update: momentum, unbiased variance
    local mom = m.momentum
    duel.no_grad(function()
      rm:copy_(rm * (1 - mom) + mean:detach():view(C) * mom)
      rv:copy_(rv * (1 - mom) + var:detach():view(C) * (mom * n / math.max(n - 1, 1)))
    end)
  end
  return y
end

dist._sync_bn_forward = sync_bn_forward -- for tests: with one rank it must equal m(x)

local function wants_sync(m)
  return size > 1 and mpi and m.training and BN[m.__name] and (sync_all or synced[m])
end

local function patched_call(m, x, ...)
  if wants_sync(m) and duel.is_tensor(x) then return sync_bn_forward(m, x) end
  return layer_call(m, x, ...)
end
local function patched_forward(m, x, ...)
  if wants_sync(m) and duel.is_tensor(x) then return sync_bn_forward(m, x) end
  return layer_forward(m, x, ...)
end

-- m: a module whose BatchNorm1d/2d layers (at any depth) synchronise, or true for every one
function dist.sync_batchnorm(m)
  if m ~= true and not is_module(m) then fail('sync_batchnorm: expected a module or true, got %s', type(m)) end
  layer_mt.__call, layer_mt.methods.forward = patched_call, patched_forward
  if m == true then sync_all = true; return true end
  m:apply(function(c) if BN[c.__name] then synced[c] = true end end)
  return m
end

-- ---- data parallelism for unchanged scripts ------------------------------------------------------

-- rows rank+1, rank+1+size, ... of a dataset (all shards the same length, so epochs line up)
function dist.shard(ds)
  if size == 1 then return ds end
  local function index_of(i) return rank + 1 + (i - 1) * size end
  if duel.is_tensor(ds) then
    local n = math.floor(ds:size(1) / size)
    return ds:index_select(1, (duel.arange(n) - 1) * size + (rank + 1))
  end
  if type(ds.get) == 'function' then
    local n = math.floor((type(ds.len) == 'function' and ds:len() or #ds) / size)
    local w = setmetatable({}, {__index = function(_, k) return ds[k] end})
    w.len = function() return n end
    w.get = function(_, i, r) return ds:get(index_of(i), r) end
    if type(ds.plan) == 'function' then
      w.plan = function(_, i, r) return ds:plan(index_of(i), r) end
    end
    return w
  end
  local out = {}
  for k, v in pairs(ds) do
    if duel.is_tensor(v) and v:dim() >= 1 then
      local n = math.floor(v:size(1) / size)
      out[k] = v:index_select(1, (duel.arange(n) - 1) * size + (rank + 1))
    else
      out[k] = v
    end
  end
  return out
end

local hooked = false
function dist.data_parallel(opts)
  opts = opts or {}
  dist.init()
  if opts.sync_bn then dist.sync_batchnorm(true) end
  if hooked or size == 1 then return rank, size end
  hooked = true
  local optim = duel.optim
  for _, kind in ipairs{'SGD', 'Adam', 'AdamW', 'RMSprop'} do
    local make = optim[kind]
    optim[kind] = function(params, o)
      local opt = make(params, o)
      dist.broadcast_module_(params, 0)
      return opt
    end
  end
  local methods = debug.getregistry()['duel.Optimizer'].methods
  local step = methods.step
  methods.step = function(self, ...)
    dist.average_grads(self)
    return step(self, ...)
  end
  local make_loader = duel.data.DataLoader
  duel.data.DataLoader = function(ds, o)
    if not (type(o) == 'table' and o.shuffle == false) then ds = dist.shard(ds) end
    return make_loader(ds, o)
  end
  return rank, size
end

return dist
