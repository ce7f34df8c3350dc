-- duel.optim: SGD, Adam, AdamW, RMSprop (C userdata with fused in-place steps, csrc/optim.c),
-- plus Extragradient, LinearDecay and the clipping helpers.
local core = require 'duel.core'
local C = core._optim

local optim = {}

local function no_grad(fn)
  local prev = core._core.set_grad_enabled(false)
  local ok, err = pcall(fn)
  core._core.set_grad_enabled(prev)
  if not ok then error(err, 0) end
  return err
end

-- a parameter list from a table of tensors, a module (m:parameters()), or a table of modules
local function param_list(params, op)
  if type(params) ~= 'table' and type(params) ~= 'userdata' then
    error(('%s: parameters must be a table of tensors or a module, got %s'):format(op, type(params)), 0)
  end
  local mt = getmetatable(params)
  local is_tensor = mt == core._core.metatable
  if not is_tensor and type(params.parameters) == 'function' then return params:parameters() end
  if is_tensor then return {params} end
  local list = {}
  for i = 1, #params do
    local p = params[i]
    if type(p) ~= 'userdata' and type(p) == 'table' and type(p.parameters) == 'function' then
      for _, q in ipairs(p:parameters()) do list[#list + 1] = q end
    elseif type(p) == 'userdata' and getmetatable(p) ~= core._core.metatable and type(p.parameters) == 'function' then
      for _, q in ipairs(p:parameters()) do list[#list + 1] = q end
    else
      list[#list + 1] = p
    end
  end
  return list
end
optim.param_list = param_list

for _, kind in ipairs({'SGD', 'Adam', 'AdamW', 'RMSprop'}) do
  optim[kind] = function(params, opts)
    local opt = C.new(C[kind], param_list(params, kind), opts)
    return opt
  end
end

function optim.clip_grad_norm_(params, max_norm)
  return C.clip_grad_norm_(param_list(params, 'clip_grad_norm_'), max_norm)
end

function optim.clip_weights_(params, c)
  return C.clip_weights_(param_list(params, 'clip_weights_'), c)
end

-- Extragradient (Korpelevich 1976; Gidel et al. 2019 for GANs): extrapolate() takes a step of the
-- inner optimizer from x to x' and remembers x; after gradients are recomputed at x', step()
-- goes back to x and steps with those gradients.
local Extragradient = {}
Extragradient.__index = Extragradient

function optim.Extragradient(inner)
  if type(inner) ~= 'userdata' or type(inner.params) ~= 'function' then
    error(('Extragradient: expected an optimizer such as optim.SGD(...), got %s'):format(type(inner)), 0)
  end
  return setmetatable({inner = inner, saved = nil}, Extragradient)
end

function Extragradient:extrapolate()
  local ps = self.inner:params()
  self.saved = no_grad(function()
    local s = {}
    for i, p in ipairs(ps) do s[i] = p:clone() end
    return s
  end)
  self.inner:step()
end

function Extragradient:step()
  if not self.saved then
    error('Extragradient: step() needs extrapolate() first (then fresh gradients), got no saved point', 0)
  end
  local ps = self.inner:params()
  no_grad(function()
    for i, p in ipairs(ps) do p:copy_(self.saved[i]) end
  end)
  self.saved = nil
  self.inner:step()
end

function Extragradient:zero_grad() self.inner:zero_grad() end
function Extragradient:state_dict() return self.inner:state_dict() end
function Extragradient:load_state_dict(s) return self.inner:load_state_dict(s) end

-- LinearDecay(opt, {start=n, stop=m}): CycleGAN's schedule. The factor on the initial lr is 1
-- for the first `start` calls of step(), then falls linearly to 0 at `stop` calls.
local LinearDecay = {}
LinearDecay.__index = LinearDecay

function optim.LinearDecay(opt, o)
  o = o or {}
  local start, stop = o.start, o.stop
  if type(start) ~= 'number' or type(stop) ~= 'number' or start < 0 or stop <= start then
    error(('LinearDecay: need 0 <= start < stop, got start=%s stop=%s'):format(tostring(start), tostring(stop)), 0)
  end
  return setmetatable({opt = opt, base = opt.lr, start = start, stop = stop, t = 0}, LinearDecay)
end

function LinearDecay:factor(t)
  t = t or self.t
  if t <= self.start then return 1 end
  if t >= self.stop then return 0 end
  return (self.stop - t) / (self.stop - self.start)
end

function LinearDecay:step()
  self.t = self.t + 1
  self.opt.lr = self.base * self:factor()
  return self.opt.lr
end

function LinearDecay:state_dict() return {t = self.t, base = self.base} end
function LinearDecay:load_state_dict(s)
  self.t, self.base = s.t, s.base
  self.opt.lr = self.base * self:factor()
end

return optim
