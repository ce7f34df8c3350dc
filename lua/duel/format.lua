-- Tensor printing in the Torch7 style researchers know: aligned columns, one matrix per
-- leading index, a footer with the shape. Large tensors show 3 edge items per dimension.
local M = {}

local EDGE, SUMMARISE_OVER = 3, 1000

local function shape_str(s) return '{' .. table.concat(s, ',') .. '}' end

-- indices shown along a dimension of size n (false marks the "..." gap)
local function shown(n, summarise)
  local idx = {}
  if summarise and n > 2 * EDGE then
    for i = 1, EDGE do idx[#idx + 1] = i end
    idx[#idx + 1] = false
    for i = n - EDGE + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[i] = i end
  end
  return idx
end

-- one number format for the whole tensor, from the values that will be shown
local function number_format(vals)
  local maxabs, minabs, ints, finite = 0, math.huge, true, true
  for _, v in ipairs(vals) do
    if v ~= v or v == math.huge or v == -math.huge then
      finite = false
    else
      local a = math.abs(v)
      if a > maxabs then maxabs = a end
      if a > 0 and a < minabs then minabs = a end
      if v ~= math.floor(v) then ints = false end
    end
  end
  if ints and maxabs < 1e9 then return '%.0f' end
  if maxabs >= 1e5 or (minabs < 1e-4 and minabs > 0) then return '%.4e' end
  return '%.4f'
end

function M.tensor(x)
  local size, nd = x:size(), x:dim()
  local summarise = x:numel() > SUMMARISE_OVER
  local footer = ('[duel.Tensor of shape %s'):format(shape_str(size))
  if x.grad_fn then footer = footer .. ', grad_fn=' .. x.grad_fn
  elseif x.requires_grad then footer = footer .. ', requires_grad' end
  footer = footer .. ']'
  if nd == 0 then
    local v = x:item()
    return ('%s\n%s'):format(number_format({v}):format(v), footer)
  end
  if x:numel() == 0 then return '[empty]\n' .. footer end
  local per_dim = {}
  for d = 1, nd do per_dim[d] = shown(size[d], summarise) end
  -- collect shown values first to choose one width
  local vals = {}
  local function walk(d, idx, fn)
    if d > nd then return fn(idx) end
    for _, i in ipairs(per_dim[d]) do
      if i then idx[d] = i; walk(d + 1, idx, fn) end
    end
  end
  walk(1, {}, function(idx) vals[#vals + 1] = x:get(unpack(idx, 1, nd)) end)
  local fmt = number_format(vals)
  local width = 0
  for _, v in ipairs(vals) do width = math.max(width, #fmt:format(v)) end
  local cell = '%' .. width .. 's'
  local lines = {}
  local function row(prefix)
    local cells = {}
    for _, j in ipairs(per_dim[nd]) do
      if j then
        prefix[nd] = j
        cells[#cells + 1] = cell:format(fmt:format(x:get(unpack(prefix, 1, nd))))
      else
        cells[#cells + 1] = ('%' .. width .. 's'):format('...')
      end
    end
    return ' ' .. table.concat(cells, ' ')
  end
  local function matrix(prefix)
    if nd == 1 then lines[#lines + 1] = row(prefix); return end
    for _, i in ipairs(per_dim[nd - 1]) do
      if i then prefix[nd - 1] = i; lines[#lines + 1] = row(prefix)
      else lines[#lines + 1] = ' ...' end
    end
  end
  if nd <= 2 then
    matrix({})
  else
    local function lead(d, prefix)
      if d > nd - 2 then
        local label = {}
        for k = 1, nd - 2 do label[k] = tostring(prefix[k]) end
        lines[#lines + 1] = ('(%s,.,.) ='):format(table.concat(label, ','))
        matrix(prefix)
        lines[#lines + 1] = ''
        return
      end
      for _, i in ipairs(per_dim[d]) do
        if i then prefix[d] = i; lead(d + 1, prefix)
        else lines[#lines + 1] = '...'; lines[#lines + 1] = '' end
      end
    end
    lead(1, {})
  end
  lines[#lines + 1] = footer
  return table.concat(lines, '\n')
end

return M
