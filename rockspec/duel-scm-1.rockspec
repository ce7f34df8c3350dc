-- Development rockspec: `luarocks make` builds the working tree with the project's Makefile.
--   LUAROCKS_CONFIG=$PWD/tools/luarocks-luajit.lua luarocks make rockspec/duel-scm-1.rockspec
-- (add --local or --tree=DIR to choose where it installs). Without that config LuaRocks targets
-- PUC Lua 5.1 and stops at the "luajit >= 2.0" dependency, which is the intended guard.
rockspec_format = "3.0"
package = "duel"
version = "scm-1"
source = {
  -- `luarocks make` builds the current directory and never fetches this URL; it is a
  -- placeholder until the repository is published.
  url = "git+https://example.invalid/duel.git",
}
description = {
  summary = "float32 tensors with autograd of any order, for GAN research in LuaJIT",
  detailed = [[
A C11 core (tensors, broadcasting ops, OpenBLAS matmul, a reverse-mode autograd engine whose
backward rules are themselves differentiable) with a LuaJIT binding, so that gradient penalties
such as WGAN-GP and R1 are written directly in Lua scripts.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.2",
  "luajit >= 2.0", -- not ">= 2.1": Debian's 2.1.0-beta3 is a pre-release and sorts below 2.1
}
-- OpenBLAS is linked but not declared as an external dependency: its cblas.h lives in a
-- multiarch include directory that LuaRocks' header check does not search (gcc finds it).
-- oneDNN (libdnnl-dev) is optional: the Makefile uses it for convolutions and sgemm when its
-- header is found, and builds without it otherwise.
build = {
  type = "make",
  build_target = "module",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    BINDIR = "", -- the REPL goes in through install.bin, wrapped with the tree's package paths
  },
  install = {bin = {duel = "bin/duel"}},
}
