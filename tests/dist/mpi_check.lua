-- tests/dist/mpi_check.lua: run by tests/test_dist.lua under
--   mpirun --oversubscribe -np 2 luajit tests/dist/mpi_check.lua
-- (1) allreduce_/broadcast_/allreduce/average_grads/shard values on two ranks; (2) a small
-- DCGAN-like G and D with BatchNorm, trained 5 steps on two ranks of batch 32 each (BatchNorm
-- synchronised, D's loss with an R1 penalty, so double backward goes through the synchronised
-- statistics) end with the weights of one process trained on the batch of 64. Rank 0 prints
-- "check <name> ok" lines and "all checks passed"; any failure raises, which aborts the job.
package.path = './?.lua;' .. package.path
local duel = require 'duel'
local dist = require 'duel.dist'
local nn, optim, gan = duel.nn, duel.optim, duel.gan

duel.set_num_threads(1)
local rank, size = dist.init()
assert(size == 2, ('expected 2 ranks, got %d (backend %s)'):format(size, dist.backend()))

local function say(...) if rank == 0 then print(...) end end
local function check(name, cond, detail)
  if not cond then error(('rank %d: check %s failed: %s'):format(rank, name, detail or ''), 0) end
  say('check ' .. name .. ' ok' .. (detail and (' (' .. detail .. ')') or ''))
end
local function maxdiff(a, b) return (a - b):abs():max():item() end
local function same(a, tbl) return maxdiff(a, duel.tensor(tbl)) == 0 end

-- ---- 1. collectives --------------------------------------------------------------------------
local a, b = duel.tensor{1, 2, 3} * (rank + 1), duel.full({2, 2}, rank)
dist.allreduce_({a, b})                                        -- sum: one fused buffer
check('allreduce_ sum', same(a, {3, 6, 9}) and same(b, {{1, 1}, {1, 1}}))
local m = duel.tensor{1, 2} * (rank + 1)
dist.allreduce_(m, 'mean')
check('allreduce_ mean', same(m, {1.5, 3}))
local mx, mn = duel.tensor{rank, -rank}, duel.tensor{rank, -rank}
dist.allreduce_(mx, 'max'); dist.allreduce_(mn, 'min')
check('allreduce_ max/min', same(mx, {1, 0}) and same(mn, {0, -1}))
local base = duel.tensor{{1, 2}, {3, 4}} * (rank + 1)
dist.allreduce_(base:t())                                       -- a non-contiguous view
check('allreduce_ strided view', same(base, {{3, 6}, {9, 12}}))
local c = duel.full({3}, rank + 10)
dist.broadcast_({c}, 1)
check('broadcast_ from rank 1', same(c, {11, 11, 11}))
check('broadcast_string', dist.broadcast_string(rank == 0 and 'runs/x' or 'other') == 'runs/x')
local ok, err = pcall(dist.broadcast_, {duel.zeros(rank + 1)}, 0)
check('broadcast_ size mismatch is an error', not ok and err:find('same number of values', 1, true), err)
ok, err = pcall(dist.allreduce_, {duel.zeros(1)}, 'avg')
check('allreduce_ op message', not ok and err == "allreduce_: op must be 'sum', 'mean', 'max' or 'min', got 'avg'", err)

-- the differentiable sum: y = sum_r x_r^2 on every rank; d(sum_r sum y_r)/dx = 2 * 2x
local x = (duel.tensor{1, 2} * (rank + 1)):requires_grad_(true)
local y = dist.allreduce(x * x)
check('allreduce value', same(y, {5, 20}))
y:sum():backward()
check('allreduce gradient', same(x.grad, {4 * (rank + 1), 8 * (rank + 1)}))
local gx = duel.autograd.grad({dist.allreduce(x * x):sum()}, {x}, {create_graph = true})[1]
local gg = duel.autograd.grad({(gx * gx):sum()}, {x})[1]      -- d/dx sum (4x)^2 = 32x
check('allreduce double backward', same(gg, {32 * (rank + 1), 64 * (rank + 1)}))
check('allreduce under no_grad records nothing',
  duel.no_grad(function() return dist.allreduce(x * x) end).grad_fn == nil)

