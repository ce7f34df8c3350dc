-- DataLoader(ds, {batch=64, shuffle=true, drop_last=true, seed=0, workers=1, prefetch=2})
--
--   for batch in loader:iter() do ... end      -- one epoch; #loader == loader:len() batches
--
-- ds is one of
--   * a tensor (items along dim 1): batches are x:index_select(1, idx)
--   * a table of tensors with a common size(1), such as fashion_mnist's result: every tensor field
--     is batched the same way, other fields (class_names) are left out
--   * a dataset: an object with ds:len() and ds:get(i, r); items are stacked field by field
--     (tensors along a new dim 1, numbers into a 1-D tensor, anything else into a list)
--   * a folder dataset (ImageFolder, Unaligned, Aligned, or any dataset with ds:plan(i, r)): the
--     plans of the `prefetch` batches after the current one are queued to a C prefetcher whose
--     `workers` pthreads decode, resize, crop and flip them into preallocated batch tensors while
--     the training step runs; workers=0 runs the same jobs on the Lua thread instead.
--
-- Determinism: epoch e (the e-th call of iter(), or set by loader:set_epoch) shuffles with a
-- permutation that is a pure function of (seed, e), and item i's random choices (crop, flip, the
-- CycleGAN B partner) come from the counter-based stream (seed, e, i). The batches are therefore
-- the same for a given seed whatever the number of workers, the prefetch depth or the timing, and
-- independent of duel.manual_seed and of anything the training step draws.
local core = require 'duel.core'
local util = require 'duel.data.util'
local C = core._data

local tensor_mt = core._core.metatable
local function is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == tensor_mt end

local Loader = {__name = 'DataLoader'}
local OP = 'data.DataLoader'

local function dataset_len(ds)
  local n
  if type(ds.len) == 'function' then n = ds:len() else n = #ds end
  if type(n) ~= 'number' or n < 0 or n ~= math.floor(n) then
    util.fail('%s: the dataset length must be a whole number >= 0, got %s', OP, tostring(n))
  end
  return n
end

