/* norm.c -- batch, instance and layer normalisation, and AdaIN.
 *
 * All four normalise x seen as a contiguous {P,Q,R} array of P*Q rows of R floats:
 *   batch_norm     {N,C,S}   statistics per q over (p,r)   weight/bias {C}     per q
 *   instance_norm  {N,C,S}   statistics per (p,q) over r   weight/bias {C}     per q
 *   adain          {N,C,S}   statistics per (p,q) over r   scale/bias {N,C}    per (p,q)
 *   layer_norm     {M,1,K}   statistics per p over r       weight/bias {K...}  per r
 * y = (x - mean) * rstd * w + b with rstd = 1/sqrt(var + eps), var biased. Batch norm in eval
 * mode uses the running statistics instead (then y is affine in x). AdaIN's scale is used as
 * given (StyleGAN's style_scale), not as 1 + scale; a caller wanting the latter adds the 1.
 *
 * Forward: one fused kernel pass for the statistics (shifted one-pass sums, rows in parallel,
 * combined per group in double) and one for the output. The node saves {x, w, b, stats} with stats = {2,G} holding
 * each group's mean and rstd (a fresh tensor nobody else can write).
 * Backward, two paths with the same numbers:
 *   - grad mode on (create_graph): the VJP written in duel ops, with the statistics recomputed
 *     from x by duel ops, so that it is differentiable again in x, w and dy;
 *   - grad mode off: a fused kernel that reads the saved statistics. */
#include "../duel_impl.h"

enum { AFF_Q = 0, AFF_PQ = 1, AFF_R = 2 };

typedef struct {
    int64_t P, Q, R;
    int across; /* statistics also over p (batch norm) */
    int aff;    /* weight/bias indexed per q, per (p,q) or per r */
    int fixed;  /* statistics are constants (batch norm in eval mode) */
    float eps;
} norm_cfg;

static int64_t cfg_groups(const norm_cfg *c) { return c->across ? c->Q : c->P * c->Q; }
static int64_t cfg_count(const norm_cfg *c) { return c->across ? c->P * c->R : c->R; }
static int64_t row_group(const norm_cfg *c, int64_t row) { return c->across ? row % c->Q : row; }

static void cfg_store(duel_tensor *y, const norm_cfg *c) {
    y->iparam[0] = c->P;
    y->iparam[1] = c->Q;
    y->iparam[2] = c->R;
    y->iparam[3] = c->across;
    y->iparam[4] = c->aff;
    y->iparam[5] = c->fixed;
    y->fparam[0] = c->eps;
}

static void cfg_load(const duel_tensor *y, norm_cfg *c) {
    c->P = y->iparam[0];
    c->Q = y->iparam[1];
    c->R = y->iparam[2];
    c->across = (int)y->iparam[3];
    c->aff = (int)y->iparam[4];
    c->fixed = (int)y->iparam[5];
    c->eps = y->fparam[0];
}

/* the {P,Q,R}-broadcastable shape of the weight */
static void cfg_wshape(const norm_cfg *c, int64_t *ws) {
    ws[0] = c->aff == AFF_PQ ? c->P : 1;
    ws[1] = c->aff == AFF_R ? 1 : c->Q;
    ws[2] = c->aff == AFF_R ? c->R : 1;
}

/* ---- kernels ---------------------------------------------------------------------------- */

/* Row sums use 8 float lanes over blocks of LANE_BLOCK elements, each block flushed into double:
 * the loops vectorise (a double accumulator chain does not), and the error is that of a 64-term
 * float sum per lane, then exact-enough double additions. */
enum { LANES = 8, LANE_BLOCK = 512 };

