/* test_core.c -- tests of duel's C core alone (no Lua): values, broadcasting, matmul, reductions,
 * views, autograd to second order, errors as values, and refcounts. Each test also checks that
 * duel_live_bytes() is back where it started, so every test is a leak test too.
 * Prints one line per failed check and ends with "N passed, N failed" (tests, not checks). */
#include "duel.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks_failed; /* in the current test */
static const char *current;

#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            checks_failed++;                                                                     \
            printf("FAIL %s: %s:%d: ", current, __FILE__, __LINE__);                             \
            printf(__VA_ARGS__);                                                                 \
            printf("\n");                                                                        \
        }                                                                                        \
    } while (0)

/* a failed op must return NULL with exactly this message */
#define CHECK_ERR(expr, msg)                                                                     \
    do {                                                                                         \
        duel_clear_error();                                                                      \
        duel_tensor *e_ = (expr);                                                                \
        CHECK(e_ == NULL, "%s: expected NULL", #expr);                                           \
        duel_release(e_);                                                                        \
        CHECK(strcmp(duel_errmsg(), (msg)) == 0, "%s:\n     expected \"%s\"\n     got      \"%s\"", \
              #expr, (msg), duel_errmsg());                                                      \
    } while (0)

/* the same for functions returning int */
#define CHECK_ERR_INT(expr, msg)                                                                 \
    do {                                                                                         \
        duel_clear_error();                                                                      \
        int r_ = (expr);                                                                         \
        CHECK(r_ == -1, "%s: expected -1, got %d", #expr, r_);                                   \
        CHECK(strcmp(duel_errmsg(), (msg)) == 0, "%s:\n     expected \"%s\"\n     got      \"%s\"", \
              #expr, (msg), duel_errmsg());                                                      \
    } while (0)

/* ---- helpers ------------------------------------------------------------------------------ */

static duel_tensor *from(const float *v, const int64_t *shape, int nd) {
    duel_tensor *t = duel_empty(shape, nd);
    if (t) memcpy(t->data, v, (size_t)duel_numel(t) * sizeof(float));
    return t;
}

static int close_to(float a, double b, double tol) {
    return fabs((double)a - b) <= tol * (1.0 + fabs(b));
}

/* every element of t (row-major, any strides) against want[] */
static void check_values(const duel_tensor *t, const float *want, int64_t n, double tol,
                         const char *what) {
    CHECK(t != NULL, "%s: tensor is NULL (%s)", what, duel_errmsg());
    if (!t) return;
    CHECK(duel_numel(t) == n, "%s: expected %lld elements, got %lld", what, (long long)n,
          (long long)duel_numel(t));
    if (duel_numel(t) != n) return;
    for (int64_t i = 0; i < n; i++) {
        float g = duel_flat_get(t, i);
        CHECK(close_to(g, want[i], tol), "%s: element %lld: expected %.7g, got %.7g", what,
              (long long)i, (double)want[i], (double)g);
    }
}

static void check_shape(const duel_tensor *t, const int64_t *shape, int nd, const char *what) {
    CHECK(t != NULL, "%s: tensor is NULL (%s)", what, duel_errmsg());
    if (!t) return;
    const char *want = duel_shape_str(shape, nd), *got = duel_shape_str(t->shape, t->ndim);
    CHECK(strcmp(want, got) == 0, "%s: expected shape %s, got %s", what, want, got);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* randn element i is Box-Muller's cosine half on counter offset + i (random.c's mix is
 * splitmix64's finaliser over a Weyl sequence keyed by the seed): its own log and cos series must
 * give libm's float almost always. A sign slip in a quadrant would keep every moment. */
static uint64_t mix_ref(uint64_t seed, uint64_t ctr) {
    uint64_t z = seed * 0xD1342543DE82EF95ULL + (ctr + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static void test_randn_formula(void) {
    enum { N = 200000 };
    duel_manual_seed(7);
    duel_tensor *skip = duel_randn((int64_t[]){3}, 1); /* an offset that is not a multiple of 8 */
    duel_tensor *g = duel_randn((int64_t[]){N}, 1);
    int off = 0, far = 0;
    for (int64_t i = 0; g && i < N; i++) {
        uint64_t z = mix_ref(7, 3 + (uint64_t)i);
        double u1 = ((double)(z >> 40) + 1.0) / 16777217.0;
        double u2 = (double)((z >> 16) & 0xFFFFFF) / 16777216.0;
        float want = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        if (g->data[i] != want) off++;
        if (fabsf(g->data[i] - want) > 2e-7f * (1.0f + fabsf(want))) far++;
    }
    CHECK(g && far == 0 && off <= 2, "randn = libm's Box-Muller: %d of %d differ, %d by more than 1 ulp",
          off, N, far);
    duel_release(skip);
    duel_release(g);
}

static void test_creation(void) {
    duel_tensor *z = duel_zeros((int64_t[]){2, 3}, 2);
    check_shape(z, (int64_t[]){2, 3}, 2, "zeros");
    check_values(z, (float[]){0, 0, 0, 0, 0, 0}, 6, 0, "zeros");
    CHECK(z && z->stride[0] == 3 && z->stride[1] == 1, "zeros strides");
    CHECK(z && duel_is_contiguous(z), "zeros is contiguous");
    CHECK(z && z->refcount == 1 && z->storage->refcount == 1, "fresh refcounts are 1");
    CHECK(z && ((uintptr_t)z->data & 63) == 0, "data is 64-byte aligned");

    duel_tensor *f = duel_full((int64_t[]){3}, 1, 7.5f);
    check_values(f, (float[]){7.5f, 7.5f, 7.5f}, 3, 0, "full");

    duel_tensor *s = duel_scalar(4.0f);
    CHECK(s && s->ndim == 0 && duel_numel(s) == 1, "scalar is 0-dim with one element");
    check_values(s, (float[]){4}, 1, 0, "scalar");

    duel_tensor *r = duel_arange(0, 5, 1);
    check_values(r, (float[]){0, 1, 2, 3, 4}, 5, 0, "arange(0, 5, 1)");
    duel_tensor *r2 = duel_arange(1, 0, -0.25);
    check_values(r2, (float[]){1, 0.75f, 0.5f, 0.25f}, 4, 0, "arange(1, 0, -0.25)");

    duel_tensor *e = duel_zeros((int64_t[]){0, 3}, 2);
    CHECK(e && duel_numel(e) == 0, "empty tensor has no elements");

    /* get / set_ (0-based in C) */
    CHECK(duel_set_(z, (int64_t[]){1, 2}, 2, 9.0f) == 0, "set_ (%s)", duel_errmsg());
    float v = 0;
    CHECK(duel_get(z, (int64_t[]){1, 2}, 2, &v) == 0 && v == 9.0f, "get after set_: got %g", v);
    CHECK(z && z->storage->version == 1, "set_ bumps the version");
    CHECK(duel_fill_(f, -1.0f) == 0, "fill_");
    check_values(f, (float[]){-1, -1, -1}, 3, 0, "fill_");

    /* rand / randn: reproducible from the seed, in range */
    duel_manual_seed(42);
    duel_tensor *u1 = duel_rand((int64_t[]){1000}, 1);
    duel_manual_seed(42);
    duel_tensor *u2 = duel_rand((int64_t[]){1000}, 1);
    int same = u1 && u2, inrange = u1 != NULL;
    double mean = 0;
    for (int i = 0; u1 && u2 && i < 1000; i++) {
        same &= u1->data[i] == u2->data[i];
        inrange &= u1->data[i] >= 0 && u1->data[i] < 1;
        mean += u1->data[i] / 1000.0;
    }
    CHECK(same, "rand is reproducible after manual_seed");
    CHECK(inrange, "rand is in [0, 1)");
    CHECK(fabs(mean - 0.5) < 0.05, "rand mean %g", mean);
    duel_tensor *g = duel_randn((int64_t[]){4000}, 1);
    double m = 0, m2 = 0;
    for (int i = 0; g && i < 4000; i++) {
        m += g->data[i] / 4000.0;
        m2 += (double)g->data[i] * g->data[i] / 4000.0;
    }
    CHECK(fabs(m) < 0.1 && fabs(m2 - 1) < 0.1, "randn moments: mean %g, E[x^2] %g", m, m2);
    test_randn_formula();

    duel_release(z);
    duel_release(f);
    duel_release(s);
    duel_release(r);
    duel_release(r2);
    duel_release(e);
    duel_release(u1);
    duel_release(u2);
    duel_release(g);
}

static void test_broadcast_add(void) {
    duel_tensor *a = from((float[]){1, 2, 3, 4, 5, 6}, (int64_t[]){2, 3}, 2);
    duel_tensor *row = from((float[]){10, 20, 30}, (int64_t[]){3}, 1);
    duel_tensor *col = from((float[]){100, 200}, (int64_t[]){2, 1}, 2);
    duel_tensor *y1 = duel_add(a, row);
    check_shape(y1, (int64_t[]){2, 3}, 2, "{2,3} + {3}");
    check_values(y1, (float[]){11, 22, 33, 14, 25, 36}, 6, 0, "{2,3} + {3}");
    duel_tensor *y2 = duel_add(col, row); /* {2,1} + {3} -> {2,3} */
    check_shape(y2, (int64_t[]){2, 3}, 2, "{2,1} + {3}");
    check_values(y2, (float[]){110, 120, 130, 210, 220, 230}, 6, 0, "{2,1} + {3}");
    duel_tensor *s = duel_scalar(0.5f);
    duel_tensor *y3 = duel_mul(a, s);
    check_values(y3, (float[]){0.5f, 1, 1.5f, 2, 2.5f, 3}, 6, 0, "{2,3} * 0-dim");
    duel_tensor *y4 = duel_sub(row, col); /* {3} - {2,1} */
    check_values(y4, (float[]){-90, -80, -70, -190, -180, -170}, 6, 0, "{3} - {2,1}");
    duel_tensor *y5 = duel_div(a, col);
    check_values(y5, (float[]){0.01f, 0.02f, 0.03f, 0.02f, 0.025f, 0.03f}, 6, 1e-6,
                 "{2,3} / {2,1}");
    /* a broadcast over a transposed (non-contiguous) operand */
    duel_tensor *at = duel_transpose(a, 0, 1); /* {3,2} */
    duel_tensor *zero = duel_scalar(0);
    duel_tensor *y6 = duel_add(at, zero);
    check_values(y6, (float[]){1, 4, 2, 5, 3, 6}, 6, 0, "transpose + 0");
    duel_tensor *y7 = duel_add(at, col);
    CHECK(y7 == NULL, "{3,2} + {2,1} must not broadcast");
    duel_release(y7);
    duel_release(a);
    duel_release(row);
    duel_release(col);
    duel_release(s);
    duel_release(y1);
    duel_release(y2);
    duel_release(y3);
    duel_release(y4);
    duel_release(y5);
    duel_release(at);
    duel_release(zero);
    duel_release(y6);
}

static void test_matmul(void) {
    duel_tensor *a = from((float[]){1, 2, 3, 4, 5, 6}, (int64_t[]){2, 3}, 2);
    duel_tensor *b = from((float[]){7, 8, 9, 10, 11, 12}, (int64_t[]){3, 2}, 2);
    duel_tensor *c = duel_matmul(a, b);
    /* [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] = [58 64; 139 154] */
    check_shape(c, (int64_t[]){2, 2}, 2, "matmul");
    check_values(c, (float[]){58, 64, 139, 154}, 4, 0, "matmul");
    /* transposed views go to sgemm as flags: b^T a^T = (a b)^T */
    duel_tensor *at = duel_transpose(a, 0, 1), *bt = duel_transpose(b, 0, 1);
    duel_tensor *ct = duel_matmul(bt, at);
    check_values(ct, (float[]){58, 139, 64, 154}, 4, 0, "b^T a^T");
    /* a narrowed (strided) operand */
    duel_tensor *a1 = duel_narrow(a, 1, 1, 2); /* [2 3; 5 6] */
    duel_tensor *b1 = duel_narrow(b, 0, 1, 2); /* [9 10; 11 12] */
    duel_tensor *c1 = duel_matmul(a1, b1);
    check_values(c1, (float[]){51, 56, 111, 122}, 4, 0, "narrowed operands");
    /* batched {2,2,3} x {3,2}: batch 0 is a, batch 1 is 2a */
    duel_tensor *two = duel_mul_scalar(a, 2.0f);
    duel_tensor *pair[2] = {a, two};
    duel_tensor *ab = duel_stack(pair, 2, 0);
    duel_tensor *cb = duel_matmul(ab, b);
    check_shape(cb, (int64_t[]){2, 2, 2}, 3, "batched matmul");
    check_values(cb, (float[]){58, 64, 139, 154, 116, 128, 278, 308}, 8, 0, "batched matmul");
    /* inner size 0 gives zeros */
    duel_tensor *k0a = duel_zeros((int64_t[]){2, 0}, 2), *k0b = duel_zeros((int64_t[]){0, 3}, 2);
    duel_tensor *k0 = duel_matmul(k0a, k0b);
    check_values(k0, (float[]){0, 0, 0, 0, 0, 0}, 6, 0, "{2,0} x {0,3}");
    duel_tensor *rel[] = {a, b, c, at, bt, ct, a1, b1, c1, two, ab, cb, k0a, k0b, k0};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) duel_release(rel[i]);
}

/* Both sgemm backends against a double-precision loop, over transposes and sizes on both sides
 * of the one-thread threshold; each output lands on a recycled block that held NaNs, so a
 * backend that read C under beta = 0 would show it. */
static void test_sgemm_backends(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {64, 2, 128}, {64, 128, 2},
                                        {33, 65, 17}, {200, 300, 100}};
    const char *backends[] = {"onednn", "openblas"};
    const char *was = duel_sgemm_backend();
    for (int bk = 0; bk < 2; bk++) {
        if (duel_set_sgemm_backend(backends[bk])) {
            CHECK(bk == 0, "openblas must always be available: %s", duel_errmsg());
            continue; /* a build without oneDNN */
        }
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int tr = 0; tr < 4; tr++) {
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                duel_tensor *a = duel_randn(tr & 1 ? (int64_t[]){K, M} : (int64_t[]){M, K}, 2);
                duel_tensor *b = duel_randn(tr & 2 ? (int64_t[]){N, K} : (int64_t[]){K, N}, 2);
                duel_tensor *at = tr & 1 ? duel_transpose(a, 0, 1) : a;
                duel_tensor *bt = tr & 2 ? duel_transpose(b, 0, 1) : b;
                if (at == a) duel_retain(a);
                if (bt == b) duel_retain(b);
                duel_tensor *nan = duel_full((int64_t[]){M, N}, 2, NAN);
                duel_release(nan); /* its block goes back to the cache: matmul's output */
                duel_tensor *c = duel_matmul(at, bt);
                double worst = 0;
                for (int64_t i = 0; c && i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double want = 0, scale = 0;
                        for (int64_t k = 0; k < K; k++) {
                            float x = a->data[tr & 1 ? k * M + i : i * K + k];
                            float y = b->data[tr & 2 ? j * K + k : k * N + j];
                            want += (double)x * y;
                            scale += fabs((double)x * y);
                        }
                        double err = fabs(c->data[i * N + j] - want) / (1 + scale);
                        if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
                    }
                CHECK(c && worst < 1e-5, "%s sgemm %lldx%lldx%lld transposes %d: error %g",
                      backends[bk], (long long)M, (long long)N, (long long)K, tr, worst);
                duel_release(a);
                duel_release(b);
                duel_release(at);
                duel_release(bt);
                duel_release(c);
            }
    }
    duel_set_sgemm_backend(was);
}

static void test_reductions(void) {
    duel_tensor *a = from((float[]){1, 2, 3, 4, 5, 6}, (int64_t[]){2, 3}, 2);
    duel_tensor *s0 = duel_sum_dim(a, 0, 0), *s1 = duel_sum_dim(a, 1, 0);
    duel_tensor *s1k = duel_sum_dim(a, 1, 1), *all = duel_sum(a);
    check_shape(s0, (int64_t[]){3}, 1, "sum_dim 0");
    check_values(s0, (float[]){5, 7, 9}, 3, 0, "sum_dim 0");
    check_shape(s1, (int64_t[]){2}, 1, "sum_dim 1");
    check_values(s1, (float[]){6, 15}, 2, 0, "sum_dim 1");
    check_shape(s1k, (int64_t[]){2, 1}, 2, "sum_dim 1 keepdim");
    check_shape(all, NULL, 0, "sum");
    check_values(all, (float[]){21}, 1, 0, "sum");
    /* over a transposed view: the same sums, swapped */
    duel_tensor *at = duel_transpose(a, 0, 1), *st = duel_sum_dim(at, 0, 0);
    check_values(st, (float[]){6, 15}, 2, 0, "sum_dim over a transpose");
    duel_tensor *m = duel_mean_dim(a, 1, 0);
    check_values(m, (float[]){2, 5}, 2, 1e-6, "mean_dim 1");
    duel_tensor *idx = NULL, *mx = duel_max_dim(a, 0, 0, &idx);
    check_values(mx, (float[]){4, 5, 6}, 3, 0, "max_dim 0");
    check_values(idx, (float[]){2, 2, 2}, 3, 0, "max_dim 0 indices (1-based)");
    duel_tensor *v = duel_var(a, -1, 0, 1);
    check_values(v, (float[]){3.5f}, 1, 1e-6, "var (unbiased)");
    duel_tensor *rel[] = {a, s0, s1, s1k, all, at, st, m, idx, mx, v};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) duel_release(rel[i]);
}

static void test_views_share_storage(void) {
    duel_tensor *a = from((float[]){1, 2, 3, 4, 5, 6}, (int64_t[]){2, 3}, 2);
    duel_tensor *t = duel_transpose(a, 0, 1);
    CHECK(t && t->storage == a->storage, "transpose shares storage");
    CHECK(t && a->storage->refcount == 2, "a view holds a storage reference, got %d",
          a->storage->refcount);
    CHECK(t && !duel_is_contiguous(t), "a transpose is not contiguous");
    CHECK(t && t->stride[0] == 1 && t->stride[1] == 3, "transpose strides");
    check_values(t, (float[]){1, 4, 2, 5, 3, 6}, 6, 0, "transpose");
    /* a write through the view is seen by the base, and bumps the shared version */
    CHECK(duel_set_(t, (int64_t[]){2, 1}, 2, 60.0f) == 0, "set_ through a view");
    float v = 0;
    duel_get(a, (int64_t[]){1, 2}, 2, &v);
    CHECK(v == 60.0f, "base sees the write through the view, got %g", v);
    CHECK(a->storage->version == 1, "the storage version is shared");

    duel_tensor *r = duel_view(a, (int64_t[]){3, -1}, 2);
    check_shape(r, (int64_t[]){3, 2}, 2, "view {3,-1}");
    CHECK(r && r->data == a->data, "view aliases the data");
    duel_tensor *n = duel_narrow(a, 1, 1, 2);
    CHECK(n && n->data == a->data + 1 && n->stride[0] == 3, "narrow is an offset view");
    check_values(n, (float[]){2, 3, 5, 60}, 4, 0, "narrow");
    duel_tensor *sel = duel_select(a, 0, 1);
    check_shape(sel, (int64_t[]){3}, 1, "select");
    check_values(sel, (float[]){4, 5, 60}, 3, 0, "select");
    duel_tensor *row = duel_narrow(a, 0, 0, 1);
    duel_tensor *ex = duel_expand(row, (int64_t[]){4, 3}, 2);
    CHECK(ex && ex->stride[0] == 0 && ex->storage == a->storage, "expand has stride 0");
    check_values(ex, (float[]){1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}, 12, 0, "expand");
    duel_tensor *u = duel_unsqueeze(a, 1);
    check_shape(u, (int64_t[]){2, 1, 3}, 3, "unsqueeze");
    duel_tensor *sq = duel_squeeze(u, -1);
    check_shape(sq, (int64_t[]){2, 3}, 2, "squeeze");
    duel_tensor *p = duel_permute(u, (int[]){2, 0, 1}, 3);
    check_shape(p, (int64_t[]){3, 2, 1}, 3, "permute");
    /* contiguous() of a contiguous tensor is the same tensor; of a view, a copy */
    duel_tensor *c1 = duel_contiguous(a), *c2 = duel_contiguous(t);
    CHECK(c1 == a && a->refcount == 2, "contiguous of contiguous retains itself");
    CHECK(c2 && c2->storage != a->storage && duel_is_contiguous(c2), "contiguous of a view copies");
    check_values(c2, (float[]){1, 4, 2, 5, 3, 60}, 6, 0, "contiguous copy");
    /* detach shares storage and drops history */
    duel_tensor *d = duel_detach(a);
    CHECK(d && d->storage == a->storage && !d->requires_grad && !d->op, "detach");
    /* the base may be released first: views keep the storage alive */
    int64_t before = duel_live_bytes();
    duel_release(c1);
    duel_release(a);
    CHECK(duel_live_bytes() == before, "storage outlives its base while views remain");
    check_values(t, (float[]){1, 4, 2, 5, 3, 60}, 6, 0, "view after the base is released");
    duel_tensor *rel[] = {t, r, n, sel, row, ex, u, sq, p, c2, d};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) duel_release(rel[i]);
}

/* y = sum(tanh(x) * x): dy/dx = tanh x + x (1 - tanh^2 x); d/dx of sum(dy/dx) =
 * 2 (1 - tanh^2 x)(1 - x tanh x) */
static void test_grad_tanh_x(void) {
    float xs[] = {-2.0f, -0.7f, 0.0f, 0.3f, 1.5f};
    duel_tensor *x = from(xs, (int64_t[]){5}, 1);
    duel_set_requires_grad(x, 1);
    duel_tensor *t = duel_tanh(x), *p = t ? duel_mul(t, x) : NULL, *y = p ? duel_sum(p) : NULL;
    CHECK(y && y->requires_grad && strcmp(duel_op_name(y), "sum") == 0, "y records a graph");
    float want1[5], want2[5];
    for (int i = 0; i < 5; i++) {
        double th = tanh((double)xs[i]);
        want1[i] = (float)(th + xs[i] * (1 - th * th));
        want2[i] = (float)(2 * (1 - th * th) * (1 - xs[i] * th));
    }
    /* first order, graph kept for a second call */
    duel_tensor *g[1] = {NULL};
    CHECK(duel_grad(&y, NULL, 1, &x, 1, g, 0, 1, 0) == 0, "duel_grad: %s", duel_errmsg());
    check_values(g[0], want1, 5, 1e-5, "dy/dx");
    CHECK(g[0] && !g[0]->requires_grad, "without create_graph the gradient has no graph");
    CHECK(x->grad == NULL, "duel_grad leaves x->grad untouched");
    duel_release(g[0]);

    /* second order through create_graph */
    duel_tensor *g1[1] = {NULL}, *g2[1] = {NULL};
    CHECK(duel_grad(&y, NULL, 1, &x, 1, g1, 1, 1, 0) == 0, "create_graph: %s", duel_errmsg());
    check_values(g1[0], want1, 5, 1e-5, "dy/dx (create_graph)");
    CHECK(g1[0] && g1[0]->requires_grad && g1[0]->op, "the gradient is itself differentiable");
    duel_tensor *sg = g1[0] ? duel_sum(g1[0]) : NULL;
    /* retain_graph: sg's graph contains y's tanh node, which backward below still needs */
    CHECK(sg && duel_grad(&sg, NULL, 1, &x, 1, g2, 0, 1, 0) == 0, "second grad: %s",
          duel_errmsg());
    check_values(g2[0], want2, 5, 1e-4, "d2y/dx2");

    /* backward accumulates into x->grad */
    CHECK(duel_backward(&y, NULL, 1, 0, 0) == 0, "backward: %s", duel_errmsg());
    check_values(x->grad, want1, 5, 1e-5, "x->grad");
    CHECK(y->released, "backward without retain_graph releases the graph");
    CHECK(y->src[0] == NULL, "released nodes hold no sources");

    duel_tensor *rel[] = {x, t, p, y, g1[0], g2[0], sg};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) duel_release(rel[i]);
}

/* broadcasting and matmul gradients against closed forms */
static void test_grad_closed_forms(void) {
    duel_tensor *a = from((float[]){1, 2, 3, 4, 5, 6}, (int64_t[]){2, 3}, 2);
    duel_tensor *b = from((float[]){1, -1, 2}, (int64_t[]){3}, 1);
    duel_tensor *w = from((float[]){1, 0, 0, 1, 1, 1}, (int64_t[]){3, 2}, 2);
    duel_set_requires_grad(a, 1);
    duel_set_requires_grad(b, 1);
    duel_set_requires_grad(w, 1);
    /* L = sum((a * b) @ w): dL/dw[k][j] = sum_i a[i][k] b[k]; dL/db[k] = sum_i a[i][k] * rowsum(w)[k] */
    duel_tensor *ab = duel_mul(a, b), *m = ab ? duel_matmul(ab, w) : NULL, *L = m ? duel_sum(m) : NULL;
    duel_tensor *in[3] = {a, b, w}, *g[3] = {NULL, NULL, NULL};
    CHECK(L && duel_grad(&L, NULL, 1, in, 3, g, 0, 0, 0) == 0, "grad: %s", duel_errmsg());
    /* rowsum(w) = {1, 1, 2}; da[i][k] = b[k] * rowsum(w)[k] = {1, -1, 4} for each row */
    check_values(g[0], (float[]){1, -1, 4, 1, -1, 4}, 6, 1e-6, "dL/da");
    /* colsum(a) = {5, 7, 9}; db = colsum(a) * rowsum(w) = {5, 7, 18} (summed over the broadcast) */
    check_shape(g[1], (int64_t[]){3}, 1, "dL/db keeps b's shape");
    check_values(g[1], (float[]){5, 7, 18}, 3, 1e-6, "dL/db");
    /* dw[k][j] = colsum(a)[k] b[k] = {5, -7, 18} in both columns */
    check_values(g[2], (float[]){5, 5, -7, -7, 18, 18}, 6, 1e-6, "dL/dw");
    duel_tensor *rel[] = {a, b, w, ab, m, L, g[0], g[1], g[2]};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) duel_release(rel[i]);
}

