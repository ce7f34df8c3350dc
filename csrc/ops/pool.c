/* pool.c -- avg_pool2d and max_pool2d. Each backward is a registered op whose own backward is a
 * forward again, so gradients of any order flow:
 *   avg_pool2d(x)                 d/dx = avg_pool2d_backward(g)    (spreads g over the windows)
 *   avg_pool2d_backward(g)        d/dg = avg_pool2d(gg)            (its adjoint, both linear)
 *   max_pool2d(x; idx)            d/dx = max_pool2d_backward(g; idx) (scatter to the argmax)
 *   max_pool2d_backward(g; idx)   d/dg = a gather at idx, recorded as a max_pool2d node
 * A max_pool2d node is "gather x at the saved argmax positions", which is exactly the forward
 * once idx is known; idx is a source without gradient, as in reduce.c's max, and like all index
 * data in duel it holds 1-based positions (ih*W + iw + 1, within each plane). */
#include "../duel_impl.h"

/* iparam layout: kh kw sh sw ph pw H W (H, W: the input image, for the adjoints) */
enum { Q_KH, Q_KW, Q_SH, Q_SW, Q_PH, Q_PW, Q_H, Q_W };

typedef struct {
    int64_t P, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw; /* P = N*C planes */
} pgeom;

static pgeom make_pgeom(int64_t P, int64_t Ho, int64_t Wo, const int64_t *ip) {
    pgeom q = {P,        ip[Q_H],  ip[Q_W],  Ho,       Wo,      ip[Q_KH],
               ip[Q_KW], ip[Q_SH], ip[Q_SW], ip[Q_PH], ip[Q_PW]};
    return q;
}

/* the part [*lo, *hi) of window o's rows (or columns) that lies inside [0, n) */
static void window(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n, int64_t *lo,
                   int64_t *hi) {
    int64_t a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* y {P,Ho,Wo} = window sums of x {P,H,W} / (kh*kw): padding counts as zeros (PyTorch's
 * count_include_pad default) */
static void avg_pool_kernel(float *y, const float *x, const pgeom *q) {
    float scale = 1.0f / (float)(q->kh * q->kw);
    DUEL_PAR_FOR(q->P * q->Ho * q->Wo * q->kh * q->kw >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < q->P; p++) {
        const float *xp = x + p * q->H * q->W;
        float *yp = y + p * q->Ho * q->Wo;
        for (int64_t oh = 0; oh < q->Ho; oh++) {
            int64_t h0, h1;
            window(oh, q->sh, q->ph, q->kh, q->H, &h0, &h1);
            for (int64_t ow = 0; ow < q->Wo; ow++) {
                int64_t w0, w1;
                window(ow, q->sw, q->pw, q->kw, q->W, &w0, &w1);
                float acc = 0.0f;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) acc += xp[ih * q->W + iw];
                yp[oh * q->Wo + ow] = acc * scale;
            }
        }
    });
}

/* x {P,H,W} = avg_pool_kernel's adjoint applied to g {P,Ho,Wo}: each g spread over its window */
static void avg_unpool_kernel(float *x, const float *g, const pgeom *q) {
    float scale = 1.0f / (float)(q->kh * q->kw);
    DUEL_PAR_FOR(q->P * q->Ho * q->Wo * q->kh * q->kw >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < q->P; p++) {
        float *xp = x + p * q->H * q->W;
        const float *gp = g + p * q->Ho * q->Wo;
        memset(xp, 0, (size_t)(q->H * q->W) * sizeof(float));
        for (int64_t oh = 0; oh < q->Ho; oh++) {
            int64_t h0, h1;
            window(oh, q->sh, q->ph, q->kh, q->H, &h0, &h1);
            for (int64_t ow = 0; ow < q->Wo; ow++) {
                int64_t w0, w1;
                window(ow, q->sw, q->pw, q->kw, q->W, &w0, &w1);
                float v = gp[oh * q->Wo + ow] * scale;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) xp[ih * q->W + iw] += v;
            }
        }
    });
}

