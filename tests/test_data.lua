-- duel.data: Fashion-MNIST, IDX strictness, toy2d, folder datasets (ImageFolder, Unaligned,
-- Aligned) on trees built here, the Fashion-MNIST image-to-image tasks, the DataLoader
-- (determinism with and without worker threads, real overlap), and bad input of every kind.
local T = require 'tests.harness'
local duel = require 'duel'
local D, I = duel.data, duel.image
local Cd = require('duel.core')._data
local ffi = require 'ffi'

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } duel_test_timespec;
int clock_gettime(int clk, duel_test_timespec *ts);
int poll(void *fds, unsigned long n, int timeout);
]])
local function now()
  local ts = ffi.new('duel_test_timespec')
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local function sleep(s) ffi.C.poll(nil, 0, math.floor(s * 1000 + 0.5)) end

-- temp trees (os.tmpname-based), removed at the end of each case
local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  Cd.mkdir(p)
  return p
end
local function rmtree(p)
  local k = Cd.kind(p)
  if k == 'dir' then
    local names = Cd.listdir(p, nil, true)
    for _, n in ipairs(names) do rmtree(p .. '/' .. n) end
  end
  if k then os.remove(p) end
end
local function write(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
end
local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end
local function solid(c, h, w, v) return duel.full({c, h, w}, v) end
local function maxdiff(a, b) return (a - b):abs():max():item() end

---------------------------------------------------------------------------------------------------
-- Fashion-MNIST

local cache = {}
local function fashion(split)
  cache[split] = cache[split] or D.fashion_mnist{split = split}
  return cache[split]
end

T.case('fashion_mnist: counts, shapes, label range and balance, pixel range', function()
  for split, n in pairs({train = 60000, test = 10000}) do
    local ds = fashion(split)
    T.eq(ds.images:size(), {n, 1, 28, 28}, split)
    T.eq(ds.labels:size(), {n}, split)
    T.eq(ds.images:min():item(), -1, split)
    T.eq(ds.images:max():item(), 1, split)
    T.eq(ds.labels:min():item(), 1, split)
    T.eq(ds.labels:max():item(), 10, split)
    -- every class has n/10 images
    local counts = {}
    for _, l in ipairs(ds.labels:totable()) do counts[l] = (counts[l] or 0) + 1 end
    for k = 1, 10 do T.eq(counts[k], n / 10, split .. ' class ' .. k) end
    T.eq(#ds.class_names, 10)
    T.eq(ds.class_names[10], 'Ankle boot')
    T.eq(ds.split, split)
  end
end)

T.case('fashion_mnist: known pixel statistics', function()
  -- computed independently with Python's gzip module over the package's files: the mean pixel
  -- is 0.2860406 (train) and 0.2868493 (test) of 255, i.e. -0.4279188 and -0.4263014 in [-1,1];
  -- the first test image sums to 33456 (raw bytes) and is an ankle boot (file label 9)
  T.close(fashion('train').images:mean(), -0.42791880602240895, 2e-6)
  T.close(fashion('test').images:mean(), -0.4263014385754301, 2e-6)
  local first = fashion('test').images:select(1, 1)
  T.close(first:sum(), 2 * 33456 / 255 - 784, 1e-5)
  T.eq(fashion('test').labels:get(1), 10)
  T.eq(fashion('train').labels:narrow(1, 1, 4):totable(), {10, 1, 1, 4})
  -- pixel (15,15) of the first training image is byte 217
  T.close(fashion('train').images:get(1, 1, 15, 15), 2 * 217 / 255 - 1, 1e-6)
end)

T.case('fashion_mnist: pad_to, classes, relabel, limit', function()
  local p = D.fashion_mnist{split = 'test', pad_to = 32}
  T.eq(p.images:size(), {10000, 1, 32, 32})
  T.close(p.images:narrow(3, 3, 28):narrow(4, 3, 28), fashion('test').images, 0)
  T.eq(p.images:narrow(3, 1, 2):max():item(), -1)
  T.eq(p.images:narrow(4, 31, 2):max():item(), -1)
  local s = D.fashion_mnist{split = 'test', classes = {'Sneaker', 10}}
  T.eq(s.images:size(1), 2000)
  local ok = true
  for _, l in ipairs(s.labels:totable()) do if l ~= 8 and l ~= 10 then ok = false end end
  T.ok(ok, 'only sneakers and ankle boots')
  local r = D.fashion_mnist{split = 'test', classes = {'ankle boot', 'sneaker'}, relabel = true, limit = 5}
  T.eq(r.images:size(), {5, 1, 28, 28})
  T.eq(r.labels:totable(), {1, 2, 2, 2, 1}) -- file labels 9,7,7,7,9 (checked with Python), renumbered
  T.eq(r.class_names, {'Ankle boot', 'Sneaker'})
  local first = fashion('test').images:select(1, 1)
  T.close(r.images:select(1, 1), first, 0)
  T.eq(D.fashion_mnist{split = 'test', limit = 3}.labels:totable(), {10, 3, 2})
  T.raises("data.fashion_mnist: split must be 'train' or 'test', got val", function() D.fashion_mnist{split = 'val'} end)
  T.raises("data.fashion_mnist: unknown Fashion-MNIST class (expected 1..10 or 'T-shirt/top'", function()
    D.fashion_mnist{split = 'test', classes = {'Hat'}} end)
  T.raises('data.fashion_mnist: pad_to must be 28 plus an even number, got 31', function()
    D.fashion_mnist{split = 'test', pad_to = 31} end)
end)

T.case('fashion_mnist: a missing package is an error naming dataset-fashion-mnist', function()
  T.raises_exact("data.fashion_mnist: Fashion-MNIST is not installed (install the Debian package "
    .. "dataset-fashion-mnist: apt-get install dataset-fashion-mnist), got no file "
    .. "'/nonexistent/fmnist/train-images-idx3-ubyte.gz'",
    function() D.fashion_mnist{root = '/nonexistent/fmnist'} end)
end)

T.case('read_idx: strict parsing, errors name the file', function()
  local dir = tmpdir()
  local function idx(name, bytes) local p = dir .. '/' .. name; write(p, bytes); return p end
  -- a plain (not gzipped) 2 x 2 x 3 file reads fine: zlib passes plain files through
  local good = idx('good.idx', '\0\0\8\3' .. '\0\0\0\2\0\0\0\2\0\0\0\3' .. string.char(0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255))
  local t = D.read_idx(good)
  T.eq(t:size(), {2, 2, 3})
  T.close(t, {{{0, 1, 2}, {3, 4, 5}}, {{250, 251, 252}, {253, 254, 255}}}, 0)
  T.close(D.read_idx(good, {scale = 2, shift = -1}):get(2, 2, 3), 509)
  local p
  p = idx('magic.idx', '\1\0\8\1\0\0\0\1\0')
  T.raises_exact(("idx_load: '%s' is not an IDX file (bad magic number), got 0x01000801"):format(p), function() D.read_idx(p) end)
  p = idx('dtype.idx', '\0\0\13\1\0\0\0\1\0\0\0\0')
  T.raises_exact(("idx_load: '%s' has an unsupported element type (only 0x08, unsigned byte), got 0x0d"):format(p), function() D.read_idx(p) end)
  p = idx('ndim.idx', '\0\0\8\0')
  T.raises_exact(("idx_load: '%s' must have 1 to 4 dims, got 0"):format(p), function() D.read_idx(p) end)
  p = idx('zero.idx', '\0\0\8\1\0\0\0\0')
  T.raises(("idx_load: '%s' announces an unreasonable size"):format(p), function() D.read_idx(p) end)
  p = idx('huge.idx', '\0\0\8\2\255\255\255\255\255\255\255\255')
  T.raises(("idx_load: '%s' announces an unreasonable size"):format(p), function() D.read_idx(p) end)
  p = idx('short.idx', '\0\0\8\1\0\0\0\5\1\2\3')
  T.raises_exact(("idx_load: '%s' is truncated: the data needs 5 bytes, got 3"):format(p), function() D.read_idx(p) end)
  p = idx('hdr.idx', '\0\0\8\2\0\0')
  T.raises(("idx_load: '%s' is truncated: the header needs 12 bytes"):format(p), function() D.read_idx(p) end)
  p = idx('long.idx', '\0\0\8\1\0\0\0\2\1\2\3')
  T.raises_exact(("idx_load: '%s' has bytes after the 2 its header announces, got at least one more"):format(p), function() D.read_idx(p) end)
  -- the package's gzip files, truncated and corrupted
  local labels = read('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz')
  p = idx('cut.gz', labels:sub(1, math.floor(#labels / 2)))
  T.raises(("idx_load: cannot read '%s' (corrupt or truncated gzip data)"):format(p), function() D.read_idx(p) end)
  p = idx('crc.gz', labels:sub(1, #labels - 6) .. string.char((labels:byte(#labels - 5) + 1) % 256) .. labels:sub(#labels - 4))
  T.raises(("idx_load: cannot read '%s' (corrupt or truncated gzip data)"):format(p), function() D.read_idx(p) end)
  local mid = math.floor(#labels / 2)
  p = idx('flip.gz', labels:sub(1, mid - 1) .. string.char(255 - labels:byte(mid)) .. labels:sub(mid + 1))
  T.raises(("idx_load: cannot read '%s'"):format(p), function() D.read_idx(p) end)
  T.raises("idx_load: cannot open '/nonexistent/x.gz', got No such file or directory", function() D.read_idx('/nonexistent/x.gz') end)
  rmtree(dir)
end)

---------------------------------------------------------------------------------------------------
-- toy2d

T.case('toy2d: PacGAN constants, mode balance and spread, reproducible', function()
  local ring, grid = D.toy2d_spec.ring8, D.toy2d_spec.grid25
  T.eq(#ring.means, 8)
  T.eq(ring.std, 0.01)
  T.close(ring.means[1][1], 1, 1e-12)
  T.close(ring.means[3][2], 1, 1e-12)
  T.close(ring.means[6][1], -math.sqrt(0.5), 1e-12)
  T.eq(#grid.means, 25)
  T.eq(grid.std, 0.05)
  T.eq(grid.means[1], {-4, -4})
  T.eq(grid.means[13], {0, 0})
  T.eq(grid.means[25], {4, 4})
  for name, s in pairs(D.toy2d_spec) do
    duel.manual_seed(5)
    local n = 8000
    local x = D.toy2d(name, n)
    T.eq(x:size(), {n, 2})
    local K = #s.means
    local counts, sq, far = {}, {}, 0
    local pts = x:totable()
    for i = 1, n do
      local best, bd = 1, math.huge
      for k = 1, K do
        local dx, dy = pts[i][1] - s.means[k][1], pts[i][2] - s.means[k][2]
        local d = dx * dx + dy * dy
        if d < bd then best, bd = k, d end
      end
      counts[best] = (counts[best] or 0) + 1
      sq[best] = (sq[best] or 0) + bd
      if math.sqrt(bd) > 5 * s.std then far = far + 1 end
    end
    T.eq(far, 0, name .. ': every point within 5 std of a mode')
    local expect = n / K
    for k = 1, K do
      T.ok(math.abs(counts[k] - expect) < 5 * math.sqrt(expect), ('%s mode %d: %d points'):format(name, k, counts[k]))
      -- E|x - mu|^2 = 2 std^2 per mode
      local est = math.sqrt(sq[k] / counts[k] / 2)
      T.ok(math.abs(est - s.std) < 0.15 * s.std, ('%s mode %d: std %.4f'):format(name, k, est))
    end
    duel.manual_seed(5)
    T.close(D.toy2d(name, n), x, 0)
  end
  T.raises("data.toy2d: unknown mixture (expected 'ring8' or 'grid25'), got 'ring7'", function() D.toy2d('ring7', 10) end)
  T.raises('data.toy2d: sample count must be a whole number', function() D.toy2d('ring8', 1.5) end)
end)

---------------------------------------------------------------------------------------------------
-- folder datasets

-- a CycleGAN tree: domain A images are red with a bright top-left pixel, B blue
local function cyclegan_tree(nA, nB, size)
  local root = tmpdir()
  for _, d in ipairs({'trainA', 'trainB', 'testA', 'testB'}) do Cd.mkdir(root .. '/' .. d) end
  for i = 1, nA do
    local img = duel.zeros(3, size, size)
    img:select(1, 1):fill_(i / (nA + 1))
    I.save(('%s/trainA/a%02d.png'):format(root, i), img)
  end
  for i = 1, nB do
    local img = duel.zeros(3, size, size)
    img:select(1, 3):fill_(i / (nB + 1))
    I.save(('%s/trainB/b%02d.jpg'):format(root, i), img)
  end
  I.save(root .. '/testA/t.png', solid(3, size, size, 0.5))
  I.save(root .. '/testB/t.png', solid(3, size, size, 0.25))
  write(root .. '/trainA/notes.txt', 'not an image')
  return root
end

T.case('ImageFolder: recursive sorted listing, class labels, size/crop/flip, channels', function()
  local root = tmpdir()
  Cd.mkdir(root .. '/dog/puppies')
  Cd.mkdir(root .. '/cat')
  I.save(root .. '/dog/b.png', solid(3, 8, 6, 0.2))
  I.save(root .. '/dog/puppies/a.png', solid(3, 8, 6, 0.4))
  I.save(root .. '/cat/z.bmp', solid(3, 8, 6, 0.6))
  I.save(root .. '/cat/.hidden.png', solid(3, 8, 6, 0.8))
  write(root .. '/cat/readme.md', '# not an image')
  local ds = D.ImageFolder(root)
  T.eq(#ds, 3)
  T.eq(ds:len(), 3)
  T.eq(ds.classes, {'cat', 'dog'})
  T.eq(ds.files, {root .. '/cat/z.bmp', root .. '/dog/b.png', root .. '/dog/puppies/a.png'})
  local it = ds:get(3)
  T.eq(it.label, 2)
  T.eq(it.path, root .. '/dog/puppies/a.png')
  T.eq(it.image:size(), {3, 8, 6})
  T.close(it.image, solid(3, 8, 6, 0.4 * 2 - 1), 2e-3) -- [-1,1] by default
  T.eq(ds:get(1).label, 1)
  local small = D.ImageFolder(root, {size = 4, channels = 1, range = {0, 1}})
  T.eq(small:get(2).image:size(), {1, 4, 4})
  T.close(small:get(2).image, solid(1, 4, 4, 51 / 255), 1e-6)
  local cropped = D.ImageFolder(root, {size = {10, 12}, crop = 5})
  T.eq(cropped:get(1).image:size(), {3, 5, 5})
  -- images at the top level: no labels
  I.save(root .. '/top.png', solid(3, 8, 6, 1))
  local flat = D.ImageFolder(root)
  T.eq(#flat, 4)
  T.eq(flat.classes, nil)
  T.eq(flat:get(4).label, nil)
  T.raises("data.ImageFolder: labels=true needs every image inside a class subfolder of", function() D.ImageFolder(root, {labels = true}) end)
  -- batches through the loader carry labels and paths
  local L = D.DataLoader(ds, {batch = 3, shuffle = false})
  local b = L:iter()()
  T.eq(b.image:size(), {3, 3, 8, 6})
  T.eq(b.label:totable(), {1, 2, 2})
  T.eq(b.path[2], root .. '/dog/b.png')
  T.raises('data.ImageFolder: index must be a whole number in [1, 3], got 4', function() ds:get(4) end)
  -- without a size, images of different sizes cannot share a batch
  I.save(root .. '/cat/wide.png', solid(3, 8, 9, 0.5))
  local mixed = D.DataLoader(D.ImageFolder(root, {labels = false}), {batch = 5, shuffle = false})
  T.raises("data.DataLoader: items of a batch differ in size: '" .. root .. "/cat/wide.png' gives "
    .. "{3,8,9} and '" .. root .. "/cat/z.bmp' gives {3,8,6} for field 'image' (give the dataset a "
    .. "size), got different sizes", mixed:iter())
  rmtree(root)
end)

T.case('Unaligned: CycleGAN layout, sizes, independent pairing per epoch, both call forms', function()
  local root = cyclegan_tree(6, 9, 20)
  local ds = D.Unaligned(root, {load_size = 18, crop_size = 16})
  T.eq(#ds, 9) -- max(#A, #B)
  T.eq(#ds.files_A, 6) -- notes.txt is skipped
  local it = ds:get(7)
  T.eq(it.path_A, root .. '/trainA/a01.png') -- A cycles: (7-1) % 6 + 1
  T.eq(it.A:size(), {3, 16, 16})
  T.eq(it.B:size(), {3, 16, 16})
  -- values: A red in [-1,1] (green, blue -1); B blue
  T.close(it.A:select(1, 1):mean(), (1 / 7) * 2 - 1, 0.02)
  T.eq(it.A:select(1, 2):max():item(), -1)
  T.eq(it.B:select(1, 1):max():item(), -1)
  T.ok(it.path_B:match('/trainB/b%d%d%.jpg$'))
  -- the loader pairs B anew every epoch, reproducibly for a seed
  local function pairing(L)
    local out = {}
    for b in L:iter() do for k = 1, #b.path_A do out[#out + 1] = b.path_A[k] .. '|' .. b.path_B[k] end end
    return table.concat(out, ',')
  end
  local L = D.DataLoader(ds, {batch = 3, seed = 1, shuffle = false})
  local e1, e2 = pairing(L), pairing(L)
  T.ok(e1 ~= e2, 'a new pairing each epoch')
  local L2 = D.DataLoader(ds, {batch = 3, seed = 1, shuffle = false, workers = 0})
  T.eq(pairing(L2), e1)
  T.eq(pairing(L2), e2)
  L2:set_epoch(1)
  T.eq(pairing(L2), e1)
  -- phase test: load = crop, no flips; and the API's (dir_a, dir_b) form
  local t = D.Unaligned(root, {phase = 'test', crop_size = 20})
  T.eq(#t, 1)
  T.close(t:get(1).A, solid(3, 20, 20, 128 / 255 * 2 - 1), 1e-6)
  local ab = D.Unaligned(root .. '/trainA', root .. '/trainB', {load_size = 16, crop_size = 16})
  T.eq(#ab, 9)
  T.eq(ab:get(2).A:size(), {3, 16, 16})
  rmtree(root)
end)

T.case('Aligned: A|B split, same crop and flip for both halves, direction, odd width', function()
  local root = tmpdir()
  Cd.mkdir(root .. '/train')
  -- left half: a gradient pattern in red; right half: the same pattern in green
  local size = 12
  for i = 1, 4 do
    local img = duel.zeros(3, size, 2 * size)
    for y = 1, size do
      for x = 1, size do
        local v = ((x * 3 + y * 5 + i) % 11) / 10
        img:set_(v, 1, y, x)
        img:set_(v, 2, y, size + x)
      end
    end
    I.save(('%s/train/%d.png'):format(root, i), img)
  end
  local ds = D.Aligned(root, {load_size = 12, crop_size = 8})
  T.eq(#ds, 4)
  local L = D.DataLoader(ds, {batch = 4, seed = 7, workers = 2})
  local flips = 0
  for epoch = 1, 3 do
    for b in L:iter() do
      T.eq(b.A:size(), {4, 3, 8, 8})
      -- the same crop and flip: A's red equals B's green, pixel for pixel
      T.close(b.A:select(2, 1), b.B:select(2, 2), 0)
      T.eq(b.A:select(2, 2):max():item(), -1)
      T.eq(#b.path, 4)
      for k = 1, 4 do
        local i = tonumber(b.path[k]:match('(%d)%.png$'))
        local ref = D.Aligned(root, {load_size = 12, crop_size = 12, flip = false}):get(i).A:select(1, 1)
        local got = b.A:select(1, k):select(1, 1)
        local match_plain, match_flip = false, false
        for cy = 1, 5 do for cx = 1, 5 do
          local c = I.crop(ref, cy, cx, 8, 8)
          if maxdiff(c, got) == 0 then match_plain = true end
          if maxdiff(I.hflip(c), got) == 0 then match_flip = true end
        end end
        T.ok(match_plain or match_flip, 'a crop of the file, maybe flipped')
        if match_flip and not match_plain then flips = flips + 1 end
      end
    end
  end
  T.ok(flips > 0 and flips < 12, 'flips happen about half the time, got ' .. flips)
  local r = D.Aligned(root, {load_size = 12, crop_size = 12, direction = 'BtoA', flip = false}):get(1)
  T.eq(r.A:select(1, 1):max():item(), -1) -- A is now the right (green) half
  T.ok(r.A:select(1, 2):max():item() > 0)
  -- no phase folder: the root itself
  T.eq(#D.Aligned(root .. '/train', {load_size = 12, crop_size = 12}), 4)
  local odd = root .. '/train/odd.png'
  I.save(odd, duel.zeros(3, 12, 25))
  local bad = D.Aligned(root, {load_size = 12, crop_size = 12})
  T.raises_exact(("data.Aligned: aligned image '%s' must hold A|B side by side with an even width, got 25x12"):format(odd),
    function() bad:get(5) end)
  for _, w in ipairs({0, 2}) do
    local it = D.DataLoader(bad, {batch = 5, workers = w, shuffle = false}):iter()
    T.raises(("aligned image '%s' must hold A|B side by side"):format(odd), it)
  end
  T.raises("data.Aligned: phase folder '" .. root .. "/val' does not exist, got no such path",
    function() D.Aligned(root, {phase = 'val'}) end)
  T.raises("data.Aligned: direction must be 'AtoB' or 'BtoA', got up", function() D.Aligned(root, {direction = 'up'}) end)
  rmtree(root)
end)

T.case('folders: missing folder, empty domain, corrupt files are errors naming the file', function()
  T.raises_exact("data.Unaligned: folder '/nonexistent/cg' does not exist, got no such path",
    function() D.Unaligned('/nonexistent/cg') end)
  T.raises_exact("data.ImageFolder: folder '/nonexistent/if' does not exist, got no such path",
    function() D.ImageFolder('/nonexistent/if') end)
  local root = cyclegan_tree(2, 2, 8)
  Cd.mkdir(root .. '/valA')
  Cd.mkdir(root .. '/valB')
  I.save(root .. '/valA/x.png', solid(3, 8, 8, 0))
  T.raises_exact(("data.Unaligned: no images in domain folder '%s/valB' (looked for .png, .jpg, .jpeg, .bmp, .tga files), got an empty folder"):format(root),
    function() D.Unaligned(root, {phase = 'val'}) end)
  T.raises(("data.Unaligned: domain folder '%s/fooA' does not exist"):format(root),
    function() D.Unaligned(root, {phase = 'foo'}) end)
  T.raises(("data.Unaligned: '%s/trainA/a01.png' must be a folder, got a file"):format(root),
    function() D.Unaligned(root .. '/trainA/a01.png', root .. '/trainB') end)
  -- corrupt files of each kind inside a dataset: the loader raises, naming the file, and a new
  -- epoch starts cleanly afterwards
  local good = read(root .. '/trainA/a01.png')
  local jpg = read(root .. '/trainB/b01.jpg')
  local cases = {
    {'trunc.png', good:sub(1, #good - 20), 'corrupt or truncated PNG'},
    {'trunc.jpg', jpg:sub(1, math.floor(#jpg * 0.6)), 'corrupt or truncated JPEG'},
    {'random.png', ('\23\45\67\89'):rep(100), 'not a PNG, JPEG, BMP or TGA file'},
    {'empty.png', '', 'empty file'},
  }
  for _, c in ipairs(cases) do
    local dir = tmpdir()
    I.save(dir .. '/ok1.png', solid(3, 8, 8, 0.5))
    I.save(dir .. '/ok2.png', solid(3, 8, 8, 0.5))
    local bad = dir .. '/' .. c[1]
    write(bad, c[2])
    local ds = D.ImageFolder(dir, {size = 8})
    for _, w in ipairs({0, 1}) do
      local L = D.DataLoader(ds, {batch = 3, workers = w, shuffle = false})
      local ok, err = pcall(L:iter())
      T.ok(not ok, c[1] .. ' raises')
      T.ok(err:find(("data.ImageFolder: cannot decode '%s' (%s)"):format(bad, c[3]), 1, true), err)
      -- repaired, the next epoch runs cleanly
      I.save(bad, solid(3, 8, 8, 1))
      local n = 0
      for b in L:iter() do n = n + b.image:size(1) end
      T.eq(n, 3)
      write(bad, c[2])
    end
    -- without a size, the header is read when the item is planned: the same error
    local plain = D.ImageFolder(dir)
    local at
    for i, f in ipairs(plain.files) do if f == bad then at = i end end
    T.raises(("cannot decode '%s' (%s)"):format(bad, c[3]), function() plain:get(at) end)
    rmtree(dir)
  end
  rmtree(root)
end)

---------------------------------------------------------------------------------------------------
-- the Fashion-MNIST image-to-image tasks

T.case('make_fashion_domains: a CycleGAN tree that Unaligned reads, deterministic for a seed', function()
  local dir = tmpdir()
  local r = D.make_fashion_domains(dir, 'Sneaker', 10, {n_train = 6, n_test = 3, seed = 4})
  T.eq(r.classes, {'Sneaker', 'Ankle boot'})
  T.eq({r.counts.trainA, r.counts.trainB, r.counts.testA, r.counts.testB}, {6, 6, 3, 3})
  local img = I.load(dir .. '/trainA/000001.png')
  T.eq(img:size(), {1, 32, 32})
  T.eq(img:narrow(2, 1, 2):max():item(), 0) -- padded with the black background
  local ds = D.Unaligned(dir, {load_size = 36, crop_size = 32, channels = 1})
  T.eq(#ds, 6)
  T.eq(ds:get(1).A:size(), {1, 32, 32})
  -- the same seed writes the same images; overwrite is required to reuse the folders
  T.raises(("data.make_fashion_domains: folder '%s/trainA' already holds 6 images"):format(dir),
    function() D.make_fashion_domains(dir, 'Sneaker', 10, {n_train = 6, n_test = 3, seed = 4}) end)
  -- (n_train = 0 skips reading the training split, which keeps this test fast)
  local before = read(dir .. '/testB/000003.png')
  D.make_fashion_domains(dir, 8, 'ankle boot', {n_train = 0, n_test = 3, seed = 4, overwrite = true})
  T.eq(read(dir .. '/testB/000003.png') == before, true)
  T.eq(#Cd.listdir(dir .. '/trainA'), 0)
  D.make_fashion_domains(dir, 8, 10, {n_train = 0, n_test = 3, seed = 5, overwrite = true})
  T.eq(read(dir .. '/testB/000003.png') == before, false)
  -- the written garments are images of the named class: each equals a test sneaker
  local sneakers = D.fashion_mnist{split = 'test', classes = {8}, pad_to = 32}.images
  local t1 = I.load(dir .. '/testA/000001.png'):view(1, 1, 32, 32) * 2 - 1
  local found = false
  for i = 1, sneakers:size(1) do
    if maxdiff(sneakers:narrow(1, i, 1), t1) < 1e-6 then found = true; break end
  end
  T.ok(found, 'testA/000001.png is a test-split sneaker')
  T.raises('data.make_fashion_domains: the two domains must be different classes, got 8 twice',
    function() D.make_fashion_domains(dir, 8, 'Sneaker') end)
  rmtree(dir)
end)

T.case('make_fashion_edges: aligned edges|garment pairs, Sobel edges as documented', function()
  local dir = tmpdir()
  -- (n_train = 0 skips reading the training split, which keeps this test fast)
  local r = D.make_fashion_edges(dir, {n_train = 0, n_test = 4, seed = 1})
  T.eq({r.counts.train, r.counts.test, r.threshold}, {0, 4, 1.0})
  local pair = I.load(dir .. '/test/000002.png')
  T.eq(pair:size(), {1, 32, 64})
  local A, B = pair:narrow(3, 1, 32), pair:narrow(3, 33, 32)
  -- A is exactly the thresholded Sobel map of B: black edges (0) on white (1)
  T.close(A, require('duel.core')._image.sobel_edges(B:contiguous(), 1.0), 0)
  local zeros = (A:lt(0.5)):sum():item()
  T.ok(zeros > 20 and zeros < 32 * 32 / 2, 'an outline, got ' .. zeros .. ' edge pixels')
  local ds = D.Aligned(dir, {phase = 'test', load_size = 32, crop_size = 32, channels = 1})
  T.eq(#ds, 4)
  local it = ds:get(2)
  T.close(it.A, A * 2 - 1, 1e-6)
  T.close(it.B, B * 2 - 1, 1e-6)
  T.eq(it.A:size(), {1, 32, 32})
  -- the same seed gives the same pairs
  local before = read(dir .. '/test/000004.png')
  D.make_fashion_edges(dir, {n_train = 0, n_test = 4, seed = 1, overwrite = true})
  T.eq(read(dir .. '/test/000004.png') == before, true)
  rmtree(dir)
end)

T.case('sobel_edges: a vertical step gives edges on both sides of it', function()
  local x = duel.tensor{{0, 0, 1, 1, 1}, {0, 0, 1, 1, 1}, {0, 0, 1, 1, 1}}
  -- |gx| = 4 at columns 2 and 3 (the step is between them), 0 elsewhere; borders replicate
  T.close(require('duel.core')._image.sobel_edges(x, 1), {{1, 0, 0, 1, 1}, {1, 0, 0, 1, 1}, {1, 0, 0, 1, 1}})
  T.close(require('duel.core')._image.sobel_edges(x, 4), duel.ones(3, 5))
end)

---------------------------------------------------------------------------------------------------
-- the loader

T.case('DataLoader: tensor and table datasets, len, drop_last, shuffle, field alignment', function()
  local x = duel.arange(10):view(10, 1)
  local L = D.DataLoader(x, {batch = 4, shuffle = false, drop_last = false})
  T.eq(#L, 3)
  T.eq(L:len(), 3)
  local got = {}
  for b in L:iter() do got[#got + 1] = b:view(-1):totable() end
  T.eq(got, {{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}})
  T.eq(#D.DataLoader(x, {batch = 4}), 2)
  -- shuffled: a permutation, reproducible, different for another seed or epoch
  local function epoch(L)
    local all = {}
    for b in L:iter() do for _, v in ipairs(b:view(-1):totable()) do all[#all + 1] = v end end
    return all
  end
  local S = D.DataLoader(x, {batch = 5, seed = 3})
  local e1, e2 = epoch(S), epoch(S)
  local sorted = {unpack(e1)}
  table.sort(sorted)
  T.eq(sorted, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
  T.ok(table.concat(e1, ',') ~= table.concat(e2, ','), 'a new order each epoch')
  T.eq(epoch(D.DataLoader(x, {batch = 5, seed = 3})), e1)
  T.ok(table.concat(epoch(D.DataLoader(x, {batch = 5, seed = 4})), ',') ~= table.concat(e1, ','))
  -- fashion_mnist's table: images and labels stay aligned, class_names is left out
  local ds = D.fashion_mnist{split = 'test', limit = 50}
  local F = D.DataLoader(ds, {batch = 16, seed = 2})
  for b in F:iter() do
    T.eq(b.images:size(), {16, 1, 28, 28})
    T.eq(b.class_names, nil)
    for k = 1, 16 do
      -- find the image in the dataset: its label must match
      local img = b.images:narrow(1, k, 1)
      for i = 1, 50 do
        if maxdiff(ds.images:narrow(1, i, 1), img) == 0 then T.eq(b.labels:get(k), ds.labels:get(i)); break end
      end
    end
  end
  -- a Lua dataset with len/get: items collated field by field
  local user = {len = function() return 5 end,
                get = function(_, i, r) return {x = duel.full({2}, i), y = i * 10, name = 'n' .. i, u = r()} end}
  local U = D.DataLoader(user, {batch = 2, shuffle = false, drop_last = false})
  local b = U:iter()()
  T.eq(b.x:size(), {2, 2})
  T.eq(b.y:totable(), {10, 20})
  T.eq(b.name, {'n1', 'n2'})
  T.eq(#U, 3)
  T.raises('data.DataLoader: batch must be a whole number in [1, inf], got 0', function() D.DataLoader(x, {batch = 0}) end)
  T.raises('data.DataLoader: dataset must be a tensor, a table of tensors or an object with len/get, got string',
    function() D.DataLoader('x') end)
  T.raises("data.DataLoader: tensor fields must share size(1)", function() D.DataLoader({a = duel.zeros(3), b = duel.zeros(4)}) end)
end)

T.case('DataLoader: folder batches are identical with 0, 1 or 3 workers and any prefetch depth', function()
  local root = cyclegan_tree(7, 5, 24)
  local ds = D.Unaligned(root, {load_size = 22, crop_size = 16})
  local function run(workers, prefetch, seed)
    local L = D.DataLoader(ds, {batch = 3, seed = seed or 9, workers = workers, prefetch = prefetch, drop_last = false})
    local out = {}
    for _ = 1, 2 do
      for b in L:iter() do out[#out + 1] = b end
    end
    return out
  end
  local ref = run(0, 1)
  T.eq(#ref, 2 * 3)
  for _, cfg in ipairs({{1, 1}, {1, 3}, {3, 2}}) do
    local got = run(cfg[1], cfg[2])
    for k = 1, #ref do
      T.eq(maxdiff(got[k].A, ref[k].A), 0, ('workers %d batch %d'):format(cfg[1], k))
      T.eq(maxdiff(got[k].B, ref[k].B), 0)
      T.eq(got[k].path_B, ref[k].path_B)
    end
  end
  -- another seed changes the batches
  local other = run(1, 2, 10)
  local differs = false
  for k = 1, #ref do if maxdiff(other[k].A, ref[k].A) > 0 or maxdiff(other[k].B, ref[k].B) > 0 then differs = true end end
  T.ok(differs, 'seed 10 differs from seed 9')
  -- duel.manual_seed and draws made by the training step do not change the loader's batches
  duel.manual_seed(1)
  local L = D.DataLoader(ds, {batch = 3, seed = 9, workers = 1, drop_last = false})
  local k = 0
  for b in L:iter() do
    duel.randn(100)
    k = k + 1
    T.eq(maxdiff(b.A, ref[k].A), 0)
  end
  rmtree(root)
end)

T.case('DataLoader: the next batch decodes in the background while the step runs', function()
  local dir = tmpdir()
  duel.manual_seed(3)
  -- images large enough that decoding, not the fixed cost of handing a batch over, dominates
  for i = 1, 12 do I.save(("%s/%02d.png"):format(dir, i), duel.rand(3, 512, 512)) end
  local ds = D.ImageFolder(dir, {size = 96})
  local opts = {batch = 4, shuffle = false}
  -- decode time of one batch on the Lua thread
  local S = D.DataLoader(ds, {batch = 4, shuffle = false, workers = 0})
  local it = S:iter()
  local t0 = now()
  it()
  local decode = now() - t0
  T.ok(decode > 0.002, 'a batch takes measurable time to decode: ' .. decode)
  local step = math.max(4 * decode, 0.05)
  local ok_runs, waits = 0, {}
  for _ = 1, 3 do -- a loaded machine can starve the worker once; three misses would not be luck
    local L = D.DataLoader(ds, {batch = opts.batch, shuffle = false, workers = 1, prefetch = 1})
    local iter = L:iter()
    iter()        -- batch 1 (batch 2 is queued as it returns)
    sleep(step)   -- the training step
    local t1 = now()
    local b2 = iter()
    local wait = now() - t1
    waits[#waits + 1] = ('%.1f ms'):format(wait * 1000)
    T.eq(b2.image:size(), {4, 3, 96, 96})
    if L.ready[2] and wait < 0.5 * decode then ok_runs = ok_runs + 1; break end
  end
  T.ok(ok_runs == 1, ('batch 2 was ready when a %.0f ms step ended (decode %.1f ms; waits %s)'):format(
    step * 1000, decode * 1000, table.concat(waits, ', ')))
  -- without a worker, nothing is ready ahead of time
  local Z = D.DataLoader(ds, {batch = 4, shuffle = false, workers = 0})
  local zi = Z:iter()
  zi(); sleep(0.01); zi()
  T.eq(Z.ready[2], false)
  rmtree(dir)
end)

-- Compiled traces can keep the last objects they saw alive (a batch or two) until they are
-- flushed; flushing here leaves later files' live-byte checks (test_errors, test_memory)
-- measuring their own allocations only.
T.case('cleanup: release compiled traces that still reference loader batches', function()
  jit.flush()
  collectgarbage()
  collectgarbage()
  T.ok(true)
end)
