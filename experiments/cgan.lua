-- Conditional GAN (Mirza & Osindero 2014) with DCGAN layers on Fashion-MNIST 32x32: the class
-- label enters G as a one-hot vector concatenated to z, and D as 10 constant one-hot channels
-- concatenated to the image. BCE with the non-saturating G loss, Adam 2e-4 (0.5, 0.999), fake
-- labels drawn uniformly. The grid has one row per class (the same 10 latents in every row).
--   luajit experiments/cgan.lua
local duel = require 'duel'
local common = require 'experiments.common'
local zoo = require 'experiments.zoo_models'
local zoo2 = require 'experiments.zoo_models2'
local optim, gan, F = duel.optim, duel.gan, duel.F

local defaults, help = zoo.options({
  steps = 1500, lr = 2e-4, beta1 = 0.5, classes = 10, sample_every = 250, ckpt_every = 250,
}, {
  lr = 'Adam learning rate', beta1 = 'Adam beta1', classes = 'number of classes',
})
local o, run = common.setup('cgan', defaults, help)
local k = o.classes

local G = zoo.G32(o.nz + k, o.ngf)          -- input: [z | one-hot(y)]
local D = zoo2.ConcatD(o.ndf, k)            -- input: [x | one-hot(y) as maps]
local oG = optim.Adam(G, {lr = o.lr, betas = {o.beta1, 0.999}})
local oD = optim.Adam(D, {lr = o.lr, betas = {o.beta1, 0.999}})

local function gen(z, y) return G(duel.cat({z, F.one_hot(y, k)}, 2)) end
local function disc(x, y) return D(duel.cat({x, zoo2.label_maps(y, k, 32, 32)}, 2)) end
local function random_labels(n) return zoo2.random_labels(n, k) end

local tr = zoo.Trainer(run, o, {state = {G = G, D = D, oG = oG, oD = oD}, nz = o.nz,
                                sample = zoo2.class_sampler(run, gen, o.nz, k),
                                data = zoo2.fashion_labelled(o)})
for step in tr:steps() do
  local b = tr:batch()
  local y = random_labels(o.batch)
  local fake = gen(tr:noise(), y)
  oD:zero_grad()
  local ld = gan.d_loss('nonsaturating', disc(b.images, b.labels), disc(fake:detach(), y))
  ld:backward()
  oD:step()
  oG:zero_grad()
  local lg = gan.g_loss('nonsaturating', disc(fake, y))
  lg:backward()
  oG:step()
  tr:log(step, {d_loss = ld:item(), g_loss = lg:item()})
end
tr:finish()
