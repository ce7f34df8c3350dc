-- LuaRocks configuration for building duel against LuaJIT (Debian 12's luarocks runs under
-- PUC Lua 5.1 and defaults to lua5.1 headers and a lua5.1 interpreter). Use it with
--   LUAROCKS_CONFIG=$PWD/tools/luarocks-luajit.lua luarocks make rockspec/duel-scm-1.rockspec
-- lua_interpreter makes LuaRocks provide the virtual rock "luajit" (so the rockspec's
-- "luajit >= 2.0" dependency is met offline) and makes installed bin/ wrappers exec luajit;
-- LUA_INCDIR must be set by hand because LuaRocks finds include/lua5.1 before include/luajit-2.1.
lua_interpreter = "luajit"
variables = {
  LUA_INCDIR = "/usr/include/luajit-2.1",
}
