-- Where splitting a loop over the OpenMP threads starts to pay: microseconds per call of a cheap
-- elementwise op (add, relu), an Adam step, rand and randn at sizes around the core's thresholds
-- (DUEL_PAR_MIN for loops of a few flops an element, DUEL_PAR_MIN_HEAVY for normal draws and
-- transcendental maps; csrc/duel_impl.h). The default build runs each loop the way its
-- threshold says; to see what splitting every loop would cost, build one with the thresholds
-- at 1 and run both:
--   make all BUILD=build/par1 MODULE=build/par1/duel/core.so \
--     OPTFLAGS="-O3 -march=native -fno-trapping-math -fno-math-errno -DDUEL_PAR_MIN=1 -DDUEL_PAR_MIN_HEAVY=1"
--   luajit bench/par_min.lua 2; DUEL_CPATH='build/par1/?.so;' luajit bench/par_min.lua 2
-- Usage: luajit bench/par_min.lua [threads (2)]   (best of 7 batches of 200 calls)
local duel = require 'duel'
duel.set_num_threads(tonumber(arg[1]) or 2)
print(('par_min: %d thread(s); microseconds per call, best of 7 batches of 200'):format(
  duel.get_num_threads()))

local function best(f)
  for _ = 1, 20 do f() end
  local t = math.huge
  for _ = 1, 7 do
    local t0 = duel.clock()
    for _ = 1, 200 do f() end
    t = math.min(t, (duel.clock() - t0) / 200)
  end
  return t * 1e6
end

print(('%-8s %10s %10s %10s %10s %10s'):format('elements', 'add', 'relu', 'Adam step', 'rand',
  'randn'))
for _, n in ipairs{16384, 32768, 65536, 131072, 262144, 524288} do
  local x = duel.randn(n)
  local lin = duel.nn.Linear(n / 128, 128, {bias = false})
  local opt = duel.optim.Adam(lin, {lr = 1e-4})
  lin(duel.randn(4, n / 128)):sum():backward()
  print(('%-8d %10.1f %10.1f %10.1f %10.1f %10.1f'):format(n, best(function() return x + x end),
    best(function() return duel.relu(x) end), best(function() opt:step() end),
    best(function() return duel.rand(n) end), best(function() return duel.randn(n) end)))
end
