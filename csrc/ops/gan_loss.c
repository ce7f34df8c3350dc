/* gan_loss.c -- the adversarial losses of duel.gan and the gradient-norm penalty term, as fused
 * forward kernels (one pass over the discriminator outputs, sums in double over fixed chunks, so
 * a loss does not depend on the thread count) with backward rules written in duel_* ops, so that
 * they differentiate again.
 *
 * Inputs are logits / critic values of any shape (a {N} vector, a {N,1,H,W} PatchGAN map, ...).
 * Every term is reduced by the MEAN over its tensor's elements; a D loss is the sum of the two
 * means (real and fake may have different sizes, except for 'relativistic'). sp(x) = softplus(x)
 * = log(1 + e^x), computed as max(x,0) + log1p(e^-|x|): exact for |x| of 100 and more.
 *
 *   kind           paper                          D loss                         G loss
 *   minimax        Goodfellow 2014, eq. 1         mean sp(-r) + mean sp(f)       -mean sp(f)
 *                  (G minimises E log(1 - D(G(z))), the saturating form: log(1 - sigmoid(f)) =
 *                  -sp(f))
 *   nonsaturating  Goodfellow 2014, sec. 3        as minimax                     mean sp(-f)
 *                  (-log D(G(z)); = BCE-with-logits with targets 1/0, chainer-gan-lib's stdgan)
 *   lsgan          Mao 2017, a=0 b=1 c=1          mean (r-1)^2 + mean f^2        mean (f-1)^2
 *                  (CycleGAN's nn.MSELoss: mean, no 1/2. The LSGAN paper writes 1/2 E[.] per
 *                  term and its code sums with tf.nn.l2_loss = sum/2 over the batch: for a batch
 *                  of n, that code's loss is (n/2) times this one)
 *   hinge          Lim & Ye 2017; Miyato 2018     mean relu(1-r) + mean relu(1+f)   -mean f
 *   wgan           Arjovsky 2017; Gulrajani 2017  mean f - mean r                -mean f
 *   relativistic   Huang 2024 (R3GAN)             mean sp(f_i - r_i)             mean sp(r_i - f_i)
 *                  (softplus(-(D(x_i) - D(G(z_i)))) for D and the swap for G: the i-th real is
 *                  paired with the i-th fake)
 *
 * grad_norm_penalty(g, center, weight, one_sided): g {N,...} -> weight * mean_i (|g_i| - center)^2
 * with |g_i| the L2 norm over every non-batch element of sample i (one-sided: max(0, .)^2), the
 * term of WGAN-GP (Gulrajani 2017) and, with center 0, of R1/R2 (Mescheder 2018). */
#include "../duel_impl.h"

/* x's values, contiguous, without recording a node (kernels read them; nodes record x itself) */
static duel_tensor *contig_const(duel_tensor *x) {
    int prev = duel_set_grad_enabled(0);
    duel_tensor *c = duel_contiguous(x);
    duel_set_grad_enabled(prev);
    return c;
}

/* ---- elementwise terms ----------------------------------------------------------------------- */

enum {
    T_NONE,
    T_SP_NEG,     /* sp(-x): real side of BCE, non-saturating G, relativistic pairs */
    T_SP_POS,     /* sp(x): fake side of BCE */
    T_NEG_SP_POS, /* -sp(x) = log(1 - sigmoid(x)): saturating G */
    T_SQ_ONE,     /* (x - 1)^2 */
    T_SQ_ZERO,    /* x^2 */
    T_HINGE_ONE,  /* relu(1 - x) */
    T_HINGE_NEG,  /* relu(1 + x) */
    T_NEG,        /* -x */
    T_ID,         /* x */
};

