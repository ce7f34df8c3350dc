/* matmul.c -- 2-D and batched matmul through cblas_sgemm; backward = matmul with transposes.
 * Transposed views are passed to sgemm as transpose flags, so the backward copies nothing. */
#include "../duel_impl.h"
#include <cblas.h>

/* How to hand the last two dims of t ({R,C}, batch stride bs) to sgemm without a copy. */
typedef struct {
    const float *p;
    int64_t ld, bs;
    CBLAS_TRANSPOSE tr;
} operand;

static int as_operand(const duel_tensor *t, operand *o) {
    int nd = t->ndim;
    int64_t R = t->shape[nd - 2], C = t->shape[nd - 1];
    int64_t sr = t->stride[nd - 2], sc = t->stride[nd - 1];
    o->p = t->data;
    o->bs = nd == 3 ? t->stride[0] : 0;
    if ((sc == 1 || C == 1) && sr >= (C > 1 ? C : 1)) {
        o->tr = CblasNoTrans;
        o->ld = sr > 0 ? sr : 1;
        if (R == 1) o->ld = C > 1 ? C : 1;
        return 1;
    }
    if ((sr == 1 || R == 1) && sc >= (R > 1 ? R : 1)) {
        o->tr = CblasTrans;
        o->ld = sc > 0 ? sc : 1;
        if (C == 1) o->ld = R > 1 ? R : 1;
        return 1;
    }
    return 0;
}

static int matmul_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *a = y->src[0], *b = y->src[1];
    if (DUEL_NEED(y, 0)) { /* dA = dY B^T (summed to A's shape by the engine if A was 2-D) */
        duel_tensor *bt = duel_transpose(b, b->ndim - 2, b->ndim - 1);
        dx[0] = bt ? duel_matmul(dy, bt) : NULL;
        duel_release(bt);
        if (!dx[0]) return -1;
    }
    if (DUEL_NEED(y, 1)) { /* dB = A^T dY */
        duel_tensor *at = duel_transpose(a, a->ndim - 2, a->ndim - 1);
        dx[1] = at ? duel_matmul(at, dy) : NULL;
        duel_release(at);
        if (!dx[1]) return -1;
    }
    return 0;
}
static const duel_opdef OP_MATMUL = {"matmul", 2, matmul_backward,
                                     DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};

duel_tensor *duel_matmul(duel_tensor *a, duel_tensor *b) {
    DUEL_CHECK((a->ndim == 2 || a->ndim == 3) && (b->ndim == 2 || b->ndim == 3),
               "matmul: operands must be 2-D or 3-D (batched), got %s and %s", SHAPE(a),
               SHAPE(b));
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t K2 = b->shape[b->ndim - 2], N = b->shape[b->ndim - 1];
    DUEL_CHECK(K == K2, "matmul: inner sizes must match, got %s and %s", SHAPE(a), SHAPE(b));
    int64_t B = a->ndim == 3 ? a->shape[0] : b->ndim == 3 ? b->shape[0] : 1;
    DUEL_CHECK(!(a->ndim == 3 && b->ndim == 3) || a->shape[0] == b->shape[0],
               "matmul: batch sizes must match, got %s and %s", SHAPE(a), SHAPE(b));
    DUEL_CHECK(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX,
               "matmul: matrices too large for BLAS, got %s and %s", SHAPE(a), SHAPE(b));
    int batched = a->ndim == 3 || b->ndim == 3;
    int64_t shp[3] = {B, M, N};
    duel_tensor *y = batched ? duel_new(shp, 3, "matmul") : duel_new(shp + 1, 2, "matmul");
    if (!y) return NULL;
    duel_tensor *ac = NULL, *bc = NULL;
    operand oa, ob;
    if (!as_operand(a, &oa)) {
        if (!(ac = duel_contiguous(a))) goto fail;
        as_operand(ac, &oa);
    }
    if (!as_operand(b, &ob)) {
        if (!(bc = duel_contiguous(b))) goto fail;
        as_operand(bc, &ob);
    }
    if (M * N > 0) {
        if (K == 0) memset(y->data, 0, (size_t)(B * M * N) * sizeof(float));
        else if (!batched || (a->ndim == 3 && b->ndim == 2 && oa.tr == CblasNoTrans &&
                              oa.ld == K && oa.bs == M * K)) {
            /* a {B,M,K} stored as one {B*M,K} matrix: fold the batch into one GEMM */
            int64_t rows = batched ? B * M : M;
            duel_sgemm(oa.tr, ob.tr, rows, N, K, oa.p, oa.ld, ob.p, ob.ld, 0.0f, y->data, N);
        } else {
            for (int64_t i = 0; i < B; i++)
                duel_sgemm(oa.tr, ob.tr, M, N, K, oa.p + i * oa.bs, oa.ld, ob.p + i * ob.bs, ob.ld,
                           0.0f, y->data + i * M * N, N);
        }
    }
    duel_release(ac);
    duel_release(bc);
    duel_tensor *srcs[2] = {a, b};
    duel_record(y, &OP_MATMUL, srcs, 2);
    return y;
fail:
    duel_release(ac);
    duel_release(bc);
    duel_release(y);
    return NULL;
}

const duel_opdef *const duel_matmul_ops[] = {&OP_MATMUL, NULL};
