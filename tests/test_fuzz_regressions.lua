-- Every fuzz corpus and regression input (tests/fuzz/corpus/<target>/, tests/fuzz/regressions/
-- <target>/) through the Lua-level API that reads such files: duel.image.load, duel.load,
-- duel.data.read_idx, and the option readers (tests/fuzz/options_replay.lua replays an input of
-- fuzz_options.c). Each file runs in its own luajit process, so a crash (or a sanitizer report
-- under `make check`, which preloads the runtime into the child too) fails the case instead of
-- the whole run. The answer must be a clean Lua error of the API's own form, or success.
local T = require 'tests.harness'

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function files(dir)
  local out = {}
  local p = io.popen('ls ' .. q(dir) .. ' 2>/dev/null')
  for name in p:lines() do out[#out + 1] = dir .. '/' .. name end
  p:close()
  table.sort(out)
  return out
end

-- the child prints one line: "OK <shape>" or "ERR <message>"
local loaders = {
  image = 'return duel.image.load(path)',
  safetensors = 'local t = duel.load(path); local n = 0; for _ in pairs(t) do n = n + 1 end; '
    .. 'return duel.tensor{n}',
  idx = 'return duel.data.read_idx(path)',
}

local function run_child(code)
  local p = io.popen('luajit -e ' .. q(code) .. ' 2>&1; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  return out
end

local function load_in_child(target, path)
  local code = "local duel = require 'duel'; local path = " .. ('%q'):format(path) .. '; '
    .. 'local ok, r = pcall(function() ' .. loaders[target] .. ' end); '
    .. "if ok then print('OK ' .. table.concat(r:size(), 'x')) "
    .. "else print('ERR ' .. tostring(r)) end"
  return run_child(code)
end

-- the files known to be valid load, with these shapes; every other file must fail cleanly
local valid = {
  ['tests/fuzz/corpus/image/rgb.png'] = '3x8x6', ['tests/fuzz/corpus/image/rgb.jpg'] = '3x8x6',
  ['tests/fuzz/corpus/image/rgb.bmp'] = '3x8x6', ['tests/fuzz/corpus/image/rgb.tga'] = '3x8x6',
  ['tests/fuzz/corpus/image/gray.png'] = '1x5x4',
  ['tests/fuzz/corpus/safetensors/small.safetensors'] = '1',
  ['tests/fuzz/corpus/idx/images3.idx.gz'] = '3x28x28',
  ['tests/fuzz/corpus/idx/images3.idx'] = '3x28x28',
  ['tests/fuzz/corpus/idx/labels3.idx.gz'] = '3',
}
local prefix = {image = '^image%.load: ', safetensors = '^load: ', idx = '^idx_load: '}

for _, target in ipairs({'image', 'safetensors', 'idx'}) do
  local all = files('tests/fuzz/corpus/' .. target)
  for _, f in ipairs(files('tests/fuzz/regressions/' .. target)) do all[#all + 1] = f end
  T.case(target .. ': ' .. #all .. ' corpus and regression files load or fail cleanly', function()
    T.ok(#all >= 3, 'too few files for ' .. target)
    for _, path in ipairs(all) do
      local out = load_in_child(target, path)
      T.ok(out:find('\nrc=0\n?$'), path .. ': the process failed: ' .. out)
      local line = out:match('^([^\n]*)')
      if valid[path] then
        T.eq(line, 'OK ' .. valid[path], path)
      else
        T.ok(line:find('^ERR ') and line:sub(5):find(prefix[target]), path .. ': ' .. line)
      end
    end
  end)
end

T.case('the regression inputs fail with the messages of their fixes', function()
  local function err(target, path) return load_in_child(target, path):match('^ERR ([^\n]*)') end
  for _, name in ipairs({'jpeg_ff_fill_as_tga_1.tga', 'jpeg_undefined_ac_table.jpg'}) do
    local path = 'tests/fuzz/regressions/image/' .. name
    T.eq(err('image', path), "image.load: cannot decode '" .. path
      .. "' (corrupt or truncated JPEG), got a corrupt Huffman table")
  end
  local path = 'tests/fuzz/regressions/idx/announces_2g_elements.idx.gz'
  T.eq(err('idx', path),
    "idx_load: '" .. path .. "' is truncated: the data needs 2147483648 bytes, got 10")
end)

local opt_files = files('tests/fuzz/corpus/options')
for _, f in ipairs(files('tests/fuzz/regressions/options')) do opt_files[#opt_files + 1] = f end
T.case('options: ' .. #opt_files .. ' corpus and regression inputs replay without a crash',
  function()
  T.ok(#opt_files >= 3)
  for _, path in ipairs(opt_files) do
    local p = io.popen('luajit tests/fuzz/options_replay.lua ' .. q(path) .. ' 2>&1; echo "rc=$?"')
    local out = p:read('*a')
    p:close()
    T.ok(out:find('^replayed %d+ calls\nrc=0\n?$'), path .. ': ' .. out)
  end
end)

T.case('options regression: a 1e209 LayerNorm size is refused with an error, not UB', function()
  local duel = require 'duel'
  T.raises_exact('zeros: sizes must be non-negative, got {-1}',
    function() return duel.nn.LayerNorm(1.78e209) end)
  T.raises_exact('zeros: tensor too large (over 1099511627776 bytes), got {2,9007199254740992}',
    function() return duel.nn.Linear(2 ^ 53, 2) end)
end)
