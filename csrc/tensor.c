/* tensor.c -- tensor lifecycle, creation, strided copies, element access and in-place writes. */
#include "duel_impl.h"

duel_tensor *duel_tensor_alloc(void) {
    duel_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        duel_seterr(DUEL_ENOMEM, "tensor: out of memory, got a tensor header");
        return NULL;
    }
    t->refcount = 1;
    return t;
}

void duel_retain(duel_tensor *t) {
    if (t) t->refcount++;
}

/* Releasing a graph can cascade through thousands of nodes: iterate with an explicit stack
 * instead of recursing, so a long chain cannot overflow the C stack. */
void duel_release(duel_tensor *t) {
    if (!t || --t->refcount > 0) return;
    duel_tensor *stack_small[64], **stack = stack_small;
    int64_t cap = 64, n = 0;
    stack[n++] = t;
    while (n > 0) {
        duel_tensor *x = stack[--n];
        duel_tensor *kids[DUEL_MAXSRC + 2];
        int nk = 0;
        for (int i = 0; i < x->nsrc; i++) kids[nk++] = x->src[i];
        kids[nk++] = x->grad;
        kids[nk++] = x->gacc;
        duel_storage_release(x->storage);
        free(x);
        for (int i = 0; i < nk; i++) {
            duel_tensor *k = kids[i];
            if (!k || --k->refcount > 0) continue;
            if (n == cap) {
                duel_tensor **bigger = malloc((size_t)(cap * 2) * sizeof *bigger);
                if (!bigger) { /* cannot grow: leak this subtree rather than crash */
                    continue;
                }
                memcpy(bigger, stack, (size_t)n * sizeof *stack);
                if (stack != stack_small) free(stack);
                stack = bigger;
                cap *= 2;
            }
            stack[n++] = k;
        }
    }
    if (stack != stack_small) free(stack);
}

int64_t duel_shape_numel(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int64_t duel_numel(const duel_tensor *t) { return duel_shape_numel(t->shape, t->ndim); }

void duel_contiguous_strides(const int64_t *shape, int ndim, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

int duel_is_contiguous(const duel_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

int duel_same_shape(const duel_tensor *a, const duel_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int duel_check_shape(const int64_t *shape, int ndim, const char *op) {
    DUEL_CHECK_INT(ndim >= 0 && ndim <= DUEL_MAXDIM, "%s: at most %d dimensions, got %d", op,
                   DUEL_MAXDIM, ndim);
    int64_t n = 1, limit = duel_max_bytes() / (int64_t)sizeof(float);
    for (int i = 0; i < ndim; i++) {
        DUEL_CHECK_INT(shape[i] >= 0, "%s: sizes must be non-negative, got %s", op,
                       duel_shape_str(shape, ndim));
        if (shape[i] == 0) n = 0;
        else if (n > 0) {
            DUEL_CHECK_INT(n <= limit / shape[i], "%s: tensor too large (over %lld bytes), got %s",
                           op, (long long)duel_max_bytes(), duel_shape_str(shape, ndim));
            n *= shape[i];
        }
    }
    return 0;
}

int duel_check_dim(int dim, int ndim, const char *op, int allow_end) {
    int hi = ndim + (allow_end ? 1 : 0);
    if (dim < 0 || dim >= hi) {
        duel_seterr(DUEL_EINVAL, "%s: dimension out of range (expected 1 to %d), got %d", op,
                    hi > 0 ? hi : 1, dim + 1);
        return -1;
    }
    return 0;
}

duel_tensor *duel_new(const int64_t *shape, int ndim, const char *op) {
    if (duel_check_shape(shape, ndim, op)) return NULL;
    duel_tensor *t = duel_tensor_alloc();
    if (!t) return NULL;
    t->storage = duel_storage_new(duel_shape_numel(shape, ndim), op);
    if (!t->storage) {
        free(t);
        return NULL;
    }
    t->data = t->storage->data;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    duel_contiguous_strides(shape, ndim, t->stride);
    return t;
}

duel_tensor *duel_view_of(duel_tensor *base, const int64_t *shape, const int64_t *stride, int ndim,
                          int64_t offset) {
    duel_tensor *t = duel_tensor_alloc();
    if (!t) return NULL;
    t->storage = base->storage;
    t->storage->refcount++;
    t->offset = offset;
    t->data = t->storage->data + offset;
    t->ndim = ndim;
    if (ndim) {
        memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
        memcpy(t->stride, stride, sizeof(int64_t) * (size_t)ndim);
    }
    return t;
}

duel_tensor *duel_empty(const int64_t *shape, int ndim) { return duel_new(shape, ndim, "empty"); }

duel_tensor *duel_full(const int64_t *shape, int ndim, float v) {
    duel_tensor *t = duel_new(shape, ndim, "full");
    if (!t) return NULL;
    int64_t n = duel_numel(t);
    float *d = t->data;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) d[i] = v;
    );
    return t;
}

duel_tensor *duel_zeros(const int64_t *shape, int ndim) {
    duel_tensor *t = duel_new(shape, ndim, "zeros");
    if (t) memset(t->data, 0, (size_t)duel_numel(t) * sizeof(float));
    return t;
}

duel_tensor *duel_scalar(float v) { return duel_full(NULL, 0, v); }
duel_tensor *duel_empty_like(const duel_tensor *t) { return duel_new(t->shape, t->ndim, "empty"); }
duel_tensor *duel_zeros_like(const duel_tensor *t) { return duel_zeros(t->shape, t->ndim); }

duel_tensor *duel_arange(double start, double stop, double step) {
    DUEL_CHECK(isfinite(start) && isfinite(stop) && isfinite(step),
               "arange: bounds must be finite, got (%g, %g, %g)", start, stop, step);
    DUEL_CHECK(step != 0, "arange: step must be non-zero, got %g", step);
    double span = (stop - start) / step;
    DUEL_CHECK(span < 1e12, "arange: too many elements, got (%g, %g, %g)", start, stop, step);
    int64_t n = span > 0 ? (int64_t)ceil(span) : 0;
    duel_tensor *t = duel_new(&n, 1, "arange");
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)(start + step * (double)i);
    return t;
}

/* Row-major walk over a strided tensor; the innermost dimension is a tight loop. Outer rows
 * are independent, so large copies split them across threads. */
void duel_strided_copy(float *dst, const duel_tensor *src) {
    int nd = src->ndim;
    int64_t n = duel_numel(src);
    if (n == 0) return;
    if (duel_is_contiguous(src)) {
        memcpy(dst, src->data, (size_t)n * sizeof(float));
        return;
    }
    int64_t inner = nd ? src->shape[nd - 1] : 1, istride = nd ? src->stride[nd - 1] : 1;
    int64_t rows = n / inner;
    const float *base = src->data;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += (rem % src->shape[d]) * src->stride[d];
            rem /= src->shape[d];
        }
        const float *s = base + off;
        float *o = dst + r * inner;
        if (istride == 1)
            for (int64_t i = 0; i < inner; i++) o[i] = s[i];
        else
            for (int64_t i = 0; i < inner; i++) o[i] = s[i * istride];
    });
}

