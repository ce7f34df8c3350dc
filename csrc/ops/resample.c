/* resample.c -- 2-D padding and upsampling, each a pair of linear ops closed under
 * differentiation:
 *   pad2d(x)              backward: pad2d_backward(g)     (folds the border back, or crops)
 *   pad2d_backward(g)     backward: pad2d(gg)             (the adjoint of the adjoint)
 *   upsample(x)           backward: upsample_backward(g)  (scatters each output to its sources)
 *   upsample_backward(g)  backward: upsample(gg)
 * Both work on the last two dims of a contiguous x seen as {B,H,W} (leading dims folded). */
#include "../duel_impl.h"

/* ---- pad2d ---------------------------------------------------------------------------------- */

/* source index of padded position i (relative to the first interior one) in a dim of size n,
 * or -1 for zero padding. Reflect needs pad < n, replicate n >= 1 (checked by the op). */
static inline int64_t pad_src(int64_t i, int64_t n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == DUEL_PAD_ZERO) return -1;
    if (mode == DUEL_PAD_REFLECT) return i < 0 ? -i : 2 * (n - 1) - i;
    return i < 0 ? 0 : n - 1;
}

/* map[k] = source index of output position k along a dim: n inputs, `before` pads in front */
static void pad_map(int64_t *map, int64_t nout, int64_t n, int64_t before, int mode) {
    for (int64_t k = 0; k < nout; k++) map[k] = pad_src(k - before, n, mode);
}

/* y {B,Ho,Wo} from x {B,H,W}; rmap {Ho}, cmap {Wo} (source indices or -1) */
static void pad2d_kernel(float *y, const float *x, int64_t B, int64_t H, int64_t W, int64_t Ho,
                         int64_t Wo, const int64_t *rmap, const int64_t *cmap, int64_t left) {
    DUEL_PAR_FOR(B * Ho * Wo >= DUEL_PAR_MIN,
    for (int64_t bi = 0; bi < B * Ho; bi++) {
        int64_t b = bi / Ho, si = rmap[bi % Ho];
        float *yr = y + bi * Wo;
        if (si < 0) {
            for (int64_t j = 0; j < Wo; j++) yr[j] = 0.0f;
            continue;
        }
        const float *xr = x + (b * H + si) * W;
        for (int64_t j = 0; j < left; j++) yr[j] = cmap[j] < 0 ? 0.0f : xr[cmap[j]];
        memcpy(yr + left, xr, sizeof(float) * (size_t)W);
        for (int64_t j = left + W; j < Wo; j++) yr[j] = cmap[j] < 0 ? 0.0f : xr[cmap[j]];
    });
}

/* pad2d's adjoint: dx {B,H,W} = sum of g {B,Ho,Wo} over the output positions that read each
 * input. Each input row is owned by one thread, which gathers its interior row and then the
 * border rows mapped onto it, folding their border columns; no two threads write one place. */
static void pad2d_adjoint_kernel(float *dx, const float *g, int64_t B, int64_t H, int64_t W,
                                 int64_t Ho, int64_t Wo, const int64_t *rmap, const int64_t *cmap,
                                 int64_t left, int64_t top) {
    DUEL_PAR_FOR(B * Ho * Wo >= DUEL_PAR_MIN,
    for (int64_t bs = 0; bs < B * H; bs++) {
        int64_t b = bs / H, si = bs % H;
        float *dr = dx + bs * W;
        for (int64_t k = 0; k <= Ho - H; k++) { /* k == 0: the interior row; then the border */
            int64_t i = k == 0 ? top + si : k - 1 < top ? k - 1 : k - 1 + H;
            if (k > 0 && rmap[i] != si) continue;
            const float *gr = g + (b * Ho + i) * Wo;
            if (k == 0) memcpy(dr, gr + left, sizeof(float) * (size_t)W);
            else
                for (int64_t j = 0; j < W; j++) dr[j] += gr[left + j];
            for (int64_t j = 0; j < Wo; j++)
                if ((j < left || j >= left + W) && cmap[j] >= 0) dr[cmap[j]] += gr[j];
        }
    });
}

static int64_t lead_numel(const duel_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim - 2; i++) n *= t->shape[i];
    return n;
}

static duel_tensor *pad2d_adjoint(duel_tensor *g, int64_t H, int64_t W, const int64_t *pad,
                                  int mode);

