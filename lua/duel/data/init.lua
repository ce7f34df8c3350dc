-- duel.data: datasets and the data loader.
--   fashion_mnist{split=...}          Fashion-MNIST, Debian's dataset-fashion-mnist (fashion.lua)
--   toy2d(name, n), toy2d_spec        PacGAN's ring8 / grid25 mixtures (toy2d.lua)
--   ImageFolder, Unaligned, Aligned   datasets over folders of images (folders.lua)
--   make_fashion_domains, make_fashion_edges   image-to-image tasks written from Fashion-MNIST
--   DataLoader(ds, {...})             batches, shuffling, background decoding (loader.lua)
-- The guide with examples is docs/data.md.
local fashion = require 'duel.data.fashion'
local toy = require 'duel.data.toy2d'
local folders = require 'duel.data.folders'

local data = {}
data.fashion_mnist = fashion.fashion_mnist
data.fashion_mnist_classes = fashion.CLASS_NAMES
data.make_fashion_domains = fashion.make_fashion_domains
data.make_fashion_edges = fashion.make_fashion_edges
data.read_idx = fashion.read_idx
data.toy2d, data.toy2d_spec = toy.toy2d, toy.spec
data.ImageFolder = folders.ImageFolder
data.Unaligned = folders.Unaligned
data.Aligned = folders.Aligned
data.DataLoader = require 'duel.data.loader'

return data
