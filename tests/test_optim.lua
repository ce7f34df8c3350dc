-- Optimizers: the first three steps of each against its update rule computed independently in
-- Lua doubles; state_dict round trips; Extragradient on the bilinear game; schedules; clipping.
local T = require 'tests.harness'
local duel = require 'duel'
local optim = duel.optim

-- loss = sum(c * p^2) with c = {1, 2, 3}: grad = 2 c p
local C = {1, 2, 3}
local function run(make, steps)
  local p = duel.tensor{1.0, -0.5, 0.25}:requires_grad_()
  local opt = make({p})
  local trace = {}
  for s = 1, steps do
    opt:zero_grad()
    ;(p * p * duel.tensor(C)):sum():backward()
    opt:step()
    trace[s] = p:totable()
  end
  return trace, opt, p
end

local function reference(update, steps)
  local p, state, trace = {1.0, -0.5, 0.25}, {}, {}
  for s = 1, steps do
    for i = 1, 3 do
      state[i] = state[i] or {}
      p[i] = update(p[i], 2 * C[i] * p[i], state[i], s)
    end
    trace[s] = {p[1], p[2], p[3]}
  end
  return trace
end

local function same_trace(got, want)
  for s = 1, #want do T.close(duel.tensor(got[s]), want[s], 2e-6, 'step ' .. s) end
end

T.case('SGD with momentum, dampening and weight decay: three steps by hand', function()
  local lr, mom, damp, wd = 0.1, 0.9, 0.1, 0.01
  local want = reference(function(p, g, st)
    local d = g + wd * p
    st.buf = st.buf and mom * st.buf + (1 - damp) * d or d
    return p - lr * st.buf
  end, 3)
  same_trace(run(function(ps) return optim.SGD(ps, {lr = lr, momentum = mom, dampening = damp, weight_decay = wd}) end, 3), want)
end)

T.case('SGD nesterov: three steps by hand', function()
  local lr, mom = 0.05, 0.8
  local want = reference(function(p, g, st)
    st.buf = st.buf and mom * st.buf + g or g
    return p - lr * (g + mom * st.buf)
  end, 3)
  same_trace(run(function(ps) return optim.SGD(ps, {lr = lr, momentum = mom, nesterov = true}) end, 3), want)
end)

T.case('Adam (DCGAN settings): three steps by hand', function()
  local lr, b1, b2, eps = 2e-4, 0.5, 0.999, 1e-8
  local want = reference(function(p, g, st, t)
    st.m = b1 * (st.m or 0) + (1 - b1) * g
    st.v = b2 * (st.v or 0) + (1 - b2) * g * g
    local mh, vh = st.m / (1 - b1 ^ t), st.v / (1 - b2 ^ t)
    return p - lr * mh / (math.sqrt(vh) + eps)
  end, 3)
  same_trace(run(function(ps) return optim.Adam(ps, {lr = lr, betas = {b1, b2}}) end, 3), want)
end)

T.case('Adam with L2 weight decay and AdamW with decoupled decay differ as specified', function()
  local lr, wd = 0.01, 0.1
  local adam = reference(function(p, g, st, t)
    g = g + wd * p
    st.m = 0.9 * (st.m or 0) + 0.1 * g
    st.v = 0.999 * (st.v or 0) + 0.001 * g * g
    return p - lr * (st.m / (1 - 0.9 ^ t)) / (math.sqrt(st.v / (1 - 0.999 ^ t)) + 1e-8)
  end, 3)
  local adamw = reference(function(p, g, st, t)
    p = p * (1 - lr * wd)
    st.m = 0.9 * (st.m or 0) + 0.1 * g
    st.v = 0.999 * (st.v or 0) + 0.001 * g * g
    return p - lr * (st.m / (1 - 0.9 ^ t)) / (math.sqrt(st.v / (1 - 0.999 ^ t)) + 1e-8)
  end, 3)
  same_trace(run(function(ps) return optim.Adam(ps, {lr = lr, weight_decay = wd}) end, 3), adam)
  same_trace(run(function(ps) return optim.AdamW(ps, {lr = lr, weight_decay = wd}) end, 3), adamw)
end)

