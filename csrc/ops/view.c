/* view.c -- views over shared storage and their adjoints, all differentiable:
 *   view/reshape/unsqueeze/squeeze <-> reshape back      transpose/permute <-> inverse permutation
 *   narrow <-> embed (zero padding)                      expand <-> sum_to
 *   contiguous/clone <-> identity */
#include "../duel_impl.h"

/* ---- reshape family -------------------------------------------------------------------- */

static int view_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0];
    dx[0] = duel_reshape(dy, x->shape, x->ndim);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_VIEW = {"view", 1, view_backward, 0};

static duel_tensor *restride(duel_tensor *x, const int64_t *shape, const int64_t *stride, int nd,
                             int64_t offset, const duel_opdef *op) {
    duel_tensor *y = duel_view_of(x, shape, stride, nd, offset);
    if (y && op && duel_record(y, op, &x, 1)) {
        duel_release(y);
        return NULL;
    }
    return y;
}

static int infer_shape(const duel_tensor *x, const int64_t *shape, int nd, int64_t *out,
                       const char *op) {
    DUEL_CHECK_INT(nd >= 0 && nd <= DUEL_MAXDIM, "%s: at most %d dimensions, got %d", op,
                   DUEL_MAXDIM, nd);
    int infer = -1;
    int64_t known = 1, n = duel_numel(x);
    for (int i = 0; i < nd; i++) {
        out[i] = shape[i];
        if (shape[i] == -1) {
            DUEL_CHECK_INT(infer < 0, "%s: only one size may be -1, got %s", op,
                           duel_shape_str(shape, nd));
            infer = i;
        } else {
            DUEL_CHECK_INT(shape[i] >= 0, "%s: sizes must be non-negative or -1, got %s", op,
                           duel_shape_str(shape, nd));
            /* bound the product before it can overflow (and wrap to x's numel) */
            DUEL_CHECK_INT(shape[i] == 0 || known <= duel_max_bytes() / (int64_t)sizeof(float) /
                                                         shape[i],
                           "%s: tensor too large (over %lld bytes), got %s", op,
                           (long long)duel_max_bytes(), duel_shape_str(shape, nd));
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        DUEL_CHECK_INT(known > 0 && n % known == 0,
                       "%s: the new shape must hold the %lld elements of %s, got %s", op,
                       (long long)n, SHAPE(x), duel_shape_str(shape, nd));
        out[infer] = n / known;
        known *= out[infer];
    }
    DUEL_CHECK_INT(known == n, "%s: the new shape must hold the %lld elements of %s, got %s", op,
                   (long long)n, SHAPE(x), duel_shape_str(shape, nd));
    return 0;
}

duel_tensor *duel_view(duel_tensor *x, const int64_t *shape, int ndim) {
    int64_t shp[DUEL_MAXDIM], st[DUEL_MAXDIM];
    if (infer_shape(x, shape, ndim, shp, "view")) return NULL;
    DUEL_CHECK(duel_is_contiguous(x),
               "view: the tensor is not contiguous (use reshape or contiguous()), got shape %s",
               SHAPE(x));
    duel_contiguous_strides(shp, ndim, st);
    return restride(x, shp, st, ndim, x->offset, &OP_VIEW);
}

duel_tensor *duel_reshape(duel_tensor *x, const int64_t *shape, int ndim) {
    int64_t shp[DUEL_MAXDIM];
    if (infer_shape(x, shape, ndim, shp, "reshape")) return NULL;
    duel_tensor *c = duel_contiguous(x);
    if (!c) return NULL;
    duel_tensor *y = duel_view(c, shp, ndim);
    duel_release(c);
    return y;
}

duel_tensor *duel_unsqueeze(duel_tensor *x, int dim) {
    DUEL_CHECK(x->ndim < DUEL_MAXDIM, "unsqueeze: at most %d dimensions, got %s", DUEL_MAXDIM,
               SHAPE(x));
    if (duel_check_dim(dim, x->ndim, "unsqueeze", 1)) return NULL;
    int64_t shp[DUEL_MAXDIM], st[DUEL_MAXDIM];
    for (int i = 0, j = 0; i <= x->ndim; i++) {
        if (i == dim) {
            shp[i] = 1;
            st[i] = dim < x->ndim ? x->stride[dim] * x->shape[dim] : 1;
        } else {
            shp[i] = x->shape[j];
            st[i] = x->stride[j];
            j++;
        }
    }
    return restride(x, shp, st, x->ndim + 1, x->offset, &OP_VIEW);
}

duel_tensor *duel_squeeze(duel_tensor *x, int dim) {
    if (dim >= 0 && duel_check_dim(dim, x->ndim, "squeeze", 0)) return NULL;
    int64_t shp[DUEL_MAXDIM], st[DUEL_MAXDIM];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 1 && (dim < 0 || dim == i)) continue;
        shp[nd] = x->shape[i];
        st[nd++] = x->stride[i];
    }
    return restride(x, shp, st, nd, x->offset, &OP_VIEW);
}

