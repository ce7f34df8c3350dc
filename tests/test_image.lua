-- duel.image: file round trips, channel conversion, grid layout, resize/crop/hflip values, and
-- an error naming the file for every kind of bad input.
local T = require 'tests.harness'
local duel = require 'duel'
local I = duel.image

local tmpfiles = {}
local function tmp(ext)
  local base = os.tmpname()
  os.remove(base)
  local p = base .. ext
  tmpfiles[#tmpfiles + 1] = p
  return p
end
local function cleanup()
  for _, p in ipairs(tmpfiles) do os.remove(p) end
  tmpfiles = {}
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
local function be32(v)
  return string.char(math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256,
    math.floor(v / 256) % 256, v % 256)
end

-- random values on the 8-bit grid k/255: what every image file can hold exactly
local function quantized(...)
  duel.manual_seed(11)
  local x = duel.rand(...)
  local t = x:totable()
  local flat = {}
  local function walk(v) if type(v) == 'table' then for i = 1, #v do walk(v[i]) end else flat[#flat + 1] = v end end
  walk(t)
  for i = 1, #flat do duel._core.flat_set(x, i, math.floor(flat[i] * 255 + 0.5) / 255) end
  return x
end

T.case('image: PNG, BMP and TGA round trips are exact for 1, 3 and 4 channels', function()
  for _, c in ipairs({1, 3, 4}) do
    local img = quantized(c, 5, 7)
    for _, ext in ipairs({'.png', '.bmp', '.tga', '.PNG'}) do
      local p = tmp(ext)
      I.save(p, img)
      local back = I.load(p, {channels = c})
      T.eq(back:size(), {c, 5, 7}, ext)
      T.close(back, img, 0, ext .. ' channels ' .. c)
      -- without channels a file gives what it stores (stb writes BMP as 24 or 32 bits)
      T.eq(I.load(p):size(1), ext == '.bmp' and math.max(c, 3) or c, ext)
    end
  end
  -- load -> save -> load gives the same file contents (PNG writer is deterministic)
  local p1, p2 = tmp('.png'), tmp('.png')
  I.save(p1, quantized(3, 4, 4))
  I.save(p2, I.load(p1))
  T.eq(read(p1) == read(p2), true)
  -- an H x W tensor is saved as a gray image
  local g = quantized(6, 3)
  local p = tmp('.png')
  I.save(p, g)
  T.eq(I.load(p):size(), {1, 6, 3})
  T.close(I.load(p):view(6, 3), g, 0)
  local info = I.info(p)
  T.eq({info.width, info.height, info.channels}, {3, 6, 1})
  cleanup()
end)

T.case('image: save clamps to [0,1], rounds to 8 bits, maps NaN to 0', function()
  local x = duel.tensor{{{-0.5, 0.2, 1.7, 0 / 0, 0.5 / 255 + 1e-4}}}
  local p = tmp('.png')
  I.save(p, x)
  T.close(I.load(p), {{{0, 51 / 255, 1, 0, 1 / 255}}}, 1e-7)
  cleanup()
end)

T.case('image: JPEG round trip within tolerance, quality option matters', function()
  -- a smooth colour gradient: JPEG's home ground
  local img = duel.empty(3, 32, 48)
  for c = 1, 3 do
    for i = 1, 32 do
      for j = 1, 48 do img:set_(0.1 + 0.8 * ((i / 32) * (c == 1 and 1 or 0.5) + (j / 48) * (c == 3 and 1 or 0.3)) / 1.5, c, i, j) end
    end
  end
  local hi, lo = tmp('.jpg'), tmp('.jpeg')
  I.save(hi, img, {quality = 95})
  I.save(lo, img, {quality = 10})
  local a, b = I.load(hi), I.load(lo)
  T.eq(a:size(), {3, 32, 48})
  local ea = (a - img):abs()
  T.ok(ea:max():item() < 0.04, 'q95 max error ' .. ea:max():item())
  T.ok(ea:mean():item() < 0.008, 'q95 mean error ' .. ea:mean():item())
  T.ok((b - img):abs():mean():item() > ea:mean():item(), 'quality 10 is worse than 95')
  T.ok(#read(lo) < #read(hi), 'quality 10 is smaller')
  T.raises('image.save: quality must be in [1, 100], got 0', function() I.save(hi, img, {quality = 0}) end)
  cleanup()
end)

T.case('image: channels conversion (gray <-> RGB, alpha)', function()
  local rgb = duel.tensor{{{1, 0}}, {{0, 1}}, {{0, 0}}} -- pixel 1 red, pixel 2 green
  local p = tmp('.png')
  I.save(p, rgb)
  -- stb's luma: (77 r + 150 g + 29 b) >> 8
  T.close(I.load(p, {channels = 1}), {{{math.floor(255 * 77 / 256) / 255, math.floor(255 * 150 / 256) / 255}}}, 1e-7)
  local rgba = I.load(p, {channels = 4})
  T.eq(rgba:size(), {4, 1, 2})
  T.close(rgba:select(1, 4), {{1, 1}}, 0)
  T.close(I.load(p, 3), rgb, 0)
  local g = tmp('.png')
  I.save(g, duel.tensor{{{0.2, 0.6}}}:mul(255):add(0.5):clamp(0, 255):div(255))
  local g3 = I.load(g, {channels = 3})
  T.close(g3:select(1, 1), g3:select(1, 3), 0)
  T.eq(I.load(g):size(), {1, 1, 2}) -- nil keeps the file's own channels
  T.raises('image.load: channels must be 1, 3 or 4, got 2', function() I.load(p, {channels = 2}) end)
  cleanup()
end)

T.case('image: grid layout like make_grid (nrow, padding, pad_value, range)', function()
  -- three 1 x 2 x 2 images with values 0.1.., 0.2.., 0.3..; 2 per row, padding 1, pad 0.5
  local b = duel.tensor{{{{0.1, 0.11}, {0.12, 0.13}}}, {{{0.2, 0.21}, {0.22, 0.23}}},
                        {{{0.3, 0.31}, {0.32, 0.33}}}}
  local g = I.grid(b, {nrow = 2, padding = 1, range = false, pad_value = 0.5})
  local P = 0.5
  T.close(g, {{{P, P, P, P, P, P, P},
               {P, 0.1, 0.11, P, 0.2, 0.21, P},
               {P, 0.12, 0.13, P, 0.22, 0.23, P},
               {P, P, P, P, P, P, P},
               {P, 0.3, 0.31, P, P, P, P},
               {P, 0.32, 0.33, P, P, P, P},
               {P, P, P, P, P, P, P}}}, 1e-6)
  -- defaults: nrow 8, padding 2, range {-1,1} -> [0,1] clamped, pad 0
  local x = duel.tensor{{{{-1, 0}, {1, 3}}}}
  local g2 = I.grid(x)
  T.eq(g2:size(), {1, 6, 6})
  T.close(g2:narrow(2, 3, 2):narrow(3, 3, 2), {{{0, 0.5}, {1, 1}}})
  T.eq(g2:sum():item(), 2.5)
  -- a list of images, and 10 images with nrow 4: 3 rows
  T.eq(I.grid({x:select(1, 1), x:select(1, 1)}, {padding = 0}):size(), {1, 2, 4})
  T.eq(I.grid(duel.zeros(10, 3, 4, 5), {nrow = 4}):size(), {3, 3 * 6 + 2, 4 * 7 + 2})
  T.raises('image.grid: batch must be {N,C,H,W} or {C,H,W}, got {2,2}', function() I.grid(duel.zeros(2, 2)) end)
  T.raises('image.grid: range must be {lo, hi} with lo < hi', function() I.grid(x, {range = {1, 1}}) end)
end)

T.case('image: resize values (bilinear up, antialiased down), batches, F.upsample agreement', function()
  -- 2x enlargement: half-pixel centres, edges clamped
  T.close(I.resize(duel.tensor{{{1, 2}, {3, 4}}}, 4, 4),
    {{{1, 1.25, 1.75, 2}, {1.5, 1.75, 2.25, 2.5}, {2.5, 2.75, 3.25, 3.5}, {3, 3.25, 3.75, 4}}})
  -- shrink 4 -> 2: the triangle widens to 2 input pixels: weights 3/4, 3/4, 1/4 (renormalised
  -- at the border) for output 1 and 1/4, 3/4, 3/4 for output 2
  T.close(I.resize(duel.tensor{{{1, 2, 3, 4}}}, 1, 2), {{{(0.75 + 1.5 + 0.75) / 1.75, (0.5 + 2.25 + 3) / 1.75}}})
  -- shrink 3 -> 1: every input pixel inside the window, weights 1/3..: the mean, no aliasing
  T.close(I.resize(duel.tensor{{{3, 6, 9}}}, 1, 1), {{{6}}})
  -- a constant image stays constant at any size
  T.close(I.resize(duel.full({2, 7, 5}, 0.25), 3, 11), duel.full({2, 3, 11}, 0.25))
  -- same size: a copy
  local x = duel.rand(2, 3, 5, 6)
  T.close(I.resize(x, 5, 6), x, 0)
  -- N x C x H x W: each plane resized alike
  local r = I.resize(x, 10, 3)
  T.eq(r:size(), {2, 3, 10, 3})
  T.close(r:select(1, 2):select(1, 3), I.resize(x:select(1, 2):select(1, 3), 10, 3), 0)
  -- enlarging by 2 matches F.upsample's bilinear (align_corners=false)
  if duel.F.upsample then
    T.close(I.resize(x, 10, 12), duel.F.upsample(x, {scale = 2, mode = 'bilinear'}), 1e-5)
  end
  T.raises('image.resize: height must be in [1, 16384], got 0', function() I.resize(x, 0, 3) end)
  T.raises('image.resize: image must have at least 2 dims {H,W}, got {4}', function() I.resize(duel.zeros(4), 2, 2) end)
end)

T.case('image: crop (1-based) and hflip values, errors', function()
  local x = duel.arange(24):view(2, 3, 4) - 1 -- 0..23
  T.close(I.crop(x, 2, 3, 2, 2), {{{6, 7}, {10, 11}}, {{18, 19}, {22, 23}}})
  T.close(I.crop(x, 1, 1, 3, 4), x, 0)
  T.close(I.hflip(duel.arange(6):view(1, 2, 3)), {{{3, 2, 1}, {6, 5, 4}}})
  local b = duel.rand(2, 3, 4, 5)
  T.close(I.hflip(I.hflip(b)), b, 0)
  T.close(I.hflip(b):select(4, 1), b:select(4, 5), 0)
  T.eq(I.crop(b, 2, 2, 3, 3):size(), {2, 3, 3, 3})
  T.raises('image.crop: region (y=3, x=1, h=2, w=2) must lie inside the image {2,3,4}',
    function() I.crop(x, 3, 1, 2, 2) end)
  T.raises('image.crop: region (y=0, x=1, h=1, w=1) must lie inside', function() I.crop(x, 0, 1, 1, 1) end)
  T.raises('image.hflip: image must be a duel.Tensor, got nil', function() I.hflip(nil) end)
end)

T.case('image: to_range maps linearly, clamps on request', function()
  local x = duel.tensor{-1, 0, 1, 3}
  T.close(I.to_range(x), {0, 0.5, 1, 2})
  T.close(I.to_range(x, {clamp = true}), {0, 0.5, 1, 1})
  T.close(I.to_range(duel.tensor{0, 0.5, 1}, {from = {0, 1}, to = {-1, 1}}), {-1, 0, 1})
  T.close(I.to_range(duel.tensor{0, 255}, {from = {0, 255}, to = {0, 1}}), {0, 1})
  T.raises('image.to_range: from must be {lo, hi} with lo < hi, got {1, 0}', function() I.to_range(x, {from = {1, 0}}) end)
end)

T.case('image: every bad file is an error naming the file and the problem', function()
  local good = tmp('.png')
  I.save(good, quantized(3, 16, 16))
  local missing = tmp('.png')
  T.raises_exact(("image.load: cannot open '%s', got No such file or directory"):format(missing),
    function() I.load(missing) end)
  local empty = tmp('.png')
  write(empty, '')
  T.raises_exact(("image.load: cannot decode '%s' (empty file), got 0 bytes"):format(empty), function() I.load(empty) end)
  local rnd = tmp('.png')
  local bytes = {}
  for i = 1, 2000 do bytes[i] = string.char((i * 7919 + 13) % 251) end
  write(rnd, table.concat(bytes))
  T.raises(("image.load: cannot decode '%s' (not a PNG, JPEG, BMP or TGA file), got first bytes"):format(rnd),
    function() I.load(rnd) end)
  -- random bytes named .tga: TGA has no signature, so stb is asked, and says no
  local rtga = tmp('.tga')
  write(rtga, '\1\2\3' .. table.concat(bytes))
  T.raises(("image.load: cannot decode '%s' (corrupt or truncated TGA)"):format(rtga), function() I.load(rtga) end)
  local gif = tmp('.gif')
  T.raises_exact(("image.load: '%s' has an unknown image extension (expected .png, .jpg, .jpeg, .bmp or .tga), got '.gif'"):format(gif),
    function() I.load(gif) end)
  T.raises("image.save: '/tmp/x.webp' has an unknown image extension", function() I.save('/tmp/x.webp', duel.zeros(1, 2, 2)) end)
  -- truncations of each format, at several points
  local img = quantized(3, 24, 24)
  local kinds = {['.png'] = 'PNG', ['.jpg'] = 'JPEG', ['.bmp'] = 'BMP', ['.tga'] = 'TGA'}
  for ext, name in pairs(kinds) do
    local full = tmp(ext)
    I.save(full, img)
    local s = read(full)
    for _, frac in ipairs({0.1, 0.5, 0.9}) do
      local cut = tmp(ext)
      write(cut, s:sub(1, math.floor(#s * frac)))
      T.raises(("image.load: cannot decode '%s' (corrupt or truncated %s)"):format(cut, name),
        function() I.load(cut) end)
    end
    local cut = tmp(ext)
    write(cut, s:sub(1, #s - 1))
    T.raises(("(corrupt or truncated %s)"):format(name), function() I.load(cut) end)
  end
  -- a directory named like an image
  local d = tmp('.png')
  require('duel.core')._data.mkdir(d)
  T.raises(("image.load: '%s' is not a regular file, got a directory"):format(d), function() I.load(d) end)
  os.remove(d)
  -- a named pipe called x.png is refused without blocking on the open
  local ffi = require 'ffi'
  pcall(ffi.cdef, 'int mkfifo(const char *path, unsigned int mode);')
  local fifo = tmp('.png')
  if ffi.C.mkfifo(fifo, 420) == 0 then
    T.raises_exact(("image.load: '%s' is not a regular file, got another kind of file"):format(fifo),
      function() I.load(fifo) end)
  end
  -- a header announcing too many pixels is refused before decoding
  local big = tmp('.png')
  write(big, '\137PNG\r\n\26\n' .. be32(13) .. 'IHDR' .. be32(16000) .. be32(16000) .. '\8\2\0\0\0' ..
    be32(0) .. be32(0) .. 'IEND' .. be32(0))
  T.raises_exact(("image.load: image '%s' is too large (at most 16384 pixels a side and 67108864 in all), got 16000x16000"):format(big),
    function() I.load(big) end)
  -- a JPEG whose Huffman table declares more than 256 codes is refused before stb parses it
  local bad = tmp('.jpg')
  write(bad, '\255\216\255\196' .. string.char(0, 19) .. '\0' .. string.rep('\255', 16) .. '\255\217')
  T.raises(("image.load: cannot decode '%s' (corrupt or truncated JPEG), got a corrupt Huffman table"):format(bad),
    function() I.load(bad) end)
  T.raises('image.load: path must be a string, got nil', function() I.load(nil) end)
  T.raises("image.save: cannot write '/nonexistent_dir_h/x.png', got No such file or directory",
    function() I.save('/nonexistent_dir_h/x.png', duel.zeros(1, 2, 2)) end)
  T.raises('image.save: image must have 1 to 4 channels, got {5,2,2}', function() I.save(good, duel.zeros(5, 2, 2)) end)
  T.raises('image.save: image must be {C,H,W} or {H,W}, got {1,1,2,2}', function() I.save(good, duel.zeros(1, 1, 2, 2)) end)
  cleanup()
end)

T.case('image: mutated files never crash the decoder', function()
  -- a small in-process fuzz: bit flips, byte overwrites and truncations of valid files of each
  -- format must each load or raise an error (the sanitizer build checks memory safety)
  local seed = 12345
  local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
  local loaded, failed = 0, 0
  for _, ext in ipairs({'.png', '.jpg', '.bmp', '.tga'}) do
    local p = tmp(ext)
    I.save(p, quantized(3, 12, 10))
    local s = read(p)
    local q = tmp(ext)
    for _ = 1, 150 do
      local b = {s:byte(1, -1)}
      for _ = 1, 1 + rnd(6) do
        local i = 1 + rnd(#b)
        if rnd(3) == 0 then b[i] = rnd(256) else b[i] = bit.bxor(b[i], bit.lshift(1, rnd(8))) end
      end
      local n = rnd(4) == 0 and 1 + rnd(#b) or #b
      local chars = {}
      for i = 1, n do chars[i] = string.char(b[i]) end
      write(q, table.concat(chars))
      local ok, err = pcall(I.load, q, {channels = ({1, 3, 4})[1 + rnd(3)]})
      if ok then loaded = loaded + 1 else
        failed = failed + 1
        T.ok(err:find(q, 1, true), 'error names the file: ' .. err)
      end
    end
  end
  T.ok(loaded > 0 and failed > 0, ('both outcomes occur: %d loaded, %d failed'):format(loaded, failed))
  cleanup()
end)
