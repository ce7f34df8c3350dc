/* l_tensor.c -- the "duel.Tensor" metatable (gc, index, newindex, arithmetic), creation
 * functions, element access and in-place writes. */
#include "l_util.h"
#include <math.h>
#include <string.h>

static int l_gc(lua_State *L) {
    duel_tensor **slot = lua_touserdata(L, 1);
    if (slot && *slot) {
        duel_release(*slot);
        *slot = NULL;
    }
    return 0;
}

/* methods first (upvalue 1), then the fields grad, requires_grad, is_leaf, grad_fn; a number
 * key selects along dimension 1 (a plain number for 1-D tensors), as in Torch7 */
static int l_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        if (!lua_isnil(L, -1)) return 1;
        duel_tensor *t = l_checktensor(L, 1, "index");
        const char *k = lua_tostring(L, 2);
        if (!strcmp(k, "grad")) {
            if (!t->grad) return lua_pushnil(L), 1;
            duel_retain(t->grad);
            l_push(L, t->grad);
        } else if (!strcmp(k, "requires_grad")) lua_pushboolean(L, t->requires_grad);
        else if (!strcmp(k, "is_leaf")) lua_pushboolean(L, t->op == NULL);
        else if (!strcmp(k, "grad_fn")) {
            if (t->op) lua_pushstring(L, t->op->name);
            else lua_pushnil(L);
        } else lua_pushnil(L);
        return 1;
    }
    duel_tensor *t = l_checktensor(L, 1, "index");
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (t->ndim == 0) return luaL_error(L, "index: cannot index a 0-dim tensor, got %s", lua_tostring(L, 2));
        int64_t i = l_checkint(L, 2, "index", "index");
        if (i < 1 || i > t->shape[0])
            return luaL_error(L, "index: index out of range for dimension 1 of size %lld, got %lld",
                              (long long)t->shape[0], (long long)i);
        if (t->ndim == 1) {
            lua_pushnumber(L, t->data[(i - 1) * t->stride[0]]);
            return 1;
        }
        l_newslot(L);
        return l_finish(L, duel_select(t, 0, i - 1));
    }
    return luaL_error(L, "index: tensors are indexed by method names or numbers, got %s",
                      l_typename(L, 2));
}

static int l_newindex(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "newindex");
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (k && !strcmp(k, "grad")) {
        if (!lua_isnil(L, 3) && !l_istensor(L, 3))
            return luaL_error(L, "grad: must be a duel.Tensor or nil, got %s", l_typename(L, 3));
        duel_tensor *g = l_opttensor(L, 3, "grad");
        if (g && !(g->ndim == t->ndim && !memcmp(g->shape, t->shape, sizeof(int64_t) * t->ndim)))
            return luaL_error(L, "grad: must have the tensor's shape %s, got %s",
                              duel_shape_str(t->shape, t->ndim), duel_shape_str(g->shape, g->ndim));
        if (g) duel_retain(g);
        duel_release(t->grad);
        t->grad = g;
        return 0;
    }
    if (k && !strcmp(k, "requires_grad")) {
        if (duel_set_requires_grad(t, lua_toboolean(L, 3))) return l_error(L);
        return 0;
    }
    return luaL_error(L, "newindex: only 'grad' and 'requires_grad' can be set on a tensor, got '%s'",
                      k ? k : l_typename(L, 2));
}

static int l_eq(lua_State *L) {
    duel_tensor **a = lua_touserdata(L, 1), **b = lua_touserdata(L, 2);
    lua_pushboolean(L, a && b && *a == *b);
    return 1;
}

static int l_len(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "len");
    lua_pushnumber(L, t->ndim ? (lua_Number)t->shape[0] : 1);
    return 1;
}

/* ---- arithmetic (numbers mix in on either side) ------------------------------------------------ */

enum { A_ADD, A_SUB, A_MUL, A_DIV, A_POW };
static const char *arith_names[] = {"add", "sub", "mul", "div", "pow"};

