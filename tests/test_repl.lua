-- bin/duel, the REPL: piped stdin (the io.read path) prints values, errors and help exactly;
-- scripts, -e and the re-exec under LuaJIT; and a session in a pseudo-terminal (util-linux
-- `script`, fed through a FIFO and watched on its output) with libedit line editing, TAB
-- completion of fields and methods, and the history file.
local T = require 'tests.harness'

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- temporary directories, removed when the case ends, whether it passes or fails
local made = {}
local function tmpdir()
  local base = os.tmpname()
  os.remove(base)
  local dir = base .. '.duelrepl'
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

local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then return '' end
  local s = f:read('*a')
  f:close()
  return s
end

-- run bin/duel with stdin from a string; stdout and stderr together, and the exit status
local function repl(input, args)
  local dir = tmpdir()
  local f = assert(io.open(dir .. '/in', 'wb'))
  f:write(input)
  f:close()
  local p = io.popen(('luajit bin/duel %s < %s 2>&1; echo "rc=$?"'):format(args or '', dir .. '/in'))
  local out = p:read('*a')
  p:close()
  os.execute('rm -rf ' .. dir)
  local rc = tonumber(out:match('rc=(%d+)%s*$'))
  return out:gsub('rc=%d+%s*$', ''), rc
end

case('piped stdin: expressions print their values, statements and trailing ; print nothing', function()
  local out, rc = repl(table.concat({
    'x = duel.tensor{{1, 2}, {3, 4}}',
    'x',
    'x:sum()',
    'x:sum();',
    '1 + 1, "two"',
    '= 6 * 7',
    '_LAST',
    'print("printed")',
    'nil',
    'nil, 1',
  }, '\n') .. '\n')
  T.eq(rc, 0)
  T.eq(out, ' 1 2\n 3 4\n[duel.Tensor of shape {2,2}]\n'
         .. '10\n[duel.Tensor of shape {}]\n'
         .. '2\ttwo\n'
         .. '42\n'
         .. '42\n'
         .. 'printed\n'
         .. 'nil\n'
         .. 'nil\t1\n')
end)

case('piped stdin: multi-line chunks, tables shallowly, modules as architecture', function()
  local out = repl(table.concat({
    'function add(a,',
    '             b)',
    '  return a + b',
    'end',
    'add(2,',
    '3)',
    't = {10, 20, name = "G", w = duel.zeros(3, 2), sub = {1}}',
    't',
    '{}',
    'nn.Sequential{nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)}',
  }, '\n') .. '\n')
  local sub = out:match('sub = (table: 0x%x+)')
  T.ok(sub, out)
  T.eq(out, '5\n'
         .. '{\n  10,\n  20,\n  name = "G",\n  sub = ' .. sub .. ',\n  w = duel.Tensor {3,2}\n}\n'
         .. '{}\n'
         .. 'Sequential {\n  (1): Linear(2->4)\n  (2): ReLU()\n  (3): Linear(4->1)\n}\nparameters: 17\n')
end)

case('piped stdin: errors are printed and the session goes on', function()
  local out, rc = repl(table.concat({
    'nil + 1',
    'duel.zeros(2):view(3)',
    'x = = 1',
    'error("boom", 0)',
    'function f() local y; return y.z end',
    'f()',
    '"still here"',
    'for i = 1, 2 do',
  }, '\n') .. '\n')
  T.eq(rc, 0)
  T.eq(out, 'stdin:1: attempt to perform arithmetic on a nil value\n'
         .. 'view: the new shape must hold the 2 elements of {2}, got {3}\n'
         .. "stdin:1: unexpected symbol near '='\n"
         .. 'boom\n'
         .. "stdin:1: attempt to index local 'y' (a nil value)\nstack traceback:\n\tstdin:1: in function <stdin:1>\n"
         .. 'still here\n'
         .. "stdin:1: 'end' expected near '<eof>'\n")
end)

