/* l_norm.c -- F.batch_norm, F.instance_norm, F.layer_norm and F.adain. */
#include "l_util.h"
#include <math.h>
#include <string.h>

static double opt_number(lua_State *L, int idx, const char *key, double dflt, const char *op) {
    if (!idx) return dflt;
    lua_getfield(L, idx, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number, got %s", op, key, l_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static float opt_eps(lua_State *L, int opts, const char *op) {
    return (float)opt_number(L, opts, "eps", 1e-5, op);
}

/* F.batch_norm(x, running_mean, running_var, weight, bias, {training, momentum, eps}) */
static int l_batch_norm(lua_State *L) {
    static const char *const keys[] = {"training", "momentum", "eps", NULL};
    const char *op = "batch_norm";
    duel_tensor *x = l_checktensor(L, 1, op);
    duel_tensor *rm = l_opttensor(L, 2, op), *rv = l_opttensor(L, 3, op);
    duel_tensor *w = l_opttensor(L, 4, op), *b = l_opttensor(L, 5, op);
    int o = l_check_options(L, 6, op, keys, "training, momentum or eps");
    int training = l_optfield_bool(L, o, "training", 1, op);
    float momentum = (float)opt_number(L, o, "momentum", 0.1, op), eps = opt_eps(L, o, op);
    l_newslot(L);
    return l_finish(L, duel_batch_norm(x, rm, rv, w, b, training, momentum, eps));
}

/* F.instance_norm(x, weight, bias, {eps}) */
static int l_instance_norm(lua_State *L) {
    static const char *const keys[] = {"eps", NULL};
    const char *op = "instance_norm";
    duel_tensor *x = l_checktensor(L, 1, op);
    duel_tensor *w = l_opttensor(L, 2, op), *b = l_opttensor(L, 3, op);
    float eps = opt_eps(L, l_check_options(L, 4, op, keys, "eps"), op);
    l_newslot(L);
    return l_finish(L, duel_instance_norm(x, w, b, eps));
}

/* F.layer_norm(x, shape, weight, bias, {eps}): shape ({C,H,W} or a number) must equal x's
 * trailing dims, as PyTorch's normalized_shape */
static int l_layer_norm(lua_State *L) {
    static const char *const keys[] = {"eps", NULL};
    const char *op = "layer_norm";
    duel_tensor *x = l_checktensor(L, 1, op);
    int64_t shape[DUEL_MAXDIM];
    int n;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        shape[0] = l_checkint(L, 2, op, "shape");
        n = 1;
    } else if (lua_type(L, 2) == LUA_TTABLE) {
        n = l_checkshape(L, 2, shape, op, 0);
    } else {
        return luaL_error(L, "%s: shape must be a table of sizes or a number, got %s", op,
                          lua_isnone(L, 2) ? "nil" : l_typename(L, 2));
    }
    if (n < 1) return luaL_error(L, "%s: shape must name at least one dimension, got {}", op);
    int same = n <= x->ndim;
    for (int i = 0; same && i < n; i++) same = shape[i] == x->shape[x->ndim - n + i];
    if (!same)
        return luaL_error(L, "%s: shape must equal the input's trailing dimensions (input %s), "
                             "got %s", op, duel_shape_str(x->shape, x->ndim),
                          duel_shape_str(shape, n));
    duel_tensor *w = l_opttensor(L, 3, op), *b = l_opttensor(L, 4, op);
    float eps = opt_eps(L, l_check_options(L, 5, op, keys, "eps"), op);
    l_newslot(L);
    return l_finish(L, duel_layer_norm(x, n, w, b, eps));
}

/* F.adain(x, style_scale, style_bias, {eps}): scale is used as given (not 1 + scale) */
static int l_adain(lua_State *L) {
    static const char *const keys[] = {"eps", NULL};
    const char *op = "adain";
    duel_tensor *x = l_checktensor(L, 1, op);
    duel_tensor *s = l_opttensor(L, 2, op), *b = l_opttensor(L, 3, op);
    float eps = opt_eps(L, l_check_options(L, 4, op, keys, "eps"), op);
    l_newslot(L);
    return l_finish(L, duel_adain(x, s, b, eps));
}

void l_register_norm(lua_State *L, int F, int methods) {
    (void)methods; /* functional only, as in PyTorch */
    static const luaL_Reg regs[] = {{"batch_norm", l_batch_norm},
                                    {"instance_norm", l_instance_norm},
                                    {"layer_norm", l_layer_norm},
                                    {"adain", l_adain},
                                    {NULL, NULL}};
    for (const luaL_Reg *r = regs; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, F, r->name);
    }
}
