/* elementwise.c -- broadcasting binary ops, unary maps, clamp, where and comparisons.
 * Every backward is written in these same ops, so gradients differentiate again. */
#include "../duel_impl.h"

/* ---- broadcasting binary kernel ------------------------------------------------------------ */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_GT, B_LT, B_GE, B_LE, B_EQ };

__attribute__((always_inline)) static inline float bin_apply(int op, float x, float y) {
    switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_GT: return x > y ? 1.0f : 0.0f;
    case B_LT: return x < y ? 1.0f : 0.0f;
    case B_GE: return x >= y ? 1.0f : 0.0f;
    case B_LE: return x <= y ? 1.0f : 0.0f;
    default: return x == y ? 1.0f : 0.0f;
    }
}

/* o[i] = a[i*sa] op b[i*sb], i < n; unit and zero strides get loops the compiler vectorises */
__attribute__((always_inline)) static inline void bin_row(int op, float *restrict o,
                                                          const float *a, int64_t sa,
                                                          const float *b, int64_t sb, int64_t n) {
    if (sa == 1 && sb == 1)
        for (int64_t i = 0; i < n; i++) o[i] = bin_apply(op, a[i], b[i]);
    else if (sa == 1 && sb == 0) {
        float y = b[0];
        for (int64_t i = 0; i < n; i++) o[i] = bin_apply(op, a[i], y);
    } else if (sa == 0 && sb == 1) {
        float x = a[0];
        for (int64_t i = 0; i < n; i++) o[i] = bin_apply(op, x, b[i]);
    } else
        for (int64_t i = 0; i < n; i++) o[i] = bin_apply(op, a[i * sa], b[i * sb]);
}

/* Merge adjacent dims whose strides chain in both operands; afterwards the innermost dim is as
 * long as possible. shape/sa/sb are edited in place; returns the new rank (>= 1). */
static int coalesce(int64_t *shape, int64_t *sa, int64_t *sb, int nd) {
    if (nd == 0) {
        shape[0] = 1;
        sa[0] = sb[0] = 0;
        return 1;
    }
    int k = 0;
    for (int i = 1; i < nd; i++) {
        if (shape[i] == 1) continue;
        if (shape[k] == 1) {
            shape[k] = shape[i];
            sa[k] = sa[i];
            sb[k] = sb[i];
        } else if (sa[k] == sa[i] * shape[i] && sb[k] == sb[i] * shape[i]) {
            shape[k] *= shape[i];
            sa[k] = sa[i];
            sb[k] = sb[i];
        } else {
            k++;
            shape[k] = shape[i];
            sa[k] = sa[i];
            sb[k] = sb[i];
        }
    }
    return k + 1;
}

/* bin_row with op as a constant in each case, so every op gets its own vectorised loops. The
 * OpenMP regions below are outlined before inlining, so an op passed through them stays a
 * variable: a switch per element, no vectorisation (toy2d_b64's profile: bin_loop and un_loop
 * 17% of a step). Dispatching here, once per row or chunk, fixes that. */
static void bin_row_op(int op, float *restrict o, const float *a, int64_t sa, const float *b,
                       int64_t sb, int64_t n) {
    switch (op) {
    case B_ADD: bin_row(B_ADD, o, a, sa, b, sb, n); break;
    case B_SUB: bin_row(B_SUB, o, a, sa, b, sb, n); break;
    case B_MUL: bin_row(B_MUL, o, a, sa, b, sb, n); break;
    case B_DIV: bin_row(B_DIV, o, a, sa, b, sb, n); break;
    case B_GT: bin_row(B_GT, o, a, sa, b, sb, n); break;
    case B_LT: bin_row(B_LT, o, a, sa, b, sb, n); break;
    case B_GE: bin_row(B_GE, o, a, sa, b, sb, n); break;
    case B_LE: bin_row(B_LE, o, a, sa, b, sb, n); break;
    default: bin_row(B_EQ, o, a, sa, b, sb, n); break;
    }
}

