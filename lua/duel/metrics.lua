-- duel.metrics: numbers that say whether a GAN works.
--   toy_modes(samples, 'ring8'|'grid25' [, {threshold=3}])   mode coverage on the 2-D mixtures
--
-- toy_modes follows VEEGAN (Srivastava et al. 2017, akashgit/VEEGAN index.md) and PacGAN's
-- MetricLogger (Lin et al. 2018, fjxmlzn/PacGAN pacgan/extensions.py, dis_thre=3): every sample
-- is assigned to its nearest mode; it is "high quality" when it lies within `threshold` standard
-- deviations of that mode (PacGAN: the diagonal Mahalanobis distance sqrt(sum d^2/sigma^2) < 3;
-- the mixtures are isotropic, so this is the Euclidean distance < 3 sigma); a mode is captured
-- when at least one high-quality sample is nearest to it. The papers score 2,500 samples.
local core = require 'duel.core'
local data = require 'duel.data'

local metrics = {}

local tensor_mt = core._core.metatable

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- toy_modes(samples {N,2}, name or {means=, std=} [, {threshold=3}]) returns
-- {modes = captured count, high_quality = fraction of all samples, n_modes = M,
--  counts = {high-quality samples per mode, in the spec's order}}
function metrics.toy_modes(samples, name, opts)
  local OP = 'metrics.toy_modes'
  local spec = name
  if type(name) == 'string' then
    spec = data.toy2d_spec[name]
    if not spec then
      fail("%s: unknown mixture (expected 'ring8' or 'grid25'), got '%s'", OP, name)
    end
  elseif type(name) ~= 'table' or type(name.means) ~= 'table' or type(name.std) ~= 'number' then
    fail('%s: name must be a mixture name or a {means=, std=} table, got %s', OP, type(name))
  end
  if type(samples) ~= 'userdata' or getmetatable(samples) ~= tensor_mt then
    fail('%s: samples must be an {N,2} tensor, got %s', OP, type(samples))
  end
  if samples:dim() ~= 2 or samples:size(2) ~= 2 or samples:size(1) < 1 then
    fail('%s: samples must be an {N,2} tensor with N >= 1, got {%s}', OP,
      table.concat(samples:size(), ','))
  end
  local threshold = opts and opts.threshold or 3
  if type(threshold) ~= 'number' or not (threshold > 0) then
    fail('%s: threshold must be a positive number, got %s', OP, tostring(threshold))
  end
  local means, limit = spec.means, (threshold * spec.std) ^ 2
  local counts = {}
  for m = 1, #means do counts[m] = 0 end
  local pts = samples:detach():totable()
  local good = 0
  for i = 1, #pts do
    local x, y = pts[i][1], pts[i][2]
    local best, bd = 0, math.huge
    for m = 1, #means do
      local dx, dy = x - means[m][1], y - means[m][2]
      local d = dx * dx + dy * dy
      if d < bd then best, bd = m, d end
    end
    if bd < limit then -- NaN samples fail this test and count as low quality
      good = good + 1
      counts[best] = counts[best] + 1
    end
  end
  local modes = 0
  for m = 1, #means do if counts[m] > 0 then modes = modes + 1 end end
  return {modes = modes, high_quality = good / #pts, n_modes = #means, counts = counts}
end

-- ---- feature and pixel metrics (docs/metrics.md states every definition) -----------------------
--   frechet(a {N,D}, b {M,D})                    Frechet distance of Gaussians fitted to a and b
--   frechet_from_moments(mu1, C1, mu2, C2)       the same from given means and covariances
--   precision_recall(real, fake [, {k=3}])       Kynkaanniemi et al. 2019, k-NN radius manifolds
--   classifier_score(probs {N,K})                exp(E_x KL(p(y|x) || p(y))), the Inception Score
--   class_coverage(labels, n_classes)            how many classes the predictions reach
--   sliced_wasserstein(a, b [, {projections=128, seed=}])   sliced W2 on flattened samples
--   hungarian(cost)                              minimum-cost assignment, O(n^3)
--   cluster_accuracy(codes, labels)              best one-to-one code -> class matching
--   classifier([path])                           the reference Fashion-MNIST classifier
local ffi = require 'ffi'
local classifier_mod = require 'duel.metrics_classifier'

metrics.classifier = classifier_mod.load

local function is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == tensor_mt end

local function shape_of(x) return '{' .. table.concat(x:size(), ',') .. '}' end

-- an {N, ...} tensor with N >= min_n, viewed as {N, D}
local function check_rows(op, name, x, min_n)
  if not is_tensor(x) then fail('%s: %s must be an {N,D} tensor, got %s', op, name, type(x)) end
  if x:dim() < 2 or x:size(1) < min_n or x:numel() == 0 then
    fail('%s: %s must be an {N,D} tensor with N >= %d, got %s', op, name, min_n, shape_of(x))
  end
  return x:detach():contiguous():view(x:size(1), -1)
end

-- NaN or inf anywhere in x makes its sum non-finite
local function check_finite(op, name, x)
  local s = x:sum():item()
  if s ~= s or math.abs(s) == math.huge then
    fail('%s: %s must be finite, got a sum of %s', op, name, tostring(s))
  end
end

local function new_doubles(n) return ffi.new('double[?]', n) end

-- mean {D} and unbiased covariance {D,D} (divisor N-1, as numpy.cov) in doubles, 0-based arrays
local function moments(x)
  local rows = x:totable()
  local n, d = #rows, #rows[1]
  local mu, cov, c = new_doubles(d), new_doubles(d * d), new_doubles(d)
  for i = 1, n do
    local r = rows[i]
    for j = 1, d do mu[j - 1] = mu[j - 1] + r[j] end
  end
  for j = 0, d - 1 do mu[j] = mu[j] / n end
  for i = 1, n do
    local r = rows[i]
    for j = 0, d - 1 do c[j] = r[j + 1] - mu[j] end
    for a = 0, d - 1 do
      local ca, base = c[a], a * d
      if ca ~= 0 then
        for b = a, d - 1 do cov[base + b] = cov[base + b] + ca * c[b] end
      end
    end
  end
  local div = math.max(n - 1, 1)
  for a = 0, d - 1 do
    for b = a, d - 1 do
      local v = cov[a * d + b] / div
      cov[a * d + b], cov[b * d + a] = v, v
    end
  end
  return mu, cov, d
end

-- Cyclic Jacobi eigen-solver for a symmetric d x d matrix (0-based doubles, destroyed): returns
-- the eigenvalues (the final diagonal) and, when want_vectors, V with A = V diag(w) V^T.
local function jacobi_eigen(a, d, want_vectors)
  local v
  if want_vectors then
    v = new_doubles(d * d)
    for i = 0, d - 1 do v[i * d + i] = 1 end
  end
  local total = 0
  for i = 0, d * d - 1 do total = total + a[i] * a[i] end
  for _ = 1, 100 do
    local off = 0
    for p = 0, d - 2 do
      for q = p + 1, d - 1 do off = off + a[p * d + q] ^ 2 end
    end
    if off <= 1e-30 * total or off == 0 then break end
    for p = 0, d - 2 do
      for q = p + 1, d - 1 do
        local apq = a[p * d + q]
        if apq ~= 0 then
          -- rotation J (c at pp, qq; s at pq; -s at qp) that zeroes a_pq in J^T A J, with
          -- t = tan(angle) the smaller root of t^2 + 2 theta t - 1 = 0 (stable form)
          local theta = (a[q * d + q] - a[p * d + p]) / (2 * apq)
          local t = 1 / (math.abs(theta) + math.sqrt(theta * theta + 1))
          if theta < 0 then t = -t end
          local c = 1 / math.sqrt(t * t + 1)
          local s = t * c
          for k = 0, d - 1 do -- columns p and q
            local akp, akq = a[k * d + p], a[k * d + q]
            a[k * d + p], a[k * d + q] = c * akp - s * akq, s * akp + c * akq
          end
          for k = 0, d - 1 do -- rows p and q
            local apk, aqk = a[p * d + k], a[q * d + k]
            a[p * d + k], a[q * d + k] = c * apk - s * aqk, s * apk + c * aqk
          end
          a[p * d + q], a[q * d + p] = 0, 0
          if v then
            for k = 0, d - 1 do
              local vkp, vkq = v[k * d + p], v[k * d + q]
              v[k * d + p], v[k * d + q] = c * vkp - s * vkq, s * vkp + c * vkq
            end
          end
        end
      end
    end
  end
  local w = {}
  for i = 0, d - 1 do w[i + 1] = a[i * d + i] end
  return w, v
end

-- exposed for tests: eigenvalues (ascending) of a symmetric matrix given as a nested table
function metrics._symmetric_eigenvalues(m)
  local d = #m
  local a = new_doubles(d * d)
  for i = 1, d do for j = 1, d do a[(i - 1) * d + j - 1] = m[i][j] end end
  local w = jacobi_eigen(a, d, false)
  table.sort(w)
  return w
end

-- ||mu1 - mu2||^2 + Tr(C1) + Tr(C2) - 2 Tr((C1^1/2 C2 C1^1/2)^1/2); the last trace equals
-- Tr((C1 C2)^1/2) and needs only symmetric eigendecompositions. Negative eigenvalues (rounding
-- on singular covariances) are clamped at 0.
local function frechet_doubles(mu1, c1, mu2, c2, d)
  local dist = 0
  for i = 0, d - 1 do dist = dist + (mu1[i] - mu2[i]) ^ 2 end
  local tr = 0
  for i = 0, d - 1 do tr = tr + c1[i * d + i] + c2[i * d + i] end
  local a = new_doubles(d * d)
  ffi.copy(a, c1, d * d * 8)
  local w, v = jacobi_eigen(a, d, true)
  -- S = C1^1/2 = V diag(sqrt w) V^T
  local s, tmp = new_doubles(d * d), new_doubles(d * d)
  for i = 0, d - 1 do
    for j = 0, d - 1 do tmp[i * d + j] = v[i * d + j] * math.sqrt(math.max(w[j + 1], 0)) end
  end
  for i = 0, d - 1 do
    for j = i, d - 1 do
      local acc = 0
      for k = 0, d - 1 do acc = acc + tmp[i * d + k] * v[j * d + k] end
      s[i * d + j], s[j * d + i] = acc, acc
    end
  end
  -- M = S C2 S, symmetrised
  for i = 0, d - 1 do
    for j = 0, d - 1 do
      local acc = 0
      for k = 0, d - 1 do acc = acc + s[i * d + k] * c2[k * d + j] end
      tmp[i * d + j] = acc
    end
  end
  local m = new_doubles(d * d)
  for i = 0, d - 1 do
    for j = 0, d - 1 do
      local acc = 0
      for k = 0, d - 1 do acc = acc + tmp[i * d + k] * s[k * d + j] end
      m[i * d + j] = acc
    end
  end
  for i = 0, d - 1 do
    for j = i + 1, d - 1 do
      local x = 0.5 * (m[i * d + j] + m[j * d + i])
      m[i * d + j], m[j * d + i] = x, x
    end
  end
  local wm = jacobi_eigen(m, d, false)
  local trsqrt = 0
  for i = 1, d do trsqrt = trsqrt + math.sqrt(math.max(wm[i], 0)) end
  return math.max(dist + tr - 2 * trsqrt, 0)
end

-- a {D} vector or {D,D} matrix given as a tensor or a (nested) Lua table -> 0-based doubles
local function doubles_of(op, name, x, d, square)
  local t = is_tensor(x) and x:detach():totable() or x
  if type(t) ~= 'table' or #t ~= d then
    fail('%s: %s must have %d entries, got %s', op, name, d, type(t) == 'table' and #t or type(t))
  end
  local out = new_doubles(square and d * d or d)
  for i = 1, d do
    if square then
      if type(t[i]) ~= 'table' or #t[i] ~= d then
        fail('%s: %s must be %dx%d, got row %d of %s entries', op, name, d, d, i,
          type(t[i]) == 'table' and #t[i] or type(t[i]))
      end
      for j = 1, d do out[(i - 1) * d + j - 1] = t[i][j] end
    else
      out[i - 1] = t[i]
    end
  end
  return out
end

function metrics.frechet_from_moments(mu1, c1, mu2, c2)
  local op = 'metrics.frechet_from_moments'
  local m1 = is_tensor(mu1) and mu1:detach():totable() or mu1
  if type(m1) ~= 'table' or #m1 < 1 then
    fail('%s: mu1 must be a {D} vector, got %s', op, type(m1))
  end
  local d = #m1
  return frechet_doubles(doubles_of(op, 'mu1', mu1, d), doubles_of(op, 'sigma1', c1, d, true),
                         doubles_of(op, 'mu2', mu2, d), doubles_of(op, 'sigma2', c2, d, true), d)
end

function metrics.frechet(a, b)
  local op = 'metrics.frechet'
  a, b = check_rows(op, 'feats_a', a, 2), check_rows(op, 'feats_b', b, 2)
  if a:size(2) ~= b:size(2) then
    fail('%s: feats_a and feats_b must have the same width, got %s and %s', op, shape_of(a),
      shape_of(b))
  end
  local mu1, c1, d = moments(a)
  local mu2, c2 = moments(b)
  for j = 0, d - 1 do -- a NaN or inf anywhere reaches the means and the diagonals
    local x = mu1[j] + mu2[j] + c1[j * d + j] + c2[j * d + j]
    if x ~= x or math.abs(x) == math.huge then
      fail('%s: features must be finite, got %s in column %d', op, tostring(x), j + 1)
    end
  end
  return frechet_doubles(mu1, c1, mu2, c2, d)
end

-- squared Euclidean distances {n,m} between the rows of x {n,D} and y {m,D} (one sgemm)
local function sq_dists(x, y, y_sq)
  local x_sq = (x * x):sum(2, true)
  local d = x_sq + y_sq - x:matmul(y:t()) * 2
  return d:clamp(0, math.huge)
end

local CHUNK = 1000

-- squared distance from each row of x to its k-th nearest other row (the (k+1)-th smallest
-- distance counting itself, as Kynkaanniemi's reference code), exact under ties
local function knn_radii2(x, k)
  local n = x:size(1)
  local x_sq = (x * x):sum(2):view(1, n)
  local radii = {}
  local inf = math.huge
  for i0 = 1, n, CHUNK do
    local rows = math.min(CHUNK, n - i0 + 1)
    local d = sq_dists(x:narrow(1, i0, rows), x, x_sq)
    local seen, found = {}, {}
    for r = 1, rows do seen[r] = 0 end
    for _ = 1, k + 1 do
      local m = d:min(2, true)
      local mask = d:le(m)
      local cnt = mask:sum(2):totable()
      local mv = m:totable()
      for r = 1, rows do
        if not found[r] then
          seen[r] = seen[r] + cnt[r]
          if seen[r] >= k + 1 then found[r] = mv[r][1] end
        end
      end
      d = core.where(mask, inf, d)
    end
    for r = 1, rows do radii[i0 + r - 1] = found[r] end
  end
  return radii
end

-- fraction of rows of q inside the union of balls (centres x, squared radii r2 {1,n})
local function inside_fraction(q, x, r2)
  local x_sq = (x * x):sum(2):view(1, x:size(1))
  local inside = 0
  for i0 = 1, q:size(1), CHUNK do
    local rows = math.min(CHUNK, q:size(1) - i0 + 1)
    local d = sq_dists(q:narrow(1, i0, rows), x, x_sq)
    inside = inside + d:le(r2):max(2):sum():item()
  end
  return inside / q:size(1)
end

function metrics.precision_recall(real, fake, opts)
  local op = 'metrics.precision_recall'
  local k = opts and opts.k or 3
  if type(k) ~= 'number' or k < 1 or k ~= math.floor(k) then
    fail('%s: k must be a positive whole number, got %s', op, tostring(k))
  end
  real, fake = check_rows(op, 'real', real, k + 1), check_rows(op, 'fake', fake, k + 1)
  check_finite(op, 'real', real); check_finite(op, 'fake', fake)
  if real:size(2) ~= fake:size(2) then
    fail('%s: real and fake must have the same width, got %s and %s', op, shape_of(real),
      shape_of(fake))
  end
  local rr = core.tensor(knn_radii2(real, k)):view(1, -1)
  local rf = core.tensor(knn_radii2(fake, k)):view(1, -1)
  return {precision = inside_fraction(fake, real, rr), recall = inside_fraction(real, fake, rf),
          k = k}
end

-- exp(mean_x sum_y p(y|x) (log p(y|x) - log p(y))), p(y) the mean of the rows; one split over
-- all N (the original Inception Score averages 10 splits); 0 log 0 counts as 0
function metrics.classifier_score(probs)
  local op = 'metrics.classifier_score'
  probs = check_rows(op, 'probs', probs, 1)
  local p = probs:totable()
  local n, kk = #p, #p[1]
  local marg = {}
  for y = 1, kk do marg[y] = 0 end
  for i = 1, n do
    local s = 0
    for y = 1, kk do
      local v = p[i][y]
      if not (v >= 0) then fail('%s: probabilities must be >= 0, got %s', op, tostring(v)) end
      marg[y] = marg[y] + v
      s = s + v
    end
    if math.abs(s - 1) > 1e-3 then
      fail('%s: every row must sum to 1, got %.6g in row %d', op, s, i)
    end
  end
  for y = 1, kk do marg[y] = marg[y] / n end
  local kl = 0
  for i = 1, n do
    for y = 1, kk do
      local v = p[i][y]
      if v > 0 then kl = kl + v * (math.log(v) - math.log(marg[y])) end
    end
  end
  return math.exp(kl / n)
end

-- labels {N} (or a Lua list) of 1-based classes -> {covered = classes seen at least once,
-- fraction = covered / n_classes, counts = per class, tv_uniform = total-variation distance
-- between the class histogram and the uniform distribution}
function metrics.class_coverage(labels, n_classes)
  local op = 'metrics.class_coverage'
  if type(n_classes) ~= 'number' or n_classes < 1 or n_classes ~= math.floor(n_classes) then
    fail('%s: n_classes must be a positive whole number, got %s', op, tostring(n_classes))
  end
  local l = is_tensor(labels) and labels:detach():contiguous():view(-1):totable() or labels
  if type(l) ~= 'table' or #l < 1 then
    fail('%s: labels must be a non-empty {N} tensor or list, got %s', op, type(l))
  end
  local counts = {}
  for c = 1, n_classes do counts[c] = 0 end
  for i = 1, #l do
    local c = l[i]
    if type(c) ~= 'number' or c < 1 or c > n_classes or c ~= math.floor(c) then
      fail('%s: labels must be whole numbers in 1..%d, got %s', op, n_classes, tostring(c))
    end
    counts[c] = counts[c] + 1
  end
  local covered, tv = 0, 0
  for c = 1, n_classes do
    if counts[c] > 0 then covered = covered + 1 end
    tv = tv + math.abs(counts[c] / #l - 1 / n_classes)
  end
  return {covered = covered, fraction = covered / n_classes, counts = counts, tv_uniform = tv / 2}
end

-- Sliced 2-Wasserstein distance on flattened samples:
--   SW2(a, b) = sqrt( mean over P random unit directions th of W2^2(th.a, th.b) ),
-- W2^2 between two N-point 1-D sets = mean of squared differences of the sorted projections.
-- Directions are Gaussian vectors normalised, drawn from duel's RNG; with opts.seed they come
-- from that seed and the global RNG state is left as it was.
function metrics.sliced_wasserstein(a, b, opts)
  local op = 'metrics.sliced_wasserstein'
  opts = opts or {}
  local np = opts.projections or 128
  if type(np) ~= 'number' or np < 1 or np ~= math.floor(np) then
    fail('%s: projections must be a positive whole number, got %s', op, tostring(np))
  end
  a, b = check_rows(op, 'a', a, 1), check_rows(op, 'b', b, 1)
  check_finite(op, 'a', a); check_finite(op, 'b', b)
  if a:size(1) ~= b:size(1) or a:size(2) ~= b:size(2) then
    fail('%s: a and b must have the same shape, got %s and %s', op, shape_of(a), shape_of(b))
  end
  local d = a:size(2)
  local dirs
  if opts.seed ~= nil then
    local checkpoint = require 'duel.checkpoint'
    local saved = checkpoint.get_rng_state()
    core.manual_seed(opts.seed)
    dirs = core.randn(d, np)
    checkpoint.set_rng_state(saved)
  else
    dirs = core.randn(d, np)
  end
  dirs = dirs / (dirs * dirs):sum(1, true):sqrt()
  local pa = a:matmul(dirs):t():contiguous():totable()
  local pb = b:matmul(dirs):t():contiguous():totable()
  local n, total = a:size(1), 0
  for p = 1, np do
    local x, y = pa[p], pb[p]
    table.sort(x)
    table.sort(y)
    local s = 0
    for i = 1, n do s = s + (x[i] - y[i]) ^ 2 end
    total = total + s / n
  end
  return math.sqrt(total / np)
end

-- Minimum-cost assignment (Kuhn-Munkres with row/column potentials, O(n^2 m)) for an n x m
-- cost (n <= m; a tensor or nested table). Returns assign (assign[row] = column) and the cost.
function metrics.hungarian(cost)
  local op = 'metrics.hungarian'
  local c = is_tensor(cost) and cost:detach():totable() or cost
  if type(c) ~= 'table' or #c < 1 or type(c[1]) ~= 'table' or #c[1] < #c then
    fail('%s: cost must be an n x m matrix with 1 <= n <= m, got %s', op,
      is_tensor(cost) and shape_of(cost) or type(cost))
  end
  local n, m = #c, #c[1]
  for i = 1, n do
    if type(c[i]) ~= 'table' or #c[i] ~= m then
      fail('%s: every row of cost must have %d entries, got row %d', op, m, i)
    end
    for j = 1, m do
      local x = c[i][j]
      if type(x) ~= 'number' or x ~= x or math.abs(x) == math.huge then
        fail('%s: costs must be finite numbers, got %s at (%d,%d)', op, tostring(x), i, j)
      end
    end
  end
  local INF = math.huge
  local u, v, p, way = {}, {}, {}, {}
  for i = 0, n do u[i] = 0 end
  for j = 0, m do v[j], p[j], way[j] = 0, 0, 0 end
  for i = 1, n do
    -- grow an alternating tree from row i along tight edges, raising the potentials by the
    -- smallest slack each time, until it reaches a free column; then flip the path
    p[0] = i
    local j0 = 0
    local minv, used = {}, {}
    for j = 0, m do minv[j], used[j] = INF, false end
    repeat
      used[j0] = true
      local i0, delta, j1 = p[j0], INF, 0
      for j = 1, m do
        if not used[j] then
          local cur = c[i0][j] - u[i0] - v[j]
          if cur < minv[j] then minv[j], way[j] = cur, j0 end
          if minv[j] < delta then delta, j1 = minv[j], j end
        end
      end
      for j = 0, m do
        if used[j] then
          u[p[j]] = u[p[j]] + delta
          v[j] = v[j] - delta
        else
          minv[j] = minv[j] - delta
        end
      end
      j0 = j1
    until p[j0] == 0
    repeat
      local j1 = way[j0]
      p[j0] = p[j1]
      j0 = j1
    until j0 == 0
  end
  local assign, total = {}, 0
  for j = 1, m do
    if p[j] ~= 0 then assign[p[j]] = j end
  end
  for i = 1, n do total = total + c[i][assign[i]] end
  return assign, total
end

-- codes, labels: {N} tensors or lists of 1-based whole numbers. The best one-to-one matching
-- of codes to classes (Hungarian on the negated contingency table, padded square) -> accuracy
-- (matched samples / N) and map (map[code] = class; codes matched to no class are absent).
function metrics.cluster_accuracy(codes, labels)
  local op = 'metrics.cluster_accuracy'
  local function list(name, x)
    local t = is_tensor(x) and x:detach():contiguous():view(-1):totable() or x
    if type(t) ~= 'table' or #t < 1 then
      fail('%s: %s must be a non-empty {N} tensor or list, got %s', op, name, type(t))
    end
    for i = 1, #t do
      local v = t[i]
      if type(v) ~= 'number' or v < 1 or v ~= math.floor(v) or v > 1e6 then
        fail('%s: %s must hold whole numbers >= 1, got %s', op, name, tostring(v))
      end
    end
    return t
  end
  local cs, ls = list('codes', codes), list('labels', labels)
  if #cs ~= #ls then
    fail('%s: codes and labels must have the same length, got %d and %d', op, #cs, #ls)
  end
  local k = 0
  for i = 1, #cs do k = math.max(k, cs[i], ls[i]) end
  local table_ = {}
  for i = 1, k do
    table_[i] = {}
    for j = 1, k do table_[i][j] = 0 end
  end
  for i = 1, #cs do table_[cs[i]][ls[i]] = table_[cs[i]][ls[i]] - 1 end
  local assign, total = metrics.hungarian(table_)
  local map = {}
  for code = 1, k do
    if table_[code][assign[code]] < 0 then map[code] = assign[code] end
  end
  return -total / #cs, map
end

-- task metrics for image-to-image translation: psnr, class_accuracy, fashion_labels
-- (lua/duel/metrics_task.lua states their definitions)
for k, v in pairs(require 'duel.metrics_task') do metrics[k] = v end

return metrics
