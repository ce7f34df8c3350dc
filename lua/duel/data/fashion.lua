-- Fashion-MNIST from Debian's dataset-fashion-mnist package (gzipped IDX files read in C through
-- zlib; nothing is cached on disk), and the two image-to-image tasks built from it that need no
-- download: make_fashion_domains (unpaired, CycleGAN layout) and make_fashion_edges (paired
-- edges -> garment, pix2pix layout).
local core = require 'duel.core'
local util = require 'duel.data.util'
local C = core._data

local M = {}

M.ROOT = '/usr/share/datasets/fashion-mnist'
M.PACKAGE = 'dataset-fashion-mnist'
-- the dataset's label order; labels here are 1-based (file label + 1)
M.CLASS_NAMES = {'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                 'Sneaker', 'Bag', 'Ankle boot'}

local function class_list()
  return '1..10 or ' .. "'" .. table.concat(M.CLASS_NAMES, "', '") .. "'"
end

-- a class given by 1-based number or by name (case-insensitive) -> its number
function M.class_index(op, c)
  if type(c) == 'number' then
    if c == math.floor(c) and c >= 1 and c <= 10 then return c end
  elseif type(c) == 'string' then
    for k, name in ipairs(M.CLASS_NAMES) do
      if name:lower() == c:lower() then return k end
    end
  end
  util.fail('%s: unknown Fashion-MNIST class (expected %s), got %s', op, class_list(),
    type(c) == 'string' and ("'" .. c .. "'") or tostring(c))
end

-- read_idx(path, {scale=1, shift=0}) -> the IDX file's bytes as floats v*scale + shift
function M.read_idx(path, opts)
  local o = util.opts('data.read_idx', opts)
  if type(path) ~= 'string' then
    util.fail('data.read_idx: path must be a string, got %s', type(path))
  end
  return C.idx_load(path, o.scale or 1, o.shift or 0)
end

-- fashion_mnist{split='train'|'test', pad_to=nil|32, classes=nil|{...}, limit=nil|n,
--               relabel=false, root=M.ROOT}
--   -> {images = N x 1 x 28 x 28 in [-1,1], labels = {N} in 1..10, class_names = {...}, split =}
-- pad_to=32 pads every side with -1 (the background) to 32 x 32. classes keeps the listed classes
-- (numbers or names) in file order; relabel=true renumbers them 1..#classes in the order given.
-- limit keeps the first n images (after the class filter).
function M.fashion_mnist(opts)
  local op = 'data.fashion_mnist'
  local o = util.opts(op, opts)
  local split = o.split or 'train'
  if split ~= 'train' and split ~= 'test' then
    util.fail("%s: split must be 'train' or 'test', got %s", op, tostring(split))
  end
  local root = o.root or M.ROOT
  local prefix = split == 'train' and 'train' or 't10k'
  local img_path = util.join(root, prefix .. '-images-idx3-ubyte.gz')
  local lbl_path = util.join(root, prefix .. '-labels-idx1-ubyte.gz')
  for _, p in ipairs({img_path, lbl_path}) do
    if util.kind(p) ~= 'file' then
      util.fail("%s: Fashion-MNIST is not installed (install the Debian package %s: "
        .. "apt-get install %s), got no file '%s'", op, M.PACKAGE, M.PACKAGE, p)
    end
  end
  local pad = 0
  if o.pad_to ~= nil and o.pad_to ~= false then
    util.check_int(op, 'pad_to', o.pad_to, 28, 4096)
    if (o.pad_to - 28) % 2 ~= 0 then
      util.fail('%s: pad_to must be 28 plus an even number, got %d', op, o.pad_to)
    end
    pad = (o.pad_to - 28) / 2
  end
  local images = C.idx_load(img_path, 2 / 255, -1, pad, -1)
  local labels = C.idx_load(lbl_path, 1, 1)
  local n = images:size(1)
  if images:dim() ~= 3 or images:size(2) ~= 28 + 2 * pad or images:size(3) ~= 28 + 2 * pad then
    util.fail("%s: '%s' must hold N x 28 x 28 images, got {%s}",
      op, img_path, table.concat(images:size(), ','))
  end
  if labels:dim() ~= 1 or labels:size(1) ~= n then
    util.fail("%s: '%s' must hold %d labels for the %d images, got {%s}", op, lbl_path, n, n,
      table.concat(labels:size(), ','))
  end
  local lo, hi = labels:min():item(), labels:max():item()
  if lo < 1 or hi > 10 then
    util.fail("%s: '%s' holds labels outside 0..9, got %d..%d", op, lbl_path, lo - 1, hi - 1)
  end
  images = images:view(n, 1, images:size(2), images:size(3))
  local keep
  if o.classes ~= nil then
    if type(o.classes) ~= 'table' or #o.classes == 0 then
      util.fail('%s: classes must be a non-empty list of class numbers or names, got %s',
        op, type(o.classes))
    end
    local map = {}
    for k, c in ipairs(o.classes) do map[M.class_index(op, c)] = k end
    keep = {}
    local lt = labels:totable()
    local new = {}
    for i = 1, n do
      if map[lt[i]] then keep[#keep + 1] = i; new[#new + 1] = o.relabel and map[lt[i]] or lt[i] end
    end
    if o.limit then
      util.check_int(op, 'limit', o.limit, 0)
      for i = #keep, o.limit + 1, -1 do keep[i] = nil; new[i] = nil end
    end
    local idx = core.tensor(keep)
    images, labels = images:index_select(1, idx), core.tensor(new)
  elseif o.limit then
    util.check_int(op, 'limit', o.limit, 0)
    local m = math.min(o.limit, n)
    images, labels = images:narrow(1, 1, m):clone(), labels:narrow(1, 1, m):clone()
  end
  local names = {}
  for k, v in ipairs(M.CLASS_NAMES) do names[k] = v end
  if o.relabel and o.classes then
    names = {}
    for k, c in ipairs(o.classes) do names[k] = M.CLASS_NAMES[M.class_index(op, c)] end
  end
  return {images = images, labels = labels, class_names = names, split = split}
end

-- image files of a folder we are about to fill: refuse to mix with earlier images unless
-- overwrite=true, which removes them (only image files, only in that folder)
local function prepare(op, dir, overwrite)
  C.mkdir(dir, op)
  local names, kinds = C.listdir(dir, op)
  local old = {}
  for i = 1, #names do
    if kinds[i] == 'file' and util.is_image(names[i]) then
      old[#old + 1] = util.join(dir, names[i])
    end
  end
  if #old > 0 then
    if not overwrite then
      util.fail("%s: folder '%s' already holds %d images (remove them or pass "
        .. "overwrite=true), got '%s'",
        op, dir, #old, old[1])
    end
    for _, p in ipairs(old) do
      local ok, err = os.remove(p)
      if not ok then util.fail("%s: cannot remove '%s', got %s", op, p, tostring(err)) end
    end
  end
end

-- the first n of a seeded shuffle of list (all of it when n is nil)
local function pick(list, n, seed, stream)
  local perm = C.permutation(#list, seed, stream)
  local out = {}
  for k = 1, math.min(n or #list, #list) do out[k] = list[perm[k]] end
  table.sort(out)
  return out
end

local function indices_of(labels, cls)
  local out, lt = {}, labels:totable()
  for i = 1, #lt do if lt[i] == cls then out[#out + 1] = i end end
  return out
end

local function write_pngs(dir, images01, idx)
  local save = core._image.save
  for k, i in ipairs(idx) do save(util.join(dir, ('%06d.png'):format(k)), images01:select(1, i)) end
end

-- make_fashion_domains(dir, a='Sneaker', b='Ankle boot', {n_train=nil, n_test=nil, pad_to=32,
--                      seed=0, overwrite=false}) -> {dir=, classes={a,b}, counts={trainA=,...}}
-- Two Fashion-MNIST classes (numbers or names) as CycleGAN domains A and B: grayscale PNGs in
-- dir/trainA, trainB (from the training split) and testA, testB (from the test split), n_train and
-- n_test per domain (default: every image of the class, 6000 and 1000), chosen by a seeded shuffle
-- and written in file order as 000001.png, ... Load them with data.Unaligned(dir, {...}) exactly
-- like a downloaded horse2zebra folder (use load_size=36, crop_size=32 or so for 32 x 32 images).
function M.make_fashion_domains(dir, a, b, opts)
  local op = 'data.make_fashion_domains'
  if type(dir) ~= 'string' then util.fail('%s: dir must be a string, got %s', op, type(dir)) end
  if type(a) == 'table' and b == nil and opts == nil then opts, a = a, nil end
  local o = util.opts(op, opts)
  local ca, cb = M.class_index(op, a or 'Sneaker'), M.class_index(op, b or 'Ankle boot')
  if ca == cb then
    util.fail('%s: the two domains must be different classes, got %d twice', op, ca)
  end
  local seed = util.check_int(op, 'seed', o.seed or 0, 0, 2 ^ 53)
  local pad_to = o.pad_to
  if pad_to == nil then pad_to = 32 end
  local counts = {}
  for s, split in ipairs({'train', 'test'}) do
    local n = split == 'train' and o.n_train or o.n_test
    if n ~= nil then util.check_int(op, 'n_' .. split, n, 0) end
    -- n = 0 leaves the split's folders empty without reading its files
    local ds = n ~= 0 and M.fashion_mnist{split = split, pad_to = pad_to or nil, root = o.root,
                                          classes = {ca, cb}}
    local images01 = ds and (ds.images + 1) * 0.5
    for d, cls in ipairs({ca, cb}) do
      local sub = util.join(dir, split .. (d == 1 and 'A' or 'B'))
      prepare(op, sub, o.overwrite)
      local idx = ds and pick(indices_of(ds.labels, cls), n, seed, 4 * s + d) or {}
      write_pngs(sub, images01, idx)
      counts[split .. (d == 1 and 'A' or 'B')] = #idx
    end
  end
  return {dir = dir, classes = {M.CLASS_NAMES[ca], M.CLASS_NAMES[cb]}, counts = counts}
end

-- make_fashion_edges(dir, {n_train=5000, n_test=500, size=32, threshold=1.0, classes=nil, seed=0,
--                    overwrite=false}) -> {dir=, counts={train=, test=}, threshold=}
-- A paired edges -> garment task for pix2pix: dir/train and dir/test hold grayscale PNGs of
-- size x 2*size, the edge map A on the left and the garment B on the right (the edges2shoes
-- layout; load with data.Aligned(dir, {...})). The garment is the Fashion-MNIST image padded to
-- size with its black background (size >= 28; 28 leaves it as is). Its edge map is a Sobel filter
-- on the [0,1] intensities (3x3 kernels [-1 0 1; -2 0 2; -1 0 1] and its transpose, borders
-- replicated): pixels whose gradient magnitude sqrt(gx^2 + gy^2) exceeds threshold are edges,
-- drawn black on white. A step from black to white has magnitude 4, so the default threshold
-- of 1.0 keeps the outline and strong folds and drops faint texture. Images are a seeded
-- random subset of the split (of the listed classes, if given).
function M.make_fashion_edges(dir, opts)
  local op = 'data.make_fashion_edges'
  if type(dir) ~= 'string' then util.fail('%s: dir must be a string, got %s', op, type(dir)) end
  local o = util.opts(op, opts)
  local size = util.check_int(op, 'size', o.size or 32, 28, 4096)
  if (size - 28) % 2 ~= 0 then
    util.fail('%s: size must be 28 plus an even number, got %d', op, size)
  end
  local th = o.threshold or 1.0
  if type(th) ~= 'number' or th < 0 then
    util.fail('%s: threshold must be a number >= 0, got %s', op, tostring(th))
  end
  local seed = util.check_int(op, 'seed', o.seed or 0, 0, 2 ^ 53)
  local counts = {}
  local edges = core._image.sobel_edges
  for s, split in ipairs({'train', 'test'}) do
    local n = split == 'train' and (o.n_train or 5000) or (o.n_test or 500)
    util.check_int(op, 'n_' .. split, n, 0)
    -- n = 0 leaves the split's folder empty without reading its files
    local ds = n ~= 0 and M.fashion_mnist{split = split, pad_to = size, classes = o.classes,
                                          root = o.root}
    local all = {}
    for i = 1, ds and ds.images:size(1) or 0 do all[i] = i end
    local idx = pick(all, n, seed, 4 * s + 3)
    local sub = util.join(dir, split)
    prepare(op, sub, o.overwrite)
    local save = core._image.save
    local chosen = #idx > 0 and (ds.images:index_select(1, core.tensor(idx)) + 1) * 0.5
    for k = 1, #idx do
      local b = chosen:select(1, k)
      local a = edges(b, th)
      save(util.join(sub, ('%06d.png'):format(k)), core.cat({a, b}, 3))
    end
    counts[split] = #idx
  end
  return {dir = dir, counts = counts, threshold = th}
end

return M
