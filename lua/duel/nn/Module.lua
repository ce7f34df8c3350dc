-- nn.Module: the base of modules written in Lua, and the generic module methods shared with the
-- built-in C layers (parameters, state_dict, train/eval, apply, tostring...).
--
-- A Lua module is a class made with Module:extend('Name'); assigning a module or a leaf tensor
-- that requires grad to a field registers it, in order, as a child or a parameter:
--
--   local Block = nn.Module:extend('Block')
--   function Block:__init(c) self.conv = nn.Conv2d(c, c, 3, {padding = 1}); self.act = nn.ReLU() end
--   function Block:forward(x) return x + self.act(self.conv(x)) end
local core = require 'duel.core'

local tensor_mt = core._core.metatable
local function is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == tensor_mt end

local generic = {} -- methods every module has, Lua or C; both reach them through the same table

local Module = {__name = 'Module'}
Module.__index = Module

local function is_module(v)
  if type(v) == 'table' then
    local mt = getmetatable(v)
    return mt ~= nil and rawget(mt, '__ismodule') == true
  end
  return type(v) == 'userdata' and getmetatable(v) ~= tensor_mt and type(v.named_children) == 'function'
end
Module.is_module = is_module

-- ---- classes ---------------------------------------------------------------------------------

-- Module:extend(name): a subclass; instances are made by calling the class: Block(64)
function Module:extend(name)
  local cls = {__name = name or 'Module', __super = self}
  local inst_mt = {__ismodule = true}
  cls.__instance_mt = inst_mt
  setmetatable(cls, {
    __index = self,
    __call = function(c, ...)
      local obj = setmetatable({_modules = {}, _module_order = {}, _parameters = {},
                                _param_order = {}, _buffers = {}, _buffer_order = {},
                                training = true}, inst_mt)
      local init = c.__init
      if init then init(obj, ...) end
      return obj
    end,
  })
  inst_mt.__index = function(obj, k)
    local v = cls[k]
    if v ~= nil then return v end
    v = rawget(obj, '_parameters')[k]
    if v ~= nil then return v end
    v = rawget(obj, '_buffers')[k]
    if v ~= nil then return v end
    if type(k) == 'number' then k = tostring(k) end -- seq[3]
    return rawget(obj, '_modules')[k]
  end
  inst_mt.__newindex = function(obj, k, v)
    local mods, params, bufs = rawget(obj, '_modules'), rawget(obj, '_parameters'), rawget(obj, '_buffers')
    if is_module(v) then
      if not mods[k] then table.insert(rawget(obj, '_module_order'), k) end
      mods[k] = v
    elseif is_tensor(v) and (params[k] or (v.requires_grad and v.is_leaf)) then
      if not params[k] then table.insert(rawget(obj, '_param_order'), k) end
      params[k] = v
    elseif is_tensor(v) and bufs[k] then
      bufs[k] = v
    elseif v == nil and (mods[k] or params[k] or bufs[k]) then
      for _, reg in ipairs({{mods, '_module_order'}, {params, '_param_order'}, {bufs, '_buffer_order'}}) do
        if reg[1][k] then
          reg[1][k] = nil
          local order = rawget(obj, reg[2])
          for i, n in ipairs(order) do if n == k then table.remove(order, i) break end end
        end
      end
    else
      rawset(obj, k, v)
    end
  end
  inst_mt.__call = function(obj, ...) return obj:forward(...) end
  inst_mt.__tostring = function(obj) return obj:__tostring() end
  return cls
end

function Module:register_buffer(name, t)
  if not is_tensor(t) then
    error(('register_buffer: buffer %q must be a duel.Tensor, got %s'):format(tostring(name), type(t)), 0)
  end
  local bufs = rawget(self, '_buffers')
  if not bufs[name] then table.insert(rawget(self, '_buffer_order'), name) end
  bufs[name] = t
end

function Module:register_parameter(name, t)
  if not is_tensor(t) then
    error(('register_parameter: parameter %q must be a duel.Tensor, got %s'):format(tostring(name), type(t)), 0)
  end
  local params = rawget(self, '_parameters')
  if not params[name] then table.insert(rawget(self, '_param_order'), name) end
  params[name] = t
end

function Module:forward()
  error(('%s: forward is not defined; give the class a forward(x) method, got none'):format(self.__name), 0)
end

