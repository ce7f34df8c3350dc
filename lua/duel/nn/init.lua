-- duel.nn: built-in layers (C userdata, csrc/lua/l_nn.c), Lua containers and bases, and the GAN
-- building blocks written in Lua (spectral_norm, MinibatchStdDev, MinibatchDiscrimination,
-- SelfAttention2d). Every layer is called as m(x) and answers the same module methods.
local core = require 'duel.core'
local init = require 'duel.init_weights'
local Module = require 'duel.nn.Module'

local nn = {}
nn.Module = Module
nn.Sequential = require 'duel.nn.Sequential'

local C = core._nn
local generic = Module.__generic

-- the C layers answer the generic module methods too, and print like Lua modules
if C.methods then
  for k, f in pairs(generic) do
    if k ~= 'group_digits' and k ~= 'repr' then C.methods[k] = f end
  end
  C.metatable.__tostring = function(m)
    return generic.repr(m) .. '\nparameters: ' .. generic.group_digits(m:num_parameters())
  end
end

-- ---- option helpers ------------------------------------------------------------------------------

local function int(v, op, what, min)
  if type(v) ~= 'number' or v ~= math.floor(v) or v < (min or 1) then
    error(('%s: %s must be a whole number >= %d, got %s'):format(op, what, min or 1, tostring(v)), 0)
  end
  return v
end

-- a number or {h, w}
local function pair(v, dflt, op, what, min)
  if v == nil then v = dflt end
  if type(v) == 'table' then
    if #v ~= 2 then error(('%s: %s must be a number or {h,w}, got a table of %d'):format(op, what, #v), 0) end
    return int(v[1], op, what, min), int(v[2], op, what, min)
  end
  local n = int(v, op, what, min)
  return n, n
end

local function opts_of(o, op)
  if o ~= nil and type(o) ~= 'table' then
    error(('%s: options must be a table, got %s'):format(op, type(o)), 0)
  end
  return o or {}
end

local function flag(v, dflt, op, what)
  if v == nil then return dflt end
  if type(v) ~= 'boolean' then error(('%s: option %s must be a boolean, got %s'):format(op, what, type(v)), 0) end
  return v
end

local function num(v, dflt, op, what, lo, hi)
  if v == nil then v = dflt end
  if type(v) ~= 'number' or not (v >= lo and v <= hi) then
    error(('%s: %s must be a number in [%g, %g], got %s'):format(op, what, lo, hi, tostring(v)), 0)
  end
  return v
end

-- PyTorch's default for Linear/Conv: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), +),
-- and the bias U(-1/sqrt(fan_in), +) with the same fan_in
local function default_init(m, fan_in)
  local b = 1 / math.sqrt(fan_in)
  init.uniform_(m.weight, -b, b)
  if m.bias then init.uniform_(m.bias, -b, b) end
  return m
end

-- ---- built-in layers ---------------------------------------------------------------------------

function nn.Linear(i, o, opt)
  opt = opts_of(opt, 'Linear')
  int(i, 'Linear', 'in_features'); int(o, 'Linear', 'out_features')
  local m = C.new('Linear', {i, o, flag(opt.bias, true, 'Linear', 'bias') and 1 or 0})
  return default_init(m, i)
end

local function conv(kind, i, o, k, opt)
  opt = opts_of(opt, kind)
  int(i, kind, 'in_channels'); int(o, kind, 'out_channels')
  local kh, kw = pair(k, nil, kind, 'kernel_size')
  local sh, sw = pair(opt.stride, 1, kind, 'stride')
  local ph, pw = pair(opt.padding, 0, kind, 'padding', 0)
  local dh, dw = pair(opt.dilation, 1, kind, 'dilation')
  local oph, opw = pair(opt.output_padding, 0, kind, 'output_padding', 0)
  local g = int(opt.groups or 1, kind, 'groups')
  if i % g ~= 0 or o % g ~= 0 then
    error(('%s: groups must divide in_channels and out_channels, got %d for %d->%d'):format(kind, g, i, o), 0)
  end
  if kind == 'Conv2d' and (oph ~= 0 or opw ~= 0) then
    error(('Conv2d: output_padding applies to ConvTranspose2d only, got {%d,%d}'):format(oph, opw), 0)
  end
  local bias = flag(opt.bias, true, kind, 'bias')
  local m = C.new(kind, {i, o, kh, kw, sh, sw, ph, pw, dh, dw, g, bias and 1 or 0, oph, opw})
  -- PyTorch computes fan_in from the weight's dim 2: in/groups for Conv2d, out/groups for ConvT
  local fan_in = (kind == 'Conv2d' and i or o) / g * kh * kw
  return default_init(m, fan_in)
end
function nn.Conv2d(i, o, k, opt) return conv('Conv2d', i, o, k, opt) end
function nn.ConvTranspose2d(i, o, k, opt) return conv('ConvTranspose2d', i, o, k, opt) end