static int pad2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0];
    dx[0] = pad2d_adjoint(dy, x->shape[x->ndim - 2], x->shape[x->ndim - 1], y->iparam,
                          (int)y->iparam[4]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_PAD2D = {"pad2d", 1, pad2d_backward, 0};

static int pad2d_adjoint_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    dx[0] = duel_pad2d(dy, y->iparam, (int)y->iparam[4]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_PAD2D_BACKWARD = {"pad2d_backward", 1, pad2d_adjoint_backward, 0};

/* run the pad kernel (adjoint = 0) or its adjoint between x {..,H,W} and its padded shape */
static duel_tensor *pad2d_run(duel_tensor *in, int64_t H, int64_t W, const int64_t *pad, int mode,
                              int adjoint) {
    int64_t Ho = H + pad[2] + pad[3], Wo = W + pad[0] + pad[1], shape[DUEL_MAXDIM];
    memcpy(shape, in->shape, sizeof shape);
    shape[in->ndim - 2] = adjoint ? H : Ho;
    shape[in->ndim - 1] = adjoint ? W : Wo;
    const char *name = adjoint ? "pad2d_backward" : "pad";
    duel_tensor *c = duel_contiguous(in), *y = c ? duel_new(shape, in->ndim, name) : NULL;
    int64_t *map = y ? malloc(sizeof(int64_t) * (size_t)(Ho + Wo + 1)) : NULL;
    if (y && !map) {
        duel_seterr(DUEL_ENOMEM, "%s: out of memory, got shape %s", name, SHAPE(in));
        duel_release(y);
        y = NULL;
    }
    if (y) {
        int64_t B = lead_numel(in);
        pad_map(map, Ho, H, pad[2], mode);
        pad_map(map + Ho, Wo, W, pad[0], mode);
        if (duel_numel(y) > 0) {
            if (adjoint)
                pad2d_adjoint_kernel(y->data, c->data, B, H, W, Ho, Wo, map, map + Ho, pad[0],
                                     pad[2]);
            else
                pad2d_kernel(y->data, c->data, B, H, W, Ho, Wo, map, map + Ho, pad[0]);
        }
        for (int i = 0; i < 4; i++) y->iparam[i] = pad[i];
        y->iparam[4] = mode;
        duel_record(y, adjoint ? &OP_PAD2D_BACKWARD : &OP_PAD2D, &c, 1);
    }
    free(map);
    duel_release(c);
    return y;
}

/* g {..,H+top+bottom,W+left+right} -> {..,H,W}; only the engine calls it, with y's shape */
static duel_tensor *pad2d_adjoint(duel_tensor *g, int64_t H, int64_t W, const int64_t *pad,
                                  int mode) {
    DUEL_ASSERT(g->ndim >= 2 && g->shape[g->ndim - 2] == H + pad[2] + pad[3] &&
                g->shape[g->ndim - 1] == W + pad[0] + pad[1]);
    return pad2d_run(g, H, W, pad, mode, 1);
}

duel_tensor *duel_pad2d(duel_tensor *x, const int64_t pad[4], int mode) {
    DUEL_CHECK(x->ndim >= 2, "pad: input must be at least 2-D, got %s", SHAPE(x));
    DUEL_CHECK(mode == DUEL_PAD_ZERO || mode == DUEL_PAD_REFLECT || mode == DUEL_PAD_REPLICATE,
               "pad: unknown mode (expected zero, reflect or replicate), got %d", mode);
    for (int i = 0; i < 4; i++)
        DUEL_CHECK(pad[i] >= 0 && pad[i] <= ((int64_t)1 << 53),
                   "pad: padding {left,right,top,bottom} must be non-negative, got %s",
                   duel_shape_str(pad, 4));
    int64_t H = x->shape[x->ndim - 2], W = x->shape[x->ndim - 1];
    for (int i = 0; i < 4; i++) {
        int64_t n = i < 2 ? W : H;
        if (mode == DUEL_PAD_REFLECT)
            DUEL_CHECK(pad[i] < n,
                       "pad: reflect padding must be smaller than the padded dimension (size "
                       "%lld), got %lld",
                       (long long)n, (long long)pad[i]);
        if (mode == DUEL_PAD_REPLICATE)
            DUEL_CHECK(pad[i] == 0 || n > 0,
                       "pad: replicate padding needs a non-empty dimension, got size %lld",
                       (long long)n);
    }
    return pad2d_run(x, H, W, pad, mode, 0);
}

/* ---- upsample ----------------------------------------------------------------------------- */

/* For output index k along one dim (n inputs, integer scale): out[k] = l0*in[i0] + l1*in[i1].
 * Nearest: i0 = floor(k / scale). Bilinear, align_corners=false as PyTorch: the source
 * coordinate (k + 0.5)/scale - 0.5 clamped at 0, i1 = i0 + 1 except at the last input. */
typedef struct {
    int64_t *i0, *i1;
    float *l0, *l1;
    int64_t *first; /* first[m] = first k with i0[k] >= m, m in [0, n+1] */
} axis_map;

static void axis_fill(axis_map *a, int64_t nout, int64_t n, int64_t scale, int mode) {
    float rs = (float)(1.0 / (double)scale);
    for (int64_t k = 0; k < nout; k++) {
        if (mode == DUEL_UP_NEAREST) {
            a->i0[k] = a->i1[k] = k / scale;
            a->l0[k] = 1.0f;
            a->l1[k] = 0.0f;
            continue;
        }
        float src = rs * ((float)k + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int64_t i = (int64_t)src;
        if (i > n - 1) i = n - 1;
        float l = src - (float)i;
        l = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
        a->i0[k] = i;
        a->i1[k] = i < n - 1 ? i + 1 : i;
        a->l1[k] = l;
        a->l0[k] = 1.0f - l;
    }
    for (int64_t m = 0, k = 0; m <= n + 1; m++) { /* i0 is non-decreasing in k */
        while (k < nout && a->i0[k] < m) k++;
        a->first[m] = k;
    }
}

/* one block for both axes' tables; NULL + error on failure */
static void *axis_alloc(axis_map *r, axis_map *c, int64_t Ho, int64_t Wo, int64_t H, int64_t W,
                        const char *name) {
    size_t n = (size_t)(Ho + Wo), m = (size_t)(H + W + 4);
    char *p = malloc(n * (2 * sizeof(int64_t) + 2 * sizeof(float)) + m * sizeof(int64_t));
    if (!p) {
        duel_seterr(DUEL_ENOMEM, "%s: out of memory, got output %lldx%lld", name, (long long)Ho,
                    (long long)Wo);
        return NULL;
    }
    int64_t *ip = (int64_t *)p;
    r->i0 = ip;
    r->i1 = ip + Ho;
    c->i0 = ip + 2 * Ho;
    c->i1 = ip + 2 * Ho + Wo;
    r->first = ip + 2 * n;
    c->first = ip + 2 * n + H + 2;
    float *fp = (float *)(ip + 2 * n + m);
    r->l0 = fp;
    r->l1 = fp + Ho;
    c->l0 = fp + 2 * Ho;
    c->l1 = fp + 2 * Ho + Wo;
    return p;
}

/* y {B,Ho,Wo} from x {B,H,W} */
static void upsample_kernel(float *y, const float *x, int64_t B, int64_t H, int64_t W, int64_t Ho,
                            int64_t Wo, const axis_map *r, const axis_map *c, int nearest) {
    DUEL_PAR_FOR(B * Ho * Wo >= DUEL_PAR_MIN,
    for (int64_t bi = 0; bi < B * Ho; bi++) {
        int64_t b = bi / Ho, i = bi % Ho;
        const float *x0 = x + (b * H + r->i0[i]) * W, *x1 = x + (b * H + r->i1[i]) * W;
        float *yr = y + bi * Wo, h0 = r->l0[i], h1 = r->l1[i];
        if (nearest)
            for (int64_t j = 0; j < Wo; j++) yr[j] = x0[c->i0[j]];
        else
            for (int64_t j = 0; j < Wo; j++) {
                int64_t j0 = c->i0[j], j1 = c->i1[j];
                float w0 = c->l0[j], w1 = c->l1[j];
                yr[j] = h0 * (w0 * x0[j0] + w1 * x0[j1]) + h1 * (w0 * x1[j0] + w1 * x1[j1]);
            }
    });
}

/* upsample's adjoint, separably: tmp {B,Ho,W} folds each output row's columns onto the input
 * columns (one thread per row), then each input row gathers the output rows that read it, found
 * through r->first. Zero weights are skipped so that nearest never multiplies by 0. */
static void upsample_adjoint_kernel(float *dx, float *tmp, const float *g, int64_t B, int64_t H,
                                    int64_t W, int64_t Ho, int64_t Wo, const axis_map *r,
                                    const axis_map *c) {
    DUEL_PAR_FOR(B * Ho * Wo >= DUEL_PAR_MIN,
    for (int64_t bi = 0; bi < B * Ho; bi++) {
        const float *gr = g + bi * Wo;
        float *tr = tmp + bi * W;
        for (int64_t j = 0; j < W; j++) tr[j] = 0.0f;
        for (int64_t j = 0; j < Wo; j++) {
            if (c->l0[j] != 0.0f) tr[c->i0[j]] += c->l0[j] * gr[j];
            if (c->l1[j] != 0.0f) tr[c->i1[j]] += c->l1[j] * gr[j];
        }
    });
    DUEL_PAR_FOR(B * Ho * Wo >= DUEL_PAR_MIN,
    for (int64_t bs = 0; bs < B * H; bs++) {
        int64_t b = bs / H, s = bs % H;
        float *dr = dx + bs * W;
        for (int64_t j = 0; j < W; j++) dr[j] = 0.0f;
        for (int64_t i = r->first[s > 0 ? s - 1 : 0]; i < r->first[s + 1]; i++) {
            float w = (r->i0[i] == s ? r->l0[i] : 0.0f) + (r->i1[i] == s ? r->l1[i] : 0.0f);
            if (w == 0.0f) continue;
            const float *tr = tmp + (b * Ho + i) * W;
            for (int64_t j = 0; j < W; j++) dr[j] += w * tr[j];
        }
    });
}

static duel_tensor *upsample_run(duel_tensor *in, int64_t H, int64_t W, int64_t sh, int64_t sw,
                                 int mode, int adjoint);

static int upsample_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0];
    dx[0] = upsample_run(dy, x->shape[2], x->shape[3], y->iparam[0], y->iparam[1],
                         (int)y->iparam[2], 1);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_UPSAMPLE = {"upsample", 1, upsample_backward, 0};

static int upsample_adjoint_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    dx[0] = duel_upsample(dy, y->iparam[0], y->iparam[1], (int)y->iparam[2]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_UPSAMPLE_BACKWARD = {"upsample_backward", 1, upsample_adjoint_backward,
                                                0};

/* upsample (adjoint = 0) x {N,C,H,W} -> {N,C,H*sh,W*sw}, or its adjoint from that shape back */
static duel_tensor *upsample_run(duel_tensor *in, int64_t H, int64_t W, int64_t sh, int64_t sw,
                                 int mode, int adjoint) {
    int64_t Ho = H * sh, Wo = W * sw, B = in->shape[0] * in->shape[1];
    int64_t shape[4] = {in->shape[0], in->shape[1], adjoint ? H : Ho, adjoint ? W : Wo};
    const char *name = adjoint ? "upsample_backward" : "upsample";
    DUEL_ASSERT(in->ndim == 4 && in->shape[2] == (adjoint ? Ho : H) &&
                in->shape[3] == (adjoint ? Wo : W));
    duel_tensor *c = duel_contiguous(in), *y = c ? duel_new(shape, 4, name) : NULL;
    float *tmp = NULL;
    axis_map rm, cm;
    void *block = y ? axis_alloc(&rm, &cm, Ho, Wo, H, W, name) : NULL;
    if (block && adjoint && !(tmp = duel_alloc_floats(B * Ho * W, name))) {
        free(block);
        block = NULL;
    }
    if (!block) {
        duel_release(c);
        duel_release(y);
        return NULL;
    }
    axis_fill(&rm, Ho, H, sh, mode);
    axis_fill(&cm, Wo, W, sw, mode);
    if (duel_numel(y) > 0) {
        if (adjoint)
            upsample_adjoint_kernel(y->data, tmp, c->data, B, H, W, Ho, Wo, &rm, &cm);
        else
            upsample_kernel(y->data, c->data, B, H, W, Ho, Wo, &rm, &cm, mode == DUEL_UP_NEAREST);
    }
    if (tmp) duel_free_floats(tmp, B * Ho * W);
    free(block);
    y->iparam[0] = sh;
    y->iparam[1] = sw;
    y->iparam[2] = mode;
    duel_record(y, adjoint ? &OP_UPSAMPLE_BACKWARD : &OP_UPSAMPLE, &c, 1);
    duel_release(c);
    return y;
}

duel_tensor *duel_upsample(duel_tensor *x, int64_t sh, int64_t sw, int mode) {
    DUEL_CHECK(x->ndim == 4, "upsample: input must be 4-D {N,C,H,W}, got %s", SHAPE(x));
    DUEL_CHECK(mode == DUEL_UP_NEAREST || mode == DUEL_UP_BILINEAR,
               "upsample: unknown mode (expected nearest or bilinear), got %d", mode);
    DUEL_CHECK(sh >= 1 && sw >= 1, "upsample: scale must be a positive whole number, got %lld",
               (long long)(sh < 1 ? sh : sw));
    int64_t H = x->shape[2], W = x->shape[3], lim = duel_max_bytes() / (int64_t)sizeof(float);
    DUEL_CHECK((H == 0 || sh <= lim / H) && (W == 0 || sw <= lim / W),
               "upsample: output too large, got scale {%lld,%lld} for input %s", (long long)sh,
               (long long)sw, SHAPE(x));
    return upsample_run(x, H, W, sh, sw, mode, 0);
}

const duel_opdef *const duel_resample_ops[] = {&OP_PAD2D, &OP_PAD2D_BACKWARD, &OP_UPSAMPLE,
                                               &OP_UPSAMPLE_BACKWARD, NULL};
