/* alloc.c -- 64-byte aligned tensor memory, live-byte and GC-debt counters, the OOM hook. */
#include "duel_impl.h"

/* Only the Lua thread allocates (kernels never do), so plain counters suffice. */
static int64_t live_bytes, alloc_debt;
static void (*oom_hook)(void *);
static void *oom_ud;

/* A single tensor may not exceed this: anything larger is a size error, not an allocation. */
#define DUEL_MAX_BYTES ((int64_t)1 << 40)

int64_t duel_live_bytes(void) { return live_bytes; }
int64_t duel_max_bytes(void) { return DUEL_MAX_BYTES; }

int64_t duel_take_alloc_debt(void) {
    int64_t d = alloc_debt;
    alloc_debt = 0;
    return d;
}

void duel_set_oom_hook(void (*hook)(void *), void *ud) {
    oom_hook = hook;
    oom_ud = ud;
}

static int64_t padded_bytes(int64_t n) {
    int64_t bytes = n * (int64_t)sizeof(float);
    return (bytes + 63) & ~(int64_t)63;
}

float *duel_alloc_floats(int64_t n, const char *op) {
    if (n < 0 || n > DUEL_MAX_BYTES / (int64_t)sizeof(float)) {
        duel_seterr(DUEL_ENOMEM, "%s: tensor too large to allocate, got %lld elements", op,
                    (long long)n);
        return NULL;
    }
    int64_t bytes = padded_bytes(n ? n : 1);
    float *p = aligned_alloc(64, (size_t)bytes);
    if (!p && oom_hook) {
        oom_hook(oom_ud); /* may free unreachable tensors; then one retry */
        p = aligned_alloc(64, (size_t)bytes);
    }
    if (!p) {
        duel_seterr(DUEL_ENOMEM, "%s: out of memory allocating %lld bytes, got %lld elements", op,
                    (long long)bytes, (long long)n);
        return NULL;
    }
    live_bytes += bytes;
    alloc_debt += bytes;
    return p;
}

void duel_free_floats(float *p, int64_t n) {
    if (!p) return;
    live_bytes -= padded_bytes(n ? n : 1);
    free(p);
}

duel_storage *duel_storage_new(int64_t n, const char *op) {
    duel_storage *s = calloc(1, sizeof *s);
    if (!s) {
        duel_seterr(DUEL_ENOMEM, "%s: out of memory, got a storage of %lld elements", op,
                    (long long)n);
        return NULL;
    }
    s->data = duel_alloc_floats(n, op);
    if (!s->data) {
        free(s);
        return NULL;
    }
    s->nbytes = n * (int64_t)sizeof(float);
    s->refcount = 1;
    return s;
}

void duel_storage_release(duel_storage *s) {
    if (!s || --s->refcount > 0) return;
    duel_free_floats(s->data, s->nbytes / (int64_t)sizeof(float));
    free(s);
}
