/* l_loss.c -- F.bce_with_logits, F.mse, F.l1, F.cross_entropy: each the mean over all elements
 * (over the N rows for cross_entropy), returned as a 0-dim tensor. */
#include "l_util.h"

typedef duel_tensor *(*loss_fn)(duel_tensor *, duel_tensor *);
static const struct {
    const char *name;
    loss_fn fn;
} losses[] = {{"bce_with_logits", duel_bce_with_logits},
              {"mse", duel_mse},
              {"l1", duel_l1},
              {"cross_entropy", duel_cross_entropy}};

static int l_loss(lua_State *L) {
    int i = (int)lua_tointeger(L, lua_upvalueindex(1));
    duel_tensor *a = l_checktensor(L, 1, losses[i].name), *b = l_checktensor(L, 2, losses[i].name);
    l_newslot(L);
    return l_finish(L, losses[i].fn(a, b));
}

void l_register_loss(lua_State *L, int F, int methods) {
    (void)methods; /* losses are not Tensor methods: PyTorch keeps them in F as well */
    for (int i = 0; i < (int)(sizeof losses / sizeof *losses); i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_loss, 1);
        lua_setfield(L, F, losses[i].name);
    }
}