/* *s1 = sum(x - k), *s2 = sum((x - k)^2) over n floats */
static inline void sum_shifted(const float *x, int64_t n, float k, double *s1, double *s2) {
    double t1 = 0.0, t2 = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += LANE_BLOCK) {
        int64_t len = n - r0 < LANE_BLOCK ? n - r0 : LANE_BLOCK, r = 0;
        const float *p = x + r0;
        float a[LANES] = {0}, b[LANES] = {0};
        for (; r + LANES <= len; r += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = p[r + l] - k;
                a[l] += d;
                b[l] += d * d;
            }
        for (; r < len; r++) {
            float d = p[r] - k;
            a[0] += d;
            b[0] += d * d;
        }
        for (int l = 0; l < LANES; l++) {
            t1 += a[l];
            t2 += b[l];
        }
    }
    *s1 = t1;
    *s2 = t2;
}

/* *s1 = sum(g*v), *s2 = sum(g*v*(x - m)*s) over n floats, v = w[r] (or 1 when w is NULL) */
static inline void sum_grad(const float *g, const float *x, const float *w, int64_t n, float m,
                            float s, double *s1, double *s2) {
    double t1 = 0.0, t2 = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += LANE_BLOCK) {
        int64_t len = n - r0 < LANE_BLOCK ? n - r0 : LANE_BLOCK, r = 0;
        const float *gp = g + r0, *xp = x + r0, *wp = w ? w + r0 : NULL;
        float a[LANES] = {0}, b[LANES] = {0};
        if (wp)
            for (; r + LANES <= len; r += LANES)
                for (int l = 0; l < LANES; l++) {
                    float gv = gp[r + l] * wp[r + l];
                    a[l] += gv;
                    b[l] += gv * ((xp[r + l] - m) * s);
                }
        else
            for (; r + LANES <= len; r += LANES)
                for (int l = 0; l < LANES; l++) {
                    a[l] += gp[r + l];
                    b[l] += gp[r + l] * ((xp[r + l] - m) * s);
                }
        for (; r < len; r++) {
            float gv = wp ? gp[r] * wp[r] : gp[r];
            a[0] += gv;
            b[0] += gv * ((xp[r] - m) * s);
        }
        for (int l = 0; l < LANES; l++) {
            t1 += a[l];
            t2 += b[l];
        }
    }
    *s1 = t1;
    *s2 = t2;
}

/* x {P*Q rows, R}: s[2*row] = sum(x - k), s[2*row+1] = sum((x - k)^2) with k the first element
 * of the row's group; the shift keeps the one-pass variance accurate when |mean| >> std. */
static void stats_rows_kernel(double *s, const float *x, const norm_cfg *c) {
    int64_t rows = c->P * c->Q, R = c->R;
    DUEL_PAR_FOR(rows * R >= DUEL_PAR_MIN,
    for (int64_t row = 0; row < rows; row++)
        sum_shifted(x + row * R, R, x[row_group(c, row) * R], &s[2 * row], &s[2 * row + 1]);
    );
}

/* combine the rows of each group in a fixed order: mean[g], var[g] (biased), both {G} */
static void stats_groups_kernel(double *mean, double *var, const double *s, const float *x,
                                const norm_cfg *c) {
    int64_t G = cfg_groups(c), n = cfg_count(c), per = c->across ? c->P : 1;
    for (int64_t g = 0; g < G; g++) {
        double s1 = 0.0, s2 = 0.0;
        for (int64_t p = 0; p < per; p++) {
            int64_t row = c->across ? p * c->Q + g : g;
            s1 += s[2 * row];
            s2 += s[2 * row + 1];
        }
        double m = s1 / (double)n, v = s2 / (double)n - m * m;
        mean[g] = (double)x[g * c->R] + m;
        var[g] = v > 0.0 ? v : 0.0;
    }
}

