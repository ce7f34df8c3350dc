-- Trains the reference Fashion-MNIST classifier that duel.metrics.classifier() loads (its
-- penultimate features drive the Frechet distance, precision/recall and the classifier score).
--   luajit experiments/classifier.lua                     train, test, write the weights file
--   luajit experiments/classifier.lua --out /tmp/c.safetensors --epochs 1
-- Three conv3x3-BN-ReLU-maxpool stages (widths c1, c2, c3) and a hidden Linear-BN-ReLU layer
-- (the features), dropout, 10 logits; Adam with a step decay; random horizontal flips.
local duel = require 'duel'
local common = require 'experiments.common'
local mc = require 'duel.metrics_classifier'
local F = duel.F

local defaults = {
  c1 = 16, c2 = 32, c3 = 64, hidden = 128, dropout = 0.2, epochs = 5, batch = 128, lr = 2e-3,
  decay_from = 3, decay = 0.3, flip = true, seed = 1, threads = 2, out = mc.WEIGHTS,
  evaluate = false,
}
local help = {
  c1 = 'conv widths', c2 = '', c3 = '', hidden = 'feature width (the penultimate layer)',
  dropout = 'before the last layer', epochs = 'passes over the 60,000 training images',
  batch = 'minibatch size', lr = 'Adam learning rate',
  decay_from = 'first epoch whose rate is multiplied by decay (then once more per epoch)',
  decay = 'step-decay factor', flip = 'random horizontal flips of half of each batch',
  seed = 'RNG seed', threads = 'CPU threads', out = 'weights file to write',
  evaluate = 'no training: load --out, print its test accuracy and the real-vs-real Frechet floor',
}
local o = common.parse('classifier', defaults, help, arg)
io.stdout:setvbuf('line') -- progress shows up in logs as it happens
duel.manual_seed(o.seed)
duel.set_num_threads(o.threads)

local train = duel.data.fashion_mnist{split = 'train'}
local test = duel.data.fashion_mnist{split = 'test'}

-- the floor of the Frechet distance: 10,000 random training images (seeded) vs the test set
if o.evaluate then
  local clf = mc.load(o.out)
  local acc = clf:predict(test.images):eq(test.labels):sum():item() / test.images:size(1)
  print(('test accuracy %.4f (10,000 images)'):format(acc))
  duel.manual_seed(o.seed)
  local pick, n, u = {}, train.images:size(1), duel.rand(10000):totable()
  for i = 1, n do pick[i] = i end
  for i = 1, 10000 do -- partial Fisher-Yates with duel's RNG
    local j = math.min(n, i + math.floor(u[i] * (n - i + 1)))
    pick[i], pick[j] = pick[j], pick[i]
  end
  for i = n, 10001, -1 do pick[i] = nil end
  local sample = train.images:index_select(1, duel.tensor(pick))
  local t0 = duel.clock()
  local fd = duel.metrics.frechet(clf:features(sample), clf:features(test.images))
  print(('Frechet distance, train sample (10,000, seed %d) vs test (10,000): %.4f  (%.1f s)')
    :format(o.seed, fd, duel.clock() - t0))
  os.exit(0)
end
local arch = {c1 = o.c1, c2 = o.c2, c3 = o.c3, hidden = o.hidden, dropout = o.dropout}
local body, head = mc.build(arch)
local params = {}
for _, m in ipairs{body, head} do
  for _, p in ipairs(m:parameters()) do params[#params + 1] = p end
end
local nparams = 0
for _, p in ipairs(params) do nparams = nparams + p:numel() end
local opt = duel.optim.Adam(params, {lr = o.lr})
local loader = duel.data.DataLoader({train.images, train.labels},
                                    {batch = o.batch, shuffle = true, seed = o.seed})
local steps = o.quick and 20 or math.huge
local rev = {}
for i = 1, 28 do rev[i] = 29 - i end
local reversed = duel.tensor(rev) -- column order 28..1

-- flip the second half of a batch left-right (Fashion-MNIST classes are mirror-symmetric)
local function augment(x)
  if not o.flip then return x end
  local n = x:size(1)
  local h = math.floor(n / 2)
  if h == 0 then return x end
  local flipped = x:narrow(1, n - h + 1, h):index_select(4, reversed)
  return duel.cat({x:narrow(1, 1, n - h), flipped}, 1)
end

local function accuracy(images, labels)
  body:eval(); head:eval()
  local correct = duel.no_grad(function()
    local c = 0
    for i = 1, images:size(1), 1000 do
      local n = math.min(1000, images:size(1) - i + 1)
      local pred = head(body(images:narrow(1, i, n))):argmax(2):view(-1)
      c = c + pred:eq(labels:narrow(1, i, n)):sum():item()
    end
    return c
  end)
  body:train(); head:train()
  return correct / images:size(1)
end

print(('classifier: widths %d-%d-%d, %d features, %d parameters, %d threads'):format(
  o.c1, o.c2, o.c3, o.hidden, nparams, o.threads))
local t0 = duel.clock()
local step = 0
for epoch = 1, o.epochs do
  local lr = o.lr * o.decay ^ math.max(0, epoch - o.decay_from + 1)
  opt.lr = lr
  loader:set_epoch(epoch)
  local sum, count = 0, 0
  for b in loader:iter() do
    opt:zero_grad()
    local loss = F.cross_entropy(head(body(augment(b[1]))), b[2])
    loss:backward()
    opt:step()
    sum, count, step = sum + loss:item(), count + 1, step + 1
    if step >= steps then break end
  end
  print(('epoch %d  lr %.2e  train loss %.4f  test accuracy %.4f  %.0f s'):format(
    epoch, lr, sum / count, accuracy(test.images, test.labels), duel.clock() - t0))
  if step >= steps then break end
end
local acc = accuracy(test.images, test.labels)
print(('final test accuracy %.4f (10,000 images), %.0f s'):format(acc, duel.clock() - t0))
if o.quick and o.out == mc.WEIGHTS then -- a smoke test never replaces the committed weights
  print('quick run: weights not written (pass --out to write them)')
  os.exit(0)
end
duel.save(o.out, {body = body, head = head, arch = arch, test_accuracy = acc,
                  epochs = o.epochs, seed = o.seed},
          {metadata = {trained_by = 'experiments/classifier.lua', data = 'Fashion-MNIST train'}})
print('wrote ' .. o.out)
