-- Task metrics for image-to-image translation, exported through duel.metrics:
--   psnr(a, b [, {range=2}])             mean over images of 10 log10(range^2 / MSE_i)
--   class_accuracy(clf, images, labels)  fraction of images clf:predict assigns to labels
--                                        (one class number for all, or a {N} tensor / list)
--   fashion_labels(images [, {split='test'}])   the true class of each image, found by matching
--                                        it exactly to its Fashion-MNIST image
-- CycleGAN's translation accuracy is class_accuracy(clf, G_AB(test_A), class_B); pix2pix's
-- classifier accuracy on outputs is class_accuracy(clf, G(x), fashion_labels(targets)).
local core = require 'duel.core'

local T = {}

local tensor_mt = core._core.metatable
local function fail(fmt, ...) error(fmt:format(...), 0) end
local function is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == tensor_mt end
local function shape(x) return '{' .. table.concat(x:size(), ',') .. '}' end

-- Peak signal-to-noise ratio per image, then averaged (pix2pix papers' convention). range is the
-- span of the pixel values: 2 for [-1,1] images (so the result equals PSNR on the [0,1] scale),
-- 1 for [0,1], 255 for bytes. An image with MSE 0 scores +inf, and so does the mean.
function T.psnr(a, b, opts)
  local op = 'metrics.psnr'
  if not is_tensor(a) or not is_tensor(b) then
    fail('%s: a and b must be {N,...} tensors, got %s and %s', op, type(a), type(b))
  end
  if a:dim() < 2 or a:numel() == 0 then fail('%s: a must be an {N,...} tensor, got %s', op, shape(a)) end
  if table.concat(a:size(), ',') ~= table.concat(b:size(), ',') then
    fail('%s: a and b must have the same shape, got %s and %s', op, shape(a), shape(b))
  end
  local range = opts and opts.range or 2
  if type(range) ~= 'number' or not (range > 0) then
    fail('%s: range must be a positive number, got %s', op, tostring(range))
  end
  local n = a:size(1)
  local mse = (a:detach() - b:detach()):pow(2):contiguous():view(n, -1):mean(2):totable()
  local total = 0
  for i = 1, n do
    local m = mse[i]
    if m ~= m then fail('%s: images must be finite, got NaN in image %d', op, i) end
    total = total + 10 * math.log10(range * range / m)
  end
  return total / n
end

local function label_list(op, labels, n)
  if type(labels) == 'number' then
    local t = {}
    for i = 1, n do t[i] = labels end
    return t
  end
  local t = is_tensor(labels) and labels:detach():contiguous():view(-1):totable() or labels
  if type(t) ~= 'table' or #t ~= n then
    fail('%s: labels must be a class number or %d labels, got %s', op, n,
      type(t) == 'table' and #t or type(t))
  end
  return t
end

function T.class_accuracy(clf, images, labels)
  local op = 'metrics.class_accuracy'
  if type(clf) ~= 'table' or type(clf.predict) ~= 'function' then
    fail('%s: clf must be a classifier (duel.metrics.classifier()), got %s', op, type(clf))
  end
  if not is_tensor(images) or images:dim() < 1 or images:size(1) < 1 then
    fail('%s: images must be a non-empty {N,...} tensor, got %s', op, type(images))
  end
  local n = images:size(1)
  local want = label_list(op, labels, n)
  local pred = clf:predict(images):totable()
  local right = 0
  for i = 1, n do if pred[i] == want[i] then right = right + 1 end end
  return right / n
end

-- images {N,1,S,S} in [-1,1] (S = 28 or the pad_to they were made with): each row's nearest
-- split image (squared distance by one sgemm per block) must be the same picture up to PNG
-- rounding (mean squared difference below 1e-4); its label is returned ({N} Lua list)
local split_cache = {}
function T.fashion_labels(images, opts)
  local op = 'metrics.fashion_labels'
  local split = opts and opts.split or 'test'
  if not is_tensor(images) or images:dim() ~= 4 or images:size(2) ~= 1
     or images:size(3) ~= images:size(4) or images:size(3) < 28 then
    fail('%s: images must be an {N,1,S,S} tensor with S >= 28, got %s', op,
      is_tensor(images) and shape(images) or type(images))
  end
  local s = images:size(3)
  local key = split .. s
  if not split_cache[key] then
    local ds = require('duel.data').fashion_mnist{split = split, pad_to = s > 28 and s or nil}
    local flat = ds.images:contiguous():view(ds.images:size(1), -1)
    split_cache[key] = {x = flat, sq = (flat * flat):sum(2):view(1, -1), labels = ds.labels}
  end
  local ref = split_cache[key]
  local labels = ref.labels:totable()
  local q = images:detach():contiguous():view(images:size(1), -1)
  local d = s * s
  local out = {}
  for i0 = 1, q:size(1), 500 do
    local rows = math.min(500, q:size(1) - i0 + 1)
    local x = q:narrow(1, i0, rows)
    local dist = (x * x):sum(2, true) + ref.sq - x:matmul(ref.x:t()) * 2
    local best = dist:min(2):totable()
    local idx = (-dist):argmax(2):view(-1):totable()
    for r = 1, rows do
      local m = best[r] / d
      if m > 1e-4 then
        fail('%s: image %d is not a Fashion-MNIST %s image, got a mean squared distance of %.3g',
          op, i0 + r - 1, split, m)
      end
      out[i0 + r - 1] = labels[idx[r]]
    end
  end
  return out
end

return T