__attribute__((always_inline)) static inline void bin_loop(int op, float *out, const float *a,
                                                           const float *b, const int64_t *shape,
                                                           const int64_t *sa, const int64_t *sb,
                                                           int nd) {
    int64_t inner = shape[nd - 1], rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shape[d];
    DUEL_PAR_FOR(rows * inner >= DUEL_PAR_MIN && rows > 1,
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa = 0, ob = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t i = rem % shape[d];
            rem /= shape[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        bin_row_op(op, out + r * inner, a + oa, sa[nd - 1], b + ob, sb[nd - 1], inner);
    });
}

/* one long row split across threads */
__attribute__((always_inline)) static inline void bin_flat(int op, float *out, const float *a,
                                                           int64_t sa, const float *b, int64_t sb,
                                                           int64_t n) {
    int64_t chunk = 16384, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t s = c * chunk, len = n - s < chunk ? n - s : chunk;
        bin_row_op(op, out + s, a + s * sa, sa, b + s * sb, sb, len);
    }
}

static void binary_kernel(int op, float *out, const float *a, const float *b, int64_t *shape,
                          int64_t *sa, int64_t *sb, int nd) {
    nd = coalesce(shape, sa, sb, nd);
    if (nd == 1 && shape[0] >= DUEL_PAR_MIN) {
        switch (op) {
        case B_ADD: bin_flat(B_ADD, out, a, sa[0], b, sb[0], shape[0]); break;
        case B_SUB: bin_flat(B_SUB, out, a, sa[0], b, sb[0], shape[0]); break;
        case B_MUL: bin_flat(B_MUL, out, a, sa[0], b, sb[0], shape[0]); break;
        case B_DIV: bin_flat(B_DIV, out, a, sa[0], b, sb[0], shape[0]); break;
        default: bin_flat(op, out, a, sa[0], b, sb[0], shape[0]); break;
        }
        return;
    }
    switch (op) {
    case B_ADD: bin_loop(B_ADD, out, a, b, shape, sa, sb, nd); break;
    case B_SUB: bin_loop(B_SUB, out, a, b, shape, sa, sb, nd); break;
    case B_MUL: bin_loop(B_MUL, out, a, b, shape, sa, sb, nd); break;
    case B_DIV: bin_loop(B_DIV, out, a, b, shape, sa, sb, nd); break;
    default: bin_loop(op, out, a, b, shape, sa, sb, nd); break;
    }
}

/* strides of t seen through the broadcast shape (0 where t is broadcast) */
static void bcast_strides(const duel_tensor *t, int nd, const int64_t *shape, int64_t *st) {
    for (int i = 0; i < nd; i++) {
        int j = i - (nd - t->ndim);
        st[i] = j >= 0 && t->shape[j] == shape[i] ? t->stride[j] : 0;
    }
}

static duel_tensor *binary(duel_tensor *a, duel_tensor *b, int op, const duel_opdef *def,
                           const char *name) {
    int64_t shape[DUEL_MAXDIM], sa[DUEL_MAXDIM], sb[DUEL_MAXDIM];
    int nd;
    if (duel_broadcast_shape(a, b, shape, &nd, name)) return NULL;
    duel_tensor *y = duel_new(shape, nd, name);
    if (!y) return NULL;
    bcast_strides(a, nd, shape, sa);
    bcast_strides(b, nd, shape, sb);
    if (duel_numel(y) > 0) binary_kernel(op, y->data, a->data, b->data, shape, sa, sb, nd);
    if (def) {
        duel_tensor *srcs[2] = {a, b};
        duel_record(y, def, srcs, 2);
    }
    return y;
}

/* ---- binary ops and their rules --------------------------------------------------------------- */

static int add_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    for (int i = 0; i < 2; i++)
        if (DUEL_NEED(y, i)) {
            duel_retain(dy);
            dx[i] = dy;
        }
    return 0;
}
static const duel_opdef OP_ADD = {"add", 2, add_backward, 0};

