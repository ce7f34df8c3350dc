-- bench/steps.lua and bench/steps_torch.py: each prints one JSON line with its fields
-- (a smoke test; the timings themselves are `make bench-compare`'s business)
local T = require 'tests.harness'

local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "rc=$?"')
  local out = p:read('*a')
  p:close()
  return out, tonumber(out:match('rc=(%d+)%s*$'))
end

local function check_json(out, case, steps)
  local line = out:match('({"case".-})')
  T.ok(line, out)
  T.ok(line:find(('"case": "%s"'):format(case), 1, true), line)
  local v = {}
  for _, k in ipairs{'ms_median', 'ms_min', 'ms_max', 'steps', 'peak_rss_mb'} do
    v[k] = tonumber(line:match('"' .. k .. '": ([%d%.]+)'))
    T.ok(v[k], k .. ' missing in ' .. line)
  end
  T.eq(v.steps, steps)
  T.ok(v.ms_min > 0 and v.ms_min <= v.ms_median and v.ms_median <= v.ms_max, line)
  T.ok(v.peak_rss_mb > 1 and v.peak_rss_mb < 4096, line)
end

T.case('bench/steps.lua prints one JSON line with the timing fields', function()
  local out, rc = run('luajit bench/steps.lua --case toy2d_b64 --steps 2 --warmup 1 --threads 1')
  T.eq(rc, 0, out)
  check_json(out, 'toy2d_b64', 2)
end)

T.case('bench/steps.lua names the cases when --case is unknown', function()
  local out, rc = run('luajit bench/steps.lua --case nope --steps 1')
  T.ok(rc ~= 0, out)
  T.ok(out:find('--case must be one of', 1, true) and out:find('pix2pix128b16', 1, true), out)
end)

T.case('bench/steps_torch.py prints the same fields (skipped without torch)', function()
  local py = os.getenv('PYTHON') or '/usr/bin/python3'
  local _, has = run(py .. " -c 'import torch'")
  if has ~= 0 then
    print('skipped: torch is not importable by ' .. py)
    return
  end
  local out, rc = run(py .. ' bench/steps_torch.py --case toy2d_b64 --steps 2 --warmup 1 '
                      .. '--threads 1')
  T.eq(rc, 0, out)
  check_json(out, 'toy2d_b64', 2)
end)
