-- duel.metrics.toy_modes: hand-built 2-D sample sets whose captured modes and high-quality
-- fraction are known (VEEGAN / PacGAN definitions: nearest mode, within 3 std), and the errors.
local T = require 'tests.harness'
local duel = require 'duel'
local M = duel.metrics

T.case('toy_modes: ring8 with 5 modes hit, far and between-mode samples low quality', function()
  local spec = duel.data.toy2d_spec.ring8 -- radius 1, std 0.01: high quality within 0.03
  local pts = {}
  for k = 1, 5 do -- 3 samples near each of modes 1..5, at 0, 2.9 and 2.0 std (diagonal)
    local m = spec.means[k]
    pts[#pts + 1] = {m[1], m[2]}
    pts[#pts + 1] = {m[1] + 0.029, m[2]}
    pts[#pts + 1] = {m[1] + 0.02 / math.sqrt(2), m[2] - 0.02 / math.sqrt(2)}
  end
  pts[#pts + 1] = {0, 0}                                           -- the centre
  pts[#pts + 1] = {spec.means[6][1] + 0.031, spec.means[6][2]}     -- 3.1 std off mode 6
  pts[#pts + 1] = {1.5 * spec.means[7][1], 1.5 * spec.means[7][2]} -- outside the ring
  local m7, m8 = spec.means[7], spec.means[8]
  pts[#pts + 1] = {(m7[1] + m8[1]) / 2, (m7[2] + m8[2]) / 2}        -- between modes 7 and 8
  local r = M.toy_modes(duel.tensor(pts), 'ring8')
  T.eq(r.modes, 5)
  T.eq(r.n_modes, 8)
  T.ok(math.abs(r.high_quality - 15 / 19) < 1e-12, 'high_quality ' .. r.high_quality)
  T.eq(r.counts, {3, 3, 3, 3, 3, 0, 0, 0})
end)

T.case('toy_modes: exact grid25 samples capture all 25 modes; a shifted grid none', function()
  local spec = duel.data.toy2d_spec.grid25
  local pts, shifted = {}, {}
  for k, m in ipairs(spec.means) do
    for j = 1, k do pts[#pts + 1] = {m[1] + 0.1 * (j % 2), m[2] - 0.05 * (j % 3)} end -- < 0.15
    shifted[#shifted + 1] = {m[1] + 1, m[2] + 1}  -- between 4 modes: far from every one
  end
  local r = M.toy_modes(duel.tensor(pts), 'grid25')
  T.eq(r.modes, 25)
  T.eq(r.high_quality, 1)
  T.eq(r.counts[25], 25)
  local s = M.toy_modes(duel.tensor(shifted), 'grid25')
  T.eq(s.modes, 0)
  T.eq(s.high_quality, 0)
  -- a 10-std threshold (VEEGAN's 1200-D setting) reaches 0.5 < 1.414 from no mode either
  T.eq(M.toy_modes(duel.tensor(shifted), 'grid25', {threshold = 10}).modes, 0)
  T.eq(M.toy_modes(duel.tensor{{1.4, 0}}, 'grid25', {threshold = 30}).modes, 1)
end)

T.case('toy_modes: the real mixtures score 8/8 and 25/25 with about 98.9% high quality', function()
  duel.manual_seed(3)
  -- within 3 std per coordinate of a 2-D isotropic Gaussian: P(chi2_2 < 9) = 1 - e^-4.5 = 0.98889
  for _, name in ipairs{'ring8', 'grid25'} do
    local r = M.toy_modes(duel.data.toy2d(name, 20000), name)
    T.eq(r.modes, r.n_modes, name)
    T.ok(math.abs(r.high_quality - (1 - math.exp(-4.5))) < 0.004, name .. ' hq ' .. r.high_quality)
  end
end)

T.case('toy_modes: a custom spec table, NaN samples, errors', function()
  local r = M.toy_modes(duel.tensor{{0, 0}, {0 / 0, 0}, {10, 10.5}},
                        {means = {{0, 0}, {10, 10}}, std = 0.2})
  T.eq(r.modes, 2)
  T.ok(math.abs(r.high_quality - 2 / 3) < 1e-12)
  T.raises_exact("metrics.toy_modes: unknown mixture (expected 'ring8' or 'grid25'), got 'ring9'",
    function() M.toy_modes(duel.zeros(4, 2), 'ring9') end)
  T.raises_exact('metrics.toy_modes: samples must be an {N,2} tensor with N >= 1, got {4,3}',
    function() M.toy_modes(duel.zeros(4, 3), 'ring8') end)
  T.raises_exact('metrics.toy_modes: samples must be an {N,2} tensor, got table',
    function() M.toy_modes({{0, 0}}, 'ring8') end)
  T.raises_exact('metrics.toy_modes: threshold must be a positive number, got -1',
    function() M.toy_modes(duel.zeros(4, 2), 'ring8', {threshold = -1}) end)
end)
