/* parallel.c -- one thread count for OpenMP and OpenBLAS together.
 * OpenBLAS (pthread build) keeps its own pool; kernels never call sgemm inside an OpenMP region,
 * so the two pools take turns instead of oversubscribing the cores. */
#include "duel_impl.h"
#include <pthread.h>
#include <signal.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef DUEL_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static int nthreads;
int duel_sgemm_dnnl_on = 1; /* duel_set_sgemm_backend() */
static int blas_now; /* the count OpenBLAS was last given; 0: not yet set by duel_gemm_threads */

int duel_set_num_threads(int n) {
    DUEL_CHECK_INT(n >= 1 && n <= 1024, "set_num_threads: need a thread count in [1, 1024], got %d",
                   n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
    nthreads = n;
    blas_now = n;
    return 0;
}

/* OpenBLAS splits a GEMM over its threads once M*N*K passes 262144, and its idle workers sleep
 * (OPENBLAS_THREAD_TIMEOUT, lua/duel/init.lua), so a small GEMM pays a wake-up that costs more
 * than the split saves: toy2d at batch 64 (M*N*K about 2M) ran 1.8 ms a step on 2 threads and
 * 1.5 ms on 1. Below DUEL_GEMM_PAR_MIN the GEMM runs on the calling thread alone. */
#ifndef DUEL_GEMM_PAR_MIN /* -DDUEL_GEMM_PAR_MIN=0: OpenBLAS decides alone (to measure) */
#define DUEL_GEMM_PAR_MIN ((int64_t)1 << 22)
#endif
static void blas_threads(int want) {
    if (want != blas_now) {
        openblas_set_num_threads(want);
        blas_now = want;
    }
}

/* every signal but the synchronous faults, which cannot wait and must reach their handlers */
static void async_signals(sigset_t *s) {
    sigfillset(s);
    sigdelset(s, SIGSEGV);
    sigdelset(s, SIGBUS);
    sigdelset(s, SIGFPE);
    sigdelset(s, SIGILL);
    sigdelset(s, SIGTRAP);
    sigdelset(s, SIGSYS);
}

_Static_assert(sizeof(duel_sigmask) >= sizeof(sigset_t), "duel_sigmask holds a sigset_t");

static int workers_held; /* OpenMP team size whose workers hold signals back */

void duel_signals_block_thread(void) {
    sigset_t s;
    async_signals(&s);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

void duel_signals_hold(duel_sigmask *saved) {
    sigset_t s;
    async_signals(&s);
    pthread_sigmask(SIG_BLOCK, &s, (sigset_t *)(void *)saved);
#ifdef _OPENMP
    /* workers made from here on inherit the mask; those made before are told once (a team of
     * this size reuses them: libgomp keeps its threads) */
    int t = omp_get_max_threads();
    if (t > workers_held && !omp_in_parallel()) {
#pragma omp parallel num_threads(t)
        if (omp_get_thread_num() != 0) duel_signals_block_thread();
        workers_held = t;
    }
#endif
}

void duel_signals_release(const duel_sigmask *saved) {
    pthread_sigmask(SIG_SETMASK, (const sigset_t *)(const void *)saved, NULL);
}

/* Below this M*N*K the product stays with OpenBLAS: holding signals back costs two system calls
 * (4.5 us a pair on this machine), more than oneDNN saves on products this small (toy2d's
 * products with 1 or 2 rows or columns: 0.7-2.8 us on oneDNN, 1.8-3.9 us on OpenBLAS). */
#ifndef DUEL_DNNL_MIN
#define DUEL_DNNL_MIN ((int64_t)1 << 16)
#endif

void duel_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc) {
    int64_t mnk = M * N * K;
    int t = duel_get_num_threads();
#if defined(DUEL_GEMM_SPLIT) && defined(_OPENMP)
    /* An experiment kept to be rerun, off by default (bench/README.md, item 11): a GEMM from
     * 2^19 to DUEL_GEMM_PAR_MIN cut into one block of rows or columns (the longer side, blocks
     * of 16) per OpenMP thread, each a one-thread OpenBLAS call. It bought nothing here. */
    if (t > 1 && mnk >= ((int64_t)1 << 19) && mnk < DUEL_GEMM_PAR_MIN && !omp_in_parallel()) {
        int by_rows = M >= N;
        int64_t len = by_rows ? M : N, blk = ((len + t - 1) / t + 15) / 16 * 16;
        int parts = (int)((len + blk - 1) / blk);
        blas_threads(1);
#pragma omp parallel for num_threads(parts) schedule(static, 1)
        for (int p = 0; p < parts; p++) {
            int64_t s = p * blk, n = len - s < blk ? len - s : blk;
            if (by_rows)
                cblas_sgemm(CblasRowMajor, ta, tb, (int)n, (int)N, (int)K, 1.0f,
                            a + (ta == CblasNoTrans ? s * lda : s), (int)lda, b, (int)ldb, beta,
                            c + s * ldc, (int)ldc);
            else
                cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)n, (int)K, 1.0f, a, (int)lda,
                            b + (tb == CblasNoTrans ? s : s * ldb), (int)ldb, beta, c + s,
                            (int)ldc);
        }
        return;
    }
#endif
#if defined(DUEL_DNNL) && defined(_OPENMP)
    /* oneDNN's sgemm (row-major, like these calls) runs on the OpenMP threads: the calling
     * thread's team size is set for it and put back. Degenerate sizes, and anything it refuses,
     * stay with OpenBLAS. */
    if (duel_sgemm_dnnl_on && M > 0 && N > 0 && K > 0 && mnk >= DUEL_DNNL_MIN) {
        int want = mnk < DUEL_GEMM_PAR_MIN ? 1 : t;
        duel_sigmask held;
        duel_signals_hold(&held);
        if (want != t) omp_set_num_threads(want);
        dnnl_status_t st = dnnl_sgemm(ta == CblasTrans ? 'T' : 'N', tb == CblasTrans ? 'T' : 'N',
                                      M, N, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
        if (want != t) omp_set_num_threads(t);
        duel_signals_release(&held);
        if (st == dnnl_success) return;
    }
#endif
    blas_threads(mnk < DUEL_GEMM_PAR_MIN ? 1 : t);
    cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0f, a, (int)lda, b, (int)ldb,
                beta, c, (int)ldc);
}

int duel_set_sgemm_backend(const char *name) {
    return duel_dnnl_switch(&duel_sgemm_dnnl_on, "set_sgemm_backend", name, "openblas");
}

const char *duel_sgemm_backend(void) {
    return duel_sgemm_dnnl_on && duel_dnnl_available() ? "onednn" : "openblas";
}

int duel_get_num_threads(void) {
    if (nthreads) return nthreads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
