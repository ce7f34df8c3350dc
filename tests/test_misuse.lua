-- Misuse across the rest of the API (tests/test_errors.lua covers the core tensor ops): modules
-- called with the wrong rank or channel count, nn constructors and optimizers given bad options,
-- backward twice, a checkpoint loaded into a module of another shape, GAN losses, data and image
-- APIs, F ops with bad options. Each case names its exact error text, and the whole table runs
-- again in a loop that checks no tensor memory is left behind. Like test_errors.lua, each misuse
-- ends in a tail call so that no "file:line:" prefix can appear.
local T = require 'tests.harness'
local duel = require 'duel'

local nn, F, optim, gan = duel.nn, duel.F, duel.optim, duel.gan
local nan, inf = 0 / 0, 1 / 0

local misuses = {} -- {name, msg, fn}
local function E(name, msg, fn) misuses[#misuses + 1] = {name = name, msg = msg, fn = fn} end
local function leaf(n) return duel.randn(n or 3):requires_grad_() end
local function img(...) return duel.zeros(...) end

-- a module's state_dict saved to disk and read back, as a checkpoint is
local function roundtrip(sd)
  local path = os.tmpname()
  duel.save(path, sd)
  local loaded = duel.load(path)
  os.remove(path)
  return loaded
end

-- ---- modules called with the wrong rank, channel count or indices -----------------------------
E('Conv2d on a 3-D input',
  'Conv2d(3->8, k3): expected input {N,C,H,W} with 3 channels, got {3,8,8}',
  function() return nn.Conv2d(3, 8, 3)(img(3, 8, 8)) end)
E('Conv2d with 4 channels for 3',
  'Conv2d(3->8, k3): expected input {N,C,H,W} with 3 channels, got {2,4,8,8}',
  function() return nn.Conv2d(3, 8, 3)(img(2, 4, 8, 8)) end)
E('ConvTranspose2d with 3 channels for 4',
  'ConvTranspose2d(4->2, k4): expected input {N,C,H,W} with 4 channels, got {1,3,4,4}',
  function() return nn.ConvTranspose2d(4, 2, 4)(img(1, 3, 4, 4)) end)
E('Linear with the wrong feature count', 'Linear(4->2): expected input {...,4}, got {5,3}',
  function() return nn.Linear(4, 2)(img(5, 3)) end)
E('Linear on an empty batch of the wrong width', 'Linear(4->2): expected input {...,4}, got {0,3}',
  function() return nn.Linear(4, 2)(img(0, 3)) end)
E('BatchNorm2d with 3 channels for 4',
  'BatchNorm2d(4): expected input {N,C,H,W} with 4 channels, got {2,3,5,5}',
  function() return nn.BatchNorm2d(4)(img(2, 3, 5, 5)) end)
E('BatchNorm2d on a 2-D input',
  'BatchNorm2d(4): expected input {N,C,H,W} with 4 channels, got {2,4}',
  function() return nn.BatchNorm2d(4)(img(2, 4)) end)
E('BatchNorm1d on a 4-D input', 'BatchNorm1d(4): expected input {N,4} or {N,4,L}, got {2,4,3,3}',
  function() return nn.BatchNorm1d(4)(img(2, 4, 3, 3)) end)
E('InstanceNorm2d (affine) with 3 channels for 4',
  'InstanceNorm2d(4, affine): expected input {N,C,H,W} with 4 channels, got {2,3,5,5}',
  function() return nn.InstanceNorm2d(4, {affine = true})(img(2, 3, 5, 5)) end)
E('InstanceNorm2d on a 3-D input',
  'InstanceNorm2d(4): expected input {N,C,H,W} with 4 channels, got {4,5,5}',
  function() return nn.InstanceNorm2d(4)(img(4, 5, 5)) end)
E('LayerNorm over the wrong trailing size',
  'LayerNorm({4}): layer_norm: weight must have the normalised shape {5}, got {4}',
  function() return nn.LayerNorm({4})(img(2, 5)) end)
E('LayerNorm over transposed trailing sizes',
  'LayerNorm({3,4}): layer_norm: weight must have the normalised shape {4,3}, got {3,4}',
  function() return nn.LayerNorm({3, 4})(img(2, 4, 3)) end)
E('Embedding with an index past the table',
  'Embedding(5, 3): index_select: indices must be whole numbers from 1 to 5 (dimension 1), got 6',
  function() return nn.Embedding(5, 3)(duel.tensor{1, 6}) end)
E('Embedding with index 0 (indices are 1-based)',
  'Embedding(5, 3): index_select: indices must be whole numbers from 1 to 5 (dimension 1), got 0',
  function() return nn.Embedding(5, 3)(duel.tensor{0, 2}) end)
E('Embedding with a fractional index',
  'Embedding(5, 3): index_select: indices must be whole numbers from 1 to 5 (dimension 1), got 1.5',
  function() return nn.Embedding(5, 3)(duel.tensor{1.5}) end)

-- ---- nn constructors with bad options ------------------------------------------------------
E('Linear with NaN in_features', 'Linear: in_features must be a whole number >= 1, got nan',
  function() return nn.Linear(nan, 2) end)
E('Linear with negative in_features', 'Linear: in_features must be a whole number >= 1, got -3',
  function() return nn.Linear(-3, 2) end)
E('Linear with fractional in_features', 'Linear: in_features must be a whole number >= 1, got 2.5',
  function() return nn.Linear(2.5, 2) end)
E('Linear with a string bias option', 'Linear: option bias must be a boolean, got string',
  function() return nn.Linear(4, 2, {bias = 'yes'}) end)
E('Conv2d with stride 0', 'Conv2d: stride must be a whole number >= 1, got 0',
  function() return nn.Conv2d(3, 8, 3, {stride = 0}) end)
E('Conv2d with negative padding', 'Conv2d: padding must be a whole number >= 0, got -1',
  function() return nn.Conv2d(3, 8, 3, {padding = -1}) end)
E('Conv2d with groups that do not divide the channels',
  'Conv2d: groups must divide in_channels and out_channels, got 2 for 3->8',
  function() return nn.Conv2d(3, 8, 3, {groups = 2}) end)
E('BatchNorm2d with NaN eps', 'BatchNorm2d: eps must be a number in [0, 1], got nan',
  function() return nn.BatchNorm2d(4, {eps = nan}) end)
E('BatchNorm2d with momentum 2', 'BatchNorm2d: momentum must be a number in [0, 1], got 2',
  function() return nn.BatchNorm2d(4, {momentum = 2}) end)
E('BatchNorm2d with 0 features', 'BatchNorm2d: num_features must be a whole number >= 1, got 0',
  function() return nn.BatchNorm2d(0) end)
E('Dropout with p 1.5', 'Dropout: p must be a number in [0, 1], got 1.5',
  function() return nn.Dropout(1.5) end)
E('Dropout with NaN p', 'Dropout: p must be a number in [0, 1], got nan',
  function() return nn.Dropout(nan) end)
E('LeakyReLU with a string slope',
  'LeakyReLU: negative_slope must be a number in [-1e+30, 1e+30], got a',
  function() return nn.LeakyReLU('a') end)
E('Upsample with an unknown mode', "Upsample: mode must be 'nearest' or 'bilinear', got 'cubic'",
  function() return nn.Upsample({scale = 2, mode = 'cubic'}) end)
E('Upsample with scale 0', 'Upsample: scale must be a whole number >= 1, got 0',
  function() return nn.Upsample({scale = 0}) end)
E('Embedding with a negative table size',
  'Embedding: num_embeddings must be a whole number >= 1, got -1',
  function() return nn.Embedding(-1, 3) end)
E('LayerNorm with an empty shape',
  'LayerNorm: shape must be a number or a table of 1 to 6 sizes, got table',
  function() return nn.LayerNorm({}) end)
E('ZeroPad2d with negative padding', 'ZeroPad2d: padding must be a whole number >= 0, got -1',
  function() return nn.ZeroPad2d(-1) end)
E('Flatten from dim 0 (dims are 1-based)', 'Flatten: start_dim must be a whole number >= 1, got 0',
  function() return nn.Flatten(0) end)

-- ---- optimizers ------------------------------------------------------------------------------
E('Adam given a non-leaf tensor',
  'Adam: parameter 1 must be a leaf tensor, got one computed by mul_scalar',
  function() return optim.Adam({leaf() * 2}) end)
E('Adam given a tensor that does not require grad',
  'Adam: parameter 1 must require grad, got a tensor of shape {3}',
  function() return optim.Adam({duel.zeros(3)}) end)
E('Adam with a NaN lr', "Adam: option 'lr' must be in [0, inf], got -nan",
  function() return optim.Adam({leaf()}, {lr = nan}) end)
E('Adam with a negative lr', "Adam: option 'lr' must be in [0, inf], got -1",
  function() return optim.Adam({leaf()}, {lr = -1}) end)
E('Adam with beta1 = 1', 'Adam: betas must be numbers in [0, 1), got 1',
  function() return optim.Adam({leaf()}, {betas = {1, 0.999}}) end)
E('Adam with a NaN beta2', 'Adam: betas must be numbers in [0, 1), got nan',
  function() return optim.Adam({leaf()}, {betas = {0.5, nan}}) end)
E('Adam with betas as a string', "Adam: option 'betas' must be a table of two numbers, got string",
  function() return optim.Adam({leaf()}, {betas = 'x'}) end)
E('Adam with one beta', "Adam: option 'betas' must be a table of two numbers, got table",
  function() return optim.Adam({leaf()}, {betas = {0.5}}) end)
E('Adam with a negative eps', "Adam: option 'eps' must be in [0, inf], got -1",
  function() return optim.Adam({leaf()}, {eps = -1}) end)
E('Adam whose lr is set to NaN later', "Adam: 'lr' must be a finite non-negative number, got -nan",
  function()
    local o = optim.Adam({leaf()})
    o.lr = nan
  end)
E('SGD with a NaN momentum', "SGD: option 'momentum' must be in [0, inf], got -nan",
  function() return optim.SGD({leaf()}, {lr = 0.1, momentum = nan}) end)
E('SGD without an lr', "SGD: option 'lr' must be in [0, inf], got nan",
  function() return optim.SGD({leaf()}) end)
E('SGD with no parameters', 'SGD: got an empty parameter list',
  function() return optim.SGD({}, {lr = 0.1}) end)
E('SGD given a number for parameters',
  'SGD: parameters must be a table of tensors or a module, got number',
  function() return optim.SGD(5, {lr = 0.1}) end)
E('RMSprop with an infinite alpha', "RMSprop: option 'alpha' must be in [0, 1], got inf",
  function() return optim.RMSprop({leaf()}, {lr = 0.1, alpha = inf}) end)
E('clip_grad_norm_ with a NaN max_norm', 'clip_grad_norm_: max_norm must be positive, got -nan',
  function() return optim.clip_grad_norm_({leaf()}, nan) end)

-- ---- autograd and checkpoints ----------------------------------------------------------------
E('backward twice through the same graph',
  'backward: the graph through sum was freed by an earlier backward (pass retain_graph=true to '
    .. 'keep it), got a released sum node',
  function()
    local x = leaf()
    local y = (x * x):sum()
    y:backward()
    return y:backward()
  end)
E('backward of a non-scalar without grad_outputs',
  'backward: grad can be implicitly created only for a one-element output (pass grad_outputs), '
    .. 'got {3}',
  function()
    local x = leaf()
    return (x * x):backward()
  end)
E('a Linear(3->2) checkpoint loaded into a Linear(4->2)',
  'load_state_dict: weight expects shape {2,4}, got {2,3}',
  function() return nn.Linear(4, 2):load_state_dict(roundtrip(nn.Linear(3, 2):state_dict())) end)
E('a bias-less checkpoint loaded into a Linear with bias',
  'load_state_dict: missing keys {bias} and unexpected keys {}, got 1 entries',
  function()
    local sd = roundtrip(nn.Linear(4, 2, {bias = false}):state_dict())
    return nn.Linear(4, 2):load_state_dict(sd)
  end)

-- ---- GAN losses --------------------------------------------------------------------------
local kinds = "'minimax', 'nonsaturating', 'lsgan', 'hinge', 'wgan' or 'relativistic'"
E('d_loss with an unknown kind', "d_loss: kind must be " .. kinds .. ", got 'bogus'",
  function() return gan.d_loss('bogus', img(4, 1), img(4, 1)) end)
E('d_loss with a number for the kind', 'd_loss: kind must be ' .. kinds .. ', got number',
  function() return gan.d_loss(3, img(4, 1), img(4, 1)) end)
E('g_loss with an unknown kind', "g_loss: kind must be " .. kinds .. ", got 'bogus'",
  function() return gan.g_loss('bogus', img(4, 1)) end)
E('relativistic g_loss with mismatched shapes',
  "g_loss: 'relativistic' pairs fake_out and real_out by index, so their shapes must match, "
    .. 'got {4,1} and {3,1}',
  function() return gan.g_loss('relativistic', img(4, 1), img(3, 1)) end)

-- ---- data and images -----------------------------------------------------------------------
E('ImageFolder of a missing folder',
  "data.ImageFolder: folder '/nonexistent/dir' does not exist, got no such path",
  function() return duel.data.ImageFolder('/nonexistent/dir', {size = 8}) end)
E('Unaligned with a missing folder',
  "data.Unaligned: folder '/nonexistent/a' does not exist, got no such path",
  function() return duel.data.Unaligned('/nonexistent/a', '/nonexistent/b', {size = 8}) end)
E('Aligned of a missing folder',
  "data.Aligned: folder '/nonexistent/ab' does not exist, got no such path",
  function() return duel.data.Aligned('/nonexistent/ab', {size = 8}) end)
E('read_idx of a missing file',
  "idx_load: cannot open '/nonexistent/x.idx.gz', got No such file or directory",
  function() return duel.data.read_idx('/nonexistent/x.idx.gz') end)
E('toy2d with an unknown mixture',
  "data.toy2d: unknown mixture (expected 'ring8' or 'grid25'), got 'hexagon'",
  function() return duel.data.toy2d('hexagon', 10) end)
E('image.save to .gif',
  "image.save: '/nonexistent/x.gif' has an unknown image extension (expected .png, .jpg, .jpeg, "
    .. ".bmp or .tga), got '.gif'",
  function() return duel.image.save('/nonexistent/x.gif', img(3, 4, 4)) end)
E('image.save without an extension',
  "image.save: '/nonexistent/x' has an unknown image extension (expected .png, .jpg, .jpeg, "
    .. ".bmp or .tga), got ''",
  function() return duel.image.save('/nonexistent/x', img(3, 4, 4)) end)
E('image.load of a missing file',
  "image.load: cannot open '/nonexistent/x.png', got No such file or directory",
  function() return duel.image.load('/nonexistent/x.png') end)

-- ---- F ops with bad options ----------------------------------------------------------------
E('F.pad with an unknown mode',
  "pad: unknown mode 'wrap', expected 'zero', 'reflect' or 'replicate'",
  function() return F.pad(img(1, 1, 4, 4), {1, 1, 1, 1}, {mode = 'wrap'}) end)
E('F.pad reflecting by the whole size',
  'pad: reflect padding must be smaller than the padded dimension (size 4), got 4',
  function() return F.pad(img(1, 1, 4, 4), {4, 4, 4, 4}, {mode = 'reflect'}) end)
E('F.pad with 3 pads', 'pad: padding must have 4 entries {left,right,top,bottom}, got 3',
  function() return F.pad(img(1, 1, 4, 4), {1, 1, 1}) end)
E('F.upsample with an unknown mode',
  "upsample: unknown mode 'cubic', expected 'nearest' or 'bilinear'",
  function() return F.upsample(img(1, 1, 4, 4), {scale = 2, mode = 'cubic'}) end)
E('F.upsample with a NaN scale', 'upsample: scale must be a positive whole number, got nan',
  function() return F.upsample(img(1, 1, 4, 4), {scale = nan}) end)
E('F.conv2d with stride 0', 'conv2d: stride must be a positive whole number, got 0',
  function() return F.conv2d(img(1, 1, 4, 4), img(1, 1, 3, 3), nil, {stride = 0}) end)
E('F.conv2d with dilation -1', 'conv2d: dilation must be a positive whole number, got -1',
  function() return F.conv2d(img(1, 1, 4, 4), img(1, 1, 3, 3), nil, {dilation = -1}) end)
E('F.conv2d with a kernel larger than the input',
  'conv2d: padded input is smaller than the dilated kernel {3,3} (padding {0,0}, dilation {1,1}), '
    .. 'got input {1,1,2,2}',
  function() return F.conv2d(img(1, 1, 2, 2), img(1, 1, 3, 3)) end)
E('F.conv2d with a misspelt option',
  "conv2d: unknown option (expected stride, padding, dilation, groups), got 'strid'",
  function() return F.conv2d(img(1, 1, 4, 4), img(1, 1, 3, 3), nil, {strid = 2}) end)
E('F.max_pool2d with kernel 0', 'max_pool2d: kernel_size must be a positive whole number, got 0',
  function() return F.max_pool2d(img(1, 1, 4, 4), 0) end)
E('F.linear with a mismatched weight',
  "linear: input's last dimension must be 4 (weight {4,4}), got input {2,3}",
  function() return F.linear(img(2, 3), img(4, 4)) end)
E('F.cross_entropy with a label past the classes', 'cross_entropy: label out of range 1..3, got 4',
  function() return F.cross_entropy(img(2, 3), duel.tensor{1, 4}) end)
E('F.dropout with p 2', 'dropout: probability must be in [0, 1], got 2',
  function() return F.dropout(img(3), 2) end)
E('F.leaky_relu with a NaN slope', 'leaky_relu: negative_slope must be finite, got -nan',
  function() return F.leaky_relu(img(3), nan) end)
E('F.mse with mismatched shapes', 'mse: input and target shapes must match, got {3} and {4}',
  function() return F.mse(img(3), img(4)) end)
E('F.layer_norm over a shape that is not trailing',
  "layer_norm: shape must equal the input's trailing dimensions (input {2,3}), got {4}",
  function() return F.layer_norm(img(2, 3), {4}) end)
E('F.one_hot with an index past n', 'one_hot: index out of range 1..4, got 5',
  function() return F.one_hot(duel.tensor{1, 5}, 4) end)

for _, m in ipairs(misuses) do
  T.case(m.name, function() T.raises_exact(m.msg, m.fn) end)
end

T.case('at least 40 distinct misuses, each "<op>: ..." naming what it got or expected', function()
  T.ok(#misuses >= 40, ('only %d misuses'):format(#misuses))
  local seen = {}
  for _, m in ipairs(misuses) do
    T.ok(not seen[m.msg], 'duplicate message: ' .. m.msg)
    seen[m.msg] = true
    local named = m.msg:find('^[%w_.]+[^:]*: ') ~= nil
    T.ok(named and (m.msg:find('got', 1, true) or m.msg:find('expected', 1, true)), m.msg)
  end
end)

-- every misuse 5 times under pcall: the same message each time, and no tensor memory left behind
T.case('every misuse in a loop: same message, no crash, no leak', function()
  collectgarbage()
  collectgarbage()
  local before = duel._core.live_bytes()
  for _, m in ipairs(misuses) do
    for i = 1, 5 do
      local ok, err = pcall(m.fn)
      if ok or err ~= m.msg then
        error(('%s, iteration %d: got %s'):format(m.name, i, ok and 'no error' or tostring(err)))
      end
    end
  end
  collectgarbage()
  collectgarbage()
  local after = duel._core.live_bytes()
  T.ok(after <= before, ('live bytes grew over the misuse loop: %d -> %d'):format(before, after))
  T.ok(duel.is_grad_enabled(), 'grad mode restored')
  T.close(duel.ones(2, 2):matmul(duel.ones(2, 2)), {{2, 2}, {2, 2}})
end)
