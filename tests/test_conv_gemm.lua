-- Every case of tests/test_conv.lua once more on the im2col + OpenBLAS path
-- (duel.set_conv_backend('gemm')): where the build has oneDNN, test_conv.lua itself runs on it,
-- so without this file the GEMM path would lose its naive-loop references.
local T = require 'tests.harness'
local duel = require 'duel'

local case = T.case
T.case = function(name, fn)
  case('gemm backend: ' .. name, function()
    local was = duel.conv_backend()
    duel.set_conv_backend('gemm')
    local ok, err = pcall(fn)
    duel.set_conv_backend(was)
    if not ok then error(err, 0) end
  end)
end
local ok, err = pcall(dofile, 'tests/test_conv.lua')
T.case = case
if not ok then error(err, 0) end
