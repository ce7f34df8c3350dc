/* conv_dnnl.c -- conv.c's three products through oneDNN (Debian's libdnnl, the library behind
 * PyTorch's CPU convolutions), when the build found it (-DDUEL_DNNL, Makefile). oneDNN's direct
 * convolutions work on channel-blocked layouts with AVX-512 where the CPU has it: on the
 * dcgan64 layers they ran about twice as fast as im2col + OpenBLAS (bench/README.md, item 13).
 * Tensors stay NCHW; each call reorders its operands into the layouts the primitive chose and
 * the result back, in conv.c's scratch, as PyTorch does.
 *   mode 0 (conv2d):         y = conv(x, w)        forward
 *   mode 1 (its adjoint):    x = conv^T(y, w)      backward data (x overwritten)
 *   mode 2 (weight product): w = dW(x, y)          backward weights (w overwritten)
 * Primitives are built once per shape (JIT code, a millisecond or so) and kept in a small
 * per-thread cache keyed on the geometry, the mode and the thread count the primitive was split
 * for. Grouped convolutions and shapes oneDNN declines stay on the GEMM path. */
#include "../duel_impl.h"

int duel_conv_dnnl_on = 1; /* duel_set_conv_backend() */
static _Thread_local int64_t n_taken, n_declined; /* calls, for the tests */

void duel_dnnl_counts(int64_t *taken, int64_t *declined) {
    *taken = n_taken;
    *declined = n_declined;
}

int duel_dnnl_switch(int *on, const char *op, const char *name, const char *other) {
    int dnnl = name && !strcmp(name, "onednn"), alt = name && !strcmp(name, other);
    DUEL_CHECK_INT(alt || dnnl, "%s: backend must be 'onednn' or '%s', got '%s'", op, other,
                   name ? name : "(null)");
    DUEL_CHECK_INT(alt || duel_dnnl_available(),
                   "%s: this build has no oneDNN (libdnnl-dev), got 'onednn'", op);
    *on = dnnl;
    return 0;
}

int duel_set_conv_backend(const char *name) {
    return duel_dnnl_switch(&duel_conv_dnnl_on, "set_conv_backend", name, "gemm");
}

const char *duel_conv_backend(void) {
    return duel_conv_dnnl_on && duel_dnnl_available() ? "onednn" : "gemm";
}

#ifdef DUEL_DNNL
#include <oneapi/dnnl/dnnl.h>

enum { KEYN = 17, CACHE_N = 128, SLOT_X = 0, SLOT_W = 1, SLOT_Y = 2 };

typedef struct {
    int64_t key[KEYN]; /* key[0] = mode + 1; 0 marks an empty entry */
    int ok;            /* 0: oneDNN declined the shape */
    dnnl_primitive_t conv;
    dnnl_primitive_t re[3]; /* per slot: NULL when the chosen layout is the plain one */
    dnnl_memory_desc_t user[3], inner[3], pad;
    size_t off[3], pad_off, bytes; /* offsets into the scratch, in bytes */
} entry;

static _Thread_local dnnl_engine_t engine;
static _Thread_local dnnl_stream_t stream;
static _Thread_local entry *cache; /* CACHE_N entries (5 KB each), made with the engine */
static _Thread_local int cache_next;

