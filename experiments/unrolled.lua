-- Unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein 2017) on PacGAN's ring8 (GAN_REFERENCE.md
-- 3.1). G minimises the surrogate f_K(theta_G, theta_D) = f(theta_G, theta_D^K), where theta_D^K
-- is D after K optimizer steps on its loss taken as tensor ops of G's samples (create_graph), so
-- G's gradient also flows through how D would react to it (zoo_models3.unroll). f is the GAN value
-- E log D(x) + E log(1 - D(G(z))) (--g_loss minimax, the paper's) or the non-saturating G loss on
-- D_K. The unrolled steps continue D's Adam moments, as poolio/unrolled_gan does; D itself then
-- takes its ordinary step. --unroll 0 is the plain GAN. Same MLPs as toy2d.lua (ReLU, 128-128).
-- At the end: modes captured and the high-quality fraction (duel.metrics.toy_modes).
--   luajit experiments/unrolled.lua                  K = 5 (the paper's 2-D runs)
--   luajit experiments/unrolled.lua --unroll 0       the same GAN without unrolling
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo3 = require 'experiments.zoo_models3'
local optim, gan, data = duel.optim, duel.gan, duel.data

local defaults = {
  data = 'ring8', unroll = 5, inner = 'adam', g_loss = 'minimax', steps = 3000, batch = 256,
  z = 256, lr_g = 1e-3, lr_d = 1e-4, beta1 = 0.5, seed = 1, threads = 1, log_every = 10,
  sample_every = 500, ckpt_every = 500, stop_at = 0, n_eval = 2500, out = 'runs',
  _quick = {steps = 4, batch = 64, unroll = 2, log_every = 1, sample_every = 2, ckpt_every = 2,
            n_eval = 500},
}
local help = {
  data = "'ring8' (8 modes, std 0.01) or 'grid25' (25 modes, std 0.05)",
  unroll = 'K: differentiable D steps inside the G loss (0: a plain GAN)',
  inner = "the unrolled update: 'adam' (continues D's Adam moments) or 'sgd' (p - lr_d g)",
  g_loss = "'minimax' (-D's BCE loss at theta_D^K, the paper's f_K) or 'nonsaturating'",
  steps = 'G steps (one D step each)', batch = 'samples per batch', z = 'latent size (N(0, I))',
  lr_g = 'G Adam learning rate', lr_d = 'D Adam learning rate (also the unrolled steps)',
  beta1 = 'Adam beta1 (G and D)', seed = 'RNG seed', threads = 'CPU threads',
  log_every = 'steps per metrics line', sample_every = 'steps per scatter plot and mode count',
  ckpt_every = 'steps per checkpoint', stop_at = 'stop after this step (0: never), to test --resume',
  n_eval = 'samples scored', out = 'folder for run folders',
}
local o, run = common.setup('unrolled', defaults, help)
local spec = data.toy2d_spec[o.data]
  or error(("unrolled: --data must be 'ring8' or 'grid25', got '%s'"):format(o.data), 0)
if o.inner ~= 'adam' and o.inner ~= 'sgd' then
  error(("unrolled: --inner must be 'adam' or 'sgd', got '%s'"):format(o.inner), 0)
end
if o.g_loss ~= 'minimax' and o.g_loss ~= 'nonsaturating' then
  error(("unrolled: --g_loss must be 'minimax' or 'nonsaturating', got '%s'"):format(o.g_loss), 0)
end
if o.unroll < 0 or o.unroll ~= math.floor(o.unroll) then
  error(('unrolled: --unroll must be a whole number >= 0, got %s'):format(o.unroll), 0)
end

local G, D = zoo.mlp{o.z, 128, 128, 2}, zoo.mlp{2, 128, 128, 1}
local oG = optim.Adam(G, {lr = o.lr_g, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr_d, betas = {o.beta1, 0.999}})
local z_eval = duel.randn(o.n_eval, o.z)         -- fixed noise for every plot and count
local x_show = data.toy2d(o.data, o.n_eval)
local e = spec.radius and 1.6 or 5.6

local last
local function evaluate(tr, tag)
  local fake = duel.no_grad(function() return G(z_eval) end)
  common.scatter(('%s/samples_%s.png'):format(run.dir, tag),  -- samples blue, data orange
    {{fake, {0.12, 0.47, 0.71}}, {x_show, {1, 0.5, 0.05}, 2}}, {-e, e, -e, e})
  last = duel.metrics.toy_modes(fake, o.data)
  local f = assert(io.open(run.dir .. '/metrics.jsonl', 'a'))
  f:write(common.json{step = tr.step, eval = 'toy_modes', modes = last.modes, unroll = o.unroll,
                      n_modes = last.n_modes, high_quality = last.high_quality}, '\n')
  f:close()
  print(('step %d: %d/%d modes, %.1f%% high-quality samples'):format(
    tr.step, last.modes, last.n_modes, 100 * last.high_quality))
end

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, sample = evaluate})
for step in tr:steps() do
  -- G: through K steps of D on this batch (real and G's samples, kept in the graph)
  local real, fake = data.toy2d(o.data, o.batch), G(duel.randn(o.batch, o.z))
  local Dk = zoo3.unroll(D, oD, function(Df) return gan.d_loss('nonsaturating', Df(real), Df(fake)) end,
                         o.unroll, {inner = o.inner})
  oG:zero_grad()
  local lg = o.g_loss == 'minimax' and -gan.d_loss('nonsaturating', Dk(real), Dk(fake))
             or gan.g_loss('nonsaturating', Dk(fake))
  lg:backward()
  oG:step()
  -- D: its ordinary step on a fresh batch (zero_grad also clears what G's backward left in D)
  real = data.toy2d(o.data, o.batch)
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', D(real), D(G(duel.randn(o.batch, o.z)):detach()))
  ld:backward()
  oD:step()
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item()})
end
tr:finish()
print(('unrolled %s K=%d (%s, %s): %d of %d modes, %.1f%% high quality (%d samples)'):format(
  o.data, o.unroll, o.inner, o.g_loss, last.modes, last.n_modes, 100 * last.high_quality, o.n_eval))
