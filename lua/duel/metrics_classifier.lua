-- The reference Fashion-MNIST classifier behind duel.metrics' feature metrics (Frechet distance,
-- precision/recall, classifier score, class coverage, translation accuracy).
--   local clf = duel.metrics.classifier()   -- loads the committed weights; no training
--   clf:features(x) --> {N,F} penultimate features   clf:probs(x) --> {N,10}
--   clf:predict(x) --> {N} 1-based classes           clf:logits(x) --> {N,10}
-- x: {N,1,28,28} or {N,1,32,32} in [-1,1] (the Fashion-MNIST range). 32x32 inputs are centre-
-- cropped to 28x28: duel.data.fashion_mnist{pad_to=32} pads 2 background pixels on every side,
-- so the crop gives back exactly the image the network was trained on.
-- The weights were trained by experiments/classifier.lua; the architecture is read back from the
-- numbers recorded in the file (widths), never from code in it.
local core = require 'duel.core'
local nn = require 'duel.nn'
local checkpoint = require 'duel.checkpoint'

local M = {}

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- the weights file sits beside this module (installed with it by `make install` / LuaRocks)
local here = debug.getinfo(1, 'S').source:match('^@(.*)metrics_classifier%.lua$') or './'
M.WEIGHTS = here .. 'metrics_data/fashion_classifier.safetensors'

-- widths {c1, c2, c3, hidden}: three conv3x3-BN-ReLU-maxpool2 stages (28 -> 14 -> 7 -> 3), then
-- a hidden Linear-BN-ReLU layer whose output is the feature vector, then dropout and 10 logits
function M.build(arch)
  local c1, c2, c3, h = arch.c1, arch.c2, arch.c3, arch.hidden
  local body = nn.Sequential{
    nn.Conv2d(1, c1, 3, {padding = 1}), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(c1, c2, 3, {padding = 1}), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(c2, c3, 3, {padding = 1}), nn.BatchNorm2d(c3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(c3 * 9, h), nn.BatchNorm1d(h), nn.ReLU(),
  }
  local head = nn.Sequential{nn.Dropout(arch.dropout or 0), nn.Linear(h, 10)}
  return body, head
end

local Classifier = {}
Classifier.__index = Classifier

local tensor_mt = core._core.metatable

-- x in the accepted shapes -> contiguous {N,1,28,28}
local function prepare(op, x)
  if type(x) ~= 'userdata' or getmetatable(x) ~= tensor_mt then
    fail('%s: x must be an {N,1,28,28} or {N,1,32,32} tensor, got %s', op, type(x))
  end
  local s = x:size()
  if #s ~= 4 or s[2] ~= 1 or s[3] ~= s[4] or (s[3] ~= 28 and s[3] ~= 32) or s[1] < 1 then
    fail('%s: x must be an {N,1,28,28} or {N,1,32,32} tensor, got {%s}', op, table.concat(s, ','))
  end
  x = x:detach()
  if s[3] == 32 then x = x:narrow(3, 3, 28):narrow(4, 3, 28) end
  return x:contiguous()
end

-- run fn on batches of at most 500 images, no gradients, and concatenate along dim 1
local function batched(self, op, x, fn)
  x = prepare(op, x)
  local out = {}
  core._core.set_grad_enabled(false)
  local ok, err = pcall(function()
    for _, piece in ipairs(x:split(500, 1)) do out[#out + 1] = fn(self, piece) end
  end)
  core._core.set_grad_enabled(true)
  if not ok then error(err, 0) end
  return #out == 1 and out[1] or core.cat(out, 1)
end

function Classifier:features(x)
  return batched(self, 'classifier:features', x, function(s, b) return s.body(b) end)
end

function Classifier:logits(x)
  return batched(self, 'classifier:logits', x, function(s, b) return s.head(s.body(b)) end)
end

function Classifier:probs(x)
  return batched(self, 'classifier:probs', x,
    function(s, b) return s.head(s.body(b)):softmax(2) end)
end

-- 1-based class indices as a float tensor {N}
function Classifier:predict(x)
  return self:logits(x):argmax(2):view(-1)
end

local cache

-- classifier([path]) -> the reference classifier in eval mode (the default file is cached)
function M.load(path)
  if path == nil and cache then return cache end
  local file = path or M.WEIGHTS
  local ok, ck = pcall(checkpoint.load, file)
  if not ok then fail('metrics.classifier: cannot load the weights: %s', tostring(ck)) end
  local arch = type(ck) == 'table' and ck.arch
  if type(arch) ~= 'table' then
    fail("metrics.classifier: '%s' records no architecture, got %s", file, type(arch))
  end
  for _, k in ipairs{'c1', 'c2', 'c3', 'hidden'} do
    local v = arch[k]
    if type(v) ~= 'number' or v < 1 or v > 4096 or v ~= math.floor(v) then
      fail("metrics.classifier: architecture width %s must be a whole number in 1..4096, got %s",
        k, tostring(v))
    end
  end
  local body, head = M.build(arch)
  body:load_state_dict(ck.body)
  head:load_state_dict(ck.head)
  body:eval(); head:eval()
  local self = setmetatable({body = body, head = head, arch = arch,
                             test_accuracy = ck.test_accuracy, path = file}, Classifier)
  if path == nil then cache = self end
  return self
end

return M