static void test_errors_as_values(void) {
    duel_tensor *a = duel_zeros((int64_t[]){2, 3}, 2), *b = duel_zeros((int64_t[]){3, 2}, 2);
    CHECK_ERR(duel_add(a, b), "add: shapes cannot be broadcast together, got {2,3} and {3,2}");
    CHECK(duel_errcode() == DUEL_EINVAL, "errcode is DUEL_EINVAL");
    CHECK_ERR(duel_mul(a, b), "mul: shapes cannot be broadcast together, got {2,3} and {3,2}");
    CHECK_ERR(duel_matmul(a, a), "matmul: inner sizes must match, got {2,3} and {2,3}");
    duel_tensor *t = duel_transpose(a, 0, 1);
    CHECK_ERR(duel_view(t, (int64_t[]){6}, 1),
              "view: the tensor is not contiguous (use reshape or contiguous()), got shape {3,2}");
    CHECK_ERR(duel_view(a, (int64_t[]){-1, -1}, 2), "view: only one size may be -1, got {-1,-1}");
    CHECK_ERR(duel_transpose(a, 0, 2), "transpose: dimension out of range (expected 1 to 2), got 3");
    CHECK_ERR(duel_sum_dim(a, 5, 0), "sum: dimension out of range (expected 1 to 2), got 6");
    CHECK_ERR(duel_narrow(a, 1, 2, 2),
              "narrow: range [3, 4] out of bounds for dimension 2 of shape {2,3}, got start 3 length 2");
    CHECK_ERR(duel_permute(a, (int[]){0, 0}, 2),
              "permute: entries must be a permutation of 1..2, got 1 at position 2");
    CHECK_ERR(duel_expand(a, (int64_t[]){3, 3}, 2),
              "expand: size 2 of dimension 1 cannot become 3, got shape {2,3} to {3,3}");
    duel_tensor *pair[2] = {a, b};
    CHECK_ERR(duel_cat(pair, 2, 0),
              "cat: tensor 2 must match tensor 1 except in dimension 1, got {3,2} and {2,3}");
    CHECK_ERR(duel_zeros((int64_t[]){2, -1}, 2), "zeros: sizes must be non-negative, got {2,-1}");
    CHECK_ERR(duel_zeros((int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}, 2),
              "zeros: tensor too large (over 1099511627776 bytes), got {1099511627776,1099511627776}");
    CHECK_ERR(duel_empty((int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9),
              "empty: at most 8 dimensions, got 9");
    CHECK_ERR(duel_arange(0, 1, 0), "arange: step must be non-zero, got 0");
    CHECK_ERR(duel_clamp(a, 1, 0), "clamp: lower bound must not exceed upper bound, got (1, 0)");
    duel_tensor *e = duel_zeros((int64_t[]){0}, 1);
    CHECK_ERR(duel_max(e), "max: cannot reduce an empty tensor, got shape {0}");
    float v;
    CHECK_ERR_INT(duel_get(a, (int64_t[]){2, 0}, 2, &v),
                  "get: index 1 out of range for shape {2,3}, got 3");
    CHECK_ERR_INT(duel_get(a, (int64_t[]){0}, 1, &v),
                  "get: expected 2 indices for a tensor of shape {2,3}, got 1");
    CHECK_ERR_INT(duel_copy_(a, b), "copy_: shapes cannot be broadcast together, got {2,3} and {3,2}");
    CHECK_ERR_INT(duel_set_num_threads(0), "set_num_threads: need a thread count in [1, 1024], got 0");

    /* autograd misuse */
    duel_tensor *x = duel_full((int64_t[]){3}, 1, 0.5f);
    duel_set_requires_grad(x, 1);
    CHECK_ERR_INT(duel_fill_(x, 1.0f),
                  "fill_: cannot modify a tensor that requires grad in place (use duel.no_grad or "
                  "detach()), got a tensor of shape {3}");
    duel_tensor *y = duel_mul_scalar(x, 2.0f);
    CHECK_ERR_INT(duel_backward(&y, NULL, 1, 0, 0),
                  "backward: grad can be implicitly created only for a one-element output (pass "
                  "grad_outputs), got {3}");
    CHECK_ERR_INT(duel_backward(&a, NULL, 1, 0, 0),
                  "backward: output 1 does not require grad and has no grad history, got a tensor "
                  "of shape {2,3}");
    CHECK_ERR_INT(duel_set_requires_grad(y, 0),
                  "requires_grad_: only leaf tensors can stop requiring grad (use detach()), got a "
                  "tensor computed by mul_scalar");
    duel_tensor *s = duel_sum(y);
    CHECK(duel_backward(&s, NULL, 1, 0, 0) == 0, "first backward: %s", duel_errmsg());
    CHECK_ERR_INT(duel_backward(&s, NULL, 1, 0, 0),
                  "backward: the graph through sum was freed by an earlier backward (pass "
                  "retain_graph=true to keep it), got a released sum node");
    /* an input saved for backward, then written in place with grad mode off */
    duel_tensor *z = duel_full((int64_t[]){3}, 1, 0.25f);
    duel_set_requires_grad(z, 1);
    duel_tensor *sn = duel_sin(z), *ssum = sn ? duel_sum(sn) : NULL;
    int prev = duel_set_grad_enabled(0);
    CHECK(duel_fill_(z, 2.0f) == 0, "fill_ under no_grad: %s", duel_errmsg());
    duel_set_grad_enabled(prev);
    CHECK_ERR_INT(duel_backward(&ssum, NULL, 1, 0, 0),
                  "sin: an input needed for its gradient was modified in place (by fill_), got "
                  "version 1, expected 0");
    /* an unreachable input */
    duel_tensor *g[1] = {NULL}, *w = duel_zeros((int64_t[]){2}, 1);
    duel_set_requires_grad(w, 1);
    duel_tensor *s2 = duel_sum(x);
    CHECK_ERR_INT(duel_grad(&s2, NULL, 1, &w, 1, g, 0, 0, 0),
                  "grad: input 1 is not reachable from the outputs (pass allow_unused=true), got a "
                  "tensor of shape {2}");
    CHECK(g[0] == NULL, "no gradient returned on error");
    /* (the failed call above left s2's graph intact; a fresh one is used all the same) */
    duel_tensor *s3 = duel_sum(x);
    CHECK(duel_grad(&s3, NULL, 1, &w, 1, g, 0, 0, 1) == 0 && g[0] == NULL,
          "allow_unused gives NULL: %s", duel_errmsg());
    /* the error state is per call: a later success does not depend on clearing it */
    duel_tensor *ok = duel_add(a, a);
    CHECK(ok != NULL, "ops work after errors");
    duel_tensor *rel[] = {a, b, t, e, x, y, s, z, sn, ssum, w, s2, s3, ok};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) duel_release(rel[i]);
}