/* y {P,Ho,Wo} = window maxima of x {P,H,W} (padding never wins), idx = ih*W + iw + 1 of the
 * first maximum as a float; NaN wins, as it propagates */
static void max_pool_kernel(float *y, float *idx, const float *x, const pgeom *q) {
    DUEL_PAR_FOR(q->P * q->Ho * q->Wo * q->kh * q->kw >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < q->P; p++) {
        const float *xp = x + p * q->H * q->W;
        for (int64_t oh = 0; oh < q->Ho; oh++) {
            int64_t h0, h1;
            window(oh, q->sh, q->ph, q->kh, q->H, &h0, &h1);
            for (int64_t ow = 0; ow < q->Wo; ow++) {
                int64_t w0, w1;
                window(ow, q->sw, q->pw, q->kw, q->W, &w0, &w1);
                int64_t bi = h0 * q->W + w0;
                float best = xp[bi];
                for (int64_t ih = h0; ih < h1 && !isnan(best); ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        float v = xp[ih * q->W + iw];
                        if (v > best || isnan(v)) {
                            best = v;
                            bi = ih * q->W + iw;
                            if (isnan(v)) break;
                        }
                    }
                int64_t o = p * q->Ho * q->Wo + oh * q->Wo + ow;
                y[o] = best;
                idx[o] = (float)(bi + 1);
            }
        }
    });
}

/* x {P,HW} = 0, then x[p][idx[p][o]-1] += g[p][o] for g, idx {P,L} (windows may share a max) */
static void scatter_kernel(float *x, const float *g, const float *idx, int64_t P, int64_t HW,
                           int64_t L) {
    DUEL_PAR_FOR(P * (HW + L) >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < P; p++) {
        float *xp = x + p * HW;
        memset(xp, 0, (size_t)HW * sizeof(float));
        for (int64_t o = 0; o < L; o++) xp[(int64_t)idx[p * L + o] - 1] += g[p * L + o];
    });
}

/* y[p][o] = z[p][idx[p][o]-1] for z {P,HW}, idx and y {P,L} */
static void gather_kernel(float *y, const float *z, const float *idx, int64_t P, int64_t HW,
                          int64_t L) {
    DUEL_PAR_FOR(P * L >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < P; p++)
        for (int64_t o = 0; o < L; o++) y[p * L + o] = z[p * HW + (int64_t)idx[p * L + o] - 1];
    );
}

/* ---- ops ----------------------------------------------------------------------------------- */

static int avg_pool2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static int avg_unpool_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static int max_pool2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static int max_unpool_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static const duel_opdef OP_AVG_POOL2D = {"avg_pool2d", 1, avg_pool2d_backward, 0};
static const duel_opdef OP_AVG_POOL2D_BW = {"avg_pool2d_backward", 1, avg_unpool_backward, 0};
static const duel_opdef OP_MAX_POOL2D = {"max_pool2d", 2, max_pool2d_backward, DUEL_SAVE_SRC(1)};
static const duel_opdef OP_MAX_POOL2D_BW = {"max_pool2d_backward", 2, max_unpool_backward,
                                            DUEL_SAVE_SRC(1)};

static int64_t pool_out(int64_t n, int64_t k, int64_t s, int64_t p) {
    return n + 2 * p < k ? 0 : (n + 2 * p - k) / s + 1;
}

