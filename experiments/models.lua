-- experiments/models.lua: network builders shared by the experiment scripts (not public API).
--   models.init_normal(net)       N(0, 0.02) convolutions with zero bias, N(1, 0.02) norm scales
--   models.resnet_generator{...}  CycleGAN's ResNet generator (GAN_REFERENCE.md 1.2, 1.3)
--   models.patchgan{...}          the n-layer PatchGAN (n_layers 3: 70x70 receptive field)
--   models.unet{...}              pix2pix's U-Net generator with skips and dropout (1.4)
local duel = require 'duel'
local nn, init = duel.nn, duel.init

local models = {}

-- a convolution followed by BatchNorm needs no bias (the PyTorch port's use_bias)
local function bias_for(norm) return norm ~= 'batch' end

local function norm_layer(kind, c)
  if kind == 'batch' then return nn.BatchNorm2d(c) end
  if kind == 'instance' then return nn.InstanceNorm2d(c) end -- affine=false, as the PyTorch port
  error(("models: norm must be 'batch' or 'instance', got '%s'"):format(tostring(kind)), 0)
end

-- the init of both original repositories and their PyTorch port
function models.init_normal(net)
  net:apply(function(m)
    local name = m.__name
    if name == 'Conv2d' or name == 'ConvTranspose2d' then
      init.normal_(m.weight, 0, 0.02)
      if m.bias then init.zeros_(m.bias) end
    elseif (name == 'BatchNorm2d' or name == 'InstanceNorm2d') and m.weight then
      init.normal_(m.weight, 1, 0.02)
      init.zeros_(m.bias)
    end
  end)
  return net
end

local ResBlock = nn.Module:extend('ResBlock')
function ResBlock:__init(c, norm)
  self.body = nn.Sequential{
    nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm_layer(norm, c), nn.ReLU(),
    nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm_layer(norm, c),
  }
end
function ResBlock:forward(x) return x + self.body(x) end -- no ReLU after the sum

-- c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out, Tanh
function models.resnet_generator(o)
  local ngf, norm = o.ngf or 64, o.norm or 'instance'
  local layers = {nn.ReflectionPad2d(3), nn.Conv2d(o.in_c or 3, ngf, 7), norm_layer(norm, ngf),
    nn.ReLU()}
  local function add(...) for _, m in ipairs({...}) do layers[#layers + 1] = m end end
  for k = 0, 1 do -- two stride-2 downsamplings
    local c = ngf * 2 ^ k
    add(nn.Conv2d(c, 2 * c, 3, {stride = 2, padding = 1}), norm_layer(norm, 2 * c), nn.ReLU())
  end
  for _ = 1, o.n_blocks or 9 do add(ResBlock(4 * ngf, norm)) end
  for k = 2, 1, -1 do -- two fractionally strided convolutions back up
    local c = ngf * 2 ^ k
    add(nn.ConvTranspose2d(c, c / 2, 3, {stride = 2, padding = 1, output_padding = 1}),
        norm_layer(norm, c / 2), nn.ReLU())
  end
  add(nn.ReflectionPad2d(3), nn.Conv2d(ngf, o.out_c or 3, 7), nn.Tanh())
  return models.init_normal(nn.Sequential(layers))
end

-- C64 (no norm) - C128 - C256 (stride 2) - C512 (stride 1) - 1 channel (stride 1), 4x4 kernels
-- with padding 1 (pix2pix and the PyTorch port; the Lua CycleGAN padded 2); raw outputs (logits
-- or LSGAN values). Channel multipliers min(2^k, 8).
function models.patchgan(o)
  local ndf, n, norm = o.ndf or 64, o.n_layers or 3, o.norm or 'instance'
  local layers = {nn.Conv2d(o.in_c or 3, ndf, 4, {stride = 2, padding = 1}), nn.LeakyReLU(0.2)}
  local mult = 1
  for k = 1, n do
    local prev = mult
    mult = math.min(2 ^ k, 8)
    local stride = k < n and 2 or 1
    layers[#layers + 1] = nn.Conv2d(ndf * prev, ndf * mult, 4, {stride = stride, padding = 1,
                                                                bias = bias_for(norm)})
    layers[#layers + 1] = norm_layer(norm, ndf * mult)
    layers[#layers + 1] = nn.LeakyReLU(0.2)
  end
  layers[#layers + 1] = nn.Conv2d(ndf * mult, 1, 4, {stride = 1, padding = 1})
  return models.init_normal(nn.Sequential(layers))
end

-- one U-Net level: down (LeakyReLU, conv s2, norm) -> inner -> up (ReLU, convT s2, norm,
-- dropout) -> concatenated with its input; the outermost level ends in Tanh and has no skip
local UnetLevel = nn.Module:extend('UnetLevel')
function UnetLevel:__init(outer_c, inner_c, o)
  local down_in = o.in_c or outer_c
  local conv = nn.Conv2d(down_in, inner_c, 4, {stride = 2, padding = 1, bias = bias_for(o.norm)})
  self.down = o.outermost and conv
    or nn.Sequential{nn.LeakyReLU(0.2), conv,
                     o.innermost and nn.Identity() or norm_layer(o.norm, inner_c)}
  if o.sub then self.sub = o.sub end
  local up_in = o.innermost and inner_c or 2 * inner_c
  local up = {nn.ReLU(), nn.ConvTranspose2d(up_in, o.out_c or outer_c, 4,
    {stride = 2, padding = 1, bias = o.outermost or bias_for(o.norm)})}
  if o.outermost then up[3] = nn.Tanh()
  else
    up[3] = norm_layer(o.norm, outer_c)
    if o.dropout then up[4] = nn.Dropout(0.5) end
  end
  self.up = nn.Sequential(up)
  rawset(self, 'outermost', o.outermost)
end
function UnetLevel:forward(x)
  local y = self.down(x)
  if self.sub then y = self.sub(y) end
  y = self.up(y)
  if self.outermost then return y end
  return duel.cat({x, y}, 2)
end

-- n_down stride-2 levels (unet_256: 8 on 256 px; 5 on 32 px); level k (1 = outermost) works
-- at width ngf * min(2^(k-1), 8) inside. Dropout 0.5 in the first three decoder blocks from the
-- bottleneck, as the Lua original (pix2pix's noise). Image sides must be divisible by 2^n_down.
function models.unet(o)
  local ngf, n, norm = o.ngf or 64, o.n_down or 8, o.norm or 'batch'
  local function width(level) return ngf * math.min(2 ^ (level - 1), 8) end
  local net
  for level = n, 1, -1 do
    net = UnetLevel(level > 1 and width(level - 1) or nil, width(level), {
      norm = norm, sub = net, innermost = level == n, outermost = level == 1,
      in_c = level == 1 and (o.in_c or 3) or nil, out_c = level == 1 and (o.out_c or 3) or nil,
      dropout = level > 1 and level >= n - 2 and o.dropout ~= false,
    })
  end
  return models.init_normal(net)
end

return models
