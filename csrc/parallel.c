/* parallel.c -- one thread count for OpenMP and OpenBLAS together.
 * OpenBLAS (pthread build) keeps its own pool; kernels never call sgemm inside an OpenMP region,
 * so the two pools take turns instead of oversubscribing the cores. */
#include "duel_impl.h"
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int nthreads;

int duel_set_num_threads(int n) {
    DUEL_CHECK_INT(n >= 1 && n <= 1024, "set_num_threads: need a thread count in [1, 1024], got %d",
                   n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
    nthreads = n;
    return 0;
}

int duel_get_num_threads(void) {
    if (nthreads) return nthreads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
