-- Datasets over folders of image files: ImageFolder, Unaligned (CycleGAN's trainA/ trainB/
-- testA/ testB/ layout) and Aligned (pix2pix's A|B side-by-side files).
--
-- Each dataset lists its files once (recursively, sorted, by extension) and describes item i as a
-- plan: the jobs that the C pipeline runs (decode, resize to load size, random crop, random flip,
-- map [0,1] to [-1,1]) plus plain values such as paths and labels. ds:get(i) runs the plan on the
-- calling thread, with random choices from duel's RNG; a DataLoader runs the same plans on its
-- worker threads, with random choices from its own seeded stream (see loader.lua).
--
-- Preprocessing follows the original implementations (GAN_REFERENCE.md 1.2-1.4): both images of
-- a CycleGAN item and the pair of a pix2pix item are resized to load_size x load_size (square,
-- ignoring the aspect ratio), randomly cropped to crop_size x crop_size and flipped left-right
-- with probability 1/2, then scaled to [-1,1]. Differences, chosen on purpose: the resize is
-- bilinear (antialiased when shrinking) where PyTorch uses bicubic; the crop offset is uniform
-- over all load-crop+1 positions (PyTorch's randint) where the Lua versions never pick offset 0;
-- channels stay RGB (the Lua versions permuted to BGR).
local core = require 'duel.core'
local util = require 'duel.data.util'

local M = {}

local function check_channels(op, c)
  if c ~= 1 and c ~= 3 and c ~= 4 then
    util.fail('%s: channels must be 1, 3 or 4, got %s', op, tostring(c))
  end
  return c
end

local function check_index(self, i)
  if type(i) ~= 'number' or i ~= math.floor(i) or i < 1 or i > self:len() then
    util.fail('%s: index must be a whole number in [1, %d], got %s',
      self.op, self:len(), tostring(i))
  end
end

local function get(self, i, r)
  check_index(self, i)
  return util.run_plan(self:plan(i, r or util.global_rng()))
end

-- load and crop sizes of the CycleGAN/pix2pix datasets: training defaults 143/128 with flips; other
-- phases load at the crop size without flips (as the test options of both repositories do)
local function pipeline_opts(op, o, phase)
  local train = phase == 'train'
  local crop = util.check_int(op, 'crop_size', o.crop_size or 128, 1, core._image.max_side)
  local load = o.load_size
  if load == nil then load = train and 143 or crop end
  if load ~= false and load ~= 0 then
    util.check_int(op, 'load_size', load, 1, core._image.max_side)
    if load < crop then
      util.fail('%s: load_size must be at least crop_size (%d), got %d', op, crop, load)
    end
  else
    load = 0 -- keep the file's size and crop from it
  end
  local flip = o.flip
  if flip == nil then flip = train end
  local lo, hi = util.range_opt(op, o.range)
  return {load = load, crop = crop, flip = flip and true or false,
          channels = check_channels(op, o.channels or 3), lo = lo, hi = hi}
end

-- the job of one file through the CycleGAN/pix2pix pipeline
local function pipeline_job(self, r, path, field, field2)
  local p = self.pipe
  local lh, lw = p.load, p.load
  if p.load == 0 then -- no resize: crop from the file's own size
    local info = core._image.info
    local w, h = info(path, self.op)
    if field2 then w = math.floor(w / 2) end
    lh, lw = h, w
    if lh < p.crop or lw < p.crop then
      util.fail("%s: image '%s' is smaller than crop_size %d, got %dx%d",
        self.op, path, p.crop, lw, lh)
    end
  end
  local cy, cx, f = util.augment(r, lh, lw, p.crop, p.crop, p.flip)
  return {path = path, op = self.op, field = field, field2 = field2, channels = p.channels,
          split = field2 ~= nil, load_h = p.load, load_w = p.load, crop_y = cy, crop_x = cx,
          out_h = p.crop, out_w = p.crop, flip = f, lo = p.lo, hi = p.hi}
end

local function nonempty(op, files, dir, what)
  if #files == 0 then
    util.fail("%s: no images in %s '%s' (looked for %s files), got an empty folder",
      op, what, dir, util.EXT_LIST)
  end
end

local function paths_of(files)
  local p = {}
  for i, f in ipairs(files) do p[i] = f.path end
  return p
end

---------------------------------------------------------------------------------------------------
-- ImageFolder(dir, {size=nil, crop=nil, flip=false, channels=3, range={-1,1}, labels='auto'})
-- Every image under dir, recursively, sorted by path. Item: {image = C x H x W, path =, label =}.
-- size (n or {h,w}) resizes every image; crop (n or {h,w}) takes a random crop after that; flip
-- mirrors with probability 1/2. Labels: when every image lies in a subfolder of dir, the sorted
-- names of those subfolders are the classes (ds.classes) and label is the 1-based class number
-- (torchvision's ImageFolder layout); labels=false turns this off.
local ImageFolder = {__name = 'ImageFolder'}
ImageFolder.get = get

function M.ImageFolder(dir, opts)
  local op = 'data.ImageFolder'
  util.check_dir(op, dir)
  local o = util.opts(op, opts)
  local sh, sw = util.size_opt(op, 'size', o.size)
  local ch, cw = util.size_opt(op, 'crop', o.crop)
  local lo, hi = util.range_opt(op, o.range)
  local files = util.list_images(dir, op)
  nonempty(op, files, dir, 'folder')
  local st = {op = op, root = dir, files = paths_of(files),
              channels = check_channels(op, o.channels or 3),
              size_h = sh, size_w = sw, crop_h = ch, crop_w = cw, flip = o.flip and true or false,
              lo = lo, hi = hi, dims = {}}
  local want = o.labels
  if want == nil then want = 'auto' end
  if want then
    local in_sub = true
    for _, f in ipairs(files) do if not f.rel:find('/', 1, true) then in_sub = false; break end end
    if in_sub then
      local classes, index, labels = {}, {}, {}
      for i, f in ipairs(files) do
        local c = f.rel:match('^([^/]+)/')
        if not index[c] then classes[#classes + 1] = c; index[c] = true end
        labels[i] = c
      end
      table.sort(classes)
      for k, c in ipairs(classes) do index[c] = k end
      for i = 1, #labels do labels[i] = index[labels[i]] end
      st.classes, st.labels = classes, labels
    elseif want == true then
      util.fail("%s: labels=true needs every image inside a class subfolder of '%s', got '%s'",
        op, dir,
        (function()
          for _, f in ipairs(files) do if not f.rel:find('/', 1, true) then return f.path end end
        end)())
    end
  end
  return util.object(ImageFolder, st)
end

function ImageFolder:len() return #self.files end

function ImageFolder:__tostring()
  return ('ImageFolder(%q, %d images%s)'):format(self.root, #self.files,
    self.classes and (', %d classes'):format(#self.classes) or '')
end

function ImageFolder:plan(i, r)
  check_index(self, i)
  local path = self.files[i]
  local lh, lw = self.size_h, self.size_w
  if not lh then -- no resize: the file's own size, read from its header once
    local d = self.dims[i]
    if not d then
      local w, h = core._image.info(path, self.op)
      d = {h, w}
      self.dims[i] = d
    end
    lh, lw = d[1], d[2]
  end
  local oh, ow = self.crop_h or lh, self.crop_w or lw
  if oh > lh or ow > lw then
    util.fail("%s: crop %dx%d is larger than image '%s' at %dx%d", self.op, ow, oh, path, lw, lh)
  end
  local cy, cx, f = util.augment(r, lh, lw, oh, ow, self.flip)
  local job = {path = path, op = self.op, field = 'image', channels = self.channels,
               load_h = self.size_h or 0, load_w = self.size_w or 0, crop_y = cy, crop_x = cx,
               out_h = oh, out_w = ow, flip = f, lo = self.lo, hi = self.hi}
  return {jobs = {job}, values = {path = path, label = self.labels and self.labels[i] or nil}}
end

---------------------------------------------------------------------------------------------------
-- Unaligned(root, {phase='train', load_size=143, crop_size=128, flip=phase=='train', channels=3,
--                  range={-1,1}, serial=false})  or  Unaligned(dir_a, dir_b, {...})
-- CycleGAN's unpaired layout root/<phase>A and root/<phase>B.
-- Item i: {A =, B =, path_A =, path_B =}
-- with A the ((i-1) % #A + 1)-th file of domain A and B a uniformly random file of domain B, drawn
-- anew each epoch (serial=true pairs B the same way as A). #ds = max(#A, #B), as in the PyTorch
-- implementation. A and B get independent crops and flips.
local Unaligned = {__name = 'Unaligned'}
Unaligned.get = get

function M.Unaligned(a, b, opts)
  local op = 'data.Unaligned'
  local dir_a, dir_b, o, phase
  if type(b) == 'string' then
    o = util.opts(op, opts)
    phase = o.phase or 'train'
    dir_a, dir_b = a, b
    util.check_dir(op, dir_a, 'folder A')
    util.check_dir(op, dir_b, 'folder B')
  else
    o = util.opts(op, b)
    phase = o.phase or 'train'
    if type(phase) ~= 'string' then
      util.fail('%s: phase must be a string, got %s', op, type(phase))
    end
    util.check_dir(op, a, 'root')
    dir_a, dir_b = util.join(a, phase .. 'A'), util.join(a, phase .. 'B')
    for _, d in ipairs({dir_a, dir_b}) do
      if util.kind(d) ~= 'dir' then
        util.fail("%s: domain folder '%s' does not exist (the layout is %s/%sA and %s/%sB), got %s",
          op, d, a, phase, a, phase, util.kind(d) and 'a file' or 'no such path')
      end
    end
  end
  local fa, fb = util.list_images(dir_a, op), util.list_images(dir_b, op)
  nonempty(op, fa, dir_a, 'domain folder')
  nonempty(op, fb, dir_b, 'domain folder')
  return util.object(Unaligned, {op = op, dir_A = dir_a, dir_B = dir_b, phase = phase,
    files_A = paths_of(fa), files_B = paths_of(fb), pipe = pipeline_opts(op, o, phase),
    serial = o.serial and true or false})
end

function Unaligned:len() return math.max(#self.files_A, #self.files_B) end

function Unaligned:__tostring()
  return ('Unaligned(A: %q %d images, B: %q %d images)'):format(self.dir_A, #self.files_A,
    self.dir_B, #self.files_B)
end

function Unaligned:plan(i, r)
  check_index(self, i)
  local pa = self.files_A[(i - 1) % #self.files_A + 1]
  local ib = self.serial and (i - 1) % #self.files_B + 1 or util.randint(r, 1, #self.files_B)
  local pb = self.files_B[ib]
  local ja = pipeline_job(self, r, pa, 'A')
  local jb = pipeline_job(self, r, pb, 'B')
  return {jobs = {ja, jb}, values = {path_A = pa, path_B = pb}}
end

---------------------------------------------------------------------------------------------------
-- Aligned(root, {phase='train', load_size=143, crop_size=128, flip=phase=='train', channels=3,
--                range={-1,1}, direction='AtoB'})
-- pix2pix's paired layout: each file holds A (left half) and B (right half) side by side, in
-- root/<phase>/ (or in root itself when it has no <phase> subfolder). Item i: {A =, B =, path =};
-- both halves get the same resize, crop and flip. direction='BtoA' swaps the halves. A file whose
-- width is odd cannot be split and is an error naming it.
local Aligned = {__name = 'Aligned'}
Aligned.get = get

function M.Aligned(root, opts)
  local op = 'data.Aligned'
  util.check_dir(op, root, 'root')
  local o = util.opts(op, opts)
  local phase = o.phase or 'train'
  if type(phase) ~= 'string' then
    util.fail('%s: phase must be a string, got %s', op, type(phase))
  end
  local dir = util.join(root, phase)
  if util.kind(dir) ~= 'dir' then
    if o.phase ~= nil then
      util.fail("%s: phase folder '%s' does not exist, got %s", op, dir,
        util.kind(dir) and 'a file' or 'no such path')
    end
    dir = root
  end
  local direction = o.direction or 'AtoB'
  if direction ~= 'AtoB' and direction ~= 'BtoA' then
    util.fail("%s: direction must be 'AtoB' or 'BtoA', got %s", op, tostring(direction))
  end
  local files = util.list_images(dir, op)
  nonempty(op, files, dir, 'folder')
  return util.object(Aligned, {op = op, dir = dir, phase = phase, files = paths_of(files),
    direction = direction, pipe = pipeline_opts(op, o, phase)})
end

function Aligned:len() return #self.files end

function Aligned:__tostring()
  return ('Aligned(%q, %d pairs, %s)'):format(self.dir, #self.files, self.direction)
end

function Aligned:plan(i, r)
  check_index(self, i)
  local path = self.files[i]
  local left, right = 'A', 'B'
  if self.direction == 'BtoA' then left, right = 'B', 'A' end
  return {jobs = {pipeline_job(self, r, path, left, right)}, values = {path = path}}
end

return M