/* y = (x - mean[g]) * rstd[g] * w + b    x, y {P,Q,R}; w, b indexed per c->aff, or NULL */
static void norm_apply_kernel(float *y, const float *x, const float *mean, const float *rstd,
                              const float *w, const float *b, const norm_cfg *c) {
    int64_t rows = c->P * c->Q, R = c->R;
    DUEL_PAR_FOR(rows * R >= DUEL_PAR_MIN,
    for (int64_t row = 0; row < rows; row++) {
        int64_t g = row_group(c, row), a = c->aff == AFF_Q ? row % c->Q : row;
        const float *xr = x + row * R;
        float *yr = y + row * R, m = mean[g], s = rstd[g];
        if (c->aff == AFF_R) {
            for (int64_t r = 0; r < R; r++) {
                float v = (xr[r] - m) * s;
                yr[r] = (w ? v * w[r] : v) + (b ? b[r] : 0.0f);
            }
        } else { /* x - m first: folding m into the shift cancels badly when |m| >> std */
            float sw = w ? s * w[a] : s, bb = b ? b[a] : 0.0f;
            for (int64_t r = 0; r < R; r++) yr[r] = (xr[r] - m) * sw + bb;
        }
    });
}

/* Backward row sums (dy, x {P,Q,R}): rs[2*row] = sum dy*v, rs[2*row+1] = sum dy*v*xhat, where
 * v = w[r] for a per-r weight and 1 otherwise (a per-row weight is applied by the caller). */
static void bw_rows_kernel(double *rs, const float *dy, const float *x, const float *mean,
                           const float *rstd, const float *w, const norm_cfg *c) {
    int64_t rows = c->P * c->Q, R = c->R;
    const float *wr = c->aff == AFF_R ? w : NULL;
    DUEL_PAR_FOR(rows * R >= DUEL_PAR_MIN,
    for (int64_t row = 0; row < rows; row++) {
        int64_t g = row_group(c, row);
        sum_grad(dy + row * R, x + row * R, wr, R, mean[g], rstd[g], &rs[2 * row],
                 &rs[2 * row + 1]);
    });
}

/* dx = rstd * (dy*w - ga[g] - xhat*gb[g]), ga = gb = NULL for constant statistics; written as
 * dx = c1*dy*v + c2*(x - m) + c0 per row so that the loop is a short multiply-add chain */
static void bw_dx_kernel(float *dx, const float *dy, const float *x, const float *mean,
                         const float *rstd, const float *w, const float *ga, const float *gb,
                         const norm_cfg *c) {
    int64_t rows = c->P * c->Q, R = c->R;
    DUEL_PAR_FOR(rows * R >= DUEL_PAR_MIN,
    for (int64_t row = 0; row < rows; row++) {
        int64_t g = row_group(c, row), a = c->aff == AFF_Q ? row % c->Q : row;
        const float *xr = x + row * R, *gr = dy + row * R;
        float *dr = dx + row * R, m = mean[g], s = rstd[g];
        float A = ga ? ga[g] : 0.0f, B = gb ? gb[g] : 0.0f;
        float c1 = w && c->aff != AFF_R ? s * w[a] : s, c2 = -s * s * B, c0 = -s * A;
        if (w && c->aff == AFF_R)
            for (int64_t r = 0; r < R; r++) dr[r] = c1 * (gr[r] * w[r]) + c2 * (xr[r] - m) + c0;
        else
            for (int64_t r = 0; r < R; r++) dr[r] = c1 * gr[r] + c2 * (xr[r] - m) + c0;
    });
}

/* per-r weight (layer norm): dw[r] = sum over rows of dy*xhat, db[r] = sum over rows of dy.
 * Columns are split into chunks so each output is summed by one thread in row order. */
