-- GAN training helpers: feature matching (Salimans 2016), the CycleGAN image pool (Shrivastava
-- 2017; Zhu 2017), the generator's exponential moving average (Karras 2018; Yazici 2019;
-- GAN_stability's take_model_average), and latent interpolation (lerp / slerp, White 2016).
local core = require 'duel.core'
local U = require 'duel.gan.util'

return function(gan)
  -- gan.feature_matching(f_real {N,...}, f_fake {M,...}) =
  --   mean over features of (mean_batch f_real - mean_batch f_fake)^2
  -- The paper writes ||E f(x) - E f(G(z))||_2^2 (a sum over features); the released improved-gan
  -- code takes T.mean(T.square(m1 - m2)), the mean used here (= the paper's value / #features).
  function gan.feature_matching(f_real, f_fake)
    local op = 'feature_matching'
    U.tensor(op, f_real, 'f_real')
    U.tensor(op, f_fake, 'f_fake')
    local sr, sf = f_real:size(), f_fake:size()
    local same = #sr == #sf and #sr >= 1 and sr[1] >= 1 and sf[1] >= 1
    for d = 2, #sr do same = same and sr[d] == sf[d] end
    if not same then
      U.fail(op, 'f_real and f_fake must be {N,...} with the same feature shape, got %s and %s',
             U.shape_str(f_real), U.shape_str(f_fake))
    end
    local d = f_real:mean(1) - f_fake:mean(1)
    return (d * d):mean()
  end

  -- ---- ImagePool ------------------------------------------------------------------------------
  -- gan.ImagePool(size):query(images {N,...}) -> {N,...}, detached. Per image, as the PyTorch
  -- port's util/image_pool.py: while fewer than `size` images are stored, store it and return
  -- it; once full, with probability 1/2 return a uniformly chosen stored image and store the new
  -- one in its place, else return the new one. size 0 returns the batch unchanged (detached).
  -- The draws come from duel's RNG (two uniforms per image per query), so duel.manual_seed
  -- makes a run reproducible.
  local ImagePool = {}
  ImagePool.__index = ImagePool

  function gan.ImagePool(size)
    U.whole('ImagePool', size, nil, 'size', 0)
    return setmetatable({size = size, images = {}}, ImagePool)
  end

  function ImagePool:__tostring()
    return ('ImagePool(%d, %d stored)'):format(self.size, #self.images)
  end

  function ImagePool:query(images)
    U.tensor('ImagePool:query', images, 'images')
    if images:dim() < 1 or images:size(1) < 1 then
      U.fail('ImagePool:query', 'images must be a batch {N,...} with N >= 1, got %s',
             U.shape_str(images))
    end
    if self.size == 0 then return images:detach() end
    return U.no_grad(function()
      local n = images:size(1)
      local u = core.rand(n, 2):totable()
      local out = {}
      for i = 1, n do
        local img = images:narrow(1, i, 1):detach()
        if #self.images < self.size then
          self.images[#self.images + 1] = img:clone()
          out[i] = img
        elseif u[i][1] > 0.5 then
          local k = math.min(math.floor(u[i][2] * self.size) + 1, self.size)
          out[i] = self.images[k]
          self.images[k] = img:clone()
        else
          out[i] = img
        end
      end
      return core.cat(out, 1)
    end)
  end

  -- the stored images as one tensor {k,...} (nil while empty), for checkpoints: with it a resumed
  -- CycleGAN run queries the same history as an uninterrupted one
  function ImagePool:state_dict()
    return {size = self.size, images = #self.images > 0 and core.cat(self.images, 1) or nil}
  end

  function ImagePool:load_state_dict(s)
    local n = s.images and s.images:size(1) or 0
    if s.size ~= self.size or n > self.size then
      U.fail('ImagePool:load_state_dict', 'the state must be of a pool of size %d, got size %s '
             .. 'with %d images', self.size, tostring(s.size), n)
    end
    self.images = {}
    for i = 1, n do self.images[i] = s.images:narrow(1, i, 1):clone() end
  end

  -- ---- ema_ -----------------------------------------------------------------------------------
  -- gan.ema_(G_ema, G, decay): p_ema = decay p_ema + (1 - decay) p for every parameter, and
  -- buffers (BatchNorm statistics, spectral-norm vectors) copied, in place under no_grad.
  -- Both modules must have the same parameter and buffer names and shapes. Returns G_ema.
  local function entries(op, list, other_list, what)
    if #list ~= #other_list then
      U.fail(op, 'G_ema and G must have the same structure, got %d and %d %s', #list,
             #other_list, what)
    end
    for i = 1, #list do
      local a, b = list[i], other_list[i]
      if a[1] ~= b[1] or U.shape_str(a[2]) ~= U.shape_str(b[2]) then
        U.fail(op, 'G_ema and G must have the same structure, got %s %s %s and %s %s',
               what:sub(1, -2), a[1], U.shape_str(a[2]), b[1], U.shape_str(b[2]))
      end
    end
  end

  local function module(op, m, what)
    local ok, f = pcall(function() return m.named_parameters end)
    if not ok or type(f) ~= 'function' or U.is_tensor(m) then
      U.fail(op, '%s must be a module, got %s', what, U.describe(m))
    end
  end

  function gan.ema_(G_ema, G, decay)
    local op = 'ema_'
    module(op, G_ema, 'G_ema')
    module(op, G, 'G')
    decay = U.number(op, decay, nil, 'decay', 0, 1)
    if G_ema == G then
      U.fail(op, 'G_ema and G must be different modules, got %s', 'the same one twice')
    end
    local pe, p = G_ema:named_parameters(), G:named_parameters()
    local be, b = G_ema:named_buffers(), G:named_buffers()
    entries(op, pe, p, 'parameters')
    entries(op, be, b, 'buffers')
    U.no_grad(function()
      for i = 1, #pe do
        local t = pe[i][2]
        t:copy_(t * decay + p[i][2] * (1 - decay))
      end
      for i = 1, #be do be[i][2]:copy_(b[i][2]) end
    end)
    return G_ema
  end

  -- ---- interpolate ----------------------------------------------------------------------------
  -- gan.interpolate(z1, z2, n, {mode='lerp'}) -> {n, D}: rows at t = 0, 1/(n-1), ..., 1, so the
  -- first row is z1 and the last z2 exactly. z1, z2: {D} or {1,D}.
  --   lerp:  (1 - t) z1 + t z2
  --   slerp: sin((1-t) w)/sin w z1 + sin(t w)/sin w z2, w the angle between z1 and z2: along the
  --          great circle, so |z| stays |z1| when |z1| = |z2| (ganhacks #3, White 2016). For
  --          (anti)parallel vectors (1 - |cos w| < 1e-6) the circle is degenerate: lerp instead.
  -- The coefficients are computed from the values (in doubles) and not differentiated; the
  -- result is differentiable w.r.t. z1 and z2 with them held fixed.
  function gan.interpolate(z1, z2, n, opts)
    local op = 'interpolate'
    U.tensor(op, z1, 'z1')
    U.tensor(op, z2, 'z2')
    local function flat(z, what)
      if z:dim() == 1 or (z:dim() == 2 and z:size(1) == 1) then return z:reshape(1, z:numel()) end
      U.fail(op, '%s must be {D} or {1,D}, got %s', what, U.shape_str(z))
    end
    local a, b = flat(z1, 'z1'), flat(z2, 'z2')
    if a:size(2) ~= b:size(2) then
      U.fail(op, 'z1 and z2 must have the same size, got %s and %s', U.shape_str(z1),
             U.shape_str(z2))
    end
    n = U.whole(op, n, nil, 'n', 2)
    opts = U.opts(op, opts, {mode = true})
    local mode = U.choice(op, opts.mode, 'lerp', 'mode', {'lerp', 'slerp'})
    local ca, cb = {}, {}
    local omega, so
    if mode == 'slerp' then
      local va, vb = a:view(-1):totable(), b:view(-1):totable()
      local dot, na, nb = 0, 0, 0
      for i = 1, #va do
        dot, na, nb = dot + va[i] * vb[i], na + va[i] * va[i], nb + vb[i] * vb[i]
      end
      if na > 0 and nb > 0 then
        local c = math.max(-1, math.min(1, dot / math.sqrt(na * nb)))
        if 1 - math.abs(c) >= 1e-6 then omega = math.acos(c); so = math.sin(omega) end
      end
    end
    for i = 1, n do
      local t = (i - 1) / (n - 1)
      if omega then
        ca[i], cb[i] = {math.sin((1 - t) * omega) / so}, {math.sin(t * omega) / so}
      else
        ca[i], cb[i] = {1 - t}, {t}
      end
    end
    return core.tensor(ca) * a + core.tensor(cb) * b
  end
end