/* ---- permutations ---------------------------------------------------------------------- */

static int permute_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int inv[DUEL_MAXDIM];
    for (int i = 0; i < y->ndim; i++) inv[y->iparam[i]] = i;
    dx[0] = duel_permute(dy, inv, y->ndim);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_PERMUTE = {"permute", 1, permute_backward, 0};

duel_tensor *duel_permute(duel_tensor *x, const int *perm, int n) {
    DUEL_CHECK(n == x->ndim, "permute: need one entry per dimension of %s, got %d entries",
               SHAPE(x), n);
    int seen[DUEL_MAXDIM] = {0};
    int64_t shp[DUEL_MAXDIM], st[DUEL_MAXDIM];
    for (int i = 0; i < n; i++) {
        DUEL_CHECK(perm[i] >= 0 && perm[i] < n && !seen[perm[i]],
                   "permute: entries must be a permutation of 1..%d, got %d at position %d", n,
                   perm[i] + 1, i + 1);
        seen[perm[i]] = 1;
        shp[i] = x->shape[perm[i]];
        st[i] = x->stride[perm[i]];
    }
    duel_tensor *y = restride(x, shp, st, n, x->offset, &OP_PERMUTE);
    if (y)
        for (int i = 0; i < n; i++) y->iparam[i] = perm[i];
    return y;
}

duel_tensor *duel_transpose(duel_tensor *x, int d0, int d1) {
    if (duel_check_dim(d0, x->ndim, "transpose", 0) || duel_check_dim(d1, x->ndim, "transpose", 0))
        return NULL;
    int perm[DUEL_MAXDIM];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    return duel_permute(x, perm, x->ndim);
}

/* ---- narrow <-> embed ------------------------------------------------------------------ */

static int narrow_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int dim = (int)y->iparam[0];
    dx[0] = duel_embed(dy, dim, y->iparam[1], y->src[0]->shape[dim]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_NARROW = {"narrow", 1, narrow_backward, 0};

duel_tensor *duel_narrow(duel_tensor *x, int dim, int64_t start, int64_t len) {
    if (duel_check_dim(dim, x->ndim, "narrow", 0)) return NULL;
    DUEL_CHECK(start >= 0 && len >= 0 && start + len <= x->shape[dim],
               "narrow: range [%lld, %lld] out of bounds for dimension %d of shape %s, got start "
               "%lld length %lld",
               (long long)start + 1, (long long)(start + len), dim + 1, SHAPE(x),
               (long long)start + 1, (long long)len);
    int64_t shp[DUEL_MAXDIM];
    memcpy(shp, x->shape, sizeof shp);
    shp[dim] = len;
    duel_tensor *y =
        restride(x, shp, x->stride, x->ndim, x->offset + start * x->stride[dim], &OP_NARROW);
    if (y) {
        y->iparam[0] = dim;
        y->iparam[1] = start;
    }
    return y;
}

duel_tensor *duel_select(duel_tensor *x, int dim, int64_t i) {
    if (duel_check_dim(dim, x->ndim, "select", 0)) return NULL;
    DUEL_CHECK(i >= 0 && i < x->shape[dim],
               "select: index out of range for dimension %d of shape %s, got %lld", dim + 1,
               SHAPE(x), (long long)i + 1);
    duel_tensor *n = duel_narrow(x, dim, i, 1);
    if (!n) return NULL;
    duel_tensor *y = duel_squeeze(n, dim);
    duel_release(n);
    return y;
}

static int embed_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    int dim = (int)y->iparam[0];
    dx[0] = duel_narrow(dy, dim, y->iparam[1], y->src[0]->shape[dim]);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_EMBED = {"embed", 1, embed_backward, 0};

duel_tensor *duel_embed(duel_tensor *x, int dim, int64_t start, int64_t size) {
    if (duel_check_dim(dim, x->ndim, "embed", 0)) return NULL;
    DUEL_CHECK(start >= 0 && start + x->shape[dim] <= size,
               "embed: a slice of %lld at %lld does not fit in %lld, got shape %s",
               (long long)x->shape[dim], (long long)start + 1, (long long)size, SHAPE(x));
    int64_t shp[DUEL_MAXDIM];
    memcpy(shp, x->shape, sizeof shp);
    shp[dim] = size;
    duel_tensor *y = duel_zeros(shp, x->ndim);
    if (!y) return NULL;
    /* write x through a narrow view of y (a raw view: no graph) */
    duel_tensor *win = duel_view_of(y, x->shape, y->stride, x->ndim, start * y->stride[dim]);
    if (!win) {
        duel_release(y);
        return NULL;
    }
    int64_t n = duel_numel(x);
    for (int64_t i = 0; i < n; i++) duel_flat_set(win, i, duel_flat_get(x, i));
    duel_release(win);
    y->iparam[0] = dim;
    y->iparam[1] = start;
    duel_record(y, &OP_EMBED, &x, 1);
    return y;
}

/* ---- expand <-> sum_to ------------------------------------------------------------------- */

static int expand_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0];
    dx[0] = duel_sum_to(dy, x->shape, x->ndim);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_EXPAND = {"expand", 1, expand_backward, 0};

