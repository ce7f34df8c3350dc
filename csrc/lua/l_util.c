/* l_util.c -- the binding's shared helpers: slots, GC pressure, argument and option checks.
 * Every error raised here has the form "<op>: <what is wrong>, got <value>". */
#include "l_util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int l_raise(lua_State *L, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lua_pushstring(L, buf);
    return lua_error(L);
}

/* Tensor memory lives outside the Lua heap, so the collector cannot see it: report it. Once a
 * MiB has been allocated, run a GC step sized by that many KiB, so that unreachable tensors are
 * finalised in proportion to the churn and users never call collectgarbage(). */
#define GC_DEBT_STEP (1 << 20)
static int64_t gc_debt;

void l_gc_pressure(lua_State *L) {
    gc_debt += duel_take_alloc_debt();
    if (gc_debt >= GC_DEBT_STEP) {
        int kb = (int)(gc_debt >> 10);
        gc_debt = 0;
        lua_gc(L, LUA_GCSTEP, kb);
    }
}

duel_tensor **l_newslot(lua_State *L) {
    duel_tensor **slot = lua_newuserdata(L, sizeof *slot);
    *slot = NULL;
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_setmetatable(L, -2);
    return slot;
}

int l_error(lua_State *L) { return l_raise(L, "%s", duel_errmsg()); }

int l_finish(lua_State *L, duel_tensor *t) {
    if (!t) return l_error(L);
    duel_tensor **slot = lua_touserdata(L, -1);
    *slot = t;
    l_gc_pressure(L);
    return 1;
}

void l_push(lua_State *L, duel_tensor *t) {
    if (!t) {
        l_error(L);
        return;
    }
    duel_tensor **slot = lua_newuserdata(L, sizeof *slot);
    *slot = t; /* lua_newuserdata raises only before this line: then t leaks, bounded by OOM */
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_setmetatable(L, -2);
    l_gc_pressure(L);
}

const char *l_typename(lua_State *L, int idx) {
    if (l_istensor(L, idx)) return "duel.Tensor";
    return luaL_typename(L, idx);
}

int l_istensor(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, L_TENSOR_MT);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

duel_tensor *l_checktensor(lua_State *L, int idx, const char *op) {
    if (!l_istensor(L, idx))
        luaL_error(L, "%s: argument %d must be a duel.Tensor, got %s", op, idx,
                   l_typename(L, idx));
    duel_tensor **slot = lua_touserdata(L, idx);
    if (!*slot) luaL_error(L, "%s: argument %d is a released tensor, got an empty slot", op, idx);
    return *slot;
}

duel_tensor *l_opttensor(lua_State *L, int idx, const char *op) {
    return lua_isnoneornil(L, idx) ? NULL : l_checktensor(L, idx, op);
}

duel_tensor *l_totensor(lua_State *L, int idx, const char *op) {
    if (lua_type(L, idx) == LUA_TNUMBER) { /* the number's stack slot becomes a tensor userdata */
        float v = (float)lua_tonumber(L, idx);
        duel_tensor **slot = l_newslot(L);
        if (!(*slot = duel_scalar(v))) l_error(L);
        lua_replace(L, idx);
        return *slot;
    }
    if (!l_istensor(L, idx))
        luaL_error(L, "%s: argument %d must be a duel.Tensor or a number, got %s", op, idx,
                   l_typename(L, idx));
    return l_checktensor(L, idx, op);
}

double l_checknumber(lua_State *L, int idx, const char *op, const char *what) {
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "%s: %s must be a number, got %s", op, what, l_typename(L, idx));
    return lua_tonumber(L, idx);
}

int64_t l_checkint(lua_State *L, int idx, const char *op, const char *what) {
    double v = l_checknumber(L, idx, op, what);
    if (!(v == floor(v)))
        luaL_error(L, "%s: %s must be a whole number, got %s", op, what,
                   lua_tostring(L, idx) ? lua_tostring(L, idx) : "?");
    if (fabs(v) > 9007199254740992.0)
        luaL_error(L, "%s: %s is too large, got %s", op, what, lua_tostring(L, idx));
    return (int64_t)v;
}

