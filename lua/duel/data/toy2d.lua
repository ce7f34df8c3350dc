-- toy2d(name, n): n x 2 samples of the 2-D Gaussian-mixture benchmarks used to measure mode
-- coverage, with the exact setups of PacGAN (Lin et al. 2018), the benchmark whose code states
-- them (GAN_REFERENCE.md 3.1; fjxmlzn/PacGAN,
-- synthetic_data_experiments/2DRing_GAN&PacGAN/config.py
-- and 2DGrid_GAN&PacGAN/config.py):
--
--   ring8   8 modes (cos(2*pi*k/8), sin(2*pi*k/8)), k = 0..7: radius 1, std 0.01 per coordinate
--   grid25  25 modes {-4,-2,0,2,4} x {-4,-2,0,2,4}: spacing 2, std 0.05 per coordinate
--
-- Mode weights are equal (the configs give x_mode_priors = None), each sample picks its mode
-- independently. VEEGAN's grid is the same as PacGAN's; WGAN-GP's toy sets differ (radius 2 then
-- scaled by 1/1.414, std 0.02), so numbers from those papers are not comparable with these.
-- toy2d_spec[name] = {means = {{x,y}, ...}, std = s} holds the constants that
-- duel.metrics.toy_modes scores against (a sample within 3 std of its nearest mode is "high
-- quality", as in VEEGAN and PacGAN).
--
-- Samples come from duel's RNG: duel.manual_seed(s) makes them reproducible.
local core = require 'duel.core'
local util = require 'duel.data.util'

local spec = {}

do
  local ring = {}
  for k = 0, 7 do
    ring[#ring + 1] = {math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)}
  end
  spec.ring8 = {means = ring, std = 0.01, radius = 1,
                source = 'PacGAN, fjxmlzn/PacGAN synthetic_data_experiments/'
                         .. '2DRing_GAN&PacGAN/config.py'}
  local grid = {}
  for i = -4, 4, 2 do for j = -4, 4, 2 do grid[#grid + 1] = {i, j} end end
  spec.grid25 = {means = grid, std = 0.05, spacing = 2,
                 source = 'PacGAN, fjxmlzn/PacGAN synthetic_data_experiments/'
                          .. '2DGrid_GAN&PacGAN/config.py'}
end

local function toy2d(name, n)
  local s = spec[name]
  if not s then
    util.fail("data.toy2d: unknown mixture (expected 'ring8' or 'grid25'), got %s",
      type(name) == 'string' and ("'" .. name .. "'") or type(name))
  end
  util.check_int('data.toy2d', 'sample count', n, 0, 2 ^ 31)
  local flat = {}
  for _, m in ipairs(s.means) do flat[#flat + 1] = m[1]; flat[#flat + 1] = m[2] end
  return core._data.toy2d(flat, s.std, n)
end

return {toy2d = toy2d, spec = spec}