static void bw_cols_kernel(float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const norm_cfg *c) {
    enum { CHUNK = 256 };
    int64_t rows = c->P * c->Q, R = c->R, nch = (R + CHUNK - 1) / CHUNK;
    DUEL_PAR_FOR(rows * R >= DUEL_PAR_MIN,
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t r0 = ch * CHUNK, len = R - r0 < CHUNK ? R - r0 : CHUNK;
        double aw[CHUNK], ab[CHUNK];
        for (int64_t j = 0; j < len; j++) aw[j] = ab[j] = 0.0;
        for (int64_t row = 0; row < rows; row++) {
            int64_t g = row_group(c, row);
            const float *xr = x + row * R + r0, *gr = dy + row * R + r0;
            float m = mean[g], s = rstd[g];
            for (int64_t j = 0; j < len; j++) {
                aw[j] += (double)gr[j] * ((xr[j] - m) * s);
                ab[j] += gr[j];
            }
        }
        for (int64_t j = 0; j < len; j++) {
            if (dw) dw[r0 + j] = (float)aw[j];
            if (db) db[r0 + j] = (float)ab[j];
        }
    });
}

/* ---- backward, grad mode on: the VJP in duel ops ----------------------------------------- */

/* every intermediate goes into the pool and is released at the end; once an op fails, the
 * following K(...) steps are skipped (never nest K: an inner NULL would reach an op) */
typedef struct {
    duel_tensor *t[48];
    int n, fail;
} pool;

static duel_tensor *keep(pool *pl, duel_tensor *t) {
    if (!t) {
        pl->fail = 1;
        return NULL;
    }
    DUEL_ASSERT(pl->n < (int)(sizeof pl->t / sizeof *pl->t));
    pl->t[pl->n++] = t;
    return t;
}
#define K(e) (pl->fail ? NULL : keep(pl, (e)))

static void pool_release(pool *pl) {
    for (int i = 0; i < pl->n; i++) duel_release(pl->t[i]);
}

/* mean over each normalisation group of t {P,Q,R}, keepdim */
static duel_tensor *group_mean(pool *pl, duel_tensor *t, int across) {
    duel_tensor *m = K(duel_mean_dim(t, 2, 1));
    return across ? K(duel_mean_dim(m, 0, 1)) : m;
}

static int norm_backward_ops(duel_tensor *y, duel_tensor *dy, duel_tensor **dx,
                             const norm_cfg *c) {
    duel_tensor *x = y->src[0], *w = y->src[1], *b = y->src[2], *st = y->src[3];
    pool pool_ = {0}, *pl = &pool_;
    int64_t s3[3] = {c->P, c->Q, c->R}, ws[3];
    cfg_wshape(c, ws);
    duel_tensor *x3 = K(duel_reshape(x, s3, 3)), *g3 = K(duel_reshape(dy, s3, 3));
    duel_tensor *xhat, *rstd, *res[3] = {0};
    if (c->fixed) { /* constants: views of the saved statistics, which carry no graph */
        int64_t gs[3] = {1, c->Q, 1};
        duel_tensor *m = K(duel_narrow(st, 0, 0, 1)), *s = K(duel_narrow(st, 0, 1, 1));
        duel_tensor *m3 = K(duel_reshape(m, gs, 3));
        rstd = K(duel_reshape(s, gs, 3));
        duel_tensor *xc = K(duel_sub(x3, m3));
        xhat = K(duel_mul(xc, rstd));
    } else { /* recomputed from x, so that the result is differentiable in x */
        duel_tensor *mu = group_mean(pl, x3, c->across);
        duel_tensor *xc = K(duel_sub(x3, mu)), *sq = K(duel_mul(xc, xc));
        duel_tensor *var = group_mean(pl, sq, c->across);
        duel_tensor *ve = K(duel_add_scalar(var, c->eps));
        rstd = K(duel_pow(ve, -0.5f));
        xhat = K(duel_mul(xc, rstd));
    }
    duel_tensor *gw = g3;
    if (w) {
        duel_tensor *w3 = K(duel_reshape(w, ws, 3));
        gw = K(duel_mul(g3, w3));
    }
    if (DUEL_NEED(y, 0)) {
        duel_tensor *d;
        if (c->fixed) {
            d = K(duel_mul(gw, rstd));
        } else { /* rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) */
            duel_tensor *m1 = group_mean(pl, gw, c->across);
            duel_tensor *gx = K(duel_mul(gw, xhat));
            duel_tensor *m2 = group_mean(pl, gx, c->across);
            duel_tensor *t1 = K(duel_sub(gw, m1)), *t2 = K(duel_mul(xhat, m2));
            duel_tensor *t3 = K(duel_sub(t1, t2));
            d = K(duel_mul(t3, rstd));
        }
        res[0] = K(duel_reshape(d, x->shape, x->ndim));
    }
    if (w && DUEL_NEED(y, 1)) {
        duel_tensor *gx = K(duel_mul(g3, xhat)), *s = K(duel_sum_to(gx, ws, 3));
        res[1] = K(duel_reshape(s, w->shape, w->ndim));
    }
    if (b && DUEL_NEED(y, 2)) {
        duel_tensor *s = K(duel_sum_to(g3, ws, 3));
        res[2] = K(duel_reshape(s, b->shape, b->ndim));
    }
    int rc = pl->fail ? -1 : 0;
    for (int i = 0; i < 3 && !rc; i++)
        if (res[i]) {
            duel_retain(res[i]);
            dx[i] = res[i];
        }
    pool_release(pl);
    return rc;
}
#undef K

