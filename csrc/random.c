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
#pragma omp parallel for if (n >= DUEL_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = u24((uint32_t)(mix(seed, off + (uint64_t)i) >> 32));
}

/* out: n standard normals by Box-Muller, one per counter (the sine half is dropped so that
 * element i depends on counter i alone) */
static void randn_kernel(float *out, int64_t n, uint64_t seed, uint64_t off) {
#pragma omp parallel for if (n >= DUEL_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = mix(seed, off + (uint64_t)i);
        double u1 = ((double)(z >> 40) + 1.0) / 16777217.0; /* (0, 1]: log is finite */
        double u2 = (double)((z >> 16) & 0xFFFFFF) / 16777216.0;
        out[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
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
#pragma omp parallel for if (n >= DUEL_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = u24((uint32_t)(mix(seed, off + (uint64_t)i) >> 32)) < p ? 1.0f : 0.0f;
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
