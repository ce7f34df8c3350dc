/* l_activation.c -- F.leaky_relu, F.elu, F.softplus, F.softmax, F.log_softmax, F.dropout, and
 * the Tensor methods x:leaky_relu(s), x:softmax(d), x:log_softmax(d). */
#include "l_util.h"
#include <string.h>

static float optnum(lua_State *L, int idx, double dflt, const char *op, const char *what) {
    return lua_isnoneornil(L, idx) ? (float)dflt : (float)l_checknumber(L, idx, op, what);
}

/* F.leaky_relu(x, negative_slope=0.01) */
static int l_leaky_relu(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "leaky_relu");
    float slope = optnum(L, 2, 0.01, "leaky_relu", "negative_slope");
    l_newslot(L);
    return l_finish(L, duel_leaky_relu(x, slope));
}

/* F.elu(x, alpha=1) */
static int l_elu(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "elu");
    float alpha = optnum(L, 2, 1.0, "elu", "alpha");
    l_newslot(L);
    return l_finish(L, duel_elu(x, alpha));
}

/* a number field of the options table at idx; absent or nil -> dflt */
static float optfield_num(lua_State *L, int idx, const char *key, double dflt, const char *op) {
    lua_getfield(L, idx, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number, got %s", op, key, l_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return (float)v;
}

/* F.softplus(x, {beta=1, threshold=20}) or F.softplus(x, beta, threshold) */
static int l_softplus(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "softplus");
    float beta, threshold;
    if (lua_type(L, 2) == LUA_TTABLE) {
        static const char *const known[] = {"beta", "threshold", NULL};
        l_check_options(L, 2, "softplus", known, "beta, threshold");
        beta = optfield_num(L, 2, "beta", 1.0, "softplus");
        threshold = optfield_num(L, 2, "threshold", 20.0, "softplus");
    } else {
        if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TNUMBER)
            return luaL_error(L, "softplus: options must be a table or a number (beta), got %s",
                              l_typename(L, 2));
        beta = optnum(L, 2, 1.0, "softplus", "beta");
        threshold = optnum(L, 3, 20.0, "softplus", "threshold");
    }
    l_newslot(L);
    return l_finish(L, duel_softplus(x, beta, threshold));
}

/* F.softmax(x, d) / F.log_softmax(x, d): d 1-based, negative from the end, default the last */
static int l_softmax(lua_State *L) {
    int log = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *op = log ? "log_softmax" : "softmax";
    duel_tensor *x = l_checktensor(L, 1, op);
    int d = x->ndim - 1; /* -1 for a 0-dim x: the core reports it */
    if (!lua_isnoneornil(L, 2) && x->ndim > 0) d = l_checkdim(L, 2, x->ndim, op, 0);
    l_newslot(L);
    return l_finish(L, log ? duel_log_softmax(x, d) : duel_softmax(x, d));
}

/* F.dropout(x, p=0.5, training=true) */
static int l_dropout(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "dropout");
    double p = lua_isnoneornil(L, 2) ? 0.5 : l_checknumber(L, 2, "dropout", "probability");
    int training = l_optbool(L, 3, 1, "dropout", "training");
    if (!(p >= 0 && p <= 1)) /* checked here too: a double just above 1 may round to 1.0f */
        return luaL_error(L, "dropout: probability must be in [0, 1], got %s", lua_tostring(L, 2));
    l_newslot(L);
    return l_finish(L, duel_dropout(x, (float)p, training));
}

void l_register_activation(lua_State *L, int F, int methods) {
    static const luaL_Reg fns[] = {{"leaky_relu", l_leaky_relu}, {"elu", l_elu},
                                   {"softplus", l_softplus},     {"dropout", l_dropout},
                                   {NULL, NULL}};
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, F, r->name);
    }
    lua_getfield(L, F, "leaky_relu");
    lua_setfield(L, methods, "leaky_relu");
    const char *sm[] = {"softmax", "log_softmax"};
    for (int i = 0; i < 2; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_softmax, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, methods, sm[i]);
        lua_setfield(L, F, sm[i]);
    }
}
