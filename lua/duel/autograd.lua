-- duel.autograd: grad from the C engine, plus gradcheck and gradgradcheck by central
-- differences. Tensors are float32, so eps is 1e-3 and tolerances are float32-sized; all
-- sums are taken in Lua doubles.
local core = require 'duel.core'
local C = core._core

local M = {grad = C.grad}

function M.backward(t, grad, opts) return t:backward(grad, opts) end

local function is_tensor(x) return type(x) == 'userdata' and getmetatable(x) == C.metatable end

local function as_list(out)
  if is_tensor(out) then return {out} end
  if type(out) ~= 'table' then
    error(('gradcheck: the function must return a tensor or a table of tensors, got %s'):format(type(out)), 0)
  end
  return out
end

local function call(fn, inputs)
  return as_list(fn(unpack(inputs, 1, #inputs)))
end

-- flat list of every output element as numbers
local function flatten(outs)
  local v = {}
  for _, o in ipairs(outs) do
    for i = 1, o:numel() do v[#v + 1] = C.flat_get(o, i) end
  end
  return v
end

-- analytic Jacobian: J[j][c] for output element j (over all outputs) and input column c
local function analytic(fn, inputs)
  local outs = call(fn, inputs)
  local J, row = {}, 0
  local live = {}
  for k, o in ipairs(outs) do live[k] = o.requires_grad end
  for k, o in ipairs(outs) do
    for j = 1, o:numel() do
      row = row + 1
      J[row] = {}
      if live[k] then
        local gos, os = {}, {}
        for k2, o2 in ipairs(outs) do
          if live[k2] then
            os[#os + 1] = o2
            local g = core.zeros(o2:size())
            if k2 == k then C.flat_set(g, j, 1) end
            gos[#gos + 1] = g
          end
        end
        local gs = C.grad(os, inputs, {grad_outputs = gos, retain_graph = true, allow_unused = true})
        local col = 0
        for i, x in ipairs(inputs) do
          for e = 1, x:numel() do
            col = col + 1
            J[row][col] = gs[i] and C.flat_get(gs[i], e) or 0
          end
        end
      end
    end
  end
  return J, row
end

local function numeric(fn, inputs, eps)
  local J, col = {}, 0
  for _, x in ipairs(inputs) do
    for e = 1, x:numel() do
      col = col + 1
      local v = C.flat_get(x, e)
      C.flat_set(x, e, v + eps)
      local plus = flatten(call(fn, inputs))
      C.flat_set(x, e, v - eps)
      local minus = flatten(call(fn, inputs))
      C.flat_set(x, e, v)
      for j = 1, #plus do
        J[j] = J[j] or {}
        J[j][col] = (plus[j] - minus[j]) / (2 * eps)
      end
    end
  end
  return J
end

-- gradcheck(fn, {inputs}, {eps=1e-3, atol=1e-2, rtol=1e-2, raise=true})
-- Inputs must be leaf tensors with requires_grad. Also checks that backward is deterministic.
function M.gradcheck(fn, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-3, opts.atol or 1e-2, opts.rtol or 1e-2
  local raise = opts.raise ~= false
  for i, x in ipairs(inputs) do
    if not is_tensor(x) or not x.requires_grad then
      error(('gradcheck: input %d must be a tensor with requires_grad, got %s'):format(i,
        is_tensor(x) and 'one without requires_grad' or type(x)), 0)
    end
  end
  local Ja, nrows = analytic(fn, inputs)
  local Ja2 = analytic(fn, inputs)
  local Jn = numeric(fn, inputs, eps)
  local function fail(msg)
    if raise then error('gradcheck: ' .. msg, 0) end
    return false, msg
  end
  for j = 1, nrows do
    for c, a in pairs(Ja[j]) do
      if a ~= Ja2[j][c] and not (a ~= a and Ja2[j][c] ~= Ja2[j][c]) then
        return fail(('backward is not deterministic at output element %d, input element %d, got %.8g then %.8g'):format(j, c, a, Ja2[j][c]))
      end
    end
    for c, n in pairs(Jn[j] or {}) do
      local a = Ja[j][c] or 0
      if not (math.abs(a - n) <= atol + rtol * math.abs(n)) then
        return fail(('Jacobian mismatch at output element %d, input element %d: analytic %.6g, numeric %.6g'):format(j, c, a, n))
      end
    end
  end
  return true
end

-- gradgradcheck: gradcheck of (inputs, v) -> grad(fn(inputs), inputs, v, create_graph=true),
-- i.e. second derivatives, with fixed random grad_outputs v. The global RNG is left as found.
function M.gradgradcheck(fn, inputs, opts)
  local seed, off = C.rng_state()
  core.manual_seed(12345)
  local outs = call(fn, inputs)
  local vs = {}
  for k, o in ipairs(outs) do vs[k] = core.randn(o:size()):requires_grad_() end
  C.set_rng_state(seed, off)
  local n = #inputs
  local function G(...)
    local args = {...}
    local ins, v = {}, {}
    for i = 1, n do ins[i] = args[i] end
    for k = 1, #vs do v[k] = args[n + k] end
    local o = call(fn, ins)
    local os, gv = {}, {}
    for k = 1, #o do
      if o[k].requires_grad then os[#os + 1] = o[k]; gv[#gv + 1] = v[k] end
    end
    if #os == 0 then return {} end
    local gs = C.grad(os, ins, {grad_outputs = gv, create_graph = true, allow_unused = true})
    local r = {}
    for i = 1, n do if gs[i] then r[#r + 1] = gs[i] end end
    return r
  end
  local all = {}
  for i = 1, n do all[i] = inputs[i] end
  for k = 1, #vs do all[n + k] = vs[k] end
  return M.gradcheck(G, all, opts)
end

return M