int l_optbool(lua_State *L, int idx, int dflt, const char *op, const char *what) {
    if (lua_isnoneornil(L, idx)) return dflt;
    if (lua_type(L, idx) != LUA_TBOOLEAN)
        luaL_error(L, "%s: %s must be a boolean, got %s", op, what, l_typename(L, idx));
    return lua_toboolean(L, idx);
}

int l_optfield_bool(lua_State *L, int idx, const char *key, int dflt, const char *op) {
    if (idx == 0 || lua_isnoneornil(L, idx)) return dflt; /* 0: no options table given */
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: options must be a table, got %s", op, l_typename(L, idx));
    lua_getfield(L, idx, key);
    int top = lua_gettop(L);
    int v = dflt;
    if (!lua_isnil(L, top)) {
        if (lua_type(L, top) != LUA_TBOOLEAN)
            luaL_error(L, "%s: option '%s' must be a boolean, got %s", op, key,
                       l_typename(L, top));
        v = lua_toboolean(L, top);
    }
    lua_pop(L, 1);
    return v;
}

int l_checkdim(lua_State *L, int idx, int ndim, const char *op, int allow_end) {
    int64_t d = l_checkint(L, idx, op, "dimension");
    int hi = ndim + (allow_end ? 1 : 0);
    if (d < 0) d += hi + 1;
    if (d < 1 || d > hi)
        luaL_error(L, "%s: dimension out of range (expected 1 to %d), got %s", op, hi > 0 ? hi : 1,
                   lua_tostring(L, idx));
    return (int)d - 1;
}

int l_optdim(lua_State *L, int idx, int ndim, const char *op) {
    return lua_isnoneornil(L, idx) ? -1 : l_checkdim(L, idx, ndim, op, 0);
}

int l_checkshape(lua_State *L, int idx, int64_t *shape, const char *op, int allow_neg1) {
    int n, tbl = lua_type(L, idx) == LUA_TTABLE;
    n = tbl ? (int)lua_objlen(L, idx) : lua_gettop(L) - idx + 1;
    if (n < 0) n = 0;
    if (n > DUEL_MAXDIM)
        luaL_error(L, "%s: at most %d dimensions, got %d", op, DUEL_MAXDIM, n);
    for (int i = 0; i < n; i++) {
        int at = idx + i;
        if (tbl) {
            lua_rawgeti(L, idx, i + 1);
            at = lua_gettop(L);
        }
        if (lua_type(L, at) != LUA_TNUMBER)
            luaL_error(L, "%s: size %d must be a number, got %s", op, i + 1, l_typename(L, at));
        double v = lua_tonumber(L, at);
        if (v != floor(v) || !isfinite(v))
            luaL_error(L, "%s: sizes must be whole numbers, got %s", op, lua_tostring(L, at));
        if (v < 0 && !(allow_neg1 && v == -1))
            luaL_error(L, allow_neg1 ? "%s: sizes must be non-negative or -1, got %s"
                                     : "%s: sizes must be non-negative, got %s",
                       op, lua_tostring(L, at));
        if (v > 4e18) luaL_error(L, "%s: size too large, got %s", op, lua_tostring(L, at));
        shape[i] = (int64_t)v;
        if (tbl) lua_pop(L, 1);
    }
    return n;
}

int l_check_options(lua_State *L, int idx, const char *op, const char *const *keys,
                    const char *list) {
    if (idx == 0 || lua_isnoneornil(L, idx)) return 0;
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: options must be a table, got %s", op, l_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING) /* lua_tostring only on strings: no key conversion */
            for (int i = 0; keys[i] && !known; i++) known = !strcmp(keys[i], lua_tostring(L, -1));
        if (!known) {
            if (lua_type(L, -1) == LUA_TSTRING)
                luaL_error(L, "%s: unknown option (expected %s), got '%s'", op, list,
                           lua_tostring(L, -1));
            luaL_error(L, "%s: unknown option (expected %s), got a %s key", op, list,
                       l_typename(L, -1));
        }
    }
    return idx;
}
