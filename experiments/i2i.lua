-- experiments/i2i.lua: what the image-to-image scripts (cyclegan.lua, pix2pix.lua) share.
--   i2i.setup(script, defaults, presets, help)  --preset sets defaults under the command line;
--                                               --quick applies presets.quick (6 steps at most)
--   i2i.task(o, name, make)      the default data folder under <out>/data, written once, reused
--   i2i.batches(loader, done)    an endless batch stream that starts after `done` batches
--   i2i.requires_grad(m, on)     switch a net's parameters (G steps need no D weight gradients)
--   i2i.rows(list, n)            image i of every tensor in list, for i = 1..n (sheet rows)
--   i2i.test_sheets(dir, name, list)   sheets of 16 rows x 8 tuples over whole test sets
--   i2i.train(run, o, start, loader, spec)  the loop: losses, metrics.jsonl, sample sheets,
--                                checkpoints, --stop_at; returns true when stopped early
local duel = require 'duel'
local common = require 'experiments.common'

local i2i = {}

function i2i.setup(script, defaults, presets, help)
  for i = 1, #arg - 1 do
    if arg[i] == '--preset' then
      local p = presets[arg[i + 1]]
      if not p or arg[i + 1] == 'quick' then
        error(('options: --preset must be small or paper, got %s'):format(arg[i + 1]), 0)
      end
      for k, v in pairs(p) do defaults[k] = v end
    end
  end
  local o, run = common.setup(script, defaults, help)
  if o.quick then
    o.steps = math.min(o.steps > 0 and o.steps or 6, 6)
    for k, v in pairs(presets.quick) do o[k] = v end
  end
  return o, run
end

function i2i.task(o, name, make)
  if o.data ~= '' then return o.data end
  local root = (o.out .. '/data/' .. name):gsub('[^%w/%._-]', '_')
  -- --dist: rank 0 writes the data once while the other ranks wait for it
  local dist = o.dist and require('duel.dist')
  if not dist or dist.rank() == 0 then
    local done = io.open(root .. '/complete.txt', 'r')
    if done then done:close() else
      make(root)
      io.open(root .. '/complete.txt', 'w'):close()
    end
  end
  if dist then dist.barrier() end
  return root
end

-- batch after batch over epochs; after `done` batches (a resume) it yields exactly the batch an
-- uninterrupted run would get next (the loader's order is a pure function of seed and epoch)
function i2i.batches(loader, done)
  local nb, it = #loader, nil
  return function()
    if not it or done % nb == 0 then
      loader:set_epoch(math.floor(done / nb) + 1)
      it = loader:iter()
      for _ = 1, done % nb do it() end
    end
    done = done + 1
    return it()
  end
end

function i2i.requires_grad(m, on)
  for _, p in ipairs(m:parameters()) do p:requires_grad_(on) end
end

function i2i.rows(list, n)
  local tiles = {}
  for i = 1, n do for _, t in ipairs(list) do tiles[#tiles + 1] = t:narrow(1, i, 1) end end
  return duel.cat(tiles, 1)
end

-- <dir>/<name>_01.png, ...: each row 8 tuples (input | output | target or reconstruction)
function i2i.test_sheets(dir, name, list)
  local n, per = list[1]:size(1), 128
  for s = 1, math.ceil(n / per) do
    local m, part = math.min(per, n - (s - 1) * per), {}
    for j, t in ipairs(list) do part[j] = t:narrow(1, (s - 1) * per + 1, m) end
    common.save_grid(('%s/%s_%02d.png'):format(dir, name, s), i2i.rows(part, m), 8 * #list)
  end
end

-- spec.step(batch) -> {name = number}, spec.sample(path), spec.state() -> checkpoint table
function i2i.train(run, o, start, loader, spec)
  local next_batch = i2i.batches(loader, start)
  local every = o.log_every * math.max(1, math.floor(o.steps / 20 / o.log_every))
  for step = start + 1, o.steps do
    local v = spec.step(next_batch())
    common.check_finite(step, v)
    if step % o.log_every == 0 or step == o.steps then common.log(run, step, o.steps, v, every) end
    if step % o.sample_every == 0 then
      spec.sample(('%s/samples_%06d.png'):format(run.dir, step))
    end
    if step % o.ckpt_every == 0 or step == o.steps or step == o.stop_at then
      common.save_checkpoint(run, spec.state(), step)
    end
    if step == o.stop_at and step < o.steps then
      print(('stopped after step %d (--stop_at)'):format(step))
      common.loss_curve(run, run.dir .. '/loss.png')
      return true
    end
  end
  common.loss_curve(run, run.dir .. '/loss.png')
  spec.sample(run.dir .. '/samples_final.png')
  return false
end

-- the end-of-run evaluation: test.json, and the same fields as the {"eval":"final"} line of
-- metrics.jsonl
function i2i.write_results(run, result, steps)
  local f = assert(io.open(run.dir .. '/test.json', 'w'))
  f:write(common.json(result), '\n'); f:close()
  result.eval, result.step = 'final', steps
  f = assert(io.open(run.dir .. '/metrics.jsonl', 'a'))
  f:write(common.json(result), '\n'); f:close()
end

return i2i