/* ---- backward, grad mode off: fused kernels --------------------------------------------- */

static int norm_backward_fused(duel_tensor *y, duel_tensor *dy, duel_tensor **dx,
                               const norm_cfg *c) {
    duel_tensor *x = y->src[0], *w = y->src[1], *b = y->src[2], *st = y->src[3];
    int nx = DUEL_NEED(y, 0), nw = w && DUEL_NEED(y, 1), nb = b && DUEL_NEED(y, 2);
    int64_t rows = c->P * c->Q, G = cfg_groups(c), n = cfg_count(c);
    const float *mean = st->data, *rstd = st->data + G, *wd = w ? w->data : NULL;
    duel_tensor *g = duel_contiguous(dy), *tx = NULL, *tw = NULL, *tb = NULL;
    double *rs = g ? malloc(sizeof(double) * (size_t)(2 * rows + 1)) : NULL;
    float *gab = rs ? malloc(sizeof(float) * (size_t)(2 * G + 1)) : NULL;
    int rc = -1;
    if (g && !gab) duel_seterr(DUEL_ENOMEM, "%s: out of memory, got %lld rows", y->op->name,
                               (long long)rows);
    if (!gab || (nx && !(tx = duel_new(x->shape, x->ndim, y->op->name))) ||
        (nw && !(tw = duel_new(w->shape, w->ndim, y->op->name))) ||
        (nb && !(tb = duel_new(b->shape, b->ndim, y->op->name))))
        goto done;
    bw_rows_kernel(rs, g->data, x->data, mean, rstd, wd, c);
    if (nx) {
        float *ga = NULL, *gb = NULL;
        if (!c->fixed) { /* group means of dy*w and dy*w*xhat, rows combined in a fixed order */
            ga = gab;
            gb = gab + G;
            for (int64_t q = 0; q < G; q++) {
                double s1 = 0.0, s2 = 0.0;
                for (int64_t p = 0, per = c->across ? c->P : 1; p < per; p++) {
                    int64_t row = c->across ? p * c->Q + q : q;
                    double wa = wd && c->aff != AFF_R ? wd[c->aff == AFF_Q ? row % c->Q : row]
                                                      : 1.0;
                    s1 += wa * rs[2 * row];
                    s2 += wa * rs[2 * row + 1];
                }
                ga[q] = (float)(s1 / (double)n);
                gb[q] = (float)(s2 / (double)n);
            }
        }
        bw_dx_kernel(tx->data, g->data, x->data, mean, rstd, wd, ga, gb, c);
    }
    if (nw || nb) {
        if (c->aff == AFF_R) {
            bw_cols_kernel(tw ? tw->data : NULL, tb ? tb->data : NULL, g->data, x->data, mean,
                           rstd, c);
        } else if (c->aff == AFF_PQ) {
            for (int64_t row = 0; row < rows; row++) {
                if (tw) tw->data[row] = (float)rs[2 * row + 1];
                if (tb) tb->data[row] = (float)rs[2 * row];
            }
        } else { /* per q: the row sums were taken without the weight; add them over p */
            for (int64_t q = 0; q < c->Q; q++) {
                double s1 = 0.0, s2 = 0.0;
                for (int64_t p = 0; p < c->P; p++) {
                    s1 += rs[2 * (p * c->Q + q)];
                    s2 += rs[2 * (p * c->Q + q) + 1];
                }
                if (tw) tw->data[q] = (float)s2;
                if (tb) tb->data[q] = (float)s1;
            }
        }
    }
    rc = 0;
    dx[0] = tx;
    dx[1] = tw;
    dx[2] = tb;
    tx = tw = tb = NULL;
done:
    duel_release(tx);
    duel_release(tw);
    duel_release(tb);
    duel_release(g);
    free(rs);
    free(gab);
    return rc;
}