static duel_tensor *arith(lua_State *L, int op) {
    const char *name = arith_names[op];
    int na = lua_type(L, 1) == LUA_TNUMBER, nb = lua_type(L, 2) == LUA_TNUMBER;
    if (nb) {
        duel_tensor *a = l_checktensor(L, 1, name);
        float s = (float)lua_tonumber(L, 2);
        switch (op) {
        case A_ADD: return duel_add_scalar(a, s);
        case A_SUB: return duel_add_scalar(a, -s);
        case A_MUL: return duel_mul_scalar(a, s);
        case A_DIV: {
            duel_tensor *c = duel_scalar(s), *y = c ? duel_div(a, c) : NULL;
            duel_release(c);
            return y;
        }
        default: return duel_pow(a, s);
        }
    }
    if (na) {
        duel_tensor *b = l_checktensor(L, 2, name);
        float s = (float)lua_tonumber(L, 1);
        if (op == A_ADD) return duel_add_scalar(b, s);
        if (op == A_MUL) return duel_mul_scalar(b, s);
        if (op == A_SUB) {
            duel_tensor *n = duel_neg(b), *y = n ? duel_add_scalar(n, s) : NULL;
            duel_release(n);
            return y;
        }
        if (op == A_POW) { /* s^b = exp(b log s) */
            if (!(s > 0))
                luaL_error(L, "pow: a number raised to a tensor power must be positive, got %g", s);
            duel_tensor *m = duel_mul_scalar(b, logf(s)), *y = m ? duel_exp(m) : NULL;
            duel_release(m);
            return y;
        }
        duel_tensor *c = duel_scalar(s), *y = c ? duel_div(c, b) : NULL;
        duel_release(c);
        return y;
    }
    duel_tensor *a = l_checktensor(L, 1, name), *b = l_checktensor(L, 2, name);
    switch (op) {
    case A_ADD: return duel_add(a, b);
    case A_SUB: return duel_sub(a, b);
    case A_MUL: return duel_mul(a, b);
    case A_DIV: return duel_div(a, b);
    default: return duel_pow_tensor(a, b);
    }
}

static int l_arith(lua_State *L) {
    int op = (int)lua_tointeger(L, lua_upvalueindex(1));
    lua_settop(L, 2);
    l_newslot(L);
    return l_finish(L, arith(L, op));
}

static int l_unm(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "neg");
    l_newslot(L);
    return l_finish(L, duel_neg(x));
}

/* ---- creation ------------------------------------------------------------------------------- */

