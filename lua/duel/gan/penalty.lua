-- Gradient penalties through a real discriminator, exact: the input gradient is taken with
-- autograd.grad(create_graph = true), so the penalty's own gradient w.r.t. D's weights is a true
-- second derivative (every op's backward is itself differentiable). The norm-and-penalty step is
-- the fused C op grad_norm_penalty (csrc/ops/gan_loss.c).
--
--   gradient_penalty (WGAN-GP, Gulrajani 2017):
--     x_hat = real + alpha (fake - real), alpha ~ U[0,1) per sample (inputs detached)
--     lambda * mean_i (||grad_x_hat sum D(x_hat)||_i - center)^2     (lambda 10, center 1)
--   r1_penalty / r2_penalty (Mescheder 2018; R3GAN, Huang 2024):
--     gamma/2 * mean_i ||grad_x sum D(x)||_i^2 on reals (R1) or fakes (R2)     (gamma 10)
--     The 1/2 is the paper's and R3GAN's; LMescheder/GAN_stability's code has reg_param * mean
--     without it, so its reg_param = 10 is gamma = 20 here.
-- ||.||_i is the L2 norm over every non-batch element of sample i. Each returns the penalty (a
-- 0-dim tensor) and the per-sample norms {N} (no graph), for logging.
local core = require 'duel.core'
local U = require 'duel.gan.util'

local C = core._gan
local grad = core._core.grad

-- out = D(x) must be a tensor that depends on x; g = d sum(out) / dx, kept differentiable
local function input_grad(op, D, x)
  local out = D(x)
  if not U.is_tensor(out) then U.fail(op, 'D must return a tensor, got %s', U.describe(out)) end
  if not out.requires_grad then
    U.fail(op, 'D(x) must depend on its input, got an output %s without a graph', U.shape_str(out))
  end
  return grad({out:sum()}, {x}, {create_graph = true})[1]
end

local function batch(op, x, what)
  U.tensor(op, x, what)
  if x:dim() < 1 or x:size(1) < 1 then
    U.fail(op, '%s must have a batch dimension {N,...} with N >= 1, got %s', what, U.shape_str(x))
  end
  return x
end

return function(gan)
  -- gan.grad_norm_penalty(g, {center=1, weight=1, one_sided=false}) -> penalty, norms: the fused
  -- term on a gradient you computed yourself (e.g. R1 from the D forward of the loss itself)
  function gan.grad_norm_penalty(g, opts)
    local op = 'grad_norm_penalty'
    batch(op, g, 'the gradient')
    opts = U.opts(op, opts, {center = true, weight = true, one_sided = true})
    return C.grad_norm_penalty(g, U.number(op, opts.center, 1, 'center'),
                               U.number(op, opts.weight, 1, 'weight'),
                               U.boolean(op, opts.one_sided, false, 'one_sided'))
  end

  -- gan.gradient_penalty(D, real, fake, {lambda=10, center=1, one_sided=false})
  -- one_sided: lambda * mean max(0, ||g|| - center)^2 (Petzka 2018's WGAN-LP form)
  function gan.gradient_penalty(D, real, fake, opts)
    local op = 'gradient_penalty'
    U.callable(op, D)
    batch(op, real, 'real')
    batch(op, fake, 'fake')
    if U.shape_str(real) ~= U.shape_str(fake) then
      U.fail(op, 'real and fake must have the same shape, got %s and %s', U.shape_str(real),
             U.shape_str(fake))
    end
    opts = U.opts(op, opts, {lambda = true, center = true, one_sided = true})
    local lambda = U.number(op, opts.lambda, 10, 'lambda')
    local center = U.number(op, opts.center, 1, 'center')
    local one_sided = U.boolean(op, opts.one_sided, false, 'one_sided')
    local x_hat = U.no_grad(function()
      local shape = {real:size(1)}
      for d = 2, real:dim() do shape[d] = 1 end
      local alpha = core.rand(real:size(1)):view(shape)
      local r = real:detach()
      return r + alpha * (fake:detach() - r)
    end)
    x_hat:requires_grad_(true)
    return U.enable_grad(function()
      return C.grad_norm_penalty(input_grad(op, D, x_hat), center, lambda, one_sided)
    end)
  end

  local function zero_centered(op, D, x, opts)
    U.callable(op, D)
    batch(op, x, op == 'r1_penalty' and 'real' or 'fake')
    opts = U.opts(op, opts, {gamma = true})
    local gamma = U.number(op, opts.gamma, 10, 'gamma')
    local leaf = x:detach()
    leaf:requires_grad_(true)
    return U.enable_grad(function()
      return C.grad_norm_penalty(input_grad(op, D, leaf), 0, gamma / 2, false)
    end)
  end

  -- gan.r1_penalty(D, real, {gamma=10}) = gamma/2 mean_i ||d D(real)_i / d real_i||^2
  function gan.r1_penalty(D, real, opts) return zero_centered('r1_penalty', D, real, opts) end
  -- gan.r2_penalty(D, fake, {gamma=10}): the same on fakes
  function gan.r2_penalty(D, fake, opts) return zero_centered('r2_penalty', D, fake, opts) end
end
