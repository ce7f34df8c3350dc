-- The notebook stage: notebooks/*.ipynb executed headlessly through the duel Jupyter kernel
-- (jupyter/run_notebooks.sh, what `make notebooks` runs), with the kernel installed into a
-- temporary JUPYTER_PATH. A failing cell must fail the command. tests/notebook_probe.py checks the
-- kernel's behaviour cell by cell (interrupt, restart after a crash). Skipped when Jupyter is not
-- installed (Debian: jupyter-nbconvert python3-ipykernel jupyter-client python3-nbclient).
-- cyclegan.ipynb (about 30 s here) runs only with DUEL_TEST_NOTEBOOKS=all, to keep this file fast.
local T = require 'tests.harness'
local duel = require 'duel'

local JUPYTER = '/usr/bin/jupyter'

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- output and exit status of a shell command. Under `make check` the ASan runtime is preloaded
-- into every child and DUEL_CPATH names the sanitizer build, which a plain luajit cannot load:
-- then both go, and the kernel uses the default build.
local function sh(cmd)
  local pre = os.getenv('LD_PRELOAD') and 'unset LD_PRELOAD DUEL_CPATH; ' or ''
  local p = io.popen(pre .. '(' .. cmd .. ') 2>&1; echo "exit status $?"')
  local out = p:read('*a')
  p:close()
  local body, rc = out:match('^(.*)exit status (%d+)%s*$')
  return body or out, tonumber(rc)
end

local function have_jupyter()
  -- under `make check` the kernel's luajit could load neither the sanitizer build (no ASan
  -- runtime preloaded into it) nor the default one (not built yet on a fresh CI clone)
  if (os.getenv('LD_PRELOAD') or ''):find('asan') then
    print('     skipped: notebooks under AddressSanitizer (make test runs them)')
    return false
  end
  local f = io.open(JUPYTER, 'r')
  if f then f:close() return true end
  print('     skipped: ' .. JUPYTER .. ' is missing (apt-get install jupyter-nbconvert '
        .. 'python3-ipykernel jupyter-client python3-nbclient)')
  return false
end

-- a summary of an executed notebook, one line per output:
--   <cell> <output_type> <mime or stream name> <first 200 characters, newlines as \n>
local SUMMARY = [[
import json, sys
nb = json.load(open(sys.argv[1]))
for i, c in enumerate(nb["cells"]):
    for o in c.get("outputs", []):
        if "data" in o:
            for mime, v in o["data"].items():
                v = "".join(v) if isinstance(v, list) else v
                print(i + 1, o["output_type"], mime, v[:200].replace("\n", "\\n"))
        else:
            text = o.get("text", "") or o.get("evalue", "")
            text = "".join(text) if isinstance(text, list) else text
            print(i + 1, o["output_type"], o.get("name", "-"), text[:200].replace("\n", "\\n"))
]]

local function summary(path)
  local out, rc = sh('/usr/bin/python3 -c ' .. q(SUMMARY) .. ' ' .. q(path))
  T.eq(rc, 0, 'reading ' .. path .. ': ' .. out)
  return out
end

local FAILING = [[
{"cells": [
  {"cell_type": "code", "id": "ok", "metadata": {}, "execution_count": null, "outputs": [],
   "source": ["x = 6 * 7"]},
  {"cell_type": "code", "id": "boom", "metadata": {}, "execution_count": null, "outputs": [],
   "source": ["error('boom')"]},
  {"cell_type": "code", "id": "after", "metadata": {}, "execution_count": null, "outputs": [],
   "source": ["x"]}],
 "metadata": {"kernelspec": {"display_name": "LuaJIT (duel)", "language": "lua", "name": "duel"}},
 "nbformat": 4, "nbformat_minor": 5}
]]

T.case('notebooks execute through the duel kernel; a failing cell fails the command; '
       .. 'the kernel survives interrupts and crashes', function()
  if not have_jupyter() then return end
  local tmp = sh('mktemp -d /tmp/duel-nbtest.XXXXXX'):gsub('%s+$', '')
  T.ok(tmp:match('^/tmp/duel%-nbtest%.'), 'mktemp failed: ' .. tmp)
  local ok, err = pcall(function()
    local f = assert(io.open(tmp .. '/failing.ipynb', 'w'))
    f:write(FAILING)
    f:close()
    local books = {'notebooks/tensors_autograd.ipynb', 'notebooks/wgan_gp_ring8.ipynb'}
    if os.getenv('DUEL_TEST_NOTEBOOKS') == 'all' then books[#books + 1] = 'notebooks/cyclegan.ipynb' end
    -- One run (each kernel start costs seconds): nbconvert executes the notebooks in order, writes
    -- each executed copy only when every cell ran, and stops with status 1 at the failing one.
    -- Meanwhile tests/notebook_probe.py drives a kernel of its own through jupyter_client
    -- (interrupt, restart after a crash, ...), mostly waiting, so the two overlap.
    local list = {}
    for i, b in ipairs(books) do list[i] = q(b) end
    local t0 = os.time()
    local jp = q(tmp .. '/jupyter')
    local probe = ('jupyter/install.sh %s >/dev/null && JUPYTER_PATH=%s JUPYTER_RUNTIME_DIR=%s/rt '
      .. 'IPYTHONDIR=%s/ip PYDEVD_DISABLE_FILE_VALIDATION=1 /usr/bin/python3 tests/notebook_probe.py')
      :format(jp, jp, jp, jp)
    local out, rc = sh(('(%s >%s 2>&1; echo $? >%s) & '
      .. 'NB_TIMEOUT=120 jupyter/run_notebooks.sh -o %s %s %s; rc=$?; wait; exit $rc'):format(
      probe, q(tmp .. '/probe.out'), q(tmp .. '/probe.rc'), q(tmp .. '/out'),
      table.concat(list, ' '), q(tmp .. '/failing.ipynb')))
    local function read(name)
      local fh = io.open(tmp .. '/' .. name)
      local text = fh and fh:read('*a') or ''
      if fh then fh:close() end
      return text
    end
    local probe_out = read('probe.out')
    T.eq(tonumber(read('probe.rc')), 0, 'tests/notebook_probe.py:\n' .. probe_out)
    local n_ok = 0
    for _ in probe_out:gmatch('\nok ') do n_ok = n_ok + 1 end
    T.eq(n_ok + (probe_out:match('^ok ') and 1 or 0), 12, 'probe checks passed:\n' .. probe_out)
    T.ok(rc ~= 0, 'a notebook with error(\'boom\') must fail the command:\n' .. out)
    T.ok(out:find('boom', 1, true), 'the failure names the cell\'s error:\n' .. out)
    T.ok(not io.open(tmp .. '/out/failing.ipynb'), 'no executed copy of the failing notebook')
    print(('     %d notebooks + the failing one: %d s'):format(#books, os.time() - t0))

    -- every good notebook ran through: its executed copy exists and holds no error output
    local s = {}
    for _, b in ipairs(books) do
      local name = b:match('([^/]+)$')
      s[name] = summary(tmp .. '/out/' .. name)
      T.ok(not s[name]:find(' error '), name .. ' has an error output:\n' .. s[name])
    end
    local ta, wg = s['tensors_autograd.ipynb'], s['wgan_gp_ring8.ipynb']
    -- an expression's value is shown: the first cell ends with `x`, a 2x2 tensor
    T.ok(ta:find('execute_result text/plain  1 2\\n 3 4\\n%[duel%.Tensor of shape {2,2}%]'),
         'first cell result:\n' .. ta)
    -- the hand-written gradient penalty equals the library's (printed by the notebook)
    local a, b = ta:match('by hand (%d+%.%d+), duel%.gan (%d+%.%d+)')
    T.ok(a and math.abs(tonumber(a) - tonumber(b)) <= 1e-4 * math.max(1, tonumber(a)), ta)
    -- the scatter plots arrive inline as PNGs (base64 of the PNG signature: iVBORw0KGgo)
    local pngs = 0
    for mime, data in wg:gmatch('display_data (%S+) (%S+)') do
      if mime == 'image/png' then
        T.eq(data:sub(1, 11), 'iVBORw0KGgo', 'PNG signature')
        pngs = pngs + 1
      end
    end
    T.eq(pngs, 2, 'scatter plots before and after training:\n' .. wg)
    T.ok(wg:find('step 100  critic loss'), 'training progress is printed:\n' .. wg)
  end)
  sh('rm -rf ' .. q(tmp))
  if not ok then error(err, 0) end
end)

-- duel.image.show without Jupyter: the display hook the kernel's server installs, and the file
T.case('image.show hands a PNG to the display set by image.set_display, else writes a file', function()
  local got
  duel.image.set_display(function(png) got = png end)
  local ok, err = pcall(function()
    local img = duel.tensor{{{0, 0.5}, {1, 0.25}}} -- 1 x 2 x 2
    T.eq(select('#', duel.image.show(img)), 0, 'nothing returned (a cell prints no value)')
    T.eq(got:sub(1, 8), '\137PNG\r\n\26\n', 'PNG signature')
    -- the bytes decode to the image (8-bit rounding)
    local tmp = os.tmpname()
    local path = tmp .. '.png'
    local f = assert(io.open(path, 'wb')) f:write(got) f:close()
    local back = duel.image.load(path, {channels = 1})
    os.remove(path)
    T.close(back, img, 1 / 255 + 1e-6)
    -- a batch becomes a grid: 4 images of 1 x 3 x 3, 2 per row, padding 2 -> 12 x 12 pixels
    got = nil
    duel.image.show(duel.rand(4, 1, 3, 3), {nrow = 2})
    f = assert(io.open(path, 'wb')) f:write(got) f:close()
    T.eq(duel.image.info(path).width, 12)
    T.eq(duel.image.info(path).height, 12)
    os.remove(path)
    os.remove(tmp)
  end)
  duel.image.set_display(nil)
  if not ok then error(err, 0) end
  local path = duel.image.show(duel.ones(3, 4, 5) * 2, {range = {0, 2}})
  T.ok(path:match('%.png$'), 'a .png path, got ' .. tostring(path))
  local back = duel.image.load(path)
  os.remove(path)
  T.eq(back:size(), {3, 4, 5})
  T.close(back, duel.ones(3, 4, 5), 1e-6)
  T.raises_exact('image.show: image must be a duel.Tensor, got number',
                 function() duel.image.show(7) end)
  T.raises_exact('image.show: img must be {C,H,W}, {H,W} or {N,C,H,W}, got {1,1,1,1,1}',
                 function() duel.image.show(duel.rand(1, 1, 1, 1, 1)) end)
  T.raises_exact('image.set_display: expects a function or nil, got number',
                 function() duel.image.set_display(1) end)
end)
