-- duel.metrics feature/pixel metrics on inputs with known answers: Frechet distance (closed
-- forms), precision/recall, classifier score, class coverage, sliced Wasserstein, Hungarian
-- matching, cluster accuracy; and the committed reference classifier (no training here).
local T = require 'tests.harness'
local duel = require 'duel'
local M = duel.metrics

local function near(got, want, tol, what)
  T.ok(math.abs(got - want) <= tol,
    ('%s: got %.10g, want %.10g (tol %g)'):format(what, got, want, tol))
end

T.case('jacobi eigenvalues of symmetric matrices', function()
  local w = M._symmetric_eigenvalues{{2, 1, 0}, {1, 2, 0}, {0, 0, 5}}
  near(w[1], 1, 1e-12, 'w1'); near(w[2], 3, 1e-12, 'w2'); near(w[3], 5, 1e-12, 'w3')
  -- R diag(1,4,9,16) R^T with R a product of rotations: the spectrum comes back
  local c, s = math.cos(0.7), math.sin(0.7)
  local R = {{c, -s, 0, 0}, {s, c, 0, 0}, {0, 0, c, s}, {0, 0, -s, c}}
  local lam, A = {1, 4, 9, 16}, {}
  for i = 1, 4 do
    A[i] = {}
    for j = 1, 4 do
      local acc = 0
      for k = 1, 4 do acc = acc + R[i][k] * lam[k] * R[j][k] end
      A[i][j] = acc
    end
  end
  A[1][3], A[3][1] = 0.5, 0.5 -- couple the blocks: the trace must survive
  w = M._symmetric_eigenvalues(A)
  near(w[1] + w[2] + w[3] + w[4], 30, 1e-10, 'trace')
  T.ok(w[1] < w[2] and w[3] < w[4], 'sorted distinct eigenvalues')
end)

T.case('frechet_from_moments: diagonal and non-commuting closed forms', function()
  -- diagonal: ||mu1-mu2||^2 + sum (sqrt s1 - sqrt s2)^2 = 1 + 4 + (2-1)^2 + (3-1)^2 = 10
  near(M.frechet_from_moments({0, 0}, {{4, 0}, {0, 9}}, {1, 2}, {{1, 0}, {0, 1}}), 10, 1e-12,
    'diag')
  near(M.frechet_from_moments({3}, {{2}}, {3}, {{2}}), 0, 1e-14, 'same')
  -- 2x2, C1 C2 not commuting: Tr((C1 C2)^1/2) = sqrt(tr(C1 C2) + 2 sqrt(det C1 det C2))
  local C1, C2 = {{2, 1}, {1, 3}}, {{1, -0.5}, {-0.5, 2}}
  local tr12 = 2 * 1 + 1 * -0.5 + 1 * -0.5 + 3 * 2
  local det = (2 * 3 - 1) * (1 * 2 - 0.25)
  local want = (1 - 0) ^ 2 + (0 - 2) ^ 2 + 5 + 3 - 2 * math.sqrt(tr12 + 2 * math.sqrt(det))
  near(M.frechet_from_moments({1, 0}, C1, {0, 2}, C2), want, 1e-10, 'non-commuting')
  near(M.frechet_from_moments({0, 2}, C2, {1, 0}, C1), want, 1e-10, 'symmetric')
  -- tensors work as well
  near(M.frechet_from_moments(duel.tensor{0, 0}, duel.tensor{{4, 0}, {0, 9}}, duel.tensor{1, 2},
    duel.tensor{{1, 0}, {0, 1}}), 10, 1e-6, 'tensors')
end)

