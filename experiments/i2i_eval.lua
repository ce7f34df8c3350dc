-- experiments/i2i_eval.lua: the task metrics of cyclegan.lua and pix2pix.lua (issue 7, item 3),
-- shared by the scripts' end-of-run evaluation and experiments/evaluate.lua (a finished run's
-- checkpoint). The classifier metrics need the default Fashion-MNIST tasks (one channel, 28 or
-- 32 pixels, no --data); on other data only the pixel metrics are computed.
local duel = require 'duel'
local M, D, F = duel.metrics, duel.data, duel.F

local E = {}

local function fashion_task(o)
  return (o.data or '') == '' and o.channels == 1 and (o.crop_size == 28 or o.crop_size == 32)
end

local function class_of(name)
  for i, n in ipairs(D.fashion_mnist_classes) do if n == name then return i end end
  return tonumber(name)
end

-- the data folders, as i2i.task names them
function E.cyclegan_root(o)
  if (o.data or '') ~= '' then return o.data end
  return (('%s/data/fashion-%s2%s'):format(o.out, o.domain_a, o.domain_b)):gsub('[^%w/%._-]', '_')
end
function E.pix2pix_root(o)
  if (o.data or '') ~= '' then return o.data end
  return ((o.out .. '/data/fashion-edges'):gsub('[^%w/%._-]', '_'))
end

-- t = {A=, fake_B=, rec_A=, B=, fake_A=, rec_B=} (whole test domains) ->
-- {cycle_l1_A/B, n_A/B, and on the Fashion task acc_A2B/B2A (translations classified as the
-- target domain's class) and acc_real_A/B (the real test images classified as their own)}
function E.cyclegan_metrics(t, o)
  local r = {cycle_l1_A = F.l1(t.rec_A, t.A):item(), cycle_l1_B = F.l1(t.rec_B, t.B):item(),
             n_A = t.A:size(1), n_B = t.B:size(1)}
  if fashion_task(o) then
    local clf = M.classifier()
    local ca, cb = class_of(o.domain_a), class_of(o.domain_b)
    r.acc_A2B = M.class_accuracy(clf, t.fake_B, cb)
    r.acc_B2A = M.class_accuracy(clf, t.fake_A, ca)
    r.acc_real_A = M.class_accuracy(clf, t.A, ca)
    r.acc_real_B = M.class_accuracy(clf, t.B, cb)
  end
  return r
end

local function test_loader(dir, o)
  return D.DataLoader(D.ImageFolder(dir, {size = o.crop_size, channels = o.channels,
    labels = false}), {batch = 64, shuffle = false, drop_last = false})
end

-- translate both test domains with G_A (A -> B) and G_B (B -> A), then cyclegan_metrics
function E.cyclegan_translate(G_A, G_B, root, o)
  local t = {}
  duel.no_grad(function()
    for _, d in ipairs{{'A', 'B', G_A, G_B}, {'B', 'A', G_B, G_A}} do
      local x, y, r = {}, {}, {}
      for b in test_loader(root .. '/test' .. d[1], o):iter() do
        x[#x + 1], y[#y + 1] = b.image, d[3](b.image)
        r[#r + 1] = d[4](y[#y])
      end
      t[d[1]], t['fake_' .. d[2]], t['rec_' .. d[1]] = duel.cat(x, 1), duel.cat(y, 1), duel.cat(r, 1)
    end
  end)
  return t
end

function E.cyclegan_scores(G_A, G_B, root, o)
  return E.cyclegan_metrics(E.cyclegan_translate(G_A, G_B, root, o), o)
end

-- x inputs, y outputs, t targets (whole test set) -> {n, l1, psnr (per image on the [0,1]
-- scale, averaged) and on the Fashion task acc_output, acc_target (classifier accuracy against
-- the targets' true labels), acc_ratio = acc_output / acc_target, agreement (same prediction on
-- output and target)}
function E.pix2pix_metrics(x, y, t, o)
  local r = {n = x:size(1), l1 = F.l1(y, t):item(), psnr = M.psnr(y, t, {range = 2})}
  if fashion_task(o) and (o.direction or 'AtoB') == 'AtoB' then
    local clf = M.classifier()
    local labels = M.fashion_labels(t)
    r.acc_output = M.class_accuracy(clf, y, labels)
    r.acc_target = M.class_accuracy(clf, t, labels)
    r.acc_ratio = r.acc_output / r.acc_target
    r.agreement = M.class_accuracy(clf, y, clf:predict(t))
  end
  return r
end

-- G in the mode the script samples in (training mode unless --test_dropout false)
function E.pix2pix_translate(G, root, o)
  local ds = D.Aligned(root, {phase = 'test', crop_size = o.crop_size, channels = o.channels,
    direction = o.direction})
  local loader = D.DataLoader(ds, {batch = 64, shuffle = false, drop_last = false})
  if o.test_dropout == false then G:eval() end
  local x, y, t = {}, {}, {}
  duel.no_grad(function()
    for b in loader:iter() do x[#x + 1], y[#y + 1], t[#t + 1] = b.A, G(b.A), b.B end
  end)
  G:train()
  return duel.cat(x, 1), duel.cat(y, 1), duel.cat(t, 1)
end

function E.pix2pix_scores(G, root, o)
  local x, y, t = E.pix2pix_translate(G, root, o)
  return E.pix2pix_metrics(x, y, t, o)
end

return E
