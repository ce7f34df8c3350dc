/* l_ops.c -- tensor math as duel.<op>(x, ...) and x:<op>(...): unary maps, comparisons, views,
 * reductions, joining, indexing and matmul. Dimensions arrive 1-based and leave 0-based here. */
#include "l_util.h"
#include <math.h>
#include <string.h>

/* ---- unary maps ------------------------------------------------------------------------------ */

typedef duel_tensor *(*unary_fn)(duel_tensor *);
static const struct {
    const char *name;
    unary_fn fn;
} unaries[] = {{"exp", duel_exp},   {"log", duel_log},         {"sqrt", duel_sqrt},
               {"abs", duel_abs},   {"tanh", duel_tanh},       {"sigmoid", duel_sigmoid},
               {"relu", duel_relu}, {"sign", duel_sign},       {"sin", duel_sin},
               {"cos", duel_cos},   {"contiguous", duel_contiguous}, {"clone", duel_clone}};

static int l_unary(lua_State *L) {
    int i = (int)lua_tointeger(L, lua_upvalueindex(1));
    duel_tensor *x = l_checktensor(L, 1, unaries[i].name);
    l_newslot(L);
    return l_finish(L, unaries[i].fn(x));
}

static int l_pow(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "pow");
    l_newslot(L);
    if (lua_type(L, 2) == LUA_TNUMBER) return l_finish(L, duel_pow(x, (float)lua_tonumber(L, 2)));
    return l_finish(L, duel_pow_tensor(x, l_checktensor(L, 2, "pow")));
}

static float optbound(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return NAN;
    double v = l_checknumber(L, idx, "clamp", "bound");
    if (isnan(v)) luaL_error(L, "clamp: bounds must not be NaN (use nil for none), got nan");
    return (float)v;
}

static int l_clamp(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "clamp");
    float lo = optbound(L, 2), hi = optbound(L, 3);
    l_newslot(L);
    return l_finish(L, duel_clamp(x, lo, hi));
}

/* ---- comparisons and where --------------------------------------------------------------------- */

typedef duel_tensor *(*binary_fn)(duel_tensor *, duel_tensor *);
static const struct {
    const char *name;
    binary_fn fn;
} compares[] = {{"gt", duel_gt}, {"lt", duel_lt}, {"ge", duel_ge}, {"le", duel_le}, {"eq", duel_eq}};

static int l_compare(lua_State *L) {
    int i = (int)lua_tointeger(L, lua_upvalueindex(1));
    lua_settop(L, 2);
    duel_tensor *a = l_totensor(L, 1, compares[i].name);
    duel_tensor *b = l_totensor(L, 2, compares[i].name);
    l_newslot(L);
    return l_finish(L, compares[i].fn(a, b));
}

static int l_where(lua_State *L) {
    lua_settop(L, 3);
    duel_tensor *c = l_checktensor(L, 1, "where");
    duel_tensor *a = l_totensor(L, 2, "where");
    duel_tensor *b = l_totensor(L, 3, "where");
    l_newslot(L);
    return l_finish(L, duel_where(c, a, b));
}

/* ---- views --------------------------------------------------------------------------------- */

static int l_view(lua_State *L) {
    int reshape = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *op = reshape ? "reshape" : "view";
    duel_tensor *x = l_checktensor(L, 1, op);
    int64_t shape[DUEL_MAXDIM];
    int nd = l_checkshape(L, 2, shape, op, 1);
    l_newslot(L);
    return l_finish(L, reshape ? duel_reshape(x, shape, nd) : duel_view(x, shape, nd));
}

static int l_expand(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "expand");
    int64_t shape[DUEL_MAXDIM];
    int nd;
    if (l_istensor(L, 2)) { /* expand(other): other's shape, as expand_as */
        duel_tensor *o = l_checktensor(L, 2, "expand");
        nd = o->ndim;
        memcpy(shape, o->shape, sizeof shape);
    } else {
        nd = l_checkshape(L, 2, shape, "expand", 1);
    }
    l_newslot(L);
    return l_finish(L, duel_expand(x, shape, nd));
}

static int l_transpose(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "transpose");
    int d0 = l_checkdim(L, 2, x->ndim, "transpose", 0), d1 = l_checkdim(L, 3, x->ndim, "transpose", 0);
    l_newslot(L);
    return l_finish(L, duel_transpose(x, d0, d1));
}

static int l_t(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "t");
    if (x->ndim != 2)
        return luaL_error(L, "t: expects a 2-D tensor (use transpose or permute), got %s",
                          duel_shape_str(x->shape, x->ndim));
    l_newslot(L);
    return l_finish(L, duel_transpose(x, 0, 1));
}

