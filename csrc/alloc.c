/* alloc.c -- 64-byte aligned tensor memory, live-byte and GC-debt counters, the OOM hook, and a
 * size-bucketed cache of freed blocks. A training loop allocates the same sizes every step; fresh
 * memory from the kernel costs a page fault per 4 KiB on first touch, which made a 1M-element
 * add 30x slower than on recycled memory (bench/README.md). Freed blocks are kept by exact size
 * and handed out again, up to CACHE_LIMIT bytes; duel_empty_cache() and the OOM path return
 * them to the system. */
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

/* ---- the block cache: open addressing on the byte size, a free list per size ------------------ */

#define CACHE_SLOTS 1024
#define CACHE_LIMIT ((int64_t)1 << 30)
typedef struct cached {
    struct cached *next; /* stored in the freed block itself */
} cached;
static struct {
    int64_t bytes; /* 0: empty slot */
    cached *head;
} cache[CACHE_SLOTS];
static int64_t cached_bytes;

static int slot_of(int64_t bytes, int create) {
    uint64_t h = (uint64_t)bytes / 64 * 0x9E3779B97F4A7C15ULL;
    for (int k = 0; k < CACHE_SLOTS; k++) {
        int i = (int)((h + (uint64_t)k) % CACHE_SLOTS);
        if (cache[i].bytes == bytes) return i;
        if (cache[i].bytes == 0) {
            if (!create) return -1;
            cache[i].bytes = bytes;
            return i;
        }
    }
    return -1;
}

static float *cache_take(int64_t bytes) {
    int i = slot_of(bytes, 0);
    if (i < 0 || !cache[i].head) return NULL;
    cached *c = cache[i].head;
    cache[i].head = c->next;
    cached_bytes -= bytes;
    return (float *)c;
}

static int cache_put(float *p, int64_t bytes) {
    if (cached_bytes + bytes > CACHE_LIMIT) return 0;
    int i = slot_of(bytes, 1);
    if (i < 0) return 0;
    cached *c = (cached *)p;
    c->next = cache[i].head;
    cache[i].head = c;
    cached_bytes += bytes;
    return 1;
}

void duel_empty_cache(void) {
    for (int i = 0; i < CACHE_SLOTS; i++) {
        while (cache[i].head) {
            cached *c = cache[i].head;
            cache[i].head = c->next;
            free(c);
        }
        cache[i].bytes = 0;
    }
    cached_bytes = 0;
}

int64_t duel_cached_bytes(void) { return cached_bytes; }

/* ---- refusing what the machine cannot hold ---------------------------------------------------- */

/* Linux overcommits: a 30 GB malloc on a 24 GB machine succeeds, and the first write to it wakes
 * the OOM killer, which ends the process (or a neighbour) with no error to catch. So a large
 * request is checked against what the kernel says is available (MemAvailable + SwapFree, and the
 * cgroup v2 limit when one is set) before it is made; small ones are not worth the file reads. */
#define CHECK_FROM ((int64_t)64 << 20)

static int64_t meminfo_field(const char *text, const char *key) {
    const char *p = strstr(text, key);
    long long kb;
    if (!p || sscanf(p + strlen(key), " %lld", &kb) != 1 || kb < 0) return -1;
    return (int64_t)kb * 1024;
}

static int64_t read_small_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return (int64_t)n;
}

/* bytes the kernel can still give us, or -1 when it cannot be told (not Linux, no /proc) */
int64_t duel_available_bytes(void) {
    char buf[4096];
    if (read_small_file("/proc/meminfo", buf, sizeof buf) <= 0) return -1;
    int64_t avail = meminfo_field(buf, "MemAvailable:");
    int64_t swap = meminfo_field(buf, "SwapFree:");
    if (avail < 0) return -1;
    if (swap > 0) avail += swap;
    long long max, cur;
    if (read_small_file("/sys/fs/cgroup/memory.max", buf, sizeof buf) > 0 &&
        sscanf(buf, "%lld", &max) == 1 &&
        read_small_file("/sys/fs/cgroup/memory.current", buf, sizeof buf) > 0 &&
        sscanf(buf, "%lld", &cur) == 1) {
        int64_t left = max > cur ? (int64_t)(max - cur) : 0;
        if (left < avail) avail = left;
    }
    return avail;
}

/* 1 when `bytes` fits in what is available (counting our own cached blocks, which can be given
 * back), after a full collection if needed */
static int fits_in_memory(int64_t bytes) {
    if (bytes < CHECK_FROM) return 1;
    int64_t avail = duel_available_bytes();
    if (avail < 0 || bytes <= avail + cached_bytes) return 1;
    if (oom_hook) oom_hook(oom_ud);
    duel_empty_cache();
    avail = duel_available_bytes();
    return avail < 0 || bytes <= avail;
}

float *duel_alloc_floats(int64_t n, const char *op) {
    if (n < 0 || n > DUEL_MAX_BYTES / (int64_t)sizeof(float)) {
        duel_seterr(DUEL_ENOMEM, "%s: tensor too large to allocate, got %lld elements", op,
                    (long long)n);
        return NULL;
    }
    int64_t bytes = padded_bytes(n ? n : 1);
    float *p = cache_take(bytes);
    if (!p && !fits_in_memory(bytes)) {
        duel_seterr(DUEL_ENOMEM,
                    "%s: tensor of %lld bytes exceeds the memory available (%lld bytes), got %lld "
                    "elements", op, (long long)bytes, (long long)duel_available_bytes(), (long long)n);
        return NULL;
    }
    if (!p) p = aligned_alloc(64, (size_t)bytes);
    if (!p && cached_bytes > 0) { /* other sizes are parked in the cache: give them back first */
        duel_empty_cache();
        p = aligned_alloc(64, (size_t)bytes);
    }
    if (!p && oom_hook) {
        oom_hook(oom_ud); /* may free unreachable tensors (into the cache); then one retry */
        duel_empty_cache();
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
    int64_t bytes = padded_bytes(n ? n : 1);
    live_bytes -= bytes;
    if (!cache_put(p, bytes)) free(p);
}

/* free to the system, bypassing the cache: for a long-lived buffer that only grows (conv.c's
 * scratch), whose outgrown sizes no tensor will ask for again */
void duel_release_floats(float *p, int64_t n) {
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
