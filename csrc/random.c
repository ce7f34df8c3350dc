/* random.c -- a counter-based RNG: element i of a draw is a pure function of (seed, offset + i),
 * so any thread split of a kernel gives the same numbers, and the state is two integers. */
#include "duel_impl.h"

static uint64_t rng_seed = 67280421310721ULL, rng_offset; /* seeds stay below 2^53: exact in Lua */

void duel_manual_seed(uint64_t seed) {
    rng_seed = seed;
    rng_offset = 0;
}
void duel_rng_get_state(uint64_t *seed, uint64_t *offset) {
    *seed = rng_seed;
    *offset = rng_offset;
}
void duel_rng_set_state(uint64_t seed, uint64_t offset) {
    rng_seed = seed;
    rng_offset = offset;
}

/* splitmix64's finaliser applied to a Weyl sequence keyed by the seed: 64 well-mixed bits */
static inline uint64_t mix(uint64_t seed, uint64_t ctr) {
    uint64_t z = seed * 0xD1342543DE82EF95ULL + (ctr + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* uniform in [0,1) from the top 24 bits: exactly representable in float */
static inline float u24(uint32_t bits) { return (float)(bits >> 8) * (1.0f / 16777216.0f); }

/* out: n uniforms in [0,1) */
static void rand_kernel(float *out, int64_t n, uint64_t seed, uint64_t off) {
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN, /* 0.3 ns a draw (bench/par_min.lua): cheap */
    for (int64_t i = 0; i < n; i++) out[i] = u24((uint32_t)(mix(seed, off + (uint64_t)i) >> 32));
    );
}

/* Box-Muller in double without libm: glibc's log and cos are scalar calls (about 23 ns per
 * sample here, a third of a toy2d step), these two are straight-line code that vectorises
 * (1.5 ns per sample; bench/README.md items 5 and 12). Both are within 4e-15 of libm on the 2^24
 * grids of u1 and u2, so the float results match the libm formula except for about 1 sample in
 * 10^7 (1 ulp). */
/* a * b + c in one rounding where the CPU has FMA: the core builds with -std=c11, which turns
 * off GCC's contraction of a * b + c, and the series below are chains of them (item 12: 2.6 ->
 * 1.5 ns a sample). Without FMA, fma() would be a slow library call, so plain arithmetic. */
#ifdef __FMA__
#define MADD(a, b, c) fma(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif
/* ln u for u in (0, 1], normal doubles: u = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, series to s^23 (error < 1e-19) */
static inline double bm_log(double u) {
    uint64_t b;
    memcpy(&b, &u, sizeof b);
    int64_t e = (int64_t)(b >> 52) - 1023;
    uint64_t mb = (b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL; /* m in [1, 2) */
    double m;
    memcpy(&m, &mb, sizeof m);
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    double ef = (double)(e + big);
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 23;
    p = MADD(p, s2, 1.0 / 21);
    p = MADD(p, s2, 1.0 / 19);
    p = MADD(p, s2, 1.0 / 17);
    p = MADD(p, s2, 1.0 / 15);
    p = MADD(p, s2, 1.0 / 13);
    p = MADD(p, s2, 1.0 / 11);
    p = MADD(p, s2, 1.0 / 9);
    p = MADD(p, s2, 1.0 / 7);
    p = MADD(p, s2, 1.0 / 5);
    p = MADD(p, s2, 1.0 / 3);
    return MADD(ef, 0.6931471805599453, MADD(2.0 * s * s2, p, 2.0 * s));
}
/* cos(2 pi t) for t in [0, 1): t - q/2 = r in [-1/4, 1/4] (exact), x = 2 pi r in [-pi/2, pi/2],
 * cos(2 pi t) = (-1)^q cos x, cos x by Taylor to x^20 (error < 3e-17) */
static inline double bm_cos2pi(double t) {
    double q = floor(2.0 * t + 0.5);
    double x = (t - 0.5 * q) * 6.283185307179586;
    double x2 = x * x;
    double c = 1.0 / 2432902008176640000.0;           /* 1/20! */
    c = MADD(c, x2, -1.0 / 6402373705728000.0);       /* 1/18! */
    c = MADD(c, x2, 1.0 / 20922789888000.0);          /* 1/16! */
    c = MADD(c, x2, -1.0 / 87178291200.0);            /* 1/14! */
    c = MADD(c, x2, 1.0 / 479001600.0);               /* 1/12! */
    c = MADD(c, x2, -1.0 / 3628800.0);
    c = MADD(c, x2, 1.0 / 40320.0);
    c = MADD(c, x2, -1.0 / 720.0);
    c = MADD(c, x2, 1.0 / 24.0);
    c = MADD(c, x2, -0.5);
    c = MADD(c, x2, 1.0);
    return ((int)q & 1) ? -c : c; /* q in 0..2 */
}

/* out: n standard normals by Box-Muller, one per counter (the sine half is dropped so that
 * element i depends on counter i alone) */
static void randn_kernel(float *restrict out, int64_t n, uint64_t seed, uint64_t off) {
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN_HEAVY,
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = mix(seed, off + (uint64_t)i);
        double u1 = ((double)(z >> 40) + 1.0) / 16777217.0; /* (0, 1]: log is finite */
        double u2 = (double)((z >> 16) & 0xFFFFFF) / 16777216.0;
        out[i] = (float)(sqrt(-2.0 * bm_log(u1)) * bm_cos2pi(u2));
    });
}

static duel_tensor *draw(const int64_t *shape, int ndim, int normal) {
    duel_tensor *t = duel_new(shape, ndim, normal ? "randn" : "rand");
    if (!t) return NULL;
    int64_t n = duel_numel(t);
    if (normal) randn_kernel(t->data, n, rng_seed, rng_offset);
    else rand_kernel(t->data, n, rng_seed, rng_offset);
    rng_offset += (uint64_t)n;
    return t;
}

duel_tensor *duel_rand(const int64_t *shape, int ndim) { return draw(shape, ndim, 0); }
duel_tensor *duel_randn(const int64_t *shape, int ndim) { return draw(shape, ndim, 1); }

/* out: n draws, 1 with probability p else 0 (u < p with u on the 2^24 grid: p = 1 always 1) */
static void bernoulli_kernel(float *out, int64_t n, float p, uint64_t seed, uint64_t off) {
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++)
        out[i] = u24((uint32_t)(mix(seed, off + (uint64_t)i) >> 32)) < p ? 1.0f : 0.0f;
    );
}

duel_tensor *duel_bernoulli(const int64_t *shape, int ndim, float p) {
    DUEL_CHECK(p >= 0.0f && p <= 1.0f, "bernoulli: probability must be in [0, 1], got %g", p);
    duel_tensor *t = duel_new(shape, ndim, "bernoulli");
    if (!t) return NULL;
    int64_t n = duel_numel(t);
    bernoulli_kernel(t->data, n, p, rng_seed, rng_offset);
    rng_offset += (uint64_t)n;
    return t;
}
