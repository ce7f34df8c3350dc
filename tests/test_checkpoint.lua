-- Checkpoints: safetensors bytes against the reference known-answer vector, round trips of every
-- kind of state (tensors, modules, optimizers mid-training, the RNG, nested values), files from an
-- independent writer, hostile and corrupt files (each a clear error, never a crash), atomic
-- replacement under SIGKILL, and the PyTorch reader of docs/checkpoints.md.
local T = require 'tests.harness'
local duel = require 'duel'
local ffi = require 'ffi'
local nn = duel.nn
local C = duel._core
local ck = require 'duel.checkpoint'

-- ---- helpers -----------------------------------------------------------------------------------

-- temporary directories, removed when the case ends, whether it passes or fails
local made = {}
local function tmpdir()
  local base = os.tmpname()
  os.remove(base)
  local dir = base .. '.duelck'
  assert(os.execute('mkdir -p ' .. dir) == 0)
  made[#made + 1] = dir
  return dir
end

local function case(name, fn)
  T.case(name, function()
    local ok, err = xpcall(fn, debug.traceback)
    for _, d in ipairs(made) do os.execute('rm -rf ' .. d) end
    made = {}
    if not ok then error(err, 0) end
  end)
end
local function rmdir(dir) os.execute('rm -rf ' .. dir) end

local function read_file(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end
local function write_file(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- u64 little-endian (n < 2^53)
local function le64(n)
  local b = {}
  for i = 1, 8 do
    b[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(b)
end

-- a safetensors file from a header string and data bytes
local function st(header, data) return le64(#header) .. header .. (data or '') end

-- raw little-endian bytes of numbers as a C type (this machine is little-endian; checked below)
local function raw(ctype, vals)
  local a = ffi.new(ctype .. '[?]', #vals, vals)
  return ffi.string(a, ffi.sizeof(ctype) * #vals)
end

local function decode(bytes) return ck.decode(bytes) end

-- the values of a tensor as a Lua list, bit-exact comparison through the encoder
local function same_bits(a, b, msg)
  T.eq(C.st_encode({x = a}), C.st_encode({x = b}), msg)
end

local function header_of(bytes)
  local n = 0
  for i = 8, 1, -1 do n = n * 256 + bytes:byte(i) end
  return bytes:sub(9, 8 + n), n
end

-- ---- bytes: the reference vectors ---------------------------------------------------------------

case('known-answer vector: attn.0 F32 {1,2,3} gives N=64, the exact header and 96 bytes', function()
  T.ok(ffi.abi('le'), 'these byte-level tests assume a little-endian machine')
  local t = duel.arange(0, 5):view(1, 2, 3)
  local want = '\64\0\0\0\0\0\0\0'
    .. '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
    .. '\0\0\0\0' .. '\0\0\128\63' .. '\0\0\0\64' .. '\0\0\64\64' .. '\0\0\128\64' .. '\0\0\160\64'
  local got = C.st_encode({['attn.0'] = t})
  T.eq(#got, 96)
  T.eq(got, want)
  -- the same bytes on disk through duel.save, and back
  local dir = tmpdir()
  duel.save(dir .. '/kat.safetensors', {['attn.0'] = t})
  T.eq(read_file(dir .. '/kat.safetensors'), want)
  local back, meta = duel.load(dir .. '/kat.safetensors')
  T.close(back['attn.0'], {{{0, 1, 2}, {3, 4, 5}}}, 0)
  T.eq(next(meta), nil)
  rmdir(dir)
end)

case('known-answer vector: no tensors, metadata {framework=pt} gives N=40 (35 bytes + 5 spaces)', function()
  local got = C.st_encode({}, {framework = 'pt'})
  T.eq(got, '\40\0\0\0\0\0\0\0{"__metadata__":{"framework":"pt"}}     ')
  local t, m = C.st_decode(got)
  T.eq(next(t), nil)
  T.eq(m.framework, 'pt')
end)

case('writer: tensors sorted by name, header padded to a multiple of 8, strings escaped', function()
  local b = C.st_encode({zeta = duel.ones(1), alpha = duel.zeros(2), ['q"\\\n'] = duel.ones(0)},
                        {note = 'tab\there'})
  local h, n = header_of(b)
  T.eq(n % 8, 0)
  T.eq(#b, 8 + n + 12)
  T.eq(h:match('^(.-)%s*$'),
       '{"__metadata__":{"note":"tab\\u0009here"},'
       .. '"alpha":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
       .. '"q\\"\\\\\\u000a":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},'
       .. '"zeta":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}')
  local t, m = C.st_decode(b)
  T.eq(m.note, 'tab\there')
  T.eq(t['q"\\\n']:numel(), 0)
end)

-- ---- round trips ------------------------------------------------------------------------------

case('round trip: 0-dim, empty, strided and special-valued tensors come back bit for bit', function()
  local special = duel.tensor{0, -0.0, 1 / 0, -1 / 0, 0 / 0, 1e-45, 3.4028234e38, -1.5, 1 / 3}
  local m = duel.randn(3, 4)
  local obj = {
    scalar = duel.tensor(2.5),                  -- 0-dim
    empty = duel.zeros(0),
    empty3 = duel.zeros(2, 0, 3),
    strided = m:t(),                            -- non-contiguous: written in row-major order
    narrow = m:narrow(2, 2, 2),
    special = special,
    big = duel.randn(7, 5, 3, 2),
  }
  local dir = tmpdir()
  local path = dir .. '/t.safetensors'
  duel.save(path, obj)
  local back = duel.load(path)
  T.eq(back.scalar:dim(), 0)
  T.eq(back.scalar:item(), 2.5)
  T.eq(back.empty:size(), {0})
  T.eq(back.empty3:size(), {2, 0, 3})
  T.eq(back.strided:size(), {4, 3})
  T.close(back.strided, m:t():contiguous(), 0)
  T.close(back.narrow, m:narrow(2, 2, 2):contiguous(), 0)
  for k, v in pairs(obj) do same_bits(back[k], v, k) end
  T.eq(1 / back.special:totable()[2], -1 / 0, 'negative zero keeps its sign')
  T.ok(back.special:totable()[5] ~= back.special:totable()[5], 'NaN stays NaN')
  T.eq(back.big.requires_grad, false)
  rmdir(dir)
end)

case('round trip: a module (parameters and buffers) through m:load_state_dict(duel.load(path))', function()
  duel.manual_seed(11)
  local function make()
    return nn.Sequential({nn.Linear(3, 5), nn.BatchNorm1d(5), nn.LeakyReLU(0.2), nn.Linear(5, 2)})
  end
  local G = make()
  G:train()
  G(duel.randn(8, 3)) -- moves the running statistics away from their initial values
  local dir = tmpdir()
  local path = dir .. '/g.safetensors'
  duel.save(path, G)
  local sd, meta = duel.load(path)
  local names = {}
  for k in pairs(sd) do names[#names + 1] = k end
  table.sort(names)
  local want = {}
  for _, e in ipairs(G:named_parameters()) do want[#want + 1] = e[1] end
  for _, e in ipairs(G:named_buffers()) do want[#want + 1] = e[1] end
  table.sort(want)
  T.eq(names, want)
  T.eq(next(meta), nil, 'a flat table of tensors needs no layout metadata')
  duel.manual_seed(99)
  local G2 = make()
  G2:load_state_dict(duel.load(path))
  G:eval(); G2:eval()
  local x = duel.randn(4, 3)
  T.close(G2(x), G(x), 0)
  for k, v in pairs(G:state_dict()) do same_bits(G2:state_dict()[k], v, k) end
  rmdir(dir)
end)

-- one GAN-like training step on a small net: the loss draws noise from the RNG
local function train_step(G, opt)
  opt:zero_grad()
  local z = duel.randn(6, 2)
  local loss = (G(z) - 1):pow(2):mean()
  loss:backward()
  opt:step()
end

local function snapshot(G)
  local s = {}
  for _, e in ipairs(G:named_parameters()) do s[e[1]] = e[2]:clone() end
  return s
end

for _, kind in ipairs({'Adam', 'SGD', 'RMSprop'}) do
  case(kind .. ' mid-training: resuming from a checkpoint gives bit-identical next steps', function()
    local opts = ({Adam = {lr = 0.01},
                   SGD = {lr = 0.05, momentum = 0.9, nesterov = true},
                   RMSprop = {lr = 0.01, momentum = 0.5, centered = true}})[kind]
    local function make()
      local G = nn.Sequential({nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)})
      return G, duel.optim[kind](G, opts)
    end
    duel.manual_seed(5)
    local G, opt = make()
    for _ = 1, 4 do train_step(G, opt) end
    local dir = tmpdir()
    local path = dir .. '/ck.safetensors'
    duel.save(path, {G = G, optG = opt, rng = duel.get_rng_state(), step = 4})
    for _ = 1, 5 do train_step(G, opt) end
    local want = snapshot(G)

    duel.manual_seed(1234) -- a different run until the checkpoint is restored
    local G2, opt2 = make()
    train_step(G2, opt2)
    local c = duel.load(path)
    T.eq(c.step, 4)
    T.eq(c.optG.kind, kind)
    G2:load_state_dict(c.G)
    opt2:load_state_dict(c.optG)
    duel.set_rng_state(c.rng)
    for _ = 1, 5 do train_step(G2, opt2) end
    for k, v in pairs(snapshot(G2)) do same_bits(v, want[k], k) end
    rmdir(dir)
  end)
end

case('optimizer state_dict fields survive a checkpoint exactly (kind, options, steps, tensors)', function()
  local p = duel.randn(3):requires_grad_()
  local opt = duel.optim.Adam({p}, {lr = 2e-4, betas = {0.5, 0.999}, eps = 1e-7})
  p:sum():backward()
  opt:step()
  local s = opt:state_dict()
  local back = ck.decode(ck.encode({opt = opt})).opt
  T.eq(back.kind, 'Adam')
  T.eq(back.options.lr, 2e-4)
  T.eq(back.options.beta1, 0.5)
  T.eq(back.options.eps, 1e-7)
  T.eq(back.step, {1})
  same_bits(back.state[1].exp_avg, s.state[1].exp_avg)
  same_bits(back.state[1].exp_avg_sq, s.state[1].exp_avg_sq)
end)

case('RNG state: save, draw, restore, draw again gives the same numbers', function()
  duel.manual_seed(2024)
  duel.randn(17)
  local s = duel.get_rng_state()
  T.eq(s.offset, 17)
  local bytes = ck.encode({rng = s})
  local a = duel.randn(5)
  duel.manual_seed(1)
  duel.randn(3)
  duel.set_rng_state(ck.decode(bytes).rng)
  same_bits(duel.randn(5), a)
  duel.set_rng_state({2024, 17}) -- the positional form too
  same_bits(duel.randn(5), a)
  T.raises('set_rng_state: expected {seed=, offset=}, got number', function() duel.set_rng_state(3) end)
end)

case('nested values: numbers, strings, booleans, empty tables and odd keys round-trip exactly', function()
  local obj = {
    step = 123, lr = 0.1, third = 1 / 3, big = 2 ^ 53, tiny = 1e-310, negzero = -0.0,
    inf = 1 / 0, ninf = -1 / 0, nan = 0 / 0, huge = 1.7976931348623157e308,
    name = 'ring8 "quoted" \\ é 漢字\n\ttabs', empty_string = '', nul = 'a\0b',
    yes = true, no = false,
    e = {}, nested = {deep = {deeper = {x = duel.ones(2), list = {10, 20, {}, 'x'}}}},
    [1] = 'one', [2.5] = 'two and a half', [-3] = duel.zeros(1),
    ['dotted.key'] = {['a.b'] = 1, c = {['d.e'] = duel.ones(1)}},
  }
  local back, meta = ck.decode(ck.encode(obj, {metadata = {run = 'exp1'}}))
  T.eq(meta.run, 'exp1')
  T.eq(meta['duel.layout'], nil, 'the layout entry is consumed')
  for _, k in ipairs({'step', 'lr', 'third', 'big', 'tiny', 'inf', 'ninf', 'huge', 'name',
                      'empty_string', 'nul', 'yes', 'no'}) do
    T.eq(back[k], obj[k], k)
  end
  T.eq(1 / back.negzero, -1 / 0, 'negative zero')
  T.ok(back.nan ~= back.nan, 'NaN')
  T.eq(type(back.e), 'table')
  T.eq(next(back.e), nil)
  T.close(back.nested.deep.deeper.x, {1, 1}, 0)
  local list = back.nested.deep.deeper.list
  T.eq(#list, 4)
  T.eq({list[1], list[2], list[4]}, {10, 20, 'x'})
  T.eq(type(list[3]), 'table')
  T.eq(back[1], 'one')
  T.eq(back[2.5], 'two and a half')
  T.close(back[-3], {0}, 0)
  T.eq(back['dotted.key']['a.b'], 1)
  T.close(back['dotted.key'].c['d.e'], {1}, 0)
  -- PyTorch sees plain dotted names
  local h = header_of(ck.encode(obj))
  T.ok(h:find('"nested.deep.deeper.x":{', 1, true), h)
  T.ok(h:find('"step":"number:123"', 1, true), h)
end)

case('save refuses what it cannot store, with clear errors, and leaves the old file alone', function()
  local dir = tmpdir()
  local path = dir .. '/keep.safetensors'
  duel.save(path, {w = duel.ones(3)})
  local before = read_file(path)
  local cyc = {}
  cyc.self = cyc
  T.raises_exact("save: the table at 'self' contains itself, got a cycle", function() duel.save(path, cyc) end)
  T.raises_exact("save: cannot store a function in a checkpoint, got one at 'a.f'",
                 function() duel.save(path, {a = {f = print}}) end)
  T.raises_exact("save: keys must be strings or finite numbers, got a boolean key at the top level",
                 function() duel.save(path, {[true] = 1}) end)
  T.raises_exact("save: two entries flatten to the same name, got 'a.b'",
                 function() duel.save(path, {['a.b'] = duel.ones(1), a = {b = duel.ones(1)}}) end)
  T.raises_exact('save: expected a table of tensors, a module, an optimizer or a nested table, got duel.Tensor',
                 function() duel.save(path, duel.ones(1)) end)
  T.raises("save: metadata 'bad' is not valid UTF-8, got byte 0xff",
           function() duel.save(path, {bad = 'x\255'}) end)
  T.raises("save: metadata key 'step' is used by the checkpoint itself",
           function() duel.save(path, {step = 1}, {metadata = {step = '2'}}) end)
  T.raises("save: metadata key 'duel.layout' is used by the checkpoint itself",
           function() duel.save(path, {w = duel.ones(1)}, {metadata = {['duel.layout'] = 'x'}}) end)
  T.raises_exact('save: metadata must map strings to strings, got string -> number',
                 function() duel.save(path, {}, {metadata = {lr = 1}}) end)
  T.raises_exact("save: tensor name is not valid UTF-8, got byte 0xc0 in '\192\128'",
                 function() C.st_save(path, {['\192\128'] = duel.ones(1)}) end)
  T.raises("save: a tensor may not be named '__metadata__'",
           function() C.st_save(path, {__metadata__ = duel.ones(1)}) end)
  T.raises('save: entry \'w\' must be a duel.Tensor, got number', function() C.st_save(path, {w = 1}) end)
  T.raises("save: cannot create '" .. dir .. "/no/such/dir/x.tmp.",
           function() duel.save(dir .. '/no/such/dir/x', {w = duel.ones(1)}) end)
  T.eq(read_file(path), before)
  rmdir(dir)
end)

-- ---- files from another writer --------------------------------------------------------------------

case('a file from an independent writer loads: any key order, no padding, whitespace, metadata', function()
  -- written by hand: keys in reverse order, data_offsets before dtype, newlines and spaces, escapes,
  -- no padding (N is not a multiple of 8), and several dtypes converted to float32
  local header = '{\n  "w": {"data_offsets": [8, 20], "shape": [3], "dtype": "F32"},\n'
    .. '  "b\\u00e9\\/x": {"shape":[2],"dtype":"F64","data_offsets":[20,36]},\n'
    .. '  "__metadata__": {"format": "pt", "note": "\\ud83d\\ude00"},\n'
    .. '  "h": {"dtype":"F16","shape":[2],"data_offsets":[36,40]},\n'
    .. '  "i": {"dtype":"I32","shape":[2],"data_offsets":[0,8]}, '
    .. '"bf": {"dtype":"BF16","shape":[1],"data_offsets":[40,42]},'
    .. '"u": {"dtype":"U8","shape":[2],"data_offsets":[42,44]},'
    .. '"z": {"dtype":"BOOL","shape":[1,1],"data_offsets":[44,45]},'
    .. '"s": {"dtype":"I64","shape":[],"data_offsets":[45,53]}}'
  local data = raw('int32_t', {-7, 123456}) .. raw('float', {1.5, -2, 0.25}) .. raw('double', {0.1, -1e300})
    .. '\0\60' .. '\0\192'                  -- F16 1.0 and -2.0
    .. '\192\63'                            -- BF16 1.5
    .. '\0\255' .. '\1' .. raw('int64_t', {-42})
  T.ok(#header % 8 ~= 0)
  local t, meta = decode(st(header, data))
  T.close(t.w, {1.5, -2, 0.25}, 0)
  T.close(t.i, {-7, 123456}, 0)
  T.close(t['bé/x'], {0.1, -1 / 0}, 1e-7) -- F64 -> float32 rounds; -1e300 overflows to -inf
  T.close(t.h, {1, -2}, 0)
  T.close(t.bf, {1.5}, 0)
  T.close(t.u, {0, 255}, 0)
  T.eq(t.z:size(), {1, 1})
  T.close(t.z, {{1}}, 0)
  T.eq(t.s:dim(), 0)
  T.eq(t.s:item(), -42)
  T.eq(meta.format, 'pt')
  T.eq(meta.note, '\240\159\152\128')
end)

case('a file from an independent writer: an empty header {} and a file of only zero-size tensors', function()
  local t, m = decode(st('{}'))
  T.eq(next(t), nil)
  T.eq(next(m), nil)
  t = decode(st('{"a":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[4,0],"data_offsets":[0,0]}}'))
  T.eq(t.a:size(), {0, 4})
  T.eq(t.b:size(), {4, 0})
end)

-- ---- hostile and corrupt files ----------------------------------------------------------------------

local ONE = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
local ONE_DATA = raw('float', {1, 2})

-- {description, bytes, expected error substring}
local hostile = {
  {'empty file', '', 'load: too short for a safetensors file (8-byte header length), got 0 bytes'},
  {'seven bytes', '\1\0\0\0\0\0\0', 'load: too short for a safetensors file'},
  {'huge header length', '\255\255\255\255\255\255\255\255{}',
   'load: header length exceeds 100000000 bytes, got 18446744073709551615'},
  {'header length just over the limit', le64(100000001) .. '{}',
   'load: header length exceeds 100000000 bytes, got 100000001'},
  {'header length past EOF', le64(1000) .. '{}', 'load: header length runs past the end of the file (10 bytes), got 1000'},
  {'truncated data', st(ONE, ONE_DATA:sub(1, 5)),
   "load: tensor 'a' has data_offsets past the end of the data (5 bytes), got [0, 8]"},
  {'extra data after the last tensor', st(ONE, ONE_DATA .. 'xx'),
   'load: the tensors cover 8 bytes of data but the file holds more, got 10 bytes of data'},
  {'overlapping offsets', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', ('x'):rep(12)),
   "load: tensor 'b' overlaps tensor 'a' (which ends at 8), got data_offsets [4, 12]"},
  {'the same bytes claimed twice', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', ('x'):rep(8)),
   'overlaps tensor'},
  {'a hole between tensors', st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', ('x'):rep(12)),
   "load: hole in the data before tensor 'b' (bytes 4 to 8 unused), got data_offsets [8, 12]"},
  {'data not starting at 0', st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', ('x'):rep(8)),
   "load: hole in the data before tensor 'a' (bytes 0 to 4 unused)"},
  {'offsets past the end', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[1000000,1000008]}}', ONE_DATA),
   "load: tensor 'a' has data_offsets past the end of the data (8 bytes), got [1000000, 1000008]"},
  {'offsets ending before they begin', st('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', ONE_DATA),
   "load: tensor 'a' has data_offsets that end before they begin, got [8, 0]"},
  {'unknown dtype', st('{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' has an unknown dtype, got 'F99'"},
  {'dtype duel does not read', st('{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' has a dtype duel cannot read (it reads F32, F64, F16, BF16, BOOL and integers), got F8_E4M3"},
  {'dtype that is not a string', st('{"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}', ONE_DATA),
   "load: bad header JSON: expected a dtype (a string), got '3' at byte 14"},
  {'shape/offset mismatch', st('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' of shape {3} and dtype F32 needs 12 bytes, got data_offsets [0, 8]"},
  {'F64 size counted per element', st('{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' of shape {2} and dtype F64 needs 16 bytes"},
  {'negative dimension', st('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', ONE_DATA),
   "load: bad header JSON: a shape must be a whole number >= 0 written with digits only, got '-' at byte"},
  {'fractional dimension', st('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', ONE_DATA),
   'a shape must be a whole number >= 0 written with digits only'},
  {'exponent 1e999', st('{"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,8]}}', ONE_DATA),
   'a shape must be a whole number >= 0 written with digits only'},
  {'number with a leading zero', st('{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}', ONE_DATA),
   'a shape must be a whole number >= 0 written with digits only'},
  {'offset beyond 2^63', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}', ONE_DATA),
   'load: bad header JSON: data_offsets is too large (over 2^63 - 1)'},
  {'shape whose byte count overflows', st('{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' is too large, got shape {4611686018427387904,4}"},
  {'nine dimensions', st('{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}', ONE_DATA),
   'load: bad header JSON: a shape has more than 8 entries'},
  {'three data_offsets', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}', ONE_DATA),
   'data_offsets has more than 2 entries'},
  {'one data_offset', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}', ONE_DATA),
   'data_offsets must hold two numbers [begin, end]'},
  {'duplicate tensor names', st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', ONE_DATA),
   "load: duplicate tensor name in the header, got 'a'"},
  {'duplicate field', st('{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' has a duplicate field, got 'dtype'"},
  {'duplicate metadata keys', st('{"__metadata__":{"k":"1","k":"2"}}'), "load: duplicate metadata key in the header, got 'k'"},
  {'two __metadata__ entries', st('{"__metadata__":{},"__metadata__":{}}'), "load: duplicate key in the header, got '__metadata__'"},
  {'unknown field', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"evil":1}}', ONE_DATA),
   "load: tensor 'a' has an unknown field, got 'evil'"},
  {'missing field', st('{"a":{"dtype":"F32","data_offsets":[0,8]}}', ONE_DATA),
   "load: tensor 'a' needs dtype, shape and data_offsets, got no shape"},
  {'metadata value not a string', st('{"__metadata__":{"step":123}}'),
   "load: bad header JSON: expected a metadata value (a string), got '1'"},
  {'metadata number 1e999', st('{"__metadata__":{"x":1e999}}'), 'expected a metadata value'},
  {'header not an object', st('[{"a":1}]'), "load: the header must be a JSON object starting with '{', got '[' at byte 0"},
  {'space before the opening brace', st(' {}'), "load: the header must be a JSON object starting with '{', got ' ' at byte 0"},
  {'empty header', st(''), "load: the header must be a JSON object starting with '{', got the end of the header"},
  {'unterminated string', st('{"a'), 'load: bad header JSON: unterminated string (started at byte 1), got the end of the header'},
  {'unterminated object', st('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'), "expected ',' or '}' after an entry, got the end of the header"},
  {'deep nesting: 10,000 arrays as the header', st(('['):rep(10000) .. (']'):rep(10000)),
   "load: the header must be a JSON object starting with '{', got '['"},
  {'deep nesting: 10,000 objects inside an entry', st('{"a":' .. ('{"a":'):rep(10000) .. ('}'):rep(10001)),
   "load: tensor 'a' has an unknown field, got 'a'"},
  {'deep nesting: 10,000 arrays in a shape', st('{"a":{"dtype":"F32","shape":' .. ('['):rep(10000) .. (']'):rep(10000) .. '}}'),
   'a shape must be a whole number >= 0 written with digits only'},
  {'invalid UTF-8 (0xff)', st('{"a\255":{}}'), 'load: the header is not valid UTF-8, got byte 0xff at 3'},
  {'overlong UTF-8 (0xc0 0xaf)', st('{"\192\175":{}}'), 'load: the header is not valid UTF-8, got byte 0xc0 at 2'},
  {'UTF-8 surrogate (0xed 0xa0 0x80)', st('{"\237\160\128":{}}'), 'load: the header is not valid UTF-8, got byte 0xed at 2'},
  {'UTF-8 cut short at the end', st('{}   \226\130'), 'load: the header is not valid UTF-8, got byte 0xe2 at 5'},
  {'NUL byte inside a string', st('{"a\0b":{}}'), 'load: bad header JSON: control character inside a string (escape it), got byte 0x00 at 3'},
  {'NUL byte between tokens', st('{\0}'), "load: bad header JSON: expected a tensor name (a string), got byte 0x00 at 1"},
  {'lone surrogate escape', st('{"\\ud800":{}}'), 'load: bad header JSON: invalid escape sequence in a string'},
  {'bad escape', st('{"\\q":{}}'), 'load: bad header JSON: invalid escape sequence in a string'},
  {'short \\u escape at the end', st('{"\\u12'), 'invalid escape sequence'},
  {'trailing garbage', st(ONE .. ' x', ONE_DATA), "load: bad header JSON: only spaces may follow the header object, got 'x'"},
  {'missing colon', st('{"a" {}}'), "load: bad header JSON: expected ':' after a tensor name, got '{' at byte 5"},
  {'trailing comma', st('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},}'), 'expected a tensor name (a string), got \'}\''},
  {'single quotes', st("{'a':1}"), "expected a tensor name (a string), got ''' at byte 1"},
  {'null entry', st('{"a":null}'), "expected '{' to open the entry of a tensor, got 'n' at byte 5"},
}

case('hostile and corrupt files: each gives its clear error (' .. #hostile .. ' cases)', function()
  for _, h in ipairs(hostile) do
    local ok, err = pcall(decode, h[2])
    T.ok(not ok, h[1] .. ': expected an error, got none')
    if not tostring(err):find(h[3], 1, true) then
      error(('%s: expected an error containing %q, got %q'):format(h[1], h[3], tostring(err)), 0)
    end
  end
end)

case('hostile files on disk: the file reader gives the same errors as the memory reader', function()
  local dir = tmpdir()
  for i, h in ipairs(hostile) do
    local path = ('%s/h%d.safetensors'):format(dir, i)
    write_file(path, h[2])
    local ok, err = pcall(duel.load, path)
    T.ok(not ok, h[1])
    T.ok(tostring(err):find(h[3], 1, true), h[1] .. ': ' .. tostring(err))
  end
  T.raises("load: cannot open '" .. dir .. "/missing' (No such file or directory)",
           function() duel.load(dir .. '/missing') end)
  T.raises("load: not a regular file, got path '" .. dir .. "'", function() duel.load(dir) end)
  T.raises_exact('load: path must be a string, got nil', function() duel.load() end)
  rmdir(dir)
end)

case('a tampered duel.layout entry is refused, never guessed at', function()
  local good = ck.encode({a = {b = duel.ones(1)}, n = 1})
  local function with_layout(layout)
    local t, m = C.st_decode(good)
    m['duel.layout'] = layout
    return C.st_encode(t, m)
  end
  local cases = {
    {'duel-layout 9\n', 'unknown version'},
    {'duel-layout 1\nT s1,s1 a.b\nV s1 n\nX s1 z\n', 'malformed record'},
    {'duel-layout 1\nT s1,s5 a.b\n', 'record shorter than its segments'},
    {'duel-layout 1\nT s1,s1 a.c\nV s1 n\n', 'names a tensor the file lacks'},
    {'duel-layout 1\nV s1 n\n', "does not place tensor, got 'a.b'"},
    {'duel-layout 1\nT s1,s1 a.b\nV s1 n\nV s1,s1 n.x\n', 'names a value the file lacks'},
    {'duel-layout 1\nT s1,s1 a.b\nT s1,s1 a.b\nV s1 n\n', 'a path is empty or given twice'},
    {'duel-layout 1\nT n1,s1 a.b\nV s1 n\n', 'a number key that does not read back'},
  }
  for _, c in ipairs(cases) do
    T.raises('load: bad duel.layout metadata: ' .. c[2], function() ck.decode(with_layout(c[1])) end)
  end
  local t, m = C.st_decode(good)
  m.n = 'number:0x10'
  T.raises("load: value 'n' in the checkpoint is not a typed value, got \"number:0x10\"",
           function() ck.decode(C.st_encode(t, m)) end)
end)

case('mutated files (5,000 random bit flips, truncations, splices) never crash the reader', function()
  math.randomseed(77)
  local base = ck.encode({G = {w = duel.randn(3, 2), b = duel.randn(3)}, step = 7, name = 'x'},
                         {metadata = {note = 'é'}})
  local loaded, refused = 0, 0
  for i = 1, 5000 do
    local b = base
    local kind = i % 4
    if kind == 0 then -- flip one byte
      local at = math.random(#b)
      b = b:sub(1, at - 1) .. string.char(math.random(0, 255)) .. b:sub(at + 1)
    elseif kind == 1 then -- truncate
      b = b:sub(1, math.random(0, #b - 1))
    elseif kind == 2 then -- flip a byte of the header only (more parser coverage)
      local at = math.random(9, 8 + select(2, header_of(b)))
      b = b:sub(1, at - 1) .. string.char(math.random(0, 255)) .. b:sub(at + 1)
    else -- splice a slice of the header somewhere else
      local n = select(2, header_of(b))
      local i1, i2, at = math.random(9, 8 + n), math.random(9, 8 + n), math.random(9, 8 + n)
      b = b:sub(1, at) .. b:sub(math.min(i1, i2), math.max(i1, i2)) .. b:sub(at + 1)
    end
    local ok, err = pcall(ck.decode, b)
    if ok then loaded = loaded + 1
    else
      refused = refused + 1
      T.ok(tostring(err):find('^load: '), tostring(err))
    end
  end
  T.ok(refused > 2500, 'most mutations are refused, got ' .. refused)
  T.ok(loaded > 0, 'some mutations (data bytes) still load, got ' .. loaded)
end)

-- ---- atomic writes under SIGKILL -------------------------------------------------------------------

-- A child process saves a 8 MiB checkpoint in a loop (every element equal to the step, which is
-- also stored as a value) and prints each step once its save has returned. It is killed with
-- SIGKILL at a random moment after its first save. The checkpoint must then load, be internally consistent, and hold
-- the last step the child reported (or the one after, if the kill came between the rename and
-- the print). A killed save may leave <path>.tmp.<pid> behind; the checkpoint itself is never
-- partial.
case('atomic saves: SIGKILL at random moments never leaves a partial or unreadable checkpoint', function()
  local dir = tmpdir()
  local path = dir .. '/ck.safetensors'
  local child = dir .. '/child.lua'
  write_file(child, [[
    local duel = require 'duel'
    local path, start = arg[1], tonumber(arg[2])
    local w = duel.zeros(2 * 1024 * 1024)
    for step = start, start + 1000000 do
      w:fill_(step)
      duel.save(path, {w = w, step = step, tail = duel.full({3}, -step)})
      io.stdout:write(step, '\n')
      io.stdout:flush()
    end]])
  duel.save(path, {w = duel.zeros(2 * 1024 * 1024), step = 0, tail = duel.zeros(3)})
  math.randomseed(os.time())
  local mid_save, progressed = 0, 0
  for trial = 1, 12 do
    local start = duel.load(path).step + 1
    local log = dir .. '/log'
    -- the delay counts from the child's first finished save, not from its start, which takes
    -- over 0.4 s under AddressSanitizer on a loaded machine (a CI run's children never got there)
    local delay = math.random() * 0.3
    os.execute(('rm -f %s; luajit %s %s %d > %s 2>&1 & p=$!; i=0; '
                .. 'while [ ! -s %s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; '
                .. 'sleep %.3f; kill -9 $p; wait $p 2>/dev/null; '
                .. 'ls %s.tmp.* > %s/tmps 2>/dev/null; rm -f %s.tmp.*')
               :format(log, child, path, start, log, log, delay, path, dir, path))
    local out = read_file(log)
    T.ok(not out:find('[^%d%s]'), 'child output: ' .. out)
    local last = start - 1
    for n in out:gmatch('(%d+)\n') do last = tonumber(n) end
    if #read_file(dir .. '/tmps') > 0 then mid_save = mid_save + 1 end
    local c = duel.load(path)       -- must load: never a partial file
    T.ok(c.step == last or c.step == last + 1,
         ('trial %d: checkpoint holds step %d, the child reported %d'):format(trial, c.step, last))
    T.eq(c.w:numel(), 2 * 1024 * 1024)
    T.eq(c.w:min():item(), c.step)
    T.eq(c.w:max():item(), c.step)
    T.close(c.tail, {-c.step, -c.step, -c.step}, 0)
    if c.step >= start then progressed = progressed + 1 end
  end
  if os.getenv('VERBOSE') == '1' then
    print(('     12 kills: %d inside a save, %d after progress'):format(mid_save, progressed))
  end
  T.ok(progressed > 0, 'some children completed saves before being killed')
  T.ok(mid_save > 0, 'some kills landed inside a save (a temporary file was left), got ' .. mid_save)
  rmdir(dir)
end)

-- ---- PyTorch interop ----------------------------------------------------------------------------

case('PyTorch reads a duel checkpoint with tests/interop/read_safetensors.py (needs python3-torch)', function()
  local has_torch = os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') == 0
  if not has_torch then
    io.write('     skipped: /usr/bin/python3 cannot import torch (Debian package python3-torch is not installed)\n')
    return
  end
  local dir = tmpdir()
  local path = dir .. '/interop.safetensors'
  duel.save(path, {G = {fc = {weight = duel.tensor{{1, 2, 3}, {4, 5, 6}}, bias = duel.tensor{0.5, -0.5}}},
                   step = 9, scalar = duel.tensor(3.25)}, {metadata = {framework = 'duel'}})
  local p = io.popen('/usr/bin/python3 tests/interop/read_safetensors.py ' .. path .. ' 2>&1')
  local out = p:read('*a')
  p:close()
  T.ok(out:find('G.fc.weight (2, 3) [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]', 1, true), out)
  T.ok(out:find('G.fc.bias (2,) [0.5, -0.5]', 1, true), out)
  T.ok(out:find('scalar () [3.25]', 1, true), out)
  T.ok(out:find('metadata framework = duel', 1, true), out)
  T.ok(out:find('metadata step = number:9', 1, true), out)
  rmdir(dir)
end)