static int sub_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    if (DUEL_NEED(y, 0)) {
        duel_retain(dy);
        dx[0] = dy;
    }
    if (DUEL_NEED(y, 1) && !(dx[1] = duel_neg(dy))) return -1;
    return 0;
}
static const duel_opdef OP_SUB = {"sub", 2, sub_backward, 0};

static int mul_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    if (DUEL_NEED(y, 0) && !(dx[0] = duel_mul(dy, y->src[1]))) return -1;
    if (DUEL_NEED(y, 1) && !(dx[1] = duel_mul(dy, y->src[0]))) return -1;
    return 0;
}
static const duel_opdef OP_MUL = {"mul", 2, mul_backward, DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};

/* d(a/b)/da = 1/b;  d(a/b)/db = -a/b^2 */
static int div_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *a = y->src[0], *b = y->src[1];
    if (DUEL_NEED(y, 0) && !(dx[0] = duel_div(dy, b))) return -1;
    if (DUEL_NEED(y, 1)) {
        duel_tensor *t = duel_mul(dy, a), *bb = duel_mul(b, b), *q = t && bb ? duel_div(t, bb) : NULL;
        dx[1] = q ? duel_neg(q) : NULL;
        duel_release(t);
        duel_release(bb);
        duel_release(q);
        if (!dx[1]) return -1;
    }
    return 0;
}
static const duel_opdef OP_DIV = {"div", 2, div_backward, DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};

duel_tensor *duel_add(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_ADD, &OP_ADD, "add"); }
duel_tensor *duel_sub(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_SUB, &OP_SUB, "sub"); }
duel_tensor *duel_mul(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_MUL, &OP_MUL, "mul"); }
duel_tensor *duel_div(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_DIV, &OP_DIV, "div"); }
duel_tensor *duel_gt(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_GT, NULL, "gt"); }
duel_tensor *duel_lt(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_LT, NULL, "lt"); }
duel_tensor *duel_ge(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_GE, NULL, "ge"); }
duel_tensor *duel_le(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_LE, NULL, "le"); }
duel_tensor *duel_eq(duel_tensor *a, duel_tensor *b) { return binary(a, b, B_EQ, NULL, "eq"); }

/* ---- unary maps ------------------------------------------------------------------------------ */

enum {
    U_NEG, U_EXP, U_LOG, U_SQRT, U_ABS, U_TANH, U_SIGMOID, U_RELU, U_SIGN, U_SIN, U_COS,
    U_POW, U_CLAMP, U_ADDS, U_MULS,
    U_STEP,      /* 1 where x > 0: relu's derivative */
    U_CLAMPMASK, /* 1 where lo <= x <= hi: clamp's derivative */
    U_NONZERO,   /* 1 where x != 0: where's mask */
};