/* nested tables -> shape (first elements), then values with a rectangularity check */
static int table_shape(lua_State *L, int idx, int64_t *shape) {
    int nd = 0;
    lua_pushvalue(L, idx);
    while (lua_type(L, -1) == LUA_TTABLE) {
        if (nd == DUEL_MAXDIM) luaL_error(L, "tensor: at most %d dimensions, got more", DUEL_MAXDIM);
        shape[nd++] = (int64_t)lua_objlen(L, -1);
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return nd;
}

static void table_fill(lua_State *L, int idx, const int64_t *shape, int nd, int depth, float **out) {
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "tensor: expected a table at depth %d, got %s", depth + 1, l_typename(L, idx));
    if ((int64_t)lua_objlen(L, idx) != shape[depth])
        luaL_error(L, "tensor: ragged nested table, expected %lld elements at depth %d, got %d",
                   (long long)shape[depth], depth + 1, (int)lua_objlen(L, idx));
    for (int64_t i = 1; i <= shape[depth]; i++) {
        lua_rawgeti(L, idx, (int)i);
        if (depth == nd - 1) {
            if (lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "tensor: elements must be numbers, got %s", l_typename(L, -1));
            *(*out)++ = (float)lua_tonumber(L, -1);
        } else {
            table_fill(L, lua_gettop(L), shape, nd, depth + 1, out);
        }
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L) {
    if (lua_type(L, 1) == LUA_TNUMBER) {
        l_newslot(L);
        return l_finish(L, duel_scalar((float)lua_tonumber(L, 1)));
    }
    if (l_istensor(L, 1)) {
        duel_tensor *x = l_checktensor(L, 1, "tensor");
        int prev = duel_set_grad_enabled(0);
        l_newslot(L);
        duel_tensor *y = duel_clone(x);
        duel_set_grad_enabled(prev);
        return l_finish(L, y);
    }
    if (lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "tensor: expected a (nested) table of numbers, got %s", l_typename(L, 1));
    int64_t shape[DUEL_MAXDIM];
    int nd = table_shape(L, 1, shape);
    duel_tensor **slot = l_newslot(L);
    duel_tensor *t = duel_empty(shape, nd);
    if (!t) return l_error(L);
    *slot = t; /* owned by the slot before table_fill can raise */
    float *p = t->data;
    table_fill(L, 1, shape, nd, 0, &p); /* also when empty: {{},{1}} is ragged */
    l_gc_pressure(L);
    return 1;
}

typedef enum { C_ZEROS, C_ONES, C_EMPTY, C_RAND, C_RANDN } ctor;
static const char *ctor_names[] = {"zeros", "ones", "empty", "rand", "randn"};

static int l_ctor(lua_State *L) {
    int which = (int)lua_tointeger(L, lua_upvalueindex(1));
    int64_t shape[DUEL_MAXDIM];
    int nd = l_checkshape(L, 1, shape, ctor_names[which], 0);
    l_newslot(L);
    switch (which) {
    case C_ZEROS: return l_finish(L, duel_zeros(shape, nd));
    case C_ONES: {
        duel_tensor *t = duel_full(shape, nd, 1.0f);
        const char *m = duel_errmsg(); /* name the function the user called */
        if (!t && !strncmp(m, "full:", 5)) return luaL_error(L, "ones:%s", m + 5);
        return l_finish(L, t);
    }
    case C_EMPTY: return l_finish(L, duel_empty(shape, nd));
    case C_RAND: return l_finish(L, duel_rand(shape, nd));
    default: return l_finish(L, duel_randn(shape, nd));
    }
}

static int l_full(lua_State *L) {
    int64_t shape[DUEL_MAXDIM];
    if (lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "full: the shape must be a table such as {2,3}, got %s", l_typename(L, 1));
    int nd = l_checkshape(L, 1, shape, "full", 0);
    float v = (float)l_checknumber(L, 2, "full", "fill value");
    l_newslot(L);
    return l_finish(L, duel_full(shape, nd, v));
}

/* Lua style, like a numeric for loop: arange(n) = 1..n; arange(a, b [, step]) = a, a+step, ...
 * up to b inclusive */
static int l_arange(lua_State *L) {
    double a = l_checknumber(L, 1, "arange", "first argument"), b, step = 1;
    if (lua_isnoneornil(L, 2)) {
        b = a;
        a = 1;
    } else {
        b = l_checknumber(L, 2, "arange", "end");
        if (!lua_isnoneornil(L, 3)) step = l_checknumber(L, 3, "arange", "step");
    }
    if (step == 0 || !isfinite(step)) return luaL_error(L, "arange: step must be non-zero and finite, got %g", step);
    /* inclusive end, with a tolerance for rounding in fractional steps: count the elements, then
     * pass a stop half a step past the last (b + step * 1e-9 is b itself once |b| > 2^24) */
    double span = (b - a) / step, stop = b;
    if (isfinite(span)) stop = a + step * ((span > -1e-9 ? floor(span + 1e-9) + 1 : 0) - 0.5);
    l_newslot(L);
    return l_finish(L, duel_arange(a, stop, step));
}

/* ---- inspection ----------------------------------------------------------------------------- */

static int l_size(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "size");
    if (!lua_isnoneornil(L, 2)) {
        int d = l_checkdim(L, 2, t->ndim, "size", 0);
        lua_pushnumber(L, (lua_Number)t->shape[d]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushnumber(L, (lua_Number)t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_stride(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "stride");
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushnumber(L, (lua_Number)t->stride[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_dim(lua_State *L) {
    lua_pushinteger(L, l_checktensor(L, 1, "dim")->ndim);
    return 1;
}

static int l_numel(lua_State *L) {
    lua_pushnumber(L, (lua_Number)duel_numel(l_checktensor(L, 1, "numel")));
    return 1;
}

static int l_is_contiguous(lua_State *L) {
    lua_pushboolean(L, duel_is_contiguous(l_checktensor(L, 1, "is_contiguous")));
    return 1;
}

static int l_item(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "item");
    if (duel_numel(t) != 1)
        return luaL_error(L, "item: only one-element tensors can be converted to a number, got %s",
                          duel_shape_str(t->shape, t->ndim));
    lua_pushnumber(L, duel_flat_get(t, 0));
    return 1;
}

static void push_nested(lua_State *L, duel_tensor *t, int depth, int64_t off) {
    lua_createtable(L, (int)t->shape[depth], 0);
    for (int64_t i = 0; i < t->shape[depth]; i++) {
        int64_t o = off + i * t->stride[depth];
        if (depth == t->ndim - 1) lua_pushnumber(L, t->data[o]);
        else push_nested(L, t, depth + 1, o);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static int l_totable(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "totable");
    if (t->ndim == 0) lua_pushnumber(L, t->data[0]);
    else push_nested(L, t, 0, 0);
    return 1;
}

static int read_index(lua_State *L, int from, duel_tensor *t, int64_t *idx, const char *op) {
    int n = lua_gettop(L) - from + 1;
    if (n != t->ndim) luaL_error(L, "%s: expected %d indices, got %d", op, t->ndim, n < 0 ? 0 : n);
    for (int i = 0; i < n; i++) idx[i] = l_checkint(L, from + i, op, "index") - 1;
    return n;
}

static int l_get(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "get");
    int64_t idx[DUEL_MAXDIM];
    int n = read_index(L, 2, t, idx, "get");
    float v;
    if (duel_get(t, idx, n, &v)) return l_error(L);
    lua_pushnumber(L, v);
    return 1;
}

static int l_set_(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "set_");
    float v = (float)l_checknumber(L, 2, "set_", "value");
    int64_t idx[DUEL_MAXDIM];
    int n = read_index(L, 3, t, idx, "set_");
    if (duel_set_(t, idx, n, v)) return l_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_fill_(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "fill_");
    float v = (float)l_checknumber(L, 2, "fill_", "value");
    if (duel_fill_(t, v)) return l_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_zero_(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "zero_");
    if (duel_fill_(t, 0.0f)) {
        const char *m = duel_errmsg(); /* name the op the user called */
        return luaL_error(L, "zero_%s", strncmp(m, "fill_", 5) ? m : m + 5);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_copy_(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "copy_"), *s = l_checktensor(L, 2, "copy_");
    if (duel_copy_(t, s)) return l_error(L);
    lua_settop(L, 1);
    return 1;
}

void l_open_tensor(lua_State *L) {
    luaL_newmetatable(L, L_TENSOR_MT);
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushcfunction(L, l_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, l_unm);
    lua_setfield(L, -2, "__unm");
    const char *mm[] = {"__add", "__sub", "__mul", "__div", "__pow"};
    for (int i = 0; i < 5; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_arith, 1);
        lua_setfield(L, -2, mm[i]);
    }
    lua_pop(L, 1);
}

/* methods table at index `methods`, duel table at `duel` */
void l_register_tensor(lua_State *L, int duel, int methods) {
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_pushvalue(L, methods);
    lua_pushcclosure(L, l_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    const char *arith_m[] = {"add", "sub", "mul", "div"}; /* pow: l_ops.c */
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_arith, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, methods, arith_m[i]);
        lua_setfield(L, duel, arith_m[i]);
    }
    lua_pushcfunction(L, l_unm);
    lua_pushvalue(L, -1);
    lua_setfield(L, methods, "neg");
    lua_setfield(L, duel, "neg");
    for (int i = 0; i < 5; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_ctor, 1);
        lua_setfield(L, duel, ctor_names[i]);
    }
    static const luaL_Reg funcs[] = {{"tensor", l_tensor}, {"full", l_full}, {"arange", l_arange},
                                     {NULL, NULL}};
    for (const luaL_Reg *r = funcs; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, duel, r->name);
    }
    static const luaL_Reg meths[] = {
        {"size", l_size},   {"stride", l_stride}, {"dim", l_dim},         {"numel", l_numel},
        {"item", l_item},   {"totable", l_totable}, {"get", l_get},       {"set_", l_set_},
        {"fill_", l_fill_}, {"zero_", l_zero_},   {"copy_", l_copy_},
        {"is_contiguous", l_is_contiguous},       {NULL, NULL}};
    for (const luaL_Reg *r = meths; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, methods, r->name);
    }
}
