-- jupyter/server.lua: the LuaJIT side of the duel Jupyter kernel (jupyter/duel_kernel.py).
--
-- The kernel starts `luajit jupyter/server.lua` with DUEL_KERNEL_FDS="<in>,<out>": two pipe fds
-- that carry only protocol frames, so nothing a cell prints (stdout, stderr, C code writing to
-- fd 1) can corrupt them. A frame is a header line "<TAG> <nbytes>\n" and then exactly nbytes of
-- payload, any bytes at all.
--   kernel -> server:  EXEC <code>, COMPLETE <code up to the cursor> (answered by a RESULT
--                      of the matching names, one a line)
--   server -> kernel:  READY (once, at start), RESULT <text>, IMAGE <png bytes>,
--                      ERROR <message>, TRACE <traceback>, DONE (after every EXEC)
-- A cell runs like a line of bin/duel: first as `return <code>` (an expression: its values are
-- sent as RESULT), then as statements, whose last line's values are shown when that line is an
-- expression (as in IPython) or a `return`; a trailing ';' keeps the values quiet. Globals persist
-- between cells. duel.image.show(img) sends the PNG as an IMAGE frame (shown inline).
-- SIGINT (the kernel's interrupt) raises "interrupted!" inside the running cell.

local root = (arg and arg[0] or ''):match('^(.*)/jupyter/[^/]*$') or '.'
-- the checkout's duel (through its duel.lua shim) and its experiments/ helpers
package.path = root .. '/?.lua;' .. package.path

local fds = os.getenv('DUEL_KERNEL_FDS') or ''
local in_fd, out_fd = fds:match('^(%d+),(%d+)$')
if not in_fd then
  io.stderr:write('server.lua: run by jupyter/duel_kernel.py (DUEL_KERNEL_FDS unset)\n')
  os.exit(2)
end
local cmd_in = assert(io.open('/dev/fd/' .. in_fd, 'rb'))
local frame_out = assert(io.open('/dev/fd/' .. out_fd, 'wb'))

local function send(tag, payload)
  payload = payload or ''
  -- user output first, so text printed before an image or a result stays before it
  io.stdout:flush(); io.stderr:flush()
  frame_out:write(tag, ' ', #payload, '\n', payload)
  frame_out:flush()
end

local function receive()
  local header = cmd_in:read('*l')
  if not header then return nil end
  local tag, n = header:match('^(%u+) (%d+)$')
  if not tag then error('server.lua: bad frame header ' .. ('%q'):format(header), 0) end
  n = tonumber(n)
  local payload = n > 0 and cmd_in:read(n) or ''
  if #(payload or '') ~= n then return nil end
  return tag, payload
end

local duel = require 'duel'
for k, v in pairs({duel = duel, F = duel.F, nn = duel.nn, optim = duel.optim}) do
  if rawget(_G, k) == nil then rawset(_G, k, v) end
end
duel.image.set_display(function(png) send('IMAGE', png) end)

-- ---- printing results (as bin/duel does) ---------------------------------------------------------

local is_tensor, is_module = duel.is_tensor, duel.nn.Module.is_module

local function short(v)
  if is_tensor(v) then return 'duel.Tensor {' .. table.concat(v:size(), ',') .. '}' end
  if type(v) == 'string' then return (('%q'):format(v):gsub('\\\n', '\\n')) end
  if is_module(v) then return (tostring(v):match('^[^\n]*')) end
  return tostring(v)
end

-- tables shallowly: the array part, then the other keys sorted, at most 40 entries
local function show_table(t)
  local n, lines, keys = #t, {}, {}
  for i = 1, n do lines[#lines + 1] = '  ' .. short(t[i]) end
  for k in pairs(t) do
    if not (type(k) == 'number' and k >= 1 and k <= n and k == math.floor(k)) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    if type(a) == 'number' or type(a) == 'string' then return a < b end
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(keys) do
    local ks = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or '[' .. short(k) .. ']'
    lines[#lines + 1] = '  ' .. ks .. ' = ' .. short(t[k])
  end
  if #lines == 0 then return '{}' end
  if #lines > 40 then
    local more = #lines - 40
    for i = #lines, 41, -1 do lines[i] = nil end
    lines[41] = ('  ... (%d more)'):format(more)
  end
  return '{\n' .. table.concat(lines, ',\n') .. '\n}'
end

local function show(v)
  if type(v) == 'table' and not is_module(v) then
    local mt = getmetatable(v)
    if not (mt and mt.__tostring) then return show_table(v) end
  end
  return tostring(v)
end

-- ---- running a cell --------------------------------------------------------------------------------

-- the traceback of the cell's own frames (and library frames it called), not this file's
local function traceback(e)
  local msg = tostring(e)
  local keep = {}
  for line in debug.traceback('', 2):gmatch('[^\n]+') do
    if line:find('jupyter/server.lua') or line:find("in function 'xpcall'") then break end
    if not (line:find('^stack traceback:') or line:find('%[C%]') or line:find('%[builtin')
            or line:find('%(tail call%)')) then
      keep[#keep + 1] = line
    end
  end
  return {msg = msg, trace = table.concat(keep, '\n')}
end

-- compile a cell: as an expression (its values are the result); else as statements whose
-- last lines form an expression (shown, as a notebook's last line is); else as statements.
-- `return f()` would be a tail call, and f's frame would be missing from tracebacks: the values
-- go through an identity function instead (the newline keeps a trailing comment from eating ')')
local function returning(expr) return 'return (function(...) return ... end)(' .. expr .. '\n)' end

local function compile(src)
  local fn = loadstring(returning(src), '=cell')
  if fn then return fn end
  local starts = {}
  for pos in src:gmatch('()[^\n]*') do starts[#starts + 1] = pos end
  for i = #starts, 2, -1 do -- the shortest tail first
    local body, tail = src:sub(1, starts[i] - 1), src:sub(starts[i])
    if tail:match('%S') and not tail:match('^%s*%-%-') then
      -- the body keeps its newline, so line numbers in errors stay right
      fn = loadstring(body .. returning(tail), '=cell')
      if fn and loadstring(body, '=cell') then return fn end
    end
  end
  return loadstring(src, '=cell')
end

-- SIGINT: the core's handler (csrc/lua/l_interrupt.c) raises "interrupted!" in the running cell
-- ('error' mode, set for each cell); between cells SIGINT is ignored, so that a late interrupt
-- cannot break the reading of the next frame
local catch_interrupts = duel._core.catch_interrupts

local function run(src)
  local fn, err = compile(src)
  if not fn then
    send('ERROR', err)
    return
  end
  local function pack(...) return {...}, select('#', ...) end
  catch_interrupts('error')
  local res, n = pack(xpcall(fn, traceback))
  if not res[1] then
    send('ERROR', res[2].msg)
    if res[2].trace ~= '' then send('TRACE', res[2].trace) end
    return
  end
  -- values: an expression's, or those of an explicit `return` at the end of the cell
  if n > 1 and not src:match(';%s*$') then
    _G._LAST = res[2]
    local parts = {}
    for i = 2, n do parts[i - 1] = show(res[i]) end
    local joined = table.concat(parts, '\t')
    if joined:find('\n') then joined = table.concat(parts, '\n') end
    send('RESULT', joined)
  end
end

-- ---- completion ----------------------------------------------------------------------------------

-- names reachable from v with '.' (with ':', only functions): table fields, tensor methods,
-- module methods, a C object's `methods`, and what a metatable's __index tables provide
local function fields(v, methods_only, out)
  local seen, depth = {}, 0
  local function add(t)
    for k, f in pairs(t) do
      if type(k) == 'string' and k:match('^[%a_][%w_]*$') and not seen[k]
         and (not methods_only or type(f) == 'function') then
        seen[k] = true
        out[#out + 1] = k
      end
    end
  end
  if is_tensor(v) then add(duel._methods) return out end
  if type(v) == 'table' then add(v) end
  if is_module(v) then add(duel.nn.Module) end
  local mt = getmetatable(v)
  while type(mt) == 'table' and depth < 8 do
    if type(rawget(mt, 'methods')) == 'table' then add(rawget(mt, 'methods')) end -- C objects
    local idx = rawget(mt, '__index')
    if type(idx) ~= 'table' then break end
    add(idx)
    mt, depth = getmetatable(idx), depth + 1
  end
  return out
end

local KEYWORDS = {'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'if',
                  'in', 'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until',
                  'while'}

-- the completions of the dotted name that ends `text`, one per line, sorted
local function complete(text)
  local expr = text:match('[%w_%.:]*$')
  local base, sep, partial = expr:match('^(.*)([%.:])([%w_]*)$')
  local pool = {}
  if not base then
    partial = expr
    fields(_G, false, pool)
    for _, k in ipairs(KEYWORDS) do pool[#pool + 1] = k end
  elseif base:match('^[%a_][%w_%.]*$') then
    local v = _G
    for part in base:gmatch('[^%.]+') do
      local ok, got = pcall(function() return v[part] end)
      if not ok or got == nil then return '' end
      v = got
    end
    fields(v, sep == ':', pool)
  end
  local out = {}
  for _, k in ipairs(pool) do
    if k:sub(1, #partial) == partial and (k:sub(1, 1) ~= '_' or partial:sub(1, 1) == '_') then
      out[#out + 1] = k
    end
  end
  table.sort(out)
  return table.concat(out, '\n')
end

-- ---- the loop --------------------------------------------------------------------------------------

io.stdout:setvbuf('line') -- progress lines of a long cell show while it runs
catch_interrupts('ignore')
send('READY', jit.version)
local function serve_one()
  local tag, payload = receive()
  if not tag then return false end -- the kernel went away
  if tag == 'EXEC' then
    local ok, e = pcall(run, payload)
    catch_interrupts('ignore')
    if not ok then send('ERROR', tostring(e)) end
  elseif tag == 'COMPLETE' then
    local ok, names = pcall(complete, payload)
    send('RESULT', ok and names or '')
  end
  send('DONE')
  return true
end
-- an error outside a cell (an interrupt in the instant after one) is dropped here; the kernel
-- restarts this process if a DONE it waits for never comes
while true do
  local ok, more = pcall(serve_one)
  if ok and not more then break end
end