static inline float sigmoidf(float x) {
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* tanh without libm's tanhf, which is scalar and cost ~30 ns per element here (bench/README.md).
 * |x| < 0.55: the odd Taylor series to x^19 (the next term is < 4e-10 there); otherwise
 * 1 - 2 / (e^{2|x|} + 1) with e^y = 2^n e^r, n = round(y / ln 2), |r| <= ln2 / 2 (ln 2 split in
 * two so that r is exact), e^r by its Taylor polynomial to r^7 (error < 6e-9) and 2^n from the
 * exponent bits; |x| is clamped at 10, where tanh rounds to 1. Both branches are computed and one
 * is selected, so the loop vectorises. Against tanh in double, rounded: at most 1 ulp over
 * every float (libm's tanhf: 2). NaN stays NaN, -0 stays -0. */
static inline float tanh_f(float x) {
    float a = fabsf(x), s = x * x;
    float p = -443861162.0f / 1856156927625.0f;
    p = p * s + 6404582.0f / 10854718875.0f;
    p = p * s - 929569.0f / 638512875.0f;
    p = p * s + 21844.0f / 6081075.0f;
    p = p * s - 1382.0f / 155925.0f;
    p = p * s + 62.0f / 2835.0f;
    p = p * s - 17.0f / 315.0f;
    p = p * s + 2.0f / 15.0f;
    p = p * s - 1.0f / 3.0f;
    float small = a + a * (s * p);
    float y = 2.0f * (a < 10.0f ? a : 10.0f);
    float nf = floorf(y * 1.44269504088896341f + 0.5f);
    float r = (y - nf * 0.693145751953125f) - nf * 1.42860682030941723e-6f;
    float e = 1.0f / 5040;
    e = e * r + 1.0f / 720;
    e = e * r + 1.0f / 120;
    e = e * r + 1.0f / 24;
    e = e * r + 1.0f / 6;
    e = e * r + 0.5f;
    e = e * r + 1.0f;
    e = e * r + 1.0f;
    int32_t bits = ((int32_t)nf + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float t = a < 0.55f ? small : 1.0f - 2.0f / (e * two_n + 1.0f);
    return x != x ? x : copysignf(t, x);
}

static inline float powf_int(float x, float p) {
    if (p == 2.0f) return x * x;
    if (p == 1.0f) return x;
    if (p == 0.0f) return 1.0f;
    if (p == 0.5f) return sqrtf(x);
    if (p == -1.0f) return 1.0f / x;
    return powf(x, p);
}

__attribute__((always_inline)) static inline float un_apply(int op, float v, float p0, float p1) {
    switch (op) {
    case U_NEG: return -v;
    case U_EXP: return expf(v);
    case U_LOG: return logf(v);
    case U_SQRT: return sqrtf(v);
    case U_ABS: return fabsf(v);
    case U_TANH: return tanh_f(v);
    case U_SIGMOID: return sigmoidf(v);
    case U_RELU: return v > 0 ? v : 0.0f;
    case U_SIGN: return v > 0 ? 1.0f : v < 0 ? -1.0f : 0.0f;
    case U_SIN: return sinf(v);
    case U_COS: return cosf(v);
    case U_POW: return powf_int(v, p0);
    case U_CLAMP: return v < p0 ? p0 : v > p1 ? p1 : v; /* NaN bounds never compare */
    case U_ADDS: return v + p0;
    case U_MULS: return v * p0;
    case U_STEP: return v > 0 ? 1.0f : 0.0f;
    case U_CLAMPMASK: return (v < p0 || v > p1) ? 0.0f : 1.0f;
    default: return v != 0 ? 1.0f : 0.0f;
    }
}

__attribute__((always_inline)) static inline void un_seq(int op, float *restrict y,
                                                         const float *restrict x, int64_t n,
                                                         float p0, float p1) {
    for (int64_t i = 0; i < n; i++) y[i] = un_apply(op, x[i], p0, p1);
}

/* y[i] = f(x[i]) for n contiguous floats; the switch sits outside the loop (see bin_row_op), so
 * each map gets its own loop that the compiler can vectorise */
static void un_range(int op, float *restrict y, const float *restrict x, int64_t n, float p0,
                     float p1) {
    switch (op) {
    case U_NEG: un_seq(U_NEG, y, x, n, p0, p1); break;
    case U_EXP: un_seq(U_EXP, y, x, n, p0, p1); break;
    case U_LOG: un_seq(U_LOG, y, x, n, p0, p1); break;
    case U_SQRT: un_seq(U_SQRT, y, x, n, p0, p1); break;
    case U_ABS: un_seq(U_ABS, y, x, n, p0, p1); break;
    case U_TANH: un_seq(U_TANH, y, x, n, p0, p1); break;
    case U_SIGMOID: un_seq(U_SIGMOID, y, x, n, p0, p1); break;
    case U_RELU: un_seq(U_RELU, y, x, n, p0, p1); break;
    case U_SIGN: un_seq(U_SIGN, y, x, n, p0, p1); break;
    case U_SIN: un_seq(U_SIN, y, x, n, p0, p1); break;
    case U_COS: un_seq(U_COS, y, x, n, p0, p1); break;
    case U_POW: un_seq(U_POW, y, x, n, p0, p1); break;
    case U_CLAMP: un_seq(U_CLAMP, y, x, n, p0, p1); break;
    case U_ADDS: un_seq(U_ADDS, y, x, n, p0, p1); break;
    case U_MULS: un_seq(U_MULS, y, x, n, p0, p1); break;
    case U_STEP: un_seq(U_STEP, y, x, n, p0, p1); break;
    case U_CLAMPMASK: un_seq(U_CLAMPMASK, y, x, n, p0, p1); break;
    default: un_seq(U_NONZERO, y, x, n, p0, p1); break;
    }
}

/* in chunks across threads, each chunk through un_range */
static void unary_kernel(int op, float *restrict y, const float *restrict x, int64_t n, float p0,
                         float p1) {
    int64_t chunk = 16384, nchunks = (n + chunk - 1) / chunk;
    int heavy = op == U_EXP || op == U_LOG || op == U_TANH || op == U_SIGMOID || op == U_SIN ||
                op == U_COS || op == U_POW;
    DUEL_PAR_FOR(n >= (heavy ? DUEL_PAR_MIN_HEAVY : DUEL_PAR_MIN),
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t s = c * chunk, len = n - s < chunk ? n - s : chunk;
        un_range(op, y + s, x + s, len, p0, p1);
    });
}

static duel_tensor *unary(duel_tensor *x, int op, float p0, float p1, const duel_opdef *def) {
    const char *name = def ? def->name : "mask";
    duel_tensor *xc = duel_contiguous(x);
    if (!xc) return NULL;
    duel_tensor *y = duel_new(x->shape, x->ndim, name);
    if (y) {
        unary_kernel(op, y->data, xc->data, duel_numel(y), p0, p1);
        y->fparam[0] = p0;
        y->fparam[1] = p1;
        if (def) duel_record(y, def, &x, 1);
    }
    duel_release(xc);
    return y;
}

/* constant masks: derivatives of piecewise functions, carrying no graph */
static duel_tensor *mask(duel_tensor *x, int op, float p0, float p1) {
    return unary(x, op, p0, p1, NULL);
}

/* dx = dy * f, releasing f */
static int times(duel_tensor *dy, duel_tensor *f, duel_tensor **dx) {
    if (!f) return -1;
    *dx = duel_mul(dy, f);
    duel_release(f);
    return *dx ? 0 : -1;
}

static int neg_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    (void)y;
    return (dx[0] = duel_neg(dy)) ? 0 : -1;
}
static int exp_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return (dx[0] = duel_mul(dy, y)) ? 0 : -1;
}
static int log_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return (dx[0] = duel_div(dy, y->src[0])) ? 0 : -1;
}
static int sqrt_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) { /* dy / (2y) */
    duel_tensor *h = duel_mul_scalar(dy, 0.5f);
    dx[0] = h ? duel_div(h, y) : NULL;
    duel_release(h);
    return dx[0] ? 0 : -1;
}
static int abs_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return times(dy, mask(y->src[0], U_SIGN, 0, 0), dx);
}
static int tanh_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) { /* dy (1 - y^2) */
    duel_tensor *yy = duel_mul(y, y), *n = yy ? duel_neg(yy) : NULL;
    duel_release(yy);
    duel_tensor *d = n ? duel_add_scalar(n, 1.0f) : NULL;
    duel_release(n);
    return times(dy, d, dx);
}
static int sigmoid_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) { /* dy y (1-y) */
    duel_tensor *n = duel_neg(y), *one_minus = n ? duel_add_scalar(n, 1.0f) : NULL;
    duel_release(n);
    duel_tensor *d = one_minus ? duel_mul(y, one_minus) : NULL;
    duel_release(one_minus);
    return times(dy, d, dx);
}
static int relu_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return times(dy, mask(y->src[0], U_STEP, 0, 0), dx);
}
static int sign_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    (void)dy;
    return (dx[0] = duel_zeros_like(y->src[0])) ? 0 : -1;
}
static int sin_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return times(dy, duel_cos(y->src[0]), dx);
}
static int cos_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *s = duel_sin(y->src[0]), *n = s ? duel_neg(s) : NULL;
    duel_release(s);
    return times(dy, n, dx);
}
static int pow_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) { /* dy p x^(p-1) */
    float p = y->fparam[0];
    if (p == 0.0f) return (dx[0] = duel_zeros_like(y->src[0])) ? 0 : -1;
    duel_tensor *q = p == 1.0f ? (duel_retain(y->src[0]), y->src[0]) : duel_pow(y->src[0], p - 1);
    duel_tensor *d = q ? duel_mul_scalar(q, p) : NULL;
    duel_release(q);
    if (p == 1.0f) { /* x^0 = 1 */
        duel_release(d);
        duel_retain(dy);
        dx[0] = dy;
        return 0;
    }
    return times(dy, d, dx);
}
static int clamp_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return times(dy, mask(y->src[0], U_CLAMPMASK, y->fparam[0], y->fparam[1]), dx);
}
static int adds_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    (void)y;
    duel_retain(dy);
    dx[0] = dy;
    return 0;
}
static int muls_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    return (dx[0] = duel_mul_scalar(dy, y->fparam[0])) ? 0 : -1;
}