case('help(): the intro, documented functions, names, tensors, modules, optimizers, tables', function()
  local out = repl(table.concat({
    'help()',
    'help(duel.randn)',
    'help("save")',
    'help(duel.ones(2, 3))',
    'help(nn.Linear(2, 3))',
    'help(optim.Adam(nn.Linear(2, 3), {lr = 1e-3}))',
    'help(duel.optim)',
    'help("no_such_name")',
    'help(print)',
  }, '\n') .. '\n')
  T.ok(out:find('duel REPL: LuaJIT with duel loaded', 1, true), out)
  T.ok(out:find('duel.randn(d1, d2, ...) -> tensor of N(0, 1) draws', 1, true), out)
  T.ok(out:find('duel.save(path, obj [, {metadata={k=\'v\'}}])', 1, true), out)
  T.ok(out:find('duel.Tensor of shape {2,3}: 6 float32 elements, contiguous, requires_grad=false', 1, true), out)
  T.ok(out:find('methods: abs add', 1, true), out)
  T.ok(out:find('Linear(2->3)\nparameters: 9\nnn.Linear(in, out, {bias=true}) -> module', 1, true), out)
  T.ok(out:find('call m(x); methods: apply eval forward', 1, true), out)
  T.ok(out:find('Adam(lr=0.001', 1, true), out)
  T.ok(out:find('optim.Adam(params, {lr=1e-3, betas={0.9, 0.999}', 1, true), out)
  T.ok(out:find('functions: Adam AdamW Extragradient', 1, true), out)
  T.ok(out:find("help: nothing documented as 'no_such_name'", 1, true), out)
  T.ok(out:find('help: no documentation for this function', 1, true), out)
end)

case('scripts, -e, -l, -i and the re-exec when started by a Lua without jit', function()
  local dir = tmpdir()
  local script = dir .. '/s.lua'
  local f = assert(io.open(script, 'w'))
  f:write('print("args", arg[0] ~= nil, ...)\nprint(duel.ones(3):sum():item())\nY = 5\n')
  f:close()
  local out, rc = repl('', script .. ' a b')
  T.eq(rc, 0)
  T.eq(out, 'args\ttrue\ta\tb\n3\n')
  out, rc = repl('Y + 1\n', '-i ' .. script)
  T.eq(out, 'args\ttrue\n3\n6\n')
  out, rc = repl('', "-e 'print(duel.zeros(2):numel())'")
  T.eq(out, '2\n')
  out, rc = repl('', "-l string -e 'print(string.rep(\"ab\", 2))'")
  T.eq(out, 'abab\n')
  out, rc = repl('', "-e 'error(\"bad\", 0)'")
  T.eq(out, 'bad\n')
  T.eq(rc, 1)
  out, rc = repl('', '-x')
  T.ok(out:find('duel: unknown option -x', 1, true), out)
  T.eq(rc, 1)
  -- a Lua without `jit` runs the file again under luajit (simulated by hiding the global)
  local p = io.popen([[luajit -e 'jit = nil' bin/duel -e 'print(type(jit), duel ~= nil)' 2>&1]])
  T.eq(p:read('*a'), 'table\ttrue\n')
  p:close()
  -- from another directory: bin/../duel.lua finds the checkout
  local cpath = os.getenv('DUEL_CPATH')
  if cpath and cpath:sub(1, 1) ~= '/' then cpath = os.getenv('PWD') .. '/' .. cpath end
  p = io.popen(('cd %s && %sluajit %s/bin/duel -e "print(duel.ones(2):sum():item())" 2>&1')
               :format(dir, cpath and ('DUEL_CPATH=' .. q(cpath) .. ' ') or '', os.getenv('PWD')))
  T.eq(p:read('*a'), '2\n')
  p:close()
  os.execute('rm -rf ' .. dir)
end)

-- ---- a pseudo-terminal session --------------------------------------------------------------------

