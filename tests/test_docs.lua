-- Every ```lua example in README.md and docs/*.md runs, from the checkout root. The examples of
-- one file run in order in one fresh luajit process sharing globals (a guide may build on its
-- earlier examples), with `duel` preloaded as a global as the guides assume.
local T = require 'tests.harness'

local files = {'README.md'}
local p = io.popen('ls docs/*.md 2>/dev/null')
for f in p:lines() do
  -- docs/API.md is the name contract in its compact notation, not examples (test_api_docs.lua)
  if f ~= 'docs/API.md' then files[#files + 1] = f end
end
p:close()

T.case('docs/README.md lists every guide, and README.md links it', function()
  local index = assert(io.open('docs/README.md')):read('*a')
  for _, f in ipairs(files) do
    local name = f:match('^docs/(.+)$')
    if name and name ~= 'README.md' then
      T.ok(index:find('](' .. name .. ')', 1, true), 'docs/README.md does not link ' .. name)
    end
  end
  T.ok(index:find('](API.md)', 1, true), 'docs/README.md does not link API.md')
  local readme = assert(io.open('README.md')):read('*a')
  T.ok(readme:find('](docs/README.md)', 1, true), 'README.md does not link docs/README.md')
end)

local runner = [=[
duel = require 'duel'
local blocks, file = ...
for i, code in ipairs(blocks) do
  local chunk, err = loadstring(code, ('=%s example %d'):format(file, i))
  if not chunk then io.stderr:write(err, '\n'); os.exit(1) end
  local ok, e = xpcall(chunk, debug.traceback)
  if not ok then io.stderr:write(('%s example %d: %s\n'):format(file, i, e)); os.exit(1) end
end
]=]

for _, file in ipairs(files) do
  local fh = assert(io.open(file))
  local text = fh:read('*a')
  fh:close()
  local blocks = {}
  for block in text:gmatch('```lua\n(.-)```') do blocks[#blocks + 1] = block end
  if #blocks > 0 then
    T.case(('%s: all %d lua examples run'):format(file, #blocks), function()
      local tmp = os.tmpname()
      local f = assert(io.open(tmp, 'w'))
      -- the blocks travel as long-bracket strings inside one generated script
      f:write('local blocks = {\n')
      for _, b in ipairs(blocks) do
        local eq = '='
        while b:find(']' .. eq .. ']', 1, true) do eq = eq .. '=' end
        f:write('[', eq, '[\n', b, ']', eq, '],\n')
      end
      f:write('}\n', 'local run = loadstring(', ('%q'):format(runner), ')\n', 'run(blocks, ', ('%q'):format(file), ')\n')
      f:close()
      local pipe = io.popen(('luajit %s 2>&1; echo "rc=$?"'):format(tmp))
      local out = pipe:read('*a')
      pipe:close()
      os.remove(tmp)
      T.ok(out:match('rc=0%s*$'), out)
    end)
  end
end