static inline float softplus_f(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

/* one term in float (exp <= 1, so nothing overflows); the sums are taken in double */
__attribute__((always_inline)) static inline float term_value(int t, float x) {
    switch (t) {
    case T_SP_NEG: return softplus_f(-x);
    case T_SP_POS: return softplus_f(x);
    case T_NEG_SP_POS: return -softplus_f(x);
    case T_SQ_ONE: return (x - 1.0f) * (x - 1.0f);
    case T_SQ_ZERO: return x * x;
    case T_HINGE_ONE: return x < 1.0f ? 1.0f - x : 0.0f;
    case T_HINGE_NEG: return x > -1.0f ? 1.0f + x : 0.0f;
    case T_NEG: return -x;
    case T_ID: return x;
    default: return 0.0f;
    }
}

enum { CHUNKS = 256 };

/* sum over i < n of term(a[i] - b[i]) (b NULL: term(a[i])); a, b contiguous. The chunks depend
 * on n alone and their partial sums are added in order. */
static double term_sum_kernel(int t, const float *a, const float *b, int64_t n) {
    double part[CHUNKS];
    int64_t len = (n + CHUNKS - 1) / CHUNKS;
    int heavy = t == T_SP_NEG || t == T_SP_POS || t == T_NEG_SP_POS;
    DUEL_PAR_FOR(n >= (heavy ? DUEL_PAR_MIN_HEAVY : DUEL_PAR_MIN),
    for (int c = 0; c < CHUNKS; c++) {
        int64_t s = c * len, e = s + len < n ? s + len : n;
        double acc = 0.0;
        if (b)
            for (int64_t i = s; i < e; i++) acc += term_value(t, a[i] - b[i]);
        else
            for (int64_t i = s; i < e; i++) acc += term_value(t, a[i]);
        part[c] = acc;
    });
    double sum = 0.0;
    for (int c = 0; c < CHUNKS; c++) sum += part[c];
    return sum;
}

/* d term / dx times gs (dy / n, 0-dim; each case folds in its constant factor): a new ref of x's
 * shape. Smooth terms are written in ops of x (sigmoid, x - 1, ...), so the result differentiates
 * again; the hinge's step and the linear terms' constants carry no graph, which is exact. */
static duel_tensor *term_grad(int t, duel_tensor *x, duel_tensor *gs) {
    duel_tensor *d = NULL, *k = NULL, *out = NULL;
    switch (t) {
    case T_SP_NEG: /* -sigmoid(-x) */
    {
        duel_tensor *nx = duel_neg(x);
        d = nx ? duel_sigmoid(nx) : NULL;
        k = d ? duel_mul_scalar(gs, -1.0f) : NULL;
        duel_release(nx);
        break;
    }
    case T_SP_POS: d = duel_sigmoid(x); k = d ? (duel_retain(gs), gs) : NULL; break;
    case T_NEG_SP_POS: d = duel_sigmoid(x); k = d ? duel_mul_scalar(gs, -1.0f) : NULL; break;
    case T_SQ_ONE: d = duel_add_scalar(x, -1.0f); k = d ? duel_mul_scalar(gs, 2.0f) : NULL; break;
    case T_SQ_ZERO: d = (duel_retain(x), x); k = duel_mul_scalar(gs, 2.0f); break;
    case T_HINGE_ONE:
    case T_HINGE_NEG: { /* the step -1[x < 1] or 1[x > -1], a constant mask */
        duel_tensor *xc = contig_const(x);
        d = xc ? duel_new(xc->shape, xc->ndim, "gan loss") : NULL;
        if (d) {
            const float *xv = xc->data;
            float *m = d->data;
            int64_t n = duel_numel(d);
            if (t == T_HINGE_ONE)
                for (int64_t i = 0; i < n; i++) m[i] = xv[i] < 1.0f ? -1.0f : 0.0f;
            else
                for (int64_t i = 0; i < n; i++) m[i] = xv[i] > -1.0f ? 1.0f : 0.0f;
            k = (duel_retain(gs), gs);
        }
        duel_release(xc);
        break;
    }
    case T_NEG:
    case T_ID:
        d = duel_full(x->shape, x->ndim, t == T_NEG ? -1.0f : 1.0f);
        k = d ? (duel_retain(gs), gs) : NULL;
        break;
    default: DUEL_ASSERT(0 && "a loss term without a gradient rule");
    }
    if (d && k) out = duel_mul(d, k);
    duel_release(d);
    duel_release(k);
    return out;
}

/* ---- the two losses -------------------------------------------------------------------------- */

/* src0's term, src1's term; pair: one term of (src0 - src1), elementwise by index */
typedef struct {
    int pair, t0, t1;
} gan_spec;

static const char *const KIND_NAMES[DUEL_GAN_NKINDS] = {
    "minimax", "nonsaturating", "lsgan", "hinge", "wgan", "relativistic"};

/* D: src0 = real_out, src1 = fake_out */
static const gan_spec D_SPEC[DUEL_GAN_NKINDS] = {
    [DUEL_GAN_MINIMAX] = {0, T_SP_NEG, T_SP_POS},
    [DUEL_GAN_NONSATURATING] = {0, T_SP_NEG, T_SP_POS},
    [DUEL_GAN_LSGAN] = {0, T_SQ_ONE, T_SQ_ZERO},
    [DUEL_GAN_HINGE] = {0, T_HINGE_ONE, T_HINGE_NEG},
    [DUEL_GAN_WGAN] = {0, T_NEG, T_ID},
    [DUEL_GAN_RELATIVISTIC] = {1, T_SP_NEG, T_NONE},
};
/* G: src0 = fake_out, src1 = real_out (read by 'relativistic' only) */
static const gan_spec G_SPEC[DUEL_GAN_NKINDS] = {
    [DUEL_GAN_MINIMAX] = {0, T_NEG_SP_POS, T_NONE},
    [DUEL_GAN_NONSATURATING] = {0, T_SP_NEG, T_NONE},
    [DUEL_GAN_LSGAN] = {0, T_SQ_ONE, T_NONE},
    [DUEL_GAN_HINGE] = {0, T_NEG, T_NONE},
    [DUEL_GAN_WGAN] = {0, T_NEG, T_NONE},
    [DUEL_GAN_RELATIVISTIC] = {1, T_SP_NEG, T_NONE},
};

const char *duel_gan_kind_name(int kind) {
    return kind >= 0 && kind < DUEL_GAN_NKINDS ? KIND_NAMES[kind] : NULL;
}

int duel_gan_kind(const char *name) {
    for (int k = 0; name && k < DUEL_GAN_NKINDS; k++)
        if (!strcmp(name, KIND_NAMES[k])) return k;
    return -1;
}

/* iparam[0] = kind, iparam[1] = 1 for the G loss; fparam[0] = 1/numel(src0), fparam[1] =
 * 1/numel(src1) */
static int gan_loss_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    const gan_spec *s = (y->iparam[1] ? G_SPEC : D_SPEC) + y->iparam[0];
    int rc = 0;
    if (s->pair) { /* d/da term(a - b) = t'(a - b) = -d/db */
        duel_tensor *g = duel_mul_scalar(dy, y->fparam[0]);
        duel_tensor *d = g ? duel_sub(y->src[0], y->src[1]) : NULL;
        duel_tensor *k = d ? term_grad(s->t0, d, g) : NULL;
        if (!k) rc = -1;
        if (k && DUEL_NEED(y, 1) && !(dx[1] = duel_neg(k))) rc = -1;
        if (k && DUEL_NEED(y, 0)) dx[0] = (duel_retain(k), k);
        duel_release(g);
        duel_release(d);
        duel_release(k);
        return rc;
    }
    const int terms[2] = {s->t0, s->t1};
    for (int i = 0; i < 2 && !rc; i++) {
        if (terms[i] == T_NONE || !DUEL_NEED(y, i)) continue;
        duel_tensor *g = duel_mul_scalar(dy, y->fparam[i]);
        if (!g || !(dx[i] = term_grad(terms[i], y->src[i], g))) rc = -1;
        duel_release(g);
    }
    return rc;
}