static int l_permute(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "permute");
    int tbl = lua_type(L, 2) == LUA_TTABLE;
    int n = tbl ? (int)lua_objlen(L, 2) : lua_gettop(L) - 1;
    if (n != x->ndim)
        return luaL_error(L, "permute: need one entry per dimension of %s, got %d entries",
                          duel_shape_str(x->shape, x->ndim), n);
    int perm[DUEL_MAXDIM];
    for (int i = 0; i < n; i++) { /* range here, repeats in duel_permute */
        int at = 2 + i;
        if (tbl) {
            lua_rawgeti(L, 2, i + 1);
            at = lua_gettop(L);
        }
        int64_t v = l_checkint(L, at, "permute", "entry");
        if (v < 1 || v > n)
            return luaL_error(L, "permute: entries must be a permutation of 1..%d, got %s at "
                                 "position %d", n, lua_tostring(L, at), i + 1);
        perm[i] = (int)v - 1;
        if (tbl) lua_pop(L, 1);
    }
    l_newslot(L);
    return l_finish(L, duel_permute(x, perm, n));
}

static int l_narrow(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "narrow");
    int d = l_checkdim(L, 2, x->ndim, "narrow", 0);
    int64_t start = l_checkint(L, 3, "narrow", "start"), len = l_checkint(L, 4, "narrow", "length");
    l_newslot(L);
    return l_finish(L, duel_narrow(x, d, start - 1, len));
}

static int l_select(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "select");
    int d = l_checkdim(L, 2, x->ndim, "select", 0);
    int64_t i = l_checkint(L, 3, "select", "index");
    if (i < 0 && i + x->shape[d] >= 0) i += x->shape[d] + 1; /* -1 = last; else report as given */
    l_newslot(L);
    return l_finish(L, duel_select(x, d, i - 1));
}

static int l_unsqueeze(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "unsqueeze");
    int d = l_checkdim(L, 2, x->ndim, "unsqueeze", 1);
    l_newslot(L);
    return l_finish(L, duel_unsqueeze(x, d));
}

static int l_squeeze(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "squeeze");
    int d = l_optdim(L, 2, x->ndim, "squeeze");
    l_newslot(L);
    return l_finish(L, duel_squeeze(x, d));
}

/* ---- reductions ------------------------------------------------------------------------------ */

static int l_sum_mean(lua_State *L) {
    int mean = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *op = mean ? "mean" : "sum";
    duel_tensor *x = l_checktensor(L, 1, op);
    int d = l_optdim(L, 2, x->ndim, op), keep = l_optbool(L, 3, 0, op, "keepdim");
    l_newslot(L);
    if (d < 0) return l_finish(L, mean ? duel_mean(x) : duel_sum(x));
    return l_finish(L, mean ? duel_mean_dim(x, d, keep) : duel_sum_dim(x, d, keep));
}

/* max() -> 0-dim max; max(d [, keepdim]) -> values, indices (1-based) */
static int l_extreme(lua_State *L) {
    int is_min = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *op = is_min ? "min" : "max";
    duel_tensor *x = l_checktensor(L, 1, op);
    if (lua_isnoneornil(L, 2)) {
        l_newslot(L);
        return l_finish(L, is_min ? duel_min(x) : duel_max(x));
    }
    int d = l_checkdim(L, 2, x->ndim, op, 0), keep = l_optbool(L, 3, 0, op, "keepdim");
    l_newslot(L);
    l_newslot(L);
    duel_tensor *idx = NULL;
    duel_tensor *v = is_min ? duel_min_dim(x, d, keep, &idx) : duel_max_dim(x, d, keep, &idx);
    if (!v) return l_error(L);
    *(duel_tensor **)lua_touserdata(L, -2) = v;
    *(duel_tensor **)lua_touserdata(L, -1) = idx;
    l_gc_pressure(L);
    return 2;
}

static int l_argmax(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "argmax");
    int d = l_optdim(L, 2, x->ndim, "argmax"), keep = l_optbool(L, 3, 0, "argmax", "keepdim");
    l_newslot(L);
    return l_finish(L, duel_argmax(x, d, keep));
}

static int l_var_std(lua_State *L) {
    int is_std = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *op = is_std ? "std" : "var";
    duel_tensor *x = l_checktensor(L, 1, op);
    int d = l_optdim(L, 2, x->ndim, op), keep = l_optbool(L, 3, 0, op, "keepdim");
    int unbiased = l_optbool(L, 4, 1, op, "unbiased");
    l_newslot(L);
    return l_finish(L, is_std ? duel_std(x, d, keep, unbiased) : duel_var(x, d, keep, unbiased));
}