T.case('RMSprop (WGAN settings) and centered RMSprop with momentum: three steps by hand', function()
  local lr, a, eps = 5e-5, 0.99, 1e-8
  local plain = reference(function(p, g, st)
    st.sq = a * (st.sq or 0) + (1 - a) * g * g
    return p - lr * g / (math.sqrt(st.sq) + eps)
  end, 3)
  same_trace(run(function(ps) return optim.RMSprop(ps, {lr = lr}) end, 3), plain)
  local lr2, mom = 0.01, 0.5
  local centered = reference(function(p, g, st)
    st.sq = a * (st.sq or 0) + (1 - a) * g * g
    st.ga = a * (st.ga or 0) + (1 - a) * g
    local u = g / (math.sqrt(st.sq - st.ga * st.ga) + eps)
    st.buf = mom * (st.buf or 0) + u
    return p - lr2 * st.buf
  end, 3)
  same_trace(run(function(ps) return optim.RMSprop(ps, {lr = lr2, momentum = mom, centered = true}) end, 3), centered)
end)

T.case('state_dict/load_state_dict: a resumed optimizer continues identically', function()
  local full = run(function(ps) return optim.Adam(ps, {lr = 0.05}) end, 5)
  local _, opt, p = run(function(ps) return optim.Adam(ps, {lr = 0.05}) end, 2)
  local sd = opt:state_dict()
  T.eq(sd.kind, 'Adam')
  T.eq(sd.step, {2})
  local p2 = duel.tensor(p:totable()):requires_grad_()
  local opt2 = optim.Adam({p2}, {lr = 0.05})
  opt2:load_state_dict(sd)
  for s = 3, 5 do
    opt2:zero_grad()
    ;(p2 * p2 * duel.tensor(C)):sum():backward()
    opt2:step()
    T.eq(p2:totable(), full[s], 'step ' .. s .. ' must match bit for bit')
  end
  -- hyper-parameters travel with the state (DCGAN's betas must survive a resume)
  local o3 = optim.Adam({duel.zeros(3):requires_grad_()}, {lr = 2e-4, betas = {0.5, 0.9}})
  local o4 = optim.Adam({duel.zeros(3):requires_grad_()})
  o4:load_state_dict(o3:state_dict())
  T.eq(o4.betas, {0.5, 0.9})
  T.eq(o4.lr, 2e-4)
  T.raises('load_state_dict: state is for optimizer Adam, got SGD', function()
    opt2:load_state_dict(optim.SGD({duel.zeros(3):requires_grad_()}, {lr = 1}):state_dict())
  end)
end)

T.case('parameters without a gradient are skipped; zero_grad sets grads to nil', function()
  local a, b = duel.tensor{1}:requires_grad_(), duel.tensor{1}:requires_grad_()
  local opt = optim.SGD({a, b}, {lr = 0.5})
  ;(a * 2):sum():backward()
  opt:step()
  T.close(a, {0})
  T.close(b, {1})
  opt:zero_grad()
  T.ok(a.grad == nil)
end)

T.case('hyper-parameters are fields; lr can be set by a schedule', function()
  local p = duel.zeros(2):requires_grad_()
  local opt = optim.Adam({p}, {lr = 2e-4, betas = {0.5, 0.999}})
  T.eq(opt.lr, 2e-4)
  T.eq(opt.betas, {0.5, 0.999})
  T.eq(opt.kind, 'Adam')
  local sched = optim.LinearDecay(opt, {start = 2, stop = 6})
  local lrs = {}
  for i = 1, 7 do lrs[i] = sched:step() end
  T.close(duel.tensor(lrs), {2e-4, 2e-4, 1.5e-4, 1e-4, 0.5e-4, 0, 0}, 1e-6)
  T.ok(tostring(opt):find('^Adam%(lr='), tostring(opt))
end)

T.case('clip_grad_norm_ scales all gradients to the max norm and returns the norm', function()
  local a, b = duel.tensor{3}:requires_grad_(), duel.tensor{4}:requires_grad_()
  a.grad, b.grad = duel.tensor{3}, duel.tensor{4}
  local n = optim.clip_grad_norm_({a, b}, 1)
  T.close(duel.tensor{n}, {5})
  T.close(a.grad, {0.6}, 1e-5)
  T.close(b.grad, {0.8}, 1e-5)
  T.close(duel.tensor{optim.clip_grad_norm_({a, b}, 10)}, {1}, 1e-5)
  T.close(a.grad, {0.6}, 1e-5)
end)

T.case('clip_weights_ clamps parameters in place (WGAN critic)', function()
  local w = duel.tensor{-0.5, 0.005, 0.2}:requires_grad_()
  optim.clip_weights_({w}, 0.01)
  T.close(w, {-0.01, 0.005, 0.01})
end)

-- min_x max_y x*y: simultaneous gradient steps spiral outwards; extragradient converges.
T.case('bilinear game: simultaneous steps diverge, Extragradient converges to (0,0)', function()
  local function play(extra)
    local x, y = duel.tensor{1}:requires_grad_(), duel.tensor{1}:requires_grad_()
    local ox, oy = optim.SGD({x}, {lr = 0.3}), optim.SGD({y}, {lr = 0.3})
    local ex, ey = optim.Extragradient(ox), optim.Extragradient(oy)
    local function grads()
      ox:zero_grad(); oy:zero_grad()
      local f = (x * y):sum()
      local gx, gy = unpack(duel.autograd.grad(f, {x, y}))
      x.grad, y.grad = gx, -gy -- y ascends
    end
    for _ = 1, 200 do
      grads()
      if extra then
        ex:extrapolate(); ey:extrapolate()
        grads()
        ex:step(); ey:step()
      else
        ox:step(); oy:step()
      end
    end
    return math.sqrt(x:item() ^ 2 + y:item() ^ 2)
  end
  local r_sim, r_extra = play(false), play(true)
  T.ok(r_sim > 2, 'simultaneous gradient steps should spiral away, radius ' .. r_sim)
  -- per step, simultaneous GD multiplies the radius by sqrt(1 + lr^2) and extragradient by
  -- sqrt(1 - lr^2 + lr^4): 200 steps at lr 0.3 give about 1e4 and 2e-4 from radius sqrt(2)
  T.ok(r_extra < 1e-3, 'extragradient should converge, radius ' .. r_extra)
end)

T.case('optimizer misuse gives clear errors', function()
  local p = duel.zeros(2):requires_grad_()
  T.raises_exact('Adam: parameter 1 must be a leaf tensor, got one computed by mul_scalar', function()
    optim.Adam({p * 2})
  end)
  T.raises_exact('SGD: parameter 1 must require grad, got a tensor of shape {2}', function()
    optim.SGD({duel.zeros(2)}, {lr = 0.1})
  end)
  T.raises_exact("SGD: option 'lr' must be in [0, inf], got nan", function() optim.SGD({p}) end)
  T.raises_exact("Adam: option 'lr' must be in [0, inf], got -1", function() optim.Adam({p}, {lr = -1}) end)
  T.raises_exact('Adam: betas must be numbers in [0, 1), got 1', function() optim.Adam({p}, {betas = {0.5, 1}}) end)
  T.raises_exact('SGD: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0', function()
    optim.SGD({p}, {lr = 0.1, nesterov = true})
  end)
  T.raises_exact('RMSprop: parameter 2 shares storage with parameter 1, got a duplicate', function()
    optim.RMSprop({p, p})
  end)
  T.raises_exact('Adam: got an empty parameter list', function() optim.Adam({}) end)
  T.raises('LinearDecay: need 0 <= start < stop', function() optim.LinearDecay(optim.SGD({p}, {lr = 1}), {start = 5, stop = 5}) end)
end)