/* the argument each slot plays in each mode */
static const int ARG[3][3] = {
    {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
    {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
    {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST},
};
static const dnnl_query_t QUERY[3][3] = {
    {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
    {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md},
    {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md},
};
static const int OUT_SLOT[3] = {SLOT_Y, SLOT_X, SLOT_W};

static void drop_primitives(entry *e) {
    if (e->conv) dnnl_primitive_destroy(e->conv);
    for (int s = 0; s < 3; s++)
        if (e->re[s]) dnnl_primitive_destroy(e->re[s]);
    e->conv = e->re[0] = e->re[1] = e->re[2] = NULL;
}

static void entry_clear(entry *e) {
    drop_primitives(e);
    memset(e, 0, sizeof *e);
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* a reorder between two layouts of one tensor; NULL (and ok) when they are the same */
static int make_reorder(dnnl_primitive_t *p, const dnnl_memory_desc_t *from,
                        const dnnl_memory_desc_t *to) {
    dnnl_primitive_desc_t pd;
    *p = NULL;
    if (dnnl_memory_desc_equal(from, to)) return 0;
    if (dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL) != dnnl_success)
        return -1;
    dnnl_status_t st = dnnl_primitive_create(p, pd);
    dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success ? 0 : -1;
}

/* Build e's primitives for geometry d (N C H W O Ho Wo kh kw sh sw ph pw dh dw). Leaves e->ok
 * 0 when oneDNN has no implementation (e.g. a right padding it cannot express). */
static void entry_build(entry *e, int mode, const int64_t *d) {
    int64_t N = d[0], C = d[1], H = d[2], W = d[3], O = d[4], Ho = d[5], Wo = d[6];
    int64_t kh = d[7], kw = d[8], sh = d[9], sw = d[10], ph = d[11], pw = d[12];
    int64_t dh = d[13], dw = d[14];
    /* the right/bottom padding that makes Ho, Wo exact; negative when the last rows go unused */
    int64_t pr_h = (Ho - 1) * sh + (kh - 1) * dh + 1 - H - ph;
    int64_t pr_w = (Wo - 1) * sw + (kw - 1) * dw + 1 - W - pw;
    if (pr_h < 0 || pr_w < 0) return;
    dnnl_dims_t xd = {N, C, H, W}, wd = {O, C, kh, kw}, yd = {N, O, Ho, Wo};
    dnnl_dims_t st = {sh, sw}, dil = {dh - 1, dw - 1}, pl = {ph, pw}, pr = {pr_h, pr_w};
    dnnl_memory_desc_t any[3];
    dnnl_memory_desc_init_by_tag(&e->user[SLOT_X], 4, xd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&e->user[SLOT_W], 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&e->user[SLOT_Y], 4, yd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&any[SLOT_X], 4, xd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&any[SLOT_W], 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&any[SLOT_Y], 4, yd, dnnl_f32, dnnl_format_tag_any);

    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    dnnl_convolution_desc_t cd;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    /* the forward descriptor: mode 0's own, the others' hint */
    if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                   dnnl_convolution_direct, &any[SLOT_X],
                                                   &any[SLOT_W], NULL, &any[SLOT_Y], st, dil, pl,
                                                   pr) != dnnl_success ||
        dnnl_primitive_desc_create(&fwd, &cd, attr, engine, NULL) != dnnl_success)
        goto done;
    if (mode == 0) {
        pd = fwd;
        fwd = NULL;
    } else {
        dnnl_status_t s =
            mode == 1
                ? dnnl_dilated_convolution_backward_data_desc_init(
                      &cd, dnnl_convolution_direct, &any[SLOT_X], &any[SLOT_W], &any[SLOT_Y], st,
                      dil, pl, pr)
                : dnnl_dilated_convolution_backward_weights_desc_init(
                      &cd, dnnl_convolution_direct, &any[SLOT_X], &any[SLOT_W], NULL,
                      &any[SLOT_Y], st, dil, pl, pr);
        if (s != dnnl_success || dnnl_primitive_desc_create(&pd, &cd, attr, engine, fwd) !=
                                     dnnl_success)
            goto done;
    }
    size_t at = 0;
    for (int s = 0; s < 3; s++) {
        e->inner[s] = *dnnl_primitive_desc_query_md(pd, QUERY[mode][s], 0);
        int out = s == OUT_SLOT[mode];
        if (make_reorder(&e->re[s], out ? &e->inner[s] : &e->user[s],
                         out ? &e->user[s] : &e->inner[s]))
            goto done;
        e->off[s] = at;
        if (e->re[s]) at += round64(dnnl_memory_desc_get_size(&e->inner[s]));
    }
    e->pad = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->pad_off = at;
    at += round64(dnnl_memory_desc_get_size(&e->pad));
    e->bytes = at;
    if (dnnl_primitive_create(&e->conv, pd) != dnnl_success) goto done;
    e->ok = 1;
done:
    if (!e->ok) drop_primitives(e); /* the key stays, so the shape is not tried again */
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    dnnl_primitive_attr_destroy(attr);
}

static entry *lookup(int mode, const int64_t *d) {
    int64_t key[KEYN];
    key[0] = mode + 1;
    memcpy(key + 1, d, 15 * sizeof(int64_t));
    key[16] = duel_get_num_threads(); /* primitives fix their split when built */
    for (int i = 0; i < CACHE_N; i++)
        if (!memcmp(cache[i].key, key, sizeof key)) return &cache[i];
    entry *e = &cache[cache_next];
    cache_next = (cache_next + 1) % CACHE_N;
    entry_clear(e);
    memcpy(e->key, key, sizeof key);
    entry_build(e, mode, d);
    return e;
}

static int run_entry(entry *e, int mode, float *x, float *y, float *w, const char *op) {
    float *user_ptr[3] = {x, w, y};
    /* e->bytes is a multiple of 64; 0 when every layout is the plain one and no scratchpad */
    float *buf = e->bytes ? duel_conv_scratch((int64_t)(e->bytes / sizeof(float)), op) : NULL;
    if (e->bytes && !buf) return -1;
    char *base = (char *)buf;
    dnnl_memory_t um[3] = {NULL}, im[3] = {NULL}, pad = NULL;
    dnnl_exec_arg_t args[4];
    int rc = -1, out = OUT_SLOT[mode];
    duel_sigmask held; /* signals wait while oneDNN runs (duel_impl.h) */
    duel_signals_hold(&held);
    for (int s = 0; s < 3; s++) {
        if (dnnl_memory_create(&um[s], &e->user[s], engine, user_ptr[s]) != dnnl_success) goto done;
        if (e->re[s] &&
            dnnl_memory_create(&im[s], &e->inner[s], engine, base + e->off[s]) != dnnl_success)
            goto done;
    }
    if (e->pad.ndims > 0 &&
        dnnl_memory_create(&pad, &e->pad, engine, base + e->pad_off) != dnnl_success)
        goto done;
    for (int s = 0; s < 3; s++) /* inputs into the primitive's layouts */
        if (s != out && e->re[s]) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, um[s]}, {DNNL_ARG_TO, im[s]}};
            if (dnnl_primitive_execute(e->re[s], stream, 2, ra) != dnnl_success) goto done;
        }
    for (int s = 0; s < 3; s++) args[s] = (dnnl_exec_arg_t){ARG[mode][s], e->re[s] ? im[s] : um[s]};
    args[3] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
    if (dnnl_primitive_execute(e->conv, stream, pad ? 4 : 3, args) != dnnl_success) goto done;
    if (e->re[out]) {
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, im[out]}, {DNNL_ARG_TO, um[out]}};
        if (dnnl_primitive_execute(e->re[out], stream, 2, ra) != dnnl_success) goto done;
    }
    if (dnnl_stream_wait(stream) != dnnl_success) goto done;
    rc = 0;
