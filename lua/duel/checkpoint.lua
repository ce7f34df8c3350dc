-- duel.save / duel.load: checkpoints as safetensors files. csrc/serialize.c writes and parses the
-- bytes (atomically, with a strict bounded header parser); this file maps Lua values onto it.
--
--   duel.save('ck.safetensors',
--             {G = G, D = D, optG = optG, rng = duel.get_rng_state(), step = 123},
--             {metadata = {run = 'ring8'}})
--   local ck, meta = duel.load('ck.safetensors')   -- ck.G is G's state_dict, ck.step == 123
--   G:load_state_dict(ck.G); optG:load_state_dict(ck.optG); duel.set_rng_state(ck.rng)
--
-- Nested tables are flattened to dotted tensor names ("optG.state.1.exp_avg"), so any
-- safetensors reader sees ordinary tensors. Numbers, strings and booleans go into __metadata__
-- as typed strings ("number:0.0002", "string:ring8", "boolean:true") that round-trip exactly.
-- Because a key may itself hold dots (a module's "fc.weight"), the exact path of every leaf is
-- recorded in the "duel.layout" metadata entry; files without it (a flat table of tensors, or a
-- file from another writer) load as a flat name -> tensor table. Nothing read is ever run.
local core = require 'duel.core'
local C = core._core
local tensor_mt = C.metatable

local M = {}
local LAYOUT_KEY, LAYOUT_HEAD = 'duel.layout', 'duel-layout 1\n'

local function is_tensor(v) return type(v) == 'userdata' and getmetatable(v) == tensor_mt end

local function fail(fmt, ...) error(fmt:format(...), 0) end

local function describe(v)
  if is_tensor(v) then return 'duel.Tensor' end
  return type(v)
end

-- a module, an optimizer or any object with a state_dict method stands for its state
local function state_of(v)
  local tv = type(v)
  if tv == 'userdata' and not is_tensor(v) then
    local ok, sd = pcall(function() return v.state_dict end)
    if ok and type(sd) == 'function' then return v:state_dict() end
  elseif tv == 'table' and getmetatable(v) ~= nil then
    local ok, sd = pcall(function() return v.state_dict end)
    if ok and type(sd) == 'function' then return v:state_dict() end
  end
  return v
end

-- ---- values as typed strings --------------------------------------------------------------------

local function number_text(x)
  if x ~= x then return 'nan' end
  if x == math.huge then return 'inf' end
  if x == -math.huge then return '-inf' end
  if x == 0 and 1 / x < 0 then return '-0' end
  if x == math.floor(x) and math.abs(x) < 2^53 then return ('%d'):format(x) end
  local s = ('%.17g'):format(x)
  return s
end

local function text_number(s)
  if s == 'nan' then return 0 / 0 end
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  if not s:match('^%-?%d+%.?%d*[eE]?[-+]?%d*$') then return nil end
  return tonumber(s)
end

local function encode_value(v)
  local tv = type(v)
  if tv == 'number' then return 'number:' .. number_text(v) end
  if tv == 'string' then return 'string:' .. v end
  return 'boolean:' .. tostring(v)
end

local function decode_value(s, name)
  local kind, rest = s:match('^(%a+):(.*)$')
  if kind == 'number' then
    local x = text_number(rest)
    if x then return x end
  elseif kind == 'string' then
    return rest
  elseif kind == 'boolean' and (rest == 'true' or rest == 'false') then
    return rest == 'true'
  end
  fail("load: value '%s' in the checkpoint is not a typed value, got %q", name, s:sub(1, 60))
end

-- ---- flattening ---------------------------------------------------------------------------------

local function seg_text(k)
  if type(k) == 'string' then return k end
  return number_text(k)
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta == 'number' end
  return a < b
end

-- leaves: {kind = 'T'|'V'|'E', segs = {...}, value = ...} for tensors, plain values and empty
-- tables below the root
local function walk(v, segs, leaves, open, where)
  v = state_of(v)
  local tv = type(v)
  if is_tensor(v) then
    leaves[#leaves + 1] = {kind = 'T', segs = segs, value = v}
  elseif tv == 'number' or tv == 'string' or tv == 'boolean' then
    leaves[#leaves + 1] = {kind = 'V', segs = segs, value = v}
  elseif tv == 'table' then
    local at = where == '' and 'the top level' or "'" .. where .. "'"
    if open[v] then fail('save: the table at %s contains itself, got a cycle', at) end
    open[v] = true
    local keys = {}
    for k in pairs(v) do
      if type(k) == 'number' then
        if k ~= k or k == math.huge or k == -math.huge then
          fail('save: keys must be strings or finite numbers, got %s at %s', tostring(k), at)
        end
      elseif type(k) ~= 'string' then
        fail('save: keys must be strings or finite numbers, got a %s key at %s', type(k), at)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, key_order)
    if #keys == 0 and #segs > 0 then leaves[#leaves + 1] = {kind = 'E', segs = segs} end
    for _, k in ipairs(keys) do
      local s = {unpack(segs)}
      s[#s + 1] = k
      local name = where == '' and seg_text(k) or where .. '.' .. seg_text(k)
      walk(v[k], s, leaves, open, name)
    end
    open[v] = nil -- a table shared by two branches is stored twice; only cycles are refused
  else
    fail("save: cannot store a %s in a checkpoint, got one at '%s'", describe(v), where)
  end
end

local function flat_name(segs)
  local parts = {}
  for i, k in ipairs(segs) do parts[i] = seg_text(k) end
  return table.concat(parts, '.')
end

-- "T s1,s9 G.fc.weight": kind, then each segment's key type and byte length, then the name
local function layout_record(leaf, name)
  local d = {}
  for i, k in ipairs(leaf.segs) do
    d[i] = (type(k) == 'number' and 'n' or 's') .. #seg_text(k)
  end
  return leaf.kind .. ' ' .. table.concat(d, ',') .. ' ' .. name .. '\n'
end

-- obj -> tensors (name -> tensor), meta (key -> string)
function M.flatten(obj, user_meta)
  local root = state_of(obj)
  if type(root) ~= 'table' then
    fail('save: expected a table of tensors, a module, an optimizer or a nested table, got %s',
         describe(root))
  end
  if user_meta ~= nil and type(user_meta) ~= 'table' then
    fail('save: option metadata must be a table of string -> string, got %s', describe(user_meta))
  end
  local leaves = {}
  walk(root, {}, leaves, {}, '')
  local tensors, meta, names = {}, {}, {}
  local simple = true
  local records = {}
  for _, leaf in ipairs(leaves) do
    local name = flat_name(leaf.segs)
    if names[name] then
      fail("save: two entries flatten to the same name, got '%s'", name)
    end
    names[name] = true
    if leaf.kind ~= 'T' or #leaf.segs ~= 1 or type(leaf.segs[1]) ~= 'string' then simple = false end
    if leaf.kind == 'T' then
      tensors[name] = leaf.value
    elseif leaf.kind == 'V' then
      meta[name] = encode_value(leaf.value)
    end
    records[#records + 1] = layout_record(leaf, name)
  end
  if not simple then meta[LAYOUT_KEY] = LAYOUT_HEAD .. table.concat(records) end
  for k, v in pairs(user_meta or {}) do
    if type(k) ~= 'string' or type(v) ~= 'string' then
      fail('save: metadata must map strings to strings, got %s -> %s', describe(k), describe(v))
    end
    if meta[k] ~= nil or k == LAYOUT_KEY then
      fail("save: metadata key '%s' is used by the checkpoint itself, got it in option metadata", k)
    end
    meta[k] = v
  end
  return tensors, meta
end

-- ---- unflattening -------------------------------------------------------------------------------

local function bad_layout(what, got)
  fail('load: bad duel.layout metadata: %s, got %s', what, got)
end

-- the records of a layout string as {kind, segs, name}
local function parse_layout(s)
  if s:sub(1, #LAYOUT_HEAD) ~= LAYOUT_HEAD then
    bad_layout('unknown version', ('%q'):format(s:sub(1, 20)))
  end
  local out, pos, n = {}, #LAYOUT_HEAD + 1, #s
  while pos <= n do
    local kind, desc, after = s:match('^([TVE]) ([sn%d,]*) ()', pos)
    if not kind then
      bad_layout('malformed record at byte ' .. pos, ('%q'):format(s:sub(pos, pos + 20)))
    end
    local lens, segkinds = {}, {}
    local total = 0
    for part in (desc .. ','):gmatch('([^,]*),') do
      local sk, len = part:match('^([sn])(%d+)$')
      if not sk or #len > 9 then bad_layout('malformed segment', ('%q'):format(part)) end
      segkinds[#segkinds + 1], lens[#lens + 1] = sk, tonumber(len)
      total = total + tonumber(len)
    end
    local namelen = total + #lens - 1
    local name = s:sub(after, after + namelen - 1)
    if #name ~= namelen or s:sub(after + namelen, after + namelen) ~= '\n' then
      bad_layout('record shorter than its segments at byte ' .. pos,
                 ('%q'):format(s:sub(pos, pos + 40)))
    end
    local segs, at = {}, 1
    for i, len in ipairs(lens) do
      local text = name:sub(at, at + len - 1)
      if i > 1 and name:sub(at - 1, at - 1) ~= '.' then
        bad_layout('segments not joined by dots', ('%q'):format(name))
      end
      if segkinds[i] == 'n' then
        local x = text_number(text)
        if not x or x ~= x or x == math.huge or x == -math.huge or number_text(x) ~= text then
          bad_layout('a number key that does not read back', ('%q'):format(text))
        end
        segs[i] = x
      else
        segs[i] = text
      end
      at = at + len + 1
    end
    out[#out + 1] = {kind = kind, segs = segs, name = name}
    pos = after + namelen + 1
  end
  return out
end

function M.unflatten(tensors, meta)
  local layout = meta[LAYOUT_KEY]
  if layout == nil then return tensors, meta end
  local root, used_t, used_m = {}, {}, {[LAYOUT_KEY] = true}
  for _, r in ipairs(parse_layout(layout)) do
    local value
    if r.kind == 'T' then
      value = tensors[r.name]
      if value == nil then bad_layout('names a tensor the file lacks', ("'%s'"):format(r.name)) end
      used_t[r.name] = true
    elseif r.kind == 'V' then
      local s = meta[r.name]
      if s == nil then bad_layout('names a value the file lacks', ("'%s'"):format(r.name)) end
      value = decode_value(s, r.name)
      used_m[r.name] = true
    else
      value = {}
    end
    local t = root
    for i = 1, #r.segs - 1 do
      local k = r.segs[i]
      if t[k] == nil then t[k] = {} end
      t = t[k]
      if type(t) ~= 'table' then
        bad_layout('a path runs through a value', ("'%s'"):format(r.name))
      end
    end
    local last = r.segs[#r.segs]
    if last == nil or t[last] ~= nil then
      bad_layout('a path is empty or given twice', ("'%s'"):format(r.name))
    end
    t[last] = value
  end
  for name in pairs(tensors) do
    if not used_t[name] then bad_layout('does not place tensor', ("'%s'"):format(name)) end
  end
  local user = {}
  for k, v in pairs(meta) do
    if not used_m[k] then user[k] = v end
  end
  return root, user
end

-- ---- the public functions -----------------------------------------------------------------------

function M.save(path, obj, opts)
  if type(path) ~= 'string' then fail('save: path must be a string, got %s', describe(path)) end
  if opts ~= nil and type(opts) ~= 'table' then
    fail('save: options must be a table, got %s', describe(opts))
  end
  local tensors, meta = M.flatten(obj, opts and opts.metadata)
  C.st_save(path, tensors, meta)
end

function M.load(path)
  if type(path) ~= 'string' then fail('load: path must be a string, got %s', describe(path)) end
  return M.unflatten(C.st_load(path))
end

-- encode/decode in memory (the same bytes as a file)
function M.encode(obj, opts)
  local tensors, meta = M.flatten(obj, opts and opts.metadata)
  return C.st_encode(tensors, meta)
end

function M.decode(bytes)
  return M.unflatten(C.st_decode(bytes))
end

-- the RNG state as a table {seed=, offset=} (exact below 2^53), and back
function M.get_rng_state()
  local seed, offset = C.rng_state()
  return {seed = seed, offset = offset}
end

function M.set_rng_state(s)
  if type(s) ~= 'table' then
    fail('set_rng_state: expected {seed=, offset=}, got %s', describe(s))
  end
  local seed, offset = s.seed or s[1], s.offset or s[2]
  C.set_rng_state(seed, offset)
end

return M