-- The REPL's Ctrl-C handler (csrc/lua/l_interrupt.c) stays installed: every SIGINT becomes an
-- "interrupted!" error in the running Lua code. Under LuaJIT's own handler the second one
-- would take the default action and end the process with status 130.
-- the hook can fire on the call of a C function (here matmul or tanh), which has no line: the
-- error names the nearest Lua line all the same (a bare "interrupted!" once failed a CI run).
-- The signals land inside oneDNN's sgemm, whose JIT kernels point rsp into the heap: before the
-- core held signals back around oneDNN calls (csrc/parallel.c), this aborted with "corrupted
-- size vs. prev_size" every time within the 100.
case('catch_interrupts: the error names the Lua line running, also inside C calls', function()
  local dir = tmpdir()
  local script = dir .. '/loop.lua'
  local f = assert(io.open(script, 'w'))
  -- one signal at a time, 20 ms into each loop, from a shell in the background: signals sent
  -- faster than a loaded machine schedules the process would merge into one. io.popen, not
  -- os.execute: system() ignores SIGINT in its caller until the shell exits, and under load
  -- the signal could come first and be lost.
  f:write([[
local duel = require 'duel'
local ffi = require 'ffi'
ffi.cdef 'int getpid(void);'
duel._core.catch_interrupts('error')
local seen, kill = {}, ('(sleep 0.02; kill -INT %d) &'):format(ffi.C.getpid())
for _ = 1, 100 do
  local _, err = pcall(function()
    local y = duel.randn(256, 256)
    io.popen(kill):close()
    while true do y = y:matmul(y):tanh() end
  end)
  seen[tostring(err)] = (seen[tostring(err)] or 0) + 1
end
for k, n in pairs(seen) do print(n, k) end
]])
  f:close()
  local p = io.popen(('cd %s && LUA_PATH=%s timeout 60 luajit %s 2>&1; echo "exit=$?"')
                     :format(q(os.getenv('PWD') or '.'), q('./?.lua;./lua/?.lua;' .. (package.path or '')),
                             q(script)))
  local out = p:read('*a')
  p:close()
  T.eq(out, ('100\t%s:10: interrupted!\nexit=0\n'):format(script))
end)

case('catch_interrupts: every SIGINT raises interrupted! and none kills; ignore; bad mode', function()
  local dir = tmpdir()
  local script = dir .. '/sig.lua'
  local f = assert(io.open(script, 'w'))
  f:write([[
local duel = require 'duel'
local ffi = require 'ffi'
ffi.cdef 'int getpid(void); int kill(int pid, int sig);'
duel._core.catch_interrupts('error')
local caught = 0
for _ = 1, 3 do
  local ok, err = pcall(function()
    ffi.C.kill(ffi.C.getpid(), 2)
    local x = 0
    for i = 1, 1e12 do x = x + i % 7 end -- ends only by the interrupt
    return x
  end)
  if not ok and tostring(err):match('interrupted!$') then caught = caught + 1 end
end
duel._core.catch_interrupts('ignore')
ffi.C.kill(ffi.C.getpid(), 2)
print('caught ' .. caught, select(2, pcall(duel._core.catch_interrupts, 'loud')))
os.exit(0)
]])
  f:close()
  local p = io.popen(('cd %s && LUA_PATH=%s timeout 20 luajit %s 2>&1; echo "exit=$?"')
                     :format(q(os.getenv('PWD') or '.'), q('./?.lua;./lua/?.lua;' .. (package.path or '')),
                             q(script)))
  local out = p:read('*a')
  p:close()
  T.eq(out, "caught 3\tcatch_interrupts: mode must be 'error', 'ignore' or 'restore', got 'loud'\nexit=0\n")
end)

local function sleep(s) os.execute(('sleep %.2f'):format(s)) end

-- strip terminal escape sequences and carriage returns, for matching what the screen shows
local function plain(s)
  return (s:gsub('\27%[[%d;?]*%a', ''):gsub('\27[%(%)][%w]', ''):gsub('[\r\7]', ''))
end