/* Refcounts: everything, graphs included, goes back to the starting live bytes. */
static void test_refcounts(void) {
    int64_t start = duel_live_bytes();
    duel_tensor *x = duel_randn((int64_t[]){64, 64}, 2);
    duel_set_requires_grad(x, 1);
    int64_t after_x = duel_live_bytes();
    CHECK(after_x - start == 64 * 64 * 4, "one 64x64 tensor: %lld bytes",
          (long long)(after_x - start));

    /* a graph holds its intermediates; dropping the root frees the whole chain */
    duel_tensor *h = duel_tanh(x), *h2 = duel_mul(h, x), *l = duel_sum(h2);
    duel_release(h);
    duel_release(h2);
    CHECK(duel_live_bytes() - after_x >= 2 * 64 * 64 * 4, "the graph keeps its activations");
    duel_release(l);
    CHECK(duel_live_bytes() == after_x, "releasing the root frees the graph: %lld bytes left",
          (long long)(duel_live_bytes() - after_x));

    /* backward without retain_graph frees the activations while the root is still alive */
    h = duel_tanh(x);
    h2 = duel_mul(h, x);
    l = duel_sum(h2);
    duel_release(h);
    duel_release(h2);
    CHECK(duel_backward(&l, NULL, 1, 0, 0) == 0, "backward: %s", duel_errmsg());
    CHECK(duel_live_bytes() - after_x == 64 * 64 * 4 + 64,
          "after backward only x->grad and the root remain: %lld bytes",
          (long long)(duel_live_bytes() - after_x));
    duel_release(l);

    /* create_graph: x->grad holds a graph that references x; no cycle keeps memory alive */
    h = duel_tanh(x);
    l = duel_sum(h);
    duel_release(h);
    duel_release(x->grad);
    x->grad = NULL;
    CHECK(duel_backward(&l, NULL, 1, 1, 1) == 0, "backward(create_graph): %s", duel_errmsg());
    CHECK(x->grad && x->grad->requires_grad, "with create_graph the leaf gradient has a graph");
    duel_release(l);
    /* x->grad's graph references x (a cycle, as in PyTorch): clearing the grad breaks it */
    CHECK(x->refcount == 2, "x is referenced by its own gradient's graph, got %d", x->refcount);
    duel_release(x->grad);
    x->grad = NULL;
    CHECK(x->refcount == 1, "clearing x->grad drops that reference, got %d", x->refcount);
    duel_release(x);
    CHECK(duel_live_bytes() == start, "everything released: %lld bytes left",
          (long long)(duel_live_bytes() - start));

    /* a long chain is released (and differentiated) without recursion */
    duel_tensor *c = duel_scalar(1.0f);
    duel_set_requires_grad(c, 1);
    duel_tensor *y = c;
    duel_retain(y);
    for (int i = 0; i < 100000 && y; i++) {
        duel_tensor *n = duel_add_scalar(y, 1e-5f);
        duel_release(y);
        y = n;
    }
    duel_tensor *gc[1] = {NULL};
    CHECK(y && duel_grad(&y, NULL, 1, &c, 1, gc, 0, 1, 0) == 0, "grad through 100000 nodes: %s",
          duel_errmsg());
    check_values(gc[0], (float[]){1}, 1, 0, "d(chain)/dc");
    duel_release(gc[0]);
    duel_release(y);
    duel_release(c);
    CHECK(duel_live_bytes() == start, "long chain released: %lld bytes left",
          (long long)(duel_live_bytes() - start));
}

