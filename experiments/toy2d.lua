-- A GAN on a 2-D Gaussian mixture (PacGAN's ring8 / grid25, GAN_REFERENCE.md 3.1): any loss of
-- duel.gan or an f-GAN divergence, with an optional gradient penalty. Writes scatter plots of
-- 2,500 samples from fixed noise over the data and, at the end, the modes captured and the
-- high-quality fraction as VEEGAN and PacGAN define them (duel.metrics.toy_modes).
--   luajit experiments/toy2d.lua                                       relativistic + R1 + R2
--   luajit experiments/toy2d.lua --loss wgan --penalty gp --lambda 0.1 --n_critic 5 --lr 5e-4
--          --beta2 0.9 --steps 10000                                  WGAN-GP (gan_toy.py's lambda)
--   luajit experiments/toy2d.lua --data grid25 --loss wgan --penalty gp --lambda 1 --n_critic 5
--          --lr 5e-4 --beta2 0.9 --scale 2.828 --steps 40000          WGAN-GP, gan_toy.py's scaling
--   luajit experiments/toy2d.lua --loss nonsaturating --penalty none   the vanilla GAN
--   luajit experiments/toy2d.lua --data grid25 --loss fgan:pearson     f-GAN, Pearson chi^2
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local optim, gan, data = duel.optim, duel.gan, duel.data

local defaults = {
  data = 'ring8', loss = 'relativistic', penalty = 'r1r2', gamma = 1, lambda = 1, n_critic = 1,
  steps = 8000, batch = 512, z = 256, lr = 1e-3, decay = 0.5, beta1 = 0.5, beta2 = 0.999,
  ema = 0.999, fgan_trick = true, scale = 1, width = 128, depth = 2, seed = 1, threads = 1,
  log_every = 10, sample_every = 1000,
  ckpt_every = 1000, stop_at = 0, n_eval = 2500, out = 'runs',
  _quick = {steps = 6, batch = 64, log_every = 1, sample_every = 3, ckpt_every = 3, n_eval = 500},
}
local help = {
  data = "'ring8' (8 modes, std 0.01) or 'grid25' (25 modes, std 0.05)",
  loss = 'minimax|nonsaturating|lsgan|hinge|wgan|relativistic, or fgan:<div> with <div> '
         .. 'kl|reverse_kl|pearson|hellinger|js|gan',
  penalty = 'gp (WGAN-GP, --lambda) | r1 | r2 | r1r2 (zero-centred, --gamma) | none',
  gamma = 'R1/R2 weight: gamma/2 * mean ||grad D||^2', lambda = 'WGAN-GP weight',
  n_critic = 'D steps per G step', steps = 'G steps', batch = 'samples per batch',
  z = 'latent size (N(0, I))', lr = 'Adam learning rate (G and D)',
  decay = 'from this fraction of the run on, the learning rates fall linearly to 0 (1: never)',
  beta1 = 'Adam beta1', beta2 = 'Adam beta2',
  ema = 'plots and counts use a moving average of G with this decay (0: G itself)',
  fgan_trick = "f-GAN: G minimises -g_f(V(G(z))) (the paper's 3.2)",
  scale = 'G and D work on the data divided by this (gan_toy.py: 2.828 for its grid); '
          .. 'samples are multiplied back before plots and counts',
  width = 'units per hidden layer of G and D', depth = 'hidden layers of G and D',
  seed = 'RNG seed', threads = 'CPU threads', log_every = 'steps per metrics line',
  sample_every = 'steps per scatter plot and mode count', ckpt_every = 'steps per checkpoint',
  stop_at = 'stop after this step (0: never), to test --resume', n_eval = 'samples scored',
  out = 'folder for run folders',
}
local o, run = common.setup('toy2d', defaults, help)
local spec = data.toy2d_spec[o.data]
  or error(("toy2d: --data must be 'ring8' or 'grid25', got '%s'"):format(o.data), 0)
local fdiv = o.loss:match('^fgan:(.+)$')
local kinds = {minimax = 1, nonsaturating = 1, lsgan = 1, hinge = 1, wgan = 1, relativistic = 1}
if not (kinds[o.loss] or fdiv and gan.fgan_divergences[fdiv]) then
  error(('toy2d: unknown --loss (see --help), got %s'):format(o.loss), 0)
end
if not ({gp = 1, r1 = 1, r2 = 1, r1r2 = 1, none = 1})[o.penalty] then
  error(('toy2d: --penalty must be gp, r1, r2, r1r2 or none, got %s'):format(o.penalty), 0)
end

if not (o.scale > 0 and o.width >= 1 and o.depth >= 1) then
  error(('toy2d: --scale, --width and --depth must be positive, got %g, %g, %g'):format(
    o.scale, o.width, o.depth), 0)
end
-- by default the MLPs of issue 9's toy2d benchmark case (2 hidden layers of 128)
local function mlp(n_in, n_out) return zoo.toy_mlp(n_in, n_out, o.width, o.depth) end
local G, D = mlp(o.z, 2), mlp(2, 1)
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, o.beta2}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, o.beta2}})
local G_ema = mlp(o.z, 2)                        -- the moving average of G's weights
G_ema:load_state_dict(G:state_dict())
local G_eval = o.ema > 0 and G_ema or G
local z_eval = duel.randn(o.n_eval, o.z)         -- fixed noise for every plot and count
local x_show = data.toy2d(o.data, o.n_eval)      -- the data drawn over the samples
local e = spec.radius and 1.6 or 5.6

