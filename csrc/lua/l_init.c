/* l_init.c -- luaopen_duel_core: the module table, the tensor metatable, the OOM hook.
 * Returns {<public functions>..., _methods = Tensor methods, _core = internals, _F = functional ops,
 * _nn = layer constructors, _optim = optimizers, _gan = GAN losses}; lua/duel/init.lua assembles
 * the public `duel` table from it. */
#include "l_util.h"

/* images and data (l_image.c, l_data.c) */
void l_register_image(lua_State *L, int t) L_WEAK;
void l_register_data(lua_State *L, int t) L_WEAK;

static lua_State *hook_L;
void l_register_serialize(lua_State *L, int core) L_WEAK; /* l_serialize.c: safetensors */
void l_register_interrupt(lua_State *L, int core) L_WEAK; /* l_interrupt.c: Ctrl-C in the REPL */

/* Allocation failed: collect unreachable tensors once, then the allocator retries. */
static void oom_collect(void *ud) {
    (void)ud;
    if (hook_L) lua_gc(hook_L, LUA_GCCOLLECT, 0);
}

int luaopen_duel_core(lua_State *L) {
    /* the main thread outlives every coroutine, so the hook may keep it */
    int is_main = lua_pushthread(L);
    lua_pop(L, 1);
    if (is_main || !hook_L) hook_L = L;
    duel_set_oom_hook(oom_collect, NULL);

    l_open_tensor(L);
    lua_newtable(L); /* module */
    int duel = lua_gettop(L);
    lua_newtable(L); /* methods */
    int methods = lua_gettop(L);
    lua_newtable(L); /* internals */
    int core = lua_gettop(L);
    l_register_tensor(L, duel, methods);
    l_register_ops(L, duel, methods);
    l_register_autograd(L, duel, methods, core);
    l_register_misc(L, duel, methods, core);
    if (l_register_serialize) l_register_serialize(L, core);
    if (l_register_interrupt) l_register_interrupt(L, core);
    lua_newtable(L);
    int F = lua_gettop(L);
    void (*families[])(lua_State *, int, int) = {l_register_activation, l_register_loss,
                                                 l_register_conv, l_register_norm,
                                                 l_register_resample};
    for (size_t i = 0; i < sizeof families / sizeof *families; i++)
        if (families[i]) families[i](L, F, methods);
    lua_setfield(L, duel, "_F");
    lua_newtable(L);
    if (l_register_nn) l_register_nn(L, lua_gettop(L));
    lua_setfield(L, duel, "_nn");
    lua_newtable(L);
    if (l_register_optim) l_register_optim(L, lua_gettop(L));
    lua_setfield(L, duel, "_optim");
    lua_newtable(L);
    if (l_register_image) l_register_image(L, lua_gettop(L));
    lua_setfield(L, duel, "_image");
    lua_newtable(L);
    if (l_register_data) l_register_data(L, lua_gettop(L));
    lua_setfield(L, duel, "_data");
    lua_newtable(L);
    if (l_register_gan) l_register_gan(L, lua_gettop(L));
    lua_setfield(L, duel, "_gan");
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_setfield(L, core, "metatable");
    lua_pushvalue(L, methods);
    lua_setfield(L, duel, "_methods");
    lua_pushvalue(L, core);
    lua_setfield(L, duel, "_core");
    lua_settop(L, duel);
    return 1;
}
