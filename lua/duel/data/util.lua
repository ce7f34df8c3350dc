-- Shared helpers of duel.data: objects with #len, folder listing, random streams, job tables.
local core = require 'duel.core'
local C = core._data

local util = {}

util.IMAGE_EXTS = {png = true, jpg = true, jpeg = true, bmp = true, tga = true}
util.EXT_LIST = '.png, .jpg, .jpeg, .bmp, .tga'

function util.fail(fmt, ...) error(fmt:format(...), 0) end

function util.is_image(name)
  local ext = name:match('%.([^./]+)$')
  return ext ~= nil and util.IMAGE_EXTS[ext:lower()] == true
end

function util.join(a, b)
  if a:sub(-1) == '/' then return a .. b end
  return a .. '/' .. b
end

function util.kind(path) return C.kind(path) end

-- the options table of op (nil -> {})
function util.opts(op, o)
  if o == nil then return {} end
  if type(o) ~= 'table' then util.fail('%s: options must be a table, got %s', op, type(o)) end
  return o
end

function util.check_int(op, name, v, lo, hi)
  if type(v) ~= 'number' or v ~= math.floor(v) or v < lo or (hi and v > hi) then
    util.fail('%s: %s must be a whole number in [%d, %s], got %s', op, name, lo,
      hi and tostring(hi) or 'inf', tostring(v))
  end
  return v
end

-- size option: a number n (n x n) or {h, w}; nil stays nil
function util.size_opt(op, name, v)
  if v == nil or v == false then return nil end
  if type(v) == 'number' then
    util.check_int(op, name, v, 1, core._image.max_side)
    return v, v
  end
  if type(v) == 'table' and #v == 2 then
    util.check_int(op, name .. '[1]', v[1], 1, core._image.max_side)
    util.check_int(op, name .. '[2]', v[2], 1, core._image.max_side)
    return v[1], v[2]
  end
  util.fail('%s: %s must be a number or {height, width}, got %s', op, name, type(v))
end

function util.range_opt(op, r)
  if r == nil then return -1, 1 end
  if type(r) ~= 'table' or type(r[1]) ~= 'number' or type(r[2]) ~= 'number' then
    util.fail('%s: range must be {lo, hi}, got %s', op, type(r))
  end
  return r[1], r[2]
end

function util.check_dir(op, path, what)
  if type(path) ~= 'string' then
    util.fail('%s: %s must be a string, got %s', op, what or 'folder', type(path))
  end
  local k = C.kind(path)
  if k == nil then util.fail("%s: folder '%s' does not exist, got no such path", op, path) end
  if k ~= 'dir' then util.fail("%s: '%s' must be a folder, got a %s", op, path, k) end
end

-- every image file under dir, recursively, as paths (dir/sub/name), sorted by their path below
-- dir; hidden entries are skipped and so are files with other extensions
function util.list_images(dir, op)
  local out = {}
  local function walk(d, rel, depth)
    if depth > 32 then
      util.fail("%s: folders nested more than 32 deep under '%s' (a symlink loop?), got '%s'",
        op, dir, d)
    end
    local names, kinds = C.listdir(d, op)
    for i = 1, #names do
      local path, r = util.join(d, names[i]), rel == '' and names[i] or rel .. '/' .. names[i]
      if kinds[i] == 'dir' then walk(path, r, depth + 1)
      elseif kinds[i] == 'file' and util.is_image(names[i]) then
        out[#out + 1] = {path = path, rel = r}
      end
    end
  end
  walk(dir, '', 0)
  table.sort(out, function(a, b) return a.rel < b.rel end)
  return out
end

-- A userdata proxy so that #obj works (LuaJIT has no __len for tables): fields live in a state
-- table, methods in cls; tostring(obj) uses cls.__tostring when present. The proxies of a class
-- share one metatable (newproxy(proto)) and find their state in a weak-keyed table, so no
-- closure captures an instance: a compiled trace that specialises on a closure then cannot keep
-- a dataset or loader (and the batch it last made) alive.
local states = setmetatable({}, {__mode = 'k'})
local protos = {}

local function proto_for(cls)
  local p = protos[cls]
  if p then return p end
  p = newproxy(true)
  local mt = getmetatable(p)
  mt.__index = function(self, k)
    local v = states[self][k]
    if v ~= nil then return v end
    return cls[k]
  end
  mt.__newindex = function(self, k, v) states[self][k] = v end
  mt.__len = function(self) return self:len() end
  mt.__tostring = function(self)
    if cls.__tostring then return cls.__tostring(self) end
    return cls.__name or 'object'
  end
  protos[cls] = p
  return p
end

function util.object(cls, state)
  local p = newproxy(proto_for(cls))
  states[p] = state
  return p
end

-- uniform draws in [0,1): the loader's stream is a pure function of (seed, stream, index, k);
-- the global one (direct ds:get(i)) comes from duel's RNG, 8 numbers per item
function util.counter_rng(seed, stream, index)
  local k = -1
  return function()
    k = k + 1
    return C.uniform(seed, stream, index, k)
  end
end

function util.global_rng()
  local u = core.rand(8):totable()
  local k = 0
  return function()
    k = k + 1
    if k > #u then u = core.rand(8):totable(); k = 1 end
    return u[k]
  end
end

-- an integer in [lo, hi] from one uniform
function util.randint(r, lo, hi)
  local v = lo + math.floor(r() * (hi - lo + 1))
  if v > hi then v = hi end
  return v
end

-- the pipeline's random choices, as in the CycleGAN/pix2pix loaders: a crop offset uniform over
-- every valid position (PyTorch's randint(0, load - crop)), and a flip with probability 1/2
function util.augment(r, lh, lw, oh, ow, flip)
  local cy, cx = 0, 0
  if lh > oh then cy = util.randint(r, 0, lh - oh) end
  if lw > ow then cx = util.randint(r, 0, lw - ow) end
  local f = false
  if flip then f = r() < 0.5 end
  return cy, cx, f
end

-- A plan (what ds:plan(i, r) returns) is {jobs = {job, ...}, values = {field = number|string}}.
-- A job is a table for the C pipeline (csrc/image.h, duel_image_job): decode `path` with
-- `channels`, resize to load_h x load_w (0: keep), crop out_h x out_w at (crop_y, crop_x)
-- (0-based), flip, map [0,1] onto [lo, hi]; `field` names the item entry it fills, and a split
-- job (A|B halves of one file) also fills `field2`; `op` names the dataset in messages.
--
-- run_plan uses a Prefetcher with no worker: the plan runs on the calling thread (ds:get(i))
-- through the same code as the loader's workers.
local sync_pf
function util.run_plan(plan)
  sync_pf = sync_pf or C.Prefetcher(0)
  local fields, outs, jobs = {}, {}, {}
  local function out_for(name, job)
    if not fields[name] then
      outs[#outs + 1] = core.empty(1, job.channels, job.out_h, job.out_w)
      fields[name] = #outs
    end
    return fields[name]
  end
  for _, job in ipairs(plan.jobs) do
    local j = {}
    for k, v in pairs(job) do j[k] = v end
    j.slot = 0
    j.out = out_for(job.field, job)
    if job.field2 then j.out2 = out_for(job.field2, job) end
    jobs[#jobs + 1] = j
  end
  sync_pf:wait(sync_pf:submit(jobs, outs))
  local item = {}
  for name, k in pairs(fields) do
    local t = outs[k]
    item[name] = t:view(t:size(2), t:size(3), t:size(4))
  end
  for name, v in pairs(plan.values or {}) do item[name] = v end
  return item
end

return util