#define S01 (DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1))
static const duel_opdef OP_D_LOSS = {"d_loss", 2, gan_loss_backward, S01};
static const duel_opdef OP_G_LOSS = {"g_loss", 2, gan_loss_backward, S01};

static duel_tensor *gan_loss(int is_g, int kind, duel_tensor *a, duel_tensor *b) {
    const char *op = is_g ? "g_loss" : "d_loss";
    const char *na = is_g ? "fake_out" : "real_out", *nb = is_g ? "real_out" : "fake_out";
    DUEL_CHECK(kind >= 0 && kind < DUEL_GAN_NKINDS,
               "%s: kind must be 'minimax', 'nonsaturating', 'lsgan', 'hinge', 'wgan' or "
               "'relativistic', got number %d",
               op, kind);
    const gan_spec *s = (is_g ? G_SPEC : D_SPEC) + kind;
    int use_b = s->pair || s->t1 != T_NONE;
    DUEL_CHECK(!use_b || b, "%s: kind '%s' needs %s, got none", op, KIND_NAMES[kind], nb);
    DUEL_CHECK(duel_numel(a) > 0, "%s: %s must have at least one element, got %s", op, na,
               SHAPE(a));
    if (use_b) {
        DUEL_CHECK(duel_numel(b) > 0, "%s: %s must have at least one element, got %s", op, nb,
                   SHAPE(b));
        DUEL_CHECK(!s->pair || duel_same_shape(a, b),
                   "%s: 'relativistic' pairs %s and %s by index, so their shapes must match, "
                   "got %s and %s",
                   op, na, nb, SHAPE(a), SHAPE(b));
    }
    duel_tensor *ac = contig_const(a), *bc = ac && use_b ? contig_const(b) : NULL, *y = NULL;
    if (!ac || (use_b && !bc)) goto done;
    int64_t na_ = duel_numel(ac), nb_ = use_b ? duel_numel(bc) : 1;
    double v;
    if (s->pair)
        v = term_sum_kernel(s->t0, ac->data, bc->data, na_) / (double)na_;
    else
        v = term_sum_kernel(s->t0, ac->data, NULL, na_) / (double)na_ +
            (s->t1 != T_NONE ? term_sum_kernel(s->t1, bc->data, NULL, nb_) / (double)nb_ : 0.0);
    if (!(y = duel_scalar((float)v))) goto done;
    y->fparam[0] = (float)(1.0 / (double)na_);
    y->fparam[1] = (float)(1.0 / (double)nb_);
    y->iparam[0] = kind;
    y->iparam[1] = is_g;
    duel_tensor *srcs[2] = {a, use_b ? b : NULL};
    duel_record(y, is_g ? &OP_G_LOSS : &OP_D_LOSS, srcs, use_b ? 2 : 1);
done:
    duel_release(ac);
    duel_release(bc);
    return y;
}