T.case('frechet: identical sets give 0; sampled Gaussians match the closed form', function()
  duel.manual_seed(11)
  local a = duel.randn(3000, 8) * 0.7 + 0.2
  near(M.frechet(a, a), 0, 1e-9, 'identical')
  local n, d = 20000, 4
  local s1, s2 = {1, 4, 0.25, 1}, {1, 1, 1, 9}
  local x = duel.randn(n, d) * duel.tensor{s1}:sqrt() + duel.tensor{{0, 0, 0, 0}}
  local y = duel.randn(n, d) * duel.tensor{s2}:sqrt() + duel.tensor{{1, 0, -1, 0.5}}
  local want = 1 + 1 + 0.25
  for i = 1, d do want = want + (math.sqrt(s1[i]) - math.sqrt(s2[i])) ^ 2 end -- 3.5 + 2.25
  local got = M.frechet(x, y)
  near(got, want, 0.25, 'sampled closed form') -- sampling sd about 0.06 at this N
  -- exact moments: the 4 sign patterns (+-a, +-b) around mu have mean mu and covariance
  -- diag(a^2, b^2) * 4/3 (divisor N - 1): 2 + 4/3 ((1 - 3)^2 + (2 - 1)^2)
  local px = duel.tensor{{1, 2}, {1, -2}, {-1, 2}, {-1, -2}}
  local py = duel.tensor{{3, 1}, {3, -1}, {-3, 1}, {-3, -1}} + 1
  near(M.frechet(px, py), 2 + 4 / 3 * 5, 1e-9, 'exact moments')
  near(M.frechet(y, x), got, 1e-9, 'symmetric')
  T.raises_exact(
    'metrics.frechet: feats_a and feats_b must have the same width, got {5,3} and {5,2}',
    function() M.frechet(duel.zeros(5, 3), duel.zeros(5, 2)) end)
  T.raises('metrics.frechet: features must be finite, got', function()
    M.frechet(duel.tensor{{0, 1}, {0 / 0, 2}}, duel.zeros(2, 2)) end)
  T.raises_exact('metrics.frechet: feats_a must be an {N,D} tensor with N >= 2, got {1,3}',
    function() M.frechet(duel.zeros(1, 3), duel.zeros(5, 3)) end)
end)

T.case('precision_recall: identical, far and half-far sets; exact k-NN radii with ties', function()
  duel.manual_seed(12)
  local x = duel.randn(1500, 16)
  local pr = M.precision_recall(x, x)
  T.eq(pr.precision, 1); T.eq(pr.recall, 1); T.eq(pr.k, 3)
  local far = M.precision_recall(x, x + 100)
  T.eq(far.precision, 0); T.eq(far.recall, 0)
  -- half the fakes are real points, half are far away: precision exactly 1/2
  local half = duel.cat({x:narrow(1, 1, 750), x:narrow(1, 751, 750) + 100}, 1)
  T.eq(M.precision_recall(x, half).precision, 0.5)
  -- 1-D, k = 2 with ties: radii of the three 0s are 0 (their 3rd smallest distance, self
  -- included), the radius of 5 is 5; -0.5 lies in no ball, 0 and 9.9 do, 10.5 does not
  local real = duel.tensor{{0}, {0}, {0}, {5}}
  local fake = duel.tensor{{-0.5}, {0}, {9.9}, {10.5}}
  T.eq(M.precision_recall(real, fake, {k = 2}).precision, 0.5)
  -- k = 1, radii 1,1,1,1,7: 17 is at distance exactly 7 from 10 (inside), 17.5 is not
  real = duel.tensor{{0}, {1}, {2}, {3}, {10}}
  T.eq(M.precision_recall(real, duel.tensor{{17}, {17.5}, {-1}, {-1.5}}, {k = 1}).precision, 0.5)
  T.raises('metrics.precision_recall: fake must be finite', function()
    M.precision_recall(x, x * (0 / 0)) end)
  T.raises_exact('metrics.precision_recall: k must be a positive whole number, got 0',
    function() M.precision_recall(x, x, {k = 0}) end)
end)

