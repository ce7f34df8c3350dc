-- duel.image: image files and image-tensor helpers over csrc/image.c (stb_image/stb_image_write).
--
-- Images are float tensors C x H x W with values in [0,1] (load gives that, save expects it).
-- resize/crop/hflip also take N x C x H x W (they work on the last two dims) and are data
-- operations: they record no graph (use F.upsample for a differentiable resampling).
local core = require 'duel.core'
local C = core._image
local tensor_mt = core._core.metatable

local image = {}

local function is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == tensor_mt end

local function opts_of(op, opts)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then
    error(('%s: options must be a table, got %s'):format(op, type(opts)), 0)
  end
  return opts
end

local function check_tensor(op, x, what)
  if not is_tensor(x) then
    error(('%s: %s must be a duel.Tensor, got %s'):format(op, what or 'image', type(x)), 0)
  end
end

-- a {lo, hi} pair with lo < hi
local function check_range(op, name, r)
  if type(r) ~= 'table' or type(r[1]) ~= 'number' or type(r[2]) ~= 'number'
     or not (r[1] < r[2]) then
    error(('%s: %s must be {lo, hi} with lo < hi, got %s'):format(op, name,
      type(r) == 'table' and ('{%s, %s}'):format(tostring(r[1]), tostring(r[2])) or type(r)), 0)
  end
  return r[1], r[2]
end

-- image.load(path, {channels=nil|1|3|4}) -> C x H x W in [0,1]. channels nil keeps the file's
-- own count (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA); 1/3/4 convert (gray<->RGB, alpha dropped or
-- added as opaque). PNG, JPEG, BMP and TGA; errors name the file and the problem.
function image.load(path, opts)
  local channels
  if type(opts) == 'number' then
    channels = opts
  else
    channels = opts_of('image.load', opts).channels
  end
  return C.load(path, channels)
end

-- image.info(path) -> {width=, height=, channels=} from the header alone (nothing decoded)
function image.info(path)
  local w, h, c = C.info(path, 'image.info')
  return {width = w, height = h, channels = c}
end

-- image.save(path, img, {quality=95}): img C x H x W (C = 1..4) or H x W, values clamped to
-- [0,1]. The extension picks the format: .png (lossless), .jpg/.jpeg (quality 1..100), .bmp, .tga.
function image.save(path, img, opts)
  check_tensor('image.save', img)
  local o = opts_of('image.save', opts)
  C.save(path, img:detach(), o.quality)
end

-- image.resize(img, h, w): bilinear; antialiased when shrinking (the triangle filter widens by
-- the shrink factor, an area-weighted average as PIL's BILINEAR and torch's antialias=True).
function image.resize(img, h, w)
  check_tensor('image.resize', img)
  return C.resize(img:detach(), h, w)
end

-- image.crop(img, y, x, h, w): rows y..y+h-1 and columns x..x+w-1 (1-based), as a new tensor
function image.crop(img, y, x, h, w)
  check_tensor('image.crop', img)
  return C.crop(img:detach(), y, x, h, w)
end

-- image.hflip(img): mirror left-right (the last dim)
function image.hflip(img)
  check_tensor('image.hflip', img)
  return C.hflip(img:detach())
end

-- image.to_range(img, {from={-1,1}, to={0,1}, clamp=false}): the linear map taking `from` onto
-- `to` (no clamping unless clamp=true)
function image.to_range(img, opts)
  check_tensor('image.to_range', img)
  local o = opts_of('image.to_range', opts)
  local a, b = check_range('image.to_range', 'from', o.from or {-1, 1})
  local c, d = check_range('image.to_range', 'to', o.to or {0, 1})
  local s = (d - c) / (b - a)
  local y = img * s + (c - a * s)
  if o.clamp then y = y:clamp(c, d) end
  return y
end

