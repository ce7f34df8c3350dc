/* shape.c -- joining (cat, stack) and indexing (index_select <-> index_add), differentiable.
 * Index tensors hold whole numbers, 1-based, as every index duel's users see. */
#include "../duel_impl.h"

/* ---- cat ------------------------------------------------------------------------------------- */

static int cat_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int dim = (int)y->iparam[0];
    int64_t off = 0;
    for (int i = 0; i < y->nsrc; i++) {
        int64_t len = y->src[i]->shape[dim];
        if (DUEL_NEED(y, i) && !(dx[i] = duel_narrow(dy, dim, off, len))) return -1;
        off += len;
    }
    return 0;
}
static const duel_opdef OP_CAT = {"cat", DUEL_MAXSRC, cat_backward, 0};

/* one graph node joins at most DUEL_MAXSRC tensors */
static duel_tensor *cat_node(duel_tensor **xs, int n, int dim) {
    int64_t shp[DUEL_MAXDIM];
    memcpy(shp, xs[0]->shape, sizeof shp);
    shp[dim] = 0;
    for (int i = 0; i < n; i++) shp[dim] += xs[i]->shape[dim];
    duel_tensor *y = duel_new(shp, xs[0]->ndim, "cat");
    if (!y) return NULL;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < dim; i++) outer *= shp[i];
    for (int i = dim + 1; i < y->ndim; i++) inner *= shp[i];
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        duel_tensor *xc = duel_contiguous(xs[k]);
        if (!xc) {
            duel_release(y);
            return NULL;
        }
        int64_t blk = xs[k]->shape[dim] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy(y->data + o * shp[dim] * inner + off, xc->data + o * blk,
                   (size_t)blk * sizeof(float));
        off += blk;
        duel_release(xc);
    }
    y->iparam[0] = dim;
    duel_record(y, &OP_CAT, xs, n);
    return y;
}

duel_tensor *duel_cat(duel_tensor **xs, int n, int dim) {
    DUEL_CHECK(n >= 1, "cat: need at least one tensor, got %d", n);
    if (duel_check_dim(dim, xs[0]->ndim, "cat", 0)) return NULL;
    for (int i = 1; i < n; i++) {
        int ok = xs[i]->ndim == xs[0]->ndim;
        for (int d = 0; ok && d < xs[0]->ndim; d++)
            ok = d == dim || xs[i]->shape[d] == xs[0]->shape[d];
        DUEL_CHECK(ok, "cat: tensor %d must match tensor 1 except in dimension %d, got %s and %s",
                   i + 1, dim + 1, SHAPE(xs[i]), SHAPE(xs[0]));
    }
    if (n <= DUEL_MAXSRC) return cat_node(xs, n, dim);
    /* join groups of DUEL_MAXSRC, then join the groups */
    int ng = (n + DUEL_MAXSRC - 1) / DUEL_MAXSRC;
    duel_tensor **parts = calloc((size_t)ng, sizeof *parts);
    DUEL_CHECK(parts, "cat: out of memory, got %d tensors", n);
    duel_tensor *y = NULL;
    int ok = 1;
    for (int g = 0; g < ng && ok; g++) {
        int s = g * DUEL_MAXSRC, len = n - s < DUEL_MAXSRC ? n - s : DUEL_MAXSRC;
        parts[g] = cat_node(xs + s, len, dim);
        ok = parts[g] != NULL;
    }
    if (ok) y = duel_cat(parts, ng, dim);
    for (int g = 0; g < ng; g++) duel_release(parts[g]);
    free(parts);
    return y;
}

duel_tensor *duel_stack(duel_tensor **xs, int n, int dim) {
    DUEL_CHECK(n >= 1, "stack: need at least one tensor, got %d", n);
    if (duel_check_dim(dim, xs[0]->ndim, "stack", 1)) return NULL;
    DUEL_CHECK(xs[0]->ndim < DUEL_MAXDIM, "stack: at most %d dimensions, got %s", DUEL_MAXDIM,
               SHAPE(xs[0]));
    for (int i = 1; i < n; i++)
        DUEL_CHECK(duel_same_shape(xs[i], xs[0]),
                   "stack: every tensor must have the same shape, got %s and %s", SHAPE(xs[0]),
                   SHAPE(xs[i]));
    duel_tensor **us = calloc((size_t)n, sizeof *us);
    DUEL_CHECK(us, "stack: out of memory, got %d tensors", n);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) ok = (us[i] = duel_unsqueeze(xs[i], dim)) != NULL;
    duel_tensor *y = ok ? duel_cat(us, n, dim) : NULL;
    for (int i = 0; i < n; i++) duel_release(us[i]);
    free(us);
    return y;
}

