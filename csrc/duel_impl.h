/* duel_impl.h -- internal helpers shared by the core's .c files (never installed). */
#ifndef DUEL_IMPL_H
#define DUEL_IMPL_H

#include "duel.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a kernel runs on one thread: waking the sleeping workers and joining
 * them costs 20-30 us on the project machine (GOMP_SPINCOUNT=0), while a streaming loop of a few
 * flops an element does 262,144 elements in about 90 us on one thread. Loops that spend tens of
 * flops an element (normal draws, exp, log, tanh, softplus) split from DUEL_PAR_MIN_HEAVY on.
 * Measured in bench/README.md, item 12. */
#ifndef DUEL_PAR_MIN
#define DUEL_PAR_MIN 262144
#endif
#ifndef DUEL_PAR_MIN_HEAVY
#define DUEL_PAR_MIN_HEAVY 32768
#endif

/* DUEL_PAR_FOR(cond, for-loop): the loop under `omp parallel for` when cond holds, else a plain
 * loop. Not an `if` clause: libgomp enters and leaves a region of one thread even when the clause
 * is false, and leaving ends at a barrier with a futex syscall; a toy2d_b64 step made 93 of them
 * and ran in 0.60 ms instead of 0.79 without them (bench/README.md, item 8). A `#pragma` cannot
 * stand in a macro argument: loops inside use _Pragma("omp simd"). */
#define DUEL_PAR_FOR(cond, ...) \
    do { \
        if (cond) { _Pragma("omp parallel for") __VA_ARGS__ } else { __VA_ARGS__ } \
    } while (0)

/* C = A B + beta C, row-major, A {M,K} (ta: stored {K,M}), B {K,N} (tb: stored {N,K}): every
 * sgemm of the core goes through here, which picks the threads (parallel.c) */
void duel_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc);

/* conv.c's scratch buffer of at least n floats, kept between calls (contents undefined); NULL
 * with a DUEL_ENOMEM error naming op */
float *duel_conv_scratch(int64_t n, const char *op);

/* conv_dnnl.c: conv.c's products through oneDNN. mode 0: y = conv(x, w); 1: x = conv^T(y, w);
 * 2: w = dW(x, y) (outputs overwritten); d = N C H W O Ho Wo kh kw sh sw ph pw dh dw, groups 1.
 * Returns 1 when not taken (backend off, no oneDNN in the build, or a shape it declines), 0 when
 * done, -1 on failure (error set). */
extern int duel_conv_dnnl_on;
extern int duel_sgemm_dnnl_on; /* parallel.c: duel_sgemm through oneDNN's sgemm */
int duel_dnnl_conv(int mode, const int64_t *d, float *x, float *y, float *w, const char *op);
int duel_dnnl_available(void);
/* parallel.c: around every oneDNN call. oneDNN 2.x's JIT GEMM kernels point rsp into the heap
 * while they run (oneDNN issue 4845), so a signal handled on such a thread writes its frame over
 * the heap: Ctrl-C during training aborted with "corrupted size vs. prev_size". The calling
 * thread holds asynchronous signals back until the call returns (they are delivered then), and
 * OpenMP's workers hold them back for good. */
typedef struct { unsigned long bits[1024 / (8 * sizeof(unsigned long))]; } duel_sigmask;
void duel_signals_hold(duel_sigmask *saved);
void duel_signals_release(const duel_sigmask *saved);
/* for good, in a thread of the core's own (DataLoader workers): a signal for the process then
 * waits for the main thread, where the handlers set their Lua hooks */
void duel_signals_block_thread(void);
/* *on = 1 for "onednn", 0 for `other`; -1 (error naming op) for any other name, or for
 * "onednn" in a build without it */
int duel_dnnl_switch(int *on, const char *op, const char *name, const char *other);

/* out {N,Co,Ho,Wo} (+= when acc) = the 3x3 stride-1 correlation of in {N,Ci,Hi,Wi}, zero-padded
 * by ph, pw (Ho = Hi + 2ph - 2), with the filters of w {O,C,3,3}: w[o][c] (adj = 0: Co = O,
 * Ci = C) or w[c][o] flipped (adj = 1: Co = C, Ci = O), by Winograd F(2x2,3x3) (winograd.c).
 * -1 on allocation failure. */
int duel_winograd3x3(float *out, const float *in, const float *w, int adj, int64_t N, int64_t Ci,
                     int64_t Hi, int64_t Wi, int64_t Co, int64_t Ho, int64_t Wo, int64_t ph,
                     int64_t pw, int acc, const char *op);
