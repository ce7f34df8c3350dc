-- experiments/dist_run.lua: what `--dist` adds to an experiment (not public API; common.setup
-- calls start() before it seeds and makes the run folder).
--   mpirun -np 2 luajit experiments/dcgan.lua --dist [--sync_bn]
-- * duel.dist.data_parallel: optimizers take rank 0's parameters when they are made and average
--   the gradients over ranks before every step; shuffled DataLoaders read this rank's shard
-- * common.setup seeds with seed + rank (each rank its own noise) and shares rank 0's run folder
-- * only rank 0 prints, logs, saves images and writes files in the run folder (run_dir); a
--   checkpoint carries every rank's RNG state and the rank count, the others wait for it at a
--   barrier, and --resume restores each rank's stream (with the same number of ranks)
-- Everything else runs on every rank, so the collectives inside (synchronised BatchNorm in a
-- sample grid's forward, for instance) stay matched.
local duel = require 'duel'
local dist = require 'duel.dist'

local M = {}

function M.start(common, o)
  local rank, size = dist.data_parallel{sync_bn = o.sync_bn}
  if rank ~= 0 then
    local nop = function() end
    _G.print = nop
    common.log, common.save_grid, common.loss_curve, common.scatter = nop, nop, nop, nop
    duel.image.save = nop
  end
  local save_ck, load_ck = common.save_checkpoint, common.load_checkpoint
  function common.save_checkpoint(run, state, step)
    local rng = {}
    for i = 1, 2 * size do rng[i] = 0 end
    rng[2 * rank + 1], rng[2 * rank + 2] = duel._core.rng_state()
    state.dist = {size = size, rng = dist.allreduce_numbers(rng, 'sum')}
    if rank == 0 then save_ck(run, state, step) end
    dist.barrier()
  end
  function common.load_checkpoint(run)
    -- rank 0 also trims metrics.jsonl; the others only read the checkpoint
    local state = rank == 0 and load_ck(run) or duel.load(run.dir .. '/checkpoint.safetensors')
    local n = state.dist and state.dist.size or 1
    if n ~= size then
      error(('resume: the checkpoint was written by %d rank(s); resume with the same number, got %d')
            :format(n, size), 0)
    end
    duel._core.set_rng_state(state.dist.rng[2 * rank + 1], state.dist.rng[2 * rank + 2])
    return state
  end
  return rank, size
end

-- the run folder: rank 0's name on every rank; on the other ranks, files a script opens there
-- for writing (its own metrics.jsonl lines, test.json) go to /dev/null
function M.run_dir(dir, resumed)
  if not resumed then dir = dist.broadcast_string(dir, 0) end
  if dist.rank() ~= 0 then
    local open, prefix = io.open, dir .. '/'
    io.open = function(path, mode)
      if type(path) == 'string' and path:sub(1, #prefix) == prefix and (mode or 'r'):find('[wa+]') then
        return open('/dev/null', (mode:gsub('%+', '')))
      end
      return open(path, mode)
    end
  end
  return dir
end

return M
