/* reduce.c -- sum/mean over dims, max/min with indices, argmax, and composites (var, std,
 * logsumexp, norm) built from differentiable ops. Summation is deterministic for a given thread
 * count: each output is accumulated by one thread in a fixed order. */
#include "../duel_impl.h"

/* out[kept] = sum over reduced dims of x (contiguous, shape). */
void duel_sum_kernel(float *out, const float *x, const int64_t *shape, int ndim,
                     const int *reduced) {
    int64_t cst[DUEL_MAXDIM], sh[DUEL_MAXDIM], st[DUEL_MAXDIM];
    int red[DUEL_MAXDIM], nd = 0;
    duel_contiguous_strides(shape, ndim, cst);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        if (nd > 0 && red[nd - 1] == (reduced[i] != 0)) {
            sh[nd - 1] *= shape[i];
            st[nd - 1] = cst[i];
        } else {
            sh[nd] = shape[i];
            st[nd] = cst[i];
            red[nd++] = reduced[i] != 0;
        }
    }
    int64_t ksh[DUEL_MAXDIM], kst[DUEL_MAXDIM], rsh[DUEL_MAXDIM], rst[DUEL_MAXDIM];
    int nk = 0, nr = 0;
    int64_t nout = 1, nred = 1;
    for (int i = 0; i < nd; i++) {
        if (red[i]) {
            rsh[nr] = sh[i];
            rst[nr++] = st[i];
            nred *= sh[i];
        } else {
            ksh[nk] = sh[i];
            kst[nk++] = st[i];
            nout *= sh[i];
        }
    }
    if (nred == 0 || nout == 0) {
        for (int64_t o = 0; o < nout; o++) out[o] = 0.0f;
        return;
    }
    if (nr == 0) {
        memcpy(out, x, (size_t)nout * sizeof(float));
        return;
    }
    /* {R, K} with K innermost: add whole rows, vectorised, split over column chunks; the
     * accumulators are double, as below (a float one drifts by ~1% over 10^6 rows of 0.1) */
    if (nd == 2 && red[0] && !red[1]) {
        enum { CHUNK = 1024 };
        int64_t R = sh[0], K = sh[1], nch = (K + CHUNK - 1) / CHUNK;
        DUEL_PAR_FOR(R * K >= DUEL_PAR_MIN,
        for (int64_t c = 0; c < nch; c++) {
            int64_t j0 = c * CHUNK, len = K - j0 < CHUNK ? K - j0 : CHUNK;
            double acc[CHUNK];
            for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
            for (int64_t r = 0; r < R; r++) {
                const float *xr = x + r * K + j0;
                for (int64_t j = 0; j < len; j++) acc[j] += xr[j];
            }
            for (int64_t j = 0; j < len; j++) out[j0 + j] = (float)acc[j];
        });
        return;
    }
    int inner_unit = red[nd - 1]; /* innermost dim reduced: its elements are contiguous */
    int64_t inner = inner_unit ? rsh[nr - 1] : 1, nouter_red = nred / inner;
    DUEL_PAR_FOR(nout * nred >= DUEL_PAR_MIN && nout > 1,
    for (int64_t o = 0; o < nout; o++) {
        int64_t base = 0, rem = o;
        for (int d = nk - 1; d >= 0; d--) {
            base += (rem % ksh[d]) * kst[d];
            rem /= ksh[d];
        }
        double acc = 0.0;
        for (int64_t q = 0; q < nouter_red; q++) {
            int64_t off = base, r = q;
            for (int d = nr - 1 - inner_unit; d >= 0; d--) {
                off += (r % rsh[d]) * rst[d];
                r /= rsh[d];
            }
            const float *p = x + off;
            for (int64_t i = 0; i < inner; i++) acc += p[i];
        }
        out[o] = (float)acc;
    });
}

duel_tensor *duel_sum(duel_tensor *x) {
    int reduced[DUEL_MAXDIM];
    for (int i = 0; i < x->ndim; i++) reduced[i] = 1;
    return duel_sum_reduce(x, reduced, NULL, 0, "sum");
}

duel_tensor *duel_sum_dim(duel_tensor *x, int dim, int keepdim) {
    if (dim < 0) return duel_sum(x);
    if (duel_check_dim(dim, x->ndim, "sum", 0)) return NULL;
    int reduced[DUEL_MAXDIM] = {0};
    int64_t shp[DUEL_MAXDIM];
    int nd = 0;
    reduced[dim] = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i != dim) shp[nd++] = x->shape[i];
        else if (keepdim) shp[nd++] = 1;
    }
    return duel_sum_reduce(x, reduced, shp, nd, "sum");
}

static duel_tensor *scale_release(duel_tensor *t, double s) {
    if (!t) return NULL;
    duel_tensor *y = duel_mul_scalar(t, (float)s);
    duel_release(t);
    return y;
}

duel_tensor *duel_mean(duel_tensor *x) {
    return scale_release(duel_sum(x), 1.0 / (double)duel_numel(x));
}

