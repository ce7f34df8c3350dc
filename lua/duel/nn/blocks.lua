-- GAN building blocks as Lua modules over differentiable ops, so each is differentiable twice:
-- spectral_norm (Miyato 2018), MinibatchStdDev (Karras 2018), MinibatchDiscrimination
-- (Salimans 2016), SelfAttention2d (Zhang 2019, SAGAN).
local core = require 'duel.core'
local init = require 'duel.init_weights'

return function(nn)
  local Module, F = nn.Module, require 'duel.F'

  local function no_grad(fn)
    local prev = core._core.set_grad_enabled(false)
    local ok, r = pcall(fn)
    core._core.set_grad_enabled(prev)
    if not ok then error(r, 0) end
    return r
  end

  -- ---- spectral norm ---------------------------------------------------------------------------
  -- W_sn = W / sigma(W) with sigma estimated by power iteration on W viewed as {out, -1} (the
  -- output dim is dim 2 for ConvTranspose2d, as in PyTorch). u and v are buffers updated under
  -- no_grad in training only; sigma = u . (W v) keeps its gradient w.r.t. W.
  local SpectralNorm = Module:extend('SpectralNorm')
  nn.SpectralNorm = SpectralNorm

  local function weight_matrix(w, transposed)
    local m = transposed and w:transpose(1, 2) or w
    return m:reshape(m:size(1), -1)
  end

  local function normalize(t, eps) return t / (t:norm() + eps) end

  function SpectralNorm:__init(module, opt)
    opt = opt or {}
    if not Module.is_module(module) or not module.weight then
      error(('spectral_norm: expected a module with a weight, got %s'):format(type(module)), 0)
    end
    self.module = module
    rawset(self, 'iters', opt.iters or 1)
    rawset(self, 'eps', opt.eps or 1e-12)
    rawset(self, 'transposed', module.__name == 'ConvTranspose2d')
    if type(self.iters) ~= 'number' or self.iters < 1 or self.iters ~= math.floor(self.iters) then
      error(('spectral_norm: iters must be a whole number >= 1, got %s'):format(tostring(opt.iters)), 0)
    end
    local wm = weight_matrix(module.weight, self.transposed)
    self:register_buffer('weight_u', normalize(core.randn(wm:size(1)), self.eps))
    self:register_buffer('weight_v', normalize(core.randn(wm:size(2)), self.eps))
  end

  function SpectralNorm:__tostring_line() return 'SpectralNorm' end

  -- sigma(W) as a differentiable function of W (power iteration first when training)
  function SpectralNorm:sigma(w)
    local wm = weight_matrix(w, self.transposed)
    local u, v = self.weight_u, self.weight_v
    if self.training then
      no_grad(function()
        for _ = 1, self.iters do
          v:copy_(normalize(core.matmul(wm:detach():t(), u:view(-1, 1)):view(-1), self.eps))
          u:copy_(normalize(core.matmul(wm:detach(), v:view(-1, 1)):view(-1), self.eps))
        end
      end)
    end
    -- copies, so a second forward's power iteration (D(real), then D(fake), one backward)
    -- cannot overwrite what this graph saved, as PyTorch's spectral_norm does
    return (u:clone():view(1, -1):matmul(wm):matmul(v:clone():view(-1, 1))):view({})
  end

  -- the wrapped module run with W / sigma(W) for a given W (forward uses the module's own)
  function SpectralNorm:forward_with_weight(x, w, ...)
    return nn.functional_call(self.module, {weight = w / self:sigma(w)}, x, ...)
  end

  function SpectralNorm:forward(x, ...)
    return self:forward_with_weight(x, self.module.weight, ...)
  end

  function nn.spectral_norm(module, opt) return SpectralNorm(module, opt) end

  -- ---- minibatch standard deviation --------------------------------------------------------------
  -- ProGAN: the std of each feature over the batch (or over groups of group_size samples),
  -- averaged to one number per group and appended as an extra constant channel.
  local MinibatchStdDev = Module:extend('MinibatchStdDev')
  nn.MinibatchStdDev = MinibatchStdDev

  function MinibatchStdDev:__init(opt)
    rawset(self, 'group_size', (opt or {}).group_size)
  end
  function MinibatchStdDev:extra_repr() return self.group_size and ('group_size=' .. self.group_size) or '' end

  function MinibatchStdDev:forward(x)
    local s = x:size()
    if #s ~= 4 then
      error(('MinibatchStdDev: expected input {N,C,H,W}, got {%s}'):format(table.concat(s, ',')), 0)
    end
    local n, c, h, w = s[1], s[2], s[3], s[4]
    local g = math.min(self.group_size or n, n)
    if n % g ~= 0 then
      error(('MinibatchStdDev: batch %d must be divisible by the group size, got %d'):format(n, g), 0)
    end
    local y = x:reshape(g, n / g, c, h, w)
    y = y - y:mean(1, true)
    local std = ((y * y):mean(1) + 1e-8):sqrt()          -- {n/g, c, h, w}
    local m = std:reshape(n / g, c * h * w):mean(2)      -- {n/g}
    local feat = m:view(1, n / g, 1, 1, 1):expand(g, n / g, 1, h, w):reshape(n, 1, h, w)
    return core.cat({x, feat}, 2)
  end

  -- ---- minibatch discrimination ----------------------------------------------------------------
  -- Salimans et al. 2016: M = x T {N, B, C}; o(x_i)_b = sum_j exp(-||M_i,b - M_j,b||_1) over the
  -- other samples j (the self term, exp(0) = 1, is left out); output cat(x, o) {N, in + B}.
  local MinibatchDiscrimination = Module:extend('MinibatchDiscrimination')
  nn.MinibatchDiscrimination = MinibatchDiscrimination

  function MinibatchDiscrimination:__init(i, b, c)
    for _, v in ipairs({i, b, c}) do
      if type(v) ~= 'number' or v < 1 or v ~= math.floor(v) then
        error(('MinibatchDiscrimination: sizes must be whole numbers >= 1, got %s'):format(tostring(v)), 0)
      end
    end
    rawset(self, 'dims', {i, b, c})
    self.T = init.normal_(core.empty(i, b * c), 0, 1):requires_grad_()
  end
  function MinibatchDiscrimination:extra_repr() return table.concat(self.dims, ', ') end

  function MinibatchDiscrimination:forward(x)
    local i, b, c = unpack(self.dims)
    local s = x:size()
    if #s ~= 2 or s[2] ~= i then
      error(('MinibatchDiscrimination(%d, %d, %d): expected input {N,%d}, got {%s}'):format(
        i, b, c, i, table.concat(s, ',')), 0)
    end
    local n = s[1]
    local m = x:matmul(self.T):view(n, b, c)
    local d = (m:view(n, 1, b, c) - m:view(1, n, b, c)):abs():sum(4) -- {N, N, B}
    local o = (-d):exp():sum(2) - 1
    return core.cat({x, o}, 2)
  end

  -- ---- self-attention (SAGAN) -------------------------------------------------------------------
  -- f, g: 1x1 convs to C/8 channels, h: 1x1 conv to C; beta_{j,i} = softmax_i(f(x_i) . g(x_j));
  -- o_j = sum_i beta_{j,i} h(x_i); out = gamma o + x with gamma a learned scalar starting at 0.
  local SelfAttention2d = Module:extend('SelfAttention2d')
  nn.SelfAttention2d = SelfAttention2d

  function SelfAttention2d:__init(c, opt)
    opt = opt or {}
    if type(c) ~= 'number' or c < 1 or c ~= math.floor(c) then
      error(('SelfAttention2d: channels must be a whole number >= 1, got %s'):format(tostring(c)), 0)
    end
    local k = math.max(1, math.floor(c / (opt.reduction or 8)))
    rawset(self, 'channels', c)
    self.f = nn.Conv2d(c, k, 1)
    self.g = nn.Conv2d(c, k, 1)
    self.h = nn.Conv2d(c, c, 1)
    self.gamma = core.zeros(1):requires_grad_()
  end
  function SelfAttention2d:extra_repr() return tostring(self.channels) end

  function SelfAttention2d:forward(x)
    local s = x:size()
    if #s ~= 4 or s[2] ~= self.channels then
      error(('SelfAttention2d(%d): expected input {N,%d,H,W}, got {%s}'):format(
        self.channels, self.channels, table.concat(s, ',')), 0)
    end
    local n, c, hw = s[1], s[2], s[3] * s[4]
    local q = self.f(x):view(n, -1, hw):transpose(2, 3)  -- {N, HW, k}: f(x_i) in row i
    local kk = self.g(x):view(n, -1, hw)                 -- {N, k, HW}: g(x_j) in column j
    local beta = F.softmax(q:matmul(kk), 2)              -- {N, i, j}, normalised over i
    local v = self.h(x):view(n, c, hw)                   -- {N, C, i}
    local o = v:matmul(beta):view(n, c, s[3], s[4])      -- {N, C, j}
    return o * self.gamma + x
  end
end
