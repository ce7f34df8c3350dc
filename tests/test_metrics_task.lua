-- Task metrics (duel.metrics.psnr, class_accuracy, fashion_labels and experiments/i2i_eval.lua)
-- on inputs with known answers: a known noise level, the reference classifier on its own real
-- test images, outputs equal to the targets.
local T = require 'tests.harness'
local duel = require 'duel'
local M = duel.metrics

local function near(got, want, tol, what)
  T.ok(math.abs(got - want) <= tol,
    ('%s: got %.10g, want %.10g (tol %g)'):format(what, got, want, tol))
end

T.case('psnr of known noise levels', function()
  local a = duel.zeros(4, 1, 8, 8)
  -- an error of 0.1 on the [-1,1] scale is 0.05 on [0,1]: 10 log10(1 / 0.0025)
  near(M.psnr(a, a + 0.1), 10 * math.log10(400), 1e-4, 'constant 0.1')
  near(M.psnr(a, a + 0.1, {range = 1}), 20, 1e-4, 'range 1')
  -- per image, then averaged: errors 0.1 and 0.2 give 26.02 and 20.00 dB
  local b = duel.cat({duel.full({1, 1, 8, 8}, 0.1), duel.full({1, 1, 8, 8}, 0.2)}, 1)
  near(M.psnr(duel.zeros(2, 1, 8, 8), b), (10 * math.log10(400) + 10 * math.log10(100)) / 2,
    1e-4, 'mean of per-image PSNRs')
  T.eq(M.psnr(a, a), math.huge)
  -- Gaussian noise of std s on [0,1]: PSNR ~ -20 log10(s)
  duel.manual_seed(3)
  local x = duel.rand(16, 1, 32, 32)
  near(M.psnr(x, x + duel.randn(16, 1, 32, 32) * 0.1, {range = 1}), 20, 0.1, 'noise std 0.1')
  T.raises('same shape', function() M.psnr(a, duel.zeros(4, 1, 8, 9)) end)
  T.raises('range must be a positive number', function() M.psnr(a, a, {range = 0}) end)
end)

T.case('class_accuracy and fashion_labels on real test images', function()
  local t = duel.data.fashion_mnist{split = 'test', pad_to = 32, limit = 400}
  local clf = M.classifier()
  local want = t.labels:totable()
  local got = M.fashion_labels(t.images:narrow(1, 201, 100))
  for i = 1, 100 do T.eq(got[i], want[200 + i]) end
  local acc = M.class_accuracy(clf, t.images, t.labels)
  T.ok(acc > 0.9, 'classifier accuracy on its own test images ' .. acc)
  -- one class number for all: the Sneakers among them
  local idx = {}
  for i = 1, #want do if want[i] == 8 then idx[#idx + 1] = i end end
  local sneakers = t.images:index_select(1, duel.tensor(idx))
  T.ok(M.class_accuracy(clf, sneakers, 8) > 0.9, 'sneakers')
  T.ok(M.class_accuracy(clf, sneakers, 10) < 0.1, 'sneakers as ankle boots')
  T.raises('not a Fashion-MNIST test image', function() M.fashion_labels(duel.rand(2, 1, 32, 32)) end)
  T.raises('labels must be', function() M.class_accuracy(clf, sneakers, {1, 2}) end)
end)

T.case('i2i_eval: identity translations and outputs equal to targets', function()
  local E = require 'experiments.i2i_eval'
  local t = duel.data.fashion_mnist{split = 'test', pad_to = 32, limit = 600}
  local lab = t.labels:totable()
  local A, B = {}, {}
  for i = 1, #lab do
    if lab[i] == 8 then A[#A + 1] = i elseif lab[i] == 10 then B[#B + 1] = i end
  end
  A, B = t.images:index_select(1, duel.tensor(A)), t.images:index_select(1, duel.tensor(B))
  local o = {channels = 1, crop_size = 32, data = '', domain_a = 'Sneaker', domain_b = 'Ankle boot'}
  -- a "translation" that returns real images of the other domain scores like the real ones
  local r = E.cyclegan_metrics({A = A, fake_B = B, rec_A = A, B = B, fake_A = A, rec_B = B}, o)
  T.eq(r.cycle_l1_A, 0); T.eq(r.cycle_l1_B, 0)
  T.ok(r.acc_A2B > 0.9 and r.acc_B2A > 0.9, ('%g %g'):format(r.acc_A2B, r.acc_B2A))
  T.eq(r.acc_A2B, r.acc_real_B); T.eq(r.acc_B2A, r.acc_real_A)
  -- the identity as A -> B: nothing is an ankle boot
  r = E.cyclegan_metrics({A = A, fake_B = A, rec_A = A, B = B, fake_A = B, rec_B = B}, o)
  T.ok(r.acc_A2B < 0.1, 'identity A->B ' .. r.acc_A2B)
  -- pix2pix with outputs equal to the targets: ratio 1, PSNR infinite; on --data: pixels only
  local x = t.images:narrow(1, 1, 50)
  local p = E.pix2pix_metrics(x, x, x, {channels = 1, crop_size = 32, data = ''})
  T.eq(p.acc_ratio, 1); T.eq(p.agreement, 1); T.eq(p.l1, 0); T.eq(p.psnr, math.huge)
  T.ok(p.acc_target > 0.85, 'target accuracy ' .. p.acc_target)
  p = E.pix2pix_metrics(x, x * 0, x, {channels = 1, crop_size = 32, data = 'somewhere'})
  T.eq(p.acc_ratio, nil)
  near(p.l1, x:abs():mean():item(), 1e-6, 'l1')
end)