duel_tensor *duel_gan_d_loss(int kind, duel_tensor *real_out, duel_tensor *fake_out) {
    DUEL_CHECK(real_out && fake_out, "d_loss: real_out and fake_out are required, got %s",
               real_out ? "no fake_out" : "no real_out");
    return gan_loss(0, kind, real_out, fake_out);
}

duel_tensor *duel_gan_g_loss(int kind, duel_tensor *fake_out, duel_tensor *real_out) {
    DUEL_CHECK(fake_out, "g_loss: fake_out is required, got %s", "none");
    return gan_loss(1, kind, fake_out, real_out);
}

/* ---- gradient-norm penalty ------------------------------------------------------------------ */

/* g: {N, M} contiguous. norm[i] = |g_i| (L2, sums in double); returns sum_i (|g_i| - c)^2, or
 * with one_sided sum_i max(0, |g_i| - c)^2. One thread per row, rows added in order. */
static double penalty_kernel(double *norm, const float *g, int64_t N, int64_t M, double c,
                             int one_sided) {
    DUEL_PAR_FOR(N * M >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < N; i++) {
        const float *r = g + i * M;
        double s = 0.0;
        for (int64_t j = 0; j < M; j++) s += (double)r[j] * r[j];
        norm[i] = sqrt(s);
    });
    double sum = 0.0;
    for (int64_t i = 0; i < N; i++) {
        double d = norm[i] - c;
        if (one_sided && d < 0.0) d = 0.0;
        sum += d * d;
    }
    return sum;
}

/* d/dg_i of w/N (|g_i| - c)^2 = 2w/N (1 - c/|g_i|) g_i (one-sided: max(0, 1 - c/|g_i|)).
 * |g_i| is built in ops from s_i = sum g_i^2 as sqrt(where(s_i > 0, s_i, 1)): a zero row never
 * reaches sqrt at 0 (whose derivative is infinite), and there g_i = 0 makes the product 0, the
 * cone's natural subgradient. With c = 0 the factor is 1 and no norm is needed. */
