/* l_gan.c -- the C side of duel.gan (lua/duel/gan/init.lua wraps it): d_loss, g_loss and
 * grad_norm_penalty, registered into duel._gan. */
#include "l_util.h"
#include <math.h>

/* the kind string at idx, as DUEL_GAN_* */
static int check_kind(lua_State *L, int idx, const char *op) {
    const char *expected = "'minimax', 'nonsaturating', 'lsgan', 'hinge', 'wgan' or 'relativistic'";
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: kind must be %s, got %s", op, expected, l_typename(L, idx));
    int k = duel_gan_kind(lua_tostring(L, idx));
    if (k < 0) luaL_error(L, "%s: kind must be %s, got '%s'", op, expected, lua_tostring(L, idx));
    return k;
}

/* gan.d_loss(kind, real_out, fake_out) */
static int l_d_loss(lua_State *L) {
    int k = check_kind(L, 1, "d_loss");
    duel_tensor *r = l_checktensor(L, 2, "d_loss"), *f = l_checktensor(L, 3, "d_loss");
    l_newslot(L);
    return l_finish(L, duel_gan_d_loss(k, r, f));
}

/* gan.g_loss(kind, fake_out [, real_out]) */
static int l_g_loss(lua_State *L) {
    int k = check_kind(L, 1, "g_loss");
    duel_tensor *f = l_checktensor(L, 2, "g_loss"), *r = l_opttensor(L, 3, "g_loss");
    l_newslot(L);
    return l_finish(L, duel_gan_g_loss(k, f, r));
}

/* grad_norm_penalty(g, center, weight, one_sided) -> penalty, norms {N} */
static int l_grad_norm_penalty(lua_State *L) {
    const char *op = "grad_norm_penalty";
    duel_tensor *g = l_checktensor(L, 1, op);
    double c = l_checknumber(L, 2, op, "center"), w = l_checknumber(L, 3, op, "weight");
    int one_sided = l_optbool(L, 4, 0, op, "one_sided");
    if (!isfinite(c)) luaL_error(L, "%s: center must be finite, got %g", op, c);
    if (!isfinite(w)) luaL_error(L, "%s: weight must be finite, got %g", op, w);
    duel_tensor **slot = l_newslot(L), *norms = NULL;
    *slot = duel_grad_norm_penalty(g, (float)c, (float)w, one_sided, &norms);
    if (!*slot) return l_error(L);
    l_gc_pressure(L);
    l_push(L, norms);
    return 2;
}

void l_register_gan(lua_State *L, int gan) {
    static const luaL_Reg funcs[] = {{"d_loss", l_d_loss},
                                     {"g_loss", l_g_loss},
                                     {"grad_norm_penalty", l_grad_norm_penalty},
                                     {NULL, NULL}};
    for (const luaL_Reg *r = funcs; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, gan, r->name);
    }
}