#define S0 DUEL_SAVE_SRC(0)
static const duel_opdef OP_NEG = {"neg", 1, neg_backward, 0};
static const duel_opdef OP_EXP = {"exp", 1, exp_backward, DUEL_SAVE_OUT};
static const duel_opdef OP_LOG = {"log", 1, log_backward, S0};
static const duel_opdef OP_SQRT = {"sqrt", 1, sqrt_backward, DUEL_SAVE_OUT};
static const duel_opdef OP_ABS = {"abs", 1, abs_backward, S0};
static const duel_opdef OP_TANH = {"tanh", 1, tanh_backward, DUEL_SAVE_OUT};
static const duel_opdef OP_SIGMOID = {"sigmoid", 1, sigmoid_backward, DUEL_SAVE_OUT};
static const duel_opdef OP_RELU = {"relu", 1, relu_backward, S0};
static const duel_opdef OP_SIGN = {"sign", 1, sign_backward, 0};
static const duel_opdef OP_SIN = {"sin", 1, sin_backward, S0};
static const duel_opdef OP_COS = {"cos", 1, cos_backward, S0};
static const duel_opdef OP_POW = {"pow", 1, pow_backward, S0};
static const duel_opdef OP_CLAMP = {"clamp", 1, clamp_backward, S0};
static const duel_opdef OP_ADDS = {"add_scalar", 1, adds_backward, 0};
static const duel_opdef OP_MULS = {"mul_scalar", 1, muls_backward, 0};

