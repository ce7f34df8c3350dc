-- DCGAN training steps, data parallel or not, with the share of each step spent in collectives
-- (docs/distributed.md). The nets are experiments/dcgan.lua's (zoo.G32/D32, 1x32x32); the real
-- batch is a fixed random tensor, so data loading is not timed. --batch is the global batch:
-- each of the ranks takes batch / size of it.
--   luajit bench/dist_dcgan.lua --threads 2
--   mpirun --oversubscribe -np 2 luajit bench/dist_dcgan.lua --threads 1 [--sync_bn 1]
-- Rank 0 prints one JSON line: ranks, threads, batch, ms per step (median and min over steps),
-- comm_share (seconds inside collectives over step time, the slowest rank; this includes
-- waiting for the other rank), calls and MB per step.
local duel = require 'duel'
local dist = require 'duel.dist'
local zoo = require 'experiments.zoo_models'
local gan, optim = duel.gan, duel.optim

local o = {threads = 1, steps = 20, warmup = 3, batch = 64, nz = 100, ngf = 32, ndf = 32, sync_bn = 0}
for i = 1, #arg, 2 do
  local k = arg[i]:match('^%-%-(.+)$')
  if not k or o[k] == nil or not tonumber(arg[i + 1]) then
    error(('dist_dcgan.lua: unknown option or value, got %s %s'):format(arg[i], tostring(arg[i + 1])), 0)
  end
  o[k] = tonumber(arg[i + 1])
end

local rank, size = dist.data_parallel{sync_bn = o.sync_bn == 1}
duel.set_num_threads(o.threads)
local B = o.batch / size
duel.manual_seed(1 + rank)
local G, D = zoo.G32(o.nz, o.ngf), zoo.D32(o.ndf)
local oG = optim.Adam(G, {lr = 2e-4, betas = {0.5, 0.999}})
local oD = optim.Adam(D, {lr = 2e-4, betas = {0.5, 0.999}})
local real = duel.rand(B, 1, 32, 32) * 2 - 1

local function step()
  local fake = G(duel.randn(B, o.nz))
  oD:zero_grad()
  gan.d_loss('nonsaturating', D(real), D(fake:detach())):backward()
  oD:step()
  oG:zero_grad()
  gan.g_loss('nonsaturating', D(fake)):backward()
  oG:step()
end

for _ = 1, o.warmup do step() end
dist.barrier()
local times, comm = {}, 0
dist.reset_stats()
for s = 1, o.steps do
  local t0 = duel.clock()
  step()
  times[s] = duel.clock() - t0
end
local st = dist.stats()
local total = 0
for _, t in ipairs(times) do total = total + t end
-- the slowest rank's wall time and its share in collectives
local agg = dist.allreduce_numbers({total, st.seconds / total}, 'max')
table.sort(times)
if rank == 0 then
  print(('{"ranks":%d,"threads":%d,"batch":%d,"sync_bn":%s,"ms_median":%.1f,"ms_min":%.1f,'
    .. '"comm_share":%.3f,"calls_per_step":%.1f,"mb_per_step":%.2f}')
    :format(size, o.threads, o.batch, tostring(o.sync_bn == 1), 1e3 * times[math.floor((#times + 1) / 2)],
            1e3 * times[1], agg[2], st.calls / o.steps, st.bytes / o.steps / 2 ^ 20))
end