local function batchnorm(kind, c, opt)
  opt = opts_of(opt, kind)
  int(c, kind, 'num_features')
  local affine = flag(opt.affine, true, kind, 'affine')
  local track = flag(opt.track_running_stats, true, kind, 'track_running_stats')
  local m = C.new(kind, {c, affine and 1 or 0, track and 1 or 0},
                  {num(opt.eps, 1e-5, kind, 'eps', 0, 1), num(opt.momentum, 0.1, kind, 'momentum', 0, 1)})
  if affine then init.ones_(m.weight) end
  if track then init.ones_(m.running_var) end
  return m
end
function nn.BatchNorm1d(c, opt) return batchnorm('BatchNorm1d', c, opt) end
function nn.BatchNorm2d(c, opt) return batchnorm('BatchNorm2d', c, opt) end

function nn.InstanceNorm2d(c, opt)
  opt = opts_of(opt, 'InstanceNorm2d')
  int(c, 'InstanceNorm2d', 'num_features')
  local affine = flag(opt.affine, false, 'InstanceNorm2d', 'affine')
  local m = C.new('InstanceNorm2d', {c, affine and 1 or 0, 0}, {num(opt.eps, 1e-5, 'InstanceNorm2d', 'eps', 0, 1)})
  if affine then init.ones_(m.weight) end
  return m
end