duel_tensor *duel_neg(duel_tensor *x) { return unary(x, U_NEG, 0, 0, &OP_NEG); }
duel_tensor *duel_exp(duel_tensor *x) { return unary(x, U_EXP, 0, 0, &OP_EXP); }
duel_tensor *duel_log(duel_tensor *x) { return unary(x, U_LOG, 0, 0, &OP_LOG); }
duel_tensor *duel_sqrt(duel_tensor *x) { return unary(x, U_SQRT, 0, 0, &OP_SQRT); }
duel_tensor *duel_abs(duel_tensor *x) { return unary(x, U_ABS, 0, 0, &OP_ABS); }
duel_tensor *duel_tanh(duel_tensor *x) { return unary(x, U_TANH, 0, 0, &OP_TANH); }
duel_tensor *duel_sigmoid(duel_tensor *x) { return unary(x, U_SIGMOID, 0, 0, &OP_SIGMOID); }
duel_tensor *duel_relu(duel_tensor *x) { return unary(x, U_RELU, 0, 0, &OP_RELU); }
duel_tensor *duel_sign(duel_tensor *x) { return unary(x, U_SIGN, 0, 0, &OP_SIGN); }
duel_tensor *duel_sin(duel_tensor *x) { return unary(x, U_SIN, 0, 0, &OP_SIN); }
duel_tensor *duel_cos(duel_tensor *x) { return unary(x, U_COS, 0, 0, &OP_COS); }

