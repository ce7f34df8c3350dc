-- duel in one page (`make demo`): (1) fit y = sin(x) with a 2-layer MLP by plain gradient
-- descent, (2) take a gradient of a gradient -- the WGAN-GP ingredient -- and check it against
-- the closed form. Run from the checkout root: luajit experiments/autograd_demo.lua
local duel = require 'duel'
duel.manual_seed(0)

-- (1) 64 points on [-pi, pi]; MLP 1 -> 32 (tanh) -> 1; full-batch gradient descent with momentum
local x = (duel.arange(0, 63) * (2 * math.pi / 63) - math.pi):view(64, 1)
local y = x:sin()
local W1 = duel.randn(1, 32):requires_grad_()
local b1 = duel.zeros(1, 32):requires_grad_()
local W2 = (duel.randn(32, 1) * 0.2):requires_grad_()
local b2 = duel.zeros(1, 1):requires_grad_()
local params = {W1, b1, W2, b2}
local function model(inp) return (inp:matmul(W1) + b1):tanh():matmul(W2) + b2 end

local t0 = duel.clock()
local lr, momentum, loss = 0.01, 0.9, nil
local velocity = {}
for i, p in ipairs(params) do velocity[i] = duel.zeros_like(p) end
for step = 1, 3000 do
  loss = ((model(x) - y) ^ 2):mean()
  local grads = duel.autograd.grad({loss}, params)
  duel.no_grad(function() -- the update itself must not be recorded
    for i, p in ipairs(params) do
      velocity[i]:copy_(velocity[i] * momentum + grads[i])
      p:copy_(p - velocity[i] * lr)
    end
  end)
  if step == 1 or step % 500 == 0 then
    print(('fit sin(x)  step %4d  mse %.6f'):format(step, loss:item()))
  end
end
local test = duel.tensor{{-2.5}, {0.5}, {2.0}}
local pred = model(test)
for i = 1, 3 do
  local xi = test:get(i, 1)
  print(('  x = %5.2f   model %8.5f   sin(x) %8.5f'):format(xi, pred:get(i, 1), math.sin(xi)))
end
print(('fitted in %.2f s; final mse %.2e'):format(duel.clock() - t0, loss:item()))
assert(loss:item() < 5e-3, 'the MLP did not fit sin(x)')

-- (2) D(x) = sum(sin(w*x)), so grad_x D = w*cos(w*x), and the penalty P = ||grad_x D||^2 has
-- dP/dx = -w^3 * sin(2*w*x). The first grad keeps its graph (create_graph) so that P can be
-- differentiated again, exactly as in a WGAN-GP or R1 penalty.
local xs = duel.tensor{-1.0, -0.3, 0.2, 0.7, 1.5}:requires_grad_()
local w = duel.tensor{0.5, 1.0, 1.5, 2.0, -1.0}
local D = (w * xs):sin():sum()
local gD = duel.autograd.grad({D}, {xs}, {create_graph = true})[1]
local P = (gD ^ 2):sum()
local dP = duel.autograd.grad({P}, {xs})[1]
local closed = -(w ^ 3) * (w * xs * 2):sin()
local err = (dP - closed):abs():max():item()
local function row(t) return (('%10.6f'):rep(t:numel(), ' ')):format(unpack(t:totable())) end
print('d/dx ||grad_x D||^2  autograd    ' .. row(dP))
print('                     closed form ' .. row(closed:detach()))
print(('max abs difference %.2e'):format(err))
assert(err < 1e-5, 'gradient of gradient does not match the closed form')
print('demo ok')
