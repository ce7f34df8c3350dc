/* parallel.c -- one thread count for OpenMP and OpenBLAS together.
 * OpenBLAS (pthread build) keeps its own pool; kernels never call sgemm inside an OpenMP region,
 * so the two pools take turns instead of oversubscribing the cores. */
#include "duel_impl.h"
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
    if (duel_sgemm_dnnl_on && M > 0 && N > 0 && K > 0) {
        int want = mnk < DUEL_GEMM_PAR_MIN ? 1 : t;
        if (want != t) omp_set_num_threads(want);
        dnnl_status_t st = dnnl_sgemm(ta == CblasTrans ? 'T' : 'N', tb == CblasTrans ? 'T' : 'N',
                                      M, N, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
        if (want != t) omp_set_num_threads(t);
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
