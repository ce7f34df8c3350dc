-- Data pipeline timings: Fashion-MNIST load, image decode + augmentation per batch with 0/1/2
-- worker threads, and how much of a simulated training step hides the decoding.
-- Usage: luajit bench/data.lua [n_images=64] [side=256]   (from the repository root)
local duel = require 'duel'
local D, I = duel.data, duel.image
local ffi = require 'ffi'
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } duel_bench_timespec;
int clock_gettime(int clk, duel_bench_timespec *ts);
int poll(void *fds, unsigned long n, int timeout);
]])
local function now()
  local ts = ffi.new('duel_bench_timespec')
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local function sleep(s) ffi.C.poll(nil, 0, math.floor(s * 1000 + 0.5)) end

local n, side = tonumber(arg[1]) or 64, tonumber(arg[2]) or 256

local t = now()
local train = D.fashion_mnist{split = 'train'}
print(('fashion_mnist train (%d images): %.2f s'):format(train.images:size(1), now() - t))
train = nil
collectgarbage()

-- a CycleGAN-style folder of n JPEGs per domain (smooth content, as photos are)
local root = os.tmpname()
os.remove(root)
local Cd = require('duel.core')._data
for _, d in ipairs({'trainA', 'trainB'}) do
  Cd.mkdir(root .. '/' .. d)
  duel.manual_seed(1)
  local base = I.resize(duel.rand(3, 8, 8), side, side)
  for i = 1, n do
    local img = (base + duel.rand(3, side, side) * 0.1):clamp(0, 1)
    I.save(('%s/%s/%04d.jpg'):format(root, d, i), img, {quality = 90})
  end
end
local ds = D.Unaligned(root, {load_size = 143, crop_size = 128})
print(('Unaligned: %d pairs of %dx%d JPEGs, load 143, crop 128, batch 16'):format(n, side, side))

local decode
for _, w in ipairs({0, 1, 2}) do
  local L = D.DataLoader(ds, {batch = 16, workers = w, seed = 1})
  t = now()
  local k = 0
  for _ in L:iter() do k = k + 1 end
  local per = (now() - t) / k
  if w == 0 then decode = per end
  print(('  workers=%d: %.1f ms per batch (%d images), no step in between')
    :format(w, per * 1000, 32))
end

-- a training step of the same duration as decoding: serial costs step + decode, overlapped max
local step = decode
for _, w in ipairs({0, 1}) do
  local L = D.DataLoader(ds, {batch = 16, workers = w, seed = 1})
  t = now()
  local k, ready = 0, 0
  for _ in L:iter() do
    k = k + 1
    sleep(step)
    if L.ready[k] then ready = ready + 1 end
  end
  print(('  with a %.1f ms step, workers=%d: %.1f ms per iteration, %d of %d batches ready '
    .. 'on arrival')
    :format(step * 1000, w, (now() - t) / k * 1000, ready, k))
end

-- resize throughput on a batch
local x = duel.rand(64, 3, 256, 256)
t = now()
local y = I.resize(x, 128, 128)
print(('resize 64x3x256x256 -> 128x128 (antialiased): %.1f ms'):format((now() - t) * 1000))
t = now()
y = I.resize(x, 512, 512)
print(('resize 64x3x256x256 -> 512x512 (bilinear): %.1f ms'):format((now() - t) * 1000))

local function rmtree(p)
  if Cd.kind(p) == 'dir' then
    for _, e in ipairs(Cd.listdir(p, nil, true)) do rmtree(p .. '/' .. e) end
  end
  os.remove(p)
end
rmtree(root)