-- image.grid(batch, {nrow=8, padding=2, range={-1,1}, pad_value=0}) -> C x H' x W' in [0,1]:
-- a sample sheet like torchvision's make_grid. batch: N x C x H x W, one C x H x W image, or a
-- list of C x H x W images; nrow images per row (the last row may be short). Values are mapped
-- from `range` to [0,1] and clamped (range=false leaves them as they are); padding pixels
-- (pad_value, in the output's [0,1] scale) separate the tiles and frame the sheet.
function image.grid(batch, opts)
  local o = opts_of('image.grid', opts)
  if type(batch) == 'table' then
    if #batch == 0 then error('image.grid: the list of images is empty, got 0 images', 0) end
    for i = 1, #batch do check_tensor('image.grid', batch[i], ('image %d'):format(i)) end
    batch = core.stack(batch, 1)
  end
  check_tensor('image.grid', batch, 'batch')
  batch = batch:detach()
  if batch:dim() == 3 then batch = batch:unsqueeze(1) end
  if batch:dim() ~= 4 then
    error(('image.grid: batch must be {N,C,H,W} or {C,H,W}, got {%s}'):format(
      table.concat(batch:size(), ',')), 0)
  end
  local range = o.range
  if range == nil then range = {-1, 1} end
  if range then
    local lo, hi = check_range('image.grid', 'range', range)
    batch = ((batch - lo) * (1 / (hi - lo))):clamp(0, 1)
  end
  return C.grid(batch, o.nrow or 8, o.padding or 2, o.pad_value or 0)
end

-- image.encode_png(img) -> the bytes of a PNG file of img (C x H x W or H x W in [0,1])
function image.encode_png(img)
  check_tensor('image.encode_png', img)
  local path = os.tmpname()
  local ok, err = pcall(C.save, path .. '.png', img:detach())
  os.remove(path)
  if not ok then os.remove(path .. '.png') error(err, 0) end
  local f = assert(io.open(path .. '.png', 'rb'))
  local png = f:read('*a')
  f:close()
  os.remove(path .. '.png')
  return png
end

-- image.show(img, {range={0,1}, nrow=8}): display an image. img: C x H x W, H x W, or a batch
-- N x C x H x W (shown as a grid of nrow per row); values are mapped from `range` to [0,1].
-- In a notebook (the duel Jupyter kernel sets a display with image.set_display) the PNG is shown
-- inline. Elsewhere it is written to a temporary .png file, opened with the command in the
-- DUEL_VIEWER environment variable if that is set; the file's path is returned.
local display -- function(png_bytes) or nil

function image.set_display(fn)
  if fn ~= nil and type(fn) ~= 'function' then
    error(('image.set_display: expects a function or nil, got %s'):format(type(fn)), 0)
  end
  display = fn
end

function image.show(img, opts)
  check_tensor('image.show', img)
  local o = opts_of('image.show', opts)
  local range = o.range or {0, 1}
  img = img:detach()
  if img:dim() == 4 or img:dim() == 3 and img:size(1) > 4 then -- a batch (3-D: N gray images)
    if img:dim() == 3 then img = img:unsqueeze(2) end
    img = image.grid(img, {nrow = o.nrow, range = range})
  elseif img:dim() == 2 or img:dim() == 3 then
    img = image.to_range(img, {from = range, to = {0, 1}, clamp = true})
  else
    error(('image.show: img must be {C,H,W}, {H,W} or {N,C,H,W}, got {%s}'):format(
      table.concat(img:size(), ',')), 0)
  end
  if display then
    display(image.encode_png(img))
    return -- nothing, so that a notebook cell ending in show() prints no value
  end
  local path = os.tmpname()
  os.remove(path)
  path = path .. '.png'
  C.save(path, img)
  local viewer = os.getenv('DUEL_VIEWER')
  if viewer and viewer ~= '' then
    os.execute(viewer .. " '" .. path:gsub("'", "'\\''") .. "' >/dev/null 2>&1 &")
  end
  return path
end

-- decoding refuses images larger than this before decoding them (csrc/image.h)
if C then image.max_side, image.max_pixels = C.max_side, C.max_pixels end

return image
