/* loss.c -- bce_with_logits, mse, l1 and cross_entropy: fused, numerically stable forward
 * kernels with backward rules in duel_* ops (so penalties can differentiate them again).
 *
 * Every loss is the MEAN over all elements (over the N rows for cross_entropy) and returns a
 * 0-dim tensor: PyTorch's default reduction='mean' and Torch7's sizeAverage = true. Sums are
 * taken in double over a fixed split into chunks, so a loss does not depend on the thread count. */
#include "../duel_impl.h"

/* x's values, contiguous, without recording a node (kernels read them; nodes record x itself) */
static duel_tensor *contig_const(duel_tensor *x) {
    int prev = duel_set_grad_enabled(0);
    duel_tensor *c = duel_contiguous(x);
    duel_set_grad_enabled(prev);
    return c;
}

/* ---- elementwise losses ---------------------------------------------------------------------- */

enum { L_BCE, L_MSE, L_L1 };

__attribute__((always_inline)) static inline float loss_term(int kind, float a, float b) {
    switch (kind) {
    case L_BCE: /* a = logit x, b = target t: max(x,0) - x t + log(1 + exp(-|x|)), exp <= 1 */
        return fmaxf(a, 0.0f) - a * b + log1pf(expf(-fabsf(a)));
    case L_MSE: return (a - b) * (a - b);
    default: return fabsf(a - b);
    }
}

enum { CHUNKS = 256 };

/* sum over i < n of loss_term(a[i], b[i]); a, b contiguous. The chunks are fixed by n alone, and
 * their partial sums are added in order. */
static double loss_sum_kernel(int kind, const float *a, const float *b, int64_t n) {
    double part[CHUNKS];
    int64_t len = (n + CHUNKS - 1) / CHUNKS;
    DUEL_PAR_FOR(n >= (kind == L_BCE ? DUEL_PAR_MIN_HEAVY : DUEL_PAR_MIN),
    for (int c = 0; c < CHUNKS; c++) {
        int64_t s = c * len, e = s + len < n ? s + len : n;
        double acc = 0.0;
        for (int64_t i = s; i < e; i++) acc += loss_term(kind, a[i], b[i]);
        part[c] = acc;
    });
    double t = 0.0;
    for (int c = 0; c < CHUNKS; c++) t += part[c];
    return t;
}

/* shapes must match exactly: a silent broadcast of {N,1} against {N} would average an N x N table
 * (PyTorch warns about exactly this) */
static duel_tensor *elementwise_loss(duel_tensor *a, duel_tensor *b, int kind,
                                     const duel_opdef *def) {
    DUEL_CHECK(duel_same_shape(a, b), "%s: input and target shapes must match, got %s and %s",
               def->name, SHAPE(a), SHAPE(b));
    duel_tensor *ac = contig_const(a), *bc = ac ? contig_const(b) : NULL;
    duel_tensor *y = NULL;
    if (bc) {
        int64_t n = duel_numel(ac);
        y = duel_scalar((float)(loss_sum_kernel(kind, ac->data, bc->data, n) / (double)n));
        if (y) {
            y->fparam[0] = (float)(1.0 / (double)n);
            duel_tensor *srcs[2] = {a, b};
            duel_record(y, def, srcs, 2);
        }
    }
    duel_release(ac);
    duel_release(bc);
    return y;
}

/* dx[0] = k, dx[1] = -k where needed; releases k */
static int plus_minus(duel_tensor *y, duel_tensor *k, duel_tensor **dx) {
    if (!k) return -1;
    int rc = 0;
    if (DUEL_NEED(y, 1) && !(dx[1] = duel_neg(k))) rc = -1;
    if (DUEL_NEED(y, 0)) {
        dx[0] = k;
        k = NULL;
    }
    duel_release(k);
    return rc;
}

/* dy (scalar) / n as a 0-dim tensor, still tracking dy */
static duel_tensor *dy_over_n(duel_tensor *y, duel_tensor *dy) {
    return duel_mul_scalar(dy, y->fparam[0]);
}

/* d/dx = (sigmoid(x) - t) dy / n;  d/dt = -x dy / n */
static int bce_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0], *t = y->src[1], *g = dy_over_n(y, dy);
    if (!g) return -1;
    int rc = 0;
    if (DUEL_NEED(y, 0)) {
        duel_tensor *s = duel_sigmoid(x), *d = s ? duel_sub(s, t) : NULL;
        if (!d || !(dx[0] = duel_mul(d, g))) rc = -1;
        duel_release(s);
        duel_release(d);
    }
    if (!rc && DUEL_NEED(y, 1)) {
        duel_tensor *n = duel_neg(x);
        if (!n || !(dx[1] = duel_mul(n, g))) rc = -1;
        duel_release(n);
    }
    duel_release(g);
    return rc;
}

/* d/da = 2 (a - b) dy / n = -d/db */
static int mse_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *g = dy_over_n(y, dy), *g2 = g ? duel_mul_scalar(g, 2.0f) : NULL;
    duel_tensor *d = g2 ? duel_sub(y->src[0], y->src[1]) : NULL;
    duel_tensor *k = d ? duel_mul(d, g2) : NULL;
    duel_release(g);
    duel_release(g2);
    duel_release(d);
    return plus_minus(y, k, dx);
}

/* d/da = sign(a - b) dy / n = -d/db; the sign is piecewise constant, so a mask */
static int l1_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *ac = contig_const(y->src[0]), *bc = ac ? contig_const(y->src[1]) : NULL;
    duel_tensor *m = bc ? duel_new(ac->shape, ac->ndim, "l1") : NULL;
    if (m) {
        const float *a = ac->data, *b = bc->data;
        float *s = m->data;
        int64_t n = duel_numel(m);
        DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
        for (int64_t i = 0; i < n; i++) s[i] = a[i] > b[i] ? 1.0f : a[i] < b[i] ? -1.0f : 0.0f;
        );
    }
    duel_release(ac);
    duel_release(bc);
    duel_tensor *g = m ? dy_over_n(y, dy) : NULL, *k = g ? duel_mul(m, g) : NULL;
    duel_release(m);
    duel_release(g);
    return plus_minus(y, k, dx);
}

