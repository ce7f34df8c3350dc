-- Runs that survive: a NaN or Inf loss stops a training loop with a message naming the step and
-- the loss while the last good checkpoint stays loadable (experiments/common.lua's check_finite
-- and save/load_checkpoint, as the experiment scripts use them), and memory stays flat over a
-- 20,000-step toy2d GAN run.
local T = require 'tests.harness'
local duel = require 'duel'
local common = require 'experiments.common'

local nn, optim, gan = duel.nn, duel.optim, duel.gan

local function tmpdir()
  local path = os.tmpname()
  os.remove(path)
  os.execute("mkdir -p '" .. path .. "'")
  return path
end

local function rmdir(path) os.execute("rm -rf '" .. path .. "'") end

-- a small regression loop in the experiments' shape: check_finite on every step's losses before
-- the optimizer steps, a checkpoint every 10 steps; at step `bad_step` the batch carries `bad`
local function train(run, steps, bad_step, bad, saved)
  duel.manual_seed(5)
  local m = nn.Linear(3, 1)
  local opt = optim.Adam(m:parameters(), {lr = 1e-2})
  local target = duel.tensor{{1}, {-2}, {0.5}}
  for step = 1, steps do
    local x = duel.randn(16, 3)
    if step == bad_step then
      local poison = duel.zeros(16, 3):totable()
      poison[1][2] = bad
      x = x + duel.tensor(poison)
    end
    local loss = ((m(x) - x:matmul(target)) ^ 2):mean()
    common.check_finite(step, {loss = loss:item()})
    opt:zero_grad()
    loss:backward()
    opt:step()
    if step % 10 == 0 then
      common.save_checkpoint(run, {model = m:state_dict()}, step)
      saved.weight = m.weight:clone()
      saved.step = step
    end
  end
end

for _, c in ipairs({{'a NaN', 0 / 0, '%-?nan'}, {'an Inf', 1e30, 'inf'}}) do
  T.case(c[1] .. ' loss at step 13 stops the run naming step and loss; '
    .. 'the step-10 checkpoint still loads', function()
    local run = {dir = tmpdir(), series = {}}
    local saved = {}
      -- one NaN input element makes the squared error NaN; 1e30 makes it overflow to Inf
    local ok, err = pcall(train, run, 20, 13, c[2], saved)
    T.ok(not ok, 'the run should have stopped')
    local got = tostring(err)
    T.ok(got:match('^training: loss loss became ' .. c[3]
      .. ' at step 13; the last checkpoint is kept$'), got)
    T.eq(saved.step, 10)
    local state = common.load_checkpoint(run)
    T.eq(state.step, 10)
    T.close(state.model.weight, saved.weight, 0)
    -- the checkpoint restores into a fresh model of the same shape
    local m = nn.Linear(3, 1)
    m:load_state_dict(state.model)
    T.close(m.weight, saved.weight, 0)
    rmdir(run.dir)
  end)
end

T.case('check_finite passes finite losses and names the bad one among several', function()
  common.check_finite(7, {d_loss = 0.5, g_loss = -3})
  T.raises_exact('training: loss g_loss became inf at step 42; the last checkpoint is kept',
    function() return common.check_finite(42, {d_loss = 0.5, g_loss = 1 / 0}) end)
  T.raises_exact('training: loss d_loss became -inf at step 3; the last checkpoint is kept',
    function() return common.check_finite(3, {d_loss = -1 / 0}) end)
end)

-- Under AddressSanitizer (make check preloads it) freed blocks sit in a quarantine, so resident
-- memory says nothing there: the run still happens and live bytes are still checked.
local sanitized = (os.getenv('LD_PRELOAD') or ''):find('asan', 1, true) ~= nil

local function rss_kb()
  local f = io.open('/proc/self/status', 'r')
  if not f then return nil end
  local kb
  for line in f:lines() do
    kb = kb or tonumber(line:match('^VmRSS:%s*(%d+)'))
  end
  f:close()
  return kb
end

T.case('20,000 toy2d GAN steps (ring8, width-32 MLPs, batch 64, Adam): memory stays flat',
  function()
  duel.manual_seed(3)
  local W = 32
  local G = nn.Sequential{nn.Linear(2, W), nn.ReLU(), nn.Linear(W, W), nn.ReLU(), nn.Linear(W, 2)}
  local D = nn.Sequential{nn.Linear(2, W), nn.LeakyReLU(0.2), nn.Linear(W, W),
                          nn.LeakyReLU(0.2), nn.Linear(W, 1)}
  local oG = optim.Adam(G:parameters(), {lr = 1e-3, betas = {0.5, 0.999}})
  local oD = optim.Adam(D:parameters(), {lr = 1e-3, betas = {0.5, 0.999}})
  local live = duel._core.live_bytes
  local rss_at, live_at = {}, {}
  for step = 1, 20000 do
    local real = duel.data.toy2d('ring8', 64)
    local fake = G(duel.randn(64, 2))
    local d_loss = gan.d_loss('nonsaturating', D(real), D(fake:detach()))
    oD:zero_grad()
    d_loss:backward()
    oD:step()
    local g_loss = gan.g_loss('nonsaturating', D(fake))
    oG:zero_grad()
    g_loss:backward()
    oG:step()
    if step % 1000 == 0 then
      common.check_finite(step, {d_loss = d_loss:item(), g_loss = g_loss:item()})
      -- RSS as the run left it (no forced collection); live bytes once the garbage is gone,
      -- so that only tensors the run still holds count
      rss_at[#rss_at + 1] = rss_kb()
      collectgarbage()
      live_at[#live_at + 1] = live()
    end
  end
  T.eq(#live_at, 20)
  -- after the first 2,000 steps (allocator caches and JIT traces warm up) neither may grow
  for k = 3, 20 do
    T.ok(live_at[k] <= live_at[2],
      ('live bytes grew from %d at step 2000 to %d at step %d'):format(live_at[2], live_at[k],
        k * 1000))
    if not sanitized and rss_at[2] then
      T.ok(rss_at[k] - rss_at[2] <= 4096,
        ('VmRSS grew from %d kB at step 2000 to %d kB at step %d'):format(rss_at[2], rss_at[k],
          k * 1000))
    end
  end
end)