static int grad_norm_penalty_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *g = y->src[0];
    float c = y->fparam[0], k = y->fparam[1];
    int one_sided = (int)y->iparam[0];
    duel_tensor *gk = duel_mul_scalar(dy, 2.0f * k), *f = NULL, *out = NULL;
    if (!gk) return -1;
    if (c != 0.0f) {
        int64_t N = g->shape[0], flat[2] = {N, -1}, kshape[DUEL_MAXDIM];
        kshape[0] = N;
        for (int i = 1; i < g->ndim; i++) kshape[i] = 1;
        duel_tensor *sq = duel_mul(g, g), *s2 = sq ? duel_reshape(sq, flat, 2) : NULL;
        duel_tensor *s = s2 ? duel_sum_dim(s2, 1, 1) : NULL; /* {N,1} */
        duel_tensor *zero = s ? duel_scalar(0.0f) : NULL, *one = zero ? duel_scalar(1.0f) : NULL;
        duel_tensor *m = one ? duel_gt(s, zero) : NULL, *s1 = m ? duel_where(m, s, one) : NULL;
        duel_tensor *n = s1 ? duel_sqrt(s1) : NULL, *cs = n ? duel_scalar(c) : NULL;
        duel_tensor *r = cs ? duel_div(cs, n) : NULL, *q = r ? duel_sub(one, r) : NULL;
        duel_tensor *q1 = q && one_sided ? duel_relu(q) : (q ? (duel_retain(q), q) : NULL);
        f = q1 ? duel_reshape(q1, kshape, g->ndim) : NULL;
        duel_tensor *tmp[] = {sq, s2, s, zero, one, m, s1, n, cs, r, q, q1};
        for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) duel_release(tmp[i]);
        if (!f) {
            duel_release(gk);
            return -1;
        }
    }
    duel_tensor *gf = f ? duel_mul(g, f) : (duel_retain(g), g);
    out = gf ? duel_mul(gf, gk) : NULL;
    duel_release(gf);
    duel_release(f);
    duel_release(gk);
    dx[0] = out;
    return out ? 0 : -1;
}

static const duel_opdef OP_GRAD_NORM_PENALTY = {"grad_norm_penalty", 1, grad_norm_penalty_backward,
                                                DUEL_SAVE_SRC(0)};

duel_tensor *duel_grad_norm_penalty(duel_tensor *g, float center, float weight, int one_sided,
                                    duel_tensor **norms) {
    const char *op = "grad_norm_penalty";
    if (norms) *norms = NULL;
    DUEL_CHECK(g->ndim >= 1, "%s: the gradient must have a batch dimension {N,...}, got %s", op,
               SHAPE(g));
    DUEL_CHECK(g->shape[0] > 0 && duel_numel(g) > 0,
               "%s: the gradient must have at least one element, got %s", op, SHAPE(g));
    DUEL_CHECK(isfinite(center), "%s: center must be finite, got %g", op, center);
    DUEL_CHECK(isfinite(weight), "%s: weight must be finite, got %g", op, weight);
    int64_t N = g->shape[0], M = duel_numel(g) / N;
    duel_tensor *gc = contig_const(g), *y = NULL, *nt = NULL;
    double *norm = malloc((size_t)N * sizeof *norm);
    if (!gc) goto done;
    if (!norm) {
        duel_seterr(DUEL_ENOMEM, "%s: out of memory, got %lld samples", op, (long long)N);
        goto done;
    }
    double sum = penalty_kernel(norm, gc->data, N, M, center, one_sided);
    if (norms) {
        if (!(nt = duel_new(&N, 1, op))) goto done;
        for (int64_t i = 0; i < N; i++) nt->data[i] = (float)norm[i];
    }
    if (!(y = duel_scalar((float)((double)weight * sum / (double)N)))) goto done;
    y->fparam[0] = center;
    y->fparam[1] = (float)((double)weight / (double)N);
    y->iparam[0] = one_sided ? 1 : 0;
    duel_record(y, &OP_GRAD_NORM_PENALTY, &g, 1);
    if (norms) {
        *norms = nt;
        nt = NULL;
    }
done:
    free(norm);
    duel_release(gc);
    duel_release(nt);
    return y;
}

const duel_opdef *const duel_gan_ops[] = {&OP_D_LOSS, &OP_G_LOSS, &OP_GRAD_NORM_PENALTY, NULL};