duel_tensor *duel_pow(duel_tensor *x, float p) {
    DUEL_CHECK(isfinite(p), "pow: exponent must be finite, got %g", p);
    return unary(x, U_POW, p, 0, &OP_POW);
}

duel_tensor *duel_clamp(duel_tensor *x, float lo, float hi) {
    DUEL_CHECK(isnan(lo) || isnan(hi) || lo <= hi,
               "clamp: lower bound must not exceed upper bound, got (%g, %g)", lo, hi);
    return unary(x, U_CLAMP, lo, hi, &OP_CLAMP);
}

duel_tensor *duel_add_scalar(duel_tensor *x, float s) { return unary(x, U_ADDS, s, 0, &OP_ADDS); }
duel_tensor *duel_mul_scalar(duel_tensor *x, float s) { return unary(x, U_MULS, s, 0, &OP_MULS); }

/* sign of a^b over the broadcast shape: -1 where a < 0 and b is odd, NaN where a < 0 and b is
 * not whole, else 1. Piecewise constant, so it carries no graph. */
static duel_tensor *pow_sign(duel_tensor *a, duel_tensor *b, const int64_t *shape, int nd) {
    int prev = duel_set_grad_enabled(0);
    duel_tensor *s = duel_new(shape, nd, "pow"), *ea = s ? duel_expand(a, shape, nd) : NULL,
                *eb = ea ? duel_expand(b, shape, nd) : NULL;
    duel_set_grad_enabled(prev);
    if (eb)
        for (int64_t i = 0, n = duel_numel(s); i < n; i++) {
            float x = duel_flat_get(ea, i), p = duel_flat_get(eb, i), v = 1.0f;
            if (x < 0) v = p != floorf(p) ? NAN : fmodf(p, 2.0f) != 0 ? -1.0f : 1.0f;
            s->data[i] = v;
        }
    else {
        duel_release(s);
        s = NULL;
    }
    duel_release(ea);
    duel_release(eb);
    return s;
}

/* a^b with a tensor exponent: exp(b log|a|), times pow_sign where some a < 0 (so a negative base
 * with a whole exponent works; d/da = b y / a either way) */
duel_tensor *duel_pow_tensor(duel_tensor *a, duel_tensor *b) {
    int64_t shape[DUEL_MAXDIM];
    int nd, neg = 0;
    if (duel_broadcast_shape(a, b, shape, &nd, "pow")) return NULL;
    for (int64_t i = 0, n = duel_numel(a); i < n && !neg; i++) neg = duel_flat_get(a, i) < 0;
    duel_tensor *aa = neg ? duel_abs(a) : (duel_retain(a), a);
    duel_tensor *la = aa ? duel_log(aa) : NULL, *m = la ? duel_mul(b, la) : NULL;
    duel_release(aa);
    duel_release(la);
    duel_tensor *y = m ? duel_exp(m) : NULL;
    duel_release(m);
    if (!y || !neg) return y;
    duel_tensor *s = pow_sign(a, b, shape, nd), *ys = s ? duel_mul(y, s) : NULL;
    duel_release(s);
    duel_release(y);
    return ys;
}

/* ---- where --------------------------------------------------------------------------------- */

