-- Memory: tensor data lives outside the Lua heap, so the binding feeds allocated bytes to the GC
-- (l_gc_pressure), and backward() frees the graph's saved activations at once. Users never call
-- collectgarbage(): the loops below do not either, and memory stays bounded.
local T = require 'tests.harness'
local duel = require 'duel'

local live = duel._core.live_bytes
local MiB = 2 ^ 20

-- Under AddressSanitizer (make check preloads it) freed blocks sit in a quarantine of up to
-- 256 MiB, so resident memory says nothing about leaks there: only live bytes are checked.
local sanitized = (os.getenv('LD_PRELOAD') or ''):find('san', 1, true) ~= nil
  or os.getenv('ASAN_OPTIONS') ~= nil

local function rss()
  if sanitized then return nil end
  local f = io.open('/proc/self/status', 'r')
  if not f then return nil end
  local kb
  for line in f:lines() do
    kb = line:match('^VmRSS:%s*(%d+)')
    if kb then break end
  end
  f:close()
  return kb and tonumber(kb) * 1024
end

local function fmt_mib(b) return ('%.2f MiB'):format(b / MiB) end

-- padded allocation size of a tensor of n floats (alloc.c rounds to 64 bytes)
local function bytes_of(n) return math.ceil(math.max(n, 1) * 4 / 64) * 64 end

local function mlp_params()
  duel.manual_seed(11)
  return {
    W1 = (duel.randn(32, 64) * 0.1):requires_grad_(),
    b1 = duel.zeros(64):requires_grad_(),
    W2 = (duel.randn(64, 1) * 0.1):requires_grad_(),
  }
end

local function mlp_loss(p, x, y)
  local h = (x:matmul(p.W1) + p.b1):relu()
  return ((h:matmul(p.W2) - y) ^ 2):mean()
end

local function sgd_step(p, lr)
  duel.no_grad(function()
    for _, k in ipairs({'W1', 'b1', 'W2'}) do
      local w = p[k]
      w:copy_(w - w.grad * lr)
      w.grad = nil
    end
  end)
end

T.case('10,000 MLP training steps with no collectgarbage(): live bytes and RSS stay bounded', function()
  local p = mlp_params()
  local x, y = duel.randn(64, 32), duel.randn(64, 1)
  local warm, steps = 500, 10000
  local warm_live, warm_rss = 0, nil
  local max_live, max_rss = 0, 0
  local first_loss, loss_value
  for it = 1, steps do
    local loss = mlp_loss(p, x, y)
    loss:backward()
    loss_value = loss:item()
    first_loss = first_loss or loss_value
    sgd_step(p, 0.01)
    local l = live()
    if it <= warm then
      warm_live = math.max(warm_live, l)
      if it == warm then warm_rss = rss() end
    else
      max_live = math.max(max_live, l)
      if it % 100 == 0 then max_rss = math.max(max_rss, rss() or 0) end
    end
  end
  T.ok(loss_value < first_loss, ('training made progress: %g -> %g'):format(first_loss, loss_value))
  T.ok(max_live <= 4 * warm_live, ('live bytes peaked at %s, over 4x the warm-up peak %s')
    :format(fmt_mib(max_live), fmt_mib(warm_live)))
  if warm_rss then
    T.ok(max_rss - warm_rss < 50 * MiB, ('RSS grew by %s after warm-up (from %s)')
      :format(fmt_mib(max_rss - warm_rss), fmt_mib(warm_rss)))
  end
end)

T.case('2,000 allocations of 4 MiB tensors with no collectgarbage(): live bytes stay bounded', function()
  local base, rss0 = live(), rss()
  local max_live, max_rss = 0, 0
  for i = 1, 2000 do
    local t = duel.zeros(1024, 1024)
    max_live = math.max(max_live, live())
    if i % 100 == 0 then max_rss = math.max(max_rss, rss() or 0) end
  end
  -- without GC pressure nothing would be collected: 2,000 x 4 MiB = 8 GiB
  T.ok(max_live - base < 64 * MiB, 'live bytes grew by ' .. fmt_mib(max_live - base))
  if rss0 then T.ok(max_rss - rss0 < 200 * MiB, 'RSS grew by ' .. fmt_mib(max_rss - rss0)) end
end)

T.case('60 steps of ops on 4 MiB tensors with no collectgarbage(): live bytes stay bounded', function()
  local a = duel.rand(1024, 1024)
  local base = live()
  local max_live = 0
  for _ = 1, 60 do -- about 1.2 GiB allocated in all
    local s = ((a * 2 + 1):exp():sqrt() - a):sum()
    max_live = math.max(max_live, live())
    T.ok(s:item() > 0)
  end
  T.ok(max_live - base < 64 * MiB, 'live bytes grew by ' .. fmt_mib(max_live - base))
end)

