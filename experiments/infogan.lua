-- InfoGAN (Chen et al. 2016; openai/InfoGAN run_mnist_exp.py, GAN_REFERENCE.md 1.5) on
-- Fashion-MNIST 32x32: z = 62 U(-1,1) noise | one-hot of a 10-way categorical code | 2 U(-1,1)
-- continuous codes (gan.sample_latent). A Q head on D's shared body predicts the codes of G's
-- samples; both players add lambda * (categorical cross-entropy + the fixed-std Gaussian NLL of
-- the continuous codes), which maximises the lower bound L_I = H(c) - CE on I(c; G(z,c)).
-- lambda 1 for both code types, Adam lr G 1e-3, D and Q 2e-4, beta1 0.5, one D step then one G
-- step on the same real batch, BCE (non-saturating) GAN loss, as the paper's code. The nets are
-- DCGAN-shaped and smaller than the paper's (the 10-minute CPU budget).
-- At the end: the categorical code's cluster accuracy, i.e. the best one-to-one matching of code
-- values to the reference classifier's predicted classes on generated samples (Hungarian).
--   luajit experiments/infogan.lua
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo2 = require 'experiments.zoo_models2'
local optim, gan, F = duel.optim, duel.gan, duel.F

local defaults, help = zoo.options({
  steps = 2000, batch = 64, noise = 62, n_cat = 10, n_cont = 2, ngf = 32, ndf = 32, hidden = 256,
  lr_g = 1e-3, lr_d = 2e-4, beta1 = 0.5, lambda_cat = 1, lambda_cont = 1, eval_n = 2000,
  sample_every = 250, ckpt_every = 250,
  _quick = {steps = 4, batch = 16, log_every = 1, sample_every = 2, ckpt_every = 2, eval_n = 200},
}, {
  noise = 'incompressible noise size, U(-1,1)', n_cat = 'values of the categorical code',
  n_cont = 'continuous codes, U(-1,1)', hidden = "width of D's last shared layer",
  lr_g = "G's Adam learning rate", lr_d = "D's and Q's Adam learning rate", beta1 = 'Adam beta1',
  lambda_cat = 'weight of the categorical information term',
  lambda_cont = 'weight of the continuous one',
  eval_n = 'generated samples scored for cluster accuracy at the end',
})
local o, run = common.setup('infogan', defaults, help)
local nz = o.noise + o.n_cat + o.n_cont

local G = zoo.G32(nz, o.ngf)
local D = zoo2.InfoD(o.ndf, o.hidden, o.n_cat + o.n_cont)
local oG = optim.Adam(G, {lr = o.lr_g, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr_d, betas = {o.beta1, 0.999}})

local function latent(n)
  return gan.sample_latent{n = n, noise = o.noise, categorical = {o.n_cat}, continuous = o.n_cont}
end

-- the information terms: cross-entropy of the categorical code and Gaussian NLL (std 1) of the
-- continuous ones, from Q's outputs on G(z, c)
local function info(q, codes)
  local ce = gan.info_categorical(q:narrow(2, 1, o.n_cat), codes.cat[1])
  local nll = o.n_cont > 0 and gan.info_gaussian(q:narrow(2, o.n_cat + 1, o.n_cont), nil, codes.cont)
  return ce, nll, nll and ce * o.lambda_cat + nll * o.lambda_cont or ce * o.lambda_cat
end

-- fixed latents for the grids (drawn before a resume resets the RNG): 10 noise vectors
local fixed_noise = duel.rand(10, o.noise) * 2 - 1
local function grid_latent(rows, cols, fill) -- fill(r, c) -> noise, categorical code, continuous
  local z = {}
  for r = 1, rows do for c = 1, cols do
    local noise, cat, cont = fill(r, c)
    local parts = {noise:view(1, -1), F.one_hot(duel.tensor{cat}, o.n_cat)}
    if o.n_cont > 0 then parts[3] = duel.tensor{cont} end
    z[#z + 1] = duel.cat(parts, 2)
  end end
  return duel.cat(z, 1)
end

-- rows = the categorical code's values; samples_<tag>.png: columns = noise vectors, continuous
-- codes 0; cont<i>_<tag>.png: columns sweep continuous code i over [-2, 2], the rest fixed
local function sample(tr, tag)
  duel.no_grad(function()
    local rows = o.n_cat
    local zero = {}
    for i = 1, o.n_cont do zero[i] = 0 end
    common.save_grid(('%s/samples_%s.png'):format(run.dir, tag), G(grid_latent(rows, 10,
      function(r, c) return fixed_noise[c], r, zero end)), 10)
    if tag ~= 'final' then return end
    for i = 1, o.n_cont do
      local z = grid_latent(rows, 10, function(r, c)
        local cont = {}
        for j = 1, o.n_cont do cont[j] = j == i and -2 + 4 * (c - 1) / 9 or 0 end
        return fixed_noise[1], r, cont
      end)
      common.save_grid(('%s/cont%d_final.png'):format(run.dir, i), G(z), 10)
    end
  end)
end

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, sample = sample,
                                data = zoo.fashion(o)})
for step in tr:steps() do
  local real = tr:batch()
  local z, codes = latent(o.batch)
  local fake = G(z)
  -- D and Q: BCE on real and fake, plus lambda * the information terms on the fakes
  oD:zero_grad()
  local d_real = D(real)
  local d_fake, q_fake = D(fake:detach())
  local _, _, info_d = info(q_fake, codes)
  local ld = gan.d_loss('nonsaturating', d_real, d_fake)
  ;(ld + info_d):backward()
  oD:step()
  -- G: the non-saturating loss plus the same information terms through G
  oG:zero_grad()
  local g_out, q = D(fake)
  local ce, nll, info_g = info(q, codes)
  local lg = gan.g_loss('nonsaturating', g_out)
  ;(lg + info_g):backward()
  oG:step()
  local v = {d_loss = ld:item(), g_loss = lg:item(), mi_cat = math.log(o.n_cat) - ce:item()}
  if nll then v.nll_cont = nll:item() end
  tr:log(step, v)
end
tr:finish()

-- cluster accuracy of the categorical code: generate eval_n samples, let the reference classifier
-- label them, and match code values to classes one to one (metrics.cluster_accuracy)
local z, codes = latent(o.eval_n)
local x, q_codes = duel.no_grad(function()
  local x = G(z)
  local _, q = D(x)
  return x, q:narrow(2, 1, o.n_cat):argmax(2):view(-1)
end)
local pred = duel.metrics.classifier():predict(x)
local acc, map = duel.metrics.cluster_accuracy(codes.cat[1], pred)
local q_acc = q_codes:eq(codes.cat[1]):mean():item()
local names = {}
for code = 1, o.n_cat do names[code] = ('%d->%s'):format(code, tostring(map[code] or '-')) end
print(('infogan: cluster accuracy %.4f (code->class %s); Q recovers its own code %.4f'):format(
  acc, table.concat(names, ' '), q_acc))
local f = assert(io.open(run.dir .. '/metrics.jsonl', 'a'))
f:write(common.json{step = tr.step, eval = 'cluster_accuracy', cluster_accuracy = acc,
                    q_accuracy = q_acc, n = o.eval_n}, '\n')
f:close()
