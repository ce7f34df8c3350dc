-- Makes `require 'duel'` work from the root of a checkout with no environment variables: the
-- checkout's lua/ tree goes first on the search paths, then the real module loads.
-- (An installed duel is found through LuaRocks' paths instead; this file is not installed.)
local root = (debug.getinfo(1, 'S').source:match('^@(.*)duel%.lua$') or './')
if root == '' then root = './' end
package.path = root .. 'lua/?.lua;' .. root .. 'lua/?/init.lua;' .. package.path
-- DUEL_CPATH picks another build of the core (make check uses the sanitizer build)
package.cpath = (os.getenv('DUEL_CPATH') or (root .. 'lua/?.so')) .. ';' .. package.cpath
return require 'duel.init'
