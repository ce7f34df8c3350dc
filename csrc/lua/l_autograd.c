/* l_autograd.c -- backward, autograd.grad, requires_grad_, detach and the grad mode switch. */
#include "l_util.h"
#include <string.h>

/* A tensor or a table of tensors at idx -> a GC-owned array of borrowed pointers (pushed). */
static duel_tensor **tensor_list(lua_State *L, int idx, int *n, const char *op, const char *what,
                                 int allow_nil) {
    if (l_istensor(L, idx)) {
        duel_tensor **v = lua_newuserdata(L, sizeof *v);
        v[0] = l_checktensor(L, idx, op);
        *n = 1;
        return v;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "%s: %s must be a tensor or a table of tensors, got %s", op, what,
                   l_typename(L, idx));
    int k = (int)lua_objlen(L, idx);
    if (*n > k && allow_nil) k = *n; /* grad_outputs: one slot per output, nil allowed */
    if (k < 1) luaL_error(L, "%s: %s must not be empty, got an empty table", op, what);
    duel_tensor **v = lua_newuserdata(L, sizeof *v * (size_t)k);
    int top = lua_gettop(L);
    for (int i = 0; i < k; i++) {
        lua_rawgeti(L, idx, i + 1);
        if (allow_nil && lua_isnil(L, -1)) v[i] = NULL;
        else if (!l_istensor(L, -1))
            luaL_error(L, "%s: %s[%d] must be a duel.Tensor, got %s", op, what, i + 1,
                       l_typename(L, -1));
        else v[i] = *(duel_tensor **)lua_touserdata(L, -1);
        lua_settop(L, top);
    }
    *n = k;
    return v;
}

/* t:backward([gradient], [{retain_graph=, create_graph=}]) */
static int l_backward(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "backward"), *g = NULL;
    int opt = 0;
    if (l_istensor(L, 2)) {
        g = l_checktensor(L, 2, "backward");
        opt = lua_istable(L, 3) ? 3 : 0;
    } else if (lua_istable(L, 2)) opt = 2;
    else if (!lua_isnoneornil(L, 2))
        return luaL_error(L, "backward: expected a gradient tensor or an options table, got %s",
                          l_typename(L, 2));
    int create = opt ? l_optfield_bool(L, opt, "create_graph", 0, "backward") : 0;
    int retain = opt ? l_optfield_bool(L, opt, "retain_graph", create, "backward") : create;
    if (duel_backward(&t, g ? &g : NULL, 1, create, retain)) return l_error(L);
    l_gc_pressure(L);
    return 0;
}

/* autograd.grad(outputs, inputs, {grad_outputs=, create_graph=, retain_graph=, allow_unused=}) */
static int l_grad(lua_State *L) {
    lua_settop(L, 3);
    int nout = 0, nin = 0, ngo = 0;
    duel_tensor **outs = tensor_list(L, 1, &nout, "grad", "outputs", 0);
    duel_tensor **ins = tensor_list(L, 2, &nin, "grad", "inputs", 0);
    duel_tensor **gos = NULL;
    int opt = lua_isnil(L, 3) ? 0 : 3;
    if (opt && !lua_istable(L, 3))
        return luaL_error(L, "grad: options must be a table, got %s", l_typename(L, 3));
    if (opt) {
        lua_getfield(L, 3, "grad_outputs");
        int gi = lua_gettop(L);
        if (!lua_isnil(L, gi)) {
            ngo = nout;
            gos = tensor_list(L, gi, &ngo, "grad", "grad_outputs", 1);
            if (ngo != nout)
                return luaL_error(L, "grad: need one grad_output per output (%d), got %d", nout, ngo);
        }
    }
    int create = l_optfield_bool(L, opt, "create_graph", 0, "grad");
    int retain = l_optfield_bool(L, opt, "retain_graph", create, "grad");
    int unused = l_optfield_bool(L, opt, "allow_unused", 0, "grad");
    /* result slots first, so nothing leaks if a later step throws */
    lua_createtable(L, nin, 0);
    int res = lua_gettop(L);
    duel_tensor **grads = lua_newuserdata(L, sizeof *grads * (size_t)nin);
    if (duel_grad(outs, gos, nout, ins, nin, grads, create, retain, unused)) return l_error(L);
    for (int i = 0; i < nin; i++) {
        if (!grads[i]) continue;
        duel_tensor **slot = lua_newuserdata(L, sizeof *slot);
        *slot = grads[i];
        grads[i] = NULL;
        luaL_getmetatable(L, L_TENSOR_MT);
        lua_setmetatable(L, -2);
        lua_rawseti(L, res, i + 1);
    }
    lua_settop(L, res);
    l_gc_pressure(L);
    return 1;
}

static int l_requires_grad_(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "requires_grad_");
    int on = l_optbool(L, 2, 1, "requires_grad_", "flag");
    if (duel_set_requires_grad(t, on)) return l_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_detach(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "detach");
    l_newslot(L);
    return l_finish(L, duel_detach(t));
}

static int l_set_grad_enabled(lua_State *L) {
    if (lua_type(L, 1) != LUA_TBOOLEAN)
        return luaL_error(L, "set_grad_enabled: expected a boolean, got %s", l_typename(L, 1));
    lua_pushboolean(L, duel_set_grad_enabled(lua_toboolean(L, 1)));
    return 1;
}

static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, duel_grad_enabled());
    return 1;
}

void l_register_autograd(lua_State *L, int duel, int methods, int core) {
    static const luaL_Reg meths[] = {{"backward", l_backward}, {"requires_grad_", l_requires_grad_},
                                     {"detach", l_detach}, {NULL, NULL}};
    for (const luaL_Reg *r = meths; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, methods, r->name);
    }
    lua_pushcfunction(L, l_detach);
    lua_setfield(L, duel, "detach");
    lua_pushcfunction(L, l_grad);
    lua_setfield(L, core, "grad");
    lua_pushcfunction(L, l_set_grad_enabled);
    lua_setfield(L, core, "set_grad_enabled");
    lua_pushcfunction(L, l_is_grad_enabled);
    lua_setfield(L, duel, "is_grad_enabled");
}
