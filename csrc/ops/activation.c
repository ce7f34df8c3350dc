/* activation.c -- leaky_relu, elu, softplus, softmax, log_softmax (fused forward kernels) and
 * inverted dropout. Every backward is written in duel_* ops over constant masks and the op's own
 * (differentiable) output, so gradients differentiate again. */
#include "../duel_impl.h"

/* x's values, contiguous, without recording a node: forward kernels read them (the node records
 * x itself), and so do the constant masks of backward rules, where grad mode may be on. New ref. */
static duel_tensor *contig_const(duel_tensor *x) {
    int prev = duel_set_grad_enabled(0);
    duel_tensor *c = duel_contiguous(x);
    duel_set_grad_enabled(prev);
    return c;
}

/* ---- pointwise activations ------------------------------------------------------------------- */

/* One kernel per op; with deriv the kernel writes a constant mask instead of the value (see each
 * op). x, y: n contiguous floats. */
typedef void (*act_kernel)(float *y, const float *x, int64_t n, float p0, float p1, int deriv);

/* y = x > 0 ? x : slope x;  deriv: 1 or slope (piecewise constant, so the mask is exact) */
static void leaky_relu_kernel(float *y, const float *x, int64_t n, float slope, float unused,
                              int deriv) {
    (void)unused;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? (deriv ? 1.0f : x[i]) : (deriv ? slope : slope * x[i]);
    );
}

/* y = x > 0 ? x : alpha (exp(x) - 1);  deriv: the step 1[x > 0] (the negative side's derivative,
 * y + alpha, depends on x and is built from y in the backward) */
static void elu_kernel(float *y, const float *x, int64_t n, float alpha, float unused, int deriv) {
    (void)unused;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++)
        y[i] = deriv ? (x[i] > 0.0f ? 1.0f : 0.0f) : x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
    );
}

/* y = beta x > threshold ? x : log(1 + exp(beta x)) / beta, the log term as
 * max(z,0) + log1p(exp(-|z|)) so that no threshold makes it overflow;
 * deriv: 1 where linear, else 0 */
static void softplus_kernel(float *y, const float *x, int64_t n, float beta, float threshold,
                            int deriv) {
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) {
        float z = beta * x[i];
        int lin = z > threshold;
        y[i] = deriv ? (lin ? 1.0f : 0.0f)
                     : lin ? x[i] : (fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z)))) / beta;
    });
}

/* y (new ref) = kernel(x) with parameters p0, p1, or the kernel's mask when def is NULL */
static duel_tensor *act_apply(duel_tensor *x, act_kernel k, float p0, float p1,
                              const duel_opdef *def, const char *name) {
    duel_tensor *xc = contig_const(x); /* the node records x itself */
    duel_tensor *y = xc ? duel_new(x->shape, x->ndim, name) : NULL;
    if (y) {
        k(y->data, xc->data, duel_numel(y), p0, p1, def == NULL);
        y->fparam[0] = p0;
        y->fparam[1] = p1;
        if (def) duel_record(y, def, &x, 1);
    }
    duel_release(xc);
    return y;
}

/* dx = dy * (m ? 1 : d), m a constant 0/1 mask; releases m and d */
static int times_select(duel_tensor *dy, duel_tensor *m, duel_tensor *d, duel_tensor **dx) {
    duel_tensor *one = m && d ? duel_scalar(1.0f) : NULL;
    duel_tensor *f = one ? duel_where(m, one, d) : NULL;
    dx[0] = f ? duel_mul(dy, f) : NULL;
    duel_release(one);
    duel_release(f);
    duel_release(m);
    duel_release(d);
    return dx[0] ? 0 : -1;
}

static int leaky_relu_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *m = act_apply(y->src[0], leaky_relu_kernel, y->fparam[0], 0, NULL, "leaky_relu");
    dx[0] = m ? duel_mul(dy, m) : NULL;
    duel_release(m);
    return dx[0] ? 0 : -1;
}

/* dx = dy * (x > 0 ? 1 : y + alpha): y is this op's output, so the negative side differentiates
 * again through elu itself (d/dx (y + alpha) = y + alpha there) */
static int elu_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *m = act_apply(y->src[0], elu_kernel, y->fparam[0], 0, NULL, "elu");
    duel_tensor *d = m ? duel_add_scalar(y, y->fparam[0]) : NULL;
    return times_select(dy, m, d, dx);
}

/* dx = dy * (linear ? 1 : sigmoid(beta x)) */
static int softplus_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    float beta = y->fparam[0], threshold = y->fparam[1];
    duel_tensor *m = act_apply(y->src[0], softplus_kernel, beta, threshold, NULL, "softplus");
    duel_tensor *bx = m ? duel_mul_scalar(y->src[0], beta) : NULL;
    duel_tensor *s = bx ? duel_sigmoid(bx) : NULL;
    duel_release(bx);
    return times_select(dy, m, s, dx);
}

static const duel_opdef OP_LEAKY_RELU = {"leaky_relu", 1, leaky_relu_backward, DUEL_SAVE_SRC(0)};
static const duel_opdef OP_ELU = {"elu", 1, elu_backward, DUEL_SAVE_SRC(0) | DUEL_SAVE_OUT};
static const duel_opdef OP_SOFTPLUS = {"softplus", 1, softplus_backward, DUEL_SAVE_SRC(0)};

duel_tensor *duel_leaky_relu(duel_tensor *x, float slope) {
    DUEL_CHECK(isfinite(slope), "leaky_relu: negative_slope must be finite, got %g", slope);
    return act_apply(x, leaky_relu_kernel, slope, 0, &OP_LEAKY_RELU, "leaky_relu");
}