/* avg_pool2d of x {N,C,H,W} (H, W = ip's) */
static duel_tensor *avg_fwd(duel_tensor *x, const int64_t *ip) {
    int64_t shp[4] = {x->shape[0], x->shape[1], pool_out(ip[Q_H], ip[Q_KH], ip[Q_SH], ip[Q_PH]),
                      pool_out(ip[Q_W], ip[Q_KW], ip[Q_SW], ip[Q_PW])};
    pgeom q = make_pgeom(shp[0] * shp[1], shp[2], shp[3], ip);
    duel_tensor *xc = duel_contiguous(x), *y = xc ? duel_new(shp, 4, "avg_pool2d") : NULL;
    if (y) avg_pool_kernel(y->data, xc->data, &q);
    duel_release(xc);
    if (!y) return NULL;
    memcpy(y->iparam, ip, (Q_W + 1) * sizeof(int64_t));
    duel_record(y, &OP_AVG_POOL2D, &x, 1);
    return y;
}

/* avg_pool2d's adjoint: g {N,C,Ho,Wo} -> {N,C,H,W} */
static duel_tensor *avg_unpool(duel_tensor *g, const int64_t *ip) {
    int64_t shp[4] = {g->shape[0], g->shape[1], ip[Q_H], ip[Q_W]};
    pgeom q = make_pgeom(shp[0] * shp[1], g->shape[2], g->shape[3], ip);
    duel_tensor *gc = duel_contiguous(g), *x = gc ? duel_new(shp, 4, "avg_pool2d_backward") : NULL;
    if (x) avg_unpool_kernel(x->data, gc->data, &q);
    duel_release(gc);
    if (!x) return NULL;
    memcpy(x->iparam, ip, (Q_W + 1) * sizeof(int64_t));
    duel_record(x, &OP_AVG_POOL2D_BW, &g, 1);
    return x;
}

static int avg_pool2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    dx[0] = avg_unpool(dy, y->iparam);
    return dx[0] ? 0 : -1;
}
static int avg_unpool_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    dx[0] = avg_fwd(dy, y->iparam);
    return dx[0] ? 0 : -1;
}

/* z {N,C,H,W} gathered at idx {N,C,Ho,Wo}: a max_pool2d node (its backward scatters) */
static duel_tensor *gather(duel_tensor *z, duel_tensor *idx) {
    duel_tensor *zc = duel_contiguous(z), *y = zc ? duel_new(idx->shape, 4, "max_pool2d") : NULL;
    int64_t L = idx->shape[2] * idx->shape[3];
    if (y)
        gather_kernel(y->data, zc->data, idx->data, idx->shape[0] * idx->shape[1],
                      z->shape[2] * z->shape[3], L);
    duel_release(zc);
    if (!y) return NULL;
    duel_tensor *srcs[2] = {z, idx};
    duel_record(y, &OP_MAX_POOL2D, srcs, 2);
    return y;
}

/* g {N,C,Ho,Wo} scattered to idx in zeros {N,C,H,W} */
static duel_tensor *scatter(duel_tensor *g, duel_tensor *idx, int64_t H, int64_t W) {
    int64_t shp[4] = {g->shape[0], g->shape[1], H, W};
    duel_tensor *gc = duel_contiguous(g);
    duel_tensor *x = gc ? duel_new(shp, 4, "max_pool2d_backward") : NULL;
    if (x)
        scatter_kernel(x->data, gc->data, idx->data, shp[0] * shp[1], H * W,
                       g->shape[2] * g->shape[3]);
    duel_release(gc);
    if (!x) return NULL;
    x->iparam[0] = H;
    x->iparam[1] = W;
    duel_tensor *srcs[2] = {g, idx};
    duel_record(x, &OP_MAX_POOL2D_BW, srcs, 2);
    return x;
}

static int max_pool2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0];
    dx[0] = scatter(dy, y->src[1], x->shape[2], x->shape[3]);
    return dx[0] ? 0 : -1;
}
static int max_unpool_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    dx[0] = gather(dy, y->src[1]);
    return dx[0] ? 0 : -1;
}

/* ---- public ops ------------------------------------------------------------------------------ */