duel_tensor *duel_mean_dim(duel_tensor *x, int dim, int keepdim) {
    if (dim < 0) return duel_mean(x);
    if (duel_check_dim(dim, x->ndim, "mean", 0)) return NULL;
    return scale_release(duel_sum_dim(x, dim, keepdim), 1.0 / (double)x->shape[dim]);
}

/* ---- max / min ------------------------------------------------------------------------------ */

/* x contiguous viewed as {outer, n, inner}: v = extreme over n, idx = its 1-based position
 * (the first one on ties; NaN wins, as it propagates) */
static void extreme_kernel(float *v, float *idx, const float *x, int64_t outer, int64_t n,
                           int64_t inner, int is_min) {
    DUEL_PAR_FOR(outer * n * inner >= DUEL_PAR_MIN,
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *p = x + o * n * inner + j;
            float best = p[0];
            int64_t bi = 0;
            for (int64_t i = 1; i < n && !isnan(best); i++) {
                float c = p[i * inner];
                if (isnan(c) || (is_min ? c < best : c > best)) {
                    best = c;
                    bi = i;
                }
            }
            v[o * inner + j] = best;
            idx[o * inner + j] = (float)(bi + 1);
        });
}

/* dx = onehot(idx along dim) * dy broadcast back */
static int extreme_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0], *idx = y->src[1];
    int dim = (int)y->iparam[0];
    int64_t kshape[DUEL_MAXDIM];
    memcpy(kshape, x->shape, sizeof kshape);
    kshape[dim] = 1;
    duel_tensor *m = duel_zeros(x->shape, x->ndim);
    if (!m) return -1;
    int64_t outer = 1, inner = 1, n = x->shape[dim];
    for (int i = 0; i < dim; i++) outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) inner *= x->shape[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            int64_t i = (int64_t)idx->data[o * inner + j] - 1;
            m->data[(o * n + i) * inner + j] = 1.0f;
        }
    duel_tensor *k = duel_reshape(dy, kshape, x->ndim);
    dx[0] = k ? duel_mul(m, k) : NULL;
    duel_release(k);
    duel_release(m);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_MAX = {"max", 2, extreme_backward, DUEL_SAVE_SRC(1)};
static const duel_opdef OP_MIN = {"min", 2, extreme_backward, DUEL_SAVE_SRC(1)};

static duel_tensor *extreme_dim(duel_tensor *x, int dim, int keepdim, duel_tensor **idx_out,
                                int is_min) {
    const char *name = is_min ? "min" : "max";
    if (duel_check_dim(dim, x->ndim, name, 0)) return NULL;
    DUEL_CHECK(x->shape[dim] > 0, "%s: cannot reduce an empty dimension, got shape %s", name,
               SHAPE(x));
    int64_t shp[DUEL_MAXDIM];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != dim) shp[nd++] = x->shape[i];
        else if (keepdim) shp[nd++] = 1;
    }
    duel_tensor *xc = duel_contiguous(x);
    duel_tensor *v = xc ? duel_new(shp, nd, name) : NULL;
    duel_tensor *idx = v ? duel_new(shp, nd, name) : NULL;
    if (!idx) {
        duel_release(xc);
        duel_release(v);
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < dim; i++) outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) inner *= x->shape[i];
    extreme_kernel(v->data, idx->data, xc->data, outer, x->shape[dim], inner, is_min);
    duel_release(xc);
    v->iparam[0] = dim;
    duel_tensor *srcs[2] = {x, idx};
    duel_record(v, is_min ? &OP_MIN : &OP_MAX, srcs, 2);
    if (idx_out) *idx_out = idx;
    else duel_release(idx);
    return v;
}

duel_tensor *duel_max_dim(duel_tensor *x, int dim, int keepdim, duel_tensor **idx) {
    return extreme_dim(x, dim, keepdim, idx, 0);
}
duel_tensor *duel_min_dim(duel_tensor *x, int dim, int keepdim, duel_tensor **idx) {
    return extreme_dim(x, dim, keepdim, idx, 1);
}

static duel_tensor *extreme_all(duel_tensor *x, int is_min) {
    DUEL_CHECK(duel_numel(x) > 0, "%s: cannot reduce an empty tensor, got shape %s",
               is_min ? "min" : "max", SHAPE(x));
    int64_t n = duel_numel(x);
    duel_tensor *flat = duel_reshape(x, &n, 1);
    duel_tensor *v = flat ? extreme_dim(flat, 0, 0, NULL, is_min) : NULL;
    duel_release(flat);
    return v;
}
duel_tensor *duel_max(duel_tensor *x) { return extreme_all(x, 0); }
duel_tensor *duel_min(duel_tensor *x) { return extreme_all(x, 1); }