function nn.LayerNorm(shape, opt)
  opt = opts_of(opt, 'LayerNorm')
  if type(shape) == 'number' then shape = {shape} end
  if type(shape) ~= 'table' or #shape < 1 or #shape > 6 then
    error(('LayerNorm: shape must be a number or a table of 1 to 6 sizes, got %s'):format(type(shape)), 0)
  end
  local ints = {#shape}
  for k = 1, #shape do ints[k + 1] = int(shape[k], 'LayerNorm', 'size') end
  local affine = flag(opt.elementwise_affine, true, 'LayerNorm', 'elementwise_affine')
  ints[8] = affine and 1 or 0
  for k = #shape + 2, 7 do ints[k] = 0 end
  local m = C.new('LayerNorm', ints, {num(opt.eps, 1e-5, 'LayerNorm', 'eps', 0, 1)})
  if affine then init.ones_(m.weight) end
  return m
end

function nn.Embedding(n, d)
  int(n, 'Embedding', 'num_embeddings'); int(d, 'Embedding', 'embedding_dim')
  local m = C.new('Embedding', {n, d})
  init.normal_(m.weight, 0, 1)
  return m
end

-- BatchNorm without affine, then a per-class scale (init 1) and shift (init 0): m(x, labels)
function nn.ConditionalBatchNorm2d(c, n_classes, opt)
  opt = opts_of(opt, 'ConditionalBatchNorm2d')
  int(c, 'ConditionalBatchNorm2d', 'num_features'); int(n_classes, 'ConditionalBatchNorm2d', 'num_classes')
  local m = C.new('ConditionalBatchNorm2d', {c, n_classes},
                  {num(opt.eps, 1e-5, 'ConditionalBatchNorm2d', 'eps', 0, 1),
                   num(opt.momentum, 0.1, 'ConditionalBatchNorm2d', 'momentum', 0, 1)})
  init.ones_(m.weight)
  init.ones_(m.running_var)
  return m
end

-- AdaIN(c, style_dim): m(x, w) maps the style w {N,style_dim} to a scale and a shift per channel
-- by one linear layer whose bias starts at scale 1, shift 0 (StyleGAN)
function nn.AdaIN(c, style_dim)
  int(c, 'AdaIN', 'num_features'); int(style_dim, 'AdaIN', 'style_dim')
  local m = C.new('AdaIN', {c, style_dim})
  local b = 1 / math.sqrt(style_dim)
  init.uniform_(m.weight, -b, b)
  local bias = core.cat({core.ones(c), core.zeros(c)}, 1)
  local prev = core._core.set_grad_enabled(false)
  m.bias:copy_(bias)
  core._core.set_grad_enabled(prev)
  return m
end

function nn.ReLU() return C.new('ReLU') end
function nn.Tanh() return C.new('Tanh') end
function nn.Sigmoid() return C.new('Sigmoid') end
function nn.Identity() return C.new('Identity') end
function nn.LeakyReLU(slope)
  return C.new('LeakyReLU', {}, {num(slope, 0.01, 'LeakyReLU', 'negative_slope', -1e30, 1e30)})
end
function nn.Dropout(p)
  return C.new('Dropout', {}, {num(p, 0.5, 'Dropout', 'p', 0, 1)})
end

local function pads(p, op)
  if type(p) == 'number' then p = {p, p, p, p} end
  if type(p) ~= 'table' or #p ~= 4 then
    error(('%s: padding must be a number or {left,right,top,bottom}, got %s'):format(op, type(p)), 0)
  end
  for k = 1, 4 do int(p[k], op, 'padding', 0) end
  return {p[1], p[2], p[3], p[4]}
end
function nn.ReflectionPad2d(p) return C.new('ReflectionPad2d', pads(p, 'ReflectionPad2d')) end
function nn.ZeroPad2d(p) return C.new('ZeroPad2d', pads(p, 'ZeroPad2d')) end

function nn.Upsample(opt)
  opt = opts_of(opt, 'Upsample')
  local sh, sw = pair(opt.scale or opt.scale_factor, 2, 'Upsample', 'scale')
  local mode = opt.mode or 'nearest'
  if mode ~= 'nearest' and mode ~= 'bilinear' then
    error(("Upsample: mode must be 'nearest' or 'bilinear', got '%s'"):format(tostring(mode)), 0)
  end
  return C.new('Upsample', {sh, sw, mode == 'bilinear' and 1 or 0})
end

-- Flatten(start_dim=2): keeps dims before start_dim (1-based), as PyTorch's nn.Flatten
function nn.Flatten(start_dim)
  return C.new('Flatten', {int(start_dim or 2, 'Flatten', 'start_dim') - 1})
end

-- View(...): reshape each sample, keeping the batch dim: View(-1) gives {N, rest}
function nn.View(...)
  local s = {...}
  if type(s[1]) == 'table' then s = s[1] end
  if #s < 1 or #s > 7 then error(('View: need 1 to 7 sizes, got %d'):format(#s), 0) end
  local ints = {#s}
  for k = 1, #s do
    if s[k] ~= -1 then int(s[k], 'View', 'size') end
    ints[k + 1] = s[k]
  end
  return C.new('View', ints)
end

-- pooling layers: thin Lua modules over F.max_pool2d / F.avg_pool2d (no parameters)
for _, kind in ipairs({'MaxPool2d', 'AvgPool2d'}) do
  local cls = Module:extend(kind)
  local fn = kind == 'MaxPool2d' and 'max_pool2d' or 'avg_pool2d'
  function cls:__init(k, opt)
    opt = opts_of(opt, kind)
    local kh, kw = pair(k, nil, kind, 'kernel_size')
    local sh, sw = pair(opt.stride, {kh, kw}, kind, 'stride')
    local ph, pw = pair(opt.padding, 0, kind, 'padding', 0)
    rawset(self, 'cfg', {{kh, kw}, {stride = {sh, sw}, padding = {ph, pw}}})
  end
  function cls:extra_repr()
    local k, o = self.cfg[1], self.cfg[2]
    return ('k{%d,%d}, s{%d,%d}'):format(k[1], k[2], o.stride[1], o.stride[2])
  end
  function cls:forward(x) return require('duel.F')[fn](x, self.cfg[1], self.cfg[2]) end
  nn[kind] = cls
end

-- ---- functional_call ---------------------------------------------------------------------------

-- nn.functional_call(m, params, ...): run m with some parameters (or buffers) replaced by the given
-- tensors (name -> tensor, dotted names as named_parameters gives), then put the originals back.
-- The Unrolled GAN differentiates through optimizer steps this way.
local function set_param(mod, attr, t)
  if type(mod) == 'table' then
    local reg = rawget(mod, '_parameters')[attr] ~= nil and rawget(mod, '_parameters') or rawget(mod, '_buffers')
    reg[attr] = t
  else
    mod[attr] = t
  end
end

function nn.functional_call(m, params, ...)
  if not Module.is_module(m) then
    error(('functional_call: expected a module, got %s'):format(type(m)), 0)
  end
  if type(params) ~= 'table' then
    error(('functional_call: params must be a table of name -> tensor, got %s'):format(type(params)), 0)
  end
  local owners = {}
  for _, e in ipairs(m:named_modules()) do
    local prefix, mod = e[1], e[2]
    for _, list in ipairs({mod:_own_parameters(), mod:_own_buffers()}) do
      for _, p in ipairs(list) do
        owners[prefix == '' and p[1] or prefix .. '.' .. p[1]] = {mod, p[1], p[2]}
      end
    end
  end
  local swapped = {}
  local function restore()
    for k = #swapped, 1, -1 do set_param(swapped[k][1], swapped[k][2], swapped[k][3]) end
  end
  for name, t in pairs(params) do
    local o = owners[name]
    if not o then
      restore()
      error(('functional_call: the module has no parameter or buffer named %s, got %s'):format(tostring(name), type(t)), 0)
    end
    swapped[#swapped + 1] = o
    local ok, err = pcall(set_param, o[1], o[2], t)
    if not ok then swapped[#swapped] = nil; restore(); error(err, 0) end
  end
  local res = {pcall(m, ...)}
  restore()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- ---- GAN building blocks written in Lua --------------------------------------------------------

require('duel.nn.blocks')(nn)

return nn
