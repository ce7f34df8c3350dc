-- experiments/common.lua: what every experiment script shares (not public API).
--   options     `--key value` over a defaults table, `--help`, `--quick`, `--resume <run dir>`
--   run folder  runs/<script>-<time>/ with options.txt, metrics.jsonl, sample grids, loss curve,
--               and a safetensors checkpoint that --resume continues from exactly
--   progress    a redrawn status line on a terminal, periodic plain lines otherwise
local duel = require 'duel'
local ffi = require 'ffi'

pcall(ffi.cdef, [[
int isatty(int fd);
int mkdir(const char *path, unsigned int mode);
]])

local common = {}

local now = duel.clock
common.now = now

-- ---- options ---------------------------------------------------------------------------------

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do if type(k) == 'string' and k:sub(1, 1) ~= '_' then ks[#ks + 1] = k end end
  table.sort(ks)
  return ks
end

local function usage(script, defaults, help)
  local lines = {('usage: luajit experiments/%s.lua [--key value]...'):format(script), '', 'options (default):'}
  for _, k in ipairs(sorted_keys(defaults)) do
    lines[#lines + 1] = ('  --%-16s %-14s %s'):format(k, tostring(defaults[k]), help[k] or '')
  end
  lines[#lines + 1] = '  --quick                           a few steps, for smoke tests'
  lines[#lines + 1] = '  --resume <run dir>                continue a run exactly where it stopped'
  lines[#lines + 1] = '  --dist                            data-parallel over the ranks of mpirun (docs/distributed.md)'
  lines[#lines + 1] = '  --sync_bn                         with --dist: BatchNorm statistics over the global batch'
  lines[#lines + 1] = '  --help                            this text'
  return table.concat(lines, '\n')
end

-- parse `--key value` pairs against defaults; the type of each default decides the parsing
function common.parse(script, defaults, help, argv)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  o.quick, o.resume = false, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local key = a:match('^%-%-([%w_%-]+)$')
    if not key then
      error(('options: expected --key, got %s (see --help)'):format(a), 0)
    end
    key = key:gsub('-', '_')
    if key == 'help' then
      print(usage(script, defaults, help))
      os.exit(0)
    elseif key == 'quick' or ((key == 'dist' or key == 'sync_bn') and defaults[key] == nil) then
      o[key] = true
    elseif key == 'resume' then
      o.resume = argv[i + 1] or error('options: --resume needs a run folder, got nothing', 0)
      i = i + 1
    elseif defaults[key] == nil then
      error(('options: unknown option --%s (see --help), got %s'):format(key, tostring(argv[i + 1])), 0)
    elseif type(defaults[key]) == 'boolean' then
      local nxt = argv[i + 1]
      if nxt == 'true' or nxt == 'false' then
        o[key] = nxt == 'true'
        i = i + 1
      else
        o[key] = true
      end
    else
      local v = argv[i + 1]
      if v == nil then error(('options: --%s needs a value, got nothing'):format(key), 0) end
      if type(defaults[key]) == 'number' then
        local n = tonumber(v)
        if not n then error(('options: --%s must be a number, got %s'):format(key, v), 0) end
        o[key] = n
      else
        o[key] = v
      end
      i = i + 1
    end
    i = i + 1
  end
  return o
end

-- ---- run folder --------------------------------------------------------------------------------

local function mkdir_p(path)
  local acc = path:sub(1, 1) == '/' and '' or '.'
  for part in path:gmatch('[^/]+') do
    acc = acc .. '/' .. part
    ffi.C.mkdir(acc, tonumber('755', 8))
  end
end
common.mkdir_p = mkdir_p

local function json_value(v)
  local t = type(v)
  if t == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then return 'null' end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ('%d'):format(v) end
    return ('%.9g'):format(v)
  elseif t == 'boolean' then return tostring(v)
  elseif t == 'string' then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return ({['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t'})[c] or ('\\u%04x'):format(c:byte())
    end) .. '"'
  end
  return 'null'
end

-- one flat JSON object, keys sorted (metrics lines and options)
function common.json(t)
  local parts = {}
  for _, k in ipairs(sorted_keys(t)) do parts[#parts + 1] = json_value(k) .. ':' .. json_value(t[k]) end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- a resume that changes options (a longer run, a later learning-rate decay) leaves options.txt
-- holding the options the run ends with, and a comment line saying what changed from what
local function options_resumed(dir, old, notes, lines)
  local keep, changes = {}, {}
  for _, line in ipairs(lines) do
    local k, v = line:match('^([%w_]+) = (.*)$')
    if k ~= 'resume' then
      keep[#keep + 1] = line
      if old[k] ~= v then
        changes[#changes + 1] = ('%s %s -> %s'):format(k, old[k] or '(none)', v)
      end
    end
  end
  if #changes == 0 then return end
  for _, line in ipairs(notes) do keep[#keep + 1] = line end
  keep[#keep + 1] = ('# resumed on %s with %s'):format(os.date('!%Y-%m-%d %H:%M UTC'),
    table.concat(changes, ', '))
  local tmp = dir .. '/options.txt.tmp'
  local f, err = io.open(tmp, 'w')
  local ok = f and f:write(table.concat(keep, '\n'), '\n') and f:close()
  if ok then ok, err = os.rename(tmp, dir .. '/options.txt') end
  if not ok then error(('resume: cannot rewrite %s/options.txt, got %s'):format(dir, err), 0) end
end

-- setup(script, defaults, help): parse arg, seed, threads, run folder. Returns opts, run.
function common.setup(script, defaults, help, argv)
  argv = argv or arg
  -- a resumed run starts from the options it was started with (options.txt, which holds the
  -- --quick settings too); keys given on the command line again override them
  local saved_quick, saved_raw, saved_notes
  for i = 1, #argv - 1 do
    local f = argv[i] == '--resume' and io.open(argv[i + 1] .. '/options.txt', 'r')
    if f then
      local saved = {}
      for k, v in pairs(defaults) do saved[k] = v end
      saved_raw, saved_notes = {}, {}
      for line in f:lines() do
        local k, v = line:match('^([%w_]+) = (.*)$')
        if k then saved_raw[k] = v end
        if line:match('^#') then saved_notes[#saved_notes + 1] = line end
        if k and type(defaults[k]) == 'number' then saved[k] = tonumber(v) or defaults[k]
        elseif k and type(defaults[k]) == 'boolean' then saved[k] = v == 'true'
        elseif k and defaults[k] ~= nil then saved[k] = v
        elseif k == 'quick' then saved_quick = v == 'true' end
      end
      f:close()
      defaults = saved
      break
    end
  end
  local o = common.parse(script, defaults, help or {}, argv)
  if saved_quick then
    o.quick = true
  elseif o.quick and defaults._quick then -- the script's smoke-test settings, under explicit ones
    local given = {}
    for _, a in ipairs(argv) do given[(a:match('^%-%-([%w_%-]+)$') or ''):gsub('-', '_')] = true end
    for k, v in pairs(defaults._quick) do if not given[k] then o[k] = v end end
  end
  -- --dist: MPI data parallelism (experiments/dist_run.lua); rank r draws noise from seed + r
  local rank = o.dist and require('experiments.dist_run').start(common, o) or 0
  if o.threads then
    -- ranks on one host share its cores: a default thread count is split among them
    local threads, per_host = o.threads, tonumber(os.getenv('OMPI_COMM_WORLD_LOCAL_SIZE') or '')
    local given = false
    for _, a in ipairs(argv) do given = given or a == '--threads' end
    if o.dist and per_host and per_host > 1 and not given then
      threads = math.max(1, math.floor(threads / per_host))
    end
    duel.set_num_threads(threads)
  end
  duel.manual_seed((o.seed or 1) + rank)
  local dir = o.resume
  if not dir then
    local base = ('%s/%s-%s'):format(o.out or 'runs', script, os.date('%Y%m%d-%H%M%S'))
    dir = base
    if rank == 0 then
      -- mkdir fails on a folder that exists, so taking the name is atomic: runs started in the
      -- same second (make results with RESULTS_JOBS) never share a folder
      mkdir_p(o.out or 'runs')
      local n = 1
      while ffi.C.mkdir(dir, tonumber('755', 8)) ~= 0 do
        if n == 1000 then
          error(('setup: cannot create a run folder in %s, got %s'):format(o.out or 'runs', dir), 0)
        end
        n = n + 1
        dir = base .. '-' .. n
      end
    end
  end
  if o.dist then dir = require('experiments.dist_run').run_dir(dir, o.resume) end
  local run = {dir = dir, script = script, opts = o, t0 = now(), series = {}}
  local lines = {}
  for _, k in ipairs(sorted_keys(o)) do lines[#lines + 1] = ('%s = %s'):format(k, tostring(o[k])) end
  print(('%s: %s'):format(script, dir))
  print(table.concat(lines, '\n'))
  io.flush() -- the folder line first: make results records it before the run ends
  if rank == 0 and not o.resume then
    local f = assert(io.open(dir .. '/options.txt', 'w'))
    f:write(table.concat(lines, '\n'), '\n')
    f:close()
  elseif rank == 0 and saved_raw then
    options_resumed(dir, saved_raw, saved_notes, lines)
  end
  return o, run
end

-- ---- progress and metrics ------------------------------------------------------------------------

local is_tty = ffi.C.isatty(1) == 1

local function fmt_time(s)
  if s ~= s or s == math.huge then return '?' end
  if s >= 3600 then return ('%dh%02dm'):format(s / 3600, (s % 3600) / 60) end
  if s >= 60 then return ('%dm%02ds'):format(s / 60, s % 60) end
  return ('%ds'):format(s)
end

-- log(run, step, total, values): metrics.jsonl line + the progress line
function common.log(run, step, total, values, every)
  every = every or 50
  local t = now()
  run.first_step = run.first_step or step
  run.first_t = run.first_t or t
  local done = step - run.first_step
  local rate = done > 0 and done / (t - run.first_t) or 0
  local eta = rate > 0 and (total - step) / rate or math.huge
  local rec = {step = step, time = t - run.t0}
  for k, v in pairs(values) do rec[k] = v; run.series[k] = run.series[k] or {}; table.insert(run.series[k], {step, v}) end
  local f = io.open(run.dir .. '/metrics.jsonl', 'a')
  if f then f:write(common.json(rec), '\n'); f:close() end
  local parts = {}
  for _, k in ipairs(sorted_keys(values)) do parts[#parts + 1] = ('%s %.4g'):format(k, values[k]) end
  local line = ('step %d/%d  %s  %.1f it/s  ETA %s'):format(step, total, table.concat(parts, '  '), rate, fmt_time(eta))
  if is_tty then
    if step == total or t - (run.last_draw or 0) > 0.1 then
      io.write('\r', line, '\27[K')
      if step == total then io.write('\n') end
      io.flush()
      run.last_draw = t
    end
  elseif step % every == 0 or step == total or step == 1 then
    print(line)
    io.flush() -- a pipe (make results, tee) sees progress as it happens
  end
end

-- ---- images -----------------------------------------------------------------------------------

-- a sample sheet of a batch in [-1,1] (or [0,1] with range={0,1})
function common.save_grid(path, batch, nrow, range)
  duel.no_grad(function()
    duel.image.save(path, duel.image.grid(batch:detach(), {nrow = nrow or 8, padding = 2, range = range or {-1, 1}}))
  end)
end

-- a line chart of every logged series (one colour each), drawn into an image by hand
local COLORS = {{0.12, 0.47, 0.71}, {1, 0.5, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
                {0.58, 0.4, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.5, 0.5, 0.5}}
function common.loss_curve(run, path)
  local W, H, pad = 640, 360, 20
  local keys = sorted_keys(run.series)
  if #keys == 0 then return end
  local px = {}
  for c = 1, 3 do px[c] = {} for y = 1, H do local row = {} for x = 1, W do row[x] = 1 end px[c][y] = row end end
  local lo, hi, smin, smax = math.huge, -math.huge, math.huge, -math.huge
  for _, k in ipairs(keys) do
    for _, p in ipairs(run.series[k]) do
      if p[2] == p[2] and math.abs(p[2]) < 1e30 then
        lo, hi = math.min(lo, p[2]), math.max(hi, p[2])
      end
      smin, smax = math.min(smin, p[1]), math.max(smax, p[1])
    end
  end
  if hi <= lo then hi = lo + 1 end
  if smax <= smin then smax = smin + 1 end
  local function plot(x, y, col)
    if x >= 1 and x <= W and y >= 1 and y <= H then for c = 1, 3 do px[c][y][x] = col[c] end end
  end
  for x = pad, W - pad do plot(x, H - pad, {0, 0, 0}) end
  for y = pad, H - pad do plot(pad, y, {0, 0, 0}) end
  for ki, k in ipairs(keys) do
    local col = COLORS[(ki - 1) % #COLORS + 1]
    local prev
    for _, p in ipairs(run.series[k]) do
      if p[2] == p[2] and math.abs(p[2]) < 1e30 then
        local x = math.floor(pad + (p[1] - smin) / (smax - smin) * (W - 2 * pad) + 0.5)
        local y = math.floor(H - pad - (p[2] - lo) / (hi - lo) * (H - 2 * pad) + 0.5)
        if prev then -- line from prev to (x, y)
          local n = math.max(math.abs(x - prev[1]), math.abs(y - prev[2]), 1)
          for s = 0, n do plot(math.floor(prev[1] + (x - prev[1]) * s / n + 0.5), math.floor(prev[2] + (y - prev[2]) * s / n + 0.5), col) end
        end
        prev = {x, y}
      end
    end
    for dx = 0, 12 do for dy = 0, 3 do plot(W - 150 + dx, pad + (ki - 1) * 12 + dy, col) end end
  end
  duel.image.save(path, duel.tensor(px))
  local f = io.open(path:gsub('%.png$', '.txt'), 'w')
  if f then
    for ki, k in ipairs(keys) do f:write(('colour %d: %s (range %.4g .. %.4g over all series)\n'):format(ki, k, lo, hi)) end
    f:close()
  end
end

-- a scatter plot of 2-D point sets drawn into a PNG: layers = {{points {N,2}, {r,g,b}, dot}, ...}
-- in drawing order, each point a square of `dot` pixels (3); view = {xmin, xmax, ymin, ymax}
function common.scatter(path, layers, view, size)
  size = size or 512
  local px = {}
  for c = 1, 3 do
    px[c] = {}
    for y = 1, size do local row = {} for x = 1, size do row[x] = 1 end px[c][y] = row end
  end
  local function put(x, y, col) for c = 1, 3 do px[c][y][x] = col[c] end end
  for _, i in ipairs{1, size} do for j = 1, size do put(i, j, {0, 0, 0}); put(j, i, {0, 0, 0}) end end
  for _, layer in ipairs(layers) do
    local dot = layer[3] or 3
    for _, p in ipairs(layer[1]:detach():totable()) do
      local cx = math.floor((p[1] - view[1]) / (view[2] - view[1]) * (size - 1) + 1.5)
      local cy = math.floor((view[4] - p[2]) / (view[4] - view[3]) * (size - 1) + 1.5)
      for dy = 0, dot - 1 do for dx = 0, dot - 1 do
        local x, y = cx + dx - math.floor(dot / 2), cy + dy - math.floor(dot / 2)
        if x >= 1 and x <= size and y >= 1 and y <= size then put(x, y, layer[2]) end
      end end
    end
  end
  duel.image.save(path, duel.tensor(px))
end

-- ---- checkpoints --------------------------------------------------------------------------------

-- state: a nested table of tensors, module state_dicts, optimizer state_dicts and plain values;
-- the RNG state and the step go with it so that --resume continues bit for bit
function common.save_checkpoint(run, state, step)
  local seed, offset = duel._core.rng_state()
  state.rng = {seed = seed, offset = offset}
  state.step = step
  duel.save(run.dir .. '/checkpoint.safetensors', state)
end

function common.load_checkpoint(run)
  local path = run.dir .. '/checkpoint.safetensors'
  local f = io.open(path, 'rb')
  if not f then error(('resume: no checkpoint in %s, got %s'):format(run.dir, path), 0) end
  f:close()
  local state = duel.load(path)
  duel._core.set_rng_state(state.rng.seed, state.rng.offset)
  -- metrics.jsonl keeps the lines up to the checkpoint's step (the steps after it are run again);
  -- they refill the loss curve's series, and the clock continues from the last line's time
  local mf, kept = io.open(run.dir .. '/metrics.jsonl', 'r'), {}
  if mf then
    for line in mf:lines() do
      local step = tonumber(line:match('"step":(%d+)'))
      if step and step <= state.step then
        kept[#kept + 1] = line
        if not line:find('"eval":', 1, true) then
          for k, v in line:gmatch('"([%w_]+)":(-?[%d%.eE%+%-]+)') do
            if k == 'time' then run.t0 = now() - tonumber(v)
            elseif k ~= 'step' then
              run.series[k] = run.series[k] or {}
              table.insert(run.series[k], {step, tonumber(v)})
            end
          end
        end
      end
    end
    mf:close()
    mf = assert(io.open(run.dir .. '/metrics.jsonl', 'w'))
    for _, line in ipairs(kept) do mf:write(line, '\n') end
    mf:close()
  end
  return state
end

-- stop the run on a NaN or Inf loss, naming the step and the loss (the last checkpoint stays)
function common.check_finite(step, values)
  for k, v in pairs(values) do
    if v ~= v or v == math.huge or v == -math.huge then
      error(('training: loss %s became %s at step %d; the last checkpoint is kept'):format(k, tostring(v), step), 0)
    end
  end
end

return common
