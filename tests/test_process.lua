-- Whole-process behaviour: loading from the checkout root, clean exit after parallel kernels.
local T = require 'tests.harness'

local function run(code)
  local p = io.popen(("luajit -e %q 2>&1; echo \"rc=$?\""):format(code))
  local out = p:read('*a')
  p:close()
  return out, tonumber(out:match('rc=(%d+)%s*$'))
end

T.case('require duel works from the checkout root with no environment variables', function()
  local out, rc = run("local duel = require 'duel'; io.write(duel.ones(2):sum():item())")
  T.eq(rc, 0, out)
  T.ok(out:find('^2'), out)
end)

-- Regression: lua_close unloads C modules; the OpenMP runtime's idle workers must not be left
-- running code that was unmapped (the module is linked with -z nodelete).
T.case('the process exits cleanly after OpenMP kernels and many small ops', function()
  local out, rc = run([[
    local duel = require 'duel'
    local a, b = duel.ones(4), duel.ones(4)
    for i = 1, 5000 do local c = a + b end
    local x = duel.randn(512, 512)
    local y = (x * x):exp():sum()
    io.write('done')]])
  T.eq(rc, 0, out)
  T.ok(out:find('done', 1, true), out)
end)
