/* data.c -- synthetic 2-D mixtures (drawn from duel's RNG) and the data loader's counter-based
 * uniforms, which make shuffling and augmentation a pure function of (seed, epoch, item). */
#include "duel_impl.h"
#include "image.h"

duel_tensor *duel_toy2d(const double *means, int k, double std, int64_t n) {
    DUEL_CHECK(k >= 1, "toy2d: need at least one mode, got %d", k);
    DUEL_CHECK(std >= 0.0 && isfinite(std), "toy2d: std must be finite and >= 0, got %g", std);
    DUEL_CHECK(n >= 0, "toy2d: sample count must be non-negative, got %lld", (long long)n);
    /* one uniform per sample picks its mode (equal weights), two normals give its offset */
    duel_tensor *u = duel_rand((int64_t[]){n}, 1);
    duel_tensor *z = u ? duel_randn((int64_t[]){n, 2}, 2) : NULL;
    duel_tensor *out = z ? duel_new((int64_t[]){n, 2}, 2, "toy2d") : NULL;
    if (out)
        for (int64_t i = 0; i < n; i++) {
            int m = (int)(u->data[i] * (float)k);
            if (m >= k) m = k - 1; /* u < 1, but float rounding of u*k could reach k */
            out->data[2 * i] = (float)(means[2 * m] + std * z->data[2 * i]);
            out->data[2 * i + 1] = (float)(means[2 * m + 1] + std * z->data[2 * i + 1]);
        }
    duel_release(u);
    duel_release(z);
    return out;
}

/* splitmix64's increment and finaliser */
static uint64_t splitmix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double duel_data_uniform(uint64_t seed, uint64_t stream, uint64_t index, uint64_t k) {
    uint64_t h = splitmix(splitmix(splitmix(splitmix(seed) ^ stream) ^ index) ^ k);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0); /* 53 bits: [0,1) */
}