static int l_logsumexp(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "logsumexp");
    int d = l_optdim(L, 2, x->ndim, "logsumexp"), keep = l_optbool(L, 3, 0, "logsumexp", "keepdim");
    l_newslot(L);
    return l_finish(L, duel_logsumexp(x, d, keep));
}

/* norm(p=2, d, keepdim) */
static int l_norm(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "norm");
    float p = lua_isnoneornil(L, 2) ? 2.0f : (float)l_checknumber(L, 2, "norm", "p");
    int d = l_optdim(L, 3, x->ndim, "norm"), keep = l_optbool(L, 4, 0, "norm", "keepdim");
    l_newslot(L);
    return l_finish(L, duel_norm(x, p, d, keep));
}

/* ---- joining, indexing, matmul ---------------------------------------------------------------- */

static int l_join(lua_State *L) {
    int stack = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *op = stack ? "stack" : "cat";
    lua_settop(L, 2); /* the scratch userdata pushed below must not be taken for the dim */
    if (lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "%s: expected a table of tensors, got %s", op, l_typename(L, 1));
    int n = (int)lua_objlen(L, 1);
    if (n < 1) return luaL_error(L, "%s: need at least one tensor, got an empty table", op);
    duel_tensor **xs = lua_newuserdata(L, sizeof(duel_tensor *) * (size_t)n); /* GC-owned scratch */
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        if (!l_istensor(L, -1))
            return luaL_error(L, "%s: element %d must be a duel.Tensor, got %s", op, i + 1,
                              l_typename(L, -1));
        xs[i] = *(duel_tensor **)lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    int d = lua_isnoneornil(L, 2) ? 0 : l_checkdim(L, 2, xs[0]->ndim, op, stack);
    l_newslot(L);
    return l_finish(L, stack ? duel_stack(xs, n, d) : duel_cat(xs, n, d));
}

static int l_index_select(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "index_select");
    int d = l_checkdim(L, 2, x->ndim, "index_select", 0);
    duel_tensor *idx = l_checktensor(L, 3, "index_select");
    l_newslot(L);
    return l_finish(L, duel_index_select(x, d, idx));
}

static int l_matmul(lua_State *L) {
    duel_tensor *a = l_checktensor(L, 1, "matmul"), *b = l_checktensor(L, 2, "matmul");
    l_newslot(L);
    return l_finish(L, duel_matmul(a, b));
}

static void set_both(lua_State *L, int duel, int methods, const char *name) {
    lua_pushvalue(L, -1);
    lua_setfield(L, methods, name);
    lua_setfield(L, duel, name);
}

static void closure(lua_State *L, lua_CFunction f, int up) {
    lua_pushinteger(L, up);
    lua_pushcclosure(L, f, 1);
}

void l_register_ops(lua_State *L, int duel, int methods) {
    for (int i = 0; i < (int)(sizeof unaries / sizeof *unaries); i++) {
        closure(L, l_unary, i);
        set_both(L, duel, methods, unaries[i].name);
    }
    for (int i = 0; i < 5; i++) {
        closure(L, l_compare, i);
        set_both(L, duel, methods, compares[i].name);
    }
    const char *two[][2] = {{"view", "reshape"}, {"sum", "mean"}, {"max", "min"},
                            {"var", "std"},      {"cat", "stack"}};
    lua_CFunction twof[] = {l_view, l_sum_mean, l_extreme, l_var_std, l_join};
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < 2; i++) {
            closure(L, twof[k], i);
            set_both(L, duel, methods, two[k][i]);
        }
    static const luaL_Reg regs[] = {
        {"pow", l_pow},           {"clamp", l_clamp},         {"where", l_where},
        {"expand", l_expand},     {"transpose", l_transpose}, {"t", l_t},
        {"permute", l_permute},   {"narrow", l_narrow},       {"select", l_select},
        {"unsqueeze", l_unsqueeze}, {"squeeze", l_squeeze},   {"argmax", l_argmax},
        {"logsumexp", l_logsumexp}, {"norm", l_norm},         {"index_select", l_index_select},
        {"matmul", l_matmul},     {NULL, NULL}};
    for (const luaL_Reg *r = regs; r->name; r++) {
        lua_pushcfunction(L, r->func);
        set_both(L, duel, methods, r->name);
    }
}