static int64_t flat_offset(const duel_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    return off;
}

float duel_flat_get(const duel_tensor *t, int64_t i) { return t->data[flat_offset(t, i)]; }
void duel_flat_set(duel_tensor *t, int64_t i, float v) { t->data[flat_offset(t, i)] = v; }

static int index_offset(const duel_tensor *t, const int64_t *idx, int n, const char *op,
                        int64_t *off) {
    DUEL_CHECK_INT(n == t->ndim, "%s: expected %d indices for a tensor of shape %s, got %d", op,
                   t->ndim, SHAPE(t), n);
    *off = 0;
    for (int d = 0; d < n; d++) {
        DUEL_CHECK_INT(idx[d] >= 0 && idx[d] < t->shape[d],
                       "%s: index %d out of range for shape %s, got %lld", op, d + 1, SHAPE(t),
                       (long long)idx[d] + 1);
        *off += idx[d] * t->stride[d];
    }
    return 0;
}

int duel_get(const duel_tensor *t, const int64_t *idx, int n, float *out) {
    int64_t off;
    if (index_offset(t, idx, n, "get", &off)) return -1;
    *out = t->data[off];
    return 0;
}

void duel_bump_version(duel_tensor *t, const char *op) {
    t->storage->version++;
    t->storage->last_write = op;
}

/* In-place writes cannot be recorded in the graph; refuse them where autograd would be fooled. */
int duel_check_inplace(duel_tensor *t, const char *op) {
    DUEL_CHECK_INT(!(duel_grad_enabled() && t->requires_grad),
                   "%s: cannot modify a tensor that requires grad in place (use duel.no_grad or "
                   "detach()), got a tensor of shape %s",
                   op, SHAPE(t));
    return 0;
}

int duel_set_(duel_tensor *t, const int64_t *idx, int n, float v) {
    int64_t off;
    if (duel_check_inplace(t, "set_") || index_offset(t, idx, n, "set_", &off)) return -1;
    t->data[off] = v;
    duel_bump_version(t, "set_");
    return 0;
}

int duel_fill_(duel_tensor *t, float v) {
    if (duel_check_inplace(t, "fill_")) return -1;
    int64_t n = duel_numel(t);
    if (duel_is_contiguous(t)) {
        float *d = t->data;
        DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
        for (int64_t i = 0; i < n; i++) d[i] = v;
        );
    } else {
        for (int64_t i = 0; i < n; i++) duel_flat_set(t, i, v);
    }
    duel_bump_version(t, "fill_");
    return 0;
}

int duel_broadcast_shape(const duel_tensor *a, const duel_tensor *b, int64_t *out, int *ndim,
                         const char *op) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = a->ndim - n + i, ib = b->ndim - n + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            duel_seterr(DUEL_EINVAL, "%s: shapes cannot be broadcast together, got %s and %s", op,
                        SHAPE(a), SHAPE(b));
            return -1;
        }
        out[i] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return 0;
}

int duel_copy_(duel_tensor *dst, duel_tensor *src) {
    if (duel_check_inplace(dst, "copy_")) return -1;
    int64_t shp[DUEL_MAXDIM];
    int nd;
    if (duel_broadcast_shape(dst, src, shp, &nd, "copy_")) return -1;
    DUEL_CHECK_INT(nd == dst->ndim && duel_shape_numel(shp, nd) == duel_numel(dst),
                   "copy_: source must broadcast to the destination's shape %s, got %s",
                   SHAPE(dst), SHAPE(src));
    int64_t n = duel_numel(dst);
    /* go through a temporary: src and dst may overlap in storage */
    duel_tensor *e = duel_expand(src, dst->shape, dst->ndim);
    if (!e) return -1;
    float *tmp = duel_alloc_floats(n, "copy_");
    if (!tmp) {
        duel_release(e);
        return -1;
    }
    duel_strided_copy(tmp, e);
    duel_release(e);
    if (duel_is_contiguous(dst)) memcpy(dst->data, tmp, (size_t)n * sizeof(float));
    else
        for (int64_t i = 0; i < n; i++) duel_flat_set(dst, i, tmp[i]);
    duel_free_floats(tmp, n);
    duel_bump_version(dst, "copy_");
    return 0;
}
