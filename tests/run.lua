-- Runs the C core tests, then every tests/test_*.lua case; prints one closing line
-- "N passed, N failed" and exits non-zero on any failure. Usage: luajit tests/run.lua [pattern]
local pattern = arg[1]
local T = require 'tests.harness'

local passed, failed = 0, 0
local verbose = os.getenv('VERBOSE') == '1'

-- the C core's own tests (no Lua): their summary line joins ours
local core_bin = os.getenv('DUEL_TEST_CORE') or 'build/test_core'
if not pattern or ('test_core'):find(pattern, 1, true) then
  local f = io.open(core_bin, 'r')
  if f then
    f:close()
    local p = io.popen(core_bin .. ' 2>&1')
    local out = p:read('*a')
    local ok = p:close()
    local cp, cf = out:match('(%d+) passed, (%d+) failed%s*$')
    if cp then
      passed, failed = passed + tonumber(cp), failed + tonumber(cf)
      if tonumber(cf) > 0 or verbose then io.write(out) end
    else
      failed = failed + 1
      io.write('FAIL c core tests: no summary line\n', out, '\n')
    end
    if ok ~= true and ok ~= 0 and not cp then failed = failed + 1 end
  else
    failed = failed + 1
    print('FAIL c core tests: ' .. core_bin .. ' is missing (run make)')
  end
end

local files = {}
local p = io.popen('ls tests/test_*.lua 2>/dev/null')
for name in p:lines() do files[#files + 1] = name end
p:close()
table.sort(files)

for _, file in ipairs(files) do
  T.current_file = file
  local chunk, err = loadfile(file)
  if not chunk then
    failed = failed + 1
    print('FAIL ' .. file .. ': ' .. err)
  else
    local ok, lerr = pcall(chunk)
    if not ok then
      failed = failed + 1
      print('FAIL ' .. file .. ' (loading): ' .. tostring(lerr))
    end
  end
end

local t_start = os.clock()
for _, c in ipairs(T.cases) do
  local label = c.file:match('tests/(.*)%.lua$') .. ': ' .. c.name
  if not pattern or label:find(pattern, 1, true) then
    local t0 = os.clock()
    local ok, err = xpcall(c.fn, debug.traceback)
    if ok then
      passed = passed + 1
      if verbose then print(('ok   %s (%.2fs)'):format(label, os.clock() - t0)) end
    else
      failed = failed + 1
      print(('FAIL %s\n     %s'):format(label, tostring(err):gsub('\n', '\n     ')))
    end
  end
end
if verbose then print(('lua tests: %.1fs cpu'):format(os.clock() - t_start)) end
print(('%d passed, %d failed'):format(passed, failed))
io.stdout:flush()
-- close the Lua state on exit so that every tensor is finalised: LeakSanitizer (make check) then
-- reports only real leaks
T.cases = nil
collectgarbage()
os.exit(failed == 0 and 0 or 1, true)