#define S01 (DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1))
static const duel_opdef OP_BCE = {"bce_with_logits", 2, bce_backward, S01};
static const duel_opdef OP_MSE = {"mse", 2, mse_backward, S01};
static const duel_opdef OP_L1 = {"l1", 2, l1_backward, S01};

duel_tensor *duel_bce_with_logits(duel_tensor *logits, duel_tensor *target) {
    return elementwise_loss(logits, target, L_BCE, &OP_BCE);
}
duel_tensor *duel_mse(duel_tensor *a, duel_tensor *b) {
    return elementwise_loss(a, b, L_MSE, &OP_MSE);
}
duel_tensor *duel_l1(duel_tensor *a, duel_tensor *b) {
    return elementwise_loss(a, b, L_L1, &OP_L1);
}

/* ---- cross_entropy --------------------------------------------------------------------------- */

/* x: contiguous {N,C}, label[i] 0-based; loss[i] = logsumexp(x[i]) - x[i][label[i]], with the
 * row maximum taken out first (finite for logits of any size) */
static void cross_entropy_kernel(double *loss, const float *x, const int64_t *label, int64_t N,
                                 int64_t C) {
    DUEL_PAR_FOR(N * C >= DUEL_PAR_MIN_HEAVY,
    for (int64_t i = 0; i < N; i++) {
        const float *p = x + i * C;
        float m = -INFINITY;
        for (int64_t j = 0; j < C; j++) m = fmaxf(m, p[j]);
        double s = 0.0;
        for (int64_t j = 0; j < C; j++) s += exp((double)p[j] - m);
        loss[i] = log(s) - ((double)p[label[i]] - m);
    });
}

/* d/dlogits = (softmax(logits) - onehot(labels)) dy / N; labels get no gradient */
static int cross_entropy_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    if (!DUEL_NEED(y, 0)) return 0;
    duel_tensor *x = y->src[0], *lab = y->src[1];
    duel_tensor *oh = duel_zeros(x->shape, 2);
    if (!oh) return -1;
    int64_t N = x->shape[0], C = x->shape[1];
    for (int64_t i = 0; i < N; i++) {
        float v = duel_flat_get(lab, i); /* validated by the forward; rechecked, as it indexes */
        if (!(v >= 1 && v <= (float)C)) {
            duel_release(oh);
            duel_seterr(DUEL_EINVAL, "cross_entropy: label out of range 1..%lld, got %g",
                        (long long)C, v);
            return -1;
        }
        oh->data[i * C + (int64_t)v - 1] = 1.0f;
    }
    duel_tensor *sm = duel_softmax(x, 1), *d = sm ? duel_sub(sm, oh) : NULL;
    duel_tensor *g = d ? dy_over_n(y, dy) : NULL;
    dx[0] = g ? duel_mul(d, g) : NULL;
    duel_release(oh);
    duel_release(sm);
    duel_release(d);
    duel_release(g);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_CROSS_ENTROPY = {"cross_entropy", 2, cross_entropy_backward, S01};

duel_tensor *duel_cross_entropy(duel_tensor *logits, duel_tensor *labels) {
    DUEL_CHECK(logits->ndim == 2, "cross_entropy: logits must be 2-D {N,C}, got %s",
               SHAPE(logits));
    int64_t N = logits->shape[0], C = logits->shape[1];
    DUEL_CHECK(C > 0, "cross_entropy: need at least one class, got logits %s", SHAPE(logits));
    DUEL_CHECK(labels->ndim == 1 && labels->shape[0] == N,
               "cross_entropy: labels must be 1-D {%lld} to match logits %s, got %s",
               (long long)N, SHAPE(logits), SHAPE(labels));
    int64_t *lab = malloc((size_t)(N > 0 ? N : 1) * sizeof *lab);
    double *loss = malloc((size_t)(N > 0 ? N : 1) * sizeof *loss);
    duel_tensor *xc = NULL, *y = NULL;
    if (!lab || !loss) {
        duel_seterr(DUEL_ENOMEM, "cross_entropy: out of memory, got %lld rows", (long long)N);
        goto done;
    }
    for (int64_t i = 0; i < N; i++) {
        float v = duel_flat_get(labels, i);
        if (v != floorf(v)) {
            duel_seterr(DUEL_EINVAL, "cross_entropy: labels must be whole numbers, got %g", v);
            goto done;
        }
        if (!(v >= 1 && v <= (float)C)) {
            duel_seterr(DUEL_EINVAL, "cross_entropy: label out of range 1..%lld, got %g",
                        (long long)C, v);
            goto done;
        }
        lab[i] = (int64_t)v - 1;
    }
    if (!(xc = contig_const(logits))) goto done;
    cross_entropy_kernel(loss, xc->data, lab, N, C);
    double t = 0.0;
    for (int64_t i = 0; i < N; i++) t += loss[i];
    if (!(y = duel_scalar((float)(t / (double)N)))) goto done;
    y->fparam[0] = (float)(1.0 / (double)N);
    duel_tensor *srcs[2] = {logits, labels};
    duel_record(y, &OP_CROSS_ENTROPY, srcs, 2);
done:
    free(lab);
    free(loss);
    duel_release(xc);
    return y;
}

const duel_opdef *const duel_loss_ops[] = {&OP_BCE, &OP_MSE, &OP_L1, &OP_CROSS_ENTROPY, NULL};