static int where_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *m = mask(y->src[0], U_NONZERO, 0, 0);
    if (!m) return -1;
    int rc = 0;
    if (DUEL_NEED(y, 1) && !(dx[1] = duel_mul(dy, m))) rc = -1;
    if (!rc && DUEL_NEED(y, 2)) {
        duel_tensor *d = duel_mul(dy, m);
        dx[2] = d ? duel_sub(dy, d) : NULL;
        duel_release(d);
        if (!dx[2]) rc = -1;
    }
    duel_release(m);
    return rc;
}
static const duel_opdef OP_WHERE = {"where", 3, where_backward, S0};

duel_tensor *duel_where(duel_tensor *cond, duel_tensor *a, duel_tensor *b) {
    int64_t s1[DUEL_MAXDIM], s2[DUEL_MAXDIM];
    int n1, n2;
    if (duel_broadcast_shape(a, b, s1, &n1, "where")) return NULL;
    duel_tensor tmp = {.ndim = n1};
    memcpy(tmp.shape, s1, sizeof s1);
    if (duel_broadcast_shape(cond, &tmp, s2, &n2, "where")) return NULL;
    duel_tensor *y = duel_new(s2, n2, "where");
    if (!y) return NULL;
    duel_tensor *ec = duel_expand(cond, s2, n2), *ea = ec ? duel_expand(a, s2, n2) : NULL,
                *eb = ea ? duel_expand(b, s2, n2) : NULL;
    if (!eb) {
        duel_release(ec);
        duel_release(ea);
        duel_release(y);
        return NULL;
    }
    int64_t n = duel_numel(y);
    for (int64_t i = 0; i < n; i++) {
        float c = duel_flat_get(ec, i);
        y->data[i] = c != 0 ? duel_flat_get(ea, i) : duel_flat_get(eb, i);
    }
    duel_release(ec);
    duel_release(ea);
    duel_release(eb);
    duel_tensor *srcs[3] = {cond, a, b};
    duel_record(y, &OP_WHERE, srcs, 3);
    return y;
}

/* ---- in place, no graph (gradient accumulation, optimizers) ----------------------------------- */

int duel_add_(duel_tensor *dst, duel_tensor *src, float alpha) {
    DUEL_CHECK_INT(duel_is_contiguous(dst), "add_: destination must be contiguous, got shape %s",
                   SHAPE(dst));
    if (duel_check_inplace(dst, "add_")) return -1;
    duel_tensor *e = duel_expand(src, dst->shape, dst->ndim);
    if (!e) return -1;
    int64_t n = duel_numel(dst);
    float *d = dst->data;
    if (duel_is_contiguous(e) && duel_numel(e) == n) {
        const float *s = e->data;
        DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
        for (int64_t i = 0; i < n; i++) d[i] += alpha * s[i];
        );
    } else {
        for (int64_t i = 0; i < n; i++) d[i] += alpha * duel_flat_get(e, i);
    }
    duel_release(e);
    duel_bump_version(dst, "add_");
    return 0;
}

int duel_mul_scalar_(duel_tensor *dst, float s) {
    DUEL_CHECK_INT(duel_is_contiguous(dst), "mul_: destination must be contiguous, got shape %s",
                   SHAPE(dst));
    if (duel_check_inplace(dst, "mul_")) return -1;
    int64_t n = duel_numel(dst);
    float *d = dst->data;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) d[i] *= s;
    );
    duel_bump_version(dst, "mul_");
    return 0;
}

const duel_opdef *const duel_elementwise_ops[] = {
    &OP_ADD,  &OP_SUB,  &OP_MUL, &OP_DIV, &OP_NEG,   &OP_EXP,   &OP_LOG,  &OP_SQRT,
    &OP_ABS,  &OP_TANH, &OP_SIGMOID, &OP_RELU, &OP_SIGN, &OP_SIN, &OP_COS, &OP_POW,
    &OP_CLAMP, &OP_ADDS, &OP_MULS, &OP_WHERE, NULL};