local last -- the latest counts
local function evaluate(tr, tag)
  local fake = duel.no_grad(function() return G_eval(z_eval) * o.scale end)
  common.scatter(('%s/samples_%s.png'):format(run.dir, tag),  -- samples blue, data orange
    {{fake, {0.12, 0.47, 0.71}}, {x_show, {1, 0.5, 0.05}, 2}}, {-e, e, -e, e})
  last = duel.metrics.toy_modes(fake, o.data)
  local f = assert(io.open(run.dir .. '/metrics.jsonl', 'a'))
  f:write(common.json{step = tr.step, eval = 'toy_modes', modes = last.modes,
                      n_modes = last.n_modes, high_quality = last.high_quality}, '\n')
  f:close()
  print(('step %d: %d/%d modes, %.1f%% high-quality samples'):format(
    tr.step, last.modes, last.n_modes, 100 * last.high_quality))
end

local function d_loss(r, f)
  if fdiv then return gan.fgan_d_loss(fdiv, r, f) end
  return gan.d_loss(o.loss, r, f)
end
local function g_loss(f, r)
  if fdiv then return gan.fgan_g_loss(fdiv, f, {trick = o.fgan_trick}) end
  return gan.g_loss(o.loss, f, r)
end
local function penalty(real, fake)
  local p = o.penalty
  if p == 'gp' then return (gan.gradient_penalty(D, real, fake, {lambda = o.lambda})) end
  local r = 0
  if p == 'r1' or p == 'r1r2' then r = r + gan.r1_penalty(D, real, {gamma = o.gamma}) end
  if p == 'r2' or p == 'r1r2' then r = r + gan.r2_penalty(D, fake, {gamma = o.gamma}) end
  return r
end

local tr = zoo.Trainer(run, o, {state = {G = G, G_ema = G_ema, D = D, oG = oG, oD = oD},
                                sample = evaluate})
for step in tr:steps() do
  oD.lr = zoo.decayed_lr(o, step)
  oG.lr = oD.lr
  local real, ld, pen
  for _ = 1, o.n_critic do
    real = data.toy2d(o.data, o.batch)
    if o.scale ~= 1 then real = real / o.scale end
    local fake = G(duel.randn(o.batch, o.z)):detach()
    oD:zero_grad()
    ld = d_loss(D(real), D(fake))
    pen = penalty(real, fake)
    ;(pen == 0 and ld or ld + pen):backward()
    oD:step()
  end
  oG:zero_grad()
  local fake_out = D(G(duel.randn(o.batch, o.z)))
  local lg = g_loss(fake_out, o.loss == 'relativistic' and D(real):detach() or nil)
  lg:backward()
  oG:step()
  if o.ema > 0 then gan.ema_(G_ema, G, o.ema) end
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item(), penalty = pen == 0 and 0 or pen:item()})
end
tr:finish() -- the final plot and count
print(('toy2d %s %s/%s: %d of %d modes, %.1f%% high quality (%d samples)'):format(
  o.data, o.loss, o.penalty, last.modes, last.n_modes, 100 * last.high_quality, o.n_eval))