/* ---- index_select <-> index_add -------------------------------------------------------------- */

static int check_index(duel_tensor *idx, int64_t size, const char *op, int dim) {
    DUEL_CHECK_INT(idx->ndim == 1, "%s: index must be 1-D, got %s", op, SHAPE(idx));
    int64_t n = duel_numel(idx);
    for (int64_t i = 0; i < n; i++) {
        float v = duel_flat_get(idx, i);
        DUEL_CHECK_INT(v == floorf(v) && v >= 1 && v <= (float)size,
                       "%s: indices must be whole numbers from 1 to %lld (dimension %d), got %g",
                       op, (long long)size, dim + 1, v);
    }
    return 0;
}

static int index_select_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int dim = (int)y->iparam[0];
    dx[0] = duel_index_add(dy, dim, y->src[1], y->src[0]->shape[dim]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_INDEX_SELECT = {"index_select", 2, index_select_backward,
                                           DUEL_SAVE_SRC(1)};

duel_tensor *duel_index_select(duel_tensor *x, int dim, duel_tensor *idx) {
    if (duel_check_dim(dim, x->ndim, "index_select", 0)) return NULL;
    if (check_index(idx, x->shape[dim], "index_select", dim)) return NULL;
    int64_t shp[DUEL_MAXDIM], k = duel_numel(idx);
    memcpy(shp, x->shape, sizeof shp);
    shp[dim] = k;
    duel_tensor *xc = duel_contiguous(x), *y = xc ? duel_new(shp, x->ndim, "index_select") : NULL;
    if (!y) {
        duel_release(xc);
        return NULL;
    }
    int64_t outer = 1, inner = 1, n = x->shape[dim];
    for (int i = 0; i < dim; i++) outer *= shp[i];
    for (int i = dim + 1; i < x->ndim; i++) inner *= shp[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < k; j++) {
            int64_t r = (int64_t)duel_flat_get(idx, j) - 1;
            memcpy(y->data + (o * k + j) * inner, xc->data + (o * n + r) * inner,
                   (size_t)inner * sizeof(float));
        }
    duel_release(xc);
    y->iparam[0] = dim;
    duel_tensor *srcs[2] = {x, idx};
    duel_record(y, &OP_INDEX_SELECT, srcs, 2);
    return y;
}

static int index_add_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    dx[0] = duel_index_select(dy, (int)y->iparam[0], y->src[1]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_INDEX_ADD = {"index_add", 2, index_add_backward, DUEL_SAVE_SRC(1)};

duel_tensor *duel_index_add(duel_tensor *x, int dim, duel_tensor *idx, int64_t size) {
    if (duel_check_dim(dim, x->ndim, "index_add", 0)) return NULL;
    if (check_index(idx, size, "index_add", dim)) return NULL;
    int64_t k = duel_numel(idx);
    DUEL_CHECK(x->shape[dim] == k, "index_add: need %lld rows along dimension %d, got %s",
               (long long)k, dim + 1, SHAPE(x));
    int64_t shp[DUEL_MAXDIM];
    memcpy(shp, x->shape, sizeof shp);
    shp[dim] = size;
    duel_tensor *xc = duel_contiguous(x), *y = xc ? duel_zeros(shp, x->ndim) : NULL;
    if (!y) {
        duel_release(xc);
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < dim; i++) outer *= shp[i];
    for (int i = dim + 1; i < x->ndim; i++) inner *= shp[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < k; j++) {
            int64_t r = (int64_t)duel_flat_get(idx, j) - 1;
            float *dst = y->data + (o * size + r) * inner;
            const float *src = xc->data + (o * k + j) * inner;
            for (int64_t i = 0; i < inner; i++) dst[i] += src[i];
        }
    duel_release(xc);
    y->iparam[0] = dim;
    duel_tensor *srcs[2] = {x, idx};
    duel_record(y, &OP_INDEX_ADD, srcs, 2);
    return y;
}

const duel_opdef *const duel_shape_ops[] = {&OP_CAT, &OP_INDEX_SELECT, &OP_INDEX_ADD, NULL};