static int norm_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    norm_cfg c;
    cfg_load(y, &c);
    /* grad mode during a rule is create_graph: only then must the result carry a graph */
    if (duel_grad_enabled()) return norm_backward_ops(y, dy, dx, &c);
    return norm_backward_fused(y, dy, dx, &c);
}

/* sources {x, weight, bias, stats}; the rule reads x, the weight and the saved statistics */
#define NORM_SAVED (DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1) | DUEL_SAVE_SRC(3))
static const duel_opdef OP_BATCH_NORM = {"batch_norm", 4, norm_backward, NORM_SAVED};
static const duel_opdef OP_INSTANCE_NORM = {"instance_norm", 4, norm_backward, NORM_SAVED};
static const duel_opdef OP_LAYER_NORM = {"layer_norm", 4, norm_backward, NORM_SAVED};
static const duel_opdef OP_ADAIN = {"adain", 4, norm_backward, NORM_SAVED};

/* ---- the shared forward ------------------------------------------------------------------ */

/* Normalise x per cfg. Batch norm passes its running statistics: in eval mode (c->fixed) they
 * are read; in training they are updated in place with momentum (unrecorded, version bumped). */
static duel_tensor *norm_forward(duel_tensor *x, duel_tensor *w, duel_tensor *b,
                                 const norm_cfg *c, const duel_opdef *op, duel_tensor *rm,
                                 duel_tensor *rv, float momentum) {
    const char *name = op->name;
    int64_t G = cfg_groups(c), n = cfg_count(c), rows = c->P * c->Q, sshape[2] = {2, G};
    duel_tensor *xc = duel_contiguous(x), *wc = NULL, *bc = NULL, *st = NULL, *y = NULL;
    double *s = NULL, *mv = NULL;
    if (!xc || (w && !(wc = duel_contiguous(w))) || (b && !(bc = duel_contiguous(b))) ||
        !(st = duel_new(sshape, 2, name)) || !(y = duel_new(x->shape, x->ndim, name)))
        goto fail;
    float *mean = st->data, *rstd = st->data + G;
    if (c->fixed) {
        for (int64_t g = 0; g < G; g++) {
            mean[g] = duel_flat_get(rm, g);
            rstd[g] = (float)(1.0 / sqrt((double)duel_flat_get(rv, g) + (double)c->eps));
        }
    } else if (rows * c->R > 0) {
        s = malloc(sizeof(double) * (size_t)(2 * rows));
        mv = malloc(sizeof(double) * (size_t)(2 * G));
        if (!s || !mv) {
            duel_seterr(DUEL_ENOMEM, "%s: out of memory, got input of shape %s", name, SHAPE(x));
            goto fail;
        }
        stats_rows_kernel(s, xc->data, c);
        stats_groups_kernel(mv, mv + G, s, xc->data, c);
        for (int64_t g = 0; g < G; g++) {
            mean[g] = (float)mv[g];
            rstd[g] = (float)(1.0 / sqrt(mv[G + g] + (double)c->eps));
        }
        if (rm) { /* PyTorch's update; the running variance is the unbiased one */
            double m = momentum, unb = (double)n / (double)(n - 1);
            for (int64_t g = 0; g < G; g++) {
                duel_flat_set(rm, g, (float)((1.0 - m) * duel_flat_get(rm, g) + m * mv[g]));
                duel_flat_set(rv, g,
                              (float)((1.0 - m) * duel_flat_get(rv, g) + m * mv[G + g] * unb));
            }
            duel_bump_version(rm, name);
            duel_bump_version(rv, name);
        }
    }
    if (rows * c->R > 0)
        norm_apply_kernel(y->data, xc->data, mean, rstd, wc ? wc->data : NULL,
                          bc ? bc->data : NULL, c);
    cfg_store(y, c);
    duel_tensor *srcs[4] = {xc, wc, bc, st};
    duel_record(y, op, srcs, 4);
    goto done;
fail:
    duel_release(y);
    y = NULL;
done:
    duel_release(xc);
    duel_release(wc);
    duel_release(bc);
    duel_release(st);
    free(s);
    free(mv);
    return y;
}

