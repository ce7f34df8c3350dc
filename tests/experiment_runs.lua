-- Shared by the experiment-script tests: calling this module gives a fresh temporary output
-- folder and helpers to run a script from the checkout root (with this process's DUEL_CPATH)
-- into it. Each test file makes its own (its cleanup removes the folder).
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- a file that exists and is not empty
local function exists(path)
  local f = io.open(path, 'rb')
  if not f then return false end
  local n = f:seek('end')
  f:close()
  return n > 0
end

return function()
  local tmp = os.tmpname()
  os.remove(tmp)
  -- run experiments/<script>.lua --out <tmp> <args>; returns output, exit status, run folder
  local function run(script, args)
    local p = io.popen(('luajit experiments/%s.lua --out %s %s 2>&1; echo "rc=$?"')
                       :format(script, q(tmp), args or ''))
    local out = p:read('*a')
    p:close()
    return out, tonumber(out:match('rc=(%d+)%s*$')), out:match('^' .. script .. ': (%S+)')
  end
  -- experiments/evaluate.lua's scores of a finished run, in this process, on 100 generated and
  -- 200 test images (the full command uses 10,000 of each)
  local function scores(dir)
    local ev = require 'experiments.evaluate'
    ev.N_IMAGE, ev.N_TEST = 100, 200
    return ev.run(dir)
  end
  return {tmp = tmp, q = q, run = run, exists = exists, scores = scores}
end
