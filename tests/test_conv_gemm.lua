-- Every case of tests/test_conv.lua once more on im2col + OpenBLAS (duel.set_conv_backend('gemm'),
-- duel.set_sgemm_backend('openblas')): where the build has oneDNN, test_conv.lua itself runs on
-- it, so without this file that path would lose its naive-loop references.
local T = require 'tests.harness'
local duel = require 'duel'

local case = T.case
T.case = function(name, fn)
  case('gemm backend: ' .. name, function()
    local was, was_sgemm = duel.conv_backend(), duel.sgemm_backend()
    duel.set_conv_backend('gemm')
    duel.set_sgemm_backend('openblas')
    local ok, err = pcall(fn)
    duel.set_conv_backend(was)
    duel.set_sgemm_backend(was_sgemm)
    if not ok then error(err, 0) end
  end)
end
local ok, err = pcall(dofile, 'tests/test_conv.lua')
T.case = case
if not ok then error(err, 0) end