duel_tensor *duel_argmax(duel_tensor *x, int dim, int keepdim) {
    int prev = duel_set_grad_enabled(0);
    duel_tensor *idx = NULL, *v;
    if (dim < 0) {
        int64_t n = duel_numel(x);
        duel_tensor *flat = n > 0 ? duel_reshape(x, &n, 1) : NULL;
        if (n == 0) duel_seterr(DUEL_EINVAL, "argmax: cannot reduce an empty tensor, got shape %s",
                                SHAPE(x));
        v = flat ? extreme_dim(flat, 0, 0, &idx, 0) : NULL;
        duel_release(flat);
    } else {
        v = extreme_dim(x, dim, keepdim, &idx, 0);
    }
    duel_set_grad_enabled(prev);
    if (!v) {
        /* extreme_dim reports its errors as "max:"; name the op the user called */
        const char *m = duel_errmsg();
        if (!strncmp(m, "max:", 4)) duel_seterr(DUEL_EINVAL, "argmax:%s", m + 4);
        return NULL;
    }
    duel_release(v);
    return idx;
}

/* ---- composites: differentiable through the ops they are made of ------------------------------ */

duel_tensor *duel_var(duel_tensor *x, int dim, int keepdim, int unbiased) {
    if (dim >= 0 && duel_check_dim(dim, x->ndim, "var", 0)) return NULL;
    int64_t n = dim < 0 ? duel_numel(x) : x->shape[dim];
    DUEL_CHECK(n - (unbiased ? 1 : 0) > 0,
               "var: need more than %d element(s) to reduce, got shape %s", unbiased ? 1 : 0,
               SHAPE(x));
    duel_tensor *m = dim < 0 ? duel_mean(x) : duel_mean_dim(x, dim, 1);
    duel_tensor *c = m ? duel_sub(x, m) : NULL;
    duel_tensor *c2 = c ? duel_mul(c, c) : NULL;
    duel_tensor *s = c2 ? duel_sum_dim(c2, dim, keepdim) : NULL;
    duel_release(m);
    duel_release(c);
    duel_release(c2);
    return scale_release(s, 1.0 / (double)(n - (unbiased ? 1 : 0)));
}

duel_tensor *duel_std(duel_tensor *x, int dim, int keepdim, int unbiased) {
    duel_tensor *v = duel_var(x, dim, keepdim, unbiased);
    if (!v) {
        const char *m = duel_errmsg();
        if (!strncmp(m, "var:", 4)) duel_seterr(DUEL_EINVAL, "std:%s", m + 4);
        return NULL;
    }
    duel_tensor *s = duel_sqrt(v);
    duel_release(v);
    return s;
}

/* m + log(sum(exp(x - m))) with m = max(x) held constant: exact for any m, stable for large x */
duel_tensor *duel_logsumexp(duel_tensor *x, int dim, int keepdim) {
    DUEL_CHECK(duel_numel(x) > 0, "logsumexp: cannot reduce an empty tensor, got shape %s",
               SHAPE(x));
    if (dim >= 0 && duel_check_dim(dim, x->ndim, "logsumexp", 0)) return NULL;
    int prev = duel_set_grad_enabled(0);
    duel_tensor *m = dim < 0 ? duel_max(x) : duel_max_dim(x, dim, 1, NULL);
    duel_set_grad_enabled(prev);
    if (!m) return NULL;
    /* an all -inf row keeps m finite so that x - m is not NaN */
    for (int64_t i = 0, n = duel_numel(m); i < n; i++)
        if (!isfinite(m->data[i])) m->data[i] = 0.0f;
    duel_tensor *c = duel_sub(x, m), *e = c ? duel_exp(c) : NULL;
    duel_tensor *s = e ? duel_sum_dim(e, dim, 1) : NULL, *l = s ? duel_log(s) : NULL;
    duel_tensor *r = l ? duel_add(l, m) : NULL;
    duel_release(c);
    duel_release(e);
    duel_release(s);
    duel_release(l);
    duel_release(m);
    if (!r || keepdim) return r;
    duel_tensor *out = dim < 0 ? duel_reshape(r, NULL, 0) : duel_squeeze(r, dim);
    duel_release(r);
    return out;
}

duel_tensor *duel_norm(duel_tensor *x, float p, int dim, int keepdim) {
    DUEL_CHECK(isfinite(p) && p > 0, "norm: p must be a positive finite number, got %g", p);
    if (dim >= 0 && duel_check_dim(dim, x->ndim, "norm", 0)) return NULL;
    duel_tensor *a = p == 2.0f ? duel_mul(x, x) : duel_abs(x);
    if (a && p != 2.0f && p != 1.0f) {
        duel_tensor *q = duel_pow(a, p);
        duel_release(a);
        a = q;
    }
    duel_tensor *s = a ? duel_sum_dim(a, dim, keepdim) : NULL;
    duel_release(a);
    if (!s || p == 1.0f) return s;
    duel_tensor *r = p == 2.0f ? duel_sqrt(s) : duel_pow(s, 1.0f / p);
    duel_release(s);
    return r;
}

const duel_opdef *const duel_reduce_ops[] = {&OP_MAX, &OP_MIN, NULL};
