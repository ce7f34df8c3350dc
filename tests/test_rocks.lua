-- Packaging: `luarocks make` with the committed rockspec and LuaJIT config builds and installs
-- duel into a fresh tree, offline, and the installed copy works from another directory.
-- The sources are copied to a temporary directory first, so the build is a clean one and the
-- checkout's lua/duel/core.so and build/ are left alone.
local T = require 'tests.harness'

-- run a shell command; returns its output (stdout+stderr) and whether it exited with 0.
-- (LuaJIT's popen:close() does not report the exit status, so the shell echoes it.)
-- Under `make check` the ASan runtime is preloaded into every child; LeakSanitizer then fails
-- programs such as cp and gcc for their own leaks (silently: cp closes stderr first), so the
-- preload is dropped before anything else runs.
local function sh(cmd)
  local p = io.popen('unset LD_PRELOAD; (' .. cmd .. ') 2>&1; echo "exit status $?"')
  local out = p:read('*a')
  p:close()
  local body, rc = out:match('^(.*)exit status (%d+)%s*$')
  return body or out, tonumber(rc) == 0
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- luarocks and the installed copy get a plain environment: no inherited make jobserver flags, no
-- user LUA_PATH (luarocks itself runs under lua5.1 and finds its modules through it), no
-- DUEL_CPATH (make check points it at the sanitizer build).
local CLEAN_ENV = 'env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u LUA_PATH -u LUA_CPATH -u LUA_INIT'
  .. ' -u DUEL_CPATH'

T.case('luarocks make installs a working duel into a fresh tree (offline)', function()
  local out, ok = sh('command -v luarocks')
  T.ok(ok, 'luarocks is not installed (make deps installs it): ' .. out)
  local root = sh('pwd'):gsub('%s+$', '')
  local tmp = sh('mktemp -d /tmp/duel-rocks-XXXXXX'):gsub('%s+$', '')
  T.ok(tmp:match('^/tmp/duel%-rocks%-'), 'mktemp failed: ' .. tmp)
  local function run()
    local src, tree = tmp .. '/src', tmp .. '/tree'
    -- what the rock build needs from a clone: the Makefile, the C sources, the Lua modules,
    -- the REPL script, the rockspec and the LuaRocks config
    out, ok = sh(('mkdir %s && cd %s && cp -R Makefile csrc lua bin rockspec tools %s/ && rm -f %s/lua/duel/core.so')
      :format(q(src), q(root), q(src), q(src)))
    T.ok(ok, 'copying the sources failed: ' .. out)

    out, ok = sh(('cd %s && %s MAKEFLAGS=-j2 LUAROCKS_CONFIG=%s/tools/luarocks-luajit.lua'
      .. ' luarocks make --tree=%s rockspec/duel-scm-1.rockspec')
      :format(q(src), CLEAN_ENV, q(src), q(tree)))
    T.ok(ok, 'luarocks make failed:\n' .. out)
    T.ok(out:find('duel scm-1 is now installed', 1, true), 'no install message:\n' .. out)
    T.ok(out:find('-I/usr/include/luajit-2.1', 1, true), 'not compiled against the LuaJIT headers:\n' .. out)
    -- the REPL's wrapper must run luajit, not the lua5.1 that LuaRocks itself runs under
    local wrapper = io.open(tree .. '/bin/duel')
    T.ok(wrapper, 'no bin/duel in the tree:\n' .. out)
    local text = wrapper:read('*a')
    wrapper:close()
    T.ok(text:find('luajit', 1, true) and not text:find('lua5.1', 1, true),
      'bin/duel does not exec luajit:\n' .. text)

    -- only the tree on the search paths (no ';;'), so nothing else can supply duel
    local script = tmp .. '/check.lua'
    local f = assert(io.open(script, 'w'))
    f:write([[
local duel = require 'duel'
local where = package.searchpath('duel.core', package.cpath)
local x = duel.randn(3):requires_grad_()
local loss = (x * x):sum()
loss:backward()
local err = (x.grad - x * 2):abs():max():item()
assert(err < 1e-6, 'gradient of sum(x^2) is not 2x, max error ' .. err)
assert(math.abs(loss:item() - (x * x):sum():item()) < 1e-6)
print('core ' .. where)
print('grad ok ' .. err)
]])
    f:close()
    local lpath = tree .. '/share/lua/5.1/?.lua;' .. tree .. '/share/lua/5.1/?/init.lua'
    local cpath = tree .. '/lib/lua/5.1/?.so'
    out, ok = sh(('cd /tmp && %s LUA_PATH=%s LUA_CPATH=%s luajit %s')
      :format(CLEAN_ENV, q(lpath), q(cpath), q(script)))
    T.ok(ok, 'the installed duel failed:\n' .. out)
    T.eq(out:match('core (%S+)'), tree .. '/lib/lua/5.1/duel/core.so', 'loaded core')
    T.ok(out:find('grad ok', 1, true), out)
  end
  local okrun, err = pcall(run)
  sh('rm -rf ' .. q(tmp))
  if not okrun then error(err, 0) end
end)
