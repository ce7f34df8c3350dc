-- duel.gan: the GAN toolkit. docs/gan.md documents every function with its paper, formula and
-- convention (mean vs sum, 1/2 factors).
--   losses      d_loss / g_loss (fused C kernels, csrc/ops/gan_loss.c), f-GAN (fgan.lua)
--   penalties   gradient_penalty, r1_penalty, r2_penalty, grad_norm_penalty (penalty.lua)
--   InfoGAN     info_categorical, info_gaussian, sample_latent (info.lua)
--   helpers     feature_matching, ImagePool, ema_, interpolate (helpers.lua)
local core = require 'duel.core'

local gan = {}

-- gan.d_loss(kind, real_out, fake_out) and gan.g_loss(kind, fake_out [, real_out]): logits or
-- critic values of any shape, each term a mean; kind is one of gan.kinds. real_out is needed by
-- g_loss only for 'relativistic' (Huang 2024), which pairs real_out and fake_out by index.
gan.d_loss = core._gan.d_loss
gan.g_loss = core._gan.g_loss
gan.kinds = {'minimax', 'nonsaturating', 'lsgan', 'hinge', 'wgan', 'relativistic'}

require('duel.gan.fgan')(gan)
require('duel.gan.penalty')(gan)
require('duel.gan.info')(gan)
require('duel.gan.helpers')(gan)

return gan