local function DataLoader(ds, opts)
  local o = util.opts(OP, opts)
  local st = {dataset = ds, epoch = 0, pending = {}}
  if is_tensor(ds) then
    if ds:dim() < 1 then
      util.fail('%s: a tensor dataset needs at least 1 dim, got a 0-dim tensor', OP)
    end
    st.kind, st.n = 'tensor', ds:size(1)
  elseif (type(ds) == 'table' or type(ds) == 'userdata') and type(ds.get) == 'function' then
    st.kind = type(ds.plan) == 'function' and 'plan' or 'items'
    st.n = dataset_len(ds)
  elseif type(ds) == 'table' then
    local n, fields = nil, {}
    for k, v in pairs(ds) do
      if is_tensor(v) then
        if v:dim() < 1 then
          util.fail("%s: field '%s' is a 0-dim tensor, got no dim 1 to batch", OP, tostring(k))
        end
        if n and v:size(1) ~= n then
          util.fail("%s: tensor fields must share size(1), got %d for '%s' and %d for '%s'", OP,
            v:size(1), tostring(k), n, fields[1])
        end
        n = v:size(1)
        fields[#fields + 1] = k
      end
    end
    if not n then util.fail('%s: a table dataset needs at least one tensor field, got none', OP) end
    table.sort(fields, function(a, b) return tostring(a) < tostring(b) end)
    st.kind, st.n, st.fields = 'fields', n, fields
  else
    util.fail('%s: dataset must be a tensor, a table of tensors or an object with len/get, got %s',
      OP, type(ds))
  end
  st.batch = util.check_int(OP, 'batch', o.batch or 64, 1)
  st.seed = util.check_int(OP, 'seed', o.seed or 0, 0, 2 ^ 53)
  st.shuffle = o.shuffle ~= false
  st.drop_last = o.drop_last ~= false
  st.depth = util.check_int(OP, 'prefetch', o.prefetch or 2, 1, 64)
  if st.kind == 'plan' then
    st.workers = util.check_int(OP, 'workers', o.workers or 1, 0, 64)
    st.pf = C.Prefetcher(st.workers)
  else
    st.workers = 0
  end
  st.ready = {} -- per batch of the running epoch: was it decoded before the step asked for it?
  return util.object(Loader, st)
end

function Loader:len()
  local n, b = self.n, self.batch
  if self.drop_last then return math.floor(n / b) end
  return math.ceil(n / b)
end

function Loader:__tostring()
  return ('DataLoader(%d items, batch %d, %d batches, shuffle=%s, workers=%d)'):format(
    self.n, self.batch, self:len(), tostring(self.shuffle), self.workers)
end

-- the epoch the next iter() runs is e
function Loader:set_epoch(e)
  util.check_int(OP, 'epoch', e, 1)
  self.epoch = e - 1
end

-- dataset indices of batch b of the running epoch
function Loader:_indices(b)
  local first = (b - 1) * self.batch + 1
  local last = math.min(b * self.batch, self.n)
  local idx, order = {}, self.order
  for k = first, last do idx[#idx + 1] = order and order[k] or k end
  return idx
end

local function stream_of(epoch) return 2 * epoch + 1 end -- permutations use 2*epoch

-- queue batch b's plans to the prefetcher
function Loader:_submit(b)
  local ds, idx = self.dataset, self:_indices(b)
  local n = #idx
  local plans = {}
  for k, i in ipairs(idx) do
    plans[k] = ds:plan(i, util.counter_rng(self.seed, stream_of(self.epoch), i))
  end
  -- one output tensor per image field, shaped by the first item; every item must agree
  local fields, outs, shape, first = {}, {}, {}, {}
  local jobs = {}
  local function out_for(name, job)
    local s = {job.channels, job.out_h, job.out_w}
    if not fields[name] then
      outs[#outs + 1] = core.empty(n, s[1], s[2], s[3])
      fields[name], shape[name], first[name] = #outs, s, job.path
    elseif shape[name][1] ~= s[1] or shape[name][2] ~= s[2] or shape[name][3] ~= s[3] then
      util.fail("%s: items of a batch differ in size: '%s' gives {%d,%d,%d} and '%s' gives "
        .. "{%d,%d,%d} for field '%s' (give the dataset a size), got different sizes", OP,
        first[name], shape[name][1], shape[name][2], shape[name][3], job.path, s[1], s[2], s[3],
        name)
    end
    return fields[name]
  end
  for k, plan in ipairs(plans) do
    for _, job in ipairs(plan.jobs) do
      local j = {}
      for key, v in pairs(job) do j[key] = v end
      j.slot = k - 1
      j.out = out_for(job.field, job)
      if job.field2 then j.out2 = out_for(job.field2, job) end
      jobs[#jobs + 1] = j
    end
  end
  local ticket = self.pf:submit(jobs, outs)
  self.pending[b] = {ticket = ticket, outs = outs, fields = fields, plans = plans, n = n}
end

-- collate plain values: numbers -> 1-D tensor, anything else -> list
local function collate_values(list, n)
  local allnum = true
  for k = 1, n do if type(list[k]) ~= 'number' then allnum = false; break end end
  if allnum then return core.tensor(list) end
  return list
end

function Loader:_collect(b)
  local p = self.pending[b]
  self.pending[b] = nil
  self.ready[b] = self.pf:wait(p.ticket)
  local batch = {}
  for name, k in pairs(p.fields) do batch[name] = p.outs[k] end
  local names = {}
  for _, plan in ipairs(p.plans) do
    for name in pairs(plan.values or {}) do names[name] = true end
  end
  for name in pairs(names) do
    local list = {}
    for k, plan in ipairs(p.plans) do list[k] = plan.values[name] end
    batch[name] = collate_values(list, p.n)
  end
  return batch
end

-- stack the items of a get()-dataset field by field
local function collate_items(items)
  local first = items[1]
  if is_tensor(first) then return core.stack(items, 1) end
  if type(first) == 'number' then return core.tensor(items) end
  if type(first) ~= 'table' then return items end
  local out = {}
  for name in pairs(first) do
    local list = {}
    for k, it in ipairs(items) do list[k] = it[name] end
    local v = list[1]
    if is_tensor(v) then out[name] = core.stack(list, 1)
    else out[name] = collate_values(list, #items) end
  end
  return out
end

function Loader:_batch_now(b)
  local idx = self:_indices(b)
  if self.kind == 'tensor' then return self.dataset:index_select(1, core.tensor(idx)) end
  if self.kind == 'fields' then
    local t, out = core.tensor(idx), {}
    for _, name in ipairs(self.fields) do out[name] = self.dataset[name]:index_select(1, t) end
    return out
  end
  local items = {}
  for k, i in ipairs(idx) do
    items[k] = self.dataset:get(i, util.counter_rng(self.seed, stream_of(self.epoch), i))
  end
  return collate_items(items)
end

-- wait for (and drop) whatever a previous, unfinished epoch left in flight
function Loader:_drain()
  for b, p in pairs(self.pending) do
    self.pending[b] = nil
    pcall(self.pf.wait, self.pf, p.ticket)
  end
end

-- the generic-for step of iter(): a plain function over a state table, not a closure, so that
-- compiled traces hold no reference to a loader
local function step(it)
  local self = it.loader
  if self.epoch ~= it.epoch then
    util.fail('%s: this iterator belongs to epoch %d, but iter() has started epoch %d since',
      OP, it.epoch, self.epoch)
  end
  local b = it.b + 1
  it.b = b
  if b > it.nb then return nil end
  if self.kind ~= 'plan' then return self:_batch_now(b) end
  -- batch b and the `depth` after it are queued: those decode while the step on b runs
  for k = b, math.min(b + self.depth, it.nb) do
    if not self.pending[k] then self:_submit(k) end
  end
  return self:_collect(b)
end

local iter_mt = {__call = step}

-- one epoch: for batch in loader:iter() do ... end (batch tables, or tensors for a tensor
-- dataset); the iterator is also callable on its own: local next_batch = loader:iter()
function Loader:iter()
  if self.kind == 'plan' then self:_drain() end
  self.epoch = self.epoch + 1
  self.order = self.shuffle and C.permutation(self.n, self.seed, 2 * self.epoch) or nil
  self.ready = {}
  return setmetatable({loader = self, epoch = self.epoch, nb = self:len(), b = 0}, iter_mt)
end

return DataLoader