-- Activations made inside a C op (var = sum((x - mean)^2) / (n - 1)) never get a Lua userdata:
-- only the graph holds them, so backward() must free them with no help from the GC at all.
T.case('backward() frees activations held only by the graph, with no GC', function()
  collectgarbage()
  collectgarbage() -- setup only: start from a heap with no pending garbage
  local n = 256 * 256
  local x = duel.randn(256, 256):requires_grad_()
  local base = live()
  local v = x:var()
  local after_fwd = live()
  T.ok(after_fwd - base >= 2 * bytes_of(n),
    'forward holds the centred input and its square: ' .. fmt_mib(after_fwd - base))
  v:backward()
  -- what is left: x.grad and the 0-dim result (still referenced by v)
  T.eq(live() - base, bytes_of(n) + bytes_of(1), 'bytes left after backward')
  T.eq(v.grad_fn, 'mul_scalar')
end)

-- A user-level forward: its intermediates are Lua temporaries (dropped by not keeping them). One
-- collection before backward finalises those temporaries' userdata; live bytes must not drop then,
-- because the graph still holds every activation. backward() alone must then free them all.
T.case('backward() without retain_graph releases the saved activations at once', function()
  local p = mlp_params()
  local x, y = duel.randn(512, 32), duel.randn(512, 1)
  collectgarbage()
  collectgarbage()
  local base = live()
  local loss = mlp_loss(p, x, y)
  local after_fwd = live()
  collectgarbage()
  collectgarbage()
  local held = live()
  -- x@W1, +b1, relu, @W2, -y, ^2: at least {512,64} x 3 held by the graph
  T.ok(held - base >= 3 * bytes_of(512 * 64), 'graph holds its activations: ' .. fmt_mib(held - base))
  T.ok(held <= after_fwd)
  -- retain_graph keeps them ...
  loss:backward({retain_graph = true})
  local grads = bytes_of(32 * 64) + bytes_of(64) + bytes_of(64)
  T.ok(live() - base >= 3 * bytes_of(512 * 64) + grads, 'retain_graph keeps the activations')
  -- ... and a backward without it frees them immediately (gradients accumulate in place)
  loss:backward()
  T.eq(live() - base, grads + bytes_of(1), 'bytes left after backward: grads + the loss')
  T.raises('was freed by an earlier backward', function() loss:backward() end)
  p.W1.grad, p.b1.grad, p.W2.grad = nil, nil, nil
  T.eq(live() - base, bytes_of(1), 'bytes left after resetting the grads')
end)

T.case('autograd.grad frees the graph too, and create_graph keeps only what the gradient needs', function()
  collectgarbage()
  collectgarbage()
  local x = duel.randn(128, 128):requires_grad_()
  local n = 128 * 128
  local base = live()
  local out = x:var()
  local g = duel.autograd.grad(out, x)[1]
  T.eq(live() - base, bytes_of(n) + bytes_of(1), 'only the gradient and the output are left')
  g, out = nil, nil
  collectgarbage()
  collectgarbage()
  T.eq(live(), base, 'everything released once the results are dropped')
  -- create_graph: the gradient is a graph; dropping it and the output releases everything
  local function second_order()
    local o = x:tanh():sum()
    local gx = duel.autograd.grad({o}, {x}, {create_graph = true})[1]
    local gg = duel.autograd.grad({gx:sum()}, {x})[1]
    return gg:sum():item()
  end
  second_order()
  collectgarbage()
  collectgarbage()
  T.eq(live(), base, 'no tensor memory left after a create_graph round trip')
end)

-- Linux overcommits, so without the check an empty() this large succeeds and the first write
-- to it brings the OOM killer; the core refuses it up front with an error instead.
T.case('a tensor larger than the memory available is refused before allocating', function()
  local avail = duel._core.available_bytes()
  if avail < 0 then print('     skipped: /proc/meminfo cannot be read') return end
  local n = math.floor((avail + 2 ^ 31) / 4) -- 2 GiB more than the kernel can give
  local ok, err = pcall(duel.empty, n)
  T.ok(not ok, 'empty of more than the available memory must fail')
  T.ok(err:match('^empty: tensor of %d+ bytes exceeds the memory available %(%d+ bytes%), got '
                 .. n .. ' elements$'), err)
  ok, err = pcall(duel.zeros, 2, n / 2)
  T.ok(not ok and err:match('^zeros: tensor of %d+ bytes exceeds the memory available'), err)
  -- below the threshold and within memory: still fine
  T.eq(duel.zeros(1024, 1024):numel(), 1048576)
end)
