-- duel.init: in-place initialisers with PyTorch's names, meanings and fan conventions.
-- They run under no_grad, so they apply to parameters that require grad.
local core = require 'duel.core'

local init = {}

local function fill(t, values)
  local prev = core._core.set_grad_enabled(false)
  local ok, err = pcall(function() t:copy_(values) end)
  core._core.set_grad_enabled(prev)
  if not ok then error(err, 0) end
  return t
end

local function check(t, op)
  if type(t) ~= 'userdata' or getmetatable(t) ~= core._core.metatable then
    error(('%s: expected a duel.Tensor, got %s'):format(op, type(t)), 0)
  end
end

-- fan_in / fan_out: {out, in} for linear weights, {out, in, kh, kw} for conv weights
function init.calculate_fans(t)
  local s = t:size()
  if #s < 2 then
    error(('init: fan in and fan out need at least 2 dimensions, got {%s}'):format(table.concat(s, ',')), 0)
  end
  local receptive = 1
  for i = 3, #s do receptive = receptive * s[i] end
  return s[2] * receptive, s[1] * receptive
end

-- PyTorch's nn.init.calculate_gain
function init.calculate_gain(nonlinearity, param)
  if nonlinearity == 'linear' or nonlinearity == 'sigmoid' or nonlinearity == 'conv2d'
      or nonlinearity == 'conv_transpose2d' then return 1 end
  if nonlinearity == 'tanh' then return 5 / 3 end
  if nonlinearity == 'relu' then return math.sqrt(2) end
  if nonlinearity == 'leaky_relu' then
    local slope = param or 0.01
    return math.sqrt(2 / (1 + slope * slope))
  end
  error(('calculate_gain: unknown nonlinearity, got %s'):format(tostring(nonlinearity)), 0)
end

function init.normal_(t, mean, std)
  check(t, 'normal_')
  mean, std = mean or 0, std or 1
  return fill(t, core.randn(t:size()) * std + mean)
end

function init.uniform_(t, a, b)
  check(t, 'uniform_')
  a, b = a or 0, b or 1
  return fill(t, core.rand(t:size()) * (b - a) + a)
end

function init.constant_(t, v)
  check(t, 'constant_')
  local prev = core._core.set_grad_enabled(false)
  t:fill_(v)
  core._core.set_grad_enabled(prev)
  return t
end
function init.zeros_(t) return init.constant_(t, 0) end
function init.ones_(t) return init.constant_(t, 1) end

function init.xavier_uniform_(t, gain)
  check(t, 'xavier_uniform_')
  local fi, fo = init.calculate_fans(t)
  local a = (gain or 1) * math.sqrt(6 / (fi + fo))
  return init.uniform_(t, -a, a)
end

function init.xavier_normal_(t, gain)
  check(t, 'xavier_normal_')
  local fi, fo = init.calculate_fans(t)
  return init.normal_(t, 0, (gain or 1) * math.sqrt(2 / (fi + fo)))
end

local function kaiming_std(t, a, mode, nonlinearity)
  local fi, fo = init.calculate_fans(t)
  local fan = (mode or 'fan_in') == 'fan_in' and fi or fo
  return init.calculate_gain(nonlinearity or 'leaky_relu', a or 0) / math.sqrt(fan)
end

function init.kaiming_normal_(t, a, mode, nonlinearity)
  check(t, 'kaiming_normal_')
  return init.normal_(t, 0, kaiming_std(t, a, mode, nonlinearity))
end

function init.kaiming_uniform_(t, a, mode, nonlinearity)
  check(t, 'kaiming_uniform_')
  local bound = math.sqrt(3) * kaiming_std(t, a, mode, nonlinearity)
  return init.uniform_(t, -bound, bound)
end

return init
