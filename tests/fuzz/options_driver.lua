-- The entry points fuzz_options.c calls (and tests/test_fuzz_regressions.lua replays): sets
-- the globals CALL(i, ...), which runs entry i (wrapped) under pcall, and MK(shape, rg, v),
-- which builds a small tensor. Run from the repository root (duel.lua there finds lua/).
local duel = require 'duel'
local F, nn, optim, gan = duel.F, duel.nn, duel.optim, duel.gan
local E = {}
for _, k in ipairs{'linear','conv2d','conv_transpose2d','avg_pool2d','max_pool2d','pad',
    'upsample','batch_norm','instance_norm','layer_norm','adain','dropout','leaky_relu',
    'elu','softplus','softmax','log_softmax','mse','l1','bce_with_logits','cross_entropy',
    'embedding','one_hot','flatten'} do
  if F[k] then E[#E + 1] = F[k] end
end
for _, k in ipairs{'Linear','Conv2d','ConvTranspose2d','BatchNorm1d','BatchNorm2d',
    'InstanceNorm2d','LayerNorm','Embedding','ConditionalBatchNorm2d','AdaIN','LeakyReLU',
    'Dropout','ReflectionPad2d','ZeroPad2d','Upsample','Flatten','View','MaxPool2d',
    'AvgPool2d'} do
  local ctor = nn[k]
  if ctor then
    E[#E + 1] = ctor
    E[#E + 1] = function(a, b, c, x, y) return ctor(a, b, c)(x, y) end
  end
end
for _, k in ipairs{'SGD','Adam','AdamW','RMSprop'} do
  E[#E + 1] = function(opts, p, lr)
    local o = optim[k](p, opts)
    if type(p) == 'table' then for _, t in ipairs(p) do
      if type(t) == 'userdata' and t.requires_grad then t:sum():backward() end end end
    if lr ~= nil then o.lr = lr end
    o:step()
  end
end
E[#E + 1] = optim.clip_grad_norm_
E[#E + 1] = optim.clip_weights_
E[#E + 1] = gan.d_loss
E[#E + 1] = gan.g_loss
function CALL(i, ...) return pcall(E[(i % #E) + 1], ...) end
function MK(shape, rg, v)
  local ok, t = pcall(duel.randn, shape)
  if not ok then return nil end
  if v then t:fill_(v) end
  if rg then t.requires_grad = true end
  return t
end