T.case('classifier_score: K for confident uniform predictions, 1 for constant ones', function()
  local labels = {}
  for i = 1, 40 do labels[i] = (i - 1) % 10 + 1 end
  near(M.classifier_score(duel.F.one_hot(duel.tensor(labels), 10)), 10, 1e-9, 'confident')
  near(M.classifier_score(duel.full({7, 10}, 0.1)), 1, 1e-6, 'constant')
  near(M.classifier_score(duel.F.one_hot(duel.full({9}, 3), 10)), 1, 1e-12, 'one class')
  -- two classes, half {0.9,0.1} half {0.1,0.9}: exp(0.9 ln 1.8 + 0.1 ln 0.2)
  local p = duel.tensor{{0.9, 0.1}, {0.1, 0.9}, {0.9, 0.1}, {0.1, 0.9}}
  near(M.classifier_score(p), math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2)), 1e-6, 'soft')
  T.raises('every row must sum to 1', function() M.classifier_score(duel.ones(2, 3)) end)
end)

T.case('class_coverage: counts, covered classes and distance from uniform', function()
  local r = M.class_coverage(duel.tensor{1, 1, 3, 3, 3, 4}, 5)
  T.eq(r.covered, 3); T.eq(r.fraction, 3 / 5); T.eq(r.counts, {2, 0, 3, 1, 0})
  near(r.tv_uniform, 0.5 * (math.abs(2 / 6 - 0.2) + 0.2 + 0.3 + math.abs(1 / 6 - 0.2) + 0.2),
    1e-12, 'tv')
  T.eq(M.class_coverage({1, 2, 3}, 3).tv_uniform, 0)
  T.raises_exact('metrics.class_coverage: labels must be whole numbers in 1..3, got 4',
    function() M.class_coverage({1, 4}, 3) end)
end)

T.case('sliced_wasserstein: 0 for identical sets, |c|/sqrt(D) for a shift by c', function()
  duel.manual_seed(13)
  local a = duel.randn(500, 2, 2, 4) -- flattened to D = 16
  T.eq(M.sliced_wasserstein(a, a, {seed = 1}), 0)
  -- a shift by c moves every sorted projection by th.c, so SW2^2 = mean (th.c)^2 -> |c|^2 / D
  local sw = M.sliced_wasserstein(a, a + 0.5, {seed = 2, projections = 4000})
  near(sw, math.sqrt(16 * 0.25 / 16), 0.02, 'shift')
  -- exactly, with the same directions
  duel.manual_seed(3)
  local dirs = duel.randn(16, 64)
  dirs = dirs / (dirs * dirs):sum(1, true):sqrt()
  local proj = (dirs:sum(1) * 0.5):totable()
  local want = 0
  for i = 1, 64 do want = want + proj[i] ^ 2 end
  near(M.sliced_wasserstein(a, a + 0.5, {seed = 3, projections = 64}), math.sqrt(want / 64), 1e-5,
    'same directions')
  -- a seed leaves the global RNG where it was
  duel.manual_seed(4); local r1 = duel.rand(3):totable()
  duel.manual_seed(4); M.sliced_wasserstein(a, a, {seed = 9}); local r2 = duel.rand(3):totable()
  T.eq(r1, r2)
  T.raises('metrics.sliced_wasserstein: b must be finite', function()
    M.sliced_wasserstein(duel.zeros(2, 2), duel.tensor{{1, 1 / 0}, {0, 0}}) end)
  T.raises_exact(
    'metrics.sliced_wasserstein: a and b must have the same shape, got {500,16} and {4,16}',
    function() M.sliced_wasserstein(a, duel.zeros(4, 16)) end)
end)