/* t (optional) must hold exactly n elements */
static int check_count(const duel_tensor *t, int64_t n, const char *op, const char *what,
                       const char *per) {
    DUEL_CHECK_INT(!t || duel_numel(t) == n, "%s: %s must have %lld elements (%s), got %s", op,
                   what, (long long)n, per, SHAPE(t));
    return 0;
}

static int check_eps(float eps, const char *op) {
    DUEL_CHECK_INT(isfinite(eps) && eps >= 0, "%s: eps must be a non-negative number, got %g",
                   op, eps);
    return 0;
}

static int64_t trailing(const duel_tensor *x, int from) {
    int64_t n = 1;
    for (int i = from; i < x->ndim; i++) n *= x->shape[i];
    return n;
}

/* ---- public ops --------------------------------------------------------------------------- */

duel_tensor *duel_batch_norm(duel_tensor *x, duel_tensor *running_mean, duel_tensor *running_var,
                             duel_tensor *weight, duel_tensor *bias, int training, float momentum,
                             float eps) {
    const char *op = "batch_norm";
    DUEL_CHECK(x->ndim >= 2, "batch_norm: input must be at least 2-D {N,C,...}, got %s",
               SHAPE(x));
    int64_t N = x->shape[0], C = x->shape[1], S = trailing(x, 2);
    if (check_eps(eps, op)) return NULL;
    DUEL_CHECK(!running_mean == !running_var,
               "batch_norm: running_mean and running_var must be given together, got only %s",
               running_mean ? "running_mean" : "running_var");
    DUEL_CHECK(training || running_mean,
               "batch_norm: running_mean and running_var are needed when not training, got nil");
    if (check_count(running_mean, C, op, "running_mean", "one per channel") ||
        check_count(running_var, C, op, "running_var", "one per channel") ||
        check_count(weight, C, op, "weight", "one per channel") ||
        check_count(bias, C, op, "bias", "one per channel"))
        return NULL;
    if (training) {
        DUEL_CHECK(N * S > 1,
                   "batch_norm: expected more than 1 value per channel when training, got input "
                   "of shape %s",
                   SHAPE(x));
        DUEL_CHECK(isfinite(momentum), "batch_norm: momentum must be a finite number, got %g",
                   momentum);
        if (running_mean && (duel_check_inplace(running_mean, op) ||
                             duel_check_inplace(running_var, op)))
            return NULL;
    }
    norm_cfg c = {N, C, S, 1, AFF_Q, !training, eps};
    return norm_forward(x, weight, bias, &c, &OP_BATCH_NORM, running_mean, running_var,
                        momentum);
}

