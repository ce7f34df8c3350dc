/* registry.c -- every differentiable op, gathered from the families' lists, so that a test can
 * demand a gradcheck and gradgradcheck case for each. */
#include "../duel_impl.h"

#define MAX_OPS 256

const duel_opdef *const *duel_registry(int *n) {
    static const duel_opdef *all[MAX_OPS + 1];
    static int count = -1;
    if (count < 0) {
        const duel_opdef *const *families[] = {
            duel_view_ops,       duel_elementwise_ops, duel_reduce_ops, duel_shape_ops,
            duel_matmul_ops,     duel_activation_ops,  duel_loss_ops,   duel_conv_ops,
            duel_pool_ops,       duel_norm_ops,        duel_resample_ops, duel_gan_ops};
        count = 0;
        for (size_t f = 0; f < sizeof families / sizeof *families; f++)
            for (const duel_opdef *const *p = families[f]; p && *p; p++) {
                DUEL_ASSERT(count < MAX_OPS);
                all[count++] = *p;
            }
        all[count] = NULL;
    }
    *n = count;
    return all;
}
