-- Replays one fuzz_options input through the same decoder as fuzz_options.c, in Lua, so that
-- `make test` runs the options corpus and regressions without a clang build:
--   luajit tests/fuzz/options_replay.lua <file>    (from the repository root)
-- Prints "replayed N calls" at the end; every call runs under pcall (options_driver.lua's CALL).
local ffi = require 'ffi'
dofile('tests/fuzz/options_driver.lua')

local f = assert(io.open(arg[1], 'rb'))
local data = f:read('*a')
f:close()
local pos = 1

local function byte()
  if pos > #data then return 0 end
  pos = pos + 1
  return data:byte(pos - 1)
end

local bit = require 'bit'
local special = {0 / 0, 1 / 0, -1 / 0, -0.0, 0, 1, -1, 0.5, 1e-300, 1e300, -1e300,
                 9007199254740992, 9223372036854775808, -9007199254740992, 3, 2}
local dbl = ffi.new('double[1]')
local function number()
  local k = byte()
  if k < 96 then return k % 73 - 8 end
  if k < 192 then return special[k % 16 + 1] end
  local b = ffi.new('uint8_t[8]')
  for i = 0, 7 do b[i] = byte() end
  ffi.copy(dbl, b, 8)
  local d = dbl[0]
  local a = math.abs(d)
  if d == d and a ~= math.huge and a >= 1 and a < 9007199254740992 then
    d = math.fmod(d, 64)
  end
  return d
end

local words = {'zero', 'reflect', 'replicate', 'nearest', 'bilinear', 'nonsaturating', 'hinge',
               'wasserstein', 'lsgan', 'relativistic', 'mean', 'sum', 'none', '', 'Conv2d', 'x'}
local keys = {'stride', 'padding', 'dilation', 'groups', 'bias', 'mode', 'scale',
              'output_padding', 'eps', 'momentum', 'affine', 'track_running_stats', 'lr', 'beta1',
              'beta2', 'betas', 'weight_decay', 'nesterov', 'dampening', 'alpha', 'centered',
              'kernel_size', 'size', 'scale_factor', 'reduction', 'weight', 'training', 'p',
              'negative_slope', 'dim', 'ignore_index', 'bogus'}
local rshift, band = bit.rshift, bit.band

local function tensor()
  local b = byte()
  local shape = {}
  for d = 1, b % 5 do shape[d] = byte() % 7 end
  local rg = band(rshift(b, 3), 1) == 1
  local v = nil
  if band(rshift(b, 4), 1) == 1 then v = number() end
  return MK(shape, rg, v)
end

local value
function value(depth)
  local k = byte()
  local c = k % 10
  if c == 0 then return nil
  elseif c == 1 then return band(rshift(k, 4), 1) == 1
  elseif c == 2 or c == 3 then return number()
  elseif c == 4 then return words[rshift(k, 4) % 16 + 1]
  elseif c == 5 or c == 6 then return tensor()
  elseif c == 7 then
    local t = {}
    for i = 1, depth > 2 and 0 or rshift(k, 4) % 5 do t[i] = value(depth + 1) end
    return t
  elseif c == 8 then
    local t = {}
    for _ = 1, depth > 2 and 0 or rshift(k, 4) % 5 do
      local v = value(depth + 1)
      t[keys[byte() % 32 + 1]] = v
    end
    return t
  end
  return rshift(k, 4) % 8
end

local calls = 0
while calls < 8 and pos <= #data do
  local i = byte()
  local args, nargs = {}, byte() % 6
  for a = 1, nargs do args[a] = value(0) end
  CALL(i, unpack(args, 1, nargs))
  calls = calls + 1
  collectgarbage()
end
print(('replayed %d calls'):format(calls))