done:
    duel_signals_release(&held);
    for (int s = 0; s < 3; s++) {
        if (um[s]) dnnl_memory_destroy(um[s]);
        if (im[s]) dnnl_memory_destroy(im[s]);
    }
    if (pad) dnnl_memory_destroy(pad);
    if (rc) duel_seterr(DUEL_ENOMEM, "%s: oneDNN failed to run the convolution", op);
    return rc;
}

int duel_dnnl_conv(int mode, const int64_t *d, float *x, float *y, float *w, const char *op) {
    if (!duel_conv_dnnl_on) return 1;
    if (!cache && !(cache = calloc(CACHE_N, sizeof *cache))) {
        duel_seterr(DUEL_ENOMEM, "%s: out of memory for oneDNN's primitive cache", op);
        return -1;
    }
    if (!engine) {
        if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
            engine = NULL;
            duel_conv_dnnl_on = 0; /* no CPU engine: stay on the GEMM path for good */
            return 1;
        }
        if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
            dnnl_engine_destroy(engine);
            engine = NULL;
            duel_conv_dnnl_on = 0;
            return 1;
        }
    }
    entry *e = lookup(mode, d);
    if (!e->ok) {
        n_declined++;
        return 1;
    }
    n_taken++;
    return run_entry(e, mode, x, y, w, op);
}

int duel_dnnl_available(void) { return 1; }

#else

int duel_dnnl_conv(int mode, const int64_t *d, float *x, float *y, float *w, const char *op) {
    (void)mode, (void)d, (void)x, (void)y, (void)w, (void)op;
    return 1;
}

int duel_dnnl_available(void) { return 0; }

#endif