duel_tensor *duel_instance_norm(duel_tensor *x, duel_tensor *weight, duel_tensor *bias,
                                float eps) {
    const char *op = "instance_norm";
    DUEL_CHECK(x->ndim >= 3, "instance_norm: input must be at least 3-D {N,C,H,W}, got %s",
               SHAPE(x));
    int64_t N = x->shape[0], C = x->shape[1], S = trailing(x, 2);
    if (check_eps(eps, op) || check_count(weight, C, op, "weight", "one per channel") ||
        check_count(bias, C, op, "bias", "one per channel"))
        return NULL;
    DUEL_CHECK(S > 1,
               "instance_norm: expected more than 1 spatial element per channel, got input of "
               "shape %s",
               SHAPE(x));
    norm_cfg c = {N, C, S, 0, AFF_Q, 0, eps};
    return norm_forward(x, weight, bias, &c, &OP_INSTANCE_NORM, NULL, NULL, 0);
}

duel_tensor *duel_layer_norm(duel_tensor *x, int nnorm, duel_tensor *weight, duel_tensor *bias,
                             float eps) {
    const char *op = "layer_norm";
    DUEL_CHECK(nnorm >= 1 && nnorm <= x->ndim,
               "layer_norm: the number of normalised dimensions must be 1 to %d (the input's "
               "rank), got %d",
               x->ndim, nnorm);
    if (check_eps(eps, op)) return NULL;
    const int64_t *ns = x->shape + x->ndim - nnorm;
    duel_tensor *wb[2] = {weight, bias};
    const char *what[2] = {"weight", "bias"};
    for (int i = 0; i < 2; i++) {
        duel_tensor *t = wb[i];
        int same = t && t->ndim == nnorm;
        for (int d = 0; same && d < nnorm; d++) same = t->shape[d] == ns[d];
        DUEL_CHECK(!t || same, "layer_norm: %s must have the normalised shape %s, got %s",
                   what[i], duel_shape_str(ns, nnorm), SHAPE(t));
    }
    int64_t K = trailing(x, x->ndim - nnorm), M = 1;
    for (int i = 0; i < x->ndim - nnorm; i++) M *= x->shape[i];
    norm_cfg c = {M, 1, K, 0, AFF_R, 0, eps};
    return norm_forward(x, weight, bias, &c, &OP_LAYER_NORM, NULL, NULL, 0);
}

/* scale/bias: {N,C}, or {N,C,1,...} */
static int check_style(const duel_tensor *t, int64_t N, int64_t C, const char *what) {
    int ok = !t || (t->ndim >= 2 && t->shape[0] == N && t->shape[1] == C);
    for (int d = 2; t && ok && d < t->ndim; d++) ok = t->shape[d] == 1;
    int64_t want[2] = {N, C};
    DUEL_CHECK_INT(ok, "adain: %s must have shape %s (one value per sample and channel), got %s",
                   what, duel_shape_str(want, 2), SHAPE(t));
    return 0;
}

duel_tensor *duel_adain(duel_tensor *x, duel_tensor *scale, duel_tensor *bias, float eps) {
    DUEL_CHECK(x->ndim >= 3, "adain: input must be at least 3-D {N,C,H,W}, got %s", SHAPE(x));
    int64_t N = x->shape[0], C = x->shape[1], S = trailing(x, 2);
    if (check_eps(eps, "adain") || check_style(scale, N, C, "scale") ||
        check_style(bias, N, C, "bias"))
        return NULL;
    DUEL_CHECK(S > 1,
               "adain: expected more than 1 spatial element per channel, got input of shape %s",
               SHAPE(x));
    norm_cfg c = {N, C, S, 0, AFF_PQ, 0, eps};
    return norm_forward(x, scale, bias, &c, &OP_ADAIN, NULL, NULL, 0);
}

const duel_opdef *const duel_norm_ops[] = {&OP_BATCH_NORM, &OP_INSTANCE_NORM, &OP_LAYER_NORM,
                                           &OP_ADAIN, NULL};