static void test_registry(void) {
    int n = 0;
    const duel_opdef *const *ops = duel_registry(&n);
    CHECK(ops && n >= 20, "the registry lists the differentiable ops, got %d", n);
    for (int i = 0; ops && i < n; i++)
        CHECK(ops[i] && ops[i]->name && ops[i]->backward, "op %d has a name and a backward", i);
}

/* ---- runner ------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case;

int main(void) {
    static const test_case tests[] = {
        {"creation and element values", test_creation},
        {"broadcasting add/sub/mul/div", test_broadcast_add},
        {"matmul against hand-computed products", test_matmul},
        {"matmul on both sgemm backends against a double loop", test_sgemm_backends},
        {"sum_dim and other reductions", test_reductions},
        {"views share storage", test_views_share_storage},
        {"duel_grad of sum(tanh(x)*x) and its second derivative", test_grad_tanh_x},
        {"gradients of broadcasting and matmul", test_grad_closed_forms},
        {"errors are values with exact messages", test_errors_as_values},
        {"refcounts: live bytes return to the start", test_refcounts},
        {"the op registry", test_registry},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        current = tests[i].name;
        checks_failed = 0;
        int64_t before = duel_live_bytes();
        tests[i].fn();
        CHECK(duel_live_bytes() == before, "leak: %lld bytes still live after the test",
              (long long)(duel_live_bytes() - before));
        if (checks_failed) failed++;
        else passed++;
    }
    CHECK(duel_grad_enabled(), "grad mode left on");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
