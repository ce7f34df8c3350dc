-- duel: float32 tensors with autograd of any order, for GAN research in LuaJIT.
-- This file assembles the public table from the C core (duel.core) and the Lua modules.
-- libgomp's idle workers spin for a long while after each parallel region by default, and on a
-- small machine they then fight OpenBLAS's threads for the cores (measured: a 256x256 sgemm right
-- after an OpenMP kernel ran 6x slower); OpenBLAS's own idle workers likewise poll with
-- sched_yield for up to 2^28 cycles after each sgemm. So, unless the user chose a policy, idle
-- OpenMP workers sleep at once (GOMP_SPINCOUNT=0, what OMP_WAIT_POLICY=PASSIVE does) and
-- OpenBLAS's after 2^4 cycles; on 2 cores this took a toy2d step from 26 to 9 ms (bench/README.md).
-- Both libraries read their environment when loaded, so this runs before the core comes in.
local ffi = require 'ffi'
if pcall(ffi.cdef, 'int setenv(const char *name, const char *value, int overwrite);') then
  if not os.getenv('OMP_WAIT_POLICY') and not os.getenv('GOMP_SPINCOUNT') then
    ffi.C.setenv('GOMP_SPINCOUNT', '0', 0)
  end
  ffi.C.setenv('OPENBLAS_THREAD_TIMEOUT', '4', 0)
end

-- The threads the libraries start as the core loads (OpenBLAS's pool) hold asynchronous signals
-- back for good, as OpenMP's workers and the DataLoader's do (csrc/parallel.c): a signal for the
-- process then waits for the main thread, which holds signals only while oneDNN runs (its JIT
-- sgemm points rsp into the heap: docs/performance.md) and takes them right after.
local core
do
  local ok = pcall(ffi.cdef, [[
    int sigfillset(void *set); int sigdelset(void *set, int sig);
    int pthread_sigmask(int how, const void *set, void *old);]])
  local set, old = ffi.new('uint8_t[128]'), ffi.new('uint8_t[128]')
  if ok then
    ffi.C.sigfillset(set)
    for _, sig in ipairs({4, 5, 7, 8, 11, 31}) do ffi.C.sigdelset(set, sig) end -- the faults
    ok = ffi.C.pthread_sigmask(0, set, old) == 0 -- SIG_BLOCK
  end
  local loaded, res = pcall(require, 'duel.core')
  if ok then ffi.C.pthread_sigmask(2, old, nil) end -- SIG_SETMASK, also when loading failed
  if not loaded then error(res, 0) end
  core = res
end

local duel = {}
for k, v in pairs(core) do
  if k:sub(1, 1) ~= '_' then duel[k] = v end
end
duel._core = core._core
duel._methods = core._methods
local methods, mt = core._methods, core._core.metatable

function duel.is_tensor(x)
  return type(x) == 'userdata' and getmetatable(x) == mt
end

-- Run fn with gradient recording off; the previous mode comes back even if fn raises.
function duel.no_grad(fn, ...)
  local prev = core._core.set_grad_enabled(false)
  local res = {pcall(fn, ...)}
  core._core.set_grad_enabled(prev)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

function duel.enable_grad(fn, ...)
  local prev = core._core.set_grad_enabled(true)
  local res = {pcall(fn, ...)}
  core._core.set_grad_enabled(prev)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- x:split(n, d): pieces of size n along d (the last may be smaller), as narrow views
function methods.split(x, n, d)
  d = d or 1
  if type(n) ~= 'number' or n < 1 or n ~= math.floor(n) then
    error(('split: piece size must be a positive whole number, got %s'):format(tostring(n)), 0)
  end
  local size = x:size(d)
  local out = {}
  local i = 1
  while i <= size do
    local len = math.min(n, size - i + 1)
    out[#out + 1] = x:narrow(d, i, len)
    i = i + n
  end
  return out
end
duel.split = methods.split

function methods.expand_as(x, other) return x:expand(other) end
function methods.view_as(x, other) return x:view(other:size()) end
function methods.zeros_like(x) return duel.zeros(x:size()) end
function methods.ones_like(x) return duel.ones(x:size()) end
function duel.zeros_like(x) return duel.zeros(x:size()) end
function duel.ones_like(x) return duel.ones(x:size()) end
function duel.randn_like(x) return duel.randn(x:size()) end
function duel.rand_like(x) return duel.rand(x:size()) end

mt.__tostring = require('duel.format').tensor
mt.__concat = function(a, b) return tostring(a) .. tostring(b) end

duel.autograd = require 'duel.autograd'
duel.F = require 'duel.F'
duel.optim = require 'duel.optim'
duel.init = require 'duel.init_weights'
duel.nn = require 'duel.nn'
duel.image = require 'duel.image'
duel.data = require 'duel.data'
duel.gan = require 'duel.gan'
duel.metrics = require 'duel.metrics'
local checkpoint = require 'duel.checkpoint' -- safetensors checkpoints and the RNG state
duel.save, duel.load = checkpoint.save, checkpoint.load
duel.get_rng_state, duel.set_rng_state = checkpoint.get_rng_state, checkpoint.set_rng_state

return duel
