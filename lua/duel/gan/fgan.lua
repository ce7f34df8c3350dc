-- f-GAN (Nowozin, Cseke & Tomioka 2016): variational divergence minimisation. The critic's raw
-- output V goes through the output activation g_f into dom f*, and
--   F(V) = E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))]
-- is maximised by D and minimised by G. As losses to minimise (LynnHo/f-GAN-Tensorflow's form):
--   fgan_d_loss = -mean g_f(V(real)) + mean f*(g_f(V(fake)))
--   fgan_g_loss = -mean f*(g_f(V(fake)))                 (the saddle-point G, paper eq. 6)
--   fgan_g_loss(..., {trick = true}) = -mean g_f(V(fake)) (the paper's sec. 3.2 alternative)
-- Rows of Table 2 (f, g_f, f*); f*(g_f(v)) is written in a stable closed form per row, with
-- sp = softplus computed as max(x,0) + log1p(e^-|x|) (no threshold), so |v| of 100 is exact
-- wherever the value itself is representable in float32. Where it is not, the result is inf:
-- KL's e^(v-1) and Hellinger's e^v - 1 for v > 88, and the activations -e^-v (reverse KL) and
-- 1 - e^-v (Hellinger) for v < -88 (the divergence estimate itself is that large).
local F = require 'duel.F'
local U = require 'duel.gan.util'

local LOG2 = math.log(2)
local function sp(x) return F.softplus(x, {threshold = math.huge}) end

-- f: the generator function of the divergence (u > 0; Pearson: any u);
-- activation: g_f; conjugate: f* (its domain as the table says); conj_activation: f*(g_f(v));
-- f_prime_1: f'(1), where f*(f'(1)) = f'(1) and the estimate is 0.
local D = {
  kl = {
    f = function(u) return u * u:log() end,
    activation = function(v) return v end,
    conjugate = function(t) return (t - 1):exp() end,
    conj_activation = function(v) return (v - 1):exp() end,
    f_prime_1 = 1,
  },
  reverse_kl = {
    f = function(u) return -u:log() end,
    activation = function(v) return -(-v):exp() end,
    conjugate = function(t) return -(-t):log() - 1 end,    -- t < 0
    conj_activation = function(v) return v - 1 end,         -- -1 - log(e^-v)
    f_prime_1 = -1,
  },
  pearson = {
    f = function(u) return (u - 1) * (u - 1) end,
    activation = function(v) return v end,
    conjugate = function(t) return t * t * 0.25 + t end,
    conj_activation = function(v) return v * v * 0.25 + v end,
    f_prime_1 = 0,
  },
  hellinger = {
    f = function(u) local r = u:sqrt() - 1; return r * r end,
    activation = function(v) return 1 - (-v):exp() end,
    conjugate = function(t) return t / (1 - t) end,        -- t < 1
    conj_activation = function(v) return v:exp() - 1 end,   -- (1 - e^-v) / e^-v
    f_prime_1 = 0,
  },
  js = {
    f = function(u) return -(u + 1) * ((u + 1) * 0.5):log() + u * u:log() end,
    activation = function(v) return LOG2 - sp(-v) end,      -- log 2 - log(1 + e^-v)
    conjugate = function(t) return -(2 - t:exp()):log() end, -- t < log 2
    conj_activation = function(v) return sp(v) - LOG2 end,  -- -log(2 sigmoid(-v))
    f_prime_1 = 0,
  },
  gan = {
    f = function(u) return u * u:log() - (u + 1) * (u + 1):log() end,
    activation = function(v) return -sp(-v) end,            -- log sigmoid(v)
    conjugate = function(t) return -(1 - t:exp()):log() end, -- t < 0
    conj_activation = function(v) return sp(v) end,         -- -log(1 - sigmoid(v))
    f_prime_1 = -LOG2,
  },
}

local NAMES = {'kl', 'reverse_kl', 'pearson', 'hellinger', 'js', 'gan'}

local function div_of(op, div)
  local d = type(div) == 'string' and D[div] or nil
  if not d then
    U.fail(op,
           "divergence must be 'kl', 'reverse_kl', 'pearson', 'hellinger', 'js' or 'gan', got %s",
           type(div) == 'string' and ("'" .. div .. "'") or U.describe(div))
  end
  return d
end

return function(gan)
  gan.fgan_divergences = D
  gan.fgan_names = NAMES

  -- gan.fgan_d_loss(div, real_out, fake_out) = -mean g_f(real_out) + mean f*(g_f(fake_out))
  function gan.fgan_d_loss(div, real_out, fake_out)
    local d = div_of('fgan_d_loss', div)
    U.tensor('fgan_d_loss', real_out, 'real_out')
    U.tensor('fgan_d_loss', fake_out, 'fake_out')
    return d.conj_activation(fake_out):mean() - d.activation(real_out):mean()
  end

  -- gan.fgan_g_loss(div, fake_out [, {trick=false}])
  function gan.fgan_g_loss(div, fake_out, opts)
    local d = div_of('fgan_g_loss', div)
    U.tensor('fgan_g_loss', fake_out, 'fake_out')
    opts = U.opts('fgan_g_loss', opts, {trick = true})
    if U.boolean('fgan_g_loss', opts.trick, false, 'option trick') then
      return -d.activation(fake_out):mean()
    end
    return -d.conj_activation(fake_out):mean()
  end
end
