/* l_conv.c -- F.linear, F.conv2d, F.conv_transpose2d, F.avg_pool2d, F.max_pool2d. Options come
 * as a trailing table; each size option is a number or a pair {h,w}. Values are range-checked
 * here so that messages show what the user wrote; shapes are checked by the core. */
#include "l_util.h"
#include <math.h>
#include <string.h>

/* a whole number >= lo at stack index at; what names it in messages */
static int64_t check_size(lua_State *L, int at, int64_t lo, const char *op, const char *what) {
    if (lua_type(L, at) != LUA_TNUMBER)
        luaL_error(L, "%s: %s must be a number or a table {h,w}, got %s", op, what,
                   l_typename(L, at));
    double v = lua_tonumber(L, at);
    const char *need = lo > 0 ? "a positive whole number" : "a non-negative whole number";
    if (!(v == floor(v)) || v < (double)lo || v > 1e15)
        luaL_error(L, "%s: %s must be %s, got %s", op, what, need, lua_tostring(L, at));
    return (int64_t)v;
}

/* the value at stack index at as a pair {h,w}: a number n means {n,n} */
static void check_pair(lua_State *L, int at, int64_t lo, const char *op, const char *what,
                       int64_t out[2]) {
    if (lua_type(L, at) == LUA_TTABLE) {
        if (lua_objlen(L, at) != 2)
            luaL_error(L, "%s: %s must be a number or a table {h,w}, got a table of %d values", op,
                       what, (int)lua_objlen(L, at));
        for (int i = 0; i < 2; i++) {
            lua_rawgeti(L, at, i + 1);
            out[i] = check_size(L, lua_gettop(L), lo, op, what);
            lua_pop(L, 1);
        }
        return;
    }
    out[0] = out[1] = check_size(L, at, lo, op, what);
}

/* field key of the options table at idx (0: none) as a pair, dflt when absent */
static void opt_pair(lua_State *L, int idx, const char *key, int64_t dflt, int64_t lo,
                     const char *op, int64_t out[2]) {
    out[0] = out[1] = dflt;
    if (!idx) return;
    lua_getfield(L, idx, key);
    if (!lua_isnil(L, -1)) check_pair(L, lua_gettop(L), lo, op, key, out);
    lua_pop(L, 1);
}

/* the options table at idx, or 0 when absent */
static int opts_index(lua_State *L, int idx, const char *op, const char *const *keys,
                      const char *list) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: options must be a table, got %s", op, l_typename(L, idx));
    l_check_options(L, idx, op, keys, list);
    return idx;
}

static int l_linear(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "linear"), *w = l_checktensor(L, 2, "linear");
    duel_tensor *b = l_opttensor(L, 3, "linear");
    l_newslot(L);
    return l_finish(L, duel_linear(x, w, b));
}

/* F.conv2d(x, W, b, opts) and F.conv_transpose2d(x, W, b, opts); b may be nil, and a table in
 * b's place with nothing after it is taken as the options */
static int l_conv(lua_State *L, int transposed) {
    const char *op = transposed ? "conv_transpose2d" : "conv2d";
    static const char *const keys2d[] = {"stride", "padding", "dilation", "groups", NULL};
    static const char *const keysT[] = {"stride",   "padding", "output_padding",
                                        "dilation", "groups",  NULL};
    duel_tensor *x = l_checktensor(L, 1, op), *w = l_checktensor(L, 2, op);
    if (lua_istable(L, 3) && lua_isnoneornil(L, 4)) { /* F.conv2d(x, W, {stride=2}) */
        lua_settop(L, 3);
        lua_pushnil(L);
        lua_insert(L, 3);
    }
    duel_tensor *b = l_opttensor(L, 3, op);
    int oi = transposed
                 ? opts_index(L, 4, op, keysT, "stride, padding, output_padding, dilation, groups")
                 : opts_index(L, 4, op, keys2d, "stride, padding, dilation, groups");
    duel_conv2d_opts o;
    opt_pair(L, oi, "stride", 1, 1, op, o.stride);
    opt_pair(L, oi, "padding", 0, 0, op, o.padding);
    opt_pair(L, oi, "dilation", 1, 1, op, o.dilation);
    opt_pair(L, oi, "output_padding", 0, 0, op, o.output_padding);
    o.groups = 1;
    if (oi) {
        lua_getfield(L, oi, "groups");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: groups must be a positive whole number, got %s", op,
                       l_typename(L, -1));
        if (!lua_isnil(L, -1)) o.groups = check_size(L, lua_gettop(L), 1, op, "groups");
        lua_pop(L, 1);
    }
    l_newslot(L);
    return l_finish(L, transposed ? duel_conv_transpose2d(x, w, b, &o) : duel_conv2d(x, w, b, &o));
}
static int l_conv2d(lua_State *L) { return l_conv(L, 0); }
static int l_conv_transpose2d(lua_State *L) { return l_conv(L, 1); }

/* F.avg_pool2d(x, k, {stride=k, padding=0}) and F.max_pool2d(...) */
static int l_pool(lua_State *L, int is_max) {
    const char *op = is_max ? "max_pool2d" : "avg_pool2d";
    static const char *const keys[] = {"stride", "padding", NULL};
    lua_settop(L, 3);
    duel_tensor *x = l_checktensor(L, 1, op);
    int64_t k[2], s[2], p[2];
    if (lua_isnoneornil(L, 2))
        luaL_error(L, "%s: kernel_size must be a number or a table {h,w}, got %s", op,
                   l_typename(L, 2));
    check_pair(L, 2, 1, op, "kernel_size", k);
    int oi = opts_index(L, 3, op, keys, "stride, padding");
    opt_pair(L, oi, "padding", 0, 0, op, p);
    opt_pair(L, oi, "stride", 0, 1, op, s);
    if (s[0] == 0) { /* absent: the kernel size (a given stride is >= 1) */
        s[0] = k[0];
        s[1] = k[1];
    }
    l_newslot(L);
    return l_finish(L, is_max ? duel_max_pool2d(x, k, s, p) : duel_avg_pool2d(x, k, s, p));
}
static int l_avg_pool2d(lua_State *L) { return l_pool(L, 0); }
static int l_max_pool2d(lua_State *L) { return l_pool(L, 1); }

void l_register_conv(lua_State *L, int F, int methods) {
    (void)methods;
    static const luaL_Reg fns[] = {{"linear", l_linear},
                                   {"conv2d", l_conv2d},
                                   {"conv_transpose2d", l_conv_transpose2d},
                                   {"avg_pool2d", l_avg_pool2d},
                                   {"max_pool2d", l_max_pool2d},
                                   {NULL, NULL}};
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, F, r->name);
    }
}