case('pty session: line editing, TAB completion of fields and methods, results, Ctrl-C, history', function()
  local dir = tmpdir()
  local fifo, out, hist, pidf = dir .. '/in', dir .. '/out', dir .. '/history', dir .. '/pid'
  assert(os.execute('mkfifo ' .. fifo) == 0)
  -- script gives bin/duel a pty as its terminal; keystrokes arrive through the FIFO. `timeout`
  -- bounds the session: if the test fails half-way, TERM to it ends script, and the pty's
  -- hangup ends bin/duel.
  -- Under make check only bin/duel keeps the preloaded sanitizer runtime: script's own
  -- allocations are not ours to check.
  local preload = os.getenv('LD_PRELOAD')
  -- `exec`: script runs the command through $SHELL; dash (CI has no SHELL, so /bin/sh) would
  -- otherwise stay as bin/duel's parent in the same process group and die of the Ctrl-C, and
  -- script then reports 130 although bin/duel itself went on.
  local inner = 'exec env ' .. (preload and 'LD_PRELOAD=' .. q(preload) .. ' ' or '') .. 'luajit bin/duel'
  os.execute(('(TERM=xterm DUEL_HISTORY=%s env -u LD_PRELOAD timeout 60 script -qfec %s /dev/null '
              .. '< %s > %s 2>&1 & echo $! > %s; wait $!; echo "exit=$?" >> %s) &')
             :format(hist, q(inner), fifo, out, pidf, out))
  local w = assert(io.open(fifo, 'w'))
  w:setvbuf('no')
  -- wait until the screen shows `want` after position `from` (plain text), at most 20 s
  local function expect(want, from)
    for _ = 1, 400 do
      local s = plain(read_file(out))
      local at = s:find(want, from or 1, true)
      if at then return at + #want end
      sleep(0.05)
    end
    error(('pty: the screen never showed %q; it shows:\n%s'):format(want, plain(read_file(out))), 0)
  end
  local ok, err = pcall(function()
    -- keys are typed only once a fresh prompt shows: bin/duel is then inside readline, with
    -- the terminal in libedit's raw mode
    local pos = expect('duel> ')
    w:write('x = duel.ones(2, 2)\r')
    pos = expect('duel> ', pos)
    -- a field after '.': "duel.nn.Lin" + TAB completes to duel.nn.Linear
    w:write('help(duel.nn.Lin\t')
    pos = expect('help(duel.nn.Linear', pos)
    w:write(')\r')
    pos = expect('nn.Linear(in, out, {bias=true}) -> module', pos)
    pos = expect('duel> ', pos)
    -- a method after ':': "x:nume" + TAB completes to x:numel
    w:write('x:nume\t')
    pos = expect('x:numel', pos)
    w:write('()\r')
    pos = expect('\n4\n', pos)
    pos = expect('duel> ', pos)
    -- several candidates: a second TAB lists them; Ctrl-U clears the line
    w:write('duel.rand\t\t')
    pos = expect('randn_like', pos)
    w:write('\21x * 3\r')
    pos = expect(' 3 3\n 3 3\n[duel.Tensor of shape {2,2}]', pos)
    pos = expect('duel> ', pos)
    -- a global name, then a field: "due" + TAB gives duel, ".manual_s" + TAB manual_seed
    w:write('due\t.manual_s\t(3)\r')
    pos = expect('duel.manual_seed(3)', pos)
    pos = expect('duel> ', pos)
    -- Ctrl-C abandons a half-typed line, every time, and interrupts a running command
    w:write('1 +\3')
    pos = expect('duel> ', pos)
    w:write('2 +\3')
    pos = expect('duel> ', pos)
    w:write('y = duel.randn(20, 20); while true do y = y:matmul(y):tanh() end\r')
    pos = expect('tanh() end\n', pos)
    sleep(0.3)
    w:write('\3')
    pos = expect('stdin:1: interrupted!\n', pos)
    pos = expect('duel> ', pos)
    w:write('\4') -- Ctrl-D on an empty line leaves
    expect('exit=0', pos)
  end)
  w:close()
  if not ok then
    os.execute('kill -TERM $(cat ' .. pidf .. ') 2>/dev/null')
    os.execute('rm -rf ' .. dir)
    error(err, 0)
  end
  local h = read_file(hist)
  T.ok(h:find('help(duel.nn.Linear)', 1, true), h)
  T.ok(h:find('x:numel()', 1, true), h)
  T.ok(h:find('duel.manual_seed(3)', 1, true), h)
  os.execute('rm -rf ' .. dir)
end)
