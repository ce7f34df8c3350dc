-- InfoGAN (Chen et al. 2016; openai/InfoGAN): the variational mutual-information terms and a
-- latent sampler. For a code c ~ p(c) fed to G and Q's posterior q(c | x) read off D's trunk,
--   L_I = E[log q(c | G(z,c))] + H(c) <= I(c; G(z,c)),
-- so minimising the NLL -E[log q(c | G(z,c))] maximises this lower bound (H(c) is a constant:
-- ln K for a uniform categorical code).
--   info_categorical(logits {N,K}, codes {N} 1-based) = mean_i -log softmax(logits_i)[c_i]
--     (cross-entropy, mean over samples; L_I = ln K - this)
--   info_gaussian(mean {N,D}, log_std {N,D} or nil, codes {N,D})
--     = mean_i sum_d [ 0.5 log(2 pi) + log_std_id + 0.5 ((c_id - mean_id) / std_id)^2 ]
--     the factored Gaussian NLL with its 0.5 log(2 pi) constant; nil log_std means std = 1, as
--     the original code (Uniform(1, fix_std=True) codes).
--   sample_latent{n=, noise=62, noise_dist='uniform', categorical={10}, continuous=2,
--                 continuous_dist='uniform'} -> z {n, noise + sum K + continuous}, codes
--     the MNIST setup of run_mnist_exp.py: 62 U(-1,1) noise, one Cat(10), two U(-1,1) codes.
--     z = [noise | one-hot of each categorical code | continuous codes], in that order;
--     codes = {cat = {c1 {n}, c2 {n}, ...} (1-based), cont = {n, continuous} or nil}.
local core = require 'duel.core'
local F = require 'duel.F'
local U = require 'duel.gan.util'

local HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

return function(gan)
  function gan.info_categorical(logits, codes)
    local op = 'info_categorical'
    U.tensor(op, logits, 'logits')
    U.tensor(op, codes, 'codes')
    if logits:dim() ~= 2 then
      U.fail(op, 'logits must be 2-D {N,K}, got %s', U.shape_str(logits))
    end
    if codes:dim() ~= 1 or codes:size(1) ~= logits:size(1) then
      U.fail(op, 'codes must be 1-D {%d} (1-based classes) to match logits %s, got %s',
             logits:size(1), U.shape_str(logits), U.shape_str(codes))
    end
    local ok, r = pcall(F.cross_entropy, logits, codes)
    if not ok then error((tostring(r):gsub('^cross_entropy:', op .. ':')), 0) end
    return r
  end

  function gan.info_gaussian(mean, log_std, codes)
    local op = 'info_gaussian'
    U.tensor(op, mean, 'mean')
    U.tensor(op, codes, 'codes')
    if mean:dim() < 1 or mean:size(1) < 1 then
      U.fail(op, 'mean must have a batch dimension {N,...}, got %s', U.shape_str(mean))
    end
    if U.shape_str(codes) ~= U.shape_str(mean) then
      U.fail(op, 'codes must have the shape of mean %s, got %s', U.shape_str(mean),
             U.shape_str(codes))
    end
    local diff = codes - mean
    local per
    if log_std == nil then
      per = diff * diff * 0.5
    else
      U.tensor(op, log_std, 'log_std')
      if U.shape_str(log_std) ~= U.shape_str(mean) then
        U.fail(op, 'log_std must be nil or have the shape of mean %s, got %s', U.shape_str(mean),
               U.shape_str(log_std))
      end
      local z = diff * (-log_std):exp()
      per = z * z * 0.5 + log_std
    end
    return per:sum() / mean:size(1) + HALF_LOG_2PI * (mean:numel() / mean:size(1))
  end

  local function uniform_pm1(n, d) return core.rand(n, d) * 2 - 1 end

  function gan.sample_latent(opts)
    local op = 'sample_latent'
    opts = U.opts(op, opts, {n = true, noise = true, noise_dist = true, categorical = true,
                             continuous = true, continuous_dist = true})
    local n = U.whole(op, opts.n, nil, 'n', 1)
    local noise = U.whole(op, opts.noise, 62, 'noise', 0)
    local noise_dist = U.choice(op, opts.noise_dist, 'uniform', 'noise_dist', {'uniform', 'normal'})
    local cont = U.whole(op, opts.continuous, 2, 'continuous', 0)
    local cont_dist = U.choice(op, opts.continuous_dist, 'uniform', 'continuous_dist',
                               {'uniform', 'normal'})
    local cats = opts.categorical
    if cats == nil then cats = {10} end
    if type(cats) == 'number' then cats = {cats} end
    if type(cats) ~= 'table' then
      U.fail(op, 'categorical must be a number or a table of class counts, got %s', type(cats))
    end
    for i = 1, #cats do U.whole(op, cats[i], nil, 'categorical[' .. i .. ']', 1) end
    local parts, codes = {}, {cat = {}}
    if noise > 0 then
      parts[#parts + 1] = noise_dist == 'uniform' and uniform_pm1(n, noise) or core.randn(n, noise)
    end
    for i, k in ipairs(cats) do
      local u = core.rand(n):totable()
      local c = {}
      for j = 1, n do c[j] = math.min(math.floor(u[j] * k) + 1, k) end
      codes.cat[i] = core.tensor(c)
      parts[#parts + 1] = F.one_hot(codes.cat[i], k)
    end
    if cont > 0 then
      codes.cont = cont_dist == 'uniform' and uniform_pm1(n, cont) or core.randn(n, cont)
      parts[#parts + 1] = codes.cont
    end
    if #parts == 0 then
      U.fail(op, 'the latent must have at least one dimension, got %s', 'none')
    end
    return #parts == 1 and parts[1]:clone() or core.cat(parts, 2), codes
  end
end