static int check_pool(const char *op, duel_tensor *x, const int64_t k[2], const int64_t stride[2],
                      const int64_t pad[2], int64_t *ip) {
    DUEL_CHECK_INT(x->ndim == 4, "%s: input must be 4-D {N,C,H,W}, got %s", op, SHAPE(x));
    DUEL_CHECK_INT(k[0] > 0 && k[1] > 0, "%s: kernel size must be positive, got {%lld,%lld}", op,
                   (long long)k[0], (long long)k[1]);
    int64_t s[2] = {stride ? stride[0] : k[0], stride ? stride[1] : k[1]};
    int64_t p[2] = {pad ? pad[0] : 0, pad ? pad[1] : 0};
    DUEL_CHECK_INT(s[0] > 0 && s[1] > 0, "%s: stride must be positive, got {%lld,%lld}", op,
                   (long long)s[0], (long long)s[1]);
    DUEL_CHECK_INT(p[0] >= 0 && p[1] >= 0, "%s: padding must be non-negative, got {%lld,%lld}", op,
                   (long long)p[0], (long long)p[1]);
    /* as PyTorch: a window never lies wholly in the padding */
    DUEL_CHECK_INT(2 * p[0] <= k[0] && 2 * p[1] <= k[1],
                   "%s: padding must be at most half the kernel size, got padding {%lld,%lld} "
                   "with kernel {%lld,%lld}",
                   op, (long long)p[0], (long long)p[1], (long long)k[0], (long long)k[1]);
    DUEL_CHECK_INT(
        pool_out(x->shape[2], k[0], s[0], p[0]) > 0 && pool_out(x->shape[3], k[1], s[1], p[1]) > 0,
        "%s: padded input is smaller than the kernel {%lld,%lld} (padding {%lld,%lld}), "
        "got input %s",
        op, (long long)k[0], (long long)k[1], (long long)p[0], (long long)p[1], SHAPE(x));
    int64_t v[8] = {k[0], k[1], s[0], s[1], p[0], p[1], x->shape[2], x->shape[3]};
    memcpy(ip, v, sizeof v);
    return 0;
}

duel_tensor *duel_avg_pool2d(duel_tensor *x, const int64_t k[2], const int64_t stride[2],
                             const int64_t pad[2]) {
    int64_t ip[8];
    if (check_pool("avg_pool2d", x, k, stride, pad, ip)) return NULL;
    return avg_fwd(x, ip);
}

duel_tensor *duel_max_pool2d(duel_tensor *x, const int64_t k[2], const int64_t stride[2],
                             const int64_t pad[2]) {
    int64_t ip[8];
    if (check_pool("max_pool2d", x, k, stride, pad, ip)) return NULL;
    /* indices travel as floats: exact up to 2^24 */
    DUEL_CHECK(x->shape[2] * x->shape[3] <= (1 << 24),
               "max_pool2d: planes over 2^24 elements are not supported, got input %s", SHAPE(x));
    int64_t shp[4] = {x->shape[0], x->shape[1], pool_out(ip[Q_H], ip[Q_KH], ip[Q_SH], ip[Q_PH]),
                      pool_out(ip[Q_W], ip[Q_KW], ip[Q_SW], ip[Q_PW])};
    pgeom q = make_pgeom(shp[0] * shp[1], shp[2], shp[3], ip);
    duel_tensor *xc = duel_contiguous(x), *y = xc ? duel_new(shp, 4, "max_pool2d") : NULL;
    duel_tensor *idx = y ? duel_new(shp, 4, "max_pool2d") : NULL;
    if (idx) max_pool_kernel(y->data, idx->data, xc->data, &q);
    duel_release(xc);
    if (!idx) {
        duel_release(y);
        return NULL;
    }
    duel_tensor *srcs[2] = {x, idx};
    duel_record(y, &OP_MAX_POOL2D, srcs, 2);
    duel_release(idx);
    return y;
}

const duel_opdef *const duel_pool_ops[] = {&OP_AVG_POOL2D, &OP_AVG_POOL2D_BW, &OP_MAX_POOL2D,
                                           &OP_MAX_POOL2D_BW, NULL};
