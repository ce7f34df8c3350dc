/* l_resample.c -- F.pad and F.upsample. */
#include "l_util.h"
#include <math.h>
#include <string.h>

/* option `mode` (a string) as an index into names, dflt when absent */
static int opt_mode(lua_State *L, int opts, const char *op, const char *const *names, int dflt,
                    const char *expected) {
    if (!opts) return dflt;
    lua_getfield(L, opts, "mode");
    int v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option 'mode' must be a string, got %s", op, l_typename(L, -1));
        const char *s = lua_tostring(L, -1);
        for (v = 0; names[v] && strcmp(names[v], s); v++) {}
        if (!names[v]) luaL_error(L, "%s: unknown mode '%s', expected %s", op, s, expected);
    }
    lua_pop(L, 1);
    return v;
}

/* F.pad(x, {left,right,top,bottom} or n, {mode='zero'|'reflect'|'replicate'}) */
static int l_pad(lua_State *L) {
    static const char *const keys[] = {"mode", NULL};
    static const char *const modes[] = {"zero", "reflect", "replicate", NULL}; /* DUEL_PAD_* */
    duel_tensor *x = l_checktensor(L, 1, "pad");
    int64_t p[4];
    if (lua_type(L, 2) == LUA_TNUMBER) {
        p[0] = p[1] = p[2] = p[3] = l_checkint(L, 2, "pad", "padding");
    } else if (lua_type(L, 2) == LUA_TTABLE) {
        int n = (int)lua_objlen(L, 2);
        if (n != 4)
            return luaL_error(L, "pad: padding must have 4 entries {left,right,top,bottom}, got %d",
                              n);
        for (int i = 0; i < 4; i++) {
            lua_rawgeti(L, 2, i + 1);
            p[i] = l_checkint(L, lua_gettop(L), "pad", "padding");
            lua_pop(L, 1);
        }
    } else {
        return luaL_error(L, "pad: padding must be a number or a table {left,right,top,bottom}, "
                             "got %s", l_typename(L, 2));
    }
    int o = l_check_options(L, 3, "pad", keys, "mode");
    int mode = opt_mode(L, o, "pad", modes, DUEL_PAD_ZERO, "'zero', 'reflect' or 'replicate'");
    l_newslot(L);
    return l_finish(L, duel_pad2d(x, p, mode));
}

static int64_t check_scale(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        if (v >= 1 && v == floor(v) && v <= 9007199254740992.0) return (int64_t)v;
    }
    if (lua_type(L, idx) == LUA_TNUMBER) { /* a copy, so that the argument stays a number */
        lua_pushvalue(L, idx);
        lua_tostring(L, -1);
    } else {
        lua_pushstring(L, l_typename(L, idx));
    }
    return luaL_error(L, "upsample: scale must be a positive whole number, got %s",
                      lua_tostring(L, -1));
}

/* F.upsample(x, {scale=2 or {sh,sw}, mode='nearest'|'bilinear'}); a number alone is the scale */
static int l_upsample(lua_State *L) {
    static const char *const keys[] = {"scale", "mode", NULL};
    static const char *const modes[] = {"nearest", "bilinear", NULL}; /* DUEL_UP_* */
    duel_tensor *x = l_checktensor(L, 1, "upsample");
    int64_t sh = 2, sw = 2;
    int mode = DUEL_UP_NEAREST;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        sh = sw = check_scale(L, 2);
    } else {
        int o = l_check_options(L, 2, "upsample", keys, "scale or mode");
        mode = opt_mode(L, o, "upsample", modes, DUEL_UP_NEAREST, "'nearest' or 'bilinear'");
        if (o) {
            lua_getfield(L, o, "scale");
            int s = lua_gettop(L);
            if (lua_type(L, s) == LUA_TTABLE) {
                int n = (int)lua_objlen(L, s);
                if (n != 2)
                    return luaL_error(L, "upsample: scale table must have 2 entries {sh,sw}, "
                                         "got %d", n);
                lua_rawgeti(L, s, 1);
                sh = check_scale(L, lua_gettop(L));
                lua_rawgeti(L, s, 2);
                sw = check_scale(L, lua_gettop(L));
            } else if (!lua_isnil(L, s)) {
                sh = sw = check_scale(L, s);
            }
            lua_settop(L, 2);
        }
    }
    l_newslot(L);
    return l_finish(L, duel_upsample(x, sh, sw, mode));
}

void l_register_resample(lua_State *L, int F, int methods) {
    (void)methods; /* functional only, as in PyTorch */
    lua_pushcfunction(L, l_pad);
    lua_setfield(L, F, "pad");
    lua_pushcfunction(L, l_upsample);
    lua_setfield(L, F, "upsample");
}
