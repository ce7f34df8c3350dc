-- Full GAN training steps, timed: noise sampling, forwards, losses, backwards and optimizer
-- steps (issue 9's cases). "Real" data is a fixed random tensor made once, so data loading is
-- not timed. bench/steps_torch.py is the same in PyTorch (same nets, init, batches, losses,
-- optimizers); `make bench-compare` runs both.
--   luajit bench/steps.lua --case NAME [--threads 2] [--steps N] [--warmup W] [--seed 1]
--                          [--budget S]  (stop early once the timed steps took S seconds (20),
--                                         after at least 2; warm-up likewise after S/2)
--                          [--conv onednn|gemm] [--sgemm onednn|openblas]  (the backends,
--                                         duel.set_conv_backend / set_sgemm_backend; default:
--                                         the build's)
-- prints one JSON line: {"case", "ms_median", "ms_min", "ms_max", "steps", "peak_rss_mb"}
-- (peak RSS is VmHWM of /proc/self/status, the whole process), plus cpu_ms_median: process CPU
-- time per step, all threads (spinning included), which a loaded machine disturbs less.
-- Nets come from the experiments' builders (experiments/zoo_models.lua, models.lua) wherever
-- they are the case's net, so this times what the experiment scripts run.
local duel = require 'duel'
local zoo = require 'experiments.zoo_models'
local models = require 'experiments.models'
local nn, F, gan, optim = duel.nn, duel.F, duel.gan, duel.optim

local o = {case = nil, threads = 2, steps = nil, warmup = nil, seed = 1, budget = 20,
           conv = duel.conv_backend(), sgemm = duel.sgemm_backend()}
local i = 1
while arg[i] do
  local k = arg[i]:match('^%-%-(.+)$')
  if not k or o[k] == nil and k ~= 'case' and k ~= 'steps' and k ~= 'warmup' then
    error(('steps.lua: unknown option, got %s'):format(arg[i]), 0)
  end
  local word = k == 'case' or k == 'conv' or k == 'sgemm'
  o[k] = word and arg[i + 1] or tonumber(arg[i + 1])
  i = i + 2
end

local function adam(m, lr, b2) return optim.Adam(m, {lr = lr, betas = {0.5, b2 or 0.999}}) end
local function images(n, c, s) return duel.rand(n, c, s, s) * 2 - 1 end

-- one D update on real and G(z):detach(), then one G update through the same fake
-- (the PyTorch DCGAN example's loop, and experiments/dcgan.lua's)
local function standard(G, D, oG, oD, real, noise, kind)
  return function()
    local fake = G(noise())
    oD:zero_grad()
    gan.d_loss(kind, D(real), D(fake:detach())):backward()
    oD:step()
    oG:zero_grad()
    gan.g_loss(kind, D(fake)):backward()
    oG:step()
  end
end

-- n_critic critic updates with the WGAN-GP penalty (double backward), then one G update
-- (experiments/wgan_gp.lua's loop)
local function wgangp(G, D, oG, oD, real, noise, n_critic)
  return function()
    for _ = 1, n_critic do
      local fake = duel.no_grad(function() return G(noise()) end)
      oD:zero_grad()
      local ld = gan.d_loss('wgan', D(real), D(fake))
      local gp = gan.gradient_penalty(D, real, fake, {lambda = 10})
      ;(ld + gp):backward()
      oD:step()
    end
    oG:zero_grad()
    gan.g_loss('wgan', D(G(noise()))):backward()
    oG:step()
  end
end

local function toy(batch)
  return function()
    local G, D = zoo.mlp{256, 128, 128, 2}, zoo.mlp{2, 128, 128, 1}
    return standard(G, D, adam(G, 1e-4), adam(D, 1e-4), duel.randn(batch, 2),
                    function() return duel.randn(batch, 256) end, 'nonsaturating')
  end
end

-- DCGAN for 1x28x28: z -> 7x7x256 -> 14x14x128 -> 28x28x1 (tanh); D mirrors it (the usual
-- MNIST-sized DCGAN of the PyTorch examples; the zoo's nets are 32x32)
local function dcgan28_nets()
  local G = zoo.dcgan_init(nn.Sequential{nn.View(100, 1, 1),
    nn.ConvTranspose2d(100, 256, 7, {bias = false}), nn.BatchNorm2d(256), nn.ReLU(),
    nn.ConvTranspose2d(256, 128, 4, {stride = 2, padding = 1, bias = false}),
    nn.BatchNorm2d(128), nn.ReLU(),
    nn.ConvTranspose2d(128, 1, 4, {stride = 2, padding = 1, bias = false}), nn.Tanh()})
  local D = zoo.dcgan_init(nn.Sequential{
    nn.Conv2d(1, 64, 4, {stride = 2, padding = 1, bias = false}), nn.LeakyReLU(0.2),
    nn.Conv2d(64, 128, 4, {stride = 2, padding = 1, bias = false}), nn.BatchNorm2d(128),
    nn.LeakyReLU(0.2), nn.Conv2d(128, 1, 7, {bias = false}), nn.Flatten()})
  return G, D
end

-- InfoGAN's MNIST nets (openai/InfoGAN): G FC 74-1024-6272, deconvs to 1x28x28; D's body two
-- convs and FC 1024 shared by the D head (1 logit) and the Q head (FC 128 -> 10 logits + 2
-- means). D's optimizer steps on d_loss + the MI terms, G's on g_loss + the MI terms.
local function infogan28()
  local G = zoo.dcgan_init(nn.Sequential{nn.Linear(74, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
    nn.Linear(1024, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(), nn.View(128, 7, 7),
    nn.ConvTranspose2d(128, 64, 4, {stride = 2, padding = 1}), nn.BatchNorm2d(64), nn.ReLU(),
    nn.ConvTranspose2d(64, 1, 4, {stride = 2, padding = 1}), nn.Tanh()})
  local body = zoo.dcgan_init(nn.Sequential{
    nn.Conv2d(1, 64, 4, {stride = 2, padding = 1}), nn.LeakyReLU(0.1),
    nn.Conv2d(64, 128, 4, {stride = 2, padding = 1}), nn.BatchNorm2d(128), nn.LeakyReLU(0.1),
    nn.Flatten(), nn.Linear(128 * 7 * 7, 1024), nn.BatchNorm1d(1024), nn.LeakyReLU(0.1)})
  local dhead = zoo.dcgan_init(nn.Linear(1024, 1))
  local qhead = zoo.dcgan_init(nn.Sequential{nn.Linear(1024, 128), nn.BatchNorm1d(128),
    nn.LeakyReLU(0.1), nn.Linear(128, 12)})
  local Dall = nn.Sequential{body, dhead, qhead} -- only a parameter container
  local oG, oD = adam(G, 1e-3), adam(Dall, 2e-4)
  local real = images(64, 1, 28)
  local function mi(h, codes)
    local q = qhead(h)
    return gan.info_categorical(q:narrow(2, 1, 10), codes.cat[1])
      + gan.info_gaussian(q:narrow(2, 11, 2), nil, codes.cont)
  end
  return function()
    local z, codes = gan.sample_latent{n = 64}
    local fake = G(z)
    local hf = body(fake:detach())
    oD:zero_grad()
    ;(gan.d_loss('nonsaturating', dhead(body(real)), dhead(hf)) + mi(hf, codes)):backward()
    oD:step()
    oG:zero_grad()
    local h = body(fake)
    ;(gan.g_loss('nonsaturating', dhead(h)) + mi(h, codes)):backward()
    oG:step()
  end
end

local function set_grad(m, on)
  for _, p in ipairs(m:parameters()) do p:requires_grad_(on) end
end

-- experiments/cyclegan.lua's step at the paper's widths (ngf = ndf = 64, 6 blocks for 128 px);
-- the image pool is left out (a fresh pool of 50 returns the query itself anyway)
local function cyclegan128()
  local G_A, G_B = models.resnet_generator{ngf = 64, n_blocks = 6},
                   models.resnet_generator{ngf = 64, n_blocks = 6}
  local D_A, D_B = models.patchgan{ndf = 64, n_layers = 3}, models.patchgan{ndf = 64, n_layers = 3}
  local oGA, oGB, oDA, oDB = adam(G_A, 2e-4), adam(G_B, 2e-4), adam(D_A, 2e-4), adam(D_B, 2e-4)
  local A, B = images(1, 3, 128), images(1, 3, 128)
  return function()
    set_grad(D_A, false); set_grad(D_B, false)
    local fake_B, fake_A = G_A(A), G_B(B)
    local g = gan.g_loss('lsgan', D_A(fake_B)) + gan.g_loss('lsgan', D_B(fake_A))
      + F.l1(G_B(fake_B), A) * 10 + F.l1(G_A(fake_A), B) * 10
      + F.l1(G_A(B), B) * 5 + F.l1(G_B(A), A) * 5
    oGA:zero_grad(); oGB:zero_grad(); g:backward(); oGA:step(); oGB:step()
    set_grad(D_A, true); set_grad(D_B, true)
    local d = gan.d_loss('lsgan', D_A(B), D_A(fake_B:detach())) * 0.5
      + gan.d_loss('lsgan', D_B(A), D_B(fake_A:detach())) * 0.5
    oDA:zero_grad(); oDB:zero_grad(); d:backward(); oDA:step(); oDB:step()
  end
end

-- experiments/pix2pix.lua's step with unet_128 (7 downsamplings, dropout) and the 70x70
-- conditional PatchGAN, ngf = ndf = 64, BatchNorm
local function pix2pix128(batch)
  return function()
    local G = models.unet{ngf = 64, n_down = 7, norm = 'batch'}
    local D = models.patchgan{in_c = 6, ndf = 64, n_layers = 3, norm = 'batch'}
    local oG, oD = adam(G, 2e-4), adam(D, 2e-4)
    local A, B = images(batch, 3, 128), images(batch, 3, 128)
    return function()
      local fake = G(A)
      oD:zero_grad()
      ;(gan.d_loss('nonsaturating', D(duel.cat({A, B}, 2)), D(duel.cat({A, fake:detach()}, 2)))
        * 0.5):backward()
      oD:step()
      set_grad(D, false)
      oG:zero_grad()
      ;(gan.g_loss('nonsaturating', D(duel.cat({A, fake}, 2))) + F.l1(fake, B) * 100):backward()
      oG:step()
      set_grad(D, true)
    end
  end
end

-- name -> {make = function() -> step, steps, warmup}: step counts keep `make bench-compare`
-- within about 15 minutes on the 2-core machine (one timed step for the four heaviest)
local cases = {
  toy2d = {toy(512), 100, 10},
  toy2d_b64 = {toy(64), 500, 50},
  wgangp_toy2d = {function()
    local G, D = zoo.mlp{256, 128, 128, 2}, zoo.mlp{2, 128, 128, 1}
    return wgangp(G, D, adam(G, 1e-4, 0.9), adam(D, 1e-4, 0.9), duel.randn(512, 2),
                  function() return duel.randn(512, 256) end, 5)
  end, 20, 3},
  dcgan28 = {function()
    local G, D = dcgan28_nets()
    return standard(G, D, adam(G, 2e-4), adam(D, 2e-4), images(64, 1, 28),
                    function() return duel.randn(64, 100) end, 'nonsaturating')
  end, 6, 1},
  infogan28 = {infogan28, 6, 1},
  dcgan64 = {function()
    local G, D = zoo.G64(100, 64), zoo.D64(64)
    return standard(G, D, adam(G, 2e-4), adam(D, 2e-4), images(64, 3, 64),
                    function() return duel.randn(64, 100) end, 'nonsaturating')
  end, 1, 1},
  wgangp64 = {function()
    local G, D = zoo.G64(100, 64), zoo.D64(64, {norm = 'none'})
    return wgangp(G, D, adam(G, 1e-4, 0.9), adam(D, 1e-4, 0.9), images(64, 3, 64),
                  function() return duel.randn(64, 100) end, 5)
  end, 1, 1},
  cyclegan128 = {cyclegan128, 1, 1},
  pix2pix128 = {pix2pix128(1), 4, 1},
  pix2pix128b16 = {pix2pix128(16), 1, 1},
}

local c = cases[o.case]
if not c then
  local names = {}
  for k in pairs(cases) do names[#names + 1] = k end
  table.sort(names)
  error(('steps.lua: --case must be one of %s, got %s'):format(table.concat(names, ' '),
        tostring(o.case)), 0)
end
duel.set_num_threads(o.threads)
duel.set_conv_backend(o.conv)
duel.set_sgemm_backend(o.sgemm)
duel.manual_seed(o.seed)
local step = c[1]()
local n, warm = o.steps or c[2], o.warmup or c[3]
local w0 = duel.clock()
for k = 1, warm do
  step()
  if duel.clock() - w0 > o.budget / 2 and k >= 1 then break end
end
local t, cpu, spent = {}, {}, 0
for k = 1, n do
  local t0, c0 = duel.clock(), os.clock()
  step()
  t[k], cpu[k] = (duel.clock() - t0) * 1e3, (os.clock() - c0) * 1e3
  spent = spent + t[k] / 1e3
  if spent > o.budget and k >= 2 then n = k; break end
end
table.sort(t)
table.sort(cpu)
local function median(v) return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2 end
local hwm = 0
for line in io.lines('/proc/self/status') do
  local kb = line:match('^VmHWM:%s*(%d+)')
  if kb then hwm = tonumber(kb) / 1024 end
end
print(('{"case": "%s", "ms_median": %.3f, "ms_min": %.3f, "ms_max": %.3f, "steps": %d, '
       .. '"peak_rss_mb": %.1f, "cpu_ms_median": %.3f}'):format(o.case, median(t), t[1], t[n], n,
                                                               hwm, median(cpu)))