/* dw {Co,Ci,3,3} += the weight gradient of that correlation (adj = 0) for input x {N,Ci,Hi,Wi}
 * and output gradient g {N,Co,Ho,Wo}. -1 on allocation failure. */
int duel_winograd3x3_wgt(float *dw, const float *x, const float *g, int64_t N, int64_t Ci,
                         int64_t Hi, int64_t Wi, int64_t Co, int64_t Ho, int64_t Wo, int64_t ph,
                         int64_t pw, const char *op);

#if defined(__GNUC__)
#define DUEL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DUEL_PRINTF(a, b)
#endif

void duel_seterr(int code, const char *fmt, ...) DUEL_PRINTF(2, 3);

/* Validate user input: on failure set the message and return NULL from the enclosing op. */
#define DUEL_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            duel_seterr(DUEL_EINVAL, __VA_ARGS__);                                               \
            return NULL;                                                                         \
        }                                                                                        \
    } while (0)
#define DUEL_CHECK_INT(cond, ...)                                                                \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            duel_seterr(DUEL_EINVAL, __VA_ARGS__);                                               \
            return -1;                                                                           \
        }                                                                                        \
    } while (0)

/* Internal invariant that no user input can reach: report loudly and stop. */
#define DUEL_ASSERT(cond)                                                                        \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "duel internal error %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

#define SHAPE(t) duel_shape_str((t)->shape, (t)->ndim)

/* allocation (alloc.c) */
float *duel_alloc_floats(int64_t n, const char *op); /* NULL + DUEL_ENOMEM error */
void duel_free_floats(float *p, int64_t n);
void duel_release_floats(float *p, int64_t n); /* to the system, not the cache */
duel_storage *duel_storage_new(int64_t n, const char *op);
void duel_storage_release(duel_storage *s);

/* tensor helpers (tensor.c) */
duel_tensor *duel_tensor_alloc(void); /* zeroed struct, refcount 1, no storage */
duel_tensor *duel_new(const int64_t *shape, int ndim, const char *op); /* uninitialised data */
duel_tensor *duel_view_of(duel_tensor *base, const int64_t *shape, const int64_t *stride, int ndim,
                          int64_t offset);
void duel_contiguous_strides(const int64_t *shape, int ndim, int64_t *stride);
int duel_same_shape(const duel_tensor *a, const duel_tensor *b);
int64_t duel_shape_numel(const int64_t *shape, int ndim);
int duel_check_shape(const int64_t *shape, int ndim, const char *op);
/* copy a strided tensor's elements in row-major order into dst (contiguous) */
void duel_strided_copy(float *dst, const duel_tensor *src);
/* broadcast a and b's shapes into out; -1 with error set on mismatch */
int duel_broadcast_shape(const duel_tensor *a, const duel_tensor *b, int64_t *out, int *ndim,
                         const char *op);

/* autograd (autograd.c): record y = op(srcs); no-op unless grad mode is on and a src needs grad.
 * Takes new references to the sources. */
int duel_record(duel_tensor *y, const duel_opdef *op, duel_tensor **srcs, int n);
#define DUEL_NEED(y, i) (((y)->need >> (i)) & 1)

/* summing (reduce.c): out[kept] = sum of x over the dims flagged in `reduced`; x contiguous */
void duel_sum_kernel(float *out, const float *x, const int64_t *shape, int ndim, const int *reduced);
duel_tensor *duel_sum_reduce(duel_tensor *x, const int *reduced, const int64_t *out_shape,
                             int out_nd, const char *op);

/* each op family lists its opdefs, NULL-terminated, for the registry; the layer families are
 * weak so that the registry links whichever of them are built */
extern const duel_opdef *const duel_view_ops[], *const duel_elementwise_ops[],
    *const duel_reduce_ops[], *const duel_shape_ops[], *const duel_matmul_ops[];
#define DUEL_WEAK __attribute__((weak))
extern const duel_opdef *const duel_activation_ops[] DUEL_WEAK, *const duel_loss_ops[] DUEL_WEAK,
    *const duel_conv_ops[] DUEL_WEAK, *const duel_pool_ops[] DUEL_WEAK,
    *const duel_norm_ops[] DUEL_WEAK, *const duel_resample_ops[] DUEL_WEAK,
    *const duel_gan_ops[] DUEL_WEAK;

/* dimension normalisation for C callers: d in [0, ndim) or error */
int duel_check_dim(int dim, int ndim, const char *op, int allow_end);

#endif