local function permutations(n)
  local out, p, used = {}, {}, {}
  local function rec(i)
    if i > n then out[#out + 1] = {unpack(p)}; return end
    for j = 1, n do
      if not used[j] then used[j] = true; p[i] = j; rec(i + 1); used[j] = false end
    end
  end
  rec(1)
  return out
end

T.case('hungarian: hand-made matrices, a unique 6x6 optimum, brute force, rectangular', function()
  local a, c = M.hungarian{{4, 1, 3}, {2, 0, 5}, {3, 2, 2}}
  T.eq(a, {2, 1, 3}); T.eq(c, 5)
  -- 6x6: the anti-diagonal costs 1, every other entry at least 10: the only optimum
  local m = {}
  for i = 1, 6 do
    m[i] = {}
    for j = 1, 6 do m[i][j] = (i + j == 7) and 1 or 10 + (i * 7 + j * 3) % 5 end
  end
  a, c = M.hungarian(m)
  T.eq(a, {6, 5, 4, 3, 2, 1}); T.eq(c, 6)
  -- against brute force over all 720 permutations of random 6x6 matrices (tensor input)
  duel.manual_seed(14)
  local perms = permutations(6)
  for _ = 1, 5 do
    local t = duel.rand(6, 6) * 10
    local tt = t:totable()
    local best = math.huge
    for _, p in ipairs(perms) do
      local s = 0
      for i = 1, 6 do s = s + tt[i][p[i]] end
      best = math.min(best, s)
    end
    local _, got = M.hungarian(t)
    near(got, best, 1e-9, 'brute force')
  end
  a, c = M.hungarian{{5, 1, 9}, {1, 6, 0}}
  T.eq(a, {2, 3}); T.eq(c, 1)
  T.raises('1 <= n <= m', function() M.hungarian{{1}, {2}} end)
end)

T.case('cluster_accuracy: a permuted labelling scores 1; known partial matchings', function()
  local labels, codes = {}, {}
  local perm = {4, 7, 1, 10, 2, 9, 3, 8, 6, 5}
  for i = 1, 200 do labels[i] = (i * 7) % 10 + 1; codes[i] = perm[labels[i]] end
  local acc, map = M.cluster_accuracy(duel.tensor(codes), duel.tensor(labels))
  T.eq(acc, 1)
  for cls = 1, 10 do T.eq(map[perm[cls]], cls) end
  -- two codes both used for class 1: only one can match it
  acc = M.cluster_accuracy({1, 1, 2, 2, 3, 3}, {1, 1, 1, 1, 2, 2})
  near(acc, 4 / 6, 1e-12, 'partial')
  T.raises_exact(
    'metrics.cluster_accuracy: codes and labels must have the same length, got 2 and 1',
    function() M.cluster_accuracy({1, 2}, {1}) end)
end)

T.case('reference classifier: >= 91% on the first 2,000 test images; 32x32 crops agree', function()
  local clf = M.classifier()
  T.ok(clf == M.classifier(), 'the default classifier is cached')
  local test = duel.data.fashion_mnist{split = 'test', limit = 2000}
  local pred = clf:predict(test.images)
  T.eq(pred:size(), {2000})
  local acc = pred:eq(test.labels):sum():item() / 2000
  T.ok(acc >= 0.91, ('accuracy %.4f'):format(acc))
  local padded = duel.data.fashion_mnist{split = 'test', limit = 200, pad_to = 32}
  T.eq(clf:predict(padded.images):totable(), pred:narrow(1, 1, 200):totable())
  local p = clf:probs(test.images:narrow(1, 1, 50))
  T.close(p:sum(2), duel.ones(50), 1e-5)
  T.eq(clf:features(test.images:narrow(1, 1, 3)):size(), {3, clf.arch.hidden})
  T.raises_exact(
    'classifier:features: x must be an {N,1,28,28} or {N,1,32,32} tensor, got {2,3,28,28}',
    function() clf:features(duel.zeros(2, 3, 28, 28)) end)
end)

T.case('reference classifier features: train vs test Frechet far below test vs noise', function()
  local clf = M.classifier()
  local train = duel.data.fashion_mnist{split = 'train', limit = 2000}
  local test = duel.data.fashion_mnist{split = 'test', limit = 2000}
  duel.manual_seed(15)
  local noise = (duel.rand(2000, 1, 28, 28) * 2 - 1)
  local ft = clf:features(test.images)
  local real = M.frechet(clf:features(train.images), ft)
  local fake = M.frechet(clf:features(noise), ft)
  T.ok(real * 20 < fake, ('real-vs-real %.3f, test-vs-noise %.3f'):format(real, fake))
end)
