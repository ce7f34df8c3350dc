-- Every public name of the API contract (docs/API.md, a verbatim copy of the shared API.md) must
-- (a) exist in the loaded library and (b) appear in a runnable ```lua example of README.md or
-- docs/*.md (tests/test_docs.lua runs those blocks; "```lua ref" blocks are not run, so they
-- do not count). Missing names are printed before the cases fail.
local T = require 'tests.harness'
local duel = require 'duel'

local function read(path)
  local f = assert(io.open(path))
  local s = f:read('*a')
  f:close()
  return s
end

-- Names of API.md exempted from both checks, each with its reason and printed as "skipped:".
-- Empty: every name exists and has an example; an entry here is a broken promise of the contract.
local allowlist = {}

---------------------------------------------------------------------------------------------------
-- Extraction. API.md lists names inside ```lua blocks in a compact notation:
--   duel.x / duel.a.b     paths into the library (also F.x, nn.x, optim.x, gan.x = duel.F.x ...)
--   x:m() a:m() loss:m()  tensor methods; `x:exp() log sqrt` lists more tensor methods bare,
--                         after a method, up to the next token that is not a bare word
--   x.requires_grad       tensor fields
--   m:m()  opt:m()  sched:m()  gan.ImagePool(50):query()   module/optimizer/scheduler/pool methods
local alias = {F = 'duel.F', nn = 'duel.nn', optim = 'duel.optim', gan = 'duel.gan'}
local receivers = {x = 'tensor', a = 'tensor', loss = 'tensor', m = 'module', opt = 'optimizer',
                   sched = 'scheduler'}

local function extract(text)
  local names, seen = {}, {}
  local function add(kind, name)
    local key = kind .. ' ' .. name
    if not seen[key] then
      seen[key] = true
      names[#names + 1] = {kind = kind, name = name}
    end
  end
  for block in text:gmatch('```lua\n(.-)```') do
    -- argument lists say nothing about names; removing them leaves `f()` and joins the lines
    -- of calls that span several
    block = block:gsub('%b()', '()')
    local padded = '\n' .. block
    for path in padded:gmatch('[^%w_%.:]([%a_][%w_]*%.[%a_][%w_%.]*)') do
      path = path:gsub('%.$', '')
      local head, rest = path:match('^([%a_][%w_]*)%.(.+)$')
      if head == 'duel' then
        add('path', path)
      elseif alias[head] then
        add('path', alias[head] .. '.' .. rest)
      elseif receivers[head] == 'tensor' then
        add('tensor_field', rest)
      end
    end
    for recv, meth in padded:gmatch('[^%w_%.:]([%a_][%w_]*):([%a_][%w_]*)') do
      if receivers[recv] then add(receivers[recv], meth) end
    end
    for ctor, meth in padded:gmatch('([%a_][%w_%.]*)%(%):([%a_][%w_]*)') do
      local head, rest = ctor:match('^([%a_][%w_]*)%.(.+)$')
      if head and alias[head] then add('object ' .. alias[head] .. '.' .. rest, meth) end
    end
    -- bare method lists: `x:exp() log sqrt`, `x:sum() mean max`, `x:gt() lt ge`
    for line in block:gmatch('[^\n]+') do
      local inlist = false
      for tok in line:gmatch('%S+') do
        local recv, meth = tok:match('^([%a_][%w_]*):([%a_][%w_]*)%(%)$')
        if recv and receivers[recv] == 'tensor' then
          inlist = true
        elseif inlist and tok:match('^[%a_][%w_]*$') and #tok > 1 then
          add('tensor', tok)
        else
          inlist = false
        end
      end
    end
  end
  return names
end

local names = extract(read('docs/API.md'))

-- Where the project's shared notes sit beside the checkout (not in CI's clean clone), the copy
-- must not have fallen behind: every name of the shared API.md must be in docs/API.md.
T.case('docs/API.md holds every name of the shared API.md (when present)', function()
  local f = io.open('../shared/API.md')
  if not f then return end
  local shared = f:read('*a')
  f:close()
  local have, behind = {}, {}
  for _, n in ipairs(names) do have[n.kind .. ' ' .. n.name] = true end
  for _, n in ipairs(extract(shared)) do
    if not have[n.kind .. ' ' .. n.name] then behind[#behind + 1] = n.name end
  end
  T.eq(#behind, 0, 'copy /work/shared/API.md to docs/API.md again; new: ' .. table.concat(behind, ', '))
end)

T.case('API.md: the extractor finds the contract (sanity)', function()
  local count, want = {}, {['path duel.F.conv2d'] = 1, ['path duel.nn.spectral_norm'] = 1,
    ['tensor logsumexp'] = 1, ['tensor eq'] = 1, ['tensor sqrt'] = 1, ['tensor_field grad'] = 1,
    ['module load_state_dict'] = 1, ['optimizer step'] = 1, ['scheduler step'] = 1,
    ['object duel.gan.ImagePool query'] = 1, ['path duel.metrics.sliced_wasserstein'] = 1,
    ['path duel.data.fashion_mnist'] = 1, ['path duel.autograd.gradgradcheck'] = 1}
  for _, n in ipairs(names) do
    count[n.kind] = (count[n.kind] or 0) + 1
    want[n.kind .. ' ' .. n.name] = nil
  end
  T.eq(next(want), nil, 'a name the extractor should find')
  T.ok(#names > 150, ('expected over 150 names, got %d'):format(#names))
  -- words that are arguments, not names, must not leak in as tensor methods
  for _, n in ipairs(names) do
    T.ok(not (n.kind == 'tensor' and (n.name == 'keepdim' or n.name == 'lo')), n.name)
  end
end)

---------------------------------------------------------------------------------------------------
-- (a) existence at runtime
local function resolve(path)
  local v = {duel = duel}
  for part in path:gmatch('[^%.]+') do
    if type(v) ~= 'table' and type(v) ~= 'userdata' then return nil end
    local ok, w = pcall(function() return v[part] end)
    if not ok then return nil end
    v = w
  end
  return v
end

local function callable(v)
  if type(v) == 'function' then return true end
  local mt = getmetatable(v)
  return mt ~= nil and type(mt) == 'table' and mt.__call ~= nil
end

local function has_method(obj, name)
  local ok, v = pcall(function() return obj[name] end)
  return ok and callable(v)
end

local samples = {}
local function sample(kind)
  if samples[kind] then return samples[kind] end
  local nn, optim, gan = duel.nn, duel.optim, duel.gan
  local s
  if kind == 'tensor' then
    s = {duel.randn(2, 3)}
  elseif kind == 'module' then
    local Lua = nn.Module:extend('ApiDocsProbe')
    function Lua:__init() self.lin = nn.Linear(2, 2) end
    function Lua:forward(x) return self.lin(x) end
    s = {nn.Linear(2, 2), nn.Sequential{nn.Linear(2, 2), nn.ReLU()}, Lua(), nn.spectral_norm(nn.Linear(2, 2))}
  elseif kind == 'optimizer' then
    local p = {duel.randn(2):requires_grad_()}
    s = {optim.SGD(p, {lr = 0.1}), optim.Adam(p), optim.AdamW(p), optim.RMSprop(p, {lr = 0.1})}
  elseif kind == 'scheduler' then
    s = {optim.LinearDecay(optim.SGD({duel.randn(2):requires_grad_()}, {lr = 0.1}), {start = 1, stop = 2})}
  elseif kind == 'object duel.gan.ImagePool' then
    s = {gan.ImagePool(2)}
  end
  samples[kind] = s
  return s
end

local function exists(n)
  if n.kind == 'path' then
    return resolve(n.name) ~= nil
  elseif n.kind == 'tensor_field' then
    local x = duel.randn(2):requires_grad_()
    ;(x * x):sum():backward()
    local ok, v = pcall(function() return x[n.name] end)
    return ok and v ~= nil
  end
  local objs = sample(n.kind)
  if not objs then return false end
  for _, o in ipairs(objs) do
    if not has_method(o, n.name) then return false end
  end
  return true
end

---------------------------------------------------------------------------------------------------
-- (b) documented: the name occurs in a runnable example. A path may be written with the short
-- names the guides bind (F, nn, optim, gan; I/image, D/data, M/metrics), methods as `:name`.
local short = {['duel.image'] = {'I', 'image'}, ['duel.data'] = {'D', 'data'},
               ['duel.metrics'] = {'M', 'metrics'}, ['duel.F'] = {'F'}, ['duel.nn'] = {'nn'},
               ['duel.optim'] = {'optim'}, ['duel.gan'] = {'gan'}, ['duel.autograd'] = {'autograd'},
               ['duel.init'] = {'init'}}

local examples = {}
do
  local files = {'README.md'}
  local p = io.popen('ls docs/*.md 2>/dev/null')
  for f in p:lines() do
    if f ~= 'docs/API.md' then files[#files + 1] = f end
  end
  p:close()
  for _, f in ipairs(files) do
    for block in read(f):gmatch('```lua\n(.-)```') do examples[#examples + 1] = '\n' .. block .. '\n' end
  end
end

local function escape(s) return (s:gsub('[%^%$%(%)%%%.%[%]%*%+%-%?]', '%%%0')) end

local function occurs(pattern)
  for _, b in ipairs(examples) do
    if b:find(pattern) then return true end
  end
  return false
end

local function documented(n)
  if n.kind == 'path' then
    local forms = {n.name}
    local parent, leaf = n.name:match('^(.*)%.([^%.]+)$')
    for _, s in ipairs(short[parent] or {}) do forms[#forms + 1] = s .. '.' .. leaf end
    for _, form in ipairs(forms) do
      if occurs('[^%w_]' .. escape(form) .. '[^%w_]') then return true end
    end
    return false
  elseif n.kind == 'tensor_field' then
    return occurs('%.' .. escape(n.name) .. '[^%w_]')
  end
  return occurs(':' .. escape(n.name) .. '[^%w_]')
end

---------------------------------------------------------------------------------------------------
local function label(n)
  if n.kind == 'path' then return n.name end
  return ('%s :%s'):format(n.kind, n.name)
end

local missing_rt, missing_doc = {}, {}
for _, n in ipairs(names) do
  local l = label(n)
  if allowlist[l] then
    print(('skipped: %s (%s)'):format(l, allowlist[l]))
  else
    if not exists(n) then missing_rt[#missing_rt + 1] = l end
    if not documented(n) then missing_doc[#missing_doc + 1] = l end
  end
end
for _, l in ipairs(missing_rt) do print('missing at runtime: ' .. l) end
for _, l in ipairs(missing_doc) do print('missing from the examples: ' .. l) end

T.case(('API.md: all %d names exist at runtime'):format(#names), function()
  T.eq(#missing_rt, 0, 'not found: ' .. table.concat(missing_rt, ', '))
end)

T.case(('API.md: all %d names appear in a runnable example'):format(#names), function()
  T.eq(#missing_doc, 0, 'undocumented: ' .. table.concat(missing_doc, ', '))
end)
