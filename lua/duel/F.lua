-- duel.F: the functional ops. The core's elementwise activations are here from the start;
-- layers (conv, norms, losses) join as their C kernels land.
local core = require 'duel.core'

local F = {}
F.relu = core.relu
F.tanh = core.tanh
F.sigmoid = core.sigmoid
for k, v in pairs(core._F) do F[k] = v end

return F