duel_tensor *duel_elu(duel_tensor *x, float alpha) {
    DUEL_CHECK(isfinite(alpha), "elu: alpha must be finite, got %g", alpha);
    return act_apply(x, elu_kernel, alpha, 0, &OP_ELU, "elu");
}

duel_tensor *duel_softplus(duel_tensor *x, float beta, float threshold) {
    DUEL_CHECK(beta > 0 && isfinite(beta), "softplus: beta must be positive and finite, got %g",
               beta);
    DUEL_CHECK(!isnan(threshold), "softplus: threshold must not be NaN, got %g", threshold);
    return act_apply(x, softplus_kernel, beta, threshold, &OP_SOFTPLUS, "softplus");
}

/* ---- softmax / log_softmax ------------------------------------------------------------------- */

/* x, y: contiguous {outer, n, inner}; softmax (or log_softmax) along n. The row maximum is
 * subtracted first, so logits of any size give finite results; sums are double. A row with a
 * NaN gives NaNs (exp(NaN) poisons the sum). */
static void softmax_kernel(float *y, const float *x, int64_t outer, int64_t n, int64_t inner,
                           int take_log) {
    int64_t rows = outer * inner;
    DUEL_PAR_FOR(rows * n >= DUEL_PAR_MIN && rows > 1,
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / inner) * n * inner + r % inner;
        const float *p = x + base;
        float *q = y + base;
        float m = -INFINITY;
        for (int64_t i = 0; i < n; i++) m = fmaxf(m, p[i * inner]);
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float e = expf(p[i * inner] - m);
            s += e;
            if (!take_log) q[i * inner] = e;
        }
        if (take_log) {
            float ls = (float)log(s);
            for (int64_t i = 0; i < n; i++) q[i * inner] = (p[i * inner] - m) - ls;
        } else {
            float inv = (float)(1.0 / s);
            for (int64_t i = 0; i < n; i++) q[i * inner] *= inv;
        }
    });
}

/* softmax: dx = y (dy - sum(dy y, dim)) */
static int softmax_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int dim = (int)y->iparam[0];
    duel_tensor *gy = duel_mul(dy, y), *s = gy ? duel_sum_dim(gy, dim, 1) : NULL;
    duel_tensor *t = s ? duel_sub(dy, s) : NULL;
    dx[0] = t ? duel_mul(y, t) : NULL;
    duel_release(gy);
    duel_release(s);
    duel_release(t);
    return dx[0] ? 0 : -1;
}

/* log_softmax: dx = dy - exp(y) sum(dy, dim) */
static int log_softmax_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int dim = (int)y->iparam[0];
    duel_tensor *e = duel_exp(y), *s = e ? duel_sum_dim(dy, dim, 1) : NULL;
    duel_tensor *t = s ? duel_mul(e, s) : NULL;
    dx[0] = t ? duel_sub(dy, t) : NULL;
    duel_release(e);
    duel_release(s);
    duel_release(t);
    return dx[0] ? 0 : -1;
}

static const duel_opdef OP_SOFTMAX = {"softmax", 1, softmax_backward, DUEL_SAVE_OUT};
static const duel_opdef OP_LOG_SOFTMAX = {"log_softmax", 1, log_softmax_backward, DUEL_SAVE_OUT};

static duel_tensor *softmax_op(duel_tensor *x, int dim, int log) {
    const char *name = log ? "log_softmax" : "softmax";
    DUEL_CHECK(x->ndim > 0, "%s: input must have at least 1 dimension, got %s", name, SHAPE(x));
    if (duel_check_dim(dim, x->ndim, name, 0)) return NULL;
    duel_tensor *xc = contig_const(x), *y = xc ? duel_new(x->shape, x->ndim, name) : NULL;
    if (y) {
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < dim; i++) outer *= x->shape[i];
        for (int i = dim + 1; i < x->ndim; i++) inner *= x->shape[i];
        if (duel_numel(y) > 0) softmax_kernel(y->data, xc->data, outer, x->shape[dim], inner, log);
        y->iparam[0] = dim;
        duel_record(y, log ? &OP_LOG_SOFTMAX : &OP_SOFTMAX, &x, 1);
    }
    duel_release(xc);
    return y;
}

duel_tensor *duel_softmax(duel_tensor *x, int dim) { return softmax_op(x, dim, 0); }
duel_tensor *duel_log_softmax(duel_tensor *x, int dim) { return softmax_op(x, dim, 1); }

/* ---- dropout --------------------------------------------------------------------------------- */

/* Inverted dropout as PyTorch's: y = x * mask / (1 - p) with mask ~ Bernoulli(1 - p) from the
 * counter-based RNG (the same mask whatever the thread count). The scaled mask is a constant, so
 * the recorded node is a plain mul and the gradient is dy * mask / (1 - p). Not training or
 * p = 0: x itself (a new ref to it); p = 1: x * 0. */
duel_tensor *duel_dropout(duel_tensor *x, float p, int training) {
    DUEL_CHECK(p >= 0.0f && p <= 1.0f, "dropout: probability must be in [0, 1], got %g", p);
    if (!training || p == 0.0f || duel_numel(x) == 0) {
        duel_retain(x);
        return x;
    }
    duel_tensor *m = p == 1.0f ? duel_scalar(0.0f) : duel_bernoulli(x->shape, x->ndim, 1.0f - p);
    if (m && p < 1.0f && duel_mul_scalar_(m, 1.0f / (1.0f - p))) {
        duel_release(m);
        return NULL;
    }
    duel_tensor *y = m ? duel_mul(x, m) : NULL;
    duel_release(m);
    return y;
}

const duel_opdef *const duel_activation_ops[] = {&OP_LEAKY_RELU, &OP_ELU, &OP_SOFTPLUS,
                                                 &OP_SOFTMAX, &OP_LOG_SOFTMAX, NULL};