-- average_grads: p has a gradient on both ranks, q only on rank 1 (zero elsewhere)
local p, q = duel.zeros(2):requires_grad_(true), duel.zeros(2):requires_grad_(true)
p.grad = duel.tensor{1, 2} * (rank + 1)
if rank == 1 then q.grad = duel.tensor{4, 8} end
dist.average_grads({p, q})
check('average_grads', same(p.grad, {1.5, 3}) and q.grad ~= nil and same(q.grad, {2, 4}))

local shard = dist.shard(duel.arange(7))
check('shard rows', same(shard, rank == 0 and {1, 3, 5} or {2, 4, 6}))

-- ---- 2. two ranks x 32 == one process x 64 --------------------------------------------------
local NZ, STEPS, B = 8, 5, 64
local function nets(seed)
  duel.manual_seed(seed)
  local G = nn.Sequential{nn.View(NZ, 1, 1), nn.ConvTranspose2d(NZ, 16, 4, {bias = false}),
    nn.BatchNorm2d(16), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, {stride = 2, padding = 1}),
    nn.Tanh()}
  local D = nn.Sequential{nn.Conv2d(1, 8, 4, {stride = 2, padding = 1}), nn.LeakyReLU(0.2),
    nn.Conv2d(8, 16, 4, {stride = 2, padding = 1, bias = false}), nn.BatchNorm2d(16),
    nn.LeakyReLU(0.2), nn.Conv2d(16, 1, 2), nn.Flatten()}
  return G, D
end
duel.manual_seed(11)
local reals, zs = {}, {}
for s = 1, STEPS do reals[s] = duel.randn(B, 1, 8, 8):tanh(); zs[s] = duel.randn(B, NZ) end

local function train(G, D, part)
  local oG = optim.Adam(G, {lr = 1e-3, betas = {0.5, 0.999}})
  local oD = optim.Adam(D, {lr = 1e-3, betas = {0.5, 0.999}})
  for s = 1, STEPS do
    local real, z = part(reals[s]), part(zs[s])
    local fake = G(z)
    oD:zero_grad()
    local ld = gan.d_loss('nonsaturating', D(real), D(fake:detach())) + gan.r1_penalty(D, real, {gamma = 1})
    ld:backward()
    oD:step()
    oG:zero_grad()
    gan.g_loss('nonsaturating', D(fake)):backward()
    oG:step()
  end
end

-- the reference: this process alone, the whole batch (no hooks installed yet)
local G1, D1 = nets(7)
train(G1, D1, function(t) return t end)

-- data parallel: hooks on, BatchNorm synchronised; rank 1 starts from other weights, which the
-- optimizers' construction replaces with rank 0's
dist.data_parallel{sync_bn = true}
local G2, D2 = nets(7 + 100 * rank)
train(G2, D2, function(t) return t:narrow(1, rank * (B / size) + 1, B / size) end)

local worst = 0
for _, pair in ipairs{{G1, G2}, {D1, D2}} do
  local s1, s2 = pair[1]:state_dict(), pair[2]:state_dict()
  for k, v in pairs(s1) do worst = math.max(worst, maxdiff(v, s2[k])) end
end
-- the same on both ranks, bit for bit
local spread = 0
for _, net in ipairs{G2, D2} do
  for _, t in ipairs(net:parameters()) do
    local hi, lo = t:detach():clone(), t:detach():clone()
    dist.allreduce_(hi, 'max'); dist.allreduce_(lo, 'min')
    spread = math.max(spread, maxdiff(hi, lo))
  end
end
check('ranks hold identical weights', spread == 0, ('spread %g'):format(spread))
check('2 ranks x 32 == 1 process x 64 after 5 steps', worst < 1e-4, ('max |diff| %.3g'):format(worst))
say('all checks passed')