duel_tensor *duel_expand(duel_tensor *x, const int64_t *shape, int ndim) {
    DUEL_CHECK(ndim >= x->ndim && ndim <= DUEL_MAXDIM,
               "expand: cannot expand shape %s to fewer dimensions, got %s", SHAPE(x),
               duel_shape_str(shape, ndim));
    int64_t shp[DUEL_MAXDIM], st[DUEL_MAXDIM];
    int lead = ndim - x->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        int64_t xs = j >= 0 ? x->shape[j] : 1;
        int64_t want = shape[i] == -1 && j >= 0 ? xs : shape[i];
        DUEL_CHECK(want >= 0 && (xs == want || xs == 1),
                   "expand: size %lld of dimension %d cannot become %lld, got shape %s to %s",
                   (long long)xs, i + 1, (long long)shape[i], SHAPE(x),
                   duel_shape_str(shape, ndim));
        shp[i] = want;
        st[i] = j >= 0 && xs == want ? x->stride[j] : 0;
    }
    if (duel_check_shape(shp, ndim, "expand")) return NULL; /* numel must fit in int64 */
    return restride(x, shp, st, ndim, x->offset, &OP_EXPAND);
}

static int sum_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0];
    /* iparam holds the keepdim shape (x's rank, reduced dims = 1) */
    duel_tensor *k = duel_reshape(dy, y->iparam, x->ndim);
    if (!k) return -1;
    dx[0] = duel_expand(k, x->shape, x->ndim);
    duel_release(k);
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_SUM = {"sum", 1, sum_backward, 0};

/* The one summing primitive: reduce x over the dims flagged in `reduced`, output shape
 * out_shape (any shape with the kept elements' count). */
duel_tensor *duel_sum_reduce(duel_tensor *x, const int *reduced, const int64_t *out_shape,
                             int out_nd, const char *op) {
    duel_tensor *xc = duel_contiguous(x);
    if (!xc) return NULL;
    duel_tensor *y = duel_new(out_shape, out_nd, op);
    if (y) {
        duel_sum_kernel(y->data, xc->data, xc->shape, xc->ndim, reduced);
        for (int i = 0; i < x->ndim; i++) y->iparam[i] = reduced[i] ? 1 : x->shape[i];
        duel_record(y, &OP_SUM, &x, 1);
    }
    duel_release(xc);
    return y;
}

duel_tensor *duel_sum_to(duel_tensor *x, const int64_t *shape, int ndim) {
    DUEL_CHECK(ndim <= x->ndim, "sum_to: cannot sum shape %s to more dimensions, got %s", SHAPE(x),
               duel_shape_str(shape, ndim));
    int reduced[DUEL_MAXDIM], lead = x->ndim - ndim, any = 0;
    for (int i = 0; i < x->ndim; i++) {
        int j = i - lead;
        DUEL_CHECK(j < 0 || shape[j] == x->shape[i] || shape[j] == 1,
                   "sum_to: shape %s cannot be summed to %s, got dimension %d", SHAPE(x),
                   duel_shape_str(shape, ndim), i + 1);
        reduced[i] = j < 0 || (shape[j] == 1 && x->shape[i] != 1);
        any |= reduced[i];
    }
    if (!any && ndim == x->ndim) {
        duel_retain(x);
        return x;
    }
    return duel_sum_reduce(x, reduced, shape, ndim, "sum_to");
}

/* ---- copies -------------------------------------------------------------------------------- */

static int identity_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    (void)y;
    duel_retain(dy);
    dx[0] = dy;
    return 0;
}
static const duel_opdef OP_CONTIGUOUS = {"contiguous", 1, identity_backward, 0};
static const duel_opdef OP_CLONE = {"clone", 1, identity_backward, 0};

static duel_tensor *copy_op(duel_tensor *x, const duel_opdef *op) {
    duel_tensor *y = duel_new(x->shape, x->ndim, op->name);
    if (!y) return NULL;
    duel_strided_copy(y->data, x);
    duel_record(y, op, &x, 1);
    return y;
}

duel_tensor *duel_contiguous(duel_tensor *x) {
    if (duel_is_contiguous(x)) {
        duel_retain(x);
        return x;
    }
    return copy_op(x, &OP_CONTIGUOUS);
}

duel_tensor *duel_clone(duel_tensor *x) { return copy_op(x, &OP_CLONE); }

const duel_opdef *const duel_view_ops[] = {&OP_VIEW,  &OP_PERMUTE,    &OP_NARROW, &OP_EMBED,
                                           &OP_EXPAND, &OP_SUM,       &OP_CONTIGUOUS,
                                           &OP_CLONE, NULL};