-- primitives the generic methods build on (C layers answer the same three)
function Module:named_children()
  local out = {}
  for _, k in ipairs(rawget(self, '_module_order')) do out[#out + 1] = {k, rawget(self, '_modules')[k]} end
  return out
end
function Module:_own_parameters()
  local out = {}
  for _, k in ipairs(rawget(self, '_param_order')) do out[#out + 1] = {k, rawget(self, '_parameters')[k]} end
  return out
end
function Module:_own_buffers()
  local out = {}
  for _, k in ipairs(rawget(self, '_buffer_order')) do out[#out + 1] = {k, rawget(self, '_buffers')[k]} end
  return out
end
function Module:_set_training(on) rawset(self, 'training', on) end
-- the one-line description used by tostring (containers override __tostring)
function Module:extra_repr() return '' end
function Module:__tostring_line()
  local extra = self:extra_repr()
  return self.__name .. '(' .. extra .. ')'
end

-- ---- generic methods -------------------------------------------------------------------------

local function walk(m, prefix, fn, seen)
  seen = seen or {}
  if seen[m] then return end
  seen[m] = true
  fn(prefix, m)
  for _, c in ipairs(m:named_children()) do
    walk(c[2], prefix == '' and c[1] or prefix .. '.' .. c[1], fn, seen)
  end
end

function generic.named_modules(m)
  local out = {}
  walk(m, '', function(p, mod) out[#out + 1] = {p, mod} end)
  return out
end

function generic.modules(m)
  local out = {}
  for _, e in ipairs(m:named_modules()) do out[#out + 1] = e[2] end
  return out
end

function generic.children(m)
  local out = {}
  for _, e in ipairs(m:named_children()) do out[#out + 1] = e[2] end
  return out
end

-- named_parameters(): {{'3.weight', tensor}, ...} in registration order, shared tensors once
function generic.named_parameters(m)
  local out, seen = {}, {}
  walk(m, '', function(p, mod)
    for _, e in ipairs(mod:_own_parameters()) do
      local t = e[2]
      local key = t and core._core.id(t) -- one tensor seen through two wrappers counts once
      if t and not seen[key] then
        seen[key] = true
        out[#out + 1] = {p == '' and e[1] or p .. '.' .. e[1], t}
      end
    end
  end)
  return out
end

function generic.parameters(m)
  local out = {}
  for _, e in ipairs(m:named_parameters()) do out[#out + 1] = e[2] end
  return out
end

function generic.named_buffers(m)
  local out = {}
  walk(m, '', function(p, mod)
    for _, e in ipairs(mod:_own_buffers()) do
      if e[2] then out[#out + 1] = {p == '' and e[1] or p .. '.' .. e[1], e[2]} end
    end
  end)
  return out
end

function generic.buffers(m)
  local out = {}
  for _, e in ipairs(m:named_buffers()) do out[#out + 1] = e[2] end
  return out
end

function generic.num_parameters(m)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p:numel() end
  return n
end

function generic.train(m, on)
  if on == nil then on = true end
  for _, mod in ipairs(m:modules()) do mod:_set_training(on and true or false) end
  return m
end

function generic.eval(m) return m:train(false) end

function generic.zero_grad(m)
  for _, p in ipairs(m:parameters()) do p.grad = nil end
  return m
end

-- apply(fn): fn(module) for every submodule, children before parents (as PyTorch)
function generic.apply(m, fn)
  for _, c in ipairs(m:children()) do c:apply(fn) end
  fn(m)
  return m
end

-- state_dict(): name -> tensor for every parameter and buffer (live tensors, not copies)
function generic.state_dict(m)
  local sd = {}
  for _, e in ipairs(m:named_parameters()) do sd[e[1]] = e[2] end
  for _, e in ipairs(m:named_buffers()) do sd[e[1]] = e[2] end
  return sd
end

local function shape_str(t) return '{' .. table.concat(t:size(), ',') .. '}' end

-- load_state_dict(sd [, strict=true]): copies values in place; checks names and shapes first
function generic.load_state_dict(m, sd, strict)
  if type(sd) ~= 'table' then
    error(('load_state_dict: expected a table of tensors, got %s'):format(type(sd)), 0)
  end
  if strict == nil then strict = true end
  local own = m:state_dict()
  local missing, unexpected = {}, {}
  for k, t in pairs(own) do
    local v = sd[k]
    if v == nil then missing[#missing + 1] = k
    elseif not is_tensor(v) then
      error(('load_state_dict: %s must be a duel.Tensor, got %s'):format(k, type(v)), 0)
    elseif shape_str(v) ~= shape_str(t) then
      error(('load_state_dict: %s expects shape %s, got %s'):format(k, shape_str(t), shape_str(v)), 0)
    end
  end
  for k in pairs(sd) do if own[k] == nil then unexpected[#unexpected + 1] = k end end
  table.sort(missing)
  table.sort(unexpected)
  if strict and (#missing > 0 or #unexpected > 0) then
    error(('load_state_dict: missing keys {%s} and unexpected keys {%s}, got %d entries'):format(
      table.concat(missing, ', '), table.concat(unexpected, ', '), #missing + #unexpected), 0)
  end
  local prev = core._core.set_grad_enabled(false)
  local ok, err = pcall(function()
    for k, t in pairs(own) do if sd[k] then t:copy_(sd[k]) end end
  end)
  core._core.set_grad_enabled(prev)
  if not ok then error(err, 0) end
  return m
end

local function group_digits(n)
  local s = tostring(n)
  while true do
    local r, k = s:gsub('^(-?%d+)(%d%d%d)', '%1,%2')
    s = r
    if k == 0 then return s end
  end
end
generic.group_digits = group_digits

-- tostring: the architecture as a tree, then the parameter count
function generic.repr(m, indent)
  indent = indent or ''
  local kids = m:named_children()
  if #kids == 0 then return m:__tostring_line() end
  local lines = {m.__name .. ' {'}
  for _, c in ipairs(kids) do
    lines[#lines + 1] = indent .. '  (' .. c[1] .. '): ' .. generic.repr(c[2], indent .. '  ')
  end
  lines[#lines + 1] = indent .. '}'
  return table.concat(lines, '\n')
end

function Module:__tostring()
  return generic.repr(self) .. '\nparameters: ' .. group_digits(self:num_parameters())
end

for k, f in pairs(generic) do
  if k ~= 'group_digits' and k ~= 'repr' then Module[k] = f end
end
Module.__generic = generic

return Module
